package mip6

import (
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mipsec/mipsec/endpoint"
)

// sumField adds up the uint64 field key of the entries.
func sumField(es []observer.LoggedEntry, key string) uint64 {
	var n uint64
	for _, e := range es {
		v, _ := e.ContextMap()[key].(uint64)
		n += v
	}
	return n
}

// TestHASignalDropLog: 200 valid BUs back to back: 20 (DefaultBUBurst)
// go to the signaling goroutine and 180 are rate-limited, counted and
// reported in one warning per DropLogInterval with the count, however
// many more are dropped (ha_droplog.go).
func TestHASignalDropLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.WarnLevel)
		r := newHTRig(t, func(c *HAConfig) {
			c.Logger = zap.New(core)
			c.DropLogInterval = 5 * time.Second
		})
		if err := r.ha.Start(); err != nil {
			t.Fatal(err)
		}
		defer r.ha.Close()
		p := htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6}))
		deliver := func(n int) {
			for i := range n {
				r.ha.Deliver(p, htSA1a, uint32(i), endpoint.Endpoint{Encap: endpoint.EncapIP})
			}
		}
		drops := func() []observer.LoggedEntry {
			return logs.FilterMessageSnippet("signaling dropped before processing").All()
		}
		deliver(200)
		synctest.Wait()
		if st := r.ha.Stats(); st.RateLimited != 180 || st.Received != 200 {
			t.Fatalf("stats %+v", st)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		es := drops()
		if len(es) == 0 || len(es) > 2 || sumField(es, "rate_limited") != 180 {
			t.Fatalf("%d lines counting %d drops, want 1 or 2 counting 180: %v", len(es), sumField(es, "rate_limited"), es)
		}
		if hoa := es[0].ContextMap()["last_rate_limited_hoa"]; hoa != htHoA1.String() {
			t.Errorf("line names %v, want %v", hoa, htHoA1)
		}
		// A flood: at most one line per interval.
		before := len(es)
		for range 4 {
			deliver(5000)
			time.Sleep(time.Second)
		}
		synctest.Wait()
		if n := len(drops()) - before; n > 1 {
			t.Errorf("%d lines in 4 s of flood, want at most 1", n)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got, want := sumField(drops(), "rate_limited"), r.ha.Stats().RateLimited; got != want {
			t.Errorf("lines count %d drops, the counter %d", got, want)
		}
		// Quiet: no more lines.
		n := len(drops())
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(drops()) != n {
			t.Errorf("lines without drops: %v", drops()[n:])
		}
	})
}

// TestHASignalDropLogOff: a negative DropLogInterval turns the warning
// off; the counters stay.
func TestHASignalDropLogOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.WarnLevel)
		r := newHTRig(t, func(c *HAConfig) {
			c.Logger = zap.New(core)
			c.DropLogInterval = -1
			c.QueueLen = 1
		})
		if err := r.ha.Start(); err != nil {
			t.Fatal(err)
		}
		p := htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6}))
		for i := range 100 {
			r.ha.Deliver(p, htSA1a, uint32(i), endpoint.Endpoint{Encap: endpoint.EncapIP})
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		r.ha.Close()
		if st := r.ha.Stats(); st.RateLimited+st.QueueFull == 0 {
			t.Errorf("nothing dropped: %+v", st)
		}
		if n := logs.FilterMessageSnippet("signaling dropped").Len(); n != 0 {
			t.Errorf("%d warnings with the warning off", n)
		}
	})
}

// TestMNRefreshUnanswered: the HA stops answering after a registration.
// The refresh BU is retransmitted (counted, logged at most once per
// mnRetxLogInterval with the number held back), the back-off reaching
// MAX_BINDACK_TIMEOUT is a give-up (counted, one warning), and the
// binding's expiry is counted and warned about once.
func TestMNRefreshUnanswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.InfoLevel)
		h := startMNHarness(t, func(c *MNConfig) { c.Logger = zap.New(core) })
		defer h.close()
		h.registerAt(mnCoA6)
		// Granted 600 s: the refresh is due at 480 s, the binding
		// ends at 600 s.
		start := time.Now()
		time.Sleep(480 * time.Second)
		synctest.Wait()
		if n := h.drainBUs(); n != 1 {
			t.Fatalf("%d BUs at the refresh time, want 1", n)
		}
		time.Sleep(600*time.Second - time.Since(start) + time.Second)
		sent := 1 + h.drainBUs()
		c := h.mn.Status().Counters
		t.Logf("%d BUs after the refresh went unanswered; counters %+v", sent, c)
		if c.BURetransmits != uint64(sent-1) || c.BURetransmits == 0 {
			t.Errorf("retransmits %d, want %d", c.BURetransmits, sent-1)
		}
		if c.BUGiveUps != 1 || c.Expirations != 1 {
			t.Errorf("give-ups %d, expirations %d, want 1 and 1", c.BUGiveUps, c.Expirations)
		}
		retx := logs.FilterMessageSnippet("binding update retransmitted").All()
		if len(retx) == 0 || len(retx) >= int(c.BURetransmits) && c.BURetransmits > 2 {
			t.Errorf("%d retransmission lines for %d retransmissions", len(retx), c.BURetransmits)
		}
		var held uint64
		for i, e := range retx {
			if i > 0 && e.Time.Sub(retx[i-1].Time) < mnRetxLogInterval {
				t.Errorf("retransmission lines %v apart", e.Time.Sub(retx[i-1].Time))
			}
			v, _ := e.ContextMap()["suppressed"].(uint64)
			held += v
		}
		if held+uint64(len(retx)) > c.BURetransmits || held+uint64(len(retx)) < c.BURetransmits-3 {
			t.Errorf("lines %d + suppressed %d, retransmissions %d", len(retx), held, c.BURetransmits)
		}
		if n := logs.FilterMessageSnippet("back-off at its maximum").Len(); n != 1 {
			t.Errorf("%d give-up warnings, want 1", n)
		}
		exp := logs.FilterMessageSnippet("home registration expired").All()
		if len(exp) != 1 || exp[0].Level != zapcore.WarnLevel {
			t.Errorf("expiry warnings: %v", exp)
		}
	})
}

// TestBULGaveUp: GaveUp comes once per registration, with the BU whose
// interval reaches MaxTimeout (RFC 6275 §11.8); the BUs go on.
func TestBULGaveUp(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := NewBULEntry(mnHA, mnHoA, 100, BULConfig{})
	for round := range 2 {
		e.Register(mnCoA6)
		var gaveUp []int
		timeout := time.Duration(0)
		for i := range 10 {
			a := e.Tick(now)
			if !a.SendBU {
				t.Fatalf("round %d BU %d not sent", round, i)
			}
			if a.GaveUp {
				gaveUp = append(gaveUp, i)
			}
			timeout = a.Next.Sub(now)
			now = a.Next
		}
		// 1.5, 3, 6, 12, 24, then 32 s: the sixth BU (index 5).
		if len(gaveUp) != 1 || gaveUp[0] != 5 || timeout != MaxBindackTimeout {
			t.Errorf("round %d: GaveUp with BUs %v, last interval %v", round, gaveUp, timeout)
		}
	}
}
