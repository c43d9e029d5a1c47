package mip6

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// In-process MobileNode <-> HomeAgent tests. The "dataplane" here seals
// with a fake ESP (SPI, sequence number, then the payload in clear), runs
// each side's AfterSeal like the real one does, carries the bytes over a
// fake network with an optional NAT (RFC 4787 endpoint-independent
// mapping, like Linux masquerade), and opens them for the other side's
// BeforeLookup and Deliver. Only the crypto is missing: every header the
// mobility code writes or reads is real.

var (
	agSA1   = uint32(0xa001) // BU, HoA -> HA (RFC 4877 §6)
	agSA2   = uint32(0xa002) // BA, HA -> HoA
	agData  = uint32(0xa008) // tunnel-mode data toward the MN (SA8)
	agCoA4b = netip.MustParseAddr("192.0.2.50")
	agNAT   = netip.MustParseAddrPort("198.51.100.1:61000")
)

// agSAD serves both ends: the MN asks for SA1, the HA for SA2 and for the
// home address SA1 belongs to (DR-7).
type agSAD struct{}

func (agSAD) OutboundSPIFor(f *header.Flow) (uint32, bool) {
	switch {
	case f.Proto != header.ProtoMobility:
	case f.Src == mnHoA && f.Dst == mnHA && f.TypeCode == uint16(MHTypeBU)<<8:
		return agSA1, true
	case f.Src == mnHA && f.Dst == mnHoA && f.TypeCode == uint16(MHTypeBA)<<8:
		return agSA2, true
	}
	return 0, false
}

func (agSAD) HomeAddressOf(spi uint32) (netip.Addr, bool) {
	if spi == agSA1 {
		return mnHoA, true
	}
	return netip.Addr{}, false
}

type agHomeLink struct {
	mu  sync.Mutex
	ops []string
}

func (l *agHomeLink) Add(a netip.Addr) error    { l.log("add " + a.String()); return nil }
func (l *agHomeLink) Remove(a netip.Addr) error { l.log("remove " + a.String()); return nil }
func (l *agHomeLink) log(s string) {
	l.mu.Lock()
	l.ops = append(l.ops, s)
	l.mu.Unlock()
}

// agNet is the fake network between the two.
type agNet struct {
	t  *testing.T
	mn *MobileNode
	ha *HomeAgent

	mu      sync.Mutex
	nat     bool     // the MN's IPv4 CoA is behind agNAT
	hold    bool     // queue MN -> HA packets instead of delivering
	held    []func() // queued deliveries
	seq1    uint32
	seq2    uint32
	ka      []netip.AddrPort
	toHA    []endpoint.Endpoint // AfterSeal's endpoints for the MN's BUs
	baFroms []netip.AddrPort
}

// agSeal is mnSeal: `IPv6 / ESP(spi, seq, payload)` as the SA's header
// plus fake ESP.
func agSeal(clear []byte, spi, seq uint32) *pkt.Buf { return mnSeal(clear, spi, seq) }

// agOpen undoes agSeal on a received IPv6 packet whose upper header is the
// fake ESP: the decrypted packet as the dataplane delivers it (extension
// headers kept as received, ESP header removed, Next Header restored).
func agOpen(t *testing.T, p []byte, inner uint8) (out []byte, spi, seq uint32) {
	t.Helper()
	ip := header.IPv6(p)
	if !ip.IsValid() {
		t.Fatalf("open: not IPv6: % x", p)
	}
	it := header.NewExtIter(ip)
	for {
		_, done, err := it.Next()
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if done {
			break
		}
	}
	if it.UpperProto() != header.ProtoESP {
		t.Fatalf("open: upper protocol %d, want ESP", it.UpperProto())
	}
	off := it.UpperOffset()
	e := header.ESP(p[off:])
	spi, seq = e.SPI(), e.Seq()
	out = append(append([]byte(nil), p[:off]...), p[off+header.ESPHeaderLen:]...)
	out[it.NextHeaderOffset()] = inner
	header.IPv6(out).SetPayloadLen(len(out) - header.IPv6HeaderLen)
	header.HomeAddressForm(out) // what the dataplane hands Deliver (RFC 6275 §9.3.1, §6.4)
	return out, spi, seq
}

