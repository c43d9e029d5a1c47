//go:build linux

package demo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// TestGatewayDemo runs the two-gateway demo end to end (as root): two
// gateways in namespaces keyed by IKEv2 (raw ESP, ESP in UDP, IPv6 outer)
// or by manual keys, ping v4 and v6, a TCP transfer, and a capture that
// shows only ESP (with the Child SA's SPIs) and IKE on the veth; then
// checks that everything was torn down, also after a Ctrl-C.
func TestGatewayDemo(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "ip")
	bin := filepath.Join(t.TempDir(), "mipsec")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mipsec/mipsec/cmd/mipsec").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("interrupt", func(t *testing.T) { testNetDemoInterrupt(t, bin) })
	for _, tt := range []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"ike-raw", []string{"-encap", "raw"}, []string{
			"keyed by IKEv2 with a pre-shared key",
			"gateway-b: #1, ESTABLISHED, IKEv2, ",
			"local  'gw-a.example.org' @ 198.51.100.1[500]",
			"aes128gcm16-prfsha256-curve25519",
			"sites: #1, INSTALLED, TUNNEL, ESP SPIs: ",
			"remote 192.0.2.128/25 2001:db8:b::/48",
			"gateway B (the responder) lists the same IKE SA",
			"with the Child SA's SPIs, and IKE",
			" IKE_AUTH=1 ", " IKE_SA_INIT=1 ",
		}, []string{"0x0000b001"}},
		{"ike-udp", []string{"-encap", "udp"}, []string{
			"@ 198.51.100.1[4500]",
			"ESP in UDP SPIs: ",
			"encap = true",
		}, nil},
		{"ike-outer6", []string{"-6"}, []string{
			"local  'gw-a.example.org' @ 2001:db8:ff::1[500]",
		}, nil},
		{"ike-pubkey", []string{"--pubkey"}, []string{
			"keyed by IKEv2 with certificates",
			"IKE_AUTH with signatures (certificates)",
			"gateway-b: #1, ESTABLISHED, IKEv2, ",
			"sites: #1, INSTALLED, TUNNEL, ESP SPIs: ",
		}, []string{"pre-shared key"}},
		{"manual", []string{"--manual", "-encap", "udp"}, []string{
			"manual keys",
			"by SPI: 0x0000a001: ",
			"=> only ESP crossed the veth (ESP in UDP, port 4500), and none",
		}, []string{"IKE", "ike-gateway"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--gateway", "-mipsec", bin, "-size", "8", "-count", "2"}, tt.args...)
			rc := Namespaces(args, &stdout, &stderr, testEnv)
			out := stdout.String()
			if rc != 0 {
				t.Fatalf("demo %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, rc, out, stderr.String())
			}
			for _, want := range append([]string{
				"reply from 192.0.2.129: icmp_seq=2",
				"reply from 2001:db8:b::1: icmp_seq=2",
				"received 8388608 bytes, SHA-256 matches",
				"=> only ESP crossed the veth",
				"teardown:",
				"demo OK",
			}, tt.want...) {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			for _, not := range tt.not {
				if strings.Contains(out, not) {
					t.Errorf("output has %q:\n%s", not, out)
				}
			}
			if strings.HasPrefix(tt.name, "ike") && !regexp.MustCompile(`IKE \(UDP 500/4500\): +[4-9][0-9]* messages`).MatchString(out) {
				t.Errorf("the capture counted no IKE exchange:\n%s", out)
			}
			if !regexp.MustCompile(`throughput: [0-9.]+ Mbit/s`).MatchString(out) {
				t.Errorf("output has no throughput:\n%s", out)
			}
			if !strings.Contains(out, "anything else:       0") || !strings.Contains(out, "plaintext pattern") {
				t.Errorf("capture summary missing:\n%s", out)
			}
			// Torn down: no namespace or gateway of this demo is left.
			noDemoLeftovers(t, bin)
			t.Logf("demo output:\n%s", out)
		})
	}
}

// interruptWriter sends the process SIGINT (Ctrl-C) once the output
// contains trigger.
type interruptWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	sent    bool
}

func (w *interruptWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.sent && strings.Contains(w.buf.String(), w.trigger) {
		w.sent = true
		syscall.Kill(os.Getpid(), syscall.SIGINT)
	}
	return len(p), nil
}

// testNetDemoInterrupt: Ctrl-C in the middle of the demo stops the
// gateways and deletes the namespaces.
func testNetDemoInterrupt(t *testing.T, bin string) {
	w := &interruptWriter{trigger: "==> ping 192.0.2.1"}
	var stderr bytes.Buffer
	rc := Namespaces([]string{"-mipsec", bin, "-size", "1", "-count", "20", "--gateway"}, w, &stderr, testEnv)
	out := w.buf.String()
	if rc != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, want 130 with \"interrupted\"\nstdout:\n%s\nstderr:\n%s", rc, out, stderr.String())
	}
	if !strings.Contains(out, "teardown:") {
		t.Errorf("no teardown after Ctrl-C:\n%s", out)
	}
	noDemoLeftovers(t, bin)
}

// TestGatewayDemoFlags: bad flags are usage errors, -h is not a failure
// and documents --manual.
func TestGatewayDemoFlags(t *testing.T) {
	var out bytes.Buffer
	if rc := Namespaces([]string{"--gateway", "-encap", "gre"}, &out, &out, testEnv); rc != 2 {
		t.Errorf("--gateway -encap gre: exit %d, want 2", rc)
	}
	out.Reset()
	if rc := Namespaces([]string{"--gateway", "-h"}, &out, &out, testEnv); rc != 0 || !strings.Contains(out.String(), "-manual") || !strings.Contains(out.String(), "IKEv2") {
		t.Errorf("--gateway -h: exit %d, want 0 and a usage naming IKEv2 and -manual:\n%s", rc, out.String())
	}
	if rc := Namespaces([]string{"--gateway", "-manual", "-pubkey"}, &out, &out, testEnv); rc != 2 {
		t.Errorf("--gateway -manual -pubkey: exit %d, want 2", rc)
	}
	if rc := Namespaces([]string{"--gateway", "-ike-timeout", "0s"}, &out, &out, testEnv); rc != 2 {
		t.Errorf("--gateway -ike-timeout 0s: exit %d, want 2", rc)
	}
	if rc := Namespaces([]string{"--gateway", "extra"}, &out, &out, testEnv); rc != 2 {
		t.Errorf("--gateway extra: exit %d, want 2", rc)
	}
	// The mobility demo (no --gateway).
	out.Reset()
	if rc := Namespaces([]string{"-h"}, &out, &out, testEnv); rc != 0 || !strings.Contains(out.String(), "--gateway") {
		t.Errorf("-h: exit %d, want 0 and a usage naming --gateway:\n%s", rc, out.String())
	}
	if rc := Namespaces([]string{"extra"}, &out, &out, testEnv); rc != 2 {
		t.Errorf("extra argument: exit %d, want 2", rc)
	}
	if rc := Namespaces([]string{"-dwell", "0s"}, &out, &out, testEnv); rc != 2 {
		t.Errorf("-dwell 0s: exit %d, want 2", rc)
	}
}
