package ike

// The peer authorization database (RFC 4301 §4.4.3) of a responder: which
// authenticated identity may have Child SAs for which addresses. A home
// agent needs it (RFC 4877 §4.2, §7.3): every mobile node proves who it is
// with the same kind of credential, and one must not get SAs for another's
// home address. The PAD is checked twice: an identity without an entry is
// refused in IKE_AUTH (AUTHENTICATION_FAILED), and the remote traffic
// selectors of every child it asks for, in IKE_AUTH or CREATE_CHILD_SA, are
// narrowed (§2.9) to its entry's addresses, so a child for an address
// outside them gets TS_UNACCEPTABLE. Both count as Stats.Failures["pad"].

import (
	"errors"
	"fmt"
	"net/netip"
)

// PADEntry is one entry of a connection's PAD (RFC 4301 §4.4.3.1, the
// child SA authorization data): a peer that authenticates as ID may have
// Child SAs whose remote traffic selectors lie within Addrs.
type PADEntry struct {
	ID    Identity
	Addrs []netip.Prefix
}

// errNoPADEntry: the peer's identity has no PAD entry.
var errNoPADEntry = errors.New("ike: the identity has no entry in the connection's peer authorization database (RFC 4301 §4.4.3)")

// checkPAD is a connection's PAD as New checks it: every entry names an
// identity and at least one address, and no identity twice.
func checkPAD(pad []PADEntry) error {
	for i, e := range pad {
		if e.ID.IsZero() {
			return fmt.Errorf("pad entry %d has no identity", i+1)
		}
		if len(e.Addrs) == 0 {
			return fmt.Errorf("pad entry %s has no addresses", e.ID)
		}
		for _, p := range e.Addrs {
			if !p.IsValid() {
				return fmt.Errorf("pad entry %s: invalid prefix %v", e.ID, p)
			}
		}
		for _, o := range pad[:i] {
			if o.ID.Equal(e.ID) {
				return fmt.Errorf("pad entry %s defined twice", e.ID)
			}
		}
	}
	return nil
}

// padEntry returns the PAD entry of peer in c; ok is true with a nil
// entry when c has no PAD (everything the connection's selectors allow).
func padEntry(c *Connection, peer Identity) (e *PADEntry, ok bool) {
	if len(c.Remote.PAD) == 0 {
		return nil, true
	}
	for i := range c.Remote.PAD {
		if c.Remote.PAD[i].ID.Equal(peer) {
			return &c.Remote.PAD[i], true
		}
	}
	return nil, false
}

// prefixSelectors are the traffic selectors of ps (any protocol and port):
// a PAD entry's addresses, or the host prefixes a pool leased (cp.go).
func prefixSelectors(ps []netip.Prefix) []TrafficSelector {
	out := make([]TrafficSelector, len(ps))
	for i, p := range ps {
		out[i] = TSFromPrefix(p.Masked())
	}
	return out
}

// padNarrow narrows remote, a child's narrowed remote selectors, to what
// sa's peer is authorized for; refused reports that the PAD, and not the
// selectors, left nothing.
func (sa *ikeSA) padNarrow(remote []TrafficSelector) (out []TrafficSelector, refused bool) {
	e, ok := padEntry(&sa.conn.cfg, sa.remoteID)
	switch {
	case !ok:
		return nil, true
	case e != nil:
		if remote = NarrowTS(prefixSelectors(e.Addrs), remote); len(remote) == 0 {
			return nil, true
		}
	}
	// The addresses a pool gave the peer (cp.go) narrow the same way.
	return sa.leasedNarrow(remote)
}
