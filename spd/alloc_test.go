package spd

import (
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
)

// TestZeroAllocs: the decision path never allocates (ARCHITECTURE.md hot
// path rules), on the linear and the indexed table, with and without a
// SALookup, for every kind of decision.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("-race allocates")
	}
	pkts := decisionPackets()
	for _, tc := range testConfigs {
		for _, sadb := range []SALookup{nil, newFakeSAD()} {
			db := newTestDB(tc.cfg, sadb)
			if err := db.Replace(mnPolicies()); err != nil {
				t.Fatal(err)
			}
			for i, p := range pkts {
				var f header.Flow
				header.ParseFlow(p, &f)
				for _, dir := range []sad.Direction{sad.Outbound, sad.Inbound} {
					if n := testing.AllocsPerRun(100, func() { db.Lookup(dir, p) }); n != 0 {
						t.Errorf("%s: Lookup(%v, packet %d): %v allocs", tc.name, dir, i, n)
					}
					var c Cache
					if n := testing.AllocsPerRun(100, func() { db.LookupCached(dir, p, &c) }); n != 0 {
						t.Errorf("%s: LookupCached(%v, packet %d): %v allocs", tc.name, dir, i, n)
					}
					if n := testing.AllocsPerRun(100, func() { db.LookupFlow(dir, &f) }); n != 0 {
						t.Errorf("%s: LookupFlow(%v, packet %d): %v allocs", tc.name, dir, i, n)
					}
				}
			}
		}
	}
	// An empty DB (no match) and a 100000-policy one.
	db := New(nil)
	f := header.Flow{Src: hoa, Dst: cn, Proto: header.ProtoTCP}
	if n := testing.AllocsPerRun(100, func() { db.LookupFlow(sad.Outbound, &f) }); n != 0 {
		t.Errorf("empty DB: %v allocs", n)
	}
	if testing.Short() {
		return
	}
	big, flows := buildConcentrator(t, 100000)
	i := 0
	if n := testing.AllocsPerRun(1000, func() { big.LookupFlow(sad.Outbound, &flows[i&4095]); i++ }); n != 0 {
		t.Errorf("100000 policies: %v allocs", n)
	}
}

// decisionPackets returns a packet for every kind of decision the RFC 4877
// MN policies (mnPolicies) give.
func decisionPackets() [][]byte {
	return [][]byte{
		ipv6(hoa, haA, nil, header.ProtoMobility, mh(mhBU)),                // PROTECT
		ipv6(coa, haA, []ext6{hao(hoa)}, header.ProtoMobility, mh(mhBU)),   // PROTECT via HAO
		ipv6(haA, coa, []ext6{rh2(hoa)}, header.ProtoMobility, mh(mhBAck)), // inbound: unprotected
		ipv4(coa4, ha4, header.ProtoUDP, udp(500, 500)),                    // BYPASS
		ipv6(coa, cn, nil, header.ProtoTCP, tcp(1, 2)),                     // DISCARD
		ipv4(hoa4, cn4, header.ProtoTCP, tcp(1, 2)),                        // PROTECT, IPv4
		ipv6(hoa, cn, []ext6{frag6(8, false)}, header.ProtoTCP, tcp(1, 2)), // non-initial fragment
		{0x60, 0, 0}, // unparsable
	}
}
