package esp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// replayStep is one packet fed to a Replay and whether it must be accepted.
type replayStep struct {
	Seq uint64
	OK  bool
}

// replayDeliver plays one packet carrying seq through Check, the simulated
// ICV and Accept, as Open does, and reports whether it was accepted. The
// ICV passes only if Check inferred the sequence number the sender used
// (under ESN the high half is part of the ICV, RFC 4303 §2.2.1). In 32-bit
// mode a seq above 2^32-1 cannot be on the wire; it goes to Accept alone.
// It also cross-checks Check against Accept: single-threaded, Accept must
// agree with Check, and must refuse (changing nothing) what Check refused.
func replayDeliver(t *testing.T, r *Replay, seq uint64) bool {
	t.Helper()
	if !r.esn && seq > math.MaxUint32 {
		return r.Accept(seq)
	}
	got, ok := r.Check(uint32(seq))
	if got != seq {
		return false // wrong high half: the ICV fails, Accept is never called
	}
	before := replaySnapshot(r)
	acc := r.Accept(seq)
	if acc != ok {
		t.Errorf("seq %#x: Check ok=%v but Accept=%v", seq, ok, acc)
	}
	if !acc {
		if diff := cmp.Diff(before, replaySnapshot(r)); diff != "" {
			t.Errorf("seq %#x: refused Accept changed the window (-before +after):\n%s", seq, diff)
		}
	}
	return acc
}

// replayState is a copy of a Replay's window for comparisons.
type replayState struct {
	T    uint64
	Ring []uint64
}

func replaySnapshot(r *Replay) replayState {
	s := replayState{T: r.Highest(), Ring: make([]uint64, len(r.ring))}
	for i := range r.ring {
		s.Ring[i] = r.ring[i].Load()
	}
	return s
}

func newReplay(t testing.TB, window int, esn bool) *Replay {
	t.Helper()
	r := new(Replay)
	if err := r.Init(window, esn); err != nil {
		t.Fatalf("Init(%d, %v): %v", window, esn, err)
	}
	return r
}

func TestReplayInit(t *testing.T) {
	tests := []struct {
		window     int
		wantErr    bool
		wantWindow int
		wantBlocks int // ring blocks M: smallest power of two with (M-1)*64 >= W
	}{
		{window: 0, wantWindow: DefaultReplayWindow, wantBlocks: 32},
		{window: -1, wantErr: true},
		{window: MinReplayWindow - 1, wantErr: true},
		{window: MaxReplayWindow + 1, wantErr: true},
		{window: math.MaxInt, wantErr: true},
		{window: 32, wantWindow: 32, wantBlocks: 2},
		{window: 64, wantWindow: 64, wantBlocks: 2},
		{window: 65, wantWindow: 65, wantBlocks: 4},
		{window: 192, wantWindow: 192, wantBlocks: 4},
		{window: 193, wantWindow: 193, wantBlocks: 8},
		{window: 1000, wantWindow: 1000, wantBlocks: 32},
		{window: 1024, wantWindow: 1024, wantBlocks: 32},
		{window: 4096, wantWindow: 4096, wantBlocks: 128},
		{window: 8192, wantWindow: 8192, wantBlocks: 256},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.window), func(t *testing.T) {
			var r Replay
			err := r.Init(tt.window, false)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Init(%d) error = %v, want error %v", tt.window, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got := r.Window(); got != tt.wantWindow {
				t.Errorf("Window() = %d, want %d", got, tt.wantWindow)
			}
			if got := len(r.ring); got != tt.wantBlocks {
				t.Errorf("ring blocks = %d, want %d", got, tt.wantBlocks)
			}
			if r.Highest() != 0 {
				t.Errorf("Highest() = %d after Init, want 0", r.Highest())
			}
		})
	}
}

