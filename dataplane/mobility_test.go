package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// The mobility topology of these tests: a mobile node (MN, gateway "a")
// and its home agent (HA, gateway "b"), with the transport-mode BU/BA SAs
// of RFC 4877 (SA1 MN->HA, SA2 HA->MN) and nothing else.
var (
	mnHoA = netip.MustParseAddr("2001:db8:1::100")
	mnCoA = netip.MustParseAddr("2001:db8:2::100")
	mnV4  = netip.MustParseAddr("203.0.113.10")
	haA6  = netip.MustParseAddr("2001:db8:1::1")
	haV4  = netip.MustParseAddr("198.51.100.1")
)

const (
	spiSA1 = 0x5a1
	spiSA2 = 0x5a2
)

// delivered is one Hooks.Deliver call, copied.
type delivered struct {
	p   []byte
	spi uint32
	seq uint32
	ep  endpoint.Endpoint
}

// deliverRec records Deliver calls and answers with consume.
type deliverRec struct {
	consume bool
	ch      chan delivered
}

func newDeliverRec(consume bool) *deliverRec {
	return &deliverRec{consume: consume, ch: make(chan delivered, 16)}
}

func (r *deliverRec) hook(p []byte, sa *sad.SA, seq uint32, ep endpoint.Endpoint) bool {
	d := delivered{p: bytes.Clone(p), spi: sa.SPI(), seq: seq, ep: ep}
	r.ch <- d
	return r.consume
}

func (r *deliverRec) wait(t *testing.T) delivered {
	t.Helper()
	select {
	case d := <-r.ch:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("timeout waiting for Deliver")
		return delivered{}
	}
}

// mhPacket is a Binding Update shaped Mobility Header packet (RFC 6275
// §6.1.7) from src to dst, 16 bytes of MH.
func mhPacket(src, dst netip.Addr, mhType uint8, seq uint16) []byte {
	p := make([]byte, 40+16)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], 16)
	p[6], p[7] = header.ProtoMobility, 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	mh := p[40:]
	mh[0], mh[1], mh[2] = header.ProtoNoNext, 1, mhType
	binary.BigEndian.PutUint16(mh[6:], seq)
	return p
}

