// Package underlaytest is an in-memory dataplane.Underlay for tests (like
// wireguard-go conn/bindtest): NewPair connects two Underlays by channels.
// BatchSize is 1, so the dataplane's batching runs at 1 in tests and at N in
// production. Knobs drop, duplicate, rewrite and record packets and inject
// new ones, to test roaming and the replay defence.
//
// Like the Linux underlay it carries endpoint.EncapIP packets (whole IP
// packets, sent header-included) and leaves the normalised outer header in
// front of raw ESP packets it delivers (dataplane.ReceiveFunc).
package underlaytest

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/underlay"
)

// Msg is one packet on the wire: ESP (SPI first), or for a Dst or Src with
// Encap endpoint.EncapIP a whole IP packet.
type Msg struct {
	Data     []byte
	Src, Dst endpoint.Endpoint
}

// Filter sees every packet an Underlay sends and returns what the network
// delivers: nothing drops it, two copies duplicate it, a changed Src rewrites
// the source (a NAT rebinding).
type Filter func(m Msg) []Msg

// Underlay is one end of a pair. All methods are safe for concurrent use.
type Underlay struct {
	peer   *Underlay
	in     chan Msg
	closed chan struct{}
	once   sync.Once

	mu         sync.Mutex
	local      endpoint.Endpoint
	filter     Filter
	record     bool
	sent       []Msg
	keepalives []endpoint.Endpoint
	misrouted  int
	opened     bool
	addrs      []netip.Addr
}

var _ dataplane.Underlay = (*Underlay)(nil)

// NewPair returns two connected Underlays with local endpoints a and b.
// A packet is delivered only when its destination is the other side's
// current local endpoint (see SetLocal); others count as Misrouted.
func NewPair(a, b endpoint.Endpoint) (*Underlay, *Underlay) {
	ua := &Underlay{local: a, in: make(chan Msg, 4096), closed: make(chan struct{})}
	ub := &Underlay{local: b, in: make(chan Msg, 4096), closed: make(chan struct{})}
	ua.peer, ub.peer = ub, ua
	return ua, ub
}

// Local returns the local endpoint: the source of what this side sends.
func (u *Underlay) Local() endpoint.Endpoint {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.local
}

// SetLocal moves this side to ep: later packets carry it as their source,
// and only packets sent to ep reach this side (roaming, NAT rebinding).
func (u *Underlay) SetLocal(ep endpoint.Endpoint) {
	u.mu.Lock()
	u.local = ep
	u.mu.Unlock()
}

// SetAddrs sets further local addresses: EncapIP packets sent to one of
// them (or to the local endpoint's address) reach this side.
func (u *Underlay) SetAddrs(addrs ...netip.Addr) {
	u.mu.Lock()
	u.addrs = slices.Clone(addrs)
	u.mu.Unlock()
}

// SetFilter installs f for the packets this side sends; nil removes it.
func (u *Underlay) SetFilter(f Filter) {
	u.mu.Lock()
	u.filter = f
	u.mu.Unlock()
}

// Record starts or stops recording copies of the packets this side sends
// (before the filter); Sent returns them.
func (u *Underlay) Record(on bool) {
	u.mu.Lock()
	u.record = on
	u.mu.Unlock()
}

// Sent returns the recorded packets.
func (u *Underlay) Sent() []Msg {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Msg(nil), u.sent...)
}

// Keepalives returns the destinations of the keepalives sent so far.
func (u *Underlay) Keepalives() []endpoint.Endpoint {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]endpoint.Endpoint(nil), u.keepalives...)
}

// Misrouted returns how many packets the other side sent to an endpoint
// that was not this side's.
func (u *Underlay) Misrouted() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.misrouted
}

// Inject delivers m to this side's receiver as if it came from the network
// (a replay, a forgery). It does not check m.Dst, and m.Src is what the
// receiver sees (for EncapIP, m.Data is then the packet as returned).
func (u *Underlay) Inject(m Msg) error {
	m.Data = append([]byte(nil), m.Data...)
	select {
	case u.in <- m:
		return nil
	case <-u.closed:
		return net.ErrClosed
	}
}

// Open returns one ReceiveFunc.
func (u *Underlay) Open() ([]dataplane.ReceiveFunc, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.opened {
		return nil, errors.New("underlaytest: already open")
	}
	u.opened = true
	return []dataplane.ReceiveFunc{u.receive}, nil
}

