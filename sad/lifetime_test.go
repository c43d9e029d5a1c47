package sad

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// recorder collects events as "soft packets 0x10".
type recorder struct {
	mu  sync.Mutex
	evs []string
}

func (r *recorder) on(e Event) {
	kind := "soft"
	if e.Hard {
		kind = "hard"
		if !e.SA.Expired() || e.SA.linked {
			kind = "hard-but-alive"
		}
	}
	r.mu.Lock()
	r.evs = append(r.evs, fmt.Sprintf("%s %v %#x", kind, e.Reason, e.SPI))
	r.mu.Unlock()
}

// take returns the events so far and forgets them; call after
// synctest.Wait.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.evs
	r.evs = nil
	return evs
}

func (r *recorder) expect(t *testing.T, when string, want ...string) {
	t.Helper()
	synctest.Wait()
	if got := r.take(); !slices.Equal(got, want) {
		t.Errorf("%s: events %q, want %q", when, got, want)
	}
}

func withLifetime(c Config, lt Lifetime) Config {
	c.Lifetime = lt
	return c
}

func TestLifetimePacketsOutbound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		db := New(Options{OnExpire: rec.on})
		s := mustAdd(t, db, withLifetime(cfg(Outbound, 0x10), Lifetime{
			Soft: Limits{Packets: 3}, Hard: Limits{Packets: 5},
		}))
		b := new(pkt.Buf)
		seal := func() esp.Verdict {
			b.Reset()
			b.Set(ip6(cn, hoa, udp(1, 2, 10)))
			return s.Seal(b)
		}
		for i := 1; i <= 2; i++ {
			if v := seal(); v != esp.OK {
				t.Fatalf("packet %d: %v", i, v)
			}
		}
		rec.expect(t, "2 packets")
		seal()
		rec.expect(t, "3 packets", "soft packets 0x10")
		seal()
		if v := seal(); v != esp.OK {
			t.Fatalf("packet 5: %v", v)
		}
		// The 5th packet used up the SA: dead at once.
		if !s.Expired() || db.Outbound(0x10) != nil {
			t.Error("SA usable after its last packet")
		}
		rec.expect(t, "5 packets", "hard packets 0x10")
		if v := seal(); v != esp.DropExpired {
			t.Errorf("packet 6: %v", v)
		}
		if db.Len() != 0 {
			t.Errorf("Len = %d after hard expiry", db.Len())
		}
		st := s.Stats()
		if st.Packets != 5 || st.Drops[esp.DropExpired] != 1 {
			t.Errorf("stats = %+v", st)
		}
		rec.expect(t, "after")
	})
}

func TestLifetimeBytesInbound(t *testing.T) {
	inner := ip6(cn, hoa, udp(1, 2, 52)) // 100 bytes
	if len(inner) != 100 {
		t.Fatal(len(inner))
	}
	tests := []struct {
		name      string
		soft      uint64
		hard      uint64
		delivered int
		events    []string
	}{
		{"hard reached exactly", 250, 500, 5, []string{"soft bytes 0x20", "hard bytes 0x20"}},
		{"next packet would pass hard", 250, 450, 4, []string{"soft bytes 0x20", "hard bytes 0x20"}},
		{"soft equals hard", 300, 300, 3, []string{"soft bytes 0x20", "hard bytes 0x20"}},
		{"no soft limit", 0, 300, 3, []string{"hard bytes 0x20"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var rec recorder
				db := New(Options{OnExpire: rec.on})
				out, _ := pair(t, db, 0x20, esp.Tunnel, anySel, anySel)
				in, _, err := db.Replace(withLifetime(cfg(Inbound, 0x20), Lifetime{Soft: Limits{Bytes: tt.soft}, Hard: Limits{Bytes: tt.hard}}))
				if err != nil {
					t.Fatal(err)
				}
				var got []esp.Verdict
				for range 7 {
					b, v := sealOpen(t, out, in, inner)
					got = append(got, v)
					if v != esp.OK && bytes.Contains(b.B[:], inner) {
						t.Errorf("refused packet's plaintext left in the buffer")
					}
				}
				var want []esp.Verdict
				for i := range 7 {
					if i < tt.delivered {
						want = append(want, esp.OK)
					} else {
						want = append(want, esp.DropExpired)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("verdicts %v, want %v", got, want)
				}
				rec.expect(t, "end", tt.events...)
				if st := in.Stats(); st.Packets != uint64(tt.delivered) || st.Bytes != 100*uint64(tt.delivered) {
					t.Errorf("stats = %+v", st)
				}
				if db.Inbound(0x20) != nil || db.Outbound(0x20) != out {
					t.Error("wrong SAs removed")
				}
			})
		})
	}
}

