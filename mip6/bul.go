package mip6

import (
	"fmt"
	"net/netip"
	"time"
)

// Mobile node timers (RFC 6275 §12, §13; RFC 5555 §6).
const (
	// InitialBindackTimeout is the first retransmission interval of a BU
	// when a binding already exists (INITIAL_BINDACK_TIMEOUT).
	InitialBindackTimeout = 1 * time.Second
	// InitialBindackTimeoutFirstReg is the first retransmission interval
	// of a first home registration; it leaves the HA time for DAD
	// (RFC 6275 §13).
	InitialBindackTimeoutFirstReg = 1500 * time.Millisecond
	// MaxBindackTimeout caps the exponential back-off (RFC 6275 §11.8,
	// MAX_BINDACK_TIMEOUT).
	MaxBindackTimeout = 32 * time.Second
	// NATKeepaliveTimeout is the default NAT keepalive interval
	// (RFC 5555 §6, NATKATIMEOUT).
	NATKeepaliveTimeout = 110 * time.Second
	// DefaultBULLifetime is the lifetime a BU asks for when the config
	// sets none.
	DefaultBULLifetime = 600 * time.Second
)

// BULState is the registration state of a binding update list entry.
type BULState uint8

const (
	// BULIdle: not registered and nothing to send (initial state, after
	// a de-registration was acknowledged, or at home).
	BULIdle BULState = iota
	// BULSending: a BU is due at the next Tick.
	BULSending
	// BULWaitAck: a BU is outstanding; Tick retransmits it on timeout.
	BULWaitAck
	// BULRegistered: the last BU was accepted; Tick refreshes it before
	// the binding expires.
	BULRegistered
	// BULDeregistering: a lifetime-0 BU is outstanding (RFC 6275
	// §11.7.2).
	BULDeregistering
	// BULFailed: the HA rejected the registration with a status the MN
	// cannot fix; no more BUs until Register is called again
	// (RFC 6275 §11.7.3).
	BULFailed
)

func (s BULState) String() string {
	switch s {
	case BULIdle:
		return "idle"
	case BULSending:
		return "sending"
	case BULWaitAck:
		return "waiting-ack"
	case BULRegistered:
		return "registered"
	case BULDeregistering:
		return "deregistering"
	case BULFailed:
		return "failed"
	}
	return fmt.Sprintf("BULState(%d)", uint8(s))
}

// BULConfig configures a binding update list entry. Zero fields take the
// RFC defaults.
type BULConfig struct {
	Lifetime        time.Duration // requested lifetime (DefaultBULLifetime)
	InitialTimeout  time.Duration // InitialBindackTimeout
	FirstRegTimeout time.Duration // InitialBindackTimeoutFirstReg
	MaxTimeout      time.Duration // MaxBindackTimeout
	// RefreshPercent is the share of the granted lifetime after which
	// the binding is refreshed, in percent (default 80).
	RefreshPercent int
	NATKeepalive   time.Duration // NATKeepaliveTimeout
}

// BUToSend is what Tick asks the caller to send: a home-registration BU with
// these values (H = 1, A = 1, RFC 6275 §11.7.1).
type BUToSend struct {
	Seq      uint16
	Lifetime time.Duration // 0: de-registration
	CoA      netip.Addr
	// Retransmit is set when the BU repeats an unanswered one (with a
	// new sequence number, RFC 6275 §11.8).
	Retransmit bool
}

// BULActions is what the caller must do after Tick.
type BULActions struct {
	SendBU bool
	BU     BUToSend
	// SendKeepalive asks for a NAT keepalive toward the HA (RFC 5555
	// §4.4.2: keep the NAT binding alive while registered behind a NAT).
	SendKeepalive bool
	// Expired is set once when a registered binding's lifetime ran out
	// without an accepted refresh: the HA has dropped it.
	Expired bool
	// GaveUp is set, once per registration, with the BU whose
	// retransmission interval reached MaxTimeout without an answer: the
	// exponential back-off is at its end (RFC 6275 §11.8,
	// MAX_BINDACK_TIMEOUT). The entry keeps retransmitting at that
	// slower rate, as §11.8 allows.
	GaveUp bool
	// Next is when Tick next has something to do (zero: nothing
	// scheduled); arm a timer for it.
	Next time.Time
}

