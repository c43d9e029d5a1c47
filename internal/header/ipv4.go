package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 header layout (RFC 791 §3.1).
const (
	IPv4MinHeaderLen   = 20
	IPv4MaxHeaderLen   = 60
	IPv4Version        = 4
	ipv4TOSOffset      = 1
	ipv4TotalLenOffset = 2
	ipv4IDOffset       = 4
	ipv4FlagsOffset    = 6
	ipv4TTLOffset      = 8
	ipv4ProtoOffset    = 9
	ipv4ChecksumOffset = 10
	ipv4SrcOffset      = 12
	ipv4DstOffset      = 16

	IPv4FlagDF = 0x4000
	IPv4FlagMF = 0x2000
)

// IPv4 is a view over an IPv4 header and what follows it. Call IsValid
// before any accessor; accessors trust it.
type IPv4 []byte

// IsValid reports whether b holds a complete IPv4 header whose IHL and total
// length fit in b.
func (b IPv4) IsValid() bool {
	if len(b) < IPv4MinHeaderLen || b[0]>>4 != IPv4Version {
		return false
	}
	hl := int(b[0]&0x0f) * 4
	tl := int(binary.BigEndian.Uint16(b[ipv4TotalLenOffset:]))
	return hl >= IPv4MinHeaderLen && hl <= tl && tl <= len(b)
}

func (b IPv4) HeaderLen() int { return int(b[0]&0x0f) * 4 }
func (b IPv4) TOS() uint8     { return b[ipv4TOSOffset] }
func (b IPv4) TotalLen() int  { return int(binary.BigEndian.Uint16(b[ipv4TotalLenOffset:])) }
func (b IPv4) ID() uint16     { return binary.BigEndian.Uint16(b[ipv4IDOffset:]) }
func (b IPv4) Flags() uint16  { return binary.BigEndian.Uint16(b[ipv4FlagsOffset:]) & 0xe000 }
func (b IPv4) FragmentOffset() int {
	return int(binary.BigEndian.Uint16(b[ipv4FlagsOffset:])&0x1fff) * 8
}
func (b IPv4) TTL() uint8           { return b[ipv4TTLOffset] }
func (b IPv4) Protocol() uint8      { return b[ipv4ProtoOffset] }
func (b IPv4) Checksum() uint16     { return binary.BigEndian.Uint16(b[ipv4ChecksumOffset:]) }
func (b IPv4) Src() netip.Addr      { return netip.AddrFrom4([4]byte(b[ipv4SrcOffset:])) }
func (b IPv4) Dst() netip.Addr      { return netip.AddrFrom4([4]byte(b[ipv4DstOffset:])) }
func (b IPv4) Payload() []byte      { return b[b.HeaderLen():b.TotalLen()] }
func (b IPv4) IsFragment() bool     { return b.Flags()&IPv4FlagMF != 0 || b.FragmentOffset() != 0 }
func (b IPv4) SetTotalLen(n int)    { binary.BigEndian.PutUint16(b[ipv4TotalLenOffset:], uint16(n)) }
func (b IPv4) SetProtocol(p uint8)  { b[ipv4ProtoOffset] = p }
func (b IPv4) SetTOS(t uint8)       { b[ipv4TOSOffset] = t }
func (b IPv4) SetTTL(t uint8)       { b[ipv4TTLOffset] = t }
func (b IPv4) SetID(id uint16)      { binary.BigEndian.PutUint16(b[ipv4IDOffset:], id) }
func (b IPv4) SetSrc(a netip.Addr)  { a4 := a.As4(); copy(b[ipv4SrcOffset:], a4[:]) }
func (b IPv4) SetDst(a netip.Addr)  { a4 := a.As4(); copy(b[ipv4DstOffset:], a4[:]) }
func (b IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[ipv4ChecksumOffset:], c) }

// UpdateChecksum recomputes the header checksum (RFC 791 §3.1).
func (b IPv4) UpdateChecksum() {
	b.SetChecksum(0)
	b.SetChecksum(^Checksum(b[:b.HeaderLen()], 0))
}

