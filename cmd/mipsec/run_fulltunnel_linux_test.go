//go:build linux

package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/fixture"
)

// TestRunFullTunnel: gateways A and B with full-tunnel TUN routes
// (0.0.0.0/0 and ::/0) and, in the main table, only a default route out
// of the underlay link: the underlay's marked ESP leaves by main and never
// loops into the TUN (fwmark 4500 and the policy routes, node/linux.go),
// IPv4 and IPv6 traffic crosses the tunnel, and the rules and routes are
// gone after SIGTERM, and after a SIGKILL and a restart too (the restart
// replaces the leftovers).
func TestRunFullTunnel(t *testing.T) {
	l := newGatewayLab(t, "f", func(name, cfg string) string {
		for _, r := range []string{`routes = ["192.0.2.128/25", "2001:db8:b::/48"]`, `routes = ["192.0.2.0/25", "2001:db8:a::/48"]`} {
			cfg = strings.Replace(cfg, r, `routes = ["0.0.0.0/0", "::/0"]`, 1)
		}
		return cfg
	})
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(l.ip, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// Only a default route towards the peer: without the mark the full
	// tunnel would capture the ESP.
	ip("-n", l.nsA, "route", "del", "203.0.113.0/24", "dev", "va")
	ip("-n", l.nsA, "route", "add", "default", "dev", "va")
	ip("-n", l.nsB, "route", "del", "198.51.100.0/24", "dev", "vb")
	ip("-n", l.nsB, "route", "add", "default", "dev", "vb")

	b := l.start(l.nsB, l.cfgB, l.sockB, "b.log")
	a := l.start(l.nsA, l.cfgA, l.sockA, "a.log")
	installed := func(ns string) bool {
		r4, r6 := ip("-n", ns, "-4", "rule", "show"), ip("-n", ns, "-6", "rule", "show")
		rt := ip("-n", ns, "-4", "route", "show", "table", "4500") + ip("-n", ns, "-6", "route", "show", "table", "4500")
		return strings.Contains(r4, "not from all fwmark 0x1194 lookup 4500") && strings.Contains(r6, "not from all fwmark 0x1194 lookup 4500") &&
			strings.Contains(r4, "suppress_prefixlength 0") && strings.Count(rt, "default dev mipsec-") == 2
	}
	for _, ns := range []string{l.nsA, l.nsB} {
		if !installed(ns) {
			t.Fatalf("%s: policy routing not installed:\n%s%s%s", ns, ip("-n", ns, "rule"), ip("-n", ns, "-6", "rule"), ip("-n", ns, "route", "show", "table", "all"))
		}
	}

	l.sendUDP(3)
	l.inboundAtB(3)
	script := "for i in 1 2 3; do echo hello > /dev/udp/2001:db8:b::1/9; done"
	if out, err := exec.Command(l.ip, "netns", "exec", l.nsA, l.bash, "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("send IPv6: %v\n%s", err, out)
	}
	saPackets := func(sock, dir string, spi uint32) uint64 {
		var sas []control.SAInfo
		if err := (control.Client{Path: sock}).Call("sa.list", nil, &sas); err != nil {
			t.Fatal(err)
		}
		for _, s := range sas {
			if s.Dir == dir && uint32(s.SPI) == spi {
				return s.Stats.Packets
			}
		}
		return 0
	}
	for deadline := time.Now().Add(10 * time.Second); saPackets(l.sockB, "in", 0xb006) < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("B's IPv6 inbound SA: %d packets, want 3", saPackets(l.sockB, "in", 0xb006))
		}
	}
	// No loop: A sealed what it was given, not millions of its own ESP.
	time.Sleep(200 * time.Millisecond)
	if n := saPackets(l.sockA, "out", fixture.SPIAtoB) + saPackets(l.sockA, "out", 0xb006); n > 20 {
		t.Errorf("A sealed %d packets for 6 sent: a loop", n)
	}

	// SIGKILL leaves the rules; the restart replaces them, SIGTERM removes
	// them.
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	a = l.start(l.nsA, l.cfgA, l.sockA, "a2.log")
	if r := ip("-n", l.nsA, "-4", "rule", "show"); strings.Count(r, "lookup 4500") != 1 {
		t.Errorf("after a restart:\n%s", r)
	}
	l.sendUDP(2)
	l.inboundAtB(5)
	l.stop(a, b)
	for _, ns := range []string{l.nsA, l.nsB} {
		for _, fam := range []string{"-4", "-6"} {
			if r := ip("-n", ns, fam, "rule", "show"); strings.Contains(r, "fwmark") || strings.Contains(r, "suppress") {
				t.Errorf("%s: rules left after exit:\n%s", ns, r)
			}
			if r := ip("-n", ns, fam, "route", "show", "table", "all"); strings.Contains(r, "table 45") || strings.Contains(r, "mipsec-") {
				t.Errorf("%s: routes left after exit:\n%s", ns, r)
			}
		}
	}
}
