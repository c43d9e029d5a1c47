package underlay

// Linux underlay: raw ESP sockets (IP protocol 50) and ESP-in-UDP sockets
// (RFC 3948, port 4500), batched with sendmmsg (golang.org/x/net ipv4/ipv6
// PacketConn WriteBatch) and recvmmsg (mmsg_linux.go), and UDP GSO
// (UDP_SEGMENT) / GRO (UDP_GRO) where the kernel offers them. Shaped like
// wireguard-go conn/bind_std.go.
//
// Receive, one ReceiveFunc per socket, each called from one goroutine:
//
//	raw4:  recvmmsg into bufs[i].B[Headroom:]   -> [IPv4 hdr][ESP]  strip IHL
//	       (options: the fixed 20 bytes move up to ESP, IHL 5: normalised)
//	raw6:  recvmmsg into bufs[i].B[Headroom:]   -> [ESP]            (no IPv6 hdr)
//	       the normalised IPv6 header is written in front: source from
//	       msg_name, destination the bound address or, bound to ::, from
//	       IPV6_PKTINFO
//	udp:   recvmmsg into bufs[i].B[Headroom:]   -> [0xFF] | [0000 IKE] | [ESP]
//	       (IKE -> Config.IKE, ike_linux.go)
//	udp 500 (IKE500): every datagram -> Config.IKE
//	       from source port 4191: [IP packet] -> EncapIP (RFC 5555 §4.1)
//	udp 4191 (DSMIPv6): [IP packet] -> EncapIP, from (IPv4 source, port)
//	dstopts/routing (ExtHeaders): raw IPv6 sockets for IP protocols 60 and
//	       43; recvmmsg into bufs[i].B[Headroom+40:] -> [ext hdrs][...];
//	       the 40-byte IPv6 header is rebuilt at Headroom (source from
//	       msg_name, destination as raw6) -> EncapIP, from (source, 0)
//	udp+GRO: recvmmsg into the receiver's own scratch Bufs, one coalesced
//	       datagram each (UDP_GRO cmsg = segment size), then each segment is
//	       copied into the caller's next buf; segments left over wait in the
//	       scratch for the next call.
//
// Drops (keepalives, IKE, malformed) compact bufs in place by swapping Buf
// pointers, so the caller keeps every Buf it handed in.
//
// Header-included sends (EncapIP): IPPROTO_RAW sockets, IPv4 (raw(7):
// IP_HDRINCL implied) and IPv6 (raw(7): IPv6 IPPROTO_RAW implies the header
// too), opened at Open when DSMIPv6 or ExtHeaders is set, else at the first
// EncapIP Send.
//
// Verified on Linux 6.18 (no CONFIG_IPV6_MIP6): a raw IPv6 socket for IP
// protocol 60 receives a copy of IPv6/DestOpts(HAO)/ESP sent to a local
// address, and one for 43 a copy of IPv6/RH type 2 (Segments Left 1)/ESP,
// each starting at the extension header (the kernel hands raw sockets a
// copy for every Next Header it walks, ip6_protocol_deliver_rcu); the
// kernel itself then discards both (unknown option type 201 / routing type
// 2, ICMPv6 Parameter Problem), so the raw ESP socket never sees them. A
// kernel with CONFIG_IPV6_MIP6 would process them and could hand the ESP to
// the raw ESP socket as well: the copy is then an ESP replay and is
// dropped by the anti-replay check.
//
// Send groups consecutive packets by socket (raw/UDP × v4/v6) into runs of at
// most BatchSize, builds one pooled []ipv6.Message per run and loops
// WriteBatch over partial writes. With GSO, consecutive UDP packets to the
// same endpoint whose sizes allow it (all equal, the last may be shorter) are
// gathered into one message with one iovec per packet and a UDP_SEGMENT
// cmsg: no copy. Send never changes the packets (b.Bytes()); only the
// AF_PACKET path below writes into their headroom.
//
// PacketSocket (pktsock_linux.go): raw ESP goes out through an AF_PACKET
// SOCK_DGRAM socket with PACKET_QDISC_BYPASS (packet(7)): the outer IPv4
// (DF as the SA decided; with DF ID 0, RFC 6864 atomic datagrams) or IPv6
// header is written into each
// Buf's headroom, in front of the ESP packet, and one sendmmsg carries a
// sockaddr_ll (interface, next hop's MAC) per message, from a next-hop
// cache fed by netlink (route, neighbour, link tables; invalidated by their
// events). Packets it cannot send that way (next hop unresolved, longer
// than the MTU) take the raw socket, in order.
//
// DF (RFC 4301 §8.1): the outer IPv4 header's DF bit is the one the SA
// decided, read from the header the dataplane's cut leaves in front of ESP
// (frontDF, outer.go); the raw ESP socket sends DF clear, the UDP socket
// DF set (GSO included), and the other setting of each leaves through the
// header-included socket with the header written here (route). IPv6 has
// no DF bit.
//
// UDP checksums (RFC 3948 §2.1): over IPv4 the sender SHOULD send a zero
// checksum and the receiver MUST NOT depend on it being zero. The kernel
// computes real ones here (SO_NO_CHECK cannot be combined with UDP_SEGMENT,
// and a non-zero checksum is always acceptable to the peer) and verifies
// received ones, accepting zero over IPv4. IPv6 always needs one (RFC 8200
// §8.1). NAT-keepalives (§2.3) are the same.
//
// Allocations: none per packet in steady state. Send uses x/net's WriteBatch
// (sendmmsg) with pooled messages and addresses. Receive uses recvmmsg
// directly (mmsg_linux.go), because x/net's ReadBatch allocates a net.Addr
// per message.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// Mode selects which sockets New opens.
type Mode uint8

const (
	// ModeRaw opens raw ESP sockets (IP protocol 50, RFC 4303).
	ModeRaw Mode = 1 << iota
	// ModeUDP opens ESP-in-UDP sockets (RFC 3948) on UDPPort.
	ModeUDP
	// ModeBoth opens both.
	ModeBoth = ModeRaw | ModeUDP
)

// DefaultBatchSize is wireguard-go's conn.IdealBatchSize.
const DefaultBatchSize = 128

const (
	// udpSegmentMaxDatagrams is the kernel's UDP_MAX_SEGMENTS on older
	// kernels (64; newer ones allow more). It bounds both the datagrams one
	// GSO send carries and those one GRO read returns.
	udpSegmentMaxDatagrams = 64
	// Largest UDP payloads; a GSO send beyond them fails with EMSGSIZE.
	maxIPv4UDPPayload = 1<<16 - 1 - header.IPv4MinHeaderLen - header.UDPHeaderLen
	maxIPv6UDPPayload = 1<<16 - 1 - header.UDPHeaderLen
	// socketBufferSize is asked for with SO_{RCV,SND}BUF and, with
	// CAP_NET_ADMIN, SO_{RCV,SND}BUFFORCE (as wireguard-go does).
	socketBufferSize = 7 << 20
	// gsoCmsgData is the size of the UDP_SEGMENT / UDP_GRO value (u16).
	gsoCmsgData = 2
)

// gsoControlSize is the OOB space for one UDP_SEGMENT or UDP_GRO cmsg.
var gsoControlSize = unix.CmsgSpace(gsoCmsgData)

