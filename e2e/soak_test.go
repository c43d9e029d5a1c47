//go:build soak

package e2e

// TestSoak (make soak; build tag soak, so that `go test ./...` neither
// runs nor skips it): a gateway pair of the standard topology (newPair,
// ESP in UDP 4500) moves TCP (A -> B, IPv4 inner, the AES-GCM SA) and UDP
// (B -> A, IPv6 inner, the AES-CBC+HMAC SA) with iperf3 for MIPSEC_SOAK
// (a Go duration, e.g. 10m or 1h), sampling each daemon every
// MIPSEC_SOAK_INTERVAL (default 5s):
//
//   - RSS, RssAnon, RssFile, RssShmem and threads from /proc/PID/status,
//   - open file descriptors from /proc/PID/fd,
//   - goroutines, the live heap (/gc/heap/live) and the runtime's mapped
//     memory from `mipsec status --json` (its "runtime" part,
//     control/runtime.go).
//
// The first fifth of the run (at least 30 s, at most 2.5 min) is the
// warm-up (pools, GC goal and socket buffers settle; see TestSoak for
// why 2.5 min). Its largest sample of
// each figure is the baseline; the test fails when, after the warm-up, a
// figure exceeds its baseline by more than its bound (soakBounds: RSS
// 16 MiB, live heap 8 MiB, goroutines 16, file descriptors 8), or when the
// traffic stopped (TCP moved nothing, UDP lost more than 20%). It logs a
// table per daemon: baseline, last, max, growth, bound and the slope of a
// least-squares line through the post-warm-up samples (per second and
// per hour). MIPSEC_SOAK_CSV=FILE also writes every sample.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/benchlab"
	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

// soakFigure is one sampled figure of a daemon.
type soakFigure struct {
	name  string
	unit  string // "B" (bytes) or "" (a count)
	bound float64
	get   func(s soakSample) float64
}

// soakSample is one sample of one daemon.
type soakSample struct {
	at                         time.Duration // since the start
	rss, anon, file, shmem     float64       // bytes
	threads, fds               float64
	goroutines, heapLive, heap float64 // heap: the runtime's mapped memory less what it released
}

// soakBounds: how far a figure may grow over its warm-up baseline. RSS and
// heap leave room for GC pacing (the live heap is what the last cycle
// marked; the next goal is up to twice that) and for pool refills after a
// burst; a daemon's goroutines and descriptors are fixed after start-up
// (workers, sockets, TUN queues), so a few is already a leak there.
var soakBounds = []soakFigure{
	{"rss", "B", 16 << 20, func(s soakSample) float64 { return s.rss }},
	{"heap_live", "B", 8 << 20, func(s soakSample) float64 { return s.heapLive }},
	{"goroutines", "", 16, func(s soakSample) float64 { return s.goroutines }},
	{"fds", "", 8, func(s soakSample) float64 { return s.fds }},
}

// soakReport: figures only reported (no bound), for telling a leak from
// the RSS settling (which part of it grows).
var soakReport = []soakFigure{
	{"rss_anon", "B", 0, func(s soakSample) float64 { return s.anon }},
	{"rss_file", "B", 0, func(s soakSample) float64 { return s.file }},
	{"rss_shmem", "B", 0, func(s soakSample) float64 { return s.shmem }},
	{"go_mapped", "B", 0, func(s soakSample) float64 { return s.heap }},
	{"threads", "", 0, func(s soakSample) float64 { return s.threads }},
}

