package esp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mipsec/mipsec/pkt"
)

// TestOpenBatchMatchesOpen: OpenBatch, which checks and decrypts a run and
// then moves the replay window once for all of it, and the same three steps
// run by a caller on a batch in two parts begun out of order (OpenBegin,
// OpenAccept in arrival order, OpenEnd), give every packet the
// verdict, Next Header and bytes that Open one by one gives, on hostile
// streams: duplicates inside one batch, reordering, jumps that push
// earlier packets of the same batch out of the window, forged ICVs, a
// wrong SPI, short packets; in batches of random size up to past the
// internal chunk. A packet refused after decryption keeps no plaintext.
func TestOpenBatchMatchesOpen(t *testing.T) {
	for _, esn := range []bool{false, true} {
		for _, alg := range []Algorithm{AES128GCM16, ChaCha20Poly1305, AES128CBCSHA256, AES128GMAC} {
			t.Run(fmt.Sprintf("%v/esn=%v", alg, esn), func(t *testing.T) {
				p := testParams(alg, Tunnel, 4, esn)
				p.ReplayWindow = MinReplayWindow
				o, inSeq := newPair(t, p)
				inBatch, err := NewInbound(p)
				if err != nil {
					t.Fatal(err)
				}
				// inSteps takes each batch in two parts as a concurrent
				// caller does: the later part's OpenBegin first, then
				// OpenAccept in arrival order, then OpenEnd.
				inSteps, err := NewInbound(p)
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(7, uint64(alg)))
				var wires [][]byte
				plainOf := map[*byte][]byte{} // by the wire's first byte: what it carries
				for i := range 400 {
					plain := ipv4UDP(r.IntN(300) + 24 + i%7)
					w := sealed(t, o, plain)
					wires = append(wires, w)
					plainOf[&w[0]] = plain
				}
				// The stream: mostly in order, with duplicates, late and
				// jumped packets and damaged ones.
				var stream [][]byte
				for i := 0; i < len(wires); i++ {
					w := wires[i]
					switch r.IntN(12) {
					case 0: // a duplicate right behind
						stream = append(stream, w, w)
						continue
					case 1: // a late one from far back
						stream = append(stream, w, wires[r.IntN(i+1)])
						continue
					case 2: // a jump ahead, then the skipped ones
						j := min(len(wires)-1, i+r.IntN(80))
						stream = append(stream, wires[j])
						stream = append(stream, wires[i:j]...)
						i = j
						continue
					case 3: // forged ICV
						f := bytes.Clone(w)
						f[len(f)-1] ^= 0x80
						stream = append(stream, f, w)
						continue
					case 4: // another SPI, then cut short
						f := bytes.Clone(w)
						f[20] ^= 1
						stream = append(stream, f, w[:28], w)
						continue
					}
					stream = append(stream, w)
				}

				for len(stream) > 0 {
					n := min(len(stream), 1+r.IntN(2*openChunk+10))
					run := stream[:n]
					stream = stream[n:]
					bufs := make([]*pkt.Buf, n)
					offs := make([]int, n)
					nh := make([]uint8, n)
					v := make([]Verdict, n)
					for i, w := range run {
						bufs[i] = new(pkt.Buf)
						bufs[i].Set(w)
						offs[i] = 20
					}
					inBatch.OpenBatch(bufs, offs, nh, v)
					sbufs := make([]*pkt.Buf, n)
					for i, w := range run {
						sbufs[i] = new(pkt.Buf)
						sbufs[i].Set(w)
					}
					snh, sv, os := make([]uint8, n), make([]Verdict, n), make([]Opened, n)
					k := r.IntN(n + 1)
					parts := [2][2]int{{0, k}, {k, n}}
					var passed [2]bool
					for _, j := range []int{1, 0} {
						a, b := parts[j][0], parts[j][1]
						passed[j] = inSteps.OpenBegin(sbufs[a:b], offs[a:b], sv[a:b], os[a:b])
					}
					for j := range parts {
						if a, b := parts[j][0], parts[j][1]; passed[j] {
							inSteps.OpenAccept(os[a:b])
						}
					}
					for j := range parts {
						if a, b := parts[j][0], parts[j][1]; passed[j] {
							inSteps.OpenEnd(sbufs[a:b], offs[a:b], snh[a:b], sv[a:b], os[a:b])
						}
					}
					for i, w := range run {
						b, wantNH, wantV := open(inSeq, w, 20)
						// With ESN a late packet that an earlier one of the
						// same batch pushed out of the window is inferred
						// into the current subspace and refused as a replay
						// after decryption, where Open one by one infers
						// the next subspace and fails the ICV (RFC 4303
						// App. A2.2): refused either way.
						esnLate := esn && v[i] == DropReplay && wantV == DropICV
						if !esnLate && (v[i] != wantV || nh[i] != wantNH || (wantV == OK && !bytes.Equal(bufs[i].Bytes(), b.Bytes()))) {
							t.Fatalf("packet %d of a batch of %d: OpenBatch %v nh %d, Open %v nh %d", i, n, v[i], nh[i], wantV, wantNH)
						}
						if plain := plainOf[&w[0]]; v[i] != OK && alg.Encrypts() && plain != nil && bytes.Contains(bufs[i].B[:], plain[28:]) {
							t.Fatalf("packet %d (%v): plaintext left in the Buf", i, v[i])
						}
						esnLate = esn && sv[i] == DropReplay && wantV == DropICV
						if !esnLate && (sv[i] != wantV || snh[i] != wantNH || (wantV == OK && !bytes.Equal(sbufs[i].Bytes(), b.Bytes()))) {
							t.Fatalf("packet %d of a batch of %d split at %d: steps %v nh %d, Open %v nh %d", i, n, k, sv[i], snh[i], wantV, wantNH)
						}
						if plain := plainOf[&w[0]]; sv[i] != OK && alg.Encrypts() && plain != nil && bytes.Contains(sbufs[i].B[:], plain[28:]) {
							t.Fatalf("packet %d (%v) in steps: plaintext left in the Buf", i, sv[i])
						}
					}
				}
			})
		}
	}
}

