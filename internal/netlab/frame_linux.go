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
	SrcPort  uint16 // UDP source port of ESP in UDP
	Desc     string // what an Other frame is
}

// Classify classifies an Ethernet frame as seen on a veth: ESP (raw, or
// in UDP with port 4500 on at least one side, as a NAT may change the
// other), NAT keepalives, ARP/ND/MLD, ICMP errors, and anything else.
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
	default:
		return Frame{Desc: fmt.Sprintf("ethertype 0x%04x", etype)}
	}
	switch {
	case proto == unix.IPPROTO_ESP && len(l4) >= 8:
		return Frame{Kind: ESP, SPI: binary.BigEndian.Uint32(l4), Seq: binary.BigEndian.Uint32(l4[4:]), Src: src}
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
	return Frame{Src: src, Desc: fmt.Sprintf("IP protocol %d", proto)}
}
