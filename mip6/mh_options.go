package mip6

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mipsec/mipsec/internal/header"
)

// Mobility option types (RFC 6275 §6.2, RFC 5555 §3, RFC 5648 §6.1).
const (
	OptPad1                 = header.MobOptPad1 // RFC 6275 §6.2.2
	OptPadN                 = header.MobOptPadN // RFC 6275 §6.2.3
	OptBindingRefreshAdvice = 2                 // RFC 6275 §6.2.4
	OptAlternateCoA         = 3                 // RFC 6275 §6.2.5
	OptNonceIndices         = 4                 // RFC 6275 §6.2.6
	OptBindingAuthData      = 5                 // RFC 6275 §6.2.7
	OptIPv4HomeAddress      = 29                // RFC 5555 §3.1.1
	OptIPv4AddressAck       = 30                // RFC 5555 §3.2.1
	OptNATDetection         = 31                // RFC 5555 §3.2.2
	OptIPv4CareOfAddress    = 32                // RFC 5555 §3.1.2
	OptBindingIdentifier    = 35                // RFC 5648 §6.1
)

// Option is one mobility option (RFC 6275 §6.2.1): Type(1) Length(1)
// Data(Length). The concrete types are the Opt* structs below; options this
// package does not know decode to UnknownOption (RFC 6275 §6.2.1: a receiver
// skips them). Options are control plane: boxing them allocates.
type Option interface {
	// OptionType is the mobility option type.
	OptionType() uint8
	// Align is the option's alignment requirement xn+y (RFC 6275 §6.2):
	// its Type byte must sit at an offset ≡ y (mod x) from the start of
	// the Mobility Header. x == 1 means no requirement.
	Align() (x, y int)
	// dataLen is the Length field (bytes after Type and Length).
	dataLen() int
	// putData writes the option data into b (len(b) == dataLen()).
	putData(b []byte)
}

// Pad1 is a Pad1 option: a single zero byte (RFC 6275 §6.2.2).
// The option iterator returns it; Decode drops it and Encode never needs it
// (padding is computed).
type Pad1 struct{}

// PadN is a PadN option of N bytes in all (RFC 6275 §6.2.3): Length = N-2,
// data ignored by the receiver. Like Pad1 it is returned by the iterator
// only.
type PadN struct{ N int }

// BindingRefreshAdvice is option type 2 (RFC 6275 §6.2.4, alignment 2n):
// the interval, in 4-second units, after which the MN should refresh.
type BindingRefreshAdvice struct{ Interval uint16 }

// AlternateCoA is option type 3 (RFC 6275 §6.2.5, alignment 8n+6): the
// care-of address for a BU, since ESP transport mode does not protect the
// IPv6 source address (RFC 4877 §4.3).
type AlternateCoA struct{ Addr netip.Addr }

// NonceIndices is option type 4 (RFC 6275 §6.2.6, alignment 2n).
type NonceIndices struct{ Home, CareOf uint16 }

// BindingAuthData is option type 5 (RFC 6275 §6.2.7, alignment 8n+2): the
// return-routability authenticator (12 bytes for RFC 6275 §5.2.6). It must
// be the last option (RFC 6275 §6.2): the encoder refuses anything after it
// and the decoder rejects a message with an option after it. With a
// 12-byte authenticator it also ends the header with no padding after it;
// other lengths get trailing padding.
type BindingAuthData struct{ Authenticator []byte }

// IPv4HomeAddress is option type 29 (RFC 5555 §3.1.1, alignment 4n):
// Prefix-len (6 bits), P (1 bit), reserved (9 bits), IPv4 home address.
// Addr 0.0.0.0 asks the HA to allocate one; P asks for a mobile network
// prefix. PrefixLen 0 is invalid, which the BU logic (not the codec)
// rejects.
type IPv4HomeAddress struct {
	PrefixLen uint8 // 6 bits
	P         bool
	Addr      netip.Addr // IPv4
}

// IPv4AddressAck is option type 30 (RFC 5555 §3.2.1, alignment 4n): Status
// (IPv4AckStatus), Pref-len (6 bits), reserved (2 bits), IPv4 home address.
type IPv4AddressAck struct {
	Status    IPv4AckStatus
	PrefixLen uint8 // 6 bits, valid on success only
	Addr      netip.Addr
}

// NATDetection is option type 31 (RFC 5555 §3.2.2, alignment 4n): F
// (force UDP encapsulation), 15 reserved bits, refresh time in seconds
// (0 = ignore, NATRefreshNone = no keepalives needed).
type NATDetection struct {
	F           bool
	RefreshTime uint32
}

