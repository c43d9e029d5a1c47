package mip6

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

var (
	tnHA6  = netip.MustParseAddr("2001:db8:ffff::1")
	tnHoA  = netip.MustParseAddr("2001:db8:1::10")
	tnCoA6 = netip.MustParseAddr("2001:db8:aa::1")
	tnHA4  = netip.MustParseAddr("203.0.113.1")
	tnCoA4 = netip.MustParseAddr("192.0.2.7")
	tnNAT  = netip.MustParseAddrPort("198.51.100.1:61000")
)

const (
	tnTC  = 0xb9 // DSCP 46 (EF) + ECN 01 (ECT(1))
	tnHop = 63
	tnSPI = 0x1234_5678
	tnSeq = 42
)

// fakeESP returns n bytes of "ESP": SPI, sequence number, then a pattern.
func fakeESP(n int) []byte {
	e := make([]byte, n)
	binary.BigEndian.PutUint32(e[0:], tnSPI)
	binary.BigEndian.PutUint32(e[4:], tnSeq)
	for i := 8; i < n; i++ {
		e[i] = byte(i*7 + 3)
	}
	return e
}

// sealed builds `IPv6(src -> dst) / ESP` in a fresh Buf at Headroom.
func sealed(t testing.TB, src, dst netip.Addr, esp []byte) *pkt.Buf {
	t.Helper()
	p := make([]byte, header.IPv6HeaderLen+len(esp))
	header.IPv6(p).Encode(&header.IPv6Fields{
		TrafficClass: tnTC, FlowLabel: 0x12345, PayloadLen: uint16(len(esp)),
		NextHeader: header.ProtoESP, HopLimit: tnHop, Src: src, Dst: dst,
	})
	copy(p[header.IPv6HeaderLen:], esp)
	b := new(pkt.Buf)
	b.Reset()
	b.Set(p)
	return b
}

func espAddr(b *pkt.Buf, off int) *byte { return &b.B[b.Off()+off] }

// dpEP stands for the endpoint the dataplane chose before AfterSeal (the
// peer's, or raw ESP to the header's destination): a hook that keeps it
// leaves it unchanged.
var dpEP = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.254:4500"), Encap: endpoint.EncapUDP}

func epRaw(a netip.Addr) endpoint.Endpoint {
	return endpoint.Endpoint{Addr: netip.AddrPortFrom(a, 0), Encap: endpoint.EncapRaw}
}

func epUDP(a netip.AddrPort) endpoint.Endpoint {
	return endpoint.Endpoint{Addr: a, Encap: endpoint.EncapUDP}
}

func epIP(a netip.Addr) endpoint.Endpoint {
	return endpoint.Endpoint{Addr: netip.AddrPortFrom(a, 0), Encap: endpoint.EncapIP}
}

func checkIPv4(t *testing.T, out []byte, proto uint8, src, dst netip.Addr) {
	t.Helper()
	ip := header.IPv4(out)
	if !ip.IsValid() {
		t.Fatalf("IPv4 header invalid: % x", out[:20])
	}
	if out[0] != 0x45 {
		t.Errorf("version/IHL = %#x, want 0x45", out[0])
	}
	if ip.TOS() != tnTC {
		t.Errorf("TOS = %#x, want traffic class %#x", ip.TOS(), tnTC)
	}
	if ip.TotalLen() != len(out) {
		t.Errorf("total length = %d, want %d", ip.TotalLen(), len(out))
	}
	if ip.ID() != 0 || ip.Flags() != header.IPv4FlagDF || ip.FragmentOffset() != 0 {
		t.Errorf("ID/flags/frag = %d/%#x/%d, want 0/DF/0", ip.ID(), ip.Flags(), ip.FragmentOffset())
	}
	if out[8] != tnHop {
		t.Errorf("TTL = %d, want hop limit %d", out[8], tnHop)
	}
	if ip.Protocol() != proto {
		t.Errorf("protocol = %d, want %d", ip.Protocol(), proto)
	}
	if ip.Src() != src || ip.Dst() != dst {
		t.Errorf("addresses %v -> %v, want %v -> %v", ip.Src(), ip.Dst(), src, dst)
	}
	if !ip.IsChecksumValid() || header.Checksum(out[:20], 0) != 0xffff {
		t.Errorf("IPv4 header checksum %#x invalid", ip.Checksum())
	}
}

