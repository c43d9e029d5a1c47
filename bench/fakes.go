package bench

import (
	"encoding/binary"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/dataplane"
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

// wireBatch is one Send's worth of packets on the wire.
type wireBatch struct {
	data [][]byte // each with capacity slotSize
	eps  []dataplane.Endpoint
	n    int
}

// wire carries the packets dataplane A sends to dataplane B through a fixed
// set of batches: no allocation in steady state, and backpressure (Send
// blocks) when B falls behind.
type wire struct {
	free, full chan *wireBatch
	batch      int
	done       chan struct{}
	once       sync.Once
	dropped    atomic.Uint64 // packets too large for a slot
}

// wireBatches is how many batches the wire holds.
const wireBatches = 8

// underlayBatch is the fake underlay's BatchSize: wireguard-go's
// conn.IdealBatchSize, dataplane's default on Linux.
const underlayBatch = 128

func newWire(batch, slotSize int) *wire {
	w := &wire{
		free:  make(chan *wireBatch, wireBatches),
		full:  make(chan *wireBatch, wireBatches),
		batch: batch,
		done:  make(chan struct{}),
	}
	for range wireBatches {
		wb := &wireBatch{data: make([][]byte, batch), eps: make([]dataplane.Endpoint, batch)}
		for i := range wb.data {
			wb.data[i] = make([]byte, 0, slotSize)
		}
		w.free <- wb
	}
	return w
}

func (w *wire) close() { w.once.Do(func() { close(w.done) }) }

// sender is dataplane A's underlay: Send puts packets on the wire; it
// receives nothing.
type sender struct{ w *wire }

var _ dataplane.Underlay = sender{}

func (s sender) Open() ([]dataplane.ReceiveFunc, error) {
	return []dataplane.ReceiveFunc{func([]*pkt.Buf, []dataplane.Endpoint) (int, error) {
		<-s.w.done
		return 0, net.ErrClosed
	}}, nil
}

func (s sender) Send(bufs []*pkt.Buf, eps []dataplane.Endpoint) error {
	w := s.w
	for len(bufs) > 0 {
		var wb *wireBatch
		select {
		case wb = <-w.free:
		case <-w.done:
			return net.ErrClosed
		}
		n := min(len(bufs), w.batch)
		k := 0
		for i, b := range bufs[:n] {
			p := b.Bytes()
			if len(p) > cap(wb.data[k]) {
				w.dropped.Add(1)
				continue
			}
			wb.data[k] = append(wb.data[k][:0], p...)
			wb.eps[k] = eps[i]
			k++
		}
		wb.n = k
		w.full <- wb // never blocks: wireBatches slots
		bufs, eps = bufs[n:], eps[n:]
	}
	return nil
}

func (s sender) SendKeepalive(dataplane.Endpoint) error { return nil }
func (s sender) BatchSize() int                         { return underlayBatch }
func (s sender) Close() error                           { s.w.close(); return nil }

// receiver is dataplane B's underlay: its one ReceiveFunc takes packets off
// the wire; Send discards.
type receiver struct {
	w   *wire
	cur *wireBatch
	pos int
	src dataplane.Endpoint
}

var _ dataplane.Underlay = (*receiver)(nil)

func (r *receiver) Open() ([]dataplane.ReceiveFunc, error) {
	return []dataplane.ReceiveFunc{r.receive}, nil
}

// receive is called from one goroutine only (ReceiveFunc contract).
func (r *receiver) receive(bufs []*pkt.Buf, eps []dataplane.Endpoint) (int, error) {
	w := r.w
	for r.cur == nil {
		select {
		case wb := <-w.full:
			if wb.n == 0 {
				w.free <- wb
				continue
			}
			r.cur, r.pos = wb, 0
		case <-w.done:
			return 0, net.ErrClosed
		}
	}
	wb := r.cur
	n := min(len(bufs), wb.n-r.pos)
	for i := range n {
		bufs[i].Reset()
		bufs[i].Set(wb.data[r.pos+i])
		eps[i] = r.src
	}
	r.pos += n
	if r.pos == wb.n {
		r.cur = nil
		w.free <- wb
	}
	return n, nil
}

func (r *receiver) Send([]*pkt.Buf, []dataplane.Endpoint) error { return nil }
func (r *receiver) SendKeepalive(dataplane.Endpoint) error      { return nil }
func (r *receiver) BatchSize() int                              { return underlayBatch }
func (r *receiver) Close() error                                { r.w.close(); return nil }

// genTUN is dataplane A's TUN: each Read returns perRead packets, copies of
// pkts (cycled), once start is closed, while left (when limited) lasts.
type genTUN struct {
	pkts    [][]byte
	perRead int
	next    int // Read is called from one goroutine
	limited bool
	left    atomic.Int64 // packets left to produce when limited
	start   chan struct{}
	closed  chan struct{}
	once    sync.Once
}

var _ tun.Device = (*genTUN)(nil)

func newGenTUN(pkts [][]byte, perRead int) *genTUN {
	return &genTUN{pkts: pkts, perRead: perRead, start: make(chan struct{}), closed: make(chan struct{})}
}

func (t *genTUN) File() *os.File { return nil }

func (t *genTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-t.start:
	case <-t.closed:
		return 0, os.ErrClosed
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
	return n, nil
}

func (t *genTUN) Write(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }
func (t *genTUN) MTU() (int, error)                            { return 1500, nil }
func (t *genTUN) Name() (string, error)                        { return "bench-gen", nil }
func (t *genTUN) Events() <-chan tun.Event                     { return nil }
func (t *genTUN) BatchSize() int                               { return t.perRead }
func (t *genTUN) Close() error                                 { t.once.Do(func() { close(t.closed) }); return nil }

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
		p := b[offset:]
		if len(p) < 20 || p[0]>>4 != 4 || int(binary.BigEndian.Uint16(p[2:4])) != len(p) {
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
