package node

// MOBIKE on a gateway, the initiator's side (RFC 4555): the node watches
// the host's addresses (internal/netcfg.AddrWatcher, the mobile node's
// movement detection, node/mobility.go) and, when an address that an IKE
// SA of ours uses as its local address disappears, moves that IKE SA and
// every Child SA of it to another address of the host with
// UPDATE_SA_ADDRESSES (ike.Daemon.Move). RFC 4555 §3.5 gives the update
// to the initiator of the IKE SA alone (the responder follows, and moves
// nothing without one), and leaves to the initiator which of its
// addresses to use: here another usable address of the same family (the
// peer's), one on the interface the old address was on first, else the
// first of the watcher's sorted list. A configured
// local_addrs does not stop the move: the address is gone either way, and
// a move keeps the IKE SA, its SPIs and its children where a new IKE SA
// would not.
//
//	watcher report (its goroutine)   the addresses gone since the last
//	                                 report; the IKE SAs (ike.Daemon.List)
//	                                 whose local address is one of them
//	one goroutine per connection     ike.Daemon.Move(conn, new): the
//	                                 INFORMATIONAL exchange of §3.5, with
//	                                 its COOKIE2 return routability check
//
// Logs: info on each move, warning when no address of the family is left
// or the move fails (the IKE SA is then gone, ike/mobike.go); an IKE SA
// of which we are the responder, or without MOBIKE, is left alone (info).
//
// The watch runs on a gateway (role "gateway"; a home agent's and mobile
// node's IKE SAs follow the bindings, the K flag, node/ike_mobility.go)
// with at least one connection whose mobike is on, on the kernel's TUN
// and sockets only (an injected Device and Conn are not the host's
// addresses). The underlay's sockets must not be bound to the address
// ([underlay] local): a socket bound to it cannot send from another one
// (underlay/ike_linux.go), so the move is skipped with a warning.

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/netcfg"
)

// mobikeWatch moves the gateway's IKE SAs off vanished local addresses.
type mobikeWatch struct {
	log *zap.Logger
	// mobike are the connections with mobike on (ike.Connection.MOBIKE).
	mobike map[string]bool
	// bound are the addresses the underlay's sockets are bound to
	// (UnderlayConfig.Local4, Local6).
	bound []netip.Addr
	// skip are addresses never moved to (the TUN's).
	skip []netip.Addr
	// list is ike.Daemon.List, move ike.Daemon.Move.
	list func() []ike.SAStatus
	move func(conn string, local netip.Addr) error
	// ifaces names the interface of each host address now (nil: none
	// known, no preference).
	ifaces func() map[netip.Addr]string

	mu      sync.Mutex
	started bool
	last    []netip.Addr
	lastIf  map[netip.Addr]string
	closed  bool
	moves   sync.WaitGroup
	watcher io.Closer
}

// startMOBIKE starts the watch of a gateway with MOBIKE connections (the
// file comment); tun, the TUN's name, is not watched. A failure to watch is logged, not fatal: the IKE SAs
// then stay where they are, as before.
func (n *Node) startMOBIKE(tun string) {
	if n.cfg.Role != RoleGateway || n.ikeD == nil || n.cfg.Device != nil {
		return
	}
	on := map[string]bool{}
	for _, c := range n.cfg.IKE.Connections {
		if c.MOBIKE {
			on[c.Name] = true
		}
	}
	if len(on) == 0 {
		return
	}
	m := &mobikeWatch{
		log: n.log.Named("mobike"), mobike: on,
		list: n.ikeD.List, move: n.ikeD.Move, ifaces: hostInterfaces,
	}
	for _, a := range []netip.Addr{n.cfg.Underlay.Local4, n.cfg.Underlay.Local6} {
		if a.IsValid() && !a.IsUnspecified() {
			m.bound = append(m.bound, a.Unmap())
		}
	}
	for _, p := range n.cfg.TUN.Addresses {
		m.skip = append(m.skip, p.Addr().Unmap())
	}
	w, err := netcfg.WatchAddrs(netcfg.WatchConfig{Exclude: []string{tun}, OnError: func(err error) {
		m.mu.Lock()
		closed := m.closed
		m.mu.Unlock()
		if !closed { // a closing watch's netlink socket errors are no news
			m.log.Warn("address watch", zap.Error(err))
		}
	}}, m.changed)
	if err != nil {
		m.log.Warn("cannot watch the host's addresses: MOBIKE will not move the IKE SAs off a vanished address", zap.Error(err))
		return
	}
	m.mu.Lock()
	m.watcher = w
	m.mu.Unlock()
	n.mobike = m
}

// stop ends the watch (before the daemon closes: no move starts after).
func (m *mobikeWatch) stop() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.closed = true
	w := m.watcher
	m.mu.Unlock()
	if w != nil {
		_ = w.Close()
	}
}