// Config configures New.
type Config struct {
	// IPv4 and IPv6 are the local addresses to bind. The zero Addr opens no
	// socket of that family; an unspecified address (0.0.0.0, ::) binds
	// all. At least one must be set.
	IPv4, IPv6 netip.Addr
	// Mode says which sockets to open; zero means ModeBoth.
	Mode Mode
	// UDPPort is the ESP-in-UDP port; zero means UDPEncapPort (4500,
	// RFC 3948 §2.1).
	UDPPort uint16
	// Mark, when non-zero, is set as SO_MARK on every socket (policy
	// routing around the tunnel).
	Mark uint32
	// BatchSize is BatchSize(); zero means DefaultBatchSize.
	BatchSize int
	// DisableGSO and DisableGRO turn the UDP offloads off even where the
	// kernel offers them (tests, benchmarks, broken drivers).
	DisableGSO, DisableGRO bool
	// Stats receives the counters; nil means New allocates them
	// (see Linux.Stats).
	Stats *Stats
	// DSMIPv6 opens a UDP socket on port 4191 (DSMIPv6Port) of the IPv4
	// address: the home agent's end of the Dual-Stack MIPv6 IPv4 tunnel
	// (RFC 5555 §4.1), where binding updates from IPv4 care-of addresses
	// arrive. Its datagrams are returned as EncapIP. Needs IPv4.
	DSMIPv6 bool
	// ExtHeaders opens raw IPv6 sockets for IP protocols 60 (Destination
	// Options) and 43 (Routing) on the IPv6 address, to receive the
	// packets with a Home Address option (RFC 6275 §6.3) or a type 2
	// Routing header (§6.4) that the kernel does not process; they are
	// returned as EncapIP with the IPv6 header rebuilt. Needs IPv6.
	ExtHeaders bool
	// PacketSocket sends raw ESP (EncapRaw, IPv4 and IPv6) through an
	// AF_PACKET SOCK_DGRAM socket with PACKET_QDISC_BYPASS instead of the
	// raw IP socket: the underlay writes the outer IP header itself and
	// takes the next hop's link-layer address from the kernel's route and
	// neighbour tables (netlink). It saves the kernel's IP output path per
	// packet, but such packets skip netfilter (OUTPUT, POSTROUTING), the
	// egress qdisc and kernel fragmentation, so it is off by default: an
	// operator turns it on knowingly. Packets whose next hop is not
	// resolved yet, or that are longer than the link MTU, still go through
	// the raw socket (counted as TxPacketSocketFallback). Off: zero.
	PacketSocket bool
	// IKE, when set, receives the IKE messages that arrive on the
	// ESP-in-UDP sockets behind the non-ESP marker (RFC 3948 §2.2; msg
	// without the marker) and on the UDP 500 sockets (IKE500): msg is
	// valid only during the call, which runs on the socket's receive
	// goroutine and must not block. local is the datagram's destination
	// (from IP_PKTINFO / IPV6_PKTINFO on a socket bound to the wildcard:
	// IKE's NAT detection hashes it, RFC 7296 §2.23), remote its source.
	// Nil: such datagrams are dropped and counted (RxNonESP).
	IKE func(msg []byte, local, remote netip.AddrPort)
	// IKE500 opens a UDP socket on port 500 (IKEPort, RFC 7296 §2) for
	// each configured family, bound like the others and with their Mark
	// (IKE never enters the TUN); its datagrams go to IKE. Needs IKE.
	IKE500 bool
}

// IKEPort is IKE's UDP port (RFC 7296 §2).
const IKEPort = 500

// Stats are the Linux underlay's own counters: packets it consumed or
// refused before they reached the dataplane. Fields are updated once per
// batch, atomically.
type Stats struct {
	// RxKeepalives counts NAT keepalives received (one byte 0xFF,
	// RFC 3948 §2.3); they are ignored as the RFC says.
	RxKeepalives atomic.Uint64
	// RxNonESP counts UDP datagrams with the non-ESP marker (IKE,
	// RFC 3948 §2.2) dropped because there is no Config.IKE.
	RxNonESP atomic.Uint64
	// RxMalformed counts datagrams too short for ESP, SPI 0 (reserved,
	// RFC 4303 §2.1; RFC 3948 §2.2 relies on it) or, for raw IPv4, a bad
	// IPv4 header.
	RxMalformed atomic.Uint64
	// RxFragments counts raw IPv4 packets that arrived as fragments (the
	// kernel reassembles before raw delivery, so this should stay 0).
	RxFragments atomic.Uint64
	// RxCoalesced counts UDP_GRO datagrams that carried more than one
	// packet (their packets are counted nowhere here: they are returned).
	RxCoalesced atomic.Uint64
	// TxKeepalives counts NAT keepalives sent.
	TxKeepalives atomic.Uint64
	// GSORetries counts GSO messages the kernel refused that were then
	// sent one packet at a time (EMSGSIZE: a segment exceeds the path MTU;
	// EIO: see GSODisabled).
	GSORetries atomic.Uint64
	// GSODisabled counts sockets on which UDP GSO was turned off after the
	// kernel refused it with EIO (no checksum offload on the route's
	// device; kernels since 6.11 checksum in software instead).
	GSODisabled atomic.Uint64
	// RxDSMIPv6 counts IP packets received in UDP from or to port 4191
	// (RFC 5555 §4.1) and returned as EncapIP.
	RxDSMIPv6 atomic.Uint64
	// RxExtHeaders counts IPv6 packets received on the Destination
	// Options and Routing sockets (ExtHeaders) and returned as EncapIP.
	RxExtHeaders atomic.Uint64
	// RxIPMalformed counts what those paths refused: a UDP 4191 payload
	// that is not a whole IPv4/IPv6 packet, an extension header chain
	// that does not parse, a missing destination address.
	RxIPMalformed atomic.Uint64
	// TxHeaderIncluded counts EncapIP packets sent header-included.
	TxHeaderIncluded atomic.Uint64
	// TxPacketSocket counts raw ESP packets sent through the AF_PACKET
	// socket (Config.PacketSocket).
	TxPacketSocket atomic.Uint64
	// TxPacketSocketFallback counts raw ESP packets that PacketSocket
	// sent through the raw IP socket instead: next hop or neighbour not
	// resolved, packet longer than the link MTU, or the periodic packet
	// that lets the kernel confirm the neighbour.
	TxPacketSocketFallback atomic.Uint64
	// TxPacketSocketErrors counts packets the AF_PACKET socket refused
	// (sendmmsg error: a full device queue, a link that went down).
	TxPacketSocketErrors atomic.Uint64
	// RxIKE counts IKE messages handed to Config.IKE (UDP 500, and UDP
	// 4500 behind the non-ESP marker); TxIKE those SendIKE sent.
	RxIKE, TxIKE atomic.Uint64
}

// Counter is one Stats counter by its stable snake_case name (as
// `mipsec stats` and the Prometheus metrics show it).
type Counter struct {
	Name  string
	Value uint64
}

// Counters returns every counter of s, in declaration order, by name:
// rx_keepalives, rx_non_esp, rx_malformed, rx_fragments, rx_coalesced,
// tx_keepalives, gso_retries, gso_disabled, rx_dsmipv6, rx_ext_headers,
// rx_ip_malformed, tx_header_included, tx_packet_socket,
// tx_packet_socket_fallback, tx_packet_socket_errors, rx_ike, tx_ike. A nil
// s returns nil.
func (s *Stats) Counters() []Counter {
	if s == nil {
		return nil
	}
	return []Counter{
		{"rx_keepalives", s.RxKeepalives.Load()},
		{"rx_non_esp", s.RxNonESP.Load()},
		{"rx_malformed", s.RxMalformed.Load()},
		{"rx_fragments", s.RxFragments.Load()},
		{"rx_coalesced", s.RxCoalesced.Load()},
		{"tx_keepalives", s.TxKeepalives.Load()},
		{"gso_retries", s.GSORetries.Load()},
		{"gso_disabled", s.GSODisabled.Load()},
		{"rx_dsmipv6", s.RxDSMIPv6.Load()},
		{"rx_ext_headers", s.RxExtHeaders.Load()},
		{"rx_ip_malformed", s.RxIPMalformed.Load()},
		{"tx_header_included", s.TxHeaderIncluded.Load()},
		{"tx_packet_socket", s.TxPacketSocket.Load()},
		{"tx_packet_socket_fallback", s.TxPacketSocketFallback.Load()},
		{"tx_packet_socket_errors", s.TxPacketSocketErrors.Load()},
		{"rx_ike", s.RxIKE.Load()},
		{"tx_ike", s.TxIKE.Load()},
	}
}

// Errors of the Linux underlay.
var (
	// ErrInvalidConfig: New got a Config it cannot use; the error wraps it
	// with the details.
	ErrInvalidConfig = errors.New("underlay: invalid config")
	// ErrAlreadyOpen: Open was called on an open underlay.
	ErrAlreadyOpen = errors.New("underlay: already open")
	// ErrNoSocket: Send or SendKeepalive got an endpoint whose family or
	// encapsulation has no open socket (or the endpoint is invalid).
	ErrNoSocket = errors.New("underlay: no socket for endpoint")
)

// sockKind indexes socketSet.s.
type sockKind uint8

const (
	sockRaw4 sockKind = iota // raw ESP, IPv4
	sockRaw6                 // raw ESP, IPv6
	sockUDP4                 // ESP in UDP (4500), IPv4
	sockUDP6                 // ESP in UDP (4500), IPv6
	// numESPSockKinds: the kinds above carry ESP (classify).
	numESPSockKinds
)

const (
	sockDSMIP4 sockKind = numESPSockKinds + iota // UDP 4191, IPv4
	sockDst6                                     // raw IPv6, protocol 60
	sockRt6                                      // raw IPv6, protocol 43
	sockHdr4                                     // IPPROTO_RAW, IPv4, send only
	sockHdr6                                     // IPPROTO_RAW, IPv6, send only
	sockIKE4                                     // UDP 500, IPv4 (IKE500)
	sockIKE6                                     // UDP 500, IPv6 (IKE500)
	numSockKinds
)

