package ike

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestMOBIKE: with MOBIKE on both sides (RFC 4555 §3.3) the initiator
// moves to a new address with UPDATE_SA_ADDRESSES (§3.5): the responder
// moves the IKE SA and every child at once to the request's addresses and
// echoes the COOKIE2; the initiator's children follow on the answer.
// Later traffic of the SA (a child's Delete) uses the new path. A
// responder cannot move, an SA without MOBIKE refuses, a forged update
// moves nothing, and a replayed one is answered from the cache.
func TestMOBIKE(t *testing.T) {
	mobike := func(c *Connection) {
		c.MOBIKE = true
		c.Children = append(c.Children, c.Children[0])
		c.Children[1].Name = "net2"
	}
	n, a, b := newPair(t, pairOpts{a: mobike, b: mobike})
	up(t, a, b)
	if err := a.d.Initiate("ab", "net2"); err != nil {
		t.Fatal(err)
	}
	if ao, bo := len(outs(a)), len(outs(b)); ao != 2 || bo != 2 {
		t.Fatalf("outbound SAs: A %d, B %d, want 2 each", ao, bo)
	}
	if err := b.d.Move("ba", addrB); !errors.Is(err, ErrNoMOBIKE) {
		t.Fatalf("the responder moved: %v", err)
	}
	newA := netip.MustParseAddr("192.0.2.77")
	n.mu.Lock()
	n.nodes[newA] = a.d
	n.mu.Unlock()
	if err := a.d.Move("ab", netip.MustParseAddr("2001:db8::9")); err == nil {
		t.Fatal("moved to another family")
	}
	if err := a.d.Move("ab", newA); err != nil {
		t.Fatalf("Move: %v", err)
	}
	la, lb := a.d.List()[0], b.d.List()[0]
	if la.Local.Addr() != newA || lb.Remote.Addr() != newA || lb.Remote.Port() != la.Local.Port() {
		t.Fatalf("after the move: A %v -> %v, B %v -> %v", la.Local, la.Remote, lb.Local, lb.Remote)
	}
	if a.d.Stats().MOBIKEUpdates != 1 || b.d.Stats().MOBIKEUpdates != 1 {
		t.Fatalf("MOBIKE updates: A %d, B %d", a.d.Stats().MOBIKEUpdates, b.d.Stats().MOBIKEUpdates)
	}
	// Every child of B moved at once: one endpoint per peer, set once.
	b.k.mu.Lock()
	ep := b.k.endpoints["ba"]
	b.k.mu.Unlock()
	if ep.Remote.Addr() != newA || b.k.count("endpoint") != 1 || a.k.count("endpoint") != 1 {
		t.Fatalf("kernel endpoints: B %+v; calls A %v B %v", ep, a.k.calls, b.k.calls)
	}
	req := captured(n, newA, INFORMATIONAL, false)
	if len(req) != 1 {
		t.Fatalf("%d INFORMATIONAL requests from the new address", len(req))
	}
	// A replayed update is answered from the cache and counts nothing.
	b.d.Receive(req[0].b, netip.AddrPortFrom(addrB, req[0].dst.Port()), req[0].src)
	// A forged one (a flipped ICV byte, from a third address) is dropped.
	forged := append([]byte(nil), req[0].b...)
	forged[len(forged)-1] ^= 1
	b.d.Receive(forged, netip.AddrPortFrom(addrB, req[0].dst.Port()), netip.MustParseAddrPort("198.51.100.66:4500"))
	waitStats(t, b, "the forged update's drop", func(s Stats) bool { return s.Failures["integrity"] == 1 })
	if l := b.d.List()[0]; l.Remote.Addr() != newA || b.d.Stats().MOBIKEUpdates != 1 {
		t.Fatalf("after a replayed and a forged update: B -> %v, %d updates", l.Remote, b.d.Stats().MOBIKEUpdates)
	}
	// B's next request goes to the new address: delete a child from B.
	in, _, _ := b.k.state()
	b.d.Expired(true, in[0].InSPI, true)
	eventually(t, "one child left on both", func() bool { return len(outs(a)) == 1 && len(outs(b)) == 1 })
	if got := captured(n, addrB, INFORMATIONAL, false); len(got) != 1 || got[0].dst.Addr() != newA {
		t.Fatalf("B's Delete went to %v, want %v", got, newA)
	}
	// A new IKE SA of the connection (after a failure) starts from the
	// address it moved to, not from its configured local_addrs.
	var from netip.Addr
	a.d.call(func() error { from = a.d.conn("ab").localFor(addrB); return nil })
	if from != newA {
		t.Fatalf("the next IKE SA would start from %v, want %v", from, newA)
	}
}

// TestMOBIKEOff: without MOBIKE on one side nothing is negotiated: Move
// is refused, and an UPDATE_SA_ADDRESSES sent anyway moves nothing.
func TestMOBIKEOff(t *testing.T) {
	n, a, b := newPair(t, pairOpts{a: func(c *Connection) { c.MOBIKE = true }})
	up(t, a, b)
	if err := a.d.Move("ab", netip.MustParseAddr("192.0.2.77")); !errors.Is(err, ErrNoMOBIKE) {
		t.Fatalf("Move without the responder's MOBIKE: %v", err)
	}
	// A sends one anyway (forcing its side): B refuses it.
	newA := netip.MustParseAddr("192.0.2.77")
	n.mu.Lock()
	n.nodes[newA] = a.d
	n.mu.Unlock()
	_ = a.d.call(func() error {
		for _, sa := range a.d.sas {
			sa.mobike = true
		}
		return nil
	})
	if err := a.d.Move("ab", newA); err == nil {
		t.Fatal("B accepted an update without MOBIKE")
	}
	if l := b.d.List()[0]; l.Remote.Addr() == newA || b.d.Stats().MOBIKEUpdates != 0 {
		t.Fatalf("B moved to %v without MOBIKE", l.Remote)
	}
}

func outs(p *peer) []ChildSA {
	_, out, _ := p.k.state()
	return out
}

// TestMOBIKEMoveClosed: a Move whose answer never comes (B answers to an
// address nobody has) returns once the daemon closes: the request goes
// with the IKE SA, and Move hears why instead of waiting for ever.
func TestMOBIKEMoveClosed(t *testing.T) {
	mobike := func(c *Connection) { c.MOBIKE = true }
	n, a, b := newPair(t, pairOpts{a: mobike, b: mobike, cfgA: func(c *Config) { c.Retransmit = 30 * time.Second }})
	up(t, a, b)
	lost := netip.MustParseAddr("192.0.2.78") // not on the network
	done := make(chan error, 1)
	go func() { done <- a.d.Move("ab", lost) }()
	eventually(t, "the update sent", func() bool { return len(captured(n, lost, INFORMATIONAL, false)) == 1 })
	select {
	case err := <-done:
		t.Fatalf("Move returned before any answer: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	a.d.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRunning) {
			t.Fatalf("Move after Close: %v, want ErrNotRunning", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Move still waits after Close")
	}
}
