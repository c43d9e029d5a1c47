package oatable

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// val is a test value that knows its own key, so a lookup can tell when it
// got another key's value.
type val struct {
	k   uint64
	gen uint64
}

func mixHash(k, seed uint64) uint64 { return Mix64(k ^ seed) }

// Hash functions from good to hostile: identity keeps the low bits of
// structured keys (k<<20 all share home slot 0), lowBit and constant put
// half or all of the keys into one probe chain.
var hashes = map[string]HashFunc[uint64]{
	"mix":      mixHash,
	"identity": func(k, _ uint64) uint64 { return k },
	"lowBit":   func(k, _ uint64) uint64 { return k & 1 },
	"constant": func(_, _ uint64) uint64 { return 0 },
}

func newTestTable(h HashFunc[uint64]) *Table[uint64, val] {
	x := new(Table[uint64, val])
	x.Init(h)
	return x
}

// checkTable compares x with the model exhaustively and checks the
// structure: power-of-two size, load bound, used count, every key in at
// most one slot and reachable from its home slot.
func checkTable(t *testing.T, x *Table[uint64, val], model map[uint64]*val) {
	t.Helper()
	if x.Len() != len(model) {
		t.Fatalf("Len = %d, model has %d", x.Len(), len(model))
	}
	seen := map[uint64]bool{}
	for k, v := range x.All() {
		if seen[k] {
			t.Fatalf("All yielded %d twice", k)
		}
		seen[k] = true
		if model[k] != v {
			t.Fatalf("All yielded %d = %p, model %p", k, v, model[k])
		}
	}
	if len(seen) != len(model) {
		t.Fatalf("All yielded %d entries, model has %d", len(seen), len(model))
	}
	for k, v := range model {
		if got := x.Get(k); got != v {
			t.Fatalf("Get(%d) = %p, want %p", k, got, v)
		}
	}
	tb := x.t.Load()
	n := len(tb.slots)
	if n < MinSlots || bits.OnesCount(uint(n)) != 1 {
		t.Fatalf("%d slots", n)
	}
	if x.used*maxLoadDen > n*maxLoadNum {
		t.Fatalf("used %d of %d slots", x.used, n)
	}
	used, live := 0, 0
	keys := map[uint64]int{}
	for i := range tb.slots {
		sl := &tb.slots[i]
		p := sl.v.Load()
		if p == nil {
			continue
		}
		used++
		if p != x.tomb {
			live++
		}
		if j, dup := keys[sl.key]; dup {
			t.Fatalf("key %d in slots %d and %d", sl.key, j, i)
		}
		keys[sl.key] = i
		if got := x.find(tb, sl.key); got != sl {
			t.Fatalf("key %d in slot %d is not reachable from its home slot", sl.key, i)
		}
	}
	if used != x.used || live != x.live {
		t.Fatalf("counted used %d live %d, table says %d %d", used, live, x.used, x.live)
	}
}

// TestModel runs random inserts, replaces and deletes against a map, for
// every hash function and over key sets that are small (many tombstones
// reused), sequential, structured, and random. A delete that broke a
// probe chain, a reused slot that kept a stale key, or a lost tombstone
// shows up as a Get that disagrees with the map.
func TestModel(t *testing.T) {
	keySets := map[string]func(r *rand.Rand) uint64{
		"small":      func(r *rand.Rand) uint64 { return r.Uint64N(300) },
		"sequential": func(r *rand.Rand) uint64 { return 1000 + r.Uint64N(3000) },
		"high bits":  func(r *rand.Rand) uint64 { return r.Uint64N(2000) << 20 },
		"random":     func(r *rand.Rand) uint64 { return r.Uint64() },
	}
	for hname, h := range hashes {
		for kname, key := range keySets {
			t.Run(hname+"/"+kname, func(t *testing.T) {
				ops := 40000
				if hname != "mix" {
					ops = 4000 // quadratic: long chains
				}
				r := rand.New(rand.NewPCG(uint64(len(hname)), uint64(len(kname))))
				x := newTestTable(h)
				model := map[uint64]*val{}
				gen := uint64(0)
				for op := range ops {
					k := key(r)
					if got := x.Get(k); got != model[k] {
						t.Fatalf("op %d: Get(%d) = %p, model %p", op, k, got, model[k])
					}
					// Grow for the first half, then shrink.
					putBias := 6
					if op > ops/2 {
						putBias = 3
					}
					gen++
					if r.IntN(10) < putBias {
						v := &val{k: k, gen: gen}
						if old := x.Put(k, v); old != model[k] {
							t.Fatalf("op %d: Put(%d) replaced %p, model %p", op, k, old, model[k])
						}
						model[k] = v
					} else {
						if old := x.Delete(k); old != model[k] {
							t.Fatalf("op %d: Delete(%d) = %p, model %p", op, k, old, model[k])
						}
						delete(model, k)
					}
					if got := x.Get(k); got != model[k] {
						t.Fatalf("op %d: after the change Get(%d) = %p, model %p", op, k, got, model[k])
					}
					if x.Len() != len(model) {
						t.Fatalf("op %d: Len = %d, model has %d", op, x.Len(), len(model))
					}
					if op%2000 == 0 {
						checkTable(t, x, model)
					}
				}
				checkTable(t, x, model)
				for k := range model {
					x.Delete(k)
					delete(model, k)
				}
				checkTable(t, x, model)
				if n := len(x.t.Load().slots); n != MinSlots {
					t.Errorf("empty table has %d slots, want %d", n, MinSlots)
				}
			})
		}
	}
}

