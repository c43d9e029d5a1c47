package netcfg

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

// newNS creates a namespace for one test (deleted at cleanup) and runs the
// ip commands given, each as `ip -n NS ARGS...`.
func newNS(t *testing.T, suffix string, cmds ...string) string {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "ip")
	netlab.RemoveStale("netcfg")
	ns := netlab.NetnsName("netcfg", suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := netlab.AddNetns(ctx, ns); err != nil {
		testenv.SkipOrFail(t, "namespaces: %v", err)
	}
	t.Cleanup(func() {
		if err := netlab.DelNetns(ns); err != nil {
			t.Error(err)
		}
	})
	for _, c := range cmds {
		f := strings.Fields(c)
		// "link add X type dummy": not every kernel has the dummy
		// module; a veth whose peer is up behaves the same here.
		if len(f) == 5 && f[0] == "link" && f[1] == "add" && f[4] == "dummy" {
			if err := addDummy(ctx, ns, f[2]); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := netlab.IP(ctx, append([]string{"-n", ns}, f...)...); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// addDummy adds interface name (a veth with the peer name-p, up) to ns.
func addDummy(ctx context.Context, ns, name string) error {
	if err := netlab.IP(ctx, "-n", ns, "link", "add", name, "type", "veth", "peer", "name", name+"-p"); err != nil {
		return err
	}
	return netlab.IP(ctx, "-n", ns, "link", "set", name+"-p", "up")
}

func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := netlab.InNetns(ns, fn); err != nil {
		t.Fatal(err)
	}
}

func ipOut(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v %s", args, err, out)
	}
	return string(out)
}

func setSysctl(name, v string) error {
	return os.WriteFile("/proc/sys/"+name, []byte(v), 0o644)
}

func TestHomeLink(t *testing.T) {
	ns := newNS(t, "hl",
		"link add home0 type dummy", "link set home0 up",
		"link add tun0 type dummy", "link set tun0 up",
		"addr add 2001:db8:1::1/64 dev home0 nodad", "addr add 192.0.2.1/24 dev home0")
	var hl *HomeLink
	inNS(t, ns, func() error {
		if err := setSysctl("net/ipv6/conf/all/forwarding", "1"); err != nil {
			return err
		}
		if err := setSysctl("net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
		var err error
		hl, err = NewHomeLink(HomeLinkConfig{Interface: "home0", TUN: "tun0"})
		return err
	})
	defer hl.Close()
	var proxyNDP string
	inNS(t, ns, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/home0/proxy_ndp")
		proxyNDP = strings.TrimSpace(string(b))
		return err
	})
	if proxyNDP != "1" {
		t.Errorf("proxy_ndp on home0 = %q, want 1", proxyNDP)
	}
	hoa, hoa4 := netip.MustParseAddr("2001:db8:1::100"), netip.MustParseAddr("192.0.2.100")
	state := func() (proxy6, proxy4, routes6, routes4 string) {
		return ipOut(t, ns, "-6", "neigh", "show", "proxy"), ipOut(t, ns, "-4", "neigh", "show", "proxy"),
			ipOut(t, ns, "-6", "route", "show", "dev", "tun0"), ipOut(t, ns, "-4", "route", "show", "dev", "tun0")
	}
	for range 2 { // idempotent
		if err := hl.Add(hoa); err != nil {
			t.Fatal(err)
		}
		if err := hl.Add(hoa4); err != nil {
			t.Fatal(err)
		}
	}
	p6, p4, r6, r4 := state()
	if !strings.Contains(p6, "2001:db8:1::100 dev home0") || !strings.Contains(p4, "192.0.2.100 dev home0") {
		t.Errorf("proxy entries missing:\n%s\n%s", p6, p4)
	}
	if !strings.Contains(r6, "2001:db8:1::100") || !strings.Contains(r4, "192.0.2.100") {
		t.Errorf("routes into the TUN missing:\n%s\n%s", r6, r4)
	}
	if got := hl.Installed(); len(got) != 2 {
		t.Errorf("Installed = %v", got)
	}
	for range 2 { // idempotent
		if err := hl.Remove(hoa); err != nil {
			t.Fatal(err)
		}
	}
	p6, p4, r6, r4 = state()
	if strings.Contains(p6, "2001:db8:1::100") || strings.Contains(r6, "2001:db8:1::100") {
		t.Errorf("IPv6 entries left after Remove:\n%s\n%s", p6, r6)
	}
	if !strings.Contains(p4, "192.0.2.100") || !strings.Contains(r4, "192.0.2.100") {
		t.Errorf("Remove(hoa) removed the IPv4 entries too:\n%s\n%s", p4, r4)
	}
	if err := hl.Remove(hoa4); err != nil {
		t.Fatal(err)
	}
	p6, p4, r6, r4 = state()
	if all := p6 + p4 + r6 + r4; strings.Contains(all, "2001:db8:1::100") || strings.Contains(all, "192.0.2.100") {
		t.Errorf("entries left:\n%s%s%s%s", p6, p4, r6, r4)
	}
	if got := hl.Installed(); len(got) != 0 {
		t.Errorf("Installed = %v after Remove", got)
	}
	// Hostile input.
	for _, a := range []netip.Addr{{}, netip.MustParseAddr("::"), netip.MustParseAddr("ff02::1"), netip.MustParseAddr("fe80::1"), netip.MustParseAddr("127.0.0.1")} {
		if err := hl.Add(a); err == nil {
			t.Errorf("Add(%v) accepted", a)
		}
	}
	// The TUN re-created (new index): Add follows the name.
	ctx := context.Background()
	if err := netlab.IP(ctx, "-n", ns, "link", "del", "tun0"); err != nil {
		t.Fatal(err)
	}
	if err := hl.Add(hoa); err == nil || !strings.Contains(err.Error(), `TUN "tun0"`) {
		t.Errorf("Add without the TUN = %v", err)
	}
	if err := addDummy(ctx, ns, "tun0"); err != nil {
		t.Fatal(err)
	}
	if err := netlab.IP(ctx, "-n", ns, "link", "set", "tun0", "up"); err != nil {
		t.Fatal(err)
	}
	if err := hl.Add(hoa); err != nil {
		t.Errorf("Add after the TUN came back: %v", err)
	}
	hl.Remove(hoa)
}

func TestHomeLinkNeedsForwarding(t *testing.T) {
	ns := newNS(t, "fw", "link add home0 type dummy", "link add tun0 type dummy")
	var hl *HomeLink
	inNS(t, ns, func() error {
		setSysctl("net/ipv6/conf/all/forwarding", "0")
		setSysctl("net/ipv4/ip_forward", "0")
		var err error
		hl, err = NewHomeLink(HomeLinkConfig{Interface: "home0", TUN: "tun0"})
		return err
	})
	defer hl.Close()
	for _, a := range []string{"2001:db8:1::100", "192.0.2.100"} {
		err := hl.Add(netip.MustParseAddr(a))
		if !errors.Is(err, ErrForwarding) || !strings.Contains(err.Error(), "sysctl -w net.ipv") {
			t.Errorf("Add(%s) without forwarding = %v", a, err)
		}
	}
	if out := ipOut(t, ns, "route", "show", "dev", "tun0"); strings.TrimSpace(out) != "" {
		t.Errorf("a refused Add left a route: %s", out)
	}
	inNS(t, ns, func() error {
		_, err := NewHomeLink(HomeLinkConfig{Interface: "nosuch0", TUN: "tun0"})
		if err == nil || !strings.Contains(err.Error(), `"nosuch0"`) {
			t.Errorf("NewHomeLink with a missing interface = %v", err)
		}
		return nil
	})
}

func TestAddrWatcher(t *testing.T) {
	ns := newNS(t, "w",
		"link add wa type veth peer name wa-peer", "link set wa up", "link set wa-peer up",
		"link add wb type dummy", "link set wb up",
		"link add other type dummy", "link set other up", "addr add 2001:db8:9::1/64 dev other nodad")
	reports := make(chan []netip.Addr, 32)
	var w *AddrWatcher
	inNS(t, ns, func() error {
		var err error
		w, err = WatchAddrs(WatchConfig{Interfaces: []string{"wa", "wb"}, Debounce: 50 * time.Millisecond,
			OnError: func(err error) { t.Logf("watch: %v", err) }}, func(a []netip.Addr) { reports <- a })
		return err
	})
	defer w.Close()
	want := func(step string, addrs ...string) {
		t.Helper()
		var exp []netip.Addr
		for _, a := range addrs {
			exp = append(exp, netip.MustParseAddr(a))
		}
		slices.SortFunc(exp, func(a, b netip.Addr) int { return a.Compare(b) })
		deadline := time.After(5 * time.Second)
		var last []netip.Addr
		for {
			select {
			case got := <-reports:
				last = got
				if slices.Equal(got, exp) || len(got) == 0 && len(exp) == 0 {
					return
				}
			case <-deadline:
				t.Fatalf("%s: last report %v, want %v", step, last, exp)
			}
		}
	}
	ip := func(args string) {
		t.Helper()
		if err := netlab.IP(context.Background(), append([]string{"-n", ns}, strings.Fields(args)...)...); err != nil {
			t.Fatal(err)
		}
	}
	want("start: nothing on wa/wb; other is not watched")
	ip("addr add 2001:db8:2::100/64 dev wa nodad")
	want("v6 added", "2001:db8:2::100")
	ip("addr add fe80::99/64 dev wa nodad") // link-local: not a CoA
	ip("addr add 203.0.113.10/24 dev wb")
	want("v4 added", "2001:db8:2::100", "203.0.113.10")
	// The peer down: wa loses its carrier.
	ip("link set wa-peer down")
	want("carrier lost", "203.0.113.10")
	ip("link set wa-peer up")
	want("carrier back", "2001:db8:2::100", "203.0.113.10")
	// Admin down: IPv4 stays on wb but the link is not usable.
	ip("link set wb down")
	want("wb down", "2001:db8:2::100")
	ip("link set wb up")
	want("wb up", "2001:db8:2::100", "203.0.113.10")
	ip("addr del 2001:db8:2::100/64 dev wa")
	want("v6 removed", "203.0.113.10")
	// A change elsewhere does not report (the list is the same).
	ip("addr add 2001:db8:9::2/64 dev other nodad")
	select {
	case got := <-reports:
		t.Errorf("report %v after a change on an unwatched interface", got)
	case <-time.After(300 * time.Millisecond):
	}
	if got := w.Last(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("203.0.113.10")}) {
		t.Errorf("Last = %v", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close() // idempotent
	ip("addr add 2001:db8:2::200/64 dev wa nodad")
	select {
	case got := <-reports:
		t.Errorf("report %v after Close", got)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestAddrWatcherAll: no interface list watches everything but Exclude.
func TestAddrWatcherAll(t *testing.T) {
	ns := newNS(t, "wall",
		"link add a0 type dummy", "link set a0 up", "addr add 2001:db8:2::100/64 dev a0 nodad",
		"link add tun0 type dummy", "link set tun0 up", "addr add 2001:db8:1::100/128 dev tun0 nodad")
	reports := make(chan []netip.Addr, 4)
	inNS(t, ns, func() error {
		w, err := WatchAddrs(WatchConfig{Exclude: []string{"tun0"}}, func(a []netip.Addr) { reports <- a })
		if err != nil {
			return err
		}
		defer w.Close()
		select {
		case got := <-reports:
			if !slices.Equal(got, []netip.Addr{netip.MustParseAddr("2001:db8:2::100")}) {
				t.Errorf("first report %v: want a0's address only (loopback and the TUN excluded)", got)
			}
		case <-time.After(5 * time.Second):
			t.Error("no first report")
		}
		return nil
	})
	if _, err := WatchAddrs(WatchConfig{}, nil); err == nil {
		t.Error("nil callback accepted")
	}
}
