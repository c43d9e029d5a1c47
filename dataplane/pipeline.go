package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

type direction uint8

const (
	dirOut direction = iota // TUN -> seal -> underlay
	dirIn                   // underlay -> open -> TUN
)

// batch is the unit of work: the packets of one TUN read or one ReceiveFunc
// call. Its slices are allocated once and reused; bufs[i] are owned by the
// batch for its whole life.
type batch struct {
	mu  sync.Mutex // held from queueing until a worker is done with it
	dir direction
	n   int // packets read into bufs

	bufs  []*pkt.Buf
	raw   [][]byte            // out: TUN read slices; in: TUN write slices (compacted)
	sizes []int               // out: TUN read sizes
	eps   []endpoint.Endpoint // in: sources; out: destinations (compacted)
	send  []*pkt.Buf          // out: packets to send (compacted)
	k     int                 // compacted count (send/eps out, raw in)
	bytes uint64              // bytes of the k packets
	// dirty is how many of bufs (from the first) may have been moved off
	// their reset state since the batch last reset them (in: before each
	// ReceiveFunc call). Resetting only those spares touching all the
	// slots when the underlay returns few packets per call.
	dirty int
	// spd is the outbound SPD lookup cache of whichever goroutine holds
	// the batch (spd.Cache): it outlives the batch's packets, so a flow's
	// next read is answered without a search also when reads carry one
	// packet each.
	spd spd.Cache
	// The packets of the batch's SA runs, in order (sealBatch, openBatch):
	// the Bufs and their verdicts; in: also their index in bufs, ESP offset
	// and sequence number, and Next Header.
	run    []*pkt.Buf
	runIdx []int
	runOff []int
	runSeq []uint32
	runNH  []uint8
	runV   []esp.Verdict
	// Batches handed to the workers are processed out of read order; the
	// steps that must follow it go through the path's turnstile (seqTurn):
	// ordered says this batch takes part, ticket is its place, turn the
	// turnstile. Out: runs are the SA runs of b.run it reserves for.
	ordered bool
	ticket  uint64
	turn    *seqTurn
	runs    []sealRunInfo
	// In: the runs of one SA's packets in b.run, and the packets' state
	// between the three open steps (openRuns).
	oruns  []openRunInfo
	opened []esp.Opened
	// in is the inbound policy hit cache of whichever goroutine holds the
	// batch (inpolicy.go), kept across reads as spd is.
	in inCache
}

// seqTurn is a path's turnstile: the workers take the one step of a batch
// that must follow the read order in that order, one batch at a time,
// while the rest of the batches' work runs in parallel. Outbound it is the
// sequence number reservation (sad.SA.ReserveSeq), so that each SA's
// packets leave with increasing numbers although batches are sealed
// concurrently: a receiver's anti-replay window (RFC 4303 §3.4.3; 32
// packets by default in Linux and strongSwan) sees them in order
// (wireguard-go hands out its nonces before the parallel encryption too).
// Inbound it is the replay window update (sad.SA.OpenAccept), so that
// batches opened concurrently never push each other's packets out of a
// small window (wireguard-go checks its replay filter in its sequential
// receiver).
type seqTurn struct {
	mu   sync.Mutex
	cond sync.Cond
	next uint64 // the ticket whose turn it is
}

// wait blocks until it is ticket t's turn; done passes the turn on.
func (q *seqTurn) wait(t uint64) {
	q.mu.Lock()
	for q.next != t {
		q.cond.Wait()
	}
	q.mu.Unlock()
}

func (q *seqTurn) done() {
	q.mu.Lock()
	q.next++
	q.mu.Unlock()
	q.cond.Broadcast()
}

// sealRunInfo is one run of sealBatch: b.run[start:start+n] go to sa
// (policy SPI spi) with the sequence numbers blk.
type sealRunInfo struct {
	sa       *sad.SA
	spi      uint32
	start, n int
	blk      esp.SeqBlock
}

// path is one reader-writer pair with its batches.
type path struct {
	free  chan *batch
	order chan *batch
	// pending counts the batches queued (to the workers and the writer)
	// and not yet written. Only the reader adds to it, so when it reads
	// 0 nothing of the path is in flight and the reader may process and
	// write a batch itself without breaking the read order.
	pending atomic.Int64
	// turn orders the order-sensitive step of the batches queued to the
	// workers (seqTurn); tickets (the reader's) is the next ticket to give
	// out.
	turn    seqTurn
	tickets uint64
}