func (u *Underlay) receive(bufs []*pkt.Buf, eps []endpoint.Endpoint) (int, error) {
	select {
	case <-u.closed:
		return 0, net.ErrClosed
	case m := <-u.in:
		bufs[0].Reset()
		bufs[0].Set(m.Data)
		eps[0] = m.Src
		if m.Src.Encap == endpoint.EncapRaw {
			// The outer header a raw socket saw, as the Linux underlay
			// leaves it in the headroom.
			dst := m.Dst.Addr.Addr()
			if !dst.IsValid() {
				dst = u.Local().Addr.Addr()
			}
			underlay.WriteOuterHeader(bufs[0], m.Src.Addr.Addr(), dst)
		}
		return 1, nil
	}
}

// Send delivers copies of bufs[i].Bytes() to the other side, through the
// filter. An EncapIP packet (eps[i].Encap) is a whole IP packet; the other
// side receives it as the Linux underlay would (see deliver).
func (u *Underlay) Send(bufs []*pkt.Buf, eps []endpoint.Endpoint) error {
	select {
	case <-u.closed:
		return net.ErrClosed
	default:
	}
	u.mu.Lock()
	src, f, rec := u.local, u.filter, u.record
	u.mu.Unlock()
	for i, b := range bufs {
		m := Msg{Data: append([]byte(nil), b.Bytes()...), Src: src, Dst: eps[i]}
		if rec {
			u.mu.Lock()
			u.sent = append(u.sent, Msg{Data: append([]byte(nil), m.Data...), Src: m.Src, Dst: m.Dst})
			u.mu.Unlock()
		}
		ms := []Msg{m}
		if f != nil {
			ms = f(m)
		}
		for _, m := range ms {
			u.peer.deliver(m)
		}
	}
	return nil
}

// deliver queues m for this side when it is addressed here. An EncapIP
// packet is addressed by its destination address alone (the local
// endpoint's or one of SetAddrs); it arrives as the Linux underlay returns
// it: IPv4/UDP with port 4191 on either side loses its IPv4 and UDP
// headers and comes from (IPv4 source, UDP source port); anything else
// stays whole and comes from (IP source, 0).
func (u *Underlay) deliver(m Msg) {
	u.mu.Lock()
	var ok bool
	if m.Dst.Encap == endpoint.EncapIP {
		a := m.Dst.Addr.Addr().Unmap()
		ok = a == u.local.Addr.Addr().Unmap() || slices.Contains(u.addrs, a)
	} else {
		ok = m.Dst == u.local
	}
	if !ok {
		u.misrouted++
	}
	u.mu.Unlock()
	if !ok {
		return
	}
	if m.Dst.Encap == endpoint.EncapIP {
		m.Data, m.Src = receiveIP(m.Data)
	}
	select {
	case u.in <- m:
	case <-u.closed:
	}
}

// SendKeepalive records ep; it fails unless ep is EncapUDP.
func (u *Underlay) SendKeepalive(ep endpoint.Endpoint) error {
	if ep.Encap != endpoint.EncapUDP {
		return errors.New("underlaytest: keepalive to a non-UDP endpoint")
	}
	select {
	case <-u.closed:
		return net.ErrClosed
	default:
	}
	u.mu.Lock()
	u.keepalives = append(u.keepalives, ep)
	u.mu.Unlock()
	return nil
}

// BatchSize returns 1.
func (u *Underlay) BatchSize() int { return 1 }

// Close stops the receiver; idempotent.
func (u *Underlay) Close() error {
	u.once.Do(func() { close(u.closed) })
	return nil
}

// receiveIP is what a Linux receiver makes of the header-included packet p
// (endpoint.EncapIP).
func receiveIP(p []byte) ([]byte, endpoint.Endpoint) {
	ep := endpoint.Endpoint{Encap: endpoint.EncapIP}
	if len(p) == 0 {
		return p, ep
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return p, ep
		}
		ep.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), 0)
		hl := int(p[0]&0xf) * 4
		if p[9] != 17 || hl < 20 || len(p) < hl+8 {
			return p, ep
		}
		sport, dport := binary.BigEndian.Uint16(p[hl:]), binary.BigEndian.Uint16(p[hl+2:])
		if sport != endpoint.DSMIPv6Port && dport != endpoint.DSMIPv6Port {
			return p, ep
		}
		ep.Addr = netip.AddrPortFrom(ep.Addr.Addr(), sport)
		return p[hl+8:], ep
	case 6:
		if len(p) >= 40 {
			ep.Addr = netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[8:24])), 0)
		}
	}
	return p, ep
}
