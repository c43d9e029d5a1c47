package spd

import (
	"cmp"
	"math/bits"
	"slices"

	"github.com/mipsec/mipsec/sad"
)

// This file holds the lookup index: elementary address intervals with
// candidate lists, a jump table in front of the interval search, and the
// budget that keeps the candidate lists linear in the number of selector
// sets. doc.go has the picture.

// u128 is an address as an ordered 128-bit key (addrKey).
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// next returns the key of the address after a in a family of width
// famBits (32 or 128); ok is false when a is the last address.
func (a u128) next(famBits int) (u128, bool) {
	if famBits == 32 {
		if a.hi == 0xffffffff<<32 {
			return u128{}, false
		}
		return u128{hi: a.hi + 1<<32}, true
	}
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi == ^uint64(0) {
		return u128{}, false
	}
	return u128{a.hi + 1, 0}, true
}

// bitsAt returns the n (1..32) bits of a that start pos bits from the top.
// pos+n <= 128. Branch-free: Go's unsigned shifts by >= 64 give 0.
func (a u128) bitsAt(pos, n uint) uint32 {
	h := a.hi<<pos | a.lo>>(64-pos) | a.lo<<(pos-64)
	return uint32(h >> (64 - n))
}

// commonPrefix returns how many leading bits a and b share (0..128).
func commonPrefix(a, b u128) uint {
	if x := a.hi ^ b.hi; x != 0 {
		return uint(bits.LeadingZeros64(x))
	}
	return 64 + uint(bits.LeadingZeros64(a.lo^b.lo))
}

// Jump table sizing: about one boundary per slot, at most 2^maxJumpBits
// slots (4 bytes each), none for tiny indexes.
const (
	minJumpBounds = 16
	maxJumpBits   = 18
)

// ivIndex is the stabbing index of one address family in one dimension
// (local or remote) at one level. Its interval starts cut the address
// space into elementary intervals: interval j is [ivs[j].key,
// ivs[j+1].key) (the last one runs to the end of the family). Every
// selector set of the level whose address range meets interval j is a
// candidate of j; candidates(j) lists them in ascending set id (= policy
// order). Addresses below ivs[0].key have no candidates.
type ivIndex struct {
	ivs   []iv
	cands []int32 // the lists of intervals with 2 or more candidates
	// The jump table: ivs[jump[s]:jump[s+1]] are the intervals whose
	// start has the tbits bits after the shift-bit prefix that all starts
	// share equal to s. nil when the index is small; a binary search over
	// all intervals then.
	jump  []uint32
	shift uint
	tbits uint
}

// iv is one elementary interval. Its start and its candidates share a
// cache line: with one candidate (a host or a prefix of one peer, the
// common case) ref holds it; with more, they are cands[ref[0]:][:n].
type iv struct {
	key u128
	ref [1]int32
	n   int32
}

// interval returns the elementary interval holding k, or -1.
func (x *ivIndex) interval(k u128) int {
	v := x.ivs
	if len(v) == 0 || k.less(v[0].key) {
		return -1
	}
	lo, hi := 0, len(v)
	if x.jump != nil {
		if !k.less(v[len(v)-1].key) {
			return len(v) - 1
		}
		// ivs[0].key <= k < ivs[last].key: k shares their common prefix.
		s := k.bitsAt(x.shift, x.tbits)
		lo, hi = int(x.jump[s]), int(x.jump[s+1])
	}
	// Starts before lo are <= k, starts from hi on are > k: find the
	// first start > k in [lo, hi).
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if k.less(v[mid].key) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo - 1
}

// candidates returns the set ids whose range meets interval j.
func (x *ivIndex) candidates(j int) []int32 {
	e := &x.ivs[j]
	if e.n == 1 {
		return e.ref[:]
	}
	return x.cands[e.ref[0] : e.ref[0]+e.n]
}

// span is one selector set's address range as keys: [from, end), or
// [from, end of family] when open.
type span struct {
	id        int32
	from, end u128
	open      bool
}

