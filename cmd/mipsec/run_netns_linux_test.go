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

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/internal/testenv"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/seqstore"
)

// gatewayLab is the real binary as gateways A and B of the example configs
// (testdata/gateway-a.toml, gateway-b.toml) in two network namespaces
// joined by a veth (root only). Namespaces and processes are removed when
// the test ends, also when it fails; a failed test logs the processes'
// logs.
type gatewayLab struct {
	t                  *testing.T
	ip, bash, bin, dir string
	nsA, nsB           string
	// The control sockets, configs and A's state directory.
	sockA, sockB, cfgA, cfgB, stateA string
}

// newGatewayLab builds the binary and the namespaces (named after tag) and
// writes both configs, passing each through edit (nil: none).
func newGatewayLab(t *testing.T, tag string, edit func(name, cfg string) string) *gatewayLab {
	t.Helper()
	testenv.NeedRoot(t)
	l := &gatewayLab{t: t, ip: testenv.NeedCommand(t, "ip"), bash: testenv.NeedCommand(t, "bash"), dir: t.TempDir()}
	t.Cleanup(func() { // after the processes' cleanups: the logs are complete
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(l.dir, "*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
		}
	})
	l.bin = filepath.Join(l.dir, "mipsec")
	if out, err := exec.Command("go", "build", "-o", l.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l.nsA, l.nsB = fmt.Sprintf("mipsec-%sa-%d", tag, os.Getpid()), fmt.Sprintf("mipsec-%sb-%d", tag, os.Getpid())
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(l.ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{l.nsA, l.nsB} {
		sh("netns", "add", ns)
		t.Cleanup(func() { exec.Command(l.ip, "netns", "del", ns).Run() })
	}
	sh("link", "add", "va", "netns", l.nsA, "type", "veth", "peer", "name", "vb", "netns", l.nsB)
	sh("-n", l.nsA, "addr", "add", "198.51.100.1/24", "dev", "va")
	sh("-n", l.nsB, "addr", "add", "203.0.113.1/24", "dev", "vb")
	for _, x := range [][2]string{{l.nsA, "va"}, {l.nsB, "vb"}} {
		sh("-n", x[0], "link", "set", x[1], "up")
		sh("-n", x[0], "link", "set", "lo", "up")
	}
	sh("-n", l.nsA, "route", "add", "203.0.113.0/24", "dev", "va")
	sh("-n", l.nsB, "route", "add", "198.51.100.0/24", "dev", "vb")

	config := func(name, state, sock string) string {
		f := withStateDir(t, "../../testdata/"+name, state)
		b, _ := os.ReadFile(f)
		s := strings.Replace(string(b), `socket = "/run/mipsec/`+strings.TrimSuffix(name, ".toml")+`.sock"`, `socket = "`+sock+`"`, 1)
		if edit != nil {
			s = edit(name, s)
		}
		os.WriteFile(f, []byte(s), 0o600)
		return f
	}
	l.stateA = filepath.Join(l.dir, "state-a")
	l.sockA, l.sockB = filepath.Join(l.dir, "a.sock"), filepath.Join(l.dir, "b.sock")
	l.cfgA = config("gateway-a.toml", l.stateA, l.sockA)
	l.cfgB = config("gateway-b.toml", filepath.Join(l.dir, "state-b"), l.sockB)
	return l
}

// start runs `mipsec run -c cfg` in ns, logging to logName, and waits for
// its control socket.
func (l *gatewayLab) start(ns, cfg, sock, logName string) *exec.Cmd {
	t := l.t
	t.Helper()
	os.Remove(sock)
	logf, _ := os.Create(filepath.Join(l.dir, logName))
	cmd := exec.Command(l.ip, "netns", "exec", ns, l.bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var st map[string]any
		if (control.Client{Path: sock}).Call("status", nil, &st) == nil {
			return cmd
		}
	}
	t.Fatalf("%s did not come up", logName)
	return nil
}

// sendUDP sends n datagrams from A's namespace to a host behind B.
func (l *gatewayLab) sendUDP(n int) {
	l.t.Helper()
	script := fmt.Sprintf("for i in $(seq %d); do echo hello > /dev/udp/192.0.2.129/9; done", n)
	if out, err := exec.Command(l.ip, "netns", "exec", l.nsA, l.bash, "-c", script).CombinedOutput(); err != nil {
		l.t.Fatalf("send: %v\n%s", err, out)
	}
}

// inboundAtB waits until B's inbound SA 0xb001 has delivered want packets
// and returns its state.
func (l *gatewayLab) inboundAtB(want uint64) control.SAInfo {
	t := l.t
	t.Helper()
	var last control.SAInfo
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var sas []control.SAInfo
		if err := (control.Client{Path: l.sockB}).Call("sa.list", nil, &sas); err != nil {
			t.Fatal(err)
		}
		for _, s := range sas {
			if s.Dir == "in" && s.SPI == fixture.SPIAtoB {
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

// stop sends SIGTERM to each process and expects exit 0.
func (l *gatewayLab) stop(cmds ...*exec.Cmd) {
	for _, c := range cmds {
		c.Process.Signal(syscall.SIGTERM)
		if err := c.Wait(); err != nil {
			l.t.Errorf("exit after SIGTERM: %v", err)
		}
	}
}

// TestRunNamespaces runs the real binary twice, as gateway A and B of the
// example configs, in two network namespaces joined by a veth (root only):
// traffic crosses the tunnel, A is killed with SIGKILL (no clean shutdown)
// and restarted, and B then sees sequence numbers above the mark A had
// persisted, with no replay drops; SIGTERM stops both with exit 0 and A
// records its exact last sequence number.
func TestRunNamespaces(t *testing.T) {
	l := newGatewayLab(t, "t", nil)
	b := l.start(l.nsB, l.cfgB, l.sockB, "b.log")
	a := l.start(l.nsA, l.cfgA, l.sockA, "a.log")
	l.sendUDP(3)
	before := l.inboundAtB(3)

	// Crash A: SIGKILL, nothing flushed.
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	cfg, err := config.Load(l.cfgA)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.SAs[0].Params
	st, _ := seqstore.Open(l.stateA, seqstore.Options{})
	rec, _, err := st.Load(node.KeyFingerprint(p))
	mark := rec.Reserved
	if err != nil || mark < before.Seq {
		t.Fatalf("persisted mark %d (%v) below the %d packets B saw", mark, err, before.Seq)
	}

	a = l.start(l.nsA, l.cfgA, l.sockA, "a2.log")
	l.sendUDP(2)
	after := l.inboundAtB(5)
	if after.Seq <= mark {
		t.Errorf("after A's restart B's highest sequence number is %d, not above the persisted mark %d", after.Seq, mark)
	}
	if after.Stats.Packets != 5 || after.Stats.Drops["replay"] != 0 {
		t.Errorf("B's inbound SA after the restart: %+v", after.Stats)
	}

	// SIGTERM: both exit 0; A records its exact last number.
	l.stop(a, b)
	if got, _, err := st.Load(node.KeyFingerprint(p)); err != nil || got.Reserved != after.Seq {
		t.Errorf("after a clean stop the state says %d (%v), want exactly %d", got.Reserved, err, after.Seq)
	}
}
