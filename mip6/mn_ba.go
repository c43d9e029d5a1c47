package mip6

import (
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
)

// icmpv6TypeMPA is the ICMPv6 Mobile Prefix Advertisement (RFC 6275 §6.8).
const icmpv6TypeMPA = 147

// buildBU builds the home-registration BU bu in home-address form, as
// IPsec must see it (RFC 4877 §4.2, DR-6): `IPv6(HoA -> HA) / MH BU`,
// checksummed for HoA -> HA (RFC 6275 §6.1.1). Flags A and H (RFC 6275
// §11.7.1), K clear (manual SAs: MUST, RFC 6275 §6.1.7). Options:
//
//   - IPv6 CoA: Alternate Care-of Address (RFC 4877 §4.3: MUST in a BU
//     protected by ESP, since transport mode leaves the IPv6 source
//     unprotected; RFC 6275 §6.2.5);
//   - IPv4 CoA: IPv4 Care-of Address (RFC 5555 §3.1.2, §4.4.2; the HA
//     compares it with the outer source to detect a NAT);
//   - from home (CoA = HoA): neither (RFC 4877 §4.3 exception);
//   - IPv4 Home Address with prefix length 32 when HoA4 is configured,
//     the BU registers (lifetime > 0) and the HA has not shown it ignores
//     the option (RFC 5555 §3.1.1, §4.4.2; after a BA without the IPv4
//     Address Acknowledgement, §2.3.1's SHOULD NOT over §4.4.2's MAY).
//
// With mn.mu held (it records whether the IPv4 HoA option went out).
func (mn *MobileNode) buildBU(bu BUToSend) ([]byte, error) {
	life := LifetimeUnits(bu.Lifetime)
	if bu.Lifetime > 0 && life == 0 {
		life = 1 // never turn a short registration into a de-registration
	}
	m := &BindingUpdate{Seq: bu.Seq, Flags: BUFlagA | BUFlagH, Lifetime: life}
	if mn.cfg.KeyManagement && !mn.cfg.NoKFlag {
		m.Flags |= BUFlagK // RFC 4877 §7.4: the IKE SA can follow the CoA
	}
	switch coa := bu.CoA.Unmap(); {
	case !coa.IsValid() || coa == mn.hoa:
	case coa.Is4():
		m.Options = append(m.Options, IPv4CareOfAddress{Addr: coa})
	default:
		m.Options = append(m.Options, AlternateCoA{Addr: coa})
	}
	mn.lastBUHoA4 = mn.cfg.HoA4.IsValid() && life > 0 && !mn.hoa4Unsupp
	if mn.lastBUHoA4 {
		m.Options = append(m.Options, IPv4HomeAddress{PrefixLen: 32, Addr: mn.cfg.HoA4})
	}
	p, err := AppendMH(make([]byte, header.IPv6HeaderLen, sigPacketCap), m, mn.hoa, mn.ha)
	if err != nil {
		return nil, err
	}
	encodeIPv6(p, header.ProtoMobility, buHopLimit, mn.hoa, mn.ha)
	return p, nil
}

