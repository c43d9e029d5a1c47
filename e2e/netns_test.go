package e2e

// The harness: namespaces joined by a veth, mipsec daemons started in them
// from templated configs, and traffic (ping, TCP) and captures run in this
// process on sockets opened inside the namespaces: thin wrappers, for
// tests, around internal/netlab (shared with `mipsec demo`).

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

// mipsecBin is the mipsec binary TestMain builds once for every test.
var (
	mipsecBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			netlab.RemoveStale("mipsec-e2e")
			dir, err := os.MkdirTemp("", "mipsec-e2e-bin-")
			if err != nil {
				buildErr = err
			} else {
				defer os.RemoveAll(dir)
				mipsecBin = filepath.Join(dir, "mipsec")
				cmd := exec.Command("go", "build", "-o", mipsecBin, "github.com/mipsec/mipsec/cmd/mipsec")
				if out, err := cmd.CombinedOutput(); err != nil {
					buildErr = fmt.Errorf("go build ./cmd/mipsec: %v\n%s", err, out)
				}
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// needEnv skips (or fails in CI) unless the test can create namespaces and
// run the mipsec binary.
func needEnv(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "ip")
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if mipsecBin == "" {
		t.Fatal("mipsec binary not built")
	}
}

var nsCounter atomic.Int64

// startKilledWithUs starts cmd so that it is killed when this process dies.
func startKilledWithUs(cmd *exec.Cmd) error { return netlab.StartKilledWithUs(cmd) }

// inNetns runs fn on a thread that has entered namespace ns (netlab.InNetns).
func inNetns(ns string, fn func() error) error { return netlab.InNetns(ns, fn) }

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer = netlab.SyncBuffer

// run runs a command and fails the test on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a namespace named mipsec-e2e-PID-N with its loopback up
// and no duplicate address detection; it is deleted when the test ends.
func newNetns(t testing.TB) string {
	t.Helper()
	name := netlab.NetnsName("mipsec-e2e", fmt.Sprint(nsCounter.Add(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := netlab.AddNetns(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netlab.DelNetns(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// veth joins namespaces a and b with a veth named dev in both, with
// addresses a4/a6 on a's end and b4/b6 on b's (invalid prefixes are left
// out).
func veth(t testing.TB, a, b, dev string, a4, a6, b4, b6 netip.Prefix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := netlab.Veth(ctx, netlab.Link{NS: a, Dev: dev, V4: a4, V6: a6}, netlab.Link{NS: b, Dev: dev, V4: b4, V6: b6}); err != nil {
		t.Fatal(err)
	}
}

// Documentation addresses of the standard topology.
var (
	ulA4, ulB4     = netlab.UnderlayA4, netlab.UnderlayB4
	ulA6, ulB6     = netlab.UnderlayA6, netlab.UnderlayB6
	siteA4, siteB4 = netlab.SiteA4, netlab.SiteB4
	siteA6, siteB6 = netlab.SiteA6, netlab.SiteB6
)

// gwConfig fills e2e/testdata/gateway.toml.tmpl.
type gwConfig = netlab.GatewayConfig

var gwTemplate = template.Must(template.ParseFiles("testdata/gateway.toml.tmpl"))

// pairOptions choose the variant of a two-gateway topology.
type pairOptions struct {
	encap   string // "raw" (default) or "udp"
	outer6  bool   // IPv6 outer addresses
	roaming bool
	outerA  netip.Addr // outer address overrides
	outerB  netip.Addr
	// setup, if set, replaces the veth between A and B: it joins the
	// namespaces itself (through a NAT, say) before the daemons start.
	setup func(t *testing.T, nsA, nsB string)
	// tweak, if set, edits the configs before they are written.
	tweak func(a, b *gwConfig)
	// noB: start no daemon in B's namespace (another ESP peer runs there).
	noB bool
}

// pair is two gateways A and B, each in its own namespace.
type pair struct {
	A, B     *gateway
	nsA, nsB string
}

// Keys and SPIs of the standard pair (A's outbound = B's inbound).
const (
	spiAB4 = netlab.SPIAB4
	spiAB6 = netlab.SPIAB6
	spiBA4 = netlab.SPIBA4
	spiBA6 = netlab.SPIBA6
	keyAB4 = "4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223"
	keyBA4 = "5b1c2d3e4f60718293a4b5c6d7e8f90a11223344"
	keyAB6 = "00112233445566778899aabbccddeeff"
	keyBA6 = "ffeeddccbbaa99887766554433221100"
	authAB = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	authBA = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
)

// newPair creates namespaces A and B joined by a veth "ul0" (unless
// o.setup joins them) with the underlay addresses, writes both configs and
// starts both daemons (only A with o.noB).
func newPair(t *testing.T, o pairOptions) *pair {
	t.Helper()
	needEnv(t)
	if o.encap == "" {
		o.encap = "raw"
	}
	nsA, nsB := newNetns(t), newNetns(t)
	if o.setup != nil {
		o.setup(t, nsA, nsB)
	} else {
		veth(t, nsA, nsB, "ul0", ulA4, ulA6, ulB4, ulB6)
	}
	outerA, outerB := ulA4.Addr(), ulB4.Addr()
	if o.outer6 {
		outerA, outerB = ulA6.Addr(), ulB6.Addr()
	}
	if o.outerA.IsValid() {
		outerA = o.outerA
	}
	if o.outerB.IsValid() {
		outerB = o.outerB
	}
	hex := func(s string) string { return "0x" + s }
	cA, cB := netlab.PairConfigs(t.TempDir(), o.encap, outerA, outerB, netlab.PairKeys{
		AB4: hex(keyAB4), BA4: hex(keyBA4), AB6: keyAB6, BA6: keyBA6, AuthAB: authAB, AuthBA: authBA,
	})
	for _, c := range []*gwConfig{&cA, &cB} {
		c.LogLevel, c.Roaming = "info", o.roaming
	}
	if o.tweak != nil {
		o.tweak(&cA, &cB)
	}
	p := &pair{A: newGateway(t, "A", nsA, cA), nsA: nsA, nsB: nsB}
	p.A.start()
	if !o.noB {
		p.B = newGateway(t, "B", nsB, cB)
		p.B.start()
	}
	return p
}

// gateway is one mipsec daemon in a namespace; it can be stopped and
// started again with the same config and state directory.
type gateway struct {
	*netlab.Gateway
	t *testing.T
	// name, ns, cfg and cfgPath are the netlab.Gateway's.
	name, ns, cfgPath string
	cfg               gwConfig
}

func newGateway(t *testing.T, name, ns string, cfg gwConfig) *gateway {
	t.Helper()
	path, err := netlab.WriteGatewayConfig(gwTemplate, filepath.Dir(cfg.Socket), name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return newGatewayFile(t, name, ns, path, cfg)
}

// newGatewayFile is newGateway for a config file that exists; cfg needs
// only Socket.
func newGatewayFile(t *testing.T, name, ns, path string, cfg gwConfig) *gateway {
	g := &gateway{
		Gateway: &netlab.Gateway{Name: name, NS: ns, ConfigPath: path, Config: cfg, MarkRuns: true},
		t:       t, name: name, ns: ns, cfgPath: path, cfg: cfg,
	}
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("gateway %s (%s) config %s, log:\n%s", name, ns, path, g.Log.String())
		}
	})
	return g
}

// start starts the daemon and waits until it logs "mipsec running" (once
// more than before).
func (g *gateway) start() {
	g.t.Helper()
	runs := g.Runs() + 1
	err := g.Start(context.Background(), mipsecBin, func(log string) bool {
		return strings.Count(log, `"msg":"mipsec running"`)+strings.Count(log, "\tmipsec running\t") >= runs
	})
	if err != nil {
		g.t.Fatalf("%v:\n%s", err, g.Log.String())
	}
}

// stop sends sig and waits for the daemon to exit (SIGKILL after 10s).
func (g *gateway) stop(sig syscall.Signal) {
	g.t.Helper()
	if !g.Stop(sig, 10*time.Second) {
		g.t.Errorf("gateway %s did not exit 10s after %v", g.name, sig)
	}
}

// kill stops the daemon for good (cleanup): SIGTERM, then SIGKILL.
func (g *gateway) kill() { g.Stop(syscall.SIGTERM, 5*time.Second) }

// ctl runs a control subcommand against the daemon's socket.
func (g *gateway) ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mipsecBin, args...)
	cmd.Env = append(os.Environ(), "MIPSEC_SOCKET="+g.cfg.Socket)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		err = fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return string(out), err
}

// ping sends count ICMP echo requests from src to dst inside ns, one at a
// time, each retried up to 3 times, and returns how many were answered.
func ping(ns string, src, dst netip.Addr, count int) (int, error) {
	p, err := netlab.NewPinger(ns, src, dst, []byte("mipsec e2e ping"))
	if err != nil {
		return 0, err
	}
	defer p.Close()
	answered := 0
	for seq := 1; seq <= count; seq++ {
		rtt, err := p.Echo(context.Background(), seq, 3, time.Second)
		if err != nil {
			return answered, err
		}
		if rtt > 0 {
			answered++
		}
	}
	return answered, nil
}

// mustPing fails the test unless every one of count pings is answered.
func mustPing(t *testing.T, ns string, src, dst netip.Addr, count int) {
	t.Helper()
	n, err := ping(ns, src, dst, count)
	if err != nil {
		t.Fatalf("ping %v -> %v: %v", src, dst, err)
	}
	if n != count {
		t.Fatalf("ping %v -> %v: %d of %d answered", src, dst, n, count)
	}
}

// marker is the plaintext pattern every TCP payload repeats; a capture on
// the underlay must never contain it.
var marker = []byte("MIPSEC-E2E-PLAINTEXT-MARKER-0123456789")

// payload returns size bytes: a marker at the start of every KiB, random
// bytes (the same for the same size) elsewhere.
func payload(size int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(size))
	b, err := io.ReadAll(netlab.Payload(int64(size), marker, seed))
	if err != nil {
		panic(err)
	}
	return b
}

// transferResult describes one TCP transfer.
type transferResult = netlab.TransferResult

// tcpTransfer sends data over TCP from src (in cliNS) to dst (in srvNS)
// and checks that the receiver got the same bytes (SHA-256). progress, if
// not nil, is called from the sender after every 64 KiB. Without a
// deadline in ctx it gives up after 60 seconds.
func tcpTransfer(ctx context.Context, srvNS string, dst netip.AddrPort, cliNS string, src netip.Addr,
	data []byte, progress func(sent int)) (transferResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	return netlab.Transfer(ctx, srvNS, dst, cliNS, src, bytes.NewReader(data), 64<<10, progress)
}
