package spd

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/mipsec/mipsec/sad"
)

// SALookup resolves the SPI of an outbound PROTECT policy to its SA at
// lookup time. *sad.DB satisfies it. It is called on the hot path: it must
// not allocate or block, and returns nil when no such SA exists (yet).
type SALookup interface {
	Outbound(spi uint32) *sad.SA
}

// DB is the Security Policy Database (RFC 4301 §4.4.1): one ordered
// policy list per direction, first match wins.
//
// Readers (LookupFlow, Lookup, List, Stats) are lock-free and safe for
// concurrent use with each other and with writers: they load an immutable
// snapshot from an atomic.Pointer. Writers (Replace, Insert, Append,
// Delete) are serialised by a mutex, build a new snapshot, index included,
// and publish it with one atomic store; a lookup sees either the old or
// the new policy list, never a mix (RFC 4301 §4.4.1: SPD changes take
// effect atomically for the traffic that follows).
type DB struct {
	sadb SALookup
	cfg  indexConfig

	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[snapshot]

	ctr [2]dirCounters // by dirIndex
}

// snapshot is one immutable version of the database.
type snapshot struct {
	t [2]*table // by dirIndex; never nil
}

// tableGen numbers the tables (table.gen); 0 is no table.
var tableGen atomic.Uint64

// table is the immutable, indexed policy list of one direction.
type table struct {
	// gen identifies this table among all tables of all DBs (tableGen):
	// what a Cache remembers instead of a pointer, which would keep a
	// replaced table, and a big SPD's index, alive.
	gen uint64

	// policies are the entries in order; their Selectors alias sels
	// (capacity capped) and must not be modified.
	policies []Policy
	first    []int32 // first set id of each policy, plus len(sels)
	// sels are the selector sets of all policies in policy order; a set's
	// id is its position, so a lower id means an earlier policy. sets[id]
	// is what a lookup needs once set id matched.
	sels []sad.Selector
	sets []setInfo

	linear bool // scan sels instead of using levels and rest
	levels []level
	rest   protoIndex // the sets no level holds
}

// setInfo is what a lookup needs of the policy of a matched selector set,
// and its hit counter: inline, so that counting touches the cache line the
// lookup has just read. A policy's hits are the sum over its sets; writers
// carry them from snapshot to snapshot (DB.commit).
type setInfo struct {
	pol    int32 // policy index
	action Action
	spi    uint32
	hits   atomic.Uint64
}

// dirCounters are the per-direction drop counters (Stats).
type dirCounters struct {
	noMatch, unparsable, unprotected, noSA atomic.Uint64
}

func dirIndex(d sad.Direction) int {
	if d == sad.Inbound {
		return 1
	}
	return 0
}

// New returns an empty SPD: every lookup discards (RFC 4301 §5) until
// policies are added. sadb resolves the SAs of outbound PROTECT decisions;
// it may be nil, and then Decision.SA is always nil.
func New(sadb SALookup) *DB {
	db := &DB{sadb: sadb, cfg: defaultConfig}
	empty := newTable(nil, db.cfg)
	db.snap.Store(&snapshot{t: [2]*table{empty, empty}})
	return db
}

// newTable builds the table of one direction, with zero counters. ps must
// be validated; the table copies their selectors and keeps nothing of ps.
func newTable(ps []Policy, cfg indexConfig) *table {
	n := 0
	for i := range ps {
		n += len(ps[i].Selectors)
	}
	t := &table{
		policies: make([]Policy, len(ps)),
		first:    make([]int32, len(ps)+1),
		sels:     make([]sad.Selector, 0, n),
		sets:     make([]setInfo, n),
	}
	t.gen = tableGen.Add(1)
	for i := range ps {
		p := ps[i]
		start := len(t.sels)
		t.first[i] = int32(start)
		t.sels = append(t.sels, p.Selectors...)
		for id := start; id < len(t.sels); id++ {
			t.sets[id] = setInfo{pol: int32(i), action: p.Action, spi: p.SPI}
		}
		p.Selectors = t.sels[start:len(t.sels):len(t.sels)]
		t.policies[i] = p
	}
	t.first[len(ps)] = int32(n)
	t.linear = n <= cfg.linearMax
	if !t.linear {
		var rest []int32
		t.levels, rest = buildLevels(t.sels, cfg)
		t.rest = buildProtoIndex(t.sels, rest)
	}
	return t
}

