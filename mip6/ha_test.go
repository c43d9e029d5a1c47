package mip6

import (
	"encoding/binary"
	"errors"
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

// Helpers are prefixed ht so they cannot collide with other test files of
// the package.

var (
	htHA     = netip.MustParseAddr("2001:db8:1::1")
	htHA4    = netip.MustParseAddr("203.0.113.1")
	htPrefix = netip.MustParsePrefix("2001:db8:1::/64")
	htHoA1   = netip.MustParseAddr("2001:db8:1::100")
	htHoA2   = netip.MustParseAddr("2001:db8:1::200")
	htCoA6   = netip.MustParseAddr("2001:db8:aa::5")
	htCoA6b  = netip.MustParseAddr("2001:db8:bb::5")
	htCoA4   = netip.MustParseAddr("192.0.2.10")
	htNAT    = netip.MustParseAddrPort("198.51.100.7:40000")
	htHoA4   = netip.MustParseAddr("192.0.2.50")
)

// SPIs: inbound BU SAs (SA1) and MPS SAs (SA5) per MN, outbound SA2/SA6.
const (
	htSA1a, htSA1b = 0x1001, 0x1002
	htSA5a         = 0x5001
	htSA2a, htSA2b = 0x2001, 0x2002
	htSA6a         = 0x6001
	htSA8a         = 0x8001 // data SA toward MN a
)

type htSAD struct {
	in  map[uint32]netip.Addr
	out map[[3]uint64]uint32
}

func htKey(dst netip.Addr, proto uint8, tc uint16) [3]uint64 {
	b := dst.As16()
	return [3]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), uint64(proto)<<16 | uint64(tc)}
}

func newHTSAD() *htSAD {
	s := &htSAD{in: map[uint32]netip.Addr{
		htSA1a: htHoA1, htSA1b: htHoA2, htSA5a: htHoA1,
	}, out: map[[3]uint64]uint32{}}
	s.out[htKey(htHoA1, header.ProtoMobility, uint16(MHTypeBA)<<8)] = htSA2a
	s.out[htKey(htHoA2, header.ProtoMobility, uint16(MHTypeBA)<<8)] = htSA2b
	s.out[htKey(htHoA1, header.ProtoICMPv6, ICMPv6TypeMPA<<8)] = htSA6a
	return s
}

func (s *htSAD) OutboundSPIFor(f *header.Flow) (uint32, bool) {
	spi, ok := s.out[htKey(f.Dst, f.Proto, f.TypeCode)]
	return spi, ok
}

func (s *htSAD) HomeAddressOf(spi uint32) (netip.Addr, bool) {
	a, ok := s.in[spi]
	return a, ok
}

type htHomeLink struct {
	mu  sync.Mutex
	ops []string
	err error
}

func (h *htHomeLink) Add(a netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, "add "+a.String())
	return h.err
}

func (h *htHomeLink) Remove(a netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, "remove "+a.String())
	return h.err
}

func (h *htHomeLink) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// htSent is one packet the fake dataplane sent after the HA's AfterSeal.
type htSent struct {
	spi  uint32
	out  endpoint.Endpoint // dpEP: unchanged
	ok   bool
	wire []byte
}

type htRig struct {
	t      testing.TB
	ha     *HomeAgent
	sad    *htSAD
	hl     *htHomeLink
	now    time.Time
	mu     sync.Mutex
	sent   []htSent
	events []HAEvent
	espSeq uint32
}