// Deliver takes a packet a transport-mode SA opened (the dataplane's
// Deliver hook): p is the decrypted IP packet in home-address form, spi
// and seq the ESP SPI and sequence number it came with, src the underlay
// endpoint it came from. p is only read during the call.
//
// A Mobility Header packet is consumed (true) whatever it holds: a
// Binding Acknowledgement from the HA to the HoA goes to the BUL (RFC 6275
// §11.7.3); anything else is counted (Malformed, Unexpected) and dropped.
// A type 2 routing header in front of the MH is accepted whether the
// engine processed it (Segments Left 0, destination already the HoA) or
// not (Segments Left 1, its address is the final destination, RFC 6275
// §6.4). An ICMPv6 Mobile Prefix Advertisement is consumed and counted
// (the MN does not use mobile prefix discovery). Every other packet
// returns false: it goes to the TUN. Never panics.
func (mn *MobileNode) Deliver(p []byte, spi, seq uint32, src endpoint.Endpoint) bool {
	ip := header.IPv6(p)
	if !ip.IsValid() {
		return false
	}
	dst := ip.Dst()
	rh2 := false
	it := header.NewExtIter(ip)
	for {
		h, done, err := it.Next()
		if err != nil {
			return false
		}
		if done {
			break
		}
		if h.Proto != header.ProtoRouting {
			continue
		}
		hdr := h.Bytes(p)
		if hdr[2] != header.RoutingTypeMIP6 {
			continue
		}
		rh := header.RoutingType2(hdr)
		if rh2 || !rh.IsValid() {
			// At most one well-formed type 2 routing header (RFC 6275
			// §6.4.1).
			if h.Next == header.ProtoMobility {
				mn.ctr.malformed.Add(1)
				return true
			}
			return false
		}
		rh2 = true
		if rh.SegmentsLeft() == 1 {
			dst = rh.HomeAddress()
		}
	}
	off := it.UpperOffset()
	end := header.IPv6HeaderLen + ip.PayloadLen()
	switch it.UpperProto() {
	case header.ProtoMobility:
	case header.ProtoICMPv6:
		if off < end && p[off] == icmpv6TypeMPA {
			mn.ctr.mpas.Add(1)
			return true
		}
		return false
	default:
		return false
	}
	srcAddr := ip.Src()
	m, err := DecodeMH(p[off:end], srcAddr, dst)
	if err != nil {
		mn.ctr.malformed.Add(1)
		mn.log.Debug("malformed mobility header", zap.Stringer("src", srcAddr), zap.Uint32("spi", spi), zap.Error(err))
		return true
	}
	ba, isBA := m.(*BindingAck)
	if !isBA || srcAddr != mn.ha || dst != mn.hoa {
		// RFC 6275 §11.7.3: only a BA from the HA, protected by the
		// MN-HA SA, concerns the home registration.
		mn.ctr.unexpected.Add(1)
		mn.log.Debug("unexpected mobility header", zap.Uint8("type", m.MHType()), zap.Stringer("src", srcAddr), zap.Stringer("dst", dst), zap.Uint32("spi", spi))
		return true
	}
	mn.handleBA(ba, src)
	return true
}

