package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPing: ping over IPv4 and IPv6 through the tunnel, both directions,
// with raw ESP over an IPv4 underlay, and only ESP on the veth.
func TestPing(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{})
	capA := startCapture(t, p.A.ns, "ul0")
	mustPing(t, p.A.ns, siteA4.Addr(), siteB4.Addr(), 5)
	mustPing(t, p.B.ns, siteB4.Addr(), siteA4.Addr(), 5)
	mustPing(t, p.A.ns, siteA6.Addr(), siteB6.Addr(), 5)
	mustPing(t, p.B.ns, siteB6.Addr(), siteA6.Addr(), 5)
	capA.checkOnlyESP(t, false, 40*50)
	// The daemon's own counters agree: 10 packets out on each SA of A.
	out, err := p.A.ctl("stats")
	if err != nil {
		t.Fatalf("mipsec stats: %v", err)
	}
	for _, name := range []string{"out-v4", "out-v6", "in-v4", "in-v6"} {
		if !strings.Contains(out, name) {
			t.Errorf("mipsec stats lacks SA %s:\n%s", name, out)
		}
	}
	t.Logf("mipsec stats (A):\n%s", out)
}

func testTransfer(t *testing.T, o pairOptions, src, dst netip.Addr, size int) {
	t.Parallel()
	p := newPair(t, o)
	capA := startCapture(t, p.A.ns, "ul0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := tcpTransfer(ctx, p.B.ns, netip.AddrPortFrom(dst, 5201), p.A.ns, src, payload(size), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TCP %v -> %v: %v", src, dst, res)
	capA.checkOnlyESP(t, o.encap == "udp", size)
}

// TestTransfer: 8 MiB over TCP, checked by SHA-256, in raw ESP and ESP in
// UDP, inner IPv4 and IPv6, outer IPv4 and IPv6.
func TestTransfer(t *testing.T) {
	const size = 8 << 20
	t.Run("raw/v4", func(t *testing.T) { testTransfer(t, pairOptions{}, siteA4.Addr(), siteB4.Addr(), size) })
	t.Run("udp/v4", func(t *testing.T) { testTransfer(t, pairOptions{encap: "udp"}, siteA4.Addr(), siteB4.Addr(), size) })
	t.Run("raw/v6-over-v6", func(t *testing.T) {
		testTransfer(t, pairOptions{outer6: true}, siteA6.Addr(), siteB6.Addr(), size)
	})
	t.Run("udp/v6-over-v6", func(t *testing.T) {
		testTransfer(t, pairOptions{encap: "udp", outer6: true}, siteA6.Addr(), siteB6.Addr(), size)
	})
}