func TestSendFromCoA(t *testing.T) {
	esp := fakeESP(64)
	t.Run("ipv6 coa hao", func(t *testing.T) {
		b := sealed(t, tnHoA, tnHA6, esp)
		espPtr := espAddr(b, header.IPv6HeaderLen)
		off := b.Off()
		to, ok := SendFromCoA(b, tnCoA6, tnHA4, PortDSMIPv6)
		if !ok {
			t.Fatal("ok = false")
		}
		if to != epIP(tnHA6) {
			t.Errorf("to = %v, want the HA header-included", to)
		}
		if b.Off() != off-header.HAODestOptsLen {
			t.Errorf("start moved by %d, want -24", b.Off()-off)
		}
		out := b.Bytes()
		ip := header.IPv6(out)
		if !ip.IsValid() || ip.Src() != tnCoA6 || ip.Dst() != tnHA6 ||
			ip.NextHeader() != header.ProtoDestOpts || ip.PayloadLen() != 24+len(esp) ||
			ip.TrafficClass() != tnTC || ip.HopLimit() != tnHop || ip.FlowLabel() != 0x12345 {
			t.Errorf("IPv6 header %+v", ip.Fields())
		}
		do := header.DestOpts(out[40:])
		if !do.IsValid() || do.Len() != 24 || do.NextHeader() != header.ProtoESP {
			t.Fatalf("dest opts % x", out[40:64])
		}
		if h, ok := do.HomeAddress(); !ok || h != tnHoA {
			t.Errorf("HAO = %v %v, want %v", h, ok, tnHoA)
		}
		var want [24]byte
		header.DestOpts(want[:]).EncodeHAO(header.ProtoESP, tnHoA)
		if !bytes.Equal(out[40:64], want[:]) {
			t.Errorf("dest opts\n got % x\nwant % x", out[40:64], want)
		}
		if got := out[64:]; !bytes.Equal(got, esp) || &got[0] != espPtr {
			t.Errorf("ESP changed or moved")
		}
		if h, ok := header.FindHomeAddress(out[40:64]); !ok || h != tnHoA {
			t.Errorf("FindHomeAddress = %v %v", h, ok)
		}
	})
	t.Run("ipv4 coa udp 4191", func(t *testing.T) {
		b := sealed(t, tnHoA, tnHA6, esp)
		inner := append([]byte(nil), b.Bytes()...)
		innerPtr := &b.Bytes()[0]
		to, ok := SendFromCoA(b, tnCoA4, tnHA4, 50000)
		if !ok {
			t.Fatal("ok = false")
		}
		if to != epIP(tnHA4) {
			t.Errorf("to = %v, want the HA's IPv4 address header-included", to)
		}
		out := b.Bytes()
		if len(out) != 28+len(inner) {
			t.Fatalf("len = %d", len(out))
		}
		checkIPv4(t, out, header.ProtoUDP, tnCoA4, tnHA4)
		u := header.UDP(out[20:])
		if u.SrcPort() != 50000 || u.DstPort() != PortDSMIPv6 || u.Length() != 8+len(inner) {
			t.Errorf("UDP %d -> %d len %d", u.SrcPort(), u.DstPort(), u.Length())
		}
		if u.Checksum() == 0 || u.Checksum() != header.UDPChecksum(tnCoA4, tnHA4, u) {
			t.Errorf("UDP checksum %#x, want %#x", u.Checksum(), header.UDPChecksum(tnCoA4, tnHA4, u))
		}
		// Independent check: the sum over pseudo-header and datagram is all ones.
		if s := header.Checksum(u, header.PseudoHeaderChecksum(header.ProtoUDP, tnCoA4, tnHA4, len(u))); s != 0xffff {
			t.Errorf("UDP checksum does not verify: %#x", s)
		}
		if got := out[28:]; !bytes.Equal(got, inner) || &got[0] != innerPtr {
			t.Errorf("inner IPv6/ESP packet changed or moved")
		}
	})
	t.Run("rejects", func(t *testing.T) {
		good := sealed(t, tnHoA, tnHA6, esp).Bytes()
		for _, n := range []int{0, 1, 39, 40, 47} {
			b := new(pkt.Buf)
			b.Reset()
			b.Set(good[:n])
			for _, coa := range []netip.Addr{tnCoA6, tnCoA4} {
				if _, ok := SendFromCoA(b, coa, tnHA4, 4191); ok {
					t.Errorf("len %d coa %v: ok", n, coa)
				}
			}
		}
		for _, tc := range []struct{ coa, ha netip.Addr }{{netip.Addr{}, tnHA4}, {tnCoA4, netip.Addr{}}, {tnCoA4, tnHA6}} {
			b := sealed(t, tnHoA, tnHA6, esp)
			if _, ok := SendFromCoA(b, tc.coa, tc.ha, 4191); ok {
				t.Errorf("%v/%v: ok", tc.coa, tc.ha)
			}
			if !bytes.Equal(b.Bytes(), good) {
				t.Errorf("packet changed on reject")
			}
		}
		// No headroom.
		b := new(pkt.Buf)
		b.SetBytes(0, 0)
		b.Append(len(good))
		copy(b.Bytes(), good)
		for _, coa := range []netip.Addr{tnCoA6, tnCoA4} {
			if _, ok := SendFromCoA(b, coa, tnHA4, 4191); ok {
				t.Errorf("no headroom, coa %v: ok", coa)
			}
		}
	})
}

