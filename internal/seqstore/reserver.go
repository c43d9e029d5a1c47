package seqstore

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"
)

// Counter is the outbound SA as the Reserver sees it; *sad.SA and
// *esp.Outbound satisfy it.
type Counter interface {
	// Seq returns the last sequence number handed out.
	Seq() uint64
	// SetSeqReserve bounds the numbers the SA may hand out (0: no bound).
	SetSeqReserve(upTo uint64)
}

// Defaults for ReserverOptions (see the package documentation).
const (
	DefaultInitialChunk = 1 << 20
	DefaultMinChunk     = 1 << 16
	DefaultMaxChunk     = 1 << 26
	DefaultHorizon      = 2 * time.Second
	DefaultInterval     = 50 * time.Millisecond
)

// ReserverOptions configure a Reserver. Zero fields take the defaults.
type ReserverOptions struct {
	// InitialChunk is the first reservation after Prepare.
	InitialChunk uint64
	// MinChunk and MaxChunk bound the adaptive chunk of later extensions.
	MinChunk, MaxChunk uint64
	// Horizon is how long half a chunk should last at the measured rate.
	Horizon time.Duration
	// Interval is how often the background goroutine polls Seq.
	Interval time.Duration
	// OnError is called (from Tick) when an extension cannot be made
	// durable; the SA keeps its old bound and Tick retries.
	OnError func(spi uint32, err error)
	// Now is the clock (tests).
	Now func() time.Time
}

// Reserver keeps the reservations of a set of outbound SAs ahead of their
// counters. Prepare and Attach add an SA, Tick (or the goroutine Start runs)
// extends reservations, Flush records the exact counters at shutdown.
// All methods are safe for concurrent use.
type Reserver struct {
	st   *Store
	opts ReserverOptions

	mu      sync.Mutex
	sas     map[uint32]*entry // attached: Tick extends them
	pending map[uint32]*entry // prepared, not yet attached

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

type entry struct {
	fp       Fingerprint
	max      uint64 // last number of the sequence space
	reserved uint64 // durable R, the SA's bound once attached
	chunk    uint64
	c        Counter

	lastSeq uint64
	lastT   time.Time
	rate    float64 // packets per second, fast up and slow down
}

// NewReserver returns a Reserver writing to st.
func NewReserver(st *Store, opts ReserverOptions) *Reserver {
	if opts.InitialChunk == 0 {
		opts.InitialChunk = DefaultInitialChunk
	}
	if opts.MinChunk == 0 {
		opts.MinChunk = DefaultMinChunk
	}
	if opts.MaxChunk == 0 {
		opts.MaxChunk = DefaultMaxChunk
	}
	if opts.MaxChunk < opts.MinChunk {
		opts.MaxChunk = opts.MinChunk
	}
	if opts.Horizon <= 0 {
		opts.Horizon = DefaultHorizon
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reserver{st: st, opts: opts, sas: map[uint32]*entry{}, pending: map[uint32]*entry{}}
}

// MaxSeq returns the last sequence number of the 32-bit or, with ESN, the
// 64-bit space (RFC 4303 §2.2).
func MaxSeq(esn bool) uint64 {
	if esn {
		return math.MaxUint64
	}
	return math.MaxUint32
}

// Prepare loads the reservation of spi under the key fp, makes the next one
// (R + InitialChunk, at most maxSeq) durable and returns the InitialSeq the
// SA must be built with (R; 0 for a fresh SA or a new key). Build the SA with
// it, then call Attach before the SA seals anything, or Abort if it cannot
// be built. Until Attach, an SA already attached under spi (the one a
// rekeyed SA replaces) keeps its own reservation.
//
// When R is already maxSeq the sequence space is exhausted: initial is
// maxSeq, the SA will refuse to send (esp.DropSeqOverflow) and must be
// rekeyed.
func (r *Reserver) Prepare(spi uint32, fp Fingerprint, maxSeq uint64) (initial uint64, res LoadResult, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, res, err := r.st.Load(spi, fp)
	if err != nil {
		return 0, res, err
	}
	if prev > maxSeq {
		return 0, res, fmt.Errorf("%s: %w: reserved %d is beyond the sequence space (%d): was ESN turned off?", r.st.Path(spi, fp), ErrCorrupt, prev, maxSeq)
	}
	e := &entry{fp: fp, max: maxSeq, chunk: r.opts.InitialChunk, lastSeq: prev, lastT: r.opts.Now()}
	e.reserved = addCap(prev, e.chunk, maxSeq)
	if e.reserved != prev || res != Resumed {
		if err := r.st.Save(Record{SPI: spi, Key: fp, Reserved: e.reserved}); err != nil {
			return 0, res, err
		}
	}
	r.pending[spi] = e
	return prev, res, nil
}

// Abort drops what Prepare made for spi (its file stays, which is safe: it
// only reserves numbers that were never used).
func (r *Reserver) Abort(spi uint32) {
	r.mu.Lock()
	delete(r.pending, spi)
	r.mu.Unlock()
}

// Attach binds the prepared SA spi to its counter c (replacing any SA
// attached under spi before) and sets c's bound to the durable
// reservation. Without a pending Prepare it rebinds the attached entry: how
// a replacement SA with the same keys (sad.DB.Replace) takes over the
// reservation.
func (r *Reserver) Attach(spi uint32, c Counter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.pending[spi]
	if e != nil {
		delete(r.pending, spi)
		r.sas[spi] = e
	} else if e = r.sas[spi]; e == nil {
		return fmt.Errorf("seqstore: SPI %#08x was not prepared", spi)
	}
	e.c = c
	c.SetSeqReserve(e.reserved)
	return nil
}

// Reserved returns the durable reservation of the SA attached under spi
// (or, before Attach, the prepared one).
func (r *Reserver) Reserved(spi uint32) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lookup(spi)
	if e == nil {
		return 0, false
	}
	return e.reserved, true
}

// Fingerprint returns the key fingerprint of the SA attached under spi (or,
// before Attach, the prepared one).
func (r *Reserver) Fingerprint(spi uint32) (Fingerprint, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.lookup(spi)
	if e == nil {
		return Fingerprint{}, false
	}
	return e.fp, true
}

func (r *Reserver) lookup(spi uint32) *entry {
	if e := r.sas[spi]; e != nil {
		return e
	}
	return r.pending[spi]
}

// Forget stops tracking spi without touching its file, which keeps the
// last durable reservation: the same key under the same SPI later continues
// above it.
func (r *Reserver) Forget(spi uint32) {
	r.mu.Lock()
	delete(r.sas, spi)
	r.mu.Unlock()
}

// Release records the exact last number of spi's SA, as Flush does for all,
// and stops tracking it. Call it once the SA no longer seals (deleted or
// hard-expired). When c is not nil, it only acts if c is still the counter
// attached to spi (a replacement SA keeps its reservation).
func (r *Reserver) Release(spi uint32, c Counter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.sas[spi]
	if e == nil || c != nil && e.c != c {
		return nil
	}
	delete(r.sas, spi)
	return r.flush(spi, e)
}

// Tick extends every reservation whose SA has used more than half of its
// chunk: it writes and fsyncs the new reservation first and only then raises
// the SA's bound. Errors go to OnError and are retried at the next Tick.
func (r *Reserver) Tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	for spi, e := range r.sas {
		if e.c == nil {
			continue
		}
		seq := e.c.Seq()
		if dt := now.Sub(e.lastT).Seconds(); dt > 0 && seq >= e.lastSeq {
			inst := float64(seq-e.lastSeq) / dt
			if inst > e.rate {
				e.rate = inst
			} else {
				e.rate = 0.8*e.rate + 0.2*inst
			}
			e.lastSeq, e.lastT = seq, now
		}
		if e.reserved >= e.max || seq+e.chunk/2 < e.reserved {
			continue
		}
		e.chunk = r.chunkFor(e.rate)
		next := addCap(seq, e.chunk, e.max)
		if next <= e.reserved {
			continue
		}
		if err := r.st.Save(Record{SPI: spi, Key: e.fp, Reserved: next}); err != nil {
			if r.opts.OnError != nil {
				r.opts.OnError(spi, err)
			}
			continue
		}
		e.reserved = next
		e.c.SetSeqReserve(next)
	}
}