// BAInfo is an authenticated Binding Acknowledgement as the BUL needs it
// (RFC 6275 §11.7.3; RFC 5555 §4.4.2).
type BAInfo struct {
	Seq      uint16
	Status   uint8
	Lifetime time.Duration
	// Refresh is the Binding Refresh Advice interval, or 0.
	Refresh time.Duration
	// NAT is set when the BA carried a NAT Detection option
	// (RFC 5555 §3.2.2): tunnel in UDP from now on; NATRefresh is its
	// refresh time (0: use the default, ^uint32(0): no keepalives).
	NAT        bool
	NATRefresh uint32
}

// BAResult says what OnBA did with a BA.
type BAResult uint8

const (
	// BAIgnored: no outstanding BU has this sequence number (stale or
	// replayed BA, RFC 6275 §11.7.3), or nothing was outstanding.
	BAIgnored BAResult = iota
	// BAAccepted: registration (or de-registration) acknowledged.
	BAAccepted
	// BASeqAdopted: status 135; the entry took the HA's sequence number
	// and sends a new BU at the next Tick.
	BASeqAdopted
	// BARejected: status >= 128 other than 135; the entry is BULFailed.
	BARejected
)

func (r BAResult) String() string {
	switch r {
	case BAIgnored:
		return "ignored"
	case BAAccepted:
		return "accepted"
	case BASeqAdopted:
		return "seq-adopted"
	case BARejected:
		return "rejected"
	}
	return fmt.Sprintf("BAResult(%d)", uint8(r))
}

// BA status codes the BUL interprets (RFC 6275 §6.1.8).
const (
	baStatusRejectFirst = 128
	baStatusSeqOutOfWin = 135
)

// BULEntry is the mobile node's binding update list entry for its home
// registration with one home agent (RFC 6275 §11.1; RFC 5555 §4.4.2).
//
// It is a pure state machine: it never reads a clock or starts a
// goroutine. The caller feeds events (Register, Deregister, OnBA) and
// calls Tick at or after the time the previous Tick's Next named. Not safe
// for concurrent use.
type BULEntry struct {
	HA  netip.Addr // destination of the BUs
	HoA netip.Addr
	CoA netip.Addr // care-of address of the current BU

	cfg BULConfig

	state BULState
	seq   uint16 // last sequence number sent (RFC 6275 §11.1)
	life  time.Duration

	// Retransmission state (RFC 6275 §11.8).
	sentAt   time.Time     // when the outstanding BU was sent
	timeout  time.Duration // current retransmission interval
	retryAt  time.Time
	attempts int // BUs sent for the current registration

	// Registration state.
	everAcked bool          // a binding exists at the HA (first-reg timer)
	granted   time.Duration // lifetime the HA granted
	expires   time.Time
	refreshAt time.Time
	expiredOK bool // Expired already reported

	// NAT state (RFC 5555 §4.4.2).
	nat         bool
	keepalive   time.Duration // 0: none
	lastSent    time.Time
	keepaliveAt time.Time
}

// NewBULEntry returns an idle entry for the home registration of hoa with
// the home agent ha. seq is the first sequence number minus one (e.g.
// random, or restored).
func NewBULEntry(ha, hoa netip.Addr, seq uint16, cfg BULConfig) *BULEntry {
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultBULLifetime
	}
	if cfg.InitialTimeout <= 0 {
		cfg.InitialTimeout = InitialBindackTimeout
	}
	if cfg.FirstRegTimeout <= 0 {
		cfg.FirstRegTimeout = InitialBindackTimeoutFirstReg
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = MaxBindackTimeout
	}
	if cfg.RefreshPercent <= 0 || cfg.RefreshPercent >= 100 {
		cfg.RefreshPercent = 80
	}
	if cfg.NATKeepalive <= 0 {
		cfg.NATKeepalive = NATKeepaliveTimeout
	}
	return &BULEntry{HA: ha, HoA: hoa, seq: seq, cfg: cfg}
}

// State returns the registration state.
func (e *BULEntry) State() BULState { return e.state }

// Seq returns the last sequence number sent.
func (e *BULEntry) Seq() uint16 { return e.seq }

