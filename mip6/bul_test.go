package mip6

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	haAddr = netip.MustParseAddr("2001:db8:1::1")
	t0BUL  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// runUntil ticks e at every deadline it names until the time limit and
// returns the offsets (from t0BUL) at which BUs were sent.
func runUntil(t *testing.T, e *BULEntry, now time.Time, until time.Time) (sent []time.Duration, bus []BUToSend, end time.Time) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		a := e.Tick(now)
		if a.SendBU {
			sent = append(sent, now.Sub(t0BUL))
			bus = append(bus, a.BU)
		}
		if a.Next.IsZero() || a.Next.After(until) {
			return sent, bus, now
		}
		if !a.Next.After(now) && !a.SendBU {
			t.Fatalf("Tick at %v: Next %v not after now and nothing done", now, a.Next)
		}
		now = a.Next
	}
	t.Fatal("runUntil: too many ticks")
	return
}

func secs(fs ...float64) []time.Duration {
	out := make([]time.Duration, len(fs))
	for i, f := range fs {
		out[i] = time.Duration(f * float64(time.Second))
	}
	return out
}

// TestBULRetransmitSchedule: first registration retransmits after 1.5 s,
// doubling to MAX_BINDACK_TIMEOUT 32 s, with a new sequence number each
// time (RFC 6275 §11.8, §13).
func TestBULRetransmitSchedule(t *testing.T) {
	e := NewBULEntry(haAddr, hoa1, 100, BULConfig{})
	e.Register(coa6)
	sent, bus, _ := runUntil(t, e, t0BUL, t0BUL.Add(200*time.Second))
	// Send times: 0, +1.5, +3, +6, +12, +24, +32, +32 ...
	want := secs(0, 1.5, 4.5, 10.5, 22.5, 46.5, 78.5, 110.5, 142.5, 174.5)
	if d := cmp.Diff(want, sent); d != "" {
		t.Errorf("send times (-want +got):\n%s", d)
	}
	for i, bu := range bus {
		if bu.Seq != uint16(101+i) || bu.Lifetime != DefaultBULLifetime || bu.CoA != coa6 || bu.Retransmit != (i > 0) {
			t.Errorf("BU %d = %+v", i, bu)
		}
	}
	if e.State() != BULWaitAck || e.Attempts() != len(want) {
		t.Errorf("state %v attempts %d", e.State(), e.Attempts())
	}
}

// TestBULSeqWraps: sequence numbers wrap modulo 2^16.
func TestBULSeqWraps(t *testing.T) {
	e := NewBULEntry(haAddr, hoa1, 65534, BULConfig{})
	e.Register(coa6)
	_, bus, _ := runUntil(t, e, t0BUL, t0BUL.Add(5*time.Second))
	var got []uint16
	for _, bu := range bus {
		got = append(got, bu.Seq)
	}
	if d := cmp.Diff([]uint16{65535, 0, 1}, got); d != "" {
		t.Errorf("seqs (-want +got):\n%s", d)
	}
}

// TestBULRegistrationAndRefresh: accepted BA → registered; the lifetime
// counts from when the BU was sent (RFC 6275 §11.7.3); refresh at 80 % of
// it with INITIAL_BINDACK_TIMEOUT (a binding exists now).
func TestBULRegistrationAndRefresh(t *testing.T) {
	e := NewBULEntry(haAddr, hoa1, 0, BULConfig{Lifetime: 100 * time.Second})
	e.Register(coa6)
	a := e.Tick(t0BUL)
	if !a.SendBU || a.BU.Seq != 1 {
		t.Fatalf("Tick = %+v", a)
	}
	// Stale BA (wrong sequence number) is ignored.
	if r := e.OnBA(t0BUL.Add(time.Second), BAInfo{Seq: 0, Status: 0, Lifetime: 100 * time.Second}); r != BAIgnored {
		t.Errorf("stale BA: %v", r)
	}
	// The HA grants less than asked.
	if r := e.OnBA(t0BUL.Add(time.Second), BAInfo{Seq: 1, Status: 0, Lifetime: 60 * time.Second}); r != BAAccepted {
		t.Fatalf("BA: %v", r)
	}
	if e.State() != BULRegistered || !e.Expires().Equal(t0BUL.Add(60*time.Second)) {
		t.Fatalf("state %v expires %v", e.State(), e.Expires().Sub(t0BUL))
	}
	// A duplicate of the same BA is now ignored.
	if r := e.OnBA(t0BUL.Add(time.Second), BAInfo{Seq: 1, Lifetime: 60 * time.Second}); r != BAIgnored {
		t.Errorf("duplicate BA: %v", r)
	}
	a = e.Tick(t0BUL.Add(time.Second))
	if a.SendBU || !a.Next.Equal(t0BUL.Add(48*time.Second)) {
		t.Fatalf("after BA: %+v (next %v)", a, a.Next.Sub(t0BUL))
	}
	// Refresh at 48 s, unanswered: retransmit after 1 s, 2 s, 4 s; the
	// binding expires at 60 s.
	sent, _, _ := runUntil(t, e, a.Next, t0BUL.Add(58*time.Second))
	if d := cmp.Diff(secs(48, 49, 51, 55), sent); d != "" {
		t.Errorf("refresh sends (-want +got):\n%s", d)
	}
	var expired int
	for now := t0BUL.Add(55 * time.Second); now.Before(t0BUL.Add(70 * time.Second)); now = now.Add(time.Second) {
		if e.Tick(now).Expired {
			expired++
			if !now.Equal(t0BUL.Add(60 * time.Second)) {
				t.Errorf("Expired reported at %v", now.Sub(t0BUL))
			}
		}
	}
	if expired != 1 {
		t.Errorf("Expired reported %d times", expired)
	}
}

