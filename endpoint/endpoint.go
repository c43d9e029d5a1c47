package endpoint

import "net/netip"

// Encap says how ESP packets travel on the underlay.
type Encap uint8

const (
	// EncapRaw: ESP directly over IP (IP protocol 50, RFC 4303).
	EncapRaw Encap = iota
	// EncapUDP: ESP in UDP (RFC 3948), normally port 4500.
	EncapUDP
	// EncapIP: the packet is a whole IP packet, outer header(s) included;
	// it is how the mobility signaling travels (RFC 6275 §6.3, §6.4;
	// RFC 5555 §4.1).
	//
	// Outbound: the mobility hook (dataplane.Hooks.AfterSeal) built the
	// outer header(s) (a Home Address option, a type 2 Routing header, an
	// IPv4/UDP 4191 header) and set the endpoint's Encap to EncapIP; the
	// dataplane strips nothing and the underlay sends the packet
	// header-included (IPPROTO_RAW, IPv4 and IPv6) to Addr.Addr() (Addr's
	// port is ignored: 0).
	//
	// Inbound: the packet came in UDP with source or destination port 4191
	// (RFC 5555 §4.1; Addr is the outer IPv4 source address and port, the
	// packet the inner IPv6 or IPv4 packet behind the UDP header), or as
	// IPv6 with a Destination Options or Routing header the kernel does
	// not process (Home Address option, type 2 Routing header; Addr is
	// (source, 0) and the underlay rebuilt the 40-byte IPv6 header in
	// front of the extension headers).
	EncapIP
)

// String returns "raw", "udp" or "ip".
func (e Encap) String() string {
	switch e {
	case EncapRaw:
		return "raw"
	case EncapUDP:
		return "udp"
	case EncapIP:
		return "ip"
	}
	return "encap?"
}

// UDPEncapPort is the IKE NAT-T / ESP-in-UDP port (RFC 3948 §2.1).
const UDPEncapPort = 4500

// DSMIPv6Port is the UDP port of the IPv4 tunnel of Dual-Stack Mobile IPv6
// (RFC 5555 §4.1: binding updates from an IPv4 care-of address go to it,
// and the home agent answers from it).
const DSMIPv6Port = 4191

// Endpoint is where an ESP packet comes from or goes to on the underlay.
type Endpoint struct {
	// Addr is the remote address; its port is 0 for EncapRaw. For EncapIP
	// it is 0 outbound, and inbound the UDP source port of a packet that
	// came in UDP 4191 (else 0).
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
	case EncapIP:
		return true
	}
	return false
}

// String is for logs and the control socket, never the packet path:
// "esp:ADDR", "udp:ADDR:PORT", "ip:ADDR" (or "ip:ADDR:PORT" when the port
// is set).
func (ep Endpoint) String() string {
	switch ep.Encap {
	case EncapUDP:
		return "udp:" + ep.Addr.String()
	case EncapIP:
		if ep.Addr.Port() != 0 {
			return "ip:" + ep.Addr.String()
		}
		return "ip:" + ep.Addr.Addr().String()
	}
	return "esp:" + ep.Addr.Addr().String()
}
