package mip6

import (
	"errors"
	"net/netip"
	"testing"
)

func mvAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// TestChooseCoA: global IPv6 first (RFC 5555 §4.4.1), then IPv4, then ULA;
// link-local, loopback, multicast and unspecified never; home-prefix
// addresses only when nothing else is there.
func TestChooseCoA(t *testing.T) {
	home := netip.MustParsePrefix("2001:db8:100::/64")
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		want  string // "" = none
	}{
		{"empty", nil, ""},
		{"only unusable", mvAddrs("fe80::1", "::1", "127.0.0.1", "ff02::1", "::", "169.254.3.4", "255.255.255.255"), ""},
		{"global v6 over v4", mvAddrs("198.51.100.7", "2001:db8:aa::5"), "2001:db8:aa::5"},
		{"documentation prefix is global", mvAddrs("fe80::5", "2001:db8:bb::1"), "2001:db8:bb::1"},
		{"v4 when no v6", mvAddrs("fe80::5", "192.168.1.20"), "192.168.1.20"},
		{"v4-mapped taken as v4", []netip.Addr{netip.AddrFrom16(netip.MustParseAddr("192.0.2.9").As16())}, "192.0.2.9"},
		{"v4 over ULA", mvAddrs("fd00::5", "10.0.0.2"), "10.0.0.2"},
		{"ULA last resort", mvAddrs("fe80::1", "fd12:3456::5"), "fd12:3456::5"},
		{"foreign over home", mvAddrs("2001:db8:100::5", "203.0.113.9"), "203.0.113.9"},
		{"home when nothing else", mvAddrs("fe80::1", "2001:db8:100::5"), "2001:db8:100::5"},
		{"first of a rank wins", mvAddrs("2001:db8:2::1", "2001:db8:1::1"), "2001:db8:2::1"},
	} {
		got, ok := ChooseCoA(tc.addrs, home)
		if tc.want == "" {
			if ok {
				t.Errorf("%s: got %v, want none", tc.name, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s: got %v %v, want %s", tc.name, got, ok, tc.want)
		}
	}
	// Without a home prefix nothing counts as home.
	if got, ok := ChooseCoA(mvAddrs("2001:db8:100::5"), netip.Prefix{}); !ok || got != netip.MustParseAddr("2001:db8:100::5") {
		t.Errorf("no home prefix: %v %v", got, ok)
	}
}

func TestCheckCoA(t *testing.T) {
	for _, s := range []string{"2001:db8::1", "192.0.2.1", "10.1.2.3", "fd00::1", "2a00::1"} {
		if err := CheckCoA(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"fe80::1", "fe80::1%eth0", "ff02::2", "::", "::1", "127.0.0.1", "0.0.0.0", "169.254.0.1", "224.0.0.1", "255.255.255.255"} {
		if err := CheckCoA(netip.MustParseAddr(s)); !errors.Is(err, ErrBadCoA) {
			t.Errorf("%s: %v, want ErrBadCoA", s, err)
		}
	}
	if err := CheckCoA(netip.Addr{}); !errors.Is(err, ErrBadCoA) {
		t.Errorf("zero: %v", err)
	}
}
