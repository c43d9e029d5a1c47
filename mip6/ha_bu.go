package mip6

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
)

// haMsg is one signaling packet taken apart on the signaling goroutine.
type haMsg struct {
	spi, seq uint32
	src      endpoint.Endpoint
	// hoa is the home address: the IPv6 source of the delivered packet.
	// The dataplane hands signaling over in RFC 6275 §9.3.1 home-address
	// form: when the packet carried a Home Address option, the source
	// and the option's address were already exchanged, so the source is
	// the HoA (RFC 4877 §4.2) and the option holds the CoA. Without the
	// option the source is the HoA as sent (a BU from home, or from an
	// IPv4 network inside UDP 4191, RFC 5555 §4.2, §5.2.1, which drops the
	// HAO that RFC 6275 §10.3.1 requires).
	hoa    netip.Addr
	hao    bool
	pktSrc netip.Addr // the source on the wire: the CoA (the HAO's address after §9.3.1) or the HoA
	dst    netip.Addr
	upper  []byte // the MH or ICMPv6 message
	// udp4 is true for a packet that came in UDP 4191 over IPv4 (src
	// EncapIP with an IPv4 address, RFC 5555 §4.1).
	udp4 bool
}

// handle processes one queued packet (signaling goroutine).
func (ha *HomeAgent) handle(it *sigItem) {
	m, kind, ok := haParse(it)
	if !ok {
		ha.st.rejected[rejMalformed].Add(1)
		return
	}
	switch kind {
	case sigMH:
		ha.handleBU(m)
	case sigMPS:
		ha.handleMPS(m)
	}
}

// haParse walks the IPv6 header chain of a queued packet.
func haParse(it *sigItem) (*haMsg, sigKind, bool) {
	p := it.bytes()
	kind := haClassify(p)
	if kind != sigMH && kind != sigMPS {
		return nil, 0, false
	}
	ip := header.IPv6(p)
	ip = ip[:header.IPv6HeaderLen+ip.PayloadLen()]
	m := &haMsg{spi: it.spi, seq: it.seq, src: it.src, pktSrc: ip.Src(), dst: ip.Dst()}
	m.hoa = m.pktSrc
	x := header.NewExtIter(ip)
	for {
		h, done, err := x.Next()
		if err != nil {
			return nil, 0, false
		}
		if done {
			break
		}
		if h.Proto == header.ProtoDestOpts && !m.hao {
			if a, ok := header.FindHomeAddress(h.Bytes(ip)); ok {
				m.pktSrc, m.hao = a, true // §9.3.1 exchange done: the option holds the CoA
			}
		}
	}
	m.upper = ip[x.UpperOffset():]
	a := it.src.Addr.Addr().Unmap()
	m.udp4 = it.src.Encap == endpoint.EncapIP && a.Is4()
	return m, kind, true
}

// dest is where the answer to m goes: the source of the BU or MPS, also
// on rejection (RFC 6275 §9.5.4, RFC 5555 §5.1). rec is the outer IPv4
// source of a UDP 4191 packet (DR-4 record, or the delivered source).
func (m *haMsg) dest(rec netip.AddrPort) (baDest, bool) {
	switch {
	case m.udp4:
		return baDest{kind: baV4, to: rec}, rec.IsValid() && rec.Port() != 0
	case m.hao:
		// RFC 6275 §9.5.4: no BA to a source that is not unicast.
		return baDest{kind: baRH2, to: netip.AddrPortFrom(m.pktSrc, 0)}, bcUnicast(m.pktSrc) && !m.pktSrc.Is4In6()
	default:
		return baDest{kind: baHome}, true
	}
}

// answerAddr is the address a BA to m goes to when it leaves the home
// agent with an outer header of its own: the outer IPv4 source of a UDP
// 4191 BU, or the IPv6 source on the wire (the Home Address option's
// address after §9.3.1) unless that is the home address itself. false for
// a BA to the home address as sealed.
func (m *haMsg) answerAddr(rec netip.AddrPort) (netip.Addr, bool) {
	switch {
	case m.udp4:
		return rec.Addr().Unmap(), true
	case m.hao && m.pktSrc != m.hoa:
		return m.pktSrc, true
	}
	return netip.Addr{}, false
}

