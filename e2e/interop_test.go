package e2e

import (
	"bufio"
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/testenv"
)

// scapyPeer runs e2e/testdata/scapy_peer.py in ns and returns the command
// (started) and a channel that gets its output lines.
func scapyPeer(t *testing.T, ctx context.Context, ns string, args ...string) (*exec.Cmd, <-chan string, *syncBuffer) {
	t.Helper()
	full := append([]string{"netns", "exec", ns, "/usr/bin/python3", "testdata/scapy_peer.py"}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	return cmd, lines, &stderr
}

// needScapy skips (fails in CI) unless /usr/bin/python3 imports scapy's
// IPsec layer.
func needScapy(t *testing.T) {
	t.Helper()
	testenv.NeedCommand(t, "/usr/bin/python3")
	if out, err := exec.Command("/usr/bin/python3", "-c", "import scapy.layers.ipsec").CombinedOutput(); err != nil {
		testenv.SkipOrFail(t, "scapy: %v\n%s (Debian: apt-get install python3-scapy)", err, out)
	}
}

// TestScapyInterop: scapy's ESP (an independent implementation), in its
// own namespace, plays gateway B against a running `mipsec run` gateway A
// over the veth, in both directions: scapy-encrypted echo requests that
// mipsec decrypts and answers with ESP that scapy decrypts, and a ping from
// A's site that scapy decrypts and answers.
func TestScapyInterop(t *testing.T) {
	t.Parallel()
	needEnv(t)
	needScapy(t)
	p := newPair(t, pairOptions{noB: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, f := range []struct {
		name, family, keyOut, keyIn string
		src, dst                    netip.Addr
	}{
		{"v4-aes128gcm16", "4", keyBA4, keyAB4, siteA4.Addr(), siteB4.Addr()},
		{"v6-aes128-sha256", "6", keyBA6 + ":" + authBA, keyAB6 + ":" + authAB, siteA6.Addr(), siteB6.Addr()},
	} {
		t.Run(f.name, func(t *testing.T) { scapyInterop(t, ctx, p, f.family, f.keyOut, f.keyIn, f.src, f.dst) })
	}
}

func scapyInterop(t *testing.T, ctx context.Context, p *pair, family, keyOut, keyIn string, src, dst netip.Addr) {
	// scapy -> mipsec -> scapy.
	t.Run("scapy-initiates", func(t *testing.T) {
		cmd, lines, stderr := scapyPeer(t, ctx, p.nsB, "initiate", "ul0", family, "1", keyOut, keyIn)
		var out []string
		for l := range lines {
			out = append(out, l)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("scapy initiate: %v\n%s\n%s", err, strings.Join(out, "\n"), stderr.String())
		}
		t.Logf("scapy:\n%s", strings.Join(out, "\n"))
	})

	// mipsec -> scapy -> mipsec.
	t.Run("mipsec-initiates", func(t *testing.T) {
		cmd, lines, stderr := scapyPeer(t, ctx, p.nsB, "respond", "ul0", family, "100", keyOut, keyIn, "3")
		var out []string
		select {
		case l, ok := <-lines:
			if !ok || l != "respond: ready" {
				cmd.Wait()
				t.Fatalf("scapy respond: %q\n%s", l, stderr.String())
			}
			out = append(out, l)
		case <-ctx.Done():
			t.Fatal("scapy did not start")
		}
		time.Sleep(500 * time.Millisecond) // the sniffer opens its socket
		n, err := ping(p.nsA, src, dst, 3)
		for l := range lines {
			out = append(out, l)
		}
		werr := cmd.Wait()
		t.Logf("scapy:\n%s", strings.Join(out, "\n"))
		if err != nil || n != 3 {
			t.Fatalf("ping through mipsec to scapy: %d of 3 answered (%v)\n%s", n, err, stderr.String())
		}
		if werr != nil {
			t.Fatalf("scapy respond: %v\n%s", werr, stderr.String())
		}
	})
}
