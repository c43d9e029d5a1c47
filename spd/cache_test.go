package spd

import (
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
)

// TestLookupCached: a Cache answers as Lookup does, packet after packet,
// counts the same hits and drops, and never outlives a policy write or an
// SA change (the SA is resolved on every lookup).
func TestLookupCached(t *testing.T) {
	// Every kind of decision, and a second port of one flow (a miss).
	pkts := append(decisionPackets(), ipv4(hoa4, cn4, header.ProtoTCP, tcp(1, 3)))
	for _, tc := range testConfigs {
		t.Run(tc.name, func(t *testing.T) {
			sadb := newFakeSAD()
			plain, cached := newTestDB(tc.cfg, sadb), newTestDB(tc.cfg, sadb)
			for _, db := range []*DB{plain, cached} {
				if err := db.Replace(mnPolicies()); err != nil {
					t.Fatal(err)
				}
			}
			var caches [2]Cache
			compare := func(what string) {
				t.Helper()
				for i, p := range pkts {
					for rep := range 3 {
						for di, dir := range []sad.Direction{sad.Outbound, sad.Inbound} {
							want := plain.Lookup(dir, p)
							if got := cached.LookupCached(dir, p, &caches[di]); got != want {
								t.Fatalf("%s: packet %d (%d) %v: got %+v, want %+v", what, i, rep, dir, got, want)
							}
						}
					}
				}
				for _, dir := range []sad.Direction{sad.Outbound, sad.Inbound} {
					if d := cmp.Diff(plain.Stats(dir), cached.Stats(dir)); d != "" {
						t.Fatalf("%s: %v stats differ (-plain +cached):\n%s", what, dir, d)
					}
				}
			}
			compare("start")

			// The SA behind the cached policy is replaced, then missing.
			prot := pkts[0]
			spi := plain.Lookup(sad.Outbound, prot).SPI
			cached.Lookup(sad.Outbound, prot) // the same counts on both
			old := sadb[spi]
			sadb[spi] = new(sad.SA)
			plain.Lookup(sad.Outbound, prot)
			if d := cached.LookupCached(sad.Outbound, prot, &caches[0]); d.SA != sadb[spi] || d.SA == old {
				t.Fatalf("replaced SA: cached decision holds %p, want %p", d.SA, sadb[spi])
			}
			delete(sadb, spi)
			plain.Lookup(sad.Outbound, prot)
			if d := cached.LookupCached(sad.Outbound, prot, &caches[0]); d.SA != nil || d.Reason != ReasonNoSA {
				t.Fatalf("deleted SA: %+v", d)
			}
			sadb[spi] = old
			compare("SA back")

			// Policy writes: the cached answers follow each one (prot is
			// what the cache holds before each write).
			p := Policy{Name: "first", Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{{}}}
			warm := func() {
				t.Helper()
				want := plain.Lookup(sad.Outbound, prot)
				if got := cached.LookupCached(sad.Outbound, prot, &caches[0]); got != want {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			}
			warm()
			for _, db := range []*DB{plain, cached} {
				if err := db.Insert(0, p); err != nil {
					t.Fatal(err)
				}
			}
			plain.Lookup(sad.Outbound, prot)
			if d := cached.LookupCached(sad.Outbound, prot, &caches[0]); d.Action != Discard || d.Index != 0 {
				t.Fatalf("after Insert: %+v", d)
			}
			compare("insert")
			warm()
			for _, db := range []*DB{plain, cached} {
				if err := db.Delete("first"); err != nil {
					t.Fatal(err)
				}
			}
			plain.Lookup(sad.Outbound, prot)
			if d := cached.LookupCached(sad.Outbound, prot, &caches[0]); d.Action != Protect || d.SPI != spi {
				t.Fatalf("after Delete: %+v", d)
			}
			compare("delete")
			warm()
			for _, db := range []*DB{plain, cached} {
				if err := db.Replace(nil); err != nil {
					t.Fatal(err)
				}
			}
			plain.Lookup(sad.Outbound, prot)
			if d := cached.LookupCached(sad.Outbound, prot, &caches[0]); d != decNoMatch {
				t.Fatalf("after Replace(nil): %+v", d)
			}
			compare("empty")
		})
	}
}

// TestCacheHoldsNoTable: a Cache remembers which table it searched by
// number, not by pointer, so a replaced table (with a big SPD's index) is
// not kept alive by the caches of idle batches.
func TestCacheHoldsNoTable(t *testing.T) {
	db := New(nil)
	if err := db.Replace(mnPolicies()); err != nil {
		t.Fatal(err)
	}
	var c Cache
	db.LookupCached(sad.Outbound, decisionPackets()[0], &c)
	freed := make(chan struct{})
	runtime.SetFinalizer(db.snap.Load().t[dirIndex(sad.Outbound)], func(*table) { close(freed) })
	if err := db.Replace(nil); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		runtime.GC()
		select {
		case <-freed:
			runtime.KeepAlive(&c)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("the replaced table is still reachable")
}