func newBatch(dir direction, size int) *batch {
	b := &batch{
		dir:   dir,
		bufs:  make([]*pkt.Buf, size),
		raw:   make([][]byte, size),
		sizes: make([]int, size),
		eps:   make([]endpoint.Endpoint, size),
		send:  make([]*pkt.Buf, size),
	}
	b.run = make([]*pkt.Buf, size)
	b.runV = make([]esp.Verdict, size)
	if dir == dirOut {
		b.runs = make([]sealRunInfo, size)
	}
	if dir == dirIn {
		b.runIdx = make([]int, size)
		b.runOff = make([]int, size)
		b.runSeq = make([]uint32, size)
		b.runNH = make([]uint8, size)
		b.oruns = make([]openRunInfo, size)
		b.opened = make([]esp.Opened, size)
	}
	for i := range b.bufs {
		b.bufs[i] = pkt.Get()
	}
	return b
}

// release returns the buffers to the pool (Close only).
func (b *batch) release() {
	for i, buf := range b.bufs {
		pkt.Put(buf)
		b.bufs[i] = nil
	}
	clear(b.send)
	clear(b.raw)
}

// written drops the batch's references to what it wrote, so that it can
// take the next read.
func (b *batch) written() {
	if b.dir == dirOut {
		clear(b.send[:b.k])
	} else {
		clear(b.raw[:b.k])
	}
	b.k = 0
}

func (d *Dataplane) newPath(dir direction, size int) *path {
	n := max(2, min(2*d.workers, maxInFlight/size))
	p := &path{free: make(chan *batch, n), order: make(chan *batch, n)}
	p.turn.cond.L = &p.turn.mu
	for range n {
		b := newBatch(dir, size)
		b.turn = &p.turn
		d.allBatch = append(d.allBatch, b)
		p.free <- b
	}
	return p
}

// inlineMax is the largest batch a reader processes itself, when nothing of
// its path is in flight, rather than hand it to the workers: for a few
// packets the goroutine hand-offs (reader, worker, writer) cost more than
// the crypto; a larger batch is worth running beside the next read.
const inlineMax = 8

// inline reports whether the reader of p processes a batch of n packets
// itself (process, then write): only when no batch of p is in flight, so
// the read order holds; then always on one core or with one worker (there
// is nothing to run in parallel), else for small batches.
func (d *Dataplane) inline(p *path, n int) bool {
	return p.pending.Load() == 0 && (d.solo || n <= inlineMax)
}

// process runs the worker stage of b.
func (d *Dataplane) process(b *batch) {
	if b.dir == dirOut {
		d.sealBatch(b)
	} else {
		d.openBatch(b)
	}
}

// queue hands a filled batch to the workers and, in read order, to the
// path's writer.
func (d *Dataplane) queue(p *path, b *batch) {
	b.ordered, b.ticket = true, p.tickets
	p.tickets++
	p.pending.Add(1)
	b.mu.Lock()
	p.order <- b
	d.work <- b
}

func (d *Dataplane) worker() {
	for b := range d.work {
		d.process(b)
		b.mu.Unlock()
	}
}

// readTUN is the outbound reader.
func (d *Dataplane) readTUN(p *path) {
	d.readLoop(p, "TUN", DropTUNRead, func(b *batch) (int, error) {
		for i, buf := range b.bufs {
			b.raw[i] = buf.B[:tunReadLimit]
			b.sizes[i] = 0
		}
		n, err := d.tun.Read(b.raw, b.sizes, pkt.Headroom)
		if err == tun.ErrTooManySegments {
			// wireguard-go: "should not cause reads to cease".
			d.c.drops[DropTUNRead].Add(1)
			err = nil
		}
		return n, err
	})
}

