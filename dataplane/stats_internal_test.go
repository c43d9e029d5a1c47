package dataplane

import (
	"sync"
	"testing"
	"unsafe"
)

// TestCountersLayout: the outbound and the inbound counters, added to
// concurrently by the two directions, do not share a cache line.
func TestCountersLayout(t *testing.T) {
	var c counters
	const line = 64
	out := []unsafe.Pointer{unsafe.Pointer(&c.outPackets), unsafe.Pointer(&c.outBytes), unsafe.Pointer(&c.sentPackets), unsafe.Pointer(&c.sentBytes)}
	in := []unsafe.Pointer{unsafe.Pointer(&c.inPackets), unsafe.Pointer(&c.inBytes), unsafe.Pointer(&c.deliveredPackets), unsafe.Pointer(&c.deliveredBytes)}
	for _, o := range out {
		for _, i := range in {
			// Fields a line apart or more never share one.
			if d := int(uintptr(i)) - int(uintptr(o)); d < line && d > -line {
				t.Errorf("outbound and inbound counters %d bytes apart", d)
			}
		}
	}
}

// BenchmarkCountersBothWays adds a batch's counters of both directions on
// two goroutines at once, as the outbound and the inbound path of one
// Dataplane do under bidirectional traffic (run with -cpu 2 or more).
func BenchmarkCountersBothWays(b *testing.B) {
	var c counters
	var wg sync.WaitGroup
	n := b.N
	wg.Go(func() {
		for range n {
			c.outPackets.Add(1)
			c.outBytes.Add(1400)
			c.sentPackets.Add(1)
			c.sentBytes.Add(1400)
		}
	})
	wg.Go(func() {
		for range n {
			c.inPackets.Add(1)
			c.inBytes.Add(1400)
			c.deliveredPackets.Add(1)
			c.deliveredBytes.Add(1400)
		}
	})
	wg.Wait()
}