// TestOpenBatchDuplicateInBatch: two copies of one packet in one batch:
// the first opens, the second is DropReplay after its decryption and its
// plaintext is cleared.
func TestOpenBatchDuplicateInBatch(t *testing.T) {
	o, in := newPair(t, testParams(AES128GCM16, Tunnel, 4, false))
	plain := ipv4UDP(200)
	w := sealed(t, o, plain)
	bufs := []*pkt.Buf{new(pkt.Buf), new(pkt.Buf)}
	bufs[0].Set(w)
	bufs[1].Set(w)
	nh, v := make([]uint8, 2), make([]Verdict, 2)
	in.OpenBatch(bufs, []int{20, 20}, nh, v)
	if v[0] != OK || v[1] != DropReplay || !bytes.Equal(bufs[0].Bytes(), plain) {
		t.Fatalf("verdicts %v", v)
	}
	if bytes.Contains(bufs[1].B[:], plain[20:]) {
		t.Fatal("the duplicate's plaintext is left in its Buf")
	}
}

// TestOpenSteps: OpenBegin, OpenAccept and OpenEnd run by a caller give
// OpenBatch's results; batches begun in any order and accepted in arrival
// order lose nothing even with the smallest window, while accepting a
// later batch first pushes the earlier one out of a 32-packet window
// (which is why a concurrent caller accepts in arrival order).
func TestOpenSteps(t *testing.T) {
	p := testParams(AES128GCM16, Tunnel, 4, false)
	p.ReplayWindow = MinReplayWindow
	o, _ := newPair(t, p)
	const per = 40 // more than the window
	var batches [2][]*pkt.Buf
	var plains [2][][]byte
	for k := range batches {
		for i := range per {
			plain := ipv4UDP(30 + i)
			w := sealed(t, o, plain)
			b := pkt.Get()
			b.Set(w)
			batches[k] = append(batches[k], b)
			plains[k] = append(plains[k], plain)
		}
	}
	type state struct {
		offs []int
		v    []Verdict
		nh   []uint8
		os   []Opened
	}
	begin := func(in *Inbound, bufs []*pkt.Buf) *state {
		st := &state{offs: make([]int, len(bufs)), v: make([]Verdict, len(bufs)), nh: make([]uint8, len(bufs)), os: make([]Opened, len(bufs))}
		for i := range st.offs {
			st.offs[i] = 20
		}
		if !in.OpenBegin(bufs, st.offs, st.v, st.os) {
			t.Fatal("OpenBegin passed nothing")
		}
		return st
	}
	clone := func(bufs []*pkt.Buf) []*pkt.Buf {
		var c []*pkt.Buf
		for _, b := range bufs {
			n := pkt.Get()
			n.Set(b.Bytes())
			c = append(c, n)
		}
		return c
	}

	// In order of arrival: everything opens, as OpenBatch would.
	in, err := NewInbound(p)
	if err != nil {
		t.Fatal(err)
	}
	b0, b1 := clone(batches[0]), clone(batches[1])
	s1 := begin(in, b1) // the later batch's crypto first
	s0 := begin(in, b0)
	in.OpenAccept(s0.os)
	in.OpenAccept(s1.os)
	in.OpenEnd(b0, s0.offs, s0.nh, s0.v, s0.os)
	in.OpenEnd(b1, s1.offs, s1.nh, s1.v, s1.os)
	for k, st := range []*state{s0, s1} {
		bufs := [][]*pkt.Buf{b0, b1}[k]
		for i, v := range st.v {
			if v != OK || !bytes.Equal(bufs[i].Bytes(), plains[k][i]) || st.nh[i] != 4 {
				t.Fatalf("batch %d packet %d: %v nh %d", k, i, v, st.nh[i])
			}
		}
	}

	// Accepted out of arrival order: the earlier batch falls out of the
	// window and is refused, its plaintext cleared.
	in, _ = NewInbound(p)
	b0, b1 = clone(batches[0]), clone(batches[1])
	s0, s1 = begin(in, b0), begin(in, b1)
	in.OpenAccept(s1.os)
	in.OpenAccept(s0.os)
	in.OpenEnd(b0, s0.offs, s0.nh, s0.v, s0.os)
	replays := 0
	for i, v := range s0.v {
		if v == DropReplay {
			replays++
			if bytes.Contains(b0[i].B[:], plains[0][i][20:]) {
				t.Fatalf("refused packet %d kept its plaintext", i)
			}
		}
	}
	if replays != per {
		t.Fatalf("%d of %d refused when accepted late, want all (window %d)", replays, per, MinReplayWindow)
	}

	// Replaying a whole batch: every packet refused at OpenBegin (pre-check).
	st := &state{offs: s1.offs, v: make([]Verdict, per), os: make([]Opened, per)}
	if in.OpenBegin(clone(batches[1]), st.offs, st.v, st.os) {
		t.Fatal("a replayed batch passed OpenBegin")
	}
	for i, v := range st.v {
		if v != DropReplay {
			t.Fatalf("replayed packet %d: %v", i, v)
		}
	}
}
