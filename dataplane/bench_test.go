package dataplane_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/esp"
)

// BenchmarkPipeline measures the worker stages in process on one core, per
// algorithm, inner packet size and batch:
//
//   - out: a TUN read's copy into the batch, SPD lookup, seal, outer header
//     off, endpoint (what Underlay.Send gets);
//   - in: an underlay read's copy into the batch, SA lookup, open (anti-replay
//     off so the same packets can be opened again), roaming check, the
//     slices for TUN.Write;
//   - roundtrip: out on A, then in on B with anti-replay on.
//
// b.SetBytes counts inner bytes; pkts/s is per core.
func BenchmarkPipeline(b *testing.B) {
	for _, alg := range []esp.Algorithm{esp.AES128GCM16, esp.ChaCha20Poly1305} {
		for _, size := range []int{64, 512, 1400} {
			for _, batch := range []int{1, 32, 128} {
				name := fmt.Sprintf("%v/%d/batch%d", alg, size, batch)
				pkts := make([][]byte, batch)
				for i := range pkts {
					pkts[i] = udpPacket(hostA4, hostB4, uint64(i), size)
				}
				b.Run("out/"+name, func(b *testing.B) {
					a, _ := stagePair(b, pairOpts{alg: alg})
					out := dataplane.NewBatch(true, batch)
					defer out.Release()
					b.ReportAllocs()
					b.SetBytes(int64(size * batch))
					for b.Loop() {
						out.FillOut(pkts)
						a.d.SealBatch(out)
					}
					reportPPS(b, batch)
				})
				b.Run("in/"+name, func(b *testing.B) {
					a, bb := stagePair(b, pairOpts{alg: alg, noReplay: true})
					out := dataplane.NewBatch(true, batch)
					in := dataplane.NewBatch(false, batch)
					defer out.Release()
					defer in.Release()
					out.FillOut(pkts)
					a.d.SealBatch(out)
					bufs, _ := out.Sent()
					sealed := make([][]byte, len(bufs))
					for i, buf := range bufs {
						sealed[i] = bytes.Clone(buf.Bytes())
					}
					b.ReportAllocs()
					b.SetBytes(int64(size * batch))
					for b.Loop() {
						in.FillIn(sealed, epA)
						bb.d.OpenBatch(in)
					}
					if got := len(in.Delivered()); got != batch {
						b.Fatalf("delivered %d of %d", got, batch)
					}
					reportPPS(b, batch)
				})
				b.Run("roundtrip/"+name, func(b *testing.B) {
					a, bb := stagePair(b, pairOpts{alg: alg})
					out := dataplane.NewBatch(true, batch)
					in := dataplane.NewBatch(false, batch)
					defer out.Release()
					defer in.Release()
					w := &wire{pkts: make([][]byte, 0, batch)}
					b.ReportAllocs()
					b.SetBytes(int64(size * batch))
					for b.Loop() {
						out.FillOut(pkts)
						a.d.SealBatch(out)
						w.carry(out, in)
						bb.d.OpenBatch(in)
					}
					if s := bb.d.Stats(); s.Dropped() != 0 {
						b.Fatalf("drops %v", s.Drops)
					}
					reportPPS(b, batch)
				})
			}
		}
	}
}

func reportPPS(b *testing.B, batch int) {
	if el := b.Elapsed(); el > 0 {
		pps := float64(b.N) * float64(batch) / el.Seconds()
		b.ReportMetric(pps, "pkts/s")
	}
}