// buildIv indexes spans (ascending id) of one family of width famBits.
// If the candidate lists would hold more than budget entries, the spans
// covering the most intervals are left out and returned as demoted
// (ascending id), for the next level to take.
func buildIv(spans []span, famBits int, budget int) (x ivIndex, demoted []int32) {
	if len(spans) == 0 {
		return ivIndex{}, nil
	}
	bounds := collectBounds(spans)
	first := make([]int32, len(spans)) // first interval of each span
	last := make([]int32, len(spans))  // one past its last interval
	total := locate(spans, bounds, first, last)
	if total > budget {
		// Leave out the widest spans until the rest fits. Leaving spans
		// out removes bounds, which can only shrink the others' widths.
		order := make([]int, len(spans))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			return cmp.Compare(last[b]-first[b], last[a]-first[a])
		})
		drop := make([]bool, len(spans))
		for _, i := range order {
			if total <= budget {
				break
			}
			drop[i] = true
			total -= int(last[i] - first[i])
		}
		kept := spans[:0:0]
		for i := range spans {
			if drop[i] {
				demoted = append(demoted, spans[i].id)
			} else {
				kept = append(kept, spans[i])
			}
		}
		spans = kept
		if len(spans) == 0 {
			return ivIndex{}, demoted
		}
		bounds = collectBounds(spans)
		first, last = first[:len(spans)], last[:len(spans)]
		total = locate(spans, bounds, first, last)
	}
	// Candidate lists in CSR form: count with a difference array, then
	// fill in ascending id order so every list comes out sorted.
	off := make([]uint32, len(bounds)+1)
	for i := range spans {
		off[first[i]]++
		off[last[i]]--
	}
	run, pos := uint32(0), uint32(0)
	for j := 0; j < len(bounds); j++ {
		run += off[j]
		off[j] = pos
		pos += run
	}
	off[len(bounds)] = pos
	all := make([]int32, total)
	fill := slices.Clone(off[:len(bounds)])
	for i := range spans {
		for j := first[i]; j < last[i]; j++ {
			all[fill[j]] = spans[i].id
			fill[j]++
		}
	}
	// Move single candidates into their interval.
	x.ivs = make([]iv, len(bounds))
	multi := 0
	for j := range bounds {
		if n := off[j+1] - off[j]; n > 1 {
			multi += int(n)
		}
	}
	x.cands = make([]int32, 0, multi)
	for j := range bounds {
		c := all[off[j]:off[j+1]]
		e := iv{key: bounds[j], n: int32(len(c))}
		if len(c) == 1 {
			e.ref[0] = c[0]
		} else {
			e.ref[0] = int32(len(x.cands))
			x.cands = append(x.cands, c...)
		}
		x.ivs[j] = e
	}
	x.buildJump(famBits)
	return x, demoted
}

// collectBounds returns the sorted distinct interval starts the spans
// need.
func collectBounds(spans []span) []u128 {
	b := make([]u128, 0, 2*len(spans))
	for i := range spans {
		b = append(b, spans[i].from)
		if !spans[i].open {
			b = append(b, spans[i].end)
		}
	}
	slices.SortFunc(b, u128.cmp)
	return slices.Compact(b)
}

// locate fills the interval range [first, last) of every span and returns
// the total number of list entries.
func locate(spans []span, bounds []u128, first, last []int32) int {
	find := func(k u128) int32 {
		i, _ := slices.BinarySearchFunc(bounds, k, u128.cmp)
		return int32(i)
	}
	total := 0
	for i := range spans {
		first[i] = find(spans[i].from)
		last[i] = int32(len(bounds))
		if !spans[i].open {
			last[i] = find(spans[i].end)
		}
		total += int(last[i] - first[i])
	}
	return total
}

func (x *ivIndex) buildJump(famBits int) {
	m := len(x.ivs)
	if m < minJumpBounds {
		return
	}
	x.shift = commonPrefix(x.ivs[0].key, x.ivs[m-1].key)
	room := famBits - int(x.shift)
	tbits := min(bits.Len(uint(m)), maxJumpBits, room)
	if tbits <= 0 {
		return
	}
	x.tbits = uint(tbits)
	jump := make([]uint32, 1<<tbits+1)
	// jump[s] = first interval whose start's slot is >= s.
	j := 0
	for s := range 1 << tbits {
		for j < m && x.ivs[j].key.bitsAt(x.shift, x.tbits) < uint32(s) {
			j++
		}
		jump[s] = uint32(j)
	}
	jump[1<<tbits] = uint32(m)
	x.jump = jump
}

// level is one stage of the index: the selector sets it holds, split by
// family, keyed on the remote or the local address range.
type level struct {
	remote bool
	v4, v6 ivIndex
}

