package e2e

// The harness: namespaces joined by a veth, mipsec daemons started in them
// from templated configs, and traffic (ping, TCP) and captures run in this
// process on sockets opened inside the namespaces.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

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
			removeStaleNetns()
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

// spawnc carries cmd.Start calls to one locked OS thread that lives as long
// as the process: children get Pdeathsig = SIGKILL, which fires when the
// thread that forked them exits. inNetns retires threads, so forking on an
// arbitrary thread could kill a daemon early; forking on this one kills the
// daemons only when the test binary dies (a -timeout panic skips cleanups).
var spawnc = make(chan spawnReq)

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func init() {
	go func() {
		runtime.LockOSThread()
		for r := range spawnc {
			r.errc <- r.cmd.Start()
		}
	}()
}

// startKilledWithUs starts cmd so that it is killed when this process dies.
func startKilledWithUs(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	spawnc <- spawnReq{cmd, errc}
	return <-errc
}

// removeStaleNetns deletes namespaces that earlier runs of these tests
// left behind (a -timeout panic skips cleanups): mipsec-e2e-PID-N whose
// PID no longer runs.
func removeStaleNetns() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		var pid, n int
		if _, err := fmt.Sscanf(e.Name(), "mipsec-e2e-%d-%d", &pid, &n); err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

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