// outerRecord takes the DR-4 record of m's packet: the outer IPv4 source
// and UDP port recorded by BeforeLookup under (SPI, seq), falling back to
// the source the dataplane delivered with the packet (the same value,
// carried through IPsec) when the slot was overwritten.
func (ha *HomeAgent) outerRecord(m *haMsg) netip.AddrPort {
	rec, ok := ha.nat.Take(m.spi, m.seq)
	if !m.udp4 {
		return netip.AddrPort{}
	}
	if !ok || !rec.Addr().Is4() {
		rec = netip.AddrPortFrom(m.src.Addr.Addr().Unmap(), m.src.Addr.Port())
	}
	return rec
}

// buOptions are the mobility options of a BU the home agent uses.
type buOptions struct {
	altCoA netip.Addr
	coa4   netip.Addr
	hoa4   *IPv4HomeAddress
	bids   []BindingIdentifier
}

// hoa4Addr is the address of the IPv4 Home Address option, invalid when
// there is none.
func (o *buOptions) hoa4Addr() netip.Addr {
	if o.hoa4 == nil {
		return netip.Addr{}
	}
	return o.hoa4.Addr.Unmap()
}

func collectBUOptions(bu *BindingUpdate) buOptions {
	var o buOptions
	for _, opt := range bu.Options {
		switch v := opt.(type) {
		case AlternateCoA:
			if !o.altCoA.IsValid() {
				o.altCoA = v.Addr
			}
		case IPv4CareOfAddress:
			if !o.coa4.IsValid() {
				o.coa4 = v.Addr
			}
		case IPv4HomeAddress:
			if o.hoa4 == nil {
				o.hoa4 = &v
			}
		case BindingIdentifier:
			o.bids = append(o.bids, v)
		}
	}
	return o
}

// handleBU is RFC 6275 §10.3.1/§10.3.2 home registration with RFC 4877
// §4.2 (DR-7), RFC 5555 §4.5 (IPv4 CoA, IPv4 HoA, NAT detection DR-4) and
// RFC 5648 (Binding Identifiers).
func (ha *HomeAgent) handleBU(m *haMsg) {
	rec := ha.outerRecord(m)
	msg, err := DecodeMH(m.upper, m.hoa, m.dst)
	if err != nil {
		// RFC 6275 §9.2: malformed or bad-checksum MH is dropped, no BA.
		r := rejMalformed
		if errors.Is(err, ErrChecksum) {
			r = rejChecksum
		}
		ha.reject(m, r, 0, err.Error())
		return
	}
	bu, ok := msg.(*BindingUpdate)
	if !ok {
		ha.reject(m, rejNotBU, 0, fmt.Sprintf("MH type %d", msg.MHType()))
		return
	}
	// DR-7 (RFC 4877 §4.2, RFC 6275 §5.1): the BU must come on the SA
	// created for its home address. Silently discarded: answering would
	// use the other mobile node's SA2.
	if sa, ok := ha.cfg.SAD.HomeAddressOf(m.spi); !ok || sa != m.hoa {
		ha.reject(m, rejDR7, 0, fmt.Sprintf("BU for %v on SPI %#x of %v", m.hoa, m.spi, sa))
		return
	}
	dest, canAnswer := m.dest(rec)
	if !canAnswer {
		ha.st.badCoA.Add(1)
		ha.reject(m, rejInvalidCoA, 0, "BU source cannot be answered")
		return
	}
	opts := collectBUOptions(bu)
	// The BA goes to the BU's source on the wire (RFC 6275 §9.5.4, RFC
	// 5555 §4.2), and with a NAT the binding's data too (DR-4): never to
	// the home agent itself or into a binding's tunnel (ha_coa.go). No
	// BA: there is nowhere to send it.
	if a, ok := m.answerAddr(rec); ok {
		if why := ha.coaRefusal(a, m.hoa, opts.hoa4Addr()); why != "" {
			ha.st.badCoA.Add(1)
			ha.reject(m, rejInvalidCoA, 0, fmt.Sprintf("BU source %v is %s", a, why))
			return
		}
	}
	ba := &BindingAck{Seq: bu.Seq}
	status, reason, detail := ha.register(m, bu, opts, rec, ba)
	ba.Status = status
	// RFC 4877 §7.4, RFC 6275 §10.3.1: K back when the MN asked for it
	// and the IKE SA of its home address can follow it.
	k := bu.Flags&BUFlagK != 0 && ha.cfg.KeyManagement != nil && ha.cfg.KeyManagement(m.hoa)
	if k {
		ba.Flags |= BAFlagK
	}
	if reason != nil {
		ha.reject(m, *reason, status, detail)
	} else {
		ha.st.accepted.Add(1)
		if k && ha.cfg.MoveIKE != nil && ba.Lifetime > 0 { // a registration, not a de-registration
			ha.moveIKE(m, rec)
		}
	}
	if m.udp4 {
		// RFC 5555 §4.2: a BA answering a UDP-encapsulated BU always has
		// the NAT Detection option (not only on a NAT, §3.2.2), also on
		// rejection.
		ba.Options = append(ba.Options, ha.natOption(rec, opts.coa4))
	}
	ha.sendBA(m.hoa, dest, ba)
}

