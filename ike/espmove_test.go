package ike

import (
	"net/netip"
	"testing"
)

// TestESPMoved: behind a NAT (RFC 7296 §2.23), the side that follows its
// peer (B, outside) is told its peer's ESP now comes from a new mapping:
// the IKE SA and the kernel's endpoint move there, and B's next request
// reaches A through it. The side behind the NAT, another family, an
// unknown peer and a port of 0 move nothing.
func TestESPMoved(t *testing.T) {
	n, a, b := newPair(t, pairOpts{})
	n.natInside = addrA
	n.natOutside = netip.MustParseAddr("203.0.113.7")
	_ = b.d.call(func() error {
		b.d.conns[0].cfg.RemoteAddrs = []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")}
		return nil
	})
	up(t, a, b)
	la, lb := a.d.List()[0], b.d.List()[0]
	_, aOut, _ := a.k.state()
	_, bOut, _ := b.k.state()
	if aOut[0].Endpoint.Follow || !bOut[0].Endpoint.Follow {
		t.Fatalf("Follow: A %v (behind the NAT: want false), B %v (want true)", aOut[0].Endpoint.Follow, bOut[0].Endpoint.Follow)
	}

	// Nothing moves for these.
	a.d.ESPMoved("ab", netip.AddrPortFrom(addrB, 4501))
	b.d.ESPMoved("ba", netip.MustParseAddrPort("[2001:db8::7]:4500"))
	b.d.ESPMoved("ba", netip.AddrPortFrom(n.natOutside, 0))
	b.d.ESPMoved("nosuchpeer", netip.AddrPortFrom(n.natOutside, 41000))
	_ = a.d.call(func() error { return nil })
	_ = b.d.call(func() error { return nil })
	if a.d.List()[0].Remote != la.Remote || b.d.List()[0].Remote != lb.Remote || a.k.count("endpoint") != 0 || b.k.count("endpoint") != 0 ||
		a.d.Stats().ESPMoves != 0 || b.d.Stats().ESPMoves != 0 {
		t.Fatalf("moved on a refused ESPMoved: A %v (%v), B %v (%v); kernel calls A %v B %v",
			a.d.List()[0].Remote, la.Remote, b.d.List()[0].Remote, lb.Remote, a.k.calls, b.k.calls)
	}

	// The NAT gives A's port 4500 a new mapping (A's ESP made it).
	moved := netip.AddrPortFrom(n.natOutside, 41000)
	n.mu.Lock()
	clear(n.natOut)
	clear(n.natIn)
	n.natOut[la.Local] = moved
	n.natIn[moved] = la.Local
	n.mu.Unlock()
	b.d.ESPMoved("ba", moved)
	eventually(t, "B moved", func() bool { return b.d.List()[0].Remote == moved })
	if b.k.count("endpoint") != 1 || b.d.Stats().ESPMoves != 1 {
		t.Fatalf("B: kernel calls %v, ESPMoves %d", b.k.calls, b.d.Stats().ESPMoves)
	}
	b.k.mu.Lock()
	ep := b.k.endpoints["ba"]
	b.k.mu.Unlock()
	if ep.Remote != moved || !ep.Encap || !ep.Follow {
		t.Fatalf("B's kernel endpoint %+v, want %v in UDP", ep, moved)
	}
	// B's next request (the Delete of its child) reaches A at the mapping.
	in, _, _ := b.k.state()
	b.d.Expired(true, in[0].InSPI, true)
	eventually(t, "the child deleted on both", func() bool { return a.k.empty() && b.k.empty() })
}
