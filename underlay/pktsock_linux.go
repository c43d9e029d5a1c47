package underlay

// The AF_PACKET send path for raw ESP (Config.PacketSocket).
//
// One AF_PACKET SOCK_DGRAM socket, protocol 0 (send only: a socket bound to
// ETH_P_IP or ETH_P_ALL would get a clone of every frame the host receives),
// with PACKET_QDISC_BYPASS: packet(7): the frames go to the driver directly,
// skipping the egress qdisc and with it the netfilter egress hooks (and the
// IP output path: OUTPUT, POSTROUTING, fragmentation, the neighbour
// subsystem). The underlay writes the outer IP header into each Buf's
// headroom, in front of the ESP packet, and the kernel adds the link-layer
// header from the sockaddr_ll of each message (sendmmsg, one name per
// message).
//
// Next hops come from the kernel's tables over netlink: RouteGet (with the
// mark and the bound source address, so policy routing is honoured) gives
// the route: a unicast one, its output interface, gateway, preferred source
// and MTU metric; the neighbour table gives the link-layer address of the
// gateway (or of the destination itself on a connected route); the link
// gives its type (Ethernet only) and MTU. Everything netlink is created in
// Open, in the calling thread's network namespace: a netlink.Handle for the
// queries and subscriptions to route, neighbour, link and address events,
// any of which invalidates the cache (a generation counter; neighbour
// events only when the neighbour is one the cache uses).
//
// The cache maps a destination to an immutable nextHop behind an
// atomic.Pointer (copy on write, resolution serialised by a mutex), so the
// per-packet path takes no lock and allocates nothing. An entry lives
// pktHopTTL: when it expires, the next packet to that destination goes
// through the raw IP socket, so the kernel's neighbour state machine sees
// traffic (our frames bypass it) and confirms or probes the neighbour, and
// the entry is resolved again. What cannot be sent this way (no route, a
// non-unicast route, no valid neighbour, a non-Ethernet link, an IPv6
// link-local destination) is cached as a negative entry for pktNegTTL, and
// goes through the raw IP socket (TxPacketSocketFallback), as does a packet
// longer than the MTU (the kernel fragments it, IPv4) or without headroom
// for the header.
//
// If an event subscription dies (netlink ENOBUFS: events were lost), the
// cache is not trusted: every packet falls back until the subscriptions are
// renewed (in the namespace of Open, retried every pktResubscribe).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

const (
	// pktHopTTL is how long a resolved next hop is used before a packet
	// goes through the kernel again (neighbour confirmation) and the
	// entry is resolved again.
	pktHopTTL = 2 * time.Second
	// pktNegTTL is how long "cannot be sent through AF_PACKET" is
	// believed before the next attempt to resolve.
	pktNegTTL = 200 * time.Millisecond
	// pktMaxHops bounds the cache; a full cache is rebuilt from its
	// live entries (or emptied).
	pktMaxHops = 4096
	// pktResubscribe is the pause between attempts to renew a dead event
	// subscription.
	pktResubscribe = time.Second
	// pktHopLimit is the TTL / hop limit of the headers written here, as
	// the kernel's default (sysctl ip_default_ttl, hop_limit).
	pktHopLimit = 64
	// pktNlRcvBuf is the event sockets' receive buffer.
	pktNlRcvBuf = 1 << 20
)

// nudValid are the neighbour states whose link-layer address is used: the
// kernel's NUD_VALID (include/net/neighbour.h): REACHABLE, STALE, DELAY,
// PROBE, PERMANENT, NOARP. INCOMPLETE and FAILED have none.
const nudValid = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// monoBase is the origin of the monotonic nanoseconds the cache uses.
var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

