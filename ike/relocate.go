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
		moved := 0
		for _, sa := range d.sas {
			if sa.state != stateEstablished || sa.successor != nil || !sa.serves(addr) {
				continue
			}
			fromL, fromR := sa.local, sa.remote
			sa.local = relocated(sa.local, local)
			sa.remote = relocated(sa.remote, remote)
			if sa.local.Port() == portNATT || sa.remote.Port() == portNATT {
				sa.encap = true
			}
			moved++
			d.stats.Relocations++
			d.log.Info("IKE SA moved with the mobile node (K flag, RFC 4877 §7.4)", append(sa.logFields(),
				zap.Stringer("for", addr), zap.Stringer("local_from", fromL), zap.Stringer("local", sa.local),
				zap.Stringer("remote_from", fromR), zap.Stringer("remote", sa.remote))...)
			if len(sa.children) > 0 {
				if err := d.cfg.Kernel.SetEndpoint(sa.conn.cfg.Name, sa.endpoint()); err != nil {
					d.fail("kernel")
					d.log.Warn("kernel: set endpoint failed", append(sa.logFields(), zap.Error(err))...)
				}
			}
		}
		if moved == 0 {
			return fmt.Errorf("%w %v", ErrNoIKESAFor, addr)
		}
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