// wgSteps ports the main sequence of wireguard-go replay/replay_test.go
// (itself from the Linux kernel) to RFC 4303 semantics for window w:
// WireGuard counts from 0 and accepts T-n <= windowSize, ESP counts from 1
// and accepts T-s < W, so counter n is sequence number n+1 and
// windowSize = w-1 (T_LIM = windowSize+1 = w). WireGuard's reject limit
// (counter >= RejectAfterMessages) becomes the 32-bit space: ESP never
// carries a sequence number >= 2^32 without ESN, so rej = 2^32-1.
func wgSteps(w uint64) []replayStep {
	const rej = 1<<32 - 1
	lim := w
	s := func(n uint64, ok bool) replayStep { return replayStep{Seq: n + 1, OK: ok} }
	return []replayStep{
		s(0, true),              //  1
		s(1, true),              //  2
		s(1, false),             //  3
		s(9, true),              //  4
		s(8, true),              //  5
		s(7, true),              //  6
		s(7, false),             //  7
		s(lim, true),            //  8
		s(lim-1, true),          //  9
		s(lim-1, false),         // 10
		s(lim-2, true),          // 11
		s(2, true),              // 12
		s(2, false),             // 13
		s(lim+16, true),         // 14
		s(3, false),             // 15
		s(lim+16, false),        // 16
		s(lim*4, true),          // 17
		s(lim*4-(lim-1), true),  // 18
		s(10, false),            // 19
		s(lim*4-lim, false),     // 20
		s(lim*4-(lim+1), false), // 21
		s(lim*4-(lim-2), true),  // 22
		s(lim*4+1-lim, false),   // 23
		s(0, false),             // 24
		s(rej, false),           // 25
		s(rej-1, true),          // 26
		s(rej, false),           // 27
		s(rej-1, false),         // 28
		s(rej-2, true),          // 29
		s(rej+1, false),         // 30
		s(rej+2, false),         // 31
		s(rej-2, false),         // 32
		s(rej-3, true),          // 33
		s(0, false),             // 34
	}
}

// wgBulk ports the six bulk tests of wireguard-go replay_test.go, mapped as
// in wgSteps (windowSize = w-1, counter n is seq n+1).
func wgBulk(w uint64) map[string][]replayStep {
	s := func(n uint64, ok bool) replayStep { return replayStep{Seq: n + 1, OK: ok} }
	up := func(from, to uint64) (st []replayStep) {
		for n := from; n <= to; n++ {
			st = append(st, s(n, true))
		}
		return st
	}
	down := func(from, to uint64) (st []replayStep) {
		for n := from; n >= to; n-- {
			st = append(st, s(n, true))
		}
		return st
	}
	ws := w - 1
	return map[string][]replayStep{
		"bulk1": append(up(1, ws), s(0, true), s(0, false)),
		"bulk2": append(up(2, ws+1), s(1, true), s(0, false)),
		"bulk3": down(ws+1, 1),
		"bulk4": append(down(ws+2, 2), s(0, false)),
		"bulk5": append(down(ws, 1), s(ws+1, true), s(0, false)),
		"bulk6": append(down(ws, 1), s(0, true), s(ws+1, true)),
	}
}

func TestReplayWireGuardVectors(t *testing.T) {
	for _, w := range []uint64{32, 64, 1000, 1024, 8192} {
		for _, esn := range []bool{false, true} {
			// Under ESN there is no 2^32 limit, and sequence numbers
			// more than W behind T are read as the next subspace (RFC
			// 4303 App. A2.2), fail the ICV and are dropped all the
			// same. Shift the vectors up so they cross 2^32, and stop
			// before the 32-bit limit rows.
			var base uint64
			main := wgSteps(w)
			if esn {
				base = 1<<32 - 4*w
				main = main[:24]
			}
			cases := wgBulk(w)
			cases["main"] = main
			for name, steps := range cases {
				t.Run(fmt.Sprintf("w=%d/esn=%v/%s", w, esn, name), func(t *testing.T) {
					r := newReplay(t, int(w), esn)
					var want, got []replayStep
					for _, st := range steps {
						st.Seq += base
						want = append(want, st)
						got = append(got, replayStep{Seq: st.Seq, OK: replayDeliver(t, r, st.Seq)})
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("(-want +got):\n%s", diff)
					}
				})
			}
		}
	}
}

