package benchlab

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/mipsec/mipsec/internal/netlab"
)

//go:embed gateway.toml.tmpl
var gatewayTemplateText string

var gatewayTemplate = template.Must(template.New("gateway").Parse(gatewayTemplateText))

// gatewayConfig fills gateway.toml.tmpl: netlab's fields, the algorithm
// of the SA pair and underlay.packet_socket.
type gatewayConfig struct {
	netlab.GatewayConfig
	Algorithm    string
	PacketSocket bool
}

// mipsecSpec is how a mipsec-* system configures its gateways.
type mipsecSpec struct {
	encap, alg string
	// packetSocket is underlay.packet_socket: raw ESP through AF_PACKET.
	packetSocket bool
}

// mipsecSpecs are the mipsec-* systems of Systems.
var mipsecSpecs = map[string]mipsecSpec{
	"mipsec-udp":        {encap: "udp", alg: "aes128gcm16"},
	"mipsec-raw":        {encap: "raw", alg: "aes128gcm16", packetSocket: true},
	"mipsec-raw-kernel": {encap: "raw", alg: "aes128gcm16"},
	"mipsec-chacha":     {encap: "udp", alg: "chacha20poly1305"},
}

// renderGateway fills gateway.toml.tmpl for one gateway of spec.
func renderGateway(spec mipsecSpec, g netlab.GatewayConfig) (string, error) {
	var s strings.Builder
	err := gatewayTemplate.Execute(&s, gatewayConfig{GatewayConfig: g, Algorithm: spec.alg, PacketSocket: spec.packetSocket})
	return s.String(), err
}

// Config is what Run runs. The zero values of the optional fields take the
// defaults given.
type Config struct {
	Mipsec      string   // the mipsec binary the gateways run (required for mipsec-*)
	WireguardGo string   // the wireguard-go binary (required for wireguard-go)
	Systems     []System // in run order (default: DefaultSystems)
	Rounds      int      // default 3
	// Duration of each iperf3 test, in whole seconds (default 10 s);
	// Omit is iperf3 -O before each TCP test (default 1 s from 5 s on,
	// else 0).
	Duration, Omit time.Duration
	Pings          int           // idle pings per round (default 20)
	PingInterval   time.Duration // default 50 ms
	UDPSize        int           // inner UDP packet size, IP header included (default 1400)
	UDPBitrate     string        // iperf3 -b for UDP (default "0": unlimited)
	TunnelMTU      int           // MTU of every tunnel interface (default 1420, wireguard-go's)
	Port           int           // iperf3 port (default 5201)
	Command        string        // recorded in the report
	// Progress gets a line per step (nil: none).
	Progress io.Writer
}

func (c *Config) defaults() {
	if len(c.Systems) == 0 {
		c.Systems = DefaultSystems()
	}
	if c.Rounds <= 0 {
		c.Rounds = 3
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Omit < 0 || c.Omit == 0 && c.Duration >= 5*time.Second {
		c.Omit = time.Second
	}
	if c.Pings <= 0 {
		c.Pings = 20
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 50 * time.Millisecond
	}
	if c.UDPSize <= 0 {
		c.UDPSize = 1400
	}
	if c.UDPBitrate == "" {
		c.UDPBitrate = "0"
	}
	if c.TunnelMTU <= 0 {
		c.TunnelMTU = 1420
	}
	if c.Port <= 0 {
		c.Port = 5201
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// seconds rounds d to whole seconds for iperf3's -t and -O (at least min).
func seconds(d time.Duration, min int) string {
	return strconv.Itoa(max(int(math.Round(d.Seconds())), min))
}

// Check returns an error naming what is missing to run cfg: root, ip,
// iperf3, wg, strongSwan and the binaries.
func Check(cfg Config) error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("needs root (it creates network namespaces, a veth and TUN devices): run it with sudo"))
	}
	need := map[string]string{"ip": "iproute2", "iperf3": "iperf3"}
	for _, s := range cfg.Systems {
		switch {
		case s.ID == WireguardGo:
			need["wg"] = "wireguard-tools"
			if cfg.WireguardGo == "" {
				errs = append(errs, errors.New("no wireguard-go binary (build one: go build -o bin/wireguard-go golang.zx2c4.com/wireguard)"))
			}
		case s.ID == StrongswanLibipsec:
			if err := StrongswanMissing(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.ID, err))
			}
		case strings.HasPrefix(s.ID, "mipsec") && cfg.Mipsec == "":
			errs = append(errs, errors.New("no mipsec binary"))
		}
	}
	for cmd, pkg := range need {
		if _, err := exec.LookPath(cmd); err != nil {
			errs = append(errs, fmt.Errorf("needs %s (Debian: apt-get install %s)", cmd, pkg))
		}
	}
	return errors.Join(errs...)
}

