package node

// The node as the IKE daemon's host (Config.IKE): New builds the daemon
// (package ike) with the node as its Kernel (ike_kernel.go) and the
// underlay's IKE sockets, or Config.IKE.Transport, as its Transport; Start
// starts it once the dataplane runs; Close closes it before anything else,
// so that its Deletes still go out and its children leave through the
// Kernel.

import (
	"errors"
	"net/netip"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/ike"
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
	})
	if err != nil {
		return err
	}
	n.ikeD = d
	n.ik.mu.Lock()
	n.ik.expirer = d
	n.ik.mu.Unlock()
	return nil
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
