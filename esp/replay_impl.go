package esp

// Anti-replay window: RFC 4303 §3.4.3 (32-bit sequence numbers) and App. A
// (ESN), kept as the RFC 6479 ring of bit blocks.
//
// Ring layout. The window is a ring of M blocks of 64 bits (M a power of
// two, M >= 2). Sequence number s owns bit s&63 of block (s>>6)&(M-1): the
// position depends only on s, so advancing T never shifts bits, it only
// zeroes the blocks that T moves into (RFC 6479 §2). One block is redundant
// (the block of T is only partly in use), so M is the smallest power of two
// with (M-1)*64 >= W:
//
//	W = 32, 64        M = 2      128 bits
//	W = 1000, 1024    M = 32    2048 bits
//	W = 8192          M = 256  16384 bits
//
// Only the requested W decides "too old": T-s >= W rejects (RFC 4303
// §3.4.3), not the rounded-up ring, unlike the RFC 6479 sample code.
//
// Concurrency. Parallel decryption workers call Check and Accept on one SA
// at the same time.
//
//   - Accept holds r.mu for the whole read-modify-write of T and the ring, so
//     the updates of two Accepts never interleave: each sequence number is
//     accepted at most once, and "too old" is judged against the T of the
//     moment. Inside the lock, T and the blocks are written with atomic
//     stores in this order: (1) zero the blocks T moves into, (2) store T,
//     (3) set s's bit.
//   - Check takes no lock. It loads T once, then at most one block. A stale
//     "ok" only costs a wasted decryption: Accept re-checks under the lock.
//     A "reject" is always justified at the instant of one of its loads:
//     T never decreases, so "too old" against a loaded T stays true. A set
//     bit found for s (with s <= T and T-s < W for the loaded T) was set by
//     Accept(s) itself, or by Accept(s') for s' = s+64kM, k >= 1, which
//     stored T >= s' > s+W before setting the bit, so s was already too old
//     when the bit was read. It cannot be left over from an older
//     s' = s-64kM: T < s+64(M-1) means s's slot still stands for s's block,
//     and that block was zeroed (1) before T was first stored inside or
//     past it (2), a store at or before the T that Check loaded. Go's
//     atomics are sequentially consistent, which orders these steps.
//
// Check never blocks. Accept waits only on other Accepts, each a few
// nanoseconds (at most M block stores on a jump).

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

const (
	replayBlockBits = 64 // bits per ring block (RFC 6479 "N")
	replayBlockLog  = 6  // log2(replayBlockBits)
)

// Replay is an RFC 4303 anti-replay window kept as an RFC 6479 bitmap
// ring. The zero value is not usable: call Init. Embedded by value in an
// SA; must not be copied after Init.
//
// Check and Accept are safe for concurrent use by several goroutines (see
// the file comment for the locking argument). Init is not: call it before
// the Replay is shared.
type Replay struct {
	// highest is T, the highest sequence number that passed integrity
	// (RFC 4303 §3.4.3), 0 before the first packet. Written under mu.
	highest atomic.Uint64
	// ring holds M blocks; bit s&63 of ring[(s>>6)&mask] says s was
	// accepted, for s in (T-W, T]. Written under mu.
	ring   []atomic.Uint64
	mask   uint64 // M-1
	window uint64 // W, the requested window in packets
	esn    bool   // RFC 4303 §2.2.1 extended sequence numbers
	mu     sync.Mutex
}

// Init sets the window to window packets (0 means DefaultReplayWindow) and
// resets T to 0 with nothing seen. window must lie in [MinReplayWindow,
// MaxReplayWindow]: RFC 4303 §3.4.3 requires at least 32, and App. A
// assumes W <= 2^31. esn selects the 64-bit sequence space of RFC 4303
// §2.2.1 and App. A. Init allocates the ring; it must not run concurrently
// with Check or Accept.
func (r *Replay) Init(window int, esn bool) error {
	if window == 0 {
		window = DefaultReplayWindow
	}
	if window < MinReplayWindow || window > MaxReplayWindow {
		return fmt.Errorf("esp: replay window %d outside [%d, %d]", window, MinReplayWindow, MaxReplayWindow)
	}
	// Smallest power of two M with (M-1)*64 >= window (RFC 6479 §2: one
	// redundant block).
	need := (window+replayBlockBits-1)/replayBlockBits + 1
	m := 2
	for m < need {
		m <<= 1
	}
	r.ring = make([]atomic.Uint64, m)
	r.mask = uint64(m - 1)
	r.window = uint64(window)
	r.esn = esn
	r.highest.Store(0)
	return nil
}

// Window returns W, the window in packets as set by Init (the ring may hold
// more bits, but only W decide).
func (r *Replay) Window() int { return int(r.window) }

// Highest returns T, the highest sequence number accepted so far (0 before
// the first Accept). Under ESN it is the full 64-bit value.
func (r *Replay) Highest() uint64 { return r.highest.Load() }

