//go:build linux

package demo

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

// noDemoLeftovers fails t if a namespace of the demo or a daemon started
// from bin is left.
func noDemoLeftovers(t *testing.T, bin string) {
	t.Helper()
	if ns, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(ns), fmt.Sprintf("mipsec-demo-%d-", os.Getpid())) {
		t.Errorf("namespaces left after the demo:\n%s", ns)
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		if b, err := os.ReadFile(f); err == nil && bytes.HasPrefix(b, []byte(bin+"\x00run")) {
			t.Errorf("a daemon still runs after the demo: %s %q", f, b)
		}
	}
}

// TestMobDemo runs the mobility demo end to end (as root): HA and MN from
// the embedded example configs, registration, a TCP and a UDP stream from
// the CN to the home address across A -> B -> A, the per-move report and
// the access captures; then checks that everything was torn down, also
// after a Ctrl-C.
func TestMobDemo(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "ip")
	testenv.NeedCommand(t, "nft")
	bin := filepath.Join(t.TempDir(), "mipsec")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mipsec/mipsec/cmd/mipsec").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("interrupt", func(t *testing.T) {
		w := &interruptWriter{trigger: "==> waiting for the home registration"}
		var stderr bytes.Buffer
		rc := Namespaces([]string{"-mipsec", bin}, w, &stderr, testEnv)
		out := w.buf.String()
		if rc != 130 || !strings.Contains(stderr.String(), "interrupted") {
			t.Fatalf("exit %d, want 130 with \"interrupted\"\nstdout:\n%s\nstderr:\n%s", rc, out, stderr.String())
		}
		if !strings.Contains(out, "teardown:") {
			t.Errorf("no teardown after Ctrl-C:\n%s", out)
		}
		noDemoLeftovers(t, bin)
	})
	for _, tc := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"moves", nil, []string{
			"IKEv2 keying (RFC 4877 §7) with certificates from a CA made for the run",
			"MN: ", "(subjectAltName iPAddress 2001:db8:1::100: its IKE identity)",
			"child payload  tunnel    2001:db8:1::100/128,192.0.2.100/32 -> ::/0,0.0.0.0/0",
			"for the home address 2001:db8:1::100",
			"payload child rekeyed during the handover",
			"IKE SA followed the move (K flag, no IKE exchange): MN 203.0.113.10:4500 <-> HA 198.51.100.1:4500, HA sees the MN at 198.51.100.2:",
			"IKE SA followed the move (K flag, no IKE exchange): MN [2001:db8:2::100]:4500 <-> HA [2001:db8:1::1]:4500",
			"=> only IKE and ESP crossed the access networks",
		}},
		{"manual", []string{"--manual"}, []string{
			"manual keys: the SA1..SA8",
			"=> only ESP crossed the access networks",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			rc := Namespaces(append([]string{"-mipsec", bin, "-dwell", "2s", "-rate", "1024"}, tc.args...), &stdout, &stderr, testEnv)
			out := stdout.String()
			if rc != 0 {
				t.Fatalf("mobility demo: exit %d\nstdout:\n%s\nstderr:\n%s", rc, out, stderr.String())
			}
			for _, want := range append([]string{
				"registered after",
				"move 1, A (IPv6) -> B (IPv4 behind NAT):",
				"move 2, B (IPv4 behind NAT) -> A (IPv6):",
				"(NAT detected)",
				"the stream survived both moves",
				"teardown:",
				"demo OK",
			}, tc.wants...) {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			for _, re := range []string{
				`handover time: [0-9.]+m?s \(old link down`,
				`packets lost: [0-9]+ of [0-9]+ UDP datagrams`,
				`TCP stream: survived, [0-9]+ KiB sent after the move`,
			} {
				if n := len(regexp.MustCompile(re).FindAllString(out, -1)); n != 2 {
					t.Errorf("output has %d lines matching %q, want one per move:\n%s", n, re, out)
				}
			}
			noDemoLeftovers(t, bin)
			t.Logf("demo output:\n%s", out)
		})
	}
}

// TestMobDemoReport: the per-move measurements (netlab's HandoverAfter,
// tested here on a demo-shaped capture) and the capture verdicts
// the mobility demo prints, on hand-made captures.
func TestMobDemoReport(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	s := netlab.Stats{ESP: []netlab.ESPPacket{
		{SPI: 0xb008, Out: true, Time: at(-5)},             // data before the move: ignored
		{SPI: 0xa001, HAO: true, Time: at(100)},            // BU from the MN
		{SPI: 0xb002, RH2: true, Out: true, Time: at(110)}, // BA to it
		{SPI: 0xb008, Out: true, Time: at(120)},            // first data to the MN
		{SPI: 0xa007, Time: at(130)},                       // first data from it
		{SPI: 0xb008, Out: true, Time: at(140)},
	}}
	h := s.HandoverAfter(t0)
	if !h.BU.Equal(at(100)) || !h.BA.Equal(at(110)) || !h.ToMN.Equal(at(120)) || !h.FromMN.Equal(at(130)) {
		t.Errorf("HandoverAfter = %v %v %v %v", h.BU.Sub(t0), h.BA.Sub(t0), h.ToMN.Sub(t0), h.FromMN.Sub(t0))
	}
	if h := s.HandoverAfter(at(200)); h != (netlab.Handover{}) {
		t.Errorf("HandoverAfter past the end = %+v", h)
	}
	if got := mdSince(at(120), t0); got != "120ms" || mdSince(time.Time{}, t0) != "none" {
		t.Errorf("mdSince = %q", got)
	}
	s.ESPBytes, s.Frames = 1000, 6
	if _, problems := mdCaptureReport(netlab.AccessA, s, nil); len(problems) != 0 {
		t.Errorf("a clean access A capture: %v", problems)
	}
	// The same on B: raw ESP and no UDP 4191 are both wrong there.
	if _, problems := mdCaptureReport(netlab.AccessB, s, nil); len(problems) != 2 {
		t.Errorf("raw ESP on access B: problems %v, want 2", problems)
	}
	dirty := s
	dirty.ESP = append([]netlab.ESPPacket{{SPI: 0xb008, UDP: true}}, s.ESP...)
	dirty.Plaintext = 1
	dirty.Other = map[string]int{"ICMPv6 type 4 code 2": 3}
	lines, problems := mdCaptureReport(netlab.AccessA, dirty, nil)
	if len(problems) != 3 {
		t.Errorf("UDP, plaintext and ICMP on access A: problems %v, want 3", problems)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "anything else:       3 ICMPv6 type 4 code 2: 3") {
		t.Errorf("report lines:\n%s", strings.Join(lines, "\n"))
	}
	if _, problems := mdCaptureReport(netlab.AccessB, netlab.Stats{}, nil); len(problems) != 2 {
		t.Errorf("empty capture on B: %v, want no ESP and no 4191", problems)
	}
}
