package demo

// The namespace demos. `mipsec demo` (`make demo`) is the mobility demo
// (mobility_linux.go). `mipsec demo --gateway` is the two-gateway demo in
// this file: two network namespaces joined by a veth, a `mipsec run`
// gateway in each from an embedded config, keyed by IKEv2 with a fresh
// pre-shared key (gateways_ike_linux.go), with --pubkey by certificates
// of a CA it makes (gateways_certs_linux.go), or with --manual by fresh
// manual keys; then ping (IPv4, IPv6) and a TCP transfer between the
// sites through the tunnel, and a capture on the veth that shows only ESP
// (and IKE) crossed it. Everything is torn down at the end, on failure and
// on Ctrl-C.
//
// Traffic and the capture run in this process on sockets opened inside the
// namespaces (setns on a locked thread that is never reused), so the demo
// needs nothing but root and the ip command (iproute2).

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/netlab"
)

//go:embed netdemo/gateway.toml.tmpl
var ndConfigTemplate string

var ndTemplate = template.Must(template.New("gateway").Parse(ndConfigTemplate))

// The demo's addresses: netlab's standard topology, documentation
// prefixes only (RFC 5737, RFC 3849).
var (
	ndUnderA4, ndUnderB4 = netlab.UnderlayA4, netlab.UnderlayB4
	ndUnderA6, ndUnderB6 = netlab.UnderlayA6, netlab.UnderlayB6
	ndSiteA4, ndSiteB4   = netlab.SiteA4, netlab.SiteB4
	ndSiteA6, ndSiteB6   = netlab.SiteA6, netlab.SiteB6
)

// ndMarker starts every KiB of the TCP payload; the capture looks for it.
var ndMarker = []byte("MIPSEC-DEMO-PLAINTEXT-MARKER")

// netdemo runs the mobility demo, or the two-gateway demo when args hold
// --gateway (anywhere).
func Namespaces(args []string, stdout, stderr io.Writer, env Env) int {
	rest := make([]string, 0, len(args))
	gateway := false
	for _, a := range args {
		if a == "--gateway" || a == "-gateway" {
			gateway = true
			continue
		}
		rest = append(rest, a)
	}
	if gateway {
		return gwdemo(rest, stdout, stderr)
	}
	return mobdemo(rest, stdout, stderr, env)
}

// gwdemo is `mipsec demo --gateway`.
func gwdemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo --gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("mipsec", "", "mipsec `binary` the gateways run (default: this one)")
	encap := fs.String("encap", "raw", "underlay encapsulation: raw (IP protocol 50) or udp (port 4500)")
	outer6 := fs.Bool("6", false, "IPv6 outer addresses on the veth (default IPv4)")
	sizeMiB := fs.Int("size", 64, "TCP transfer size in `MiB`")
	count := fs.Int("count", 3, "pings per address family")
	verbose := fs.Bool("v", false, "print the gateways' logs at the end")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	manual := fs.Bool("manual", false, "manual keys (fixed SPIs, random keys in the configs) instead of IKEv2")
	pubkey := fs.Bool("pubkey", false, "IKEv2 with certificates of a CA the demo makes instead of the pre-shared key")
	ikeWait := fs.Duration("ike-timeout", 15*time.Second, "how long the gateways get to set up the IKE SA and its child")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: mipsec demo --gateway [flags]

