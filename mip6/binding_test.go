package mip6

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mipsec/mipsec/internal/oatable"
)

var (
	hoa1  = netip.MustParseAddr("2001:db8:1::10")
	hoa2  = netip.MustParseAddr("2001:db8:1::20")
	coa6  = netip.MustParseAddr("2001:db8:aa::1")
	coa6b = netip.MustParseAddr("2001:db8:bb::1")
	coa4  = netip.MustParseAddr("192.0.2.7")
	nat4  = netip.MustParseAddrPort("198.51.100.1:61000")
	hoa4  = netip.MustParseAddr("10.1.0.10")
)

var addrCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

// TestSeqNewer checks SeqLess the way the binding cache uses it: is s
// newer than the cached last?
func TestSeqNewer(t *testing.T) {
	tests := []struct {
		name    string
		s, last uint16
		want    bool
	}{
		{"next", 16, 15, true},
		{"equal", 15, 15, false},
		{"previous", 14, 15, false},
		{"zero after 15", 0, 15, false},
		{"far ahead 32767", 15 + 32767, 15, true},
		{"boundary 32768 not greater", 15 + 32768, 15, false},
		{"RFC example 32783", 32783, 15, false},
		{"RFC example 65535", 65535, 15, false},
		{"wrap 65535 -> 0", 0, 65535, true},
		{"wrap 65535 -> 5", 5, 65535, true},
		{"wrap back", 65535, 0, false},
		{"wrap 32767 ahead of 40000", (40000 + 32767) & 0xffff, 40000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SeqLess(tt.last, tt.s); got != tt.want {
				t.Errorf("SeqLess(%d, %d) = %v, want %v", tt.last, tt.s, got, tt.want)
			}
			if got := CheckSequence(&Binding{Seq: tt.last}, tt.s); got != tt.want {
				t.Errorf("CheckSequence(seq %d, %d) = %v, want %v", tt.last, tt.s, got, tt.want)
			}
		})
	}
	if !CheckSequence(nil, 0) || !CheckSequence(nil, 40000) {
		t.Error("CheckSequence(nil, _) = false; any value is accepted without a binding")
	}
	// RFC 6275 §9.5.1 example: L = 15, 0..15 and 32783..65535 not greater.
	for s := 0; s < 1<<16; s++ {
		want := s > 15 && s < 32783
		if got := SeqLess(15, uint16(s)); got != want {
			t.Fatalf("SeqLess(15, %d) = %v, want %v", s, got, want)
		}
	}
}

