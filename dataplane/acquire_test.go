package dataplane_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// TestAcquire: an outbound PROTECT policy with a trap SPI and no SA drops
// its packets as DropAcquire and tells OnAcquire with that SPI, once per
// 2 clock seconds (a batch, the next batches, Inject: one call); a PROTECT
// policy with an ordinary SPI and no SA is DropNoSA and tells nothing; the
// trap path does not allocate.
func TestAcquire(t *testing.T) {
	const trapSPI, missing = 7, 0x5000
	sadb := sad.New(sad.Options{})
	t.Cleanup(sadb.Close)
	spdb := spd.New(sadb)
	if err := spdb.Replace([]spd.Policy{
		{Name: "trap", Dir: sad.Outbound, Action: spd.Protect, SPI: trapSPI,
			Selectors: []sad.Selector{{Local: sad.PrefixRange(siteA4), Remote: sad.PrefixRange(siteB4)}}},
		{Name: "gone", Dir: sad.Outbound, Action: spd.Protect, SPI: missing,
			Selectors: []sad.Selector{{Local: sad.PrefixRange(siteA6), Remote: sad.PrefixRange(siteB6)}}},
	}); err != nil {
		t.Fatal(err)
	}
	var calls, wrong atomic.Int64
	ua, _ := underlaytest.NewPair(epA, epB)
	d, err := dataplane.New(dataplane.Config{TUN: tuntest.New(1, 1), Underlay: ua, SAD: sadb, SPD: spdb,
		OnAcquire: func(spi uint32) {
			if spi != trapSPI {
				wrong.Add(1)
			}
			calls.Add(1)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })

	const n = 32
	pkts := make([][]byte, n)
	for i := range pkts {
		if i%4 == 3 {
			pkts[i] = udpPacket(hostA6, hostB6, uint64(i), 200)
		} else {
			pkts[i] = udpPacket(hostA4, hostB4, uint64(i), 200)
		}
	}
	b := dataplane.NewBatch(true, n)
	defer b.Release()
	seal := func() {
		b.FillOut(pkts)
		d.SealBatch(b)
	}
	seal()
	if sent, _ := b.Sent(); len(sent) != 0 {
		t.Fatalf("%d packets sent without an SA", len(sent))
	}
	s := d.Stats()
	if s.Drops[dataplane.DropAcquire] != 24 || s.Drops[dataplane.DropNoSA] != 8 {
		t.Fatalf("drops %v, want 24 acquire and 8 no_sa", s.Drops)
	}
	if calls.Load() != 1 || wrong.Load() != 0 {
		t.Fatalf("OnAcquire calls after one batch: %d (%d for another SPI), want 1", calls.Load(), wrong.Load())
	}
	if n := testing.AllocsPerRun(100, seal); n != 0 && !raceEnabled {
		t.Errorf("trap batch: %v allocs", n)
	}
	d.AdvanceClock(1)
	seal()
	if calls.Load() != 1 {
		t.Fatalf("OnAcquire calls one clock second later: %d, want still 1", calls.Load())
	}
	d.AdvanceClock(1)
	seal()
	if calls.Load() != 2 || wrong.Load() != 0 {
		t.Fatalf("OnAcquire calls two clock seconds later: %d (%d wrong), want 2", calls.Load(), wrong.Load())
	}
	if dataplane.DropAcquire.String() != "acquire" {
		t.Errorf("DropAcquire is %q", dataplane.DropAcquire)
	}

	// Inject takes the same path: a DropError naming DropAcquire, and the
	// rate limit holds.
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	err = d.Inject(pkts[0])
	var de *dataplane.DropError
	if !errors.As(err, &de) || de.Reason != dataplane.DropAcquire {
		t.Fatalf("Inject of trap traffic: %v, want a DropError for %v", err, dataplane.DropAcquire)
	}
	if calls.Load() != 2 {
		t.Errorf("OnAcquire calls after Inject within the limit: %d, want 2", calls.Load())
	}
}
