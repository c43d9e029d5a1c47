package oatable

import (
	"iter"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

const (
	// MinSlots is the size of an empty table.
	MinSlots = 16
	// A table is rebuilt when its used slots (live entries plus
	// tombstones) would pass maxLoadNum/maxLoadDen of it, and shrunk when
	// live entries fall below 1/shrinkDen. A rebuilt table is at most half
	// full.
	maxLoadNum = 3
	maxLoadDen = 4
	shrinkDen  = 8
)

// HashFunc hashes a key with a table's seed.
type HashFunc[K comparable] func(k K, seed uint64) uint64

type slot[K comparable, V any] struct {
	v   atomic.Pointer[V]
	key K // set once, before v first becomes non-nil
}

type table[K comparable, V any] struct {
	slots []slot[K, V]
	seed  uint64
}

func newTable[K comparable, V any](n int) *table[K, V] {
	return &table[K, V]{slots: make([]slot[K, V], n), seed: rand.Uint64()}
}

// Table maps keys of type K to values of type *V. Call Init before
// anything else. Get and All are safe for concurrent use with everything;
// Put, Delete, Reset and Len must be serialised by the caller.
type Table[K comparable, V any] struct {
	t    atomic.Pointer[table[K, V]]
	hash HashFunc[K]
	tomb *V  // marks a deleted slot; never returned
	live int // entries
	used int // live + tombstones
}

// Init empties x and sets its hash function. It is not safe for
// concurrent use with anything: call it before x is shared.
func (x *Table[K, V]) Init(hash HashFunc[K]) {
	x.hash = hash
	x.tomb = new(V)
	x.Reset()
}

// Get returns the value stored for k, or nil. Lock-free, allocation-free.
func (x *Table[K, V]) Get(k K) *V {
	t := x.t.Load()
	s := t.slots
	m := uint64(len(s) - 1)
	for i := x.hash(k, t.seed); ; i++ {
		sl := &s[i&m]
		p := sl.v.Load()
		if p == nil {
			return nil
		}
		if sl.key == k {
			if p == x.tomb {
				return nil
			}
			return p
		}
	}
}

// find returns the slot of t bound to k, or the empty slot that ends k's
// probe sequence.
func (x *Table[K, V]) find(t *table[K, V], k K) *slot[K, V] {
	s := t.slots
	m := uint64(len(s) - 1)
	for i := x.hash(k, t.seed); ; i++ {
		sl := &s[i&m]
		if sl.v.Load() == nil || sl.key == k {
			return sl
		}
	}
}

// Put stores v under k and returns the value it replaces, or nil. v must
// not be nil. Writer.
func (x *Table[K, V]) Put(k K, v *V) (old *V) {
	if v == nil || v == x.tomb {
		panic("oatable: Put of a nil value (or of a zero-size type)")
	}
	t := x.t.Load()
	sl := x.find(t, k)
	if p := sl.v.Load(); p != nil {
		sl.v.Store(v)
		if p == x.tomb {
			x.live++
			return nil
		}
		return p
	}
	if (x.used+1)*maxLoadDen > len(t.slots)*maxLoadNum {
		t = x.rebuild(x.live + 1)
		sl = x.find(t, k)
	}
	sl.key = k
	sl.v.Store(v)
	x.live++
	x.used++
	return nil
}

// Delete removes k and returns the value it had, or nil. Writer.
func (x *Table[K, V]) Delete(k K) (old *V) {
	t := x.t.Load()
	sl := x.find(t, k)
	p := sl.v.Load()
	if p == nil || p == x.tomb {
		return nil
	}
	sl.v.Store(x.tomb)
	x.live--
	if len(t.slots) > MinSlots && x.live*shrinkDen < len(t.slots) {
		x.rebuild(x.live)
	}
	return p
}

// rebuild publishes a fresh table, at most half full with n entries,
// holding the live entries of the current one.
func (x *Table[K, V]) rebuild(n int) *table[K, V] {
	old := x.t.Load()
	size := MinSlots
	if 2*n > size {
		size = 1 << bits.Len(uint(2*n-1))
	}
	t := newTable[K, V](size)
	for i := range old.slots {
		o := &old.slots[i]
		p := o.v.Load()
		if p == nil || p == x.tomb {
			continue
		}
		sl := x.find(t, o.key)
		sl.key = o.key
		sl.v.Store(p)
	}
	x.t.Store(t)
	x.used = x.live
	return t
}

// Len returns the number of entries. Writer.
func (x *Table[K, V]) Len() int { return x.live }

// Slots returns the size of the current table, a power of two. Writer.
func (x *Table[K, V]) Slots() int { return len(x.t.Load().slots) }

// Reset empties the table. Writer.
func (x *Table[K, V]) Reset() {
	x.t.Store(newTable[K, V](MinSlots))
	x.live, x.used = 0, 0
}

// All yields the entries in slot order. Lock-free: an entry inserted or
// deleted during the walk may or may not be yielded; every other entry is
// yielded exactly once, with its old or its new value if it is replaced.
func (x *Table[K, V]) All() iter.Seq2[K, *V] {
	return func(yield func(K, *V) bool) {
		t := x.t.Load()
		for i := range t.slots {
			sl := &t.slots[i]
			if p := sl.v.Load(); p != nil && p != x.tomb && !yield(sl.key, p) {
				return
			}
		}
	}
}

// Mix64 is murmur3's 64-bit finalizer (fmix64): a bijection whose every
// output bit depends on every input bit, for building a HashFunc.
func Mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