// A hard limit of another kind reached before the soft one: the soft
// event still comes, first.
func TestHardBeforeSoft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		db := New(Options{OnExpire: rec.on})
		s := mustAdd(t, db, withLifetime(cfg(Outbound, 0x30), Lifetime{
			Soft: Limits{Bytes: 1 << 20}, Hard: Limits{Packets: 2},
		}))
		for range 3 {
			s.Seal(newBuf(ip6(cn, hoa, udp(1, 2, 10))))
		}
		rec.expect(t, "3 packets", "soft packets 0x30", "hard packets 0x30")
	})
}

func TestLifetimeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		db := New(Options{OnExpire: rec.on})
		start := time.Now()
		s := mustAdd(t, db, withLifetime(cfg(Outbound, 0x40), Lifetime{
			Soft: Limits{Time: 10 * time.Second}, Hard: Limits{Time: 20 * time.Second},
		}))
		keep := mustAdd(t, db, withLifetime(cfg(Outbound, 0x41), Lifetime{Hard: Limits{Time: time.Hour}}))
		if !s.Created().Equal(start) {
			t.Errorf("Created = %v, want %v", s.Created(), start)
		}
		time.Sleep(10*time.Second - time.Nanosecond)
		rec.expect(t, "just before soft")
		time.Sleep(time.Nanosecond)
		rec.expect(t, "soft", "soft time 0x40")
		if v := s.Seal(newBuf(ip6(cn, hoa, udp(1, 2, 10)))); v != esp.OK {
			t.Errorf("Seal between soft and hard: %v", v)
		}
		time.Sleep(10 * time.Second)
		rec.expect(t, "hard", "hard time 0x40")
		if v := s.Seal(newBuf(ip6(cn, hoa, udp(1, 2, 10)))); v != esp.DropExpired {
			t.Errorf("Seal after hard: %v", v)
		}
		if db.Outbound(0x40) != nil || db.Outbound(0x41) != keep || db.Len() != 1 {
			t.Error("wrong SAs after the hard expiry")
		}
		db.Close()
	})
}

func TestDeleteAndReplaceCancelEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		db := New(Options{OnExpire: rec.on})
		lt := Lifetime{Soft: Limits{Time: time.Second}, Hard: Limits{Time: 2 * time.Second}}
		mustAdd(t, db, withLifetime(cfg(Inbound, 0x50), lt))
		mustAdd(t, db, withLifetime(cfg(Inbound, 0x51), lt))
		if _, err := db.Delete(Inbound, 0x50); err != nil {
			t.Fatal(err)
		}
		// The replacement has its own, later, lifetime.
		if _, _, err := db.Replace(withLifetime(cfg(Inbound, 0x51), Lifetime{Hard: Limits{Time: 5 * time.Second}})); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		rec.expect(t, "3s")
		time.Sleep(3 * time.Second)
		rec.expect(t, "6s", "hard time 0x51")
	})
}

// Many goroutines cross the limits at once: exactly Hard.Packets packets
// are sealed and each event comes once, soft first.
func TestLifetimeConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		db := New(Options{OnExpire: rec.on})
		s := mustAdd(t, db, withLifetime(cfg(Outbound, 0x60), Lifetime{
			Soft: Limits{Packets: 100}, Hard: Limits{Packets: 300},
		}))
		var mu sync.Mutex
		counts := map[esp.Verdict]int{}
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				b := new(pkt.Buf)
				for range 100 {
					b.Reset()
					b.Set(ip6(cn, hoa, udp(1, 2, 10)))
					v := s.Seal(b)
					mu.Lock()
					counts[v]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if counts[esp.OK] != 300 || counts[esp.DropExpired] != 300 {
			t.Errorf("verdicts %v", counts)
		}
		rec.expect(t, "end", "soft packets 0x60", "hard packets 0x60")
	})
}

func TestBatchHardLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		db := New(Options{OnExpire: rec.on})
		out := mustAdd(t, db, withLifetime(cfg(Outbound, 0x70), Lifetime{Hard: Limits{Packets: 5}}))
		in := mustAdd(t, db, withLifetime(cfg(Inbound, 0x70), Lifetime{Hard: Limits{Packets: 3}}))
		bufs := make([]*pkt.Buf, 8)
		for i := range bufs {
			bufs[i] = newBuf(ip6(cn, hoa, udp(uint16(i), 2, 10)))
		}
		v := make([]esp.Verdict, 8)
		out.SealBatch(bufs, v)
		want := []esp.Verdict{0, 0, 0, 0, 0, esp.DropExpired, esp.DropExpired, esp.DropExpired}
		if !slices.Equal(v, want) {
			t.Errorf("SealBatch verdicts %v, want %v", v, want)
		}
		offs := []int{40, 40, 40, 40, 40}
		nh := make([]uint8, 5)
		in.OpenBatch(bufs[:5], offs, nh, v[:5])
		want = []esp.Verdict{0, 0, 0, esp.DropExpired, esp.DropExpired}
		if !slices.Equal(v[:5], want) {
			t.Errorf("OpenBatch verdicts %v, want %v", v[:5], want)
		}
		for i := 3; i < 5; i++ {
			if bufs[i].Len() != 0 {
				t.Errorf("refused packet %d not wiped", i)
			}
		}
		rec.expect(t, "end", "hard packets 0x70", "hard packets 0x70")
		if st := out.Stats(); st.Packets != 5 || st.Drops[esp.DropExpired] != 3 {
			t.Errorf("out stats %+v", st)
		}
		if st := in.Stats(); st.Packets != 3 || st.Drops[esp.DropExpired] != 2 {
			t.Errorf("in stats %+v", st)
		}
		// A dead SA refuses whole batches.
		out.SealBatch(bufs[:2], v[:2])
		in.OpenBatch(bufs[:2], offs[:2], nh[:2], v[:2])
		if v[0] != esp.DropExpired || v[1] != esp.DropExpired {
			t.Errorf("batch on a dead SA: %v", v[:2])
		}
	})
}

// The callback may rekey: Add the successor on the soft event, Delete on
// the hard one.
func TestRekeyFromCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var db *DB
		var rec recorder
		db = New(Options{OnExpire: func(e Event) {
			rec.on(e)
			if !e.Hard {
				if _, err := db.Add(cfg(e.Dir, e.SPI+1)); err != nil {
					t.Error(err)
				}
			}
		}})
		mustAdd(t, db, withLifetime(cfg(Outbound, 0x80), Lifetime{
			Soft: Limits{Time: time.Minute}, Hard: Limits{Time: 2 * time.Minute},
		}))
		time.Sleep(3 * time.Minute)
		rec.expect(t, "end", "soft time 0x80", "hard time 0x80")
		if db.Outbound(0x81) == nil || db.Outbound(0x80) != nil {
			t.Error("rekey from the callback failed")
		}
	})
}

// Without OnExpire hard-expired SAs are removed all the same.
func TestNoCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := New(Options{})
		s := mustAdd(t, db, withLifetime(cfg(Inbound, 0x90), Lifetime{Hard: Limits{Time: time.Second}}))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if db.Len() != 0 || !s.Expired() {
			t.Error("SA not removed")
		}
	})
}

// TestSealBatchSeq: SealBatchSeq seals with the reserved numbers, in order,
// also on the one-by-one path a hard limit takes; an inbound SA reserves
// nothing.
func TestSealBatchSeq(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := New(Options{})
		out := mustAdd(t, db, withLifetime(cfg(Outbound, 0x90), Lifetime{Hard: Limits{Packets: 70}}))
		in := mustAdd(t, db, cfg(Inbound, 0x90))
		if k := in.ReserveSeq(4); k.Len() != 0 {
			t.Fatalf("inbound SA reserved %d numbers", k.Len())
		}
		seqOf := func(b *pkt.Buf) uint32 { return header.ESP(b.Bytes()[40:]).Seq() }
		batch := func(n int) ([]*pkt.Buf, []esp.Verdict) {
			bufs := make([]*pkt.Buf, n)
			for i := range bufs {
				bufs[i] = newBuf(ip6(cn, hoa, udp(uint16(i), 2, 10)))
			}
			return bufs, make([]esp.Verdict, n)
		}
		first, second := out.ReserveSeq(3), out.ReserveSeq(66)
		// The later block first, as a faster worker would.
		bufs, v := batch(66) // more than one chunk
		out.SealBatchSeq(bufs, v, &second)
		for i, b := range bufs {
			if v[i] != esp.OK || seqOf(b) != uint32(4+i) {
				t.Fatalf("second block, packet %d: %v seq %d, want seq %d", i, v[i], seqOf(b), 4+i)
			}
		}
		bufs, v = batch(1)
		out.SealBatchSeq(bufs, v, &first)
		if v[0] != esp.OK || seqOf(bufs[0]) != 1 {
			t.Fatalf("first block: %v seq %d, want OK seq 1", v[0], seqOf(bufs[0]))
		}
		bufs, v = batch(4)
		// 2 left in the block, then a fresh number (70), then the hard
		// limit of 70 packets: the chunk is sealed one by one.
		out.SealBatchSeq(bufs, v, &first)
		want := []esp.Verdict{esp.OK, esp.OK, esp.OK, esp.DropExpired}
		if !slices.Equal(v, want) || seqOf(bufs[0]) != 2 || seqOf(bufs[1]) != 3 || seqOf(bufs[2]) != 70 {
			t.Fatalf("rest of the first block: %v seqs %d %d %d", v, seqOf(bufs[0]), seqOf(bufs[1]), seqOf(bufs[2]))
		}
	})
}