// readLoop is the reader side of a path: it takes free batches, fills
// them with read and queues them in read order, or, when inline says so,
// processes and writes them itself and keeps the batch for the next read
// (no hand-off, no channel operation). what names the source in logs;
// reason counts read errors. A closed source ends the loop quietly; other
// errors are retried with a growing pause, and maxConsecutiveErrors of them
// in a row stop the reader.
func (d *Dataplane) readLoop(p *path, what string, reason DropReason, read func(*batch) (int, error)) {
	defer close(p.order)
	errs := 0
	var b *batch // owned by the reader
	for {
		if b == nil {
			select {
			case b = <-p.free:
			case <-d.done:
				return
			}
		} else if d.closed.Load() {
			return
		}
		n, err := read(b)
		if n > 0 {
			b.n = n
			if d.inline(p, n) {
				d.process(b)
				d.write(b)
				b.written()
			} else {
				d.queue(p, b)
				b = nil
			}
		}
		if err == nil {
			errs = 0
			continue
		}
		if d.closed.Load() || isClosedErr(err) {
			if !d.closed.Load() {
				d.log.Error(what+" closed under the dataplane", zap.Error(err))
			}
			return
		}
		d.c.drops[reason].Add(1)
		errs++
		if errs >= maxConsecutiveErrors {
			d.log.Error(what+" read failing, reader stopped", zap.Error(err))
			return
		}
		if ce := d.log.Check(zap.DebugLevel, what+" read"); ce != nil {
			ce.Write(zap.Error(err))
		}
		time.Sleep(time.Duration(errs) * 10 * time.Millisecond)
	}
}

// writer is the writer side of a path: it takes the queued batches in read
// order, waits for their worker and writes them.
func (d *Dataplane) writer(p *path) {
	for b := range p.order {
		b.mu.Lock()
		d.write(b)
		b.mu.Unlock()
		b.written()
		p.pending.Add(-1) // after the write: see path.pending
		p.free <- b
	}
}

// write writes the processed batch b: Underlay.Send (out) or TUN.Write
// (in).
func (d *Dataplane) write(b *batch) {
	if b.k == 0 {
		return
	}
	if d.closed.Load() {
		d.c.drops[DropClosing].Add(uint64(b.k))
		return
	}
	if b.dir == dirOut {
		d.sendBatch(b)
	} else {
		d.deliverBatch(b)
	}
}

// sendBatch is the outbound write.
func (d *Dataplane) sendBatch(b *batch) {
	if err := d.underlay.Send(b.send[:b.k], b.eps[:b.k]); err != nil {
		d.c.drops[DropUnderlaySend].Add(uint64(b.k))
		if ce := d.log.Check(zap.DebugLevel, "underlay send"); ce != nil {
			ce.Write(zap.Error(err))
		}
		return
	}
	d.c.sentPackets.Add(uint64(b.k))
	d.c.sentBytes.Add(b.bytes)
}

// receive is the inbound reader of one ReceiveFunc.
func (d *Dataplane) receive(fn ReceiveFunc, p *path) {
	d.readLoop(p, "underlay", DropUnderlayRecv, func(b *batch) (int, error) {
		return b.receiveFrom(fn)
	})
}

// receiveFrom fills b with one call of fn, handing it every buffer reset.
func (b *batch) receiveFrom(fn ReceiveFunc) (int, error) {
	for _, buf := range b.bufs[:b.dirty] {
		buf.Reset()
	}
	n, err := fn(b.bufs, b.eps)
	// The packet path touches only what fn returned (openBatch works on
	// b.bufs[:n]); after a failed call fn may have written anywhere.
	b.dirty = len(b.bufs)
	if err == nil && n > 0 {
		b.dirty = min(n, len(b.bufs))
	}
	return n, err
}

// deliverBatch is the inbound write.
func (d *Dataplane) deliverBatch(b *batch) {
	n, err := d.tun.Write(b.raw[:b.k], tunWriteOffset)
	if err != nil {
		n = max(0, min(n, b.k))
		d.c.drops[DropTUNWrite].Add(uint64(b.k - n))
		if ce := d.log.Check(zap.DebugLevel, "TUN write"); ce != nil {
			ce.Write(zap.Error(err))
		}
		if n > 0 {
			d.c.deliveredPackets.Add(uint64(n))
		}
		return
	}
	d.c.deliveredPackets.Add(uint64(b.k))
	d.c.deliveredBytes.Add(b.bytes)
}

