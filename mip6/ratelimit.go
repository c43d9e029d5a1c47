package mip6

import (
	"net/netip"
	"sync"
	"time"

	"github.com/mipsec/mipsec/endpoint"
)

// Defaults of the home agent's signaling rate limit.
const (
	// DefaultBURate is the sustained rate of signaling messages (BUs and
	// Mobile Prefix Solicitations) the home agent processes per home
	// address, per second. RFC 6275 §11.8 has a mobile node send at most
	// MAX_UPDATE_RATE (3) BUs per second; the margin covers
	// retransmissions racing a handover.
	DefaultBURate = 10.0
	// DefaultBUBurst is the token bucket depth per home address.
	DefaultBUBurst = 20
	// DefaultSignalQueue is the number of messages waiting between the
	// packet workers and the signaling goroutine.
	DefaultSignalQueue = 256
	// maxBuckets bounds the rate limiter's memory: past it, full
	// (idle) buckets are forgotten first, then everything.
	maxBuckets = 1 << 16
)

// tokenBuckets is a per-key token bucket rate limiter (RFC 6275 §11.8's
// MAX_UPDATE_RATE spirit, applied on the receiving side). Keys are
// authenticated home addresses (the SA's, DR-7), so one mobile node cannot
// use up another's budget. Memory is bounded by maxBuckets. Safe for
// concurrent use; allocation-free once a key has a bucket.
type tokenBuckets struct {
	mu    sync.Mutex
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time
	m     map[netip.Addr]*bucket
	// denied is the last key allow refused (for the drop warning,
	// ha_droplog.go).
	denied netip.Addr
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b at rate tokens per second up to burst for the time since
// its last call and takes one token, reporting whether there was one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+el.Seconds()*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func newTokenBuckets(rate float64, burst int, now func() time.Time) *tokenBuckets {
	if rate <= 0 {
		rate = DefaultBURate
	}
	if burst <= 0 {
		burst = DefaultBUBurst
	}
	return &tokenBuckets{rate: rate, burst: float64(burst), now: now, m: make(map[netip.Addr]*bucket)}
}

// allow takes one token from key's bucket and reports whether there was one.
func (t *tokenBuckets) allow(key netip.Addr) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.m[key]
	if b == nil {
		if len(t.m) >= maxBuckets {
			t.prune(now)
		}
		b = &bucket{tokens: t.burst, last: now}
		t.m[key] = b
	}
	if !b.take(now, t.rate, t.burst) {
		t.denied = key
		return false
	}
	return true
}

// lastDenied is the last key allow refused (invalid: none yet).
func (t *tokenBuckets) lastDenied() netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.denied
}

// prune drops buckets that have refilled (equivalent to a fresh one); if
// none has, it drops them all. Lock held.
func (t *tokenBuckets) prune(now time.Time) {
	for k, b := range t.m {
		if b.tokens+now.Sub(b.last).Seconds()*t.rate >= t.burst {
			delete(t.m, k)
		}
	}
	if len(t.m) >= maxBuckets {
		clear(t.m)
	}
}

// len is the number of buckets held (tests).
func (t *tokenBuckets) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// sigMaxPacket is the longest signaling packet the queue holds: an IPv6
// header, a Destination Options header with a Home Address option and the
// longest Mobility Header (MHMaxLen), with room to spare for other
// extension headers. Longer packets are counted and dropped.
const sigMaxPacket = header6Max + MHMaxLen

const header6Max = 40 + 256 // IPv6 header + extension headers budget

// sigItem is one queued signaling packet: a copy, so the worker's buffer
// is free again when Deliver returns.
type sigItem struct {
	n   int
	spi uint32
	seq uint32
	src endpoint.Endpoint
	buf [sigMaxPacket]byte
}

func (it *sigItem) bytes() []byte { return it.buf[:it.n] }

// sigQueue is a bounded queue of preallocated items between the packet
// workers (put, never blocks, never allocates) and the signaling goroutine
// (get). When every item is in use, put fails and the caller counts a
// drop.
type sigQueue struct {
	free chan *sigItem
	full chan *sigItem
}

func newSigQueue(n int) *sigQueue {
	if n <= 0 {
		n = DefaultSignalQueue
	}
	q := &sigQueue{free: make(chan *sigItem, n), full: make(chan *sigItem, n)}
	for range n {
		q.free <- new(sigItem)
	}
	return q
}

// put copies p into a free item and queues it; false when the queue is
// full or p does not fit.
func (q *sigQueue) put(p []byte, spi, seq uint32, src endpoint.Endpoint) bool {
	if len(p) > sigMaxPacket {
		return false
	}
	var it *sigItem
	select {
	case it = <-q.free:
	default:
		return false
	}
	it.n = copy(it.buf[:], p)
	it.spi, it.seq, it.src = spi, seq, src
	q.full <- it // never blocks: at most cap(free) items exist
	return true
}

// release returns an item taken from full.
func (q *sigQueue) release(it *sigItem) { q.free <- it }
