package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/benchlab"
	"github.com/mipsec/mipsec/internal/charontest"
	"github.com/mipsec/mipsec/internal/testenv"
)

// TestBenchSmoke runs `mipsec bench` for one short round of mipsec raw ESP
// and wireguard-go (built from the module mipsec depends on): both move
// data in every iperf3 test, answer pings, and the JSON, table and SVG
// files exist and parse.
func TestBenchSmoke(t *testing.T) {
	t.Parallel()
	needEnv(t)
	testenv.NeedCommand(t, "iperf3")
	testenv.NeedCommand(t, "wg")
	dir := t.TempDir()
	wgGo := filepath.Join(dir, "wireguard-go")
	if out, err := exec.Command("go", "build", "-o", wgGo, "golang.zx2c4.com/wireguard").CombinedOutput(); err != nil {
		t.Fatalf("go build golang.zx2c4.com/wireguard: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "results")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mipsecBin, "bench", "--rounds", "1", "--duration", "2s", "--pings", "5",
		"--systems", "mipsec-raw,wireguard-go", "--port", "5301", "--wireguard-go", wgGo, "--out", out)
	var stdout syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	start := time.Now()
	err := cmd.Run()
	t.Logf("mipsec bench (%v):\n%s", time.Since(start).Round(time.Second), stdout.String())
	if err != nil {
		t.Fatalf("mipsec bench: %v", err)
	}
	for _, want := range []string{"--> round 1/1: mipsec raw ESP aes128gcm16", "--> round 1/1: wireguard-go", "TCP, 1 stream (Gbit/s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}

	b, err := os.ReadFile(filepath.Join(out, "e2e.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep benchlab.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("e2e.json: %v", err)
	}
	if len(rep.Runs) != 2*4 || rep.Errors() != 0 {
		t.Fatalf("e2e.json: %d runs, %d failed, want 8 runs that all worked", len(rep.Runs), rep.Errors())
	}
	for _, r := range rep.Runs {
		if r.Test == benchlab.TestPing {
			if len(r.RTTms) == 0 {
				t.Errorf("%s: no ping replies", r.System)
			}
			continue
		}
		if r.Iperf == nil || r.Iperf.Bytes <= 0 || r.Iperf.BitsPerSecond <= 0 {
			t.Errorf("%s %s moved nothing: %+v", r.System, r.Test, r.Iperf)
		}
		if r.CPUSeconds == nil {
			t.Errorf("%s %s: no tunnel CPU time", r.System, r.Test)
		}
	}
	if len(rep.Results) != 2 {
		t.Fatalf("e2e.json: %d results, want 2", len(rep.Results))
	}
	for _, sr := range rep.Results {
		for _, m := range []string{benchlab.TestTCP1, benchlab.TestTCP4, benchlab.TestUDP, "rtt"} {
			if f := sr.Figures[m]; f.N != 1 || f.Median <= 0 || f.Ratio == nil {
				t.Errorf("%s %s: %+v, want one positive sample with a ratio to wireguard-go", sr.ID, m, f)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "e2e.txt")); err != nil {
		t.Error(err)
	}
	for _, name := range []string{"e2e-throughput.svg", "e2e-tcp1.svg", "e2e-rtt.svg", "e2e-cpu.svg"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if err := benchlab.CheckSVG(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Nothing is left behind: no namespace of the run, no UAPI socket.
	pid := cmd.Process.Pid
	nss, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(nss), fmt.Sprintf("mipsec-bench-%d-", pid)) {
		t.Errorf("namespaces left behind:\n%s", nss)
	}
	if socks, _ := filepath.Glob(fmt.Sprintf("/var/run/wireguard/bwg%d-*", pid%100000)); len(socks) > 0 {
		t.Errorf("wireguard-go sockets left behind: %v", socks)
	}
}

// TestBenchSmokeStrongswan runs `mipsec bench` for one short round of
// strongswan-libipsec: charon's tunnel comes up in both namespaces and
// carries every test (benchlab discards a round whose CHILD_SA byte
// counters do not cover what iperf3 moved, so a run with no failed test
// went through the tunnel), both charons' CPU time is counted, and
// nothing is left behind.
func TestBenchSmokeStrongswan(t *testing.T) {
	t.Parallel()
	needEnv(t)
	charontest.Need(t)
	testenv.NeedCommand(t, "iperf3")
	out := filepath.Join(t.TempDir(), "results")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mipsecBin, "bench", "--rounds", "1", "--duration", "2s", "--pings", "5",
		"--systems", benchlab.StrongswanLibipsec, "--port", "5302", "--out", out)
	var stdout syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	start := time.Now()
	err := cmd.Run()
	t.Logf("mipsec bench (%v):\n%s", time.Since(start).Round(time.Second), stdout.String())
	if err != nil {
		t.Fatalf("mipsec bench: %v", err)
	}
	if !strings.Contains(stdout.String(), "--> round 1/1: strongSwan charon kernel-libipsec") {
		t.Error("output lacks the strongSwan round")
	}
	b, err := os.ReadFile(filepath.Join(out, "e2e.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep benchlab.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("e2e.json: %v", err)
	}
	if len(rep.Runs) != 4 || rep.Errors() != 0 {
		t.Fatalf("e2e.json: %d runs, %d failed, want 4 runs that all worked", len(rep.Runs), rep.Errors())
	}
	if !strings.HasPrefix(rep.Host.Strongswan, "strongSwan") {
		t.Errorf("host strongswan %q", rep.Host.Strongswan)
	}
	for _, r := range rep.Runs {
		if r.System != benchlab.StrongswanLibipsec {
			t.Errorf("run of %s", r.System)
		}
		if r.Test == benchlab.TestPing {
			if len(r.RTTms) == 0 {
				t.Error("no ping replies")
			}
			continue
		}
		if r.Iperf == nil || r.Iperf.Bytes <= 0 {
			t.Errorf("%s moved nothing: %+v", r.Test, r.Iperf)
		}
		if r.CPUSeconds == nil || *r.CPUSeconds <= 0 {
			t.Errorf("%s: no charon CPU time", r.Test)
		}
	}
	nss, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(nss), fmt.Sprintf("mipsec-bench-%d-", cmd.Process.Pid)) {
		t.Errorf("namespaces left behind:\n%s", nss)
	}
}