// policyHits returns the hit count of policy i.
func (t *table) policyHits(i int) uint64 {
	var n uint64
	for id := t.first[i]; id < t.first[i+1]; id++ {
		n += t.sets[id].hits.Load()
	}
	return n
}

// commit publishes s, which replaces old. from[d][i] is the index in
// old.t[d] of policy i of s.t[d], or -1 for a new policy; from[d] is nil
// where s.t[d] is old.t[d]. Hit counts move to the new table: copied
// before the switch, then what lookups still holding the old snapshot
// added meanwhile. Increments that land on the old table after that
// second pass are lost; only lookups racing with a write can do that.
func (db *DB) commit(old, s *snapshot, from [2][]int32) {
	var copied [2][]uint64
	for d := range s.t {
		if from[d] == nil {
			continue
		}
		ot, nt := old.t[d], s.t[d]
		copied[d] = make([]uint64, len(from[d]))
		for i, oi := range from[d] {
			if oi >= 0 {
				copied[d][i] = ot.policyHits(int(oi))
				nt.sets[nt.first[i]].hits.Store(copied[d][i])
			}
		}
	}
	db.snap.Store(s)
	for d := range s.t {
		for i, oi := range from[d] {
			if oi >= 0 {
				if late := old.t[d].policyHits(int(oi)) - copied[d][i]; late != 0 {
					s.t[d].sets[s.t[d].first[i]].hits.Add(late)
				}
			}
		}
	}
}

// publish commits a snapshot that changes only direction d to table t;
// from is as for commit.
func (db *DB) publish(old *snapshot, d sad.Direction, t *table, from []int32) {
	s := *old
	var f [2][]int32
	s.t[dirIndex(d)], f[dirIndex(d)] = t, from
	db.commit(old, &s, f)
}

