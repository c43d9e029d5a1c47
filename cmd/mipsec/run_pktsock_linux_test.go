//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/testenv"
)

// TestRunPacketSocket runs the real binary as gateways A and B of the
// example configs with [underlay] packet_socket = true in two network
// namespaces joined by a veth (root only): A announces the AF_PACKET path
// at startup, every packet crosses the tunnel, and A's underlay counters
// show raw ESP sent through the AF_PACKET socket (the first packets, before
// the neighbour is resolved, through the raw socket) and no send errors.
func TestRunPacketSocket(t *testing.T) {
	testenv.NeedRoot(t)
	ipCmd := testenv.NeedCommand(t, "ip")
	bash := testenv.NeedCommand(t, "bash")
	dir := t.TempDir()
	bin := filepath.Join(dir, "mipsec")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	nsA, nsB := fmt.Sprintf("mipsec-pa-%d", os.Getpid()), fmt.Sprintf("mipsec-pb-%d", os.Getpid())
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	sh("netns", "add", nsA)
	t.Cleanup(func() { exec.Command(ipCmd, "netns", "del", nsA).Run() })
	sh("netns", "add", nsB)
	t.Cleanup(func() { exec.Command(ipCmd, "netns", "del", nsB).Run() })
	sh("link", "add", "va", "netns", nsA, "type", "veth", "peer", "name", "vb", "netns", nsB)
	sh("-n", nsA, "addr", "add", "198.51.100.1/24", "dev", "va")
	sh("-n", nsB, "addr", "add", "203.0.113.1/24", "dev", "vb")
	for _, x := range [][2]string{{nsA, "va"}, {nsB, "vb"}} {
		sh("-n", x[0], "link", "set", x[1], "up")
		sh("-n", x[0], "link", "set", "lo", "up")
	}
	sh("-n", nsA, "route", "add", "203.0.113.0/24", "dev", "va")
	sh("-n", nsB, "route", "add", "198.51.100.0/24", "dev", "vb")

	config := func(name, state, sock string) string {
		f := withStateDir(t, "../../testdata/"+name, state)
		b, _ := os.ReadFile(f)
		s := strings.Replace(string(b), `socket = "/run/mipsec/`+strings.TrimSuffix(name, ".toml")+`.sock"`, `socket = "`+sock+`"`, 1)
		if !strings.Contains(s, "\n[underlay]\n") {
			t.Fatalf("%s has no [underlay]", name)
		}
		s = strings.Replace(s, "\n[underlay]\n", "\n[underlay]\npacket_socket = true\n", 1)
		os.WriteFile(f, []byte(s), 0o600)
		return f
	}
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	cfgA := config("gateway-a.toml", filepath.Join(dir, "state-a"), sockA)
	cfgB := config("gateway-b.toml", filepath.Join(dir, "state-b"), sockB)
	logs := func() {
		for _, n := range []string{"a.log", "b.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, n))
			t.Logf("%s:\n%s", n, b)
		}
	}

	start := func(ns, cfg, sock, logName string) *exec.Cmd {
		t.Helper()
		logf, _ := os.Create(filepath.Join(dir, logName))
		cmd := exec.Command(ipCmd, "netns", "exec", ns, bin, "run", "-c", cfg)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var st map[string]any
			if (ctlClient{path: sock}).call("status", nil, &st) == nil {
				return cmd
			}
		}
		logs()
		t.Fatalf("%s did not come up", logName)
		return nil
	}
	sendUDP := func(n int) {
		t.Helper()
		script := fmt.Sprintf("for i in $(seq %d); do echo hello > /dev/udp/192.0.2.129/9; done", n)
		if out, err := exec.Command(ipCmd, "netns", "exec", nsA, bash, "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("send: %v\n%s", err, out)
		}
	}
	inboundAtB := func(want uint64) {
		t.Helper()
		var last saInfo
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var sas []saInfo
			if err := (ctlClient{path: sockB}).call("sa.list", nil, &sas); err != nil {
				t.Fatal(err)
			}
			for _, s := range sas {
				if s.Dir == "in" && s.SPI == spiAtoB {
					last = s
				}
			}
			if last.Stats.Packets >= want {
				return
			}
		}
		logs()
		t.Fatalf("B's inbound SA: %+v, want %d packets", last, want)
	}

	b := start(nsB, cfgB, sockB, "b.log")
	a := start(nsA, cfgA, sockA, "a.log")
	sendUDP(3) // resolves the neighbour
	inboundAtB(3)
	sendUDP(20)
	inboundAtB(23)

	var st statsInfo
	if err := (ctlClient{path: sockA}).call("stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	ps, fb, errs := st.Underlay["tx_packet_socket"], st.Underlay["tx_packet_socket_fallback"], st.Underlay["tx_packet_socket_errors"]
	t.Logf("A's underlay: tx_packet_socket %d, tx_packet_socket_fallback %d, tx_packet_socket_errors %d", ps, fb, errs)
	if ps == 0 || ps+fb < 23 || errs != 0 {
		t.Errorf("A's underlay: tx_packet_socket %d, tx_packet_socket_fallback %d, tx_packet_socket_errors %d; want AF_PACKET sends, 23 raw ESP packets in all, no errors (%v)",
			ps, fb, errs, st.Underlay)
	}

	for _, c := range []*exec.Cmd{a, b} {
		c.Process.Signal(syscall.SIGTERM)
		if err := c.Wait(); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	}
	logA, _ := os.ReadFile(filepath.Join(dir, "a.log"))
	if n := strings.Count(string(logA), "raw ESP leaves through an AF_PACKET socket"); n != 1 {
		t.Errorf("a.log announces the AF_PACKET path %d times, want once", n)
	}
	if t.Failed() {
		logs()
	}
}
