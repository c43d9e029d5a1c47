package ike

// Moving an IKE SA without an exchange of its own: Mobile IPv6's K flag
// (RFC 4877 §7.4, RFC 6275 §9.5.1 and §11.7.1). A mobile node whose
// Binding Update carried K, and whose home agent answered with K, has
// told the home agent its new care-of address in a message the Binding
// Update SA authenticated; both sides then move the IKE SA that serves the
// home address to the new care-of address, the home agent on accepting the
// BU, the mobile node on the BA. The Child SAs stay where they are: they
// are bound to the home address, and the mobility layer carries them.

import (
	"errors"
	"fmt"
	"net/netip"

	"go.uber.org/zap"
)

// ErrNoIKESAFor: no established IKE SA has a child for the address.
var ErrNoIKESAFor = errors.New("ike: no established IKE SA has a child for the address")

// Relocate moves every established IKE SA with a child whose local or
// remote traffic selectors hold addr as a single address (a home
// address) to the addresses local and remote; an invalid address or a
// port 0 keeps what the IKE SA has. From the next message on the SA, IKE goes there; an
// IKE SA on UDP port 4500 stays in UDP (RFC 7296 §2.23), and one moved to
// port 4500 uses the non-ESP marker from then on. The caller must have
// learnt of the move from an authenticated message (the Binding Update or
// Acknowledgement that carried the K flag): this moves nothing on its own
// evidence. It returns ErrNoIKESAFor when no IKE SA serves addr.
func (d *Daemon) Relocate(addr netip.Addr, local, remote netip.AddrPort) error {
	addr = addr.Unmap()
	return d.call(func() error {
		served := 0
		for _, sa := range d.sas {
			if sa.state != stateEstablished || sa.successor != nil || !sa.serves(addr) {
				continue
			}
			served++
			fromL, fromR := sa.local, sa.remote
			sa.local = relocated(sa.local, local)
			sa.remote = relocated(sa.remote, remote)
			if sa.local == fromL && sa.remote == fromR {
				continue // already there (the first registration)
			}
			if sa.local.Port() == portNATT || sa.remote.Port() == portNATT {
				sa.encap = true
			}
			d.stats.Relocations++
			d.log.Info("IKE SA moved with the mobile node (K flag, RFC 4877 §7.4)", append(sa.logFields(),
				zap.Stringer("for", addr), zap.Stringer("local_from", fromL), zap.Stringer("local", sa.local),
				zap.Stringer("remote_from", fromR), zap.Stringer("remote", sa.remote))...)
			d.setEndpoint(sa)
		}
		if served == 0 {
			return fmt.Errorf("%w %v", ErrNoIKESAFor, addr)
		}
		return nil
	})
}

// InitiateFrom tells the daemon that conn's next initiation goes from the
// local address local (a mobile node's care-of address; Renew's family
// rule picks the remote): an IKE SA being set up to a remote address of
// the other family, which cannot work from local (an IPv6 home agent from
// an IPv4-only link behind a NAT, RFC 5555 §4.1), is dropped and begun
// again at once from local; an established one is left alone (the K flag
// or Renew moves it), as is one being set up to the right family.
func (d *Daemon) InitiateFrom(conn string, local netip.Addr) error {
	local = local.Unmap()
	return d.call(func() error {
		c := d.conn(conn)
		if c == nil {
			return fmt.Errorf("%w: %q", ErrUnknownConnection, conn)
		}
		c.from = local
		sa := d.activeSA(c)
		switch {
		case sa == nil:
			if c.startStart() {
				c.retries, c.retryAt = 0, d.now() // not after a back-off: the MN moved
			}
		case sa.initiator && sa.state < stateEstablished && sa.remote.Addr().Unmap().Is4() != local.Is4():
			d.log.Info("IKE SA set up again from the new address's family", append(sa.logFields(),
				zap.Stringer("remote", sa.remote), zap.Stringer("local", local))...)
			d.removeSA(sa, errors.New("ike: initiating from another address family"))
			if c.startStart() {
				c.retries, c.retryAt = 0, d.now()
			}
		}
		return nil
	})
}

// Renew replaces the IKE SA of connection conn, of which we are the
// initiator, by a new one negotiated from the local address local, with
// every child whose start action is StartStart: what a mobile node does
// after a move when the K flag is not in use (RFC 4877 §7.4). The old IKE
// SA goes without a Delete (its address is gone; the new IKE_AUTH's
// INITIAL_CONTACT tells the peer to drop it, RFC 7296 §2.4), and with it
// its children, until the new ones are up. The initiator sends to the
// first single remote address of local's family. An IKE SA already at
// local is kept.
func (d *Daemon) Renew(conn string, local netip.Addr) error {
	local = local.Unmap()
	return d.call(func() error {
		c := d.conn(conn)
		if c == nil {
			return fmt.Errorf("%w: %q", ErrUnknownConnection, conn)
		}
		if !c.startStart() {
			return fmt.Errorf("ike: renew %s: no child with start_action = start to bring up again", conn)
		}
		sa := d.activeSA(c)
		if sa != nil && sa.state == stateEstablished && sa.local.Addr().Unmap() == local {
			return nil
		}
		if sa != nil {
			if !sa.initiator {
				return fmt.Errorf("ike: renew %s: we are not the IKE SA's initiator", conn)
			}
			d.log.Info("IKE SA renewed from a new address (no K flag, RFC 4877 §7.4)", append(sa.logFields(),
				zap.Stringer("local_from", sa.local), zap.Stringer("local", local))...)
			d.removeSA(sa, errors.New("ike: renewed from a new address"))
		}
		d.stats.Renewals++
		c.from = local
		c.retries, c.retryAt = 0, d.now()
		return nil
	})
}

// Serves reports whether an established IKE SA has a child for addr
// (Relocate's test): a home agent answers a Binding Update's K flag with
// K only when it can move the IKE SA (RFC 4877 §7.4).
func (d *Daemon) Serves(addr netip.Addr) bool {
	addr = addr.Unmap()
	var ok bool
	err := d.call(func() error {
		for _, sa := range d.sas {
			if sa.state == stateEstablished && sa.successor == nil && sa.serves(addr) {
				ok = true
			}
		}
		return nil
	})
	return err == nil && ok
}

// relocated is cur moved to to: to's address where valid, to's port where
// not 0.
func relocated(cur, to netip.AddrPort) netip.AddrPort {
	a, p := cur.Addr(), cur.Port()
	if t := to.Addr().Unmap(); t.IsValid() {
		a = t
	}
	if to.Port() != 0 {
		p = to.Port()
	}
	return netip.AddrPortFrom(a, p)
}

// serves: a live child of sa has addr as a single-address selector.
func (sa *ikeSA) serves(addr netip.Addr) bool {
	for _, ch := range sa.children {
		if ch.gone {
			continue
		}
		for _, ts := range [][]TrafficSelector{ch.localTS, ch.remoteTS} {
			for _, t := range ts {
				if t.Start.Unmap() == addr && t.End.Unmap() == addr {
					return true
				}
			}
		}
	}
	return false
}
