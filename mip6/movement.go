package mip6

import (
	"errors"
	"fmt"
	"net/netip"
)

// Movement detection helpers for the mobile node (RFC 6275 §11.5; RFC
// 5555 §4.4.1). The program embedding mip6 watches the underlay
// interfaces' addresses (netlink on Linux) and hands them to ChooseCoA;
// MobileNode.Move then registers the choice.

// ErrBadCoA is wrapped by CheckCoA (and MobileNode.Move) for an address
// that cannot be a care-of address.
var ErrBadCoA = errors.New("mip6: not a usable care-of address")

// ulaPrefix is the IPv6 Unique Local Address block (RFC 4193).
var ulaPrefix = netip.MustParsePrefix("fc00::/7")

// CheckCoA reports why a cannot be a care-of address, or nil. A CoA must
// be a unicast routable address (RFC 6275 §9.5.1: the HA drops a BU whose
// CoA is not): not the unspecified address, loopback, multicast, the IPv4
// limited broadcast, or link-local (IPv6 fe80::/10, IPv4 169.254/16).
// IPv4-mapped IPv6 addresses are taken as the IPv4 address. Documentation
// prefixes (2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24),
// private IPv4 space (RFC 1918, typical behind a NAT) and ULAs are
// accepted.
func CheckCoA(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return fmt.Errorf("no address: %w", ErrBadCoA)
	case a.IsUnspecified():
		return fmt.Errorf("%v is unspecified: %w", a, ErrBadCoA)
	case a.IsLoopback():
		return fmt.Errorf("%v is loopback: %w", a, ErrBadCoA)
	case a.IsMulticast():
		return fmt.Errorf("%v is multicast: %w", a, ErrBadCoA)
	case a.IsLinkLocalUnicast():
		return fmt.Errorf("%v is link-local: %w", a, ErrBadCoA)
	case a.Zone() != "":
		return fmt.Errorf("%v has a zone: %w", a, ErrBadCoA)
	case !a.IsGlobalUnicast():
		// IPv4 limited broadcast and anything else netip does not count
		// as unicast.
		return fmt.Errorf("%v is not unicast: %w", a, ErrBadCoA)
	}
	return nil
}

// coaRank orders candidate care-of addresses; lower is better.
const (
	rankGlobal6 = iota // global IPv6 (RFC 5555 §4.4.1: prefer IPv6)
	rankIPv4           // IPv4 (public or private, e.g. behind a NAT)
	rankULA            // IPv6 ULA: rarely routes to the HA, last resort
	rankHome           // in the home prefix: the MN is at home
	rankNone
)

// ChooseCoA picks the care-of address among the addresses of the MN's
// underlay interfaces (RFC 6275 §11.5; RFC 5555 §4.4.1 prefers an IPv6
// CoA):
//
//  1. a global IPv6 address (documentation prefixes count as global);
//  2. else an IPv4 address (private ones included: the NAT case);
//  3. else an IPv6 ULA (fc00::/7, RFC 4193): accepted, but ranked after
//     IPv4 because a ULA seldom reaches the home agent;
//  4. else an address inside home (the home prefix): the MN is attached
//     to its home link, and Move with that address de-registers.
//
// Addresses CheckCoA refuses (link-local, loopback, multicast,
// unspecified, zoned) are skipped. Within a rank the first address in
// addrs wins, so the caller's order (e.g. interface priority) breaks
// ties. ok is false when no address qualifies. An invalid home prefix
// puts no address in rank 4.
func ChooseCoA(addrs []netip.Addr, home netip.Prefix) (netip.Addr, bool) {
	best, bestRank := netip.Addr{}, rankNone
	for _, a := range addrs {
		a = a.Unmap()
		if CheckCoA(a) != nil {
			continue
		}
		r := rankIPv4
		switch {
		case home.IsValid() && home.Contains(a):
			r = rankHome
		case a.Is4():
			r = rankIPv4
		case ulaPrefix.Contains(a):
			r = rankULA
		default:
			r = rankGlobal6
		}
		if r < bestRank {
			best, bestRank = a, r
		}
	}
	return best, bestRank != rankNone
}