// TestReplayESN covers RFC 4303 App. A2.2: which high half Check infers,
// and the rejections it makes before any crypto.
func TestReplayESN(t *testing.T) {
	const (
		b32 = uint64(1) << 32
		max = uint64(math.MaxUint64)
	)
	tests := []struct {
		name   string
		window int
		esn    bool
		setup  []uint64 // accepted first, in order
		lo     uint32
		want   replayStep
	}{
		{name: "32-bit/seq 0 rejected", window: 64, lo: 0, want: replayStep{0, false}},
		{name: "32-bit/seq 0 rejected after traffic", window: 64, setup: []uint64{5}, lo: 0, want: replayStep{0, false}},
		{name: "32-bit/last seq", window: 64, setup: []uint64{5}, lo: math.MaxUint32, want: replayStep{math.MaxUint32, true}},
		{name: "32-bit/left edge W=1000", window: 1000, setup: []uint64{5000}, lo: 4001, want: replayStep{4001, true}},
		{name: "32-bit/one past left edge W=1000", window: 1000, setup: []uint64{5000}, lo: 4000, want: replayStep{4000, false}},

		{name: "ESN/fresh/seq 0 rejected", window: 64, esn: true, lo: 0, want: replayStep{0, false}},
		{name: "ESN/fresh/first packet", window: 64, esn: true, lo: 1, want: replayStep{1, true}},
		{name: "ESN/Th=0 case B/Th-1 branch rejected (top)", window: 64, esn: true, lo: math.MaxUint32, want: replayStep{0, false}},
		{name: "ESN/Th=0 case B/Th-1 branch rejected (Bl)", window: 64, esn: true, lo: math.MaxUint32 - 62, want: replayStep{0, false}},
		{name: "ESN/Th=0 case B/below Bl is Th", window: 64, esn: true, lo: math.MaxUint32 - 63, want: replayStep{b32 - 64, true}},
		{name: "ESN/Th=0 case B after traffic/Th-1 rejected", window: 64, esn: true, setup: []uint64{10}, lo: uint32(b32 - 53), want: replayStep{0, false}},
		{name: "ESN/Th=0 case B after traffic/in window", window: 64, esn: true, setup: []uint64{10}, lo: 9, want: replayStep{9, true}},
		{name: "ESN/Th=0 case B after traffic/duplicate", window: 64, esn: true, setup: []uint64{10}, lo: 10, want: replayStep{10, false}},

		{name: "ESN/case A/same subspace left edge", window: 64, esn: true, setup: []uint64{0xFFFFFFF0}, lo: 0xFFFFFFF0 - 63, want: replayStep{0xFFFFFFF0 - 63, true}},
		{name: "ESN/case A/left of window is Th+1", window: 64, esn: true, setup: []uint64{0xFFFFFFF0}, lo: 0xFFFFFFF0 - 64, want: replayStep{b32 | (0xFFFFFFF0 - 64), true}},
		{name: "ESN/case A/next subspace", window: 64, esn: true, setup: []uint64{0xFFFFFFF0}, lo: 3, want: replayStep{b32 | 3, true}},
		{name: "ESN/case A/low half 0 in next subspace", window: 64, esn: true, setup: []uint64{b32 - 3}, lo: 0, want: replayStep{b32, true}},
		{name: "ESN/case A/duplicate", window: 64, esn: true, setup: []uint64{0xFFFFFFF0}, lo: 0xFFFFFFF0, want: replayStep{0xFFFFFFF0, false}},

		{name: "ESN/case B/Th-1 in window", window: 64, esn: true, setup: []uint64{b32 + 10}, lo: 0xFFFFFFF0, want: replayStep{0xFFFFFFF0, true}},
		{name: "ESN/case B/Th-1 left edge", window: 64, esn: true, setup: []uint64{b32 + 10}, lo: uint32(b32 - 53), want: replayStep{b32 - 53, true}},
		{name: "ESN/case B/left of window is Th", window: 64, esn: true, setup: []uint64{b32 + 10}, lo: uint32(b32 - 54), want: replayStep{b32 | (b32 - 54), true}},
		{name: "ESN/case B/Th below T", window: 64, esn: true, setup: []uint64{b32 + 10}, lo: 5, want: replayStep{b32 | 5, true}},
		{name: "ESN/case B/low half 0", window: 64, esn: true, setup: []uint64{b32 + 10}, lo: 0, want: replayStep{b32, true}},
		{name: "ESN/case B/low half 0 duplicate", window: 64, esn: true, setup: []uint64{b32, b32 + 10}, lo: 0, want: replayStep{b32, false}},
		{name: "ESN/case B/Th-1 duplicate", window: 64, esn: true, setup: []uint64{0xFFFFFFF0, b32 | 3}, lo: 0xFFFFFFF0, want: replayStep{0xFFFFFFF0, false}},
		{name: "ESN/case B/Th-1 fresh", window: 64, esn: true, setup: []uint64{0xFFFFFFF0, b32 | 3}, lo: 0xFFFFFFF1, want: replayStep{0xFFFFFFF1, true}},
		{name: "ESN/case B/W=1000 left edge", window: 1000, esn: true, setup: []uint64{b32 + 500}, lo: uint32(b32 - 499), want: replayStep{b32 - 499, true}},
		{name: "ESN/case B/W=1000 past left edge is Th", window: 1000, esn: true, setup: []uint64{b32 + 500}, lo: uint32(b32 - 500), want: replayStep{b32 | (b32 - 500), true}},
		{name: "ESN/case B/Th=5", window: 1024, esn: true, setup: []uint64{5<<32 | 100}, lo: math.MaxUint32, want: replayStep{4<<32 | math.MaxUint32, true}},

		{name: "ESN/Th max/Th+1 rejected", window: 64, esn: true, setup: []uint64{max - 10}, lo: 3, want: replayStep{0, false}},
		{name: "ESN/Th max/last seq", window: 64, esn: true, setup: []uint64{max - 10}, lo: math.MaxUint32, want: replayStep{max, true}},
		{name: "ESN/Th max/in window", window: 64, esn: true, setup: []uint64{max - 10}, lo: math.MaxUint32 - 20, want: replayStep{max - 20, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplay(t, tt.window, tt.esn)
			for _, s := range tt.setup {
				if !r.Accept(s) {
					t.Fatalf("setup Accept(%#x) = false", s)
				}
			}
			seq, ok := r.Check(tt.lo)
			if diff := cmp.Diff(tt.want, replayStep{seq, ok}); diff != "" {
				t.Fatalf("Check(%#x) (-want +got):\n%s", tt.lo, diff)
			}
			if ok {
				if !r.Accept(seq) {
					t.Fatalf("Accept(%#x) = false after Check ok", seq)
				}
				if _, ok := r.Check(tt.lo); ok {
					t.Errorf("Check(%#x) still ok after Accept", tt.lo)
				}
			}
		})
	}
}

