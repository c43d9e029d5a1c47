package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestESPOffset(t *testing.T) {
	v4 := func(proto byte, ihl int, payload []byte) []byte {
		p := make([]byte, ihl*4+len(payload))
		p[0] = 0x40 | byte(ihl)
		p[9] = proto
		copy(p[ihl*4:], payload)
		return p
	}
	v6 := func(nh byte, payload []byte) []byte {
		p := make([]byte, 40+len(payload))
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
		p[6] = nh
		copy(p[40:], payload)
		return p
	}
	esp := []byte{0, 0, 0x10, 0x01, 0, 0, 0, 1, 9, 9, 9, 9}
	udp := append([]byte{0x11, 0x94, 0x11, 0x94, 0, 20, 0, 0}, esp...)
	ike := append([]byte{0x11, 0x94, 0x11, 0x94, 0, 20, 0, 0}, 0, 0, 0, 0, 1, 2, 3, 4)
	fix4 := func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], uint16(len(p))); return p }
	for _, tc := range []struct {
		name string
		p    []byte
		off  int
		ok   bool
	}{
		{"v4 esp", fix4(v4(50, 5, esp)), 20, true},
		{"v4 options esp", fix4(v4(50, 6, esp)), 24, true},
		{"v6 esp", v6(50, esp), 40, true},
		{"v4 udp esp", fix4(v4(17, 5, udp)), 28, true},
		{"v6 udp esp", v6(17, udp), 48, true},
		{"v4 udp ike marker", fix4(v4(17, 5, ike)), 0, false},
		{"v4 tcp", fix4(v4(6, 5, esp)), 0, false},
		{"v4 udp short", fix4(v4(17, 5, udp[:12])), 0, false},
		{"empty", nil, 0, false},
		{"garbage", []byte{0xff, 1, 2}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, ok := espOffset(tc.p)
			if off != tc.off || ok != tc.ok {
				t.Errorf("espOffset = %d, %v; want %d, %v", off, ok, tc.off, tc.ok)
			}
		})
	}
}

func TestOuterDst(t *testing.T) {
	p4 := make([]byte, 20)
	p4[0] = 0x45
	copy(p4[16:], []byte{192, 0, 2, 7})
	p6 := make([]byte, 40)
	p6[0] = 0x60
	p6[39] = 9
	for _, tc := range []struct {
		p    []byte
		want netip.Addr
		ok   bool
	}{
		{p4, netip.MustParseAddr("192.0.2.7"), true},
		{p6, netip.MustParseAddr("::9"), true},
		{p4[:19], netip.Addr{}, false},
		{nil, netip.Addr{}, false},
	} {
		if got, ok := outerDst(tc.p); got != tc.want || ok != tc.ok {
			t.Errorf("outerDst(% x) = %v, %v", tc.p, got, ok)
		}
	}
}

func TestDropReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := range NumDropReasons {
		n := r.String()
		if n == "" || n == "unknown" || seen[n] {
			t.Errorf("reason %d has name %q", r, n)
		}
		seen[n] = true
	}
	if NumDropReasons.String() != "unknown" {
		t.Error("out of range name")
	}
}
