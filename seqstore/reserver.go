package seqstore

import (
	"fmt"
	"math"
	"math/bits"
	"os"
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
// counters. Reservations belong to keys: an SA is added under its SPI and
// the fingerprint of its key, and a key may be attached to one SPI at a
// time. Prepare and Attach add an SA, Tick (or the goroutine Start runs)
// extends reservations, Flush records the exact counters at shutdown. All
// methods are safe for concurrent use.
type Reserver struct {
	st   *Store
	opts ReserverOptions

	mu      sync.Mutex
	sas     map[Fingerprint]*entry // attached: Tick extends them
	pending map[Fingerprint]*entry // prepared, not yet attached
	bySPI   map[uint32]Fingerprint // attached SPI -> key
	prepSPI map[uint32]Fingerprint // prepared SPI -> key

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

type entry struct {
	spi      uint32
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
	return &Reserver{st: st, opts: opts, sas: map[Fingerprint]*entry{}, pending: map[Fingerprint]*entry{},
		bySPI: map[uint32]Fingerprint{}, prepSPI: map[uint32]Fingerprint{}}
}

// MaxSeq returns the last sequence number of the 32-bit or, with ESN, the
// 64-bit space (RFC 4303 §2.2).
func MaxSeq(esn bool) uint64 {
	if esn {
		return math.MaxUint64
	}
	return math.MaxUint32
}

// Prepare loads the reservation of the key fp (whatever SPI it was used
// under before, and any version 1 records of the legacy fingerprints),
// makes the next one (R + InitialChunk, at most maxSeq) durable and returns
// the InitialSeq the SA spi must be built with (R; 0 for a fresh key).
// Build the SA with it, then call Attach before the SA seals anything, or
// Abort if it cannot be built. Until Attach, an SA already attached under
// spi (the one a rekeyed SA replaces) keeps its own reservation.
//
// A key attached to, or prepared for, another SPI is refused with an error
// wrapping ErrKeyInUse: two SAs counting under one key would send the same
// sequence numbers, and with a counter-IV suite the same nonces.
//
// When R is already maxSeq the sequence space is exhausted: initial is
// maxSeq, the SA will refuse to send (esp.DropSeqOverflow) and needs a new
// key.
func (r *Reserver) Prepare(spi uint32, fp Fingerprint, maxSeq uint64, legacy ...Fingerprint) (initial uint64, res LoadResult, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.sas[fp]; e != nil {
		return 0, Fresh, keyInUse(spi, e.spi)
	}
	if e := r.pending[fp]; e != nil && e.spi != spi {
		return 0, Fresh, keyInUse(spi, e.spi)
	}
	rec, res, old, err := r.st.load(fp, legacy)
	if err != nil {
		return 0, res, err
	}
	prev := rec.Reserved
	if prev > maxSeq {
		return 0, res, fmt.Errorf("%s: %w: reserved %d is beyond the sequence space (%d): was ESN turned off?", r.st.Path(fp), ErrCorrupt, prev, maxSeq)
	}
	e := &entry{spi: spi, max: maxSeq, chunk: r.opts.InitialChunk, lastSeq: prev, lastT: r.opts.Now()}
	e.reserved = addCap(prev, e.chunk, maxSeq)
	if e.reserved != prev || res != Resumed || rec.SPI != spi || len(old) > 0 {
		if err := r.st.Save(Record{Key: fp, SPI: spi, Reserved: e.reserved}); err != nil {
			return 0, res, err
		}
	}
	// The version 1 files are covered by the record just made durable.
	for _, p := range old {
		os.Remove(p)
	}
	if was, ok := r.prepSPI[spi]; ok {
		delete(r.pending, was)
	}
	r.pending[fp] = e
	r.prepSPI[spi] = fp
	return prev, res, nil
}

func keyInUse(spi, other uint32) error {
	if spi == other {
		return fmt.Errorf("%w: outbound SPI %#08x already uses this key", ErrKeyInUse, spi)
	}
	return fmt.Errorf("%w by outbound SPI %#08x: a key serves one outbound SA at a time, or both would send the same sequence numbers, and with AES-GCM, AES-GMAC or ChaCha20-Poly1305 the same nonces (RFC 4106 §3.1, RFC 8221 §3); give SPI %#08x a key of its own, or delete SPI %#08x first", ErrKeyInUse, other, spi, other)
}

// Abort drops what Prepare made for spi (its file stays, which is safe: it
// only reserves numbers that were never used).
func (r *Reserver) Abort(spi uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fp, ok := r.prepSPI[spi]; ok {
		delete(r.pending, fp)
		delete(r.prepSPI, spi)
	}
}

// Attach binds the prepared SA spi to its counter c (replacing any SA
// attached under spi before, whose key is then free for another SPI: its
// file keeps the durable mark) and sets c's bound to the durable
// reservation. Without a pending Prepare it rebinds the attached entry: how
// a replacement SA with the same key (sad.DB.Replace) takes over the
// reservation.
func (r *Reserver) Attach(spi uint32, c Counter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var e *entry
	if fp, ok := r.prepSPI[spi]; ok {
		e = r.pending[fp]
		delete(r.pending, fp)
		delete(r.prepSPI, spi)
		if old, ok := r.bySPI[spi]; ok {
			delete(r.sas, old)
		}
		r.sas[fp] = e
		r.bySPI[spi] = fp
	} else if fp, ok := r.bySPI[spi]; ok {
		e = r.sas[fp]
	} else {
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
	e, _ := r.lookup(spi)
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
	_, fp := r.lookup(spi)
	return fp, fp != Fingerprint{}
}

func (r *Reserver) lookup(spi uint32) (*entry, Fingerprint) {
	if fp, ok := r.bySPI[spi]; ok {
		return r.sas[fp], fp
	}
	if fp, ok := r.prepSPI[spi]; ok {
		return r.pending[fp], fp
	}
	return nil, Fingerprint{}
}

// Forget stops tracking spi without touching its file, which keeps the
// last durable reservation: the same key later continues above it.
func (r *Reserver) Forget(spi uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fp, ok := r.bySPI[spi]; ok {
		delete(r.sas, fp)
		delete(r.bySPI, spi)
	}
}

// Release records the exact last number of spi's SA, as Flush does for all,
// and stops tracking it (its key is free for another SPI). Call it once the
// SA no longer seals (deleted or hard-expired). When c is not nil, it only
// acts if c is still the counter attached to spi (a replacement SA keeps
// its reservation).
func (r *Reserver) Release(spi uint32, c Counter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fp, ok := r.bySPI[spi]
	if !ok {
		return nil
	}
	e := r.sas[fp]
	if c != nil && e.c != c {
		return nil
	}
	delete(r.sas, fp)
	delete(r.bySPI, spi)
	return r.flush(fp, e)
}

// Tick extends every reservation whose SA has used more than half of its
// chunk: it writes and fsyncs the new reservation first and only then raises
// the SA's bound. Errors go to OnError and are retried at the next Tick.
func (r *Reserver) Tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	for fp, e := range r.sas {
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
		if err := r.st.Save(Record{Key: fp, SPI: e.spi, Reserved: next}); err != nil {
			if r.opts.OnError != nil {
				r.opts.OnError(e.spi, err)
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
	for fp, e := range r.sas {
		if err := r.flush(fp, e); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (r *Reserver) flush(fp Fingerprint, e *entry) error {
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
	if err := r.st.Save(Record{Key: fp, SPI: e.spi, Reserved: seq}); err != nil {
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