func TestClampLifetime(t *testing.T) {
	tests := []struct {
		name           string
		req, max, want time.Duration
	}{
		{"below", 60 * time.Second, 600 * time.Second, 60 * time.Second},
		{"equal", 600 * time.Second, 600 * time.Second, 600 * time.Second},
		{"above", 3600 * time.Second, 600 * time.Second, 600 * time.Second},
		{"zero is dereg", 0, 600 * time.Second, 0},
		{"negative", -time.Second, 600 * time.Second, 0},
		{"no max", 3600 * time.Second, 0, 3600 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClampLifetime(tt.req, tt.max); got != tt.want {
				t.Errorf("ClampLifetime(%v, %v) = %v, want %v", tt.req, tt.max, got, tt.want)
			}
		})
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func reg(h netip.Addr, seq uint16, life time.Duration, cs ...CareOf) Registration {
	return Registration{HoA: h, Seq: seq, Lifetime: life, CoAs: cs, Replace: len(cs) == 1 && cs[0].BID == 0}
}

func TestBindingCacheUpdate(t *testing.T) {
	clk := newFakeClock()
	var changes []Change
	c := NewBindingCache(BindingCacheConfig{MaxLifetime: 600 * time.Second, Now: clk.now,
		OnChange: func(ch Change) { changes = append(changes, ch) }})

	// First registration: any sequence number, lifetime clamped.
	b, life, err := c.Update(reg(hoa1, 40000, time.Hour, CareOf{Addr: coa6}))
	if err != nil {
		t.Fatal(err)
	}
	if life != 600*time.Second || b.Lifetime != life || !b.Expires.Equal(clk.t.Add(life)) {
		t.Errorf("granted %v, binding %v expires %v", life, b.Lifetime, b.Expires)
	}
	if !b.Primary().Primary || b.Primary().Addr != coa6 {
		t.Errorf("primary = %+v", b.Primary())
	}
	if got, ok := c.Lookup(hoa1); !ok || got != b {
		t.Errorf("Lookup = %v, %v", got, ok)
	}
	if len(changes) != 1 || changes[0].Kind != BindingAdded || changes[0].New != b {
		t.Errorf("changes = %+v", changes)
	}

	// Stale sequence number: 135 with the cached number, nothing changes.
	for _, seq := range []uint16{40000, 39999, (40000 + 32768) & 0xffff} {
		_, _, err = c.Update(reg(hoa1, seq, time.Minute, CareOf{Addr: coa6b}))
		var se *SeqError
		if !errors.As(err, &se) || se.Last != 40000 {
			t.Errorf("seq %d: err = %v, want SeqError{40000}", seq, err)
		}
	}
	if got, _ := c.Lookup(hoa1); got != b {
		t.Error("rejected BU changed the binding")
	}

	// Move to an IPv4 CoA behind a NAT, with an IPv4 HoA.
	clk.add(10 * time.Second)
	r := reg(hoa1, 40001, time.Minute, CareOf{Addr: coa4, NAT: true, Endpoint: nat4})
	r.HoA4 = hoa4
	b2, _, err := c.Update(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.LookupV4(hoa4); !ok || got != b2 {
		t.Errorf("LookupV4 = %v, %v", got, ok)
	}
	if !c.AcceptsFrom(hoa1, nat4.Addr()) || !c.AcceptsFrom(hoa4, coa4) || c.AcceptsFrom(hoa1, coa6) {
		t.Error("AcceptsFrom wrong after move")
	}
	if last := changes[len(changes)-1]; last.Kind != BindingUpdated || last.Old != b || last.New != b2 {
		t.Errorf("last change = %+v", last)
	}

	// IPv4 HoA owned by another home address.
	r = reg(hoa2, 1, time.Minute, CareOf{Addr: coa6b})
	r.HoA4 = hoa4
	if _, _, err := c.Update(r); err != ErrHoA4InUse {
		t.Errorf("err = %v, want ErrHoA4InUse", err)
	}
	// Refresh without the IPv4 HoA option drops the IPv4 binding
	// (RFC 5555 §4.4.2.1).
	if _, _, err := c.Update(reg(hoa1, 40002, time.Minute, CareOf{Addr: coa4, NAT: true, Endpoint: nat4})); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.LookupV4(hoa4); ok {
		t.Error("IPv4 binding survived a BU without IPv4 HoA option")
	}

	// De-registration, then a late BU within MAX_DELETE_BCE_TIMEOUT.
	if b, _, err := c.Update(Registration{HoA: hoa1, Seq: 40003, Replace: true}); err != nil || b != nil {
		t.Fatalf("dereg = %v, %v", b, err)
	}
	if _, ok := c.Lookup(hoa1); ok {
		t.Error("binding still published after de-registration")
	}
	if last := changes[len(changes)-1]; last.Kind != BindingRemoved || last.Expired || last.New != nil {
		t.Errorf("last change = %+v", last)
	}
	var se *SeqError
	if _, _, err := c.Update(reg(hoa1, 40002, time.Minute, CareOf{Addr: coa6})); !errors.As(err, &se) || se.Last != 40003 {
		t.Errorf("late BU err = %v, want SeqError{40003}", err)
	}
	if _, _, err := c.Update(Registration{HoA: hoa1, Seq: 40004, Replace: true}); err != ErrNotRegistered {
		t.Errorf("dereg without binding: %v, want ErrNotRegistered", err)
	}
	clk.add(MaxDeleteBCETimeout)
	c.Expire(clk.now())
	if _, ok := c.Current(hoa1); ok {
		t.Error("sequence number kept past MAX_DELETE_BCE_TIMEOUT")
	}
	if _, _, err := c.Update(reg(hoa1, 7, time.Minute, CareOf{Addr: coa6})); err != nil {
		t.Errorf("new registration after hold: %v", err)
	}
}

func TestBindingCacheValidation(t *testing.T) {
	c := NewBindingCache(BindingCacheConfig{MaxCoAs: 2})
	tests := []struct {
		name string
		r    Registration
		want error
	}{
		{"IPv4 HoA as key", reg(hoa4, 1, time.Minute, CareOf{Addr: coa6}), ErrInvalidHoA},
		{"multicast HoA", reg(netip.MustParseAddr("ff02::1"), 1, time.Minute, CareOf{Addr: coa6}), ErrInvalidHoA},
		{"link-local HoA", reg(netip.MustParseAddr("fe80::1"), 1, time.Minute, CareOf{Addr: coa6}), ErrInvalidHoA},
		{"zero HoA", reg(netip.Addr{}, 1, time.Minute, CareOf{Addr: coa6}), ErrInvalidHoA},
		{"no CoA", reg(hoa1, 1, time.Minute), ErrNoCoA},
		{"unspecified CoA", reg(hoa1, 1, time.Minute, CareOf{Addr: netip.IPv6Unspecified()}), ErrInvalidCoA},
		{"multicast CoA", reg(hoa1, 1, time.Minute, CareOf{Addr: netip.MustParseAddr("224.0.0.1")}), ErrInvalidCoA},
		{"duplicate BID", reg(hoa1, 1, time.Minute, CareOf{BID: 1, Addr: coa6}, CareOf{BID: 1, Addr: coa4}), ErrDuplicateBID},
		{"too many", reg(hoa1, 1, time.Minute, CareOf{BID: 1, Addr: coa6}, CareOf{BID: 2, Addr: coa4}, CareOf{BID: 3, Addr: coa6b}), ErrTooManyCoAs},
		{"IPv6 as IPv4 HoA", Registration{HoA: hoa1, HoA4: hoa2, Seq: 1, Lifetime: time.Minute, CoAs: []CareOf{{Addr: coa6}}}, ErrInvalidHoA4},
		{"dereg unknown", Registration{HoA: hoa1, Seq: 1, Replace: true}, ErrNotRegistered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := c.Update(tt.r); err != tt.want {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if c.Len() != 0 {
				t.Errorf("Len = %d after a rejected BU", c.Len())
			}
		})
	}
}

func TestBindingCacheMultipleCoAs(t *testing.T) {
	c := NewBindingCache(BindingCacheConfig{})
	// RFC 5648: two BIDs, the second asked to be primary.
	b, _, err := c.Update(reg(hoa1, 1, time.Minute, CareOf{BID: 2, Addr: coa4, Primary: true}, CareOf{BID: 1, Addr: coa6}))
	if err != nil {
		t.Fatal(err)
	}
	want := []CareOf{{BID: 1, Addr: coa6}, {BID: 2, Addr: coa4, Primary: true}}
	if d := cmp.Diff(want, b.CoAs, addrCmp); d != "" {
		t.Errorf("CoAs (-want +got):\n%s", d)
	}
	if b.Primary().BID != 2 {
		t.Errorf("primary BID = %d", b.Primary().BID)
	}
	// Accept tunneled packets from any registered CoA (RFC 5648 §5.2).
	for _, a := range []netip.Addr{coa6, coa4, netip.AddrFrom16(coa4.As16())} {
		if !c.AcceptsFrom(hoa1, a) {
			t.Errorf("AcceptsFrom(%v) = false", a)
		}
	}
	if c.AcceptsFrom(hoa1, coa6b) || c.AcceptsFrom(hoa2, coa6) {
		t.Error("AcceptsFrom accepted an unregistered source")
	}
	// A third BID added without O: merged; a new primary takes over.
	b, _, err = c.Update(reg(hoa1, 2, time.Minute, CareOf{BID: 3, Addr: coa6b, Primary: true}))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.CoAs) != 3 || b.Primary().BID != 3 || b.CoAs[1].Primary {
		t.Errorf("after merge: %+v", b.CoAs)
	}
	// De-registering a BID that is not registered: 167, nothing changes.
	if _, _, err := c.Update(Registration{HoA: hoa1, Seq: 3, CoAs: []CareOf{{BID: 7}}}); err != ErrUnknownBID {
		t.Errorf("dereg BID 7: %v, want ErrUnknownBID", err)
	}
	// De-register BID 3 only: the primary moves to the lowest BID.
	b, _, err = c.Update(Registration{HoA: hoa1, Seq: 3, CoAs: []CareOf{{BID: 3}}})
	if err != nil || b == nil {
		t.Fatalf("dereg BID 3: %v, %v", b, err)
	}
	if len(b.CoAs) != 2 || b.Primary().BID != 1 {
		t.Errorf("after BID dereg: %+v", b.CoAs)
	}
	// O flag: replace everything.
	b, _, err = c.Update(Registration{HoA: hoa1, Seq: 4, Lifetime: time.Minute, Replace: true, CoAs: []CareOf{{BID: 9, Addr: coa6b}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]CareOf{{BID: 9, Addr: coa6b, Primary: true}}, b.CoAs, addrCmp); d != "" {
		t.Errorf("after O (-want +got):\n%s", d)
	}
	// De-registering the last BID removes the binding.
	if b, _, err := c.Update(Registration{HoA: hoa1, Seq: 5, CoAs: []CareOf{{BID: 9}}}); err != nil || b != nil {
		t.Errorf("dereg last BID = %v, %v", b, err)
	}
	if _, ok := c.Lookup(hoa1); ok {
		t.Error("binding left after its last BID")
	}
}

// TestBindingCacheModel runs random operations against the cache and a
// plain map model (seeded RNG), including table growth and shrinking.
func TestBindingCacheModel(t *testing.T) {
	clk := newFakeClock()
	c := NewBindingCache(BindingCacheConfig{Now: clk.now, DeleteHold: -1})
	type model struct {
		seq  uint16
		coa  netip.Addr
		hoa4 netip.Addr
		exp  time.Time
	}
	m := map[netip.Addr]*model{}
	rng := rand.New(rand.NewPCG(1, 2))
	addr := func(i int) netip.Addr {
		var b [16]byte
		b[0], b[1], b[14], b[15] = 0x20, 0x01, byte(i>>8), byte(i)
		return netip.AddrFrom16(b)
	}
	const keys = 3000
	for op := 0; op < 200000; op++ {
		h := addr(rng.IntN(keys))
		switch k := rng.IntN(100); {
		case k < 60: // update
			seq := uint16(rng.IntN(1 << 16))
			coa := netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(250) + 1)})
			var h4 netip.Addr
			if rng.IntN(4) == 0 {
				h4 = netip.AddrFrom4([4]byte{10, 0, byte(h.As16()[14]), byte(h.As16()[15])})
			}
			life := time.Duration(rng.IntN(100)+1) * time.Second
			r := Registration{HoA: h, HoA4: h4, Seq: seq, Lifetime: life, CoAs: []CareOf{{Addr: coa}}, Replace: true}
			_, _, err := c.Update(r)
			old := m[h]
			wantOK := old == nil || SeqLess(old.seq, seq)
			if (err == nil) != wantOK {
				t.Fatalf("op %d: Update(%v seq %d) err = %v, model ok %v", op, h, seq, err, wantOK)
			}
			if wantOK {
				m[h] = &model{seq: seq, coa: coa, hoa4: h4, exp: clk.t.Add(life)}
			}
		case k < 70: // dereg
			seq := uint16(rng.IntN(1 << 16))
			b, _, err := c.Update(Registration{HoA: h, Seq: seq, Replace: true})
			old := m[h]
			switch {
			case old == nil:
				if err != ErrNotRegistered {
					t.Fatalf("op %d: dereg unknown err = %v", op, err)
				}
			case SeqLess(old.seq, seq):
				if err != nil || b != nil {
					t.Fatalf("op %d: dereg = %v, %v", op, b, err)
				}
				delete(m, h)
			default:
				if err == nil {
					t.Fatalf("op %d: stale dereg accepted", op)
				}
			}
		case k < 75: // delete
			if got := c.Delete(h); got != (m[h] != nil) {
				t.Fatalf("op %d: Delete = %v", op, got)
			}
			delete(m, h)
		case k < 80: // time passes
			clk.add(time.Duration(rng.IntN(20)) * time.Second)
			n := c.Expire(clk.t)
			want := 0
			for a, e := range m {
				if !e.exp.After(clk.t) {
					delete(m, a)
					want++
				}
			}
			if n != want {
				t.Fatalf("op %d: Expire removed %d, model %d", op, n, want)
			}
		default: // lookup
			b, ok := c.Lookup(h)
			e := m[h]
			if ok != (e != nil) {
				t.Fatalf("op %d: Lookup(%v) ok = %v, model %v", op, h, ok, e != nil)
			}
			if ok && (b.Seq != e.seq || b.Primary().Addr != e.coa || b.HoA4 != e.hoa4 || !b.Expires.Equal(e.exp)) {
				t.Fatalf("op %d: Lookup(%v) = %v, model %+v", op, h, b, e)
			}
		}
	}
	// Final full comparison, both indexes.
	if c.Len() != len(m) {
		t.Fatalf("Len = %d, model %d", c.Len(), len(m))
	}
	seen := 0
	c.Range(func(b *Binding) bool {
		if e := m[b.HoA]; e == nil || e.seq != b.Seq {
			t.Fatalf("Range: %v not in the model", b)
		}
		seen++
		return true
	})
	if seen != len(m) {
		t.Fatalf("Range saw %d, model %d", seen, len(m))
	}
	for i := 0; i < keys; i++ {
		h := addr(i)
		b, ok := c.Lookup(h)
		e := m[h]
		if ok != (e != nil) {
			t.Fatalf("Lookup(%v) = %v, model %v", h, ok, e != nil)
		}
		if e != nil && e.hoa4.IsValid() {
			if b4, ok := c.LookupV4(e.hoa4); !ok || b4 != b {
				t.Fatalf("LookupV4(%v) = %v, %v", e.hoa4, b4, ok)
			}
		}
	}
}

