package config

import (
	"testing"

	"github.com/mipsec/mipsec/sad"
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

// testSAD is a SAD holding cfg's SAs, closed when t ends.
func testSAD(t *testing.T, cfg *File) *sad.DB {
	t.Helper()
	db := sad.New(sad.Options{})
	t.Cleanup(db.Close)
	for _, s := range cfg.SAs {
		if _, err := db.Add(s.Config); err != nil {
			t.Fatalf("%s: %v", s.Path, err)
		}
	}
	return db
}
