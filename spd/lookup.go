package spd

import (
	"net/netip"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
)

// Reason says why a Decision is what it is.
type Reason uint8

const (
	// ReasonPolicy: the matching policy's own action (Index >= 0).
	ReasonPolicy Reason = iota
	// ReasonNoMatch: no policy matched; DISCARD (RFC 4301 §5: MUST
	// discard). Index is -1.
	ReasonNoMatch
	// ReasonUnparsable: Lookup could not parse the packet; DISCARD.
	// Index is -1.
	ReasonUnparsable
	// ReasonUnprotected: an inbound cleartext packet matched a PROTECT
	// policy, so it should have arrived under ESP; DISCARD
	// (RFC 4301 §5.2). Index is that policy.
	ReasonUnprotected
	// ReasonNoSA: an outbound PROTECT policy matched but the SALookup has
	// no SA for its SPI; Action is Protect and SA nil: the caller drops.
	ReasonNoSA
)

func (r Reason) String() string {
	switch r {
	case ReasonPolicy:
		return "policy"
	case ReasonNoMatch:
		return "no-match"
	case ReasonUnparsable:
		return "unparsable"
	case ReasonUnprotected:
		return "unprotected"
	case ReasonNoSA:
		return "no-sa"
	}
	return "invalid"
}

// Decision is the result of a lookup.
type Decision struct {
	Action Action
	// SPI is the outbound SA's SPI of an outbound PROTECT decision.
	SPI uint32
	// SA is that SA, resolved through the SALookup at lookup time; nil
	// when it is missing (or New got no SALookup): the caller drops.
	SA *sad.SA
	// Index is the position of the matching policy in List(dir), -1 if
	// none matched.
	Index int
	// Reason tells a policy's own verdict from the database's.
	Reason Reason
}

var (
	decNoMatch    = Decision{Action: Discard, Index: -1, Reason: ReasonNoMatch}
	decUnparsable = Decision{Action: Discard, Index: -1, Reason: ReasonUnparsable}
)

// LookupFlow decides what happens to a packet with selector fields f (in
// home-address form, header.Flow) travelling in direction dir. The first
// policy of that direction with a selector set that matches wins
// (RFC 4301 §4.4.1).
//
// Outbound (RFC 4301 §5.1): SPD-S and SPD-O are one ordered list; a
// PROTECT decision carries the SPI and the SA to seal with.
//
// Inbound, LookupFlow is for traffic that did not arrive under ESP
// addressed to us (RFC 4301 §5.2 step 2: that goes to the SAD by SPI, and
// its decrypted packet is checked against the SA's selectors, not here):
// BYPASS and DISCARD policies apply as they are (SPD-I), and a matching
// PROTECT policy means the packet should have been protected: DISCARD
// with ReasonUnprotected, counted in Stats.Unprotected. Inbound PROTECT
// policies are therefore DISCARD entries for cleartext that name the
// traffic the SAD's inbound SAs carry.
//
// No match, or an invalid dir: DISCARD with Index -1 (RFC 4301 §5).
//
// Lock-free, never allocates; f is not retained.
func (db *DB) LookupFlow(dir sad.Direction, f *header.Flow) Decision {
	return db.lookup(dir, f, nil)
}

// Cache remembers one goroutine's last lookup: which policy table (SPD
// version) it searched, the selector fields and the selector set that
// matched (or none). It holds no reference to the table. LookupCached
// answers a packet whose selector fields equal the previous packet's, in
// the same direction and against the same table, without searching again:
// packets come in runs of one flow (a TCP stream, the segments of a TUN
// super-packet). Any write to a direction's
// policies publishes a new table there, so a cached answer is never older
// than the policies; counters and the outbound SA (resolved by SPI on
// every lookup, so a replaced SA is used at once) behave as without the
// cache. The zero Cache is empty; a Cache is not safe for concurrent use.
type Cache struct {
	gen uint64 // table.gen of the table id belongs to; 0: empty
	f   header.Flow
	id  int32
}

// LookupCached is Lookup with c remembering the last answer (Cache).
// Lock-free, never allocates.
func (db *DB) LookupCached(dir sad.Direction, pkt []byte, c *Cache) Decision {
	var f header.Flow
	if !header.ParseFlow(pkt, &f) {
		if dir == sad.Outbound || dir == sad.Inbound {
			db.ctr[dirIndex(dir)].unparsable.Add(1)
		}
		return decUnparsable
	}
	return db.lookup(dir, &f, c)
}