// indexConfig tunes the index; tests shrink it to reach every path.
type indexConfig struct {
	// linearMax: tables with at most this many selector sets are not
	// indexed; a scan is faster than a search there.
	linearMax int
	// budgetFactor and budgetSlack bound the candidate list entries of
	// an ivIndex with n spans to budgetFactor*n + budgetSlack.
	budgetFactor, budgetSlack int
	// maxLevels is the number of levels per address dimension.
	maxLevels int
}

var defaultConfig = indexConfig{linearMax: 2, budgetFactor: 4, budgetSlack: 256, maxLevels: 3}

// buildLevels indexes the selector sets of a table: first by remote
// address, then what is left by local address; what no level takes (ANY
// in both, or too wide for the budget) goes to rest.
func buildLevels(sels []sad.Selector, cfg indexConfig) (levels []level, rest []int32) {
	var remote, local []int32
	for id := range sels {
		switch {
		case !sels[id].Remote.IsAny():
			remote = append(remote, int32(id))
		case !sels[id].Local.IsAny():
			local = append(local, int32(id))
		default:
			rest = append(rest, int32(id))
		}
	}
	levels, left := buildDim(sels, remote, true, cfg)
	// Sets the remote levels did not take try the local dimension; those
	// with ANY local come back from it in left, with its own leftovers.
	local = mergeSorted(local, left)
	lv, left := buildDim(sels, local, false, cfg)
	levels = append(levels, lv...)
	return levels, mergeSorted(rest, left)
}

// protoIndex splits the sets no level holds by next-layer protocol: a set
// can only match a packet of its own Proto, or any packet if it has
// ProtoAny (sad.Selector.Match). Each set is in exactly one list.
type protoIndex struct {
	any []int32     // ProtoAny sets, ascending
	off [257]uint32 // sets of protocol p: ids[off[p]:off[p+1]], ascending
	ids []int32
}

func buildProtoIndex(sels []sad.Selector, rest []int32) protoIndex {
	var x protoIndex
	for _, id := range rest {
		if p := sels[id].Proto; p == sad.ProtoAny {
			x.any = append(x.any, id)
		} else {
			x.off[int(p)+1]++
		}
	}
	for p := 1; p <= 256; p++ {
		x.off[p] += x.off[p-1]
	}
	x.ids = make([]int32, x.off[256])
	fill := x.off
	for _, id := range rest {
		if p := sels[id].Proto; p != sad.ProtoAny {
			x.ids[fill[p]] = id
			fill[p]++
		}
	}
	return x
}

// forProto returns the non-ANY sets of protocol p.
func (x *protoIndex) forProto(p uint8) []int32 { return x.ids[x.off[p]:x.off[int(p)+1]] }

// buildDim builds up to cfg.maxLevels levels over ids (ascending) keyed on
// one address dimension; it returns the ids no level took.
func buildDim(sels []sad.Selector, ids []int32, remote bool, cfg indexConfig) ([]level, []int32) {
	var levels []level
	for n := 0; n < cfg.maxLevels && len(ids) > 0; n++ {
		var s4, s6 []span
		var skip []int32 // ANY in this dimension
		for _, id := range ids {
			r := sels[id].Local
			if remote {
				r = sels[id].Remote
			}
			fam := rangeFamily(r)
			if fam == 0 {
				skip = append(skip, id)
				continue
			}
			sp := span{id: id, from: addrKey(r.From)}
			sp.end, sp.open = addrKey(r.To).next(fam)
			sp.open = !sp.open
			if fam == 32 {
				s4 = append(s4, sp)
			} else {
				s6 = append(s6, sp)
			}
		}
		lv := level{remote: remote}
		var d4, d6 []int32
		lv.v4, d4 = buildIv(s4, 32, cfg.budgetFactor*len(s4)+cfg.budgetSlack)
		lv.v6, d6 = buildIv(s6, 128, cfg.budgetFactor*len(s6)+cfg.budgetSlack)
		if len(lv.v4.ivs) > 0 || len(lv.v6.ivs) > 0 {
			levels = append(levels, lv)
		}
		ids = mergeSorted(skip, mergeSorted(d4, d6))
		if len(d4) == len(s4) && len(d6) == len(s6) {
			break // nothing fit: another level would do the same
		}
	}
	return levels, ids
}

// mergeSorted merges two ascending lists.
func mergeSorted(a, b []int32) []int32 {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]int32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i] < b[j] {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}
