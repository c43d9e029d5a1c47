package esp

import (
	"fmt"
	"net/netip"
	"strings"
)

// Mode is the IPsec mode of an SA (RFC 4303 §3.1).
type Mode uint8

const (
	Transport Mode = iota + 1
	Tunnel
)

func (m Mode) String() string {
	switch m {
	case Transport:
		return "transport"
	case Tunnel:
		return "tunnel"
	}
	return "invalid"
}

// DF says how the IPv4 outer header's Don't Fragment bit is set in tunnel
// mode (RFC 4301 §8.1), for an SA whose tunnel endpoints are IPv4. Seal
// writes it into the outer header, and mipsec's Linux underlay puts the
// same bit on the wire on every IPv4 send path (raw ESP, ESP in UDP with
// or without GSO, AF_PACKET; underlay/outer.go frontDF). A packet with DF
// longer than the path MTU is dropped by the sending kernel (EMSGSIZE),
// never fragmented, and mipsec sends no ICMP Packet Too Big to the inner
// source: keep the TUN MTU within the path MTU less the ESP overhead, or
// use DFClear. Ignored in transport mode and for IPv6 tunnel endpoints (an
// IPv6 header has no DF bit): when the mobility layer sends the packets of
// an IPv6-endpoint SA to an IPv4 care-of address (ARCHITECTURE.md DR-8),
// the IPv4 header has DF set.
type DF uint8

const (
	DFCopy  DF = iota // copy from an IPv4 inner header, clear for IPv6 inner (default)
	DFSet             // always set
	DFClear           // always clear: routers may fragment the outer packet
)

// Replay window sizes (RFC 4303 §3.4.3: at least 32 MUST be supported).
const (
	MinReplayWindow     = 32
	MaxReplayWindow     = 8192
	DefaultReplayWindow = 1024
)

// Params configure one SA's transform. The same Params build either end:
// NewOutbound for the sender, NewInbound for the receiver.
type Params struct {
	SPI       uint32 // non-zero (RFC 4303 §2.1)
	Algorithm Algorithm
	// EncKey is the encryption key; for AES-GCM, AES-GMAC and
	// ChaCha20-Poly1305 it is key || 4-byte salt (RFC 4106 §8.1,
	// RFC 4543 §3.2, RFC 7634 §2). Empty for NULL.
	EncKey []byte
	// AuthKey is the integrity key for HMAC suites; empty for AEADs.
	AuthKey []byte
	// ESN enables 64-bit extended sequence numbers (RFC 4303 §2.2.1).
	ESN  bool
	Mode Mode
	// TunnelSrc and TunnelDst are the outer addresses in tunnel mode; both
	// IPv4 or both IPv6, and the family picks the outer header (RFC 4301
	// §4.4.2). Ignored in transport mode.
	TunnelSrc, TunnelDst netip.Addr
	// HopLimit is the outer TTL / Hop Limit in tunnel mode; 0 means 64.
	HopLimit uint8
	DF       DF
	// ReplayWindow is the inbound anti-replay window in packets:
	// 0 means DefaultReplayWindow; MinReplayWindow..MaxReplayWindow.
	ReplayWindow int
	// NoReplay turns anti-replay checking off on the inbound side (RFC
	// 4303 §3.4.3 allows it for manually keyed SAs). It cannot be combined
	// with ESN (the receiver could not infer the high half, and §3.3.3
	// says such a receiver SHOULD NOT negotiate ESN). The sender still
	// refuses to wrap its counter: §3.3.3 would allow wrapping here, but
	// the counter is also the IV of the counter-mode suites, so esp never
	// wraps.
	NoReplay bool
	// InitialSeq is the last sequence number already used by a sender;
	// the next packet carries InitialSeq+1. A restarted daemon passes the
	// persisted high-water mark here so IVs never repeat. On the inbound
	// side a non-zero InitialSeq positions the replay window as if that
	// sequence number had been received (see NewInbound).
	InitialSeq uint64
	// SeqReserve, when non-zero, is the bound Outbound.SetSeqReserve
	// would set, in force from the first packet: an SA created while
	// traffic flows is never without its durable reservation.
	SeqReserve uint64
}

// ParseMode reads "tunnel" or "transport" (any case); empty means tunnel,
// the default of a VPN gateway.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "tunnel":
		return Tunnel, nil
	case "transport":
		return Transport, nil
	}
	return 0, fmt.Errorf("esp: %q is not a mode; want tunnel or transport", s)
}

// ParseDF reads an outer DF rule, "copy", "set" or "clear" (RFC 4301
// §8.1); empty means copy.
func ParseDF(s string) (DF, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "copy":
		return DFCopy, nil
	case "set":
		return DFSet, nil
	case "clear":
		return DFClear, nil
	}
	return 0, fmt.Errorf("esp: %q is not a DF rule; want copy, set or clear (RFC 4301 §8.1)", s)
}
