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

	"github.com/mipsec/mipsec/internal/seqstore"
	"github.com/mipsec/mipsec/internal/testenv"
)

// TestRunNamespaces runs the real binary twice, as gateway A and B of the
// example configs, in two network namespaces joined by a veth (root only):
// traffic crosses the tunnel, A is killed with SIGKILL (no clean shutdown)
// and restarted, and B then sees sequence numbers above the mark A had
// persisted, with no replay drops; SIGTERM stops both with exit 0 and A
// records its exact last sequence number.
func TestRunNamespaces(t *testing.T) {
	testenv.NeedRoot(t)
	ipCmd := testenv.NeedCommand(t, "ip")
	bash := testenv.NeedCommand(t, "bash")
	dir := t.TempDir()
	bin := filepath.Join(dir, "mipsec")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	nsA, nsB := fmt.Sprintf("mipsec-ta-%d", os.Getpid()), fmt.Sprintf("mipsec-tb-%d", os.Getpid())
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
		os.WriteFile(f, []byte(s), 0o600)
		return f
	}
	stateA := filepath.Join(dir, "state-a")
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	cfgA := config("gateway-a.toml", stateA, sockA)
	cfgB := config("gateway-b.toml", filepath.Join(dir, "state-b"), sockB)

	start := func(ns, cfg, sock, logName string) *exec.Cmd {
		t.Helper()
		os.Remove(sock)
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
		b, _ := os.ReadFile(filepath.Join(dir, logName))
		t.Fatalf("%s did not come up:\n%s", logName, b)
		return nil
	}
	sendUDP := func(n int) {
		t.Helper()
		script := fmt.Sprintf("for i in $(seq %d); do echo hello > /dev/udp/192.0.2.129/9; done", n)
		if out, err := exec.Command(ipCmd, "netns", "exec", nsA, bash, "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("send: %v\n%s", err, out)
		}
	}
	// inboundAtB waits until B's inbound SA 0xb001 has delivered want
	// packets and returns its state.
	inboundAtB := func(want uint64) saInfo {
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
				return last
			}
		}
		t.Fatalf("B's inbound SA: %+v, want %d packets", last, want)
		return last
	}

	b := start(nsB, cfgB, sockB, "b.log")
	a := start(nsA, cfgA, sockA, "a.log")
	sendUDP(3)
	before := inboundAtB(3)

	// Crash A: SIGKILL, nothing flushed.
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	cfg, err := loadConfig(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.SAs[0].Params
	fp := seqstore.KeyFingerprint(p.Algorithm.String(), p.EncKey, p.AuthKey)
	st, _ := seqstore.Open(stateA, seqstore.Options{})
	mark, _, err := st.Load(spiAtoB, fp)
	if err != nil || mark < before.Seq {
		t.Fatalf("persisted mark %d (%v) below the %d packets B saw", mark, err, before.Seq)
	}

	a = start(nsA, cfgA, sockA, "a2.log")
	sendUDP(2)
	after := inboundAtB(5)
	if after.Seq <= mark {
		t.Errorf("after A's restart B's highest sequence number is %d, not above the persisted mark %d", after.Seq, mark)
	}
	if after.Stats.Packets != 5 || after.Stats.Drops["replay"] != 0 {
		t.Errorf("B's inbound SA after the restart: %+v", after.Stats)
	}

	// SIGTERM: both exit 0; A records its exact last number.
	for _, c := range []*exec.Cmd{a, b} {
		c.Process.Signal(syscall.SIGTERM)
		if err := c.Wait(); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	}
	if got, _, err := st.Load(spiAtoB, fp); err != nil || got != after.Seq {
		t.Errorf("after a clean stop the state says %d (%v), want exactly %d", got, err, after.Seq)
	}
	if t.Failed() {
		for _, n := range []string{"a.log", "a2.log", "b.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, n))
			t.Logf("%s:\n%s", n, b)
		}
	}
}
