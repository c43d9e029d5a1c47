package node_test

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// dropTransport is an ike.Transport that sends nothing: the trap tests play
// the daemon's Kernel calls themselves.
type dropTransport struct{}

func (dropTransport) Send([]byte, netip.AddrPort, netip.AddrPort) error { return nil }

// acquires records the node's acquires (SetIKEAcquirer).
type acquires struct {
	mu    sync.Mutex
	names []string
	at    []time.Time
}

func (a *acquires) add(name string) {
	a.mu.Lock()
	a.names = append(a.names, name)
	a.at = append(a.at, time.Now())
	a.mu.Unlock()
}

func (a *acquires) get() ([]string, []time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.names...), append([]time.Time(nil), a.at...)
}

// newTrapPair is newIKEPair with A configured for connection "gw" whose
// child "net" (siteA <-> siteB) has start_action trap, and a second child
// "other" without it; A's acquires go to acq.
func newTrapPair(t *testing.T, acq *acquires) (a, b *ikeSide) {
	t.Helper()
	ua, ub := underlaytest.NewPair(endpoint.Endpoint{Addr: netip.AddrPortFrom(outerA, 0)}, endpoint.Endpoint{Addr: netip.AddrPortFrom(outerB, 0)})
	ikeProps, err := ike.ParseIKEProposals([]string{"aes128gcm16-prfsha256-curve25519"}, false)
	if err != nil {
		t.Fatal(err)
	}
	espProps, err := ike.ParseESPProposals([]string{"aes128gcm16"}, false)
	if err != nil {
		t.Fatal(err)
	}
	other := netip.MustParsePrefix("198.18.0.0/24")
	conn := ike.Connection{
		Name: "gw", LocalAddrs: []netip.Addr{outerA}, RemoteAddrs: []netip.Prefix{netip.PrefixFrom(outerB, 32)},
		Proposals: ikeProps,
		Local:     ike.LocalAuth{Method: ike.AuthPSK, PSK: []byte("a fine shared secret")},
		Remote:    ike.RemoteAuth{Method: ike.AuthPSK, PSK: []byte("a fine shared secret")},
		Children: []ike.Child{
			{Name: "net", LocalTS: []ike.TrafficSelector{prefixTS(siteA)}, RemoteTS: []ike.TrafficSelector{prefixTS(siteB)},
				Proposals: espProps, Start: ike.StartTrap},
			{Name: "other", LocalTS: []ike.TrafficSelector{prefixTS(siteA)}, RemoteTS: []ike.TrafficSelector{prefixTS(other)},
				Proposals: espProps},
		},
	}
	mk := func(name string, ul *underlaytest.Underlay, ic node.IKEConfig) *ikeSide {
		s := &ikeSide{tun: tuntest.New(1, 64), ul: ul, state: t.TempDir()}
		n, err := node.New(node.Config{StateDir: s.state, Device: s.tun, Conn: ul, Workers: 2,
			Logger: zaptest.NewLogger(t).Named(name), IKE: ic})
		if err != nil {
			t.Fatal(err)
		}
		if ic.Transport != nil {
			n.SetIKEAcquirer(acq.add)
		}
		if err := n.Start(); err != nil {
			n.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		s.n, s.k = n, n.Kernel()
		return s
	}
	return mk("A", ua, node.IKEConfig{Connections: []ike.Connection{conn}, Transport: dropTransport{}}), mk("B", ub, node.IKEConfig{})
}

// trapPolicies are A's outbound policies of "gw/net" that protect with a
// trap SPI.
func trapPolicies(n *node.Node) (ps []spd.Policy) {
	for _, p := range n.Policies(sad.Outbound) {
		if strings.HasPrefix(p.Name, "gw/net#") && p.SPI <= dataplane.MaxTrapSPI {
			ps = append(ps, p)
		}
	}
	return ps
}

// waitDrops waits until n counted want drops of reason.
func waitDrops(t *testing.T, n *node.Node, reason string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.Stats().Drops[reason] < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s drops: %d, want %d; all %v", reason, n.Stats().Drops[reason], want, n.Stats().Drops)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := n.Stats().Drops[reason]; got != want {
		t.Fatalf("%s drops: %d, want %d", reason, got, want)
	}
}

