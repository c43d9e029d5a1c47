package demo

// The mobility demo (`mipsec demo`, `make demo`): a correspondent (CN) on
// the home link, the home agent (HA), a router (RT) that NATs an IPv4-only
// access network, and the mobile node (MN) with an IPv6 access network and
// that IPv4 one, each in a network namespace (internal/netlab's Mobility
// topology). HA and MN run `mipsec run` from the embedded example configs
// (examples/ha.toml, examples/mn.toml). A TCP stream and a sequence-
// numbered UDP stream run from the CN to the MN's home address while the
// MN moves IPv6 -> IPv4 behind the NAT -> IPv6; for each move the demo
// prints the handover time, the packets lost and whether the TCP stream
// survived, and at the end a capture summary of both access networks that
// shows only ESP crossed them. Everything is torn down at the end, on
// failure and on Ctrl-C.

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/node"
)

// mdMarker starts every KiB of the TCP payload and every UDP datagram; the
// captures look for it.
var mdMarker = []byte("MIPSEC-MOBILITY-DEMO-PLAINTEXT")

// The demo's streams: CN -> MN home address.
const (
	mdTCPPort = 5201
	mdUDPPort = 5202
	// mdUDPInterval is the UDP stream's spacing: the loss count's unit.
	mdUDPInterval = 10 * time.Millisecond
)

func mobdemo(args []string, stdout, stderr io.Writer, env Env) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("mipsec", "", "mipsec `binary` HA and MN run (default: this one)")
	dwell := fs.Duration("dwell", 3*time.Second, "time on each network before the next move")
	rate := fs.Int("rate", 2048, "TCP stream rate in `KiB/s`")
	regTimeout := fs.Duration("reg-timeout", 15*time.Second, "longest wait for a registration after a move")
	verbose := fs.Bool("v", false, "print the daemons' logs at the end")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up after this long")
	manual := fs.Bool("manual", false, "manual keys (the SA1..SA8 of examples/ha.toml and mn.toml) instead of IKEv2")
	psk := fs.Bool("psk", false, "IKEv2 with a pre-shared key made for the run instead of certificates")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: mipsec demo [flags]
       mipsec demo --gateway [flags]   (the two-gateway demo; see mipsec demo --gateway -h)
       mipsec demo --engine [flags]    (the ESP engine in process, no root)

