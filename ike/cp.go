package ike

// Addresses by configuration payload (RFC 7296 §2.19, §3.15): an initiator
// asks in IKE_AUTH for an address of each family it names
// (Connection.VIPs; a zero-length INTERNAL_IP6_ADDRESS or
// INTERNAL_IP4_ADDRESS) and, for a mobile node, for its home prefix
// (MIP6_HOME_PREFIX, RFC 5026 §4.2.1); a responder with a pool
// (Connection.Pool) assigns one address per family and peer identity from
// it, for as long as an IKE SA of that identity lives (a rekeyed IKE SA
// keeps it), and narrows the remote traffic selectors of the identity's
// children to its addresses (§2.9), as a PAD entry does: that is how a home
// agent gives a mobile node its home address (RFC 4877 §9). An empty pool
// is answered with INTERNAL_ADDRESS_FAILURE and no child (§3.10.1,
// Stats.Failures["pool"]); the IKE SA itself stays up.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"go.uber.org/zap"
)

// maxPoolScan bounds the addresses a pool lookup walks.
const maxPoolScan = 1 << 16

// homePrefixLifetime is the Prefix Lifetime of a MIP6_HOME_PREFIX answer:
// all ones, infinite (RFC 5026 §4.2.1).
const homePrefixLifetime = 0xffffffff

// leases are a connection's assigned addresses by peer identity.
type leases struct {
	byID map[string][]netip.Addr
	used map[netip.Addr]string
}

// leaseOf returns the identity's addresses.
func (c *connState) leaseOf(id Identity) []netip.Addr {
	if c.leases == nil {
		return nil
	}
	return c.leases.byID[id.String()]
}

// assign returns id's address of family v4 from c's pool, the one it has
// if any; ok false when the pool of that family is exhausted.
func (c *connState) assign(id Identity, v4 bool) (netip.Addr, bool) {
	if c.leases == nil {
		c.leases = &leases{byID: map[string][]netip.Addr{}, used: map[netip.Addr]string{}}
	}
	key := id.String()
	for _, a := range c.leases.byID[key] {
		if a.Is4() == v4 {
			return a, true
		}
	}
	for _, p := range c.cfg.Pool {
		if p.Addr().Is4() != v4 {
			continue
		}
		a := p.Masked().Addr()
		if p.Bits() < a.BitLen()-1 {
			a = a.Next() // not the subnet(-router anycast) address
		}
		for n := 0; n < maxPoolScan && a.IsValid() && p.Contains(a); n, a = n+1, a.Next() {
			if v4 && p.Bits() < 31 && !p.Contains(a.Next()) {
				break // the IPv4 broadcast address
			}
			if _, taken := c.leases.used[a]; taken {
				continue
			}
			c.leases.used[a] = key
			c.leases.byID[key] = append(c.leases.byID[key], a)
			return a, true
		}
	}
	return netip.Addr{}, false
}

// releaseLease frees the addresses of sa's peer once no live IKE SA of c has that identity.
func (d *Daemon) releaseLease(sa *ikeSA) {
	c := sa.conn
	if c.leases == nil {
		return
	}
	key := sa.remoteID.String()
	if len(c.leases.byID[key]) == 0 {
		return
	}
	for _, o := range d.sas {
		if o != sa && o.conn == c && o.state != stateDead && o.remoteID.Equal(sa.remoteID) {
			return
		}
	}
	for _, a := range c.leases.byID[key] {
		delete(c.leases.used, a)
	}
	d.log.Info("addresses back in the pool", append(sa.logFields(), zap.String("remote_id", key),
		zap.Stringers("addrs", c.leases.byID[key]))...)
	delete(c.leases.byID, key)
}

// cpRequest is the initiator's CP(CFG_REQUEST), nil when it asks for
// nothing.
func cpRequest(c *Connection) *CP {
	if len(c.VIPs) == 0 && !c.RequestHomePrefix {
		return nil
	}
	cp := &CP{CfgType: CFG_REQUEST}
	for _, v := range c.VIPs {
		v = v.Unmap()
		switch {
		case v.Is4() && v.IsUnspecified():
			cp.Attributes = append(cp.Attributes, CPAttribute{Type: INTERNAL_IP4_ADDRESS})
		case v.Is4():
			cp.Attributes = append(cp.Attributes, CPAttribute{Type: INTERNAL_IP4_ADDRESS, Value: v.AsSlice()})
		case v.IsUnspecified():
			cp.Attributes = append(cp.Attributes, CPAttribute{Type: INTERNAL_IP6_ADDRESS})
		default:
			cp.Attributes = append(cp.Attributes, CPAttribute{Type: INTERNAL_IP6_ADDRESS, Value: append(v.AsSlice(), 128)})
		}
	}
	if c.RequestHomePrefix {
		cp.Attributes = append(cp.Attributes, CPAttribute{Type: MIP6_HOME_PREFIX})
	}
	return cp
}

