package node

import (
	"net/netip"
	"slices"
	"testing"
)

// TestHALocalAddrs: the HA's configured underlay and TUN addresses go to
// mip6 as its own (refused as care-of addresses); unset and wildcard
// underlay addresses do not.
func TestHALocalAddrs(t *testing.T) {
	cfg := &Config{}
	cfg.Underlay.Local4 = netip.MustParseAddr("198.51.100.1")
	cfg.Underlay.Local6 = netip.IPv6Unspecified()
	cfg.TUN.Addresses = []netip.Prefix{netip.MustParsePrefix("2001:db8:1::1/64"), netip.MustParsePrefix("10.9.0.1/24")}
	want := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("10.9.0.1")}
	if got := haLocalAddrs(cfg); !slices.Equal(got, want) {
		t.Errorf("haLocalAddrs %v, want %v", got, want)
	}
	if got := haLocalAddrs(&Config{}); len(got) != 0 {
		t.Errorf("empty config: %v", got)
	}
}