func mobilityDBs(t testing.TB, local, remote netip.Addr, out, in uint32) (*sad.DB, *spd.DB) {
	t.Helper()
	sadb := sad.New(sad.Options{})
	t.Cleanup(sadb.Close)
	sel := sad.Selector{Local: sad.SingleAddr(local), Remote: sad.SingleAddr(remote), Proto: header.ProtoMobility}
	par := func(spi uint32) esp.Params {
		return esp.Params{SPI: spi, Algorithm: esp.AES128GCM16, EncKey: key(esp.AES128GCM16, byte(spi)), Mode: esp.Transport}
	}
	for _, c := range []sad.Config{
		{Dir: sad.Outbound, Params: par(out), Selectors: []sad.Selector{sel}},
		{Dir: sad.Inbound, Params: par(in), Selectors: []sad.Selector{sel}},
	} {
		if _, err := sadb.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	spdb := spd.New(sadb)
	if err := spdb.Replace([]spd.Policy{
		{Name: "mh", Dir: sad.Outbound, Action: spd.Protect, SPI: out, Selectors: []sad.Selector{sel}},
		{Name: "discard", Dir: sad.Outbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
	}); err != nil {
		t.Fatal(err)
	}
	return sadb, spdb
}

// newMobilityPair starts an MN (a) and an HA (b) with no peers: packets go
// as raw ESP to the destination of their header unless a hook says
// otherwise. The MN's underlay sends from (mnLocal, 0).
func newMobilityPair(t *testing.T, mnLocal netip.Addr, hooksMN, hooksHA dataplane.Hooks) (mn, ha *gateway) {
	t.Helper()
	leakCheck(t)
	ua, ub := underlaytest.NewPair(
		endpoint.Endpoint{Addr: netip.AddrPortFrom(mnLocal, 0)},
		endpoint.Endpoint{Addr: netip.AddrPortFrom(haA6, 0)})
	ua.SetAddrs(mnHoA, mnCoA, mnV4)
	ub.SetAddrs(haV4)
	mn = &gateway{tun: tuntest.New(1, 64), ul: ua}
	ha = &gateway{tun: tuntest.New(1, 64), ul: ub}
	mn.sad, mn.spd = mobilityDBs(t, mnHoA, haA6, spiSA1, spiSA2)
	ha.sad, ha.spd = mobilityDBs(t, haA6, mnHoA, spiSA2, spiSA1)
	for _, g := range []struct {
		g     *gateway
		hooks dataplane.Hooks
		name  string
	}{{mn, hooksMN, "MN"}, {ha, hooksHA, "HA"}} {
		d, err := dataplane.New(dataplane.Config{
			TUN: g.g.tun, Underlay: g.g.ul, SAD: g.g.sad, SPD: g.g.spd, Hooks: g.hooks,
			Workers: 2, Logger: zaptest.NewLogger(t).Named(g.name),
		})
		if err != nil {
			t.Fatal(err)
		}
		g.g.d = d
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	return mn, ha
}

// TestInjectTransportAtHome: the MN at home sends a BU with Inject; it is
// sealed with the transport SA, its header cut off and sent as raw ESP to
// the HA, which rebuilds it around the header the underlay left in front
// and hands it to Deliver with the ESP sequence number.
func TestInjectTransportAtHome(t *testing.T) {
	rec := newDeliverRec(true)
	mn, ha := newMobilityPair(t, mnHoA, dataplane.Hooks{}, dataplane.Hooks{Deliver: rec.hook})
	mn.ul.Record(true)
	bu := mhPacket(mnHoA, haA6, header.MHTypeBU, 7)
	for i := range 3 {
		if err := mn.d.Inject(bu); err != nil {
			t.Fatal(err)
		}
		d := rec.wait(t)
		if !bytes.Equal(d.p, bu) {
			t.Fatalf("delivered\n% x\nwant\n% x", d.p, bu)
		}
		if d.spi != spiSA1 || d.seq != uint32(i+1) {
			t.Errorf("spi %#x seq %d, want %#x %d", d.spi, d.seq, spiSA1, i+1)
		}
		if want := (endpoint.Endpoint{Addr: netip.AddrPortFrom(mnHoA, 0)}); d.ep != want {
			t.Errorf("ep %v, want %v", d.ep, want)
		}
	}
	sent := mn.ul.Sent()
	if len(sent) != 3 {
		t.Fatalf("%d packets sent", len(sent))
	}
	m := sent[0]
	if spi := header.ESP(m.Data).SPI(); spi != spiSA1 || m.Dst != (endpoint.Endpoint{Addr: netip.AddrPortFrom(haA6, 0)}) {
		t.Errorf("sent SPI %#x to %v: want raw ESP (SPI first) to the HA", spi, m.Dst)
	}
	if bytes.Contains(m.Data, bu[40:]) {
		t.Error("the MH travels in the clear")
	}
	st := mn.d.Stats()
	if st.Injected != 3 || st.OutPackets != 3 || st.SentPackets != 3 || st.Dropped() != 0 {
		t.Errorf("MN stats %+v", st)
	}
	// The counters are added after the batch's hooks ran: wait for them.
	waitFor(t, "HA counters", func() bool { return ha.d.Stats().Consumed == 3 })
	hs := ha.d.Stats()
	if hs.Consumed != 3 || hs.InPackets != 3 || hs.DeliveredPackets != 0 || hs.Dropped() != 0 {
		t.Errorf("HA stats %+v", hs)
	}
	expectNone(t, ha.tun.Inbound)
}

// TestDeliverFalseToTUN: a transport packet Deliver does not consume goes
// to the TUN; without a Deliver hook too.
func TestDeliverFalseToTUN(t *testing.T) {
	for _, withHook := range []bool{true, false} {
		rec := newDeliverRec(false)
		var hooks dataplane.Hooks
		if withHook {
			hooks.Deliver = rec.hook
		}
		mn, ha := newMobilityPair(t, mnHoA, dataplane.Hooks{}, hooks)
		bu := mhPacket(mnHoA, haA6, header.MHTypeBU, 1)
		if err := mn.d.Inject(bu); err != nil {
			t.Fatal(err)
		}
		if withHook {
			rec.wait(t)
		}
		if got := recv(t, ha.tun.Inbound); !bytes.Equal(got, bu) {
			t.Fatalf("TUN got\n% x\nwant\n% x", got, bu)
		}
		// DeliveredPackets is added after the TUN write returns.
		waitFor(t, "delivered counter", func() bool { return ha.d.Stats().DeliveredPackets == 1 })
		if st := ha.d.Stats(); st.DeliveredPackets != 1 || st.Consumed != 0 {
			t.Errorf("stats %+v", st)
		}
	}
}

// sendFromCoA is what mip6.SendFromCoA does (written out here so that the
// dataplane's tests do not depend on mip6): `IPv6(HoA -> HA) / ESP` becomes
// `IPv6(CoA -> HA) / DestOpts(HAO = HoA) / ESP` for an IPv6 coa, or
// `IPv4(coa -> haV4) / UDP(4500 -> 4191) / IPv6(HoA -> HA) / ESP`.
func sendFromCoA(b *pkt.Buf, coa netip.Addr) (netip.Addr, bool) {
	p := b.Bytes()
	if len(p) < 48 || p[6] != header.ProtoESP {
		return netip.Addr{}, false
	}
	if coa.Is6() {
		hoa := header.IPv6(p).Src()
		b.Prepend(header.HAODestOptsLen)
		out := b.Bytes()
		copy(out, out[header.HAODestOptsLen:header.HAODestOptsLen+40])
		header.DestOpts(out[40:]).EncodeHAO(header.ProtoESP, hoa)
		ip := header.IPv6(out)
		ip.SetNextHeader(header.ProtoDestOpts)
		ip.SetPayloadLen(len(out) - 40)
		ip.SetSrc(coa)
		return ip.Dst(), true
	}
	n := len(p)
	b.Prepend(28)
	out := b.Bytes()
	clear(out[:28])
	out[0], out[8], out[9] = 0x45, 64, header.ProtoUDP
	binary.BigEndian.PutUint16(out[2:], uint16(28+n))
	s, d := coa.As4(), haV4.As4()
	copy(out[12:], s[:])
	copy(out[16:], d[:])
	header.IPv4(out).UpdateChecksum()
	u := header.UDP(out[20:])
	u.SetSrcPort(endpoint.UDPEncapPort)
	u.SetDstPort(endpoint.DSMIPv6Port)
	u.SetLength(8 + n)
	u.SetChecksum(header.UDPChecksum(coa, haV4, u))
	return haV4, true
}

// haoHook is the MN's AfterSeal for signaling from a care-of address
// (DR-3): sendFromCoA builds the HAO or IPv4/UDP 4191 outer form and the
// packet leaves header-included.
func haoHook(coa netip.Addr) func(*pkt.Buf, *sad.SA, *endpoint.Endpoint) bool {
	return func(b *pkt.Buf, sa *sad.SA, ep *endpoint.Endpoint) bool {
		if sa.SPI() != spiSA1 {
			return true
		}
		dst, ok := sendFromCoA(b, coa)
		if !ok {
			return false
		}
		*ep = endpoint.Endpoint{Addr: netip.AddrPortFrom(dst, 0), Encap: endpoint.EncapIP}
		return true
	}
}

// TestEncapIPHAO: a BU from an IPv6 CoA leaves as IPv6(CoA)/HAO/ESP, whole;
// the HA locates ESP behind the HAO, opens it and Deliver sees the BU in
// home-address form (Source = HoA, the HAO holding the CoA).
func TestEncapIPHAO(t *testing.T) {
	rec := newDeliverRec(true)
	var looked []endpoint.Endpoint
	var mu sync.Mutex
	mn, _ := newMobilityPair(t, mnCoA,
		dataplane.Hooks{AfterSeal: haoHook(mnCoA)},
		dataplane.Hooks{Deliver: rec.hook, BeforeLookup: func(b *pkt.Buf, ep endpoint.Endpoint) bool {
			mu.Lock()
			looked = append(looked, ep)
			mu.Unlock()
			if b.Bytes()[0]>>4 != 6 || b.Bytes()[6] != header.ProtoDestOpts {
				t.Errorf("BeforeLookup: not the whole IPv6 packet: % x", b.Bytes()[:8])
			}
			return true
		}})
	mn.ul.Record(true)
	bu := mhPacket(mnHoA, haA6, header.MHTypeBU, 9)
	if err := mn.d.Inject(bu); err != nil {
		t.Fatal(err)
	}
	d := rec.wait(t)
	sent := mn.ul.Sent()
	if len(sent) != 1 {
		t.Fatalf("%d sent", len(sent))
	}
	w := sent[0].Data
	// Untrimmed: IPv6(CoA -> HA) / DestOpts(HAO = HoA) / ESP(SA1).
	if len(w) < 40+24+8 || w[0]>>4 != 6 || w[6] != header.ProtoDestOpts ||
		header.IPv6(w).Src() != mnCoA || header.IPv6(w).Dst() != haA6 ||
		header.ESP(w[64:]).SPI() != spiSA1 {
		t.Fatalf("sent packet is not IPv6/HAO/ESP: % x", w[:min(len(w), 72)])
	}
	if hoa, ok := header.FindHomeAddress(w[40:64]); !ok || hoa != mnHoA {
		t.Fatalf("HAO %v %v", hoa, ok)
	}
	if want := (endpoint.Endpoint{Addr: netip.AddrPortFrom(haA6, 0), Encap: endpoint.EncapIP}); sent[0].Dst != want {
		t.Errorf("sent to %v, want %v", sent[0].Dst, want)
	}
	// Delivered: IPv6(HoA -> HA) / DestOpts(HAO = CoA) / MH.
	p := d.p
	if len(p) != 40+24+16 || header.IPv6(p).Src() != mnHoA || header.IPv6(p).Dst() != haA6 || p[6] != header.ProtoDestOpts {
		t.Fatalf("delivered % x", p)
	}
	if coa, ok := header.FindHomeAddress(p[40:64]); !ok || coa != mnCoA {
		t.Errorf("HAO after home-address processing: %v, want the CoA %v", coa, mnCoA)
	}
	if p[40] != header.ProtoMobility || !bytes.Equal(p[64:], bu[40:]) {
		t.Errorf("MH differs: % x", p[40:])
	}
	if d.seq != 1 || d.spi != spiSA1 {
		t.Errorf("seq %d spi %#x", d.seq, d.spi)
	}
	if want := (endpoint.Endpoint{Addr: netip.AddrPortFrom(mnCoA, 0), Encap: endpoint.EncapIP}); d.ep != want || len(looked) != 1 || looked[0] != want {
		t.Errorf("Deliver ep %v, BeforeLookup %v; want %v", d.ep, looked, want)
	}
	if d.ep.String() != "ip:"+mnCoA.String() {
		t.Errorf("String %q", d.ep.String())
	}
}

// TestEncapIPv4UDP: a BU from an IPv4 CoA leaves as IPv4/UDP(4500 ->
// 4191)/IPv6/ESP; the HA receives the inner IPv6 packet from (v4, port)
// and Deliver gets it unchanged (no HAO).
func TestEncapIPv4UDP(t *testing.T) {
	rec := newDeliverRec(true)
	mn, _ := newMobilityPair(t, mnV4, dataplane.Hooks{AfterSeal: haoHook(mnV4)}, dataplane.Hooks{Deliver: rec.hook})
	mn.ul.Record(true)
	bu := mhPacket(mnHoA, haA6, header.MHTypeBU, 3)
	if err := mn.d.Inject(bu); err != nil {
		t.Fatal(err)
	}
	d := rec.wait(t)
	w := mn.ul.Sent()[0].Data
	if w[0] != 0x45 || w[9] != header.ProtoUDP || binary.BigEndian.Uint16(w[22:]) != endpoint.DSMIPv6Port {
		t.Fatalf("sent % x", w[:28])
	}
	if !bytes.Equal(d.p, bu) {
		t.Errorf("delivered\n% x\nwant\n% x", d.p, bu)
	}
	if want := (endpoint.Endpoint{Addr: netip.AddrPortFrom(mnV4, endpoint.UDPEncapPort), Encap: endpoint.EncapIP}); d.ep != want {
		t.Errorf("ep %v want %v", d.ep, want)
	}
}

// TestEncapIPRH2: the HA's BA to an IPv6 CoA carries a type 2 Routing
// header (RFC 6275 §6.4); the MN's Deliver sees Destination = HoA and the
// header processed (CoA in it, Segments Left 0).
func TestEncapIPRH2(t *testing.T) {
	rec := newDeliverRec(true)
	rh2 := func(b *pkt.Buf, sa *sad.SA, ep *endpoint.Endpoint) bool {
		// IPv6(HA -> HoA) / ESP  ->  IPv6(HA -> CoA) / RH2(HoA) / ESP.
		b.Prepend(header.RoutingType2Len)
		p := b.Bytes()
		copy(p, p[header.RoutingType2Len:header.RoutingType2Len+40])
		header.RoutingType2(p[40:]).Encode(header.ProtoESP, mnHoA)
		header.RoutingType2(p[40:]).SetSegmentsLeft(1)
		ip := header.IPv6(p)
		ip.SetNextHeader(header.ProtoRouting)
		ip.SetPayloadLen(len(p) - 40)
		ip.SetDst(mnCoA)
		*ep = endpoint.Endpoint{Addr: netip.AddrPortFrom(mnCoA, 0), Encap: endpoint.EncapIP}
		return true
	}
	mn, ha := newMobilityPair(t, mnCoA, dataplane.Hooks{Deliver: rec.hook}, dataplane.Hooks{AfterSeal: rh2})
	_ = mn
	ba := mhPacket(haA6, mnHoA, header.MHTypeBA, 3)
	if err := ha.d.Inject(ba); err != nil {
		t.Fatal(err)
	}
	d := rec.wait(t)
	p := d.p
	if len(p) != 40+24+16 || p[6] != header.ProtoRouting || header.IPv6(p).Dst() != mnHoA || header.IPv6(p).Src() != haA6 {
		t.Fatalf("delivered % x", p)
	}
	rh := header.RoutingType2(p[40:64])
	if rh.HomeAddress() != mnCoA || rh.SegmentsLeft() != 0 || rh.NextHeader() != header.ProtoMobility {
		t.Errorf("RH2 after processing: % x", p[40:64])
	}
	if !bytes.Equal(p[64:], ba[40:]) || d.spi != spiSA2 || d.seq != 1 {
		t.Errorf("MH % x spi %#x seq %d", p[64:], d.spi, d.seq)
	}
}

// TestEncapIPUnprotected: EncapIP packets without ESP (garbage, a plain
// IPv6 MH packet, a truncated one) are dropped as DropUnprotected, never
// delivered.
func TestEncapIPUnprotected(t *testing.T) {
	rec := newDeliverRec(true)
	_, ha := newMobilityPair(t, mnCoA, dataplane.Hooks{}, dataplane.Hooks{Deliver: rec.hook})
	src := endpoint.Endpoint{Addr: netip.AddrPortFrom(mnCoA, 0), Encap: endpoint.EncapIP}
	plain := mhPacket(mnHoA, haA6, header.MHTypeBU, 1)
	esp6 := mhPacket(mnHoA, haA6, header.MHTypeBU, 1)
	esp6[6] = header.ProtoESP // claims ESP, but 16 bytes of zero SPI... valid length
	inputs := [][]byte{
		{},
		{0x60},
		bytes.Repeat([]byte{0xff}, 100),
		plain,
		plain[:50], // payload length beyond the packet
		udpPacket(hostA4, hostB4, 1, 100),
	}
	for _, in := range inputs {
		if err := ha.ul.Inject(underlaytest.Msg{Data: in, Src: src}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "unprotected drops", func() bool {
		return ha.d.Stats().Drops[dataplane.DropUnprotected] == uint64(len(inputs))
	})
	// ESP located, but no SA: counted as such.
	if err := ha.ul.Inject(underlaytest.Msg{Data: esp6, Src: src}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unknown SPI", func() bool { return ha.d.Stats().Drops[dataplane.DropUnknownSPI] == 1 })
	select {
	case d := <-rec.ch:
		t.Fatalf("delivered % x", d.p)
	default:
	}
	expectNone(t, ha.tun.Inbound)
}

// TestTransportRawNoHeader: a raw transport packet without a usable outer
// header in front (an underlay that does not leave one) is DropDeliver;
// transport ESP in UDP is DropTransportMode.
func TestTransportRawNoHeader(t *testing.T) {
	rec := newDeliverRec(true)
	mn, ha := newMobilityPair(t, mnHoA, dataplane.Hooks{}, dataplane.Hooks{Deliver: rec.hook})
	mn.ul.Record(true)
	if err := mn.d.Inject(mhPacket(mnHoA, haA6, header.MHTypeBU, 1)); err != nil {
		t.Fatal(err)
	}
	rec.wait(t)
	wire := mn.ul.Sent()[0].Data
	// The fake writes the header only for EncapRaw sources of the family
	// of the destination: an IPv4 source gets no IPv6 header.
	if err := ha.ul.Inject(underlaytest.Msg{Data: wire, Src: endpoint.Endpoint{Addr: netip.AddrPortFrom(mnV4, 0)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deliver drop", func() bool { return ha.d.Stats().Drops[dataplane.DropDeliver] == 1 })
	if err := ha.ul.Inject(underlaytest.Msg{Data: wire, Src: endpoint.Endpoint{Addr: netip.AddrPortFrom(mnV4, 4500), Encap: endpoint.EncapUDP}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "transport-in-UDP drop", func() bool { return ha.d.Stats().Drops[dataplane.DropTransportMode] == 1 })
}

// TestInjectErrors: Inject names the drop reason and counts it.
func TestInjectErrors(t *testing.T) {
	mn, _ := newMobilityPair(t, mnHoA, dataplane.Hooks{AfterSeal: func(*pkt.Buf, *sad.SA, *endpoint.Endpoint) bool { return false }}, dataplane.Hooks{})
	cases := []struct {
		p    []byte
		want dataplane.DropReason
	}{
		{nil, dataplane.DropNotIP},
		{[]byte{1, 2, 3}, dataplane.DropNotIP},
		{mhPacket(mnHoA, mnCoA, header.MHTypeBU, 1), dataplane.DropPolicyDiscard},
		{mhPacket(mnHoA, haA6, header.MHTypeBU, 1), dataplane.DropAfterSealHook},
		{make([]byte, pkt.MaxPacket+1), dataplane.DropNotIP},
	}
	for _, c := range cases {
		err := mn.d.Inject(c.p)
		var de *dataplane.DropError
		if !errors.As(err, &de) || de.Reason != c.want {
			t.Errorf("Inject(%d bytes) = %v, want a DropError %v", len(c.p), err, c.want)
		}
	}
	st := mn.d.Stats()
	if st.Drops[dataplane.DropNotIP] != 3 || st.Drops[dataplane.DropPolicyDiscard] != 1 || st.Drops[dataplane.DropAfterSealHook] != 1 || st.Injected != 5 {
		t.Errorf("stats %+v", st)
	}
	if err := mn.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mn.d.Inject(mhPacket(mnHoA, haA6, header.MHTypeBU, 1)); !errors.Is(err, dataplane.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestEncapIPNotPeerEndpoint: a peer cannot be configured with EncapIP.
func TestEncapIPNotPeerEndpoint(t *testing.T) {
	ua, _ := underlaytest.NewPair(epA, epB)
	_, err := dataplane.New(dataplane.Config{TUN: tuntest.New(1, 1), Underlay: ua, SAD: sad.New(sad.Options{}), SPD: spd.New(sad.New(sad.Options{})),
		Peers: []dataplane.PeerConfig{{Name: "x", Endpoint: endpoint.Endpoint{Addr: netip.AddrPortFrom(haA6, 0), Encap: endpoint.EncapIP}}}})
	if !errors.Is(err, dataplane.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
}

// mobilityStagePair builds an MN and an HA Dataplane over a fake underlay
// pair, with the mobility SAs and policies, not started: the tests drive
// their stages directly (SealBatch, OpenBatch), as with stagePair.
// Cleanup closes both.
func mobilityStagePair(tb testing.TB, hooksMN, hooksHA dataplane.Hooks) (mn, ha *dataplane.Dataplane) {
	tb.Helper()
	ua, ub := underlaytest.NewPair(epA, epB)
	mnSAD, mnSPD := mobilityDBs(tb, mnHoA, haA6, spiSA1, spiSA2)
	haSAD, haSPD := mobilityDBs(tb, haA6, mnHoA, spiSA2, spiSA1)
	mn, err := dataplane.New(dataplane.Config{TUN: tuntest.New(1, 1), Underlay: ua, SAD: mnSAD, SPD: mnSPD,
		Hooks: hooksMN})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { mn.Close() })
	ha, err = dataplane.New(dataplane.Config{TUN: tuntest.New(1, 1), Underlay: ub, SAD: haSAD, SPD: haSPD,
		Hooks: hooksHA})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ha.Close() })
	return mn, ha
}

// TestTransportStagesAllocs: the transport-mode paths (seal with an
// AfterSeal that makes the HAO form and sends EncapIP; open of an EncapIP
// packet with the home-address processing and Deliver) allocate nothing.
func TestTransportStagesAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	var consumed int
	mn, ha := mobilityStagePair(t, dataplane.Hooks{AfterSeal: haoHook(mnCoA)},
		dataplane.Hooks{Deliver: func(p []byte, sa *sad.SA, seq uint32, ep endpoint.Endpoint) bool {
			consumed++
			return true
		}})
	const batch = 8
	pkts := make([][]byte, batch)
	for i := range pkts {
		pkts[i] = mhPacket(mnHoA, haA6, header.MHTypeBU, uint16(i))
	}
	out := dataplane.NewBatch(true, batch)
	in := dataplane.NewBatch(false, batch)
	defer out.Release()
	defer in.Release()
	wire := make([][]byte, 0, batch)
	src := endpoint.Endpoint{Addr: netip.AddrPortFrom(mnCoA, 0), Encap: endpoint.EncapIP}
	round := func() {
		out.FillOut(pkts)
		mn.SealBatch(out)
		bufs, _ := out.Sent()
		wire = wire[:0]
		for _, b := range bufs {
			wire = append(wire, b.Bytes())
		}
		in.FillIn(wire, src)
		ha.OpenBatch(in)
	}
	round()
	if consumed != batch {
		t.Fatalf("consumed %d of %d; HA stats %+v", consumed, batch, ha.Stats())
	}
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Errorf("%v allocs per round", n)
	}
	if consumed != batch*102 {
		t.Errorf("consumed %d", consumed)
	}
}

// FuzzInboundEncapIP feeds arbitrary EncapIP packets to an HA's inbound
// stage: no panic, and Deliver sees only BUs the MN really sealed (HAO
// form), each once, in home-address form.
func FuzzInboundEncapIP(f *testing.F) {
	var got [][]byte
	mn, ha := mobilityStagePair(f, dataplane.Hooks{AfterSeal: haoHook(mnCoA)},
		dataplane.Hooks{Deliver: func(p []byte, _ *sad.SA, _ uint32, _ endpoint.Endpoint) bool {
			got = append(got, bytes.Clone(p))
			return true
		}})
	out := dataplane.NewBatch(true, 3)
	var pkts [][]byte
	for i := range 3 {
		pkts = append(pkts, mhPacket(mnHoA, haA6, header.MHTypeBU, uint16(i)))
	}
	out.FillOut(pkts)
	mn.SealBatch(out)
	bufs, _ := out.Sent()
	genuine := map[string][]byte{}
	for i, b := range bufs {
		w := bytes.Clone(b.Bytes())
		genuine[string(w)] = pkts[i]
		f.Add(w)
	}
	out.Release()
	f.Add([]byte{0x60})
	f.Add(mhPacket(mnHoA, haA6, header.MHTypeBU, 1))
	seen := map[string]bool{}
	in := dataplane.NewBatch(false, 1)
	src := endpoint.Endpoint{Addr: netip.AddrPortFrom(mnCoA, 0), Encap: endpoint.EncapIP}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > pkt.MaxPacket {
			return
		}
		got = got[:0]
		in.FillIn([][]byte{data}, src)
		ha.OpenBatch(in)
		if len(in.Delivered()) != 0 {
			t.Fatalf("transport packet written to the TUN although Deliver consumed it")
		}
		if len(got) == 0 {
			return
		}
		bu, ok := genuine[string(data)]
		if !ok {
			t.Fatalf("delivered a packet the MN never sealed: % x", data)
		}
		if seen[string(data)] {
			t.Fatalf("delivered twice")
		}
		seen[string(data)] = true
		p := got[0]
		if header.IPv6(p).Src() != mnHoA || !bytes.Equal(p[64:], bu[40:]) {
			t.Fatalf("delivered % x", p)
		}
	})
}

// TestEncapIPBadOuter: an AfterSeal that chose EncapIP but left a packet
// that is not IP, or one of the other family than the endpoint, is
// DropOuter.
func TestEncapIPBadOuter(t *testing.T) {
	for _, c := range []struct {
		name string
		hook func(*pkt.Buf, *sad.SA, *endpoint.Endpoint) bool
	}{
		{"family", func(b *pkt.Buf, _ *sad.SA, ep *endpoint.Endpoint) bool {
			*ep = endpoint.Endpoint{Addr: netip.AddrPortFrom(haV4, 0), Encap: endpoint.EncapIP}
			return true
		}},
		{"garbage", func(b *pkt.Buf, _ *sad.SA, ep *endpoint.Endpoint) bool {
			b.Bytes()[0] = 0x10
			*ep = endpoint.Endpoint{Addr: netip.AddrPortFrom(haA6, 0), Encap: endpoint.EncapIP}
			return true
		}},
		{"no address", func(b *pkt.Buf, _ *sad.SA, ep *endpoint.Endpoint) bool {
			*ep = endpoint.Endpoint{Encap: endpoint.EncapIP}
			return true
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mn, _ := newMobilityPair(t, mnHoA, dataplane.Hooks{AfterSeal: c.hook}, dataplane.Hooks{})
			mn.ul.Record(true)
			err := mn.d.Inject(mhPacket(mnHoA, haA6, header.MHTypeBU, 1))
			var de *dataplane.DropError
			if !errors.As(err, &de) || de.Reason != dataplane.DropOuter {
				t.Fatalf("Inject = %v, want DropOuter", err)
			}
			if len(mn.ul.Sent()) != 0 || mn.d.Stats().Drops[dataplane.DropOuter] != 1 {
				t.Errorf("sent %d, stats %+v", len(mn.ul.Sent()), mn.d.Stats())
			}
		})
	}
}

// TestAfterSealIPv6OuterToIPv4: the HA's DR-1 (RFC 5555 §4.5): the SA built
// an IPv6 outer header, AfterSeal only points *ep at an IPv4 endpoint, raw
// or UDP, and the dataplane cuts the packet in front of ESP whatever
// header is there; the underlay builds the IPv4 one (RFC 4303 §3.1.2: the
// ICV does not cover it). The peer opens it.
func TestAfterSealIPv6OuterToIPv4(t *testing.T) {
	rawA := endpoint.Endpoint{Addr: netip.AddrPortFrom(epA.Addr.Addr(), 0), Encap: endpoint.EncapRaw}
	rawB := endpoint.Endpoint{Addr: netip.AddrPortFrom(epB.Addr.Addr(), 0), Encap: endpoint.EncapRaw}
	for _, to := range []endpoint.Endpoint{rawB, epB} {
		t.Run(to.Encap.String(), func(t *testing.T) {
			espLen := make(chan int, 1)
			a, b := newPair(t, pairOpts{hooksA: dataplane.Hooks{AfterSeal: func(buf *pkt.Buf, sa *sad.SA, ep *endpoint.Endpoint) bool {
				p := buf.Bytes()
				ip := header.IPv6(p)
				if sa.SPI() != spiAB6 || p[0]>>4 != 6 || ip.NextHeader() != header.ProtoESP || ip.Dst() != gwB6 {
					t.Errorf("AfterSeal: SPI %#x, not the SA's IPv6 outer header: % x", sa.SPI(), p[:min(len(p), 40)])
				}
				espLen <- len(p) - header.IPv6HeaderLen
				*ep = to
				return true
			}}})
			if to.Encap == endpoint.EncapRaw {
				a.ul.SetLocal(rawA)
				b.ul.SetLocal(rawB)
			}
			a.ul.Record(true)
			in := udpPacket(hostA6, hostB6, 1, 200)
			a.tun.Outbound <- in
			if got := recv(t, b.tun.Inbound); !bytes.Equal(got, in) {
				t.Fatalf("B got\n% x\nwant\n% x", got, in)
			}
			sent := a.ul.Sent()
			if len(sent) != 1 {
				t.Fatalf("%d sent", len(sent))
			}
			m, n := sent[0], <-espLen
			if m.Dst != to || len(m.Data) != n || header.ESP(m.Data).SPI() != spiAB6 {
				t.Errorf("sent %d bytes (SPI %#x) to %v; want the %d ESP bytes to %v",
					len(m.Data), header.ESP(m.Data).SPI(), m.Dst, n, to)
			}
			// The writer counts the packet after Send returns, and the fake
			// underlay may have delivered it to B before that.
			waitFor(t, "A's send counted", func() bool { return a.d.Stats().SentPackets == 1 })
			if s := a.d.Stats(); s.Dropped() != 0 || s.SentPackets != 1 {
				t.Errorf("A stats %+v", s)
			}
		})
	}
}