// TestGrowth fills a table far past its first size and empties it again:
// the size follows the entries both ways and every rebuild draws a seed.
func TestGrowth(t *testing.T) {
	x := newTestTable(mixHash)
	model := map[uint64]*val{}
	seeds := map[uint64]bool{x.t.Load().seed: true}
	last := x.t.Load()
	const n = 1 << 16
	for k := range uint64(n) {
		v := &val{k: k}
		x.Put(k, v)
		model[k] = v
		if tb := x.t.Load(); tb != last {
			if seeds[tb.seed] {
				t.Fatalf("rebuild at %d entries reused a seed", k+1)
			}
			seeds[tb.seed] = true
			last = tb
		}
	}
	checkTable(t, x, model)
	if got, want := len(x.t.Load().slots), 2*n; got != want {
		t.Errorf("%d entries in %d slots, want %d", n, got, want)
	}
	if len(seeds) < 10 {
		t.Errorf("only %d tables built on the way to %d entries", len(seeds), n)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range r.Perm(n) {
		x.Delete(uint64(k))
		delete(model, uint64(k))
		if len(model)%4096 == 0 {
			checkTable(t, x, model)
			if s := len(x.t.Load().slots); len(model) > 0 && s > shrinkDen*2*len(model) {
				t.Fatalf("%d entries in %d slots: no shrink", len(model), s)
			}
		}
	}
	if n := len(x.t.Load().slots); n != MinSlots {
		t.Errorf("empty table has %d slots, want %d", n, MinSlots)
	}
}

// TestDeleteReinsert: putting a deleted key back takes its own tombstone
// (no rebuild, no new slot); churn through distinct keys keeps the size
// bounded by the live entries, not by the keys ever seen.
func TestDeleteReinsert(t *testing.T) {
	x := newTestTable(mixHash)
	for k := range uint64(10) {
		x.Put(k, &val{k: k})
	}
	tb := x.t.Load()
	for i := range 10000 {
		k := uint64(i % 10)
		if x.Delete(k) == nil {
			t.Fatalf("Delete(%d) found nothing", k)
		}
		if x.Get(k) != nil {
			t.Fatalf("deleted key %d still found", k)
		}
		v := &val{k: k, gen: uint64(i)}
		if x.Put(k, v) != nil {
			t.Fatalf("Put(%d) after Delete replaced something", k)
		}
		if x.Get(k) != v || x.Len() != 10 {
			t.Fatalf("reinserted key %d: Get = %p, want %p; Len = %d", k, x.Get(k), v, x.Len())
		}
	}
	if x.t.Load() != tb || x.used != 10 || x.live != 10 {
		t.Errorf("reinsertion rebuilt or used new slots: used %d live %d", x.used, x.live)
	}

	model := map[uint64]*val{}
	for k := range uint64(100) {
		v := &val{k: k}
		x.Put(k, v)
		model[k] = v
	}
	for k := range uint64(10) {
		model[k] = x.Get(k)
	}
	for k := uint64(100); k < 100_000; k++ {
		x.Delete(k - 90)
		delete(model, k-90)
		v := &val{k: k}
		x.Put(k, v)
		model[k] = v
		if s := len(x.t.Load().slots); s > 256 {
			t.Fatalf("%d live entries in %d slots after %d distinct keys", x.Len(), s, k)
		}
	}
	checkTable(t, x, model)
}

// TestHostileKeys: with a seeded mix, key sets that defeat a hash of the
// low bits still spread over the table: probe sequences stay short.
func TestHostileKeys(t *testing.T) {
	const n = 1 << 14
	sets := map[string]func(i uint64) uint64{
		"sequential":  func(i uint64) uint64 { return i },
		"high bits":   func(i uint64) uint64 { return i << 40 },
		"low 16 same": func(i uint64) uint64 { return i<<16 | 0xbeef },
	}
	for name, key := range sets {
		x := newTestTable(mixHash)
		for i := range uint64(n) {
			x.Put(key(i), &val{k: key(i)})
		}
		tb := x.t.Load()
		m := uint64(len(tb.slots) - 1)
		total, longest := uint64(0), uint64(0)
		for i := range tb.slots {
			sl := &tb.slots[i]
			if sl.v.Load() == nil {
				continue
			}
			d := (uint64(i) - mixHash(sl.key, tb.seed)) & m
			total += d
			longest = max(longest, d)
		}
		// Linear probing at load 1/2 averages half a slot of
		// displacement; the longest is a few dozen.
		if avg := float64(total) / n; avg > 2 || longest > 64 {
			t.Errorf("%s: probe displacement %.2f on average, %d at most", name, avg, longest)
		}
	}
}

// TestConcurrent: readers Get and walk All while a writer replaces a set
// of stable keys with ever newer values and churns other keys through
// growth and shrinking. A stable key is always found, never with an older
// value than the reader saw before, and no lookup returns another key's
// value. Run with -race.
func TestConcurrent(t *testing.T) {
	const stable = 64
	var mu sync.Mutex // the writer lock
	x := newTestTable(mixHash)
	for k := range uint64(stable) {
		x.Put(k, &val{k: k})
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	fail := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(format, args...):
		default:
		}
	}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			var seen [stable]uint64
			for n := 0; !stop.Load(); n++ {
				k := r.Uint64N(stable)
				v := x.Get(k)
				if v == nil || v.k != k {
					fail("stable key %d: got %+v", k, v)
					return
				}
				if v.gen < seen[k] {
					fail("stable key %d went back from gen %d to %d", k, seen[k], v.gen)
					return
				}
				seen[k] = v.gen
				k = 1000 + r.Uint64N(20000)
				if v := x.Get(k); v != nil && v.k != k {
					fail("Get(%d) returned key %d's value", k, v.k)
					return
				}
				if n%64 != 0 {
					continue
				}
				found := 0
				for k, v := range x.All() {
					if v.k != k {
						fail("All yielded key %d with key %d's value", k, v.k)
						return
					}
					if k < stable {
						found++
					}
				}
				if found != stable {
					fail("All yielded %d of %d stable keys", found, stable)
					return
				}
			}
		}()
	}
	r := rand.New(rand.NewPCG(3, 4))
	gen := uint64(0)
	for round := range 30 {
		mu.Lock()
		for k := uint64(1000); k < 1000+uint64(500*(round%5+1)); k++ {
			if x.Get(k) == nil {
				x.Put(k, &val{k: k})
			}
		}
		for range 300 {
			k := r.Uint64N(stable)
			gen++
			x.Put(k, &val{k: k, gen: gen})
		}
		for k := uint64(1000); k < 21000; k++ {
			if r.IntN(3) > 0 {
				x.Delete(k)
			}
		}
		mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGetAllocs(t *testing.T) {
	x := newTestTable(mixHash)
	for k := range uint64(5000) {
		x.Put(k*7919, &val{k: k * 7919})
	}
	var sink *val
	n := testing.AllocsPerRun(1000, func() {
		sink = x.Get(7919 * 1234)
		sink = x.Get(3)
	})
	_ = sink
	if n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

func TestPutNil(t *testing.T) {
	x := newTestTable(mixHash)
	defer func() {
		if recover() == nil {
			t.Error("Put of nil did not panic")
		}
	}()
	x.Put(1, nil)
}

// BenchmarkGet measures a lookup that hits and one that misses, for keys
// in random order.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1000, 1_000_000} {
		x := new(Table[uint32, val])
		x.Init(func(k uint32, seed uint64) uint64 { return Mix64(uint64(k) ^ seed) })
		r := rand.New(rand.NewPCG(1, 1))
		keys := make([]uint32, n)
		for i := range keys {
			keys[i] = r.Uint32() | 1
			x.Put(keys[i], &val{k: uint64(keys[i])})
		}
		b.Run(fmt.Sprintf("hit/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if x.Get(keys[i]) == nil {
					b.Fatal("miss")
				}
				if i++; i == len(keys) {
					i = 0
				}
			}
		})
		b.Run(fmt.Sprintf("miss/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			k := uint32(0)
			for b.Loop() {
				if x.Get(k<<1) != nil {
					b.Fatal("hit")
				}
				k += 0x9e3779b9
			}
		})
	}
}
