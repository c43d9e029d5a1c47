//go:build ikebench

package ikebench

import (
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	duration   = flag.Duration("ikebench.duration", 10*time.Second, "length of each measured case")
	concurrent = flag.String("ikebench.c", "1,8,32", "comma-separated closed-loop concurrencies")
	responders = flag.String("ikebench.responders", "mipsec,charon", "comma-separated responders: mipsec, charon, mipsec-inproc")
	outDir     = flag.String("ikebench.out", "", "directory for ike.json and ike.txt (default: none)")
	profile    = flag.String("ikebench.profile", "", "CPU profile of the mipsec-inproc cases (path; -cN is added per concurrency)")
	workDir    = flag.String("ikebench.dir", "", "keep configs and logs here (default: a temporary directory)")
	stateDir   = flag.String("ikebench.statedir", "", "mipsec's state_dir (default: in the test's temporary directory)")
)

// TestIKEBench is the benchmark itself (make bench-ike). It is behind the
// build tag ikebench, so that make test neither runs nor skips it.
func TestIKEBench(t *testing.T) {
	bin := needLab(t)
	var cs []int
	for _, s := range strings.Split(*concurrent, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("-ikebench.c: %v", err)
		}
		cs = append(cs, c)
	}
	dir := *workDir
	if dir == "" {
		dir = t.TempDir()
	}
	rep, err := Run(t, Options{
		Responders: strings.Split(*responders, ","), Concurrency: cs, Duration: *duration,
		MipsecBin: bin, Dir: dir, StateDir: *stateDir, CPUProfile: *profile, Log: os.Stderr,
	})
	if rep != nil {
		rep.WriteText(os.Stdout)
		if *outDir != "" {
			if werr := rep.WriteFiles(*outDir); werr != nil {
				t.Error(werr)
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Cases {
		if c.Failures != 0 {
			t.Errorf("%s C=%d: %d failed setups", c.Responder, c.Concurrency, c.Failures)
		}
	}
}
