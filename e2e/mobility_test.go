package e2e

// The mobility tests: a home agent and a mobile node (`mipsec run` with
// role = "ha" / "mn", from the example configs cmd/mipsec/examples/ha.toml
// and mn.toml) in internal/netlab's mobility topology: a correspondent
// (cn) on the home link, the HA, a router (rt) that masquerades the
// IPv4-only access network B, and the MN with access A (IPv6) and B.
// Captures run on the router's side of both access links and on the HA's
// side of the transit link.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

// The example configs the tests run (OPS: cmd/mipsec/examples).
const (
	mobExampleHA = "../cmd/mipsec/examples/ha.toml"
	mobExampleMN = "../cmd/mipsec/examples/mn.toml"
)

// SPIs of the example configs (RFC 4877 §6): SA1 (BU, MN -> HA), SA2 (BA),
// SA7/SA8 (data).
const (
	mobSPIBU    = 0x0000a001
	mobSPIBA    = 0x0000b002
	mobSPIData7 = 0x0000a007 // MN -> HA
	mobSPIData8 = 0x0000b008 // HA -> MN
)

var (
	mobHoA  = netlab.MobHoA
	mobHoA4 = netlab.MobHoA4
	mobCoA6 = netlab.MobCoA6.Addr()
	mobCoA4 = netlab.MobCoA4.Addr()
	mobCN6  = netlab.MobHomeCN6.Addr()
	mobCN4  = netlab.MobHomeCN4.Addr()
)

// mobOptions choose the variant of a mobility lab.
type mobOptions struct {
	// haSet and mnSet change keys of the example configs (netlab.SetTOML).
	haSet, mnSet map[string]string
	// mnEdit and haEdit, if set, rewrite the MN's and HA's config text
	// (after mnSet, haSet).
	mnEdit, haEdit func(string) string
	// haExample and mnExample replace the example configs
	// (mobExampleHA, mobExampleMN).
	haExample, mnExample string
	// noMN: start only the HA (the test starts the MN itself).
	noMN bool
	// keepA: frames the capture on access A keeps (router side).
	keepA func(netlab.Frame) bool
	// keepT: frames the capture on the transit link keeps (HA side).
	keepT func(netlab.Frame) bool
	// pcap: write the transit capture (HA side) to dir/transit.pcap.
	pcap bool
}

// mobLab is the mobility topology with its daemons and captures.
type mobLab struct {
	*netlab.Mobility
	t      *testing.T
	dir    string
	ha, mn *gateway
	mnPath string
	// Captures: access A and B on the router's side, transit on the HA's.
	capA, capB, capT *netlab.Capture
	pcap             string
}

