package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 option types (RFC 8200 §4.2, RFC 6275 §6.3).
const (
	OptPad1        = 0
	OptPadN        = 1
	OptHomeAddress = 201 // 0xC9, RFC 6275 §6.3

	// HomeAddressOptLen is the Option Data Length of a Home Address option.
	HomeAddressOptLen = 16
)

// Opt is one option found by an OptIter. Data aliases the header bytes.
type Opt struct {
	Type uint8
	// Offset of the option (its type byte) from the start of the header.
	Offset int
	// Data is the option data (nil for Pad1).
	Data []byte
}

// Len is the option's length on the wire, type and length bytes included.
func (o Opt) Len() int {
	if o.Type == OptPad1 {
		return 1
	}
	return 2 + len(o.Data)
}

// HomeAddress returns the address of a Home Address option (RFC 6275 §6.3);
// ok is false if o is not a well-formed one.
func (o Opt) HomeAddress() (netip.Addr, bool) {
	if o.Type != OptHomeAddress || len(o.Data) != HomeAddressOptLen {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(o.Data)), true
}

// OptIter walks the TLV options of a Hop-by-Hop or Destination Options
// header (RFC 8200 §4.2). Build it with DestOpts.Options or NewOptIter.
type OptIter struct {
	b   []byte // the whole extension header
	off int
}

// NewOptIter walks the options of hdr, a whole Hop-by-Hop or Destination
// Options header (next header and length bytes included, length already
// checked, e.g. by DestOpts.IsValid or ExtIter). The walk is bounded by
// len(hdr).
func NewOptIter(hdr []byte) OptIter {
	return OptIter{b: hdr, off: 2}
}

// Next returns the next option. done is true at the end of the header.
// err is ErrMalformed if an option's length runs past the header, or if a
// Home Address option's length is not 16 (RFC 6275 §6.3). Pad1 and PadN are
// returned like any other option; callers skip them.
func (it *OptIter) Next() (o Opt, done bool, err error) {
	if it.off >= len(it.b) {
		return Opt{}, true, nil
	}
	t := it.b[it.off]
	if t == OptPad1 {
		o = Opt{Type: OptPad1, Offset: it.off}
		it.off++
		return o, false, nil
	}
	if it.off+2 > len(it.b) {
		it.off = len(it.b)
		return Opt{}, false, ErrMalformed
	}
	l := int(it.b[it.off+1])
	end := it.off + 2 + l
	if end > len(it.b) || (t == OptHomeAddress && l != HomeAddressOptLen) {
		it.off = len(it.b)
		return Opt{}, false, ErrMalformed
	}
	o = Opt{Type: t, Offset: it.off, Data: it.b[it.off+2 : end : end]}
	it.off = end
	return o, false, nil
}

// DestOpts is a view over a Destination Options header (RFC 8200 §4.6).
// Call IsValid before any accessor; accessors trust it.
type DestOpts []byte

// DestOptsMinLen is the smallest Destination Options header.
const DestOptsMinLen = 8

// IsValid reports whether b holds the whole header its length field claims.
// It does not check the options; OptIter does.
func (b DestOpts) IsValid() bool {
	return len(b) >= DestOptsMinLen && len(b) >= b.Len()
}

// NextHeader is the protocol of the header that follows.
func (b DestOpts) NextHeader() uint8 { return b[0] }

// Len is the header's length in bytes: (Hdr Ext Len + 1) * 8.
func (b DestOpts) Len() int { return (int(b[1]) + 1) * 8 }

// Options walks the header's options.
func (b DestOpts) Options() OptIter { return NewOptIter(b[:b.Len()]) }

// SetNextHeader sets the Next Header field.
func (b DestOpts) SetNextHeader(p uint8) { b[0] = p }

// HomeAddress returns the address of the first Home Address option, if
// any. It is FindHomeAddress on a valid view.
func (b DestOpts) HomeAddress() (netip.Addr, bool) { return FindHomeAddress(b) }

