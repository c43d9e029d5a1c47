package sad

import (
	"testing"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/pkt"
)

// BenchmarkSealParallel seals 1400-byte packets with one SA from every
// core at once: the cost of sharing the SA's counters and in-flight guard
// (sad) next to the bare esp transform, whose sequence counter is shared
// too (esp).
func BenchmarkSealParallel(b *testing.B) {
	db := New(Options{})
	out, _ := pair(b, db, 0x79, esp.Tunnel, anySel, anySel)
	inner := ip6(cn, hoa, udp(1, 2, 1400-48))
	for _, tc := range []struct {
		name string
		seal func(*pkt.Buf) esp.Verdict
	}{{"sad", out.Seal}, {"esp", out.out.Seal}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(1400)
			b.RunParallel(func(pb *testing.PB) {
				buf := new(pkt.Buf)
				for pb.Next() {
					buf.Reset()
					buf.Set(inner)
					if tc.seal(buf) != esp.OK {
						b.Error("seal")
						return
					}
				}
			})
		})
	}
}