func newMobLab(t *testing.T, o mobOptions) *mobLab {
	t.Helper()
	needEnv(t)
	testenv.NeedCommand(t, "nft")
	haFile, mnFile := mobExampleHA, mobExampleMN
	if o.haExample != "" {
		haFile, mnFile = o.haExample, o.mnExample
	}
	haExample, err := os.ReadFile(haFile)
	if err != nil {
		t.Fatalf("the HA example config (OPS): %v", err)
	}
	mnExample, err := os.ReadFile(mnFile)
	if err != nil {
		t.Fatalf("the MN example config (OPS): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := netlab.NewMobility(ctx, "mipsec-e2e", fmt.Sprintf("m%d-", nsCounter.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	l := &mobLab{Mobility: m, t: t, dir: t.TempDir()}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	start := func(ns, dev string, keep func(netlab.Frame) bool, pcap string) *netlab.Capture {
		c, err := netlab.StartCaptureOpts(ns, dev, netlab.CaptureOptions{Marker: marker, Keep: keep, Pcap: pcap})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	l.capA = start(m.RT, netlab.AccessA.RouterDev(), o.keepA, "")
	l.capB = start(m.RT, netlab.AccessB.RouterDev(), nil, "")
	if o.pcap {
		l.pcap = filepath.Join(l.dir, "transit.pcap")
	}
	l.capT = start(m.HA, netlab.MobDevHATransit, o.keepT, l.pcap)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("capture access A (rt side): %s", l.capA.Stats().Summary())
			t.Logf("capture access B (rt side): %s", l.capB.Stats().Summary())
			t.Logf("capture transit (HA side): %s", l.capT.Stats().Summary())
		}
	})

	haPath, haSock, err := netlab.WriteMobilityConfig(haExample, l.dir, "ha", o.haSet)
	if err != nil {
		t.Fatal(err)
	}
	mnPath, mnSock, err := netlab.WriteMobilityConfig(mnExample, l.dir, "mn", o.mnSet)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		path string
		edit func(string) string
	}{{mnPath, o.mnEdit}, {haPath, o.haEdit}} {
		if e.edit == nil {
			continue
		}
		b, _ := os.ReadFile(e.path)
		if err := os.WriteFile(e.path, []byte(e.edit(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.mnPath = mnPath
	l.ha = newGatewayFile(t, "HA", m.HA, haPath, gwConfig{Socket: haSock})
	l.mn = newGatewayFile(t, "MN", m.MN, mnPath, gwConfig{Socket: mnSock})
	// The MN stops before the HA (cleanups run last in, first out): its
	// de-registration needs the HA.
	l.ha.start()
	if !o.noMN {
		l.mn.start()
	}
	// On failure, the daemons' own view (before they are stopped).
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, c := range []struct {
			g    *gateway
			args []string
		}{{l.ha, []string{"binding", "list", "--json"}}, {l.ha, []string{"stats", "--json"}}, {l.mn, []string{"mn", "status", "--json"}}, {l.mn, []string{"stats", "--json"}}} {
			if c.g.Running() {
				out, err := c.g.ctl(c.args...)
				t.Logf("%s: mipsec %s: %v\n%s", c.g.name, strings.Join(c.args, " "), err, out)
			}
		}
	})
	return l
}

// bindings returns the HA's bindings (`mipsec binding list --json`).
func (l *mobLab) bindings() ([]netlab.BindingInfo, error) {
	out, err := l.ha.ctl("binding", "list", "--json")
	if err != nil {
		return nil, err
	}
	return netlab.ParseBindings([]byte(out))
}

// binding returns the MN's binding at the HA, failing the test when the
// control socket cannot be asked.
func (l *mobLab) binding() (netlab.BindingInfo, bool) {
	l.t.Helper()
	bs, err := l.bindings()
	if err != nil {
		l.t.Fatalf("HA: %v", err)
	}
	return netlab.FindBinding(bs, mobHoA)
}

// mnStatus returns `mipsec mn status --json`.
func (l *mobLab) mnStatus() (netlab.MNInfo, error) {
	out, err := l.mn.ctl("mn", "status", "--json")
	if err != nil {
		return netlab.MNInfo{}, err
	}
	return netlab.ParseMNStatus([]byte(out))
}

// waitRegistered waits until the HA binds the HoA to coa (primary) and the
// MN says it is registered there; it returns the binding.
func (l *mobLab) waitRegistered(coa netip.Addr, timeout time.Duration) netlab.BindingInfo {
	l.t.Helper()
	var b netlab.BindingInfo
	err := netlab.Poll(context.Background(), timeout, 50*time.Millisecond, func() (bool, string) {
		bs, err := l.bindings()
		if err != nil {
			return false, "HA: " + err.Error()
		}
		var ok bool
		if b, ok = netlab.FindBinding(bs, mobHoA); !ok {
			return false, fmt.Sprintf("the HA has no binding for %v (bindings: %+v)", mobHoA, bs)
		}
		if p, ok := b.Primary(); !ok || p.Addr != coa {
			return false, fmt.Sprintf("the HA binds %v to %+v, want primary care-of %v", mobHoA, b.CoAs, coa)
		}
		st, err := l.mnStatus()
		if err != nil {
			return false, "MN: " + err.Error()
		}
		if st.RegisteredCoA != coa {
			return false, fmt.Sprintf("the MN says registered at %v (state %q), want %v", st.RegisteredCoA, st.State, coa)
		}
		return true, ""
	})
	if err != nil {
		l.t.Fatalf("registration at %v: %v", coa, err)
	}
	return b
}

// waitUnbound waits until the HA has no binding for the HoA.
func (l *mobLab) waitUnbound(timeout time.Duration, why string) {
	l.t.Helper()
	err := netlab.Poll(context.Background(), timeout, 100*time.Millisecond, func() (bool, string) {
		bs, err := l.bindings()
		if err != nil {
			return false, "HA: " + err.Error()
		}
		if b, ok := netlab.FindBinding(bs, mobHoA); ok {
			return false, fmt.Sprintf("the HA still binds %v: %+v", mobHoA, b.CoAs)
		}
		return true, ""
	})
	if err != nil {
		l.t.Fatalf("%s: %v", why, err)
	}
}

// homeLink reports whether the HA's home link has the proxy ND entry for
// the HoA and the route of the HoA into its TUN.
func (l *mobLab) homeLink() (proxy, route bool) {
	l.t.Helper()
	out := run(l.t, "ip", "-n", l.HA, "-6", "neigh", "show", "proxy", "dev", netlab.MobDevHAHome)
	proxy = strings.Contains(out, mobHoA.String())
	out = run(l.t, "ip", "-n", l.HA, "-6", "route", "show", mobHoA.String()+"/128")
	route = strings.Contains(out, "mipsec0")
	return proxy, route
}

// stats returns `mipsec stats --json` of g, decoded.
func stats(t *testing.T, g *gateway) map[string]any {
	t.Helper()
	out, err := g.ctl("stats", "--json")
	if err != nil {
		t.Fatalf("%s: mipsec stats --json: %v", g.name, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s: mipsec stats --json: %v\n%s", g.name, err, out)
	}
	return m
}

// saDrop is the inbound SA spi's drop counter for reason in a stats answer.
func saDrop(st map[string]any, spi uint32, reason string) uint64 {
	sas, _ := st["sas"].([]any)
	for _, s := range sas {
		m, _ := s.(map[string]any)
		if m == nil || m["dir"] != "in" || m["spi"] != fmt.Sprintf("0x%08x", spi) {
			continue
		}
		d, _ := m["drops"].(map[string]any)
		n, _ := d[reason].(float64)
		return uint64(n)
	}
	return 0
}

// dataplaneDrops sums the dataplane's drop counters (all reasons but the
// SPD's) and
// every counter named like garbage or unprotected elsewhere in the answer
// (the underlay's).
func dataplaneDrops(st map[string]any) (total uint64, byReason map[string]uint64) {
	byReason = map[string]uint64{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(path+"."+k, x)
			}
		case float64:
			if (strings.HasPrefix(path, ".dataplane.drops.") || strings.Contains(path, "garbage") || strings.Contains(path, "unprotected") ||
				strings.HasPrefix(path, ".underlay.") && strings.Contains(path, "malformed")) &&
				!strings.Contains(path, "policy") { // SPD drops of the HA's own traffic are not garbage
				byReason[path] = uint64(v)
				total += uint64(v)
			}
		}
	}
	walk("", st)
	return total, byReason
}

// statCounter returns the number at the dotted path ("underlay.x") of a
// stats answer; ok is false when there is none.
func statCounter(st map[string]any, path string) (uint64, bool) {
	if path == "" {
		return 0, false
	}
	var v any = st
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		if m == nil {
			return 0, false
		}
		v = m[k]
	}
	f, ok := v.(float64)
	return uint64(f), ok
}

// TestMobilityRegistration: the MN registers its IPv6 care-of address on
// access A; the binding has the IPv4 home address and no NAT; the HA
// proxies the HoA on the home link and routes it into its TUN; the CN
// reaches both home addresses through the tunnel.
func TestMobilityRegistration(t *testing.T) {
	l := newMobLab(t, mobOptions{})
	b := l.waitRegistered(mobCoA6, 15*time.Second)
	p, _ := b.Primary()
	if b.HoA4 != mobHoA4 {
		t.Errorf("binding: IPv4 home address %v, want %v (RFC 5555 IPv4 Home Address option)", b.HoA4, mobHoA4)
	}
	if p.NAT || p.Endpoint.IsValid() {
		t.Errorf("binding at the IPv6 CoA: NAT %v, UDP endpoint %v; want no NAT and no UDP", p.NAT, p.Endpoint)
	}
	if proxy, route := l.homeLink(); !proxy || !route {
		t.Errorf("HA home link: proxy ND for %v %v, route into mipsec0 %v; want both", mobHoA, proxy, route)
	}
	st, err := l.mnStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.NAT || st.CoA != mobCoA6 {
		t.Errorf("mn status: CoA %v NAT %v; want %v, no NAT", st.CoA, st.NAT, mobCoA6)
	}
	mustPing(t, l.CN, mobCN6, mobHoA, 3)
	mustPing(t, l.CN, mobCN4, mobHoA4, 3)
	checkAccess(t, l.capA.Stats(), netlab.AccessA, 0)
}

