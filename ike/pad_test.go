package ike

import (
	"net/netip"
	"strings"
	"testing"
)

// padFor gives B's connection a PAD with one entry: identity id for the
// prefixes addrs.
func padFor(id Identity, addrs ...string) func(*Connection) {
	return func(c *Connection) {
		e := PADEntry{ID: id}
		for _, a := range addrs {
			e.Addrs = append(e.Addrs, netip.MustParsePrefix(a))
		}
		c.Remote.PAD = append(c.Remote.PAD, e)
	}
}

// TestPADNarrows: B's child allows A all of 10.1/16, its PAD only
// 10.1.5/24: the child is narrowed to that (RFC 4301 §4.4.3.1), and the
// kernel learns A's identity and its authorized addresses.
func TestPADNarrows(t *testing.T) {
	idA := IdentityFromAddr(addrA)
	_, a, b := newPair(t, pairOpts{b: padFor(idA, "10.1.5.0/24")})
	if err := a.d.Initiate("ab", "net"); err != nil {
		t.Fatal(err)
	}
	// B installs its outbound SA once its response is out.
	eventually(t, "B's child", func() bool { _, out, _ := b.k.state(); return len(out) == 1 })
	ao, bo := checkPair(t, a, b)
	want := prefixTS("10.1.5.0/24")
	if len(bo.RemoteTS) != 1 || !sameTS(bo.RemoteTS[0], want) || len(ao.LocalTS) != 1 || !sameTS(ao.LocalTS[0], want) {
		t.Fatalf("selectors: B remote %v, A local %v; want %v", bo.RemoteTS, ao.LocalTS, FormatTS(want))
	}
	if !bo.RemoteID.Equal(idA) || len(bo.Authorized) != 1 || bo.Authorized[0] != netip.MustParsePrefix("10.1.5.0/24") {
		t.Fatalf("B's kernel child: remote id %v, authorized %v", bo.RemoteID, bo.Authorized)
	}
	// One connection, many peers: B's policies and its kernel peer carry
	// A's identity.
	if bo.PolicyName != "ba/net["+idA.String()+"]" || bo.Peer != "ba["+idA.String()+"]" {
		t.Fatalf("B's policy name %q, peer %q", bo.PolicyName, bo.Peer)
	}
	if ao.Authorized != nil {
		t.Fatalf("A has no PAD, yet its child says authorized %v", ao.Authorized)
	}
	if n := b.d.Stats().Failures["pad"]; n != 0 {
		t.Fatalf("pad refusals %d", n)
	}
}

// TestPADOtherAddress: A's PAD entry holds addresses that are not the ones
// it asks for (another mobile node's home address, RFC 4877 §4.2): its
// child is refused with TS_UNACCEPTABLE in IKE_AUTH and again in
// CREATE_CHILD_SA, counted as "pad", and nothing is installed.
func TestPADOtherAddress(t *testing.T) {
	_, a, b := newPair(t, pairOpts{b: padFor(IdentityFromAddr(addrA), "10.3.0.0/16")})
	for i := 1; i <= 2; i++ {
		err := a.d.Initiate("ab", "net")
		if err == nil || !strings.Contains(err.Error(), "TS_UNACCEPTABLE") {
			t.Fatalf("Initiate %d: %v", i, err)
		}
		if established(a) != 1 || established(b) != 1 || !a.k.empty() || !b.k.empty() {
			t.Fatalf("after %d: A %+v B %+v", i, a.d.List(), b.d.List())
		}
		if s := b.d.Stats().Failures; s["pad"] != uint64(i) || s["ts_unacceptable"] != 0 {
			t.Fatalf("after %d: failures %v", i, s)
		}
	}
}

// TestPADUnknownIdentity: a PAD without an entry for A's identity refuses
// A in IKE_AUTH (AUTHENTICATION_FAILED) although its PSK is right; B keeps
// no state.
func TestPADUnknownIdentity(t *testing.T) {
	other := IdentityFromAddr(netip.MustParseAddr("192.0.2.99"))
	_, a, b := newPair(t, pairOpts{b: padFor(other, "10.1.0.0/16")})
	err := a.d.Initiate("ab", "net")
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("Initiate: %v", err)
	}
	eventually(t, "B forgets the IKE SA", func() bool { return len(b.d.List()) == 0 })
	if !a.k.empty() || !b.k.empty() {
		t.Fatal("SAs installed")
	}
	if s := b.d.Stats().Failures; s["pad"] != 1 || s["auth_failed"] != 0 {
		t.Fatalf("failures %v", s)
	}
}

func TestPADConfigErrors(t *testing.T) {
	id := IdentityFromAddr(addrA)
	for _, tc := range []struct {
		name string
		pad  []PADEntry
		want string
	}{
		{"no identity", []PADEntry{{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}, "has no identity"},
		{"no addresses", []PADEntry{{ID: id}}, "has no addresses"},
		{"invalid prefix", []PADEntry{{ID: id, Addrs: []netip.Prefix{{}}}}, "invalid prefix"},
		{"twice", []PADEntry{{ID: id, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			{ID: id, Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}}, "defined twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := conn(t, "x", addrA, addrB, true)
			c.Remote.PAD = tc.pad
			_, err := New(Config{Connections: []Connection{c}, Kernel: newFakeKernel(1), Transport: &transport{n: newNetwork(), addr: addrA}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
}
