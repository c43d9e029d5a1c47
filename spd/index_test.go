package spd

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/mipsec/mipsec/sad"
)

// TestIntervalSearch checks ivIndex.interval, jump table included,
// against a linear search over the bounds, with keys inside, between and
// far outside the bounds.
func TestIntervalSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for it := range 2000 {
		famBits := 32
		if it%2 == 1 {
			famBits = 128
		}
		// Bounds in a cluster at a random position and spread, so the
		// common prefix varies.
		base := randKey(r, famBits)
		spread := uint(r.IntN(famBits))
		n := 1 + r.IntN(300)
		var spans []span
		var keys []u128
		for range n {
			k := addKeys(base, randBelow(r, spread), famBits)
			sp := span{id: int32(len(spans)), from: k}
			sp.end, sp.open = k.next(famBits)
			sp.open = !sp.open
			spans = append(spans, sp)
			keys = append(keys, k, sp.end)
		}
		x, demoted := buildIv(spans, famBits, 1<<30)
		if len(demoted) != 0 {
			t.Fatal("demoted under an unbounded budget")
		}
		// Query keys: the bounds themselves, their neighbours, random
		// keys in and around the cluster, and random keys anywhere.
		for _, k := range keys {
			keys = append(keys, addKeys(k, u128{lo: 1}, famBits))
		}
		for range 200 {
			keys = append(keys, addKeys(base, randBelow(r, spread+2), famBits), randKey(r, famBits))
		}
		keys = append(keys, u128{}, maxKey(famBits))
		for _, k := range keys {
			want := len(x.ivs) - 1
			for want >= 0 && k.less(x.ivs[want].key) {
				want--
			}
			if got := x.interval(k); got != want {
				t.Fatalf("iteration %d: interval(%x) = %d, want %d (shift %d tbits %d, %d bounds)",
					it, k, got, want, x.shift, x.tbits, len(x.ivs))
			}
		}
	}
}

func randKey(r *rand.Rand, famBits int) u128 {
	if famBits == 32 {
		return u128{hi: uint64(r.Uint32()) << 32}
	}
	return u128{r.Uint64(), r.Uint64()}
}

// randBelow returns a random key below 2^bits, as an address offset.
func randBelow(r *rand.Rand, bits uint) u128 {
	k := u128{r.Uint64(), r.Uint64()}
	switch {
	case bits == 0:
		return u128{}
	case bits < 64:
		return u128{lo: k.lo >> (64 - bits)}
	case bits < 128:
		return u128{hi: k.hi >> (128 - bits), lo: k.lo}
	}
	return k
}

// addKeys adds the address offset d to k, saturating at the family's end.
func addKeys(k, d u128, famBits int) u128 {
	if famBits == 32 {
		v := k.hi>>32 + d.lo
		if d.hi != 0 || v > 0xffffffff {
			v = 0xffffffff
		}
		return u128{hi: v << 32}
	}
	lo, c := bits.Add64(k.lo, d.lo, 0)
	hi, c := bits.Add64(k.hi, d.hi, c)
	if c != 0 {
		return maxKey(128)
	}
	return u128{hi, lo}
}

func maxKey(famBits int) u128 {
	if famBits == 32 {
		return u128{hi: 0xffffffff << 32}
	}
	return u128{^uint64(0), ^uint64(0)}
}

func TestAddrKeyOrder(t *testing.T) {
	addrs := []string{"0.0.0.0", "0.0.0.1", "9.255.255.255", "10.0.0.0", "128.0.0.0", "255.255.255.254", "255.255.255.255"}
	for i := 1; i < len(addrs); i++ {
		a, b := addrKey(netip.MustParseAddr(addrs[i-1])), addrKey(netip.MustParseAddr(addrs[i]))
		if !a.less(b) {
			t.Errorf("key(%s) >= key(%s)", addrs[i-1], addrs[i])
		}
		if n, ok := a.next(32); !ok || n.cmp(b) > 0 {
			t.Errorf("next(%s) = %x past %s", addrs[i-1], n, addrs[i])
		}
	}
	if _, ok := addrKey(netip.MustParseAddr("255.255.255.255")).next(32); ok {
		t.Error("next(255.255.255.255) ok")
	}
	six := []string{"::", "::1", "::ffff:ffff:ffff:ffff", "0:0:0:1::", "2001:db8::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}
	for i := 1; i < len(six); i++ {
		a, b := addrKey(netip.MustParseAddr(six[i-1])), addrKey(netip.MustParseAddr(six[i]))
		if !a.less(b) {
			t.Errorf("key(%s) >= key(%s)", six[i-1], six[i])
		}
	}
	if n, _ := addrKey(netip.MustParseAddr("::ffff:ffff:ffff:ffff")).next(128); n != addrKey(netip.MustParseAddr("0:0:0:1::")) {
		t.Errorf("next carries wrong: %x", n)
	}
	if _, ok := addrKey(netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).next(128); ok {
		t.Error("next(all ones) ok")
	}
}

// TestBudget checks that the candidate lists stay within the budget and
// that what does not fit is demoted, not lost.
func TestBudget(t *testing.T) {
	// 1000 host routes plus 100 nested prefixes over all of them.
	var sels []sad.Selector
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		sels = append(sels, sad.Selector{Remote: sad.SingleAddr(a)})
	}
	for i := range 100 {
		sels = append(sels, sad.Selector{Remote: sad.PrefixRange(netip.MustParsePrefix("10.0.0.0/8")),
			Proto: uint8(i)})
	}
	cfg := indexConfig{budgetFactor: 2, budgetSlack: 0, maxLevels: 3}
	levels, rest := buildLevels(sels, cfg)
	held := map[int32]int{}
	for _, id := range rest {
		held[id]++
	}
	for li, lv := range levels {
		for _, x := range []*ivIndex{&lv.v4, &lv.v6} {
			ids := map[int32]bool{}
			for j := range x.ivs {
				c := x.candidates(j)
				if !slices.IsSorted(c) {
					t.Fatalf("level %d interval %d: candidates not sorted", li, j)
				}
				for _, id := range c {
					ids[id] = true
				}
			}
			total := 0
			for j := range x.ivs {
				total += len(x.candidates(j))
			}
			if total > cfg.budgetFactor*len(sels)+cfg.budgetSlack {
				t.Errorf("level %d: %d candidates for %d sets", li, total, len(ids))
			}
			for id := range ids {
				held[id]++
			}
		}
	}
	for id := range sels {
		if held[int32(id)] != 1 {
			t.Errorf("set %d held %d times", id, held[int32(id)])
		}
	}
	if len(levels) < 2 {
		t.Errorf("%d levels: the prefixes should have been demoted to a second level", len(levels))
	}
}
