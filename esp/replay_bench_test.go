package esp

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// BenchmarkReplayCheckAccept measures one packet's replay work in Open:
// Check before the ICV and Accept after it.
//
//   - inorder: seq 1, 2, 3, ...
//   - reorder: each run of 64 seqs arrives shuffled (multi-queue NICs and
//     parallel workers reorder within a batch)
//   - parallel: GOMAXPROCS workers share one SA and take seqs from a
//     common counter, as parallel decryption workers do
func BenchmarkReplayCheckAccept(b *testing.B) {
	const runLen = 64
	rng := rand.New(rand.NewPCG(1, 2))
	var perm [4096]uint64 // shuffled runs of runLen
	for i := 0; i < len(perm); i += runLen {
		for j, p := range rng.Perm(runLen) {
			perm[i+j] = uint64(i + p)
		}
	}
	for _, esn := range []bool{false, true} {
		for _, w := range []int{64, DefaultReplayWindow, MaxReplayWindow} {
			b.Run(fmt.Sprintf("inorder/esn=%v/w=%d", esn, w), func(b *testing.B) {
				r := newReplay(b, w, esn)
				b.ReportAllocs()
				var seq uint64
				for b.Loop() {
					seq++
					if s, ok := r.Check(uint32(seq)); ok {
						r.Accept(s)
					}
				}
			})
			b.Run(fmt.Sprintf("reorder/esn=%v/w=%d", esn, w), func(b *testing.B) {
				r := newReplay(b, w, esn)
				b.ReportAllocs()
				var i, base uint64
				for b.Loop() {
					seq := base + perm[i%uint64(len(perm))] + 1
					if i++; i%uint64(len(perm)) == 0 {
						base += uint64(len(perm))
					}
					if s, ok := r.Check(uint32(seq)); ok {
						r.Accept(s)
					}
				}
			})
			b.Run(fmt.Sprintf("parallel/esn=%v/w=%d", esn, w), func(b *testing.B) {
				r := newReplay(b, w, esn)
				var next atomic.Uint64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						seq := next.Add(1)
						if s, ok := r.Check(uint32(seq)); ok {
							r.Accept(s)
						}
					}
				})
			})
		}
	}
}