// lab is one run: the namespaces, the iperf3 server and what to remove.
type lab struct {
	cfg      Config
	dir      string
	nsA, nsB string
	nss      []string
	server   *netlab.Process
	srvLog   netlab.SyncBuffer
	report   *Report
	starts   int
}

// Run runs the benchmark: cfg.Rounds rounds, each running every system in
// turn (start its tunnel, ping, iperf3 TCP with 1 and 4 streams, UDP, stop
// it). A test that fails is recorded in the report (TestRun.Error) and the run
// goes on; Run returns an error, with the report so far, when the lab
// cannot be built or ctx ends. Everything it creates is removed before it
// returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if err := Check(cfg); err != nil {
		return nil, err
	}
	l := &lab{cfg: cfg, report: &Report{Schema: 1, Command: cfg.Command, Started: time.Now()}}
	r := l.report
	r.Host = hostInfo(cfg)
	r.Settings = Settings{
		Rounds: cfg.Rounds, Duration: cfg.Duration.String(), Omit: cfg.Omit.String(), Pings: cfg.Pings,
		UDPSize: cfg.UDPSize, UDPBitrate: cfg.UDPBitrate, TunnelMTU: cfg.TunnelMTU, VethMTU: 1500,
	}
	for _, s := range cfg.Systems {
		r.Settings.Systems = append(r.Settings.Systems, s.ID)
	}
	defer l.teardown()
	err := l.run(ctx)
	r.Host.LoadAfter = loadAvg()
	r.Finished = time.Now()
	r.Summarize()
	if err == nil {
		err = context.Cause(ctx)
	}
	return r, err
}

func (l *lab) progress(format string, args ...any) {
	fmt.Fprintf(l.cfg.Progress, format+"\n", args...)
}

func (l *lab) run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "mipsec-bench-")
	if err != nil {
		return err
	}
	l.dir = dir
	netlab.RemoveStale("mipsec-bench")
	l.nsA, l.nsB = netlab.NetnsName("mipsec-bench", "a"), netlab.NetnsName("mipsec-bench", "b")
	l.progress("==> namespaces %s and %s joined by a veth (MTU 1500): %s - %s", l.nsA, l.nsB, netlab.UnderlayA4.Addr(), netlab.UnderlayB4.Addr())
	for _, ns := range []string{l.nsA, l.nsB} {
		if err := netlab.AddNetns(ctx, ns); err != nil {
			return err
		}
		l.nss = append(l.nss, ns)
	}
	if err := netlab.Veth(ctx,
		netlab.Link{NS: l.nsA, Dev: "ul0", V4: netlab.UnderlayA4},
		netlab.Link{NS: l.nsB, Dev: "ul0", V4: netlab.UnderlayB4}); err != nil {
		return err
	}
	if err := l.startServer(ctx); err != nil {
		return err
	}
	c := l.cfg
	perRound := time.Duration(len(c.Systems)) * (3*(c.Duration+c.Omit+time.Second) + time.Duration(c.Pings)*c.PingInterval + 2*time.Second)
	l.progress("==> %d rounds of %d systems, %ss per iperf3 test: about %v (load average %.2f on %d CPUs)",
		c.Rounds, len(c.Systems), seconds(c.Duration, 1), roundETA(time.Duration(c.Rounds)*perRound),
		l.report.Host.LoadBefore[0], l.report.Host.CPUs)
	for round := 1; round <= c.Rounds; round++ {
		for _, sys := range c.Systems {
			if err := context.Cause(ctx); err != nil {
				return err
			}
			l.progress("--> round %d/%d: %s", round, c.Rounds, sys.Name)
			l.runSystem(ctx, round, sys)
		}
	}
	return nil
}