func TestSoak(t *testing.T) {
	env := os.Getenv("MIPSEC_SOAK")
	if env == "" {
		env = "10m"
	}
	dur, err := time.ParseDuration(env)
	if err != nil || dur < 30*time.Second {
		t.Fatalf("MIPSEC_SOAK=%q: want a Go duration of at least 30s", env)
	}
	interval := 5 * time.Second
	if v := os.Getenv("MIPSEC_SOAK_INTERVAL"); v != "" {
		if interval, err = time.ParseDuration(v); err != nil || interval <= 0 {
			t.Fatalf("MIPSEC_SOAK_INTERVAL=%q", v)
		}
	}
	// At least 2.5 min when the run allows: the runtime forces a GC every
	// 2 min (its forced GC period) and the dataplane allocates
	// little, so a shorter warm-up may end before the first GC after
	// start-up has marked the packet buffers live, and heap_live would
	// seem to grow by them.
	warmup := min(max(dur/5, 30*time.Second), 150*time.Second)
	iperf := testenv.NeedCommand(t, "iperf3")
	p := newPair(t, pairOptions{encap: "udp"})

	// iperf3 servers in B; the clients in A for the whole run.
	for _, port := range []string{"5201", "5202"} {
		srv, err := netlab.Start(exec.Command("ip", "netns", "exec", p.nsB, iperf, "-s", "-p", port), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Stop(syscall.SIGTERM, 3*time.Second) })
	}
	time.Sleep(500 * time.Millisecond)
	secs := strconv.Itoa(int(dur.Seconds()))
	tcp := startIperf(t, p.nsA, iperf, "-c", siteB4.Addr().String(), "-B", siteA4.Addr().String(), "-p", "5201",
		"-t", secs, "-b", "20M", "-J")
	udp := startIperf(t, p.nsA, iperf, "-c", siteB6.Addr().String(), "-B", siteA6.Addr().String(), "-p", "5202",
		"-u", "-R", "-l", "1200", "-t", secs, "-b", "10M", "-J")

	gws := []*gateway{p.A, p.B}
	samples := make([][]soakSample, len(gws))
	start := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		for i, g := range gws {
			s, err := sampleDaemon(g)
			if err != nil {
				t.Fatalf("%s at %v: %v", g.name, time.Since(start).Round(time.Second), err)
			}
			s.at = time.Since(start)
			samples[i] = append(samples[i], s)
		}
		if time.Since(start) >= dur {
			break
		}
		<-tick.C
	}

	for _, r := range []*iperfRun{tcp, udp} {
		res, err := r.wait(60 * time.Second)
		if err != nil {
			t.Errorf("iperf3 %s: %v", r.what, err)
			continue
		}
		t.Logf("iperf3 %s: %.1f Mbit/s over %.0f s, %d bytes received, %d retransmits, %d/%d datagrams lost",
			res.Protocol, res.BitsPerSecond/1e6, res.Seconds, res.Bytes, res.Retransmits, res.LostPackets, res.Packets)
		switch {
		case res.Bytes == 0:
			t.Errorf("iperf3 %s moved nothing", res.Protocol)
		case res.Protocol == "UDP" && res.LostPercent > 20:
			t.Errorf("iperf3 UDP lost %.1f%%", res.LostPercent)
		}
	}
	if out, err := p.A.ctl("stats"); err == nil {
		t.Logf("mipsec stats (A):\n%s", out)
	}

	if f := os.Getenv("MIPSEC_SOAK_CSV"); f != "" {
		if err := writeSoakCSV(f, gws, samples); err != nil {
			t.Error(err)
		}
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "soak %v, warm-up %v, %d samples every %v per daemon\n", dur, warmup, len(samples[0]), interval)
	tw := tabwriter.NewWriter(&tab, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "daemon\tfigure\tbaseline\tlast\tmax\tgrowth\tbound\tslope/s\tslope/h\t\t")
	for i, g := range gws {
		for _, f := range append(append([]soakFigure{}, soakBounds...), soakReport...) {
			base, last, peak, slope := soakStats(samples[i], warmup, f.get)
			verdict := ""
			if f.bound > 0 {
				verdict = "ok"
				if peak-base > f.bound {
					verdict = "FAIL"
					t.Errorf("%s %s grew by %s over its warm-up baseline %s (bound %s)",
						g.name, f.name, soakFmt(peak-base, f.unit), soakFmt(base, f.unit), soakFmt(f.bound, f.unit))
				}
			}
			bound := "-"
			if f.bound > 0 {
				bound = soakFmt(f.bound, f.unit)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", g.name, f.name, soakFmt(base, f.unit),
				soakFmt(last, f.unit), soakFmt(peak, f.unit), soakFmt(peak-base, f.unit), bound,
				soakFmt(slope, f.unit), soakFmt(slope*3600, f.unit), verdict)
		}
	}
	tw.Flush()
	t.Log("\n" + tab.String())
}