// FindHomeAddress returns the address in a Home Address option (type 201,
// RFC 6275 §6.3) inside the body of a Destination Options header (the whole
// header bytes incl. next-header and length bytes). It walks no further
// than the header's length field or len(destOpts), whichever is less, and
// returns false on malformed options before the HAO.
func FindHomeAddress(destOpts []byte) (netip.Addr, bool) {
	if len(destOpts) < 2 {
		return netip.Addr{}, false
	}
	if l := (int(destOpts[1]) + 1) * 8; l < len(destOpts) {
		destOpts = destOpts[:l]
	}
	it := NewOptIter(destOpts)
	for {
		o, done, err := it.Next()
		if done || err != nil {
			return netip.Addr{}, false
		}
		if o.Type == OptHomeAddress {
			return o.HomeAddress()
		}
	}
}

// HAODestOptsLen is the length of the Destination Options header that
// DestOpts.EncodeHAO writes.
const HAODestOptsLen = 24

// HAODestOptsAddrOffset is the offset of the home address inside the header
// that DestOpts.EncodeHAO writes (8n+6 alignment of the option, so the
// address is 8-byte aligned).
const HAODestOptsAddrOffset = 8

// EncodeHAO writes into b (at least HAODestOptsLen bytes) a Destination
// Options header holding only a Home Address option with hoa, aligned 8n+6
// as RFC 6275 §6.3 requires, and returns HAODestOptsLen:
//
//	| Next Header | Hdr Ext Len=2 | PadN=1 | 2 | 0 | 0 | 201 | 16 |
//	| Home Address (16 bytes)                                     |
func (b DestOpts) EncodeHAO(next uint8, hoa netip.Addr) int {
	_ = b[HAODestOptsLen-1]
	b[0] = next
	b[1] = HAODestOptsLen/8 - 1
	b[2], b[3], b[4], b[5] = OptPadN, 2, 0, 0
	b[6], b[7] = OptHomeAddress, HomeAddressOptLen
	a := hoa.As16()
	copy(b[HAODestOptsAddrOffset:HAODestOptsLen], a[:])
	return HAODestOptsLen
}

// RoutingType2 is a view over a type 2 Routing header (RFC 6275 §6.4.1):
// Next Header, Hdr Ext Len 2, Routing Type 2, Segments Left 1, 4 reserved
// bytes and one home address. Call IsValid before any accessor.
type RoutingType2 []byte

// RoutingType2Len is the length of a type 2 Routing header.
const RoutingType2Len = 24

// RoutingTypeMIP6 is the Routing Type of the type 2 Routing header.
const RoutingTypeMIP6 = 2

// IsValid reports whether b starts with a well-formed type 2 Routing header:
// Hdr Ext Len 2, Routing Type 2 and Segments Left 1 (RFC 6275 §6.4.1).
// Segments Left 0 is accepted too: RFC 8200 §4.4 has a node ignore a
// Routing header with no segments left (the address in it is then not the
// destination, see ParseFlow). Reserved bytes are not checked.
func (b RoutingType2) IsValid() bool {
	return len(b) >= RoutingType2Len && b[1] == RoutingType2Len/8-1 &&
		b[2] == RoutingTypeMIP6 && b[3] <= 1
}

func (b RoutingType2) NextHeader() uint8       { return b[0] }
func (b RoutingType2) SegmentsLeft() uint8     { return b[3] }
func (b RoutingType2) HomeAddress() netip.Addr { return netip.AddrFrom16([16]byte(b[8:24])) }
func (b RoutingType2) SetNextHeader(p uint8)   { b[0] = p }
func (b RoutingType2) SetSegmentsLeft(n uint8) { b[3] = n }

// Encode writes a type 2 Routing header with Segments Left 1 into b (at
// least RoutingType2Len bytes) and returns RoutingType2Len.
func (b RoutingType2) Encode(next uint8, hoa netip.Addr) int {
	_ = b[RoutingType2Len-1]
	b[0], b[1], b[2], b[3] = next, RoutingType2Len/8-1, RoutingTypeMIP6, 1
	binary.BigEndian.PutUint32(b[4:], 0)
	a := hoa.As16()
	copy(b[8:RoutingType2Len], a[:])
	return RoutingType2Len
}
