package netlab

import (
	"encoding/binary"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Kind is what a captured frame is.
type Kind int

const (
	Other     Kind = iota // anything else (Frame.Desc says what)
	ESP                   // ESP, raw (IP protocol 50) or in UDP 4500
	Keepalive             // NAT keepalive (RFC 3948): one 0xff byte to/from UDP 4500
	Control               // link-layer housekeeping: ARP, ND, MLD
	ICMPError             // ICMP destination unreachable, ICMPv6 unreachable
)

func (k Kind) String() string {
	switch k {
	case ESP:
		return "ESP"
	case Keepalive:
		return "keepalive"
	case Control:
		return "control"
	case ICMPError:
		return "ICMP error"
	}
	return "other"
}

// Frame is the classification of one Ethernet frame.
type Frame struct {
	Kind     Kind
	SPI, Seq uint32 // ESP
	UDP      bool   // ESP in UDP (RFC 3948)
	Src      string // source IP address ("" if not IP)
	SrcPort  uint16 // UDP source port of ESP in UDP (or in UDP 4191)
	Desc     string // what an Other frame is
	// Mobility signaling forms (mobility-contract.md "Wire model"):
	// DSMIP is ESP inside IPv6 inside UDP with port 4191 on one side
	// (RFC 5555 §4.1, a BU or BA to/from an IPv4 care-of address; SPI and
	// Seq are the inner ESP's); HAO is ESP behind an IPv6 Destination
	// Options header with a Home Address option (RFC 6275 §6.3, a BU from
	// an IPv6 care-of address); RH2 is ESP behind a type 2 Routing header
	// (RFC 6275 §6.4, a BA to an IPv6 care-of address).
	DSMIP, HAO, RH2 bool
}

// Signaling reports whether f is ESP in one of the mobility signaling
// forms (UDP 4191, Home Address option, type 2 Routing header), as
// opposed to data ESP (raw or in UDP 4500).
func (f Frame) Signaling() bool { return f.Kind == ESP && (f.DSMIP || f.HAO || f.RH2) }

// DSMIPPort is the UDP port of the home agent for DSMIPv6 signaling
// (RFC 5555 §8).
const DSMIPPort = 4191

// Classify classifies an Ethernet frame as seen on a veth: ESP (raw, or
// in UDP with port 4500 on at least one side, as a NAT may change the
// other; also behind IPv6 Destination Options or a type 2 Routing header,
// or inside IPv6 in UDP 4191), NAT keepalives, ARP/ND/MLD, ICMP errors,
// and anything else.
func Classify(f []byte) Frame {
	if len(f) < 14 {
		return Frame{Desc: "runt frame"}
	}
	etype := binary.BigEndian.Uint16(f[12:14])
	ip := f[14:]
	var proto byte
	var l4 []byte
	var src string
	switch etype {
	case unix.ETH_P_ARP:
		return Frame{Kind: Control}
	case unix.ETH_P_IP:
		if len(ip) < 20 {
			return Frame{Desc: "short IPv4"}
		}
		proto, l4 = ip[9], ip[min(int(ip[0]&0xf)*4, len(ip)):]
		src = net.IP(ip[12:16]).String()
		if off := binary.BigEndian.Uint16(ip[6:8]) & 0x1fff; off != 0 {
			return Frame{Src: src, Desc: "IPv4 fragment"}
		}
	case unix.ETH_P_IPV6:
		if len(ip) < 40 {
			return Frame{Desc: "short IPv6"}
		}
		proto, l4 = ip[6], ip[40:]
		src = net.IP(ip[8:24]).String()
		if proto == 0 { // hop-by-hop options: MLD reports
			return Frame{Kind: Control, Src: src}
		}
		var hao, rh2 bool
		proto, l4, hao, rh2 = skipMobilityHeaders(proto, l4)
		if hao || rh2 {
			if proto == unix.IPPROTO_ESP && len(l4) >= 8 {
				return Frame{Kind: ESP, SPI: binary.BigEndian.Uint32(l4), Seq: binary.BigEndian.Uint32(l4[4:]), Src: src, HAO: hao, RH2: rh2}
			}
			return Frame{Src: src, Desc: fmt.Sprintf("IPv6 with HAO/RH2, then IP protocol %d", proto)}
		}
	default:
		return Frame{Desc: fmt.Sprintf("ethertype 0x%04x", etype)}
	}
	switch {
	case proto == unix.IPPROTO_ESP && len(l4) >= 8:
		return Frame{Kind: ESP, SPI: binary.BigEndian.Uint32(l4), Seq: binary.BigEndian.Uint32(l4[4:]), Src: src}
	case proto == unix.IPPROTO_UDP && len(l4) >= 8 &&
		(binary.BigEndian.Uint16(l4[0:2]) == DSMIPPort || binary.BigEndian.Uint16(l4[2:4]) == DSMIPPort):
		// RFC 5555 §4.1: IPv4 / UDP 4191 / IPv6 / ESP. Anything else in
		// UDP 4191 (a cleartext inner packet) is Other.
		sport, dport := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		in := l4[8:]
		if len(in) >= 48 && in[0]>>4 == 6 {
			nh, rest, hao, rh2 := skipMobilityHeaders(in[6], in[40:])
			if nh == unix.IPPROTO_ESP && len(rest) >= 8 {
				return Frame{Kind: ESP, SPI: binary.BigEndian.Uint32(rest), Seq: binary.BigEndian.Uint32(rest[4:]), Src: src, SrcPort: sport,
					DSMIP: true, HAO: hao, RH2: rh2}
			}
		}
		return Frame{Src: src, Desc: fmt.Sprintf("UDP %d->%d without ESP, %d bytes", sport, dport, len(in))}
	case proto == unix.IPPROTO_UDP && len(l4) >= 8 &&
		(binary.BigEndian.Uint16(l4[0:2]) == 4500 || binary.BigEndian.Uint16(l4[2:4]) == 4500):
		sport, dport := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		body := l4[8:]
		switch {
		case len(body) == 1 && body[0] == 0xff:
			return Frame{Kind: Keepalive, Src: src, SrcPort: sport}
		case len(body) >= 8 && binary.BigEndian.Uint32(body) != 0:
			return Frame{Kind: ESP, SPI: binary.BigEndian.Uint32(body), Seq: binary.BigEndian.Uint32(body[4:]), UDP: true, Src: src, SrcPort: sport}
		default:
			return Frame{Src: src, Desc: fmt.Sprintf("UDP %d->%d, %d bytes", sport, dport, len(body))}
		}
	case proto == unix.IPPROTO_ICMPV6 && len(l4) > 0 && (l4[0] >= 133 && l4[0] <= 137 || l4[0] == 143):
		return Frame{Kind: Control, Src: src}
	case proto == unix.IPPROTO_ICMP && len(l4) > 0 && l4[0] == 3, proto == unix.IPPROTO_ICMPV6 && len(l4) > 0 && l4[0] == 1:
		return Frame{Kind: ICMPError, Src: src}
	}
	if (proto == unix.IPPROTO_ICMP || proto == unix.IPPROTO_ICMPV6) && len(l4) >= 2 {
		name := "ICMP"
		if proto == unix.IPPROTO_ICMPV6 {
			name = "ICMPv6"
		}
		return Frame{Src: src, Desc: fmt.Sprintf("%s type %d code %d", name, l4[0], l4[1])}
	}
	return Frame{Src: src, Desc: fmt.Sprintf("IP protocol %d", proto)}
}

// skipMobilityHeaders walks IPv6 Destination Options (60) and Routing
// (43) headers in front of the upper layer (RFC 8200 §4) and reports
// whether they held a Home Address option (type 201, RFC 6275 §6.3) or a
// type 2 Routing header (RFC 6275 §6.4). It returns the upper-layer
// protocol and its bytes; a truncated header ends the walk there.
func skipMobilityHeaders(proto byte, b []byte) (byte, []byte, bool, bool) {
	var hao, rh2 bool
	for n := 0; n < 8 && (proto == unix.IPPROTO_DSTOPTS || proto == unix.IPPROTO_ROUTING); n++ {
		if len(b) < 8 {
			return proto, b, hao, rh2
		}
		l := (int(b[1]) + 1) * 8
		if l > len(b) {
			return proto, b, hao, rh2
		}
		if proto == unix.IPPROTO_ROUTING && b[2] == 2 {
			rh2 = true
		}
		if proto == unix.IPPROTO_DSTOPTS {
			for o := 2; o < l; {
				if b[o] == 0 { // Pad1
					o++
					continue
				}
				if o+1 >= l {
					break
				}
				if b[o] == 201 {
					hao = true
				}
				o += 2 + int(b[o+1])
			}
		}
		proto, b = b[0], b[l:]
	}
	return proto, b, hao, rh2
}