// mobStream is a paced TCP stream (1 MiB/s) from the MN's home address to
// the CN, checked by SHA-256 at the end (netlab.Transfer).
type mobStream struct {
	stop    chan struct{}
	cancel  context.CancelFunc
	done    chan mobStreamResult
	mu      sync.Mutex
	n       int
	stopped bool
}

type mobStreamResult struct {
	res transferResult
	err error
}

func startMobStream(t *testing.T, l *mobLab) *mobStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	s := &mobStream{stop: make(chan struct{}), cancel: cancel, done: make(chan mobStreamResult, 1)}
	go func() {
		data := netlab.Paced(netlab.Payload(1<<40, marker, [32]byte{1}), 1<<20, s.stop)
		res, err := netlab.Transfer(ctx, l.MN, netip.AddrPortFrom(mobHoA, 5201), l.CN, mobCN6, data, 16<<10, func(n int) {
			s.mu.Lock()
			s.n = n
			s.mu.Unlock()
		})
		s.done <- mobStreamResult{res, err}
	}()
	return s
}

// sent is how many bytes the CN has received so far.
func (s *mobStream) sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// finish ends the stream and returns its result.
func (s *mobStream) finish() mobStreamResult {
	s.stopped = true
	close(s.stop)
	r := <-s.done
	s.cancel()
	return r
}

// abort ends a stream finish did not (a stalled one would block until its
// deadline).
func (s *mobStream) abort() {
	if !s.stopped {
		s.stopped = true
		close(s.stop)
		s.cancel()
		<-s.done
	}
}

// checkAccess fails t unless a capture on access link acc holds only ESP
// (raw on A; in UDP 4500, or signaling in UDP 4191, on B), NAT keepalives
// (B only) and ARP/ND/MLD, nothing with the plaintext marker, and at least
// minBytes of ESP.
func checkAccess(t *testing.T, s netlab.Stats, acc netlab.Access, minBytes int) {
	t.Helper()
	sum := s.Summary()
	if len(s.Other) > 0 || s.ICMPErrors > 0 {
		hint := ""
		for k := range s.Other {
			if strings.HasPrefix(k, "ICMPv6 type 4 ") {
				hint = " (ICMPv6 Parameter Problem: the kernel of the HA (code 2: the Home Address option, RFC 8200 §4.2) or of the MN (code 0: the type 2 Routing header) answers signaling that mipsec took from a raw socket)"
			}
		}
		t.Errorf("access %v: packets other than ESP%s: %s", acc, hint, sum)
	}
	if s.Plaintext > 0 {
		t.Errorf("access %v: %d frames carry the plaintext marker: %s", acc, s.Plaintext, sum)
	}
	if s.ESPBytes < minBytes {
		t.Errorf("access %v: %d bytes of ESP, want at least %d: %s", acc, s.ESPBytes, minBytes, sum)
	}
	dsmip, hao, rh2 := s.Signaling()
	raw := 0
	for _, p := range s.ESP {
		if !p.UDP && !p.DSMIP {
			raw++
		}
	}
	switch acc {
	case netlab.AccessA:
		if s.ESPInUDP() > 0 || dsmip > 0 || s.Keepalives > 0 {
			t.Errorf("access A (IPv6, no NAT): UDP used: %d ESP in UDP 4500, %d BU/BA in UDP 4191, %d keepalives; want raw ESP only: %s",
				s.ESPInUDP(), dsmip, s.Keepalives, sum)
		}
		if hao == 0 || rh2 == 0 {
			t.Errorf("access A: %d BUs with a Home Address option, %d BAs with a type 2 Routing header; want both (RFC 6275 §6.3, §6.4): %s", hao, rh2, sum)
		}
	case netlab.AccessB:
		if raw > 0 {
			t.Errorf("access B (IPv4 behind the NAT): %d raw ESP packets; want ESP in UDP only: %s", raw, sum)
		}
		if dsmip == 0 {
			t.Errorf("access B: no BU/BA in UDP 4191 (RFC 5555 §4.1): %s", sum)
		}
	}
	t.Logf("access %v: %s", acc, sum)
}

