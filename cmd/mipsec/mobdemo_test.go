//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("interrupt", func(t *testing.T) {
		w := &interruptWriter{trigger: "==> waiting for the home registration"}
		var stderr bytes.Buffer
		rc := netdemo([]string{"-mipsec", bin}, w, &stderr)
		out := w.buf.String()
		if rc != 130 || !strings.Contains(stderr.String(), "interrupted") {
			t.Fatalf("exit %d, want 130 with \"interrupted\"\nstdout:\n%s\nstderr:\n%s", rc, out, stderr.String())
		}
		if !strings.Contains(out, "teardown:") {
			t.Errorf("no teardown after Ctrl-C:\n%s", out)
		}
		noDemoLeftovers(t, bin)
	})
	t.Run("moves", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		rc := netdemo([]string{"-mipsec", bin, "-dwell", "2s", "-rate", "1024"}, &stdout, &stderr)
		out := stdout.String()
		if rc != 0 {
			t.Fatalf("mobility demo: exit %d\nstdout:\n%s\nstderr:\n%s", rc, out, stderr.String())
		}
		for _, want := range []string{
			"registered after",
			"move 1, A (IPv6) -> B (IPv4 behind NAT):",
			"move 2, B (IPv4 behind NAT) -> A (IPv6):",
			"(NAT detected)",
			"the stream survived both moves",
			"=> only ESP crossed the access networks",
			"teardown:",
			"demo OK",
		} {
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
