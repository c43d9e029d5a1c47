package mip6

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

func TestBAToCoA(t *testing.T) {
	esp := fakeESP(100)
	b := sealed(t, tnHA6, tnHoA, esp)
	espAt := espAddr(b, header.IPv6HeaderLen)
	to, ok := BAToCoA(b, tnCoA6)
	if !ok || to != epIP(tnCoA6) {
		t.Fatalf("to %v ok %v", to, ok)
	}
	out := b.Bytes()
	if len(out) != 40+24+len(esp) || espAddr(b, 64) != espAt {
		t.Fatal("ESP moved or length wrong")
	}
	ip := header.IPv6(out)
	if !ip.IsValid() || ip.Src() != tnHA6 || ip.Dst() != tnCoA6 || ip.NextHeader() != header.ProtoRouting ||
		ip.PayloadLen() != 24+len(esp) || ip.HopLimit() != tnHop || ip.TrafficClass() != tnTC || ip.FlowLabel() != 0x12345 {
		t.Fatalf("IPv6 header %+v", ip.Fields())
	}
	rh := header.RoutingType2(out[40:])
	if !rh.IsValid() || rh.SegmentsLeft() != 1 || rh.HomeAddress() != tnHoA || rh.NextHeader() != header.ProtoESP {
		t.Fatalf("RH2 % x", out[40:64])
	}
	if !slices.Equal(out[64:], esp) {
		t.Fatal("ESP bytes changed")
	}
	// The flow parser sees the home-address form (RFC 4877 §4.2).
	var f header.Flow
	if !header.ParseFlow(out, &f) || f.Dst != tnHoA || f.Proto != header.ProtoESP {
		t.Errorf("flow %+v", f)
	}
}

func TestBAToV4(t *testing.T) {
	esp := fakeESP(100)
	b := sealed(t, tnHA6, tnHoA, esp)
	inner := slices.Clone(b.Bytes())
	to, ok := BAToV4(b, tnHA4, tnNAT)
	if !ok || to != epIP(tnNAT.Addr()) {
		t.Fatalf("to %v ok %v", to, ok)
	}
	out := b.Bytes()
	checkIPv4(t, out, header.ProtoUDP, tnHA4, tnNAT.Addr())
	u := header.UDP(out[20:])
	if u.SrcPort() != PortDSMIPv6 || u.DstPort() != tnNAT.Port() || u.Length() != 8+len(inner) {
		t.Errorf("UDP %d -> %d len %d", u.SrcPort(), u.DstPort(), u.Length())
	}
	if c := header.UDPChecksum(tnHA4, tnNAT.Addr(), u); u.Checksum() == 0 || c != u.Checksum() {
		t.Errorf("UDP checksum %#x, want %#x", u.Checksum(), c)
	}
	if !slices.Equal(out[28:], inner) {
		t.Error("inner packet changed")
	}
	// Round trip through the HA's own decapsulator.
	if _, d := StripUDPEncap(b); d != DecapPort {
		t.Errorf("a BA to the MN's port is not for the HA's decapsulator: %v", d)
	}
}

func TestBARejects(t *testing.T) {
	mk := func() *pkt.Buf { return sealed(t, tnHA6, tnHoA, fakeESP(40)) }
	noRoom := func() *pkt.Buf {
		b := mk()
		p := slices.Clone(b.Bytes())
		copy(b.B[:], p) // the packet at offset 0: no headroom
		b.SetBytes(0, len(p))
		return b
	}
	notESP := mk()
	header.IPv6(notESP.Bytes()).SetNextHeader(header.ProtoUDP)
	for name, tc := range map[string]struct {
		b   *pkt.Buf
		coa netip.Addr
	}{
		"v4 coa":     {mk(), tnCoA4},
		"mapped":     {mk(), netip.AddrFrom16(tnCoA4.As16())},
		"multicast":  {mk(), netip.MustParseAddr("ff02::1")},
		"zero":       {mk(), netip.Addr{}},
		"no room":    {noRoom(), tnCoA6},
		"not ESP":    {notESP, tnCoA6},
		"ipv4 input": {sealedV4(t), tnCoA6},
	} {
		before := slices.Clone(tc.b.Bytes())
		off := tc.b.Off()
		if _, ok := BAToCoA(tc.b, tc.coa); ok {
			t.Errorf("BAToCoA %s: ok", name)
		}
		if !slices.Equal(before, tc.b.Bytes()) || off != tc.b.Off() {
			t.Errorf("BAToCoA %s: b changed", name)
		}
	}
	for name, tc := range map[string]struct {
		b    *pkt.Buf
		haV4 netip.Addr
		to   netip.AddrPort
	}{
		"v6 ha":   {mk(), tnHA6, tnNAT},
		"v6 to":   {mk(), tnHA4, netip.AddrPortFrom(tnCoA6, 4191)},
		"port 0":  {mk(), tnHA4, netip.AddrPortFrom(tnCoA4, 0)},
		"no room": {noRoom(), tnHA4, tnNAT},
		"not ESP": {notESP, tnHA4, tnNAT},
	} {
		before := slices.Clone(tc.b.Bytes())
		if _, ok := BAToV4(tc.b, tc.haV4, tc.to); ok {
			t.Errorf("BAToV4 %s: ok", name)
		}
		if !slices.Equal(before, tc.b.Bytes()) {
			t.Errorf("BAToV4 %s: b changed", name)
		}
	}
}

func sealedV4(t *testing.T) *pkt.Buf {
	b := new(pkt.Buf)
	b.Reset()
	p := make([]byte, 60)
	encodeIPv4(p, 0, 64, header.ProtoESP, tnHA4, tnCoA4, len(p))
	b.Set(p)
	return b
}

func TestBAAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	b := sealed(t, tnHA6, tnHoA, fakeESP(100))
	raw := slices.Clone(b.Bytes())
	n := testing.AllocsPerRun(1000, func() {
		b.Reset()
		b.Set(raw)
		if _, ok := BAToCoA(b, tnCoA6); !ok {
			t.Fatal("BAToCoA")
		}
		b.Reset()
		b.Set(raw)
		if _, ok := BAToV4(b, tnHA4, tnNAT); !ok {
			t.Fatal("BAToV4")
		}
	})
	if n != 0 {
		t.Errorf("%v allocs", n)
	}
}