// newHTRig builds a home agent whose Inject is a fake dataplane: it picks
// the SA with the SAD, "seals" the packet as IPv6 / ESP(spi, seq) / clear
// payload, runs the HA's own AfterSeal and records the result.
func newHTRig(t testing.TB, mut func(*HAConfig)) *htRig {
	r := &htRig{t: t, sad: newHTSAD(), hl: &htHomeLink{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := HAConfig{
		Address: htHA, AddressV4: htHA4, HomePrefix: htPrefix,
		SAD: r.sad, Inject: r.inject, HomeLink: r.hl,
		Now: func() time.Time { return r.now },
		OnEvent: func(e HAEvent) {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		},
	}
	if mut != nil {
		mut(&cfg)
	}
	ha, err := NewHomeAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.ha = ha
	return r
}

func (r *htRig) inject(p []byte) error {
	var f header.Flow
	if !header.ParseFlow(p, &f) {
		return errors.New("inject: unparsable packet")
	}
	spi, ok := r.sad.OutboundSPIFor(&f)
	if !ok {
		return errors.New("inject: no SA")
	}
	r.espSeq++
	b := htSeal(p, spi, r.espSeq)
	out := dpEP
	ok = r.ha.AfterSeal(b, spi, &out)
	r.mu.Lock()
	r.sent = append(r.sent, htSent{spi: spi, out: out, ok: ok, wire: slices.Clone(b.Bytes())})
	r.mu.Unlock()
	if !ok {
		return errors.New("inject: AfterSeal dropped")
	}
	return nil
}

// htSeal turns `IPv6 / payload` into `IPv6 / ESP(spi, seq) / payload` (a
// transport-mode stand-in: the payload stays readable) in a Buf.
func htSeal(p []byte, spi, seq uint32) *pkt.Buf {
	ip := header.IPv6(p)
	pl := p[header.IPv6HeaderLen:]
	out := make([]byte, header.IPv6HeaderLen+8+len(pl))
	copy(out, p[:header.IPv6HeaderLen])
	o := header.IPv6(out)
	o.SetNextHeader(header.ProtoESP)
	o.SetPayloadLen(8 + len(pl))
	binary.BigEndian.PutUint32(out[40:], spi)
	binary.BigEndian.PutUint32(out[44:], seq)
	copy(out[48:], pl)
	_ = ip
	b := new(pkt.Buf)
	b.Reset()
	b.Set(out)
	return b
}

// pump runs the signaling goroutine's work synchronously.
func (r *htRig) pump() {
	for {
		select {
		case it := <-r.ha.q.full:
			r.ha.handle(it)
			r.ha.q.release(it)
			r.ha.drainChanges()
		default:
			return
		}
	}
}

func (r *htRig) takeSent() []htSent {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

// htBU6 is `IPv6(coa -> HA) / DestOpts(HAO = hoa) / MH BU` as the
// dataplane delivers it after transport ESP: in RFC 6275 §9.3.1
// home-address form, source and option exchanged (`IPv6(hoa -> HA) /
// DestOpts(HAO = coa)`).
func htBU6(t testing.TB, hoa, coa netip.Addr, bu *BindingUpdate) []byte {
	t.Helper()
	mh, err := EncodeMH(bu, hoa, htHA)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 40+header.HAODestOptsLen+len(mh))
	header.IPv6(p).Encode(&header.IPv6Fields{PayloadLen: uint16(len(p) - 40), NextHeader: header.ProtoDestOpts, HopLimit: 64, Src: hoa, Dst: htHA})
	header.DestOpts(p[40:]).EncodeHAO(header.ProtoMobility, coa)
	copy(p[40+header.HAODestOptsLen:], mh)
	return p
}

// htBUPlain is `IPv6(hoa -> HA) / MH BU` (from UDP 4191 or from home).
func htBUPlain(t testing.TB, hoa netip.Addr, bu *BindingUpdate) []byte {
	t.Helper()
	mh, err := EncodeMH(bu, hoa, htHA)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 40+len(mh))
	header.IPv6(p).Encode(&header.IPv6Fields{PayloadLen: uint16(len(mh)), NextHeader: header.ProtoMobility, HopLimit: 64, Src: hoa, Dst: htHA})
	copy(p[40:], mh)
	return p
}

// deliver4 plays a BU from an IPv4 network: BeforeLookup sees the
// encrypted `IPv6 / ESP(spi, seq)` with the outer source, then Deliver
// gets the decrypted packet.
func (r *htRig) deliver4(spi, seq uint32, outer netip.AddrPort, p []byte) bool {
	src := endpoint.Endpoint{Addr: outer, Encap: endpoint.EncapIP}
	enc := htSeal(p, spi, seq)
	r.ha.BeforeLookup(enc, src)
	return r.ha.Deliver(p, spi, seq, src)
}

// htData runs DR-1 for one sealed data packet `IPv6(HA -> hoa) / ESP`: the
// endpoint AfterSeal chose (dpEP: unchanged) and whether it kept it. The
// packet must stay as sealed: the dataplane cuts it in front of ESP.
func htData(t *testing.T, r *htRig, hoa netip.Addr) (endpoint.Endpoint, bool) {
	t.Helper()
	d := sealed(t, htHA, hoa, fakeESP(64))
	before, off := slices.Clone(d.Bytes()), d.Off()
	out := dpEP
	ok := r.ha.AfterSeal(d, htSA8a, &out)
	if !slices.Equal(before, d.Bytes()) || d.Off() != off {
		t.Errorf("AfterSeal changed the data packet to %v", hoa)
	}
	if !ok && out != dpEP {
		t.Errorf("AfterSeal dropped the packet but set the endpoint %v", out)
	}
	return out, ok
}

func htHomeBU(seq uint16, life uint16, opts ...Option) *BindingUpdate {
	return &BindingUpdate{Seq: seq, Flags: BUFlagA | BUFlagH, Lifetime: life, Options: opts}
}

// htBA decodes a sent BA: it checks the outer form against want (the
// BA's destination), returns the BA and the outer packet's view.
func htBA(t testing.TB, s htSent, hoa netip.Addr) *BindingAck {
	t.Helper()
	p := s.wire
	var ip6 header.IPv6
	switch p[0] >> 4 {
	case 4:
		ip4 := header.IPv4(p)
		if !ip4.IsValid() || !ip4.IsChecksumValid() || ip4.Protocol() != header.ProtoUDP {
			t.Fatalf("bad IPv4 wrapper % x", p[:28])
		}
		u := header.UDP(p[20:])
		if u.SrcPort() != PortDSMIPv6 || u.Length() != len(p)-20 {
			t.Fatalf("UDP sport %d len %d", u.SrcPort(), u.Length())
		}
		if c := header.UDPChecksum(ip4.Src(), ip4.Dst(), u); c != u.Checksum() {
			t.Fatalf("UDP checksum %#x, want %#x", u.Checksum(), c)
		}
		ip6 = header.IPv6(p[28:])
	case 6:
		ip6 = header.IPv6(p)
	default:
		t.Fatalf("sent packet version %d", p[0]>>4)
	}
	if !ip6.IsValid() || ip6.Src() != htHA {
		t.Fatalf("inner IPv6 invalid or from %v", ip6.Src())
	}
	off := 40
	if ip6.NextHeader() == header.ProtoRouting {
		rh := header.RoutingType2(ip6[40:])
		if !rh.IsValid() || rh.SegmentsLeft() != 1 || rh.HomeAddress() != hoa || rh.NextHeader() != header.ProtoESP {
			t.Fatalf("bad RH2 % x", ip6[40:64])
		}
		off += header.RoutingType2Len
	} else if ip6.Dst() != hoa {
		t.Fatalf("BA to %v without RH2, want %v", ip6.Dst(), hoa)
	}
	m, err := DecodeMH(ip6[off+8:], htHA, hoa)
	if err != nil {
		t.Fatalf("BA does not decode: %v", err)
	}
	ba, ok := m.(*BindingAck)
	if !ok {
		t.Fatalf("sent %T, want BA", m)
	}
	return ba
}

func htOpt[T Option](opts []Option) (T, bool) {
	for _, o := range opts {
		if v, ok := o.(T); ok {
			return v, true
		}
	}
	var z T
	return z, false
}

func TestHAAcceptBU6(t *testing.T) {
	r := newHTRig(t, nil)
	p := htBU6(t, htHoA1, htCoA6, htHomeBU(7, 100, AlternateCoA{Addr: htCoA6}))
	if !r.ha.Deliver(p, htSA1a, 1, endpoint.Endpoint{Addr: netip.AddrPortFrom(htCoA6, 0), Encap: endpoint.EncapIP}) {
		t.Fatal("Deliver did not consume the BU")
	}
	r.pump()

	b, ok := r.ha.Cache().Lookup(htHoA1)
	if !ok || b.Primary().Addr != htCoA6 || b.Seq != 7 || b.Lifetime != 400*time.Second || b.Primary().NAT {
		t.Fatalf("binding %v %v", b, ok)
	}
	if got := r.hl.list(); !slices.Equal(got, []string{"add " + htHoA1.String()}) {
		t.Errorf("home link ops %v", got)
	}
	sent := r.takeSent()
	if len(sent) != 1 {
		t.Fatalf("%d packets sent, want the BA", len(sent))
	}
	s := sent[0]
	if s.spi != htSA2a || !s.ok || s.out != epIP(htCoA6) {
		t.Fatalf("BA spi %#x out %+v ok %v", s.spi, s.out, s.ok)
	}
	if d := header.IPv6(s.wire).Dst(); d != htCoA6 {
		t.Errorf("BA outer dst %v", d)
	}
	ba := htBA(t, s, htHoA1)
	if ba.Status != BAStatusAccepted || ba.Seq != 7 || ba.Lifetime != 100 || len(ba.Options) != 0 {
		t.Errorf("BA %+v", ba)
	}
	st := r.ha.Stats()
	if st.BUAccepted != 1 || st.BAsSent != 1 || len(st.BURejected) != 0 || st.Received != 1 {
		t.Errorf("stats %+v", st)
	}
	if len(r.events) != 1 || r.events[0].Kind != HABindingAdded || r.events[0].CoA != htCoA6 {
		t.Errorf("events %+v", r.events)
	}
	bs := r.ha.Bindings()
	if len(bs) != 1 || bs[0].HoA != htHoA1 || len(bs[0].CoAs) != 1 || !bs[0].CoAs[0].Primary || bs[0].LastBU != r.now ||
		!bs[0].Expires.Equal(r.now.Add(400*time.Second)) {
		t.Errorf("Bindings %+v", bs)
	}

	// DR-1: data toward the HoA now goes to the CoA, the packet as sealed.
	if out, ok := htData(t, r, htHoA1); !ok || out != epRaw(htCoA6) {
		t.Errorf("DR-1 out %v ok %v", out, ok)
	}
	// No binding: the dataplane's endpoint.
	if out, ok := htData(t, r, htHoA2); !ok || out != dpEP {
		t.Errorf("unbound: out %v ok %v", out, ok)
	}
}

func TestHADR7OtherHoA(t *testing.T) {
	r := newHTRig(t, nil)
	// MN b registers its own HoA.
	r.ha.Deliver(htBU6(t, htHoA2, htCoA6b, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6b})), htSA1b, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.pump()
	r.takeSent()
	r.events = nil
	// MN a sends a BU for b's HoA on its own SA (SA1 of HoA1).
	r.ha.Deliver(htBU6(t, htHoA2, htCoA6, htHomeBU(50, 100, AlternateCoA{Addr: htCoA6})), htSA1a, 2, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.pump()
	b, ok := r.ha.Cache().Lookup(htHoA2)
	if !ok || b.Primary().Addr != htCoA6b || b.Seq != 1 {
		t.Fatalf("HoA2 binding changed: %v", b)
	}
	if _, ok := r.ha.Cache().Lookup(htHoA1); ok {
		t.Fatal("HoA1 got a binding")
	}
	if s := r.takeSent(); len(s) != 0 {
		t.Errorf("sent %d packets for a DR-7 rejection (want silent discard)", len(s))
	}
	st := r.ha.Stats()
	if st.BURejected["dr7-wrong-sa"] != 1 || st.BUAccepted != 1 {
		t.Errorf("stats %+v", st)
	}
	if len(r.events) != 1 || r.events[0].Kind != HABURejected || r.events[0].Reason != "dr7-wrong-sa" {
		t.Errorf("events %+v", r.events)
	}
	// An unknown SPI is rejected the same way.
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6})), 0xdead, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.pump()
	if r.ha.Stats().BURejected["dr7-wrong-sa"] != 2 {
		t.Error("BU on an unknown SPI not rejected")
	}
}

