package sad

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mipsec/mipsec/internal/oatable"
)

// checkIndex compares x with the model exhaustively.
func checkIndex(t *testing.T, x *index, model map[uint32]*SA) {
	t.Helper()
	if x.live != len(model) {
		t.Fatalf("live = %d, model has %d", x.live, len(model))
	}
	seen := 0
	x.each(func(s *SA) {
		seen++
		if model[s.spi] != s {
			t.Fatalf("each: SA %#x not in the model", s.spi)
		}
	})
	if seen != len(model) {
		t.Fatalf("each saw %d SAs, model has %d", seen, len(model))
	}
	for spi, s := range model {
		if got := x.get(spi); got != s {
			t.Fatalf("get(%#x) = %p, want %p", spi, got, s)
		}
	}
	if x.t.Len() != x.live {
		t.Fatalf("live = %d, table has %d", x.live, x.t.Len())
	}
}

// TestIndexModel runs random inserts, deletes and replaces against a map
// (wg allowedips_rand_test style), over key sets that are small (many
// collisions and tombstone reuse), sequential, and adversarial for a
// hash that looks at low bits only.
func TestIndexModel(t *testing.T) {
	keySets := map[string]func(r *rand.Rand) uint32{
		"small":      func(r *rand.Rand) uint32 { return 1 + r.Uint32N(300) },
		"sequential": func(r *rand.Rand) uint32 { return 0x1000 + r.Uint32N(5000) },
		"high bits":  func(r *rand.Rand) uint32 { return (1 + r.Uint32N(2000)) << 20 },
		"low 16 same": func(r *rand.Rand) uint32 {
			return (1+r.Uint32N(3000))<<16 | 0xbeef
		},
		"full": func(r *rand.Rand) uint32 { return 1 + r.Uint32N(1<<32-1) },
	}
	for name, key := range keySets {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			var x index
			x.init()
			model := map[uint32]*SA{}
			const ops = 60000
			for op := range ops {
				spi := key(r)
				i, cur := x.find(spi)
				if cur != model[spi] {
					t.Fatalf("op %d: find(%#x) = %p, model %p", op, spi, cur, model[spi])
				}
				// Grow for the first half, then shrink, with noise.
				insertBias := 6
				if op > ops/2 {
					insertBias = 3
				}
				switch k := r.IntN(10); {
				case k < insertBias:
					if cur == nil {
						s := &SA{spi: spi}
						x.insert(s)
						model[spi] = s
					}
				case k < 9:
					if cur != nil {
						x.removeAt(i)
						delete(model, spi)
					}
				default:
					if cur != nil {
						s := &SA{spi: spi}
						x.replaceAt(i, s)
						model[spi] = s
					}
				}
				if got := x.get(spi); got != model[spi] {
					t.Fatalf("op %d: get(%#x) = %p, model %p", op, spi, got, model[spi])
				}
				if op%5000 == 0 {
					checkIndex(t, &x, model)
				}
			}
			checkIndex(t, &x, model)
			// Delete everything: the table shrinks back.
			for spi := range model {
				i, _ := x.find(spi)
				x.removeAt(i)
				delete(model, spi)
			}
			checkIndex(t, &x, model)
			if n := x.t.Slots(); n != oatable.MinSlots {
				t.Errorf("empty index has %d slots, want %d", n, oatable.MinSlots)
			}
		})
	}
}

// TestIndexMissTerminates: lookups of absent keys end, also with every
// used slot of the smallest table (which never shrinks) a tombstone.
func TestIndexMissTerminates(t *testing.T) {
	var x index
	x.init()
	for spi := uint32(1); spi <= 12; spi++ {
		x.insert(&SA{spi: spi})
	}
	for spi := uint32(1); spi <= 12; spi++ {
		i, _ := x.find(spi)
		x.removeAt(i)
	}
	if n := x.t.Slots(); n != oatable.MinSlots {
		t.Fatalf("%d slots, want %d", n, oatable.MinSlots)
	}
	for spi := uint32(0); spi < 100; spi++ {
		if x.get(spi) != nil {
			t.Fatalf("get(%d) found a deleted SA", spi)
		}
	}
}

// TestIndexConcurrent: readers look up while a writer inserts, deletes,
// replaces and forces rebuilds. A stable key is always found, and a
// lookup never returns an SA with another SPI. Run with -race.
func TestIndexConcurrent(t *testing.T) {
	var mu sync.Mutex // the DB's writer lock
	var x index
	x.init()
	const stable = 64
	for spi := uint32(1); spi <= stable; spi++ {
		x.insert(&SA{spi: spi})
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for !stop.Load() {
				spi := 1 + r.Uint32N(stable)
				if s := x.get(spi); s == nil || s.spi != spi {
					errs <- "stable key lost"
					return
				}
				spi = 1000 + r.Uint32N(20000)
				if s := x.get(spi); s != nil && s.spi != spi {
					errs <- "wrong SA"
					return
				}
			}
		}()
	}
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 30 {
		mu.Lock()
		for spi := uint32(1000); spi < 1000+uint32(500*(round%5+1)); spi++ {
			if _, s := x.find(spi); s == nil {
				x.insert(&SA{spi: spi})
			}
		}
		for range 300 {
			spi := 1 + r.Uint32N(stable)
			i, _ := x.find(spi)
			x.replaceAt(i, &SA{spi: spi})
		}
		for spi := uint32(1000); spi < 21000; spi++ {
			if i, s := x.find(spi); s != nil && r.IntN(3) > 0 {
				x.removeAt(i)
			}
		}
		mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestIndexGetAllocs(t *testing.T) {
	var x index
	x.init()
	for spi := uint32(1); spi < 5000; spi++ {
		x.insert(&SA{spi: spi * 7919})
	}
	var sink *SA
	n := testing.AllocsPerRun(1000, func() {
		sink = x.get(7919 * 1234)
		sink = x.get(3)
	})
	_ = sink
	if n != 0 {
		t.Errorf("get allocates %v times", n)
	}
}