// TestBindingCacheConcurrent checks readers against a writer under -race:
// a reader only ever sees a complete binding for the address it asked.
func TestBindingCacheConcurrent(t *testing.T) {
	c := NewBindingCache(BindingCacheConfig{DeleteHold: -1})
	addrs := make([]netip.Addr, 512)
	for i := range addrs {
		addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				h := addrs[i%len(addrs)]
				if b, ok := c.Lookup(h); ok {
					if b.HoA != h || len(b.CoAs) == 0 || !b.Primary().Primary {
						t.Errorf("reader saw %v for %v", b, h)
						return
					}
					_ = c.AcceptsFrom(h, b.Primary().Addr)
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(3, 4))
	seqs := make([]uint16, len(addrs))
	for op := 0; op < 50000; op++ {
		i := rng.IntN(len(addrs))
		seqs[i]++
		if rng.IntN(5) == 0 {
			c.Update(Registration{HoA: addrs[i], Seq: seqs[i], Replace: true})
			continue
		}
		c.Update(reg(addrs[i], seqs[i], time.Minute, CareOf{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(op%250 + 1)})}))
	}
	stop.Store(true)
	wg.Wait()
}

// TestBindingCacheExpiry runs the sweeper under synctest: bindings end
// exactly when their lifetime does, and a refresh postpones it.
func TestBindingCacheExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []string
		t0 := time.Now()
		c := NewBindingCache(BindingCacheConfig{OnChange: func(ch Change) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, fmt.Sprintf("%v %v expired=%v", ch.Kind, time.Since(t0), ch.Expired))
		}})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go c.Run(ctx)

		c.Update(reg(hoa1, 1, 60*time.Second, CareOf{Addr: coa6}))
		c.Update(reg(hoa2, 1, 30*time.Second, CareOf{Addr: coa6b}))
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if _, ok := c.Lookup(hoa2); !ok {
			t.Error("hoa2 expired early")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, ok := c.Lookup(hoa2); ok {
			t.Error("hoa2 not expired at 30s")
		}
		// Refresh hoa1 at 30 s for another 60 s.
		c.Update(reg(hoa1, 2, 60*time.Second, CareOf{Addr: coa6}))
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if _, ok := c.Lookup(hoa1); !ok {
			t.Error("refreshed hoa1 expired early")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, ok := c.Lookup(hoa1); ok {
			t.Error("hoa1 not expired at 90s")
		}
		cancel()
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		want := []string{
			"added 0s expired=false",
			"added 0s expired=false",
			"removed 30s expired=true",
			"updated 30s expired=false",
			"removed 1m30s expired=true",
		}
		if d := cmp.Diff(want, events); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
	})
}