func TestHAStaleSequence(t *testing.T) {
	r := newHTRig(t, nil)
	src := endpoint.Endpoint{Addr: netip.AddrPortFrom(htCoA6, 0), Encap: endpoint.EncapIP}
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(10, 100, AlternateCoA{Addr: htCoA6})), htSA1a, 1, src)
	r.pump()
	r.takeSent()
	for _, seq := range []uint16{9, 10, 10 + 32768} { // older, replayed, boundary
		r.ha.Deliver(htBU6(t, htHoA1, htCoA6b, htHomeBU(seq, 100, AlternateCoA{Addr: htCoA6b})), htSA1a, uint32(seq)+100, src)
		r.pump()
		sent := r.takeSent()
		if len(sent) != 1 {
			t.Fatalf("seq %d: %d BAs", seq, len(sent))
		}
		ba := htBA(t, sent[0], htHoA1)
		if ba.Status != BAStatusSeqOutOfWindow || ba.Seq != 10 || ba.Lifetime != 0 {
			t.Errorf("seq %d: BA %+v, want 135 with seq 10", seq, ba)
		}
		if sent[0].out != epIP(htCoA6b) { // the BU's source, not the bound CoA
			t.Errorf("seq %d: BA to %v, want the BU's source", seq, sent[0].out)
		}
	}
	if b, _ := r.ha.Cache().Lookup(htHoA1); b.Primary().Addr != htCoA6 || b.Seq != 10 {
		t.Errorf("binding changed by stale BUs: %v", b)
	}
	if n := r.ha.Stats().BURejected["sequence-out-of-window"]; n != 3 {
		t.Errorf("rejections %d", n)
	}
}

