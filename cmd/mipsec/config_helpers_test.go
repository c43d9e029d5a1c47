package main

import (
	"net/netip"
	"slices"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func prefixesEqual(a, b []netip.Prefix) bool { return slices.Equal(a, b) }

func addrPortEqual(a, b netip.AddrPort) bool { return a == b }