Builds two network namespaces joined by a veth and starts a mipsec gateway
in each. By default they are keyed by IKEv2 (RFC 7296): a fresh random
pre-shared key in a 0600 file, one [[connection]] each, gateway A initiates
and B responds; the demo waits until both list the IKE SA and its Child SA
(mipsec ike list) and prints it. With --pubkey they authenticate with
certificates instead (ECDSA, from a CA the demo makes). With --manual they
use manual keys (fixed SPIs, fresh random keys in [[sa]] tables, no IKE).
Then it pings
through the tunnel over IPv4 and IPv6, sends a TCP stream and reports its
throughput, and shows from a capture on the veth that only ESP (and IKE)
crossed it. Needs root and ip (iproute2). Everything is removed at the end,
also on failure or Ctrl-C.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mipsec demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *encap != "raw" && *encap != "udp" {
		fmt.Fprintf(stderr, "mipsec demo: -encap %q: want raw or udp\n", *encap)
		return 2
	}
	if *manual && *pubkey {
		fmt.Fprintln(stderr, "mipsec demo: -manual and -pubkey exclude each other")
		return 2
	}
	if *ikeWait <= 0 {
		fmt.Fprintln(stderr, "mipsec demo: -ike-timeout must be above 0")
		return 2
	}
	if *sizeMiB < 1 || *count < 1 {
		fmt.Fprintln(stderr, "mipsec demo: -size and -count must be at least 1")
		return 2
	}
	if rc := demoPrereqs(stderr, "network namespaces, a veth and TUN devices", [][2]string{{"ip", "iproute2"}}, bin); rc != 0 {
		return rc
	}
	d := &netDemo{out: stdout, bin: *bin, encap: *encap, outer6: *outer6, size: *sizeMiB << 20, count: *count,
		keying: "psk", ikeWait: *ikeWait}
	switch {
	case *manual:
		d.keying = "manual"
	case *pubkey:
		d.keying = "pubkey"
	}
	return runNamespaceDemo(stdout, stderr, *timeout, *verbose,
		"teardown: stopping the gateways, deleting the namespaces", d.run, d.teardown,
		func(w io.Writer) {
			for _, g := range d.gws {
				fmt.Fprintf(w, "--- log of gateway %s (%s)\n%s", g.Name, g.ConfigPath, g.Log.String())
			}
		})
}

// demoPrereqs checks what a namespace demo needs before it starts: root,
// the commands in cmds ({command, Debian package}), and the mipsec binary
// to run (*bin, defaulting to this executable). It returns 0 when all is
// there, else prints why to stderr and returns the exit status.
func demoPrereqs(stderr io.Writer, creates string, cmds [][2]string, bin *string) int {
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "mipsec demo: needs root (it creates %s): run it with sudo\n", creates)
		return 1
	}
	for _, c := range cmds {
		if _, err := exec.LookPath(c[0]); err != nil {
			fmt.Fprintf(stderr, "mipsec demo: needs the %s command (Debian: apt-get install %s)\n", c[0], c[1])
			return 1
		}
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "mipsec demo: %v\n", err)
			return 1
		}
		*bin = exe
	}
	return 0
}

// runNamespaceDemo runs a demo under Ctrl-C/SIGTERM and a timeout, tears it
// down whatever happened, prints the daemons' logs (logs) on failure or
// with verbose, and returns the exit status: 0, 1 on failure or timeout,
// 130 when interrupted (like a shell after Ctrl-C).
func runNamespaceDemo(stdout, stderr io.Writer, timeout time.Duration, verbose bool, teardownMsg string,
	run func(context.Context) error, teardown func(), logs func(io.Writer)) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	err := run(ctx)
	fmt.Fprintln(stdout, teardownMsg)
	teardown()
	interrupted := err != nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded)
	if verbose || (err != nil && !interrupted) {
		logs(stdout)
	}
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			err = fmt.Errorf("timed out after %v: %w", timeout, err)
		case ctx.Err() != nil:
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintf(stderr, "mipsec demo: FAILED: %v\n", err)
		if interrupted {
			return 130
		}
		return 1
	}
	fmt.Fprintln(stdout, "demo OK")
	return 0
}

// netDemo is one run of the demo and what it must tear down.
type netDemo struct {
	out    io.Writer
	bin    string
	encap  string
	outer6 bool
	size   int
	count  int
	// keying: "psk" (IKEv2 with a pre-shared key), "pubkey" (IKEv2 with
	// certificates) or "manual".
	keying  string
	ikeWait time.Duration

	dir string
	nss []string
	gws []*netlab.Gateway
}

