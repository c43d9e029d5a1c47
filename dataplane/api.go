package dataplane

import (
	"errors"
	"net/netip"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// Encap says how ESP packets travel on the underlay.
type Encap uint8

const (
	// EncapRaw: ESP directly over IP (IP protocol 50, RFC 4303).
	EncapRaw Encap = iota
	// EncapUDP: ESP in UDP (RFC 3948), normally port 4500.
	EncapUDP
)

// String returns "raw" or "udp".
func (e Encap) String() string {
	switch e {
	case EncapRaw:
		return "raw"
	case EncapUDP:
		return "udp"
	}
	return "encap?"
}

// UDPEncapPort is the IKE NAT-T / ESP-in-UDP port (RFC 3948 §2.1).
const UDPEncapPort = 4500

// Endpoint is where an ESP packet comes from or goes to on the underlay.
type Endpoint struct {
	// Addr is the remote address; its port is 0 for EncapRaw.
	Addr  netip.AddrPort
	Encap Encap
}

// IsValid reports whether ep names an address (and, for EncapUDP, a port).
func (ep Endpoint) IsValid() bool {
	if !ep.Addr.Addr().IsValid() {
		return false
	}
	switch ep.Encap {
	case EncapRaw:
		return ep.Addr.Port() == 0
	case EncapUDP:
		return ep.Addr.Port() != 0
	}
	return false
}

// String is for logs and the control socket, never the packet path.
func (ep Endpoint) String() string {
	if ep.Encap == EncapUDP {
		return "udp:" + ep.Addr.String()
	}
	return "esp:" + ep.Addr.Addr().String()
}

// ReceiveFunc reads up to len(bufs) ESP packets (len(eps) >= len(bufs)).
// For i < n, bufs[i].Bytes() is an ESP packet starting at the SPI (outer IP
// and UDP headers removed, with room in front: the underlay reads at
// pkt.Headroom or later) and eps[i] is its source. IKE packets (non-ESP
// marker, RFC 3948 §2.2) and NAT keepalives (0xFF, §2.3) are never returned.
// It blocks until at least one packet is available; after the Underlay is
// closed it returns net.ErrClosed. Shaped like wireguard-go conn.ReceiveFunc;
// each one is called from a single goroutine.
type ReceiveFunc func(bufs []*pkt.Buf, eps []Endpoint) (n int, err error)

// Underlay carries ESP packets to and from peers: raw ESP sockets and/or a
// UDP 4500 socket on Linux (underlay_linux.go), channels in tests
// (underlaytest). Shaped like wireguard-go conn.Bind.
type Underlay interface {
	// Open starts receiving and returns one ReceiveFunc per socket.
	Open() ([]ReceiveFunc, error)
	// Send sends bufs[i] to eps[i] (len(eps) >= len(bufs)). bufs[i].Bytes()
	// is an ESP packet, SPI first; the underlay may use its headroom (for a
	// UDP header, say). The caller keeps ownership: Send must not keep bufs
	// after it returns. An error means some packets may not have been sent.
	Send(bufs []*pkt.Buf, eps []Endpoint) error
	// SendKeepalive sends a one-byte 0xFF NAT keepalive (RFC 3948 §2.3) to
	// ep, which must be EncapUDP.
	SendKeepalive(ep Endpoint) error
	// BatchSize is the most packets one ReceiveFunc call returns and the
	// preferred Send batch. It does not change after Open.
	BatchSize() int
	// Close stops the ReceiveFuncs (they return net.ErrClosed).
	Close() error
}

// Hooks are where the mobility layer (mip6, draft-laganier-mext-dsmipv6-ipsec)
// plugs into the packet path. They run on worker goroutines, concurrently,
// per packet: they must not block, allocate or log. Nil hooks cost nothing.
type Hooks struct {
	// AfterSeal runs after an outbound packet is sealed and before it
	// leaves. b.Bytes() is the whole packet, including the outer IP header
	// the SA built; *ep is where it will go (the peer's current endpoint).
	// It may rewrite b (DR-1: outer addresses; DR-3: IPv4/UDP outer) and
	// *ep. Returning false drops the packet (DropAfterSealHook).
	AfterSeal func(b *pkt.Buf, sa *sad.SA, ep *Endpoint) bool
	// BeforeLookup runs when an ESP packet arrives (b.Bytes() is ESP, SPI
	// first), before the SA lookup (DR-4: NAT detection). Returning false
	// drops it (DropBeforeLookupHook).
	BeforeLookup func(b *pkt.Buf, ep Endpoint) bool
}

// PeerConfig describes one remote IPsec peer.
type PeerConfig struct {
	// Name identifies the peer (logs, control socket, SetPeers); unique.
	Name string
	// Endpoint is the initial remote endpoint.
	Endpoint Endpoint
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
}

// Capture sees packets for debugging (the control socket's pcap). It is
// called on worker goroutines, concurrently, per packet, only while set: p is
// only valid during the call.
type Capture interface {
	// Inner sees a cleartext packet: read from the TUN (out) or about to
	// be written to it (!out).
	Inner(p []byte, out bool)
	// Outer sees an ESP packet (SPI first) sent to or received from ep.
	Outer(p []byte, ep Endpoint, out bool)
}

// PeerStatus is a snapshot of one peer.
type PeerStatus struct {
	Name     string
	Endpoint Endpoint
	// LastRoam is when the endpoint last changed by roaming (zero: never).
	LastRoam time.Time
	// Roams counts endpoint changes by roaming.
	Roams uint64
	// KeepalivesSent counts NAT keepalives sent (failed ones not included).
	KeepalivesSent uint64
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