// record appends run to the report and prints its progress line.
func (l *lab) record(run TestRun) {
	l.report.Runs = append(l.report.Runs, run)
	switch {
	case run.Error != "":
		l.progress("    %-5s FAILED: %s", run.Test, run.Error)
	case run.Test == TestPing:
		s := slices.Clone(run.RTTms)
		slices.Sort(s)
		l.progress("    %-5s median %.3f ms, min %.3f, max %.3f (%d replies, %d lost)", run.Test, Median(s), s[0], s[len(s)-1], len(s), run.Lost)
	default:
		line := fmt.Sprintf("    %-5s %7.3f Gbit/s received", run.Test, run.Iperf.BitsPerSecond/1e9)
		if run.Test == TestUDP {
			line += fmt.Sprintf(", %.1f%% lost", run.Iperf.LostPercent)
		} else {
			line += fmt.Sprintf(", %d retransmits", run.Iperf.Retransmits)
		}
		if run.CPUSeconds != nil {
			per, _ := CPUPerGB(time.Duration(*run.CPUSeconds*float64(time.Second)), run.Iperf.Bytes)
			line += fmt.Sprintf("; tunnel CPU %.2f s, %.2f s/GB", *run.CPUSeconds, per)
		}
		l.progress("%s", line)
	}
}

// runSystem starts sys's tunnel, runs the tests through it and stops it.
func (l *lab) runSystem(ctx context.Context, round int, sys System) {
	fail := func(test string, err error) {
		l.record(TestRun{Round: round, System: sys.ID, Test: test, Error: err.Error()})
	}
	t, err := l.newTunnel(sys)
	if err == nil {
		err = t.start(ctx)
	}
	if err == nil {
		err = l.waitPath(ctx, t)
	}
	if err != nil {
		if t != nil {
			err = fmt.Errorf("%w%s", err, t.logs())
			t.stop()
		}
		for _, test := range []string{TestPing, TestTCP1, TestTCP4, TestUDP} {
			fail(test, err)
		}
		return
	}
	defer t.stop()
	l.record(l.ping(ctx, round, sys, t))
	for _, test := range []string{TestTCP1, TestTCP4, TestUDP} {
		if context.Cause(ctx) != nil {
			return
		}
		l.record(l.iperf(ctx, round, sys, t, test))
	}
	if v, ok := t.(verifier); ok && context.Cause(ctx) == nil {
		var moved int64
		for _, r := range l.report.Runs {
			if r.Round == round && r.System == sys.ID && r.Error == "" && r.Iperf != nil {
				moved += r.Iperf.Bytes
			}
		}
		if err := v.verify(ctx, moved); err != nil {
			l.progress("    %s did not run as configured, this round's figures are discarded: %v", sys.ID, err)
			for i := range l.report.Runs {
				if r := &l.report.Runs[i]; r.Round == round && r.System == sys.ID && r.Error == "" {
					*r = TestRun{Round: round, System: sys.ID, Test: r.Test, Error: err.Error()}
				}
			}
		}
	}
}

// verifier is a tunnel that can tell, after the tests, whether it ran as
// its system says (a mislabelled figure is worse than none); moved is
// what iperf3 received through it in this round's tests.
type verifier interface {
	verify(ctx context.Context, moved int64) error
}

// tunnel is one system's path from site A to site B.
type tunnel interface {
	start(ctx context.Context) error
	// addrs returns the addresses iperf3 and ping use in A and B.
	addrs() (a, b netip.Addr)
	// pids are the tunnel processes whose CPU time counts.
	pids() []int
	stop()
	// logs returns the processes' output for an error message.
	logs() string
}

