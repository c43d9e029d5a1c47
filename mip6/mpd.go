package mip6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mipsec/mipsec/internal/header"
)

// Mobile prefix discovery (RFC 6275 §6.7, §6.8, §10.6, §11.4.3): the
// mobile node asks its home agent for the home prefixes with an ICMPv6
// Mobile Prefix Solicitation and the home agent answers with a Mobile
// Prefix Advertisement carrying Prefix Information options. RFC 4877 §4.1
// protects both with ESP (SA5/SA6 of RFC 4877 §6, ICMPv6-type selectors).
// Control plane code: it allocates.

// ICMPv6 types of mobile prefix discovery (RFC 6275 §6.7, §6.8).
const (
	ICMPv6TypeMPS = 146 // Mobile Prefix Solicitation
	ICMPv6TypeMPA = 147 // Mobile Prefix Advertisement
)

// Sizes of the messages and options (RFC 6275 §6.7, §6.8; RFC 4861 §4.6.2).
const (
	mpsLen            = 8  // Type, Code, Checksum, Identifier, Reserved
	mpaFixedLen       = 8  // Type, Code, Checksum, Identifier, M|O|Reserved
	ndOptPrefixInfo   = 3  // RFC 4861 §4.6.2
	prefixInfoLen     = 32 // Length 4 (units of 8 bytes)
	mpaFlagM          = 0x80
	mpaFlagO          = 0x40
	prefixFlagOnLink  = 0x80 // L, RFC 4861 §4.6.2
	prefixFlagAuto    = 0x40 // A, RFC 4861 §4.6.2
	prefixFlagRouter  = 0x20 // R, RFC 6275 §7.2
	ndOptUnitLen      = 8
	mpaMaxPrefixCount = 64
)

// ErrMPD is wrapped by the mobile prefix discovery decoders for a message
// that is truncated, has the wrong type or code, a bad checksum or a
// malformed option (RFC 6275 §6.7, §6.8: silently discard).
var ErrMPD = errors.New("mip6: malformed mobile prefix discovery message")

// MobilePrefixSolicitation is ICMPv6 type 146 (RFC 6275 §6.7).
type MobilePrefixSolicitation struct {
	// ID is the Identifier, echoed in the advertisement.
	ID uint16
}

// PrefixInfo is one Prefix Information option of a Mobile Prefix
// Advertisement (RFC 4861 §4.6.2 with the R flag of RFC 6275 §7.2).
type PrefixInfo struct {
	// Prefix is the advertised prefix (its address bits beyond the
	// length are sent as given; with RouterAddr the full address).
	Prefix     netip.Prefix
	OnLink     bool // L
	Autonomous bool // A
	RouterAddr bool // R: Prefix.Addr() is the home agent's full address
	// ValidLifetime and PreferredLifetime are in seconds; 0xffffffff is
	// infinity (RFC 4861 §4.6.2).
	ValidLifetime, PreferredLifetime uint32
}

// MobilePrefixAdvertisement is ICMPv6 type 147 (RFC 6275 §6.8).
type MobilePrefixAdvertisement struct {
	// ID echoes the solicitation's Identifier (0 when unsolicited).
	ID uint16
	// M and O are the managed/other configuration flags (RFC 6275 §6.8).
	M, O bool
	// Prefixes are the Prefix Information options; other options are
	// skipped on decode (RFC 4861 §4.6).
	Prefixes []PrefixInfo
}

// AppendMPS appends the ICMPv6 message m to b, with the checksum for a
// packet from src (the home address, RFC 6275 §6.7 / RFC 4877 §4.2) to dst.
func AppendMPS(b []byte, m *MobilePrefixSolicitation, src, dst netip.Addr) []byte {
	start := len(b)
	b = append(b, ICMPv6TypeMPS, 0, 0, 0, byte(m.ID>>8), byte(m.ID), 0, 0)
	setICMPv6Checksum(b[start:], src, dst)
	return b
}

// ParseMPS decodes the ICMPv6 message at the start of icmp (up to the end
// of the packet), received from src (home-address form) to dst. It checks
// type, code, length and checksum. Extra bytes after the 8-byte message
// are ignored (they would be options, none defined, RFC 6275 §6.7).
func ParseMPS(icmp []byte, src, dst netip.Addr) (*MobilePrefixSolicitation, error) {
	if len(icmp) < mpsLen {
		return nil, fmt.Errorf("MPS of %d bytes, want %d: %w", len(icmp), mpsLen, ErrMPD)
	}
	if icmp[0] != ICMPv6TypeMPS || icmp[1] != 0 {
		return nil, fmt.Errorf("ICMPv6 type %d code %d is not a MPS: %w", icmp[0], icmp[1], ErrMPD)
	}
	if !icmpv6ChecksumOK(icmp, src, dst) {
		return nil, fmt.Errorf("MPS checksum: %w", ErrMPD)
	}
	return &MobilePrefixSolicitation{ID: binary.BigEndian.Uint16(icmp[4:])}, nil
}