// sealBatch processes an outbound batch: SPD (policy), seal, AfterSeal,
// outer header off, endpoint (finishSeal). It fills b.send/b.eps[:b.k] with
// the packets to send, in read order. The policy step runs first, for all
// packets, into runs of one SA; a batch the workers seal beside others of
// its path then reserves each run's sequence numbers in read order
// (b.turn); then each run is sealed together (sad.SA.SealBatchSeq: one SA
// guard and one counter update per run) and finished. Steady state: no
// allocation.
func (d *Dataplane) sealBatch(b *batch) {
	st := sealState{peers: d.peers.Load(), capture: d.currentCapture(), c: sealCache{spd: &b.spd}}
	var inBytes uint64
	nr, m := 0, 0
	for i := range b.n {
		buf := b.bufs[i]
		buf.SetBytes(pkt.Headroom, b.sizes[i])
		inBytes += uint64(buf.Len())
		if st.capture != nil {
			st.capture.Inner(buf.Bytes(), true)
		}
		sa, spi, r := d.policy(buf, &st.c)
		if r == noDrop && d.looped(buf.Bytes(), sa, spi, st.peers) {
			r = DropLoop
		}
		if r != noDrop {
			st.drops[r]++
			switch r {
			case DropPolicyDiscard:
				st.warn[kindDiscard]++
				d.sampleDiscard(buf)
			case DropLoop:
				st.warn[kindLoop]++
				d.sampleOut(kindLoop, buf)
			case DropAcquire:
				d.acquire(spi)
			}
			continue
		}
		if nr == 0 || b.runs[nr-1].sa != sa {
			b.runs[nr] = sealRunInfo{sa: sa, spi: spi, start: m}
			nr++
		}
		b.runs[nr-1].n++
		b.run[m] = buf
		m++
	}
	runs := b.runs[:nr]
	if b.ordered {
		b.turn.wait(b.ticket)
		for i := range runs {
			runs[i].blk = runs[i].sa.ReserveSeq(runs[i].n)
		}
		b.turn.done()
		b.ordered = false
	}
	for i := range runs {
		d.sealRun(b, &st, &runs[i])
	}
	clear(runs)
	b.k = st.k
	b.bytes = st.outBytes
	d.c.outPackets.Add(uint64(b.n))
	d.c.outBytes.Add(inBytes)
	if st.k != b.n { // each packet is sent or dropped
		d.addDrops(&st.drops, &st.warn)
	}
}

// sealState is what sealBatch's runs produce.
type sealState struct {
	peers   *peerTable
	capture Capture
	c       sealCache

	k        int // b.send[:k] and b.eps[:k] filled
	outBytes uint64
	drops    [NumDropReasons]uint32
	warn     [numDropKinds]uint32
}

// sealRun seals the run r with its SA, taking the sequence numbers from
// r.blk as long as it lasts (an empty block: the SA's next ones), and
// finishes each packet in order into b.send/b.eps.
func (d *Dataplane) sealRun(b *batch, st *sealState, r *sealRunInfo) {
	run, v := b.run[r.start:][:r.n], b.runV[:r.n]
	r.sa.SealBatchSeq(run, v, &r.blk)
	for j, buf := range run {
		if v[j] != esp.OK {
			st.drops[DropSeal]++
			continue
		}
		// ep points into b.eps so that the hook can rewrite it without a
		// heap copy.
		ep := &b.eps[st.k]
		if r := d.finishSeal(buf, r.sa, r.spi, st.peers, &st.c, ep); r != noDrop {
			st.drops[r]++
			continue
		}
		if st.capture != nil {
			st.capture.Outer(buf.Bytes(), *ep, true)
		}
		st.outBytes += uint64(buf.Len())
		b.send[st.k] = buf
		st.k++
	}
}

// noDrop is policy's and finishSeal's "go on" (not a drop reason).
const noDrop = NumDropReasons

// sealCache remembers the last SPI's peer across the packets of a batch,
// and points at the SPD lookup cache to use (nil: none).
type sealCache struct {
	lastSPI  uint32
	lastPeer *peer
	spd      *spd.Cache
}