func TestHANATDetection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		outer netip.AddrPort
		nat   bool
	}{
		{"nat", htNAT, true},
		{"no-nat", netip.AddrPortFrom(htCoA4, 4500), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHTRig(t, nil)
			p := htBUPlain(t, htHoA1, htHomeBU(3, 50, IPv4CareOfAddress{Addr: htCoA4}))
			r.deliver4(htSA1a, 77, tc.outer, p)
			r.pump()
			b, ok := r.ha.Cache().Lookup(htHoA1)
			if !ok {
				t.Fatal("no binding")
			}
			c := b.Primary()
			if c.Addr != htCoA4 || c.NAT != tc.nat || c.Endpoint != tc.outer {
				t.Errorf("CoA %+v", c)
			}
			sent := r.takeSent()
			if len(sent) != 1 {
				t.Fatalf("%d BAs", len(sent))
			}
			s := sent[0]
			if s.out != epIP(tc.outer.Addr()) {
				t.Errorf("BA out %v", s.out)
			}
			ip4 := header.IPv4(s.wire)
			u := header.UDP(s.wire[20:])
			if ip4.Src() != htHA4 || ip4.Dst() != tc.outer.Addr() || u.DstPort() != tc.outer.Port() {
				t.Errorf("BA outer %v -> %v:%d", ip4.Src(), ip4.Dst(), u.DstPort())
			}
			ba := htBA(t, s, htHoA1)
			nd, ok := htOpt[NATDetection](ba.Options)
			if !ok {
				t.Fatal("BA to a UDP BU without NAT Detection option (RFC 5555 §4.2)")
			}
			want := uint32(NATRefreshNone)
			if tc.nat {
				want = 110
			}
			if nd.RefreshTime != want || nd.F || ba.Status != 0 || ba.Seq != 3 {
				t.Errorf("BA %+v NAT option %+v", ba, nd)
			}
			if got, want := r.ha.Stats().NATDetected, map[bool]uint64{true: 1, false: 0}[tc.nat]; got != want {
				t.Errorf("NATDetected %d", got)
			}
			if r.ha.nat.Len() != 0 {
				t.Error("DR-4 record not taken")
			}
			// DR-1 for data: raw ESP to the CoA, or ESP in UDP to the
			// NAT's mapping (RFC 5555 §4.5).
			wantEP := epRaw(htCoA4)
			if tc.nat {
				wantEP = epUDP(htNAT)
			}
			if out, ok := htData(t, r, htHoA1); !ok || out != wantEP {
				t.Errorf("DR-1 %v, want %v", out, wantEP)
			}
		})
	}
}

// TestHADR1Unreachable: a bound CoA the HA cannot reach is refused and
// counted (DR1Failed), data packet dropped and untouched: an IPv4 CoA
// without the HA's IPv4 address (RFC 5555 §4.1), a NAT without a UDP
// endpoint. Reachable shapes get their endpoint.
func TestHADR1Unreachable(t *testing.T) {
	// Through a BU: the IPv4 CoA option over IPv6, no AddressV4.
	r := newHTRig(t, func(c *HAConfig) { c.AddressV4 = netip.Addr{} })
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, IPv4CareOfAddress{Addr: htCoA4})), htSA1a, 1,
		endpoint.Endpoint{Addr: netip.AddrPortFrom(htCoA6, 0), Encap: endpoint.EncapIP})
	r.pump()
	if b, ok := r.ha.Cache().Lookup(htHoA1); !ok || b.Primary().Addr != htCoA4 {
		t.Fatalf("binding %v %v, want the IPv4 CoA", b, ok)
	}
	for i := range 2 {
		if out, ok := htData(t, r, htHoA1); ok || out != dpEP {
			t.Errorf("IPv4 CoA without AddressV4: %v %v, want a drop", out, ok)
		}
		if n := r.ha.Stats().DR1Failed; n != uint64(i+1) {
			t.Errorf("DR1Failed %d, want %d", n, i+1)
		}
	}

	withV4 := newHTRig(t, nil).ha
	noV4 := r.ha
	for _, tc := range []struct {
		name string
		ha   *HomeAgent
		c    CareOf
		want endpoint.Endpoint // zero: refused
	}{
		{"v6", noV4, CareOf{Addr: htCoA6}, epRaw(htCoA6)},
		{"v4", withV4, CareOf{Addr: htCoA4}, epRaw(htCoA4)},
		{"v4 mapped", withV4, CareOf{Addr: netip.AddrFrom16(htCoA4.As16())}, epRaw(htCoA4)},
		{"v4 no HA v4", noV4, CareOf{Addr: htCoA4}, endpoint.Endpoint{}},
		{"nat", withV4, CareOf{Addr: htCoA4, NAT: true, Endpoint: htNAT}, epUDP(htNAT)},
		{"nat mapped", withV4, CareOf{Addr: htCoA4, NAT: true, Endpoint: netip.AddrPortFrom(netip.AddrFrom16(htNAT.Addr().As16()), htNAT.Port())}, epUDP(htNAT)},
		{"nat v6 coa", withV4, CareOf{Addr: htCoA6, NAT: true, Endpoint: htNAT}, epRaw(htCoA6)},
		{"nat no HA v4", noV4, CareOf{Addr: htCoA4, NAT: true, Endpoint: htNAT}, endpoint.Endpoint{}},
		{"nat no endpoint", withV4, CareOf{Addr: htCoA4, NAT: true}, endpoint.Endpoint{}},
		{"nat port 0", withV4, CareOf{Addr: htCoA4, NAT: true, Endpoint: netip.AddrPortFrom(htNAT.Addr(), 0)}, endpoint.Endpoint{}},
		{"nat v6 endpoint", withV4, CareOf{Addr: htCoA4, NAT: true, Endpoint: netip.AddrPortFrom(htCoA6, 4500)}, endpoint.Endpoint{}},
		{"invalid", withV4, CareOf{}, endpoint.Endpoint{}},
	} {
		got, ok := tc.ha.toCoA(tc.c)
		if ok != tc.want.IsValid() || got != tc.want {
			t.Errorf("%s: toCoA = %v %v, want %v", tc.name, got, ok, tc.want)
		}
	}
}

