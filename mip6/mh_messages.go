package mip6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mipsec/mipsec/internal/header"
)

// Mobility Header codec (RFC 6275 §6.1, RFC 5555 §3, RFC 5648 §6.1).
//
// Messages are typed structs (BindingUpdate, BindingAck, ...) with their
// mobility options in Options. EncodeMH lays out the fixed part, inserts
// Pad1/PadN before each option to meet its alignment, pads the header to a
// multiple of 8 and computes the checksum; DecodeMH verifies the checksum
// and lengths and walks the options with OptionIter, dropping padding and
// recording unknown options as UnknownOption. This is control plane code:
// it allocates. The data path reads MH types through header.MH.

// Sentinels wrapped by the decoder and encoder (STYLE §6). They say what the
// receiver does (RFC 6275 §9.2).
var (
	// ErrMalformed: the header is truncated or its Header Len is
	// inconsistent or below the type's minimum. Drop; RFC 6275 §9.2 asks for
	// an ICMPv6 Parameter Problem (code 0) pointing at Header Len.
	ErrMalformed = errors.New("mip6: malformed mobility header")
	// ErrMalformedOption: a mobility option is truncated, runs past the
	// header or has the wrong length for its type. Drop the message.
	ErrMalformedOption = errors.New("mip6: malformed mobility option")
	// ErrChecksum: the checksum is wrong. Drop silently (RFC 6275 §9.2).
	ErrChecksum = errors.New("mip6: bad mobility header checksum")
	// ErrUnknownType: the MH Type is not known. Drop and answer with a
	// Binding Error, status BEStatusUnknownType (RFC 6275 §9.2).
	ErrUnknownType = errors.New("mip6: unknown mobility header type")
	// ErrPayloadProto: Payload Proto is not 59. Drop; RFC 6275 §9.2 asks
	// for an ICMPv6 Parameter Problem (code 0) pointing at that field.
	ErrPayloadProto = errors.New("mip6: mobility header payload proto is not 59")
)

// MH types (RFC 6275 §6.1.2–§6.1.9), for messages and MH-type selectors.
const (
	MHTypeBRR  = header.MHTypeBRR
	MHTypeHoTI = header.MHTypeHoTI
	MHTypeCoTI = header.MHTypeCoTI
	MHTypeHoT  = header.MHTypeHoT
	MHTypeCoT  = header.MHTypeCoT
	MHTypeBU   = header.MHTypeBU
	MHTypeBA   = header.MHTypeBA
	MHTypeBE   = header.MHTypeBE
)

// MHMaxLen is the longest Mobility Header: Header Len is one byte of 8-byte
// units beyond the first 8 (RFC 6275 §6.1.1).
const MHMaxLen = 256 * 8

// LifetimeUnit is the unit of BU/BA lifetimes and Binding Refresh Advice
// (RFC 6275 §6.1.7, §6.2.4).
const LifetimeUnit = 4 * time.Second

// mhFixedLen is the type-specific fixed part of each message after the 6
// common bytes (RFC 6275 §6.1.2–§6.1.9); options start at 6 + this.
var mhFixedLen = [...]int{
	MHTypeBRR:  2,
	MHTypeHoTI: 10,
	MHTypeCoTI: 10,
	MHTypeHoT:  18,
	MHTypeCoT:  18,
	MHTypeBU:   6,
	MHTypeBA:   6,
	MHTypeBE:   18,
}

// Message is a Mobility Header message: one of *BindingRefreshRequest,
// *HomeTestInit, *CareOfTestInit, *HomeTest, *CareOfTest, *BindingUpdate,
// *BindingAck or *BindingError.
type Message interface {
	// MHType is the MH Type of the message.
	MHType() uint8
	// MobilityOptions are the message's mobility options.
	MobilityOptions() []Option
	// putFixed writes the type-specific fixed part (mhFixedLen bytes).
	putFixed(b []byte)
	// parseFixed reads the fixed part and sets the options.
	parseFixed(b []byte, opts []Option)
}

