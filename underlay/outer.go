package underlay

import (
	"net/netip"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// WriteOuterHeader writes the normalised outer IP header that a ReceiveFunc
// leaves for a raw ESP packet (see ReceiveFunc) into b's headroom, directly
// in front of b.Bytes() (the ESP packet, SPI first), without moving b's
// start: IPv4 (src and dst IPv4): 20 bytes, IHL 5, TTL 64, protocol 50,
// total length 20+b.Len(), header checksum set (RFC 791 §3.1); IPv6: 40
// bytes, next header 50, hop limit 64, payload length b.Len() (RFC 8200
// §3). It is for underlays (the Linux one, test fakes). It returns false,
// writing nothing, when the addresses are invalid or of different
// families, the headroom is too small or the length does not fit the
// header's field. It does not allocate.
func WriteOuterHeader(b *pkt.Buf, src, dst netip.Addr) bool {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return false
	}
	n := b.Len()
	if src.Is4() {
		off := b.Off() - header.IPv4MinHeaderLen
		if off < 0 || header.IPv4MinHeaderLen+n > 0xffff {
			return false
		}
		header.IPv4(b.B[off:b.Off()]).Encode(&header.IPv4Fields{
			TotalLen: uint16(header.IPv4MinHeaderLen + n), TTL: 64, Protocol: header.ProtoESP, Src: src, Dst: dst,
		})
		return true
	}
	off := b.Off() - header.IPv6HeaderLen
	if off < 0 || n > 0xffff {
		return false
	}
	header.IPv6(b.B[off:b.Off()]).Encode(&header.IPv6Fields{
		PayloadLen: uint16(n), NextHeader: header.ProtoESP, HopLimit: 64, Src: src, Dst: dst,
	})
	return true
}

// frontDF is the Don't Fragment bit an IPv4 outer header on the wire gets
// for the ESP packet b.Bytes() (RFC 4301 §8.1): the one the SA decided.
// The dataplane cuts a sealed packet in front of ESP and leaves the header
// it cut off in the headroom (dataplane/pipeline.go finishSeal): in tunnel
// mode the outer header the SA built, whose DF esp set per Params.DF (copy,
// set, clear; esp/sa.go), in transport mode the packet's own header. So
// when the 20 bytes in front of ESP are an IPv4 header (IHL 5, protocol 50,
// total length 20+b.Len()), its DF bit is the answer. Anything else in
// front says nothing about DF and gets DF set: an IPv6 header (an SA whose
// tunnel endpoints are IPv6, such as the HA <-> HoA template that the
// mobility layer sends to an IPv4 care-of address, ARCHITECTURE.md DR-8;
// RFC 4301 §8.1 has no DF rule for it), an IPv4 header with options, or
// headroom that holds no header at all. DF set is also what the mobility
// layer's own IPv4 headers carry (mip6/tunnel.go).
func frontDF(b *pkt.Buf) bool {
	off := b.Off() - header.IPv4MinHeaderLen
	if off < 0 {
		return true
	}
	h := b.B[off:b.Off()]
	if h[0] != header.IPv4Version<<4|header.IPv4MinHeaderLen/4 || h[9] != header.ProtoESP ||
		int(h[2])<<8|int(h[3]) != header.IPv4MinHeaderLen+b.Len() {
		return true
	}
	return h[6]&byte(header.IPv4FlagDF>>8) != 0
}
