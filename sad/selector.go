package sad

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mipsec/mipsec/internal/header"
)

// Selectors live in sad because SAD entries carry the selectors they were
// created for (RFC 4301 §4.4.2) and spd sits above sad in the import order;
// spd policies use the same type.

// Direction is the traffic direction a policy or SA applies to.
type Direction uint8

const (
	Outbound Direction = iota + 1
	Inbound
)

func (d Direction) String() string {
	switch d {
	case Outbound:
		return "out"
	case Inbound:
		return "in"
	}
	return "invalid"
}

// AddrRange is an inclusive range of addresses of one family. The zero
// value is ANY (matches every address of both families).
type AddrRange struct {
	From, To netip.Addr
}

// AnyAddr matches every address.
var AnyAddr = AddrRange{}

// PrefixRange returns the range a prefix covers. An invalid prefix (the
// zero Prefix, or one with bits out of range) gives an empty range, From
// ::1 and To :: (From > To), which matches nothing and which the SAD and
// SPD validation reject: it must not become ANY.
func PrefixRange(p netip.Prefix) AddrRange {
	if !p.IsValid() {
		return AddrRange{From: netip.IPv6Unspecified().Next(), To: netip.IPv6Unspecified()}
	}
	p = p.Masked()
	from := p.Addr()
	b := from.AsSlice()
	bits := p.Bits()
	for i := bits; i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	to, _ := netip.AddrFromSlice(b)
	return AddrRange{From: from, To: to}
}

// SingleAddr returns the range holding only a.
func SingleAddr(a netip.Addr) AddrRange { return AddrRange{From: a, To: a} }

// IsAny reports whether r is ANY.
func (r AddrRange) IsAny() bool { return !r.From.IsValid() }

// Contains reports whether a is in r.
func (r AddrRange) Contains(a netip.Addr) bool {
	if !r.From.IsValid() {
		return true
	}
	if a.BitLen() != r.From.BitLen() {
		return false
	}
	return r.From.Compare(a) <= 0 && a.Compare(r.To) <= 0
}

// PortMatch says how a PortRange matches.
type PortMatch uint8

const (
	PortAny     PortMatch = iota // matches anything, present, absent or opaque (zero value)
	PortInRange                  // matches Lo..Hi inclusive
	PortOpaque                   // matches only when the field is unavailable (RFC 4301 §4.4.1.1 OPAQUE)
)

// Ports is a "port" selector: TCP/UDP/SCTP ports, or for ICMP/ICMPv6 the
// type<<8|code value and for the Mobility Header the type<<8 value
// (RFC 4301 §4.4.1.1, §4.4.1.3). The zero value is ANY.
type Ports struct {
	Match  PortMatch
	Lo, Hi uint16
}

// PortsRange returns a selector for lo..hi.
func PortsRange(lo, hi uint16) Ports { return Ports{Match: PortInRange, Lo: lo, Hi: hi} }

// Port returns a selector for exactly p.
func Port(p uint16) Ports { return Ports{Match: PortInRange, Lo: p, Hi: p} }

// ICMPType returns a selector for ICMP type t with any code.
func ICMPType(t uint8) Ports { return PortsRange(uint16(t)<<8, uint16(t)<<8|0xff) }

// ICMPTypeCode returns a selector for ICMP type t and code c.
func ICMPTypeCode(t, c uint8) Ports { return Port(uint16(t)<<8 | uint16(c)) }

// MHType returns a selector for Mobility Header type t, carried in the
// high 8 bits of the port value (RFC 4301 §4.4.1.1, RFC 4877 §7.2.1).
func MHType(t uint8) Ports { return PortsRange(uint16(t)<<8, uint16(t)<<8|0xff) }

// Opaque is the OPAQUE port selector.
var Opaque = Ports{Match: PortOpaque}

// matches reports whether value v (or an unavailable field) matches.
func (p Ports) matches(v uint16, opaque bool) bool {
	switch p.Match {
	case PortAny:
		return true
	case PortOpaque:
		return opaque
	}
	return !opaque && p.Lo <= v && v <= p.Hi
}

// ProtoAny as a Selector.Proto matches every next-layer protocol. (Zero is
// Hop-by-Hop, which is never a next-layer protocol.)
const ProtoAny = 0

// Selector is one RFC 4301 §4.4.1.1 selector set. "Local" is the protected
// side: the source of outbound and the destination of inbound packets.
//
// For TCP, UDP and SCTP, LocalPort and RemotePort match the ports. For
// ICMP, ICMPv6 and the Mobility Header the type value expresses a
// permission per direction (RFC 4301 §4.4.1.3): an outbound packet's value
// must match LocalPort, an inbound packet's value must match RemotePort.
// So an MN's BU/BA entry is Local = MHType(BU), Remote = MHType(BAck), and
// the HA's mirror is Local = MHType(BAck), Remote = MHType(BU).
type Selector struct {
	Local, Remote         AddrRange
	Proto                 uint8 // ProtoAny or an IANA protocol number
	LocalPort, RemotePort Ports
}