// BU flags (RFC 6275 §6.1.7 and the RFCs named), in the 16-bit word at MH
// offset 8. Other bits are reserved: 0 on send, ignored (cleared) on
// receive.
const (
	BUFlagA = 0x8000 // acknowledge requested (RFC 6275 §6.1.7)
	BUFlagH = 0x4000 // home registration (RFC 6275 §6.1.7)
	BUFlagL = 0x2000 // link-local address compatibility (RFC 6275 §6.1.7)
	BUFlagK = 0x1000 // key management mobility capability (RFC 6275 §6.1.7)
	BUFlagM = 0x0800 // MAP registration (RFC 5380)
	BUFlagR = 0x0400 // mobile router (RFC 3963)
	BUFlagP = 0x0200 // proxy registration (RFC 5213)
	BUFlagF = 0x0100 // force UDP encapsulation (RFC 5555 §3.1.3)
	BUFlagT = 0x0080 // TLV-header UDP format (RFC 5845 §6.2)

	buFlagsKnown = 0xff80
)

// BA flags (RFC 6275 §6.1.8 and the RFCs named), in the byte at MH offset
// 7. Other bits are reserved and cleared on receive.
const (
	BAFlagK = 0x80 // key management mobility capability (RFC 6275 §6.1.8)
	BAFlagR = 0x40 // mobile router (RFC 3963)
	BAFlagP = 0x20 // proxy registration (RFC 5213)
	BAFlagT = 0x10 // TLV-header UDP format (RFC 5845)

	baFlagsKnown = 0xf0
)

// BindingUpdate is MH type 5 (RFC 6275 §6.1.7; flags F from RFC 5555
// §3.1.3): Sequence # (2), flags (2), Lifetime (2, 4-second units, 0 =
// de-register), then options.
type BindingUpdate struct {
	Seq      uint16
	Flags    uint16 // BUFlag*
	Lifetime uint16 // units of LifetimeUnit
	Options  []Option
}

// BindingAck is MH type 6 (RFC 6275 §6.1.8): Status (1), flags (1),
// Sequence # (2, copied from the BU), Lifetime (2, granted, 4-second
// units), then options.
type BindingAck struct {
	Status   BAStatus
	Flags    uint8 // BAFlag*
	Seq      uint16
	Lifetime uint16
	Options  []Option
}

// BindingError is MH type 7 (RFC 6275 §6.1.9): Status (1), reserved (1),
// Home Address (16: from the offending Home Address option, or
// unspecified), then options.
type BindingError struct {
	Status      BEStatus
	HomeAddress netip.Addr
	Options     []Option
}

// BindingRefreshRequest is MH type 0 (RFC 6275 §6.1.2): 2 reserved bytes,
// then options.
type BindingRefreshRequest struct {
	Options []Option
}

// HomeTestInit is MH type 1 (RFC 6275 §6.1.3): reserved (2), Home Init
// Cookie (8).
type HomeTestInit struct {
	Cookie  [8]byte
	Options []Option
}

// CareOfTestInit is MH type 2 (RFC 6275 §6.1.4): reserved (2), Care-of
// Init Cookie (8).
type CareOfTestInit struct {
	Cookie  [8]byte
	Options []Option
}

// HomeTest is MH type 3 (RFC 6275 §6.1.5): Home Nonce Index (2), Home Init
// Cookie (8), Home Keygen Token (8).
type HomeTest struct {
	NonceIndex uint16
	Cookie     [8]byte
	Token      [8]byte
	Options    []Option
}

// CareOfTest is MH type 4 (RFC 6275 §6.1.6): Care-of Nonce Index (2),
// Care-of Init Cookie (8), Care-of Keygen Token (8).
type CareOfTest struct {
	NonceIndex uint16
	Cookie     [8]byte
	Token      [8]byte
	Options    []Option
}