// TestReplayCheckIsPure: Check never changes the window, so a packet
// checked twice without Accept is still ok (RFC 4303 §3.4.3: the window
// moves only after integrity succeeds).
func TestReplayCheckIsPure(t *testing.T) {
	for _, esn := range []bool{false, true} {
		t.Run(fmt.Sprintf("esn=%v", esn), func(t *testing.T) {
			r := newReplay(t, 64, esn)
			for _, s := range []uint64{1, 2, 3, 70, 100} {
				r.Accept(s)
			}
			before := replaySnapshot(r)
			for _, lo := range []uint32{0, 1, 50, 99, 101, 1000, math.MaxUint32, 37, 36} {
				seq1, ok1 := r.Check(lo)
				seq2, ok2 := r.Check(lo)
				if seq1 != seq2 || ok1 != ok2 {
					t.Errorf("Check(%d) = (%d,%v) then (%d,%v)", lo, seq1, ok1, seq2, ok2)
				}
			}
			if diff := cmp.Diff(before, replaySnapshot(r)); diff != "" {
				t.Errorf("Check changed the window (-before +after):\n%s", diff)
			}
		})
	}
}

// TestReplayFailedICV: a packet that passes Check but fails integrity is
// never given to Accept and leaves no trace; the genuine packet with the
// same sequence number is then accepted.
func TestReplayFailedICV(t *testing.T) {
	for _, esn := range []bool{false, true} {
		t.Run(fmt.Sprintf("esn=%v", esn), func(t *testing.T) {
			r := newReplay(t, 1024, esn)
			for s := uint64(1); s <= 100; s++ {
				r.Accept(s)
			}
			before := replaySnapshot(r)
			for _, lo := range []uint32{5000, 101, 1 << 31} { // forged: ahead, next, far ahead
				if _, ok := r.Check(lo); !ok {
					t.Fatalf("Check(%d) = false", lo)
				}
				// ICV fails: no Accept.
			}
			if diff := cmp.Diff(before, replaySnapshot(r)); diff != "" {
				t.Fatalf("window changed without Accept (-before +after):\n%s", diff)
			}
			if !replayDeliver(t, r, 101) || r.Highest() != 101 {
				t.Errorf("genuine 101 not accepted, Highest = %d", r.Highest())
			}
			if !replayDeliver(t, r, 5000) || r.Highest() != 5000 {
				t.Errorf("genuine 5000 not accepted, Highest = %d", r.Highest())
			}
		})
	}
}