// chunkFor sizes a chunk so that half of it lasts Horizon at rate,
// rounded up to a power of two and clamped to [MinChunk, MaxChunk].
func (r *Reserver) chunkFor(rate float64) uint64 {
	want := 2 * rate * r.opts.Horizon.Seconds()
	c := r.opts.MinChunk
	if want > float64(c) {
		if want >= float64(r.opts.MaxChunk) {
			return r.opts.MaxChunk
		}
		c = 1 << bits.Len64(uint64(want))
	}
	return min(max(c, r.opts.MinChunk), r.opts.MaxChunk)
}

// Start runs Tick every Interval on a goroutine until Close.
func (r *Reserver) Start() {
	r.stop = make(chan struct{})
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.opts.Interval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				r.Tick()
			}
		}
	}()
}

// Close stops the goroutine Start runs and waits for it.
func (r *Reserver) Close() {
	r.stopOnce.Do(func() {
		if r.stop != nil {
			close(r.stop)
			<-r.done
		}
	})
}

// Flush records, for every attached SA, the last sequence number it really
// used, so that a clean restart wastes none of the reservation, and detaches
// the SAs. Call it only once the SAs no longer seal (dataplane stopped, SAs
// deleted): a number used after Flush would not be covered.
func (r *Reserver) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for spi, e := range r.sas {
		if err := r.flush(spi, e); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (r *Reserver) flush(spi uint32, e *entry) error {
	if e.c == nil {
		return nil
	}
	seq := e.c.Seq()
	if seq > 0 {
		e.c.SetSeqReserve(seq) // fail closed should anything still seal
		seq = e.c.Seq()
	}
	e.c = nil
	if seq >= e.reserved {
		return nil
	}
	if err := r.st.Save(Record{SPI: spi, Key: e.fp, Reserved: seq}); err != nil {
		return err
	}
	e.reserved = seq
	return nil
}

func addCap(a, b, limit uint64) uint64 {
	if a >= limit || b > limit-a {
		return limit
	}
	return a + b
}
