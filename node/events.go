package node

import (
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/sad"
)

// Event is what a key manager or monitor learns from a node: one of
// SAExpired, BindingChanged, Registered and PeerEndpointChanged.
type Event interface{ event() }

// SAExpired: an SA reached a soft or hard lifetime (RFC 4301 §4.4.2.1). A
// hard-expired SA is gone; a soft one wants a replacement.
type SAExpired struct {
	Time   time.Time
	Name   string
	Dir    sad.Direction
	SPI    uint32
	Hard   bool
	Reason sad.Reason
}

// BindingChange says what happened to a binding cache entry.
type BindingChange int

// Binding changes.
const (
	BindingAdded BindingChange = iota
	BindingUpdated
	BindingRemoved
	BindingExpired
)

func (c BindingChange) String() string {
	switch c {
	case BindingAdded:
		return "added"
	case BindingUpdated:
		return "updated"
	case BindingRemoved:
		return "removed"
	case BindingExpired:
		return "expired"
	}
	return "unknown"
}

// BindingChanged: a home agent accepted a Binding Update that created,
// changed or removed a binding, or a binding expired (RFC 6275 §10.3.1).
// Only authenticated BUs change bindings.
type BindingChanged struct {
	Time   time.Time
	Change BindingChange
	HoA    netip.Addr
	// CoA is the primary care-of address after the change (invalid when
	// removed).
	CoA netip.Addr
}

// Registered: a mobile node's Binding Update was accepted (a BA with
// status < 128, RFC 6275 §11.7.3).
type Registered struct {
	Time time.Time
	CoA  netip.Addr
	// NAT is set when the home agent saw a NAT (RFC 5555 §4.1).
	NAT bool
	// Handover is the time from the move to the accepted BA; zero for a
	// refresh.
	Handover time.Duration
}

// PeerEndpointChanged: a roaming peer's endpoint moved after an
// authenticated packet from the new address.
type PeerEndpointChanged struct {
	Time     time.Time
	Peer     string
	From, To endpoint.Endpoint
}

func (SAExpired) event()           {}
func (BindingChanged) event()      {}
func (Registered) event()          {}
func (PeerEndpointChanged) event() {}

// events fans events out to the subscribers. A subscriber that does not
// keep up loses events; they are counted (Stats.EventsDropped) and logged
// at most once a second, never silently dropped.
type events struct {
	log *zap.Logger

	mu      sync.Mutex
	subs    map[chan Event]struct{}
	closed  bool
	dropped uint64
	lastLog time.Time
}

func (e *events) publish(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
			e.dropped++
			if now := time.Now(); now.Sub(e.lastLog) >= time.Second {
				e.lastLog = now
				e.log.Warn("an event subscriber is not keeping up: events dropped", zap.Uint64("dropped_total", e.dropped))
			}
		}
	}
}

func (e *events) subscribe(buf int) (<-chan Event, func()) {
	ch := make(chan Event, max(buf, 1))
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		close(ch)
		return ch, func() {}
	}
	if e.subs == nil {
		e.subs = map[chan Event]struct{}{}
	}
	e.subs[ch] = struct{}{}
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.subs[ch]; ok {
			delete(e.subs, ch)
			close(ch)
		}
	}
}

func (e *events) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for ch := range e.subs {
		delete(e.subs, ch)
		close(ch)
	}
}

func (e *events) droppedCount() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dropped
}

// Subscribe returns a channel of the node's events with room for buf of
// them, and a function that ends the subscription (and closes the
// channel). Close closes every channel. Events are sent off the packet
// path; one the channel has no room for is dropped and counted.
func (n *Node) Subscribe(buf int) (<-chan Event, func()) { return n.events.subscribe(buf) }

func (n *Node) onPeerEndpoint(peer string, from, to endpoint.Endpoint) {
	n.events.publish(PeerEndpointChanged{Time: time.Now(), Peer: peer, From: from, To: to})
	if n.ikeD == nil || to.Encap != endpoint.EncapUDP {
		return
	}
	n.ik.mu.Lock()
	p := n.ik.peers[peer]
	follow := p != nil && p.follow
	n.ik.mu.Unlock()
	if follow {
		// An IKE peer behind a NAT: its IKE SA follows the ESP (RFC 7296
		// §2.23), and its SetEndpoint records the new endpoint here.
		n.ikeD.ESPMoved(peer, to.Addr)
	}
}