// raw: a raw ESP socket.
func (k sockKind) raw() bool { return k == sockRaw4 || k == sockRaw6 }

// udpESP: an ESP-in-UDP socket.
func (k sockKind) udpESP() bool { return k == sockUDP4 || k == sockUDP6 }

// ipAddr: the socket is addressed with net.IPAddr (not net.UDPAddr).
func (k sockKind) ipAddr() bool {
	return k.raw() || k == sockDst6 || k == sockRt6 || k.hdrIncl()
}

// hdrIncl: a header-included send socket (EncapIP), never read.
func (k sockKind) hdrIncl() bool { return k == sockHdr4 || k == sockHdr6 }

// is4: an IPv4 socket.
func (k sockKind) is4() bool {
	return k == sockRaw4 || k == sockUDP4 || k == sockDSMIP4 || k == sockHdr4 || k == sockIKE4
}

// ike: a UDP 500 socket.
func (k sockKind) ike() bool { return k == sockIKE4 || k == sockIKE6 }

func (k sockKind) encap() endpoint.Encap {
	switch {
	case k.raw():
		return endpoint.EncapRaw
	case k.udpESP():
		return endpoint.EncapUDP
	}
	return endpoint.EncapIP
}

// batchConn is ipv4.PacketConn or ipv6.PacketConn: ipv4.Message and
// ipv6.Message are both x/net's socket.Message.
type batchConn interface {
	WriteBatch([]ipv6.Message, int) (int, error)
}

var _ ipv6.Message = ipv4.Message{} // must stay the same type

// usock is one open socket.
type usock struct {
	kind sockKind
	pc   net.PacketConn // *net.IPConn or *net.UDPConn
	bc   batchConn
	// gso: UDP_SEGMENT works; cleared when the kernel says EIO.
	gso atomic.Bool
	// gsoMaxSeg: segments at least this long are not coalesced; set to the
	// smallest segment size the kernel refused (EMSGSIZE: longer than the
	// path MTU), 0 = no limit. Such packets are fragmented by the kernel
	// anyway, and this keeps them from failing one syscall per batch.
	gsoMaxSeg atomic.Uint32
	// gro: UDP_GRO is on, so reads may return coalesced datagrams.
	gro bool
	// pktinfo: IPV6_RECVPKTINFO (IPv6) or IP_PKTINFO (IPv4) is on: a
	// raw IPv6 socket bound to ::, or a socket that hands IKE messages
	// up bound to a wildcard.
	pktinfo bool
	// bound is the address the socket is bound to.
	bound netip.Addr
}

// socketSet is the immutable set of open sockets, swapped atomically.
type socketSet struct {
	s [numSockKinds]*usock
	// pkt is the AF_PACKET send path for raw ESP (PacketSocket), or nil.
	pkt *pktSock
}

func (ss *socketSet) forEndpoint(ep endpoint.Endpoint) *usock {
	a := ep.Addr.Addr().Unmap()
	if !a.IsValid() {
		return nil
	}
	var k sockKind
	switch ep.Encap {
	case endpoint.EncapRaw:
		k = sockRaw4
	case endpoint.EncapUDP:
		k = sockUDP4
	case endpoint.EncapIP:
		k = sockHdr4
	default:
		return nil
	}
	if !a.Is4() {
		k++
	}
	return ss.s[k]
}

// Linux is the Linux underlay: it implements dataplane.Underlay (checked
// in dataplane_test.go; this package does not import dataplane). Make one
// with New.
type Linux struct {
	cfg   Config
	stats *Stats

	mu   sync.Mutex                // serialises Open and Close
	set  atomic.Pointer[socketSet] // nil while closed
	pool sync.Pool                 // *sendState
}

