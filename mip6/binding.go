package mip6

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mipsec/mipsec/internal/oatable"
)

// Protocol constants for the home agent (RFC 6275 §12, §13).
const (
	// MaxDeleteBCETimeout is how long a de-registered binding's sequence
	// number is remembered so a late BU is still answered with status 135
	// (RFC 6275 §10.3.2, MAX_DELETE_BCE_TIMEOUT).
	MaxDeleteBCETimeout = 10 * time.Second
	// DefaultMaxBindingLifetime caps granted lifetimes when the config
	// sets none: the largest value a BU's 16-bit, 4-second-unit lifetime
	// field can carry (RFC 6275 §6.1.7).
	DefaultMaxBindingLifetime = 0xffff * 4 * time.Second
	// DefaultMaxCoAs bounds the care-of addresses of one binding
	// (RFC 5648 leaves the limit to the implementation).
	DefaultMaxCoAs = 8
)

// CareOf is one registered care-of address of a binding. With RFC 5648
// multiple care-of addresses each has a Binding Identifier; BID 0 means a
// registration without a BID option.
type CareOf struct {
	BID uint16
	// Addr is the care-of address the MN registered: an IPv6 CoA
	// (Alternate CoA option or BU source) or an IPv4 CoA (RFC 5555 IPv4
	// CoA option).
	Addr netip.Addr
	// NAT reports that a NAT was detected between the MN and the HA
	// (RFC 5555 §4.5, DR-4): packets to this CoA go in UDP to Endpoint.
	NAT bool
	// Endpoint is the outer IPv4 source address and UDP source port the
	// BU arrived from; with NAT it is the NAT's mapping. Zero when the BU
	// was not UDP-encapsulated.
	Endpoint netip.AddrPort
	// Primary marks the CoA that outbound traffic uses (RFC 5648 §5.2);
	// exactly one CoA of a published binding is primary.
	Primary bool
}

// UDP reports whether packets to this CoA are UDP-encapsulated.
func (c CareOf) UDP() bool { return c.Endpoint.IsValid() }

// Binding is one home-registration Binding Cache bcEntry (RFC 6275 §9.1,
// §10.1; RFC 5555 §2.3; RFC 5648). A published *Binding is immutable:
// writers replace it, so readers may keep and use the pointer freely.
type Binding struct {
	HoA  netip.Addr // IPv6 home address, the key
	HoA4 netip.Addr // IPv4 home address (RFC 5555), or the zero Addr
	// CoAs holds one or more care-of addresses, ordered by BID.
	CoAs []CareOf
	// Seq is the sequence number of the last accepted BU.
	Seq uint16
	// Lifetime is the granted lifetime; Expires = Registered + Lifetime.
	Lifetime   time.Duration
	Registered time.Time // when the last accepted BU was processed
	Expires    time.Time

	// prim is a copy of the primary CoA, so DR-1 reads it from the
	// binding itself without touching CoAs' backing array (one cache
	// miss fewer at 1,000,000 bindings).
	prim CareOf
}

// Primary returns the CoA outbound traffic uses (DR-1).
func (b *Binding) Primary() CareOf { return b.prim }

// HasCoA reports whether src is a registered CoA or the NAT-mapped outer
// address of one (RFC 6275 §10.4.5, RFC 5648 §5.2: tunneled packets are
// accepted from any registered CoA).
func (b *Binding) HasCoA(src netip.Addr) bool {
	src = src.Unmap()
	for i := range b.CoAs {
		c := &b.CoAs[i]
		if c.Addr == src || (c.Endpoint.IsValid() && c.Endpoint.Addr() == src) {
			return true
		}
	}
	return false
}

// CoA returns the CoA with the given BID.
func (b *Binding) CoA(bid uint16) (CareOf, bool) {
	for _, c := range b.CoAs {
		if c.BID == bid {
			return c, true
		}
	}
	return CareOf{}, false
}

func (b *Binding) String() string {
	p := b.Primary()
	return fmt.Sprintf("%v -> %v (seq %d, %d CoAs, expires %v)", b.HoA, p.Addr, b.Seq, len(b.CoAs), b.Expires.Format(time.RFC3339))
}

// CheckSequence reports whether a BU with sequence number seq may update
// existing (RFC 6275 §9.5.1). With no cache bcEntry any value is accepted;
// otherwise the BU is rejected with status 135 carrying existing.Seq.
func CheckSequence(existing *Binding, seq uint16) bool {
	return existing == nil || SeqLess(existing.Seq, seq)
}

