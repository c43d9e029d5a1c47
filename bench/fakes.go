package bench

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// The in-process pipeline: two dataplanes back to back.
//
//	genTUN ─Read─> dataplane A (SPD, seal) ─Send─> wire ─receive─> dataplane B
//	(open, replay, selector check) ─Write─> sinkTUN
//
// genTUN copies prepared packets into the dataplane's buffers as a TUN read
// would (one copy); the wire copies each sealed packet once on Send (the
// kernel's copy into a socket buffer) and once on receive (the copy out of
// it); sinkTUN counts what B delivers and checks each packet's length.

// wire carries the packets dataplane A sends to dataplane B, as a UDP
// socket's buffer does: a fixed ring of packet slots (no allocation in
// steady state). Send copies its packets in (the kernel's copy into the
// socket buffer) under one lock per call, not per packet, and blocks while
// the ring is full (backpressure when B falls behind); receive copies out
// whatever is queued, up to the caller's batch, as one recvmmsg does. A
// wake-up costs something only when the other side is actually waiting
// (sync.Cond.Signal without waiters is one atomic load), so the wire adds
// no channel operation, and no goroutine switch, per packet.
type wire struct {
	mu sync.Mutex
	// canRecv is signalled when packets were queued, canSend when slots
	// were freed or the wire closed.
	canRecv, canSend sync.Cond
	slots            [][]byte // the ring, each with capacity slotSize
	eps              []endpoint.Endpoint
	head, n          int  // the queued packets are slots[head:head+n] (mod len)
	closed           bool // under mu
	done             chan struct{}
	once             sync.Once
	dropped          atomic.Uint64 // packets too large for a slot
}

// wireSlots is how many packets the wire holds: 8 full batches, less than
// the 7 MiB socket buffers of dataplane's Linux underlay.
const wireSlots = 8 * underlayBatch

// underlayBatch is the fake underlay's BatchSize: wireguard-go's
// conn.IdealBatchSize, dataplane's default on Linux.
const underlayBatch = 128

func newWire(slots, slotSize int) *wire {
	w := &wire{
		slots: make([][]byte, slots),
		eps:   make([]endpoint.Endpoint, slots),
		done:  make(chan struct{}),
	}
	w.canRecv.L, w.canSend.L = &w.mu, &w.mu
	for i := range w.slots {
		w.slots[i] = make([]byte, 0, slotSize)
	}
	return w
}

func (w *wire) close() {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.canRecv.Broadcast()
		w.canSend.Broadcast()
		close(w.done)
	})
}

// send copies bufs into the ring, waiting for room while it is full. It
// fails with net.ErrClosed once the wire is closed.
func (w *wire) send(bufs []*pkt.Buf, eps []endpoint.Endpoint) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(bufs) > 0 {
		for w.n == len(w.slots) && !w.closed {
			w.canSend.Wait()
		}
		if w.closed {
			return net.ErrClosed
		}
		queued := w.n
		for len(bufs) > 0 && w.n < len(w.slots) {
			p := bufs[0].Bytes()
			if i := (w.head + w.n) % len(w.slots); len(p) <= cap(w.slots[i]) {
				w.slots[i] = append(w.slots[i][:0], p...)
				w.eps[i] = eps[0]
				w.n++
			} else {
				w.dropped.Add(1)
			}
			bufs, eps = bufs[1:], eps[1:]
		}
		if w.n > queued {
			w.canRecv.Signal() // one receiver
		}
	}
	return nil
}

// receive fills bufs with up to len(bufs) queued packets from src, waiting
// while none is queued. Only one goroutine calls it (ReceiveFunc
// contract): the slots it copies out of stay put until it frees them, so it
// copies without holding the lock.
func (w *wire) receive(bufs []*pkt.Buf, eps []endpoint.Endpoint, src endpoint.Endpoint) (int, error) {
	w.mu.Lock()
	for w.n == 0 && !w.closed {
		w.canRecv.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		return 0, net.ErrClosed
	}
	head, n := w.head, min(w.n, len(bufs))
	w.mu.Unlock()
	for i := range n {
		bufs[i].Reset()
		bufs[i].Set(w.slots[(head+i)%len(w.slots)])
		eps[i] = src
	}
	w.mu.Lock()
	full := w.n == len(w.slots)
	w.head = (head + n) % len(w.slots)
	w.n -= n
	w.mu.Unlock()
	if full {
		w.canSend.Broadcast() // senders may be several
	}
	return n, nil
}

