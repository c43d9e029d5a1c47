package dataplane

import (
	"sync/atomic"

	"golang.org/x/sys/cpu"

	"github.com/mipsec/mipsec/spd"
)

// DropReason says why the dataplane dropped a packet; it indexes the drop
// counters in Stats. Values and names are stable: add new ones before
// NumDropReasons. ESP verdicts (ICV, replay, ...) are counted here once as
// DropSeal or DropOpen and in detail per SA in sad (sad.SA.Stats).
type DropReason uint8

const (
	// DropTUNRead: the TUN read failed (counted per failed read, not per
	// packet: the packets are unknown).
	DropTUNRead DropReason = iota
	// DropNotIP: an outbound packet from the TUN is not a parsable IPv4 or
	// IPv6 packet.
	DropNotIP
	// DropPolicyDiscard: the SPD said DISCARD (or nothing matched).
	DropPolicyDiscard
	// DropPolicyBypass: the SPD said BYPASS. A tunnel device has no
	// cleartext path out: bypassed traffic must be routed around the TUN,
	// so a BYPASS packet that reaches it is dropped and counted.
	DropPolicyBypass
	// DropNoSA: an outbound PROTECT policy names an SA the SAD does not
	// hold.
	DropNoSA
	// DropSeal: esp refused to seal (verdict counted in the SA's Stats).
	DropSeal
	// DropAfterSealHook: Hooks.AfterSeal returned false.
	DropAfterSealHook
	// DropOuter: the sealed packet's outer header could not be stripped
	// (a broken AfterSeal rewrite).
	DropOuter
	// DropNoEndpoint: no peer owns the SA and its outer destination is not
	// usable either.
	DropNoEndpoint
	// DropUnderlaySend: Underlay.Send failed.
	DropUnderlaySend
	// DropUnderlayRecv: a ReceiveFunc failed (counted per failed call).
	DropUnderlayRecv
	// DropShort: an inbound ESP packet shorter than the ESP header.
	DropShort
	// DropBeforeLookupHook: Hooks.BeforeLookup returned false.
	DropBeforeLookupHook
	// DropUnknownSPI: no inbound SA has the packet's SPI.
	DropUnknownSPI
	// DropOpen: esp refused the packet (ICV, replay, padding, selector,
	// ...; the verdict is counted in the SA's Stats).
	DropOpen
	// DropTransportMode: a packet of a transport-mode SA arrived as ESP in
	// UDP (RFC 3948 §3.1.2 transport mode needs the original addresses for
	// the checksums, which a NAT changed; mip6 sends its transport-mode
	// signaling as EncapIP instead). (Before transport mode was supported,
	// every transport-mode packet was counted here.)
	DropTransportMode
	// DropTUNWrite: the TUN write failed.
	DropTUNWrite
	// DropClosing: the packet was in flight when the Dataplane closed.
	DropClosing
	// DropUnprotected: an EncapIP packet that does not carry ESP (a plain
	// packet in UDP 4191, a Home Address option or type 2 Routing header
	// in front of something else than ESP, garbage): the signaling it
	// could carry must be ESP-protected (RFC 4877 §4.1).
	DropUnprotected
	// DropDeliver: a transport-mode packet the dataplane cannot hand on:
	// a raw ESP packet without its outer IP header in front (an underlay
	// that does not provide it, see ReceiveFunc).
	DropDeliver
	// DropLinkLocal: an outbound packet the SPD would discard that is
	// link-scoped traffic: IPv6 from or to a link-local address
	// (fe80::/10) or to a link-local-scope multicast group (ff02::/16),
	// IPv4 from or to 169.254.0.0/16 (RFC 3927) or to the Local Network
	// Control Block 224.0.0.0/24 (RFC 5771 §4). The kernel emits such
	// packets on every interface that comes up, the TUN included: Router
	// Solicitations (RFC 4861 §6.3.7: a host sends them when an interface
	// becomes enabled), MLD reports (RFC 3810 §6), DAD Neighbor
	// Solicitations (RFC 4862 §5.4), mDNS. They never belong in a tunnel
	// (RFC 4291 §2.5.6, §2.7: link-local and link-local-scope traffic is
	// not forwarded off the link), so they are counted apart from
	// DropPolicyDiscard and not warned about (drop warnings,
	// Config.DropLogInterval). A policy that protects or bypasses such
	// traffic still applies.
	DropLinkLocal
	// DropLoop: an outbound packet the SPD would seal that is our own
	// ESP (IP protocol 50, or UDP 4500 / 4191 / the underlay's port) to
	// the address this SA's packets go to: the kernel routed the
	// underlay's packet back into the TUN (a TUN route covers the peer or
	// the home agent, and the underlay's sockets are not kept out of the
	// TUN by policy routing). Sealing it again would loop forever; it is
	// dropped and warned about (loop.go).
	DropLoop
	// DropAcquire: an outbound PROTECT policy names a trap SPI
	// (1..MaxTrapSPI, reserved by RFC 4303 §2.1, so never a negotiated
	// SA's) the SAD does not hold: the traffic of a child that is
	// negotiated on demand, before its SA exists. Config.OnAcquire is told
	// (acquire.go).
	DropAcquire
	// NumDropReasons is the number of drop reasons (the size of
	// Stats.Drops).
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	DropTUNRead:          "tun_read",
	DropNotIP:            "not_ip",
	DropPolicyDiscard:    "policy_discard",
	DropPolicyBypass:     "policy_bypass",
	DropNoSA:             "no_sa",
	DropSeal:             "seal",
	DropAfterSealHook:    "after_seal_hook",
	DropOuter:            "outer_header",
	DropNoEndpoint:       "no_endpoint",
	DropUnderlaySend:     "underlay_send",
	DropUnderlayRecv:     "underlay_recv",
	DropShort:            "short",
	DropBeforeLookupHook: "before_lookup_hook",
	DropUnknownSPI:       "unknown_spi",
	DropOpen:             "open",
	DropTransportMode:    "transport_mode",
	DropTUNWrite:         "tun_write",
	DropClosing:          "closing",
	DropUnprotected:      "unprotected",
	DropDeliver:          "deliver",
	DropLinkLocal:        "link_local",
	DropLoop:             "loop",
	DropAcquire:          "acquire",
}