func (d *netDemo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

func (d *netDemo) info(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

func (d *netDemo) run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "mipsec-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	outerA, outerB := ndUnderA4, ndUnderB4
	if d.outer6 {
		outerA, outerB = ndUnderA6, ndUnderB6
	}
	keyed := map[string]string{
		"psk":    "keyed by IKEv2 with a pre-shared key",
		"pubkey": "keyed by IKEv2 with certificates",
		"manual": "manual keys",
	}[d.keying]
	fmt.Fprintf(d.out, `mipsec demo: two gateways in network namespaces, ESP over a veth, %s

  site A %-15s                                            site B %s
         %-15s  [gateway A] %s === veth (%s) === %s [gateway B]  %s

`, keyed, ndSiteA4, ndSiteB4, ndSiteA6, outerA.Addr(), ndEncapName(d.encap), outerB.Addr(), ndSiteB6)

	// 1. Namespaces and the veth.
	netlab.RemoveStale("mipsec-demo")
	nsA := netlab.NetnsName("mipsec-demo", "a")
	nsB := netlab.NetnsName("mipsec-demo", "b")
	d.step("creating namespaces %s and %s, joined by veth ul0", nsA, nsB)
	for _, ns := range []string{nsA, nsB} {
		if err := netlab.AddNetns(ctx, ns); err != nil {
			return err
		}
		d.nss = append(d.nss, ns)
	}
	if err := netlab.Veth(ctx,
		netlab.Link{NS: nsA, Dev: "ul0", V4: ndUnderA4, V6: ndUnderA6},
		netlab.Link{NS: nsB, Dev: "ul0", V4: ndUnderB4, V6: ndUnderB6}); err != nil {
		return err
	}
	d.info("%s ul0 %s, %s", nsA, ndUnderA4, ndUnderA6)
	d.info("%s ul0 %s, %s", nsB, ndUnderB4, ndUnderB6)

	// The capture runs from before the gateways start to the end.
	capt, err := netlab.StartCaptureOpts(nsA, "ul0", netlab.CaptureOptions{Marker: ndMarker, Keep: ndKeepOther})
	if err != nil {
		return fmt.Errorf("capture on ul0: %w", err)
	}
	defer capt.Close()

	// 2. The gateways.
	var child *control.IKEChildInfo
	if d.keying == "manual" {
		err = d.startManual(ctx, dir, nsA, nsB, outerA.Addr(), outerB.Addr())
	} else {
		child, err = d.startIKE(ctx, dir, nsA, nsB, outerA.Addr(), outerB.Addr())
	}
	if err != nil {
		return err
	}
	cfgA := d.gws[0].Config

	// 3. Ping.
	for _, p := range []struct {
		ns       string
		src, dst netip.Addr
	}{
		{nsA, ndSiteA4.Addr(), ndSiteB4.Addr()},
		{nsA, ndSiteA6.Addr(), ndSiteB6.Addr()},
	} {
		d.step("ping %s -> %s through the tunnel", p.src, p.dst)
		rtts, err := ndPing(ctx, p.ns, p.src, p.dst, d.count)
		for i, r := range rtts {
			d.info("reply from %s: icmp_seq=%d time=%v", p.dst, i+1, r.Round(time.Microsecond))
		}
		if err != nil {
			return err
		}
	}

	// 4. TCP.
	dst := netip.AddrPortFrom(ndSiteB4.Addr(), 5201)
	d.step("TCP transfer of %d MiB %s -> %s through the tunnel", d.size>>20, ndSiteA4.Addr(), dst)
	var seed [32]byte
	rand.Read(seed[:])
	payload := netlab.Payload(int64(d.size), ndMarker, seed)
	res, err := netlab.Transfer(ctx, nsB, dst, nsA, ndSiteA4.Addr(), payload, 1<<20, func(sent int) {
		if sent%(16<<20) == 0 && sent < d.size {
			d.info("%d MiB sent", sent>>20)
		}
	})
	if err != nil {
		return fmt.Errorf("TCP transfer: %w", err)
	}
	d.info("received %d bytes, SHA-256 matches what was sent", d.size)
	d.info("throughput: %.1f Mbit/s (%v)", res.Mbps(), res.Elapsed.Round(time.Millisecond))

	// 5. The capture.
	time.Sleep(200 * time.Millisecond)
	capt.Close()
	d.step("capture on veth ul0 (namespace %s), from before the gateways started", nsA)
	s := capt.Stats()
	ike, other := ndSplitIKE(s, capt.Kept())
	if d.keying == "manual" {
		ike, other = -1, ndOther(s)
	}
	for _, l := range ndCaptureLines(s, ike, other) {
		d.info("%s", l)
	}
	if len(other) > 0 || s.Plaintext > 0 {
		return errors.New("the capture shows traffic other than ESP and IKE on the veth")
	}
	if s.ESPBytes < d.size {
		return fmt.Errorf("the capture shows only %d bytes of ESP for a %d-byte transfer", s.ESPBytes, d.size)
	}
	if child != nil {
		if err := ndSPIsOnWire(s, *child); err != nil {
			return err
		}
		d.info("=> only ESP crossed the veth (%s), with the Child SA's SPIs, and IKE; none of it contains the plaintext", ndEncapName(d.encap))
	} else {
		d.info("=> only ESP crossed the veth (%s), and none of it contains the plaintext", ndEncapName(d.encap))
	}

	// 6. The gateways' own counters.
	d.step("mipsec stats --socket %s (gateway A)", cfgA.Socket)
	out, err := exec.CommandContext(ctx, d.bin, "stats", "--socket", cfgA.Socket).CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		d.info("%s", l)
	}
	if err != nil {
		return fmt.Errorf("mipsec stats: %w", err)
	}
	return nil
}

