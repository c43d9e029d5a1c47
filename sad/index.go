package sad

// The SPI index: an open-addressing hash table from SPI to *SA, one per
// direction.
//
// Readers (the packet path) take no lock and never allocate: they load the
// current table from an atomic.Pointer and probe linearly through slots
// whose SA pointer and SPI are atomics. Writers are serialised by the DB's
// mutex and change the published table in place with atomic stores, in
// only these ways:
//
//	empty      -> SA        insert (SPI stored before the SA pointer)
//	tombstone  -> SA        insert reusing a deleted slot (same order)
//	SA         -> SA'       replace, same SPI
//	SA         -> tombstone delete
//
// A slot never returns to empty, so a probe sequence that a reader walks
// never gets a hole in front of a key that is still present: the reader
// stops at the first empty slot, which was empty when the key was inserted
// and has stayed non-empty since only if something was inserted there, in
// which case the key lies further on. A slot reused between the reader's two
// loads can pair an old SA pointer with a new SPI, so a reader confirms a hit
// against the SA's own (immutable) SPI before returning it.
//
// Growth and tombstone cleanup rebuild the whole table (O(n), amortised
// O(1) per insert or delete) and publish it with one atomic store; readers
// still on the old table see a consistent, slightly stale snapshot, which the
// SA's own dead flag makes harmless (a deleted SA answers DropExpired).
//
// The probe start is a keyed mix of the SPI (murmur3's fmix64 of the SPI
// XOR a random per-table seed), so neither sequential SPIs nor SPIs chosen
// by a peer (RFC 4303 §2.1: the receiver picks the SPI, so our outbound
// SPIs come from the peer) can pile up in one probe chain.

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

const (
	minSlots = 16
	// A table is rebuilt when live entries plus tombstones would pass
	// maxLoadNum/maxLoadDen of its slots, and shrunk when live entries
	// fall below 1/shrinkDen. A rebuilt table is at most half full.
	maxLoadNum = 3
	maxLoadDen = 4
	shrinkDen  = 8
)

// tombstone marks a deleted slot. It is never returned to a caller.
var tombstone = &SA{}

type slot struct {
	sa  atomic.Pointer[SA]
	spi atomic.Uint32
}

type table struct {
	slots []slot
	mask  uint64
	seed  uint64
}

func newTable(n int) *table {
	return &table{slots: make([]slot, n), mask: uint64(n - 1), seed: rand.Uint64()}
}

// home returns the first slot of spi's probe sequence.
func (t *table) home(spi uint32) uint64 {
	h := uint64(spi) ^ t.seed
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h & t.mask
}

// index maps SPIs to SAs. get is safe for concurrent use with everything;
// all other methods must be called with the owning DB's mu held.
type index struct {
	t    atomic.Pointer[table]
	live int // SAs in the table
	used int // live + tombstones
}

func (x *index) init() { x.t.Store(newTable(minSlots)) }

// get returns the SA stored for spi, or nil. Lock-free, allocation-free.
func (x *index) get(spi uint32) *SA {
	t := x.t.Load()
	i := t.home(spi)
	for {
		sl := &t.slots[i]
		p := sl.sa.Load()
		if p == nil {
			return nil
		}
		if p != tombstone && sl.spi.Load() == spi && p.spi == spi {
			return p
		}
		i = (i + 1) & t.mask
	}
}

// find returns the slot number holding spi, or -1, and the SA there.
func (x *index) find(spi uint32) (int, *SA) {
	t := x.t.Load()
	i := t.home(spi)
	for {
		p := t.slots[i].sa.Load()
		if p == nil {
			return -1, nil
		}
		// Under the writer lock the slot's SPI always belongs to its SA.
		if p != tombstone && t.slots[i].spi.Load() == spi {
			return int(i), p
		}
		i = (i + 1) & t.mask
	}
}

// insert adds s, whose SPI must not be in the table (check with find).
func (x *index) insert(s *SA) {
	t := x.t.Load()
	if (x.used+1)*maxLoadDen > len(t.slots)*maxLoadNum {
		t = x.rebuild(x.live + 1)
	}
	i := t.home(s.spi)
	for {
		p := t.slots[i].sa.Load()
		if p == nil {
			x.used++
			break
		}
		if p == tombstone {
			break
		}
		i = (i + 1) & t.mask
	}
	t.slots[i].spi.Store(s.spi)
	t.slots[i].sa.Store(s)
	x.live++
}

// replaceAt stores s in slot i, which find returned for s's SPI.
func (x *index) replaceAt(i int, s *SA) {
	x.t.Load().slots[i].sa.Store(s)
}

// removeAt deletes the SA in slot i, which find returned.
func (x *index) removeAt(i int) {
	t := x.t.Load()
	t.slots[i].sa.Store(tombstone)
	x.live--
	if len(t.slots) > minSlots && x.live*shrinkDen < len(t.slots) {
		x.rebuild(x.live)
	}
}

// rebuild publishes a fresh table, at most half full with n entries,
// holding the live SAs of the current one.
func (x *index) rebuild(n int) *table {
	old := x.t.Load()
	size := minSlots
	if 2*n > size {
		size = 1 << bits.Len(uint(2*n-1))
	}
	t := newTable(size)
	for i := range old.slots {
		p := old.slots[i].sa.Load()
		if p == nil || p == tombstone {
			continue
		}
		spi := old.slots[i].spi.Load()
		j := t.home(spi)
		for t.slots[j].sa.Load() != nil {
			j = (j + 1) & t.mask
		}
		t.slots[j].spi.Store(spi)
		t.slots[j].sa.Store(p)
	}
	x.t.Store(t)
	x.used = x.live
	return t
}

// each calls f for every SA in the table, in slot order.
func (x *index) each(f func(*SA)) {
	t := x.t.Load()
	for i := range t.slots {
		if p := t.slots[i].sa.Load(); p != nil && p != tombstone {
			f(p)
		}
	}
}

// reset empties the index.
func (x *index) reset() {
	x.t.Store(newTable(minSlots))
	x.live, x.used = 0, 0
}