// moveIKE moves the IKE SA of m's home address to where m came from
// (RFC 4877 §7.4): an accepted registration with the K flag.
func (ha *HomeAgent) moveIKE(m *haMsg, rec netip.AddrPort) {
	var local, remote netip.AddrPort
	switch {
	case m.udp4:
		local, remote = netip.AddrPortFrom(ha.cfg.AddressV4, PortESPInUDP), rec
	case m.hao && m.pktSrc != m.hoa:
		local, remote = netip.AddrPortFrom(ha.cfg.Address, 0), netip.AddrPortFrom(m.pktSrc, 0)
	default:
		return // from home: no care-of address to move to
	}
	ha.cfg.MoveIKE(m.hoa, local, remote)
}

// natOption is the NAT Detection option of a BA to a UDP-encapsulated BU
// (RFC 5555 §3.2.2): Refresh Time NATRefresh when a NAT was detected,
// all ones (no keepalives needed) otherwise.
func (ha *HomeAgent) natOption(rec netip.AddrPort, coa4 netip.Addr) Option {
	if NATDetected(rec, coa4) {
		return NATDetection{RefreshTime: uint32(ha.cfg.NATRefresh / time.Second)}
	}
	return NATDetection{RefreshTime: NATRefreshNone}
}

// register validates the BU and updates the binding cache. It returns the
// BA status, and a reason when rejected. It fills ba's lifetime, sequence
// number and options (except NAT Detection).
func (ha *HomeAgent) register(m *haMsg, bu *BindingUpdate, o buOptions, rec netip.AddrPort, ba *BindingAck) (BAStatus, *haReason, string) {
	rej := func(r haReason, s BAStatus, detail string) (BAStatus, *haReason, string) {
		return s, &r, detail
	}
	// RFC 6275 §10.3.1: this node only does home registrations.
	if bu.Flags&BUFlagH == 0 {
		return rej(rejNotHomeReg, BAStatusHomeRegNotSupported, "H flag clear")
	}
	if p := ha.cfg.HomePrefix; p.IsValid() && !p.Contains(m.hoa) {
		return rej(rejNotHomeSubnet, BAStatusNotHomeSubnet, "home address outside "+p.String())
	}
	life := bu.LifetimeDuration()

	// The care-of address (RFC 6275 §9.5.1; RFC 4877 §4.3 Alternate CoA
	// MUST in ESP-protected BUs; RFC 5555 §4.5 IPv4 CoA option, in its
	// place for an IPv4 CoA, which the Alternate CoA cannot carry).
	var coa netip.Addr
	switch {
	case m.udp4:
		coa = o.coa4
	case o.altCoA.IsValid():
		coa = o.altCoA
	case o.coa4.IsValid():
		coa = o.coa4
	case !m.hao:
		coa = m.hoa // at home: only de-registration makes sense
	}
	coa = coa.Unmap()
	if coa == m.hoa {
		life = 0 // RFC 6275 §10.3.2: CoA == HoA de-registers
	}
	nat := m.udp4 && NATDetected(rec, coa)
	reg := Registration{HoA: m.hoa, Seq: bu.Seq, Lifetime: life, Replace: true}
	if len(o.bids) == 0 {
		if life > 0 && !coa.IsValid() {
			return rej(rejNoCoA, BAStatusUnspecified, "no Alternate CoA or IPv4 CoA option")
		}
		c := CareOf{Addr: coa, Primary: true, NAT: nat}
		if m.udp4 {
			c.Endpoint = rec
		}
		if life > 0 {
			reg.CoAs = []CareOf{c}
		}
	} else {
		// RFC 5648 §5.2, §6.1: each BID option names one CoA (in the
		// option, as ESP-protected BUs must; else the BU's CoA); the O
		// flag of the BID option replaces all other bindings.
		reg.Replace = false
		for _, b := range o.bids {
			if b.BID == 0 {
				return rej(rejBID, BAStatusMCoAMalformed, "BID 0 is reserved")
			}
			a := b.CoA.Unmap()
			if !a.IsValid() {
				a = coa
			}
			if life > 0 && !a.IsValid() {
				return rej(rejBID, BAStatusMCoAMalformed, fmt.Sprintf("BID %d without a care-of address", b.BID))
			}
			c := CareOf{BID: b.BID, Addr: a, Primary: a == coa}
			if m.udp4 && a == o.coa4.Unmap() {
				c.NAT, c.Endpoint = nat, rec
			}
			reg.CoAs = append(reg.CoAs, c)
			reg.Replace = reg.Replace || b.O
			ba.Options = append(ba.Options, BindingIdentifier{BID: b.BID})
		}
	}

	// The care-of addresses about to be bound (ha_coa.go; RFC 6275
	// §9.5.1, §6.1.8 status 174). A de-registration binds none.
	if life > 0 {
		for _, c := range reg.CoAs {
			if c.Addr == m.hoa {
				// Only a BID can get here (CoA == HoA de-registers):
				// RFC 5648 §5.6's interface at home while others are
				// away, which this home agent does not do (§6.2: 169).
				ha.st.badCoA.Add(1)
				return rej(rejInvalidCoA, BAStatusMCoASimultaneousHomeFor,
					fmt.Sprintf("BID %d: the home address as care-of address", c.BID))
			}
			if why := ha.coaRefusal(c.Addr, m.hoa, o.hoa4Addr()); why != "" {
				ha.st.badCoA.Add(1)
				return rej(rejInvalidCoA, BAStatusInvalidCoA, fmt.Sprintf("care-of address %v is %s", c.Addr, why))
			}
		}
	}

	// RFC 5555 §4.5: the IPv4 home address is authorised by the IPv6
	// home address's SA; its outcome goes in the IPv4 Address
	// Acknowledgement and never rejects the IPv6 binding.
	var ack *IPv4AddressAck
	if o.hoa4 != nil && life > 0 {
		a := ha.checkHoA4(m.hoa, o.hoa4)
		if a.Status.Success() && ha.keepsCoA(reg, a.Addr) {
			// The binding's own care-of address as its IPv4 home address
			// would tunnel the address to itself (ha_coa.go).
			a.Status, a.PrefixLen = IPv4AckInvalidAddress, 0
		}
		ack = &a
		if a.Status.Success() {
			reg.HoA4 = a.Addr
		}
	}

	nb, granted, err := ha.cache.Update(reg)
	if err != nil {
		var se *SeqError
		switch {
		case errors.As(err, &se):
			// RFC 6275 §9.5.1: status 135 with the last accepted number.
			ba.Seq = se.Last
			return rej(rejSeq, BAStatusSeqOutOfWindow, err.Error())
		case errors.Is(err, ErrNotRegistered):
			return rej(rejNotRegistered, BAStatusNotHomeAgent, err.Error())
		case errors.Is(err, ErrInvalidCoA):
			ha.st.badCoA.Add(1)
			return rej(rejInvalidCoA, BAStatusInvalidCoA, err.Error())
		case errors.Is(err, ErrTooManyCoAs):
			return rej(rejResources, BAStatusInsufficientResources, err.Error())
		case errors.Is(err, ErrDuplicateBID):
			return rej(rejBID, BAStatusMCoAMalformed, err.Error())
		case errors.Is(err, ErrUnknownBID):
			return rej(rejUnknownBID, BAStatusMCoAUnknownCoA, err.Error())
		case errors.Is(err, ErrInvalidHoA):
			return rej(rejNotHomeSubnet, BAStatusNotHomeSubnet, err.Error())
		case errors.Is(err, ErrNoCoA):
			return rej(rejNoCoA, BAStatusUnspecified, err.Error())
		}
		return rej(rejOther, BAStatusUnspecified, err.Error())
	}
	ba.Lifetime = LifetimeUnits(granted)
	if ack != nil {
		ba.Options = append(ba.Options, *ack)
	}
	if nat && nb != nil {
		ha.st.nat.Add(1)
	}
	ha.log.Debug("BU accepted", zap.Stringer("hoa", m.hoa), zap.Stringer("coa", coa), zap.Uint16("seq", bu.Seq),
		zap.Duration("lifetime", granted), zap.Bool("nat", nat), addrPortField("outer", rec))
	return BAStatusAccepted, nil, ""
}