// startManual starts the gateways with manual keys (netdemo/gateway.toml.tmpl).
func (d *netDemo) startManual(ctx context.Context, dir, nsA, nsB string, outerA, outerB netip.Addr) error {
	cfgA, cfgB, err := ndConfigs(dir, d.encap, outerA, outerB)
	if err != nil {
		return err
	}
	for _, g := range []struct {
		name, ns string
		cfg      netlab.GatewayConfig
	}{{"A", nsA, cfgA}, {"B", nsB, cfgB}} {
		path, err := netlab.WriteGatewayConfig(ndTemplate, dir, g.name, g.cfg)
		if err != nil {
			return err
		}
		if err := d.startGateway(ctx, g.name, g.ns, path, g.cfg); err != nil {
			return err
		}
	}
	return nil
}

// startGateway starts one gateway and adds it to d.gws.
func (d *netDemo) startGateway(ctx context.Context, name, ns, path string, cfg netlab.GatewayConfig) error {
	gw := &netlab.Gateway{Name: name, NS: ns, ConfigPath: path, Config: cfg}
	d.step("starting gateway %s: ip netns exec %s mipsec run -c %s", name, ns, gw.ConfigPath)
	d.gws = append(d.gws, gw)
	if err := gw.Start(ctx, d.bin, ndGatewayReady(cfg)); err != nil {
		return err
	}
	d.info("running (pid %d): TUN %s %s %s, control socket %s", gw.Pid(), cfg.TUN, cfg.Site4, cfg.Site6, cfg.Socket)
	return nil
}

