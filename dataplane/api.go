package dataplane

import (
	"errors"
	"net/netip"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// ReceiveFunc reads up to len(bufs) ESP packets (len(eps) >= len(bufs)).
// For i < n, bufs[i].Bytes() is an ESP packet starting at the SPI (outer IP
// and UDP headers removed, with room in front: the underlay reads at
// pkt.Headroom or later) and eps[i] is its source; or, when eps[i].Encap is
// EncapIP, a whole IP packet (see EncapIP). For EncapRaw the underlay leaves
// a normalised copy of the outer IP header directly in front of the ESP
// header, in the headroom: IPv4, 20 bytes (no options, IHL 5); IPv6, 40
// bytes (no extension headers, Next Header 50); lengths matching the packet.
// Transport-mode SAs need it (RFC 4303 §3.4.4.2 rebuilds the packet around
// the original header; underlay.WriteOuterHeader writes it). IKE packets
// (non-ESP marker, RFC 3948 §2.2) and NAT keepalives (0xFF, §2.3) are never
// returned. It blocks until at least one packet is available; after the
// Underlay is closed it returns net.ErrClosed. Shaped like wireguard-go
// conn.ReceiveFunc; each one is called from a single goroutine.
//
// It is an alias of the func type, as underlay.ReceiveFunc is: package
// underlay implements Underlay without importing dataplane.
type ReceiveFunc = func(bufs []*pkt.Buf, eps []endpoint.Endpoint) (n int, err error)

// Underlay carries ESP packets to and from peers: raw ESP sockets and/or a
// UDP 4500 socket on Linux (package underlay), channels in tests
// (underlaytest). Shaped like wireguard-go conn.Bind.
type Underlay interface {
	// Open starts receiving and returns one ReceiveFunc per socket.
	Open() ([]ReceiveFunc, error)
	// Send sends bufs[i] to eps[i] (len(eps) >= len(bufs)). bufs[i].Bytes()
	// is an ESP packet, SPI first, or for an EncapIP endpoint a whole IP
	// packet to send header-included; the underlay may use its headroom
	// (for a UDP header, say). The caller keeps ownership: Send must not
	// keep bufs after it returns. An error means some packets may not have
	// been sent. Send is called concurrently (the outbound writer and
	// Dataplane.Inject) and must be safe for that.
	Send(bufs []*pkt.Buf, eps []endpoint.Endpoint) error
	// SendKeepalive sends a one-byte 0xFF NAT keepalive (RFC 3948 §2.3) to
	// ep, which must be EncapUDP.
	SendKeepalive(ep endpoint.Endpoint) error
	// BatchSize is the most packets one ReceiveFunc call returns and the
	// preferred Send batch. It does not change after Open.
	BatchSize() int
	// Close stops the ReceiveFuncs (they return net.ErrClosed).
	Close() error
}

// Hooks are where the mobility layer (mip6, draft-laganier-mext-dsmipv6-ipsec)
// plugs into the packet path. They run on worker (or reader) goroutines, concurrently,
// per packet: they must not block, allocate or log. Nil hooks cost nothing.
type Hooks struct {
	// AfterSeal runs after an outbound packet is sealed and before it
	// leaves. b.Bytes() is the whole packet, including the outer IP header
	// the SA built (tunnel mode) or the packet's own header (transport
	// mode); *ep is where it will go (the peer's current endpoint, else
	// raw ESP to the header's destination). It may rewrite b (DR-1: outer
	// addresses; DR-3: IPv4/UDP outer) and *ep. It may also set ep.Encap
	// to EncapIP: then b.Bytes() is sent whole, header-included, to
	// ep.Addr.Addr() (nothing is stripped). Otherwise the dataplane cuts
	// the packet in front of ESP (the underlay builds its own outer
	// header). Returning false drops the packet (DropAfterSealHook).
	AfterSeal func(b *pkt.Buf, sa *sad.SA, ep *endpoint.Endpoint) bool
	// BeforeLookup runs when an ESP packet arrives (b.Bytes() is ESP, SPI
	// first; for an EncapIP endpoint the whole IP packet), before the SA
	// lookup (DR-4: NAT detection). Returning false drops it
	// (DropBeforeLookupHook).
	BeforeLookup func(b *pkt.Buf, ep endpoint.Endpoint) bool
	// Deliver gets every packet a transport-mode SA opened: p is the
	// decrypted IP packet in home-address form (RFC 6275 §9.3.1: an IPv6
	// Source that came with a Home Address option is the home address and
	// the option now holds the care-of address; RFC 6275 §6.4, RFC 8200
	// §4.4: a type 2 Routing header with Segments Left 1 was processed, so
	// the Destination is the home address, the header holds the care-of
	// address and Segments Left is 0), then MH, ICMPv6, ...; seq is the
	// low 32 bits of the ESP sequence number it carried (the ESP header's
	// field, RFC 4303 §2.2); ep its source. It returns true when it
	// consumed the packet (signaling: Stats.Consumed), false to have it
	// written to the TUN. It runs on worker (or reader) goroutines, concurrently, and
	// p is only valid during the call (copy it). Nil: transport packets go
	// to the TUN.
	Deliver func(p []byte, sa *sad.SA, seq uint32, ep endpoint.Endpoint) bool
}

// PeerConfig describes one remote IPsec peer.
type PeerConfig struct {
	// Name identifies the peer (logs, control socket, SetPeers); unique.
	Name string
	// Endpoint is the initial remote endpoint.
	Endpoint endpoint.Endpoint
	// OutSPIs are the outbound SAs whose packets go to this peer; InSPIs
	// the inbound SAs that identify it (for roaming). An SPI belongs to
	// at most one peer.
	OutSPIs, InSPIs []uint32
	// Roaming makes the endpoint follow the source of the newest
	// authenticated packet on one of InSPIs. Off by default.
	Roaming bool
	// RoamInterval is the least time between two endpoint changes;
	// 0 means DefaultRoamInterval.
	RoamInterval time.Duration
	// Keepalive is the NAT keepalive interval for EncapUDP peers (RFC 3948
	// §4); 0 means DefaultKeepalive, negative turns keepalives off.
	Keepalive time.Duration
}

// Defaults for PeerConfig.
const (
	DefaultRoamInterval = time.Second
	DefaultKeepalive    = 20 * time.Second
)

// Config configures a Dataplane.
type Config struct {
	// TUN is the inner side: cleartext IP packets (golang.zx2c4.com/
	// wireguard/tun Device: the real device on Linux, tuntest.ChannelTUN
	// or netstack in tests). The Dataplane closes it.
	TUN tun.Device
	// Underlay is the outer side: ESP packets. The Dataplane closes it.
	Underlay Underlay
	// SAD and SPD are the databases; the caller keeps writing them.
	SAD *sad.DB
	SPD *spd.DB
	// Peers are the remote peers (see SetPeers).
	Peers []PeerConfig
	// Hooks for the mobility layer; zero means none.
	Hooks Hooks
	// Workers is the number of crypto goroutines; 0 means
	// runtime.GOMAXPROCS(0).
	Workers int
	// Logger gets lifecycle events (never per packet); nil means none.
	Logger *zap.Logger
	// OnPeerEndpoint, when set, is told each time a roaming peer's
	// endpoint moves, on a control goroutine (never per packet).
	OnPeerEndpoint func(peer string, from, to endpoint.Endpoint)
	// OnAcquire, when set, is told that an outbound packet matched a
	// PROTECT policy whose SPI is a trap SPI (1..MaxTrapSPI) without an
	// SA: traffic that wants an SA negotiated (an IKE child with
	// start_action trap). The packet is dropped as DropAcquire. It is
	// called on the packet path (a worker, a reader or Inject's caller),
	// at most once per trap SPI in any 1 to 2 seconds: it must not block.
	OnAcquire func(spi uint32)
	// DropLogInterval is the least time between two drop warnings of one
	// kind (unknown SPI, ICV failure, replay, selector mismatch, policy
	// discard; see droplog.go): each names one dropped packet (SPI, outer
	// source; outbound the inner addresses and protocol) and counts the
	// others since the previous one. They go to Logger at Warn, from a
	// control goroutine. 0 means DefaultDropLogInterval; negative turns
	// them off.
	DropLogInterval time.Duration
	// UnderlayRemotes are outer destinations the underlay sends ESP to
	// that neither a peer's endpoint nor an SA's tunnel remote names: the
	// mobile node's home agent addresses (the mobility layer picks the
	// outer form). With those they identify our own ESP read back from the
	// TUN, a routing loop (DropLoop, loop.go).
	UnderlayRemotes []netip.Addr
	// UDPPort is the underlay's ESP-in-UDP port when it is not 4500
	// (DropLoop); 0: none but 4500 and 4191.
	UDPPort uint16
}

// Capture sees packets for debugging (the control socket's pcap). It is
// called on worker (or reader) goroutines, concurrently, per packet, only while set: p is
// only valid during the call.
type Capture interface {
	// Inner sees a cleartext packet: read from the TUN (out) or about to
	// be written to it (!out).
	Inner(p []byte, out bool)
	// Outer sees an ESP packet (SPI first) sent to or received from ep;
	// for an EncapIP ep the whole IP packet (outer header(s) included).
	Outer(p []byte, ep endpoint.Endpoint, out bool)
}

// PeerStatus is a snapshot of one peer.
type PeerStatus struct {
	Name     string
	Endpoint endpoint.Endpoint
	// LastRoam is when the endpoint last changed by roaming (zero: never).
	LastRoam time.Time
	// Roams counts endpoint changes by roaming.
	Roams uint64
	// KeepalivesSent counts NAT keepalives sent (failed ones not included).
	KeepalivesSent uint64
	// LastReceived is when a packet on one of the peer's InSPIs last
	// passed the ICV, the replay and the selector checks (zero: never),
	// to the second (a coarse clock the control goroutine advances each
	// second). Forged, replayed and refused packets never move it.
	LastReceived time.Time
}

// Errors.
var (
	// ErrInvalidConfig: New or SetPeers got a configuration it cannot use;
	// the error wraps it with the details.
	ErrInvalidConfig = errors.New("dataplane: invalid config")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("dataplane: already started")
	// ErrClosed: the Dataplane was closed.
	ErrClosed = errors.New("dataplane: closed")
)

// DropError is the error Inject returns for a packet it dropped; the drop
// is counted under Reason in Stats as well.
type DropError struct {
	// Reason is the drop counter the packet went to.
	Reason DropReason
	// Err is the underlying error (the underlay's, ErrClosed, ...), or nil.
	Err error
}

// Error implements error: "dataplane: packet dropped: REASON[: ERR]".
func (e *DropError) Error() string {
	s := "dataplane: packet dropped: " + e.Reason.String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err.
func (e *DropError) Unwrap() error { return e.Err }
