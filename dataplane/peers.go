package dataplane

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mipsec/mipsec/endpoint"
)

// peerState is the mutable part of a peer. It survives SetPeers for a peer
// whose name and configured endpoint stay the same, so a roamed endpoint and
// the counters are kept.
type peerState struct {
	ep         atomic.Pointer[endpoint.Endpoint]
	lastRoam   atomic.Int64 // unix ns; 0 = never
	roams      atomic.Uint64
	keepalives atomic.Uint64
	// lastRecv is the Dataplane.clock second of the last authenticated
	// packet (PeerStatus.LastReceived); 0 = never. Written only when the
	// second changes (heard).
	lastRecv atomic.Int64
	// sent is set by the outbound stage when a packet goes to the peer and
	// cleared by the keepalive goroutine: a keepalive is only needed when
	// nothing else was sent in the interval (RFC 3948 §4).
	sent atomic.Bool
	// nextKeepalive is owned by the keepalive goroutine.
	nextKeepalive time.Time
}

// peer is one peer in a peerTable: immutable but for st.
type peer struct {
	name         string
	cfg          PeerConfig // own copy; SPI slices copied
	roaming      bool
	roamInterval int64 // ns
	keepalive    time.Duration
	st           *peerState
}

// peerTable is an immutable snapshot of the peers, published through
// Dataplane.peers (STYLE.md §5). The packet path reads only the two
// uint32-keyed maps (no allocation, no lock).
type peerTable struct {
	list   []*peer
	byName map[string]*peer
	out    map[uint32]*peer // outbound SPI -> peer
	in     map[uint32]*peer // inbound SPI -> peer
}

// buildPeers validates ps and builds a table, reusing the state of old's
// peers with the same name and configured endpoint. old may be nil.
func buildPeers(ps []PeerConfig, old *peerTable) (*peerTable, error) {
	t := &peerTable{
		byName: make(map[string]*peer, len(ps)),
		out:    make(map[uint32]*peer),
		in:     make(map[uint32]*peer),
	}
	for i := range ps {
		pc := ps[i]
		if pc.Name == "" {
			return nil, fmt.Errorf("%w: peer %d has no name", ErrInvalidConfig, i)
		}
		if _, dup := t.byName[pc.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate peer name %q", ErrInvalidConfig, pc.Name)
		}
		if !pc.Endpoint.IsValid() || pc.Endpoint.Encap == endpoint.EncapIP {
			return nil, fmt.Errorf("%w: peer %q: invalid endpoint %v (raw ESP needs port 0, UDP a port; EncapIP is not a peer endpoint)", ErrInvalidConfig, pc.Name, pc.Endpoint)
		}
		if pc.RoamInterval < 0 {
			return nil, fmt.Errorf("%w: peer %q: negative roam interval", ErrInvalidConfig, pc.Name)
		}
		pc.OutSPIs = append([]uint32(nil), pc.OutSPIs...)
		pc.InSPIs = append([]uint32(nil), pc.InSPIs...)
		p := &peer{name: pc.Name, cfg: pc, roaming: pc.Roaming}
		p.roamInterval = int64(pc.RoamInterval)
		if p.roamInterval == 0 {
			p.roamInterval = int64(DefaultRoamInterval)
		}
		p.keepalive = pc.Keepalive
		if p.keepalive == 0 {
			p.keepalive = DefaultKeepalive
		}
		for _, spi := range pc.OutSPIs {
			if spi == 0 {
				return nil, fmt.Errorf("%w: peer %q: outbound SPI 0", ErrInvalidConfig, pc.Name)
			}
			if o, dup := t.out[spi]; dup {
				return nil, fmt.Errorf("%w: outbound SPI %#x in peers %q and %q", ErrInvalidConfig, spi, o.name, pc.Name)
			}
			t.out[spi] = p
		}
		for _, spi := range pc.InSPIs {
			if spi == 0 {
				return nil, fmt.Errorf("%w: peer %q: inbound SPI 0", ErrInvalidConfig, pc.Name)
			}
			if o, dup := t.in[spi]; dup {
				return nil, fmt.Errorf("%w: inbound SPI %#x in peers %q and %q", ErrInvalidConfig, spi, o.name, pc.Name)
			}
			t.in[spi] = p
		}
		if old != nil {
			if op := old.byName[pc.Name]; op != nil && op.cfg.Endpoint == pc.Endpoint {
				p.st = op.st
			}
		}
		if p.st == nil {
			p.st = new(peerState)
			ep := pc.Endpoint
			p.st.ep.Store(&ep)
		}
		t.byName[pc.Name] = p
		t.list = append(t.list, p)
	}
	return t, nil
}

func (p *peer) status() PeerStatus {
	s := PeerStatus{
		Name:           p.name,
		Endpoint:       *p.st.ep.Load(),
		Roams:          p.st.roams.Load(),
		KeepalivesSent: p.st.keepalives.Load(),
	}
	if ns := p.st.lastRoam.Load(); ns != 0 {
		s.LastRoam = time.Unix(0, ns)
	}
	if sec := p.st.lastRecv.Load(); sec != 0 {
		s.LastReceived = time.Unix(sec, 0)
	}
	return s
}

// heard records that an authenticated packet from p arrived at now (unix
// seconds, Dataplane.clock): a load per run of packets, a store once a
// second. It never moves the time back (workers may hold clocks a tick
// apart).
func (p *peer) heard(now int64) {
	for {
		old := p.st.lastRecv.Load()
		if old >= now || p.st.lastRecv.CompareAndSwap(old, now) {
			return
		}
	}
}

// roamEvent tells the control goroutine to log an endpoint change.
type roamEvent struct {
	peer     *peer
	from, to endpoint.Endpoint
}

// maybeRoam moves p's endpoint to ep unless that happened less than the
// peer's RoamInterval ago. The caller has checked that the packet from ep was
// authenticated, passed the replay check and is the SA's newest. It runs on a
// worker, so it neither blocks nor logs: the change is handed to the control
// goroutine. It allocates (the new endpoint), but at most once per
// RoamInterval per peer.
func (d *Dataplane) maybeRoam(p *peer, ep endpoint.Endpoint) {
	now := time.Now().UnixNano()
	last := p.st.lastRoam.Load()
	if last != 0 && now-last < p.roamInterval {
		return
	}
	if !p.st.lastRoam.CompareAndSwap(last, now) {
		return // another worker roamed this peer just now
	}
	e := new(endpoint.Endpoint)
	*e = ep
	// Counters first: whoever sees the new endpoint sees them counted.
	p.st.roams.Add(1)
	d.c.roams.Add(1)
	old := p.st.ep.Swap(e)
	select {
	case d.roamCh <- roamEvent{peer: p, from: *old, to: ep}:
	default: // the logger is behind; the counters still tell
	}
}