// IPv4Fields describes an IPv4 header to Encode (tests, SA templates).
type IPv4Fields struct {
	TOS      uint8
	TotalLen uint16
	ID       uint16
	Flags    uint16 // IPv4FlagDF, IPv4FlagMF
	// FragmentOffset is the fragment offset in bytes (a multiple of 8).
	FragmentOffset int
	TTL            uint8
	Protocol       uint8
	Src, Dst       netip.Addr
	// Options are the header options, written after the fixed 20 bytes; a
	// multiple of 4 bytes, at most 40 (RFC 791 §3.1).
	Options []byte
}

// Encode writes a 20-byte header plus f.Options with a valid checksum into
// b, which must be at least IPv4MinHeaderLen+len(f.Options) long. It panics if the options are not a multiple of
// 4 bytes or longer than 40.
func (b IPv4) Encode(f *IPv4Fields) {
	if len(f.Options)%4 != 0 || len(f.Options) > IPv4MaxHeaderLen-IPv4MinHeaderLen {
		panic("header: bad IPv4 options length")
	}
	hl := IPv4MinHeaderLen + len(f.Options)
	b[0] = IPv4Version<<4 | uint8(hl/4)
	b[ipv4TOSOffset] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLenOffset:], f.TotalLen)
	binary.BigEndian.PutUint16(b[ipv4IDOffset:], f.ID)
	binary.BigEndian.PutUint16(b[ipv4FlagsOffset:], f.Flags&0xe000|uint16(f.FragmentOffset/8)&0x1fff)
	b[ipv4TTLOffset] = f.TTL
	b[ipv4ProtoOffset] = f.Protocol
	b.SetSrc(f.Src)
	b.SetDst(f.Dst)
	copy(b[IPv4MinHeaderLen:hl], f.Options)
	b.UpdateChecksum()
}

// Fields returns the header fields of a valid b; Options aliases b.
func (b IPv4) Fields() IPv4Fields {
	return IPv4Fields{
		TOS:            b.TOS(),
		TotalLen:       uint16(b.TotalLen()),
		ID:             b.ID(),
		Flags:          b.Flags(),
		FragmentOffset: b.FragmentOffset(),
		TTL:            b.TTL(),
		Protocol:       b.Protocol(),
		Src:            b.Src(),
		Dst:            b.Dst(),
		Options:        b[IPv4MinHeaderLen:b.HeaderLen()],
	}
}

// PartialChecksum returns the one's complement sum (not complemented) of
// the header with the Total Length, Identification and Header Checksum
// fields counted as zero. An SA computes it once for its outer-header
// template; EncodePartial then finishes each packet's header.
func (b IPv4) PartialChecksum() uint16 {
	h := b[:b.HeaderLen()]
	sum := Checksum(h[:ipv4TotalLenOffset], 0)
	sum = Checksum(h[ipv4FlagsOffset:ipv4ChecksumOffset], uint32(sum))
	return Checksum(h[ipv4ChecksumOffset+2:], uint32(sum))
}

// EncodePartial sets Total Length and Identification of a header copied
// from a template and its checksum from partial (the template's
// PartialChecksum), without summing the header again (gVisor
// header.IPv4.EncodePartial; RFC 1071 §2(B) incremental update).
func (b IPv4) EncodePartial(partial uint16, totalLen int, id uint16) {
	binary.BigEndian.PutUint16(b[ipv4TotalLenOffset:], uint16(totalLen))
	binary.BigEndian.PutUint16(b[ipv4IDOffset:], id)
	sum := uint32(partial) + uint32(uint16(totalLen)) + uint32(id)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	b.SetChecksum(^uint16(sum))
}

// IsChecksumValid reports whether the header checksum is correct
// (RFC 791 §3.1, RFC 1071).
func (b IPv4) IsChecksumValid() bool {
	return Checksum(b[:b.HeaderLen()], 0) == 0xffff
}

// Checksum returns the 16-bit one's complement sum of b added to initial
// (RFC 1071), not complemented.
func Checksum(b []byte, initial uint32) uint16 {
	sum := initial&0xffff + initial>>16 // room for the unrolled loop's carries
	for len(b) >= 8 {
		sum += uint32(binary.BigEndian.Uint16(b)) + uint32(binary.BigEndian.Uint16(b[2:])) +
			uint32(binary.BigEndian.Uint16(b[4:])) + uint32(binary.BigEndian.Uint16(b[6:]))
		b = b[8:]
		sum = sum&0xffff + sum>>16
	}
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