// policy is the outbound SPD step for the cleartext packet buf.Bytes(): the
// SA to seal it with and the policy's SPI, or the drop reason. It does not
// allocate.
func (d *Dataplane) policy(buf *pkt.Buf, c *sealCache) (*sad.SA, uint32, DropReason) {
	dec := d.spdb.LookupCached(sad.Outbound, buf.Bytes(), c.spd)
	switch dec.Action {
	case spd.Protect:
	case spd.Bypass:
		return nil, 0, DropPolicyBypass
	default:
		if dec.Reason == spd.ReasonUnparsable {
			return nil, 0, DropNotIP
		}
		if linkLocal(buf.Bytes()) {
			// The kernel's own link traffic on the TUN (Router
			// Solicitations on interface up, RFC 4861 §6.3.7; MLD
			// reports; DAD): never tunnelled, not worth a warning.
			return nil, 0, DropLinkLocal
		}
		return nil, 0, DropPolicyDiscard
	}
	if dec.SA == nil {
		if dec.SPI <= MaxTrapSPI {
			return nil, dec.SPI, DropAcquire
		}
		return nil, 0, DropNoSA
	}
	return dec.SA, dec.SPI, noDrop
}

// finishSeal runs a packet that sa (policy SPI spi) sealed through the
// rest of the outbound path: endpoint, AfterSeal, and the cut in front of
// ESP unless the hook chose EncapIP. It returns noDrop with buf.Bytes()
// ready for Underlay.Send to *ep, or the drop reason. It does not allocate.
func (d *Dataplane) finishSeal(buf *pkt.Buf, sa *sad.SA, spi uint32, peers *peerTable, c *sealCache, ep *endpoint.Endpoint) DropReason {
	// Where it goes: the peer owning the SA, else raw ESP to the
	// destination of the header in front of ESP (the tunnel-mode outer
	// header, or the transport-mode packet's own).
	if spi == c.lastSPI && c.lastPeer != nil {
		*ep = *c.lastPeer.st.ep.Load()
	} else if pr := peers.out[spi]; pr != nil {
		c.lastSPI, c.lastPeer = spi, pr
		*ep = *pr.st.ep.Load()
		if !pr.st.sent.Load() { // load first: no cache-line ping-pong
			pr.st.sent.Store(true)
		}
	} else {
		dst, ok := outerDst(buf.Bytes())
		if !ok {
			return DropNoEndpoint
		}
		*ep = endpoint.Endpoint{Addr: netip.AddrPortFrom(dst, 0), Encap: endpoint.EncapRaw}
	}
	if d.hooks.AfterSeal != nil && !d.hooks.AfterSeal(buf, sa, ep) {
		return DropAfterSealHook
	}
	if ep.Encap == endpoint.EncapIP {
		// The hook built the whole packet; it leaves header-included,
		// through the socket of ep's family, which must be the packet's.
		_, ok := outerDst(buf.Bytes())
		a := ep.Addr.Addr().Unmap()
		if !ok || !a.IsValid() || (buf.Bytes()[0]>>4 == 4) != a.Is4() {
			return DropOuter
		}
		return noDrop
	}
	off, ok := espOffset(buf.Bytes())
	if !ok {
		return DropOuter
	}
	buf.TrimFront(off)
	return noDrop
}

