package ike

import (
	"net/netip"
	"time"
)

// Kernel is what ike needs from below, the way charon has its kernel
// interface: inbound SPIs, the SAs of each Child SA and the policies that
// send traffic into them, and the peer's endpoint. node implements it on
// its SAD, SPD and dataplane peers; tests use a fake. Every method may be
// called from the daemon's goroutine only, never concurrently.
//
// The order of calls is the make-before-break order of RFC 7296 §2.8: the
// inbound SA of a new or rekeyed child is installed (AddInbound) before
// the message that lets the peer use it is sent; the outbound SA and the
// policies follow (AddOutbound) once the exchange is complete (for a
// rekey's responder: once the initiator's Delete of the old child, or a
// later request, shows it has the response); the SAs a rekey replaced are
// removed (DelSA) when the Delete exchange is done, the inbound one
// Config.RekeyGrace later for packets in flight. A rekey never removes
// the policies: AddOutbound with Replaces moves them.
type Kernel interface {
	// AllocSPI returns a fresh inbound ESP SPI (RFC 4303 §2.1: not
	// 0..255), unused and held until AddInbound or ReleaseSPI.
	AllocSPI() (uint32, error)
	// ReleaseSPI gives back an SPI that was allocated but not installed
	// (a failed exchange).
	ReleaseSPI(spi uint32)
	// AddInbound installs c's inbound SA (c.InSPI, c.InKeys) and
	// registers it as identifying c's peer.
	AddInbound(c *ChildSA) error
	// AddOutbound installs c's outbound SA (c.OutSPI, c.OutKeys) and
	// points c's policies (one outbound PROTECT policy per pair of
	// c.LocalTS and c.RemoteTS, under c.PolicyName) at it, replacing the
	// SPI of the child c.Replaces when set (a rekey: the switch is one
	// atomic policy update, so no packet finds no SA).
	AddOutbound(c *ChildSA) error
	// DelSA removes one SA of a child. Deleting an SA that is not there
	// is not an error.
	DelSA(inbound bool, spi uint32) error
	// DelPolicies removes the policies named policyName (the child is
	// gone, not rekeyed).
	DelPolicies(policyName string) error
	// SetEndpoint moves every SA of the IKE SA's peer to new addresses or
	// ports, or to or from UDP encapsulation (NAT-T, RFC 7296 §2.23).
	// ike calls it only after an authenticated IKE message.
	SetEndpoint(peer string, ep Endpoint) error
}

// Endpoint is where a Child SA's ESP goes: the outer addresses and, with
// UDP encapsulation (RFC 3948), the ports (0 without it). Local's address
// is invalid where neither the socket nor the connection's LocalAddrs
// told ike its own address.
type Endpoint struct {
	Local, Remote netip.AddrPort
	// Encap says ESP goes in UDP (RFC 3948) between Local and Remote's
	// ports; false: raw ESP (IP protocol 50) between the addresses.
	Encap bool
	// Follow says a NAT is in front of the peer (RFC 7296 §2.23): its
	// mapping may change, so the kernel may move the peer's ESP to the
	// source of a packet that passed its ICV and replay checks, and then
	// tells the daemon with Daemon.ESPMoved.
	Follow bool
}

// ChildSA is one negotiated Child SA pair as Kernel installs it.
type ChildSA struct {
	// Name is the child's configured name; ID numbers it within the
	// daemon (swanctl's unique id), for logs and `mipsec ike list`.
	Name string
	ID   uint32
	// Peer names the IKE SA's peer: the connection name, followed by
	// "[identity]" of the peer where the connection serves many peers (a
	// PAD, or remote addresses wider than one host). The SAs of all the
	// children of one IKE SA share one endpoint; two road warriors of one
	// connection do not.
	Peer string
	// PolicyName names the child's policies; a rekeyed child keeps the
	// name of the child it replaces.
	PolicyName string
	// Replaces is the outbound SPI of the child this one rekeys, 0 for a
	// new child.
	Replaces uint32

	Mode     Mode
	Endpoint Endpoint

	// ESP transform (RFC 7296 §3.3.2 IDs): Encr with KeyBits (the Key
	// Length attribute, 0 when it has none), Integ (IntegNone for an
	// AEAD), ESN.
	Encr    EncrAlg
	KeyBits int
	Integ   IntegAlg
	ESN     bool

	// InSPI and OutSPI are the SPIs of the inbound SA (ours, chosen by
	// AllocSPI) and the outbound one (the peer's).
	InSPI, OutSPI uint32
	// InKeys and OutKeys are the keys from KEYMAT (RFC 7296 §2.17): for
	// AES-GCM and ChaCha20-Poly1305 Enc is key || 4-byte salt. Kernel
	// copies what it keeps; ike wipes them after the call.
	InKeys, OutKeys SAKeys

	// LocalTS and RemoteTS are the narrowed traffic selectors (§2.9),
	// local first: the outbound policy matches LocalTS → RemoteTS, the
	// inbound SA checks the reverse.
	LocalTS, RemoteTS []TrafficSelector

	// Lifetime holds the SA limits ike asks Kernel to enforce and report
	// (the soft one through Daemon.Expired to start a rekey).
	Lifetime Lifetime
	// ReplayWindow is the inbound anti-replay window in packets
	// (Child.ReplayWindow); 0: esp's default.
	ReplayWindow int

	// RemoteID is the identity the peer proved in IKE_AUTH, and
	// Authorized the addresses its PAD entry holds (RemoteAuth.PAD; nil
	// without a PAD): a home agent binds the tunnel of a mobile node's
	// children to the home address found there (RFC 4877 §4.2, §7.3).
	RemoteID   Identity
	Authorized []netip.Prefix
}

// SAKeys are one direction's ESP keys.
type SAKeys struct {
	Enc, Integ []byte
}

// Mode is a Child SA's mode (RFC 4301 §4.1; transport by
// USE_TRANSPORT_MODE, RFC 7296 §3.10.1).
type Mode uint8

const (
	ModeTunnel Mode = iota
	ModeTransport
)

func (m Mode) String() string {
	if m == ModeTransport {
		return "transport"
	}
	return "tunnel"
}

// Lifetime holds the limits of one SA; zero fields are unlimited.
type Lifetime struct {
	SoftTime, HardTime   time.Duration
	SoftBytes, HardBytes uint64
}