// startIKE writes the pre-shared key (or the certificates) and the IKEv2
// configs, starts B (the
// responder, so that A's first IKE_SA_INIT finds its port open) and then
// A, waits for the IKE SA and prints it; d.gws is A, B. It returns A's
// view of the child.
func (d *netDemo) startIKE(ctx context.Context, dir, nsA, nsB string, outerA, outerB netip.Addr) (*control.IKEChildInfo, error) {
	var cfgA, cfgB ndIKEConfig
	auth := "the pre-shared key"
	if d.keying == "pubkey" {
		certs, err := ndMakeCerts(dir)
		if err != nil {
			return nil, err
		}
		d.step("certificates: a CA (%s) and, signed by it, one ECDSA P-256 certificate per gateway naming its identity", certs.CA)
		d.info("gateway A: %s (%s), key %s (mode 0600)", certs.CertA, ndIDA, certs.KeyA)
		d.info("gateway B: %s (%s), key %s (mode 0600)", certs.CertB, ndIDB, certs.KeyB)
		cfgA, cfgB = ndIKEConfigs(dir, d.encap, outerA, outerB, "pubkey", "", certs)
		auth = "signatures (certificates)"
	} else {
		psk, err := ndWritePSK(dir)
		if err != nil {
			return nil, err
		}
		d.step("pre-shared key: 32 random bytes in %s (mode 0600), read by both gateways", psk)
		cfgA, cfgB = ndIKEConfigs(dir, d.encap, outerA, outerB, "psk", psk, nil)
	}
	var err error
	paths := map[string]string{}
	for name, cfg := range map[string]ndIKEConfig{"A": cfgA, "B": cfgB} {
		if paths[name], err = ndWriteIKEConfig(dir, name, cfg); err != nil {
			return nil, err
		}
	}
	if err := d.startGateway(ctx, "B", nsB, paths["B"], cfgB.GatewayConfig); err != nil {
		return nil, err
	}
	d.info("connection gateway-a: responder, id %s, child %s %s %s <-> %s %s", ndIDB, ndChild, cfgB.Local4, cfgB.Local6, cfgB.Remote4, cfgB.Remote6)
	start := time.Now()
	if err := d.startGateway(ctx, "A", nsA, paths["A"], cfgA.GatewayConfig); err != nil {
		return nil, err
	}
	d.info("connection gateway-b: initiator (start_action = \"start\"), id %s, remote %s", ndIDA, cfgA.Remote)
	if cfgA.ForceEncap {
		d.info("both connections have encap = true: each side fakes its NAT detection hash, so IKE and ESP float to UDP 4500 (RFC 7296 §2.23), and ike list marks the peer [NAT]")
	}
	d.gws[0], d.gws[1] = d.gws[1], d.gws[0] // A first: its socket is what the later steps ask
	ga, gb := d.gws[0], d.gws[1]

	d.step("IKEv2 between the gateways: IKE_SA_INIT, then IKE_AUTH with %s and the first Child SA (RFC 7296 §1.2)", auth)
	sa, sb, err := ndWaitIKE(ctx, d.bin, ga, gb, d.ikeWait)
	if err != nil {
		return nil, err
	}
	d.info("both gateways list the IKE SA and its child %q after %v", ndChild, time.Since(start).Round(time.Millisecond))
	d.step("mipsec ike list --socket %s (gateway A)", ga.Config.Socket)
	out, err := netlab.Ctl(ctx, d.bin, ga.Config.Socket, "ike", "list")
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		d.info("%s", l)
	}
	if err != nil {
		return nil, err
	}
	d.info("gateway B (the responder) lists the same IKE SA %016x_i %016x_r, child SPIs %08x_i %08x_o",
		uint64(sb.SA.SPIi), uint64(sb.SA.SPIr), uint32(sb.Child.SPIIn), uint32(sb.Child.SPIOut))
	return &sa.Child, nil
}

func ndEncapName(encap string) string {
	if encap == "udp" {
		return "ESP in UDP, port 4500"
	}
	return "raw ESP, IP protocol 50"
}

