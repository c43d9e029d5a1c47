package ike

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// fakeKernel records what the daemon installs. Its methods run on the
// daemon's goroutine; tests read under mu.
type fakeKernel struct {
	mu        sync.Mutex
	next      uint32
	allocated map[uint32]bool
	in, out   map[uint32]ChildSA
	policies  map[string]uint32 // name → outbound SPI
	endpoints map[string]Endpoint
	calls     []string
	failIn    bool
}

func newFakeKernel(base uint32) *fakeKernel {
	return &fakeKernel{next: base, allocated: map[uint32]bool{}, in: map[uint32]ChildSA{},
		out: map[uint32]ChildSA{}, policies: map[string]uint32{}, endpoints: map[string]Endpoint{}}
}

func copyChild(c *ChildSA) ChildSA {
	cp := *c
	cp.InKeys = SAKeys{Enc: bytes.Clone(c.InKeys.Enc), Integ: bytes.Clone(c.InKeys.Integ)}
	cp.OutKeys = SAKeys{Enc: bytes.Clone(c.OutKeys.Enc), Integ: bytes.Clone(c.OutKeys.Integ)}
	cp.LocalTS = slices.Clone(c.LocalTS)
	cp.RemoteTS = slices.Clone(c.RemoteTS)
	return cp
}

func (k *fakeKernel) AllocSPI() (uint32, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.next++
	k.allocated[k.next] = true
	k.calls = append(k.calls, fmt.Sprintf("alloc %x", k.next))
	return k.next, nil
}

func (k *fakeKernel) ReleaseSPI(spi uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.allocated, spi)
	k.calls = append(k.calls, fmt.Sprintf("release %x", spi))
}

func (k *fakeKernel) AddInbound(c *ChildSA) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf("in %x", c.InSPI))
	if k.failIn {
		return errors.New("fake: AddInbound refused")
	}
	if !k.allocated[c.InSPI] {
		return fmt.Errorf("fake: inbound SPI %x not allocated", c.InSPI)
	}
	delete(k.allocated, c.InSPI)
	k.in[c.InSPI] = copyChild(c)
	return nil
}

func (k *fakeKernel) AddOutbound(c *ChildSA) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf("out %x", c.OutSPI))
	if _, ok := k.in[c.InSPI]; !ok {
		return fmt.Errorf("fake: outbound %x before its inbound %x", c.OutSPI, c.InSPI)
	}
	k.out[c.OutSPI] = copyChild(c)
	k.policies[c.PolicyName] = c.OutSPI
	return nil
}

func (k *fakeKernel) DelSA(inbound bool, spi uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf("del %v %x", inbound, spi))
	if inbound {
		delete(k.in, spi)
	} else {
		delete(k.out, spi)
	}
	return nil
}

func (k *fakeKernel) DelPolicies(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, "delpol "+name)
	delete(k.policies, name)
	return nil
}

func (k *fakeKernel) SetEndpoint(peer string, ep Endpoint) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fmt.Sprintf("endpoint %s %v", peer, ep))
	k.endpoints[peer] = ep
	return nil
}

// state returns copies of the installed SAs.
func (k *fakeKernel) state() (in, out []ChildSA, policies map[string]uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.in {
		in = append(in, c)
	}
	for _, c := range k.out {
		out = append(out, c)
	}
	return in, out, maps(k.policies)
}

func maps(m map[string]uint32) map[string]uint32 {
	out := map[string]uint32{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (k *fakeKernel) empty() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.in) == 0 && len(k.out) == 0 && len(k.policies) == 0 && len(k.allocated) == 0
}