// cpAnswer is the responder's answer to the initiator's CP request: the
// CP(CFG_REPLY) with the addresses assigned (and the home prefix where
// asked for and configured; a family the pool has none of left out), or
// the INTERNAL_ADDRESS_FAILURE notify when it has none of any family asked
// for; nil, nil when the connection has no pool
// or the request asks for no address (§3.15.4: a responder may ignore
// what it does not do).
func (d *Daemon) cpAnswer(sa *ikeSA, req *CP) (reply *CP, failure *Notify) {
	c := sa.conn
	if req == nil || req.CfgType != CFG_REQUEST || len(c.cfg.Pool) == 0 {
		return nil, nil
	}
	reply = &CP{CfgType: CFG_REPLY}
	asked := map[bool]bool{}
	assigned, refused := 0, false
	for _, at := range req.Attributes {
		switch at.Type {
		case INTERNAL_IP4_ADDRESS, INTERNAL_IP6_ADDRESS:
			v4 := at.Type == INTERNAL_IP4_ADDRESS
			if asked[v4] {
				continue // one address per family
			}
			asked[v4] = true
			a, ok := c.assign(sa.remoteID, v4)
			if !ok {
				// The other family may still be served (§3.15.4).
				d.log.Info("no address of the family left in the pool", append(sa.logFields(),
					zap.String("remote_id", sa.remoteID.String()), zap.Bool("ipv4", v4))...)
				refused = true
				continue
			}
			assigned++
			v := a.AsSlice()
			if !v4 {
				v = append(v, 128)
			}
			reply.Attributes = append(reply.Attributes, CPAttribute{Type: at.Type, Value: v})
		case MIP6_HOME_PREFIX:
			if p := c.cfg.HomePrefix; p.IsValid() && p.Addr().Is6() {
				v := binary.BigEndian.AppendUint32(nil, homePrefixLifetime)
				v = append(append(v, p.Masked().Addr().AsSlice()...), byte(p.Bits()))
				reply.Attributes = append(reply.Attributes, CPAttribute{Type: MIP6_HOME_PREFIX, Value: v})
			}
		}
	}
	if assigned == 0 && refused {
		d.refuse("pool", "no address left in the pool for the initiator (RFC 7296 §3.15.4)", append(sa.logFields(),
			zap.String("remote_id", sa.remoteID.String()))...)
		return nil, &Notify{NotifyType: INTERNAL_ADDRESS_FAILURE}
	}
	if len(reply.Attributes) == 0 {
		return nil, nil
	}
	d.log.Info("addresses assigned to the initiator", append(sa.logFields(), zap.String("remote_id", sa.remoteID.String()),
		zap.Stringers("addrs", c.leaseOf(sa.remoteID)))...)
	return reply, nil
}

// cpReply reads the responder's CP(CFG_REPLY) into sa: the addresses
// assigned to us and the home prefix. A malformed attribute is an error.
func cpReply(sa *ikeSA, cp *CP) error {
	if cp == nil || cp.CfgType != CFG_REPLY {
		return nil
	}
	for _, at := range cp.Attributes {
		switch at.Type {
		case INTERNAL_IP4_ADDRESS:
			a, ok := netip.AddrFromSlice(at.Value)
			if !ok || len(at.Value) != 4 {
				return fmt.Errorf("ike: INTERNAL_IP4_ADDRESS of %d bytes, want 4", len(at.Value))
			}
			sa.vips = append(sa.vips, a)
		case INTERNAL_IP6_ADDRESS:
			if len(at.Value) != 17 {
				return fmt.Errorf("ike: INTERNAL_IP6_ADDRESS of %d bytes, want 17", len(at.Value))
			}
			sa.vips = append(sa.vips, netip.AddrFrom16([16]byte(at.Value[:16])))
		case MIP6_HOME_PREFIX:
			if len(at.Value) != 21 || at.Value[20] > 128 {
				return fmt.Errorf("ike: MIP6_HOME_PREFIX of %d bytes, want 21 (RFC 5026 §4.2.1)", len(at.Value))
			}
			sa.homePrefix = netip.PrefixFrom(netip.AddrFrom16([16]byte(at.Value[4:20])), int(at.Value[20])).Masked()
		}
	}
	return nil
}

// leasePrefixes are addrs as host prefixes (ChildSA.Authorized).
func leasePrefixes(addrs []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// leasedNarrow narrows remote to the addresses leased to sa's peer, if it
// has any; refused when nothing is left.
func (sa *ikeSA) leasedNarrow(remote []TrafficSelector) ([]TrafficSelector, bool) {
	l := sa.conn.leaseOf(sa.remoteID)
	if len(l) == 0 {
		return remote, false
	}
	out := NarrowTS(prefixSelectors(leasePrefixes(l)), remote)
	return out, len(out) == 0
}

// sortedVIPs is a copy of addrs, IPv6 first.
func sortedVIPs(addrs []netip.Addr) []netip.Addr {
	out := slices.Clone(addrs)
	slices.SortFunc(out, func(a, b netip.Addr) int { return b.BitLen() - a.BitLen() })
	return out
}