// newNetns creates a namespace with a unique name and its loopback up; it
// is deleted when the test ends.
func newNetns(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("mipsec-e2e-%d-%d", os.Getpid(), nsCounter.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	// No duplicate address detection: addresses work at once.
	err := inNetns(name, func() error {
		for _, f := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/accept_dad", []byte("0"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
	return name
}

// inNetns runs fn on a thread that has entered namespace ns. Sockets that
// fn opens stay in ns and can be used from any goroutine afterwards. The
// thread is never returned to the scheduler: it exits with the goroutine.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// link is one end of a veth.
type link struct {
	ns, dev string
	v4, v6  netip.Prefix
}

// veth joins namespaces a and b with a veth named dev in both, with
// addresses a4/a6 on a's end and b4/b6 on b's (invalid prefixes are left
// out).
func veth(t testing.TB, a, b, dev string, a4, a6, b4, b6 netip.Prefix) (link, link) {
	t.Helper()
	tmp := fmt.Sprintf("e2e%d-%d", os.Getpid()%100000, nsCounter.Add(1))
	run(t, "ip", "link", "add", tmp, "netns", a, "type", "veth", "peer", "name", dev, "netns", b)
	run(t, "ip", "-n", a, "link", "set", tmp, "name", dev)
	la, lb := link{a, dev, a4, a6}, link{b, dev, b4, b6}
	for _, l := range []link{la, lb} {
		if l.v4.IsValid() {
			run(t, "ip", "-n", l.ns, "addr", "add", l.v4.String(), "dev", dev)
		}
		if l.v6.IsValid() {
			run(t, "ip", "-n", l.ns, "addr", "add", l.v6.String(), "dev", dev, "nodad")
		}
		run(t, "ip", "-n", l.ns, "link", "set", dev, "up")
	}
	return la, lb
}

// Documentation addresses of the standard topology.
var (
	ulA4 = netip.MustParsePrefix("198.51.100.1/24")
	ulB4 = netip.MustParsePrefix("198.51.100.2/24")
	ulA6 = netip.MustParsePrefix("2001:db8:ff::1/64")
	ulB6 = netip.MustParsePrefix("2001:db8:ff::2/64")

	siteA4 = netip.MustParsePrefix("192.0.2.1/25")
	siteB4 = netip.MustParsePrefix("192.0.2.129/25")
	siteA6 = netip.MustParsePrefix("2001:db8:a::1/64")
	siteB6 = netip.MustParsePrefix("2001:db8:b::1/64")
)

// gwConfig fills e2e/testdata/gateway.toml.tmpl.
type gwConfig struct {
	StateDir, Socket, TUN, LogLevel string
	MTU                             int
	Site4, Site6                    string // TUN addresses
	Local4, Local6                  string // our site prefixes
	Remote4, Remote6                string // the peer's site prefixes
	Locals                          []string
	Local, Remote                   string // outer addresses of the SAs
	Encap                           string
	UDPPort                         int
	Keepalive                       string
	PeerName, Endpoint              string
	Roaming                         bool
	RoamInterval                    string
	Out4, Out6, In4, In6            string
	OutKey4, InKey4                 string
	OutKey6, InKey6                 string
	OutAuth6, InAuth6               string
}

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
	spiAB4 = 0x0000b001
	spiAB6 = 0x0000b006
	spiBA4 = 0x0000a001
	spiBA6 = 0x0000a006
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
	dir := t.TempDir()
	mk := func(b bool) gwConfig {
		c := gwConfig{
			LogLevel: "info", MTU: 1400, Encap: o.encap, UDPPort: 4500, Keepalive: "20s",
			Roaming: o.roaming,
		}
		local, remote := outerA, outerB
		name := "a"
		if b {
			local, remote = outerB, outerA
			name = "b"
		}
		c.StateDir = filepath.Join(dir, "state-"+name)
		c.Socket = filepath.Join(dir, name+".sock")
		c.TUN = "mipsec-" + name
		c.Locals = []string{local.String()}
		c.Local, c.Remote = local.String(), remote.String()
		c.Endpoint = remote.String()
		if o.encap == "udp" {
			c.Endpoint = netip.AddrPortFrom(remote, 4500).String()
		}
		hex := func(s string) string { return "0x" + s }
		spi := func(v uint32) string { return fmt.Sprintf("0x%08x", v) }
		if !b {
			c.PeerName = "gateway-b"
			c.Site4, c.Site6 = siteA4.String(), siteA6.String()
			c.Local4, c.Local6 = "192.0.2.0/25", "2001:db8:a::/48"
			c.Remote4, c.Remote6 = "192.0.2.128/25", "2001:db8:b::/48"
			c.Out4, c.Out6, c.In4, c.In6 = spi(spiAB4), spi(spiAB6), spi(spiBA4), spi(spiBA6)
			c.OutKey4, c.InKey4 = hex(keyAB4), hex(keyBA4)
			c.OutKey6, c.InKey6 = keyAB6, keyBA6
			c.OutAuth6, c.InAuth6 = authAB, authBA
		} else {
			c.PeerName = "gateway-a"
			c.Site4, c.Site6 = siteB4.String(), siteB6.String()
			c.Local4, c.Local6 = "192.0.2.128/25", "2001:db8:b::/48"
			c.Remote4, c.Remote6 = "192.0.2.0/25", "2001:db8:a::/48"
			c.Out4, c.Out6, c.In4, c.In6 = spi(spiBA4), spi(spiBA6), spi(spiAB4), spi(spiAB6)
			c.OutKey4, c.InKey4 = hex(keyBA4), hex(keyAB4)
			c.OutKey6, c.InKey6 = keyBA6, keyAB6
			c.OutAuth6, c.InAuth6 = authBA, authAB
		}
		return c
	}
	cA, cB := mk(false), mk(true)
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

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gateway is one mipsec daemon in a namespace; it can be stopped and
// started again with the same config and state directory.
type gateway struct {
	t       *testing.T
	name    string
	ns      string
	cfg     gwConfig
	cfgPath string
	log     syncBuffer
	runs    int
	cmd     *exec.Cmd
	exited  chan struct{}
}

func newGateway(t *testing.T, name, ns string, cfg gwConfig) *gateway {
	t.Helper()
	var b bytes.Buffer
	if err := gwTemplate.Execute(&b, cfg); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(cfg.Socket), "gateway-"+strings.ToLower(name)+".toml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return newGatewayFile(t, name, ns, path, cfg)
}

// newGatewayFile is newGateway for a config file that exists; cfg needs
// only Socket.
func newGatewayFile(t *testing.T, name, ns, path string, cfg gwConfig) *gateway {
	g := &gateway{t: t, name: name, ns: ns, cfg: cfg, cfgPath: path}
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("gateway %s (%s) config %s, log:\n%s", name, ns, path, g.log.String())
		}
	})
	return g
}