// checkHoA4 decides the IPv4 Address Acknowledgement for an IPv4 Home
// Address option (RFC 5555 §3.2.1, §4.5). Dynamic allocation and mobile
// network prefixes are not offered.
func (ha *HomeAgent) checkHoA4(hoa netip.Addr, o *IPv4HomeAddress) IPv4AddressAck {
	a := o.Addr.Unmap()
	ack := IPv4AddressAck{Addr: a}
	if !a.Is4() {
		ack.Addr = netip.IPv4Unspecified()
		ack.Status = IPv4AckInvalidAddress
		return ack
	}
	switch {
	case o.P:
		ack.Status = IPv4AckPrefixUnauthorized
	case a.IsUnspecified():
		ack.Status = IPv4AckDynamicUnavailable
	case o.PrefixLen == 0:
		ack.Status = IPv4AckInvalidAddress // RFC 5555 §3.1.1: 0 is invalid
	case o.PrefixLen != 32:
		ack.Status = IPv4AckPrefixUnauthorized
	case !bcUnicast(a):
		ack.Status = IPv4AckInvalidAddress
	case ha.cfg.HomePrefix4.IsValid() && !ha.cfg.HomePrefix4.Contains(a):
		ack.Status = IPv4AckIncorrectHoA
	default:
		if b, ok := ha.cache.LookupV4(a); ok && b.HoA != hoa {
			ack.Status = IPv4AckIncorrectHoA
			break
		}
		ack.Status, ack.PrefixLen = IPv4AckSuccess, 32
	}
	return ack
}

