package mip6

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mipsec/mipsec/endpoint"
)

// MNEventKind says what happened to a mobile node's home registration.
type MNEventKind uint8

const (
	// MNMoved: Move accepted a new care-of address (or the home link).
	MNMoved MNEventKind = iota + 1
	// MNBUSent: a BU was injected (Seq, CoA, Lifetime; Err if Inject
	// failed).
	MNBUSent
	// MNRegistered: the HA accepted a registration (CoA, NAT, Handover
	// when the CoA changed).
	MNRegistered
	// MNDeregistered: the HA acknowledged a de-registration (RFC 6275
	// §11.7.2).
	MNDeregistered
	// MNRejected: the HA rejected the BU (Status >= 128, not 135); no
	// more BUs until the next Move (RFC 6275 §11.7.3).
	MNRejected
	// MNSeqResync: BA status 135; the MN adopted the HA's sequence
	// number and sends a new BU (RFC 6275 §11.7.1).
	MNSeqResync
	// MNExpired: the registered binding's lifetime ran out without an
	// accepted refresh.
	MNExpired
	// MNKeepalive: an RFC 3948 NAT-keepalive was sent (Err if it failed).
	MNKeepalive
)

var mnEventNames = [...]string{
	MNMoved:        "moved",
	MNBUSent:       "bu-sent",
	MNRegistered:   "registered",
	MNDeregistered: "deregistered",
	MNRejected:     "rejected",
	MNSeqResync:    "seq-resync",
	MNExpired:      "expired",
	MNKeepalive:    "keepalive",
}

// String names k for logs and metrics labels.
func (k MNEventKind) String() string {
	if int(k) < len(mnEventNames) && mnEventNames[k] != "" {
		return mnEventNames[k]
	}
	return fmt.Sprintf("MNEventKind(%d)", uint8(k))
}

// MNEvent is one mobile node event, handed to MNConfig.OnEvent off the
// packet path (for metrics and tests). Fields not relevant to Kind are
// zero.
type MNEvent struct {
	Kind MNEventKind
	Time time.Time
	// CoA is the care-of address concerned (the new one for MNMoved, the
	// BU's for MNBUSent, the registered one for MNRegistered). Invalid or
	// the HoA when at home.
	CoA      netip.Addr
	Seq      uint16
	Lifetime time.Duration // BU lifetime (MNBUSent), granted (MNRegistered)
	Status   BAStatus      // BA status (MNRegistered, MNRejected, MNSeqResync)
	NAT      bool          // MNRegistered: the HA detected a NAT
	// KeyMgmt (MNRegistered): our BU and the HA's BA both had the K flag,
	// so the MN moves its IKE SA to CoA (RFC 4877 §7.4).
	KeyMgmt bool
	// Handover is the time from the Move to the accepted BA that
	// registered its CoA (MNRegistered only, 0 for a refresh).
	Handover time.Duration
	Err      error
}

// MNCounters are a mobile node's monotonically increasing counters.
type MNCounters struct {
	BUsSent         uint64 `json:"bu_sent"`           // BUs injected successfully
	BUSendErrors    uint64 `json:"bu_send_errors"`    // Inject or BU building failed
	BAsAccepted     uint64 `json:"ba_accepted"`       // BAs that acknowledged the outstanding BU
	BAsRejected     uint64 `json:"ba_rejected"`       // status >= 128 other than 135
	BAsIgnored      uint64 `json:"ba_ignored"`        // stale or duplicate BAs (sequence mismatch)
	SeqResyncs      uint64 `json:"seq_resyncs"`       // status 135 (RFC 6275 §11.7.1)
	Malformed       uint64 `json:"malformed"`         // MH packets that failed to decode
	Unexpected      uint64 `json:"unexpected"`        // MH not from HA to HoA, or not a BA
	MPAs            uint64 `json:"mpas"`              // Mobile Prefix Advertisements consumed
	Keepalives      uint64 `json:"keepalives"`        // NAT-keepalives sent
	KeepaliveErrors uint64 `json:"keepalive_errors"`  // NAT-keepalives that failed
	Expirations     uint64 `json:"expirations"`       // registrations that expired
	Handovers       uint64 `json:"handovers"`         // accepted BAs that changed the registered CoA
	AfterSealErrors uint64 `json:"after_seal_errors"` // BUs AfterSeal could not build (dropped)
	// BURetransmits counts BUs sent because the previous one of the
	// same registration went unanswered (RFC 6275 §11.8); they are in
	// BUsSent or BUSendErrors too.
	BURetransmits uint64 `json:"bu_retransmits"`
	// BUGiveUps counts registrations (and de-registrations) whose
	// retransmission back-off reached MAX_BINDACK_TIMEOUT without a BA
	// (BULActions.GaveUp); the BUs go on at that interval.
	BUGiveUps uint64 `json:"bu_give_ups"`
}