// ClampLifetime returns the lifetime to grant for a requested one: at most
// max (RFC 6275 §10.3.1 step 5: local policy), never negative. Zero stays
// zero (de-registration).
func ClampLifetime(requested, max time.Duration) time.Duration {
	if requested < 0 {
		return 0
	}
	if max > 0 && requested > max {
		return max
	}
	return requested
}

// Errors from BindingCache.Update; the BU processor maps them to BA status
// codes.
var (
	ErrInvalidHoA    = errors.New("mip6: home address not a unicast IPv6 address") // drop / 132
	ErrInvalidHoA4   = errors.New("mip6: IPv4 home address not a unicast IPv4 address")
	ErrHoA4InUse     = errors.New("mip6: IPv4 home address bound to another home address") // IPv4 ack 130
	ErrInvalidCoA    = errors.New("mip6: care-of address not unicast")                     // status 174
	ErrNoCoA         = errors.New("mip6: registration without a care-of address")
	ErrTooManyCoAs   = errors.New("mip6: too many care-of addresses")   // status 130
	ErrDuplicateBID  = errors.New("mip6: duplicate binding identifier") // status 164
	ErrNotRegistered = errors.New("mip6: no binding to de-register")    // status 133
	ErrUnknownBID    = errors.New("mip6: no such binding identifier")   // status 167 (RFC 5648)
)

// SeqError rejects a BU whose sequence number is not newer than the cached
// one: BA status 135 carrying Last (RFC 6275 §9.5.1).
type SeqError struct{ Last uint16 }

func (e *SeqError) Error() string {
	return fmt.Sprintf("mip6: sequence number out of window (last accepted %d)", e.Last)
}

// Registration is the part of an authenticated home-registration BU the
// binding cache needs, in plain values (the codec stays separate).
type Registration struct {
	HoA  netip.Addr
	HoA4 netip.Addr // IPv4 home address option, or zero
	// CoAs are the care-of addresses the BU registers: one with BID 0
	// without RFC 5648, else one per BID option. With Lifetime 0 only
	// the BIDs are used (which CoAs to de-register).
	CoAs []CareOf
	Seq  uint16
	// Lifetime is the requested lifetime; 0 de-registers.
	Lifetime time.Duration
	// Replace drops every CoA not in CoAs (RFC 5648 O flag, or a BU
	// without BID options).
	Replace bool
}

// ChangeKind says what happened to a binding.
type ChangeKind uint8

const (
	BindingAdded ChangeKind = iota + 1
	BindingUpdated
	BindingRemoved
)

func (k ChangeKind) String() string {
	switch k {
	case BindingAdded:
		return "added"
	case BindingUpdated:
		return "updated"
	case BindingRemoved:
		return "removed"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change describes one binding event. Old is nil for BindingAdded, New is
// nil for BindingRemoved.
type Change struct {
	Kind    ChangeKind
	Old     *Binding
	New     *Binding
	Expired bool // removed because its lifetime ran out
}

// BindingCacheConfig configures a BindingCache. The zero value is usable.
type BindingCacheConfig struct {
	// MaxLifetime caps granted lifetimes (default
	// DefaultMaxBindingLifetime).
	MaxLifetime time.Duration
	// MaxCoAs caps CoAs per binding (default DefaultMaxCoAs).
	MaxCoAs int
	// DeleteHold is how long the sequence number of a de-registered
	// binding is remembered (default MaxDeleteBCETimeout; negative: not
	// at all).
	DeleteHold time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnChange, if set, is called for every change after it is published,
	// in order, with the cache's writer lock held: it must not call back
	// into the cache and should hand slow work (netlink) to a goroutine.
	// It is never called on the packet path.
	OnChange func(Change)
}

// bcEntry is the writer-side state of one home address.
type bcEntry struct {
	hoa     netip.Addr
	b       *Binding // nil: de-registered, kept only for its sequence number
	seq     uint16
	expires time.Time
	hi      int // position in the expiry heap
}

type expiryHeap []*bcEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hi = i
	h[j].hi = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*bcEntry)
	e.hi = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.hi = -1
	return e
}

// addrHash is the binding indexes' keyed hash (internal/oatable/doc.go,
// "Hashing"). Home addresses are keyed by the whole address (RFC 6275
// §9.1) and many share a /64, so both halves go through Mix64, the first
// with the table's seed: neither the interface identifiers a mobile node
// picks nor a run of consecutive ones land in one probe chain. The zone
// is left out of the hash (a binding's addresses have none); the table
// still compares whole netip.Addr keys.
func addrHash(a netip.Addr, seed uint64) uint64 {
	b := a.As16()
	hi := binary.LittleEndian.Uint64(b[:8])
	lo := binary.LittleEndian.Uint64(b[8:])
	return oatable.Mix64(oatable.Mix64(hi^seed) ^ lo)
}