// Inject sends p, a cleartext IPv6 or IPv4 packet built by the signaling
// module (mip6), through the outbound path synchronously on the caller's
// goroutine: SPD → SA (transport or tunnel mode) → seal → Hooks.AfterSeal
// → Underlay.Send, exactly as a packet read from the TUN. It copies p. It
// returns nil when the underlay took the packet, else a *DropError naming
// the drop reason, which is also counted in Stats. It is not for the hot
// path: one packet per call, it may allocate a little. It works once the
// Dataplane is started (before that the underlay has no sockets) and
// returns a DropError wrapping ErrClosed after Close.
func (d *Dataplane) Inject(p []byte) error {
	drop := func(r DropReason, err error) error {
		d.c.drops[r].Add(1)
		return &DropError{Reason: r, Err: err}
	}
	d.c.injected.Add(1)
	d.c.outPackets.Add(1)
	d.c.outBytes.Add(uint64(len(p)))
	if d.closed.Load() {
		return drop(DropClosing, ErrClosed)
	}
	if len(p) == 0 || len(p) > pkt.MaxPacket {
		return drop(DropNotIP, fmt.Errorf("packet of %d bytes", len(p)))
	}
	buf := pkt.Get()
	defer pkt.Put(buf)
	buf.SetBytes(pkt.Headroom, copy(buf.B[pkt.Headroom:tunReadLimit], p))
	capture := d.currentCapture()
	if capture != nil {
		capture.Inner(buf.Bytes(), true)
	}
	var (
		c  sealCache
		ep endpoint.Endpoint
	)
	sa, spi, r := d.policy(buf, &c)
	if r == noDrop && sa.Seal(buf) != esp.OK {
		r = DropSeal
	}
	if r == noDrop {
		r = d.finishSeal(buf, sa, spi, d.peers.Load(), &c, &ep)
	}
	if r != noDrop {
		switch r {
		case DropPolicyDiscard:
			d.c.warned[kindDiscard].Add(1)
			d.sampleDiscard(buf)
		case DropAcquire:
			d.acquire(spi)
		}
		return drop(r, nil)
	}
	if capture != nil {
		capture.Outer(buf.Bytes(), ep, true)
	}
	n := uint64(buf.Len())
	bufs, eps := [1]*pkt.Buf{buf}, [1]endpoint.Endpoint{ep}
	if err := d.underlay.Send(bufs[:], eps[:]); err != nil {
		return drop(DropUnderlaySend, err)
	}
	d.c.sentPackets.Add(1)
	d.c.sentBytes.Add(n)
	return nil
}

// openBatch processes an inbound batch: BeforeLookup, SA by SPI, open,
// roaming, and for transport mode Hooks.Deliver. It fills b.raw[:b.k] with
// the slices to write to the TUN. Consecutive packets of one SA are opened
// together (sad.SA.OpenBatch: one SA guard, one replay window lock and one
// counter update per run), then finished in order. Steady state: no
// allocation.
func (d *Dataplane) openBatch(b *batch) {
	st := openState{peers: d.peers.Load(), capture: d.currentCapture(), inPol: d.inPol.Load()}
	var inBytes uint64
	var spi uint32
	var sa *sad.SA
	var pr *peer
	nr, m := 0, 0
	for i := range b.n {
		buf := b.bufs[i]
		ep := b.eps[i]
		inBytes += uint64(buf.Len())
		// espOff is where ESP starts in buf.Bytes(): 0 for what the
		// underlay cut to ESP, behind the IP header(s) for EncapIP.
		espOff := 0
		if ep.Encap != endpoint.EncapIP && buf.Len() < header.ESPHeaderLen {
			st.drops[DropShort]++
			continue
		}
		if st.capture != nil {
			st.capture.Outer(buf.Bytes(), ep, false)
		}
		if d.hooks.BeforeLookup != nil && !d.hooks.BeforeLookup(buf, ep) {
			st.drops[DropBeforeLookupHook]++
			continue
		}
		if ep.Encap == endpoint.EncapIP {
			_, off, ok := esp.Locate(buf.Bytes())
			if !ok {
				st.drops[DropUnprotected]++
				continue
			}
			espOff = off
		}
		v := header.ESP(buf.Bytes()[espOff:])
		if !v.IsValid() {
			st.drops[DropShort]++
			continue
		}
		if v.SPI() != spi || sa == nil {
			spi, sa, pr = v.SPI(), d.sadb.Inbound(v.SPI()), st.peers.in[v.SPI()]
		}
		if sa == nil {
			st.drops[DropUnknownSPI]++
			st.warn[kindUnknownSPI]++
			d.sampleESP(kindUnknownSPI, spi, v.Seq(), ep, nil)
			continue
		}
		if sa.Mode() == esp.Transport && espOff == 0 {
			// RFC 4303 §3.4: transport mode rebuilds the packet around
			// its IP header, which the underlay left in the headroom.
			if ep.Encap == endpoint.EncapUDP {
				st.drops[DropTransportMode]++
				continue
			}
			hl, ok := headerInFront(buf, ep.Addr.Addr())
			if !ok {
				st.drops[DropDeliver]++
				continue
			}
			buf.SetBytes(buf.Off()-hl, buf.Len()+hl)
			espOff = hl
		}
		if nr == 0 || b.oruns[nr-1].sa != sa {
			b.oruns[nr] = openRunInfo{sa: sa, peer: pr, start: m}
			nr++
		}
		b.oruns[nr-1].n++
		b.run[m] = buf
		b.runIdx[m] = i
		b.runOff[m] = espOff
		b.runSeq[m] = v.Seq()
		m++
	}
	d.openRuns(b, b.oruns[:nr])
	for i := range b.oruns[:nr] {
		d.deliverRun(b, &st, &b.oruns[i])
	}
	if st.inPol != nil {
		b.in.flush()
	}
	clear(b.oruns[:nr])
	b.k = st.k
	b.bytes = st.outBytes
	d.c.inPackets.Add(uint64(b.n))
	d.c.inBytes.Add(inBytes)
	if st.consumed != 0 {
		d.c.consumed.Add(st.consumed)
	}
	if uint64(st.k)+st.consumed != uint64(b.n) { // each packet is delivered, consumed or dropped
		d.addDrops(&st.drops, &st.warn)
	}
}