// reservedMark returns the "reserved" sequence mark that run (1-based) of
// g logged for the outbound SA named sa, and its seq_state.
func reservedMark(t *testing.T, g *gateway, run int, sa string) (uint64, string) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(g.Log.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e struct {
			Msg      string `json:"msg"`
			SA       string `json:"sa"`
			Dir      string `json:"dir"`
			Reserved uint64 `json:"reserved"`
			SeqState string `json:"seq_state"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "sa added" || e.SA != sa || e.Dir != "out" {
			continue
		}
		if n++; n == run {
			return e.Reserved, e.SeqState
		}
	}
	t.Fatalf("gateway %s run %d: no \"sa added\" line for %s:\n%s", g.name, run, sa, g.Log.String())
	return 0, ""
}

// seqRange returns the lowest and highest sequence number of the
// outbound packets on spi in esp[from:], and their count.
func seqRange(esp []espPacket, from int, spi uint32) (lo, hi uint32, n int) {
	for _, p := range esp[from:] {
		if p.SPI != spi || !p.Out {
			continue
		}
		if n == 0 || p.Seq < lo {
			lo = p.Seq
		}
		hi = max(hi, p.Seq)
		n++
	}
	return lo, hi, n
}

// TestRestart stops gateway A (SIGTERM, then SIGKILL for a crash) and
// starts it again: the ESP sequence numbers it sends on the wire continue
// above every earlier one on the SPI, and after the crash above the mark
// the killed run had reserved on disk; B accepts them (ping works).
func TestRestart(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{})
	capA := startCapture(t, p.A.ns, "ul0")
	traffic := func() {
		t.Helper()
		mustPing(t, p.A.ns, siteA4.Addr(), siteB4.Addr(), 20)
		capA.settle()
	}
	traffic()
	esp := capA.snapshot()
	_, hi1, n := seqRange(esp, 0, spiAB4)
	if n < 20 {
		t.Fatalf("run 1: %d outbound ESP packets on SPI 0x%08x, want 20: %s", n, spiAB4, capA.summary())
	}
	mark1, _ := reservedMark(t, p.A, 1, "out-v4")
	t.Logf("run 1: seqs up to %d, reserved mark %d", hi1, mark1)

	// Graceful: SIGTERM records the exact last number.
	p.A.stop(syscall.SIGTERM)
	p.A.start()
	mark2, state2 := reservedMark(t, p.A, 2, "out-v4")
	from := len(esp)
	traffic()
	esp = capA.snapshot()
	lo2, hi2, n := seqRange(esp, from, spiAB4)
	t.Logf("run 2 (after SIGTERM, seq_state %s): seqs %d..%d (%d packets), reserved mark %d", state2, lo2, hi2, n, mark2)
	if n < 20 || lo2 <= hi1 {
		t.Fatalf("after SIGTERM: %d packets with seqs %d..%d, want 20 above %d", n, lo2, hi2, hi1)
	}

	// Crash: SIGKILL leaves only the reservation on disk.
	p.A.stop(syscall.SIGKILL)
	p.A.start()
	mark3, state3 := reservedMark(t, p.A, 3, "out-v4")
	from = len(esp)
	traffic()
	esp = capA.snapshot()
	lo3, hi3, n := seqRange(esp, from, spiAB4)
	t.Logf("run 3 (after SIGKILL, seq_state %s): seqs %d..%d (%d packets), reserved mark %d", state3, lo3, hi3, n, mark3)
	if n < 20 || lo3 <= hi2 {
		t.Fatalf("after SIGKILL: %d packets with seqs %d..%d, want 20 above %d", n, lo3, hi3, hi2)
	}
	if uint64(lo3) <= mark2 {
		t.Fatalf("after SIGKILL: first seq %d not above the persisted mark %d of the killed run", lo3, mark2)
	}
	// Every ESP packet A ever sent on the SPI has a distinct number.
	seen := map[uint32]bool{}
	for _, e := range esp {
		if e.SPI == spiAB4 && e.Out {
			if seen[e.Seq] {
				t.Fatalf("sequence number %d sent twice on SPI 0x%08x", e.Seq, spiAB4)
			}
			seen[e.Seq] = true
		}
	}
}

// TestBadConfigs: `mipsec check` rejects broken configs with exit code 1
// and names the field.
func TestBadConfigs(t *testing.T) {
	t.Parallel()
	needEnv(t)
	for _, tt := range []struct{ file, want string }{
		{"key-length.toml", "sa[0].enc_key"},
		{"bad-encap.toml", "underlay.encap"},
		{"bad-endpoint.toml", "peer[0].endpoint"},
		{"duplicate-spi.toml", "sa[2].spi"},
		{"unknown-algorithm.toml", "sa[0].algorithm"},
		{"missing-tun-name.toml", "tun.name"},
		{"syntax.toml", "syntax.toml:"},
	} {
		cmd := exec.Command(mipsecBin, "check", "-c", filepath.Join("..", "testdata", "bad", tt.file))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("mipsec check %s: %v, want exit code 1\n%s", tt.file, err, out)
			continue
		}
		if !strings.Contains(string(out), tt.want) {
			t.Errorf("mipsec check %s: output does not name %q:\n%s", tt.file, tt.want, out)
		}
	}
	// A good config passes (exit 0), and running a bad one fails at once.
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("state_dir = \"/nonexistent\"\n[tun]\nname = \"x\"\nmtu = 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, mipsecBin, "run", "-c", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "tun.mtu") {
		t.Errorf("mipsec run with mtu = 10: %v, want an error naming tun.mtu\n%s", err, out)
	}
}

// TestExampleConfigs runs testdata/gateway-a.toml and gateway-b.toml as
// shipped (only state_dir and the control socket moved to a temporary
// directory): A at 198.51.100.1 and B at 203.0.113.1 on one veth, each with
// an on-link route to the other; ping between the sites over IPv4 and IPv6.
func TestExampleConfigs(t *testing.T) {
	t.Parallel()
	needEnv(t)
	nsA, nsB := newNetns(t), newNetns(t)
	outerB := netip.MustParsePrefix("203.0.113.1/24")
	veth(t, nsA, nsB, "ul0", ulA4, netip.Prefix{}, outerB, netip.Prefix{})
	run(t, "ip", "-n", nsA, "route", "add", "203.0.113.1/32", "dev", "ul0")
	run(t, "ip", "-n", nsB, "route", "add", "198.51.100.1/32", "dev", "ul0")
	dir := t.TempDir()
	var gws []*gateway
	for _, side := range []struct{ name, ns string }{{"a", nsA}, {"b", nsB}} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "gateway-"+side.name+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(dir, side.name+".sock")
		var lines []string
		for _, l := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(l, "state_dir = "):
				l = `state_dir = "` + filepath.Join(dir, "state-"+side.name) + `"`
			case strings.HasPrefix(l, "socket = "):
				l = `socket = "` + sock + `"`
			}
			lines = append(lines, l)
		}
		path := filepath.Join(dir, "gateway-"+side.name+".toml")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		g := newGatewayFile(t, strings.ToUpper(side.name), side.ns, path, gwConfig{Socket: sock})
		g.start()
		gws = append(gws, g)
	}
	capA := startCapture(t, nsA, "ul0")
	mustPing(t, nsA, siteA4.Addr(), siteB4.Addr(), 3)
	mustPing(t, nsB, siteB4.Addr(), siteA4.Addr(), 3)
	mustPing(t, nsA, siteA6.Addr(), siteB6.Addr(), 3)
	mustPing(t, nsB, siteB6.Addr(), siteA6.Addr(), 3)
	capA.checkOnlyESP(t, false, 24*50)
	if out, err := gws[1].ctl("status"); err != nil {
		t.Errorf("mipsec status (B): %v", err)
	} else {
		t.Logf("mipsec status (B):\n%s", out)
	}
}

// TestNATKeepalive: with ESP in UDP and an idle tunnel, each gateway sends
// one-byte 0xFF NAT keepalives (RFC 3948 §4) at the configured interval,
// and they are all the veth carries besides ESP.
func TestNATKeepalive(t *testing.T) {
	t.Parallel()
	p := newPair(t, pairOptions{encap: "udp", tweak: func(a, b *gwConfig) { a.Keepalive, b.Keepalive = "200ms", "200ms" }})
	capA := startCapture(t, p.A.ns, "ul0")
	mustPing(t, p.A.ns, siteA4.Addr(), siteB4.Addr(), 1)
	time.Sleep(1500 * time.Millisecond)
	capA.checkOnlyESP(t, true, 2*50)
	n := capA.Stats().Keepalives
	if n < 4 {
		t.Errorf("%d NAT keepalives in 1.5 s at 200 ms on both sides, want at least 4: %s", n, capA.summary())
	}
}
