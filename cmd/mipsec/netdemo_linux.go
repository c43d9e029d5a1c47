package main

// The namespace demo (`make demo`): two network namespaces joined by a
// veth, a `mipsec run` gateway in each from the embedded default config,
// then ping (IPv4, IPv6) and a TCP transfer between the sites through the
// tunnel, and a capture on the veth that shows only ESP crossed it.
// Everything is torn down at the end, on failure and on Ctrl-C.
//
// Traffic and the capture run in this process on sockets opened inside the
// namespaces (setns on a locked thread that is never reused), so the demo
// needs nothing but root and the ip command (iproute2).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

//go:embed netdemo/gateway.toml.tmpl
var ndConfigTemplate string

// The demo's addresses: documentation prefixes only (RFC 5737, RFC 3849).
var (
	ndUnderA4 = netip.MustParsePrefix("198.51.100.1/24")
	ndUnderB4 = netip.MustParsePrefix("198.51.100.2/24")
	ndUnderA6 = netip.MustParsePrefix("2001:db8:ff::1/64")
	ndUnderB6 = netip.MustParsePrefix("2001:db8:ff::2/64")
	ndSiteA4  = netip.MustParsePrefix("192.0.2.1/25")
	ndSiteB4  = netip.MustParsePrefix("192.0.2.129/25")
	ndSiteA6  = netip.MustParsePrefix("2001:db8:a::1/64")
	ndSiteB6  = netip.MustParsePrefix("2001:db8:b::1/64")
)

// ndMarker starts every KiB of the TCP payload; the capture looks for it.
var ndMarker = []byte("MIPSEC-DEMO-PLAINTEXT-MARKER")

// ndConfig fills netdemo/gateway.toml.tmpl.
type ndConfig struct {
	StateDir, Socket, TUN            string
	MTU                              int
	Site4, Site6                     string
	Local4, Local6, Remote4, Remote6 string
	Locals                           []string
	Local, Remote                    string
	Encap                            string
	UDPPort                          int
	Keepalive                        string
	PeerName, Endpoint               string
	Roaming                          bool
	Out4, Out6, In4, In6             string
	OutKey4, InKey4                  string
	OutKey6, InKey6                  string
	OutAuth6, InAuth6                string
}

func netdemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("mipsec", "", "mipsec `binary` the gateways run (default: this one)")
	encap := fs.String("encap", "raw", "underlay encapsulation: raw (IP protocol 50) or udp (port 4500)")
	outer6 := fs.Bool("6", false, "IPv6 outer addresses on the veth (default IPv4)")
	sizeMiB := fs.Int("size", 64, "TCP transfer size in `MiB`")
	count := fs.Int("count", 3, "pings per address family")
	verbose := fs.Bool("v", false, "print the gateways' logs at the end")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: mipsec demo [flags]

Builds two network namespaces joined by a veth, starts a mipsec gateway in
each (embedded default config, fresh random keys), pings through the tunnel
over IPv4 and IPv6, sends a TCP stream and reports its throughput, and shows
from a capture on the veth that only ESP crossed it. Needs root and ip
(iproute2). Everything is removed at the end, also on failure or Ctrl-C.`)
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
	if *sizeMiB < 1 || *count < 1 {
		fmt.Fprintln(stderr, "mipsec demo: -size and -count must be at least 1")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "mipsec demo: needs root (it creates network namespaces, a veth and TUN devices): run it with sudo")
		return 1
	}
	if _, err := exec.LookPath("ip"); err != nil {
		fmt.Fprintln(stderr, "mipsec demo: needs the ip command (Debian: apt-get install iproute2)")
		return 1
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "mipsec demo: %v\n", err)
			return 1
		}
		*bin = exe
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	d := &netDemo{out: stdout, bin: *bin, encap: *encap, outer6: *outer6, size: *sizeMiB << 20, count: *count}
	err := d.run(ctx)
	fmt.Fprintln(stdout, "teardown: stopping the gateways, deleting the namespaces")
	d.teardown()
	interrupted := err != nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded)
	if *verbose || (err != nil && !interrupted) {
		for _, g := range d.gws {
			fmt.Fprintf(stdout, "--- log of gateway %s (%s)\n%s", g.name, g.cfgPath, g.log.String())
		}
	}
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			err = fmt.Errorf("timed out after %v: %w", *timeout, err)
		case ctx.Err() != nil:
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintf(stderr, "mipsec demo: FAILED: %v\n", err)
		if interrupted {
			return 130 // like a shell after Ctrl-C
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

	dir string
	nss []string
	gws []*ndGateway
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
	fmt.Fprintf(d.out, `mipsec demo: two gateways in network namespaces, ESP over a veth

  site A %-15s                                            site B %s
         %-15s  [gateway A] %s === veth (%s) === %s [gateway B]  %s