// New checks cfg and returns the underlay; Open opens its sockets. Opening
// raw sockets needs CAP_NET_RAW; a UDP port below 1024 needs
// CAP_NET_BIND_SERVICE.
func New(cfg Config) (*Linux, error) {
	if !cfg.IPv4.IsValid() && !cfg.IPv6.IsValid() {
		return nil, fmt.Errorf("%w: no local IPv4 or IPv6 address", ErrInvalidConfig)
	}
	if cfg.IPv4.IsValid() && !cfg.IPv4.Is4() {
		return nil, fmt.Errorf("%w: IPv4 address %s is not IPv4", ErrInvalidConfig, cfg.IPv4)
	}
	if cfg.IPv6.IsValid() && !(cfg.IPv6.Is6() && !cfg.IPv6.Is4In6()) {
		return nil, fmt.Errorf("%w: IPv6 address %s is not IPv6", ErrInvalidConfig, cfg.IPv6)
	}
	if cfg.Mode == 0 {
		cfg.Mode = ModeBoth
	}
	if cfg.Mode&^ModeBoth != 0 {
		return nil, fmt.Errorf("%w: unknown mode %#x", ErrInvalidConfig, uint8(cfg.Mode))
	}
	if cfg.UDPPort == 0 {
		cfg.UDPPort = endpoint.UDPEncapPort
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchSize < 0 {
		return nil, fmt.Errorf("%w: batch size %d", ErrInvalidConfig, cfg.BatchSize)
	}
	if cfg.DSMIPv6 && !cfg.IPv4.IsValid() {
		return nil, fmt.Errorf("%w: DSMIPv6 (UDP port 4191) needs an IPv4 address", ErrInvalidConfig)
	}
	if cfg.ExtHeaders && !cfg.IPv6.IsValid() {
		return nil, fmt.Errorf("%w: ExtHeaders needs an IPv6 address", ErrInvalidConfig)
	}
	if cfg.IKE500 && cfg.IKE == nil {
		return nil, fmt.Errorf("%w: IKE500 needs an IKE callback", ErrInvalidConfig)
	}
	u := &Linux{cfg: cfg, stats: cfg.Stats}
	if u.stats == nil {
		u.stats = new(Stats)
	}
	batch := cfg.BatchSize
	u.pool.New = func() any { return newSendState(batch) }
	return u, nil
}

// Stats returns the underlay's counters.
func (u *Linux) Stats() *Stats { return u.stats }

// BatchSize implements dataplane.Underlay.
func (u *Linux) BatchSize() int { return u.cfg.BatchSize }

// Offloads reports whether UDP GSO (send) and GRO (receive) are in use on
// the open UDP sockets of the given family (for logs and tests).
func (u *Linux) Offloads(ipv6 bool) (gso, gro bool) {
	ss := u.set.Load()
	if ss == nil {
		return false, false
	}
	k := sockUDP4
	if ipv6 {
		k = sockUDP6
	}
	s := ss.s[k]
	if s == nil {
		return false, false
	}
	return s.gso.Load(), s.gro
}

// Open implements dataplane.Underlay: it opens the sockets of cfg.Mode for
// each configured family and returns one ReceiveFunc per socket, in the
// order raw IPv4, raw IPv6, UDP IPv4, UDP IPv6, then UDP 4191 (DSMIPv6),
// Destination Options and Routing (ExtHeaders), UDP 500 IPv4 and IPv6
// (IKE500; their ReceiveFuncs hand every datagram to Config.IKE and
// return none until the socket closes) (those opened; an
// unspecified address of a family the kernel does not support is skipped).
// With DSMIPv6 or ExtHeaders it opens the header-included send sockets too.
// With PacketSocket (and raw ESP sockets open) it opens the AF_PACKET
// socket and its netlink handle and event subscriptions (pktsock_linux.go),
// in the calling thread's network namespace, and fails if it cannot. After
// Close, Open may be called again.
func (u *Linux) Open() ([]ReceiveFunc, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.set.Load() != nil {
		return nil, ErrAlreadyOpen
	}
	ss := new(socketSet)
	closeAll := func() {
		for _, s := range ss.s {
			if s != nil {
				s.pc.Close()
			}
		}
		if ss.pkt != nil {
			ss.pkt.close()
		}
	}
	var wants []sockWant
	if u.cfg.Mode&ModeRaw != 0 {
		if u.cfg.IPv4.IsValid() {
			wants = append(wants, sockWant{sockRaw4, u.cfg.IPv4})
		}
		if u.cfg.IPv6.IsValid() {
			wants = append(wants, sockWant{sockRaw6, u.cfg.IPv6})
		}
	}
	if u.cfg.Mode&ModeUDP != 0 {
		if u.cfg.IPv4.IsValid() {
			wants = append(wants, sockWant{sockUDP4, u.cfg.IPv4})
		}
		if u.cfg.IPv6.IsValid() {
			wants = append(wants, sockWant{sockUDP6, u.cfg.IPv6})
		}
	}
	if u.cfg.DSMIPv6 {
		wants = append(wants, sockWant{sockDSMIP4, u.cfg.IPv4})
	}
	if u.cfg.ExtHeaders {
		wants = append(wants, sockWant{sockDst6, u.cfg.IPv6}, sockWant{sockRt6, u.cfg.IPv6})
	}
	if u.cfg.IKE500 {
		if u.cfg.IPv4.IsValid() {
			wants = append(wants, sockWant{sockIKE4, u.cfg.IPv4})
		}
		if u.cfg.IPv6.IsValid() {
			wants = append(wants, sockWant{sockIKE6, u.cfg.IPv6})
		}
	}
	if u.cfg.DSMIPv6 || u.cfg.ExtHeaders {
		wants = append(wants, u.headerIncludedWants()...)
	} else if u.cfg.IPv4.IsValid() {
		// IPv4 ESP of one DF setting leaves header-included (route).
		// Raw ESP needs CAP_NET_RAW anyway; ESP in UDP does without it,
		// and then its DF-clear packets leave with DF.
		wants = append(wants, sockWant{sockHdr4, netip.IPv4Unspecified()})
	}
	var fns []ReceiveFunc
	for _, w := range wants {
		s, err := u.listen(w.kind, w.addr)
		if err != nil && w.kind == sockHdr4 && u.cfg.Mode&ModeRaw == 0 && !u.cfg.DSMIPv6 && !u.cfg.ExtHeaders {
			continue // only for DF-clear ESP in UDP: route copes
		}
		if err != nil && w.addr.IsUnspecified() && errors.Is(err, unix.EAFNOSUPPORT) {
			// A wildcard of a family the kernel lacks (ipv6.disable=1):
			// skip it, as wireguard-go does.
			continue
		}
		if err != nil {
			closeAll()
			return nil, err
		}
		ss.s[w.kind] = s
		if w.kind.hdrIncl() {
			continue // send only
		}
		r, err := u.newReceiver(s, w.addr)
		if err != nil {
			closeAll()
			return nil, err
		}
		fns = append(fns, r.receive)
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("underlay: no socket could be opened: %w", unix.EAFNOSUPPORT)
	}
	if u.cfg.PacketSocket && (ss.s[sockRaw4] != nil || ss.s[sockRaw6] != nil) {
		// Asked for: failing to open it fails Open.
		p, err := openPktSock(&u.cfg, u.stats)
		if err != nil {
			closeAll()
			return nil, err
		}
		ss.pkt = p
	}
	u.set.Store(ss)
	return fns, nil
}

// sockWant is a socket Open (or openHeaderIncluded) opens: its kind and
// the local address it binds.
type sockWant struct {
	kind sockKind
	addr netip.Addr
}

// headerIncludedWants returns the header-included send sockets (EncapIP),
// one per configured family, bound to the family's wildcard address.
func (u *Linux) headerIncludedWants() []sockWant {
	var ws []sockWant
	if u.cfg.IPv4.IsValid() {
		ws = append(ws, sockWant{sockHdr4, netip.IPv4Unspecified()})
	}
	if u.cfg.IPv6.IsValid() {
		ws = append(ws, sockWant{sockHdr6, netip.IPv6Unspecified()})
	}
	return ws
}

// listen opens one socket of kind k bound to addr.
func (u *Linux) listen(k sockKind, addr netip.Addr) (*usock, error) {
	var network, laddr string
	switch k {
	case sockRaw4:
		network, laddr = "ip4:50", addr.String()
	case sockRaw6:
		network, laddr = "ip6:50", addr.String()
	case sockUDP4:
		network, laddr = "udp4", netip.AddrPortFrom(addr, u.cfg.UDPPort).String()
	case sockUDP6:
		network, laddr = "udp6", netip.AddrPortFrom(addr, u.cfg.UDPPort).String()
	case sockDSMIP4:
		network, laddr = "udp4", netip.AddrPortFrom(addr, endpoint.DSMIPv6Port).String()
	case sockDst6:
		network, laddr = "ip6:60", addr.String()
	case sockRt6:
		network, laddr = "ip6:43", addr.String()
	case sockHdr4:
		network, laddr = "ip4:255", addr.String()
	case sockHdr6:
		network, laddr = "ip6:255", addr.String()
	case sockIKE4:
		network, laddr = "udp4", netip.AddrPortFrom(addr, IKEPort).String()
	case sockIKE6:
		network, laddr = "udp6", netip.AddrPortFrom(addr, IKEPort).String()
	}
	mark := u.cfg.Mark
	wantGRO := k.udpESP() && !u.cfg.DisableGRO && u.cfg.BatchSize >= 1
	// The destination of a raw IPv6 packet is not in msg_name: a socket
	// bound to :: asks for IPV6_PKTINFO (one control message per packet).
	// A socket bound to a wildcard that hands IKE messages up asks for
	// their destination too (IP_PKTINFO, IPV6_RECVPKTINFO): IKE hashes it
	// (RFC 7296 §2.23) and answers from it.
	wantPktinfo := (k == sockRaw6 || k == sockDst6 || k == sockRt6 ||
		k.ike() || (k.udpESP() && u.cfg.IKE != nil)) && addr.IsUnspecified()
	// The IPv4 ESP sockets write the DF bit the SA decided (route): the
	// raw one sends the DF-clear packets (the kernel fragments them where
	// needed), the UDP one the DF-set packets, GSO batches included (a
	// segment longer than the path MTU fails with EMSGSIZE instead of
	// being fragmented). ip(7) IP_MTU_DISCOVER.
	pmtu := -1
	switch k {
	case sockRaw4:
		pmtu = unix.IP_PMTUDISC_DONT
	case sockUDP4:
		pmtu = unix.IP_PMTUDISC_DO
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Best effort, as wireguard-go controlfns_linux.go.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, socketBufferSize)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, socketBufferSize)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBufferSize)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize)
			if mark != 0 {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
					serr = os.NewSyscallError("setsockopt SO_MARK", err)
					return
				}
			}
			if pmtu >= 0 {
				if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, pmtu); err != nil {
					serr = os.NewSyscallError("setsockopt IP_MTU_DISCOVER", err)
					return
				}
			}
			if wantGRO {
				// Kernels without UDP_GRO refuse it: then no GRO.
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
			}
			if wantPktinfo && k.is4() {
				if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
					serr = os.NewSyscallError("setsockopt IP_PKTINFO", err)
					return
				}
			} else if wantPktinfo {
				if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
					serr = os.NewSyscallError("setsockopt IPV6_RECVPKTINFO", err)
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, fmt.Errorf("underlay: listen %s %s: %w", network, laddr, err)
	}
	s := &usock{kind: k, pc: pc, pktinfo: wantPktinfo, bound: addr}
	if k.is4() {
		s.bc = ipv4.NewPacketConn(pc)
	} else {
		s.bc = ipv6.NewPacketConn(pc)
	}
	if k.udpESP() {
		gso, gro := udpOffloads(pc.(*net.UDPConn))
		s.gso.Store(gso && !u.cfg.DisableGSO)
		s.gro = gro && wantGRO
	}
	return s, nil
}

// udpOffloads asks the kernel whether UDP_SEGMENT is known and UDP_GRO is on
// (wireguard-go features_linux.go).
func udpOffloads(c *net.UDPConn) (gso, gro bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, false
	}
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = err == nil
		v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO)
		gro = err == nil && v == 1
	})
	return gso, gro
}