func (l *lab) newTunnel(sys System) (tunnel, error) {
	l.starts++
	dir := filepath.Join(l.dir, fmt.Sprintf("%02d-%s", l.starts, sys.ID))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	switch sys.ID {
	case "veth":
		return vethTunnel{}, nil
	case WireguardGo:
		return &wgTunnel{l: l, dir: dir}, nil
	case StrongswanLibipsec:
		return &swanTunnel{l: l, dir: dir}, nil
	}
	if spec, ok := mipsecSpecs[sys.ID]; ok {
		return &mipsecTunnel{l: l, dir: dir, spec: spec}, nil
	}
	return nil, fmt.Errorf("unknown system %q", sys.ID)
}

// waitPath pings through t until a reply comes (WireGuard's handshake,
// the TUNs coming up), for up to 10 s.
func (l *lab) waitPath(ctx context.Context, t tunnel) error {
	a, b := t.addrs()
	p, err := netlab.NewPinger(l.nsA, a, b, []byte("mipsec bench warm-up"))
	if err != nil {
		return err
	}
	defer p.Close()
	deadline := time.Now().Add(10 * time.Second)
	for seq := 1; time.Now().Before(deadline); seq++ {
		rtt, err := p.Echo(ctx, seq, 1, 200*time.Millisecond)
		if err != nil {
			return err
		}
		if rtt > 0 {
			return nil
		}
	}
	return fmt.Errorf("no ping reply %v -> %v within 10s: the tunnel does not carry traffic", a, b)
}

// ping measures the idle round-trip time: cfg.Pings echo requests of 56
// bytes of data, cfg.PingInterval apart.
func (l *lab) ping(ctx context.Context, round int, sys System, t tunnel) TestRun {
	run := TestRun{Round: round, System: sys.ID, Test: TestPing}
	a, b := t.addrs()
	p, err := netlab.NewPinger(l.nsA, a, b, make([]byte, 56))
	if err != nil {
		run.Error = err.Error()
		return run
	}
	defer p.Close()
	for seq := 1; seq <= l.cfg.Pings; seq++ {
		rtt, err := p.Echo(ctx, 1000+seq, 1, time.Second)
		if err != nil {
			run.Error = err.Error()
			return run
		}
		if rtt == 0 {
			run.Lost++
		} else {
			run.RTTms = append(run.RTTms, float64(rtt)/float64(time.Millisecond))
		}
		time.Sleep(l.cfg.PingInterval)
	}
	if len(run.RTTms) == 0 {
		run.Error = fmt.Sprintf("none of %d pings answered", l.cfg.Pings)
	}
	return run
}

// iperf runs one iperf3 test from A to B through t and measures the CPU
// time of t's processes meanwhile.
func (l *lab) iperf(ctx context.Context, round int, sys System, t tunnel, test string) TestRun {
	run := TestRun{Round: round, System: sys.ID, Test: test}
	a, b := t.addrs()
	args := []string{"netns", "exec", l.nsA, "iperf3", "-c", b.String(), "-B", a.String(), "-p", strconv.Itoa(l.cfg.Port),
		"-t", seconds(l.cfg.Duration, 1), "-J", "--connect-timeout", "3000"}
	switch test {
	case TestTCP1:
		args = append(args, "-O", seconds(l.cfg.Omit, 0))
	case TestTCP4:
		args = append(args, "-O", seconds(l.cfg.Omit, 0), "-P", "4")
	case TestUDP:
		// No -O: UDP has no slow start, and iperf 3.12 subtracts the
		// omitted second's loss from the total in a way that can make
		// lost_packets negative.
		args = append(args, "-u", "-l", strconv.Itoa(l.cfg.UDPSize-28), "-b", l.cfg.UDPBitrate)
	}
	for attempt := 1; ; attempt++ {
		pids := t.pids()
		before, cpuErr := ProcsCPU(pids)
		out, err := l.iperfClient(ctx, args)
		after, cpuErr2 := ProcsCPU(pids)
		res, perr := ParseIperf(out)
		if perr == nil {
			run.Iperf = &res
			if len(pids) > 0 {
				if err := errors.Join(cpuErr, cpuErr2); err != nil {
					run.Error = "tunnel CPU time: " + err.Error()
					return run
				}
				s := (after - before).Seconds()
				run.CPUSeconds = &s
			}
			if res.Bytes <= 0 {
				run.Error = "iperf3 moved no data"
			}
			return run
		}
		if ctxErr := context.Cause(ctx); ctxErr != nil {
			run.Error = ctxErr.Error()
			return run
		}
		// The server may be stuck in an aborted test, or not listening yet:
		// start it again, once.
		if attempt < 2 && errors.Is(perr, ErrIperf) {
			l.progress("    %-5s iperf3: %v; restarting the iperf3 server and retrying", test, perr)
			l.stopServer()
			if err := l.startServer(ctx); err == nil {
				continue
			}
		}
		run.Error = fmt.Sprintf("iperf3: %v", perr)
		if err != nil {
			run.Error += fmt.Sprintf(" (exit: %v)", err)
		}
		return run
	}
}