// AppendMPA appends the ICMPv6 message m to b, with its checksum for a
// packet from src (the home agent) to dst (the home address, the final
// destination also when a type 2 Routing header carries it). It fails
// for an invalid prefix or more than 64 prefixes.
func AppendMPA(b []byte, m *MobilePrefixAdvertisement, src, dst netip.Addr) ([]byte, error) {
	if len(m.Prefixes) > mpaMaxPrefixCount {
		return nil, fmt.Errorf("%d prefixes, at most %d: %w", len(m.Prefixes), mpaMaxPrefixCount, ErrMPD)
	}
	start := len(b)
	var fl byte
	if m.M {
		fl |= mpaFlagM
	}
	if m.O {
		fl |= mpaFlagO
	}
	b = append(b, ICMPv6TypeMPA, 0, 0, 0, byte(m.ID>>8), byte(m.ID), fl, 0)
	for _, pi := range m.Prefixes {
		if !pi.Prefix.IsValid() || !pi.Prefix.Addr().Is6() || pi.Prefix.Addr().Is4In6() {
			return nil, fmt.Errorf("prefix %v is not an IPv6 prefix: %w", pi.Prefix, ErrMPD)
		}
		var f byte
		if pi.OnLink {
			f |= prefixFlagOnLink
		}
		if pi.Autonomous {
			f |= prefixFlagAuto
		}
		if pi.RouterAddr {
			f |= prefixFlagRouter
		}
		b = append(b, make([]byte, prefixInfoLen)...)
		o := b[len(b)-prefixInfoLen:]
		o[0], o[1], o[2], o[3] = ndOptPrefixInfo, prefixInfoLen/ndOptUnitLen, uint8(pi.Prefix.Bits()), f
		binary.BigEndian.PutUint32(o[4:], pi.ValidLifetime)
		binary.BigEndian.PutUint32(o[8:], pi.PreferredLifetime)
		a := pi.Prefix.Addr().As16()
		copy(o[16:], a[:])
	}
	setICMPv6Checksum(b[start:], src, dst)
	return b, nil
}

// ParseMPA decodes a Mobile Prefix Advertisement (icmp up to the end of
// the packet) received from src to dst (the home address). It checks the
// type, code, checksum and every option's length (RFC 4861 §4.6: a zero
// length is malformed); options other than Prefix Information are
// skipped.
func ParseMPA(icmp []byte, src, dst netip.Addr) (*MobilePrefixAdvertisement, error) {
	if len(icmp) < mpaFixedLen {
		return nil, fmt.Errorf("MPA of %d bytes, want at least %d: %w", len(icmp), mpaFixedLen, ErrMPD)
	}
	if icmp[0] != ICMPv6TypeMPA || icmp[1] != 0 {
		return nil, fmt.Errorf("ICMPv6 type %d code %d is not a MPA: %w", icmp[0], icmp[1], ErrMPD)
	}
	if !icmpv6ChecksumOK(icmp, src, dst) {
		return nil, fmt.Errorf("MPA checksum: %w", ErrMPD)
	}
	m := &MobilePrefixAdvertisement{
		ID: binary.BigEndian.Uint16(icmp[4:]),
		M:  icmp[6]&mpaFlagM != 0,
		O:  icmp[6]&mpaFlagO != 0,
	}
	for off := mpaFixedLen; off < len(icmp); {
		if off+2 > len(icmp) {
			return nil, fmt.Errorf("option at %d truncated: %w", off, ErrMPD)
		}
		l := int(icmp[off+1]) * ndOptUnitLen
		if l == 0 || off+l > len(icmp) {
			return nil, fmt.Errorf("option %d at %d has length %d of %d bytes left: %w", icmp[off], off, l, len(icmp)-off, ErrMPD)
		}
		o := icmp[off : off+l]
		if o[0] == ndOptPrefixInfo {
			if l != prefixInfoLen {
				return nil, fmt.Errorf("prefix information option of %d bytes: %w", l, ErrMPD)
			}
			if o[2] > 128 {
				return nil, fmt.Errorf("prefix length %d: %w", o[2], ErrMPD)
			}
			if len(m.Prefixes) == mpaMaxPrefixCount {
				return nil, fmt.Errorf("over %d prefixes: %w", mpaMaxPrefixCount, ErrMPD)
			}
			m.Prefixes = append(m.Prefixes, PrefixInfo{
				Prefix:            netip.PrefixFrom(netip.AddrFrom16([16]byte(o[16:32])), int(o[2])),
				OnLink:            o[3]&prefixFlagOnLink != 0,
				Autonomous:        o[3]&prefixFlagAuto != 0,
				RouterAddr:        o[3]&prefixFlagRouter != 0,
				ValidLifetime:     binary.BigEndian.Uint32(o[4:]),
				PreferredLifetime: binary.BigEndian.Uint32(o[8:]),
			})
		}
		off += l
	}
	return m, nil
}

// setICMPv6Checksum fills in the checksum of the ICMPv6 message m (RFC
// 4443 §2.3, RFC 8200 §8.1 pseudo-header with next header 58).
func setICMPv6Checksum(m []byte, src, dst netip.Addr) {
	m[2], m[3] = 0, 0
	c := ^header.Checksum(m, header.PseudoHeaderChecksum(header.ProtoICMPv6, src, dst, len(m)))
	m[2], m[3] = byte(c>>8), byte(c)
}

func icmpv6ChecksumOK(m []byte, src, dst netip.Addr) bool {
	return header.Checksum(m, header.PseudoHeaderChecksum(header.ProtoICMPv6, src, dst, len(m))) == 0xffff
}
