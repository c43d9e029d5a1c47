//go:build linux

package ikebench

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/charontest"
	"github.com/mipsec/mipsec/internal/testenv"
)

// mipsecBin: the mipsec binary the tests run (the full benchmark's flags
// are in bench_full_test.go).
var mipsecBin = flag.String("ikebench.mipsec", "", "mipsec binary (default: go build ./cmd/mipsec)")

// needLab skips (fails in CI) without root, ip and charon, and returns
// the mipsec binary, built unless -ikebench.mipsec names one.
func needLab(t *testing.T) string {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "ip")
	charontest.Need(t)
	if *mipsecBin != "" {
		return *mipsecBin
	}
	bin := filepath.Join(t.TempDir(), "mipsec")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/mipsec/mipsec/cmd/mipsec").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/mipsec: %v\n%s", err, out)
	}
	return bin
}

// TestSmoke runs a short case against each responder at concurrency 2:
// every setup must succeed, and the figures must be computed from them.
func TestSmoke(t *testing.T) {
	bin := needLab(t)
	start := time.Now()
	rep, err := Run(t, Options{
		Responders: []string{Mipsec, Charon, MipsecInproc}, Concurrency: []int{2},
		Duration: 1500 * time.Millisecond, Warmup: -1, Initiators: 160, // under 20 setups/s per source (ike's limit)
		MipsecBin: bin, Dir: t.TempDir(), Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("%v\n%s", time.Since(start), b.String())
	if len(rep.Cases) != 3 {
		t.Fatalf("%d cases, want 3", len(rep.Cases))
	}
	for _, c := range rep.Cases {
		if c.Failures != 0 || c.TeardownFailures != 0 {
			t.Errorf("%s: %d failed setups, %d failed teardowns: %v", c.Responder, c.Failures, c.TeardownFailures, c.Errors)
		}
		if c.Setups < 4 {
			t.Errorf("%s: %d setups in %.1f s, want several", c.Responder, c.Setups, c.ElapsedS)
		}
		if c.Rate <= 0 || c.Rate != float64(c.Setups)/c.ElapsedS {
			t.Errorf("%s: rate %v from %d setups in %v s", c.Responder, c.Rate, c.Setups, c.ElapsedS)
		}
		l := c.Setup
		if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) || c.Teardown.P50 <= 0 {
			t.Errorf("%s: latencies %+v, teardown %+v", c.Responder, l, c.Teardown)
		}
		if len(c.ResponderRefusals) > 0 {
			t.Errorf("%s: responder refusals %v", c.Responder, c.ResponderRefusals)
		}
		if c.Responder != Charon && c.ResponderAuths != int64(c.Setups) {
			t.Errorf("%s: the responder counted %d IKE_AUTH exchanges for %d setups", c.Responder, c.ResponderAuths, c.Setups)
		}
		if c.Responder == Charon && c.ResponderAuths != -1 {
			t.Errorf("charon: ResponderAuths %d, want -1 (not counted)", c.ResponderAuths)
		}
		if c.Responder != MipsecInproc && (c.ResponderCPUS <= 0 || c.CPUPerSetupMS <= 0) {
			t.Errorf("%s: responder CPU %v s, %v ms per setup", c.Responder, c.ResponderCPUS, c.CPUPerSetupMS)
		}
	}
	if rs := rep.Ratios(); len(rs) != 1 || rs[0].Ratio <= 0 {
		t.Errorf("ratios %+v", rs)
	}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ike.json", "ike.txt"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// testWriter sends progress lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := percentiles(ds)
	if want := (Latency{P50: 50, P90: 90, P99: 99, Max: 100}); got != want {
		t.Errorf("percentiles(1..100 ms) = %+v, want %+v", got, want)
	}
	if got := percentiles(nil); got != (Latency{}) {
		t.Errorf("percentiles(nil) = %+v", got)
	}
	if got := percentiles([]time.Duration{3 * time.Millisecond}); got != (Latency{3, 3, 3, 3}) {
		t.Errorf("percentiles(3 ms) = %+v", got)
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{},                                    // no Dir
		{Dir: "x", Responders: []string{"x"}}, // unknown responder
		{Dir: "x", Responders: []string{Mipsec}},
		{Dir: "x", Initiators: MaxInitiators + 1},
		{Dir: "x", Initiators: 4, Concurrency: []int{8}},
		{Dir: "x", Concurrency: []int{0}},
	} {
		if err := o.defaults(); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
	o := Options{Dir: "x", Responders: []string{Charon}}
	if err := o.defaults(); err != nil || o.Duration != 10*time.Second || o.Initiators != 200 || fmt.Sprint(o.Concurrency) != "[1 8 32]" {
		t.Errorf("defaults: %v %+v", err, o)
	}
}