// soakStats returns the baseline (the largest warm-up sample after the
// first 10 s), the last and the largest post-warm-up sample, and the
// least-squares slope per second of the post-warm-up samples.
func soakStats(ss []soakSample, warmup time.Duration, get func(soakSample) float64) (base, last, peak, slope float64) {
	base, peak = math.Inf(-1), math.Inf(-1)
	var n, sx, sy, sxx, sxy float64
	for _, s := range ss {
		v := get(s)
		if s.at < warmup {
			if s.at >= 10*time.Second || base == math.Inf(-1) {
				base = max(base, v)
			}
			continue
		}
		peak, last = max(peak, v), v
		x := s.at.Seconds()
		n, sx, sy, sxx, sxy = n+1, sx+x, sy+v, sxx+x*x, sxy+x*v
	}
	if n >= 2 && n*sxx-sx*sx != 0 {
		slope = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	}
	if peak == math.Inf(-1) {
		peak = base
	}
	return base, last, peak, slope
}

func soakFmt(v float64, unit string) string {
	if unit != "B" {
		s := strings.TrimRight(strconv.FormatFloat(v, 'f', 3, 64), "0")
		s = strings.TrimSuffix(s, ".")
		if s == "-0" {
			s = "0"
		}
		return s
	}
	switch a := math.Abs(v); {
	case a >= 1<<20:
		return fmt.Sprintf("%.2fMiB", v/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.1fKiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0fB", v)
	}
}

// sampleDaemon reads g's /proc entries and its status answer.
func sampleDaemon(g *gateway) (soakSample, error) {
	var s soakSample
	pid := g.Pid()
	if pid == 0 || !g.Running() {
		return s, fmt.Errorf("daemon not running")
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseFloat(f[0], 64)
		switch k {
		case "VmRSS":
			s.rss = n * 1024
		case "RssAnon":
			s.anon = n * 1024
		case "RssFile":
			s.file = n * 1024
		case "RssShmem":
			s.shmem = n * 1024
		case "Threads":
			s.threads = n
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = float64(len(fds))
	out, err := g.ctl("status", "--json")
	if err != nil {
		return s, fmt.Errorf("mipsec status: %v", err)
	}
	var info control.StatusInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return s, fmt.Errorf("mipsec status: %v", err)
	}
	if info.Runtime == nil {
		return s, fmt.Errorf("mipsec status has no runtime part:\n%s", out)
	}
	r := info.Runtime
	s.goroutines, s.heapLive = float64(r.Goroutines), float64(r.HeapLiveBytes)
	s.heap = float64(r.TotalBytes - r.HeapReleasedBytes)
	return s, nil
}

func writeSoakCSV(path string, gws []*gateway, samples [][]soakSample) error {
	var b strings.Builder
	b.WriteString("daemon,seconds,rss,rss_anon,rss_file,rss_shmem,threads,fds,goroutines,heap_live,go_mapped\n")
	for i, g := range gws {
		for _, s := range samples[i] {
			fmt.Fprintf(&b, "%s,%.1f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f\n", g.name, s.at.Seconds(),
				s.rss, s.anon, s.file, s.shmem, s.threads, s.fds, s.goroutines, s.heapLive, s.heap)
		}
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// iperfRun is an iperf3 client running in a namespace.
type iperfRun struct {
	what string
	proc *netlab.Process
	out  syncBuffer
}

func startIperf(t *testing.T, ns, iperf string, args ...string) *iperfRun {
	t.Helper()
	r := &iperfRun{what: strings.Join(args, " ")}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, iperf}, args...)...)
	cmd.Stdout = &r.out
	var err error
	if r.proc, err = netlab.Start(cmd, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.proc.Stop(syscall.SIGTERM, 3*time.Second) })
	return r
}

// wait waits up to grace for the client to end and parses its report.
func (r *iperfRun) wait(grace time.Duration) (benchlab.IperfResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	select {
	case <-r.proc.Done():
	case <-ctx.Done():
		r.proc.Stop(syscall.SIGTERM, 3*time.Second)
		return benchlab.IperfResult{}, fmt.Errorf("still running %v after the soak", grace)
	}
	return benchlab.ParseIperf([]byte(r.out.String()))
}