// start starts the daemon and waits until it logs "mipsec running".
func (g *gateway) start() {
	g.t.Helper()
	if g.running() {
		g.t.Fatalf("gateway %s already running", g.name)
	}
	g.runs++
	fmt.Fprintf(&g.log, "=== start %d\n", g.runs)
	cmd := exec.Command("ip", "netns", "exec", g.ns, mipsecBin, "run", "-c", g.cfgPath)
	cmd.Stdout, cmd.Stderr = &g.log, &g.log
	if err := startKilledWithUs(cmd); err != nil {
		g.t.Fatal(err)
	}
	exited := make(chan struct{})
	g.cmd, g.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(&g.log, "=== exit: %v\n", err)
		close(exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		log := g.log.String()
		if n := strings.Count(log, `"msg":"mipsec running"`) + strings.Count(log, "\tmipsec running\t"); n >= g.runs {
			return
		}
		select {
		case <-exited:
			g.t.Fatalf("gateway %s exited during start-up:\n%s", g.name, g.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("gateway %s not running after 15s:\n%s", g.name, g.log.String())
		}
	}
}

func (g *gateway) running() bool {
	if g.exited == nil {
		return false
	}
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// stop sends sig and waits for the daemon to exit (SIGKILL after 10s).
func (g *gateway) stop(sig syscall.Signal) {
	g.t.Helper()
	if !g.running() {
		return
	}
	g.cmd.Process.Signal(sig)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
		g.t.Errorf("gateway %s did not exit 10s after %v", g.name, sig)
	}
}

// kill stops the daemon for good (cleanup): SIGTERM, then SIGKILL.
func (g *gateway) kill() {
	if !g.running() {
		return
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(5 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
}

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
	network, proto := "ip4:icmp", 1
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		typ = ipv6.ICMPTypeEchoRequest
	}
	var c *icmp.PacketConn
	err := inNetns(ns, func() error {
		var err error
		c, err = icmp.ListenPacket(network, src.String())
		return err
	})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	id := rand.IntN(0xffff)
	answered := 0
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("mipsec e2e ping")}}
			b, err := msg.Marshal(nil)
			if err != nil {
				return answered, err
			}
			if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				return answered, err
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			for {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					break // timeout: try again
				}
				m, err := icmp.ParseMessage(proto, buf[:n])
				if err != nil {
					continue
				}
				e, isEcho := m.Body.(*icmp.Echo)
				if !isEcho || m.Type == typ || e.ID != id || e.Seq != seq {
					continue
				}
				if a, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP); a.Unmap() != dst {
					continue
				}
				ok = true
				break
			}
		}
		if ok {
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
// bytes elsewhere.
func payload(size int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 42))
	var w uint64
	for i := range b {
		if i%8 == 0 {
			w = r.Uint64()
		}
		b[i] = byte(w >> (8 * (i % 8)))
	}
	for i := 0; i+len(marker) <= size; i += 1024 {
		copy(b[i:], marker)
	}
	return b
}

// transferResult describes one TCP transfer.
type transferResult struct {
	bytes   int
	elapsed time.Duration
}

func (r transferResult) String() string {
	return fmt.Sprintf("%d bytes in %v (%.1f Mbit/s)", r.bytes, r.elapsed.Round(time.Millisecond),
		float64(r.bytes)*8/r.elapsed.Seconds()/1e6)
}

// tcpTransfer sends data over TCP from src (in cliNS) to dst (in srvNS)
// and checks that the receiver got the same bytes (SHA-256). progress, if
// not nil, is called from the sender after every 64 KiB.
func tcpTransfer(ctx context.Context, srvNS string, dst netip.AddrPort, cliNS string, src netip.Addr,
	data []byte, progress func(sent int)) (transferResult, error) {
	var ln net.Listener
	if err := inNetns(srvNS, func() error {
		var err error
		ln, err = net.Listen("tcp", dst.String())
		return err
	}); err != nil {
		return transferResult{}, fmt.Errorf("listen %v: %w", dst, err)
	}
	defer ln.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(60 * time.Second)
	}
	type recv struct {
		sum [32]byte
		n   int64
		err error
	}
	rc := make(chan recv, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			rc <- recv{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r recv
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		rc <- r
	}()
	var conn net.Conn
	if err := inNetns(cliNS, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 10 * time.Second}
		var err error
		conn, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	}); err != nil {
		return transferResult{}, fmt.Errorf("dial %v from %v: %w", dst, src, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	start := time.Now()
	for off := 0; off < len(data); {
		end := min(off+64<<10, len(data))
		if _, err := conn.Write(data[off:end]); err != nil {
			return transferResult{}, fmt.Errorf("send at %d: %w", off, err)
		}
		off = end
		if progress != nil {
			progress(off)
		}
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return transferResult{}, err
	}
	var r recv
	select {
	case r = <-rc:
	case <-ctx.Done():
		return transferResult{}, ctx.Err()
	}
	elapsed := time.Since(start)
	if r.err != nil {
		return transferResult{}, fmt.Errorf("receive after %d bytes: %w", r.n, r.err)
	}
	if r.n != int64(len(data)) {
		return transferResult{}, fmt.Errorf("received %d bytes, sent %d", r.n, len(data))
	}
	if r.sum != sha256.Sum256(data) {
		return transferResult{}, errors.New("received bytes differ from the sent ones (SHA-256)")
	}
	return transferResult{bytes: len(data), elapsed: elapsed}, nil
}
