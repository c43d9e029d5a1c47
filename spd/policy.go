package spd

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mipsec/mipsec/sad"
)

// Action is what an SPD entry does with the traffic it matches
// (RFC 4301 §4.4.1, §4.4.1.2).
type Action uint8

const (
	// Discard: the traffic may not cross the IPsec boundary in this
	// direction. The zero value, so that a forgotten action fails closed.
	Discard Action = iota
	// Bypass: the traffic crosses the boundary without IPsec.
	Bypass
	// Protect: the traffic crosses the boundary only under ESP.
	Protect
)

func (a Action) String() string {
	switch a {
	case Discard:
		return "DISCARD"
	case Bypass:
		return "BYPASS"
	case Protect:
		return "PROTECT"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Policy is one SPD entry (RFC 4301 §4.4.1.2): a name, 1..N selector sets
// and one action for all of them. A packet matches the policy if it
// matches any of its selector sets (sad.Selector.Match).
//
// The database keeps its own copy of a Policy; later changes to the
// caller's Selectors slice have no effect.
type Policy struct {
	// Name identifies the entry for Delete and Stats. Optional; when
	// given it must be unique in the whole DB (both directions).
	Name string
	// Dir is the direction whose ordered list the entry belongs to.
	// Outbound holds SPD-S and SPD-O, Inbound holds SPD-I plus the
	// inbound half of SPD-S (RFC 4301 §4.4.1).
	Dir sad.Direction
	// Selectors are the entry's selector sets, at least one
	// (RFC 4301 §4.4.1.2 "1 to N selector sets").
	Selectors []sad.Selector
	// Action applies to every selector set.
	Action Action
	// SPI names the outbound SA that a PROTECT entry uses (Dir Outbound;
	// required there). Statically keyed SAs are named by SPI because
	// there is no IKE to negotiate them (RFC 4877 §6). On an inbound
	// PROTECT entry it is optional and informational; it must be 0 for
	// BYPASS and DISCARD.
	SPI uint32
}

func (p Policy) clone() Policy {
	p.Selectors = append([]sad.Selector(nil), p.Selectors...)
	return p
}

// Errors returned by the writers. They are wrapped with the details;
// test with errors.Is.
var (
	// ErrInvalidPolicy: a policy failed validation; nothing was changed.
	ErrInvalidPolicy = errors.New("spd: invalid policy")
	// ErrDuplicateName: the name is already used; nothing was changed.
	ErrDuplicateName = errors.New("spd: duplicate policy name")
	// ErrNotFound: no policy has that name.
	ErrNotFound = errors.New("spd: no such policy")
	// ErrIndex: the insert position is outside 0..List(dir) length.
	ErrIndex = errors.New("spd: index out of range")
)

// validate checks one policy on its own (not its name's uniqueness).
func (p *Policy) validate() error {
	if p.Dir != sad.Outbound && p.Dir != sad.Inbound {
		return fmt.Errorf("%w: direction %d", ErrInvalidPolicy, p.Dir)
	}
	switch p.Action {
	case Discard, Bypass:
		if p.SPI != 0 {
			return fmt.Errorf("%w: SPI %#x on a %v policy", ErrInvalidPolicy, p.SPI, p.Action)
		}
	case Protect:
		if p.Dir == sad.Outbound && p.SPI == 0 {
			return fmt.Errorf("%w: outbound PROTECT needs the SPI of its SA", ErrInvalidPolicy)
		}
	default:
		return fmt.Errorf("%w: action %v", ErrInvalidPolicy, p.Action)
	}
	if len(p.Selectors) == 0 {
		return fmt.Errorf("%w: no selector set (RFC 4301 §4.4.1.2 needs 1..N)", ErrInvalidPolicy)
	}
	if err := sad.ValidateSelectors(p.Selectors, "selector set"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	return nil
}

// rangeFamily is the family of a range that passed AddrRange.Validate.
func rangeFamily(r sad.AddrRange) int {
	if r.IsAny() {
		return 0
	}
	return r.From.BitLen()
}

// addrKey maps a (zone-free) address to the 128-bit ordered key the
// index uses: IPv6 as is, IPv4 in the top 32 bits so that both families
// share the bit positions of the jump table. The families live in separate
// indexes, so their keys never meet.
func addrKey(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32}
	}
	b := a.As16()
	return u128{
		hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
			uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]),
		lo: uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
			uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15]),
	}
}
