package esp

import (
	"fmt"
	"testing"

	"github.com/mipsec/mipsec/pkt"
)

// TestZeroAllocs: Seal and Open allocate nothing per packet, for every
// algorithm, with and without ESN, in tunnel mode and in transport mode
// with the IPv6 HAO chain (STYLE.md §8).
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	const runs = 100
	for _, alg := range allAlgorithms {
		for _, l := range []layout{layouts[0], layouts[3], layouts[8]} {
			for _, esn := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%s/esn=%v", alg, l.name, esn), func(t *testing.T) {
					o, in := newPair(t, testParams(alg, l.mode, l.outer, esn))
					plain := l.build(1000)
					b := new(pkt.Buf)
					seal := func() {
						b.Set(plain)
						if v := o.Seal(b); v != OK {
							t.Fatal(v)
						}
					}
					if n := testing.AllocsPerRun(runs, seal); n != 0 {
						t.Errorf("Seal: %v allocs/op", n)
					}
					dummy := func() {
						b.Set(plain)
						if v := o.SealDummy(b, 100); v != OK {
							t.Fatal(v)
						}
					}
					if n := testing.AllocsPerRun(runs, dummy); n != 0 {
						t.Errorf("SealDummy: %v allocs/op", n)
					}

					// Open needs a new sequence number each time: seal
					// runs+1 packets first.
					wires := make([][]byte, runs+1)
					for i := range wires {
						wires[i] = sealed(t, o, plain)
					}
					espOff := espOffsetOf(wires[0])
					i := 0
					openOne := func() {
						b.Set(wires[i])
						i++
						if _, v := in.Open(b, espOff); v != OK {
							t.Fatal(v)
						}
					}
					if n := testing.AllocsPerRun(runs, openOne); n != 0 {
						t.Errorf("Open: %v allocs/op", n)
					}
					// Drops do not allocate either.
					bad := func() {
						b.Set(wires[0])
						b.Bytes()[len(wires[0])-1] ^= 1
						if _, v := in.Open(b, espOff); v != DropReplay {
							t.Fatal(v)
						}
					}
					if n := testing.AllocsPerRun(runs, bad); n != 0 {
						t.Errorf("Open (replayed): %v allocs/op", n)
					}
				})
			}
		}
	}
}

// TestZeroAllocsICVFailure: a forged packet costs no allocation.
func TestZeroAllocsICVFailure(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	for _, alg := range allAlgorithms {
		o, in := newPair(t, testParams(alg, Tunnel, 4, true))
		w := sealed(t, o, ipv4UDP(500))
		w[len(w)-1] ^= 1
		b := new(pkt.Buf)
		n := testing.AllocsPerRun(100, func() {
			b.Set(w)
			if _, v := in.Open(b, 20); v != DropICV {
				t.Fatal(v)
			}
		})
		if n != 0 {
			t.Errorf("%v: Open (forged): %v allocs/op", alg, n)
		}
	}
}