// openRunInfo is one run of openBatch: b.run[start:start+n] (and the
// run* slices) are packets of sa, whose peer is peer (nil: none); end is
// the SA that takes OpenAccept and OpenEnd (sad.SA.OpenBegin).
type openRunInfo struct {
	sa, end  *sad.SA
	peer     *peer
	start, n int
}

// openRuns opens the runs of b in three steps (sad.SA.OpenBegin,
// OpenAccept, OpenEnd): the crypto of every run, then the replay window
// updates, then the rest. A batch the workers open beside others of its
// path takes the window updates in read order (b.turn); one the reader
// opens itself has nothing of its path in flight and needs no turn.
func (d *Dataplane) openRuns(b *batch, runs []openRunInfo) {
	for i := range runs {
		r := &runs[i]
		j := r.start + r.n
		r.end = r.sa.OpenBegin(b.run[r.start:j], b.runOff[r.start:j], b.runV[r.start:j], b.opened[r.start:j])
	}
	if b.ordered {
		b.turn.wait(b.ticket)
	}
	for _, r := range runs {
		if r.end != nil {
			r.end.OpenAccept(b.opened[r.start : r.start+r.n])
		}
	}
	if b.ordered {
		b.turn.done()
		b.ordered = false
	}
	for _, r := range runs {
		if r.end != nil {
			j := r.start + r.n
			r.end.OpenEnd(b.run[r.start:j], b.runOff[r.start:j], b.runNH[r.start:j], b.runV[r.start:j], b.opened[r.start:j])
		}
	}
}

// openState is openBatch's state across its runs: what the runs produced.
type openState struct {
	peers   *peerTable
	capture Capture
	inPol   *inPolicies // nil: no inbound policies to count hits for

	k                  int // b.raw[:k] filled
	outBytes, consumed uint64
	drops              [NumDropReasons]uint32
	warn               [numDropKinds]uint32
}

// deliverRun finishes the opened run r in order: the drop samples of the
// refused packets; for the others roaming, the peer's last-heard time, the
// inbound policy hits, home-address form and Hooks.Deliver for transport
// mode, and the TUN write slice.
func (d *Dataplane) deliverRun(b *batch, st *openState, r *openRunInfo) {
	sa, pr := r.sa, r.peer
	transport := sa.Mode() == esp.Transport
	// Roaming (issue 3): only a packet that passed the ICV and the replay
	// check and is the SA's newest moves the endpoint.
	newest := uint32(sa.Seq())
	heard := false
	for j := r.start; j < r.start+r.n; j++ {
		buf := b.run[j]
		if v := b.runV[j]; v != esp.OK {
			st.drops[DropOpen]++
			if k := verdictKind(v); k != noKind {
				st.warn[k]++
				d.sampleESP(k, sa.SPI(), b.runSeq[j], b.eps[b.runIdx[j]], pr)
			}
			continue
		}
		heard = true
		ep := &b.eps[b.runIdx[j]]
		seq := b.runSeq[j]
		if pr != nil && pr.roaming && seq == newest {
			if cur := pr.st.ep.Load(); *cur != *ep {
				d.maybeRoam(pr, *ep)
			}
		}
		if st.inPol != nil {
			// Before HomeAddressForm: ParseFlow takes the home-address
			// form itself, as sad's selector check did.
			b.in.count(st.inPol, buf.Bytes())
		}
		if transport {
			header.HomeAddressForm(buf.Bytes())
		}
		if st.capture != nil {
			st.capture.Inner(buf.Bytes(), false)
		}
		if transport && d.hooks.Deliver != nil && d.hooks.Deliver(buf.Bytes(), sa, seq, *ep) {
			st.consumed++
			continue
		}
		if buf.Off() < tunWriteOffset {
			st.drops[DropTUNWrite]++ // cannot happen: ESP header and IV lie in front
			continue
		}
		st.outBytes += uint64(buf.Len())
		b.raw[st.k] = buf.B[buf.Off()-tunWriteOffset : buf.End()]
		st.k++
	}
	if heard && pr != nil {
		if now := d.clock.Load(); pr.st.lastRecv.Load() < now {
			pr.heard(now)
		}
	}
}