// NATRefreshNone in NATDetection.RefreshTime says no keepalives are needed
// (no NAT was detected), RFC 5555 §3.2.2.
const NATRefreshNone = 0xffffffff

// IPv4CareOfAddress is option type 32 (RFC 5555 §3.1.2, alignment 4n):
// reserved (2 bytes), IPv4 care-of address.
type IPv4CareOfAddress struct{ Addr netip.Addr }

// BindingIdentifier is option type 35 (RFC 5648 §6.1): BID (2), Status (1),
// H and O flags and 6 reserved bits (1), then an optional care-of address:
// Length 4 without, 8 with an IPv4 and 20 with an IPv6 CoA. Alignment 2n
// without a CoA, 8n+2 with one (so the address lands on 8n). BID 0 is
// reserved; the codec leaves that check to the binding logic.
type BindingIdentifier struct {
	BID    uint16
	Status BAStatus // 0 = use the BA's status (RFC 5648 §6.1)
	H      bool     // simultaneous home and foreign binding
	O      bool     // overwrite all bindings
	CoA    netip.Addr
}

// BID option flags in the byte after Status (RFC 5648 §6.1).
const (
	bidFlagH = 0x80
	bidFlagO = 0x40
)

// UnknownOption is an option whose type this package does not know (RFC
// 6275 §6.2.1: skipped by the receiver). Decode records it so the caller
// can see what was skipped; Encode writes it back unaligned.
type UnknownOption struct {
	Type uint8
	Data []byte
}

func (Pad1) OptionType() uint8                 { return OptPad1 }
func (PadN) OptionType() uint8                 { return OptPadN }
func (BindingRefreshAdvice) OptionType() uint8 { return OptBindingRefreshAdvice }
func (AlternateCoA) OptionType() uint8         { return OptAlternateCoA }
func (NonceIndices) OptionType() uint8         { return OptNonceIndices }
func (BindingAuthData) OptionType() uint8      { return OptBindingAuthData }
func (IPv4HomeAddress) OptionType() uint8      { return OptIPv4HomeAddress }
func (IPv4AddressAck) OptionType() uint8       { return OptIPv4AddressAck }
func (NATDetection) OptionType() uint8         { return OptNATDetection }
func (IPv4CareOfAddress) OptionType() uint8    { return OptIPv4CareOfAddress }
func (BindingIdentifier) OptionType() uint8    { return OptBindingIdentifier }
func (o UnknownOption) OptionType() uint8      { return o.Type }

func (Pad1) Align() (x, y int)                 { return 1, 0 }
func (PadN) Align() (x, y int)                 { return 1, 0 }
func (BindingRefreshAdvice) Align() (x, y int) { return 2, 0 }
func (AlternateCoA) Align() (x, y int)         { return 8, 6 }
func (NonceIndices) Align() (x, y int)         { return 2, 0 }
func (BindingAuthData) Align() (x, y int)      { return 8, 2 }
func (IPv4HomeAddress) Align() (x, y int)      { return 4, 0 }
func (IPv4AddressAck) Align() (x, y int)       { return 4, 0 }
func (NATDetection) Align() (x, y int)         { return 4, 0 }
func (IPv4CareOfAddress) Align() (x, y int)    { return 4, 0 }
func (UnknownOption) Align() (x, y int)        { return 1, 0 }
func (o BindingIdentifier) Align() (x, y int) {
	if o.CoA.IsValid() {
		return 8, 2
	}
	return 2, 0
}

func (Pad1) dataLen() int                 { return -1 } // no Length byte
func (o PadN) dataLen() int               { return o.N - 2 }
func (BindingRefreshAdvice) dataLen() int { return 2 }
func (AlternateCoA) dataLen() int         { return 16 }
func (NonceIndices) dataLen() int         { return 4 }
func (o BindingAuthData) dataLen() int    { return len(o.Authenticator) }
func (IPv4HomeAddress) dataLen() int      { return 6 }
func (IPv4AddressAck) dataLen() int       { return 6 }
func (NATDetection) dataLen() int         { return 6 }
func (IPv4CareOfAddress) dataLen() int    { return 6 }
func (o UnknownOption) dataLen() int      { return len(o.Data) }
func (o BindingIdentifier) dataLen() int {
	switch {
	case !o.CoA.IsValid():
		return 4
	case o.CoA.Is4():
		return 8
	default:
		return 20
	}
}

