package node_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
	"github.com/mipsec/mipsec/underlay"
)

// The tests below play the IKE daemon: they call the Kernel methods of
// two nodes joined by an in-memory underlay with matching Child SAs (A's
// inbound SA is B's outbound one, same keys) and check what flows through
// the TUNs.

var (
	outerA = netip.MustParseAddr("198.51.100.1")
	outerB = netip.MustParseAddr("203.0.113.1")
	siteA  = netip.MustParsePrefix("192.0.2.0/25")
	siteB  = netip.MustParsePrefix("192.0.2.128/25")
)

type ikeSide struct {
	n     *node.Node
	k     ike.Kernel
	tun   *tuntest.TUN
	ul    *underlaytest.Underlay
	state string
}

func newIKEPair(t *testing.T) (a, b *ikeSide) {
	t.Helper()
	ua, ub := underlaytest.NewPair(endpoint.Endpoint{Addr: netip.AddrPortFrom(outerA, 0)}, endpoint.Endpoint{Addr: netip.AddrPortFrom(outerB, 0)})
	mk := func(name string, ul *underlaytest.Underlay) *ikeSide {
		s := &ikeSide{tun: tuntest.New(1, 64), ul: ul, state: t.TempDir()}
		n, err := node.New(node.Config{StateDir: s.state, Device: s.tun, Conn: ul, Workers: 2,
			Logger: zaptest.NewLogger(t).Named(name)})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			n.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		s.n, s.k = n, n.Kernel()
		return s
	}
	return mk("A", ua), mk("B", ub)
}

func prefixTS(p netip.Prefix) ike.TrafficSelector {
	r := sad.PrefixRange(p)
	return ike.TrafficSelector{Type: ike.TS_IPV4_ADDR_RANGE, Start: r.From, End: r.To, EndPort: 0xffff}
}

type suite struct {
	name    string
	encr    ike.EncrAlg
	keyBits int
	integ   ike.IntegAlg
}

var ikeSuites = []suite{
	{"aes128gcm16", ike.EncrAESGCM16, 128, ike.IntegNone},
	{"aes128-sha256", ike.EncrAESCBC, 128, ike.IntegHMACSHA2_256_128},
}

func randomKeys(t *testing.T, s suite) ike.SAKeys {
	t.Helper()
	alg, err := esp.ParseAlgorithm(s.name)
	if err != nil {
		t.Fatal(err)
	}
	k := ike.SAKeys{Enc: make([]byte, alg.EncKeyLen()), Integ: make([]byte, alg.AuthKeyLen())}
	rand.Read(k.Enc)
	rand.Read(k.Integ)
	return k
}

// childPair returns matching children for A and B, with SPIs allocated by
// each side's Kernel for its inbound SA.
func childPair(t *testing.T, a, b *ikeSide, s suite, id uint32, replacesA, replacesB uint32) (ca, cb *ike.ChildSA) {
	t.Helper()
	inA, err := a.k.AllocSPI()
	if err != nil {
		t.Fatal(err)
	}
	inB, err := b.k.AllocSPI()
	if err != nil {
		t.Fatal(err)
	}
	kAB, kBA := randomKeys(t, s), randomKeys(t, s)
	base := ike.ChildSA{Name: "net", ID: id, PolicyName: "net", Encr: s.encr, KeyBits: s.keyBits, Integ: s.integ}
	ca, cb = new(ike.ChildSA), new(ike.ChildSA)
	*ca, *cb = base, base
	ca.Peer, cb.Peer = "gw-b", "gw-a"
	ca.Replaces, cb.Replaces = replacesA, replacesB
	ca.Endpoint = ike.Endpoint{Local: netip.AddrPortFrom(outerA, 500), Remote: netip.AddrPortFrom(outerB, 500)}
	cb.Endpoint = ike.Endpoint{Local: netip.AddrPortFrom(outerB, 500), Remote: netip.AddrPortFrom(outerA, 500)}
	ca.InSPI, ca.OutSPI, cb.InSPI, cb.OutSPI = inA, inB, inB, inA
	ca.InKeys, ca.OutKeys, cb.InKeys, cb.OutKeys = kBA, kAB, kAB, kBA
	ca.LocalTS, ca.RemoteTS = []ike.TrafficSelector{prefixTS(siteA)}, []ike.TrafficSelector{prefixTS(siteB)}
	cb.LocalTS, cb.RemoteTS = ca.RemoteTS, ca.LocalTS
	return ca, cb
}