The mobility demo. Builds network namespaces for a correspondent (CN) on the
home link, the home agent (HA), a router that NATs an IPv4-only access
network, and the mobile node (MN) with an IPv6 access network and the IPv4
one; starts HA and MN (mipsec run) from the embedded example configs
(examples/ha-ike.toml and mn-ike.toml: keyed by IKEv2, RFC 4877 §7, with
certificates from a CA made for the run, the MN's naming its home address;
--psk: a pre-shared key made for the run; --manual: examples/ha.toml and
mn.toml, manual keys); shows the MN bringing up its SAs with IKE; runs
a TCP stream and a sequence-numbered UDP stream from the CN to the MN's home
address; moves the MN IPv6 -> IPv4 behind the NAT -> IPv6 and prints, for
each move, the handover time (old link down to the first data packet on the
new access link), the UDP datagrams lost, and whether the TCP stream
survived; with IKE also the IKE SA following each move (the K flag, RFC
4877 §7.4) and a rekey of the payload child in the middle of the first
handover; then shows from captures on both access links that only ESP (and
IKE) crossed them. Needs root, ip (iproute2) and nft (nftables). Everything is
removed at the end, also on failure or Ctrl-C.`)
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
	if *manual && *psk {
		fmt.Fprintln(stderr, "mipsec demo: -manual and -psk exclude each other")
		return 2
	}
	keying := "pubkey"
	switch {
	case *manual:
		keying = "manual"
	case *psk:
		keying = "psk"
	}
	if *dwell < 500*time.Millisecond || *rate < 1 || *regTimeout <= 0 {
		fmt.Fprintln(stderr, "mipsec demo: -dwell must be at least 500ms, -rate and -reg-timeout positive")
		return 2
	}
	if rc := demoPrereqs(stderr, "network namespaces, veths, TUN devices and a NAT", [][2]string{{"ip", "iproute2"}, {"nft", "nftables"}}, bin); rc != 0 {
		return rc
	}
	d := &mobDemo{env: env, out: stdout, bin: *bin, dwell: *dwell, rate: *rate << 10, regTimeout: *regTimeout, keying: keying}
	return runNamespaceDemo(stdout, stderr, *timeout, *verbose,
		"teardown: stopping MN (de-registration) and HA, deleting the namespaces", d.run, d.teardown,
		func(w io.Writer) {
			for _, g := range d.daemons {
				fmt.Fprintf(w, "--- log of %s (%s)\n%s", g.Name, g.ConfigPath, g.Log.String())
			}
		})
}

// mobDemo is one run of the mobility demo and what it must tear down.
type mobDemo struct {
	env        Env
	out        io.Writer
	bin        string
	dwell      time.Duration
	rate       int // TCP bytes per second
	regTimeout time.Duration
	// keying: "pubkey" (examples/ha-ike.toml and mn-ike.toml with
	// certificates made for the run), "psk" (the same with a pre-shared
	// key) or "manual" (ha.toml and mn.toml).
	keying string
	ike    bool

	dir      string
	lab      *netlab.Mobility
	daemons  []*netlab.Gateway // HA, MN
	haSock   string
	mnSock   string
	captures []*netlab.Capture
}

func (d *mobDemo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "==> "+format+"\n", args...)
}

func (d *mobDemo) info(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

// teardown stops the MN first (its de-registration needs the HA), then
// the HA, and deletes the namespaces and the temporary directory; it runs
// on success, failure and Ctrl-C alike.
func (d *mobDemo) teardown() {
	for _, c := range d.captures {
		c.Close()
	}
	for i := len(d.daemons) - 1; i >= 0; i-- {
		d.daemons[i].Stop(syscall.SIGTERM, 5*time.Second) // SIGKILL after 5 seconds
	}
	if d.lab != nil {
		if err := d.lab.Close(); err != nil {
			fmt.Fprintf(d.out, "    %v\n", err)
		}
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// mdMove is one handover and what the demo measured for it.
type mdMove struct {
	mv         netlab.Move
	registered time.Duration // old link down -> binding at the new CoA (control socket)
	binding    netlab.BindingInfo
}

// tcpSample is the TCP sender's progress at one moment.
type tcpSample struct {
	at   time.Time
	sent int
}

func (d *mobDemo) run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "mipsec-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	hoa, coa6 := netlab.MobHoA, netlab.MobCoA6.Addr()
	fmt.Fprintf(d.out, `mipsec demo: Mobile IPv6 / DSMIPv6 over unmodified IPsec, in network namespaces

  CN %v --home link-- HA %v --transit-- RT --A: IPv6 %v------------------------- MN HoA %v
                               HA_V4 %v            \-B: IPv4 %v, NAT to %v-/           %v