// TestMobilityHandover: a TCP stream from the CN to the MN's home address
// runs while the MN moves A (IPv6) -> B (IPv4 behind the NAT) -> A; the
// bytes arrive intact (SHA-256). The HA detects the NAT on B and not on A;
// UDP is used only on B; the HA sees the MN's packets on B from the NAT's
// address only; tshark decodes the BUs and BAs captured on the transit
// link as Mobile IPv6 with the right options.
func TestMobilityHandover(t *testing.T) {
	l := newMobLab(t, mobOptions{pcap: true})
	l.waitRegistered(mobCoA6, 15*time.Second)

	udp, err := netlab.StartUDPStream(l.MN, netip.AddrPortFrom(mobHoA, 5202), l.CN, mobCN6, 10*time.Millisecond, marker)
	if err != nil {
		t.Fatal(err)
	}
	st := startMobStream(t, l)
	defer st.abort()
	sentNow := st.sent
	time.Sleep(2 * time.Second)
	if sentNow() == 0 {
		t.Fatal("the TCP stream sent nothing in 2s on access A")
	}

	var moves []netlab.Move
	for i, to := range []netlab.Access{netlab.AccessB, netlab.AccessA} {
		mv, err := l.MoveTo(context.Background(), to)
		if err != nil {
			t.Fatal(err)
		}
		moves = append(moves, mv)
		b := l.waitRegistered(to.CoA(), 15*time.Second)
		p, _ := b.Primary()
		switch to {
		case netlab.AccessB:
			if !p.NAT || p.Endpoint.Addr() != netlab.MobNATAddr {
				t.Errorf("move %d to B: binding CoA %+v; want NAT detected with the NAT's endpoint %v:port (DR-4)", i+1, p, netlab.MobNATAddr)
			}
			if st, err := l.mnStatus(); err != nil || !st.NAT {
				t.Errorf("move %d to B: mn status NAT %v (%v); want true (NAT Detection option in the BA, RFC 5555 §4.2.2)", i+1, st.NAT, err)
			}
		case netlab.AccessA:
			if p.NAT || p.Endpoint.IsValid() {
				t.Errorf("move %d back to A: binding CoA %+v; want no NAT, no UDP", i+1, p)
			}
		}
		before := sentNow()
		if err := netlab.Poll(context.Background(), 15*time.Second, 100*time.Millisecond, func() (bool, string) {
			return sentNow() > before+256<<10, fmt.Sprintf("the TCP stream is stuck at %d bytes after move %d to %v", sentNow(), i+1, to)
		}); err != nil {
			t.Fatal(err)
		}
		if err := netlab.Poll(context.Background(), 5*time.Second, 50*time.Millisecond, func() (bool, string) {
			_, ok := udp.Result().FirstAfter(mv.Up)
			return ok, "no UDP datagram sent after the new link came up reached the MN"
		}); err != nil {
			t.Errorf("move %d to %v: %v", i+1, to, err)
		}
	}
	r := st.finish()
	if r.err != nil {
		t.Fatalf("the TCP stream across A -> B -> A: %v", r.err)
	}
	ur := udp.Stop(500 * time.Millisecond)
	lost, n := ur.Lost(time.Time{}, time.Time{})
	t.Logf("TCP across both moves: %v; UDP: %d of %d datagrams lost", r.res, lost, n)
	for i, mv := range moves {
		end := time.Time{}
		if i+1 < len(moves) {
			end = moves[i+1].Down
		}
		lost, n := ur.Lost(mv.Down, end)
		gap, _ := ur.LongestGap(mv.Down.Add(-time.Second), end)
		t.Logf("move %d to %v: %d of %d datagrams lost, longest gap %v", i+1, mv.To, lost, n, gap.Round(time.Millisecond))
	}

	time.Sleep(300 * time.Millisecond)
	l.capA.Close()
	l.capB.Close()
	l.capT.Close()
	for i, mv := range moves {
		st := l.capA.Stats()
		if mv.To == netlab.AccessB {
			st = l.capB.Stats()
		}
		h := st.HandoverAfter(mv.Down)
		if h.BU.IsZero() || h.BA.IsZero() || h.ToMN.IsZero() || h.FromMN.IsZero() {
			t.Errorf("move %d to %v: on the new link BU %v, BA %v, data to the MN %v, from it %v; want all",
				i+1, mv.To, !h.BU.IsZero(), !h.BA.IsZero(), !h.ToMN.IsZero(), !h.FromMN.IsZero())
			continue
		}
		t.Logf("move %d to %v (old link down at 0, new link up at %v): BU %v, BA %v, first data to the MN %v (the handover time), from it %v",
			i+1, mv.To, mv.Up.Sub(mv.Down).Round(time.Millisecond), h.BU.Sub(mv.Down).Round(time.Millisecond), h.BA.Sub(mv.Down).Round(time.Millisecond),
			h.ToMN.Sub(mv.Down).Round(time.Millisecond), h.FromMN.Sub(mv.Down).Round(time.Millisecond))
	}
	checkAccess(t, l.capA.Stats(), netlab.AccessA, r.res.Bytes/4)
	checkAccess(t, l.capB.Stats(), netlab.AccessB, 1)
	// On the transit link the HA sees the MN's UDP from the NAT only.
	tr := l.capT.Stats()
	for src := range tr.UDPFrom {
		if !strings.HasPrefix(src, netlab.MobNATAddr.String()+":") && !strings.HasPrefix(src, netlab.MobHAV4.String()+":") {
			t.Errorf("transit: ESP in UDP from %s; want only the NAT's %v", src, netlab.MobNATAddr)
		}
	}
	if tr.Plaintext > 0 {
		t.Errorf("transit: %d frames with the plaintext: %s", tr.Plaintext, tr.Summary())
	}
	t.Run("tshark", func(t *testing.T) { checkTsharkMIP6(t, l) })
}

// tsharkMIP is one Mobility Header message tshark decoded (decrypted).
type tsharkMIP struct {
	frame, mhType, seq, status, lifetime string
	hao, rh2, v4coa, v4hoa, natd, udp    string
	// kBU and kBA: the K flag of a BU, of a BA (RFC 4877 §7.4).
	kBU, kBA string
}

// tshark runs tshark on the transit capture (l.pcap) with args, in a
// Wireshark configuration of its own whose esp_sa table is the HA's SAs
// (`mipsec sa list --wireshark`), ESP decryption and ICV checks on. It
// returns tshark's output and the esp_sa lines.
func (l *mobLab) tshark(t *testing.T, args ...string) (out, espSA string) {
	t.Helper()
	tshark := testenv.NeedCommand(t, "tshark")
	lines, err := l.ha.ctl("sa", "list", "--wireshark")
	if err != nil {
		t.Fatalf("mipsec sa list --wireshark: %v", err)
	}
	home := filepath.Join(l.dir, "home")
	conf := filepath.Join(home, ".config", "wireshark")
	if err := os.MkdirAll(conf, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "esp_sa"), []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"-n", "-r", l.pcap,
		"-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"}, args...)
	cmd := exec.CommandContext(ctx, tshark, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	// tshark reports a table it cannot load on stderr and goes on
	// (exit code 0) without it.
	if strings.Contains(stderr.String(), "Error loading table") {
		t.Fatalf("tshark rejects a table (esp_sa or an -o uat): %s", stderr.String())
	}
	return string(b), lines
}

