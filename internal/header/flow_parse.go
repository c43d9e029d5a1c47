package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 Fragment header layout (RFC 8200 §4.5).
const (
	ipv6FragOffsetOffset = 2
	ipv6FragMore         = 0x0001
	ipv6FragOffsetMask   = 0xfff8
)

// routingTypeOffset is the Routing Type byte of any Routing header
// (RFC 8200 §4.4).
const routingTypeOffset = 2

// mhTypeOffset is the offset of the MH Type byte (RFC 6275 §6.1.1).
const mhTypeOffset = 2

// ParseFlow fills f with the selector fields of the IPv4 or IPv6 packet pkt
// (home-address form: HAO address → Src, type 2 RH address → Dst). Returns
// false if pkt is not a valid IP packet (version, lengths). Never allocates,
// never panics.
//
// The fields follow RFC 4301 §4.4.1.1 and RFC 4877 §4.2:
//
//   - Src and Dst are the header addresses, except that on IPv6 the address
//     of a Home Address option (RFC 6275 §6.3) replaces Src and the address
//     of a type 2 Routing header with Segments Left 1 (RFC 6275 §6.4)
//     replaces Dst.
//   - Proto is the next-layer protocol: on IPv6 the first header that is not
//     Hop-by-Hop, Routing, Fragment or Destination Options (IsExtensionHeader);
//     ESP and AH are next-layer protocols.
//   - SrcPort/DstPort are the first 4 bytes of a TCP, UDP or SCTP header;
//     TypeCode is ICMP/ICMPv6 type<<8|code or MH type<<8 (RFC 4301 §4.4.1.1).
//   - Fragment is set for a real fragment (IPv4 MF or offset; IPv6 Fragment
//     header with M or offset). An IPv6 atomic fragment (RFC 6946: offset 0,
//     M 0) is not a fragment and is parsed like an unfragmented packet.
//   - Opaque is set when the port/type fields are not available: a
//     non-initial fragment, or an L4 header shorter than the fields it
//     should hold. For a non-initial IPv6 fragment Proto is the Fragment
//     header's Next Header, which can itself be an extension header number
//     when the fragmentable part starts with one: then the next-layer
//     protocol is OPAQUE in RFC 4301 terms.
//
// ParseFlow returns false for: a bad version; an IPv4 IHL or total length
// that does not fit (IPv4.IsValid); an IPv6 payload length that does not fit
// (IPv6.IsValid); an IPv6 extension header chain cut short by the payload
// length (RFC 8200 §4.5 and RFC 7112: the first fragment carries the whole
// chain); a Destination Options header with malformed options (RFC 8200
// §4.2, a receiver discards it); more than one Home Address option or more
// than one type 2 Routing header (RFC 6275 §6.3, §6.4: at most one each; a
// second one would make the selectors differ from what the receiving stack
// uses); a type 2 Routing header with Segments Left other than 0 or 1 or a
// length other than 2 (RFC 6275 §6.4.1).
func ParseFlow(pkt []byte, f *Flow) bool {
	*f = Flow{}
	if len(pkt) == 0 {
		return false
	}
	switch pkt[0] >> 4 {
	case IPv4Version:
		return parseFlow4(IPv4(pkt), f)
	case IPv6Version:
		return parseFlow6(IPv6(pkt), f)
	}
	return false
}

func parseFlow4(b IPv4, f *Flow) bool {
	if !b.IsValid() {
		return false
	}
	f.Src, f.Dst = b.Src(), b.Dst()
	f.Proto = b.Protocol()
	if b.IsFragment() {
		f.Fragment = true
		if b.FragmentOffset() != 0 {
			f.Opaque = true
			return true
		}
	}
	parseL4(b.Payload(), f, ProtoICMP)
	return true
}