func buildUDP4(t testing.TB, src netip.AddrPort, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	p := make([]byte, 28+len(payload))
	header.IPv4(p).Encode(&header.IPv4Fields{
		TotalLen: uint16(len(p)), TTL: 64, Protocol: header.ProtoUDP,
		Src: src.Addr(), Dst: dst.Addr(),
	})
	u := header.UDP(p[20:])
	u.SetSrcPort(src.Port())
	u.SetDstPort(dst.Port())
	u.SetLength(8 + len(payload))
	copy(p[28:], payload)
	u.SetChecksum(header.UDPChecksum(src.Addr(), dst.Addr(), u))
	return p
}

func TestStripUDPEncap(t *testing.T) {
	esp := fakeESP(40)
	ha4500 := netip.AddrPortFrom(tnHA4, PortESPInUDP)
	ha4191 := netip.AddrPortFrom(tnHA4, PortDSMIPv6)
	inner6 := sealed(t, tnHoA, tnHA6, esp).Bytes()
	mut := func(p []byte, f func(p []byte)) []byte {
		p = append([]byte(nil), p...)
		f(p)
		return p
	}
	fixCk := func(p []byte) {
		header.IPv4(p).SetChecksum(0)
		header.IPv4(p).SetChecksum(^header.Checksum(p[:20], 0))
	}
	espPkt := buildUDP4(t, tnNAT, ha4500, esp)
	tests := []struct {
		name    string
		in      []byte
		want    Decap
		payload []byte
	}{
		{"esp 4500", espPkt, DecapESP, esp},
		{"esp 4500 zero udp checksum", mut(espPkt, func(p []byte) { p[26], p[27] = 0, 0 }), DecapESP, esp},
		{"esp 4500 link padding", append(append([]byte(nil), espPkt...), 0, 0, 0, 0), DecapESP, esp},
		{"ipv6 in 4191", buildUDP4(t, tnNAT, ha4191, inner6), DecapIP, inner6},
		{"keepalive", buildUDP4(t, tnNAT, ha4500, []byte{0xff}), DecapKeepalive, nil},
		{"non-esp marker", buildUDP4(t, tnNAT, ha4500, []byte{0, 0, 0, 0, 1, 2, 3, 4, 5}), DecapNonESPMarker, nil},
		{"short esp", buildUDP4(t, tnNAT, ha4500, []byte{1, 2, 3, 4, 5, 6, 7}), DecapShortESP, nil},
		{"empty 4500", buildUDP4(t, tnNAT, ha4500, nil), DecapShortESP, nil},
		{"4191 tlv header", buildUDP4(t, tnNAT, ha4191, []byte{0x00, 41, 0, 4}), DecapBadInner, nil},
		{"4191 empty", buildUDP4(t, tnNAT, ha4191, nil), DecapBadInner, nil},
		{"other port", buildUDP4(t, tnNAT, netip.AddrPortFrom(tnHA4, 500), esp), DecapPort, nil},
		{"empty", nil, DecapTruncated, nil},
		{"short ipv4", espPkt[:19], DecapTruncated, nil},
		{"ipv6", inner6, DecapNotIPv4, nil},
		{"total length past end", espPkt[:len(espPkt)-1], DecapTruncated, nil},
		{"ihl too small", mut(espPkt, func(p []byte) { p[0] = 0x44 }), DecapTruncated, nil},
		{"bad checksum", mut(espPkt, func(p []byte) { p[10]++ }), DecapBadChecksum, nil},
		{"fragment", mut(espPkt, func(p []byte) { p[6] = 0x20; fixCk(p) }), DecapFragment, nil},
		{"not udp", mut(espPkt, func(p []byte) { p[9] = header.ProtoESP; fixCk(p) }), DecapNotUDP, nil},
		{"udp length past ip", mut(espPkt, func(p []byte) { p[24], p[25] = 0, 49 }), DecapTruncated, nil},
		{"udp length under 8", mut(espPkt, func(p []byte) { p[24], p[25] = 0, 7 }), DecapTruncated, nil},
		{"no udp header", mut(espPkt[:24], func(p []byte) { p[2], p[3] = 0, 24; fixCk(p) }), DecapTruncated, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := new(pkt.Buf)
			b.Reset()
			b.Set(tt.in)
			src, d := StripUDPEncap(b)
			if d != tt.want {
				t.Fatalf("verdict = %v, want %v", d, tt.want)
			}
			if d.OK() != (tt.payload != nil) {
				t.Errorf("OK() = %v", d.OK())
			}
			if !d.OK() {
				if !bytes.Equal(b.Bytes(), tt.in) {
					t.Errorf("packet changed on drop")
				}
				return
			}
			if src != tnNAT {
				t.Errorf("src = %v, want %v", src, tnNAT)
			}
			if got := b.Bytes(); !bytes.Equal(got, tt.payload) {
				t.Errorf("payload\n got % x\nwant % x", got, tt.payload)
			}
		})
	}
	if DecapBadInner.String() != "bad-inner" || Decap(200).String() != "unknown" {
		t.Errorf("String")
	}
}