// typed reports whether proto carries a type value rather than ports.
func typed(proto uint8) bool {
	return proto == header.ProtoICMP || proto == header.ProtoICMPv6 || proto == header.ProtoMobility
}

// Match reports whether the packet fields f, travelling in direction dir,
// match s. f must be in home-address form (header.Flow).
func (s *Selector) Match(dir Direction, f *header.Flow) bool {
	local, remote := f.Src, f.Dst
	lport, rport := f.SrcPort, f.DstPort
	if dir == Inbound {
		local, remote = f.Dst, f.Src
		lport, rport = f.DstPort, f.SrcPort
	}
	if !s.Local.Contains(local) || !s.Remote.Contains(remote) {
		return false
	}
	if s.Proto != ProtoAny && s.Proto != f.Proto {
		return false
	}
	if typed(f.Proto) {
		if dir == Outbound {
			return s.LocalPort.matches(f.TypeCode, f.Opaque)
		}
		return s.RemotePort.matches(f.TypeCode, f.Opaque)
	}
	hasPorts := f.Proto == header.ProtoTCP || f.Proto == header.ProtoUDP || f.Proto == header.ProtoSCTP
	opaque := f.Opaque || !hasPorts
	return s.LocalPort.matches(lport, opaque) && s.RemotePort.matches(rport, opaque)
}

// Validate returns the family of r in bits (0 for ANY, 32 or 128), or why
// r is not a usable range: an end without a start, mixed families, a
// zoned address, or From after To.
func (r AddrRange) Validate() (bits int, err error) {
	if r.IsAny() {
		if r.To.IsValid() {
			return 0, errors.New("range end without a start")
		}
		return 0, nil
	}
	if !r.To.IsValid() {
		return 0, errors.New("range start without an end")
	}
	if r.From.BitLen() != r.To.BitLen() {
		return 0, errors.New("IPv4 and IPv6 mixed in one range")
	}
	if r.From.Zone() != "" || r.To.Zone() != "" {
		return 0, errors.New("zoned address")
	}
	if r.From.Compare(r.To) > 0 {
		return 0, fmt.Errorf("empty range %v-%v", r.From, r.To)
	}
	return r.From.BitLen(), nil
}

// ValidateSelectors checks a list of selector sets as one SAD or SPD entry
// holds them: every address range valid, IPv4 and IPv6 not mixed across
// the entry (RFC 4301 §4.4.1.1; ANY fits both), every port range valid.
// what names a set in the error ("selector", "selector set"). An empty
// list is valid here; callers decide whether they need one.
func ValidateSelectors(sels []Selector, what string) error {
	return validateSets(sels, what, false)
}

// validateSets is ValidateSelectors; with perSet, IPv4 and IPv6 may differ
// between selector sets (never within one), as an SA negotiated by IKEv2
// may carry both families (RFC 7296 §2.9: one Child SA, several TS pairs).
func validateSets(sels []Selector, what string, perSet bool) error {
	fam := 0
	for i := range sels {
		s := &sels[i]
		if perSet {
			fam = 0
		}
		for _, r := range [2]struct {
			name string
			r    AddrRange
		}{{"local", s.Local}, {"remote", s.Remote}} {
			bits, err := r.r.Validate()
			if err != nil {
				return fmt.Errorf("%s %d %s address: %v", what, i, r.name, err)
			}
			if bits == 0 {
				continue
			}
			if fam != 0 && fam != bits {
				return fmt.Errorf("%s %d %s address: IPv4 and IPv6 mixed in one entry (RFC 4301 §4.4.1.1)", what, i, r.name)
			}
			fam = bits
		}
		for _, pr := range [2]struct {
			name string
			p    Ports
		}{{"local port", s.LocalPort}, {"remote port", s.RemotePort}} {
			switch pr.p.Match {
			case PortAny, PortOpaque:
			case PortInRange:
				if pr.p.Lo > pr.p.Hi {
					return fmt.Errorf("%s %d %s: empty range %d-%d", what, i, pr.name, pr.p.Lo, pr.p.Hi)
				}
			default:
				return fmt.Errorf("%s %d %s: match kind %d", what, i, pr.name, pr.p.Match)
			}
		}
	}
	return nil
}

// ParseDirection reads "in"/"inbound" or "out"/"outbound" (any case).
func ParseDirection(s string) (Direction, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "out", "outbound":
		return Outbound, nil
	case "in", "inbound":
		return Inbound, nil
	}
	return 0, fmt.Errorf("sad: %q is not a direction; want in or out", s)
}