func (Pad1) putData([]byte)   {}
func (PadN) putData(b []byte) { clear(b) }
func (o BindingRefreshAdvice) putData(b []byte) {
	binary.BigEndian.PutUint16(b, o.Interval)
}
func (o AlternateCoA) putData(b []byte) { a := o.Addr.As16(); copy(b, a[:]) }
func (o NonceIndices) putData(b []byte) {
	binary.BigEndian.PutUint16(b, o.Home)
	binary.BigEndian.PutUint16(b[2:], o.CareOf)
}
func (o BindingAuthData) putData(b []byte) { copy(b, o.Authenticator) }
func (o IPv4HomeAddress) putData(b []byte) {
	v := uint16(o.PrefixLen&0x3f) << 10
	if o.P {
		v |= 1 << 9
	}
	binary.BigEndian.PutUint16(b, v)
	put4(b[2:], o.Addr)
}
func (o IPv4AddressAck) putData(b []byte) {
	b[0] = uint8(o.Status)
	b[1] = (o.PrefixLen & 0x3f) << 2
	put4(b[2:], o.Addr)
}
func (o NATDetection) putData(b []byte) {
	var v uint16
	if o.F {
		v = 0x8000
	}
	binary.BigEndian.PutUint16(b, v)
	binary.BigEndian.PutUint32(b[2:], o.RefreshTime)
}
func (o IPv4CareOfAddress) putData(b []byte) {
	b[0], b[1] = 0, 0
	put4(b[2:], o.Addr)
}
func (o BindingIdentifier) putData(b []byte) {
	binary.BigEndian.PutUint16(b, o.BID)
	b[2] = uint8(o.Status)
	b[3] = 0
	if o.H {
		b[3] |= bidFlagH
	}
	if o.O {
		b[3] |= bidFlagO
	}
	if o.CoA.IsValid() {
		copy(b[4:], o.CoA.AsSlice())
	}
}
func (o UnknownOption) putData(b []byte) { copy(b, o.Data) }

// put4 writes a as 4 bytes; an invalid or non-IPv4 address writes
// 0.0.0.0 (validated by checkOption before encoding).
func put4(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
		return
	}
	clear(b[:4])
}

// checkOption reports why o cannot be encoded, or nil.
func checkOption(o Option) error {
	bad := func(why string) error {
		return fmt.Errorf("option %d: %s: %w", o.OptionType(), why, ErrMalformedOption)
	}
	switch o := o.(type) {
	case AlternateCoA:
		if !o.Addr.Is6() {
			return bad("Alternate CoA must be IPv6")
		}
	case IPv4HomeAddress:
		if !o.Addr.Is4() || o.PrefixLen > 63 {
			return bad("needs an IPv4 address and a 6-bit prefix length")
		}
	case IPv4AddressAck:
		if !o.Addr.Is4() || o.PrefixLen > 63 {
			return bad("needs an IPv4 address and a 6-bit prefix length")
		}
	case IPv4CareOfAddress:
		if !o.Addr.Is4() {
			return bad("needs an IPv4 address")
		}
	case BindingAuthData:
		if len(o.Authenticator) > 255 {
			return bad("authenticator over 255 bytes")
		}
	case UnknownOption:
		if o.Type == OptPad1 || o.Type == OptPadN || len(o.Data) > 255 {
			return bad("unknown option with a padding type or over 255 bytes")
		}
		if _, known := optionDataLen[o.Type]; known || o.Type == OptBindingAuthData || o.Type == OptBindingIdentifier {
			return bad("UnknownOption with a known type")
		}
	}
	return nil
}

// optionDataLen is the Length of each fixed-size known option.
var optionDataLen = map[uint8]int{
	OptBindingRefreshAdvice: 2,
	OptAlternateCoA:         16,
	OptNonceIndices:         4,
	OptIPv4HomeAddress:      6,
	OptIPv4AddressAck:       6,
	OptNATDetection:         6,
	OptIPv4CareOfAddress:    6,
}

// OptionIter walks the mobility options of a Mobility Header (RFC 6275
// §6.2.1). It returns padding (Pad1, PadN) like any other option. Build it
// with NewOptionIter.
type OptionIter struct {
	b   []byte // the whole MH, up to its Header Len
	off int
}

// NewOptionIter walks the options of mh, a whole Mobility Header already
// length-checked (header.MH.IsValid), starting at offset start (the end of
// the type's fixed part). Offsets in errors are from the start of the MH.
func NewOptionIter(mh []byte, start int) OptionIter {
	return OptionIter{b: mh, off: start}
}

// Offset is the MH offset of the option Next returns next.
func (it *OptionIter) Offset() int { return it.off }