// nextHop is one destination's resolution; immutable once stored.
type nextHop struct {
	ok      bool   // usable; false: a negative entry (fallback)
	gen     uint64 // pktSock.gen when it was resolved
	expires int64  // monoNow deadline
	// nh and ifindex: the neighbour this entry depends on (gateway or
	// destination), when the route resolved; neighbour events for it
	// invalidate the cache.
	nh      netip.Addr
	ifindex int
	src     netip.Addr
	mtu     int // largest IP packet (header included) for this next hop
	hlen    int // outer header length: 20 or 40
	sll     unix.RawSockaddrLinklayer
	// hdr is the outer header template: IPv4 with Total Length, ID and
	// checksum zero (partial is its PartialChecksum), or IPv6 with
	// Payload Length zero.
	hdr     [header.IPv6HeaderLen]byte
	partial uint16
	// partialNoDF is the PartialChecksum of the IPv4 template with DF
	// clear (flags 0).
	partialNoDF uint16
}

// pktSock is the AF_PACKET socket and its next-hop cache.
type pktSock struct {
	file  *os.File
	rc    syscall.RawConn
	stats *Stats
	// src4, src6: the configured source addresses when specific (else the
	// route's preferred source is used); mark: SO_MARK and the route
	// lookup's mark.
	src4, src6 netip.Addr
	mark       uint32
	ttl        time.Duration // pktHopTTL (tests change it before use)
	negTTL     time.Duration // pktNegTTL

	gen   atomic.Uint64
	blind atomic.Bool   // an event subscription died: do not trust the cache
	ids   atomic.Uint32 // IPv4 Identification of DF-clear packets (send)
	hops  atomic.Pointer[map[netip.Addr]*nextHop]

	mu       sync.Mutex // serialises resolve and Close's teardown of nl
	nl       *netlink.Handle
	closed   bool
	resolves uint64 // queries made (tests)

	ns   netns.NsHandle // Open's namespace, to renew subscriptions
	done chan struct{}  // closed by close: stops the watcher
	wg   sync.WaitGroup
}

// pktSubs are one set of event subscriptions.
type pktSubs struct {
	done  chan struct{}
	route chan netlink.RouteUpdate
	neigh chan netlink.NeighUpdate
	link  chan netlink.LinkUpdate
	addr  chan netlink.AddrUpdate
}

// openPktSock opens the AF_PACKET socket and subscribes to the events, in
// the calling thread's network namespace.
func openPktSock(cfg *Config, stats *Stats) (_ *pktSock, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("underlay: AF_PACKET socket (PacketSocket): %w", os.NewSyscallError("socket", err))
	}
	p := &pktSock{
		stats:  stats,
		mark:   cfg.Mark,
		ttl:    pktHopTTL,
		negTTL: pktNegTTL,
		ns:     netns.None(),
		done:   make(chan struct{}),
	}
	if cfg.IPv4.IsValid() && !cfg.IPv4.IsUnspecified() {
		p.src4 = cfg.IPv4
	}
	if cfg.IPv6.IsValid() && !cfg.IPv6.IsUnspecified() {
		p.src6 = cfg.IPv6
	}
	m := map[netip.Addr]*nextHop{}
	p.hops.Store(&m)
	p.file = os.NewFile(uintptr(fd), "afpacket")
	defer func() {
		if err != nil {
			p.file.Close()
			if p.nl != nil {
				p.nl.Close()
			}
			if p.ns.IsOpen() {
				p.ns.Close()
			}
		}
	}()
	// packet(7): PACKET_QDISC_BYPASS sends straight to the driver,
	// skipping the qdisc layer (and the netfilter egress hooks).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		return nil, fmt.Errorf("underlay: AF_PACKET: %w", os.NewSyscallError("setsockopt PACKET_QDISC_BYPASS", err))
	}
	// Best effort, as listen.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBufferSize)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize)
	if cfg.Mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(cfg.Mark)); err != nil {
			return nil, fmt.Errorf("underlay: AF_PACKET: %w", os.NewSyscallError("setsockopt SO_MARK", err))
		}
	}
	if p.rc, err = p.file.SyscallConn(); err != nil {
		return nil, fmt.Errorf("underlay: AF_PACKET: %w", err)
	}
	if p.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return nil, fmt.Errorf("underlay: PacketSocket: netlink: %w", err)
	}
	// For renewing subscriptions from another thread (setns needs
	// CAP_SYS_ADMIN; without it a dead subscription stays blind).
	if h, err := netns.Get(); err == nil {
		p.ns = h
	}
	subs, err := p.subscribe(nil)
	if err != nil {
		return nil, fmt.Errorf("underlay: PacketSocket: netlink subscribe: %w", err)
	}
	p.wg.Add(1)
	go p.watch(subs)
	return p, nil
}