// lookup is LookupFlow, through c when it is not nil.
func (db *DB) lookup(dir sad.Direction, f *header.Flow, c *Cache) Decision {
	if dir != sad.Outbound && dir != sad.Inbound {
		return decNoMatch
	}
	d := dirIndex(dir)
	t := db.snap.Load().t[d]
	var id int
	switch {
	case c == nil:
		id = t.find(dir, f)
	case c.gen == t.gen && c.f == *f:
		id = int(c.id)
	default:
		id = t.find(dir, f)
		c.gen, c.f, c.id = t.gen, *f, int32(id)
	}
	if id < 0 {
		db.ctr[d].noMatch.Add(1)
		return decNoMatch
	}
	p := &t.sets[id]
	p.hits.Add(1)
	i := int(p.pol)
	switch p.action {
	case Protect:
		if dir == sad.Inbound {
			db.ctr[d].unprotected.Add(1)
			return Decision{Action: Discard, Index: i, Reason: ReasonUnprotected}
		}
		dec := Decision{Action: Protect, SPI: p.spi, Index: i}
		if db.sadb != nil {
			if dec.SA = db.sadb.Outbound(p.spi); dec.SA == nil {
				db.ctr[d].noSA.Add(1)
				dec.Reason = ReasonNoSA
			}
		}
		return dec
	case Bypass:
		return Decision{Action: Bypass, Index: i}
	}
	return Decision{Action: Discard, Index: i}
}

// Lookup is LookupFlow on the selector fields of the IPv4 or IPv6 packet
// pkt, parsed with header.ParseFlow (HAO address as source, type 2 RH
// address as destination: RFC 4877 §4.2). A packet ParseFlow rejects is
// discarded with ReasonUnparsable. Lock-free, never allocates.
func (db *DB) Lookup(dir sad.Direction, pkt []byte) Decision {
	return db.LookupCached(dir, pkt, nil)
}

// find returns the id of the first selector set of t that matches f (its
// policy is the first policy that matches), or -1.
//
// Every selector set that can match f is a candidate of the interval
// holding f's address in its level, or sits in rest under f's protocol or
// ProtoAny: a level only holds sets whose address range in its dimension
// is not ANY, and such a range must contain the address
// (sad.AddrRange.Contains). Each candidate list is ascending, so each is
// scanned only up to the best set found so far; the answer is the lowest
// set id that matches, i.e. the first policy. Candidates are confirmed
// with sad.Selector.Match: the index only rules sets out. (A zoned flow
// address, which packets never carry, is keyed by its bits: the ranges
// that contain it are among those that contain its bits, as validated
// ranges have no zones.)
func (t *table) find(dir sad.Direction, f *header.Flow) int {
	best := int32(len(t.sels))
	if t.linear {
		for id := range t.sels {
			if t.sels[id].Match(dir, f) {
				return id
			}
		}
		return -1
	}
	remote, local := f.Dst, f.Src
	if dir == sad.Inbound {
		remote, local = f.Src, f.Dst
	}
	var k u128
	keyOf := netip.Addr{} // the address k is the key of
	for li := range t.levels {
		lv := &t.levels[li]
		a := remote
		if !lv.remote {
			a = local
		}
		x := ivFor(lv, a)
		if x == nil {
			continue
		}
		if a != keyOf {
			k, keyOf = addrKey(a), a
		}
		j := x.interval(k)
		if j < 0 {
			continue
		}
		best = t.scan(x.candidates(j), best, dir, f)
	}
	best = t.scan(t.rest.forProto(f.Proto), best, dir, f)
	best = t.scan(t.rest.any, best, dir, f)
	if int(best) == len(t.sels) {
		return -1
	}
	return int(best)
}

// ivFor returns the index of lv for a's family; nil for an invalid a,
// which only ANY matches and no level holds ANY.
func ivFor(lv *level, a netip.Addr) *ivIndex {
	if a.Is4() {
		return &lv.v4
	}
	if a.Is6() {
		return &lv.v6
	}
	return nil
}

// scan returns the first id in ids below best whose set matches f, or
// best.
func (t *table) scan(ids []int32, best int32, dir sad.Direction, f *header.Flow) int32 {
	for _, id := range ids {
		if id >= best {
			break
		}
		if t.sels[id].Match(dir, f) {
			return id
		}
	}
	return best
}