// install is the daemon's make-before-break order (ike/kernel.go): both
// inbound SAs, then both outbound ones.
func install(t *testing.T, a, b *ikeSide, ca, cb *ike.ChildSA) {
	t.Helper()
	for _, step := range []func() error{
		func() error { return a.k.AddInbound(ca) },
		func() error { return b.k.AddInbound(cb) },
		func() error { return a.k.AddOutbound(ca) },
		func() error { return b.k.AddOutbound(cb) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

var pingSeq uint16

// ping sends one packet from's site to the other and waits for it on the
// other TUN; it reports whether it arrived within wait.
func ping(t *testing.T, from, to *ikeSide, aToB bool, wait time.Duration) bool {
	t.Helper()
	pingSeq++
	src, dst := hostA, hostB
	if !aToB {
		src, dst = hostB, hostA
	}
	p := icmpEcho(src, dst, 200, pingSeq)
	from.tun.Outbound <- p
	deadline := time.After(wait)
	for {
		select {
		case got := <-to.tun.Inbound:
			if bytes.Equal(got, p) {
				return true
			}
			t.Logf("stray packet %x", got[:min(len(got), 28)])
		case <-deadline:
			return false
		}
	}
}

func pingBoth(t *testing.T, a, b *ikeSide, what string) {
	t.Helper()
	if !ping(t, a, b, true, 5*time.Second) {
		t.Fatalf("%s: A to B not delivered; A %+v", what, a.n.Stats().Drops)
	}
	if !ping(t, b, a, false, 5*time.Second) {
		t.Fatalf("%s: B to A not delivered; B %+v", what, b.n.Stats().Drops)
	}
}

func dropCount(n *node.Node) (total uint64) {
	for _, v := range n.Stats().Drops {
		total += v
	}
	return total
}

// sentSPIs are the SPIs of the ESP packets ul recorded.
func sentSPIs(ul *underlaytest.Underlay) []uint32 {
	var out []uint32
	for _, m := range ul.Sent() {
		out = append(out, binary.BigEndian.Uint32(m.Data))
	}
	return out
}

// TestIKEKernelTraffic: a child pair installed through the Kernel carries
// traffic both ways; a rekey (new pair with Replaces, inbound SAs first,
// then outbound) moves the traffic to the new SPIs with no drop; the old
// SAs are then deleted; deleting the outbound SA stops the traffic as a
// no-SA drop, and deleting the policies as a policy drop.
func TestIKEKernelTraffic(t *testing.T) {
	for _, s := range ikeSuites {
		t.Run(s.name, func(t *testing.T) {
			a, b := newIKEPair(t)
			ca, cb := childPair(t, a, b, s, 1, 0, 0)
			install(t, a, b, ca, cb)
			a.ul.Record(true)
			pingBoth(t, a, b, "installed")
			if got := sentSPIs(a.ul); !slices.Equal(got, []uint32{ca.OutSPI}) {
				t.Errorf("A sent SPIs %x, want %x", got, ca.OutSPI)
			}
			// What the node shows of it.
			if ps := a.n.Peers(); len(ps) != 1 || ps[0].Name != "gw-b" || ps[0].Endpoint != (endpoint.Endpoint{Addr: netip.AddrPortFrom(outerB, 0)}) {
				t.Errorf("A's peers %+v", ps)
			}
			names := func(n *node.Node, dir sad.Direction) []string {
				var out []string
				for _, p := range n.Policies(dir) {
					out = append(out, p.Name)
				}
				return out
			}
			if o, i := names(a.n, sad.Outbound), names(a.n, sad.Inbound); !slices.Equal(o, []string{"net#0"}) || !slices.Equal(i, []string{"net#in0"}) {
				t.Errorf("A's policies out %v in %v", o, i)
			}
			if enc, _, ok := a.n.SAKeys(sad.Outbound, ca.OutSPI); !ok || !bytes.Equal(enc, ca.OutKeys.Enc) {
				t.Errorf("SAKeys of A's outbound SA: %x %v", enc, ok)
			}
			sa := a.n.SAD().Inbound(ca.InSPI)
			if sa == nil || sa.Name() != "net{1}" || !slices.Equal(sa.Selectors(), []sad.Selector{{Local: sad.PrefixRange(siteA), Remote: sad.PrefixRange(siteB)}}) {
				t.Fatalf("A's inbound SA %v", sa)
			}
			if p := sa.Params(); p.Mode != esp.Tunnel || p.TunnelSrc != outerB || p.TunnelDst != outerA || p.Algorithm.String() != s.name {
				t.Errorf("A's inbound SA params %+v", p)
			}

			// Rekey, the traffic flowing at every step.
			drops := dropCount(a.n) + dropCount(b.n)
			ra, rb := childPair(t, a, b, s, 2, ca.OutSPI, cb.OutSPI)
			steps := []struct {
				what string
				do   func() error
			}{
				{"A inbound", func() error { return a.k.AddInbound(ra) }},
				{"B inbound", func() error { return b.k.AddInbound(rb) }},
				{"A outbound", func() error { return a.k.AddOutbound(ra) }},
				{"B outbound", func() error { return b.k.AddOutbound(rb) }},
			}
			// A stream from A to B runs through the steps, each packet
			// waited for: the policy switch loses none.
			stop, lost := make(chan struct{}), make(chan int, 1)
			go func() {
				missing := 0
				for seq := uint16(40000); ; seq++ {
					select {
					case <-stop:
						lost <- missing
						return
					default:
					}
					p := icmpEcho(hostA, hostB, 120, seq)
					a.tun.Outbound <- p
					select {
					case got := <-b.tun.Inbound:
						if !bytes.Equal(got, p) {
							missing++
						}
					case <-time.After(2 * time.Second):
						missing++
					}
				}
			}()
			for _, st := range steps {
				time.Sleep(20 * time.Millisecond)
				if err := st.do(); err != nil {
					t.Fatalf("%s: %v", st.what, err)
				}
			}
			time.Sleep(20 * time.Millisecond)
			close(stop)
			if m := <-lost; m != 0 {
				t.Errorf("%d packets of the stream lost during the rekey", m)
			}
			pingBoth(t, a, b, "rekey: new SAs in use")
			if got := sentSPIs(a.ul); got[len(got)-1] != ra.OutSPI {
				t.Errorf("after the rekey A sends on %x, want %x", got, ra.OutSPI)
			}
			for _, step := range []func() error{
				func() error { return a.k.DelSA(true, ca.InSPI) }, func() error { return a.k.DelSA(false, ca.OutSPI) },
				func() error { return b.k.DelSA(true, cb.InSPI) }, func() error { return b.k.DelSA(false, cb.OutSPI) },
			} {
				if err := step(); err != nil {
					t.Fatal(err)
				}
			}
			pingBoth(t, a, b, "rekey: old SAs deleted")
			if d := dropCount(a.n) + dropCount(b.n); d != drops {
				t.Errorf("the rekey dropped %d packets: A %v B %v", d-drops, a.n.Stats().Drops, b.n.Stats().Drops)
			}
			if a.n.SAD().Inbound(ca.InSPI) != nil || a.n.SAD().Outbound(ca.OutSPI) != nil || len(a.n.SAs()) != 2 {
				t.Errorf("A's SAs after the rekey: %v", a.n.SAs())
			}
			if ps := a.n.Peers(); len(ps) != 1 {
				t.Errorf("A's peers after the rekey: %+v", ps)
			}
			if pol := a.n.Policies(sad.Outbound); len(pol) != 1 || pol[0].SPI != ra.OutSPI {
				t.Errorf("A's outbound policies after the rekey: %+v", pol)
			}
			// Deleting twice is no error.
			if err := a.k.DelSA(true, ca.InSPI); err != nil {
				t.Errorf("second DelSA: %v", err)
			}

			// The child goes: no SA, then no policy.
			if err := a.k.DelSA(false, ra.OutSPI); err != nil {
				t.Fatal(err)
			}
			noSA := a.n.Stats().Drops["no_sa"]
			if ping(t, a, b, true, 300*time.Millisecond) {
				t.Fatal("delivered without an outbound SA")
			}
			eventually(t, "a no-SA drop", func() bool { return a.n.Stats().Drops["no_sa"] == noSA+1 })
			if err := a.k.DelPolicies("net"); err != nil {
				t.Fatal(err)
			}
			if n := len(a.n.Policies(sad.Outbound)) + len(a.n.Policies(sad.Inbound)); n != 0 {
				t.Errorf("%d policies left", n)
			}
			discard := a.n.Stats().Drops["policy_discard"]
			if ping(t, a, b, true, 300*time.Millisecond) {
				t.Fatal("delivered without a policy")
			}
			eventually(t, "a policy drop", func() bool { return a.n.Stats().Drops["policy_discard"] == discard+1 })
			if err := a.k.DelPolicies("net"); err != nil {
				t.Errorf("second DelPolicies: %v", err)
			}
			// B's inbound SA from A still opens (A's inbound side too).
			if !ping(t, b, a, false, 5*time.Second) {
				t.Error("B to A stopped with A's outbound child")
			}
		})
	}
}

// TestIKEKernelSetEndpoint: SetEndpoint moves the peer's ESP into UDP
// (NAT-T, RFC 3948) and back, and later SAs of the peer keep it.
func TestIKEKernelSetEndpoint(t *testing.T) {
	a, b := newIKEPair(t)
	ca, cb := childPair(t, a, b, ikeSuites[0], 1, 0, 0)
	install(t, a, b, ca, cb)
	pingBoth(t, a, b, "raw")
	udpB := endpoint.Endpoint{Addr: netip.AddrPortFrom(outerB, 4500), Encap: endpoint.EncapUDP}
	b.ul.SetLocal(udpB)
	if err := a.k.SetEndpoint("gw-b", ike.Endpoint{Local: netip.AddrPortFrom(outerA, 4500), Remote: udpB.Addr, Encap: true}); err != nil {
		t.Fatal(err)
	}
	if ps := a.n.Peers(); len(ps) != 1 || ps[0].Endpoint != udpB {
		t.Fatalf("A's peers %+v", ps)
	}
	a.ul.Record(true)
	pingBoth(t, a, b, "udp")
	for _, m := range a.ul.Sent() {
		if m.Dst != udpB {
			t.Errorf("A sent to %v, want %v", m.Dst, udpB)
		}
	}
	// Hostile endpoints are refused and change nothing; an unknown peer
	// is nothing to move.
	for _, ep := range []ike.Endpoint{{}, {Remote: netip.AddrPortFrom(outerB, 0), Encap: true}, {Remote: netip.MustParseAddrPort("0.0.0.0:4500"), Encap: true}} {
		if err := a.k.SetEndpoint("gw-b", ep); err == nil {
			t.Errorf("SetEndpoint %+v accepted", ep)
		}
	}
	if err := a.k.SetEndpoint("nobody", ike.Endpoint{Remote: udpB.Addr}); err != nil {
		t.Errorf("SetEndpoint of an unknown peer: %v", err)
	}
	if ps := a.n.Peers(); len(ps) != 1 || ps[0].Endpoint != udpB {
		t.Fatalf("A's peers after refused endpoints: %+v", ps)
	}
	b.ul.SetLocal(endpoint.Endpoint{Addr: netip.AddrPortFrom(outerB, 0)})
	if err := a.k.SetEndpoint("gw-b", ike.Endpoint{Remote: netip.AddrPortFrom(outerB, 500)}); err != nil {
		t.Fatal(err)
	}
	pingBoth(t, a, b, "raw again")
}

// TestIKEKernelFollow: an IKE peer's ESP in UDP follows the source of
// authenticated packets only where the daemon says a NAT is in front of
// the peer (ike.Endpoint.Follow, RFC 7296 §2.23).
func TestIKEKernelFollow(t *testing.T) {
	a, b := newIKEPair(t)
	ca, cb := childPair(t, a, b, ikeSuites[0], 1, 0, 0)
	install(t, a, b, ca, cb)
	udpB := endpoint.Endpoint{Addr: netip.AddrPortFrom(outerB, 4500), Encap: endpoint.EncapUDP}
	udpA := endpoint.Endpoint{Addr: netip.AddrPortFrom(outerA, 4500), Encap: endpoint.EncapUDP}
	a.ul.SetLocal(udpA)
	b.ul.SetLocal(udpB)
	for _, tt := range []struct {
		follow bool
		port   uint16
	}{{false, 4500}, {false, 40001}, {true, 40002}} {
		if err := a.k.SetEndpoint("gw-b", ike.Endpoint{Local: udpA.Addr, Remote: netip.AddrPortFrom(outerB, 4500), Encap: true, Follow: tt.follow}); err != nil {
			t.Fatal(err)
		}
		if err := b.k.SetEndpoint("gw-a", ike.Endpoint{Local: udpB.Addr, Remote: udpA.Addr, Encap: true}); err != nil {
			t.Fatal(err)
		}
		// B's packets now come from another port (a NAT's new mapping).
		from := endpoint.Endpoint{Addr: netip.AddrPortFrom(outerB, tt.port), Encap: endpoint.EncapUDP}
		b.ul.SetLocal(from)
		if !ping(t, b, a, false, 5*time.Second) {
			t.Fatalf("follow %v, B from port %d: not delivered; A %+v", tt.follow, tt.port, a.n.Stats().Drops)
		}
		want := udpB
		if tt.follow {
			want = from
		}
		var ps []dataplane.PeerStatus
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if ps = a.n.Peers(); len(ps) == 1 && ps[0].Endpoint == want || time.Now().After(deadline) {
				break
			}
		}
		if len(ps) != 1 || ps[0].Endpoint != want {
			t.Errorf("follow %v, B's ESP from %v: A's peer %+v, want endpoint %v", tt.follow, from, ps, want)
		}
	}
}

// TestIKEKernelSPIs: AllocSPI never returns a reserved SPI, one in use or
// one it holds; a held SPI is no manual SA's, and an inbound SA of an SPI
// in use is refused; ReleaseSPI frees it.
func TestIKEKernelSPIs(t *testing.T) {
	a, _ := newIKEPair(t)
	manual := sad.Config{Name: "manual", Dir: sad.Inbound, Selectors: []sad.Selector{{}},
		Params: esp.Params{SPI: 0x1001, Algorithm: esp.AES128GCM16, EncKey: make([]byte, 20), Mode: esp.Transport}}
	manual.Params.EncKey[0] = 1
	if err := a.n.AddSA(manual); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for range 2000 {
		spi, err := a.k.AllocSPI()
		if err != nil {
			t.Fatal(err)
		}
		if spi < 256 || seen[spi] || spi == 0x1001 {
			t.Fatalf("AllocSPI returned %#x (seen %v)", spi, seen[spi])
		}
		seen[spi] = true
	}
	var held uint32
	for spi := range seen {
		held = spi
		break
	}
	m := manual
	m.Params.SPI = held
	m.Params.EncKey = slices.Clone(manual.Params.EncKey)
	m.Params.EncKey[1] = 2
	if err := a.n.AddSA(m); !errors.Is(err, sad.ErrDuplicateSPI) {
		t.Errorf("manual SA with a held SPI: %v", err)
	}
	a.k.ReleaseSPI(held)
	if err := a.n.AddSA(m); err != nil {
		t.Errorf("manual SA with a released SPI: %v", err)
	}
	// An inbound child on an SPI in use (manual, or never allocated but
	// taken) is refused; nothing is installed.
	s := ikeSuites[0]
	c := &ike.ChildSA{Name: "x", Peer: "p", PolicyName: "x", Encr: s.encr, KeyBits: s.keyBits, InSPI: 0x1001, OutSPI: 0x2002,
		InKeys: ike.SAKeys{Enc: make([]byte, 20)}, Endpoint: ike.Endpoint{Remote: netip.AddrPortFrom(outerB, 500)},
		LocalTS: []ike.TrafficSelector{prefixTS(siteA)}, RemoteTS: []ike.TrafficSelector{prefixTS(siteB)}}
	before := len(a.n.SAs())
	if err := a.k.AddInbound(c); !errors.Is(err, sad.ErrDuplicateSPI) {
		t.Errorf("AddInbound on a manual SA's SPI: %v", err)
	}
	if len(a.n.SAs()) != before || len(a.n.Peers()) != 0 || len(a.n.Policies(sad.Inbound)) != 0 {
		t.Errorf("a refused AddInbound left SAs %d (was %d), peers %v, policies %v", len(a.n.SAs()), before, a.n.Peers(), a.n.Policies(sad.Inbound))
	}
}

// TestIKEKernelRefuses: children the node cannot install are refused with
// nothing left behind.
func TestIKEKernelRefuses(t *testing.T) {
	a, b := newIKEPair(t)
	good, _ := childPair(t, a, b, ikeSuites[0], 1, 0, 0)
	v6 := ike.TrafficSelector{Type: ike.TS_IPV6_ADDR_RANGE, Start: netip.MustParseAddr("2001:db8::"), End: netip.MustParseAddr("2001:db8::ffff"), EndPort: 0xffff}
	for _, tc := range []struct {
		what string
		mod  func(c *ike.ChildSA)
	}{
		{"an ESP transform esp lacks", func(c *ike.ChildSA) { c.Encr, c.Integ = ike.EncrAESCBC, ike.IntegNone }},
		{"a GCM key of the wrong length", func(c *ike.ChildSA) { c.InKeys.Enc = c.InKeys.Enc[:10] }},
		{"selectors of two families", func(c *ike.ChildSA) { c.RemoteTS = []ike.TrafficSelector{v6} }},
		{"selectors of two protocols", func(c *ike.ChildSA) {
			c.LocalTS = []ike.TrafficSelector{prefixTS(siteA)}
			c.LocalTS[0].Protocol = 6
			c.RemoteTS = []ike.TrafficSelector{prefixTS(siteB)}
			c.RemoteTS[0].Protocol = 17
		}},
		{"a backwards address range", func(c *ike.ChildSA) {
			c.LocalTS = []ike.TrafficSelector{{Start: hostB, End: hostA}}
		}},
		{"no selectors", func(c *ike.ChildSA) { c.LocalTS = nil }},
		{"UDP without a port", func(c *ike.ChildSA) { c.Endpoint = ike.Endpoint{Remote: netip.AddrPortFrom(outerB, 0), Encap: true} }},
		{"no remote address", func(c *ike.ChildSA) { c.Endpoint = ike.Endpoint{} }},
		{"no peer", func(c *ike.ChildSA) { c.Peer = "" }},
		{"a reserved SPI", func(c *ike.ChildSA) { c.InSPI = 255 }},
	} {
		c := *good
		c.InKeys.Enc = slices.Clone(good.InKeys.Enc)
		tc.mod(&c)
		if err := a.k.AddInbound(&c); err == nil {
			t.Errorf("%s: accepted", tc.what)
		}
		if n := len(a.n.SAs()) + len(a.n.Peers()) + len(a.n.Policies(sad.Inbound)); n != 0 {
			t.Fatalf("%s: left %d SAs, peers or policies", tc.what, n)
		}
	}
	// The allocated SPI was not consumed by the failures.
	if err := a.k.AddInbound(good); err != nil {
		t.Errorf("the good child after the refusals: %v", err)
	}
	// A manual change of an IKE SA is refused; a manual delete goes.
	if err := a.n.UpdateSA(sad.Config{Dir: sad.Inbound, Params: esp.Params{SPI: good.InSPI}}); err == nil {
		t.Error("UpdateSA of an IKE SA accepted")
	}
	if err := a.n.DelSA(sad.Inbound, good.InSPI); err != nil || len(a.n.SAs()) != 0 || len(a.n.Peers()) != 0 {
		t.Errorf("DelSA of an IKE SA: %v, SAs %v, peers %v", err, a.n.SAs(), a.n.Peers())
	}
}

// TestIKEKernelStateDir: IKE-made SAs start at sequence number 0 with
// fresh keys (RFC 7296 §2.17) and leave nothing in the state directory,
// and the key-sharing bookkeeping does not know them.
func TestIKEKernelStateDir(t *testing.T) {
	a, b := newIKEPair(t)
	list := func() []string {
		var out []string
		filepath.WalkDir(a.state, func(p string, _ os.DirEntry, _ error) error {
			out = append(out, p)
			return nil
		})
		return out
	}
	before := list()
	ca, cb := childPair(t, a, b, ikeSuites[1], 1, 0, 0)
	install(t, a, b, ca, cb)
	a.ul.Record(true)
	pingBoth(t, a, b, "installed")
	if sent := a.ul.Sent(); len(sent) != 1 || binary.BigEndian.Uint32(sent[0].Data[4:]) != 1 {
		t.Errorf("A's first ESP packet: %v, want sequence number 1", sent)
	}
	a.n.Res().Tick()
	for _, st := range a.n.Stats().SAs {
		if st.Reserved != 0 {
			t.Errorf("IKE SA %x has a reservation %d", st.SPI, st.Reserved)
		}
	}
	p := a.n.SAD().Outbound(ca.OutSPI).Params()
	p.EncKey, p.AuthKey = ca.OutKeys.Enc, ca.OutKeys.Integ
	if h := a.n.KeyHolders(node.KeyFingerprint(p)); len(h) != 0 {
		t.Errorf("key holders of an IKE key: %v", h)
	}
	if err := a.k.DelSA(false, ca.OutSPI); err != nil {
		t.Fatal(err)
	}
	a.n.Close()
	if after := list(); !slices.Equal(before, after) {
		t.Errorf("state dir before %v, after %v", before, after)
	}
}

// TestIKEKernelExpired: the lifetime events of IKE-made SAs go to the
// daemon (soft: rekey, hard: gone), and a hard-expired SA leaves the peer.
func TestIKEKernelExpired(t *testing.T) {
	a, b := newIKEPair(t)
	type ev struct {
		inbound bool
		spi     uint32
		hard    bool
	}
	var mu sync.Mutex
	var got []ev
	a.n.SetIKEExpirer(func(inbound bool, spi uint32, hard bool) {
		mu.Lock()
		got = append(got, ev{inbound, spi, hard})
		mu.Unlock()
	})
	ca, cb := childPair(t, a, b, ikeSuites[0], 1, 0, 0)
	ca.Lifetime = ike.Lifetime{SoftTime: 100 * time.Millisecond, HardTime: 300 * time.Millisecond}
	install(t, a, b, ca, cb)
	eventually(t, "four lifetime events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 4
	})
	mu.Lock()
	for _, want := range []ev{{true, ca.InSPI, false}, {false, ca.OutSPI, false}, {true, ca.InSPI, true}, {false, ca.OutSPI, true}} {
		if !slices.Contains(got, want) {
			t.Errorf("no event %+v in %+v", want, got)
		}
	}
	mu.Unlock()
	if len(a.n.SAs()) != 0 || len(a.n.Peers()) != 0 {
		t.Errorf("after the hard lifetime: SAs %v, peers %+v", a.n.SAs(), a.n.Peers())
	}
	// B's SAs have no lifetime and no expirer: nothing happened there.
	if len(b.n.SAs()) != 2 {
		t.Errorf("B's SAs %v", b.n.SAs())
	}
}

// TestIKEKernelReload: a Reload that changes the configured peers and
// policies keeps the IKE SAs, policies and peers, and refuses an SA that
// takes an IKE SA's SPI.
func TestIKEKernelReload(t *testing.T) {
	a, b := newIKEPair(t)
	ca, cb := childPair(t, a, b, ikeSuites[0], 1, 0, 0)
	install(t, a, b, ca, cb)
	cfg := node.Config{StateDir: a.state}
	cfg.Peers = []dataplane.PeerConfig{{Name: "manual", Endpoint: endpoint.Endpoint{Addr: netip.MustParseAddrPort("198.51.100.99:0")}}}
	// RFC 4301 §5's catch-all DISCARDs: the IKE child's policies stay
	// in front of them.
	cfg.Policies = []spd.Policy{
		{Name: "out-default", Dir: sad.Outbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
		{Name: "in-default", Dir: sad.Inbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
	}
	res, err := a.n.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Peers || !res.Policies || len(res.Deleted) != 0 {
		t.Errorf("reload result %+v", res)
	}
	if pol := a.n.Policies(sad.Outbound); len(pol) != 2 || pol[0].Name != "net#0" || pol[1].Name != "out-default" {
		t.Errorf("outbound policies after the reload: %+v", pol)
	}
	// A second reload of the same configuration changes nothing.
	if res, err := a.n.Reload(cfg); err != nil || res.Changed() {
		t.Errorf("the same reload again: %+v, %v", res, err)
	}
	if ps := a.n.Peers(); len(ps) != 2 || ps[0].Name != "manual" || ps[1].Name != "gw-b" {
		t.Errorf("peers after the reload: %+v", ps)
	}
	if len(a.n.SAs()) != 2 || len(a.n.Policies(sad.Inbound)) != 2 {
		t.Errorf("after the reload: SAs %v, policies %v", a.n.SAs(), a.n.Policies(sad.Outbound))
	}
	pingBoth(t, a, b, "after the reload")
	cfg.SAs = []node.SAConfig{{Config: sad.Config{Dir: sad.Inbound, Selectors: []sad.Selector{{}},
		Params: esp.Params{SPI: ca.InSPI, Algorithm: esp.AES128GCM16, EncKey: make([]byte, 20), Mode: esp.Transport}}}}
	if _, err := a.n.Reload(cfg); !errors.Is(err, sad.ErrDuplicateSPI) {
		t.Errorf("reload taking an IKE SPI: %v", err)
	}
	if st := a.n.Status(); st.Peers != 2 || st.IKESAs != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestIKEUnderlayConfig: with IKE connections the underlay opens ESP in
// UDP (IKE floats to 4500) and, when a connection uses port 500 locally,
// UDP 500; a node without connections has no daemon.
func TestIKEUnderlayConfig(t *testing.T) {
	cfg := node.Config{Underlay: node.UnderlayConfig{Raw: true}}
	if uc := node.UnderlayConfigOf(&cfg); uc.Mode != underlay.ModeRaw || uc.IKE500 {
		t.Errorf("no IKE: %+v", uc)
	}
	cfg.IKE.Connections = []ike.Connection{{Name: "c", LocalPort: 4500}}
	if uc := node.UnderlayConfigOf(&cfg); uc.Mode != underlay.ModeBoth || uc.IKE500 {
		t.Errorf("IKE on 4500 only: mode %v ike500 %v", uc.Mode, uc.IKE500)
	}
	cfg.IKE.Connections = append(cfg.IKE.Connections, ike.Connection{Name: "d"})
	if uc := node.UnderlayConfigOf(&cfg); !uc.IKE500 {
		t.Errorf("IKE on 500: ike500 %v", uc.IKE500)
	}
	a, _ := newIKEPair(t)
	if a.n.IKE() != nil {
		t.Error("a daemon without connections")
	}
	a.n.ReceiveIKE([]byte{1, 2, 3}, netip.AddrPort{}, netip.AddrPort{}) // dropped, no panic
}

// TestIKEKernelPeerSPIClash: two peers may choose the same SPI for their
// inbound SA (RFC 4301 §4.1), which is an outbound SA here, and the SAD
// knows outbound SAs by SPI: the second child is refused at AddInbound,
// while its exchange can still say no, with nothing left behind.
func TestIKEKernelPeerSPIClash(t *testing.T) {
	a, b := newIKEPair(t)
	ca, cb := childPair(t, a, b, ikeSuites[0], 1, 0, 0)
	install(t, a, b, ca, cb)
	before := len(a.n.SAs())
	c2, _ := childPair(t, a, b, ikeSuites[0], 2, 0, 0)
	c2.Peer, c2.PolicyName, c2.Name = "gw-c", "other", "other"
	c2.OutSPI = ca.OutSPI
	if err := a.k.AddInbound(c2); !errors.Is(err, sad.ErrDuplicateSPI) {
		t.Fatalf("AddInbound with another peer's outbound SPI: %v", err)
	}
	if len(a.n.SAs()) != before || len(a.n.Peers()) != 1 {
		t.Errorf("the refused child left SAs %d (was %d), peers %v", len(a.n.SAs()), before, a.n.Peers())
	}
	// A rekey of the first child may name its own outbound SPI as the one
	// it replaces; a fresh SPI from the same peer is fine.
	c3, _ := childPair(t, a, b, ikeSuites[0], 3, ca.OutSPI, 0)
	if err := a.k.AddInbound(c3); err != nil {
		t.Errorf("a rekey's AddInbound: %v", err)
	}
}
