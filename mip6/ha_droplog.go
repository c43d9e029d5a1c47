package mip6

// The warning for signaling the home agent drops before processing it:
// messages over the per-home-address rate limit (HAConfig.BURate,
// BUBurst), messages that found the signaling queue full
// (HAConfig.QueueLen) and messages longer than the queue holds
// (sigMaxPacket). Deliver runs on the packet workers and never logs: it
// counts the drop (HAStats.RateLimited, QueueFull, TooBig) and, when no
// warning is pending, marks one pending (one atomic load on the drop path
// after the first) and wakes the signaling goroutine with a non-blocking
// send. The signaling goroutine writes one line with the number of each
// kind of drop since the previous line, at most once per
// HAConfig.DropLogInterval, so the number of lines does not depend on the
// number of packets whoever sends them can make.

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultSignalDropLogInterval is HAConfig.DropLogInterval's default.
const DefaultSignalDropLogInterval = 10 * time.Second

// sigDropLog is the state of the signaling drop warning.
type sigDropLog struct {
	every   time.Duration // <= 0: no warnings
	pending atomic.Bool   // a wake was sent and no line written since
	wake    chan struct{} // buffered 1

	// Signaling goroutine only.
	timer  *time.Timer
	armed  bool
	last   time.Time // when the last line was written (zero: never)
	logged [3]uint64 // rateLimited, queueFull, tooBig at the last line
}

func (d *sigDropLog) init(every time.Duration) {
	if every == 0 {
		every = DefaultSignalDropLogInterval
	}
	d.every = every
	d.wake = make(chan struct{}, 1)
}

// note is called by Deliver after it counted a drop. Lock-free, never
// allocates, never blocks.
func (d *sigDropLog) note() {
	if d.every <= 0 || d.pending.Load() || !d.pending.CompareAndSwap(false, true) {
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// timerC is the channel of the armed timer, nil when none.
func (d *sigDropLog) timerC() <-chan time.Time {
	if !d.armed {
		return nil
	}
	return d.timer.C
}

// dropsWoken handles a wake on the signaling goroutine: the line now if the
// interval since the last one has passed, else a timer for when it has.
func (ha *HomeAgent) dropsWoken() {
	d := &ha.drops
	if d.armed {
		return
	}
	wait := d.every - time.Since(d.last)
	if d.last.IsZero() || wait <= 0 {
		ha.logDrops()
		return
	}
	if d.timer == nil {
		d.timer = time.NewTimer(wait)
	} else {
		d.timer.Reset(wait)
	}
	d.armed = true
}

// logDrops writes the warning for the drops since the last line, if any
// (signaling goroutine, or when it ends).
func (ha *HomeAgent) logDrops() {
	d := &ha.drops
	d.armed = false
	// Cleared before the counters are read: a drop counted after the
	// read sees pending false and wakes the goroutine again.
	d.pending.Store(false)
	now := [3]uint64{ha.st.rateLimited.Load(), ha.st.queueFull.Load(), ha.st.tooBig.Load()}
	var delta [3]uint64
	var some bool
	for i := range now {
		delta[i] = now[i] - d.logged[i]
		some = some || delta[i] > 0
	}
	if !some {
		return
	}
	d.logged = now
	since := zap.Skip()
	if !d.last.IsZero() {
		since = zap.Duration("since_last", time.Since(d.last).Round(time.Millisecond))
	}
	d.last = time.Now()
	hoa := zap.Skip()
	if delta[0] > 0 {
		if a := ha.rl.lastDenied(); a.IsValid() {
			hoa = zap.Stringer("last_rate_limited_hoa", a)
		}
	}
	ha.log.Warn("signaling dropped before processing (rate limit, full queue or too big)",
		zap.Uint64("rate_limited", delta[0]), zap.Uint64("queue_full", delta[1]), zap.Uint64("too_big", delta[2]),
		hoa, zap.Float64("bu_rate", ha.rl.rate), zap.Float64("bu_burst", ha.rl.burst), since)
}

// stopDropLog writes the last line for drops not yet reported and stops
// the timer (when the signaling goroutine ends).
func (ha *HomeAgent) stopDropLog() {
	d := &ha.drops
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.every > 0 {
		ha.logDrops()
	}
}