// mnCounters is MNCounters with atomic fields (workers and the MN
// goroutine update them concurrently).
type mnCounters struct {
	busSent, buSendErrors                    atomic.Uint64
	basAccepted, basRejected, basIgnored     atomic.Uint64
	seqResyncs, malformed, unexpected, mpas  atomic.Uint64
	keepalives, keepaliveErrors, expirations atomic.Uint64
	handovers, afterSealErrors               atomic.Uint64
	buRetransmits, buGiveUps                 atomic.Uint64
}

func (c *mnCounters) snapshot() MNCounters {
	return MNCounters{
		BUsSent:         c.busSent.Load(),
		BUSendErrors:    c.buSendErrors.Load(),
		BAsAccepted:     c.basAccepted.Load(),
		BAsRejected:     c.basRejected.Load(),
		BAsIgnored:      c.basIgnored.Load(),
		SeqResyncs:      c.seqResyncs.Load(),
		Malformed:       c.malformed.Load(),
		Unexpected:      c.unexpected.Load(),
		MPAs:            c.mpas.Load(),
		Keepalives:      c.keepalives.Load(),
		KeepaliveErrors: c.keepaliveErrors.Load(),
		Expirations:     c.expirations.Load(),
		Handovers:       c.handovers.Load(),
		AfterSealErrors: c.afterSealErrors.Load(),
		BURetransmits:   c.buRetransmits.Load(),
		BUGiveUps:       c.buGiveUps.Load(),
	}
}

// MNStatus is a snapshot of a mobile node's registration (for `mipsec mn
// status`, RFC 6275 §11.1 binding update list).
type MNStatus struct {
	State BULState
	// Home is set when the last Move named the home link.
	Home bool
	HoA  netip.Addr
	HoA4 netip.Addr // configured IPv4 home address, or invalid
	HA   netip.Addr
	HAV4 netip.Addr // HA IPv4 address, or invalid
	// CoA is the current care-of address (the last Move), invalid when
	// none or at home.
	CoA netip.Addr
	// RegisteredCoA is the CoA of the last accepted registration: data
	// goes there (DR-3). Invalid when not registered.
	RegisteredCoA netip.Addr
	// Data is where data packets leave to now (AfterSeal's endpoint for
	// any SPI but SA1's); the zero Endpoint: as the SA says (at home).
	Data endpoint.Endpoint
	// BUSPI is SA1's SPI (DR-3), 0 if unknown.
	BUSPI uint32
	// NAT: the last accepted BA carried a NAT Detection option saying a
	// NAT (or forced UDP) is in use (RFC 5555 §4.4.2).
	NAT bool
	// Keepalive is the NAT-keepalive interval (0: none).
	Keepalive time.Duration
	Seq       uint16 // last BU sequence number sent
	Attempts  int    // unanswered BUs of the current registration
	Expires   time.Time
	// LastBAStatus is the status of the last BA processed (valid when
	// HaveBA).
	LastBAStatus BAStatus
	HaveBA       bool
	// IPv4HoAAck is the IPv4 Address Acknowledgement of the last accepted
	// registration that asked for HoA4 (RFC 5555 §3.2.1); nil if none.
	IPv4HoAAck *IPv4AddressAck
	// IPv4HoAUnsupported: the HA answered a BU with an IPv4 Home Address
	// option without an IPv4 Address Acknowledgement, so it does not
	// support it and the option is no longer sent (RFC 5555 §2.3.1's
	// SHOULD NOT, over the MAY of §4.4.2).
	IPv4HoAUnsupported bool
	// LastHandover is when the last handover completed (the accepted BA
	// for a new CoA); HandoverDuration is the time from its Move to
	// that BA.
	LastHandover     time.Time
	HandoverDuration time.Duration
	Counters         MNCounters
}