// tsharkMIP6 decodes the transit capture (l.pcap) with tshark, decrypting
// ESP with the HA's SAs (l.tshark; extra: more tshark options), and returns
// the Mobility Header messages (not those quoted in ICMPv6 errors) and
// tshark's output.
func tsharkMIP6(t *testing.T, l *mobLab, extra ...string) ([]tsharkMIP, string) {
	t.Helper()
	args := append(slices.Clip(extra),
		"-d", "udp.port==4191,ipv6", // RFC 5555 §4.1: IPv6 in UDP 4191
		"-Y", "mipv6 && !icmpv6", // the Mobility Header dissector (fields mip6.*), not quoted in ICMPv6 errors
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=f",
		"-e", "frame.number", "-e", "mip6.mhtype", "-e", "mip6.bu.seqnr", "-e", "mip6.ba.status", "-e", "mip6.bu.lifetime",
		"-e", "ipv6.opt.mipv6.home_address", "-e", "ipv6.routing.mipv6.home_address",
		"-e", "mip6.ipv4coa.addr", "-e", "mip6.ipv4ha.ha", "-e", "mip6.natd.refresh_t", "-e", "udp.port",
		"-e", "mip6.bu.k_flag", "-e", "mip6.ba.k_flag")
	out, _ := l.tshark(t, args...)
	var msgs []tsharkMIP
	for _, ln := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if ln == "" {
			continue
		}
		f := strings.Split(ln, "\t")
		for len(f) < 13 {
			f = append(f, "")
		}
		msgs = append(msgs, tsharkMIP{frame: f[0], mhType: f[1], seq: f[2], status: f[3], lifetime: f[4],
			hao: f[5], rh2: f[6], v4coa: f[7], v4hoa: f[8], natd: f[9], udp: f[10], kBU: f[11], kBA: f[12]})
	}
	return msgs, out
}

// checkTsharkMIP6 decodes the transit capture with tshark, decrypting ESP
// with the HA's SAs (`mipsec sa list --wireshark`), and checks that the
// BUs and BAs are Mobile IPv6 (RFC 6275 §6.1.7, §6.1.8) with the right
// options: from the IPv6 CoA a BU with a Home Address option and a BA with
// a type 2 Routing header; from the IPv4 CoA (UDP 4191) a BU with the IPv4
// CoA option and a BA with the NAT Detection option (RFC 5555 §3.1.3,
// §3.2.2). extra goes to tsharkMIP6; the messages are returned.
func checkTsharkMIP6(t *testing.T, l *mobLab, extra ...string) []tsharkMIP {
	msgs, out := tsharkMIP6(t, l, extra...)
	var bu6, ba6, bu4, ba4 int
	for _, m := range msgs {
		switch {
		case m.mhType == "5" && m.udp == "": // BU from the IPv6 CoA
			bu6++
			if m.hao != mobHoA.String() {
				t.Errorf("frame %s: BU from an IPv6 CoA with Home Address option %q, want %v (RFC 6275 §6.3)", m.frame, m.hao, mobHoA)
			}
		case m.mhType == "6" && m.udp == "":
			ba6++
			if m.rh2 != mobHoA.String() || m.status != "0" {
				t.Errorf("frame %s: BA to an IPv6 CoA: type 2 RH %q status %q; want %v, 0", m.frame, m.rh2, m.status, mobHoA)
			}
		case m.mhType == "5":
			bu4++
			if m.v4coa != mobCoA4.String() {
				t.Errorf("frame %s: BU in UDP 4191 with IPv4 CoA option %q, want %v (RFC 5555 §3.1.3)", m.frame, m.v4coa, mobCoA4)
			}
			if m.v4hoa != mobHoA4.String() {
				t.Errorf("frame %s: BU in UDP 4191 with IPv4 Home Address option %q, want %v (RFC 5555 §3.1.1)", m.frame, m.v4hoa, mobHoA4)
			}
		case m.mhType == "6":
			ba4++
			if m.natd == "" || m.status != "0" {
				t.Errorf("frame %s: BA in UDP 4191: NAT Detection refresh %q status %q; want the option (RFC 5555 §3.2.2) and status 0", m.frame, m.natd, m.status)
			}
		}
	}
	if bu6 == 0 || ba6 == 0 || bu4 == 0 || ba4 == 0 {
		t.Errorf("tshark decoded %d BUs and %d BAs over IPv6, %d BUs and %d BAs in UDP 4191; want each at least once:\n%s", bu6, ba6, bu4, ba4, out)
	}
	t.Logf("tshark: %d BU + %d BA over IPv6, %d BU + %d BA in UDP 4191", bu6, ba6, bu4, ba4)
	return msgs
}

// TestMobilityOldCoAUntilBA: with both access links up, `mipsec mn move`
// to the IPv4 CoA sends the BU from B while the BAs to B are dropped on the
// router: the MN's data keeps leaving from the old CoA (A) and none leaves
// from B until a BA arrives (DR-3); then the data moves to B.
func TestMobilityOldCoAUntilBA(t *testing.T) {
	l := newMobLab(t, mobOptions{})
	l.waitRegistered(mobCoA6, 15*time.Second)
	ctx := context.Background()
	if err := l.SetLink(ctx, netlab.AccessB, true); err != nil {
		t.Fatal(err)
	}
	// The MN prefers its IPv6 CoA: B coming up moves nothing.
	time.Sleep(time.Second)
	if b, _ := l.binding(); func() bool { p, _ := b.Primary(); return p.Addr != mobCoA6 }() {
		t.Fatalf("access B up: the binding moved to %+v; ChooseCoA prefers the global IPv6 CoA", b.CoAs)
	}
	// The BAs to B (UDP from 4191) go nowhere for now.
	if err := netlab.NFT(ctx, l.RT, "table ip hold {\n\tchain hold_forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tip saddr "+
		netlab.MobHAV4.String()+" udp sport 4191 drop\n\t}\n}\n"); err != nil {
		t.Fatal(err)
	}
	// Upstream data: the MN sends to the CN every 10 ms.
	up, err := netlab.StartUDPStream(l.CN, netip.AddrPortFrom(mobCN6, 5203), l.MN, mobHoA, 10*time.Millisecond, marker)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Stop(0)
	time.Sleep(500 * time.Millisecond)
	moved := time.Now()
	if out, err := l.mn.ctl("mn", "move", mobCoA4.String()); err != nil {
		t.Fatalf("mipsec mn move %v: %v\n%s", mobCoA4, err, out)
	}
	time.Sleep(2500 * time.Millisecond)
	released := time.Now()
	if err := netlab.NFT(ctx, l.RT, "delete table ip hold\n"); err != nil {
		t.Fatal(err)
	}
	l.waitRegistered(mobCoA4, 15*time.Second)
	time.Sleep(time.Second)
	l.capA.Close()
	l.capB.Close()
	// MN -> HA data (not signaling) per link, in [moved, released) and
	// after the first BA on B.
	var firstBA time.Time
	for _, p := range l.capB.Stats().ESP {
		if p.Out && p.DSMIP && !p.Time.Before(moved) {
			firstBA = p.Time
			break
		}
	}
	if firstBA.IsZero() || firstBA.Before(released) {
		t.Fatalf("first BA on access B at %v, hold released at %v: the hold did not work or no BA came", firstBA, released)
	}
	count := func(s netlab.Stats, from, to time.Time) (data, bus int) {
		for _, p := range s.ESP {
			if p.Out || p.Time.Before(from) || !to.IsZero() && !p.Time.Before(to) {
				continue
			}
			if p.Signaling() {
				bus++
			} else {
				data++
			}
		}
		return data, bus
	}
	dataA, _ := count(l.capA.Stats(), moved, firstBA)
	dataB, busB := count(l.capB.Stats(), moved, firstBA)
	afterA, _ := count(l.capA.Stats(), firstBA.Add(200*time.Millisecond), time.Time{})
	afterB, _ := count(l.capB.Stats(), firstBA, time.Time{})
	t.Logf("before the BA: %d data packets on A, %d on B, %d BUs on B; after: %d on A, %d on B", dataA, dataB, busB, afterA, afterB)
	if busB == 0 {
		t.Errorf("no BU left on access B after `mipsec mn move %v` (DR-3: the BU leaves from the new CoA)", mobCoA4)
	}
	if dataA < 100 {
		t.Errorf("%d MN data packets on access A between the move and the BA (%v); want the stream (every 10 ms) to stay on the old CoA", dataA, firstBA.Sub(moved))
	}
	if dataB != 0 {
		t.Errorf("%d MN data packets on access B before the BA; data must keep the old CoA until the BA (DR-3)", dataB)
	}
	if afterB == 0 || afterA != 0 {
		t.Errorf("after the BA: %d MN data packets on B, %d on A; want all on B", afterB, afterA)
	}
}

