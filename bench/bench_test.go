package bench

import (
	"os"
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
var benchTimeout = time.Duration(envInt("MIPSEC_BENCH_TIMEOUT_S", 60)) * time.Second

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
	select {
	case <-p.sink.reached:
	case <-time.After(benchTimeout):
		tb.Fatalf("%d of %d packets delivered in a minute (%v)", p.sink.packets.Load(), n, p.check())
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

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}
