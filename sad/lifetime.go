package sad

// SA lifetimes (RFC 4301 §4.4.2.1) and the expiry events.
//
// Per packet the SA only adds to its packet and byte counters and compares
// the results with two thresholds (two atomic loads of read-mostly words):
// the soft limits until the soft event has fired, the hard limits after it.
// Crossing one leaves the fast path once per event: the crossing goroutine
// marks the SA (a hard expiry sets the dead bit, so the very next Seal or
// Open refuses it) and queues the event under a short mutex; it never runs
// the callback or waits for it. Time limits run on time.AfterFunc timers
// started when the SA is added.
//
// Delivery: events go to Options.OnExpire one at a time, in the order they
// were queued, on a goroutine the DB starts when the queue becomes non-empty
// and that exits when it drains. The queue is unbounded, so no event is ever
// dropped; it holds at most two events per SA. For a hard event the DB first
// removes the SA from the index and destroys its keys (waiting for packets
// in flight on other goroutines), then calls OnExpire.

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Limits is one set of lifetime limits. Zero means unlimited; the first
// limit reached wins (RFC 4301 §4.4.2.1: byte count and time MUST both be
// supported, simultaneously).
type Limits struct {
	// Bytes counts the bytes the cipher is applied to (RFC 4301 §4.4.2.1),
	// approximated by the length of the packet handed to Seal and of the
	// packet Open delivers (the padding and ESP trailer are not counted;
	// in transport mode the IP header is).
	Bytes uint64
	// Packets counts packets sealed or delivered by Open.
	Packets uint64
	// Time runs from the moment the SA is added.
	Time time.Duration
}

// IsZero reports whether l sets no limit.
func (l Limits) IsZero() bool { return l == Limits{} }

// Lifetime holds an SA's soft limits (the SA stays usable; time to start
// its replacement) and hard limits (the SA ends), RFC 4301 §4.4.2.1.
// Each non-zero soft limit must not exceed the hard limit of the same
// kind, where that is set.
type Lifetime struct {
	Soft, Hard Limits
}

func (lt *Lifetime) validate() error {
	for _, c := range [3]struct {
		name       string
		soft, hard uint64
	}{
		{"bytes", lt.Soft.Bytes, lt.Hard.Bytes},
		{"packets", lt.Soft.Packets, lt.Hard.Packets},
		{"time", uint64(max(lt.Soft.Time, 0)), uint64(max(lt.Hard.Time, 0))},
	} {
		if c.hard != 0 && c.soft > c.hard {
			return fmt.Errorf("%w: soft %s lifetime %d above hard %d", ErrInvalidConfig, c.name, c.soft, c.hard)
		}
	}
	if lt.Soft.Time < 0 || lt.Hard.Time < 0 {
		return fmt.Errorf("%w: negative lifetime", ErrInvalidConfig)
	}
	return nil
}

// limit turns 0 (unlimited) into a threshold no counter reaches.
func limit(v uint64) uint64 {
	if v == 0 {
		return math.MaxUint64
	}
	return v
}

// Reason says which limit an Event is for.
type Reason uint8

const (
	ReasonBytes Reason = iota + 1
	ReasonPackets
	ReasonTime
)

func (r Reason) String() string {
	switch r {
	case ReasonBytes:
		return "bytes"
	case ReasonPackets:
		return "packets"
	case ReasonTime:
		return "time"
	}
	return "invalid"
}

// Event reports that an SA reached its soft or hard lifetime. Every SA
// gets at most one soft and one hard event, the soft one first: when a
// hard limit is reached before any soft one on an SA that has soft limits,
// both are delivered, soft first, with the same Reason. Deleting or
// replacing an SA cancels its events not yet queued.
type Event struct {
	// SA is the SA itself; after a hard event it is dead and its keys are
	// destroyed, but Stats and the other accessors still work.
	SA     *SA
	SPI    uint32
	Dir    Direction
	Name   string
	Hard   bool
	Reason Reason
}

func (e Event) String() string {
	kind := "soft"
	if e.Hard {
		kind = "hard"
	}
	return fmt.Sprintf("%s %s lifetime of %s SA %#x %q", kind, e.Reason, e.Dir, e.SPI, e.Name)
}

// events is the DB's expiry queue. Its mu also guards every SA's
// softFired and hardFired.
type events struct {
	db      *DB
	mu      sync.Mutex
	pending []Event
	running bool
}

// fire queues s's soft or hard event unless it was already queued or
// cancelled. Called from the packet path on a threshold crossing and from
// timers.
func (q *events) fire(s *SA, hard bool, r Reason) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if hard {
		if s.hardFired {
			return
		}
		s.hardFired = true
		if !s.softFired && !s.life.Soft.IsZero() {
			q.pending = append(q.pending, s.event(false, r))
		}
		s.softFired = true
	} else {
		if s.softFired {
			return
		}
		s.softFired = true
		// From now on only the hard limits matter on the packet path.
		s.trigPkts.Store(s.hardPkts)
		s.trigBytes.Store(s.hardBytes)
	}
	q.pending = append(q.pending, s.event(hard, r))
	if !q.running {
		q.running = true
		go q.run()
	}
}

// cancel stops all future events of s (Delete, Replace, Close).
func (q *events) cancel(s *SA) {
	q.mu.Lock()
	s.softFired, s.hardFired = true, true
	q.mu.Unlock()
}

func (q *events) run() {
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		for _, ev := range batch {
			if ev.Hard {
				q.db.reap(ev.SA)
			}
			if f := q.db.onExpire; f != nil {
				f(ev)
			}
		}
	}
}