// reject counts, logs and reports a rejected signaling message. The
// warning is rate-limited per reason (logLimiter); counters and events
// are not.
func (ha *HomeAgent) reject(m *haMsg, r haReason, s BAStatus, detail string) {
	ha.st.rejected[r].Add(1)
	src := m.pktSrc
	if m.udp4 {
		src = m.src.Addr.Addr().Unmap()
	}
	if ok, held := ha.rejLog.allow(r, ha.cfg.Now()); ok {
		suppressed := zap.Skip()
		if held > 0 {
			suppressed = zap.Uint64("suppressed", held)
		}
		ha.log.Warn("signaling rejected", zap.String("reason", r.String()), zap.Stringer("hoa", m.hoa),
			addrPortField("from", m.src.Addr), zap.Uint32("spi", m.spi), zap.Uint8("status", uint8(s)), zap.String("detail", detail),
			suppressed)
	}
	ha.event(HAEvent{Kind: HABURejected, HoA: m.hoa, CoA: src, Status: s, Reason: r.String(), Time: ha.cfg.Now()})
}

// sendBA builds `IPv6(HA -> HoA) / MH BA` and injects it; AfterSeal sends
// it to dest (RFC 6275 §9.5.4, RFC 5555 §5.1).
func (ha *HomeAgent) sendBA(hoa netip.Addr, dest baDest, ba *BindingAck) {
	p, err := AppendMH(make([]byte, header.IPv6HeaderLen, sigPacketCap), ba, ha.cfg.Address, hoa)
	if err != nil {
		ha.st.baFailed.Add(1)
		ha.log.Error("BA encode failed", zap.Error(err))
		return
	}
	spi, ok := BAckSPI(ha.cfg.SAD, ha.cfg.Address, hoa)
	if err := ha.inject(hoa, header.ProtoMobility, p, spi, ok, dest); err != nil {
		ha.st.baFailed.Add(1)
		ha.log.Warn("BA not sent", zap.Stringer("hoa", hoa), zap.Error(err))
		return
	}
	ha.st.baSent.Add(1)
}

