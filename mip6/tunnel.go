package mip6

import (
	"net/netip"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// UDP ports of the mobility tunnel layer.
const (
	// PortESPInUDP is the RFC 3948 ESP-in-UDP (IKE NAT-T) port. RFC 5555
	// §5.2.2 carries the IPsec-protected data SA on it, with or without
	// a NAT.
	PortESPInUDP = 4500
	// PortDSMIPv6 is the home agent's RFC 5555 UDP tunnelling port
	// (§2.3.2.2, §8): BUs and BAs from and to an IPv4-only network.
	PortDSMIPv6 = 4191
)

// ipv4UDPLen is an IPv4 header without options and a UDP header.
const ipv4UDPLen = header.IPv4MinHeaderLen + header.UDPHeaderLen // 28

// defaultTTL is the TTL of an IPv4 header the MN adds in front of its own
// packet when the inner hop limit is zero (never the case for a packet the
// MN built itself).
const defaultTTL = 64

// isSealedIPv6ESP reports whether p is a bare IPv6 header followed directly
// by at least an ESP header, with a consistent payload length.
func isSealedIPv6ESP(p []byte) bool {
	if len(p) < header.IPv6HeaderLen+header.ESPHeaderLen || p[0]>>4 != 6 {
		return false
	}
	ip6 := header.IPv6(p)
	return ip6.NextHeader() == header.ProtoESP && ip6.PayloadLen() == len(p)-header.IPv6HeaderLen
}

// encodeIPv4 writes a 20-byte IPv4 header (no options, DF, ID 0) with its
// checksum at the start of b. Allocation-free.
func encodeIPv4(b []byte, tos, ttl, proto uint8, src, dst netip.Addr, totalLen int) {
	h := b[:header.IPv4MinHeaderLen:header.IPv4MinHeaderLen]
	h[0] = header.IPv4Version<<4 | header.IPv4MinHeaderLen/4
	h[1] = tos
	h[2], h[3] = byte(totalLen>>8), byte(totalLen)
	h[4], h[5] = 0, 0 // Identification 0: atomic datagram (RFC 6864 §4.1)
	h[6], h[7] = byte(header.IPv4FlagDF>>8), 0
	h[8] = ttl
	h[9] = proto
	h[10], h[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	c := ^header.Checksum(h, 0)
	h[10], h[11] = byte(c>>8), byte(c)
}

// SendFromCoA is DR-3 (ARCHITECTURE.md, the unmodified-IPsec rules; RFC 5555
// §5.1): on the MN, it sends a BU that transport-mode ESP (SA1, recognised
// by its SPI) has sealed from the new care-of address newCoA, while other
// traffic keeps the registered CoA until the BA arrives.
//
// b.Bytes() must be `IPv6(HoA -> HA) / ESP ...` (Next Header 50, consistent
// payload length).
//
//   - IPv6 newCoA (RFC 6275 §6.3, §11.7.1; RFC 4877 §4.2): the source
//     becomes newCoA and a 24-byte Destination Options header with a Home
//     Address option carrying the HoA is inserted after the IPv6 header:
//     `IPv6(CoA -> HA) / DestOpts(HAO=HoA) / ESP`. The HAO lies outside ESP
//     coverage in transport mode, so adding it after sealing is allowed.
//     The IPv6 header moves 24 bytes into the headroom; ESP stays put.
//     The packet goes to the HA.
//   - IPv4 newCoA (RFC 5555 §4.1, §4.2 "IPv4/UDP/IPv6/ESP"): prepends
//     `IPv4(newCoA -> haV4) / UDP(sport -> 4191)` in front of the whole
//     IPv6 packet, whose source stays the HoA (no HAO, RFC 5555 §4.2,
//     §5.2.1). The packet goes to haV4.
//
// to is that destination with EncapIP: the packet leaves whole,
// header-included.
//
// The IPv4 header copies DSCP/ECN and TTL from the IPv6 header (RFC 5555
// §4.1.1), sets DF and Identification 0. The UDP checksum is computed:
// BUs are small and rare, and unlike RFC 3948 nothing in RFC 5555 allows
// relaxing RFC 768 for the tunnel port.
//
// On malformed input, too little headroom or a bad address, ok is false
// and b is unchanged. It never allocates.
func SendFromCoA(b *pkt.Buf, newCoA, haV4 netip.Addr, sport uint16) (to endpoint.Endpoint, ok bool) {
	p := b.Bytes()
	if !isSealedIPv6ESP(p) {
		return endpoint.Endpoint{}, false
	}
	ip6 := header.IPv6(p)
	coa := newCoA.Unmap()
	switch {
	case coa.Is6():
		hoa, ha := ip6.Src(), ip6.Dst()
		out, ext, ok := insertAfterIPv6(b, header.HAODestOptsLen, header.ProtoDestOpts)
		if !ok {
			return endpoint.Endpoint{}, false
		}
		header.DestOpts(ext).EncodeHAO(header.ProtoESP, hoa)
		header.IPv6(out).SetSrc(coa)
		return wholeTo(ha), true
	case !coa.Is4() || !haV4.Unmap().Is4():
		return endpoint.Endpoint{}, false
	}
	haV4 = haV4.Unmap()
	if !wrapIPv4UDP(b, coa, haV4, sport, PortDSMIPv6) {
		return endpoint.Endpoint{}, false
	}
	return wholeTo(haV4), true
}

// wholeTo is the endpoint of a packet built whole here: header-included
// to a (RFC 6275 §6.3, §6.4; RFC 5555 §4.1).
func wholeTo(a netip.Addr) endpoint.Endpoint {
	return endpoint.Endpoint{Addr: netip.AddrPortFrom(a, 0), Encap: endpoint.EncapIP}
}

// insertAfterIPv6 makes room for an n-byte extension header right behind
// the 40-byte IPv6 header of the sealed packet in b: the IPv6 header moves
// n bytes into the headroom while ESP stays put (only header bytes move),
// its Next Header becomes nh and its payload length grows by n. It returns
// the packet and the room for the caller to fill (whose own Next Header
// is the old one, ESP). ok is false, b unchanged, without the headroom or
// when the payload would pass 65535 bytes.
func insertAfterIPv6(b *pkt.Buf, n int, nh uint8) (out, ext []byte, ok bool) {
	if b.HeadroomLen() < n || b.Len()-header.IPv6HeaderLen+n > 0xffff {
		return nil, nil, false
	}
	b.Prepend(n)
	out = b.Bytes()
	copy(out[:header.IPv6HeaderLen], out[n:n+header.IPv6HeaderLen])
	o6 := header.IPv6(out)
	o6.SetNextHeader(nh)
	o6.SetPayloadLen(len(out) - header.IPv6HeaderLen)
	return out, out[header.IPv6HeaderLen : header.IPv6HeaderLen+n], true
}

// wrapIPv4UDP puts `IPv4(src -> dst) / UDP(sport -> dport)` in front of the
// whole IPv6 packet in b (RFC 5555 §4.1 UDP tunnel format). The IPv4 header
// copies DSCP/ECN and TTL from the IPv6 header (RFC 5555 §4.1.1), sets DF
// with Identification 0; the UDP checksum is computed (RFC 768: RFC 5555
// relaxes nothing for the tunnel port). false, b unchanged, without the
// headroom or when the datagram would pass 65535 bytes.
func wrapIPv4UDP(b *pkt.Buf, src, dst netip.Addr, sport, dport uint16) bool {
	inner := b.Len()
	if b.HeadroomLen() < ipv4UDPLen || inner+ipv4UDPLen > 0xffff {
		return false
	}
	ip6 := header.IPv6(b.Bytes())
	tos, ttl := ip6.TrafficClass(), ip6.HopLimit()
	if ttl == 0 {
		ttl = defaultTTL
	}
	b.Prepend(ipv4UDPLen)
	out := b.Bytes()
	encodeIPv4(out, tos, ttl, header.ProtoUDP, src, dst, len(out))
	u := header.UDP(out[header.IPv4MinHeaderLen:])
	u.SetSrcPort(sport)
	u.SetDstPort(dport)
	u.SetLength(header.UDPHeaderLen + inner)
	u.SetChecksum(0)
	u.SetChecksum(header.UDPChecksum(src, dst, u))
	return true
}

// sigPacketCap is the initial capacity of a signaling packet built here
// (BU, BA, MPA): an IPv6 header and a typical message, so the Append call
// after the reserved header rarely grows the slice.
const sigPacketCap = header.IPv6HeaderLen + 88

// encodeIPv6 fills in the IPv6 header at the front of the signaling packet
// p (its first 40 bytes were reserved; the proto message follows, up to
// len(p)): Payload Length len(p)-40, no extension headers.
func encodeIPv6(p []byte, proto, hopLimit uint8, src, dst netip.Addr) {
	header.IPv6(p).Encode(&header.IPv6Fields{
		PayloadLen: uint16(len(p) - header.IPv6HeaderLen),
		NextHeader: proto,
		HopLimit:   hopLimit,
		Src:        src,
		Dst:        dst,
	})
}
