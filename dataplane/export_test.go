package dataplane

import (
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
)

// Batch exposes the worker stage to the external tests (allocation tests,
// benchmarks, fuzzing) without goroutines.
type Batch = batch

// NewBatch returns a batch for the outbound (out) or inbound stage.
func NewBatch(out bool, size int) *Batch {
	if out {
		return newBatch(dirOut, size)
	}
	return newBatch(dirIn, size)
}

// Release returns the batch's buffers to the pool.
func (b *Batch) Release() { b.release() }

// FillOut loads pkts as a TUN read would.
func (b *Batch) FillOut(pkts [][]byte) {
	for i, p := range pkts {
		b.sizes[i] = copy(b.bufs[i].B[pkt.Headroom:tunReadLimit], p)
	}
	b.n = len(pkts)
}

// FillIn loads ESP packets as a ReceiveFunc would.
func (b *Batch) FillIn(pkts [][]byte, src endpoint.Endpoint) {
	for i, p := range pkts {
		b.bufs[i].Reset()
		b.bufs[i].Set(p)
		b.eps[i] = src
	}
	b.n = len(pkts)
}

// Sent returns what the outbound stage would hand to Underlay.Send.
func (b *Batch) Sent() ([]*pkt.Buf, []endpoint.Endpoint) { return b.send[:b.k], b.eps[:b.k] }

// Delivered returns what the inbound stage would write to the TUN, each
// slice from TUNWriteOffset on.
func (b *Batch) Delivered() [][]byte { return b.raw[:b.k] }

// TUNWriteOffset is the offset the inbound writer passes to TUN.Write.
const TUNWriteOffset = tunWriteOffset

// SealBatch runs the outbound worker stage on b.
func (d *Dataplane) SealBatch(b *Batch) { d.sealBatch(b) }

// OpenBatch runs the inbound worker stage on b.
func (d *Dataplane) OpenBatch(b *Batch) { d.openBatch(b) }

// EmptyDropSamples empties the drop sample slots, as the control goroutine
// does when it logs them (the allocation tests take the sampling path each
// run).
func (d *Dataplane) EmptyDropSamples() {
	for k := range d.slots {
		d.slots[k].state.Store(slotEmpty)
	}
}

// RefreshInPolicies reads the inbound policies as Start (and the control
// goroutine) does, for the stage tests that do not start the Dataplane.
func (d *Dataplane) RefreshInPolicies() { d.refreshInPolicies() }

// AdvanceClock moves the coarse clock on by sec seconds, as the control
// goroutine does once a second.
func (d *Dataplane) AdvanceClock(sec int64) { d.clock.Add(sec) }