// Check is the pre-integrity replay check of RFC 4303 §3.4.3 ("the receiver
// SHOULD check the window before the ICV"). seqLo is the Sequence Number
// field of the ESP header. It returns the full sequence number to feed the
// ICV (ESN: RFC 4303 §2.2.1, the high half is authenticated but not sent)
// and to pass to Accept, and ok=false if the packet is a duplicate, left of
// the window, or impossible (seq is then the inferred value, or 0 when no
// high half fits):
//
//   - 32-bit mode: seq = seqLo; 0 is never sent and is rejected.
//   - ESN: the high half is inferred as in RFC 4303 App. A2.2: with
//     Bl = Tl-W+1, Case A (Tl >= W-1, the window lies in one 2^32
//     subspace) picks Th, or Th+1 when seqLo < Bl; Case B (the window
//     straddles a subspace boundary) picks Th-1 when seqLo >= Bl, else Th.
//     In Case B with Th == 0 the Th-1 branch names sequence numbers before
//     the SA began and is rejected without crypto; Th+1 past 2^32-1 would
//     wrap the 64-bit space and is rejected too. The full value 0 is
//     rejected; a low half of 0 is legal.
//
// Check does not change the window: a packet whose ICV then fails leaves
// no trace (RFC 4303 §3.4.3: update only after integrity succeeds). Safe
// for concurrent use; an ok may be overtaken by a concurrent Accept, which
// is why Accept checks again.
func (r *Replay) Check(seqLo uint32) (seq uint64, ok bool) {
	t := r.highest.Load()
	if !r.esn {
		seq = uint64(seqLo)
	} else {
		seq, ok = r.inferESN(t, seqLo)
		if !ok {
			return seq, false
		}
	}
	if seq == 0 {
		return 0, false
	}
	if seq > t {
		return seq, true
	}
	if t-seq >= r.window {
		return seq, false
	}
	return seq, r.ring[(seq>>replayBlockLog)&r.mask].Load()&(1<<(seq&(replayBlockBits-1))) == 0
}

// inferESN reconstructs the 64-bit sequence number of RFC 4303 App. A2.2
// from T and the received low half. ok=false for the two branches that
// leave the sequence space: Th-1 with Th == 0 and Th+1 with Th == 2^32-1.
func (r *Replay) inferESN(t uint64, seqLo uint32) (uint64, bool) {
	tl, th := uint32(t), uint32(t>>32)
	w := uint32(r.window)
	bl := tl - w + 1 // mod 2^32
	seqh := th
	if tl >= w-1 {
		// Case A: window within one subspace.
		if seqLo < bl {
			if th == math.MaxUint32 {
				return 0, false
			}
			seqh = th + 1
		}
	} else {
		// Case B: window straddles the boundary below Th.
		if seqLo >= bl {
			if th == 0 {
				return 0, false
			}
			seqh = th - 1
		}
	}
	return uint64(seqh)<<32 | uint64(seqLo), true
}

// Accept records seq, the value returned by Check, after the ICV or AEAD
// tag verified (RFC 4303 §3.4.3 and App. A2.3: the window and T move only
// for authenticated packets). If seq > T it advances T to seq, zeroing the
// ring blocks it passes over (RFC 6479 §2; all of them on a jump of a
// whole ring), and marks seq. It returns false, changing nothing, if seq
// is 0, out of the SA's sequence space, left of the window or already
// accepted: another worker may have accepted the same packet between Check
// and Accept, and exactly one of them gets true. Safe for concurrent use.
func (r *Replay) Accept(seq uint64) bool {
	r.mu.Lock()
	ok := r.acceptLocked(seq)
	r.mu.Unlock()
	return ok
}

// acceptAll is Accept for each os[i] with accepted set, in order, under one
// lock; it clears accepted where Accept would return false.
func (r *Replay) acceptAll(os []Opened) {
	r.mu.Lock()
	for i := range os {
		if o := &os[i].o; o.accepted {
			o.accepted = r.acceptLocked(o.seq)
		}
	}
	r.mu.Unlock()
}

// acceptLocked is Accept with r.mu held.
func (r *Replay) acceptLocked(seq uint64) bool {
	if seq == 0 || (!r.esn && seq > math.MaxUint32) {
		return false
	}
	bit := uint64(1) << (seq & (replayBlockBits - 1))
	blk := seq >> replayBlockLog
	t := r.highest.Load()
	if seq > t {
		// (1) zero the blocks after T's up to seq's, (2) publish T,
		// (3) set the bit; Check relies on this order.
		cur := t >> replayBlockLog
		n := blk - cur
		if n > r.mask {
			n = r.mask + 1
		}
		for i := uint64(1); i <= n; i++ {
			r.ring[(cur+i)&r.mask].Store(0)
		}
		r.highest.Store(seq)
		b := &r.ring[blk&r.mask]
		b.Store(b.Load() | bit)
		return true
	}
	if t-seq >= r.window {
		return false
	}
	b := &r.ring[blk&r.mask]
	old := b.Load()
	if old&bit != 0 {
		return false
	}
	b.Store(old | bit)
	return true
}