// TestRoundTripUDP: a DR-3 BU over UDP 4191 (SendFromCoA), then the HA's
// StripUDPEncap, gives back the IPv6/ESP packet and the MN's address and
// port.
func TestRoundTripUDP(t *testing.T) {
	b := sealed(t, tnHoA, tnHA6, fakeESP(333))
	inner := append([]byte(nil), b.Bytes()...)
	if _, ok := SendFromCoA(b, tnCoA4, tnHA4, 50001); !ok {
		t.Fatal("SendFromCoA")
	}
	src, d := StripUDPEncap(b)
	if d != DecapIP || src != netip.AddrPortFrom(tnCoA4, 50001) || !bytes.Equal(b.Bytes(), inner) {
		t.Errorf("4191 round trip: %v %v", src, d)
	}
}

func TestTunnelAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	esp := fakeESP(200)
	bUDP := sealed(t, tnHA6, tnHoA, esp)
	bHA := sealed(t, tnHoA, tnHA6, esp)
	origUDP, origHA := buildUDP4(t, netip.AddrPortFrom(tnHA4, PortESPInUDP), tnNAT, esp), append([]byte(nil), bHA.Bytes()...)
	off := bUDP.Off()
	reset := func(b *pkt.Buf, p []byte) {
		b.SetBytes(off, len(p))
		copy(b.Bytes(), p)
	}
	recs := NewNATRecords(64)
	for name, f := range map[string]func(){
		"Strip+Record": func() {
			reset(bUDP, origUDP)
			src, _ := StripUDPEncap(bUDP)
			e := header.ESP(bUDP.Bytes())
			recs.Record(e.SPI(), e.Seq(), src)
			recs.Take(e.SPI(), e.Seq())
		},
		"SendFromCoA v6": func() { reset(bHA, origHA); SendFromCoA(bHA, tnCoA6, tnHA4, 4191) },
		"SendFromCoA v4": func() { reset(bHA, origHA); SendFromCoA(bHA, tnCoA4, tnHA4, 4191) },
	} {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
}

func FuzzStripUDPEncap(f *testing.F) {
	esp := fakeESP(24)
	f.Add(buildUDP4(f, tnNAT, netip.AddrPortFrom(tnHA4, 4500), esp))
	f.Add(buildUDP4(f, tnNAT, netip.AddrPortFrom(tnHA4, 4500), []byte{0xff}))
	f.Add(buildUDP4(f, tnNAT, netip.AddrPortFrom(tnHA4, 4500), []byte{0, 0, 0, 0, 9}))
	f.Add(buildUDP4(f, tnNAT, netip.AddrPortFrom(tnHA4, 4191), sealed(f, tnHoA, tnHA6, esp).Bytes()))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > pkt.MaxPacket {
			return
		}
		b := new(pkt.Buf)
		b.Reset()
		b.Set(p)
		off, n := b.Off(), b.Len()
		src, d := StripUDPEncap(b)
		if !d.OK() {
			if b.Off() != off || b.Len() != n {
				t.Fatalf("drop %v moved the packet", d)
			}
			return
		}
		if !src.Addr().Is4() {
			t.Fatalf("src %v", src)
		}
		if b.Off() < off+28 || b.End() > off+n {
			t.Fatalf("result [%d,%d) outside input [%d,%d)", b.Off(), b.End(), off, off+n)
		}
		got := b.Bytes()
		RecordKey(got, d) // must not panic
		switch d {
		case DecapESP:
			if len(got) < header.ESPHeaderLen || header.ESP(got).SPI() == 0 {
				t.Fatalf("ESP verdict with % x", got)
			}
		case DecapIP:
			if v := got[0] >> 4; v != 4 && v != 6 {
				t.Fatalf("IP verdict with version %d", v)
			}
		}
	})
}