// TestMobilityDeregistration: SIGTERM on the MN sends a lifetime-0 BU; the
// HA removes the binding, the proxy ND entry and the route.
func TestMobilityDeregistration(t *testing.T) {
	l := newMobLab(t, mobOptions{})
	l.waitRegistered(mobCoA6, 15*time.Second)
	if proxy, route := l.homeLink(); !proxy || !route {
		t.Fatalf("registered: proxy ND %v, route %v; want both", proxy, route)
	}
	l.mn.stop(syscall.SIGTERM)
	l.waitUnbound(5*time.Second, "after the MN's SIGTERM (de-registration, RFC 6275 §11.5.4)")
	if proxy, route := l.homeLink(); proxy || route {
		t.Errorf("de-registered: proxy ND for %v %v, route into the TUN %v; want both gone", mobHoA, proxy, route)
	}
	if !strings.Contains(l.mn.Log.String(), "=== exit: <nil>") {
		t.Errorf("the MN did not exit cleanly:\n%s", l.mn.Log.String())
	}
}

// TestMobilityExpiry: the MN asks for a short lifetime and is killed
// (SIGKILL: no de-registration); the binding, the proxy entry and the route
// go when the lifetime ends.
func TestMobilityExpiry(t *testing.T) {
	const lifetime = 4 * time.Second
	l := newMobLab(t, mobOptions{mnSet: map[string]string{"mobility.lifetime": `"4s"`}})
	b := l.waitRegistered(mobCoA6, 15*time.Second)
	t.Logf("binding: %+v", b.Raw)
	l.mn.stop(syscall.SIGKILL)
	killed := time.Now()
	time.Sleep(lifetime / 4)
	if _, ok := l.binding(); !ok {
		t.Fatalf("the binding went %v after SIGKILL, before its lifetime (%v) ended", time.Since(killed), lifetime)
	}
	l.waitUnbound(lifetime+5*time.Second, "after the MN went silent")
	t.Logf("binding expired %v after the MN was killed", time.Since(killed).Round(100*time.Millisecond))
	if time.Since(killed) < lifetime-time.Second {
		t.Errorf("binding removed %v after the kill, before the %v lifetime", time.Since(killed), lifetime)
	}
	if proxy, route := l.homeLink(); proxy || route {
		t.Errorf("expired: proxy ND %v, route %v; want both gone", proxy, route)
	}
}

// isBUFromMN keeps BUs from the IPv6 CoA (Home Address option).
func isBUFromMN(f netlab.Frame) bool { return f.Kind == netlab.ESP && f.HAO && f.SPI == mobSPIBU }

// TestMobilityReplayedBU: a BU captured on the transit link and sent again
// is dropped by the HA's anti-replay check on SA1: the binding's sequence
// number stays, SA1's replay counter goes up.
func TestMobilityReplayedBU(t *testing.T) {
	l := newMobLab(t, mobOptions{keepT: isBUFromMN})
	b := l.waitRegistered(mobCoA6, 15*time.Second)
	kept := l.capT.Kept()
	var bu *netlab.KeptFrame
	for i := range kept {
		if !kept[i].Out {
			bu = &kept[i]
		}
	}
	if bu == nil {
		t.Fatalf("no BU (SPI 0x%08x with a Home Address option) captured on the HA's transit link: %s", mobSPIBU, l.capT.Stats().Summary())
	}
	before := saDrop(stats(t, l.ha), mobSPIBU, "replay")
	// From the router, as it crossed the transit link.
	if err := netlab.SendFrame(l.RT, netlab.MobDevRTTransit, rewriteEther(t, l, bu.Data)); err != nil {
		t.Fatal(err)
	}
	if err := netlab.Poll(context.Background(), 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		n := saDrop(stats(t, l.ha), mobSPIBU, "replay")
		return n > before, fmt.Sprintf("SA1 (0x%08x) replay drops %d, was %d", mobSPIBU, n, before)
	}); err != nil {
		t.Fatalf("the replayed BU: %v", err)
	}
	after, ok := l.binding()
	if !ok || after.Seq != b.Seq {
		t.Errorf("after the replayed BU: binding %+v (seq %d), want seq %d unchanged", after.CoAs, after.Seq, b.Seq)
	}
}