func (*BindingRefreshRequest) MHType() uint8 { return MHTypeBRR }
func (*HomeTestInit) MHType() uint8          { return MHTypeHoTI }
func (*CareOfTestInit) MHType() uint8        { return MHTypeCoTI }
func (*HomeTest) MHType() uint8              { return MHTypeHoT }
func (*CareOfTest) MHType() uint8            { return MHTypeCoT }
func (*BindingUpdate) MHType() uint8         { return MHTypeBU }
func (*BindingAck) MHType() uint8            { return MHTypeBA }
func (*BindingError) MHType() uint8          { return MHTypeBE }

func (m *BindingRefreshRequest) MobilityOptions() []Option { return m.Options }
func (m *HomeTestInit) MobilityOptions() []Option          { return m.Options }
func (m *CareOfTestInit) MobilityOptions() []Option        { return m.Options }
func (m *HomeTest) MobilityOptions() []Option              { return m.Options }
func (m *CareOfTest) MobilityOptions() []Option            { return m.Options }
func (m *BindingUpdate) MobilityOptions() []Option         { return m.Options }
func (m *BindingAck) MobilityOptions() []Option            { return m.Options }
func (m *BindingError) MobilityOptions() []Option          { return m.Options }

func (m *BindingRefreshRequest) putFixed(b []byte) { b[0], b[1] = 0, 0 }
func (m *HomeTestInit) putFixed(b []byte)          { b[0], b[1] = 0, 0; copy(b[2:], m.Cookie[:]) }
func (m *CareOfTestInit) putFixed(b []byte)        { b[0], b[1] = 0, 0; copy(b[2:], m.Cookie[:]) }
func (m *HomeTest) putFixed(b []byte)              { putTest(b, m.NonceIndex, &m.Cookie, &m.Token) }
func (m *CareOfTest) putFixed(b []byte)            { putTest(b, m.NonceIndex, &m.Cookie, &m.Token) }
func (m *BindingUpdate) putFixed(b []byte) {
	binary.BigEndian.PutUint16(b, m.Seq)
	binary.BigEndian.PutUint16(b[2:], m.Flags&buFlagsKnown)
	binary.BigEndian.PutUint16(b[4:], m.Lifetime)
}
func (m *BindingAck) putFixed(b []byte) {
	b[0], b[1] = uint8(m.Status), m.Flags&baFlagsKnown
	binary.BigEndian.PutUint16(b[2:], m.Seq)
	binary.BigEndian.PutUint16(b[4:], m.Lifetime)
}
func (m *BindingError) putFixed(b []byte) {
	b[0], b[1] = uint8(m.Status), 0
	var a [16]byte
	if m.HomeAddress.IsValid() {
		a = m.HomeAddress.As16()
	}
	copy(b[2:], a[:])
}

func putTest(b []byte, ni uint16, cookie, token *[8]byte) {
	binary.BigEndian.PutUint16(b, ni)
	copy(b[2:], cookie[:])
	copy(b[10:], token[:])
}

func (m *BindingRefreshRequest) parseFixed(b []byte, o []Option) { m.Options = o }
func (m *HomeTestInit) parseFixed(b []byte, o []Option) {
	m.Cookie, m.Options = [8]byte(b[2:]), o
}
func (m *CareOfTestInit) parseFixed(b []byte, o []Option) {
	m.Cookie, m.Options = [8]byte(b[2:]), o
}
func (m *HomeTest) parseFixed(b []byte, o []Option) {
	m.NonceIndex, m.Cookie, m.Token, m.Options = binary.BigEndian.Uint16(b), [8]byte(b[2:]), [8]byte(b[10:]), o
}
func (m *CareOfTest) parseFixed(b []byte, o []Option) {
	m.NonceIndex, m.Cookie, m.Token, m.Options = binary.BigEndian.Uint16(b), [8]byte(b[2:]), [8]byte(b[10:]), o
}
func (m *BindingUpdate) parseFixed(b []byte, o []Option) {
	m.Seq = binary.BigEndian.Uint16(b)
	m.Flags = binary.BigEndian.Uint16(b[2:]) & buFlagsKnown
	m.Lifetime = binary.BigEndian.Uint16(b[4:])
	m.Options = o
}
func (m *BindingAck) parseFixed(b []byte, o []Option) {
	m.Status, m.Flags = BAStatus(b[0]), b[1]&baFlagsKnown
	m.Seq = binary.BigEndian.Uint16(b[2:])
	m.Lifetime = binary.BigEndian.Uint16(b[4:])
	m.Options = o
}
func (m *BindingError) parseFixed(b []byte, o []Option) {
	m.Status = BEStatus(b[0])
	m.HomeAddress = netip.AddrFrom16([16]byte(b[2:]))
	m.Options = o
}