// Attempts returns how many BUs were sent for the current registration
// without an answer (RFC 5555 §4.4.1: after 3 on IPv6, try the IPv4 CoA).
func (e *BULEntry) Attempts() int { return e.attempts }

// Expires returns when the registered binding ends at the HA (zero if not
// registered).
func (e *BULEntry) Expires() time.Time { return e.expires }

// NAT reports whether the HA detected a NAT (tunnel in UDP), and the
// keepalive interval (0: none).
func (e *BULEntry) NAT() (bool, time.Duration) { return e.nat, e.keepalive }

// Register starts a home registration from coa (first registration or
// movement, RFC 6275 §11.7.1): a BU is due at the next Tick.
func (e *BULEntry) Register(coa netip.Addr) {
	e.CoA = coa
	e.life = e.cfg.Lifetime
	e.startSending(BULSending)
}

// Deregister starts de-registration (returning home or shutting down,
// RFC 6275 §11.7.2): a lifetime-0 BU is due at the next Tick. Does
// nothing if the entry has no binding and nothing outstanding.
func (e *BULEntry) Deregister(coa netip.Addr) {
	if e.state == BULIdle || e.state == BULFailed {
		return
	}
	if coa.IsValid() {
		e.CoA = coa
	}
	e.life = 0
	e.startSending(BULDeregistering)
}

func (e *BULEntry) startSending(s BULState) {
	e.state = s
	e.attempts = 0
	e.timeout = 0
	e.retryAt = time.Time{} // due now
}

// OnBA processes an authenticated BA from the HA (RFC 6275 §11.7.3). now
// is when it arrived.
func (e *BULEntry) OnBA(now time.Time, ba BAInfo) BAResult {
	outstanding := e.state == BULWaitAck || e.state == BULDeregistering ||
		(e.state == BULSending && e.attempts > 0)
	if !outstanding || ba.Seq != e.seq {
		// RFC 6275 §11.7.3: the sequence number must match the last BU
		// sent; a BA for an older one is stale (a retransmitted BU got
		// a new number, §11.8).
		if ba.Status == baStatusSeqOutOfWin && outstanding && e.attempts > 0 {
			// Status 135 carries the HA's last accepted number, not
			// ours: adopt it (§11.7.1) and send the next one.
			e.seq = ba.Seq
			e.retryAt = time.Time{}
			e.timeout = 0
			return BASeqAdopted
		}
		return BAIgnored
	}
	if ba.Status == baStatusSeqOutOfWin {
		e.seq = ba.Seq
		e.retryAt = time.Time{}
		e.timeout = 0
		return BASeqAdopted
	}
	if ba.Status >= baStatusRejectFirst {
		e.state = BULFailed
		e.attempts = 0
		e.expires, e.refreshAt = time.Time{}, time.Time{}
		return BARejected
	}
	e.attempts = 0
	e.timeout = 0
	if e.life == 0 {
		// De-registration acknowledged (RFC 6275 §11.7.2).
		e.state = BULIdle
		e.everAcked = false
		e.granted = 0
		e.expires, e.refreshAt, e.keepaliveAt = time.Time{}, time.Time{}, time.Time{}
		e.nat, e.keepalive = false, 0
		return BAAccepted
	}
	e.state = BULRegistered
	e.everAcked = true
	e.expiredOK = false
	// RFC 6275 §11.7.3: the lifetime counts from when the BU was sent.
	e.granted = min(ba.Lifetime, e.life)
	e.expires = e.sentAt.Add(e.granted)
	e.refreshAt = e.sentAt.Add(e.granted * time.Duration(e.cfg.RefreshPercent) / 100)
	if ba.Refresh > 0 {
		// Binding Refresh Advice (RFC 6275 §6.2.4, §11.7.3).
		if r := now.Add(ba.Refresh); r.Before(e.refreshAt) {
			e.refreshAt = r
		}
	}
	// RFC 5555 §4.4.2: NAT Detection option → UDP encapsulation and
	// keepalives at the HA's interval.
	e.nat = ba.NAT
	e.keepalive = 0
	if ba.NAT {
		switch ba.NATRefresh {
		case 0:
			e.keepalive = e.cfg.NATKeepalive
		case ^uint32(0):
			e.keepalive = 0
		default:
			e.keepalive = time.Duration(ba.NATRefresh) * time.Second
		}
	}
	e.armKeepalive()
	return BAAccepted
}