// subscribe subscribes to route, neighbour, link and address events, in
// ns (nil: the calling thread's namespace). On error nothing is left
// running.
func (p *pktSock) subscribe(ns *netns.NsHandle) (*pktSubs, error) {
	s := &pktSubs{
		done:  make(chan struct{}),
		route: make(chan netlink.RouteUpdate, 64),
		neigh: make(chan netlink.NeighUpdate, 64),
		link:  make(chan netlink.LinkUpdate, 64),
		addr:  make(chan netlink.AddrUpdate, 64),
	}
	cb := func(error) {} // a dead subscription shows as its closed channel
	var opened []func()
	fail := func(err error) (*pktSubs, error) {
		close(s.done)
		for _, drain := range opened {
			drain()
		}
		return nil, err
	}
	if err := netlink.RouteSubscribeWithOptions(s.route, s.done, netlink.RouteSubscribeOptions{
		Namespace: ns, ErrorCallback: cb, ReceiveBufferSize: pktNlRcvBuf,
	}); err != nil {
		return fail(fmt.Errorf("routes: %w", err))
	}
	opened = append(opened, func() { drainChan(s.route) })
	if err := netlink.NeighSubscribeWithOptions(s.neigh, s.done, netlink.NeighSubscribeOptions{
		Namespace: ns, ErrorCallback: cb, ReceiveBufferSize: pktNlRcvBuf,
	}); err != nil {
		return fail(fmt.Errorf("neighbours: %w", err))
	}
	opened = append(opened, func() { drainChan(s.neigh) })
	if err := netlink.LinkSubscribeWithOptions(s.link, s.done, netlink.LinkSubscribeOptions{
		Namespace: ns, ErrorCallback: cb, ReceiveBufferSize: pktNlRcvBuf,
	}); err != nil {
		return fail(fmt.Errorf("links: %w", err))
	}
	opened = append(opened, func() { drainChan(s.link) })
	if err := netlink.AddrSubscribeWithOptions(s.addr, s.done, netlink.AddrSubscribeOptions{
		Namespace: ns, ErrorCallback: cb, ReceiveBufferSize: pktNlRcvBuf,
	}); err != nil {
		return fail(fmt.Errorf("addresses: %w", err))
	}
	return s, nil
}

// drainChan reads ch until its sender closes it (the netlink goroutine
// exits then).
func drainChan[T any](ch chan T) {
	for range ch {
	}
}

// stop ends a subscription set and waits for its goroutines' channels to
// close.
func (s *pktSubs) stop() {
	close(s.done)
	drainChan(s.route)
	drainChan(s.neigh)
	drainChan(s.link)
	drainChan(s.addr)
}

// watch invalidates the cache on events until close; a dead subscription
// makes the cache blind until renewed.
func (p *pktSock) watch(s *pktSubs) {
	defer p.wg.Done()
	for {
		dead := p.events(s)
		s.stop()
		if !dead {
			return
		}
		p.blind.Store(true)
		p.gen.Add(1)
		for s = nil; s == nil; {
			select {
			case <-p.done:
				return
			case <-time.After(pktResubscribe):
			}
			if !p.ns.IsOpen() {
				continue
			}
			ns := p.ns
			s, _ = p.subscribe(&ns)
		}
		p.gen.Add(1)
		p.blind.Store(false)
	}
}

// events handles events until close (false) or until a subscription dies
// (true).
func (p *pktSock) events(s *pktSubs) (dead bool) {
	for {
		select {
		case <-p.done:
			return false
		case _, ok := <-s.route:
			if !ok {
				return true
			}
			p.gen.Add(1)
		case _, ok := <-s.link:
			if !ok {
				return true
			}
			p.gen.Add(1)
		case _, ok := <-s.addr:
			if !ok {
				return true
			}
			p.gen.Add(1)
		case u, ok := <-s.neigh:
			if !ok {
				return true
			}
			if p.usesNeigh(u.Neigh) {
				p.gen.Add(1)
			}
		}
	}
}