`, ndSiteA4, ndSiteB4, ndSiteA6, outerA.Addr(), ndEncapName(d.encap), outerB.Addr(), ndSiteB6)

	// 1. Namespaces and the veth.
	ndRemoveStale()
	nsA := fmt.Sprintf("mipsec-demo-%d-a", os.Getpid())
	nsB := fmt.Sprintf("mipsec-demo-%d-b", os.Getpid())
	d.step("creating namespaces %s and %s, joined by veth ul0", nsA, nsB)
	for _, ns := range []string{nsA, nsB} {
		if err := ndIP(ctx, "netns", "add", ns); err != nil {
			return err
		}
		d.nss = append(d.nss, ns)
		if err := ndIP(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		if err := ndInNetns(ns, func() error {
			for _, f := range []string{"all", "default"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/accept_dad", []byte("0"), 0o644); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("netns %s: %w", ns, err)
		}
	}
	tmp := fmt.Sprintf("mdemo%d", os.Getpid()%100000)
	if err := ndIP(ctx, "link", "add", tmp, "netns", nsA, "type", "veth", "peer", "name", "ul0", "netns", nsB); err != nil {
		return err
	}
	if err := ndIP(ctx, "-n", nsA, "link", "set", tmp, "name", "ul0"); err != nil {
		return err
	}
	for _, e := range []struct {
		ns     string
		v4, v6 netip.Prefix
	}{{nsA, ndUnderA4, ndUnderA6}, {nsB, ndUnderB4, ndUnderB6}} {
		if err := ndIP(ctx, "-n", e.ns, "addr", "add", e.v4.String(), "dev", "ul0"); err != nil {
			return err
		}
		if err := ndIP(ctx, "-n", e.ns, "addr", "add", e.v6.String(), "dev", "ul0", "nodad"); err != nil {
			return err
		}
		if err := ndIP(ctx, "-n", e.ns, "link", "set", "ul0", "up"); err != nil {
			return err
		}
	}
	d.info("%s ul0 %s, %s", nsA, ndUnderA4, ndUnderA6)
	d.info("%s ul0 %s, %s", nsB, ndUnderB4, ndUnderB6)

	// The capture runs from before the gateways start to the end.
	capt, err := ndStartCapture(nsA, "ul0")
	if err != nil {
		return fmt.Errorf("capture on ul0: %w", err)
	}
	defer capt.close()

	// 2. The gateways.
	cfgA, cfgB, err := ndConfigs(dir, d.encap, outerA.Addr(), outerB.Addr())
	if err != nil {
		return err
	}
	for _, g := range []struct {
		name, ns string
		cfg      ndConfig
	}{{"A", nsA, cfgA}, {"B", nsB, cfgB}} {
		gw, err := ndNewGateway(g.name, g.ns, dir, g.cfg)
		if err != nil {
			return err
		}
		d.step("starting gateway %s: ip netns exec %s mipsec run -c %s", g.name, g.ns, gw.cfgPath)
		d.gws = append(d.gws, gw)
		if err := gw.start(ctx, d.bin); err != nil {
			return err
		}
		d.info("running (pid %d): TUN %s %s %s, control socket %s", gw.cmd.Process.Pid, g.cfg.TUN, g.cfg.Site4, g.cfg.Site6, g.cfg.Socket)
	}

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
	elapsed, err := ndTransfer(ctx, nsB, dst, nsA, ndSiteA4.Addr(), d.size, func(sent int) {
		if sent%(16<<20) == 0 && sent < d.size {
			d.info("%d MiB sent", sent>>20)
		}
	})
	if err != nil {
		return fmt.Errorf("TCP transfer: %w", err)
	}
	d.info("received %d bytes, SHA-256 matches what was sent", d.size)
	d.info("throughput: %.1f Mbit/s (%v)", float64(d.size)*8/elapsed.Seconds()/1e6, elapsed.Round(time.Millisecond))

	// 5. The capture.
	time.Sleep(200 * time.Millisecond)
	capt.close()
	d.step("capture on veth ul0 (namespace %s), from before the gateways started", nsA)
	s := capt.stats()
	for _, l := range s.lines() {
		d.info("%s", l)
	}
	if len(s.other) > 0 || s.plaintext > 0 {
		return errors.New("the capture shows traffic other than ESP on the veth")
	}
	if s.espBytes < d.size {
		return fmt.Errorf("the capture shows only %d bytes of ESP for a %d-byte transfer", s.espBytes, d.size)
	}
	d.info("=> only ESP crossed the veth (%s), and none of it contains the plaintext", ndEncapName(d.encap))

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
		g.stop()
	}
	for _, ns := range d.nss {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			fmt.Fprintf(d.out, "    ip netns del %s: %v %s\n", ns, err, out)
		}
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// ndRemoveStale deletes the namespaces of earlier demos that were killed
// before they could tear down (mipsec-demo-PID-a/b whose PID is gone).
func ndRemoveStale() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		var pid int
		var side string
		if _, err := fmt.Sscanf(e.Name(), "mipsec-demo-%d-%s", &pid, &side); err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

func ndIP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ndSpawn carries cmd.Start calls to one locked OS thread that lives as
// long as the process. Pdeathsig fires when the thread that forked the
// child exits, and ndInNetns retires threads, so forking anywhere else
// could kill a gateway early.
var ndSpawn = sync.OnceValue(func() chan func() {
	c := make(chan func())
	go func() {
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
})

func ndStart(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	ndSpawn() <- func() { errc <- cmd.Start() }
	return <-errc
}

// ndInNetns runs fn on an OS thread inside namespace ns; the thread is
// never unlocked, so it exits with the goroutine and no other goroutine
// ever runs in ns by accident. Sockets fn opens stay in ns.
func ndInNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
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

// ndConfigs returns the two gateways' configs with fresh random keys.
func ndConfigs(dir, encap string, outerA, outerB netip.Addr) (a, b ndConfig, err error) {
	key := func(n int) string {
		k := make([]byte, n)
		if _, e := rand.Read(k); e != nil {
			err = e
		}
		return hex.EncodeToString(k)
	}
	kAB4, kBA4 := key(20), key(20) // aes128gcm16: key + salt
	kAB6, kBA6 := key(16), key(16) // aes128-sha256
	aAB6, aBA6 := key(32), key(32)
	if err != nil {
		return a, b, err
	}
	mk := func(name string, local, remote netip.Addr) ndConfig {
		c := ndConfig{
			StateDir: filepath.Join(dir, "state-"+name), Socket: filepath.Join(dir, name+".sock"),
			TUN: "mipsec-" + name, MTU: 1400, Encap: encap, UDPPort: 4500, Keepalive: "20s",
			Locals: []string{local.String()}, Local: local.String(), Remote: remote.String(),
			Endpoint: remote.String(),
		}
		if encap == "udp" {
			c.Endpoint = netip.AddrPortFrom(remote, 4500).String()
		}
		return c
	}
	a = mk("a", outerA, outerB)
	a.PeerName = "gateway-b"
	a.Site4, a.Site6 = ndSiteA4.String(), ndSiteA6.String()
	a.Local4, a.Local6, a.Remote4, a.Remote6 = "192.0.2.0/25", "2001:db8:a::/48", "192.0.2.128/25", "2001:db8:b::/48"
	a.Out4, a.Out6, a.In4, a.In6 = "0x0000b001", "0x0000b006", "0x0000a001", "0x0000a006"
	a.OutKey4, a.InKey4, a.OutKey6, a.InKey6, a.OutAuth6, a.InAuth6 = kAB4, kBA4, kAB6, kBA6, aAB6, aBA6

	b = mk("b", outerB, outerA)
	b.PeerName = "gateway-a"
	b.Site4, b.Site6 = ndSiteB4.String(), ndSiteB6.String()
	b.Local4, b.Local6, b.Remote4, b.Remote6 = a.Remote4, a.Remote6, a.Local4, a.Local6
	b.Out4, b.Out6, b.In4, b.In6 = a.In4, a.In6, a.Out4, a.Out6
	b.OutKey4, b.InKey4, b.OutKey6, b.InKey6, b.OutAuth6, b.InAuth6 = kBA4, kAB4, kBA6, kAB6, aBA6, aAB6
	return a, b, nil
}

// ndSyncBuffer collects a gateway's log.
type ndSyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *ndSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *ndSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ndGateway is one `mipsec run` in a namespace.
type ndGateway struct {
	name, ns, cfgPath string
	cfg               ndConfig
	log               ndSyncBuffer
	cmd               *exec.Cmd
	exited            chan struct{}
}

func ndNewGateway(name, ns, dir string, cfg ndConfig) (*ndGateway, error) {
	tmpl, err := template.New("gateway").Parse(ndConfigTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, cfg); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "gateway-"+strings.ToLower(name)+".toml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return &ndGateway{name: name, ns: ns, cfgPath: path, cfg: cfg}, nil
}

func (g *ndGateway) start(ctx context.Context, bin string) error {
	cmd := exec.Command("ip", "netns", "exec", g.ns, bin, "run", "-c", g.cfgPath)
	cmd.Stdout, cmd.Stderr = &g.log, &g.log
	// Its own process group: Ctrl-C reaches the demo, which stops the
	// gateways in order. Pdeathsig: they die with the demo if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := ndStart(cmd); err != nil {
		return err
	}
	g.cmd, g.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(g.exited)
	}()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(g.log.String(), "mipsec running") {
			if _, err := os.Stat(g.cfg.Socket); err == nil {
				return nil
			}
		}
		select {
		case <-g.exited:
			return fmt.Errorf("gateway %s exited during start-up (%v)", g.name, cmd.ProcessState)
		case <-deadline.C:
			return fmt.Errorf("gateway %s is not running after 15s", g.name)
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits; SIGKILL after 5 seconds.
func (g *ndGateway) stop() {
	if g.cmd == nil {
		return
	}
	select {
	case <-g.exited:
		return
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(5 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// ndPing sends count echo requests from src to dst in ns and returns the
// round-trip times; every request must be answered (3 tries each).
func ndPing(ctx context.Context, ns string, src, dst netip.Addr, count int) ([]time.Duration, error) {
	network, proto := "ip4:icmp", 1
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		typ = ipv6.ICMPTypeEchoRequest
	}
	var c *icmp.PacketConn
	if err := ndInNetns(ns, func() error {
		var err error
		c, err = icmp.ListenPacket(network, src.String())
		return err
	}); err != nil {
		return nil, err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	var rtts []time.Duration
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		var rtt time.Duration
		for try := 0; try < 3 && rtt == 0; try++ {
			if err := context.Cause(ctx); err != nil {
				return rtts, err
			}
			msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("mipsec demo")}}
			b, err := msg.Marshal(nil)
			if err != nil {
				return rtts, err
			}
			start := time.Now()
			if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				return rtts, err
			}
			c.SetReadDeadline(start.Add(time.Second))
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					break
				}
				m, err := icmp.ParseMessage(proto, buf[:n])
				if err != nil || m.Type == typ {
					continue
				}
				if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
					rtt = max(time.Since(start), time.Nanosecond)
					break
				}
			}
		}
		if rtt == 0 {
			return rtts, fmt.Errorf("ping %v -> %v: no reply to icmp_seq=%d", src, dst, seq)
		}
		rtts = append(rtts, rtt)
		time.Sleep(100 * time.Millisecond)
	}
	return rtts, nil
}

// ndChunk fills b with pseudo-random bytes from r and puts ndMarker at
// the start of every KiB (len(b) is a multiple of 1 KiB).
func ndChunk(r *mrand.ChaCha8, b []byte) {
	r.Read(b)
	for i := 0; i+len(ndMarker) <= len(b); i += 1024 {
		copy(b[i:], ndMarker)
	}
}

// ndTransfer streams size bytes (generated as they are sent) from src in
// cliNS to dst in srvNS over TCP and checks that the receiver's SHA-256
// matches the sender's.
func ndTransfer(ctx context.Context, srvNS string, dst netip.AddrPort, cliNS string, src netip.Addr,
	size int, progress func(int)) (time.Duration, error) {
	var ln net.Listener
	if err := ndInNetns(srvNS, func() error {
		var err error
		ln, err = net.Listen("tcp", dst.String())
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		sum [sha256.Size]byte
		n   int64
		err error
	}
	rc := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			rc <- result{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		rc <- r
	}()
	var conn net.Conn
	if err := ndInNetns(cliNS, func() error {
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 10 * time.Second}
		var err error
		conn, err = dl.DialContext(ctx, "tcp", dst.String())
		return err
	}); err != nil {
		return 0, err
	}
	defer conn.Close()
	// Abort the blocking reads and writes on Ctrl-C or timeout.
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0))
		ln.Close()
	})
	defer stop()
	var seed [32]byte
	rand.Read(seed[:])
	rng := mrand.NewChaCha8(seed)
	sent := sha256.New()
	buf := make([]byte, 1<<20)
	start := time.Now()
	for off := 0; off < size; {
		if err := context.Cause(ctx); err != nil {
			return 0, err
		}
		chunk := buf[:min(len(buf), size-off)]
		ndChunk(rng, chunk)
		sent.Write(chunk)
		if _, err := conn.Write(chunk); err != nil {
			return 0, fmt.Errorf("send at byte %d: %w", off, ndCause(ctx, err))
		}
		off += len(chunk)
		progress(off)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	var r result
	select {
	case r = <-rc:
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
	elapsed := time.Since(start)
	switch {
	case r.err != nil:
		return 0, fmt.Errorf("receive after %d bytes: %w", r.n, ndCause(ctx, r.err))
	case r.n != int64(size):
		return 0, fmt.Errorf("received %d bytes of %d", r.n, size)
	case !bytes.Equal(r.sum[:], sent.Sum(nil)):
		return 0, errors.New("the received bytes differ from the sent ones (SHA-256)")
	}
	return elapsed, nil
}

func ndCause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return err
}

// ndCapture counts what crosses one interface (AF_PACKET, all frames).
type ndCapture struct {
	fd        int
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu sync.Mutex
	s  ndCaptureStats
}

type ndCaptureStats struct {
	frames, esp, espUDP, espBytes, keepalives, control, plaintext int
	spis                                                          map[uint32]int
	other                                                         map[string]int
}

func (s ndCaptureStats) lines() []string {
	var spis []string
	for spi, n := range s.spis {
		spis = append(spis, fmt.Sprintf("0x%08x: %d", spi, n))
	}
	sort.Strings(spis)
	var other []string
	for k, n := range s.other {
		other = append(other, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(other)
	l := []string{
		fmt.Sprintf("%d frames captured", s.frames),
		fmt.Sprintf("ESP:                 %d packets, %d bytes (%d in UDP 4500); by SPI: %s", s.esp, s.espBytes, s.espUDP, strings.Join(spis, ", ")),
		fmt.Sprintf("NAT keepalives:      %d", s.keepalives),
		fmt.Sprintf("ARP/ND/MLD:          %d (link-layer housekeeping)", s.control),
		fmt.Sprintf("anything else:       %d %s", len(s.other), strings.Join(other, ", ")),
		fmt.Sprintf("frames with the plaintext pattern %q: %d", ndMarker, s.plaintext),
	}
	return l
}

func ndStartCapture(ns, dev string) (*ndCapture, error) {
	c := &ndCapture{stop: make(chan struct{}), done: make(chan struct{})}
	c.s.spis, c.s.other = map[uint32]int{}, map[string]int{}
	proto := int(ndHtons(unix.ETH_P_ALL))
	err := ndInNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ndHtons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	go c.loop()
	return c, nil
}

func ndHtons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *ndCapture) loop() {
	defer close(c.done)
	buf := make([]byte, 256<<10)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // SO_RCVTIMEO or EINTR
		}
		c.add(buf[:n])
	}
}

func (c *ndCapture) close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		unix.Close(c.fd)
	})
}

func (c *ndCapture) stats() ndCaptureStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

func (c *ndCapture) add(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.s
	s.frames++
	if bytes.Contains(f, ndMarker) {
		s.plaintext++
	}
	if len(f) < 14 {
		s.other["runt"]++
		return
	}
	var proto byte
	var l4 []byte
	switch etype := binary.BigEndian.Uint16(f[12:14]); etype {
	case unix.ETH_P_ARP:
		s.control++
		return
	case unix.ETH_P_IP:
		ip := f[14:]
		if len(ip) < 20 {
			s.other["short IPv4"]++
			return
		}
		proto, l4 = ip[9], ip[min(int(ip[0]&0xf)*4, len(ip)):]
	case unix.ETH_P_IPV6:
		ip := f[14:]
		if len(ip) < 40 {
			s.other["short IPv6"]++
			return
		}
		proto, l4 = ip[6], ip[40:]
		if proto == 0 { // hop-by-hop options: MLD
			s.control++
			return
		}
	default:
		s.other[fmt.Sprintf("ethertype 0x%04x", etype)]++
		return
	}
	switch {
	case proto == unix.IPPROTO_ESP && len(l4) >= 8:
		s.esp++
		s.espBytes += len(f)
		s.spis[binary.BigEndian.Uint32(l4)]++
	case proto == unix.IPPROTO_UDP && len(l4) >= 8 &&
		(binary.BigEndian.Uint16(l4[0:2]) == 4500 || binary.BigEndian.Uint16(l4[2:4]) == 4500):
		body := l4[8:]
		switch {
		case len(body) == 1 && body[0] == 0xff:
			s.keepalives++
		case len(body) >= 8 && binary.BigEndian.Uint32(body) != 0:
			s.esp++
			s.espUDP++
			s.espBytes += len(f)
			s.spis[binary.BigEndian.Uint32(body)]++
		default:
			s.other["UDP 4500, not ESP"]++
		}
	case proto == unix.IPPROTO_ICMPV6 && len(l4) > 0 && (l4[0] >= 133 && l4[0] <= 137 || l4[0] == 143):
		s.control++
	default:
		s.other[fmt.Sprintf("IP protocol %d", proto)]++
	}
}