// TestReplayJumps: advancing T by exactly a window, a ring and more
// (RFC 6479 §2: zero every block passed over, all of them on a jump of
// a whole ring) leaves only the new T marked.
func TestReplayJumps(t *testing.T) {
	for _, w := range []int{32, 1000, 1024, 8192} {
		for _, esn := range []bool{false, true} {
			r := newReplay(t, w, esn)
			ring := uint64(len(r.ring)) * replayBlockBits
			jumps := []uint64{uint64(w) - 1, uint64(w), uint64(w) + 1, ring - 65, ring - 64, ring - 63, ring - 1, ring, ring + 1, 2 * ring, 1 << 20, 1 << 31}
			if esn {
				jumps = append(jumps, 1<<40, 1<<63)
			}
			for _, j := range jumps {
				t.Run(fmt.Sprintf("w=%d/esn=%v/jump=%d", w, esn, j), func(t *testing.T) {
					r := newReplay(t, w, esn)
					start := uint64(1000)
					for s := start; s < start+ring+64; s++ { // fill every bit of the ring
						r.Accept(s)
					}
					top := r.Highest()
					if !r.Accept(top + j) {
						t.Fatalf("Accept(T+%d) = false", j)
					}
					T := top + j
					// Seqs in (T-W, T) are fresh unless they were accepted
					// before the jump.
					for d := uint64(1); d < uint64(w); d++ {
						s := T - d
						wantSeen := s >= start && s <= top
						if got := !replayCheck64(r, s); got != wantSeen {
							t.Fatalf("after jump %d: seq T-%d seen = %v, want %v", j, d, got, wantSeen)
						}
					}
					if replayCheck64(r, T) {
						t.Errorf("T itself still ok")
					}
					if replayCheck64(r, T-uint64(w)) {
						t.Errorf("T-W ok, want too old")
					}
					// Blocks after top's up to T's were zeroed (all M of them
					// when T moved a whole ring); older blocks keep their bits.
					M := uint64(len(r.ring))
					wantBits := 1
					for s := start; s <= top; s++ {
						if s>>replayBlockLog+M > T>>replayBlockLog {
							wantBits++
						}
					}
					var bits int
					for i := range r.ring {
						for v := r.ring[i].Load(); v != 0; v &= v - 1 {
							bits++
						}
					}
					if bits != wantBits {
						t.Errorf("ring holds %d bits after a jump of %d, want %d", bits, j, wantBits)
					}
				})
			}
		}
	}
}

// replayCheck64 asks Check about a full sequence number known to be
// inferable (within the window or just ahead of it) and says whether it
// would pass.
func replayCheck64(r *Replay, s uint64) bool {
	got, ok := r.Check(uint32(s))
	if r.esn && got != s {
		return false
	}
	return ok
}

func TestReplayAcceptRejects(t *testing.T) {
	r := newReplay(t, 64, false)
	for _, s := range []uint64{0, 1 << 32, math.MaxUint64} {
		if r.Accept(s) {
			t.Errorf("32-bit Accept(%#x) = true", s)
		}
	}
	if r.Highest() != 0 {
		t.Fatalf("Highest = %d", r.Highest())
	}
	r = newReplay(t, 64, true)
	if r.Accept(0) {
		t.Errorf("ESN Accept(0) = true")
	}
	if !r.Accept(1<<32) || r.Accept(1<<32) {
		t.Errorf("ESN Accept(2^32) twice: want true then false")
	}
	if r.Accept(1<<32 - 64) {
		t.Errorf("ESN Accept(T-W) = true")
	}
	if !r.Accept(1<<32 - 63) {
		t.Errorf("ESN Accept(T-W+1) = false")
	}
}

