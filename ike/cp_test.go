package ike

import (
	"net/netip"
	"strings"
	"testing"
)

// TestCPAssignIPv4: A asks for an IPv4 address (a zero-length
// INTERNAL_IP4_ADDRESS); B assigns the first of its pool, narrows A's child
// to it, and both list it; B's kernel learns it as the address A is
// authorized for (a home agent binds the child's tunnel to it, RFC 4877 §9).
func TestCPAssignIPv4(t *testing.T) {
	_, a, b := newPair(t, pairOpts{
		a: func(c *Connection) { c.VIPs = []netip.Addr{netip.IPv4Unspecified()} },
		b: func(c *Connection) { c.Pool = []netip.Prefix{netip.MustParsePrefix("10.1.0.16/29")} },
	})
	up(t, a, b)
	want := netip.MustParseAddr("10.1.0.17")
	la, lb := a.d.List()[0], b.d.List()[0]
	if len(la.VIPs) != 1 || la.VIPs[0] != want || len(lb.PeerVIPs) != 1 || lb.PeerVIPs[0] != want {
		t.Fatalf("VIPs: A %v, B assigned %v; want %v", la.VIPs, lb.PeerVIPs, want)
	}
	ao, bo := checkPair(t, a, b)
	if FormatTS(ao.LocalTS[0]) != "10.1.0.17/32" || FormatTS(bo.RemoteTS[0]) != "10.1.0.17/32" {
		t.Fatalf("selectors: A local %v, B remote %v; want the assigned address", ao.LocalTS, bo.RemoteTS)
	}
	if len(bo.Authorized) != 1 || bo.Authorized[0] != netip.PrefixFrom(want, 32) {
		t.Fatalf("B's kernel child authorized for %v", bo.Authorized)
	}
}

// TestCPAssignIPv6HomePrefix: a mobile node's request (RFC 4877 §9): a
// zero-length INTERNAL_IP6_ADDRESS and MIP6_HOME_PREFIX; the home address
// comes from the pool, the home prefix with it (RFC 5026 §4.2.1).
func TestCPAssignIPv6HomePrefix(t *testing.T) {
	v6 := func(c *Connection) {
		c.Children[0].LocalTS = []TrafficSelector{prefixTS("::/0")}
		c.Children[0].RemoteTS = []TrafficSelector{prefixTS("::/0")}
	}
	home := netip.MustParsePrefix("2001:db8:1::/64")
	_, a, b := newPair(t, pairOpts{
		a: func(c *Connection) {
			v6(c)
			c.VIPs, c.RequestHomePrefix = []netip.Addr{netip.IPv6Unspecified()}, true
		},
		b: func(c *Connection) {
			v6(c)
			c.Pool, c.HomePrefix = []netip.Prefix{netip.MustParsePrefix("2001:db8:1::1000/124")}, home
		},
	})
	up(t, a, b)
	want := netip.MustParseAddr("2001:db8:1::1001")
	la := a.d.List()[0]
	if len(la.VIPs) != 1 || la.VIPs[0] != want || la.HomePrefix != home {
		t.Fatalf("A: VIPs %v home prefix %v; want %v in %v", la.VIPs, la.HomePrefix, want, home)
	}
	_, bo := checkPair(t, a, b)
	if FormatTS(bo.RemoteTS[0]) != "2001:db8:1::1001/128" {
		t.Fatalf("B remote selectors %v", bo.RemoteTS)
	}
}