// usesNeigh reports whether a cache entry depends on neighbour n.
func (p *pktSock) usesNeigh(n netlink.Neigh) bool {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, h := range *p.hops.Load() {
		if h.nh == ip && h.ifindex == n.LinkIndex {
			return true
		}
	}
	return false
}

// close stops the watcher (no goroutine of it outlives close), the netlink
// handle and the socket.
func (p *pktSock) close() error {
	close(p.done)
	p.wg.Wait()
	p.mu.Lock()
	p.closed = true
	p.nl.Close()
	p.mu.Unlock()
	if p.ns.IsOpen() {
		p.ns.Close()
	}
	return p.file.Close()
}

// lookup returns the next hop for dst, resolving it when it is missing,
// stale or expired; confirm says this packet must go through the kernel
// (the entry had expired: neighbour confirmation). Lock-free unless it
// resolves.
func (p *pktSock) lookup(dst netip.Addr, now int64) (h *nextHop, confirm bool) {
	if p.blind.Load() {
		return nil, false
	}
	h = (*p.hops.Load())[dst]
	if h != nil && now < h.expires && h.gen == p.gen.Load() {
		return h, false
	}
	return p.resolve(dst, now)
}

// resolve resolves dst (serialised) and stores the result.
func (p *pktSock) resolve(dst netip.Addr, now int64) (*nextHop, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gen := p.gen.Load()
	old := *p.hops.Load()
	h := old[dst]
	if h != nil && now < h.expires && h.gen == gen {
		return h, false // resolved meanwhile
	}
	if p.closed {
		return nil, false
	}
	confirm := h != nil && h.ok && h.gen == gen // expired, not invalidated
	p.resolves++
	nh := p.query(dst)
	nh.gen = gen
	ttl := p.ttl
	if !nh.ok {
		ttl = p.negTTL
	}
	nh.expires = now + int64(ttl)
	m := make(map[netip.Addr]*nextHop, len(old)+1)
	if len(old) < pktMaxHops || h != nil {
		for k, v := range old {
			m[k] = v
		}
	} else {
		for k, v := range old {
			if now < v.expires && v.gen == gen {
				m[k] = v
			}
		}
		if len(m) >= pktMaxHops {
			clear(m)
		}
	}
	m[dst] = nh
	p.hops.Store(&m)
	return nh, confirm
}

