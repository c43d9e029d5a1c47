package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 fixed header layout (RFC 8200 §3).
const (
	IPv6HeaderLen        = 40
	IPv6Version          = 6
	IPv6PayloadLenOffset = 4
	ipv6NextHeaderOffset = 6
	ipv6HopLimitOffset   = 7
	ipv6SrcOffset        = 8
	ipv6DstOffset        = 24
)

// IP protocol numbers used in this project (IANA).
const (
	ProtoHopByHop = 0
	ProtoICMP     = 1
	ProtoIPv4     = 4
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoIPv6     = 41
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDestOpts = 60
	ProtoMobility = 135
	ProtoSCTP     = 132
)

// IPv6 is a view over an IPv6 header and what follows it. Call IsValid
// before any accessor; accessors trust it.
type IPv6 []byte

// IsValid reports whether b holds a complete IPv6 header whose payload
// length fits in b. Jumbograms (RFC 2675) are not supported: a payload
// length of 0 is read as an empty payload.
func (b IPv6) IsValid() bool {
	return len(b) >= IPv6HeaderLen && b[0]>>4 == IPv6Version &&
		IPv6HeaderLen+int(binary.BigEndian.Uint16(b[IPv6PayloadLenOffset:])) <= len(b)
}

func (b IPv6) TrafficClass() uint8   { return b[0]<<4 | b[1]>>4 }
func (b IPv6) FlowLabel() uint32     { return binary.BigEndian.Uint32(b) & 0xfffff }
func (b IPv6) PayloadLen() int       { return int(binary.BigEndian.Uint16(b[IPv6PayloadLenOffset:])) }
func (b IPv6) NextHeader() uint8     { return b[ipv6NextHeaderOffset] }
func (b IPv6) HopLimit() uint8       { return b[ipv6HopLimitOffset] }
func (b IPv6) Src() netip.Addr       { return netip.AddrFrom16([16]byte(b[ipv6SrcOffset:])) }
func (b IPv6) Dst() netip.Addr       { return netip.AddrFrom16([16]byte(b[ipv6DstOffset:])) }
func (b IPv6) Payload() []byte       { return b[IPv6HeaderLen : IPv6HeaderLen+b.PayloadLen()] }
func (b IPv6) SetPayloadLen(n int)   { binary.BigEndian.PutUint16(b[IPv6PayloadLenOffset:], uint16(n)) }
func (b IPv6) SetNextHeader(p uint8) { b[ipv6NextHeaderOffset] = p }
func (b IPv6) SetHopLimit(h uint8)   { b[ipv6HopLimitOffset] = h }
func (b IPv6) SetSrc(a netip.Addr)   { a16 := a.As16(); copy(b[ipv6SrcOffset:], a16[:]) }
func (b IPv6) SetDst(a netip.Addr)   { a16 := a.As16(); copy(b[ipv6DstOffset:], a16[:]) }

// SetTrafficClass sets the 8-bit traffic class (DSCP and ECN).
func (b IPv6) SetTrafficClass(tc uint8) {
	b[0] = b[0]&0xf0 | tc>>4
	b[1] = b[1]&0x0f | tc<<4
}

// IPv6Fields describes an IPv6 fixed header to Encode.
type IPv6Fields struct {
	TrafficClass uint8
	FlowLabel    uint32
	PayloadLen   uint16
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr
}

// Fields returns the fixed header fields of a valid b.
func (b IPv6) Fields() IPv6Fields {
	return IPv6Fields{
		TrafficClass: b.TrafficClass(),
		FlowLabel:    b.FlowLabel(),
		PayloadLen:   uint16(b.PayloadLen()),
		NextHeader:   b.NextHeader(),
		HopLimit:     b.HopLimit(),
		Src:          b.Src(),
		Dst:          b.Dst(),
	}
}

// Encode writes the 40-byte fixed header into b. Src and Dst are written
// in their 16-byte form (IPv4-mapped for an IPv4 address).
func (b IPv6) Encode(f *IPv6Fields) {
	binary.BigEndian.PutUint32(b, IPv6Version<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[IPv6PayloadLenOffset:], f.PayloadLen)
	b[ipv6NextHeaderOffset] = f.NextHeader
	b[ipv6HopLimitOffset] = f.HopLimit
	b.SetSrc(f.Src)
	b.SetDst(f.Dst)
}

// IsExtensionHeader reports whether proto is an IPv6 extension header that
// RFC 4301 §4.4.1.1 skips when finding the next-layer protocol: Hop-by-Hop,
// Routing, Fragment and Destination Options. ESP and AH are not skipped.
func IsExtensionHeader(proto uint8) bool {
	switch proto {
	case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDestOpts:
		return true
	}
	return false
}

// ExtHeader is one IPv6 extension header found by an ExtIter.
type ExtHeader struct {
	Proto uint8 // the header's own protocol number (0, 43, 44, 60)
	// Offset of the header from the start of the IPv6 packet, and its length.
	Offset, Len int
	// Next is the Next Header value this header carries (its byte at
	// Offset, for every extension header).
	Next uint8
}

// Bytes returns the header's bytes inside pkt.
func (e ExtHeader) Bytes(pkt []byte) []byte { return pkt[e.Offset : e.Offset+e.Len] }

// ExtIter walks the extension headers of a valid IPv6 packet (RFC 8200 §4).
// The zero value is not usable; call NewExtIter.
type ExtIter struct {
	pkt  []byte // the IPv6 packet up to its payload length
	off  int    // offset of the current header
	next uint8  // protocol of the header at off
	// nhOff is the offset of the byte that holds next (6 for the fixed
	// header, else the previous extension header's first byte).
	nhOff int
}

// NewExtIter starts a walk over pkt, which must satisfy IPv6.IsValid.
func NewExtIter(pkt IPv6) ExtIter {
	return ExtIter{pkt: pkt[:IPv6HeaderLen+pkt.PayloadLen()], off: IPv6HeaderLen, next: pkt.NextHeader(), nhOff: ipv6NextHeaderOffset}
}

// Next returns the next extension header. done is true when the header at
// the current position is not an extension header (UpperProto and
// UpperOffset then describe it). err is ErrTruncated when an extension
// header does not fit in the packet.
func (it *ExtIter) Next() (h ExtHeader, done bool, err error) {
	if !IsExtensionHeader(it.next) {
		return ExtHeader{}, true, nil
	}
	if it.off+8 > len(it.pkt) {
		return ExtHeader{}, false, ErrTruncated
	}
	var l int
	if it.next == ProtoFragment {
		l = 8
	} else {
		l = (int(it.pkt[it.off+1]) + 1) * 8
	}
	if it.off+l > len(it.pkt) {
		return ExtHeader{}, false, ErrTruncated
	}
	h = ExtHeader{Proto: it.next, Offset: it.off, Len: l, Next: it.pkt[it.off]}
	it.nhOff = it.off
	it.next = h.Next
	it.off += l
	return h, false, nil
}

// UpperProto is the protocol of the header where the walk stopped.
func (it *ExtIter) UpperProto() uint8 { return it.next }

// UpperOffset is the offset of the header where the walk stopped.
func (it *ExtIter) UpperOffset() int { return it.off }

// NextHeaderOffset is the offset of the byte holding UpperProto: 6 (the
// fixed header's Next Header) or the first byte of the last extension header.
func (it *ExtIter) NextHeaderOffset() int { return it.nhOff }
