package mip6

import "net/netip"

// OutKind says how the dataplane sends a packet after a mobility hook
// looked at it (draft-laganier-mext-dsmipv6-ipsec-00: the mobility tunnel
// layer changes only the outer header, after IPsec).
type OutKind uint8

const (
	// OutKeep leaves the endpoint the dataplane chose (no binding, or not
	// a packet the mobility layer handles).
	OutKeep OutKind = iota
	// OutRaw sends the ESP packet over IP (protocol 50) to Dst.Addr(); the
	// underlay's socket builds the outer header (DR-1, RFC 4303).
	OutRaw
	// OutUDP sends the ESP packet in UDP (RFC 3948 §2.1) to Dst.
	OutUDP
	// OutIP means the hook built the complete packet in b (a Home Address
	// option, a type 2 routing header or IPv4/UDP 4191 in front of ESP,
	// DR-3, RFC 5555 §4.1); it is sent header-included to Dst.Addr().
	OutIP
)

// String names k for logs and tests.
func (k OutKind) String() string {
	switch k {
	case OutKeep:
		return "keep"
	case OutRaw:
		return "raw"
	case OutUDP:
		return "udp"
	case OutIP:
		return "ip"
	}
	return "out?"
}

// Out is a mobility hook's decision for one outbound packet.
type Out struct {
	Kind OutKind
	Dst  netip.AddrPort
}

// Source describes where an inbound packet came from on the underlay, as
// the dataplane saw it (the program embedding mip6 maps its endpoint type
// to this one, so that mip6 never imports the dataplane).
type Source struct {
	// Addr is the outer source: address and, for UDP, port.
	Addr netip.AddrPort
	// UDP: the packet came ESP-in-UDP (RFC 3948, port 4500).
	UDP bool
	// IP: the packet came as a whole IP packet: from UDP port 4191
	// (RFC 5555 §4.1; Addr has the port) or as IPv6 with a Home Address
	// option or type 2 routing header (Addr has port 0).
	IP bool
}
