package ike

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestRelocate: A's child is for the single address 10.1.0.7 (a home
// address). Serves finds the IKE SA by it on both sides; Relocate moves A's
// local address and B's view of A's address to 192.0.2.11 without any
// message (the K flag, RFC 4877 §7.4), tells B's kernel, and the next
// exchange runs between the new addresses. An address no child has moves
// nothing.
func TestRelocate(t *testing.T) {
	hoa := netip.MustParseAddr("10.1.0.7")
	n, a, b := newPair(t, pairOpts{a: func(c *Connection) {
		c.Children[0].LocalTS = []TrafficSelector{prefixTS("10.1.0.7/32")}
	}})
	up(t, a, b)
	if !a.d.Serves(hoa) || !b.d.Serves(hoa) {
		t.Fatal("Serves: the IKE SA has a child for the address")
	}
	other := netip.MustParseAddr("10.1.0.8")
	if a.d.Serves(other) {
		t.Fatal("Serves: no child is for 10.1.0.8")
	}
	if err := a.d.Relocate(other, netip.AddrPort{}, netip.AddrPort{}); !errors.Is(err, ErrNoIKESAFor) {
		t.Fatalf("Relocate for an address no child has: %v", err)
	}

	moved := netip.MustParseAddr("192.0.2.11")
	n.mu.Lock()
	n.nodes[moved] = a.d
	delete(n.nodes, addrA) // the old address is gone
	n.mu.Unlock()
	if err := a.d.Relocate(hoa, netip.AddrPortFrom(moved, 0), netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if err := b.d.Relocate(hoa, netip.AddrPort{}, netip.AddrPortFrom(moved, 0)); err != nil {
		t.Fatal(err)
	}
	la, lb := a.d.List()[0], b.d.List()[0]
	if la.Local != netip.AddrPortFrom(moved, 500) || la.Remote != netip.AddrPortFrom(addrB, 500) ||
		lb.Remote != netip.AddrPortFrom(moved, 500) || lb.Local != netip.AddrPortFrom(addrB, 500) {
		t.Fatalf("after Relocate: A %v -> %v, B %v -> %v", la.Local, la.Remote, lb.Local, lb.Remote)
	}
	b.k.mu.Lock()
	last := b.k.calls[len(b.k.calls)-1]
	b.k.mu.Unlock()
	if b.k.count("endpoint ba") != 1 || !strings.Contains(last, moved.String()) {
		t.Fatalf("B's kernel: last call %q, %d endpoint calls", last, b.k.count("endpoint ba"))
	}
	if a.d.Stats().Relocations != 1 || b.d.Stats().Relocations != 1 {
		t.Fatalf("relocations A %d B %d", a.d.Stats().Relocations, b.d.Stats().Relocations)
	}
	// B's next request reaches A at its new address.
	if err := b.d.Rekey("ba", "net"); err != nil {
		t.Fatalf("rekey after the move: %v", err)
	}
	eventually(t, "the rekey", func() bool { return b.d.Stats().Rekeys == 1 && a.d.Stats().Rekeys == 1 })

	// A move to port 4500 puts IKE into UDP (RFC 7296 §2.23).
	if err := a.d.Relocate(hoa, netip.AddrPortFrom(moved, 4500), netip.AddrPortFrom(addrB, 4500)); err != nil {
		t.Fatal(err)
	}
	if la := a.d.List()[0]; !la.Encap || la.Remote.Port() != 4500 || la.Local.Port() != 4500 {
		t.Fatalf("after the move to 4500: %+v", la)
	}
}

// TestMatchChildExactFirst: a responder with a wide child listed before a
// narrow one gives an initiator that asks for exactly the narrow one the
// narrow one, not the wide one narrowed (matchChild), and a request only
// the wide one takes exactly still gets the wide one.
func TestMatchChildExactFirst(t *testing.T) {
	wide := Child{Name: "wide", LocalTS: []TrafficSelector{prefixTS("10.2.0.0/16")}, RemoteTS: []TrafficSelector{prefixTS("10.1.0.0/16")},
		Proposals: espProps(t, "aes128gcm16")}
	narrow := wide
	narrow.Name = "narrow"
	narrow.LocalTS = []TrafficSelector{prefixTS("10.2.3.0/24")}
	_, a, b := newPair(t, pairOpts{
		a: func(c *Connection) {
			c.Children[0].RemoteTS = []TrafficSelector{prefixTS("10.2.3.0/24")}
			c.Children = append(c.Children, Child{Name: "all", LocalTS: []TrafficSelector{prefixTS("10.1.0.0/16")},
				RemoteTS: []TrafficSelector{prefixTS("10.2.0.0/16")}, Proposals: espProps(t, "aes128gcm16")})
		},
		b: func(c *Connection) { c.Children = []Child{wide, narrow} },
	})
	if err := a.d.Initiate("ab", "net"); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Initiate("ab", "all"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ch := range b.d.List()[0].Children {
		got[ch.Name] = FormatTS(ch.LocalTS[0])
	}
	if got["narrow"] != "10.2.3.0/24" || got["wide"] != "10.2.0.0/16" || len(got) != 2 {
		t.Fatalf("B's children %v; want narrow for 10.2.3.0/24 and wide for 10.2.0.0/16", got)
	}
}

// TestInitiateFrom: A's first remote address is an IPv6 one nobody answers
// at; once told it initiates from an IPv4 address, A drops the attempt and
// sets the IKE SA up to its IPv4 remote address at once; an established
// IKE SA is then left alone.
func TestInitiateFrom(t *testing.T) {
	_, a, b := newPair(t, pairOpts{a: func(c *Connection) {
		c.LocalAddrs = nil
		c.RemoteAddrs = append([]netip.Prefix{netip.MustParsePrefix("2001:db8::99/128")}, c.RemoteAddrs...)
		c.Children[0].Start = StartStart
	}})
	time.Sleep(100 * time.Millisecond)
	if established(a) != 0 {
		t.Fatal("established to an address nobody answers at")
	}
	if err := a.d.InitiateFrom("ab", addrA); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the IKE SA to B's IPv4 address", func() bool { return established(a) == 1 && established(b) == 1 })
	sa := a.d.List()[0]
	if sa.Remote.Addr() != addrB {
		t.Fatalf("remote %v", sa.Remote)
	}
	if err := a.d.InitiateFrom("ab", addrA); err != nil || len(a.d.List()) != 1 || a.d.List()[0].SPIi != sa.SPIi {
		t.Fatalf("a second InitiateFrom: %v, SAs %+v", err, a.d.List())
	}
}