// iperfClient runs the iperf3 client (`ip args...`) with a deadline of
// twice the test time plus 30 s and returns its standard output.
func (l *lab) iperfClient(ctx context.Context, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*(l.cfg.Duration+l.cfg.Omit)+30*time.Second)
	defer cancel()
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches only us
	if err := netlab.StartKilledWithUs(cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	if err != nil && stderr.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), err
}

// startServer starts `iperf3 -s` in B (listening on every address) and
// waits until it listens.
func (l *lab) startServer(ctx context.Context) error {
	cmd := exec.Command("ip", "netns", "exec", l.nsB, "iperf3", "-s", "-p", strconv.Itoa(l.cfg.Port))
	cmd.Stdout, cmd.Stderr = &l.srvLog, &l.srvLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := netlab.Start(cmd, nil)
	if err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	l.server = p
	err = p.WaitUntil(ctx, 10*time.Second, func() bool {
		out, _ := exec.Command("ip", "netns", "exec", l.nsB, "ss", "-Hltn", "sport", "=", ":"+strconv.Itoa(l.cfg.Port)).Output()
		return len(bytes.TrimSpace(out)) > 0
	})
	if err != nil {
		return fmt.Errorf("iperf3 server in %s: %w: %s", l.nsB, err, l.srvLog.String())
	}
	return nil
}

func (l *lab) stopServer() {
	if l.server != nil {
		l.server.Stop(syscall.SIGTERM, 3*time.Second)
		l.server = nil
	}
}