func TestHABAOnRejection(t *testing.T) {
	r := newHTRig(t, nil)
	// H clear: 131, to the source with RH2.
	bu := &BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 10, Options: []Option{AlternateCoA{Addr: htCoA6}}}
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, bu), htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	// HoA outside the home prefix is caught by DR-7 first; use a BU over
	// IPv4 without the IPv4 CoA option instead: 128, wrapped to the source.
	r.deliver4(htSA1a, 2, htNAT, htBUPlain(t, htHoA1, htHomeBU(2, 10)))
	r.pump()
	sent := r.takeSent()
	if len(sent) != 2 {
		t.Fatalf("%d BAs", len(sent))
	}
	if ba := htBA(t, sent[0], htHoA1); ba.Status != BAStatusHomeRegNotSupported || sent[0].out != epIP(htCoA6) {
		t.Errorf("BA %+v to %v", ba, sent[0].out)
	}
	ba := htBA(t, sent[1], htHoA1)
	if ba.Status != BAStatusUnspecified || sent[1].out != epIP(htNAT.Addr()) {
		t.Errorf("BA %+v to %v", ba, sent[1].out)
	}
	if _, ok := htOpt[NATDetection](ba.Options); !ok {
		t.Error("rejection BA to a UDP BU lacks the NAT Detection option")
	}
	if r.ha.Cache().Len() != 0 {
		t.Error("rejected BUs made a binding")
	}
	st := r.ha.Stats()
	if st.BURejected["not-home-registration"] != 1 || st.BURejected["no-care-of-address"] != 1 || st.BAsSent != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestHADeregistration(t *testing.T) {
	r := newHTRig(t, func(c *HAConfig) { c.HomePrefix4 = netip.MustParsePrefix("192.0.2.0/24") })
	src := endpoint.Endpoint{Encap: endpoint.EncapIP}
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6}, IPv4HomeAddress{PrefixLen: 32, Addr: htHoA4})), htSA1a, 1, src)
	r.pump()
	ba := htBA(t, r.takeSent()[0], htHoA1)
	ack, ok := htOpt[IPv4AddressAck](ba.Options)
	if !ok || ack.Status != IPv4AckSuccess || ack.Addr != htHoA4 || ack.PrefixLen != 32 {
		t.Errorf("IPv4 ack %+v %v", ack, ok)
	}
	if b, ok := r.ha.Cache().LookupV4(htHoA4); !ok || b.HoA != htHoA1 {
		t.Fatal("no IPv4 HoA binding")
	}
	// De-register from home: `IPv6(HoA -> HA) / MH BU`, lifetime 0.
	r.ha.Deliver(htBUPlain(t, htHoA1, htHomeBU(2, 0)), htSA1a, 2, endpoint.Endpoint{Addr: netip.AddrPortFrom(htHoA1, 0)})
	r.pump()
	if _, ok := r.ha.Cache().Lookup(htHoA1); ok {
		t.Fatal("binding survived de-registration")
	}
	sent := r.takeSent()
	if len(sent) != 1 || sent[0].out != dpEP {
		t.Fatalf("de-registration BA %+v", sent)
	}
	if ba := htBA(t, sent[0], htHoA1); ba.Status != 0 || ba.Lifetime != 0 || ba.Seq != 2 {
		t.Errorf("BA %+v", ba)
	}
	want := []string{"add " + htHoA1.String(), "add " + htHoA4.String(), "remove " + htHoA1.String(), "remove " + htHoA4.String()}
	if got := r.hl.list(); !slices.Equal(got, want) {
		t.Errorf("home link %v, want %v", got, want)
	}
	// CoA == HoA also de-registers; with nothing registered: 133.
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(3, 100, AlternateCoA{Addr: htHoA1})), htSA1a, 3, src)
	r.pump()
	if ba := htBA(t, r.takeSent()[0], htHoA1); ba.Status != BAStatusNotHomeAgent {
		t.Errorf("BA %+v, want 133", ba)
	}
}

func TestHAIPv4HoARefused(t *testing.T) {
	for _, tc := range []struct {
		opt  IPv4HomeAddress
		want IPv4AckStatus
	}{
		{IPv4HomeAddress{PrefixLen: 32, Addr: netip.IPv4Unspecified()}, IPv4AckDynamicUnavailable},
		{IPv4HomeAddress{PrefixLen: 0, Addr: htHoA4}, IPv4AckInvalidAddress},
		{IPv4HomeAddress{PrefixLen: 32, P: true, Addr: htHoA4}, IPv4AckPrefixUnauthorized},
		{IPv4HomeAddress{PrefixLen: 32, Addr: netip.MustParseAddr("198.51.100.9")}, IPv4AckIncorrectHoA},
		{IPv4HomeAddress{PrefixLen: 32, Addr: netip.MustParseAddr("224.0.0.1")}, IPv4AckInvalidAddress},
	} {
		r := newHTRig(t, func(c *HAConfig) { c.HomePrefix4 = netip.MustParsePrefix("192.0.2.0/24") })
		r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6}, tc.opt)), htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
		r.pump()
		ba := htBA(t, r.takeSent()[0], htHoA1)
		ack, _ := htOpt[IPv4AddressAck](ba.Options)
		if ba.Status != 0 || ack.Status != tc.want {
			t.Errorf("%+v: BA %v ack %v, want accepted with %v", tc.opt, ba.Status, ack.Status, tc.want)
		}
		if b, _ := r.ha.Cache().Lookup(htHoA1); b == nil || b.HoA4.IsValid() {
			t.Errorf("%+v: binding %v", tc.opt, b)
		}
	}
	// An IPv4 HoA bound to another MN is refused (130).
	r := newHTRig(t, nil)
	opt := IPv4HomeAddress{PrefixLen: 32, Addr: htHoA4}
	r.ha.Deliver(htBU6(t, htHoA2, htCoA6b, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6b}, opt)), htSA1b, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6}, opt)), htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.pump()
	sent := r.takeSent()
	ack, _ := htOpt[IPv4AddressAck](htBA(t, sent[1], htHoA1).Options)
	if ack.Status != IPv4AckIncorrectHoA {
		t.Errorf("stolen IPv4 HoA: ack %v", ack.Status)
	}
	if b, _ := r.ha.Cache().LookupV4(htHoA4); b.HoA != htHoA2 {
		t.Error("IPv4 HoA moved to another MN")
	}
}