`, netlab.MobHomeCN6.Addr(), netlab.MobHAAddr, netlab.MobAccessRT6.Masked(), hoa,
		netlab.MobHAV4, netlab.MobAccessRT4.Masked(), netlab.MobNATAddr, netlab.MobHoA4)

	// 1. The topology.
	netlab.RemoveStale("mipsec-demo")
	d.step("creating namespaces cn, ha, rt, mn (NAT on rt for %v, IPv6 off on access B)", netlab.MobAccessRT4.Masked())
	lab, err := netlab.NewMobility(ctx, "mipsec-demo", "")
	if err != nil {
		return err
	}
	d.lab = lab
	d.info("cn %s  ha %s  rt %s  mn %s", lab.CN, lab.HA, lab.RT, lab.MN)
	d.info("MN on access A: %s %v (access B %s down)", netlab.AccessA.Dev(), coa6, netlab.AccessB.Dev())

	// The captures run from before the daemons start to the end: both
	// access links (on the router's side) and the transit link.
	capA, err := netlab.StartCaptureOpts(lab.RT, netlab.AccessA.RouterDev(), netlab.CaptureOptions{Marker: mdMarker, Keep: ndKeepOther})
	if err != nil {
		return err
	}
	d.captures = append(d.captures, capA)
	capB, err := netlab.StartCaptureOpts(lab.RT, netlab.AccessB.RouterDev(), netlab.CaptureOptions{Marker: mdMarker, Keep: ndKeepOther})
	if err != nil {
		return err
	}
	d.captures = append(d.captures, capB)

	// 2. The daemons, from the embedded example configs.
	haPath, mnPath := "", ""
	d.ike = d.keying != "manual"
	suffix := ""
	edits := map[string]func(string) string{}
	switch d.keying {
	case "psk":
		suffix = "-ike"
		psk, err := ndWritePSK(dir)
		if err != nil {
			return err
		}
		named := filepath.Join(dir, "ha-mn.psk")
		if err := os.Rename(psk, named); err != nil {
			return err
		}
		d.step("IKEv2 keying (RFC 4877 §7): a fresh pre-shared key %s (mode 0600); no static ESP keys anywhere", named)
		for _, role := range []string{node.RoleHA, node.RoleMN} {
			edits[role] = func(s string) string { return strings.ReplaceAll(s, mdPSKPath, named) }
		}
	case "pubkey":
		suffix = "-ike"
		ca, err := newDemoCA(dir)
		if err != nil {
			return err
		}
		d.step("IKEv2 keying (RFC 4877 §7) with certificates from a CA made for the run (%s); no static keys anywhere", ca.path)
		for _, c := range []struct {
			role string
			id   netip.Addr
		}{{node.RoleHA, netlab.MobHAAddr}, {node.RoleMN, hoa}} {
			cert, key, err := ca.issue(c.role, c.id.String(), nil, []netip.Addr{c.id})
			if err != nil {
				return err
			}
			d.info("%s: %s (subjectAltName iPAddress %v: its IKE identity), key %s", strings.ToUpper(c.role), cert, c.id, key)
			edits[c.role] = func(s string) string { return mdPubkeyConfig(s, cert, key, ca.path) }
		}
	default:
		d.step("manual keys: the SA1..SA8 of the example configs (RFC 4877 §6)")
	}
	for _, r := range []struct {
		role string
		path *string
		sock *string
	}{{node.RoleHA, &haPath, &d.haSock}, {node.RoleMN, &mnPath, &d.mnSock}} {
		example, err := d.env.ExampleConfig(r.role + suffix)
		if err != nil {
			return err
		}
		if e := edits[r.role]; e != nil {
			example = []byte(e(string(example)))
		}
		*r.path, *r.sock, err = netlab.WriteMobilityConfig(example, dir, r.role, nil)
		if err != nil {
			return err
		}
	}
	for _, g := range []struct{ name, ns, path, sock string }{
		{"HA", lab.HA, haPath, d.haSock}, {"MN", lab.MN, mnPath, d.mnSock},
	} {
		gw := &netlab.Gateway{Name: g.name, NS: g.ns, ConfigPath: g.path}
		d.step("starting the %s: ip netns exec %s mipsec run -c %s", g.name, g.ns, g.path)
		d.daemons = append(d.daemons, gw)
		if err := gw.Start(ctx, d.bin, netlab.DaemonReady(g.sock)); err != nil {
			return err
		}
		d.info("running (pid %d), control socket %s", gw.Pid(), g.sock)
	}

	// 3. Registration on A.
	d.step("waiting for the home registration: %v -> care-of %v", hoa, coa6)
	start := time.Now()
	b, err := d.waitBinding(ctx, coa6, time.Time{})
	if err != nil {
		return fmt.Errorf("registration on access A: %w", err)
	}
	d.info("registered after %v: %s", time.Since(start).Round(time.Millisecond), mdBindingLine(b))
	if d.ike {
		if err := d.ikeReport(ctx, "the MN's IKE SA and its children", true); err != nil {
			return err
		}
	}

	// 4. The streams.
	cn6 := netlab.MobHomeCN6.Addr()
	d.step("UDP stream %v -> [%v]:%d, one datagram every %v (sequence numbers: the loss count)", cn6, hoa, mdUDPPort, mdUDPInterval)
	udp, err := netlab.StartUDPStream(lab.MN, netip.AddrPortFrom(hoa, mdUDPPort), lab.CN, cn6, mdUDPInterval, mdMarker)
	if err != nil {
		return err
	}
	udpStopped := false
	defer func() {
		if !udpStopped {
			udp.Stop(0)
		}
	}()
	if err := netlab.Poll(ctx, 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		return len(udp.Result().RecvAt) > 0, "no UDP datagram reached the MN's home address through the HA"
	}); err != nil {
		return err
	}
	d.info("datagrams arrive at the MN")

	d.step("TCP stream %v -> [%v]:%d at %d KiB/s, SHA-256 checked at the end", cn6, hoa, mdTCPPort, d.rate>>10)
	var (
		mu      sync.Mutex
		samples []tcpSample
	)
	stopTCP := make(chan struct{})
	var seed [32]byte
	rand.Read(seed[:])
	type tcpDone struct {
		res netlab.TransferResult
		err error
	}
	tcpc := make(chan tcpDone, 1)
	go func() {
		data := netlab.Paced(netlab.Payload(1<<40, mdMarker, seed), d.rate, stopTCP)
		res, err := netlab.Transfer(ctx, lab.MN, netip.AddrPortFrom(hoa, mdTCPPort), lab.CN, cn6, data, 16<<10, func(sent int) {
			mu.Lock()
			samples = append(samples, tcpSample{time.Now(), sent})
			mu.Unlock()
		})
		tcpc <- tcpDone{res, err}
	}()
	tcpStopped := false
	defer func() {
		if !tcpStopped {
			close(stopTCP)
		}
	}()
	sentAt := func(t time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		i := sort.Search(len(samples), func(i int) bool { return samples[i].at.After(t) })
		if i == 0 {
			return 0
		}
		return samples[i-1].sent
	}
	if err := d.sleep(ctx, d.dwell); err != nil {
		return err
	}
	d.info("%d KiB sent so far", sentAt(time.Now())>>10)

	// 5. The moves: IPv6 -> IPv4 behind the NAT -> IPv6.
	var moves []mdMove
	for i, to := range []netlab.Access{netlab.AccessB, netlab.AccessA} {
		from := lab.At()
		d.step("move %d: %v -> %v: link %s down, %s up with %v", i+1, from, to, from.Dev(), to.Dev(), to.CoA())
		mv, err := lab.MoveTo(ctx, to)
		if err != nil {
			return err
		}
		var rekey chan error
		if d.ike && i == 0 {
			// A rekey of the payload child in the middle of the handover:
			// its messages wait on the IKE SA until it follows the move.
			d.info("rekeying the payload child now, in the middle of the handover (mipsec ike rekey %s payload)", mdIKEConn)
			rekey = make(chan error, 1)
			go func() {
				_, err := netlab.Ctl(ctx, d.bin, d.mnSock, "ike", "rekey", mdIKEConn, "payload")
				rekey <- err
			}()
		}
		b, err := d.waitBinding(ctx, to.CoA(), mv.Down)
		if err != nil {
			return fmt.Errorf("move %d to %v: %w", i+1, to, err)
		}
		m := mdMove{mv: mv, registered: time.Since(mv.Down), binding: b}
		d.info("registered at %v after %v: %s", to.CoA(), m.registered.Round(time.Millisecond), mdBindingLine(b))
		if rekey != nil {
			select {
			case err := <-rekey:
				if err != nil {
					return fmt.Errorf("the payload child's rekey during move %d: %w", i+1, err)
				}
				d.info("payload child rekeyed during the handover (%v after the old link went down)", time.Since(mv.Down).Round(time.Millisecond))
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		if d.ike {
			if err := d.ikeFollows(ctx, to); err != nil {
				return fmt.Errorf("move %d to %v: %w", i+1, to, err)
			}
		}
		if wantNAT := to == netlab.AccessB; mdNAT(b) != wantNAT {
			return fmt.Errorf("move %d: the HA's binding says NAT=%v, want %v (rt masquerades access B only): %s", i+1, mdNAT(b), wantNAT, mdBindingLine(b))
		}
		if err := netlab.Poll(ctx, d.regTimeout, 50*time.Millisecond, func() (bool, string) {
			_, ok := udp.Result().FirstAfter(mv.Down)
			return ok, "no UDP datagram reached the MN over the new access link"
		}); err != nil {
			return fmt.Errorf("move %d to %v: %w", i+1, to, err)
		}
		moves = append(moves, m)
		if err := d.sleep(ctx, d.dwell); err != nil {
			return err
		}
		d.info("%d KiB sent so far", sentAt(time.Now())>>10)
	}

	// 6. Stop the streams: the TCP stream ends cleanly and is checked.
	d.step("stopping the streams")
	close(stopTCP)
	tcpStopped = true
	var tcp tcpDone
	select {
	case tcp = <-tcpc:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	ur := udp.Stop(500 * time.Millisecond)
	udpStopped = true
	if tcp.err != nil {
		return fmt.Errorf("the TCP stream did not survive: %w", tcp.err)
	}
	d.info("TCP: %v; the receiver's SHA-256 matches the sender's: the stream survived both moves", tcp.res)
	lost, sent := ur.Lost(time.Time{}, time.Time{})
	d.info("UDP: %d datagrams sent, %d lost, %d duplicated", sent, lost, ur.Duplicates)

	// 7. Per move: handover time, loss, TCP.
	time.Sleep(200 * time.Millisecond)
	for _, c := range d.captures {
		c.Close()
	}
	stA, stB := capA.Stats(), capB.Stats()
	d.step("handovers (the old link went down at t=0)")
	var failed []string
	for i, m := range moves {
		st := stA
		if m.mv.To == netlab.AccessB {
			st = stB
		}
		end := time.Time{}
		if i+1 < len(moves) {
			end = moves[i+1].mv.Down
		}
		h := st.HandoverAfter(m.mv.Down)
		lost, sent := ur.Lost(m.mv.Down, end)
		gap, _ := ur.LongestGap(m.mv.Down.Add(-time.Second), end)
		before, after := sentAt(m.mv.Down), sentAt(end)
		if end.IsZero() {
			after = tcp.res.Bytes
		}
		d.info("move %d, %v -> %v:", i+1, m.mv.From, m.mv.To)
		d.info("  new link up with the CoA %s (the lab's ip commands), BU on it %s, BA %s, binding at the new CoA %v (control socket)",
			mdSince(m.mv.Up, m.mv.Down), mdSince(h.BU, m.mv.Down), mdSince(h.BA, m.mv.Down), m.registered.Round(time.Millisecond))
		d.info("  handover time: %s (old link down -> first data ESP to the MN on %s); MN -> HA data from %s",
			mdSince(h.ToMN, m.mv.Down), m.mv.To.RouterDev(), mdSince(h.FromMN, m.mv.Down))
		d.info("  packets lost: %d of %d UDP datagrams sent until the next move (longest gap between arrivals %v)",
			lost, sent, gap.Round(time.Millisecond))
		d.info("  TCP stream: survived, %d KiB sent after the move", (after-before)>>10)
		if h.ToMN.IsZero() {
			failed = append(failed, fmt.Sprintf("move %d: no data ESP to the MN on %s after the move", i+1, m.mv.To.RouterDev()))
		}
	}
	d.info("(packets lost: datagrams of the UDP stream, one every %v, whose sequence numbers never arrived)", mdUDPInterval)

	// 8. The captures.
	for _, c := range []struct {
		acc  netlab.Access
		st   netlab.Stats
		kept []netlab.KeptFrame
	}{{netlab.AccessA, stA, capA.Kept()}, {netlab.AccessB, stB, capB.Kept()}} {
		d.step("capture on access %v (%s in rt)", c.acc, c.acc.RouterDev())
		lines, problems := mdCaptureReport(c.acc, c.st, c.kept)
		for _, l := range lines {
			d.info("%s", l)
		}
		failed = append(failed, problems...)
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	if d.ike {
		d.info("=> only IKE and ESP crossed the access networks (raw ESP on A; ESP in UDP 4500 and BU/BA in UDP 4191 on B), none of it with the plaintext")
	} else {
		d.info("=> only ESP crossed the access networks (raw ESP on A; ESP in UDP 4500 and BU/BA in UDP 4191 on B), none of it with the plaintext")
	}

	// 9. The daemons' view.
	for _, c := range []struct{ sock, cmd, what string }{
		{d.haSock, "binding list", "HA"}, {d.mnSock, "mn status", "MN"},
	} {
		d.step("mipsec %s --socket %s (%s)", c.cmd, c.sock, c.what)
		out, err := netlab.Ctl(ctx, d.bin, c.sock, strings.Fields(c.cmd)...)
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			d.info("%s", l)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sleep waits for dur or until ctx is done.
func (d *mobDemo) sleep(ctx context.Context, dur time.Duration) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(dur):
		return nil
	}
}

// waitBinding polls the HA's binding list until the MN's home address is
// bound to coa (primary) and the MN's status says it is registered there.
func (d *mobDemo) waitBinding(ctx context.Context, coa netip.Addr, since time.Time) (netlab.BindingInfo, error) {
	var b netlab.BindingInfo
	err := netlab.Poll(ctx, d.regTimeout, 20*time.Millisecond, func() (bool, string) {
		out, err := netlab.Ctl(ctx, d.bin, d.haSock, "binding", "list", "--json")
		if err != nil {
			return false, err.Error()
		}
		bs, err := netlab.ParseBindings(out)
		if err != nil {
			return false, err.Error()
		}
		var ok bool
		b, ok = netlab.FindBinding(bs, netlab.MobHoA)
		if !ok {
			return false, fmt.Sprintf("the HA has no binding for %v: %s", netlab.MobHoA, strings.TrimSpace(string(out)))
		}
		if p, ok := b.Primary(); !ok || p.Addr != coa {
			return false, fmt.Sprintf("the HA's binding is %s, want care-of %v", mdBindingLine(b), coa)
		}
		out, err = netlab.Ctl(ctx, d.bin, d.mnSock, "mn", "status", "--json")
		if err != nil {
			return false, err.Error()
		}
		st, err := netlab.ParseMNStatus(out)
		if err != nil {
			return false, err.Error()
		}
		if st.RegisteredCoA != coa {
			return false, fmt.Sprintf("the MN says registered at %v (state %s), want %v", st.RegisteredCoA, st.State, coa)
		}
		return true, ""
	})
	return b, err
}

// mdNAT reports whether the binding's primary CoA is behind a NAT.
func mdNAT(b netlab.BindingInfo) bool {
	p, _ := b.Primary()
	return p.NAT
}

// mdBindingLine describes a binding in one line.
func mdBindingLine(b netlab.BindingInfo) string {
	var coas []string
	for _, c := range b.CoAs {
		s := c.Addr.String()
		if c.Endpoint.IsValid() {
			s += " via UDP " + c.Endpoint.String()
		}
		if c.NAT {
			s += " (NAT detected)"
		} else {
			s += " (no NAT)"
		}
		coas = append(coas, s)
	}
	hoa4 := ""
	if b.HoA4.IsValid() {
		hoa4 = " + " + b.HoA4.String()
	}
	return fmt.Sprintf("HoA %v%s -> %s, seq %d", b.HoA, hoa4, strings.Join(coas, ", "), b.Seq)
}

// mdSince formats x - t, or "none" for a zero x.
func mdSince(x, t time.Time) string {
	if x.IsZero() {
		return "none"
	}
	return x.Sub(t).Round(time.Millisecond).String()
}

// mdCaptureReport describes one access link's capture and lists what
// breaks the demo's claims: anything but ESP (raw on A; in UDP 4500, or
// BU/BA in UDP 4191, on B), NAT keepalives (B) and ARP/ND/MLD, or any
// frame with the plaintext pattern.
func mdCaptureReport(acc netlab.Access, s netlab.Stats, kept []netlab.KeptFrame) (lines, problems []string) {
	dsmip, hao, rh2 := s.Signaling()
	raw := 0
	for _, p := range s.ESP {
		if !p.UDP && !p.DSMIP {
			raw++
		}
	}
	var spis []string
	for spi, n := range s.SPIs() {
		spis = append(spis, fmt.Sprintf("0x%08x: %d", spi, n))
	}
	sort.Strings(spis)
	ike, other := ndSplitIKE(s, kept)
	var others []string
	nother := 0
	for k, n := range other {
		others = append(others, fmt.Sprintf("%s: %d", k, n))
		nother += n
	}
	sort.Strings(others)
	lines = []string{
		fmt.Sprintf("%d frames captured", s.Frames),
		fmt.Sprintf("ESP:                 %d packets, %d bytes; by SPI: %s", len(s.ESP), s.ESPBytes, strings.Join(spis, ", ")),
		fmt.Sprintf("  raw (IP proto 50): %d, of them BU with a Home Address option %d, BA with a type 2 Routing header %d", raw, hao, rh2),
		fmt.Sprintf("  in UDP 4500:       %d", s.ESPInUDP()),
		fmt.Sprintf("  BU/BA in UDP 4191: %d", dsmip),
		fmt.Sprintf("IKE (UDP 500/4500):  %d messages", ike),
		fmt.Sprintf("NAT keepalives:      %d", s.Keepalives),
		fmt.Sprintf("ARP/ND/MLD:          %d (link-layer housekeeping)", s.Control),
		fmt.Sprintf("anything else:       %d %s", nother, strings.Join(others, ", ")),
		fmt.Sprintf("frames with the plaintext pattern %q: %d", mdMarker, s.Plaintext),
	}
	name := "access " + acc.String()
	if len(other) > 0 {
		problems = append(problems, fmt.Sprintf("%s: traffic other than ESP: %s", name, strings.Join(others, ", ")))
	}
	if s.Plaintext > 0 {
		problems = append(problems, fmt.Sprintf("%s: %d frames carry the plaintext", name, s.Plaintext))
	}
	if len(s.ESP) == 0 {
		problems = append(problems, name+": no ESP at all")
	}
	switch acc {
	case netlab.AccessA:
		if s.ESPInUDP() > 0 || dsmip > 0 || s.Keepalives > 0 {
			problems = append(problems, fmt.Sprintf("%s (IPv6, no NAT): UDP used where raw ESP does: %d ESP in UDP 4500, %d in UDP 4191, %d keepalives",
				name, s.ESPInUDP(), dsmip, s.Keepalives))
		}
		if hao == 0 || rh2 == 0 {
			problems = append(problems, fmt.Sprintf("%s: BU with HAO %d, BA with RH2 %d; want both", name, hao, rh2))
		}
	case netlab.AccessB:
		if raw > 0 {
			problems = append(problems, fmt.Sprintf("%s (behind the NAT): %d raw ESP packets, want ESP in UDP only", name, raw))
		}
		if dsmip == 0 {
			problems = append(problems, name+": no BU/BA in UDP 4191")
		}
	}
	return lines, problems
}