// Replace replaces all policies of both directions with ps, in order
// (each policy goes to the list of its Dir, keeping its relative order).
// On error nothing changes. A policy whose non-empty Name and Dir equal
// those of a current policy keeps that policy's hit counter.
func (db *DB) Replace(ps []Policy) error {
	names := make(map[string]int, len(ps))
	var split [2][]Policy
	for i := range ps {
		// No clone: newTable copies the selectors.
		p := ps[i]
		if err := p.validate(); err != nil {
			return fmt.Errorf("policy %d %q: %w", i, p.Name, err)
		}
		if p.Name != "" {
			if j, dup := names[p.Name]; dup {
				return fmt.Errorf("policy %d %q: %w (also policy %d)", i, p.Name, ErrDuplicateName, j)
			}
			names[p.Name] = i
		}
		d := dirIndex(p.Dir)
		if split[d] == nil {
			split[d] = make([]Policy, 0, len(ps)-i)
		}
		split[d] = append(split[d], p)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	old := db.snap.Load()
	var s snapshot
	var from [2][]int32
	for d := range split {
		prev := make(map[string]int32)
		for i, p := range old.t[d].policies {
			if p.Name != "" {
				prev[p.Name] = int32(i)
			}
		}
		from[d] = make([]int32, len(split[d]))
		for i, p := range split[d] {
			from[d][i] = -1
			if oi, ok := prev[p.Name]; ok && p.Name != "" {
				from[d][i] = oi
			}
		}
		s.t[d] = newTable(split[d], db.cfg)
	}
	db.commit(old, &s, from)
	return nil
}

// Insert puts p at position index of the list of p.Dir
// (0 <= index <= Len(p.Dir)); the policies from index on move down one.
func (db *DB) Insert(index int, p Policy) error {
	return db.insert(index, false, p)
}

// Append adds p at the end of the list of p.Dir. Note that a list should
// end with a catch-all DISCARD (RFC 4301 §4.4.1); use Insert to add
// entries before it.
func (db *DB) Append(p Policy) error {
	return db.insert(0, true, p)
}

func (db *DB) insert(index int, atEnd bool, p Policy) error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("policy %q: %w", p.Name, err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	old := db.snap.Load()
	if p.Name != "" {
		if _, _, ok := old.find(p.Name); ok {
			return fmt.Errorf("policy %q: %w", p.Name, ErrDuplicateName)
		}
	}
	t := old.t[dirIndex(p.Dir)]
	if atEnd {
		index = len(t.policies)
	}
	if index < 0 || index > len(t.policies) {
		return fmt.Errorf("insert %q at %d of %d %v policies: %w", p.Name, index, len(t.policies), p.Dir, ErrIndex)
	}
	ps := make([]Policy, 0, len(t.policies)+1)
	ps = append(append(append(ps, t.policies[:index]...), p), t.policies[index:]...)
	from := make([]int32, len(ps))
	for i := range from {
		switch {
		case i < index:
			from[i] = int32(i)
		case i == index:
			from[i] = -1
		default:
			from[i] = int32(i - 1)
		}
	}
	db.publish(old, p.Dir, newTable(ps, db.cfg), from)
	return nil
}

// Delete removes the policy called name.
func (db *DB) Delete(name string) error {
	if name == "" {
		return fmt.Errorf("delete: empty name: %w", ErrNotFound)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	old := db.snap.Load()
	d, i, ok := old.find(name)
	if !ok {
		return fmt.Errorf("delete %q: %w", name, ErrNotFound)
	}
	t := old.t[dirIndex(d)]
	ps := append(t.policies[:i:i], t.policies[i+1:]...)
	from := make([]int32, len(ps))
	for k := range from {
		from[k] = int32(k)
		if k >= i {
			from[k]++
		}
	}
	db.publish(old, d, newTable(ps, db.cfg), from)
	return nil
}

// find returns the direction and index of the policy called name.
func (s *snapshot) find(name string) (sad.Direction, int, bool) {
	for d, t := range s.t {
		for i := range t.policies {
			if t.policies[i].Name == name {
				return [2]sad.Direction{sad.Outbound, sad.Inbound}[d], i, true
			}
		}
	}
	return 0, 0, false
}

// List returns copies of the policies of direction dir, in order. The
// position in the list is Decision.Index.
func (db *DB) List(dir sad.Direction) []Policy {
	if dir != sad.Outbound && dir != sad.Inbound {
		return nil
	}
	t := db.snap.Load().t[dirIndex(dir)]
	out := make([]Policy, len(t.policies))
	for i := range t.policies {
		out[i] = t.policies[i].clone()
	}
	return out
}

// Len returns the number of policies of direction dir.
func (db *DB) Len(dir sad.Direction) int {
	if dir != sad.Outbound && dir != sad.Inbound {
		return 0
	}
	return len(db.snap.Load().t[dirIndex(dir)].policies)
}

// Stats are the counters of one direction.
type Stats struct {
	// NoMatch counts lookups that matched no policy and were discarded
	// (RFC 4301 §5). A list ending in a catch-all DISCARD never adds here;
	// its hits show on that policy instead.
	NoMatch uint64
	// Unparsable counts packets Lookup could not parse (discarded).
	Unparsable uint64
	// Unprotected counts inbound cleartext packets that matched a PROTECT
	// policy: traffic that must arrive under ESP, discarded
	// (RFC 4301 §5.2). Their policy's Hits count them too.
	Unprotected uint64
	// NoSA counts outbound PROTECT decisions whose SA the SALookup does
	// not have (Decision.SA nil; the caller drops). Zero without a
	// SALookup.
	NoSA uint64
	// Policies are the per-policy hit counters, in List order.
	Policies []PolicyStats
}

// PolicyStats is the hit counter of one policy.
type PolicyStats struct {
	Name string
	Hits uint64
}

// Stats returns the counters of direction dir.
func (db *DB) Stats(dir sad.Direction) Stats {
	if dir != sad.Outbound && dir != sad.Inbound {
		return Stats{}
	}
	c := &db.ctr[dirIndex(dir)]
	t := db.snap.Load().t[dirIndex(dir)]
	st := Stats{
		NoMatch:     c.noMatch.Load(),
		Unparsable:  c.unparsable.Load(),
		Unprotected: c.unprotected.Load(),
		NoSA:        c.noSA.Load(),
		Policies:    make([]PolicyStats, len(t.policies)),
	}
	for i := range t.policies {
		st.Policies[i] = PolicyStats{Name: t.policies[i].Name, Hits: t.policyHits(i)}
	}
	return st
}
