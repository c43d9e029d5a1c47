package sad

// Packet builders for the tests. They write the fields the selectors read
// and little else (checksums are zero): enough for header.ParseFlow and for
// esp, which does not look inside the payload.

import (
	"encoding/binary"
	"net/netip"

	"github.com/mipsec/mipsec/internal/header"
)

var (
	hoa   = netip.MustParseAddr("2001:db8:1::100") // the MN's home address
	ha    = netip.MustParseAddr("2001:db8:1::1")   // its home agent
	coa   = netip.MustParseAddr("2001:db8:99::7")  // a care-of address
	cn    = netip.MustParseAddr("2001:db8:5::5")   // a correspondent
	other = netip.MustParseAddr("2001:db8:6::6")   // an address no selector names
	v4a   = netip.MustParseAddr("192.0.2.10")
	v4b   = netip.MustParseAddr("198.51.100.20")
)

// MH types (RFC 6275 §6.1.2) and ICMPv6 types (RFC 4443, RFC 6275 §6.5).
const (
	mhHoTI = 1
	mhHoT  = 3
	mhBU   = 5
	mhBAck = 6
	mps    = 146
	mpa    = 147
)

// l4 builders: the next-layer header and its protocol number.
type l4 struct {
	proto uint8
	b     []byte
}

func udp(sport, dport uint16, data int) l4 {
	b := make([]byte, 8+data)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	return l4{header.ProtoUDP, b}
}

func tcp(sport, dport uint16) l4 {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	return l4{header.ProtoTCP, b}
}

func icmp6(typ, code uint8) l4 { return l4{header.ProtoICMPv6, []byte{typ, code, 0, 0, 0, 0, 0, 0}} }
func icmp4(typ, code uint8) l4 { return l4{header.ProtoICMP, []byte{typ, code, 0, 0, 0, 0, 0, 0}} }

// mh is a Mobility Header of type t with 10 bytes of message data
// (16 bytes in all, Header Len 1).
func mh(t uint8) l4 {
	b := make([]byte, 16)
	b[0] = header.ProtoNoNext
	b[1] = 1
	b[2] = t
	return l4{header.ProtoMobility, b}
}

// ip6 builds an IPv6 packet src -> dst carrying p.
func ip6(src, dst netip.Addr, p l4) []byte {
	b := make([]byte, 40+len(p.b))
	binary.BigEndian.PutUint32(b, 6<<28)
	binary.BigEndian.PutUint16(b[4:], uint16(len(p.b)))
	b[6] = p.proto
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[40:], p.b)
	return b
}

// ip6HAO builds an IPv6 packet from a care-of address with a Home Address
// option naming the home address (RFC 6275 §6.3): home-address form
// src = home.
func ip6HAO(careOf, home, dst netip.Addr, p l4) []byte {
	b := make([]byte, 40+header.HAODestOptsLen+len(p.b))
	binary.BigEndian.PutUint32(b, 6<<28)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	b[6] = header.ProtoDestOpts
	b[7] = 64
	s, d := careOf.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	header.DestOpts(b[40:]).EncodeHAO(p.proto, home)
	copy(b[40+header.HAODestOptsLen:], p.b)
	return b
}

// ip4 builds an IPv4 packet src -> dst carrying p.
func ip4(src, dst netip.Addr, p l4) []byte {
	b := make([]byte, 20+len(p.b))
	b[0] = 4<<4 | 5
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64
	b[9] = p.proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	header.IPv4(b).UpdateChecksum()
	copy(b[20:], p.b)
	return b
}

// flow parses pkt, which must be valid.
func flow(pkt []byte) *header.Flow {
	var f header.Flow
	if !header.ParseFlow(pkt, &f) {
		panic("test packet does not parse")
	}
	return &f
}