// replayModel is RFC 4303 §3.4.3 and App. A2.2 written the slow, obvious
// way: a set of accepted sequence numbers, and the high half chosen so the
// sequence number falls in [T-W+1, T-W+1+2^32).
type replayModel struct {
	w, t uint64
	esn  bool
	seen map[uint64]bool
	n    int
}

func (m *replayModel) infer(lo uint32) (uint64, bool) {
	if !m.esn {
		return uint64(lo), lo != 0
	}
	var s uint64
	if m.t+1 >= m.w {
		base := m.t + 1 - m.w
		s = base + uint64(lo-uint32(base))
		if s < base {
			return 0, false // past 2^64-1
		}
	} else {
		// base = T+1-W < 0: seqs below 0 would be before the SA began.
		neg := m.w - m.t - 1
		off := uint64(lo + uint32(neg)) // lo - base mod 2^32
		if off < neg {
			return 0, false
		}
		s = off - neg
	}
	return s, s != 0
}

func (m *replayModel) check(lo uint32) (uint64, bool) {
	s, ok := m.infer(lo)
	if !ok {
		return 0, false
	}
	switch {
	case s > m.t:
		return s, true
	case m.t-s >= m.w:
		return s, false
	}
	return s, !m.seen[s]
}

func (m *replayModel) accept(s uint64) bool {
	if s == 0 || (!m.esn && s > math.MaxUint32) {
		return false
	}
	if s <= m.t && (m.t-s >= m.w || m.seen[s]) {
		return false
	}
	if s > m.t {
		m.t = s
	}
	m.seen[s] = true
	if m.n++; m.n%4096 == 0 {
		for k := range m.seen {
			if m.t-k >= m.w {
				delete(m.seen, k)
			}
		}
	}
	return true
}

// TestReplayModel runs random traffic (in order, reordered, duplicated,
// too old, forged, small gaps and big jumps) through Replay and the model
// with a seeded RNG, and compares every Check, Accept and T, sweeping the
// whole window now and then.
func TestReplayModel(t *testing.T) {
	steps := 20000
	if testing.Short() {
		steps = 3000
	}
	for _, w := range []uint64{32, 64, 1000, 1024, 4096, 8192} {
		for _, esn := range []bool{false, true} {
			starts := []uint64{1, 1<<32 - 200000}
			if esn {
				starts = append(starts, 7<<32-3*w)
			}
			for _, start := range starts {
				name := fmt.Sprintf("w=%d/esn=%v/start=%#x", w, esn, start)
				t.Run(name, func(t *testing.T) {
					rng := rand.New(rand.NewPCG(w, start))
					r := newReplay(t, int(w), esn)
					m := &replayModel{w: w, esn: esn, seen: map[uint64]bool{}}
					if start > 1 {
						// Move T next to start (under ESN, into its subspace).
						r.Accept(start - 1)
						m.accept(start - 1)
					}
					ring := uint64(len(r.ring)) * replayBlockBits
					next := start
					var recent [64]uint64
					for i := range steps {
						var seq uint64
						icv := true
						switch x := rng.IntN(1000); {
						case x < 500: // in order
							seq = next
							next++
						case x < 750: // reordered, duplicate or too old
							back := 1 + rng.Uint64N(2*w+64)
							if back >= next {
								back = next - 1
							}
							seq = next - back
						case x < 850: // gap
							next += rng.Uint64N(2 * w)
							seq = next
							next++
						case x < 900: // forged or corrupted: Check only
							seq = next + rng.Uint64N(4*w) - 2*w
							icv = false
						case x < 950: // duplicate of a recent one
							seq = recent[rng.IntN(len(recent))]
						default: // big jump
							jumps := []uint64{w - 1, w, w + 1, ring - 1, ring, ring + 1, 2 * ring, rng.Uint64N(1 << 20)}
							if esn {
								jumps = append(jumps, 1<<31+rng.Uint64N(1<<30))
							}
							next += jumps[rng.IntN(len(jumps))]
							seq = next
							next++
						}
						if !esn && next > math.MaxUint32 {
							break
						}
						recent[i%len(recent)] = seq
						lo := uint32(seq)
						gotS, gotOK := r.Check(lo)
						wantS, wantOK := m.check(lo)
						if gotOK != wantOK || (wantOK && gotS != wantS) {
							t.Fatalf("step %d: Check(%#x) [seq %#x, T %#x] = (%#x, %v), model (%#x, %v)", i, lo, seq, m.t, gotS, gotOK, wantS, wantOK)
						}
						if gotOK && icv && gotS == seq {
							got, want := r.Accept(seq), m.accept(seq)
							if got != want {
								t.Fatalf("step %d: Accept(%#x) = %v, model %v", i, seq, got, want)
							}
						}
						if r.Highest() != m.t {
							t.Fatalf("step %d: Highest = %#x, model %#x", i, r.Highest(), m.t)
						}
						if i%1000 == 999 {
							replaySweep(t, r, m)
						}
					}
					replaySweep(t, r, m)
				})
			}
		}
	}
}

