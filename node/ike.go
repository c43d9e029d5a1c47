package node

// The node as the IKE daemon's host (Config.IKE): New builds the daemon
// (package ike) with the node as its Kernel (ike_kernel.go) and the
// underlay's IKE sockets, or Config.IKE.Transport, as its Transport; Start
// starts it once the dataplane runs; Close closes it before anything else,
// so that its Deletes still go out and its children leave through the
// Kernel.

import (
	"errors"
	"fmt"
	"net/netip"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/sad"
)

// ikeSender sends one IKE message (underlay.Linux.SendIKE).
type ikeSender func(msg []byte, local, remote netip.AddrPort) error

// ikeTransport is the node's ike.Transport: the underlay's sockets once
// Start opened them.
type ikeTransport struct{ n *Node }

func (t ikeTransport) Send(msg []byte, local, remote netip.AddrPort) error {
	s := t.n.ikeUL.Load()
	if s == nil {
		return errors.New("node: no IKE sockets (the node is not started, or its injected Conn has no SendIKE: set Config.IKE.Transport)")
	}
	return (*s)(msg, local, remote)
}

// newIKE builds the daemon of cfg.IKE, if it has connections.
func (n *Node) newIKE() error {
	ic := n.cfg.IKE
	if len(ic.Connections) == 0 {
		return nil
	}
	var tr ike.Transport = ikeTransport{n}
	if ic.Transport != nil {
		tr = ic.Transport
	}
	d, err := ike.New(ike.Config{
		Connections: ic.Connections, Kernel: kernel{n}, Transport: tr, Logger: n.log.Named("ike"),
		CookieThreshold: ic.CookieThreshold, MaxHalfOpen: ic.MaxHalfOpen,
		Retransmit: ic.Retransmit, Retransmits: ic.Retransmits,
		FragmentSize: ic.FragmentSize, InitRate: ic.InitRate, InitBurst: ic.InitBurst,
	})
	if err != nil {
		return err
	}
	n.ikeD = d
	n.ik.mu.Lock()
	n.ik.expirer = d
	n.ik.mu.Unlock()
	acq := d.Acquire
	n.ik.acquirer.Store(&acq)
	return n.installTraps(ic.Connections)
}

// installTraps gives every child with start_action trap (ike.StartTrap) a
// trap SPI and its outbound trap policies: PROTECT with that SPI, which no
// SA has (dataplane/acquire.go), over the pairs of its configured traffic
// selectors, "dynamic" ones resolved to the connection's addresses. Its
// traffic then drops as dataplane.DropAcquire and tells the daemon
// (onAcquire), until AddOutbound's policies take their place; DelPolicies
// puts them back.
func (n *Node) installTraps(cs []ike.Connection) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	spi := uint32(0)
	for _, c := range cs {
		var remotes []netip.Addr
		for _, p := range c.RemoteAddrs {
			if p.IsSingleIP() {
				remotes = append(remotes, p.Addr())
			}
		}
		for _, ch := range c.Children {
			if ch.Start != ike.StartTrap {
				continue
			}
			name := c.Name + "/" + ch.Name // the daemon's PolicyName (ike/child.go)
			var sels []sad.Selector
			for _, l := range resolveTrapTS(ch.LocalTS, c.LocalAddrs) {
				for _, r := range resolveTrapTS(ch.RemoteTS, remotes) {
					if s, ok := tsSelector(l, r); ok {
						sels = append(sels, s)
					}
				}
			}
			if len(sels) == 0 {
				n.log.Warn("ike: a trap child's traffic selectors match no packet here (dynamic without an address?): no trap",
					zap.String("policies", name))
				continue
			}
			if spi++; spi > dataplane.MaxTrapSPI {
				return fmt.Errorf("node: more than %d children with start_action trap", dataplane.MaxTrapSPI)
			}
			n.ik.traps[name] = ikeTrap{spi: spi, sels: sels}
			n.ik.trapSPIs[spi] = name
			if err := n.setIKEPolicies(name, sad.Outbound, n.trapPolicies(name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolveTrapTS is ts with each "dynamic" selector replaced by one per
// address of addrs (none: left out).
func resolveTrapTS(ts []ike.TrafficSelector, addrs []netip.Addr) []ike.TrafficSelector {
	var out []ike.TrafficSelector
	for _, t := range ts {
		if !ike.IsDynamic(t) {
			out = append(out, t)
			continue
		}
		for _, a := range addrs {
			out = append(out, ike.ResolveDynamic(t, a))
		}
	}
	return out
}

// onAcquire is dataplane.Config.OnAcquire: traffic hit the trap of spi
// (rate-limited by the dataplane; the daemon limits initiations again).
// It does not block: the daemon's Acquire posts to its goroutine.
func (n *Node) onAcquire(spi uint32) {
	name, ok := n.ik.trapSPIs[spi]
	if !ok {
		return
	}
	if f := n.ik.acquirer.Load(); f != nil {
		(*f)(name)
	}
}

// startIKE gives the daemon the underlay's IKE sockets and starts it.
func (n *Node) startIKE(ul dataplane.Underlay) error {
	if n.ikeD == nil {
		return nil
	}
	if s, ok := ul.(interface {
		SendIKE(msg []byte, local, remote netip.AddrPort) error
	}); ok && n.cfg.IKE.Transport == nil {
		f := ikeSender(s.SendIKE)
		n.ikeUL.Store(&f)
	}
	if err := n.ikeD.Start(); err != nil {
		return err
	}
	n.ikeRunning.Store(true)
	return nil
}

// IKE returns the node's IKE daemon (Initiate, Terminate, List, Stats),
// nil when Config.IKE has no connections.
func (n *Node) IKE() *ike.Daemon { return n.ikeD }

// ReceiveIKE hands the daemon one IKE message (without the non-ESP
// marker) that arrived on local from remote: the underlay's IKE sockets
// call it, and so does the embedder of a Config.IKE.Transport. It copies
// msg and does not block (ike.Daemon.Receive); without a daemon the
// message is dropped.
func (n *Node) ReceiveIKE(msg []byte, local, remote netip.AddrPort) {
	if n.ikeD != nil {
		n.ikeD.Receive(msg, local, remote)
	}
}

// ikeSACount is the number of IKE SAs the daemon holds (Status).
func (n *Node) ikeSACount() int {
	if !n.ikeRunning.Load() {
		return 0 // the daemon answers only while its goroutine runs
	}
	return n.ikeD.Stats().IKESAs
}

// ikeWants500 reports whether a connection uses UDP 500 locally (its
// LocalPort is 0 or 500), so that the underlay opens port 500.
func ikeWants500(cs []ike.Connection) bool {
	for _, c := range cs {
		if c.LocalPort == 0 || c.LocalPort == 500 {
			return true
		}
	}
	return false
}