// BindingCache is the home agent's Binding Cache (RFC 6275 §10.1).
//
// Lookup, LookupV4 and AcceptsFrom are lock-free, O(1) and allocation-free
// and may run on the packet path concurrently with everything. Writers
// (Update, Delete, Expire) are serialised by a mutex, validate their input
// and publish immutable *Binding values with atomic stores.
type BindingCache struct {
	cfg BindingCacheConfig

	// The packet path's indexes (internal/oatable: lock-free readers,
	// writers under mu): the IPv6 home address, and the IPv4 home
	// address of the bindings that have one (RFC 5555 §4.5), to the
	// published binding. A writer changes one slot per update, so a BU
	// costs O(1) also at a million bindings.
	byHoA  oatable.Table[netip.Addr, Binding]
	byHoA4 oatable.Table[netip.Addr, Binding]

	mu      sync.Mutex
	entries map[netip.Addr]*bcEntry
	expiry  expiryHeap
	wake    chan struct{} // nudges Run when the earliest expiry moved
}

// NewBindingCache returns an empty cache.
func NewBindingCache(cfg BindingCacheConfig) *BindingCache {
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = DefaultMaxBindingLifetime
	}
	if cfg.MaxCoAs <= 0 {
		cfg.MaxCoAs = DefaultMaxCoAs
	}
	if cfg.DeleteHold == 0 {
		cfg.DeleteHold = MaxDeleteBCETimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &BindingCache{cfg: cfg, entries: make(map[netip.Addr]*bcEntry), wake: make(chan struct{}, 1)}
	c.byHoA.Init(addrHash)
	c.byHoA4.Init(addrHash)
	return c
}

// Lookup returns the binding for the IPv6 home address hoa (DR-1: the
// outer destination of an ESP packet after IPsec). Lock-free, O(1),
// allocation-free.
func (c *BindingCache) Lookup(hoa netip.Addr) (*Binding, bool) {
	b := c.byHoA.Get(hoa)
	return b, b != nil
}

// LookupV4 returns the binding whose IPv4 home address is hoa4
// (RFC 5555 §4.5: a BCE for the IPv4 HoA pointing at the same CoA).
func (c *BindingCache) LookupV4(hoa4 netip.Addr) (*Binding, bool) {
	b := c.byHoA4.Get(hoa4)
	return b, b != nil
}

// AcceptsFrom reports whether a tunneled packet for home address hoa
// (IPv6 or IPv4) may come from outer source src: any registered CoA, or
// the NAT mapping of one (RFC 5648 §5.2, RFC 5555 §4.5).
func (c *BindingCache) AcceptsFrom(hoa, src netip.Addr) bool {
	var b *Binding
	if hoa.Is4() {
		b = c.byHoA4.Get(hoa)
	} else {
		b = c.byHoA.Get(hoa)
	}
	return b != nil && b.HasCoA(src)
}

// Len returns the number of live bindings.
func (c *BindingCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byHoA.Len()
}

// Range calls f for each live binding, in no particular order, until f
// returns false. It holds the writer lock (for `mipsec binding list`).
func (c *BindingCache) Range(f func(*Binding) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.b != nil && !f(e.b) {
			return
		}
	}
}

func bcUnicast(a netip.Addr) bool {
	return a.IsValid() && a.Zone() == "" && !a.IsUnspecified() && !a.IsMulticast() &&
		!a.IsLoopback() && !a.IsLinkLocalUnicast()
}

// Current returns the sequence number the cache holds for hoa, also for a
// binding de-registered less than DeleteHold ago (RFC 6275 §10.3.2).
func (c *BindingCache) Current(hoa netip.Addr) (seq uint16, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[hoa]
	if e == nil {
		return 0, false
	}
	return e.seq, true
}