func (k *fakeKernel) count(prefix string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.calls {
		if len(c) >= len(prefix) && c[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

// packet is one datagram on the fake network.
type packet struct {
	b        []byte
	src, dst netip.AddrPort
}

// network joins daemons by address. filter may drop (false) or rewrite a
// packet; nat, when set, rewrites the source of packets from inside
// (and the destination of the answers) as a NAPT would.
type network struct {
	mu     sync.Mutex
	nodes  map[netip.Addr]*Daemon
	filter func(p *packet) bool
	log    []packet
	// NAT: inside address → outside address, port mappings made on use.
	natInside, natOutside netip.Addr
	natPortBase           uint16
	natOut                map[netip.AddrPort]netip.AddrPort
	natIn                 map[netip.AddrPort]netip.AddrPort
}

func newNetwork() *network {
	return &network{nodes: map[netip.Addr]*Daemon{}, natOut: map[netip.AddrPort]netip.AddrPort{},
		natIn: map[netip.AddrPort]netip.AddrPort{}}
}

// rebind forgets the NAT's mappings: the next packet from inside gets
// new outside ports.
func (n *network) rebind() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.natPortBase += 100
	clear(n.natOut)
	clear(n.natIn)
}

func (n *network) setFilter(f func(p *packet) bool) {
	n.mu.Lock()
	n.filter = f
	n.mu.Unlock()
}

func (n *network) packets() []packet {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.log)
}

func (n *network) deliver(p packet) {
	n.mu.Lock()
	if n.natInside.IsValid() {
		if p.src.Addr() == n.natInside {
			o, ok := n.natOut[p.src]
			if !ok {
				o = netip.AddrPortFrom(n.natOutside, 40000+n.natPortBase+uint16(len(n.natOut)))
				n.natOut[p.src] = o
				n.natIn[o] = p.src
			}
			p.src = o
		} else if i, ok := n.natIn[p.dst]; ok {
			p.dst = i
		}
	}
	f := n.filter
	n.mu.Unlock()
	if f != nil && !f(&p) {
		return
	}
	n.mu.Lock()
	n.log = append(n.log, p)
	d := n.nodes[p.dst.Addr()]
	n.mu.Unlock()
	if d != nil {
		d.Receive(p.b, p.dst, p.src)
	}
}

// transport is one node's side of the network.
type transport struct {
	n          *network
	addr       netip.Addr
	keepalives atomic.Int32
}

func (t *transport) SendKeepalive(local, remote netip.AddrPort) error {
	if local.Port() != 4500 || remote.Port() != 4500 {
		return fmt.Errorf("keepalive from %v to %v, not between 4500s", local, remote)
	}
	t.keepalives.Add(1)
	return nil
}

func (t *transport) Send(msg []byte, local, remote netip.AddrPort) error {
	if !local.IsValid() {
		local = netip.AddrPortFrom(t.addr, local.Port())
	}
	t.n.deliver(packet{b: bytes.Clone(msg), src: local, dst: remote})
	return nil
}

type peer struct {
	d    *Daemon
	k    *fakeKernel
	addr netip.Addr
	name string
}

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

func ikeProps(t testing.TB, s ...string) []Proposal {
	t.Helper()
	p, err := ParseIKEProposals(s, false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func espProps(t testing.TB, s ...string) []Proposal {
	t.Helper()
	p, err := ParseESPProposals(s, false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func prefixTS(s string) TrafficSelector { return TSFromPrefix(netip.MustParsePrefix(s)) }

// conn is a PSK connection from local to remote with one tunnel child
// between 10.1/16 (A's side) and 10.2/16.
func conn(t testing.TB, name string, local, remote netip.Addr, aSide bool) Connection {
	lts, rts := prefixTS("10.1.0.0/16"), prefixTS("10.2.0.0/16")
	if !aSide {
		lts, rts = rts, lts
	}
	return Connection{
		Name:        name,
		LocalAddrs:  []netip.Addr{local},
		RemoteAddrs: []netip.Prefix{netip.PrefixFrom(remote, remote.BitLen())},
		Proposals:   ikeProps(t, "aes128gcm16-prfsha256-curve25519"),
		Local:       LocalAuth{Method: AuthPSK, PSK: []byte("a fine shared secret")},
		Remote:      RemoteAuth{Method: AuthPSK, PSK: []byte("a fine shared secret")},
		Children: []Child{{Name: "net", LocalTS: []TrafficSelector{lts}, RemoteTS: []TrafficSelector{rts},
			Proposals: espProps(t, "aes128gcm16")}},
	}
}

type pairOpts struct {
	a, b func(*Connection)
	cfgA func(*Config)
	cfgB func(*Config)
	// addrA, addrB replace the default addresses (for IPv6).
	addrA, addrB netip.Addr
}

// newPair starts A (initiator side, connection "ab") and B ("ba") on one
// network.
func newPair(t *testing.T, o pairOpts) (*network, *peer, *peer) {
	t.Helper()
	n := newNetwork()
	mk := func(name string, addr, other netip.Addr, aSide bool, mod func(*Connection), cmod func(*Config), base uint32) *peer {
		c := conn(t, name, addr, other, aSide)
		if mod != nil {
			mod(&c)
		}
		k := newFakeKernel(base)
		cfg := Config{Connections: []Connection{c}, Kernel: k, Transport: &transport{n: n, addr: addr},
			Logger: zaptest.NewLogger(t).Named(name), Retransmit: 40 * time.Millisecond, Retransmits: 3}
		if cmod != nil {
			cmod(&cfg)
		}
		d, err := New(cfg)
		if err != nil {
			t.Fatalf("New(%s): %v", name, err)
		}
		n.mu.Lock()
		n.nodes[addr] = d
		n.mu.Unlock()
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return &peer{d: d, k: k, addr: addr, name: name}
	}
	aa, ab := addrA, addrB
	if o.addrA.IsValid() {
		aa, ab = o.addrA, o.addrB
	}
	a := mk("ab", aa, ab, true, o.a, o.cfgA, 0xa0000000)
	b := mk("ba", ab, aa, false, o.b, o.cfgB, 0xb0000000)
	return n, a, b
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func established(p *peer) int {
	n := 0
	for _, s := range p.d.List() {
		if s.State == "established" {
			n++
		}
	}
	return n
}

// checkPair asserts that A and B installed one matching child: A's
// outbound SA is B's inbound one and the reverse, with the same keys,
// algorithms and mirrored selectors.
func checkPair(t *testing.T, a, b *peer) (ChildSA, ChildSA) {
	t.Helper()
	aIn, aOut, aPol := a.k.state()
	bIn, bOut, bPol := b.k.state()
	if len(aIn) != 1 || len(aOut) != 1 || len(bIn) != 1 || len(bOut) != 1 {
		t.Fatalf("installed SAs: A %d in %d out, B %d in %d out; want 1 each", len(aIn), len(aOut), len(bIn), len(bOut))
	}
	ao, bi, bo, ai := aOut[0], bIn[0], bOut[0], aIn[0]
	if ao.OutSPI != bi.InSPI || bo.OutSPI != ai.InSPI || ao.InSPI != ai.InSPI || bo.InSPI != bi.InSPI {
		t.Fatalf("SPIs: A in %x out %x, B in %x out %x", ai.InSPI, ao.OutSPI, bi.InSPI, bo.OutSPI)
	}
	if !bytes.Equal(ao.OutKeys.Enc, bi.InKeys.Enc) || !bytes.Equal(ao.OutKeys.Integ, bi.InKeys.Integ) ||
		!bytes.Equal(bo.OutKeys.Enc, ai.InKeys.Enc) || !bytes.Equal(bo.OutKeys.Integ, ai.InKeys.Integ) {
		t.Fatal("keys of the two directions do not match")
	}
	if bytes.Equal(ao.OutKeys.Enc, ao.InKeys.Enc) || len(ao.OutKeys.Enc) == 0 {
		t.Fatal("both directions have the same (or no) key")
	}
	if ao.Encr != bi.Encr || ao.KeyBits != bi.KeyBits || ao.Integ != bi.Integ || ao.ESN != bi.ESN || ao.Mode != bi.Mode {
		t.Fatalf("transforms differ: %+v vs %+v", ao, bi)
	}
	if !slices.EqualFunc(ao.LocalTS, bi.RemoteTS, sameTS) || !slices.EqualFunc(ao.RemoteTS, bi.LocalTS, sameTS) || len(ao.LocalTS) == 0 {
		t.Fatalf("selectors: A %v → %v, B %v → %v", ao.LocalTS, ao.RemoteTS, bi.LocalTS, bi.RemoteTS)
	}
	// B names its policies with A's identity where it serves many peers
	// (responderPolicyName).
	if ao.Peer != a.name || bi.Peer != b.name && !strings.HasPrefix(bi.Peer, b.name+"[") || ao.PolicyName != a.name+"/net" || aPol[a.name+"/net"] != ao.OutSPI ||
		bPol[bo.PolicyName] != bo.OutSPI || bo.PolicyName != b.name+"/net" && !strings.HasPrefix(bo.PolicyName, b.name+"/net[") {
		t.Fatalf("peer/policy names: %q %q, policies %v %v", ao.Peer, ao.PolicyName, aPol, bPol)
	}
	if ao.Lifetime.SoftTime != DefaultChildRekey || ao.Lifetime.HardTime != DefaultChildRekey*11/10 {
		t.Fatalf("lifetime %+v", ao.Lifetime)
	}
	return ao, bo
}

func TestEstablish(t *testing.T) {
	for _, tc := range []struct{ ike, esp string }{
		{"aes128gcm16-prfsha256-curve25519", "aes128gcm16"},
		{"aes256-sha256-modp2048", "aes256-sha256"},
		{"chacha20poly1305-prfsha512-ecp256", "chacha20poly1305"},
		{"aes256gcm16-prfsha384-ecp384", "aes128-sha256-esn"},
	} {
		t.Run(tc.ike+"/"+tc.esp, func(t *testing.T) {
			set := func(c *Connection) {
				c.Proposals = ikeProps(t, tc.ike)
				c.Children[0].Proposals = espProps(t, tc.esp)
			}
			_, a, b := newPair(t, pairOpts{a: set, b: set})
			if err := a.d.Initiate("ab", "net"); err != nil {
				t.Fatalf("Initiate: %v", err)
			}
			eventually(t, "B's child", func() bool { _, out, _ := b.k.state(); return len(out) == 1 })
			ao, _ := checkPair(t, a, b)
			suite, _ := ESPSuiteOf(espProps(t, tc.esp)[0])
			if ao.Encr != suite.Encr || ao.Integ != suite.Integ || ao.ESN != suite.ESN {
				t.Fatalf("child transforms %v/%v/%v, want %s", ao.Encr, ao.Integ, ao.ESN, tc.esp)
			}
			la, lb := a.d.List(), b.d.List()
			if len(la) != 1 || len(lb) != 1 || la[0].State != "established" || lb[0].State != "established" {
				t.Fatalf("List: %+v / %+v", la, lb)
			}
			if la[0].SPIi != lb[0].SPIi || la[0].SPIr != lb[0].SPIr || !la[0].Initiator || lb[0].Initiator {
				t.Fatalf("SPIs/roles: %+v / %+v", la[0], lb[0])
			}
			if la[0].Suite != FormatProposal(ikeProps(t, tc.ike)[0]) || la[0].Suite != lb[0].Suite {
				t.Fatalf("suite %q / %q, want %q", la[0].Suite, lb[0].Suite, tc.ike)
			}
			if la[0].RemoteID != "192.0.2.2" || lb[0].RemoteID != "192.0.2.1" || la[0].Encap || lb[0].Encap {
				t.Fatalf("ids/encap: %+v / %+v", la[0], lb[0])
			}
			if len(la[0].Children) != 1 || la[0].Children[0].State != "installed" || la[0].Children[0].InSPI != ao.InSPI {
				t.Fatalf("children: %+v", la[0].Children)
			}
			sa, sb := a.d.Stats(), b.d.Stats()
			if sa.IKESAs != 1 || sa.ChildSAs != 1 || sb.IKESAs != 1 || sa.Exchanges["IKE_AUTH"] != 1 || sb.Exchanges["IKE_SA_INIT"] != 1 {
				t.Fatalf("stats: %+v / %+v", sa, sb)
			}
			if ao.Endpoint.Encap || ao.Endpoint.Remote.Addr() != addrB {
				t.Fatalf("endpoint %v", ao.Endpoint)
			}
			// Wireshark keys agree on both sides where Wireshark can decrypt.
			wa, wb := a.d.WiresharkKeys(), b.d.WiresharkKeys()
			if len(wa) != len(wb) || (len(wa) == 1 && (!bytes.Equal(wa[0].SKei, wb[0].SKei) || wa[0].EncrName != wb[0].EncrName)) {
				t.Fatalf("wireshark keys %+v / %+v", wa, wb)
			}
			if err := a.d.Initiate("ab", "net"); err != nil {
				t.Fatalf("Initiate again (up already): %v", err)
			}
		})
	}
}