// mnInject is the MN's dataplane: seal with SA1, AfterSeal, send.
func (n *agNet) mnInject(p []byte) error {
	n.mu.Lock()
	n.seq1++
	seq := n.seq1
	n.mu.Unlock()
	b := agSeal(p, agSA1, seq)
	out := dpEP
	if !n.mn.AfterSeal(b, agSA1, &out) {
		n.t.Error("MN AfterSeal dropped a BU")
		return nil
	}
	wire := append([]byte(nil), b.Bytes()...)
	deliver := func() { n.toHomeAgent(out, wire) }
	n.mu.Lock()
	n.toHA = append(n.toHA, out)
	if n.hold {
		n.held = append(n.held, deliver)
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()
	deliver()
	return nil
}

// toHomeAgent carries one MN packet to the HA's receive path.
func (n *agNet) toHomeAgent(out endpoint.Endpoint, wire []byte) {
	t := n.t
	switch {
	case out.Encap == endpoint.EncapIP && out.Addr.Addr().Is4():
		// IPv4(CoA -> HAv4) / UDP(4500 -> 4191) / IPv6 / ESP. The NAT
		// rewrites the outer source.
		n.mu.Lock()
		nat := n.nat
		n.mu.Unlock()
		if nat {
			ip := header.IPv4(wire)
			encodeIPv4(wire, ip.TOS(), ip.TTL(), header.ProtoUDP, agNAT.Addr(), ip.Dst(), ip.TotalLen())
			u := header.UDP(wire[header.IPv4MinHeaderLen:])
			u.SetSrcPort(agNAT.Port())
			u.SetChecksum(0)
			u.SetChecksum(header.UDPChecksum(agNAT.Addr(), ip.Dst(), u))
		}
		b := new(pkt.Buf)
		b.Reset()
		b.Set(wire)
		src, d := StripUDPEncap(b)
		if d != DecapIP {
			t.Errorf("HA: UDP decap %v, want ip (port 4191)", d)
			return
		}
		s := endpoint.Endpoint{Addr: src, Encap: endpoint.EncapIP}
		n.ha.BeforeLookup(b, s)
		p, spi, seq := agOpen(t, b.Bytes(), header.ProtoMobility)
		if !n.ha.Deliver(p, spi, seq, s) {
			t.Error("HA did not take the BU")
		}
	case out.Encap == endpoint.EncapIP:
		// IPv6(CoA -> HA) / DestOpts(HAO) / ESP, received as EncapIP.
		s := endpoint.Endpoint{Addr: netip.AddrPortFrom(header.IPv6(wire).Src(), 0), Encap: endpoint.EncapIP}
		b := new(pkt.Buf)
		b.Reset()
		b.Set(wire)
		n.ha.BeforeLookup(b, s)
		p, spi, seq := agOpen(t, wire, header.ProtoMobility)
		if !n.ha.Deliver(p, spi, seq, s) {
			t.Error("HA did not take the BU")
		}
	case out == dpEP:
		// From home: plain IPv6(HoA -> HA) / ESP.
		p, spi, seq := agOpen(t, wire, header.ProtoMobility)
		if !n.ha.Deliver(p, spi, seq, epRaw(header.IPv6(wire).Src())) {
			t.Error("HA did not take the BU")
		}
	default:
		t.Errorf("BU sent as %+v", out)
	}
}

// haInject is the HA's dataplane: seal with SA2, AfterSeal, send to the
// MN.
func (n *agNet) haInject(p []byte) error {
	t := n.t
	n.mu.Lock()
	n.seq2++
	seq := n.seq2
	n.mu.Unlock()
	b := agSeal(p, agSA2, seq)
	out := dpEP
	if !n.ha.AfterSeal(b, agSA2, &out) {
		t.Error("HA AfterSeal dropped a BA")
		return nil
	}
	wire := b.Bytes()
	var inner []byte
	from := netip.AddrPortFrom(mnHA, 0)
	switch {
	case out.Encap == endpoint.EncapIP && out.Addr.Addr().Is4():
		// IPv4(HAv4 -> V4ADDR) / UDP(4191 -> Z) / IPv6 / ESP; the NAT
		// maps it back to the CoA's port 4500, where the MN's socket
		// classifies source port 4191 as a whole IP packet.
		ip := header.IPv4(wire)
		u := header.UDP(wire[header.IPv4MinHeaderLen:])
		n.mu.Lock()
		nat := n.nat
		n.mu.Unlock()
		to := netip.AddrPortFrom(ip.Dst(), u.DstPort())
		if nat && to != agNAT || !nat && to.Port() != PortESPInUDP {
			t.Errorf("BA sent to %v (NAT %v)", to, nat)
		}
		if u.SrcPort() != PortDSMIPv6 {
			t.Errorf("BA source port %d, want 4191", u.SrcPort())
		}
		from = netip.AddrPortFrom(ip.Src(), u.SrcPort())
		inner = wire[header.IPv4MinHeaderLen+header.UDPHeaderLen:]
	case out.Encap == endpoint.EncapIP || out == dpEP:
		inner = wire
	default:
		t.Errorf("BA sent as %+v", out)
		return nil
	}
	n.mu.Lock()
	n.baFroms = append(n.baFroms, from)
	n.mu.Unlock()
	q, spi, s := agOpen(t, inner, header.ProtoMobility)
	if !n.mn.Deliver(q, spi, s, endpoint.Endpoint{Addr: from, Encap: endpoint.EncapIP}) {
		t.Error("MN did not take the BA")
	}
	return nil
}

func (n *agNet) set(f func(n *agNet)) {
	n.mu.Lock()
	f(n)
	n.mu.Unlock()
}

// release delivers the held MN packets.
func (n *agNet) release() {
	n.mu.Lock()
	held := n.held
	n.held, n.hold = nil, false
	n.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// haData is DR-1 on the HA for one data packet toward the HoA: where it
// goes. The packet itself must stay as sealed (the dataplane cuts it in
// front of ESP).
func (n *agNet) haData() endpoint.Endpoint {
	clear := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoNoNext, make([]byte, 64))
	b := agSeal(clear, agData, 1)
	before := slices.Clone(b.Bytes())
	out := dpEP
	if !n.ha.AfterSeal(b, agData, &out) {
		n.t.Fatal("HA dropped a data packet")
	}
	if !slices.Equal(b.Bytes(), before) {
		n.t.Errorf("HA AfterSeal changed a data packet (to %v)", out)
	}
	return out
}

// TestAgentsMobility runs a MobileNode against a HomeAgent: registration
// from an IPv6 CoA, handover to an IPv4 CoA behind a NAT (NAT detected,
// data in UDP 4500 both ways, keepalive), to an IPv4 CoA without NAT (no
// NAT, no UDP for data), back to IPv6, home (de-registration) and Close.
// Data stays on the old path until the BA (DR-3).
func TestAgentsMobility(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &agNet{t: t}
		hl := &agHomeLink{}
		ha, err := NewHomeAgent(HAConfig{
			Address: mnHA, AddressV4: mnHAV4, HomePrefix: mnHome,
			SAD: agSAD{}, Inject: n.haInject, HomeLink: hl,
			NATRefresh: 25 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		mn, err := NewMobileNode(MNConfig{
			HoA: mnHoA, HomePrefix: mnHome, HA: mnHA, HAV4: mnHAV4,
			SAD: agSAD{}, Inject: n.mnInject,
			Keepalive: func(dst netip.AddrPort) error {
				n.set(func(n *agNet) { n.ka = append(n.ka, dst) })
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		n.mn, n.ha = mn, ha
		if err := ha.Start(); err != nil {
			t.Fatal(err)
		}
		if err := mn.Start(); err != nil {
			t.Fatal(err)
		}
		binding := func() (CareOf, bool) {
			synctest.Wait()
			bs := ha.Bindings()
			if len(bs) != 1 || bs[0].HoA != mnHoA {
				return CareOf{}, false
			}
			for _, c := range bs[0].CoAs {
				if c.Primary {
					return c, true
				}
			}
			return CareOf{}, false
		}
		raw6 := epRaw(mnHA)

		// 1. Registration from an IPv6 CoA.
		if err := mn.Move(mnCoA6); err != nil {
			t.Fatal(err)
		}
		c, ok := binding()
		if st := mn.Status(); st.State != BULRegistered || st.RegisteredCoA != mnCoA6 || st.NAT {
			t.Fatalf("MN after registration: %+v (HA %+v)", st, ha.Stats())
		}
		if !ok || c.Addr != mnCoA6 || c.NAT || c.UDP() {
			t.Errorf("HA binding %+v %v", c, ok)
		}
		if out := n.haData(); out != epRaw(mnCoA6) {
			t.Errorf("HA data to the IPv6 CoA: %v", out)
		}
		if got := (&mnHarness{t: t, mn: mn}).dataOut(); got != raw6 {
			t.Errorf("MN data: %+v", got)
		}

		// 2. Handover to an IPv4 CoA behind a NAT. The BU is held on the
		// way: data stays on the IPv6 path at both ends meanwhile.
		n.set(func(n *agNet) { n.nat, n.hold = true, true })
		if err := mn.Move(mnCoA4); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := (&mnHarness{t: t, mn: mn}).dataOut(); got != raw6 {
			t.Errorf("MN data before the BA: %+v, want %+v", got, raw6)
		}
		if c, _ := binding(); c.Addr != mnCoA6 {
			t.Errorf("HA moved before the BU arrived: %+v", c)
		}
		time.Sleep(400 * time.Millisecond)
		n.release()
		c, _ = binding()
		if !c.NAT || c.Addr != mnCoA4 || c.Endpoint != agNAT {
			t.Errorf("HA binding behind the NAT: %+v, want NAT endpoint %v", c, agNAT)
		}
		st := mn.Status()
		udp := epUDP(netip.AddrPortFrom(mnHAV4, PortESPInUDP))
		if !st.NAT || st.Keepalive != 25*time.Second || st.Data != udp || st.RegisteredCoA != mnCoA4 {
			t.Errorf("MN behind the NAT: %+v", st)
		}
		if st.HandoverDuration != 400*time.Millisecond {
			t.Errorf("handover %v, want 400ms", st.HandoverDuration)
		}
		if out := n.haData(); out != epUDP(agNAT) {
			t.Errorf("HA data through the NAT: %v", out)
		}
		n.mu.Lock()
		ka := slices.Clone(n.ka)
		n.mu.Unlock()
		// One before the BU (NAT mapping for 4500 -> 4500), one on the BA.
		if len(ka) != 2 || ka[0] != netip.AddrPortFrom(mnHAV4, PortESPInUDP) || ka[1] != ka[0] {
			t.Errorf("keepalives %v, want two to HAv4:4500", ka)
		}
		time.Sleep(25 * time.Second)
		n.mu.Lock()
		if len(n.ka) != 3 {
			t.Errorf("keepalives after 25 s: %v", n.ka)
		}
		n.mu.Unlock()

		// 3. An IPv4 CoA without NAT: no NAT detected, data raw IPv4.
		n.set(func(n *agNet) { n.nat = false })
		if err := mn.Move(agCoA4b); err != nil {
			t.Fatal(err)
		}
		c, _ = binding()
		if c.NAT || c.Addr != agCoA4b {
			t.Errorf("HA binding without NAT: %+v", c)
		}
		if st := mn.Status(); st.NAT || st.Data != epRaw(mnHAV4) || st.RegisteredCoA != agCoA4b {
			t.Errorf("MN without NAT: %+v", st)
		}
		if out := n.haData(); out != epRaw(agCoA4b) {
			t.Errorf("HA data without NAT: %v", out)
		}

		// 4. Back to IPv6.
		if err := mn.Move(mnCoA6b); err != nil {
			t.Fatal(err)
		}
		if c, _ := binding(); c.Addr != mnCoA6b || c.UDP() {
			t.Errorf("HA binding back on IPv6: %+v", c)
		}
		if st := mn.Status(); st.RegisteredCoA != mnCoA6b || st.Data != raw6 || st.NAT {
			t.Errorf("MN back on IPv6: %+v", st)
		}

		// 5. Home: de-registration from the HoA.
		if err := mn.Move(netip.MustParseAddr("2001:db8:100::abc")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st := mn.Status(); st.State != BULIdle || st.RegisteredCoA.IsValid() || st.Data.Addr.IsValid() {
			t.Errorf("MN at home: %+v (HA %+v)", st, ha.Stats())
		}
		if _, ok := binding(); ok {
			t.Errorf("HA still has a binding: %+v", ha.Bindings())
		}
		if out := n.haData(); out != dpEP {
			t.Errorf("HA data after de-registration: %v", out)
		}
		n.mu.Lock()
		toHA := slices.Clone(n.toHA)
		n.mu.Unlock()
		if last := toHA[len(toHA)-1]; last != dpEP {
			t.Errorf("de-registration BU sent as %+v, want keep (from home)", last)
		}
		hl.mu.Lock()
		ops := slices.Clone(hl.ops)
		hl.mu.Unlock()
		if len(ops) < 2 || ops[0] != "add "+mnHoA.String() || ops[len(ops)-1] != "remove "+mnHoA.String() {
			t.Errorf("home link operations %v", ops)
		}

		// 6. Leave again, then Close de-registers from the CoA.
		if err := mn.Move(mnCoA6); err != nil {
			t.Fatal(err)
		}
		if _, ok := binding(); !ok {
			t.Fatal("no binding after leaving home again")
		}
		if err := mn.Close(); err != nil {
			t.Errorf("MN Close: %v", err)
		}
		if _, ok := binding(); ok {
			t.Errorf("HA binding after the MN closed: %+v", ha.Bindings())
		}
		if err := ha.Close(); err != nil {
			t.Errorf("HA Close: %v", err)
		}
		if c := mn.Status().Counters; c.BAsRejected != 0 || c.Malformed != 0 || c.Unexpected != 0 {
			t.Errorf("MN counters %+v", c)
		}
		if s := ha.Stats(); len(s.BURejected) != 0 || s.NATDetected != 1 {
			t.Errorf("HA stats %+v", s)
		}
	})
}