// Close implements dataplane.Underlay. It closes every socket, which makes
// blocked ReceiveFuncs return net.ErrClosed. It is idempotent.
func (u *Linux) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	ss := u.set.Swap(nil)
	if ss == nil {
		return nil
	}
	var first error
	for _, s := range ss.s {
		if s == nil {
			continue
		}
		if err := s.pc.Close(); err != nil && first == nil {
			first = err
		}
	}
	if ss.pkt != nil {
		// Stops its netlink goroutines before returning.
		if err := ss.pkt.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// normErr normalises the OS error at the boundary: a closed socket is
// net.ErrClosed.
func normErr(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

// ---------------------------------------------------------------- receive

// receiver is one socket's ReceiveFunc state. A ReceiveFunc is called from
// one goroutine (dataplane.ReceiveFunc), so it needs no lock.
type receiver struct {
	s     *usock
	stats *Stats
	mr    *mmsgReader
	encap endpoint.Encap
	// ike receives IKE messages (Config.IKE), nil when none; ikePort is
	// the socket's port, the local port of what it receives.
	ike     func(msg []byte, local, remote netip.AddrPort)
	ikePort uint16
	// bound is the socket's local address: the destination of what a raw
	// IPv6 socket receives, unless it is :: (then IPV6_PKTINFO says).
	bound netip.Addr
	// at is where a packet is read into a Buf: pkt.Headroom, or 40 bytes
	// later on the extension header sockets (room for the rebuilt IPv6
	// header, which then starts at pkt.Headroom).
	at int

	// pointed: the Buf message i's iovec points into (non-GRO). A call
	// re-points only the messages whose Buf the caller changed (or the
	// compaction swapped), so a call that returned one packet does not
	// touch the other Bufs of the batch.
	pointed []*pkt.Buf

	// GRO only: the receiver's own Bufs that recvmmsg fills (one
	// coalesced datagram each), the segment size and source of each, the
	// number of messages read, and the read position (message, offset).
	scratch []*pkt.Buf
	gsoSize []int
	eps     []endpoint.Endpoint
	nmsg    int
	mi, off int
}

func (u *Linux) newReceiver(s *usock, bound netip.Addr) (*receiver, error) {
	r := &receiver{s: s, stats: u.stats, encap: s.kind.encap(), bound: bound, at: pkt.Headroom}
	if s.kind.ike() || s.kind.udpESP() {
		r.ike, r.ikePort = u.cfg.IKE, u.cfg.UDPPort
		if s.kind.ike() {
			r.ikePort = IKEPort
		}
	}
	if s.kind == sockDst6 || s.kind == sockRt6 {
		r.at += header.IPv6HeaderLen
	}
	n, oob := u.cfg.BatchSize, 0
	if s.pktinfo {
		oob = pktinfoControlSize
	}
	if s.gro {
		// One message may carry up to udpSegmentMaxDatagrams segments:
		// read as many messages as fill one batch (wireguard-go reads
		// IdealBatchSize/udpSegmentMaxDatagrams messages).
		n = (u.cfg.BatchSize + udpSegmentMaxDatagrams - 1) / udpSegmentMaxDatagrams
		oob += gsoControlSize
		r.scratch = make([]*pkt.Buf, n)
		for i := range r.scratch {
			r.scratch[i] = new(pkt.Buf)
		}
		r.gsoSize = make([]int, n)
		r.eps = make([]endpoint.Endpoint, n)
	}
	mr, err := newMmsgReader(s.pc, n, oob)
	if err != nil {
		return nil, err
	}
	r.mr = mr
	if s.gro {
		for i, b := range r.scratch {
			mr.setBuf(i, b.B[:pkt.MaxPacket])
		}
	} else {
		r.pointed = make([]*pkt.Buf, n)
	}
	return r, nil
}

// rxCounts are one batch's drops, added to Stats once.
type rxCounts struct {
	keepalive, nonESP, malformed, fragment, coalesced uint64
	dsmip, ext, ipMalformed, ike                      uint64
}

func (c *rxCounts) flush(s *Stats) {
	addNonZero(&s.RxKeepalives, c.keepalive)
	addNonZero(&s.RxNonESP, c.nonESP)
	addNonZero(&s.RxMalformed, c.malformed)
	addNonZero(&s.RxFragments, c.fragment)
	addNonZero(&s.RxCoalesced, c.coalesced)
	addNonZero(&s.RxDSMIPv6, c.dsmip)
	addNonZero(&s.RxExtHeaders, c.ext)
	addNonZero(&s.RxIPMalformed, c.ipMalformed)
	addNonZero(&s.RxIKE, c.ike)
}

// addNonZero adds n to a shared counter, skipping the atomic write (and
// the cache line's ownership) when there is nothing to add.
func addNonZero(a *atomic.Uint64, n uint64) {
	if n != 0 {
		a.Add(n)
	}
}

// classify returns where the ESP packet lies in p (a datagram as the socket
// returned it) or ok == false, counting why.
func classify(k sockKind, p []byte, c *rxCounts) (off, n int, ok bool) {
	switch k {
	case sockRaw4:
		// A raw IPv4 socket returns the IPv4 header too (raw(7)); a raw
		// IPv6 socket does not.
		ip := header.IPv4(p)
		if !ip.IsValid() {
			c.malformed++
			return 0, 0, false
		}
		if ip.IsFragment() {
			c.fragment++
			return 0, 0, false
		}
		off = ip.HeaderLen()
		p = p[:ip.TotalLen()]
	case sockUDP4, sockUDP6:
		// RFC 3948 §2.3: exactly one byte 0xFF is a NAT-keepalive, to
		// be ignored. §2.2: four zero bytes where the SPI would be are
		// the non-ESP marker: an IKE message follows (not ours).
		if len(p) == 1 && p[0] == 0xFF {
			c.keepalive++
			return 0, 0, false
		}
		if len(p) >= 4 && binary.BigEndian.Uint32(p) == 0 {
			c.nonESP++
			return 0, 0, false
		}
	}
	// RFC 3948 §2.1/§2.2 and RFC 4303 §2.1: ESP is at least SPI + sequence
	// number and its SPI is never 0 (raw sockets too: SPI 0 is reserved).
	esp := header.ESP(p[off:])
	if !esp.IsValid() || esp.SPI() == 0 {
		c.malformed++
		return 0, 0, false
	}
	return off, len(esp), true
}

// endpoint makes the Endpoint of a received packet.
func (r *receiver) endpoint(ap netip.AddrPort) endpoint.Endpoint {
	if r.encap == endpoint.EncapRaw {
		ap = netip.AddrPortFrom(ap.Addr(), 0)
	}
	return endpoint.Endpoint{Addr: ap, Encap: r.encap}
}

// receive is the ReceiveFunc. The Bufs it does not return (bufs[n:]) are
// left as they are or as a dropped packet left them: the caller resets
// what it reuses (Dataplane does, batch.receiveFrom).
func (r *receiver) receive(bufs []*pkt.Buf, eps []endpoint.Endpoint) (int, error) {
	n := min(len(bufs), len(eps))
	if n == 0 {
		return 0, nil
	}
	if r.s.gro {
		return r.receiveGRO(bufs[:n], eps[:n])
	}
	n = min(n, len(r.mr.hs))
	for {
		// Every message must point at its Buf's full receive area
		// (r.at to the end of pkt.MaxPacket): a Buf's array does not
		// move, so one that is still in place needs nothing. Buf state
		// (offset, length) is not read before packet sets it.
		for i, b := range bufs[:n] {
			if r.pointed[i] != b {
				r.mr.setBuf(i, b.B[r.at:pkt.Headroom+pkt.MaxPacket])
				r.pointed[i] = b
			}
		}
		got, err := r.mr.read(n)
		if err != nil {
			return 0, normErr(err)
		}
		var c rxCounts
		j := 0
		for i := 0; i < got; i++ {
			b := bufs[i]
			if r.mr.truncated(i) {
				if r.encap == endpoint.EncapIP {
					c.ipMalformed++
				} else {
					c.malformed++
				}
				continue
			}
			ep, ok := r.packet(b, i, &c)
			if !ok {
				continue
			}
			eps[j] = ep
			bufs[i], bufs[j] = bufs[j], b // compact in place, keep every Buf
			j++
		}
		c.flush(r.stats)
		if j > 0 {
			return j, nil
		}
	}
}

// packet makes message i, read into b at r.at, what the ReceiveFunc
// returns, and says where it came from; false drops it (counted in c).
func (r *receiver) packet(b *pkt.Buf, i int, c *rxCounts) (endpoint.Endpoint, bool) {
	size := r.mr.size(i)
	p := b.B[r.at : r.at+size]
	src := r.mr.source(i)
	switch r.s.kind {
	case sockUDP4, sockUDP6:
		if src.Port() == endpoint.DSMIPv6Port {
			// The MN's BA from the HA's port 4191 arrives on the one
			// local UDP port, 4500 (RFC 5555 §4.1).
			return ipPacket(b, r.at, p, src, c)
		}
	case sockDSMIP4:
		return ipPacket(b, r.at, p, src, c)
	case sockDst6, sockRt6:
		return r.extPacket(b, i, size, src, c)
	case sockIKE4, sockIKE6:
		r.handIKE(p, i, src, c)
		return endpoint.Endpoint{}, false
	}
	if r.ike != nil && nonESP(p) {
		r.handIKE(p[nonESPMarkerLen:], i, src, c)
		return endpoint.Endpoint{}, false
	}
	off, ln, ok := classify(r.s.kind, p, c)
	if !ok {
		return endpoint.Endpoint{}, false
	}
	b.SetBytes(r.at+off, ln)
	switch r.s.kind {
	case sockRaw4:
		normalise4(b, off)
	case sockRaw6:
		// The normalised header for transport mode (ReceiveFunc). Without
		// a destination it is cleared: no stale header is left in front.
		if !WriteOuterHeader(b, src.Addr(), r.dst(i)) {
			clear(b.B[b.Off()-header.IPv6HeaderLen : b.Off()])
		}
	}
	return r.endpoint(src), true
}

// normalise4 leaves the normalised IPv4 header (20 bytes, IHL 5) in front of
// the ESP packet b.Bytes(): the raw socket put the received header, ihl
// bytes long, there. With options (rare) the fixed part moves up to ESP and
// IHL, total length and checksum are fixed (RFC 791 §3.1).
func normalise4(b *pkt.Buf, ihl int) {
	if ihl == header.IPv4MinHeaderLen {
		return // the received header: Total Length is 20 + b.Len() (classify)
	}
	start := b.Off() - ihl
	h := b.B[b.Off()-header.IPv4MinHeaderLen : b.Off()]
	copy(h, b.B[start:start+header.IPv4MinHeaderLen])
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(header.IPv4MinHeaderLen+b.Len()))
	header.IPv4(h).UpdateChecksum()
}

// ipPacket returns a UDP 4191 payload p, read into b at off, as an EncapIP
// packet from src: it must be a whole IPv4 or IPv6 packet (cut to its
// length field).
func ipPacket(b *pkt.Buf, off int, p []byte, src netip.AddrPort, c *rxCounts) (endpoint.Endpoint, bool) {
	n, ok := header.InnerLen(p)
	if !ok {
		c.ipMalformed++
		return endpoint.Endpoint{}, false
	}
	b.SetBytes(off, n)
	c.dsmip++
	return endpoint.Endpoint{Addr: src, Encap: endpoint.EncapIP}, true
}

// extPacket rebuilds the IPv6 header in front of what a Destination Options
// or Routing socket returned (size bytes at r.at, starting at that
// extension header): version 6, traffic class and flow label 0, payload
// length size, Next Header 60 or 43, hop limit 64 (the received values are
// not available), source from msg_name, destination r.dst. The extension
// header chain must parse (RFC 8200 §4).
func (r *receiver) extPacket(b *pkt.Buf, i, size int, src netip.AddrPort, c *rxCounts) (endpoint.Endpoint, bool) {
	dst := r.dst(i)
	if !dst.Is6() || !src.Addr().Is6() || size > 0xffff {
		c.ipMalformed++
		return endpoint.Endpoint{}, false
	}
	next := uint8(header.ProtoDestOpts)
	if r.s.kind == sockRt6 {
		next = header.ProtoRouting
	}
	header.IPv6(b.B[r.at-header.IPv6HeaderLen : r.at]).Encode(&header.IPv6Fields{
		PayloadLen: uint16(size), NextHeader: next, HopLimit: 64, Src: src.Addr(), Dst: dst,
	})
	b.SetBytes(r.at-header.IPv6HeaderLen, header.IPv6HeaderLen+size)
	it := header.NewExtIter(header.IPv6(b.Bytes()))
	for {
		_, done, err := it.Next()
		if err != nil {
			c.ipMalformed++
			return endpoint.Endpoint{}, false
		}
		if done {
			break
		}
	}
	c.ext++
	return endpoint.Endpoint{Addr: netip.AddrPortFrom(src.Addr(), 0), Encap: endpoint.EncapIP}, true
}

// dst returns the destination of message i: the bound address, or the one
// IPV6_PKTINFO or IP_PKTINFO reported (the zero Addr if none).
func (r *receiver) dst(i int) netip.Addr {
	if !r.s.pktinfo {
		return r.bound
	}
	if r.s.kind.is4() {
		return pktinfoDst4(r.mr.control(i))
	}
	return pktinfoDst(r.mr.control(i))
}

// pktinfoControlSize is the OOB space for one IPV6_PKTINFO cmsg (struct
// in6_pktinfo: address and interface index), which also holds an
// IP_PKTINFO one (struct in_pktinfo, 12 bytes).
var pktinfoControlSize = unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// pktinfoDst4 returns the header destination address (ipi_addr, after the
// interface index and ipi_spec_dst) of the IP_PKTINFO cmsg in control
// (ip(7)).
func pktinfoDst4(control []byte) netip.Addr {
	if data := cmsgData(control, unix.IPPROTO_IP, unix.IP_PKTINFO); len(data) >= unix.SizeofInet4Pktinfo {
		return netip.AddrFrom4([4]byte(data[8:12]))
	}
	return netip.Addr{}
}

// pktinfoDst returns the address of the IPV6_PKTINFO cmsg in control (RFC
// 3542 §6.1), without allocating.
func pktinfoDst(control []byte) netip.Addr {
	if data := cmsgData(control, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO); len(data) >= 16 {
		return netip.AddrFrom16([16]byte(data[:16]))
	}
	return netip.Addr{}
}

// receiveGRO delivers segments of coalesced datagrams (UDP_GRO), reading
// more when none are left. Each segment is copied once, from the scratch
// into the caller's Buf at pkt.Headroom.
func (r *receiver) receiveGRO(bufs []*pkt.Buf, eps []endpoint.Endpoint) (int, error) {
	for {
		if r.mi >= r.nmsg {
			if err := r.fill(); err != nil {
				return 0, err
			}
		}
		var c rxCounts
		j := 0
		for j < len(bufs) && r.mi < r.nmsg {
			mi := r.mi
			size := r.mr.size(r.mi)
			seg := r.scratch[r.mi].B[r.off:size]
			if g := r.gsoSize[r.mi]; g > 0 && len(seg) > g {
				seg = seg[:g]
			}
			ep := r.eps[r.mi]
			r.off += len(seg)
			if r.off >= size {
				r.mi++
				r.off = 0
			}
			var off, ln int
			var ok bool
			if ep.Addr.Port() == endpoint.DSMIPv6Port {
				// From port 4191: an IP packet (see packet).
				if ln, ok = header.InnerLen(seg); ok {
					c.dsmip++
					ep.Encap = endpoint.EncapIP
				} else {
					c.ipMalformed++
				}
			} else if r.ike != nil && nonESP(seg) {
				r.handIKE(seg[nonESPMarkerLen:], mi, ep.Addr, &c)
				continue
			} else {
				off, ln, ok = classify(r.s.kind, seg, &c)
			}
			if !ok {
				continue
			}
			b := bufs[j]
			copy(b.B[pkt.Headroom:], seg[off:off+ln])
			b.SetBytes(pkt.Headroom, ln)
			eps[j] = ep
			j++
		}
		c.flush(r.stats)
		if j > 0 {
			return j, nil
		}
	}
}

// fill reads a batch of (possibly coalesced) datagrams into the scratch.
func (r *receiver) fill() error {
	r.nmsg, r.mi, r.off = 0, 0, 0
	// The messages point at the scratch Bufs since newReceiver.
	got, err := r.mr.read(len(r.scratch))
	if err != nil {
		return normErr(err)
	}
	var c rxCounts
	for i := 0; i < got; i++ {
		g := groSize(r.mr.control(i))
		r.gsoSize[i] = g
		if g > 0 && r.mr.size(i) > g {
			c.coalesced++
		}
		r.eps[i] = r.endpoint(r.mr.source(i))
		if r.mr.truncated(i) {
			r.mr.hs[i].len = 0 // receiveGRO counts it as malformed
		}
	}
	c.flush(r.stats)
	r.nmsg = got
	return nil
}

// groSize returns the UDP_GRO segment size in control, or 0 (not coalesced).
func groSize(control []byte) int {
	if data := cmsgData(control, unix.SOL_UDP, unix.UDP_GRO); len(data) >= gsoCmsgData {
		return int(binary.NativeEndian.Uint16(data))
	}
	return 0
}

// cmsgData returns the data of the first control message of level and typ
// in control, or nil (none, or a malformed control buffer before it). It
// does not allocate.
func cmsgData(control []byte, level, typ int32) []byte {
	for len(control) > unix.SizeofCmsghdr {
		hdr, data, rest, err := unix.ParseOneSocketControlMessage(control)
		if err != nil {
			return nil
		}
		if hdr.Level == level && hdr.Type == typ {
			return data
		}
		control = rest
	}
	return nil
}

// ------------------------------------------------------------------- send

// sendState is one Send call's pooled scratch: messages, the iovecs they
// slice, and the destination addresses they point to (wireguard-go
// msgsPool/udpAddrPool in one).
type sendState struct {
	msgs  []ipv6.Message
	iov   [][]byte
	udp   []net.UDPAddr
	ip    []net.IPAddr
	ipb   [][16]byte
	first []int       // msgs[i]'s first packet, as an index into the run
	pk    *pktScratch // the AF_PACKET path's, made at its first use
}

func newSendState(batch int) *sendState {
	st := &sendState{
		msgs:  make([]ipv6.Message, batch),
		iov:   make([][]byte, batch),
		udp:   make([]net.UDPAddr, batch),
		ip:    make([]net.IPAddr, batch),
		ipb:   make([][16]byte, batch),
		first: make([]int, batch),
	}
	for i := range st.msgs {
		st.msgs[i].OOB = make([]byte, 0, gsoControlSize)
	}
	return st
}

// clear drops the references to the caller's packets before Put.
func (st *sendState) clear(n int) {
	for i := range st.iov[:n] {
		st.iov[i] = nil
	}
	for i := range st.msgs[:n] {
		st.msgs[i].Buffers = nil
		st.msgs[i].Addr = nil
		st.msgs[i].OOB = st.msgs[i].OOB[:0]
	}
}

// addr points message i's destination at ap.
func (st *sendState) addr(i int, raw bool, ap netip.AddrPort) net.Addr {
	a := ap.Addr().Unmap()
	st.ipb[i] = a.As16()
	ip := st.ipb[i][:]
	if a.Is4() {
		ip = st.ipb[i][12:16]
	}
	if raw {
		ia := &st.ip[i]
		ia.IP, ia.Zone = ip, a.Zone()
		return ia
	}
	ua := &st.udp[i]
	ua.IP, ua.Port, ua.Zone = ip, int(ap.Port()), a.Zone()
	return ua
}

// Send implements dataplane.Underlay. Packets go out in order per socket;
// an error from one packet does not stop the others, and the first error is
// returned.
// With PacketSocket, raw ESP packets go out through the AF_PACKET socket
// where their next hop is resolved, the outer header written into their
// headroom (the packets themselves are not changed).
// EncapIP packets go out header-included; when the header-included sockets
// are not open yet (neither DSMIPv6 nor ExtHeaders), the first EncapIP
// Send opens them, in the calling thread's network namespace.
// Over IPv4, the outer header's DF bit is the one the SA decided (frontDF,
// outer.go): see route for which socket carries which.
func (u *Linux) Send(bufs []*pkt.Buf, eps []endpoint.Endpoint) error {
	if len(eps) < len(bufs) {
		return fmt.Errorf("underlay: Send: %d endpoints for %d packets", len(eps), len(bufs))
	}
	ss := u.set.Load()
	if ss == nil {
		return net.ErrClosed
	}
	st := u.pool.Get().(*sendState)
	defer u.pool.Put(st)
	return u.send(ss, st, bufs, eps, true)
}

// send sends bufs in runs of consecutive packets that take the same route
// (at most one batch each); viaPkt false keeps them off the AF_PACKET
// socket (its fallback).
func (u *Linux) send(ss *socketSet, st *sendState, bufs []*pkt.Buf, eps []endpoint.Endpoint, viaPkt bool) error {
	batch := len(st.msgs)
	var first error
	// next is the route of bufs[i] when the previous run's scan already
	// took it (the packet that ended that run): each packet is routed once.
	var next route
	haveNext := false
	for i := 0; i < len(bufs); {
		r := next
		if !haveNext {
			var err error
			if r, err = u.route(&ss, bufs[i], eps[i], viaPkt); err != nil {
				return err
			}
		}
		haveNext = false
		j := i + 1
		for j < len(bufs) && j-i < batch {
			rj, err := u.route(&ss, bufs[j], eps[j], viaPkt)
			if err != nil {
				break // routed again, and the error returned, at i = j
			}
			if rj != r {
				next, haveNext = rj, true
				break
			}
			j++
		}
		var err error
		switch {
		case r.s == nil:
			err = ErrNoSocket
		case r.pkt:
			err = ss.pkt.send(u, ss, st, bufs[i:j], eps[i:j])
		default:
			err = u.sendRun(r, st, bufs[i:j], eps[i:j])
			if err == nil && r.s.kind.hdrIncl() && r.wrap == wrapNone {
				u.stats.TxHeaderIncluded.Add(uint64(j - i))
			}
		}
		if err != nil && first == nil {
			first = err
		}
		i = j
	}
	return first
}

// wrapKind is the header the underlay writes in front of an ESP packet
// that leaves through the header-included IPv4 socket (sockHdr4).
type wrapKind uint8

const (
	wrapNone wrapKind = iota
	// wrapESP4: IPv4 with DF set, protocol 50 (raw ESP, RFC 4303).
	wrapESP4
	// wrapUDP4: IPv4 with DF clear, protocol 17, and a UDP header from
	// UDPPort (ESP in UDP, RFC 3948 §2.1).
	wrapUDP4
)

// route is how one packet leaves: the socket, the header the underlay
// writes for it (header-included sockets), or the AF_PACKET path.
type route struct {
	s    *usock
	wrap wrapKind
	pkt  bool
}

// route picks the way out for b to ep (s nil: no socket for it). A socket
// writes one DF setting into the IPv4 headers the kernel builds (ip(7)
// IP_MTU_DISCOVER), while the SA decides DF per packet (frontDF), so over
// IPv4 the packets of the other setting leave header-included with the
// header written here:
//
//   - raw ESP: DF clear through the raw ESP socket (IP_PMTUDISC_DONT: the
//     kernel fragments what exceeds the path MTU); DF set header-included
//     (wrapESP4; the kernel never fragments a header-included packet with
//     DF: longer than the path MTU it is dropped, EMSGSIZE).
//   - ESP in UDP: DF set through the UDP socket (IP_PMTUDISC_DO; GSO
//     batches carry DF on every segment); DF clear header-included with a
//     UDP header whose checksum is zero (wrapUDP4; RFC 3948 §2.1: over
//     IPv4 the sender SHOULD send zero), one packet per message (no GSO).
//     The header-included socket needs CAP_NET_RAW: where Open cannot
//     open it, DF-clear UDP packets leave through the UDP socket with DF
//     set.
//   - With PacketSocket, raw ESP takes the AF_PACKET socket (which writes
//     either DF, pktsock_linux.go) and falls back to the above.
//
// A header-included packet longer than the outgoing device's MTU is
// refused by the kernel (raw(7): no fragmentation of header-included
// packets beyond it), DF or not; the TUN MTU leaves room for the outer
// header (ARCHITECTURE.md DR-8), so sealed packets stay below it. IPv6
// headers have no DF bit (RFC 8200 §5: only the source fragments): the
// IPv6 sockets are as they were.
func (u *Linux) route(ssp **socketSet, b *pkt.Buf, ep endpoint.Endpoint, viaPkt bool) (route, error) {
	ss := *ssp
	s := ss.forEndpoint(ep)
	if s == nil {
		if ep.Encap != endpoint.EncapIP {
			return route{}, nil
		}
		var err error
		if ss, err = u.openHeaderIncluded(); err != nil {
			return route{}, err
		}
		*ssp = ss
		return route{s: ss.forEndpoint(ep)}, nil
	}
	if viaPkt && ss.pkt != nil && s.kind.raw() {
		return route{s: s, pkt: true}, nil
	}
	switch s.kind {
	case sockRaw4:
		if !frontDF(b) || b.Off() < header.IPv4MinHeaderLen {
			return route{s: s}, nil
		}
		if h := ss.s[sockHdr4]; h != nil {
			return route{s: h, wrap: wrapESP4}, nil
		}
	case sockUDP4:
		if frontDF(b) || b.Off() < ipv4UDPHeaderLen || b.Len() > maxIPv4UDPPayload {
			return route{s: s}, nil
		}
		if h := ss.s[sockHdr4]; h != nil {
			return route{s: h, wrap: wrapUDP4}, nil
		}
	}
	return route{s: s}, nil
}

// ipv4UDPHeaderLen is what wrapUDP4 writes in front of ESP.
const ipv4UDPHeaderLen = header.IPv4MinHeaderLen + header.UDPHeaderLen

// wrapped writes the header of w in front of b.Bytes() (route checked the
// headroom) and returns the datagram to send. The source is the bound
// IPv4 address, 0.0.0.0 when it is unspecified: the kernel fills it in
// then, as it does a zero Identification (raw(7); a DF-clear packet needs
// a real one, RFC 6864 §4.1), and the checksum. TTL as pktHopLimit, TOS 0,
// as the kernel writes them on the raw ESP and UDP sockets.
func (u *Linux) wrapped(b *pkt.Buf, w wrapKind, to netip.AddrPort) []byte {
	n := b.Len()
	f := header.IPv4Fields{TTL: pktHopLimit, Src: u.cfg.IPv4, Dst: to.Addr().Unmap()}
	var off int
	switch w {
	case wrapESP4:
		off = b.Off() - header.IPv4MinHeaderLen
		f.TotalLen, f.Flags, f.Protocol = uint16(header.IPv4MinHeaderLen+n), header.IPv4FlagDF, header.ProtoESP
	case wrapUDP4:
		off = b.Off() - ipv4UDPHeaderLen
		f.TotalLen, f.Protocol = uint16(ipv4UDPHeaderLen+n), header.ProtoUDP
		udp := header.UDP(b.B[off+header.IPv4MinHeaderLen : b.Off()])
		udp.SetSrcPort(u.cfg.UDPPort)
		udp.SetDstPort(to.Port())
		udp.SetLength(header.UDPHeaderLen + n)
		udp.SetChecksum(0)
	default:
		return b.Bytes()
	}
	header.IPv4(b.B[off : off+header.IPv4MinHeaderLen]).Encode(&f)
	return b.B[off:b.End()]
}

// openHeaderIncluded opens the header-included send sockets (EncapIP) of
// the configured families that are not open yet, on the first EncapIP Send,
// and returns the new socket set.
func (u *Linux) openHeaderIncluded() (*socketSet, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ss := u.set.Load()
	if ss == nil {
		return nil, net.ErrClosed
	}
	nss := *ss
	for _, w := range u.headerIncludedWants() {
		if nss.s[w.kind] != nil {
			continue
		}
		s, err := u.listen(w.kind, w.addr)
		if err != nil {
			u.set.Store(&nss) // keep (and later close) what did open
			return &nss, err
		}
		nss.s[w.kind] = s
	}
	u.set.Store(&nss)
	return &nss, nil
}

// sendRun sends up to one batch of packets through one socket (r.s),
// writing r.wrap's header in front of each.
func (u *Linux) sendRun(r route, st *sendState, bufs []*pkt.Buf, eps []endpoint.Endpoint) error {
	s := r.s
	gso := s.gso.Load()
	var nmsg int
	if gso {
		nmsg = st.coalesce(s, bufs, eps)
	} else {
		raw := s.kind.ipAddr()
		for i, b := range bufs {
			st.iov[i] = u.wrapped(b, r.wrap, eps[i].Addr)
			m := &st.msgs[i]
			m.Buffers = st.iov[i : i+1]
			m.Addr = st.addr(i, raw, eps[i].Addr)
			m.OOB = m.OOB[:0]
			st.first[i] = i
		}
		nmsg = len(bufs)
	}
	defer st.clear(max(nmsg, len(bufs)))
	msgs := st.msgs[:nmsg]
	var first error
	for start := 0; start < len(msgs); {
		n, err := s.bc.WriteBatch(msgs[start:], 0)
		start += max(n, 0)
		if err == nil {
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return net.ErrClosed
		}
		if start >= len(msgs) {
			break
		}
		// msgs[start] failed. A GSO message is retried one packet at a
		// time: the kernel refuses UDP_SEGMENT with EIO where the device
		// lacks checksum offload (then GSO stays off on this socket, as
		// wireguard-go does), and with EMSGSIZE (older kernels: EINVAL)
		// when a segment exceeds the path MTU (then segments that long are
		// no longer coalesced; sent alone, a DF one fails again with
		// EMSGSIZE and counts as an underlay send drop, since the socket
		// sets DF, IP_PMTUDISC_DO).
		m := &msgs[start]
		if gso && len(m.Buffers) > 1 {
			u.stats.GSORetries.Add(1)
			if isEIO(err) {
				if s.gso.CompareAndSwap(true, false) {
					u.stats.GSODisabled.Add(1)
				}
			} else if isTooBig(err) {
				s.limitSegment(len(m.Buffers[0]))
			}
			err = s.sendEach(m.Buffers, eps[st.first[start]].Addr)
		}
		if err != nil && first == nil {
			first = err
		}
		start++
	}
	return first
}

// sendEach sends each packet of a failed GSO message on its own.
func (s *usock) sendEach(pkts [][]byte, ap netip.AddrPort) error {
	c := s.pc.(*net.UDPConn)
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	var first error
	for _, p := range pkts {
		if _, err := c.WriteToUDPAddrPort(p, ap); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func isEIO(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se) && se.Err == unix.EIO
}

// isTooBig: the kernel refuses a GSO segment longer than the path MTU with
// EMSGSIZE (older kernels: EINVAL).
func isTooBig(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se) && (se.Err == unix.EMSGSIZE || se.Err == unix.EINVAL)
}

// limitSegment stops coalescing segments of size n or longer.
func (s *usock) limitSegment(n int) {
	for {
		old := s.gsoMaxSeg.Load()
		if old != 0 && old <= uint32(n) {
			return
		}
		if s.gsoMaxSeg.CompareAndSwap(old, uint32(n)) {
			return
		}
	}
}

// coalesce builds GSO messages (wireguard-go coalesceMessages): consecutive
// packets to the same endpoint join the current message while they are no
// longer than its first (the segment size), the total fits a UDP datagram
// and at most udpSegmentMaxDatagrams join; a shorter packet ends the
// message. Each packet is one iovec, so nothing is copied.
func (st *sendState) coalesce(s *usock, bufs []*pkt.Buf, eps []endpoint.Endpoint) int {
	maxPayload := maxIPv4UDPPayload
	if s.kind == sockUDP6 {
		maxPayload = maxIPv6UDPPayload
	}
	maxSeg := int(s.gsoMaxSeg.Load())
	if maxSeg == 0 {
		maxSeg = maxPayload
	}
	base := -1
	var segSize, count, total, start int
	var ended bool
	finish := func() {
		if base >= 0 && count > 1 {
			setGSOSize(&st.msgs[base].OOB, uint16(segSize))
		}
	}
	for i, b := range bufs {
		p := b.Bytes()
		st.iov[i] = p
		if base >= 0 && !ended && eps[i].Addr == eps[start].Addr && segSize < maxSeg &&
			len(p) <= segSize && total+len(p) <= maxPayload && count < udpSegmentMaxDatagrams {
			st.msgs[base].Buffers = st.iov[start : i+1]
			count++
			total += len(p)
			ended = len(p) < segSize
			continue
		}
		finish()
		base++
		start = i
		m := &st.msgs[base]
		m.Buffers = st.iov[i : i+1]
		m.Addr = st.addr(base, false, eps[i].Addr)
		m.OOB = m.OOB[:0]
		st.first[base] = i
		segSize, count, total, ended = len(p), 1, len(p), false
	}
	finish()
	return base + 1
}

// setGSOSize appends a UDP_SEGMENT cmsg to control (wireguard-go
// gso_linux.go).
func setGSOSize(control *[]byte, size uint16) {
	n := len(*control)
	if cap(*control)-n < gsoControlSize {
		return
	}
	*control = (*control)[:n+gsoControlSize]
	c := (*control)[n:]
	hdr := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	hdr.Level = unix.SOL_UDP
	hdr.Type = unix.UDP_SEGMENT
	hdr.SetLen(unix.CmsgLen(gsoCmsgData))
	binary.NativeEndian.PutUint16(c[unix.CmsgLen(0):], size)
}

// keepalive is the RFC 3948 §2.3 NAT-keepalive payload.
var keepalive = [1]byte{0xFF}

// SendKeepalive implements dataplane.Underlay: one UDP datagram whose
// payload is the single byte 0xFF (RFC 3948 §2.3), from the ESP-in-UDP
// port.
func (u *Linux) SendKeepalive(ep endpoint.Endpoint) error {
	if ep.Encap != endpoint.EncapUDP {
		return fmt.Errorf("%w: keepalive to %v: NAT keepalives are UDP only (RFC 3948 §2.3)", ErrNoSocket, ep)
	}
	ss := u.set.Load()
	if ss == nil {
		return net.ErrClosed
	}
	s := ss.forEndpoint(ep)
	if s == nil {
		return ErrNoSocket
	}
	ap := netip.AddrPortFrom(ep.Addr.Addr().Unmap(), ep.Addr.Port())
	if _, err := s.pc.(*net.UDPConn).WriteToUDPAddrPort(keepalive[:], ap); err != nil {
		return normErr(err)
	}
	u.stats.TxKeepalives.Add(1)
	return nil
}