func TestHAMultipleCoAs(t *testing.T) {
	r := newHTRig(t, nil)
	src := endpoint.Endpoint{Encap: endpoint.EncapIP}
	bu := htHomeBU(1, 100, BindingIdentifier{BID: 1, CoA: htCoA6}, BindingIdentifier{BID: 2, CoA: htCoA6b})
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, bu), htSA1a, 1, src)
	r.pump()
	b, ok := r.ha.Cache().Lookup(htHoA1)
	if !ok || len(b.CoAs) != 2 || b.CoAs[0].BID != 1 || b.CoAs[1].Addr != htCoA6b {
		t.Fatalf("binding %v", b)
	}
	if !b.HasCoA(htCoA6b) || !b.HasCoA(htCoA6) {
		t.Error("a registered CoA is not accepted")
	}
	ba := htBA(t, r.takeSent()[0], htHoA1)
	var bids []uint16
	for _, o := range ba.Options {
		if v, ok := o.(BindingIdentifier); ok {
			bids = append(bids, v.BID)
		}
	}
	if ba.Status != 0 || !slices.Equal(bids, []uint16{1, 2}) {
		t.Errorf("BA %+v", ba)
	}
	// Adding BID 3 keeps 1 and 2; the O flag (in the BID option, RFC
	// 5648 §6.1) replaces them all.
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(2, 100, BindingIdentifier{BID: 3, CoA: netip.MustParseAddr("2001:db8:cc::5")})), htSA1a, 2, src)
	r.pump()
	if b, _ := r.ha.Cache().Lookup(htHoA1); len(b.CoAs) != 3 {
		t.Errorf("after BID 3: %d CoAs", len(b.CoAs))
	}
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(3, 100, BindingIdentifier{BID: 4, O: true, CoA: htCoA6})), htSA1a, 3, src)
	r.pump()
	if b, _ := r.ha.Cache().Lookup(htHoA1); len(b.CoAs) != 1 || b.CoAs[0].BID != 4 {
		t.Errorf("after O: %v", b.CoAs)
	}
	// BID 0 is reserved: 164.
	r.takeSent()
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(4, 100, BindingIdentifier{BID: 0, CoA: htCoA6})), htSA1a, 4, src)
	r.pump()
	if ba := htBA(t, r.takeSent()[0], htHoA1); ba.Status != BAStatusMCoAMalformed {
		t.Errorf("BID 0: %v", ba.Status)
	}
}

func TestHARateLimit(t *testing.T) {
	r := newHTRig(t, func(c *HAConfig) { c.BURate, c.BUBurst = 1, 2 })
	p := htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6}))
	for i := range 5 {
		if !r.ha.Deliver(p, htSA1a, uint32(i), endpoint.Endpoint{Encap: endpoint.EncapIP}) {
			t.Fatal("not consumed")
		}
	}
	// Another MN has its own bucket.
	r.ha.Deliver(htBU6(t, htHoA2, htCoA6b, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6b})), htSA1b, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	if st := r.ha.Stats(); st.RateLimited != 3 || st.Received != 6 || len(r.ha.q.full) != 3 {
		t.Errorf("stats %+v, queued %d", st, len(r.ha.q.full))
	}
	r.now = r.now.Add(time.Second) // one more token
	r.ha.Deliver(p, htSA1a, 9, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.ha.Deliver(p, htSA1a, 10, endpoint.Endpoint{Encap: endpoint.EncapIP})
	if st := r.ha.Stats(); st.RateLimited != 4 || len(r.ha.q.full) != 4 {
		t.Errorf("after 1 s: stats %+v, queued %d", st, len(r.ha.q.full))
	}

	// Queue bound: full queue drops and counts, never blocks.
	r2 := newHTRig(t, func(c *HAConfig) { c.QueueLen, c.BUBurst = 2, 100 })
	for i := range 5 {
		r2.ha.Deliver(p, htSA1a, uint32(i), endpoint.Endpoint{Encap: endpoint.EncapIP})
	}
	if st := r2.ha.Stats(); st.QueueFull != 3 || len(r2.ha.q.full) != 2 {
		t.Errorf("queue: stats %+v", st)
	}
	r2.pump()
	if st := r2.ha.Stats(); st.BUAccepted != 1 || st.BURejected["sequence-out-of-window"] != 1 {
		t.Errorf("after pump: %+v", st)
	}
}

func TestHADeliverNotSignaling(t *testing.T) {
	r := newHTRig(t, nil)
	// ICMPv6 echo and UDP over a transport SA go to the TUN.
	for _, proto := range []uint8{header.ProtoICMPv6, header.ProtoUDP} {
		p := make([]byte, 48)
		header.IPv6(p).Encode(&header.IPv6Fields{PayloadLen: 8, NextHeader: proto, HopLimit: 64, Src: htHoA1, Dst: htHA})
		p[40] = 128
		if r.ha.Deliver(p, htSA5a, 1, endpoint.Endpoint{}) {
			t.Errorf("proto %d consumed", proto)
		}
	}
	if r.ha.Deliver([]byte{0x45, 0, 0, 20}, htSA1a, 1, endpoint.Endpoint{}) {
		t.Error("IPv4 consumed")
	}
	if r.ha.Stats().Received != 0 {
		t.Error("counted as signaling")
	}
}

