package header

import (
	"encoding/binary"
	"net/netip"
)

// Mobility Header layout (RFC 6275 §6.1.1).
const (
	// MHMinLen is the smallest Mobility Header: the 6-byte common part plus
	// 2 bytes, since the length is a multiple of 8 (RFC 6275 §6.1.1).
	MHMinLen              = 8
	mhPayloadProtoOffset  = 0
	mhHdrLenOffset        = 1
	mhReservedOffset      = 3
	MHChecksumOffset      = 4
	MHMessageDataOffset   = 6
	MHPayloadProtoDefault = ProtoNoNext // RFC 6275 §6.1.1: send 59
)

// Mobility Header types (RFC 6275 §6.1.2–§6.1.9).
const (
	MHTypeBRR  = 0 // Binding Refresh Request
	MHTypeHoTI = 1 // Home Test Init
	MHTypeCoTI = 2 // Care-of Test Init
	MHTypeHoT  = 3 // Home Test
	MHTypeCoT  = 4 // Care-of Test
	MHTypeBU   = 5 // Binding Update
	MHTypeBA   = 6 // Binding Acknowledgement
	MHTypeBE   = 7 // Binding Error
)

// Mobility option types used for padding (RFC 6275 §6.2.2, §6.2.3).
const (
	MobOptPad1 = 0
	MobOptPadN = 1
)

// MH is a view over a Mobility Header (RFC 6275 §6.1.1):
//
//	 0               1               2               3
//	| Payload Proto | Header Len    | MH Type       | Reserved      |
//	| Checksum                      | Message Data ...              |
//
// Call IsValid before any accessor; accessors trust it. The view does not
// check the Payload Proto value, the type-specific minimum length or the
// checksum (RFC 6275 §9.2 processing belongs to the caller).
type MH []byte

// IsValid reports whether b holds at least the whole header its Header Len
// field claims ((Header Len + 1) * 8 bytes).
func (b MH) IsValid() bool {
	return len(b) >= MHMinLen && len(b) >= b.Len()
}

// PayloadProto is the Payload Proto field (59 on send, RFC 6275 §6.1.1).
func (b MH) PayloadProto() uint8 { return b[mhPayloadProtoOffset] }

// HeaderLen is the raw Header Len field: the length in 8-octet units,
// excluding the first 8 octets.
func (b MH) HeaderLen() uint8 { return b[mhHdrLenOffset] }

// Len is the header's length in bytes, (Header Len + 1) * 8.
func (b MH) Len() int { return (int(b[mhHdrLenOffset]) + 1) * 8 }

// Type is the MH Type (RFC 6275 §6.1.1; the MH-type selector of RFC 4301
// §4.4.1.1).
func (b MH) Type() uint8 { return b[mhTypeOffset] }

// Reserved is the reserved byte (0 on send, ignored on receive).
func (b MH) Reserved() uint8 { return b[mhReservedOffset] }

// Checksum is the Checksum field.
func (b MH) Checksum() uint16 { return binary.BigEndian.Uint16(b[MHChecksumOffset:]) }

// MessageData is the type-specific data and the mobility options: the
// bytes from offset 6 to Len().
func (b MH) MessageData() []byte { return b[MHMessageDataOffset:b.Len()] }

func (b MH) SetPayloadProto(p uint8) { b[mhPayloadProtoOffset] = p }
func (b MH) SetType(t uint8)         { b[mhTypeOffset] = t }
func (b MH) SetChecksum(c uint16)    { binary.BigEndian.PutUint16(b[MHChecksumOffset:], c) }

// UpdateChecksum sets the checksum for a packet from src (the home address
// when a Home Address option is present) to dst (the final destination),
// RFC 6275 §6.1.1.
func (b MH) UpdateChecksum(src, dst netip.Addr) {
	b.SetChecksum(MHChecksum(src, dst, b[:b.Len()]))
}

// VerifyChecksum reports whether the checksum is correct for src and dst
// (chosen as for UpdateChecksum). RFC 6275 §9.2: drop the packet if not.
func (b MH) VerifyChecksum(src, dst netip.Addr) bool {
	mh := b[:b.Len()]
	return Checksum(mh, PseudoHeaderChecksum(ProtoMobility, src, dst, len(mh))) == 0xffff
}

// MHChecksum returns the Checksum field value for the Mobility Header mh
// (the whole header; its own checksum field is treated as zero) sent from
// src to dst: the Internet checksum over the RFC 8200 §8.1 pseudo-header
// (next header 135, upper-layer length len(mh)) and mh. src is the home
// address from the Home Address option if present and dst the final
// destination (RFC 6275 §6.1.1). mh must be at least 6 bytes.
func MHChecksum(src, dst netip.Addr, mh []byte) uint16 {
	return transportChecksum(ProtoMobility, src, dst, mh, MHChecksumOffset)
}

// MHFields describes a Mobility Header to Encode.
type MHFields struct {
	PayloadProto uint8 // MHPayloadProtoDefault (59) on send
	Type         uint8
	Reserved     uint8
	Checksum     uint16
	// Data is the message data: the type-specific fixed part and the
	// mobility options, starting at MH offset 6.
	Data []byte
}

// MHEncodedLen is the length Encode writes for len(data) bytes of message
// data: 6 + len(data) rounded up to a multiple of 8.
func MHEncodedLen(dataLen int) int { return (MHMessageDataOffset + dataLen + 7) &^ 7 }

// Encode writes the Mobility Header f into b, which must hold
// MHEncodedLen(len(f.Data)) bytes, and returns that length. If 6 +
// len(f.Data) is not a multiple of 8, Encode appends a Pad1 or PadN
// mobility option (RFC 6275 §6.2.2, §6.2.3) to reach one, and sets Header
// Len. The checksum is f.Checksum; call UpdateChecksum afterwards to
// compute it. Encode panics if the result is longer than 2048 bytes (Header
// Len is one byte).
func (b MH) Encode(f *MHFields) int {
	n := MHEncodedLen(len(f.Data))
	if n > 256*8 {
		panic("header: MH message data too long")
	}
	b = b[:n]
	b[mhPayloadProtoOffset] = f.PayloadProto
	b[mhHdrLenOffset] = uint8(n/8 - 1)
	b[mhTypeOffset] = f.Type
	b[mhReservedOffset] = f.Reserved
	binary.BigEndian.PutUint16(b[MHChecksumOffset:], f.Checksum)
	end := MHMessageDataOffset + copy(b[MHMessageDataOffset:], f.Data)
	encodePadding(b[end:], MobOptPad1, MobOptPadN)
	return n
}

// Fields returns the fields of a valid b; Data aliases b.
func (b MH) Fields() MHFields {
	return MHFields{
		PayloadProto: b.PayloadProto(),
		Type:         b.Type(),
		Reserved:     b.Reserved(),
		Checksum:     b.Checksum(),
		Data:         b.MessageData(),
	}
}

// encodePadding fills b with one Pad1 option (len(b) == 1) or one PadN
// option with zero data (RFC 8200 §4.2, RFC 6275 §6.2.2–§6.2.3).
func encodePadding(b []byte, pad1, padN uint8) {
	switch len(b) {
	case 0:
	case 1:
		b[0] = pad1
	default:
		b[0], b[1] = padN, uint8(len(b)-2)
		clear(b[2:])
	}
}
