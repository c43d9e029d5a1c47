package esp

// Verdict is what the hot path returns instead of an error: OK, or the
// reason a packet was dropped. It indexes per-SA drop counters. Values are
// stable; add new ones before NumVerdicts.
type Verdict uint8

const (
	OK Verdict = iota
	// DropMalformed: too short, bad IP or ESP lengths, bad inner packet.
	DropMalformed
	// DropReplay: duplicate or left of the anti-replay window (RFC 4303 §3.4.3).
	DropReplay
	// DropICV: integrity check failed (RFC 4303 §3.4.4).
	DropICV
	// DropPadding: padding bytes not 1, 2, 3, ... or Pad Length too large
	// (RFC 4303 §2.4).
	DropPadding
	// DropDummy: Next Header 59, a dummy packet, dropped silently (RFC 4303 §2.6).
	DropDummy
	// DropSeqOverflow: the sequence space is exhausted; the SA refuses to
	// send and never wraps (RFC 4303 §3.3.3).
	DropSeqOverflow
	// DropFragment: an IP fragment reached ESP (RFC 4303 §3.4.1, §3.3.4).
	DropFragment
	// DropTooBig: the result would not fit the buffer or IP length fields.
	DropTooBig
	// DropSelector: the decrypted packet does not match the selectors of
	// the SA it arrived on (RFC 4301 §5.2 step 4).
	DropSelector
	// DropExpired: the SA passed its hard lifetime or was deleted.
	DropExpired
	// DropNoSA: no SA for the SPI (RFC 4303 §3.4.2).
	DropNoSA
	// DropPolicy: an SPD DISCARD decision or no matching policy.
	DropPolicy
	// DropMode: the packet does not fit the SA's mode (for example an
	// inner protocol a tunnel-mode SA cannot carry).
	DropMode
	// DropSeqReserve: the next sequence number lies beyond the reservation
	// the owner has made durable (Outbound.SetSeqReserve); the packet is
	// refused until the reservation grows, so that a crash can never lead
	// to a reused sequence number, and so to a reused IV (RFC 4303 §3.3.3,
	// RFC 8221 §3).
	DropSeqReserve
	NumVerdicts
)

var verdictNames = [NumVerdicts]string{
	OK:              "ok",
	DropMalformed:   "malformed",
	DropReplay:      "replay",
	DropICV:         "icv",
	DropPadding:     "padding",
	DropDummy:       "dummy",
	DropSeqOverflow: "seq_overflow",
	DropFragment:    "fragment",
	DropTooBig:      "too_big",
	DropSelector:    "selector",
	DropExpired:     "expired",
	DropNoSA:        "no_sa",
	DropPolicy:      "policy",
	DropMode:        "mode",
	DropSeqReserve:  "seq_reserve",
}

// String returns a stable snake_case name for counters and metrics.
func (v Verdict) String() string {
	if v >= NumVerdicts {
		return "unknown"
	}
	return verdictNames[v]
}
