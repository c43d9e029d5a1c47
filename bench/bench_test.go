package bench

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mipsec/mipsec/esp"
)

// benchCases returns the cases of BenchmarkPipelineAlg for one algorithm.
func benchCases(t testing.TB, alg string) []pipeCase {
	cs, _, err := (&PipelineOptions{Algorithms: []string{alg}, Sizes: []int{64, 512, 1400}}).cases()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// benchTimeout bounds one runPipeN.
var benchTimeout = time.Minute

// runPipeN moves n packets through a fresh pipe with GOMAXPROCS workers
// each, timing only the packets' way (b may be nil).
func runPipeN(tb testing.TB, b *testing.B, c pipeCase, n uint64) *pipe {
	p, err := newPipe(c, runtime.GOMAXPROCS(0), n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.close)
	if b != nil {
		b.ResetTimer()
	}
	p.gen.begin()
	timeout := time.After(benchTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-p.sink.reached:
			break wait
		case <-tick.C:
			// Every packet delivered or dropped: no need to wait out the
			// timeout for ones that will never come.
			if p.sink.packets.Load()+p.a.Stats().Dropped()+p.b.Stats().Dropped() >= n {
				break wait
			}
		case <-timeout:
			tb.Fatalf("%d of %d packets delivered in %v (%v)", p.sink.packets.Load(), n, benchTimeout, p.check())
		}
	}
	if b != nil {
		b.StopTimer()
	}
	if err := p.check(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkPipelineAlg moves b.N packets from the fake TUN through
// dataplane A (SPD, seal), the fake underlay and dataplane B (SA lookup,
// anti-replay, open) to the far fake TUN, per algorithm and inner size
// ("super": the segments of a 64 KiB TSO packet per TUN read). Each dataplane
// runs GOMAXPROCS workers (use -cpu 1 for one core). b.SetBytes counts inner
// bytes; allocs/op counts the whole process (0 in steady state).
func BenchmarkPipelineAlg(b *testing.B) {
	for _, alg := range esp.AlgorithmNames() {
		for _, c := range benchCases(b, alg) {
			b.Run(alg+"/"+c.name, func(b *testing.B) {
				var bytes int
				for _, p := range c.pkts {
					bytes += len(p)
				}
				b.SetBytes(int64(bytes / len(c.pkts)))
				b.ReportAllocs()
				p := runPipeN(b, b, c, uint64(b.N))
				if el := b.Elapsed(); el > 0 {
					b.ReportMetric(float64(p.sink.packets.Load())/el.Seconds(), "pkts/s")
				}
			})
		}
	}
}

// BenchmarkRawSealOpen is the ceiling of BenchmarkPipelineAlg: bare
// seal+open of the ESP payload with the primitives, one goroutine.
func BenchmarkRawSealOpen(b *testing.B) {
	for _, alg := range esp.AlgorithmNames() {
		a, _ := esp.ParseAlgorithm(alg)
		for _, size := range DefaultSizes {
			b.Run(alg+"/"+strconv.Itoa(size), func(b *testing.B) {
				op, err := newRawOp(a, size)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if !op.once() {
						b.Fatal("open failed")
					}
				}
			})
		}
	}
}

// TestPipelineAllocs checks that the steady state allocates nothing: fewer
// than one allocation per 100 packets over the whole process (the runtime and
// the dataplanes' control goroutines may allocate now and then; a per-batch
// allocation would show as at least 1/49 per packet).
func TestPipelineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for _, c := range benchCases(t, "aes128gcm16") {
		if c.name != "1400" && c.name != SuperCase {
			continue
		}
		// Warm up (pools, lazily built state), then measure a second run
		// on a fresh pipe of the same shape.
		runPipeN(t, nil, c, 2000)
		p, err := newPipe(c, runtime.GOMAXPROCS(0), 0)
		if err != nil {
			t.Fatal(err)
		}
		p.gen.begin()
		for p.sink.packets.Load() < 2000 {
			time.Sleep(time.Millisecond)
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		n0 := p.sink.packets.Load()
		for p.sink.packets.Load() < n0+20000 {
			time.Sleep(time.Millisecond)
		}
		runtime.ReadMemStats(&m1)
		n := p.sink.packets.Load() - n0
		if err := p.check(); err != nil {
			t.Fatal(err)
		}
		p.close()
		if per := float64(m1.Mallocs-m0.Mallocs) / float64(n); per >= 0.01 {
			t.Errorf("%s: %.4f allocations per packet (%d over %d packets)", c.name, per, m1.Mallocs-m0.Mallocs, n)
		}
	}
}

func TestRawOpAll(t *testing.T) {
	for _, name := range esp.AlgorithmNames() {
		a, _ := esp.ParseAlgorithm(name)
		for _, size := range []int{MinPacketSize, 1400} {
			op, err := newRawOp(a, size)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !op.once() {
				t.Errorf("%s %d: seal+open failed", name, size)
			}
			if !raceEnabled {
				if n := testing.AllocsPerRun(100, func() { op.once() }); n != 0 {
					t.Errorf("%s %d: %v allocs", name, size, n)
				}
			}
		}
	}
}

// TestPipelineSmallWindow: with the smallest anti-replay window RFC 4303
// §3.4.3 allows (32, also the Linux and strongSwan default) and more
// workers than cores, nothing is dropped: each SA's packets leave with
// increasing sequence numbers (reserved in read order) and the receiver
// updates its window in arrival order, although both dataplanes seal and
// open batches of 128 concurrently. Before, the receiver refused a third
// or more of the packets as replays.
func TestPipelineSmallWindow(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	for _, c := range benchCases(t, "aes128gcm16") {
		if c.name != "1400" && c.name != SuperCase {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			c.window = 32
			runPipeN(t, nil, c, 20000) // fails on any drop (pipe.check)
		})
	}
}