// headerInFront checks the normalised outer IP header a raw receive leaves
// in front of the ESP header (ReceiveFunc): 20 bytes of IPv4 without
// options or 40 bytes of IPv6 without extension headers, the family of src,
// announcing ESP, its length field covering exactly buf.Bytes(). It returns
// the header's length.
func headerInFront(buf *pkt.Buf, src netip.Addr) (int, bool) {
	hl := header.IPv6HeaderLen
	if src.Unmap().Is4() {
		hl = header.IPv4MinHeaderLen
	}
	off := buf.Off() - hl
	if off < 0 {
		return 0, false
	}
	h := buf.B[off:buf.Off()]
	n := buf.Len()
	if hl == header.IPv4MinHeaderLen {
		ip := header.IPv4(h)
		return hl, h[0]>>4 == header.IPv4Version && ip.HeaderLen() == hl && ip.Protocol() == header.ProtoESP && ip.TotalLen() == hl+n
	}
	ip := header.IPv6(h)
	return hl, h[0]>>4 == header.IPv6Version && ip.NextHeader() == header.ProtoESP && ip.PayloadLen() == n
}

// currentCapture returns the capture tap, nil when off: one atomic load
// per batch.
func (d *Dataplane) currentCapture() Capture {
	if cb := d.capture.Load(); cb != nil {
		return cb.c
	}
	return nil
}

func (d *Dataplane) addDrops(drops *[NumDropReasons]uint32, warn *[numDropKinds]uint32) {
	for r, n := range drops {
		if n != 0 {
			d.c.drops[r].Add(uint64(n))
		}
	}
	for k, n := range warn {
		if n != 0 {
			d.c.warned[k].Add(uint64(n))
		}
	}
}

// outerDst returns the destination of the IPv4 or IPv6 header at the start of
// p.
func outerDst(p []byte) (netip.Addr, bool) {
	if len(p) == 0 {
		return netip.Addr{}, false
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) >= 20 {
			return netip.AddrFrom4([4]byte(p[16:20])), true
		}
	case 6:
		if len(p) >= 40 {
			return netip.AddrFrom16([16]byte(p[24:40])), true
		}
	}
	return netip.Addr{}, false
}

// espOffset returns where ESP starts in the sealed packet p: behind the outer
// IP header (and its IPv6 extension headers), or behind a UDP header when an
// AfterSeal hook built an RFC 3948 outer header (DR-3).
func espOffset(p []byte) (int, bool) {
	if _, off, ok := esp.Locate(p); ok {
		return off, true
	}
	// IPv4 or IPv6 (no extension headers) carrying UDP.
	var off int
	switch {
	case len(p) >= 20 && p[0]>>4 == 4 && p[9] == 17:
		off = int(p[0]&0xf) * 4
	case len(p) >= 40 && p[0]>>4 == 6 && p[6] == 17:
		off = 40
	default:
		return 0, false
	}
	off += 8 // UDP header
	if off < 28 || len(p) < off+header.ESPHeaderLen {
		return 0, false
	}
	if binary.BigEndian.Uint32(p[off:]) == 0 {
		return 0, false // non-ESP marker: IKE, not ESP (RFC 3948 §2.2)
	}
	return off, true
}
