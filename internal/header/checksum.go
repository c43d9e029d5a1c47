package header

import (
	"encoding/binary"
	"net/netip"
)

// PseudoHeaderChecksum returns the one's complement sum (RFC 1071), folded
// to 16 bits and not complemented, of the pseudo-header of an upper-layer
// packet of length bytes and protocol proto between src and dst. Pass it as
// the initial value to Checksum over the upper-layer packet.
//
// If both addresses are IPv4 it is the RFC 768 / RFC 793 §3.1 pseudo-header
// (source, destination, zero, protocol, 16-bit length); otherwise the RFC
// 8200 §8.1 one (source, destination, 32-bit upper-layer length, three zero
// bytes, next header), with IPv4 addresses taken in their IPv4-mapped form.
// For the Mobility Header src is the home address and dst the final
// destination (RFC 6275 §6.1.1).
func PseudoHeaderChecksum(proto uint8, src, dst netip.Addr, length int) uint32 {
	var sum uint32
	if src.Is4() && dst.Is4() {
		s, d := src.As4(), dst.As4()
		sum = uint32(binary.BigEndian.Uint16(s[:])) + uint32(binary.BigEndian.Uint16(s[2:])) +
			uint32(binary.BigEndian.Uint16(d[:])) + uint32(binary.BigEndian.Uint16(d[2:]))
	} else {
		s, d := src.As16(), dst.As16()
		for i := 0; i < 16; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
		}
	}
	l := uint32(length)
	sum += l>>16 + l&0xffff + uint32(proto)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum
}

// ChecksumUpdate returns the Internet checksum field value cksum after one
// 16-bit word of the covered data changed from old to new, by RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m').
func ChecksumUpdate(cksum, old, new uint16) uint16 {
	sum := uint32(^cksum) + uint32(^old) + uint32(new)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// UDPChecksum returns the value of the checksum field of the UDP datagram
// udp (header and payload; its own checksum field is treated as zero)
// between src and dst (RFC 768; RFC 8200 §8.1 for IPv6). A computed 0 is
// returned as 0xffff, since 0 on the wire means "no checksum".
func UDPChecksum(src, dst netip.Addr, udp []byte) uint16 {
	c := transportChecksum(ProtoUDP, src, dst, udp, 6)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// transportChecksum returns the checksum field value for seg, whose 2-byte
// checksum field is at the even offset csumOff and is treated as zero.
func transportChecksum(proto uint8, src, dst netip.Addr, seg []byte, csumOff int) uint16 {
	sum := PseudoHeaderChecksum(proto, src, dst, len(seg))
	sum = uint32(Checksum(seg[:csumOff], sum))
	return ^Checksum(seg[csumOff+2:], sum)
}