// TestIKETrap: a trap child's traffic, before it has an SA, is dropped as
// "acquire" and asks the daemon once for the child (a burst: one acquire);
// traffic of no child asks nothing; a peer's reserved SPI cannot take the
// trap's place; once the child is installed its policies replace the trap
// and traffic flows; after DelPolicies the trap is back and asks again.
func TestIKETrap(t *testing.T) {
	var acq acquires
	a, b := newTrapPair(t, &acq)

	ps := trapPolicies(a.n)
	if len(ps) != 1 || ps[0].Action != spd.Protect || ps[0].SPI == 0 {
		t.Fatalf("trap policies at start: %+v", ps)
	}
	for _, p := range a.n.Policies(sad.Outbound) {
		if strings.HasPrefix(p.Name, "gw/other") {
			t.Fatalf("a child without trap has a trap policy: %+v", p)
		}
	}

	const burst = 20
	for i := range burst {
		a.tun.Outbound <- icmpEcho(hostA, hostB, 200, uint16(1000+i))
	}
	waitDrops(t, a.n, "acquire", burst)
	// Traffic of no child: a plain policy discard, no acquire.
	a.tun.Outbound <- icmpEcho(hostA, netip.MustParseAddr("198.18.0.1"), 200, 1)
	waitDrops(t, a.n, "policy_discard", 1)
	if d := a.n.Stats().Drops["no_sa"]; d != 0 {
		t.Errorf("no_sa drops: %d, want 0 (trap traffic is acquire)", d)
	}
	names, _ := acq.get()
	if len(names) != 1 || names[0] != "gw/net" {
		t.Fatalf("acquires after a burst of %d: %q, want one for gw/net", burst, names)
	}

	ca, cb := childPair(t, a, b, ikeSuites[0], 1, 0, 0)
	ca.PolicyName, ca.Name = "gw/net", "gw/net"

	// A peer choosing the trap's SPI for our outbound SA is refused: the
	// trap stays.
	bad := *ca
	bad.OutSPI = ps[0].SPI
	if err := a.k.AddOutbound(&bad); err == nil {
		t.Fatal("AddOutbound with the trap's reserved SPI succeeded")
	}
	if got := trapPolicies(a.n); len(got) != 1 {
		t.Fatalf("trap policies after a refused AddOutbound: %+v", got)
	}

	install(t, a, b, ca, cb)
	if got := trapPolicies(a.n); len(got) != 0 {
		t.Fatalf("trap policies left beside the child's: %+v", got)
	}
	pingBoth(t, a, b, "installed")
	if got := a.n.Stats().Drops["acquire"]; got != burst {
		t.Errorf("acquire drops after install: %d, want %d", got, burst)
	}

	// The child goes (not a rekey): the SAs and the policies; the trap is
	// back, first in the list as the child's policies were.
	for _, step := range []func() error{
		func() error { return a.k.DelSA(true, ca.InSPI) },
		func() error { return a.k.DelSA(false, ca.OutSPI) },
		func() error { return a.k.DelPolicies("gw/net") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	ps = trapPolicies(a.n)
	if len(ps) != 1 || a.n.Policies(sad.Outbound)[0].Name != ps[0].Name {
		t.Fatalf("trap policies after DelPolicies: %+v (outbound %+v)", ps, a.n.Policies(sad.Outbound))
	}
	for _, p := range a.n.Policies(sad.Inbound) {
		if strings.HasPrefix(p.Name, "gw/net") {
			t.Fatalf("inbound policy left after DelPolicies: %+v", p)
		}
	}
	// The acquires are rate-limited (1 to 2 s apart): keep sending until
	// the second one.
	deadline := time.Now().Add(5 * time.Second)
	sent := uint64(0)
	for {
		a.tun.Outbound <- icmpEcho(hostA, hostB, 200, uint16(2000+sent))
		sent++
		waitDrops(t, a.n, "acquire", burst+sent)
		if names, _ = acq.get(); len(names) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	names, at := acq.get()
	if len(names) != 2 || names[1] != "gw/net" {
		t.Fatalf("acquires after the trap came back: %q, want a second gw/net", names)
	}
	if gap := at[1].Sub(at[0]); gap < 900*time.Millisecond {
		t.Errorf("two acquires %v apart, want the rate limit (>= 1 s)", gap)
	}
}