// LifetimeDuration is the BU lifetime as a duration (RFC 6275 §6.1.7).
func (m *BindingUpdate) LifetimeDuration() time.Duration {
	return time.Duration(m.Lifetime) * LifetimeUnit
}

// LifetimeDuration is the granted lifetime as a duration (RFC 6275 §6.1.8).
func (m *BindingAck) LifetimeDuration() time.Duration {
	return time.Duration(m.Lifetime) * LifetimeUnit
}

// LifetimeUnits converts d to 4-second lifetime units, rounding down and
// saturating at 0xffff (RFC 6275 §6.1.7).
func LifetimeUnits(d time.Duration) uint16 {
	if d <= 0 {
		return 0
	}
	u := d / LifetimeUnit
	if u > 0xffff {
		return 0xffff
	}
	return uint16(u)
}

// newMessage returns an empty message of MH type t, or nil if unknown.
func newMessage(t uint8) Message {
	switch t {
	case MHTypeBRR:
		return &BindingRefreshRequest{}
	case MHTypeHoTI:
		return &HomeTestInit{}
	case MHTypeCoTI:
		return &CareOfTestInit{}
	case MHTypeHoT:
		return &HomeTest{}
	case MHTypeCoT:
		return &CareOfTest{}
	case MHTypeBU:
		return &BindingUpdate{}
	case MHTypeBA:
		return &BindingAck{}
	case MHTypeBE:
		return &BindingError{}
	}
	return nil
}

// AppendMH appends the Mobility Header carrying m to b and returns the
// extended slice. The header has Payload Proto 59, options aligned as RFC
// 6275 §6.2 and RFC 5555 §3 require (Pad1/PadN inserted), a length that is
// a multiple of 8 (RFC 6275 §6.1.1), and the checksum computed for a packet
// from src (the home address if a Home Address option is present) to dst
// (the final destination), RFC 6275 §6.1.1. Errors wrap ErrMalformedOption
// for an option that cannot be encoded, ErrMalformed for a header over
// MHMaxLen, and ErrUnknownType for an unknown message.
func AppendMH(b []byte, m Message, src, dst netip.Addr) ([]byte, error) {
	if m == nil || newMessage(m.MHType()) == nil {
		return nil, fmt.Errorf("encode: %w", ErrUnknownType)
	}
	t := m.MHType()
	d := make([]byte, header.MHMessageDataOffset+mhFixedLen[t], 64)
	m.putFixed(d[header.MHMessageDataOffset:])
	d, err := appendOptions(d, m.MobilityOptions())
	if err != nil {
		return nil, fmt.Errorf("MH type %d %w", t, err)
	}
	n := header.MHEncodedLen(len(d) - header.MHMessageDataOffset)
	if n > MHMaxLen {
		return nil, fmt.Errorf("MH type %d: %d bytes over %d: %w", t, n, MHMaxLen, ErrMalformed)
	}
	start := len(b)
	b = append(b, make([]byte, n)...)
	mh := header.MH(b[start:])
	mh.Encode(&header.MHFields{
		PayloadProto: header.MHPayloadProtoDefault,
		Type:         t,
		Data:         d[header.MHMessageDataOffset:],
	})
	mh.UpdateChecksum(src, dst)
	return b, nil
}

