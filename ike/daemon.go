package ike

import (
	"errors"
	"net/netip"
)

// Daemon runs the IKE SAs of a set of connections: it answers and starts
// exchanges, installs Child SAs through its Kernel and keeps them rekeyed.
// All state is owned by one goroutine; the methods below hand it work and
// wait for the answer where they return one.
type Daemon struct {
	cfg Config
}

// ErrUnknownConnection: Initiate, Terminate or Rekey named no configured
// connection or child.
var ErrUnknownConnection = errors.New("no such connection")

// New checks cfg and returns a daemon that is not yet running.
func New(cfg Config) (*Daemon, error) {
	return &Daemon{cfg: cfg}, errors.New("ike: the daemon is not implemented yet")
}

// Start starts the daemon's goroutine and the children whose start action
// is StartStart.
func (d *Daemon) Start() error { return errors.New("ike: not implemented") }

// Close deletes every IKE SA (an INFORMATIONAL Delete, best effort, not
// waiting for retransmissions), removes their children through Kernel and
// stops the daemon.
func (d *Daemon) Close() error { return nil }

// Receive hands the daemon one IKE message (without the non-ESP marker)
// that arrived on local from remote. It copies msg and does not block: a
// full queue is a counted drop (Stats.Failures["queue_full"]).
func (d *Daemon) Receive(msg []byte, local, remote netip.AddrPort) {}

// Initiate starts the named child of connection conn (child "": every
// child), establishing the IKE SA first if there is none.
func (d *Daemon) Initiate(conn, child string) error { return ErrUnknownConnection }

// Terminate deletes the IKE SA of conn and its children.
func (d *Daemon) Terminate(conn string) error { return ErrUnknownConnection }

// Rekey rekeys child of conn, or with child "" the IKE SA itself.
func (d *Daemon) Rekey(conn, child string) error { return ErrUnknownConnection }

// Expired is Kernel's lifetime event for the SA with this SPI: soft starts
// a rekey of its child, hard deletes the child.
func (d *Daemon) Expired(inbound bool, spi uint32, hard bool) {}

// Acquire is Kernel's report that traffic matched the policies of a child
// with StartTrap and found no SA: the child is initiated.
func (d *Daemon) Acquire(policyName string) {}

// List returns the IKE SAs and their children.
func (d *Daemon) List() []SAStatus { return nil }

// Stats returns the daemon's counters.
func (d *Daemon) Stats() Stats { return Stats{} }

// WiresharkKeys returns the keys of the established IKE SAs in the form of
// Wireshark's ikev2_decryption_table.
func (d *Daemon) WiresharkKeys() []WiresharkKey { return nil }