// query asks the kernel how to reach dst; a result with ok false means
// "through the raw socket".
func (p *pktSock) query(dst netip.Addr) *nextHop {
	h := &nextHop{}
	src := p.src4
	if dst.Is6() {
		src = p.src6
	}
	// IPv6 link-local destinations need a zone the endpoint does not
	// carry; multicast, broadcast and the like are not unicast next hops.
	if !dst.IsGlobalUnicast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return h
	}
	opts := &netlink.RouteGetOptions{Mark: p.mark}
	if src.IsValid() {
		opts.SrcAddr = src.AsSlice()
	}
	rs, err := p.nl.RouteGetWithOptions(dst.AsSlice(), opts)
	if err != nil || len(rs) == 0 {
		return h // unreachable, blackhole, prohibit: an error
	}
	r := rs[0]
	if r.Type != unix.RTN_UNICAST || r.LinkIndex <= 0 {
		return h // local, broadcast, multicast, ...
	}
	h.ifindex = r.LinkIndex
	h.nh = dst
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		h.nh = gw.Unmap()
		if h.nh.Is4() != dst.Is4() {
			return h // an IPv6 next hop for IPv4 (RFC 5549): not here
		}
	}
	if !src.IsValid() {
		s, ok := netip.AddrFromSlice(r.Src)
		if !ok {
			return h
		}
		src = s.Unmap()
	}
	if src.Is4() != dst.Is4() {
		return h
	}
	link, err := p.nl.LinkByIndex(r.LinkIndex)
	if err != nil {
		return h
	}
	la := link.Attrs()
	if la.EncapType != "ether" || len(la.HardwareAddr) != 6 || la.Flags&net.FlagUp == 0 {
		return h // ARPHRD_ETHER only
	}
	h.mtu = la.MTU
	if r.MTU > 0 && r.MTU < h.mtu {
		h.mtu = r.MTU
	}
	fam := netlink.FAMILY_V4
	if dst.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := p.nl.NeighList(r.LinkIndex, fam)
	if err != nil {
		return h
	}
	var mac net.HardwareAddr
	for _, n := range ns {
		a, ok := netip.AddrFromSlice(n.IP)
		if ok && a.Unmap() == h.nh && n.State&nudValid != 0 && len(n.HardwareAddr) == 6 {
			mac = n.HardwareAddr
			break
		}
	}
	if mac == nil {
		return h
	}
	h.src = src
	h.sll = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: int32(r.LinkIndex), Halen: 6}
	copy(h.sll.Addr[:], mac)
	if dst.Is4() {
		h.hlen = header.IPv4MinHeaderLen
		h.sll.Protocol = netOrder16(unix.ETH_P_IP)
		// RFC 6864 §4.1: in an atomic datagram (DF set, not a fragment)
		// the ID has no meaning and may be any value: ID 0. The template
		// has DF; send clears it (and sets an ID) where the SA says so. A
		// packet longer than the MTU takes the kernel path (a DF-clear one
		// is fragmented there).
		ip := header.IPv4(h.hdr[:header.IPv4MinHeaderLen])
		ip.Encode(&header.IPv4Fields{
			Flags: header.IPv4FlagDF, TTL: pktHopLimit, Protocol: header.ProtoESP, Src: src, Dst: dst,
		})
		h.partial = ip.PartialChecksum()
		var noDF [header.IPv4MinHeaderLen]byte
		copy(noDF[:], h.hdr[:header.IPv4MinHeaderLen])
		noDF[6] = 0
		h.partialNoDF = header.IPv4(noDF[:]).PartialChecksum()
	} else {
		h.hlen = header.IPv6HeaderLen
		h.sll.Protocol = netOrder16(unix.ETH_P_IPV6)
		header.IPv6(h.hdr[:]).Encode(&header.IPv6Fields{
			NextHeader: header.ProtoESP, HopLimit: pktHopLimit, Src: src, Dst: dst,
		})
	}
	h.ok = true
	return h
}

// netOrder16 converts a 16-bit value to network byte order (sll_protocol).
func netOrder16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// pktScratch is one Send call's sendmmsg state (pooled in sendState).
type pktScratch struct {
	hs   []mmsghdr
	iovs []unix.Iovec
	sll  []unix.RawSockaddrLinklayer
	n    int // messages queued

	// The call in flight, for writeFn (bound once: no closure per call).
	start   int
	sent    int
	errs    int
	first   error
	writeFn func(fd uintptr) bool
}

func newPktScratch(batch int) *pktScratch {
	c := &pktScratch{
		hs:   make([]mmsghdr, batch),
		iovs: make([]unix.Iovec, batch),
		sll:  make([]unix.RawSockaddrLinklayer, batch),
	}
	c.writeFn = c.sendmmsg
	return c
}

// sendmmsg is the RawConn.Write callback: it sends hs[start:n], skipping a
// message the kernel refuses (the error is lost when earlier messages of
// the call were accepted, and comes back on the retry that starts at it).
func (c *pktScratch) sendmmsg(fd uintptr) bool {
	for c.start < c.n {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.hs[c.start])), uintptr(c.n-c.start), 0, 0, 0)
		switch {
		case e == unix.EAGAIN:
			return false // socket buffer full: wait until writable
		case e == unix.EINTR:
		case e != 0:
			c.errs++
			if c.first == nil {
				c.first = os.NewSyscallError("sendmmsg", e)
			}
			c.start++
		default:
			c.sent += int(r)
			c.start += int(r)
		}
	}
	return true
}