func TestHAMalformed(t *testing.T) {
	r := newHTRig(t, nil)
	good := htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6}))
	badSum := slices.Clone(good)
	badSum[len(badSum)-1] ^= 1
	truncExt := slices.Clone(good[:50])
	header.IPv6(truncExt).SetPayloadLen(10)
	shortMH := slices.Clone(good[:40+24+4])
	header.IPv6(shortMH).SetPayloadLen(28)
	badLen := slices.Clone(good)
	header.IPv6(badLen).SetPayloadLen(5000)
	ba := &BindingAck{Seq: 1}
	mhBA, _ := EncodeMH(ba, htHoA1, htHA)
	notBU := append(slices.Clone(good[:64]), mhBA...)
	header.IPv6(notBU).SetPayloadLen(len(notBU) - 40)
	for name, p := range map[string][]byte{"checksum": badSum, "ext": truncExt, "short": shortMH, "len": badLen, "ba": notBU} {
		if !r.ha.Deliver(p, htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP}) {
			t.Errorf("%s: not consumed", name)
		}
	}
	r.pump()
	st := r.ha.Stats()
	if st.BURejected["checksum"] != 1 || st.BURejected["malformed"] != 3 || st.BURejected["not-bu"] != 1 || st.BUAccepted != 0 {
		t.Errorf("stats %+v", st)
	}
	if len(r.takeSent()) != 0 || r.ha.Cache().Len() != 0 {
		t.Error("malformed input had an effect")
	}
	big := make([]byte, sigMaxPacket+8)
	copy(big, good)
	header.IPv6(big).SetPayloadLen(len(big) - 40)
	r.ha.Deliver(big, htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	if r.ha.Stats().TooBig != 1 {
		t.Error("oversized packet not counted")
	}
}

func TestHAMobilePrefix(t *testing.T) {
	r := newHTRig(t, nil)
	icmp := AppendMPS(nil, &MobilePrefixSolicitation{ID: 0xbeef}, htHoA1, htHA)
	p := make([]byte, 40+header.HAODestOptsLen+len(icmp))
	header.IPv6(p).Encode(&header.IPv6Fields{PayloadLen: uint16(len(p) - 40), NextHeader: header.ProtoDestOpts, HopLimit: 64, Src: htHoA1, Dst: htHA})
	header.DestOpts(p[40:]).EncodeHAO(header.ProtoICMPv6, htCoA6) // home-address form (§9.3.1)
	copy(p[64:], icmp)
	if !r.ha.Deliver(p, htSA5a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP}) {
		t.Fatal("MPS not consumed")
	}
	r.pump()
	sent := r.takeSent()
	if len(sent) != 1 || sent[0].spi != htSA6a || sent[0].out != epIP(htCoA6) {
		t.Fatalf("MPA %+v", sent)
	}
	w := sent[0].wire
	if !header.RoutingType2(w[40:]).IsValid() || header.RoutingType2(w[40:]).HomeAddress() != htHoA1 {
		t.Fatal("MPA without RH2")
	}
	mpa, err := ParseMPA(w[40+24+8:], htHA, htHoA1)
	if err != nil {
		t.Fatal(err)
	}
	if mpa.ID != 0xbeef || len(mpa.Prefixes) != 1 || mpa.Prefixes[0].Prefix != htPrefix || !mpa.Prefixes[0].Autonomous ||
		mpa.Prefixes[0].ValidLifetime != uint32(DefaultPrefixValidLifetime/time.Second) {
		t.Errorf("MPA %+v", mpa)
	}
	if r.ha.Stats().MPSAnswered != 1 {
		t.Error("not counted")
	}
	// An MPS for another HoA on this SA is refused.
	q := slices.Clone(p)
	header.IPv6(q).SetSrc(htHoA2)
	copy(q[64:], AppendMPS(nil, &MobilePrefixSolicitation{ID: 1}, htHoA2, htHA))
	r.ha.Deliver(q, htSA5a, 2, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.pump()
	if len(r.takeSent()) != 0 || r.ha.Stats().BURejected["dr7-wrong-sa"] != 1 {
		t.Error("MPS for another HoA answered")
	}
}

func TestHAExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hl := &htHomeLink{}
		var mu sync.Mutex
		var events []HAEvent
		sad := newHTSAD()
		var ha *HomeAgent
		ha, err := NewHomeAgent(HAConfig{
			Address: htHA, HomePrefix: htPrefix, SAD: sad, HomeLink: hl,
			Inject: func(p []byte) error {
				var f header.Flow
				header.ParseFlow(p, &f)
				spi, _ := sad.OutboundSPIFor(&f)
				ep := dpEP
				if !ha.AfterSeal(htSeal(p, spi, 1), spi, &ep) {
					return errors.New("dropped")
				}
				return nil
			},
			OnEvent: func(e HAEvent) { mu.Lock(); events = append(events, e); mu.Unlock() },
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := ha.Start(); err != nil {
			t.Fatal(err)
		}
		ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 2, AlternateCoA{Addr: htCoA6})), htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
		synctest.Wait()
		if _, ok := ha.Cache().Lookup(htHoA1); !ok {
			t.Fatal("not registered")
		}
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if _, ok := ha.Cache().Lookup(htHoA1); !ok {
			t.Fatal("expired early")
		}
		time.Sleep(2 * time.Second) // lifetime 8 s: the MN went silent
		synctest.Wait()
		if _, ok := ha.Cache().Lookup(htHoA1); ok {
			t.Fatal("binding did not expire")
		}
		if got := hl.list(); !slices.Equal(got, []string{"add " + htHoA1.String(), "remove " + htHoA1.String()}) {
			t.Errorf("home link %v", got)
		}
		mu.Lock()
		last := events[len(events)-1]
		mu.Unlock()
		if last.Kind != HABindingRemoved || !last.Expired {
			t.Errorf("last event %+v", last)
		}
		// Close removes the home-link state of live bindings.
		ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(2, 100, AlternateCoA{Addr: htCoA6})), htSA1a, 2, endpoint.Endpoint{Encap: endpoint.EncapIP})
		synctest.Wait()
		if err := ha.Close(); err != nil {
			t.Fatal(err)
		}
		if got := hl.list(); len(got) != 4 || got[3] != "remove "+htHoA1.String() {
			t.Errorf("after Close: %v", got)
		}
		if err := ha.Close(); err != nil {
			t.Error("second Close:", err)
		}
		if ha.Start() == nil {
			t.Error("Start after Close succeeded")
		}
	})
}

