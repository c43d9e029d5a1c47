package mip6

// The binding index: an open-addressing hash table from an address (the
// IPv6 home address, or the IPv4 home address) to an immutable *Binding,
// modelled on sad/index.go.
//
// Readers (the DR-1 packet path) take no lock and never allocate: they load
// the current table from an atomic.Pointer and probe linearly through slots
// holding an atomic *Binding. Writers are serialised by the BindingCache's
// mutex and change the published table in place with atomic stores, only as
//
//	empty      -> binding    insert
//	tombstone  -> binding    insert reusing a deleted slot
//	binding    -> binding'   replace, same key
//	binding    -> tombstone  delete
//
// A slot never returns to empty, so a reader's probe sequence never gets a
// hole in front of a key that is still present. The key lives in the
// immutable Binding itself, so a reader confirms a hit against it and a
// slot reused between probes cannot pair a key with the wrong binding.
//
// Growth and tombstone cleanup rebuild the table (O(n), amortised O(1) per
// insert or delete) and publish it with one atomic store; readers still on
// the old table see a consistent, slightly stale snapshot. Every other
// update is O(1): no copy-on-write of the whole map per Binding Update,
// which matters at 1,000,000 bindings.
//
// The probe start is a keyed mix (murmur3's bindMix) of the address and a
// random per-table seed, so home addresses from one /64 don't pile up.

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
)

const (
	bindMinSlots = 16
	bindLoadNum  = 3 // rebuild above 3/4 full (live + tombstones)
	bindLoadDen  = 4
	bindShrink   = 8 // shrink below 1/8 live
)

// bindTombstone marks a deleted slot. It is never returned to a caller.
var bindTombstone = &Binding{}

// keyFunc picks the key an index uses from a binding.
type keyFunc func(*Binding) netip.Addr

func keyHoA(b *Binding) netip.Addr  { return b.HoA }
func keyHoA4(b *Binding) netip.Addr { return b.HoA4 }

type bindTable struct {
	slots []atomic.Pointer[Binding]
	mask  uint64
	seed  uint64
}

func newBindTable(n int) *bindTable {
	return &bindTable{slots: make([]atomic.Pointer[Binding], n), mask: uint64(n - 1), seed: rand.Uint64()}
}

func bindMix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// home returns the first slot of a's probe sequence.
func (t *bindTable) home(a netip.Addr) uint64 {
	b := a.As16()
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
		uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	return bindMix(bindMix(hi^t.seed)^lo) & t.mask
}

// bindIndex maps one kind of key to bindings. get is safe for concurrent
// use with everything; all other methods need the cache's mutex.
type bindIndex struct {
	t    atomic.Pointer[bindTable]
	key  keyFunc
	live int
	used int // live + tombstones
}

func (x *bindIndex) init(k keyFunc) {
	x.key = k
	x.t.Store(newBindTable(bindMinSlots))
}

// get returns the binding stored for a, or nil. Lock-free, allocation-free.
func (x *bindIndex) get(a netip.Addr) *Binding {
	t := x.t.Load()
	i := t.home(a)
	for {
		p := t.slots[i].Load()
		if p == nil {
			return nil
		}
		if p != bindTombstone && x.key(p) == a {
			return p
		}
		i = (i + 1) & t.mask
	}
}

// find returns the slot holding key a, or -1.
func (x *bindIndex) find(a netip.Addr) int {
	t := x.t.Load()
	i := t.home(a)
	for {
		p := t.slots[i].Load()
		if p == nil {
			return -1
		}
		if p != bindTombstone && x.key(p) == a {
			return int(i)
		}
		i = (i + 1) & t.mask
	}
}

// put inserts b or replaces the binding with b's key.
func (x *bindIndex) put(b *Binding) {
	k := x.key(b)
	if i := x.find(k); i >= 0 {
		x.t.Load().slots[i].Store(b)
		return
	}
	t := x.t.Load()
	if (x.used+1)*bindLoadDen > len(t.slots)*bindLoadNum {
		t = x.rebuild(x.live + 1)
	}
	i := t.home(k)
	for {
		p := t.slots[i].Load()
		if p == nil {
			x.used++
			break
		}
		if p == bindTombstone {
			break
		}
		i = (i + 1) & t.mask
	}
	t.slots[i].Store(b)
	x.live++
}

// remove deletes the binding with key a, if any.
func (x *bindIndex) remove(a netip.Addr) {
	i := x.find(a)
	if i < 0 {
		return
	}
	t := x.t.Load()
	t.slots[i].Store(bindTombstone)
	x.live--
	if len(t.slots) > bindMinSlots && x.live*bindShrink < len(t.slots) {
		x.rebuild(x.live)
	}
}

// rebuild publishes a fresh table, at most half full with n entries.
func (x *bindIndex) rebuild(n int) *bindTable {
	old := x.t.Load()
	size := bindMinSlots
	if 2*n > size {
		size = 1 << bits.Len(uint(2*n-1))
	}
	t := newBindTable(size)
	for i := range old.slots {
		p := old.slots[i].Load()
		if p == nil || p == bindTombstone {
			continue
		}
		j := t.home(x.key(p))
		for t.slots[j].Load() != nil {
			j = (j + 1) & t.mask
		}
		t.slots[j].Store(p)
	}
	x.t.Store(t)
	x.used = x.live
	return t
}
