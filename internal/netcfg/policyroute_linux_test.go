package netcfg

import (
	"net/netip"
	"strings"
	"testing"
)

// TestPolicyRoutes: with full-tunnel routes (0.0.0.0/0, ::/0) and a site
// route into "tun0", an unmarked lookup of the peer goes into the TUN, a
// marked one (the underlay's sockets, SO_MARK) by the main table's route
// via the underlay link, for IPv4 and IPv6; the main table's more specific
// routes still win for unmarked packets; a second install replaces what a
// killed run left; Remove deletes every rule and route.
func TestPolicyRoutes(t *testing.T) {
	ns := newNS(t, "pr",
		"link add ul0 type dummy", "link add tun0 type dummy",
		"link set ul0 up", "link set tun0 up",
		"addr add 198.51.100.1/24 dev ul0", "addr add 2001:db8:a::1/64 dev ul0 nodad",
		"route add default via 198.51.100.254 dev ul0", "route add default via 2001:db8:a::fe dev ul0",
		"route add 192.0.2.0/24 dev ul0")
	cfg := PolicyRoutesConfig{TUN: "tun0", Mark: 0x1194, Table: 4500, Priority: 30000,
		Routes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"),
			netip.MustParsePrefix("203.0.113.0/24")}}
	var pr *PolicyRoutes
	install := func() {
		inNS(t, ns, func() (err error) {
			pr, err = InstallPolicyRoutes(cfg)
			return err
		})
	}
	install()
	removed := false
	t.Cleanup(func() {
		if !removed {
			inNS(t, ns, pr.Remove)
		}
	})
	dev := func(args ...string) string {
		out := ipOut(t, ns, append([]string{"route", "get"}, args...)...)
		f := strings.Fields(out)
		for i := range f[:len(f)-1] {
			if f[i] == "dev" {
				return f[i+1]
			}
		}
		t.Fatalf("route get %v: %s", args, out)
		return ""
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"203.0.113.1"}, "tun0"},
		{[]string{"203.0.113.1", "mark", "0x1194"}, "ul0"},
		{[]string{"2001:db8:b::1"}, "tun0"},
		{[]string{"2001:db8:b::1", "mark", "0x1194"}, "ul0"},
		{[]string{"198.51.100.7"}, "ul0"}, // main's on-link /24 beats the TUN's /0
		{[]string{"192.0.2.9"}, "ul0"},    // main's /24 beats the TUN's /0
		{[]string{"2001:db8:a::7"}, "ul0"},
		{[]string{"8.8.8.8"}, "tun0"},
	} {
		if got := dev(c.args...); got != c.want {
			t.Errorf("route get %v: dev %s, want %s", c.args, got, c.want)
		}
	}
	if r4, r6 := ipOut(t, ns, "-4", "rule", "show"), ipOut(t, ns, "-6", "rule", "show"); !strings.Contains(r4, "not from all fwmark 0x1194 lookup 4500") ||
		!strings.Contains(r4, "lookup 4524") || !strings.Contains(r6, "not from all fwmark 0x1194 lookup 4500") ||
		!strings.Contains(r4, "suppress_prefixlength 0") || !strings.Contains(r6, "suppress_prefixlength 0") {
		t.Errorf("rules:\n%s\n%s", r4, r6)
	}

	// A killed daemon's leftovers: a new install removes them first.
	old := pr
	install()
	if r4 := ipOut(t, ns, "-4", "rule", "show"); strings.Count(r4, "lookup 4500") != 1 {
		t.Errorf("after a second install:\n%s", r4)
	}
	old.rules = nil // gone already
	inNS(t, ns, old.Remove)

	inNS(t, ns, pr.Remove)
	removed = true
	inNS(t, ns, pr.Remove) // twice: fine
	for _, fam := range []string{"-4", "-6"} {
		if r := ipOut(t, ns, fam, "rule", "show"); strings.Contains(r, "fwmark") || strings.Contains(r, "suppress") {
			t.Errorf("rules left %s:\n%s", fam, r)
		}
		if r := ipOut(t, ns, fam, "route", "show", "table", "all"); strings.Contains(r, "table 45") {
			t.Errorf("routes left %s:\n%s", fam, r)
		}
	}
	if got := dev("203.0.113.1"); got != "ul0" {
		t.Errorf("after Remove: dev %s", got)
	}
}

func TestCheckPolicyRoutes(t *testing.T) {
	for _, c := range []struct {
		mark, table uint32
		prio        int
		ok          bool
	}{
		{4500, 4500, 30000, true}, {0, 4500, 30000, false}, {1, 200, 30000, false}, {1, 256, 30000, true},
		{1, 100, 30000, true}, {1, 4500, 32700, false}, {1, 0xffffffff, 30000, false},
	} {
		if err := CheckPolicyRoutes(c.mark, c.table, c.prio); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