// sender is dataplane A's underlay: Send puts packets on the wire; it
// receives nothing.
type sender struct{ w *wire }

var _ dataplane.Underlay = sender{}

func (s sender) Open() ([]dataplane.ReceiveFunc, error) {
	return []dataplane.ReceiveFunc{func([]*pkt.Buf, []endpoint.Endpoint) (int, error) {
		<-s.w.done
		return 0, net.ErrClosed
	}}, nil
}

func (s sender) Send(bufs []*pkt.Buf, eps []endpoint.Endpoint) error { return s.w.send(bufs, eps) }
func (s sender) SendKeepalive(endpoint.Endpoint) error               { return nil }
func (s sender) BatchSize() int                                      { return underlayBatch }
func (s sender) Close() error                                        { s.w.close(); return nil }

// receiver is dataplane B's underlay: its one ReceiveFunc takes packets off
// the wire; Send discards.
type receiver struct {
	w   *wire
	src endpoint.Endpoint
}

var _ dataplane.Underlay = (*receiver)(nil)

func (r *receiver) Open() ([]dataplane.ReceiveFunc, error) {
	return []dataplane.ReceiveFunc{func(bufs []*pkt.Buf, eps []endpoint.Endpoint) (int, error) {
		return r.w.receive(bufs, eps, r.src)
	}}, nil
}

func (r *receiver) Send([]*pkt.Buf, []endpoint.Endpoint) error { return nil }
func (r *receiver) SendKeepalive(endpoint.Endpoint) error      { return nil }
func (r *receiver) BatchSize() int                             { return underlayBatch }
func (r *receiver) Close() error                               { r.w.close(); return nil }

// genTUN is dataplane A's TUN: each Read returns perRead packets, copies of
// pkts (cycled), once begin was called, while left (when limited) lasts.
type genTUN struct {
	pkts    [][]byte
	perRead int
	next    int // Read is called from one goroutine
	limited bool
	left    atomic.Int64 // packets left to produce when limited
	// state is genIdle, genRunning, genPaused or genClosed: Read checks
	// it with one atomic load and waits only before begin or while paused.
	state     atomic.Int32
	start     chan struct{} // closed by begin
	closed    chan struct{} // closed by Close
	startOnce sync.Once
	once      sync.Once
	// produced counts the packets Read returned (Read's own); while
	// paused, Read publishes it as parked-1 and waits for resumed.
	produced uint64
	parked   atomic.Uint64
	pauseMu  sync.Mutex
	resumed  chan struct{} // closed by resume; under pauseMu
}

const (
	genIdle int32 = iota
	genRunning
	genPaused
	genClosed
)

var _ tun.Device = (*genTUN)(nil)

func newGenTUN(pkts [][]byte, perRead int) *genTUN {
	return &genTUN{pkts: pkts, perRead: perRead, start: make(chan struct{}), closed: make(chan struct{})}
}

// begin lets Read produce packets.
func (t *genTUN) begin() {
	t.startOnce.Do(func() {
		t.state.CompareAndSwap(genIdle, genRunning)
		close(t.start)
	})
}

// pause stops Read producing (its next call blocks until resume); parked
// reports when it blocks and how many packets it produced before.
func (t *genTUN) pause() {
	t.pauseMu.Lock()
	defer t.pauseMu.Unlock()
	if t.state.CompareAndSwap(genRunning, genPaused) {
		t.parked.Store(0)
		t.resumed = make(chan struct{})
	}
}