// TestBULRefreshAdvice: a Binding Refresh Advice earlier than 80 % wins.
func TestBULRefreshAdvice(t *testing.T) {
	e := NewBULEntry(haAddr, hoa1, 0, BULConfig{Lifetime: 1000 * time.Second})
	e.Register(coa6)
	bu := e.Tick(t0BUL).BU
	e.OnBA(t0BUL.Add(time.Second), BAInfo{Seq: bu.Seq, Lifetime: 1000 * time.Second, Refresh: 100 * time.Second})
	if a := e.Tick(t0BUL.Add(2 * time.Second)); !a.Next.Equal(t0BUL.Add(101 * time.Second)) {
		t.Errorf("next = %v, want 101s", a.Next.Sub(t0BUL))
	}
}

func TestBULErrorStatus(t *testing.T) {
	tests := []struct {
		name      string
		status    uint8
		seq       func(sent uint16) uint16
		want      BAResult
		wantState BULState
		wantSeq   uint16 // next BU's seq, 0: none expected
	}{
		{"accepted", 0, func(s uint16) uint16 { return s }, BAAccepted, BULRegistered, 0},
		{"accepted, prefix discovery", 1, func(s uint16) uint16 { return s }, BAAccepted, BULRegistered, 0},
		{"not home subnet", 132, func(s uint16) uint16 { return s }, BARejected, BULFailed, 0},
		{"admin prohibited", 129, func(s uint16) uint16 { return s }, BARejected, BULFailed, 0},
		{"135 adopts the HA's seq", 135, func(uint16) uint16 { return 5000 }, BASeqAdopted, BULWaitAck, 5001},
		{"135 across the wrap", 135, func(uint16) uint16 { return 65535 }, BASeqAdopted, BULWaitAck, 0},
		{"stale accepted BA", 0, func(s uint16) uint16 { return s - 1 }, BAIgnored, BULWaitAck, 0},
		{"stale rejected BA", 133, func(s uint16) uint16 { return s + 1 }, BAIgnored, BULWaitAck, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewBULEntry(haAddr, hoa1, 10, BULConfig{})
			e.Register(coa6)
			bu := e.Tick(t0BUL).BU
			if r := e.OnBA(t0BUL.Add(time.Second), BAInfo{Seq: tt.seq(bu.Seq), Status: tt.status, Lifetime: time.Minute}); r != tt.want {
				t.Fatalf("OnBA = %v, want %v", r, tt.want)
			}
			if e.State() != tt.wantState {
				t.Errorf("state = %v, want %v", e.State(), tt.wantState)
			}
			a := e.Tick(t0BUL.Add(time.Second))
			if tt.want == BASeqAdopted {
				want := tt.seq(0) + 1
				if !a.SendBU || a.BU.Seq != want {
					t.Errorf("after 135: %+v, want BU seq %d now", a, want)
				}
				return
			}
			if a.SendBU {
				t.Errorf("unexpected BU %+v", a.BU)
			}
			if tt.wantState == BULFailed && !a.Next.IsZero() {
				t.Errorf("failed entry still schedules %v", a.Next)
			}
		})
	}
}

