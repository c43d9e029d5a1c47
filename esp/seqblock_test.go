package esp

import (
	"math"
	"sync"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// sealSeqs seals n copies of ipv4UDP(10) with SealBatchSeq from blk and
// returns their verdicts and (for OK) the ESP sequence numbers.
func sealSeqs(t *testing.T, o *Outbound, blk *SeqBlock, n int, bad map[int]bool) ([]Verdict, []uint32) {
	t.Helper()
	bufs := make([]*pkt.Buf, n)
	for i := range bufs {
		bufs[i] = pkt.Get()
		defer pkt.Put(bufs[i])
		if bad[i] {
			bufs[i].Set([]byte{0x45, 0, 0}) // not an IP packet
		} else {
			bufs[i].Set(ipv4UDP(10))
		}
	}
	v := make([]Verdict, n)
	o.SealBatchSeq(bufs, v, blk)
	seqs := make([]uint32, n)
	for i, b := range bufs {
		if v[i] == OK {
			seqs[i] = header.ESP(b.Bytes()[espOffsetOf(b.Bytes()):]).Seq()
		}
	}
	return v, seqs
}

// TestReserveSeq: blocks are handed out in the order reserved, whatever the
// order they are sealed in, and Seal continues after the last block.
func TestReserveSeq(t *testing.T) {
	o, _ := newPair(t, testParams(AES128GCM16, Tunnel, 4, false))
	a, b := o.ReserveSeq(3), o.ReserveSeq(2)
	if a.Len() != 3 || b.Len() != 2 {
		t.Fatalf("blocks of %d and %d, want 3 and 2", a.Len(), b.Len())
	}
	// The later block is sealed first: its numbers are still 4 and 5.
	if _, seqs := sealSeqs(t, o, &b, 2, nil); seqs[0] != 4 || seqs[1] != 5 {
		t.Fatalf("second block sealed %v, want [4 5]", seqs)
	}
	if _, seqs := sealSeqs(t, o, &a, 3, nil); seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Fatalf("first block sealed %v, want [1 2 3]", seqs)
	}
	if a.Len() != 0 || b.Len() != 0 {
		t.Fatalf("blocks not used up: %d, %d", a.Len(), b.Len())
	}
	// An empty block is Seal: the next free number.
	if _, seqs := sealSeqs(t, o, &a, 1, nil); seqs[0] != 6 {
		t.Fatalf("after the blocks: seq %d, want 6", seqs[0])
	}
	if _, seqs := sealSeqs(t, o, nil, 1, nil); seqs[0] != 7 {
		t.Fatalf("nil block: seq %d, want 7", seqs[0])
	}
	for _, n := range []int{0, -1} {
		if k := o.ReserveSeq(n); k.Len() != 0 {
			t.Fatalf("ReserveSeq(%d) = %d numbers", n, k.Len())
		}
	}
	if o.Seq() != 7 {
		t.Fatalf("Seq = %d, want 7", o.Seq())
	}
}

// TestReserveSeqGap: a packet that cannot be sealed leaves its number
// unused; the next packet does not reuse it (numbers are never repeated,
// RFC 4303 §3.3.3, and a gap is harmless).
func TestReserveSeqGap(t *testing.T) {
	o, _ := newPair(t, testParams(AES128GCM16, Tunnel, 4, false))
	blk := o.ReserveSeq(3)
	v, seqs := sealSeqs(t, o, &blk, 3, map[int]bool{1: true})
	if v[0] != OK || v[1] != DropMalformed || v[2] != OK || seqs[0] != 1 || seqs[2] != 3 {
		t.Fatalf("verdicts %v seqs %v, want [OK malformed OK] with seqs 1 and 3", v, seqs)
	}
}

// TestReserveSeqLimits: a block stops at the owner's durable reservation
// (DropSeqReserve beyond it) and at the end of the sequence space
// (DropSeqOverflow; no wrap, RFC 4303 §3.3.3), with and without ESN.
func TestReserveSeqLimits(t *testing.T) {
	p := testParams(AES128GCM16, Tunnel, 4, false)
	p.InitialSeq = 10
	o, _ := newPair(t, p)
	o.SetSeqReserve(12)
	blk := o.ReserveSeq(5)
	if blk.Len() != 2 {
		t.Fatalf("block of %d under a reserve of 2, want 2", blk.Len())
	}
	v, seqs := sealSeqs(t, o, &blk, 5, nil)
	want := []Verdict{OK, OK, DropSeqReserve, DropSeqReserve, DropSeqReserve}
	for i := range want {
		if v[i] != want[i] {
			t.Fatalf("verdicts %v, want %v", v, want)
		}
	}
	if seqs[0] != 11 || seqs[1] != 12 || o.Seq() != 12 {
		t.Fatalf("seqs %v, Seq %d", seqs, o.Seq())
	}
	if k := o.ReserveSeq(1); k.Len() != 0 {
		t.Fatalf("a block beyond the reserve: %d", k.Len())
	}

	for _, esn := range []bool{false, true} {
		p := testParams(AES128GCM16, Tunnel, 4, esn)
		p.InitialSeq = maxSeq(esn) - 1
		o, _ := newPair(t, p)
		blk := o.ReserveSeq(3)
		if blk.Len() != 1 {
			t.Fatalf("esn %v: block of %d at the end of the space, want 1", esn, blk.Len())
		}
		v, _ := sealSeqs(t, o, &blk, 3, nil)
		if v[0] != OK || v[1] != DropSeqOverflow || v[2] != DropSeqOverflow {
			t.Fatalf("esn %v: verdicts %v", esn, v)
		}
		if o.Seq() != maxSeq(esn) || o.ReserveSeq(1).Len() != 0 {
			t.Fatalf("esn %v: Seq %#x", esn, o.Seq())
		}
	}
	if maxSeq(false) != math.MaxUint32 {
		t.Fatal("maxSeq")
	}
}

// TestReserveSeqConcurrent: blocks reserved and sealed from many goroutines
// never share a number (with AES-GCM the IV is the sequence number, so a
// repeat would reuse a nonce).
func TestReserveSeqConcurrent(t *testing.T) {
	o, _ := newPair(t, testParams(AES128GCM16, Tunnel, 4, false))
	const workers, rounds, per = 8, 50, 7
	var mu sync.Mutex
	seen := map[uint32]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				blk := o.ReserveSeq(per)
				_, seqs := sealSeqs(t, o, &blk, per+1, nil) // one beyond the block
				mu.Lock()
				for _, s := range seqs {
					if s == 0 || seen[s] {
						t.Errorf("seq %d twice or missing", s)
					}
					seen[s] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n := workers * rounds * (per + 1); len(seen) != n || o.Seq() != uint64(n) {
		t.Fatalf("%d distinct numbers, Seq %d, want %d", len(seen), o.Seq(), n)
	}
}
