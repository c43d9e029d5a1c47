package sad

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/pkt"
)

// benchDB returns a DB with n inbound SAs with random SPIs, and the SPIs.
// The SAs have no esp state: a lookup does not touch it, and building a
// million AES contexts would only measure the allocator.
func benchDB(n int) (*DB, []uint32) {
	db := New(Options{})
	sas := make([]SA, n)
	spis := make([]uint32, 0, n)
	r := rand.New(rand.NewPCG(1, 1))
	db.mu.Lock()
	for i := range sas {
		s := &sas[i]
		s.spi, s.dir, s.wideIdx = r.Uint32()|1, Inbound, -1
		if _, old := db.in.find(s.spi); old != nil {
			continue
		}
		db.in.insert(s)
		s.linked = true
		spis = append(spis, s.spi)
	}
	db.mu.Unlock()
	r.Shuffle(len(spis), func(i, j int) { spis[i], spis[j] = spis[j], spis[i] })
	return db, spis
}

// BenchmarkLookup measures DB.Inbound, the per-packet SAD lookup, for
// SPIs in random order (hit) and for SPIs no SA has (miss: what a flood
// of forged SPIs costs).
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 1000, 1_000_000} {
		db, spis := benchDB(n)
		b.Run(fmt.Sprintf("hit/SAs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if db.Inbound(spis[i]) == nil {
					b.Fatal("miss")
				}
				if i++; i == len(spis) {
					i = 0
				}
			}
		})
		// Each lookup's SPI depends on the previous result, so the CPU
		// cannot overlap their cache misses: the latency of one lookup.
		b.Run(fmt.Sprintf("hit-latency/SAs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s := db.Inbound(spis[i])
				if i += int(s.spi & 1); i == len(spis) { // SPIs are odd: i++
					i = 0
				}
			}
		})
		b.Run(fmt.Sprintf("miss/SAs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := uint32(0)
			for b.Loop() {
				if db.Inbound(i<<1) != nil { // the SPIs are odd
					b.Fatal("hit")
				}
				i += 0x9e3779b9
			}
		})
	}
}

// BenchmarkIndexInsert measures the index insert that Add does, growing
// from empty to b.N SAs.
func BenchmarkIndexInsert(b *testing.B) {
	b.ReportAllocs()
	db := New(Options{})
	sas := make([]SA, b.N)
	for i := range sas {
		sas[i].spi = uint32(i + 1)
	}
	b.ResetTimer()
	db.mu.Lock()
	for i := range sas {
		db.in.insert(&sas[i])
	}
	db.mu.Unlock()
}

// BenchmarkSeal and BenchmarkOpen compare the SA wrappers (guard,
// counters, lifetime checks, and for Open the selector check) with bare
// esp, AES-128-GCM tunnel mode.
func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{64, 512, 1400} {
		db := New(Options{})
		out, _ := pair(b, db, 0x77, esp.Tunnel, anySel, anySel)
		inner := ip6(cn, hoa, udp(1, 2, size-48))
		buf := new(pkt.Buf)
		b.Run(fmt.Sprintf("sad/%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf.Reset()
				buf.Set(inner)
				if out.Seal(buf) != esp.OK {
					b.Fatal("seal")
				}
			}
		})
		b.Run(fmt.Sprintf("esp/%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf.Reset()
				buf.Set(inner)
				if out.out.Seal(buf) != esp.OK {
					b.Fatal("seal")
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{64, 512, 1400} {
		db := New(Options{})
		p := params(0x78)
		p.NoReplay = true // the same packet is opened again and again
		mustAdd(b, db, Config{Dir: Outbound, Params: p, Selectors: anySel})
		in := mustAdd(b, db, Config{Dir: Inbound, Params: p, Selectors: []Selector{{Remote: SingleAddr(cn), Local: SingleAddr(hoa)}}})
		buf := newBuf(ip6(cn, hoa, udp(1, 2, size-48)))
		db.Outbound(0x78).Seal(buf)
		sealed := append([]byte(nil), buf.Bytes()...)
		b.Run(fmt.Sprintf("sad/%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf.Reset()
				buf.Set(sealed)
				if _, v := in.Open(buf, 40); v != esp.OK {
					b.Fatal(v)
				}
			}
		})
		b.Run(fmt.Sprintf("esp/%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf.Reset()
				buf.Set(sealed)
				if _, v := in.in.Open(buf, 40); v != esp.OK {
					b.Fatal(v)
				}
			}
		})
	}
}
