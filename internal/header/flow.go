package header

import "net/netip"

// Flow holds the RFC 4301 §4.4.1.1 selector fields of one IP packet, in
// "home-address form" (RFC 4877 §4.2; DR-6 in ARCHITECTURE.md, the
// unmodified-IPsec rules): the address in a Home Address destination option
// replaces Src, and the address in a type 2 Routing header replaces Dst.
type Flow struct {
	Src, Dst netip.Addr
	// Proto is the next-layer protocol: the first header after the IPv6
	// extension headers (Hop-by-Hop, Routing, Fragment, Destination
	// Options). ESP and AH are next-layer protocols.
	Proto uint8
	// SrcPort and DstPort are TCP/UDP/SCTP ports.
	SrcPort, DstPort uint16
	// TypeCode is ICMP/ICMPv6 type<<8 | code, or Mobility Header type<<8
	// (RFC 4301 §4.4.1.1: MH type in the high 8 bits of the port selector).
	TypeCode uint16
	// Opaque is true when the port/type fields are not available: a
	// non-initial fragment, or a packet cut short before them (RFC 4301
	// §4.4.1.1 OPAQUE).
	Opaque bool
	// Fragment is true for any IPv4 or IPv6 fragment.
	Fragment bool
}
