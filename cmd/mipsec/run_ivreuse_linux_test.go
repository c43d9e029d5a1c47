//go:build linux

package main

import (
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/netlab"
)

// TestRunNoIVReuse keeps gateway A's AES-GCM key (testdata/gateway-a.toml,
// SA a-to-b-v4) and moves it to a new SPI in every way a user can: a config
// change across a SIGKILL, a config change across a clean SIGTERM stop, and
// `mipsec sa del` + `mipsec sa add` on the running daemon (a second SA with
// the key while the first lives is refused). A capture on A's link shows
// that no IV (for GCM, the 64-bit counter: RFC 4106 §3.1) is ever repeated
// under the key.
func TestRunNoIVReuse(t *testing.T) {
	spiOf := func(n int) string { return "0x0000b00" + string(rune('0'+n)) }
	cur := 1
	l := newGatewayLab(t, "iv", nil)
	rewrite := func(n int) {
		for _, f := range []string{l.cfgA, l.cfgB} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(f, []byte(strings.ReplaceAll(string(b), spiOf(cur), spiOf(n))), 0o600)
		}
		cur = n
	}
	spis := map[uint32]bool{0xb001: true, 0xb002: true, 0xb003: true, 0xb004: true, 0xb005: true}
	capt, err := netlab.StartCaptureOpts(l.nsA, "va", netlab.CaptureOptions{Keep: func(f netlab.Frame) bool {
		return f.Kind == netlab.ESP && spis[f.SPI]
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Close()
	delivered := func(spi uint32, want uint64) {
		t.Helper()
		var last control.SAInfo
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var sas []control.SAInfo
			if err := (control.Client{Path: l.sockB}).Call("sa.list", nil, &sas); err != nil {
				t.Fatal(err)
			}
			for _, s := range sas {
				if s.Dir == "in" && s.SPI == control.SPI(spi) {
					last = s
				}
			}
			if last.Stats.Packets >= want {
				return
			}
		}
		t.Fatalf("B's inbound SA %#x: %+v, want %d packets", spi, last, want)
	}
	cli := func(sock string, args ...string) (string, error) {
		out, err := exec.Command(l.ip, append([]string{"netns", "exec", l.nsA, l.bin}, append(args, "--socket", sock)...)...).CombinedOutput()
		return string(out), err
	}

	b := l.start(l.nsB, l.cfgB, l.sockB, "b1.log")
	a := l.start(l.nsA, l.cfgA, l.sockA, "a1.log")
	l.sendUDP(3)
	delivered(0xb001, 3)

	// 1. SIGKILL, then the same key under a new SPI in both configs.
	a.Process.Kill()
	a.Wait()
	l.stop(b)
	rewrite(2)
	b = l.start(l.nsB, l.cfgB, l.sockB, "b2.log")
	a = l.start(l.nsA, l.cfgA, l.sockA, "a2.log")
	l.sendUDP(3)
	delivered(0xb002, 3)

	// 2. A clean stop, then another SPI.
	l.stop(a, b)
	rewrite(3)
	b = l.start(l.nsB, l.cfgB, l.sockB, "b3.log")
	a = l.start(l.nsA, l.cfgA, l.sockA, "a3.log")
	l.sendUDP(3)
	delivered(0xb003, 3)

	// 3. Live: a second SA with the key is refused while 0xb003 lives;
	// after `sa del` the key continues under 0xb004.
	const key = "0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223"
	add := func(sock, dir, spi string) (string, error) {
		local, remote := "192.0.2.0/25", "192.0.2.128/25"
		if dir == "in" {
			local, remote = remote, local
		}
		return cli(sock, "sa", "add", "--dir", dir, "--spi", spi, "--alg", "aes128gcm16", "--enc-key", key,
			"--src", "198.51.100.1", "--dst", "203.0.113.1", "--local", local, "--remote", remote)
	}
	if out, err := add(l.sockA, "out", "0xb004"); err == nil || !strings.Contains(out, "same nonces") {
		t.Fatalf("sa add with the key of the live SA 0xb003: %v\n%s", err, out)
	}
	steps := [][]string{
		{"sa", "del", "out", "0xb003"},
		{"policy", "del", "out-v4"},
	}
	for _, s := range steps {
		if out, err := cli(l.sockA, s...); err != nil {
			t.Fatalf("%v: %v\n%s", s, err, out)
		}
	}
	if out, err := add(l.sockA, "out", "0xb004"); err != nil {
		t.Fatalf("sa add after sa del: %v\n%s", err, out)
	}
	// B holds the key too (its inbound SA): one SA per counter-mode key
	// there as well.
	if out, err := add(l.sockB, "in", "0xb004"); err == nil || !strings.Contains(out, "same nonces") {
		t.Fatalf("B: sa add in with the key of its live inbound SA 0xb003: %v\n%s", err, out)
	}
	if out, err := cli(l.sockB, "sa", "del", "in", "0xb003"); err != nil {
		t.Fatalf("B: sa del: %v\n%s", err, out)
	}
	if out, err := add(l.sockB, "in", "0xb004"); err != nil {
		t.Fatalf("B: %v\n%s", err, out)
	}
	if out, err := cli(l.sockA, "policy", "add", "--index", "0", "--name", "out-v4", "--dir", "out", "--action", "protect",
		"--spi", "0xb004", "--local", "192.0.2.0/25", "--remote", "192.0.2.128/25"); err != nil {
		t.Fatalf("policy add: %v\n%s", err, out)
	}
	l.sendUDP(3)
	delivered(0xb004, 3)
	// 4. The SA added live survives a SIGKILL through its record: the
	// config (still naming 0xb003 with the key) continues above it. B
	// goes back to 0xb003 live.
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	if out, err := cli(l.sockB, "sa", "del", "in", "0xb004"); err != nil {
		t.Fatalf("B: sa del: %v\n%s", err, out)
	}
	if out, err := add(l.sockB, "in", "0xb003"); err != nil {
		t.Fatalf("B: %v\n%s", err, out)
	}
	a = l.start(l.nsA, l.cfgA, l.sockA, "a4.log")
	l.sendUDP(3)
	delivered(0xb003, 3)
	l.stop(a, b)
	capt.Close()

	ivs := map[uint64]uint32{} // IV -> SPI
	frames := 0
	for _, f := range capt.Kept() {
		if !f.Out {
			continue
		}
		frames++
		ip := f.Data[14:]
		esp := ip[int(ip[0]&0x0f)*4:]
		if len(esp) < 16 {
			t.Fatalf("short ESP frame %x", f.Data)
		}
		iv := binary.BigEndian.Uint64(esp[8:16])
		if iv != uint64(f.Seq) {
			t.Errorf("SPI %#x seq %d carries IV %d; GCM's IV is the counter", f.SPI, f.Seq, iv)
		}
		if prev, dup := ivs[iv]; dup {
			t.Errorf("IV %d used twice under one key: SPI %#x and SPI %#x", iv, prev, f.SPI)
		}
		ivs[iv] = f.SPI
	}
	if frames < 15 {
		t.Errorf("captured %d ESP frames of the key, want 15", frames)
	}
	t.Logf("%d frames, IVs %v", frames, ivs)
}