// rewriteEther gives a frame captured on the HA's side of the transit link
// the addresses it had: from the router's transit interface to the HA's.
func rewriteEther(t *testing.T, l *mobLab, f []byte) []byte {
	t.Helper()
	mac := func(ns, dev string) net.HardwareAddr {
		var hw net.HardwareAddr
		if err := netlab.InNetns(ns, func() error {
			ifi, err := net.InterfaceByName(dev)
			if err == nil {
				hw = ifi.HardwareAddr
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return hw
	}
	out := append([]byte(nil), f...)
	copy(out[0:6], mac(l.HA, netlab.MobDevHATransit))
	copy(out[6:12], mac(l.RT, netlab.MobDevRTTransit))
	return out
}

// TestMobilityStaleSeqBU: the first BU is held back on the router (the
// HA never sees it) and kept; the MN registers with a retransmission;
// then the held BU, valid ESP the HA has not seen, is sent: its sequence
// number is not newer than the binding's, so the HA answers status 135
// (RFC 6275 §9.5.1, §11.7.1) and keeps the binding.
func TestMobilityStaleSeqBU(t *testing.T) {
	l := newMobLab(t, mobOptions{noMN: true, pcap: true, keepA: isBUFromMN, keepT: func(f netlab.Frame) bool { return f.Kind == netlab.ESP && f.RH2 }})
	ctx := context.Background()
	if err := netlab.NFT(ctx, l.RT, "table ip6 hold {\n\tchain hold_forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tip6 saddr "+
		mobCoA6.String()+" drop\n\t}\n}\n"); err != nil {
		t.Fatal(err)
	}
	l.mn.start()
	var held []byte
	if err := netlab.Poll(ctx, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		for _, f := range l.capA.Kept() {
			if !f.Out {
				held = f.Data[14:]
				return true, ""
			}
		}
		return false, "no BU from the MN on access A"
	}); err != nil {
		t.Fatal(err)
	}
	if err := netlab.NFT(ctx, l.RT, "delete table ip6 hold\n"); err != nil {
		t.Fatal(err)
	}
	b := l.waitRegistered(mobCoA6, 15*time.Second)
	time.Sleep(300 * time.Millisecond)
	bas := len(l.capT.Kept())
	if err := netlab.SendIP(l.RT, held); err != nil {
		t.Fatal(err)
	}
	// A BA (to the CoA, with a type 2 Routing header) answers it.
	if err := netlab.Poll(ctx, 3*time.Second, 50*time.Millisecond, func() (bool, string) {
		return len(l.capT.Kept()) > bas, fmt.Sprintf("%d BAs on the transit link, as before the stale BU", bas)
	}); err != nil {
		t.Errorf("no BA answered the stale BU (RFC 6275 §9.5.1: status 135): %v", err)
	}
	after, ok := l.binding()
	if !ok || after.Seq != b.Seq {
		t.Errorf("after the stale BU: binding %+v seq %d, want seq %d unchanged", after.CoAs, after.Seq, b.Seq)
	}
	// The MN takes the 135 BA as a resync or ignores it; it stays
	// registered either way.
	l.waitRegistered(mobCoA6, 5*time.Second)
	st, err := l.mnStatus()
	t.Logf("mn status after the stale BU: last BA status %v (%v)", st.Raw["last_ba_status"], err)
	// The status itself, decrypted by tshark with the HA's SAs.
	l.capT.Close()
	msgs, out := tsharkMIP6(t, l)
	n135 := 0
	for _, m := range msgs {
		if m.mhType == "6" && m.status == "135" {
			n135++
		}
	}
	if n135 != 1 {
		t.Errorf("tshark finds %d BAs with status 135 on the transit link, want 1 (the answer to the stale BU):\n%s", n135, out)
	}
}

// TestMobilityForeignHoA: a second mobile node that holds MN 1's SA1 keys
// (its config is MN 1's with another home address, its state directory
// MN 1's, so its ESP sequence numbers are fresh) sends a BU for its own
// home address on MN 1's SA1: the HA drops it (the SA's selectors name MN
// 1's home address, DR-7) and creates no binding; MN 1's binding stays.
func TestMobilityForeignHoA(t *testing.T) {
	const otherHoA = "2001:db8:1::200"
	l := newMobLab(t, mobOptions{})
	b := l.waitRegistered(mobCoA6, 15*time.Second)
	l.mn.stop(syscall.SIGKILL) // binding stays
	before := stats(t, l.ha)
	// The impostor: MN 1's config and state, another home address.
	cfg, err := os.ReadFile(l.mnPath)
	if err != nil {
		t.Fatal(err)
	}
	evil := strings.ReplaceAll(string(cfg), mobHoA.String(), otherHoA)
	evil = strings.ReplaceAll(evil, mobHoA4.String(), "192.0.2.200")
	evilPath := filepath.Join(l.dir, "mn-evil.toml")
	if err := os.WriteFile(evilPath, []byte(evil), 0o600); err != nil {
		t.Fatal(err)
	}
	g := newGatewayFile(t, "MN2", l.MN, evilPath, l.mn.cfg)
	g.start()
	time.Sleep(3 * time.Second)
	bs, err := l.bindings()
	if err != nil {
		t.Fatal(err)
	}
	if x, ok := netlab.FindBinding(bs, netip.MustParseAddr(otherHoA)); ok {
		t.Errorf("the HA bound %s, a home address MN 1's SA1 does not cover: %+v", otherHoA, x.CoAs)
	}
	if x, ok := netlab.FindBinding(bs, mobHoA); !ok || x.Seq != b.Seq {
		t.Errorf("MN 1's binding after the impostor's BUs: %+v (present %v), want seq %d unchanged", x, ok, b.Seq)
	}
	after := stats(t, l.ha)
	sel0, sel1 := saDrop(before, mobSPIBU, "selector"), saDrop(after, mobSPIBU, "selector")
	_, hb := haRejects(before)
	_, ha := haRejects(after)
	t.Logf("SA1 selector drops %d -> %d, HA rejections %d -> %d", sel0, sel1, hb, ha)
	if sel1 <= sel0 && ha <= hb {
		t.Errorf("the impostor's BUs were not counted: SA1 selector drops %d -> %d, HA rejections %d -> %d", sel0, sel1, hb, ha)
	}
}

// haRejects sums the HA's BU rejection counters in a stats answer (any
// object named like bu_rejected), by path.
func haRejects(st map[string]any) (map[string]uint64, uint64) {
	m := map[string]uint64{}
	var total uint64
	var walk func(path string, v any, in bool)
	walk = func(path string, v any, in bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				n := strings.ToLower(strings.ReplaceAll(k, "_", ""))
				walk(path+"."+k, x, in || strings.Contains(n, "burejected") || strings.Contains(n, "rejected"))
			}
		case float64:
			if in {
				m[path] = uint64(v)
				total += uint64(v)
			}
		}
	}
	walk("", st, false)
	return m, total
}

