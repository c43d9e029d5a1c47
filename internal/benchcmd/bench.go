package benchcmd

// `mipsec bench`: the throughput benchmark. Without --inprocess or
// --scaling it is the side-by-side run in network namespaces (root; see
// internal/benchlab and bench_linux.go); --inprocess measures the pipeline
// between fake devices in this process (package bench, no root).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mipsec/mipsec/bench"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/benchlab"
)

// benchFlags are the flags of `mipsec bench`.
type benchFlags struct {
	inprocess, scaling bool
	out                string
	rounds             int
	duration           time.Duration
	systems            []benchlab.System
	named              map[string]bool // the system IDs --systems names itself
	pings, udpSize     int
	udpBitrate         string
	mtu, port          int
	mipsec, wgGo       string
	cores              []int           // --cores: GOMAXPROCS values for --inprocess
	algorithms         []string        // --algorithms: esp proposals for --inprocess
	set                map[string]bool // the flags given
}

// parseBenchFlags parses args; it prints usage and errors to stderr and
// returns the exit code to use when it fails (0 for -h).
func parseBenchFlags(args []string, stderr io.Writer) (*benchFlags, int, bool) {
	f := &benchFlags{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.inprocess, "inprocess", false, "measure the pipeline in process between fake devices (no root)")
	fs.BoolVar(&f.scaling, "scaling", false, "measure SPD/SAD/binding cache lookups as they grow (no root)")
	fs.StringVar(&f.out, "out", filepath.Join("bench", "results"), "`dir`ectory for the JSON, text and SVG results")
	fs.IntVar(&f.rounds, "rounds", 3, "interleaved rounds (each runs every system once)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "length of each iperf3 test (whole seconds); with --inprocess, of each case")
	systems := fs.String("systems", "default", "comma-separated systems to run, or default (every system not marked optional) or all: "+benchlab.SystemIDs())
	fs.IntVar(&f.pings, "pings", 20, "idle pings per system and round (RTT: their median)")
	fs.IntVar(&f.udpSize, "udp-size", 1400, "size of the UDP test's inner packets in `bytes`, IP header included")
	fs.StringVar(&f.udpBitrate, "udp-bitrate", "0", "iperf3 -b for the UDP test (0: as fast as it can)")
	fs.IntVar(&f.mtu, "mtu", 1420, "MTU of every tunnel interface (wireguard-go's default)")
	fs.IntVar(&f.port, "port", 5201, "iperf3 port")
	fs.StringVar(&f.mipsec, "mipsec", "", "mipsec `binary` the gateways run (default: this one)")
	fs.StringVar(&f.wgGo, "wireguard-go", "", "wireguard-go `binary` (default: wireguard-go next to this binary, on PATH, or built with go build)")
	cores := fs.String("cores", "", "with --inprocess: comma-separated core counts (GOMAXPROCS) to measure, e.g. 1,2,4,8,16 (default: 1 and all cores)")
	algs := fs.String("algorithms", "", "with --inprocess: comma-separated esp algorithms to measure (default: all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: mipsec bench [flags]

Side by side, in one run (root; iperf3 and, for wireguard-go, wg from
wireguard-tools): two network namespaces joined by a veth (MTU 1500) and
iperf3 and ping through each system in turn, interleaved over the rounds:
mipsec ESP-in-UDP and raw ESP with aes128gcm16, mipsec ESP-in-UDP with
chacha20poly1305, wireguard-go, strongSwan's userspace IPsec
(strongswan-libipsec: charon with kernel-libipsec in each namespace, PSK,
ESP-in-UDP aes128gcm16, its TUN at libipsec's MTU 1400; skipped with a note
when strongSwan is not installed, unless named in --systems), and the bare
veth as the ceiling. The raw ESP gateways (mipsec-raw) run with
underlay.packet_socket = true: raw ESP leaves through AF_PACKET, bypassing
netfilter and the qdisc; the optional
mipsec-raw-kernel (--systems default,mipsec-raw-kernel or all) is the same
tunnel through the kernel's raw IP socket, mipsec run's default. Figures:
TCP 1 and 4 streams, UDP goodput and loss for 1400-byte packets, idle ping
RTT, and the tunnel processes' CPU seconds per GB. It prints the medians
with min, max and the ratio to wireguard-go, and writes e2e.json, e2e.txt
and e2e-*.svg into --out. Everything is removed at the end, also on failure
or Ctrl-C.

  mipsec bench --inprocess   the pipeline between fake devices (no root)
  mipsec bench --scaling     lookup cost as the tables grow (no root)

The two in-process parts (together with both flags) write inprocess.json,
inprocess.txt and their charts into --out, keeping the other part's results
from an earlier run. --duration is then the time per case (default: the
parts' own).`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	bad := func(format string, a ...any) (*benchFlags, int, bool) {
		fmt.Fprintf(stderr, "mipsec bench: "+format+"\n", a...)
		return nil, 2, false
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if f.rounds < 1 {
		return bad("--rounds %d: want at least 1", f.rounds)
	}
	if f.duration < time.Second && !f.inprocess && !f.scaling {
		return bad("--duration %v: want at least 1s", f.duration)
	}
	if f.duration <= 0 {
		return bad("--duration %v: want a positive duration", f.duration)
	}
	if f.pings < 1 {
		return bad("--pings %d: want at least 1", f.pings)
	}
	if f.udpSize < 28+16 || f.udpSize > f.mtu {
		return bad("--udp-size %d: want 44 to the tunnel MTU (%d)", f.udpSize, f.mtu)
	}
	if f.mtu < 1280 || f.mtu > 1436 {
		return bad("--mtu %d: want 1280 to 1436 (ESP in UDP and WireGuard must fit the veth's 1500)", f.mtu)
	}
	if f.port < 1 || f.port > 65535 {
		return bad("--port %d: want 1 to 65535", f.port)
	}
	if f.udpBitrate == "" || strings.ContainsAny(f.udpBitrate, " \t-") {
		return bad("--udp-bitrate %q: want an iperf3 rate such as 0, 500M or 2G", f.udpBitrate)
	}
	s, err := benchlab.ParseSystems(*systems)
	if err != nil {
		return bad("--systems: %v", err)
	}
	f.systems = s
	f.named = map[string]bool{}
	for id := range strings.SplitSeq(*systems, ",") {
		f.named[strings.TrimSpace(id)] = true
	}
	if (f.set["cores"] || f.set["algorithms"]) && !f.inprocess {
		return bad("--cores and --algorithms apply to --inprocess only")
	}
	if f.cores, err = parseCores(*cores); err != nil {
		return bad("--cores %q: %v", *cores, err)
	}
	if *algs != "" {
		for a := range strings.SplitSeq(*algs, ",") {
			if _, err := esp.ParseAlgorithm(a); err != nil {
				return bad("--algorithms: %q is not an algorithm (have %s)", a, strings.Join(esp.AlgorithmNames(), ", "))
			}
			if slices.Contains(f.algorithms, a) {
				return bad("--algorithms: %q named twice", a)
			}
			f.algorithms = append(f.algorithms, a)
		}
	}
	return f, 0, true
}

// dropMissing returns systems without the ones that missing (by ID) says
// cannot run here and that named does not hold: a system the default set
// brings in is skipped with a note on w, one named in --systems stays (and
// benchlab.Check then fails on it).
func dropMissing(systems []benchlab.System, named map[string]bool, missing map[string]func() error, w io.Writer) []benchlab.System {
	var out []benchlab.System
	for _, s := range systems {
		if m := missing[s.ID]; m != nil && !named[s.ID] {
			if err := m(); err != nil {
				fmt.Fprintf(w, "==> skipping %s: %v (name it in --systems to make this an error)\n", s.ID, err)
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// parseCores parses --cores: distinct core counts from 1 to 1024, in the
// order given; "" is nil (bench's default, 1 and all cores).
func parseCores(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var cs []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("%q is not a core count (want 1 to 1024)", f)
		}
		if slices.Contains(cs, n) {
			return nil, fmt.Errorf("%d named twice", n)
		}
		cs = append(cs, n)
	}
	return cs, nil
}

func Main(args []string, stdout, stderr io.Writer) int {
	f, code, ok := parseBenchFlags(args, stderr)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.inprocess || f.scaling {
		return benchInprocess(ctx, f, stdout, stderr)
	}
	return benchE2E(ctx, f, stdout, stderr)
}

// benchInprocess runs the in-process parts (bench.RunPipeline with
// --inprocess, bench.RunScaling with --scaling, both with both flags),
// prints the tables and writes bench.WriteReport's files into --out. A part
// not run now is kept from the report already there, so running one part
// does not erase the other's results.
func benchInprocess(ctx context.Context, f *benchFlags, stdout, stderr io.Writer) int {
	rep := bench.Report{
		Machine: bench.CurrentMachine(), Time: time.Now().UTC(),
		Command: strings.TrimSpace("mipsec bench " + strings.Join(os.Args[min(2, len(os.Args)):], " ")),
	}
	if old, err := bench.ReadReport(filepath.Join(f.out, bench.ReportJSONFile)); err == nil {
		rep.Pipeline, rep.Scaling = old.Pipeline, old.Scaling
	}
	var err error
	if f.inprocess {
		o := bench.PipelineOptions{Cores: f.cores, Algorithms: f.algorithms}
		if f.set["duration"] { // the namespace run's default is too long here
			o.Duration = f.duration
		}
		fmt.Fprintln(stdout, "==> in-process pipeline: fake TUN -> dataplane A -> fake underlay -> dataplane B -> fake TUN")
		rep.Pipeline, err = bench.RunPipeline(ctx, o, stdout)
	}
	if f.scaling && err == nil {
		o := bench.ScalingOptions{}
		if f.set["duration"] {
			o.Duration = f.duration
		}
		fmt.Fprintln(stdout, "==> scaling: SPD, SAD and binding cache lookups as they grow")
		var sc bench.Scaling
		sc, err = bench.RunScaling(ctx, o, stdout)
		rep.Scaling = &sc
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "mipsec bench: interrupted (%v); no results written\n", err)
		return 130
	}
	if err != nil {
		fmt.Fprintf(stderr, "mipsec bench: %v\n", err)
		return 1
	}
	rep.Targets = bench.PipelineTargets(rep.Pipeline)
	fmt.Fprintln(stdout)
	if err := bench.WriteTables(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "mipsec bench: %v\n", err)
		return 1
	}
	if err := bench.WriteReport(f.out, rep); err != nil {
		fmt.Fprintf(stderr, "mipsec bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and its charts into %s\n", bench.ReportJSONFile, f.out)
	return 0
}