// replaySweep compares Check with the model for every low half from T
// down to past the left edge of the window.
func replaySweep(t *testing.T, r *Replay, m *replayModel) {
	t.Helper()
	for d := range m.w + 2*replayBlockBits {
		lo := uint32(m.t - d)
		gotS, gotOK := r.Check(lo)
		wantS, wantOK := m.check(lo)
		if gotOK != wantOK || (wantOK && gotS != wantS) {
			t.Fatalf("sweep T-%d: Check(%#x) = (%#x, %v), model (%#x, %v)", d, lo, gotS, gotOK, wantS, wantOK)
		}
	}
}

// TestReplayConcurrent: G workers call Check then Accept on one Replay, as
// parallel decryption workers do, and every sequence number is delivered
// by several of them. Each must be accepted exactly once.
func TestReplayConcurrent(t *testing.T) {
	const (
		workers = 8
		copies  = 3
	)
	n := uint64(40000)
	if testing.Short() {
		n = 8000
	}
	for _, tc := range []struct {
		w     int
		esn   bool
		start uint64
	}{
		{64, false, 1},
		{1024, false, 1},
		{1024, true, 1<<32 - n/2}, // crosses into the next 2^32 subspace
		{8192, true, 5<<32 - n/2},
	} {
		// Batched: each batch of w/2 seqs is spread over the workers,
		// each shuffled; all finish a batch before the next starts, so
		// no seq can fall out of the window and every one must be
		// accepted exactly once.
		t.Run(fmt.Sprintf("batched/w=%d/esn=%v", tc.w, tc.esn), func(t *testing.T) {
			r := newReplay(t, tc.w, tc.esn)
			replayPrime(t, r, tc.start)
			rng := rand.New(rand.NewPCG(uint64(tc.w), tc.start))
			batch := uint64(tc.w / 2)
			counts := make([]atomic.Int32, n)
			for lo := uint64(0); lo < n; lo += batch {
				hi := min(lo+batch, n)
				var lists [workers][]uint64
				for i := lo; i < hi; i++ {
					for _, g := range rng.Perm(workers)[:copies] {
						lists[g] = append(lists[g], tc.start+i)
					}
				}
				var wg sync.WaitGroup
				for g := range lists {
					l := lists[g]
					rng.Shuffle(len(l), func(i, j int) { l[i], l[j] = l[j], l[i] })
					wg.Go(func() { replayWorker(t, r, l, tc.start, counts, true) })
				}
				wg.Wait()
			}
			replayCounts(t, r, counts, tc.start, true)
		})
		// Free-running: every worker delivers every seq in the same
		// order, with no barrier. The first worker to reach s always
		// finds it in the window (whoever moved T past s+W went through
		// s first), so again exactly once; this maximises collisions.
		t.Run(fmt.Sprintf("free/w=%d/esn=%v", tc.w, tc.esn), func(t *testing.T) {
			r := newReplay(t, tc.w, tc.esn)
			replayPrime(t, r, tc.start)
			l := make([]uint64, n)
			for i := range l {
				l[i] = tc.start + uint64(i)
			}
			counts := make([]atomic.Int32, n)
			var wg, reader sync.WaitGroup
			done := make(chan struct{})
			for range workers {
				wg.Go(func() { replayWorker(t, r, l, tc.start, counts, false) })
			}
			reader.Go(func() { // a reader of Highest, as stats code would be
				var prev uint64
				for {
					select {
					case <-done:
						return
					default:
					}
					h := r.Highest()
					if h < prev {
						t.Errorf("Highest went back from %#x to %#x", prev, h)
						return
					}
					prev = h
				}
			})
			wg.Wait()
			close(done)
			reader.Wait()
			replayCounts(t, r, counts, tc.start, true)
		})
		// Free-running with shuffled, independent lists: no guarantee
		// that every seq is accepted (a slow worker's copy may fall out
		// of the window), but never twice.
		t.Run(fmt.Sprintf("shuffled/w=%d/esn=%v", tc.w, tc.esn), func(t *testing.T) {
			r := newReplay(t, tc.w, tc.esn)
			replayPrime(t, r, tc.start)
			rng := rand.New(rand.NewPCG(uint64(tc.w), ^tc.start))
			var lists [workers][]uint64
			for i := range n {
				for _, g := range rng.Perm(workers)[:copies] {
					lists[g] = append(lists[g], tc.start+i)
				}
			}
			for _, l := range lists {
				for i := range l { // local reordering within 64 slots
					j := min(i+rng.IntN(64), len(l)-1)
					l[i], l[j] = l[j], l[i]
				}
			}
			counts := make([]atomic.Int32, n)
			var wg sync.WaitGroup
			for _, l := range lists {
				wg.Go(func() { replayWorker(t, r, l, tc.start, counts, false) })
			}
			wg.Wait()
			replayCounts(t, r, counts, tc.start, false)
		})
	}
}