func TestNewHomeAgentConfig(t *testing.T) {
	ok := HAConfig{Address: htHA, SAD: newHTSAD(), Inject: func([]byte) error { return nil }}
	for name, mut := range map[string]func(*HAConfig){
		"v4 address":  func(c *HAConfig) { c.Address = htHA4 },
		"no address":  func(c *HAConfig) { c.Address = netip.Addr{} },
		"v6 as v4":    func(c *HAConfig) { c.AddressV4 = htHA },
		"no SAD":      func(c *HAConfig) { c.SAD = nil },
		"no inject":   func(c *HAConfig) { c.Inject = nil },
		"v4 prefix":   func(c *HAConfig) { c.HomePrefix = netip.MustParsePrefix("192.0.2.0/24") },
		"v6 prefix 4": func(c *HAConfig) { c.HomePrefix4 = htPrefix },
	} {
		c := ok
		mut(&c)
		if _, err := NewHomeAgent(c); !errors.Is(err, ErrHAConfig) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := NewHomeAgent(ok); err != nil {
		t.Error(err)
	}
}

func TestHAHomeLinkErrors(t *testing.T) {
	r := newHTRig(t, nil)
	r.hl.err = errors.New("netlink says no")
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6})), htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.pump()
	if st := r.ha.Stats(); st.HomeLinkErrors != 1 || st.BUAccepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestHAAfterSealAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	r := newHTRig(t, nil)
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6})), htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.pump()
	b := sealed(t, htHA, htHoA1, fakeESP(1400))
	raw := slices.Clone(b.Bytes())
	enc := htSeal(htBU6(t, htHoA1, htCoA6, htHomeBU(2, 1)), htSA1a, 5)
	ep := dpEP
	n := testing.AllocsPerRun(1000, func() {
		b.Set(raw)
		ep = dpEP
		if !r.ha.AfterSeal(b, htSA8a, &ep) || ep.Encap != endpoint.EncapRaw {
			t.Fatal("DR-1 failed")
		}
		r.ha.BeforeLookup(enc, endpoint.Endpoint{Addr: htNAT, Encap: endpoint.EncapIP})
	})
	if n != 0 {
		t.Errorf("AfterSeal/BeforeLookup allocate %v times", n)
	}
}

func BenchmarkHAAfterSeal(b *testing.B) {
	r := newHTRig(b, nil)
	r.ha.Deliver(htBU6(b, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6})), htSA1a, 1, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.deliver4(htSA1b, 1, htNAT, htBUPlain(b, htHoA2, htHomeBU(1, 100, IPv4CareOfAddress{Addr: htCoA4})))
	r.pump()
	for _, tc := range []struct {
		name string
		hoa  netip.Addr
		want endpoint.Endpoint
	}{{"coa6", htHoA1, epRaw(htCoA6)}, {"nat4", htHoA2, epUDP(htNAT)}, {"unbound", netip.MustParseAddr("2001:db8:1::999"), dpEP}} {
		b.Run(tc.name, func(b *testing.B) {
			buf := sealed(b, htHA, tc.hoa, fakeESP(1400))
			raw := slices.Clone(buf.Bytes())
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			var ep endpoint.Endpoint
			for b.Loop() {
				buf.Set(raw) // as before the change, when DR-1 rewrote the header
				ep = dpEP
				if !r.ha.AfterSeal(buf, htSA8a, &ep) || ep != tc.want {
					b.Fatalf("out %v", ep)
				}
			}
		})
	}
}

// FuzzHADeliver feeds arbitrary packets through Deliver and the signaling
// goroutine's processing: no panic, every consumed packet counted.
func FuzzHADeliver(f *testing.F) {
	f.Add(htBU6(f, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6})), false)
	f.Add(htBUPlain(f, htHoA1, htHomeBU(1, 100, IPv4CareOfAddress{Addr: htCoA4}, IPv4HomeAddress{PrefixLen: 32, Addr: htHoA4})), true)
	f.Add(htBU6(f, htHoA1, htCoA6, htHomeBU(1, 100, BindingIdentifier{BID: 1, CoA: htCoA6})), false)
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 135, 64}, false)
	f.Fuzz(func(t *testing.T, p []byte, v4 bool) {
		r := newHTRig(t, func(c *HAConfig) { c.BUBurst = 1000 })
		src := endpoint.Endpoint{Addr: netip.AddrPortFrom(htCoA6, 0), Encap: endpoint.EncapIP}
		if v4 {
			src.Addr = htNAT
		}
		consumed := r.ha.Deliver(p, htSA1a, 1, src)
		r.pump()
		st := r.ha.Stats()
		var rej uint64
		for _, n := range st.BURejected {
			rej += n
		}
		if consumed && st.Received != 1 {
			t.Fatalf("consumed but Received %d", st.Received)
		}
		if !consumed && (st.Received != 0 || rej != 0) {
			t.Fatal("not consumed but counted")
		}
		if st.BUAccepted+rej+st.TooBig+st.MPSAnswered > st.Received {
			t.Fatalf("outcomes %+v exceed received", st)
		}
		for _, s := range r.takeSent() {
			if !s.ok {
				t.Fatal("AfterSeal dropped the HA's own answer")
			}
		}
	})
}