// Next returns the next option, its data copied out of the header. done is
// true at the end of the header. err wraps ErrMalformedOption if an
// option's length runs past the header or a known option has the wrong
// length; the iterator then stops. Unknown types come back as
// UnknownOption (RFC 6275 §6.2.1).
func (it *OptionIter) Next() (opt Option, done bool, err error) {
	if it.off >= len(it.b) {
		return nil, true, nil
	}
	t := it.b[it.off]
	if t == OptPad1 {
		it.off++
		return Pad1{}, false, nil
	}
	fail := func(why string) (Option, bool, error) {
		off := it.off
		it.off = len(it.b)
		return nil, false, fmt.Errorf("option %d at offset %d: %s: %w", t, off, why, ErrMalformedOption)
	}
	if it.off+2 > len(it.b) {
		return fail("no length byte")
	}
	l := int(it.b[it.off+1])
	end := it.off + 2 + l
	if end > len(it.b) {
		return fail(fmt.Sprintf("length %d runs past the header end %d", l, len(it.b)))
	}
	d := it.b[it.off+2 : end]
	if want, ok := optionDataLen[t]; ok && l != want {
		return fail(fmt.Sprintf("length %d, want %d", l, want))
	}
	switch t {
	case OptPadN:
		opt = PadN{N: l + 2}
	case OptBindingRefreshAdvice:
		opt = BindingRefreshAdvice{Interval: binary.BigEndian.Uint16(d)}
	case OptAlternateCoA:
		opt = AlternateCoA{Addr: netip.AddrFrom16([16]byte(d))}
	case OptNonceIndices:
		opt = NonceIndices{Home: binary.BigEndian.Uint16(d), CareOf: binary.BigEndian.Uint16(d[2:])}
	case OptBindingAuthData:
		opt = BindingAuthData{Authenticator: append([]byte(nil), d...)}
	case OptIPv4HomeAddress:
		v := binary.BigEndian.Uint16(d)
		opt = IPv4HomeAddress{PrefixLen: uint8(v >> 10), P: v&(1<<9) != 0, Addr: netip.AddrFrom4([4]byte(d[2:]))}
	case OptIPv4AddressAck:
		opt = IPv4AddressAck{Status: IPv4AckStatus(d[0]), PrefixLen: d[1] >> 2, Addr: netip.AddrFrom4([4]byte(d[2:]))}
	case OptNATDetection:
		opt = NATDetection{F: d[0]&0x80 != 0, RefreshTime: binary.BigEndian.Uint32(d[2:])}
	case OptIPv4CareOfAddress:
		opt = IPv4CareOfAddress{Addr: netip.AddrFrom4([4]byte(d[2:]))}
	case OptBindingIdentifier:
		if l != 4 && l != 8 && l != 20 {
			return fail(fmt.Sprintf("length %d, want 4, 8 or 20", l))
		}
		bid := BindingIdentifier{BID: binary.BigEndian.Uint16(d), Status: BAStatus(d[2])}
		switch l {
		case 8:
			bid.CoA = netip.AddrFrom4([4]byte(d[4:]))
		case 20:
			bid.CoA = netip.AddrFrom16([16]byte(d[4:]))
		}
		bid.H = d[3]&bidFlagH != 0
		bid.O = d[3]&bidFlagO != 0
		opt = bid
	default:
		opt = UnknownOption{Type: t, Data: append([]byte(nil), d...)}
	}
	it.off = end
	return opt, false, nil
}

// appendOptions appends opts to b, which holds the MH from offset 0 (so
// len(b) is the current MH offset), inserting Pad1/PadN before each option
// to meet its alignment (RFC 6275 §6.2). Padding options in opts are
// ignored: padding is computed. BindingAuthData must be last (§6.2).
func appendOptions(b []byte, opts []Option) ([]byte, error) {
	for i, o := range opts {
		switch o.(type) {
		case Pad1, PadN, *Pad1, *PadN:
			continue
		case nil:
			return nil, fmt.Errorf("option %d is nil: %w", i, ErrMalformedOption)
		case BindingAuthData:
			for _, later := range opts[i+1:] {
				switch later.(type) {
				case Pad1, PadN:
				default:
					return nil, fmt.Errorf("option %d: Binding Authorization Data must be last (RFC 6275 §6.2): %w", OptBindingAuthData, ErrMalformedOption)
				}
			}
		}
		if err := checkOption(o); err != nil {
			return nil, err
		}
		x, y := o.Align()
		b = appendPadding(b, ((y-len(b))%x+x)%x)
		n := o.dataLen()
		b = append(b, o.OptionType(), uint8(n))
		b = append(b, make([]byte, n)...)
		o.putData(b[len(b)-n:])
	}
	return b, nil
}

// appendPadding appends n bytes of padding: one Pad1, or one PadN with
// zero data (RFC 6275 §6.2.2, §6.2.3).
func appendPadding(b []byte, n int) []byte {
	switch n {
	case 0:
		return b
	case 1:
		return append(b, OptPad1)
	default:
		b = append(b, OptPadN, uint8(n-2))
		return append(b, make([]byte, n-2)...)
	}
}