// wait waits for the moves in flight (after the daemon closed: they
// return then).
func (m *mobikeWatch) wait() {
	if m != nil {
		m.moves.Wait()
	}
}

// changed is the watcher's report: the usable addresses now. The IKE SAs
// of ours on an address gone since the last report move (§3.5).
func (m *mobikeWatch) changed(addrs []netip.Addr) {
	var ifs map[netip.Addr]string
	if m.ifaces != nil {
		ifs = m.ifaces()
	}
	m.mu.Lock()
	prev, prevIf, first := m.last, m.lastIf, !m.started
	m.started, m.last, m.lastIf = true, addrs, ifs
	closed := m.closed
	m.mu.Unlock()
	if first || closed {
		return
	}
	var gone []netip.Addr
	for _, a := range prev {
		if !slices.Contains(addrs, a) {
			gone = append(gone, a)
		}
	}
	if len(gone) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, sa := range m.list() {
		old := sa.Local.Addr().Unmap()
		if !slices.Contains(gone, old) || seen[sa.Name] || (sa.State != "established" && sa.State != "rekeying") {
			continue
		}
		seen[sa.Name] = true
		fields := []zap.Field{zap.String("conn", sa.Name), zap.Stringer("local", old), zap.Stringer("remote", sa.Remote)}
		switch {
		case !sa.Initiator:
			m.log.Info("MOBIKE: the IKE SA's local address disappeared; we are its responder, and only the initiator moves it (RFC 4555 §3.5)", fields...)
			continue
		case !m.mobike[sa.Name]:
			m.log.Info("MOBIKE: the IKE SA's local address disappeared; its connection has mobike off, so it stays", fields...)
			continue
		}
		if b := m.boundFor(old); b.IsValid() {
			m.log.Warn("MOBIKE: the IKE SA's local address disappeared, but [underlay] local binds the sockets to an address of its family: "+
				"no other source is possible, the IKE SA stays (leave underlay.local empty for MOBIKE)", append(fields, zap.Stringer("bound", b))...)
			continue
		}
		to, ok := m.pick(old, addrs, prevIf[old], ifs)
		if !ok {
			m.log.Warn("MOBIKE: the IKE SA's local address disappeared and no other address of its family is left: the IKE SA stays",
				append(fields, zap.Stringers("addresses", addrs))...)
			continue
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		m.moves.Add(1)
		m.mu.Unlock()
		go m.moveTo(sa.Name, old, to, fields)
	}
}

// moveTo runs one move (off the watcher's goroutine: Move waits for the
// peer's answer).
func (m *mobikeWatch) moveTo(conn string, old, to netip.Addr, fields []zap.Field) {
	defer m.moves.Done()
	fields = append(fields, zap.Stringer("to", to))
	m.log.Info("MOBIKE: the IKE SA's local address disappeared: moving the IKE SA and its children (UPDATE_SA_ADDRESSES, RFC 4555 §3.5)", fields...)
	err := m.move(conn, to)
	switch {
	case err == nil:
		m.log.Info("MOBIKE: moved", fields...)
	case errors.Is(err, ike.ErrNotRunning):
	case errors.Is(err, ike.ErrNoMOBIKE):
		m.log.Warn("MOBIKE: the IKE SA's local address disappeared, but the peer did not negotiate MOBIKE (RFC 4555 §3.3): the IKE SA stays", fields...)
	default:
		m.log.Warn("MOBIKE: the move failed", append(fields, zap.Error(err))...)
	}
}

// boundFor is the underlay's bound address of old's family, if any.
func (m *mobikeWatch) boundFor(old netip.Addr) netip.Addr {
	for _, b := range m.bound {
		if b.Is4() == old.Is4() {
			return b
		}
	}
	return netip.Addr{}
}

// pick chooses the new local address for an IKE SA on old: a usable
// address of old's family (addrs is the watcher's sorted list), not the
// TUN's, on old's interface (oldIf, from the last report) first.
func (m *mobikeWatch) pick(old netip.Addr, addrs []netip.Addr, oldIf string, ifs map[netip.Addr]string) (netip.Addr, bool) {
	var first netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() != old.Is4() || a == old || !usableLocal(a) || slices.Contains(m.skip, a) {
			continue
		}
		if oldIf != "" && ifs[a] == oldIf {
			return a, true
		}
		if !first.IsValid() {
			first = a
		}
	}
	return first, first.IsValid()
}

// usableLocal: an address IKE may move to (the watcher's list holds
// global unicast and private addresses; no link-local, loopback or
// multicast one).
func usableLocal(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsMulticast() &&
		(a.IsGlobalUnicast() || a.IsPrivate())
}

// hostInterfaces names the interface of each address of the host now.
func hostInterfaces() map[netip.Addr]string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := map[netip.Addr]string{}
	for _, i := range ifs {
		as, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					out[ip.Unmap()] = i.Name
				}
			}
		}
	}
	return out
}
