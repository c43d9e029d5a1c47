package node

import "github.com/mipsec/mipsec/ike"

// Kernel is the node as the IKE daemon's Kernel, for the tests that play
// the daemon.
func (n *Node) Kernel() ike.Kernel { return kernel{n} }

// SetIKEExpirer makes f get the lifetime events of IKE-made SAs (the
// daemon's Expired).
func (n *Node) SetIKEExpirer(f func(inbound bool, spi uint32, hard bool)) {
	n.ik.mu.Lock()
	n.ik.expirer = expirerFunc(f)
	n.ik.mu.Unlock()
}

type expirerFunc func(inbound bool, spi uint32, hard bool)

func (f expirerFunc) Expired(inbound bool, spi uint32, hard bool) { f(inbound, spi, hard) }

// SetIKEAcquirer makes f get the traps' acquires (the daemon's Acquire).
func (n *Node) SetIKEAcquirer(f func(policyName string)) { n.ik.acquirer.Store(&f) }