// flush sends the queued messages and counts them.
func (p *pktSock) flush(c *pktScratch) error {
	if c.n == 0 {
		return nil
	}
	c.start, c.sent, c.errs, c.first = 0, 0, 0, nil
	err := p.rc.Write(c.writeFn)
	for i := range c.iovs[:c.n] {
		c.iovs[i].Base = nil
	}
	addNonZero(&p.stats.TxPacketSocket, uint64(c.sent))
	addNonZero(&p.stats.TxPacketSocketErrors, uint64(c.errs))
	c.n = 0
	if err != nil {
		return net.ErrClosed // the only error RawConn.Write returns
	}
	return c.first
}

// send sends a run of raw ESP packets (one socket, at most one batch):
// those whose next hop is resolved through the AF_PACKET socket, the
// others the way they go without it (u.send: the raw socket, or for DF
// set over IPv4 header-included), in order. An IPv4 header gets the DF bit
// the SA decided (frontDF); a DF-clear one a fresh Identification (RFC
// 6864 §4.1: a datagram that may be fragmented needs one), from a counter
// of this socket.
func (p *pktSock) send(u *Linux, ss *socketSet, st *sendState, bufs []*pkt.Buf, eps []endpoint.Endpoint) error {
	if st.pk == nil {
		st.pk = newPktScratch(len(st.msgs))
	}
	c := st.pk
	now := monoNow()
	var first error
	var last netip.Addr
	var lastHop *nextHop
	slow := -1          // start of the pending fallback packets, or -1
	var ids, idn uint32 // IDs reserved for DF-clear packets: ids, ids+1, ... idn left
	for i, b := range bufs {
		dst := eps[i].Addr.Addr().Unmap()
		var h *nextHop
		if dst == last && lastHop != nil {
			h = lastHop
		} else {
			var confirm bool
			h, confirm = p.lookup(dst, now)
			last, lastHop = dst, h
			if confirm {
				lastHop = nil // this packet goes through the kernel
				h = nil
			}
		}
		n := b.Len()
		fast := h != nil && h.ok && h.hlen+n <= h.mtu && b.Off() >= h.hlen && h.hlen+n <= 0xffff
		if !fast {
			if slow < 0 {
				keepFirst(&first, p.flush(c))
				slow = i
			}
			continue
		}
		if slow >= 0 {
			keepFirst(&first, u.send(ss, st, bufs[slow:i], eps[slow:i], false))
			p.stats.TxPacketSocketFallback.Add(uint64(i - slow))
			slow = -1
		}
		off := b.Off() - h.hlen
		hdr := b.B[off:b.Off()]
		if h.hlen == header.IPv4MinHeaderLen {
			if frontDF(b) { // before the copy overwrites what it reads
				copy(hdr, h.hdr[:h.hlen])
				header.IPv4(hdr).EncodePartial(h.partial, h.hlen+n, 0)
			} else {
				if idn == 0 {
					idn = uint32(len(bufs) - i)
					ids = p.ids.Add(idn) - idn
				}
				copy(hdr, h.hdr[:h.hlen])
				hdr[6] = 0 // flags: DF clear
				header.IPv4(hdr).EncodePartial(h.partialNoDF, h.hlen+n, uint16(ids))
				ids++
				idn--
			}
		} else {
			copy(hdr, h.hdr[:h.hlen])
			header.IPv6(hdr).SetPayloadLen(n)
		}
		k := c.n
		c.sll[k] = h.sll
		c.iovs[k].Base = &b.B[off]
		c.iovs[k].SetLen(h.hlen + n)
		m := &c.hs[k].hdr
		m.Name = (*byte)(unsafe.Pointer(&c.sll[k]))
		m.Namelen = unix.SizeofSockaddrLinklayer
		m.Iov = &c.iovs[k]
		m.Iovlen = 1
		c.n++
	}
	keepFirst(&first, p.flush(c))
	if slow >= 0 {
		keepFirst(&first, u.send(ss, st, bufs[slow:], eps[slow:], false))
		p.stats.TxPacketSocketFallback.Add(uint64(len(bufs) - slow))
	}
	if errors.Is(first, net.ErrClosed) {
		return net.ErrClosed
	}
	return first
}

// keepFirst sets *first to err unless it is set already.
func keepFirst(first *error, err error) {
	if err != nil && *first == nil {
		*first = err
	}
}