// TestMobilityDR9: ESP with the MN's data SPI from an address that is not
// its care-of address (garbage: it does not authenticate), raw and in UDP
// 4500, moves nothing: the binding keeps its CoA, and SA7 counts the
// packets as ICV failures (DR-9: only an accepted BU changes the binding).
func TestMobilityDR9(t *testing.T) {
	l := newMobLab(t, mobOptions{})
	b := l.waitRegistered(mobCoA6, 15*time.Second)
	before := stats(t, l.ha)
	esp := make([]byte, 8+16+64)
	binary.BigEndian.PutUint32(esp, mobSPIData7)
	binary.BigEndian.PutUint32(esp[4:], 0x00100000) // a high sequence number
	for i := 8; i < len(esp); i++ {
		esp[i] = byte(i * 7)
	}
	if err := netlab.InNetns(l.RT, func() error {
		c, err := net.ListenPacket("ip6:50", netlab.MobTransitRT6.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < 5; i++ {
			esp[7] = byte(i)
			if _, err := c.WriteTo(esp, &net.IPAddr{IP: netlab.MobHAAddr.AsSlice()}); err != nil {
				return err
			}
		}
		u, err := net.ListenPacket("udp4", netlab.MobTransitRT4.Addr().String()+":40500")
		if err != nil {
			return err
		}
		defer u.Close()
		for i := 0; i < 5; i++ {
			esp[7] = byte(16 + i)
			if _, err := u.WriteTo(esp, &net.UDPAddr{IP: netlab.MobHAV4.AsSlice(), Port: 4500}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var after map[string]any
	if err := netlab.Poll(context.Background(), 3*time.Second, 100*time.Millisecond, func() (bool, string) {
		after = stats(t, l.ha)
		n0, n1 := saDrop(before, mobSPIData7, "icv"), saDrop(after, mobSPIData7, "icv")
		return n1 >= n0+10, fmt.Sprintf("SA7 (0x%08x) ICV drops %d -> %d, want +10", mobSPIData7, n0, n1)
	}); err != nil {
		t.Error(err)
	}
	x, ok := l.binding()
	p, _ := x.Primary()
	if !ok || p.Addr != mobCoA6 || x.Seq != b.Seq || p.Endpoint.IsValid() {
		t.Errorf("after unauthenticated ESP from %v and %v: binding %+v seq %d; want %v, seq %d, unchanged (DR-9)",
			netlab.MobTransitRT6.Addr(), netlab.MobTransitRT4.Addr(), x.CoAs, x.Seq, mobCoA6, b.Seq)
	}
	mustPing(t, l.CN, mobCN6, mobHoA, 2)
}

// TestMobilityGarbage4191: garbage datagrams to the HA's UDP port 4191
// (random bytes; a cleartext IPv6 Mobility Header with no ESP) are dropped
// and counted; the binding does not change.
func TestMobilityGarbage4191(t *testing.T) {
	l := newMobLab(t, mobOptions{})
	b := l.waitRegistered(mobCoA6, 15*time.Second)
	// A cleartext BU: IPv6 (HoA -> HA), MH type 5, as if not protected.
	clear := make([]byte, 40+16)
	clear[0] = 0x60
	clear[5] = 16
	clear[6], clear[7] = 135, 64
	copy(clear[8:24], mobHoA.AsSlice())
	copy(clear[24:40], netlab.MobHAAddr.AsSlice())
	clear[40], clear[41], clear[42] = 59, 1, 5
	// counter: the `mipsec stats --json` counter that must rise by
	// exactly one (the underlay refuses what is not a whole IPv4/IPv6
	// packet, RFC 5555 §4.1); empty: any drop counter (the dataplane's).
	payloads := []struct {
		name    string
		b       []byte
		counter string
	}{
		{"7 bytes of text", []byte("garbage"), "underlay.rx_ip_malformed"},
		{"one 0xff byte (a NAT keepalive on the wrong port)", []byte{0xff}, "underlay.rx_ip_malformed"},
		{"3 zero bytes", make([]byte, 3), "underlay.rx_ip_malformed"},
		{"a cleartext IPv6 BU (no ESP)", clear, ""},
		{"an IPv6 header and zeros", append([]byte{0x60}, make([]byte, 100)...), ""},
	}
	u, err := func() (c net.PacketConn, err error) {
		err = netlab.InNetns(l.RT, func() error {
			c, err = net.ListenPacket("udp4", netlab.MobTransitRT4.Addr().String()+":40191")
			return err
		})
		return c, err
	}()
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, p := range payloads {
		st0 := stats(t, l.ha)
		before, _ := dataplaneDrops(st0)
		c0, ok := statCounter(st0, p.counter)
		if p.counter != "" && !ok {
			t.Fatalf("no counter %s in mipsec stats --json: %v", p.counter, st0)
		}
		if _, err := u.WriteTo(p.b, &net.UDPAddr{IP: netlab.MobHAV4.AsSlice(), Port: netlab.DSMIPPort}); err != nil {
			t.Fatal(err)
		}
		var by map[string]uint64
		if err := netlab.Poll(context.Background(), 2*time.Second, 50*time.Millisecond, func() (bool, string) {
			st := stats(t, l.ha)
			var after uint64
			after, by = dataplaneDrops(st)
			if p.counter != "" {
				c, _ := statCounter(st, p.counter)
				return c > c0, fmt.Sprintf("%s still %d (drops %v)", p.counter, c, by)
			}
			return after > before, fmt.Sprintf("dataplane/underlay drop counters still %d: %v", after, by)
		}); err != nil {
			t.Errorf("%s in UDP 4191 not counted as a drop: %v", p.name, err)
			continue
		}
		if p.counter != "" {
			time.Sleep(100 * time.Millisecond)
			if c, _ := statCounter(stats(t, l.ha), p.counter); c != c0+1 {
				t.Errorf("%s: %s went %d -> %d, want +1", p.name, p.counter, c0, c)
			}
		}
	}
	_, by := dataplaneDrops(stats(t, l.ha))
	t.Logf("drops: %v", by)
	if x, ok := l.binding(); !ok || x.Seq != b.Seq {
		t.Errorf("binding after the garbage: %+v, want seq %d unchanged", x, b.Seq)
	}
}
