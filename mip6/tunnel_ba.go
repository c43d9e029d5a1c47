package mip6

import (
	"net/netip"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// BAToCoA points a Binding Acknowledgement (or a Mobile Prefix
// Advertisement) that transport-mode ESP (SA2 or SA6, RFC 4877 §6) has
// sealed at the care-of address coa of an IPv6-CoA mobile node.
//
// b.Bytes() must be `IPv6(HA -> HoA) / ESP ...` (Next Header 50,
// consistent payload length), as the SA's transport-mode processing built
// it. A 24-byte type 2 Routing header carrying the home address (the
// packet's destination) with Segments Left 1 is inserted after the IPv6
// header and the destination becomes coa (RFC 6275 §6.4.1, §9.5.4: a BA
// answering a BU with a Home Address option goes to the BU's source with a
// type 2 Routing header; RFC 4877 §4.2: IPsec processed the packet in its
// home-address form, so the header may be added after sealing; it lies
// outside ESP coverage). The IPv6 header moves 24 bytes into the
// headroom; ESP stays put. to is (coa, EncapIP): sent header-included.
//
// On malformed input, too little headroom or a coa that is not a unicast
// IPv6 address, ok is false and b is unchanged. It never allocates.
func BAToCoA(b *pkt.Buf, coa netip.Addr) (to endpoint.Endpoint, ok bool) {
	p := b.Bytes()
	if !isSealedIPv6ESP(p) || !coa.Is6() || coa.Is4In6() || !bcUnicast(coa) {
		return endpoint.Endpoint{}, false
	}
	hoa := header.IPv6(p).Dst()
	out, ext, ok := insertAfterIPv6(b, header.RoutingType2Len, header.ProtoRouting)
	if !ok {
		return endpoint.Endpoint{}, false
	}
	header.RoutingType2(ext).Encode(header.ProtoESP, hoa)
	header.IPv6(out).SetDst(coa)
	return wholeTo(coa), true
}

// BAToV4 wraps a sealed Binding Acknowledgement (or Mobile Prefix
// Advertisement) for a mobile node whose BU came from an IPv4 network in
// UDP port 4191 (RFC 5555 §4.2, §5.2.1):
//
//	IPv4(haV4 -> to.Addr) / UDP(4191 -> to.Port) / IPv6(HA -> HoA) / ESP
//
// to is the outer source address and UDP port the BU arrived from (the
// NAT's mapping when there is one; RFC 5555 §5.1: also when the BU was
// rejected). The inner IPv6 header keeps the home address as destination
// and gets no type 2 Routing header: the BU had no Home Address option
// (RFC 6275 §9.5.4; the RFC 5555 §4.2, §5.2.1 figures, over §4.5's text).
//
// b.Bytes() must be `IPv6 / ESP ...` as for BAToCoA. The IPv4 header
// copies DSCP/ECN and TTL from the IPv6 header (RFC 5555 §4.1.1), sets DF
// with Identification 0; the UDP checksum is computed (RFC 768; RFC 5555
// allows no zero checksum on the tunnel port). dst is (to.Addr, EncapIP):
// sent header-included.
//
// On malformed input, too little headroom or bad addresses, ok is false
// and b is unchanged. It never allocates.
func BAToV4(b *pkt.Buf, haV4 netip.Addr, to netip.AddrPort) (dst endpoint.Endpoint, ok bool) {
	p := b.Bytes()
	src, d := haV4.Unmap(), to.Addr().Unmap()
	if !isSealedIPv6ESP(p) || !src.Is4() || !d.Is4() || to.Port() == 0 {
		return endpoint.Endpoint{}, false
	}
	if !wrapIPv4UDP(b, src, d, PortDSMIPv6, to.Port()) {
		return endpoint.Endpoint{}, false
	}
	return wholeTo(d), true
}