// inject fills in the IPv6 header `IPv6(HA -> hoa)` in the first 40 bytes
// of p (reserved by the caller, the proto message follows) and sends p
// through the IPsec path with dest registered for the SA spi that will
// seal it.
func (ha *HomeAgent) inject(hoa netip.Addr, proto uint8, p []byte, spi uint32, haveSA bool, dest baDest) error {
	if !haveSA {
		return fmt.Errorf("no outbound SA protects %v -> %v protocol %d", ha.cfg.Address, hoa, proto)
	}
	encodeIPv6(p, proto, haHopLimit, ha.cfg.Address, hoa)
	dest.spi = spi
	ha.pending.Store(&dest)
	defer ha.pending.Store(nil)
	return ha.cfg.Inject(p)
}

// handleMPS answers a Mobile Prefix Solicitation with an Advertisement of
// the home prefix (RFC 6275 §10.6.1, §10.6.2; RFC 4877 §4.2: it must come
// on the SA of its home address, like a BU).
func (ha *HomeAgent) handleMPS(m *haMsg) {
	rec := ha.outerRecord(m)
	mps, err := ParseMPS(m.upper, m.hoa, m.dst)
	if err != nil {
		ha.reject(m, rejMPS, 0, err.Error())
		return
	}
	if sa, ok := ha.cfg.SAD.HomeAddressOf(m.spi); !ok || sa != m.hoa {
		ha.reject(m, rejDR7, 0, fmt.Sprintf("MPS for %v on SPI %#x of %v", m.hoa, m.spi, sa))
		return
	}
	pfx := ha.cfg.HomePrefix
	if !pfx.IsValid() {
		ha.reject(m, rejMPS, 0, "no home prefix configured")
		return
	}
	dest, ok := m.dest(rec)
	if !ok {
		ha.reject(m, rejMPS, 0, "MPS source cannot be answered")
		return
	}
	mpa := &MobilePrefixAdvertisement{ID: mps.ID, Prefixes: []PrefixInfo{{
		Prefix: pfx.Masked(), OnLink: true, Autonomous: true,
		ValidLifetime:     uint32(min(ha.cfg.PrefixValidLifetime/time.Second, 0xfffffffe)),
		PreferredLifetime: uint32(min(ha.cfg.PrefixPreferredLifetime/time.Second, 0xfffffffe)),
	}}}
	p, err := AppendMPA(make([]byte, header.IPv6HeaderLen, sigPacketCap), mpa, ha.cfg.Address, m.hoa)
	if err != nil {
		ha.reject(m, rejMPS, 0, err.Error())
		return
	}
	spi, sa := ha.cfg.SAD.OutboundSPIFor(&header.Flow{Src: ha.cfg.Address, Dst: m.hoa, Proto: header.ProtoICMPv6, TypeCode: ICMPv6TypeMPA << 8})
	if err := ha.inject(m.hoa, header.ProtoICMPv6, p, spi, sa, dest); err != nil {
		ha.log.Warn("MPA not sent", zap.Stringer("hoa", m.hoa), zap.Error(err))
		return
	}
	ha.st.mps.Add(1)
}