// TestCPPoolEmpty: with the pool's only address taken by another identity,
// A gets INTERNAL_ADDRESS_FAILURE: the IKE SA is up without a child, both
// count it as "pool", nothing is installed. Once the other lease is gone
// and A's IKE SA is deleted and made again, A gets the address; after A's
// IKE SA is deleted the address is free again.
func TestCPPoolEmpty(t *testing.T) {
	_, a, b := newPair(t, pairOpts{
		a: func(c *Connection) { c.VIPs = []netip.Addr{netip.IPv4Unspecified()} },
		b: func(c *Connection) { c.Pool = []netip.Prefix{netip.MustParsePrefix("10.1.0.20/32")} },
	})
	other := IdentityFromAddr(netip.MustParseAddr("192.0.2.77"))
	var got netip.Addr
	if err := b.d.call(func() error { got, _ = b.d.conn("ba").assign(other, true); return nil }); err != nil || got != netip.MustParseAddr("10.1.0.20") {
		t.Fatalf("pre-assign: %v %v", got, err)
	}
	err := a.d.Initiate("ab", "net")
	if err == nil {
		t.Fatal("Initiate succeeded with an empty pool")
	}
	if established(a) != 1 || established(b) != 1 || !a.k.empty() || !b.k.empty() {
		t.Fatalf("after the refusal: A %+v, B %+v", a.d.List(), b.d.List())
	}
	if na, nb := a.d.Stats().Failures["pool"], b.d.Stats().Failures["pool"]; na != 1 || nb != 1 {
		t.Fatalf("pool failures A %d B %d, want 1 each (Initiate: %v)", na, nb, err)
	}
	if !strings.Contains(err.Error(), "INTERNAL_ADDRESS_FAILURE") {
		t.Errorf("Initiate: %v; want INTERNAL_ADDRESS_FAILURE named", err)
	}

	// Free the other identity's address, and start again.
	if err := b.d.call(func() error {
		c := b.d.conn("ba")
		for _, x := range c.leases.byID[other.String()] {
			delete(c.leases.used, x)
		}
		delete(c.leases.byID, other.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Terminate("ab"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B forgets A's IKE SA", func() bool { return len(b.d.List()) == 0 })
	up(t, a, b)
	if v := a.d.List()[0].VIPs; len(v) != 1 || v[0] != netip.MustParseAddr("10.1.0.20") {
		t.Fatalf("A's address %v", v)
	}
	if err := a.d.Terminate("ab"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B forgets A's IKE SA again", func() bool { return len(b.d.List()) == 0 })
	var free bool
	b.d.call(func() error { free = len(b.d.conn("ba").leases.used) == 0; return nil })
	if !free {
		t.Fatal("the address is still leased after A's IKE SA went")
	}
}

// TestCPMalformedReply: a CP reply with attributes of the wrong length is
// an error, not a panic or a half-read address.
func TestCPMalformedReply(t *testing.T) {
	for _, at := range []CPAttribute{
		{Type: INTERNAL_IP4_ADDRESS, Value: []byte{10, 0, 0}},
		{Type: INTERNAL_IP6_ADDRESS, Value: make([]byte, 16)},
		{Type: MIP6_HOME_PREFIX, Value: make([]byte, 20)},
		{Type: MIP6_HOME_PREFIX, Value: append(make([]byte, 20), 129)},
	} {
		var sa ikeSA
		if err := cpReply(&sa, &CP{CfgType: CFG_REPLY, Attributes: []CPAttribute{at}}); err == nil || len(sa.vips) != 0 {
			t.Errorf("attribute %d of %d bytes: err %v, vips %v", at.Type, len(at.Value), err, sa.vips)
		}
	}
}

// TestCPOneFamily: asked for both families by a pool of IPv4 only, the
// responder assigns the IPv4 address and leaves IPv6 out (RFC 7296
// §3.15.4), no INTERNAL_ADDRESS_FAILURE.
func TestCPOneFamily(t *testing.T) {
	_, a, b := newPair(t, pairOpts{
		a: func(c *Connection) { c.VIPs = []netip.Addr{netip.IPv6Unspecified(), netip.IPv4Unspecified()} },
		b: func(c *Connection) { c.Pool = []netip.Prefix{netip.MustParsePrefix("10.1.0.16/29")} },
	})
	up(t, a, b)
	if v := a.d.List()[0].VIPs; len(v) != 1 || v[0] != netip.MustParseAddr("10.1.0.17") {
		t.Fatalf("A's addresses %v, want the IPv4 one only", v)
	}
	if n := b.d.Stats().Failures["pool"]; n != 0 {
		t.Fatalf("pool failures %d", n)
	}
}
