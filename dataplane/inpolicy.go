package dataplane

// Inbound policy hits. spd counts a policy's hits in its lookup, and ESP
// never goes through the inbound SPD: RFC 4301 §5.2 finds the SA by SPI and
// checks the decrypted packet against the SA's selectors (sad.SA.Open), so
// the inbound PROTECT policies, which name the traffic those SAs carry,
// stayed at 0 hits however much arrived. (An inbound lookup in the live SPD
// would count them, but it also counts every PROTECT match as cleartext
// that should have been protected, spd.Stats.Unprotected: the wrong
// meaning.)
//
// So the dataplane counts them itself: for every packet an SA delivered
// (or Hooks.Deliver consumed), the first inbound policy its decrypted
// packet (home-address form) matches, when that policy is PROTECT. The
// match is looked up in a private copy of the inbound list (an spd.DB of
// the same selector sets, all BYPASS, so that its lookup has no other
// effect: same order, same index, same first match), published behind an
// atomic pointer; the control goroutine rereads the live list each second
// and rebuilds the copy when it changed, so for up to a second after a
// policy write the hits go by the previous list. Per packet: a flow parse
// and a comparison with the previous packet's flow (a batch keeps the
// last flow and its policy across reads, as spd.Cache); a lookup when the
// flow changes; one atomic add per run of packets of one policy. Nothing
// when there are no inbound policies.

import (
	"slices"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// inPolicies is one published copy of the inbound policy list; immutable
// but for hits.
type inPolicies struct {
	src     []spd.Policy // the live list it was built from (List order)
	db      *spd.DB      // the same selector sets, all BYPASS
	protect []bool       // src[i].Action == spd.Protect
	hits    []atomic.Uint64
}

// inCache is a batch's inbound policy cache: the last flow and its policy
// index in pol (-1: none, or not PROTECT), and the run being counted.
type inCache struct {
	pol  *inPolicies
	flow header.Flow
	idx  int
	n    uint64 // packets of the current run, not yet added to hits[idx]
}

// count counts the decrypted packet p (before HomeAddressForm) against
// pol. It does not allocate.
func (c *inCache) count(pol *inPolicies, p []byte) {
	var f header.Flow
	if !header.ParseFlow(p, &f) {
		return
	}
	if c.pol == pol && c.flow == f {
		c.n++
		return
	}
	c.flush()
	c.pol, c.flow = pol, f
	c.idx = -1
	if dec := pol.db.LookupFlow(sad.Inbound, &f); dec.Index >= 0 && pol.protect[dec.Index] {
		c.idx = dec.Index
	}
	c.n = 1
}

// flush adds the current run to its policy's hits.
func (c *inCache) flush() {
	if c.n != 0 && c.idx >= 0 {
		c.pol.hits[c.idx].Add(c.n)
	}
	c.n = 0
}

// refreshInPolicies rebuilds the private copy of the inbound list when the
// live one changed. Control goroutine (and Start) only.
func (d *Dataplane) refreshInPolicies() {
	old := d.inPol.Load()
	if old == nil && d.spdb.Len(sad.Inbound) == 0 {
		return
	}
	ps := d.spdb.List(sad.Inbound)
	if old != nil && slices.EqualFunc(old.src, ps, samePolicy) {
		return
	}
	if len(ps) == 0 {
		d.inPol.Store(nil)
		return
	}
	n := &inPolicies{src: ps, db: spd.New(nil), protect: make([]bool, len(ps)), hits: make([]atomic.Uint64, len(ps))}
	cp := make([]spd.Policy, len(ps))
	for i, p := range ps {
		n.protect[i] = p.Action == spd.Protect
		cp[i] = spd.Policy{Name: p.Name, Dir: sad.Inbound, Action: spd.Bypass, Selectors: p.Selectors}
	}
	if err := n.db.Replace(cp); err != nil {
		// Cannot happen: the live SPD validated the same selectors.
		d.log.Warn("inbound policy hits: copying the inbound policies", zap.Error(err))
		d.inPol.Store(nil)
		return
	}
	// A named policy keeps its count (as spd.DB.Replace does): copied
	// before the switch, then what batches still on the old copy added
	// meanwhile.
	var from []int
	var copied []uint64
	if old != nil {
		prev := make(map[string]int, len(old.src))
		for i, p := range old.src {
			if p.Name != "" {
				prev[p.Name] = i
			}
		}
		from = make([]int, len(ps))
		copied = make([]uint64, len(ps))
		for i, p := range ps {
			from[i] = -1
			if oi, ok := prev[p.Name]; ok && p.Name != "" {
				from[i] = oi
				copied[i] = old.hits[oi].Load()
				n.hits[i].Store(copied[i])
			}
		}
	}
	d.inPol.Store(n)
	for i, oi := range from {
		if oi >= 0 {
			if late := old.hits[oi].Load() - copied[i]; late != 0 {
				n.hits[i].Add(late)
			}
		}
	}
}

func samePolicy(a, b spd.Policy) bool {
	return a.Name == b.Name && a.Dir == b.Dir && a.Action == b.Action && a.SPI == b.SPI && slices.Equal(a.Selectors, b.Selectors)
}

// inboundHits returns Stats.InboundPolicyHits.
func (d *Dataplane) inboundHits() []spd.PolicyStats {
	pol := d.inPol.Load()
	if pol == nil {
		return nil
	}
	out := make([]spd.PolicyStats, len(pol.src))
	for i := range pol.src {
		out[i] = spd.PolicyStats{Name: pol.src[i].Name, Hits: pol.hits[i].Load()}
	}
	return out
}