// String returns the stable snake_case name, for metrics and logs.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Stats is a snapshot of the dataplane's counters. Each counter is read
// atomically; the snapshot as a whole is not. Outbound, every packet read
// from the TUN (OutPackets) is either sent (SentPackets) or dropped with an
// outbound reason; inbound, every ESP packet received (InPackets) is either
// delivered (DeliveredPackets), consumed by Hooks.Deliver (Consumed) or
// dropped with an inbound reason. Packets sent with Inject count as
// outbound packets (OutPackets) too.
type Stats struct {
	// OutPackets, OutBytes: cleartext packets read from the TUN.
	OutPackets, OutBytes uint64
	// SentPackets, SentBytes: ESP packets (SPI first) handed to the
	// underlay without error.
	SentPackets, SentBytes uint64
	// InPackets, InBytes: ESP packets received from the underlay.
	InPackets, InBytes uint64
	// DeliveredPackets, DeliveredBytes: cleartext packets written to the
	// TUN.
	DeliveredPackets, DeliveredBytes uint64
	// Drops counts dropped packets by reason.
	Drops [NumDropReasons]uint64
	// Keepalives counts NAT keepalives sent; Roams endpoint changes.
	Keepalives, Roams uint64
	// Injected counts the packets given to Inject (they are in OutPackets
	// too).
	Injected uint64
	// Consumed counts the transport-mode packets Hooks.Deliver consumed.
	Consumed uint64
	// InboundPolicyHits counts, per inbound PROTECT policy, the ESP
	// packets delivered (or consumed) whose decrypted packet matched that
	// policy first: the hits spd cannot count, since ESP never goes
	// through the inbound SPD (RFC 4301 §5.2: the SA's selectors decide).
	// In the order of spd.DB.List(sad.Inbound) as the dataplane last read
	// it (at most a second old; see inPolicies); nil when there are no
	// inbound policies. The control socket adds them to the policies'
	// hits.
	InboundPolicyHits []spd.PolicyStats
}

// Dropped returns the sum of Drops.
func (s Stats) Dropped() uint64 {
	var n uint64
	for _, d := range s.Drops {
		n += d
	}
	return n
}

// counters are the live atomic counters behind Stats. Workers add per batch,
// not per packet, where they can. The outbound and the inbound counters,
// added to on different cores at the same time, lie in cache lines of their
// own (and away from the Dataplane's read-mostly fields around them), so
// that the two directions do not make each other's lines bounce.
type counters struct {
	_                      cpu.CacheLinePad
	outPackets, outBytes   atomic.Uint64
	sentPackets, sentBytes atomic.Uint64
	_                      cpu.CacheLinePad
	inPackets, inBytes     atomic.Uint64
	deliveredPackets       atomic.Uint64
	deliveredBytes         atomic.Uint64
	_                      cpu.CacheLinePad
	drops                  [NumDropReasons]atomic.Uint64
	keepalives, roams      atomic.Uint64
	injected, consumed     atomic.Uint64
	// warned counts the drops of each warning kind (dropKind), for the
	// counts in the drop warnings.
	warned [numDropKinds]atomic.Uint64
	_      cpu.CacheLinePad
}

func (c *counters) snapshot() Stats {
	s := Stats{
		OutPackets:       c.outPackets.Load(),
		OutBytes:         c.outBytes.Load(),
		SentPackets:      c.sentPackets.Load(),
		SentBytes:        c.sentBytes.Load(),
		InPackets:        c.inPackets.Load(),
		InBytes:          c.inBytes.Load(),
		DeliveredPackets: c.deliveredPackets.Load(),
		DeliveredBytes:   c.deliveredBytes.Load(),
		Keepalives:       c.keepalives.Load(),
		Roams:            c.roams.Load(),
		Injected:         c.injected.Load(),
		Consumed:         c.consumed.Load(),
	}
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}