// teardown removes everything run created; it runs on every path.
func (l *lab) teardown() {
	l.stopServer()
	for _, ns := range l.nss {
		if err := netlab.DelNetns(ns); err != nil {
			l.progress("    teardown: %v", err)
		}
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// vethTunnel is no tunnel: iperf3 and ping run between the veth's ends.
type vethTunnel struct{}

func (vethTunnel) start(context.Context) error { return nil }
func (vethTunnel) addrs() (netip.Addr, netip.Addr) {
	return netlab.UnderlayA4.Addr(), netlab.UnderlayB4.Addr()
}
func (vethTunnel) pids() []int  { return nil }
func (vethTunnel) stop()        {}
func (vethTunnel) logs() string { return "" }

// randomHex returns n random bytes in hex with a 0x prefix.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return "0x" + hex.EncodeToString(b)
}

// mipsecTunnel is a pair of `mipsec run` gateways with fresh keys and
// state directories.
type mipsecTunnel struct {
	l    *lab
	dir  string
	spec mipsecSpec
	gws  []*netlab.Gateway
}

func (m *mipsecTunnel) start(ctx context.Context) error {
	keyLen := 20 // aes128gcm16: 16-byte key + 4-byte salt (RFC 4106 §8.1)
	if m.spec.alg == "chacha20poly1305" {
		keyLen = 36 // 32-byte key + 4-byte salt (RFC 7634 §2)
	}
	a, b := netlab.PairConfigs(m.dir, m.spec.encap, netlab.UnderlayA4.Addr(), netlab.UnderlayB4.Addr(), netlab.PairKeys{
		AB4: randomHex(keyLen), BA4: randomHex(keyLen),
	})
	for _, g := range []struct {
		name, ns string
		cfg      netlab.GatewayConfig
	}{{"A", m.l.nsA, a}, {"B", m.l.nsB, b}} {
		g.cfg.MTU = m.l.cfg.TunnelMTU
		g.cfg.LogLevel = "info"
		s, err := renderGateway(m.spec, g.cfg)
		if err != nil {
			return err
		}
		path := filepath.Join(m.dir, "gateway-"+strings.ToLower(g.name)+".toml")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			return err
		}
		gw := &netlab.Gateway{Name: g.name, NS: g.ns, ConfigPath: path, Config: g.cfg}
		m.gws = append(m.gws, gw)
		sock := g.cfg.Socket
		if err := gw.Start(ctx, m.l.cfg.Mipsec, func(log string) bool {
			if !strings.Contains(log, "mipsec running") {
				return false
			}
			_, err := os.Stat(sock)
			return err == nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// verify checks, for a system with packet_socket, that both gateways sent
// raw ESP through the AF_PACKET socket (`mipsec stats`: tx_packet_socket
// at least ten times the fallbacks, which are the first packets and one
// every 2 s to let the kernel confirm the neighbour, and send errors below
// 1 %), so that the row is not the kernel path under the AF_PACKET label.
func (m *mipsecTunnel) verify(ctx context.Context, _ int64) error {
	if !m.spec.packetSocket {
		return nil
	}
	for _, g := range m.gws {
		out, err := exec.CommandContext(ctx, m.l.cfg.Mipsec, "stats", "-json", "-socket", g.Config.Socket).Output()
		if err != nil {
			return fmt.Errorf("gateway %s: mipsec stats: %w", g.Name, err)
		}
		var st struct {
			Underlay map[string]uint64 `json:"underlay"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return fmt.Errorf("gateway %s: mipsec stats: %w", g.Name, err)
		}
		ps, fb, errs := st.Underlay["tx_packet_socket"], st.Underlay["tx_packet_socket_fallback"], st.Underlay["tx_packet_socket_errors"]
		if ps == 0 || fb > ps/10 || errs > ps/100 {
			return fmt.Errorf("gateway %s sent %d raw ESP packets through AF_PACKET, %d through the raw socket, %d refused", g.Name, ps, fb, errs)
		}
	}
	return nil
}

func (m *mipsecTunnel) addrs() (netip.Addr, netip.Addr) {
	return netlab.SiteA4.Addr(), netlab.SiteB4.Addr()
}

func (m *mipsecTunnel) pids() []int {
	var p []int
	for _, g := range m.gws {
		if pid := g.Pid(); pid > 0 {
			p = append(p, pid)
		}
	}
	return p
}

func (m *mipsecTunnel) stop() {
	for _, g := range m.gws {
		g.Stop(syscall.SIGTERM, 5*time.Second)
	}
}

func (m *mipsecTunnel) logs() string {
	var b strings.Builder
	for _, g := range m.gws {
		fmt.Fprintf(&b, "\n--- gateway %s (%s):\n%s", g.Name, g.ConfigPath, lastLines(g.Log.String(), 20))
	}
	return b.String()
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// wgTunnel is a pair of wireguard-go processes configured with wg.
type wgTunnel struct {
	l     *lab
	dir   string
	names [2]string
	procs []*netlab.Process
	log   netlab.SyncBuffer
}

// wgPort is the WireGuard listen port on both ends.
const wgPort = 51820

func (w *wgTunnel) start(ctx context.Context) error {
	// UAPI sockets live in /var/run/wireguard/NAME.sock, shared by every
	// namespace: the names carry our PID and a counter.
	for i, side := range []string{"a", "b"} {
		w.names[i] = fmt.Sprintf("bwg%d-%d%s", os.Getpid()%100000, w.l.starts%100, side)
	}
	var priv, pub [2]string
	for i := range 2 {
		k, err := exec.CommandContext(ctx, "wg", "genkey").Output()
		if err != nil {
			return fmt.Errorf("wg genkey: %w", err)
		}
		priv[i] = strings.TrimSpace(string(k))
		c := exec.CommandContext(ctx, "wg", "pubkey")
		c.Stdin = strings.NewReader(priv[i] + "\n")
		p, err := c.Output()
		if err != nil {
			return fmt.Errorf("wg pubkey: %w", err)
		}
		pub[i] = strings.TrimSpace(string(p))
	}
	nss := [2]string{w.l.nsA, w.l.nsB}
	under := [2]netip.Addr{netlab.UnderlayA4.Addr(), netlab.UnderlayB4.Addr()}
	sites := [2]netip.Prefix{netlab.SiteA4, netlab.SiteB4}
	for i := range 2 {
		cmd := exec.Command("ip", "netns", "exec", nss[i], w.l.cfg.WireguardGo, "-f", w.names[i])
		cmd.Env = append(os.Environ(), "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error")
		cmd.Stdout, cmd.Stderr = &w.log, &w.log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		p, err := netlab.Start(cmd, nil)
		if err != nil {
			return fmt.Errorf("wireguard-go: %w", err)
		}
		w.procs = append(w.procs, p)
		sock := "/var/run/wireguard/" + w.names[i] + ".sock"
		if err := p.WaitUntil(ctx, 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }); err != nil {
			return fmt.Errorf("wireguard-go %s in %s: no %s: %w", w.names[i], nss[i], sock, err)
		}
	}
	for i := range 2 {
		j := 1 - i
		keyFile := filepath.Join(w.dir, "private-"+w.names[i])
		if err := os.WriteFile(keyFile, []byte(priv[i]+"\n"), 0o600); err != nil {
			return err
		}
		peerNet := netip.PrefixFrom(sites[j].Addr(), sites[j].Bits()).Masked()
		steps := [][]string{
			{"wg", "set", w.names[i], "private-key", keyFile, "listen-port", strconv.Itoa(wgPort),
				"peer", pub[j], "endpoint", netip.AddrPortFrom(under[j], wgPort).String(), "allowed-ips", peerNet.String()},
			{"ip", "addr", "add", sites[i].String(), "dev", w.names[i]},
			{"ip", "link", "set", w.names[i], "mtu", strconv.Itoa(w.l.cfg.TunnelMTU), "up"},
			{"ip", "route", "add", peerNet.String(), "dev", w.names[i]},
		}
		for _, s := range steps {
			args := append([]string{"netns", "exec", nss[i]}, s...)
			if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
			}
		}
	}
	return nil
}

func (w *wgTunnel) addrs() (netip.Addr, netip.Addr) {
	return netlab.SiteA4.Addr(), netlab.SiteB4.Addr()
}

func (w *wgTunnel) pids() []int {
	var p []int
	for _, pr := range w.procs {
		p = append(p, pr.Cmd.Process.Pid)
	}
	return p
}

func (w *wgTunnel) stop() {
	for _, p := range w.procs {
		p.Stop(syscall.SIGTERM, 5*time.Second)
	}
}

func (w *wgTunnel) logs() string {
	return "\n--- wireguard-go:\n" + lastLines(w.log.String(), 20)
}

// hostInfo describes the machine and the tools' versions.
func hostInfo(cfg Config) Host {
	h := Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	first := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	h.Iperf3 = first("iperf3", "--version")
	if cfg.Mipsec != "" {
		h.Mipsec = first(cfg.Mipsec, "version")
	}
	if cfg.WireguardGo != "" {
		h.WireguardGo = first(cfg.WireguardGo, "--version")
	}
	if slices.ContainsFunc(cfg.Systems, func(s System) bool { return s.ID == StrongswanLibipsec }) {
		h.Strongswan = strongswanVersion()
	}
	return h
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	l, _ = ParseLoadAvg(string(b))
	return l
}

// roundETA rounds an estimate to minutes, or to seconds under 2 minutes.
func roundETA(d time.Duration) time.Duration {
	if d < 2*time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}