// TestBindingIndexRebuild grows both indexes (internal/oatable) to
// thousands of bindings and shrinks them back while readers look up a few
// bindings that stay registered throughout: no rebuild may hide one of
// them, and the indexes end shrunk, with the same bindings as the cache's
// own map.
func TestBindingIndexRebuild(t *testing.T) {
	c := NewBindingCache(BindingCacheConfig{DeleteHold: -1})
	addr := func(i int) (netip.Addr, netip.Addr) {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 8: 1, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}),
			netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	const stable, churn = 8, 5000
	for i := range stable {
		h, h4 := addr(i)
		if _, _, err := c.Update(Registration{HoA: h, HoA4: h4, Seq: 1, Lifetime: time.Hour, CoAs: []CareOf{{Addr: coa6}}, Replace: true}); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				h, h4 := addr(i % stable)
				b, ok := c.Lookup(h)
				b4, ok4 := c.LookupV4(h4)
				if !ok || !ok4 || b.HoA != h || b4.HoA4 != h4 || !c.AcceptsFrom(h4, coa6) {
					t.Errorf("stable binding %v (%v) missing during rebuild: %v %v", h, h4, b, b4)
					return
				}
			}
		}()
	}
	var peak, peak4 int
	for round := uint16(1); round <= 2; round++ {
		for i := stable; i < stable+churn; i++ {
			h, h4 := addr(i)
			if i%2 == 0 {
				h4 = netip.Addr{}
			}
			if _, _, err := c.Update(Registration{HoA: h, HoA4: h4, Seq: 2 * round, Lifetime: time.Hour, CoAs: []CareOf{{Addr: coa6b}}, Replace: true}); err != nil {
				t.Fatal(err)
			}
		}
		if n := c.Len(); n != stable+churn {
			t.Fatalf("Len = %d, want %d", n, stable+churn)
		}
		peak, peak4 = c.byHoA.Slots(), c.byHoA4.Slots()
		for i := stable; i < stable+churn; i++ {
			h, _ := addr(i)
			if _, _, err := c.Update(Registration{HoA: h, Seq: 2*round + 1, Replace: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := c.Len(); n != stable {
		t.Fatalf("Len = %d after the churn, want %d", n, stable)
	}
	// The tables shrink by rebuilds as bindings go (internal/oatable); 8
	// bindings may keep a table a few times oatable.MinSlots.
	if n := c.byHoA.Slots(); n*32 > peak || n < oatable.MinSlots {
		t.Errorf("HoA index has %d slots after shrinking, %d at its peak", n, peak)
	}
	if n := c.byHoA4.Slots(); n*16 > peak4 || n < oatable.MinSlots {
		t.Errorf("IPv4 HoA index has %d slots after shrinking, %d at its peak", n, peak4)
	}
	got := map[netip.Addr]*Binding{}
	for k, b := range c.byHoA.All() {
		got[k] = b
	}
	for k, b := range c.byHoA4.All() {
		got[k] = b
	}
	if len(got) != 2*stable {
		t.Errorf("indexes hold %d keys, want %d", len(got), 2*stable)
	}
	for h, e := range c.entries {
		if got[h] != e.b || got[e.b.HoA4] != e.b {
			t.Errorf("indexes disagree with the cache for %v", h)
		}
	}
}

// TestBindingLookupExactKey checks that the indexes compare whole
// addresses: the IPv4-mapped form of an IPv4 home address, a zoned form of
// an IPv6 one and the IPv4 home address in the IPv6 index find nothing.
func TestBindingLookupExactKey(t *testing.T) {
	c := NewBindingCache(BindingCacheConfig{})
	if _, _, err := c.Update(Registration{HoA: hoa1, HoA4: hoa4, Seq: 1, Lifetime: time.Hour, CoAs: []CareOf{{Addr: coa6}}, Replace: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup(hoa1); !ok {
		t.Fatal("Lookup(hoa1) missed")
	}
	if _, ok := c.LookupV4(hoa4); !ok {
		t.Fatal("LookupV4(hoa4) missed")
	}
	for _, a := range []netip.Addr{hoa1.WithZone("eth0"), hoa4, netip.AddrFrom16(hoa4.As16())} {
		if b, ok := c.Lookup(a); ok {
			t.Errorf("Lookup(%v) = %v", a, b)
		}
	}
	for _, a := range []netip.Addr{netip.AddrFrom16(hoa4.As16()), hoa1} {
		if b, ok := c.LookupV4(a); ok {
			t.Errorf("LookupV4(%v) = %v", a, b)
		}
	}
	if c.AcceptsFrom(hoa1.WithZone("eth0"), coa6) || c.AcceptsFrom(netip.AddrFrom16(hoa4.As16()), coa6) {
		t.Error("AcceptsFrom matched another form of a home address")
	}
}

func fillCache(tb testing.TB, n int) (*BindingCache, []netip.Addr) {
	c := NewBindingCache(BindingCacheConfig{})
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 8: byte(i >> 24), 9: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		if _, _, err := c.Update(reg(addrs[i], 1, time.Hour, CareOf{Addr: coa6})); err != nil {
			tb.Fatal(err)
		}
	}
	return c, addrs
}

func TestBindingLookupAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	c, addrs := fillCache(t, 100)
	var sink netip.Addr
	n := testing.AllocsPerRun(1000, func() {
		for _, a := range addrs {
			if b, ok := c.Lookup(a); ok {
				sink = b.Primary().Addr
			}
			c.AcceptsFrom(a, coa6)
		}
		c.Lookup(hoa2)
	})
	if n != 0 {
		t.Errorf("Lookup allocates %v times per run", n)
	}
	_ = sink
}

func BenchmarkBindingLookup(b *testing.B) {
	for _, n := range []int{1, 1000, 1000000} {
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			c, addrs := fillCache(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				bd, ok := c.Lookup(addrs[i])
				if !ok || bd.Primary().Addr != coa6 {
					b.Fatal("miss")
				}
				i++
				if i == len(addrs) {
					i = 0
				}
			}
		})
	}
}

func BenchmarkBindingUpdate(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			c, addrs := fillCache(b, n)
			seq := uint16(1)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == 0 {
					seq++
				}
				if _, _, err := c.Update(reg(addrs[i], seq, time.Hour, CareOf{Addr: coa6b})); err != nil {
					b.Fatal(err)
				}
				i++
				if i == len(addrs) {
					i = 0
				}
			}
		})
	}
}
