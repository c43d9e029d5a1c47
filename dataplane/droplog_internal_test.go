package dataplane

import (
	"net/netip"
	"testing"
)

func TestLinkLocal(t *testing.T) {
	ip := func(src, dst string) []byte {
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
		if s.Is4() {
			p := make([]byte, 20)
			p[0] = 0x45
			a, b := s.As4(), d.As4()
			copy(p[12:], a[:])
			copy(p[16:], b[:])
			return p
		}
		p := make([]byte, 40)
		p[0] = 0x60
		a, b := s.As16(), d.As16()
		copy(p[8:], a[:])
		copy(p[24:], b[:])
		return p
	}
	for _, tc := range []struct {
		src, dst string
		want     bool
	}{
		{"fe80::1", "ff02::2", true},      // Router Solicitation
		{"::", "ff02::2", true},           // RS before an address
		{"fe80::1", "ff02::16", true},     // MLDv2 report
		{"::", "ff02::1:ff00:1", true},    // DAD
		{"fe80::1", "fe80::2", true},      // link-local unicast
		{"fd00:a::1", "fe80::2", true},    // to link-local
		{"fd00:a::1", "ff12::1", true},    // transient, link scope
		{"fd00:a::1", "ff01::1", true},    // interface-local scope
		{"febf::1", "fd00:b::1", true},    // fe80::/10 upper end
		{"fec0::1", "fd00:b::1", false},   // outside fe80::/10
		{"fd00:a::1", "ff05::2", false},   // site-local scope multicast
		{"fd00:a::1", "ff0e::1", false},   // global multicast
		{"fd00:a::1", "fd00:b::1", false}, // ordinary traffic
		{"169.254.1.1", "10.2.0.1", true},
		{"10.1.0.1", "169.254.1.1", true},
		{"10.1.0.1", "224.0.0.22", true},  // IGMPv3 report
		{"10.1.0.1", "224.0.0.251", true}, // mDNS
		{"10.1.0.1", "255.255.255.255", true},
		{"10.1.0.1", "224.0.1.1", false},
		{"10.1.0.1", "10.9.0.1", false},
	} {
		if got := linkLocal(ip(tc.src, tc.dst)); got != tc.want {
			t.Errorf("linkLocal(%s -> %s) = %v", tc.src, tc.dst, got)
		}
	}
	for _, p := range [][]byte{nil, {0x60, 0}, {0x45, 0}, {0x00}} {
		if linkLocal(p) {
			t.Errorf("linkLocal(% x)", p)
		}
	}
}
