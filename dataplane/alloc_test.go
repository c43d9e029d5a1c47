package dataplane_test

import (
	"fmt"
	"testing"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/esp"
)

// stagePair builds two dataplanes that are not started: the tests drive
// their worker stages directly (no goroutines).
func stagePair(t testing.TB, o pairOpts) (a, b *gateway) {
	t.Helper()
	if o.alg == 0 {
		o.alg = esp.AES128GCM16
	}
	ua, ub := underlaytest.NewPair(epA, epB)
	a = &gateway{tun: tuntest.New(1, 1), ul: ua}
	b = &gateway{tun: tuntest.New(1, 1), ul: ub}
	a.sad, a.spd = newDBs(t, o, spiAB4, spiAB6, spiBA4, spiBA6, gwA4, gwA6, gwB4, gwB6, siteA4, siteA6, siteB4, siteB6)
	b.sad, b.spd = newDBs(t, o, spiBA4, spiBA6, spiAB4, spiAB6, gwB4, gwB6, gwA4, gwA6, siteB4, siteB6, siteA4, siteA6)
	var err error
	a.d, err = dataplane.New(dataplane.Config{TUN: a.tun, Underlay: ua, SAD: a.sad, SPD: a.spd,
		Peers: []dataplane.PeerConfig{{Name: "B", Endpoint: epB, OutSPIs: []uint32{spiAB4, spiAB6}, InSPIs: []uint32{spiBA4, spiBA6}}}})
	if err != nil {
		t.Fatal(err)
	}
	b.d, err = dataplane.New(dataplane.Config{TUN: b.tun, Underlay: ub, SAD: b.sad, SPD: b.spd,
		Peers: []dataplane.PeerConfig{{Name: "A", Endpoint: epA, OutSPIs: []uint32{spiBA4, spiBA6}, InSPIs: []uint32{spiAB4, spiAB6}, Roaming: true}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.d.Close(); b.d.Close() })
	// As Start would: B counts the ESP it opens against its inbound
	// policies.
	a.d.RefreshInPolicies()
	b.d.RefreshInPolicies()
	return a, b
}

// wire carries a sealed batch into an inbound batch, as the underlay would.
type wire struct{ pkts [][]byte }

func (w *wire) carry(out, in *dataplane.Batch) {
	bufs, _ := out.Sent()
	w.pkts = w.pkts[:0]
	for _, b := range bufs {
		w.pkts = append(w.pkts, b.Bytes())
	}
	in.FillIn(w.pkts, epA)
}

func TestStagesAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	for _, batch := range []int{1, 32} {
		t.Run(fmt.Sprint("batch", batch), func(t *testing.T) {
			a, b := stagePair(t, pairOpts{})
			pkts := make([][]byte, batch)
			for i := range pkts {
				if i%2 == 0 {
					pkts[i] = udpPacket(hostA4, hostB4, uint64(i), 1400)
				} else {
					pkts[i] = udpPacket(hostA6, hostB6, uint64(i), 1400)
				}
			}
			out := dataplane.NewBatch(true, batch)
			in := dataplane.NewBatch(false, batch)
			defer out.Release()
			defer in.Release()
			w := &wire{pkts: make([][]byte, 0, batch)}
			round := func() {
				out.FillOut(pkts)
				a.d.SealBatch(out)
				w.carry(out, in)
				b.d.OpenBatch(in)
			}
			round() // warm up the pools
			if got := len(in.Delivered()); got != batch {
				t.Fatalf("delivered %d of %d; B stats %+v", got, batch, b.d.Stats())
			}
			for i, p := range in.Delivered() {
				if string(p[dataplane.TUNWriteOffset:]) != string(pkts[i]) {
					t.Fatalf("packet %d differs", i)
				}
			}
			if n := testing.AllocsPerRun(200, func() {
				out.FillOut(pkts)
				a.d.SealBatch(out)
			}); n != 0 {
				t.Errorf("outbound stage: %v allocs per batch", n)
			}
			if n := testing.AllocsPerRun(200, round); n != 0 {
				t.Errorf("outbound+inbound stages: %v allocs per batch", n)
			}
			if s := b.d.Stats(); s.Dropped() != 0 {
				t.Errorf("drops %v", s.Drops)
			}
		})
	}
}