// replayPrime moves T to start-1 so Check infers high halves near start.
func replayPrime(t *testing.T, r *Replay, start uint64) {
	t.Helper()
	if start > 1 && !r.Accept(start-1) {
		t.Fatalf("Accept(%#x) = false", start-1)
	}
}

// replayWorker plays a decryption worker: Check, then (the ICV passing
// only for the right high half) Accept, counting acceptances per seq. A
// worker lagging more than W behind T sees its ESN packets inferred into
// the next subspace (RFC 4303 App. A2.2), so they fail the ICV; strict
// says that must not happen.
func replayWorker(t *testing.T, r *Replay, seqs []uint64, start uint64, counts []atomic.Int32, strict bool) {
	for _, s := range seqs {
		got, ok := r.Check(uint32(s))
		if !ok {
			continue
		}
		if got != s {
			if strict {
				t.Errorf("Check(%#x) inferred %#x, want %#x", uint32(s), got, s)
				return
			}
			continue
		}
		if r.Accept(got) {
			counts[s-start].Add(1)
		}
	}
}

func replayCounts(t *testing.T, r *Replay, counts []atomic.Int32, start uint64, all bool) {
	t.Helper()
	var missing, dup int
	for i := range counts {
		switch c := counts[i].Load(); {
		case c > 1:
			dup++
			if dup < 5 {
				t.Errorf("seq %#x accepted %d times", start+uint64(i), c)
			}
		case c == 0 && all:
			missing++
			if missing < 5 {
				t.Errorf("seq %#x never accepted", start+uint64(i))
			}
		}
	}
	if dup+missing > 0 {
		t.Errorf("%d seqs accepted more than once, %d never", dup, missing)
	}
	if want := start + uint64(len(counts)) - 1; r.Highest() != want {
		t.Errorf("Highest = %#x, want %#x", r.Highest(), want)
	}
}

func TestReplayAllocs(t *testing.T) {
	if replayRaceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	for _, esn := range []bool{false, true} {
		r := newReplay(t, DefaultReplayWindow, esn)
		var i uint32
		allocs := testing.AllocsPerRun(1000, func() {
			i++
			for _, lo := range [...]uint32{i * 3, i*3 - 70, i*3 + 1} {
				if s, ok := r.Check(lo); ok {
					r.Accept(s)
				}
			}
			r.Highest()
		})
		if allocs != 0 {
			t.Errorf("esn=%v: %v allocs per Check+Accept, want 0", esn, allocs)
		}
	}
}