// Update applies an authenticated home-registration BU (RFC 6275
// §10.3.1, §10.3.2; RFC 5555 §4.5; RFC 5648 §5) and returns the published
// binding (nil after a full de-registration) and the granted lifetime.
// The caller has checked DR-7 (the BU came on the SA for r.HoA).
//
// Errors: *SeqError (status 135), ErrNotRegistered (133), ErrInvalidCoA
// (174), ErrTooManyCoAs (130), ErrDuplicateBID (164), ErrUnknownBID
// (167), ErrInvalidHoA,
// ErrInvalidHoA4, ErrHoA4InUse, ErrNoCoA. On error nothing changes.
func (c *BindingCache) Update(r Registration) (*Binding, time.Duration, error) {
	if !r.HoA.Is6() || r.HoA.Is4In6() || !bcUnicast(r.HoA) {
		return nil, 0, ErrInvalidHoA
	}
	if r.HoA4.IsValid() && (!r.HoA4.Is4() || !bcUnicast(r.HoA4)) {
		return nil, 0, ErrInvalidHoA4
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	e := c.entries[r.HoA]
	if e != nil && !SeqLess(e.seq, r.Seq) {
		return nil, 0, &SeqError{Last: e.seq}
	}
	var old *Binding
	if e != nil {
		old = e.b
	}
	if r.Lifetime <= 0 {
		return c.deregister(e, old, r, now)
	}
	coas, err := c.mergeCoAs(old, r)
	if err != nil {
		return nil, 0, err
	}
	if r.HoA4.IsValid() {
		if o := c.byHoA4.Get(r.HoA4); o != nil && o.HoA != r.HoA {
			return nil, 0, ErrHoA4InUse
		}
	}
	life := ClampLifetime(r.Lifetime, c.cfg.MaxLifetime)
	nb := &Binding{
		HoA:        r.HoA,
		HoA4:       r.HoA4,
		CoAs:       coas,
		Seq:        r.Seq,
		Lifetime:   life,
		Registered: now,
		Expires:    now.Add(life),
	}
	for i := range coas {
		if coas[i].Primary {
			nb.prim = coas[i]
		}
	}
	// RFC 5555 §4.4.2.1: a BU without the IPv4 HoA option removes the
	// IPv4 binding.
	if old != nil && old.HoA4.IsValid() && old.HoA4 != r.HoA4 {
		c.byHoA4.Delete(old.HoA4)
	}
	c.byHoA.Put(nb.HoA, nb)
	if nb.HoA4.IsValid() {
		c.byHoA4.Put(nb.HoA4, nb)
	}
	if e == nil {
		e = &bcEntry{hoa: r.HoA, hi: -1}
		c.entries[r.HoA] = e
	}
	e.b, e.seq = nb, r.Seq
	c.schedule(e, nb.Expires)
	if old == nil {
		c.notify(Change{Kind: BindingAdded, New: nb})
	} else {
		c.notify(Change{Kind: BindingUpdated, Old: old, New: nb})
	}
	return nb, life, nil
}

// mergeCoAs builds the CoA list of the new binding (RFC 5648 §5.3: a BID
// replaces the CoA with the same BID; Replace drops the others), sorted by
// BID with exactly one primary.
func (c *BindingCache) mergeCoAs(old *Binding, r Registration) ([]CareOf, error) {
	if len(r.CoAs) == 0 {
		return nil, ErrNoCoA
	}
	for i, n := range r.CoAs {
		a := n.Addr.Unmap()
		if !bcUnicast(a) {
			return nil, ErrInvalidCoA
		}
		for _, m := range r.CoAs[:i] {
			if m.BID == n.BID {
				return nil, ErrDuplicateBID
			}
		}
	}
	out := make([]CareOf, 0, len(r.CoAs)+2)
	if old != nil && !r.Replace {
		for _, o := range old.CoAs {
			if _, ok := findBID(r.CoAs, o.BID); !ok {
				out = append(out, o)
			}
		}
	}
	newPrimary := -1
	for _, n := range r.CoAs {
		n.Addr = n.Addr.Unmap()
		if n.Endpoint.IsValid() {
			n.Endpoint = netip.AddrPortFrom(n.Endpoint.Addr().Unmap(), n.Endpoint.Port())
		}
		if n.Primary {
			newPrimary = int(n.BID)
		}
		out = append(out, n)
	}
	if len(out) > c.cfg.MaxCoAs {
		return nil, ErrTooManyCoAs
	}
	sortByBID(out)
	// Exactly one primary: the newly registered one that asked for it,
	// else the one that already was, else the lowest BID.
	p := -1
	for i := range out {
		if newPrimary >= 0 {
			out[i].Primary = int(out[i].BID) == newPrimary
		}
		if out[i].Primary {
			if p >= 0 {
				out[i].Primary = false
			} else {
				p = i
			}
		}
	}
	if p < 0 {
		out[0].Primary = true
	}
	return out, nil
}

func findBID(cs []CareOf, bid uint16) (int, bool) {
	for i := range cs {
		if cs[i].BID == bid {
			return i, true
		}
	}
	return -1, false
}

func sortByBID(cs []CareOf) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].BID < cs[j-1].BID; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// deregister handles a lifetime-0 BU (RFC 6275 §10.3.2; RFC 5648 §5.6 for
// BIDs). The caller checked the sequence number.
func (c *BindingCache) deregister(e *bcEntry, old *Binding, r Registration, now time.Time) (*Binding, time.Duration, error) {
	if old == nil {
		return nil, 0, ErrNotRegistered
	}
	// De-register single BIDs when the BU names BIDs other than 0 and
	// does not replace everything.
	if !r.Replace && len(r.CoAs) > 0 {
		keep := make([]CareOf, 0, len(old.CoAs))
		for _, o := range old.CoAs {
			if _, ok := findBID(r.CoAs, o.BID); !ok {
				keep = append(keep, o)
			}
		}
		if len(keep) > 0 && len(keep) < len(old.CoAs) {
			nb := *old
			nb.CoAs = keep
			nb.Seq = r.Seq
			nb.prim = CareOf{}
			for i := range keep {
				if keep[i].Primary {
					nb.prim = keep[i]
				}
			}
			if !nb.prim.Primary {
				keep[0].Primary = true
				nb.prim = keep[0]
			}
			c.byHoA.Put(nb.HoA, &nb)
			if nb.HoA4.IsValid() {
				c.byHoA4.Put(nb.HoA4, &nb)
			}
			e.b, e.seq = &nb, r.Seq
			c.notify(Change{Kind: BindingUpdated, Old: old, New: &nb})
			return &nb, nb.Expires.Sub(now), nil
		}
		if len(keep) == len(old.CoAs) {
			return nil, 0, ErrUnknownBID
		}
	}
	c.drop(e, now, false)
	e.seq = r.Seq
	return nil, 0, nil
}

