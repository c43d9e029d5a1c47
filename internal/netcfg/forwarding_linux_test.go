package netcfg

import (
	"net/netip"
	"testing"
)

// TestForwarding: Forwarding reads the sysctl ForwardingSysctl names, per
// family and per namespace (a new namespace forwards nothing).
func TestForwarding(t *testing.T) {
	v4, v6, mapped := netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8:1::100"), netip.MustParseAddr("::ffff:192.0.2.100")
	for a, want := range map[netip.Addr]string{v4: "net.ipv4.ip_forward", mapped: "net.ipv4.ip_forward", v6: "net.ipv6.conf.all.forwarding"} {
		if got := ForwardingSysctl(a); got != want {
			t.Errorf("ForwardingSysctl(%s) = %q, want %q", a, got, want)
		}
	}
	ns := newNS(t, "fwd")
	check := func(what string, want4, want6 bool) {
		t.Helper()
		var got4, got6 bool
		inNS(t, ns, func() error {
			got4, got6 = Forwarding(v4), Forwarding(v6)
			return nil
		})
		if got4 != want4 || got6 != want6 {
			t.Errorf("%s: Forwarding IPv4 %v, IPv6 %v; want %v, %v", what, got4, got6, want4, want6)
		}
	}
	check("a new namespace", false, false)
	inNS(t, ns, func() error { return setSysctl("net/ipv6/conf/all/forwarding", "1") })
	check("IPv6 on", false, true)
	inNS(t, ns, func() error { return setSysctl("net/ipv4/ip_forward", "1") })
	check("both on", true, true)
	inNS(t, ns, func() error { return setSysctl("net/ipv6/conf/all/forwarding", "0") })
	check("IPv4 only", true, false)
}