// Benchmarks of the per-packet mobility paths (issue 4: 0 allocs/op).
func BenchmarkStripUDPEncap(b *testing.B) {
	p := buildUDP4(b, tnNAT, netip.AddrPortFrom(tnHA4, PortESPInUDP), fakeESP(1400))
	buf := new(pkt.Buf)
	buf.Reset()
	buf.Set(p)
	off := buf.Off()
	recs := NewNATRecords(0)
	b.ReportAllocs()
	for b.Loop() {
		buf.SetBytes(off, len(p))
		src, d := StripUDPEncap(buf)
		if d != DecapESP {
			b.Fatal(d)
		}
		e := header.ESP(buf.Bytes())
		recs.Record(e.SPI(), e.Seq(), src)
	}
}

func BenchmarkSendFromCoA(b *testing.B) {
	for _, bc := range []struct {
		name string
		coa  netip.Addr
	}{{"ipv6-hao", tnCoA6}, {"ipv4-udp4191", tnCoA4}} {
		b.Run(bc.name, func(b *testing.B) {
			buf := sealed(b, tnHoA, tnHA6, fakeESP(120))
			orig := append([]byte(nil), buf.Bytes()...)
			off := buf.Off()
			b.ReportAllocs()
			for b.Loop() {
				buf.SetBytes(off, len(orig))
				copy(buf.Bytes()[:header.IPv6HeaderLen], orig)
				if _, ok := SendFromCoA(buf, bc.coa, tnHA4, PortDSMIPv6); !ok {
					b.Fatal("send failed")
				}
			}
		})
	}
}

func TestRecordKey(t *testing.T) {
	esp := fakeESP(30)
	in6 := sealed(t, tnHoA, tnHA6, esp).Bytes()
	in6do := func() []byte { // IPv6 / DestOpts(HAO) / ESP
		b := sealed(t, tnHoA, tnHA6, esp)
		if _, ok := SendFromCoA(b, tnCoA6, tnHA4, 0); !ok {
			t.Fatal("SendFromCoA")
		}
		return b.Bytes()
	}()
	in4 := make([]byte, 20+len(esp))
	header.IPv4(in4).Encode(&header.IPv4Fields{TotalLen: uint16(len(in4)), TTL: 9, Protocol: header.ProtoESP, Src: tnCoA4, Dst: tnHA4})
	copy(in4[20:], esp)
	zeroSPI := append([]byte(nil), in6...)
	copy(zeroSPI[40:44], []byte{0, 0, 0, 0})
	notESP := append([]byte(nil), in6...)
	notESP[6] = header.ProtoUDP
	tests := []struct {
		name string
		p    []byte
		d    Decap
		ok   bool
	}{
		{"esp", esp, DecapESP, true},
		{"short esp", esp[:7], DecapESP, false},
		{"ipv6 esp", in6, DecapIP, true},
		{"ipv6 trailing bytes", append(append([]byte(nil), in6...), 1, 2), DecapIP, true},
		{"ipv6 hao esp", in6do, DecapIP, true},
		{"ipv4 esp", in4, DecapIP, true},
		{"ipv6 spi 0", zeroSPI, DecapIP, false},
		{"ipv6 not esp", notESP, DecapIP, false},
		{"ipv6 truncated", in6[:45], DecapIP, false},
		{"empty", nil, DecapIP, false},
		{"drop verdict", esp, DecapKeepalive, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spi, seq, ok := RecordKey(tt.p, tt.d)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && (spi != tnSPI || seq != tnSeq) {
				t.Errorf("spi/seq = %#x/%d", spi, seq)
			}
		})
	}
	if !raceEnabled {
		if n := testing.AllocsPerRun(100, func() { RecordKey(in6do, DecapIP) }); n != 0 {
			t.Errorf("%v allocs", n)
		}
	}
}