// drop unpublishes e's binding and keeps its sequence number for
// DeleteHold. Lock held.
func (c *BindingCache) drop(e *bcEntry, now time.Time, expired bool) {
	old := e.b
	c.byHoA.Delete(old.HoA)
	if old.HoA4.IsValid() {
		c.byHoA4.Delete(old.HoA4)
	}
	e.b = nil
	if c.cfg.DeleteHold > 0 {
		c.schedule(e, now.Add(c.cfg.DeleteHold))
	} else {
		c.forget(e)
	}
	c.notify(Change{Kind: BindingRemoved, Old: old, Expired: expired})
}

func (c *BindingCache) forget(e *bcEntry) {
	if e.hi >= 0 {
		heap.Remove(&c.expiry, e.hi)
	}
	delete(c.entries, e.hoa)
}

// schedule sets e's expiry and wakes Run if it is the new earliest.
func (c *BindingCache) schedule(e *bcEntry, t time.Time) {
	e.expires = t
	if e.hi >= 0 {
		heap.Fix(&c.expiry, e.hi)
	} else {
		heap.Push(&c.expiry, e)
	}
	if c.expiry[0] == e {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *BindingCache) notify(ch Change) {
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(ch)
	}
}

// Delete removes the binding for hoa administratively (no hold of its
// sequence number) and reports whether there was one.
func (c *BindingCache) Delete(hoa netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[hoa]
	if e == nil {
		return false
	}
	had := e.b != nil
	if had {
		c.drop(e, c.cfg.Now(), false)
	}
	c.forget(e)
	return had
}

// Expire removes the bindings whose lifetime ended at or before now
// (RFC 6275 §10.3.1: home registrations are kept until their lifetime
// expires) and forgets de-registered sequence numbers past their hold.
// It returns the number of bindings removed.
func (c *BindingCache) Expire(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for len(c.expiry) > 0 && !c.expiry[0].expires.After(now) {
		e := c.expiry[0]
		if e.b != nil {
			c.drop(e, now, true)
			n++
			if c.cfg.DeleteHold > 0 {
				continue // rescheduled for its hold
			}
		} else {
			c.forget(e)
		}
	}
	return n
}

// next returns the earliest scheduled expiry.
func (c *BindingCache) next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.expiry) == 0 {
		return time.Time{}, false
	}
	return c.expiry[0].expires, true
}

// Run expires bindings as their lifetimes end until ctx is done. It uses
// one timer for the earliest expiry.
func (c *BindingCache) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c.Expire(c.cfg.Now())
		d := time.Hour
		if at, ok := c.next(); ok {
			d = max(at.Sub(c.cfg.Now()), 0)
		}
		t.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-t.C:
		}
	}
}