// teardown stops the gateways and deletes the namespaces and the temporary
// directory; it runs on success, failure and Ctrl-C alike.
func (d *netDemo) teardown() {
	for _, g := range d.gws {
		g.Stop(syscall.SIGTERM, 5*time.Second) // SIGKILL after 5 seconds
	}
	for _, ns := range d.nss {
		if err := netlab.DelNetns(ns); err != nil {
			fmt.Fprintf(d.out, "    %v\n", err)
		}
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// ndConfigs returns the two gateways' configs with fresh random keys.
func ndConfigs(dir, encap string, outerA, outerB netip.Addr) (a, b netlab.GatewayConfig, err error) {
	key := func(n int) string {
		k := make([]byte, n)
		if _, e := rand.Read(k); e != nil {
			err = e
		}
		return hex.EncodeToString(k)
	}
	k := netlab.PairKeys{
		AB4: key(20), BA4: key(20), // aes128gcm16: key + salt
		AB6: key(16), BA6: key(16), // aes128-sha256
		AuthAB: key(32), AuthBA: key(32),
	}
	if err != nil {
		return a, b, err
	}
	a, b = netlab.PairConfigs(dir, encap, outerA, outerB, k)
	return a, b, nil
}

// ndGatewayReady: the gateway logged that it runs and its control socket
// exists.
func ndGatewayReady(cfg netlab.GatewayConfig) func(string) bool {
	return func(log string) bool {
		if !strings.Contains(log, "mipsec running") {
			return false
		}
		_, err := os.Stat(cfg.Socket)
		return err == nil
	}
}

// ndPing sends count echo requests from src to dst in ns and returns the
// round-trip times; every request must be answered (3 tries each).
func ndPing(ctx context.Context, ns string, src, dst netip.Addr, count int) ([]time.Duration, error) {
	p, err := netlab.NewPinger(ns, src, dst, []byte("mipsec demo"))
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var rtts []time.Duration
	for seq := 1; seq <= count; seq++ {
		rtt, err := p.Echo(ctx, seq, 3, time.Second)
		if err != nil {
			return rtts, err
		}
		if rtt == 0 {
			return rtts, fmt.Errorf("ping %v -> %v: no reply to icmp_seq=%d", src, dst, seq)
		}
		rtts = append(rtts, rtt)
		time.Sleep(100 * time.Millisecond)
	}
	return rtts, nil
}

// ndCaptureLines describes the capture for the demo's output: s, of
// which ike frames were IKE messages and other the rest that is neither
// ESP nor housekeeping; ike < 0 leaves IKE out (manual keys).
func ndCaptureLines(s netlab.Stats, ike int, other map[string]int) []string {
	var spis []string
	for spi, n := range s.SPIs() {
		spis = append(spis, fmt.Sprintf("0x%08x: %d", spi, n))
	}
	sort.Strings(spis)
	var others []string
	for k, n := range other {
		others = append(others, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(others)
	lines := []string{
		fmt.Sprintf("%d frames captured", s.Frames),
		fmt.Sprintf("ESP:                 %d packets, %d bytes (%d in UDP 4500); by SPI: %s", len(s.ESP), s.ESPBytes, s.ESPInUDP(), strings.Join(spis, ", ")),
	}
	if ike >= 0 {
		lines = append(lines, fmt.Sprintf("IKE (UDP 500/4500):  %d messages", ike))
	}
	return append(lines,
		fmt.Sprintf("NAT keepalives:      %d", s.Keepalives),
		fmt.Sprintf("ARP/ND/MLD:          %d (link-layer housekeeping)", s.Control),
		fmt.Sprintf("anything else:       %d %s", len(other), strings.Join(others, ", ")),
		fmt.Sprintf("frames with the plaintext pattern %q: %d", ndMarker, s.Plaintext),
	)
}

// ndOther is everything the demo does not expect on the veth: ICMP errors
// count as anything else.
func ndOther(s netlab.Stats) map[string]int {
	other := maps.Clone(s.Other)
	if s.ICMPErrors > 0 {
		other["ICMP error"] = s.ICMPErrors
	}
	return other
}