func (e *BULEntry) armKeepalive() {
	if e.keepalive > 0 && e.state == BULRegistered {
		e.keepaliveAt = e.lastSent.Add(e.keepalive)
	} else {
		e.keepaliveAt = time.Time{}
	}
}

// OnSent tells the entry that another packet (data) went to the HA
// through the NAT at now, which postpones the next keepalive.
func (e *BULEntry) OnSent(now time.Time) {
	e.lastSent = now
	e.armKeepalive()
}

// Tick runs the timers at now and says what to send (RFC 6275 §11.8
// retransmission, §11.7.1 refresh; RFC 5555 keepalives). A BU returned in
// the actions is taken as sent at now.
func (e *BULEntry) Tick(now time.Time) BULActions {
	var a BULActions
	switch e.state {
	case BULRegistered:
		if !e.expires.After(now) && !e.expiredOK {
			a.Expired = true
			e.expiredOK = true
		}
		if !e.refreshAt.After(now) {
			e.state = BULSending
			e.attempts = 0
			e.timeout = 0
			e.retryAt = time.Time{}
		}
	case BULWaitAck, BULDeregistering, BULSending:
		if e.everAcked && !e.expires.IsZero() && !e.expires.After(now) && !e.expiredOK && e.life > 0 {
			a.Expired = true
			e.expiredOK = true
		}
	}
	switch e.state {
	case BULSending, BULWaitAck, BULDeregistering:
		if !e.retryAt.After(now) {
			a.SendBU = true
			a.BU, a.GaveUp = e.sendBU(now)
		}
	case BULRegistered:
		if e.keepaliveAt.IsZero() || e.keepaliveAt.After(now) {
			break
		}
		a.SendKeepalive = true
		e.lastSent = now
		e.armKeepalive()
	}
	a.Next = e.next(now)
	return a
}

// sendBU builds the next BU: a new sequence number every time (§11.8),
// and the next retransmission interval: InitialBindackTimeoutFirstReg for
// a first registration, else InitialBindackTimeout, doubling up to
// MaxBindackTimeout. gaveUp is set when the interval reaches
// MaxBindackTimeout by doubling (BULActions.GaveUp).
func (e *BULEntry) sendBU(now time.Time) (bu BUToSend, gaveUp bool) {
	e.seq++
	bu = BUToSend{Seq: e.seq, Lifetime: e.life, CoA: e.CoA, Retransmit: e.attempts > 0}
	prev := e.timeout
	switch {
	case e.timeout == 0 && !e.everAcked:
		e.timeout = e.cfg.FirstRegTimeout
	case e.timeout == 0:
		e.timeout = e.cfg.InitialTimeout
	default:
		e.timeout = min(2*e.timeout, e.cfg.MaxTimeout)
	}
	gaveUp = prev > 0 && prev < e.cfg.MaxTimeout && e.timeout == e.cfg.MaxTimeout
	e.attempts++
	e.sentAt = now
	e.retryAt = now.Add(e.timeout)
	e.lastSent = now
	if e.state == BULSending {
		e.state = BULWaitAck
	}
	e.keepaliveAt = time.Time{}
	return bu, gaveUp
}

// Next returns when Tick next has something to do, given the current time
// now (now itself when a BU is due, zero when nothing is scheduled).
func (e *BULEntry) Next(now time.Time) time.Time { return e.next(now) }

// next returns the earliest pending deadline, or zero.
func (e *BULEntry) next(now time.Time) time.Time {
	var t time.Time
	earliest := func(c time.Time) {
		if !c.IsZero() && (t.IsZero() || c.Before(t)) {
			t = c
		}
	}
	switch e.state {
	case BULSending, BULWaitAck, BULDeregistering:
		if e.retryAt.IsZero() {
			return now
		}
		earliest(e.retryAt)
	case BULRegistered:
		earliest(e.refreshAt)
		earliest(e.keepaliveAt)
		if !e.expiredOK {
			earliest(e.expires)
		}
	}
	if e.state == BULWaitAck && e.everAcked && !e.expiredOK && e.life > 0 {
		earliest(e.expires)
	}
	return t
}