// EncodeMH returns the Mobility Header carrying m; see AppendMH.
func EncodeMH(m Message, src, dst netip.Addr) ([]byte, error) {
	return AppendMH(nil, m, src, dst)
}

// DecodeMH decodes the Mobility Header at the start of b, received from src
// (the home address from a Home Address option if present) to dst (the
// final destination). It checks, in this order (RFC 6275 §9.2): the
// length (ErrMalformed), the checksum (ErrChecksum), Payload Proto 59
// (ErrPayloadProto), the MH Type (ErrUnknownType), the type's minimum
// Header Len (ErrMalformed) and the options (ErrMalformedOption). Bytes in
// b after the header's Header Len are ignored. Padding options are
// dropped; unknown options are kept as UnknownOption (RFC 6275 §6.2.1).
// The result does not alias b.
func DecodeMH(b []byte, src, dst netip.Addr) (Message, error) {
	mh, err := mhBytes(b)
	if err != nil {
		return nil, err
	}
	if !mh.VerifyChecksum(src, dst) {
		return nil, fmt.Errorf("MH type %d checksum %#04x: %w", mh.Type(), mh.Checksum(), ErrChecksum)
	}
	return parseMH(mh)
}

// ParseMH is DecodeMH without the checksum check, for messages whose
// checksum was verified elsewhere (or tests and fuzzing).
func ParseMH(b []byte) (Message, error) {
	mh, err := mhBytes(b)
	if err != nil {
		return nil, err
	}
	return parseMH(mh)
}

func mhBytes(b []byte) (header.MH, error) {
	if len(b) < header.MHMinLen {
		return nil, fmt.Errorf("MH of %d bytes, want at least %d: %w", len(b), header.MHMinLen, ErrMalformed)
	}
	mh := header.MH(b)
	if !mh.IsValid() {
		return nil, fmt.Errorf("MH Header Len %d needs %d bytes, have %d: %w", mh.HeaderLen(), mh.Len(), len(b), ErrMalformed)
	}
	return mh[:mh.Len()], nil
}

func parseMH(mh header.MH) (Message, error) {
	if p := mh.PayloadProto(); p != header.MHPayloadProtoDefault {
		return nil, fmt.Errorf("MH payload proto %d: %w", p, ErrPayloadProto)
	}
	t := mh.Type()
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("MH type %d: %w", t, ErrUnknownType)
	}
	end := header.MHMessageDataOffset + mhFixedLen[t]
	if len(mh) < end {
		return nil, fmt.Errorf("MH type %d Header Len %d below the minimum %d: %w", t, mh.HeaderLen(), (end+7)/8-1, ErrMalformed)
	}
	var opts []Option
	bad := false // a Binding Authorization Data option was seen
	it := NewOptionIter(mh, end)
	for {
		o, done, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("MH type %d %w", t, err)
		}
		if done {
			break
		}
		switch o.(type) {
		case Pad1, PadN:
			continue
		}
		if bad {
			// RFC 6275 §6.2: Binding Authorization Data is the last option.
			return nil, fmt.Errorf("MH type %d option %d after Binding Authorization Data: %w", t, o.OptionType(), ErrMalformedOption)
		}
		_, bad = o.(BindingAuthData)
		opts = append(opts, o)
	}
	m.parseFixed(mh[header.MHMessageDataOffset:end], opts)
	return m, nil
}

// SeqLess reports whether BU sequence number a is less than b in the
// modulo-2^16 arithmetic of RFC 6275 §9.5.1: b is "greater than" a iff
// (b - a) mod 2^16 is in [1, 32767]. A BU with sequence S is new against
// the last accepted L iff SeqLess(L, S). At distance 32768 neither is less
// (RFC 6275 §9.5.1 counts L-32768 as "not greater").
func SeqLess(a, b uint16) bool {
	d := b - a
	return d >= 1 && d <= 32767
}