func parseFlow6(b IPv6, f *Flow) bool {
	if !b.IsValid() {
		return false
	}
	f.Src, f.Dst = b.Src(), b.Dst()
	pkt := []byte(b)
	var haveHAO, haveRH2 bool
	it := NewExtIter(b)
	for {
		h, done, err := it.Next()
		if err != nil {
			*f = Flow{}
			return false
		}
		if done {
			break
		}
		hdr := h.Bytes(pkt)
		switch h.Proto {
		case ProtoDestOpts:
			off, n, ok := scanHAO(hdr)
			if !ok || n > 1 || n == 1 && haveHAO {
				*f = Flow{}
				return false
			}
			if n == 1 {
				haveHAO = true
				f.Src = netip.AddrFrom16([16]byte(hdr[off:]))
			}
		case ProtoRouting:
			if hdr[routingTypeOffset] != RoutingTypeMIP6 {
				continue // other routing types: selectors use the header Dst
			}
			rh := RoutingType2(hdr)
			if haveRH2 || !rh.IsValid() {
				*f = Flow{}
				return false
			}
			haveRH2 = true
			if rh.SegmentsLeft() == 1 {
				f.Dst = rh.HomeAddress()
			}
		case ProtoFragment:
			fo := binary.BigEndian.Uint16(hdr[ipv6FragOffsetOffset:])
			if fo&(ipv6FragOffsetMask|ipv6FragMore) == 0 {
				continue // atomic fragment, RFC 6946
			}
			f.Fragment = true
			if fo&ipv6FragOffsetMask != 0 {
				// Non-initial fragment: what follows is not a header.
				f.Proto = h.Next
				f.Opaque = true
				return true
			}
		}
	}
	f.Proto = it.UpperProto()
	off := it.UpperOffset()
	parseL4(pkt[off:IPv6HeaderLen+b.PayloadLen()], f, ProtoICMPv6)
	return true
}

// parseL4 fills the port / type fields from the next-layer header l4 of
// protocol f.Proto; icmp is the ICMP protocol number of the IP version.
func parseL4(l4 []byte, f *Flow, icmp uint8) {
	switch f.Proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		if len(l4) < 4 {
			f.Opaque = true
			return
		}
		f.SrcPort = binary.BigEndian.Uint16(l4)
		f.DstPort = binary.BigEndian.Uint16(l4[2:])
	case icmp:
		if len(l4) < 2 {
			f.Opaque = true
			return
		}
		f.TypeCode = uint16(l4[0])<<8 | uint16(l4[1])
	case ProtoMobility:
		if icmp != ProtoICMPv6 {
			return // MH is IPv6 only (RFC 6275 §6.1)
		}
		if len(l4) <= mhTypeOffset {
			f.Opaque = true
			return
		}
		f.TypeCode = uint16(l4[mhTypeOffset]) << 8
	}
}

// InnerLen returns the total length of the IPv4 or IPv6 packet that starts
// pkt, from its header (IPv4 Total Length, RFC 791 §3.1; IPv6 40 + Payload
// Length, RFC 8200 §3). ok is false if the version is neither 4 nor 6, the
// header is cut short (for IPv4 also: IHL below 5), or the length is larger
// than pkt or smaller than the header: ok is what IPv4.IsValid or
// IPv6.IsValid says. The ESP tunnel-mode receiver uses it to strip TFC
// padding (RFC 4303 §2.7), the Linux underlay to cut a DSMIPv6 UDP payload.
func InnerLen(pkt []byte) (n int, ok bool) {
	if len(pkt) == 0 {
		return 0, false
	}
	switch pkt[0] >> 4 {
	case IPv4Version:
		if len(pkt) < IPv4MinHeaderLen {
			return 0, false
		}
		n = IPv4(pkt).TotalLen()
		if hl := IPv4(pkt).HeaderLen(); hl < IPv4MinHeaderLen || n < hl {
			return 0, false // IHL below 5 (RFC 791 §3.1) or Total Length below it
		}
	case IPv6Version:
		if len(pkt) < IPv6HeaderLen {
			return 0, false
		}
		n = IPv6HeaderLen + IPv6(pkt).PayloadLen()
	default:
		return 0, false
	}
	if n > len(pkt) {
		return 0, false
	}
	return n, true
}

// scanHAO walks the options of the Destination Options header hdr like
// OptIter (same rules, without building Opts: this is the per-packet path)
// and returns the offset of the address of the first Home Address option
// and the number of Home Address options. ok is false where OptIter would
// return ErrMalformed.
func scanHAO(hdr []byte) (addrOff, n int, ok bool) {
	for i := 2; i < len(hdr); {
		t := hdr[i]
		if t == OptPad1 {
			i++
			continue
		}
		if i+2 > len(hdr) {
			return 0, 0, false
		}
		l := int(hdr[i+1])
		if i+2+l > len(hdr) {
			return 0, 0, false
		}
		if t == OptHomeAddress {
			if l != HomeAddressOptLen {
				return 0, 0, false
			}
			if n == 0 {
				addrOff = i + 2
			}
			n++
		}
		i += 2 + l
	}
	return addrOff, n, true
}