// handleBA maps an authenticated BA to the BUL (RFC 6275 §11.7.3; RFC
// 5555 §4.4.2) and applies the outcome: the registered path (DR-3), NAT
// state, handover time, events.
func (mn *MobileNode) handleBA(ba *BindingAck, src endpoint.Endpoint) {
	info := BAInfo{Seq: ba.Seq, Status: uint8(ba.Status), Lifetime: ba.LifetimeDuration()}
	var (
		natOpt *NATDetection
		ack    *IPv4AddressAck
	)
	for _, o := range ba.Options {
		switch o := o.(type) {
		case BindingRefreshAdvice:
			info.Refresh = time.Duration(o.Interval) * LifetimeUnit
		case NATDetection:
			natOpt = &o
		case IPv4AddressAck:
			ack = &o
		}
	}
	if natOpt != nil {
		// RFC 5555 §3.2.2, §4.4.2: the option says "tunnel in UDP". The
		// HA also sends it, with Refresh Time all ones and F clear, in
		// every BA to a UDP-encapsulated BU when it found no NAT
		// (RFC 5555 §4.2; §3.2.2 asks for it only on a NAT): then
		// data stays plain IPv4 ESP.
		info.NAT = natOpt.F || natOpt.RefreshTime != NATRefreshNone
		info.NATRefresh = natOpt.RefreshTime
	}

	var (
		evs     [2]MNEvent
		ka      netip.AddrPort
		kick    bool
		deregCh chan struct{}
	)
	mn.mu.Lock()
	now := mn.now()
	dereg := mn.bul.State() == BULDeregistering
	coa := mn.bul.CoA
	hadHoA4 := mn.lastBUHoA4
	res := mn.bul.OnBA(now, info)
	mn.lastStatus, mn.haveBA = ba.Status, true
	switch res {
	case BAIgnored:
		mn.ctr.basIgnored.Add(1)
	case BASeqAdopted:
		mn.ctr.seqResyncs.Add(1)
		kick = true
		evs[0] = MNEvent{Kind: MNSeqResync, Time: now, Seq: ba.Seq, Status: ba.Status}
	case BARejected:
		mn.ctr.basRejected.Add(1)
		kick = true
		evs[0] = MNEvent{Kind: MNRejected, Time: now, CoA: coa, Seq: ba.Seq, Status: ba.Status}
		mn.log.Warn("home agent rejected the binding update", zap.Stringer("coa", coa), zap.Uint16("seq", ba.Seq), zap.Stringer("status", ba.Status))
	case BAAccepted:
		mn.ctr.basAccepted.Add(1)
		kick = true
		r := *mn.route.Load()
		if dereg {
			// RFC 6275 §11.7.2: the binding is gone; data leaves as the
			// SA built it (home link) until the next registration.
			mn.regCoA = netip.Addr{}
			r.data = endpoint.Endpoint{}
			mn.route.Store(&r)
			if mn.moveAt.IsZero() {
				evs[0] = MNEvent{Kind: MNDeregistered, Time: now, CoA: coa, Seq: ba.Seq, Status: ba.Status}
			} else {
				d := now.Sub(mn.moveAt)
				mn.moveAt = time.Time{}
				mn.lastHandover, mn.handoverDur = now, d
				mn.ctr.handovers.Add(1)
				evs[0] = MNEvent{Kind: MNDeregistered, Time: now, CoA: coa, Seq: ba.Seq, Status: ba.Status, Handover: d}
			}
			deregCh, mn.deregDone = mn.deregDone, nil
			mn.log.Info("de-registered from the home agent", zap.Stringer("coa", coa))
			break
		}
		nat, _ := mn.bul.NAT()
		out := mn.dataTo(coa, nat)
		ev := MNEvent{Kind: MNRegistered, Time: now, CoA: coa, Seq: ba.Seq, Status: ba.Status, NAT: nat, Lifetime: info.Lifetime,
			KeyMgmt: mn.cfg.KeyManagement && ba.Flags&BAFlagK != 0}
		if !mn.moveAt.IsZero() {
			// The first acceptance after a Move completes it (Register
			// restarts the BUL, so no older BU can be acknowledged now).
			ev.Handover = now.Sub(mn.moveAt)
			mn.moveAt = time.Time{}
			mn.lastHandover, mn.handoverDur = now, ev.Handover
			mn.ctr.handovers.Add(1)
		}
		if hadHoA4 {
			if ack == nil {
				mn.hoa4Unsupp = true
			} else {
				a := *ack
				mn.hoa4Ack = &a
			}
		}
		mn.regCoA = coa
		r.data = out
		mn.route.Store(&r)
		if out.Encap == endpoint.EncapUDP {
			// RFC 5555 §4.4.2: open the NAT mapping for 4500 before the
			// HA's data arrives.
			ka = out.Addr
		}
		evs[0] = ev
		mn.log.Info("registered with the home agent",
			zap.Stringer("coa", coa), zap.Duration("lifetime", info.Lifetime), zap.Bool("nat", nat),
			zap.Stringer("data", out), zap.Duration("handover", ev.Handover),
			zap.Bool("udp", src.Encap == endpoint.EncapUDP || src.Encap == endpoint.EncapIP && src.Addr.Port() != 0))
	}
	mn.mu.Unlock()
	if deregCh != nil {
		close(deregCh)
	}
	mn.emit(evs[:]...)
	if ka.IsValid() {
		mn.sendKeepalive(ka)
	}
	if kick {
		mn.wake()
	}
}