// TestBULDeregister: lifetime-0 BU, retransmitted like any BU, then idle.
func TestBULDeregister(t *testing.T) {
	e := NewBULEntry(haAddr, hoa1, 0, BULConfig{})
	e.Deregister(coa6)
	if e.State() != BULIdle {
		t.Fatal("Deregister without binding did something")
	}
	e.Register(coa6)
	bu := e.Tick(t0BUL).BU
	e.OnBA(t0BUL, BAInfo{Seq: bu.Seq, Lifetime: time.Minute})
	e.Deregister(netip.Addr{})
	a := e.Tick(t0BUL.Add(time.Second))
	if !a.SendBU || a.BU.Lifetime != 0 || a.BU.Seq != bu.Seq+1 || a.BU.CoA != coa6 || e.State() != BULDeregistering {
		t.Fatalf("dereg tick = %+v state %v", a, e.State())
	}
	// Retransmitted after INITIAL_BINDACK_TIMEOUT (a binding exists).
	if !a.Next.Equal(t0BUL.Add(2 * time.Second)) {
		t.Errorf("retransmit at %v", a.Next.Sub(t0BUL))
	}
	a = e.Tick(a.Next)
	if !a.SendBU || a.BU.Lifetime != 0 || !a.BU.Retransmit {
		t.Fatalf("dereg retransmit = %+v", a)
	}
	if r := e.OnBA(t0BUL.Add(3*time.Second), BAInfo{Seq: a.BU.Seq}); r != BAAccepted || e.State() != BULIdle {
		t.Fatalf("dereg BA: %v state %v", r, e.State())
	}
	if a := e.Tick(t0BUL.Add(100 * time.Second)); a.SendBU || !a.Next.IsZero() || a.Expired {
		t.Errorf("idle tick = %+v", a)
	}
}

// TestBULNATKeepalive: NAT Detection option → keepalives every 110 s by
// default or at the HA's refresh time (RFC 5555 §3.2.2, §6); none when the
// HA says 0xFFFFFFFF; data sent postpones them.
func TestBULNATKeepalive(t *testing.T) {
	tests := []struct {
		name    string
		refresh uint32
		want    time.Duration
	}{
		{"default", 0, NATKeepaliveTimeout},
		{"HA value", 25, 25 * time.Second},
		{"none needed", ^uint32(0), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewBULEntry(haAddr, hoa1, 0, BULConfig{Lifetime: 3600 * time.Second})
			e.Register(coa4)
			bu := e.Tick(t0BUL).BU
			e.OnBA(t0BUL, BAInfo{Seq: bu.Seq, Lifetime: 3600 * time.Second, NAT: true, NATRefresh: tt.refresh})
			if nat, ka := e.NAT(); !nat || ka != tt.want {
				t.Fatalf("NAT() = %v, %v", nat, ka)
			}
			var kas []time.Duration
			now := t0BUL
			for now.Before(t0BUL.Add(300 * time.Second)) {
				a := e.Tick(now)
				if a.SendKeepalive {
					kas = append(kas, now.Sub(t0BUL))
				}
				if a.SendBU {
					t.Fatalf("unexpected BU at %v", now.Sub(t0BUL))
				}
				if a.Next.IsZero() || !a.Next.Before(t0BUL.Add(300*time.Second)) {
					break
				}
				now = a.Next
			}
			var want []time.Duration
			for k := tt.want; tt.want > 0 && k < 300*time.Second; k += tt.want {
				want = append(want, k)
			}
			if d := cmp.Diff(want, kas); d != "" {
				t.Errorf("keepalives (-want +got):\n%s", d)
			}
		})
	}
	// Data through the NAT postpones the keepalive.
	e := NewBULEntry(haAddr, hoa1, 0, BULConfig{Lifetime: 3600 * time.Second})
	e.Register(coa4)
	e.OnBA(t0BUL, BAInfo{Seq: e.Tick(t0BUL).BU.Seq, Lifetime: 3600 * time.Second, NAT: true})
	e.OnSent(t0BUL.Add(100 * time.Second))
	if a := e.Tick(t0BUL.Add(110 * time.Second)); a.SendKeepalive || !a.Next.Equal(t0BUL.Add(210*time.Second)) {
		t.Errorf("after data: %+v next %v", a, a.Next.Sub(t0BUL))
	}
}

// TestBULSynctest drives the entry from a timer loop in a synctest bubble,
// the way the MN daemon will: the first registration's retransmissions
// land on the RFC schedule in fake time.
func TestBULSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		e := NewBULEntry(haAddr, hoa1, 0, BULConfig{Lifetime: 60 * time.Second})
		e.Register(coa6)
		var sent []time.Duration
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			<-timer.C
			now := time.Now()
			if now.Sub(start) > 80*time.Second {
				break
			}
			a := e.Tick(now)
			if a.SendBU {
				sent = append(sent, now.Sub(start))
				if len(sent) == 4 {
					// The HA answers the 4th BU 0.5 s later.
					time.Sleep(500 * time.Millisecond)
					e.OnBA(time.Now(), BAInfo{Seq: a.BU.Seq, Lifetime: 60 * time.Second})
					a.Next = e.Next(time.Now())
				}
			}
			timer.Reset(time.Until(a.Next))
		}
		// 0, 1.5, 4.5, 10.5 (accepted; lifetime from 10.5 s), refresh at
		// 10.5 + 48 = 58.5, retransmit at 59.5, 61.5, 65.5, 73.5.
		if d := cmp.Diff(secs(0, 1.5, 4.5, 10.5, 58.5, 59.5, 61.5, 65.5, 73.5), sent); d != "" {
			t.Errorf("sends (-want +got):\n%s", d)
		}
	})
}
