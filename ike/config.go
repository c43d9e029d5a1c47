package ike

import (
	"crypto"
	"crypto/x509"
	"io"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// Transport carries IKE messages (RFC 7296 §2.11): UDP port 500, and port
// 4500 where the message follows the four-byte non-ESP marker (RFC 3948
// §2.2) on the socket that also carries ESP in UDP. node implements it
// on the underlay's sockets; the daemon hands inbound datagrams to
// Daemon.Receive.
type Transport interface {
	// Send sends one IKE message from local to remote. To and from port
	// 4500 (either side's port not 500) the transport prepends the
	// non-ESP marker itself; msg is the IKE message only. local's address
	// may be invalid: the kernel picks the source address.
	Send(msg []byte, local, remote netip.AddrPort) error
}

// KeepaliveSender is what a Transport may implement to send NAT-keepalives
// (RFC 3948 §2.3: one 0xFF byte, without the non-ESP marker, from local
// to remote on port 4500). The daemon sends one every Config.Keepalive
// while an IKE SA is up and NAT detection found us behind a NAT.
type KeepaliveSender interface {
	SendKeepalive(local, remote netip.AddrPort) error
}

// Config is one IKE daemon: its connections and the seams below it.
type Config struct {
	Connections []Connection
	Kernel      Kernel
	Transport   Transport
	// Logger gets exchanges, SAs up and down and refusals (rate-limited
	// where an attacker chooses the rate); nil: none. Keys are never
	// logged.
	Logger *zap.Logger
	// Rand is the source of SPIs, nonces and key exchange private values;
	// nil: crypto/rand.
	Rand io.Reader
	// Now is the clock; nil: time.Now. Timers run on the daemon's own
	// goroutine either way.
	Now func() time.Time

	// CookieThreshold is the number of half-open IKE SAs beyond which a
	// responder asks for a COOKIE before keeping any state (RFC 7296
	// §2.6); 0: DefaultCookieThreshold. MaxHalfOpen bounds the half-open
	// table; 0: DefaultMaxHalfOpen.
	CookieThreshold int
	MaxHalfOpen     int
	// Retransmit is the first retransmission timeout, doubled each time up
	// to Retransmits tries (RFC 7296 §2.1); zero: the defaults.
	Retransmit  time.Duration
	Retransmits int
	// Keepalive is the NAT-keepalive interval (RFC 3948 §2.3) where the
	// Transport is a KeepaliveSender; 0: DefaultKeepalive.
	Keepalive time.Duration
	// FragmentSize is the largest IP datagram a protected IKE message or
	// IKE fragment of ours fills where fragmentation was negotiated
	// (RFC 7383 §2.5.1); 0: DefaultFragmentSize; at least 576.
	FragmentSize int
	// InitRate and InitBurst bound the IKE_SA_INIT requests of one
	// source address that make a half-open IKE SA: a token bucket of
	// InitRate per second up to InitBurst (the cookies of §2.6 and
	// MaxHalfOpen bound many sources); 0: DefaultInitRate,
	// DefaultInitBurst.
	InitRate  int
	InitBurst int
	// RekeyGrace is how long the inbound SA a child rekey replaced stays
	// after its Delete, for packets still in flight (RFC 7296 §2.8);
	// 0: DefaultRekeyGrace.
	RekeyGrace time.Duration
}

// Defaults for Config's zero values.
const (
	DefaultCookieThreshold = 32
	DefaultMaxHalfOpen     = 4096
	DefaultRetransmit      = time.Second
	DefaultRetransmits     = 5
	DefaultKeepalive       = 20 * time.Second // strongSwan's keep_alive
	DefaultRekeyGrace      = 2 * time.Second
	DefaultInitRate        = 20
	DefaultInitBurst       = 40
)

// Connection is one configured IKE connection, a swanctl.conf
// `connections.NAME` section.
type Connection struct {
	Name string
	// LocalAddrs is the address (one per family at most) IKE sends from
	// and children use as their outer source. RemoteAddrs are the
	// peer's: the first is where an initiator sends; a responder accepts
	// an IKE_SA_INIT from any address in them (a prefix such as
	// 0.0.0.0/0 for a road-warrior responder).
	LocalAddrs  []netip.Addr
	RemoteAddrs []netip.Prefix
	// LocalPort and RemotePort are the IKE ports; 0: 500. After NAT
	// detection (or with Encap) IKE floats to port 4500 (§2.23).
	LocalPort, RemotePort uint16
	// Proposals are the IKE SA proposals in order of preference; the
	// first proposal's first key exchange method is the one the KE
	// payload of an IKE_SA_INIT carries.
	Proposals []Proposal
	// Encap forces UDP encapsulation of ESP even without a NAT (swanctl's
	// encap = yes), by announcing a NAT_DETECTION_SOURCE_IP that cannot
	// match (§2.23 allows faking it).
	Encap bool
	// Fragmentation offers IKE fragmentation (RFC 7383).
	Fragmentation bool
	// MOBIKE announces MOBIKE_SUPPORTED in IKE_AUTH (RFC 4555 §3.3; swanctl's
	// mobike = yes): where both sides do, the initiator may move the IKE SA
	// and every child to new addresses with UPDATE_SA_ADDRESSES (§3.5).
	MOBIKE bool
	// Pool (a responder's) holds the addresses assigned to initiators
	// that ask for them with a configuration payload (RFC 7296 §2.19, cp.go;
	// a home agent's home addresses, RFC 4877 §9); HomePrefix is answered
	// to MIP6_HOME_PREFIX (RFC 5026 §4.2.1).
	Pool       []netip.Prefix
	HomePrefix netip.Prefix
	// VIPs (an initiator's) asks for an address of each family named, ::
	// or 0.0.0.0 for any (swanctl's vips); RequestHomePrefix asks for the
	// home prefix too.
	VIPs              []netip.Addr
	RequestHomePrefix bool
	// RekeyTime is the IKE SA's rekey interval (0: no IKE rekey); DPDDelay
	// the liveness check interval when no message came from the peer
	// (0: none).
	RekeyTime time.Duration
	DPDDelay  time.Duration
	// KeyingTries is how many times an initiator tries to establish the
	// IKE SA before it gives up (0: forever, with backoff).
	KeyingTries int

	Local  LocalAuth
	Remote RemoteAuth

	Children []Child

	// noSigHash (tests) leaves SIGNATURE_HASH_ALGORITHMS out of
	// IKE_SA_INIT, so that the classic signature methods are used.
	noSigHash bool
}

// AuthMethodName is how a side authenticates: "psk" (RFC 7296 §2.15
// shared key) or "pubkey" (certificates, RFC 7427 signatures or the
// classic RSA/ECDSA methods).
type AuthMethodName string

const (
	AuthPSK    AuthMethodName = "psk"
	AuthPubkey AuthMethodName = "pubkey"
)

// LocalAuth is how this side proves who it is.
type LocalAuth struct {
	Method AuthMethodName
	// ID is the identity sent in IDi/IDr; the zero Identity means the
	// local address (ID_IPV4_ADDR / ID_IPV6_ADDR), or with a certificate
	// its subject DN.
	ID Identity
	// PSK is the shared secret (Method psk). ike keeps its own copy.
	PSK []byte
	// Certs is the certificate chain, leaf first, and Key its private key
	// (Method pubkey): *rsa.PrivateKey, *ecdsa.PrivateKey or
	// ed25519.PrivateKey.
	Certs []*x509.Certificate
	Key   crypto.Signer
}

// RemoteAuth is what this side requires of the peer.
type RemoteAuth struct {
	Method AuthMethodName
	// ID is the identity the peer must present; the zero Identity accepts
	// any identity the peer proves (with psk: the address it used; with
	// pubkey: any certificate that chains to CAs).
	ID Identity
	// PSK is the secret the peer must prove (Method psk); usually the same
	// as LocalAuth.PSK.
	PSK []byte
	// CAs are the trust anchors the peer's certificate chains to (Method
	// pubkey).
	CAs []*x509.Certificate
	// PAD, when not empty, is the responder's peer authorization database
	// (RFC 4301 §4.4.3, pad.go): only the identities it names are
	// accepted, each for Child SAs within its addresses only (a home
	// agent's mobile nodes, RFC 4877 §4.2).
	PAD []PADEntry
}

// Identity is an IKE identity (RFC 7296 §3.5): the ID Type and its data
// as sent on the wire.
type Identity struct {
	Type IDType
	Data []byte
}

// StartAction is what the daemon does with a child when it starts
// (swanctl's start_action).
type StartAction uint8

const (
	StartNone  StartAction = iota // wait for the peer or `ike initiate`
	StartTrap                     // initiate when traffic matches the child's policies
	StartStart                    // initiate at once, and again after DPD or a failure
)

// Child is one configured Child SA, a swanctl.conf `children.NAME`
// section.
type Child struct {
	Name string
	// LocalTS and RemoteTS are the traffic selectors proposed (and, as a
	// responder, the most that is accepted; §2.9 narrowing).
	LocalTS, RemoteTS []TrafficSelector
	// Proposals are the ESP proposals in order of preference; with a DH
	// transform they ask for PFS in CREATE_CHILD_SA (the IKE_AUTH child
	// never has one, §1.2).
	Proposals []Proposal
	Mode      Mode
	Start     StartAction
	// RekeyTime is when the child is rekeyed (soft lifetime); LifeTime
	// when it dies if not (hard); RekeyBytes the same in bytes. Zero:
	// DefaultChildRekey and RekeyTime + 10 %.
	RekeyTime  time.Duration
	LifeTime   time.Duration
	RekeyBytes uint64
	// ReplayWindow is the inbound anti-replay window in packets; 0: esp's
	// default.
	ReplayWindow int
}

// DefaultChildRekey is a child's rekey interval when none is configured
// (strongSwan's default, 1 h).
const DefaultChildRekey = time.Hour