// resume lets a paused Read go on.
func (t *genTUN) resume() {
	t.pauseMu.Lock()
	defer t.pauseMu.Unlock()
	if t.state.CompareAndSwap(genPaused, genRunning) {
		close(t.resumed)
	}
}

// waitParked waits until Read, paused, blocks and returns the packets it
// produced until then; false when the context ends or the TUN closes.
func (t *genTUN) waitParked(ctx context.Context) (uint64, bool) {
	for {
		if n := t.parked.Load(); n != 0 {
			return n - 1, true
		}
		if t.state.Load() == genClosed || sleepCtx(ctx, 100*time.Microsecond) != nil {
			return 0, false
		}
	}
}

func (t *genTUN) File() *os.File { return nil }

func (t *genTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for s := t.state.Load(); s != genRunning; s = t.state.Load() {
		switch s {
		case genClosed:
			return 0, os.ErrClosed
		case genIdle:
			select {
			case <-t.start:
			case <-t.closed:
				return 0, os.ErrClosed
			}
		case genPaused:
			t.pauseMu.Lock()
			ch := t.resumed
			t.pauseMu.Unlock()
			if t.state.Load() != genPaused {
				continue // resumed meanwhile: ch may be an old one
			}
			t.parked.Store(t.produced + 1)
			select {
			case <-ch:
			case <-t.closed:
				return 0, os.ErrClosed
			}
		}
	}
	n := min(len(bufs), t.perRead)
	if t.limited && t.left.Add(-int64(n)) < 0 {
		// Nothing left: block like an idle TUN.
		<-t.closed
		return 0, os.ErrClosed
	}
	for i := range n {
		sizes[i] = copy(bufs[i][offset:], t.pkts[t.next])
		if t.next++; t.next == len(t.pkts) {
			t.next = 0
		}
	}
	t.produced += uint64(n)
	return n, nil
}

func (t *genTUN) Write(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }
func (t *genTUN) MTU() (int, error)                            { return 1500, nil }
func (t *genTUN) Name() (string, error)                        { return "bench-gen", nil }
func (t *genTUN) Events() <-chan tun.Event                     { return nil }
func (t *genTUN) BatchSize() int                               { return t.perRead }
func (t *genTUN) Close() error {
	t.once.Do(func() {
		t.state.Store(genClosed)
		close(t.closed)
	})
	return nil
}

// sinkTUN is dataplane B's TUN: Write counts the packets and bytes and checks
// that each is an IPv4 packet whose total length matches what arrived.
type sinkTUN struct {
	packets, bytes, bad atomic.Uint64
	target              uint64 // closes reached when packets >= target (0: never)
	reached             chan struct{}
	rOnce               sync.Once
	closed              chan struct{}
	once                sync.Once
}

var _ tun.Device = (*sinkTUN)(nil)

func newSinkTUN(target uint64) *sinkTUN {
	return &sinkTUN{target: target, reached: make(chan struct{}), closed: make(chan struct{})}
}

func (t *sinkTUN) File() *os.File { return nil }

func (t *sinkTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	<-t.closed
	return 0, os.ErrClosed
}

func (t *sinkTUN) Write(bufs [][]byte, offset int) (int, error) {
	var bytes, bad uint64
	for _, b := range bufs {
		p := header.IPv4(b[offset:])
		if !p.IsValid() || p.TotalLen() != len(p) {
			bad++
		}
		bytes += uint64(len(p))
	}
	if bad != 0 {
		t.bad.Add(bad)
	}
	t.bytes.Add(bytes)
	if n := t.packets.Add(uint64(len(bufs))); t.target != 0 && n >= t.target {
		t.rOnce.Do(func() { close(t.reached) })
	}
	return len(bufs), nil
}

func (t *sinkTUN) MTU() (int, error)        { return 1500, nil }
func (t *sinkTUN) Name() (string, error)    { return "bench-sink", nil }
func (t *sinkTUN) Events() <-chan tun.Event { return nil }
func (t *sinkTUN) BatchSize() int           { return 1 }
func (t *sinkTUN) Close() error             { t.once.Do(func() { close(t.closed) }); return nil }
