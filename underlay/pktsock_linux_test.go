package underlay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/mipsec/mipsec/internal/testns"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
)

// pktPair is a veth pair with a PacketSocket sender in a and a raw (and,
// with udp, UDP) receiver in b, bound to b's addresses.
type pktPair struct {
	*testns.VethPair
	ua, ub *Linux
	fns    []ReceiveFunc // b: raw4, raw6 (then udp4, udp6)
	pk     *pktSock
	// dfClear: sendCheck's packets carry a DF-clear IPv4 header in front
	// (the SA said clear), else none (DF set, frontDF).
	dfClear bool
}

func newPktPair(t *testing.T, mode Mode, ttl time.Duration) *pktPair {
	t.Helper()
	p := &pktPair{VethPair: testns.NewVethPair(t)}
	p.Settle(t)
	p.ua, _ = openUnderlay(t, p.A, Config{IPv4: p.A4, IPv6: p.A6, Mode: mode, PacketSocket: true})
	p.ub, p.fns = openUnderlay(t, p.B, Config{IPv4: p.B4, IPv6: p.B6, Mode: mode})
	p.pk = p.ua.set.Load().pkt
	if p.pk == nil {
		t.Fatal("PacketSocket set but no AF_PACKET socket open")
	}
	if ttl != 0 {
		p.pk.ttl = ttl // before any Send
	}
	return p
}

// fn returns b's raw ESP ReceiveFunc of dst's family.
func (p *pktPair) fn(dst netip.Addr) ReceiveFunc {
	if dst.Is6() {
		return p.fns[1]
	}
	return p.fns[0]
}

// rawEP is the raw ESP endpoint of dst.
func rawEP(dst netip.Addr) endpoint.Endpoint {
	return endpoint.Endpoint{Addr: netip.AddrPortFrom(dst, 0), Encap: endpoint.EncapRaw}
}

// counts returns a's TxPacketSocket, TxPacketSocketFallback and
// TxPacketSocketErrors.
func (p *pktPair) counts() (fast, fallback, errs uint64) {
	s := p.ua.Stats()
	return s.TxPacketSocket.Load(), s.TxPacketSocketFallback.Load(), s.TxPacketSocketErrors.Load()
}

// warm sends one packet at a time to dst (each one received) until one
// goes through the AF_PACKET socket: the neighbour is resolved then.
func (p *pktPair) warm(t *testing.T, dst netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for seq := uint32(1_000_000); time.Now().Before(deadline); seq++ {
		before, _, _ := p.counts()
		if err := p.ua.Send(bufsOf([][]byte{fakeESP(0x77, seq, 64)}), []endpoint.Endpoint{rawEP(dst)}); err != nil {
			t.Fatalf("warm-up Send to %v: %v", dst, err)
		}
		if got := recvN(t, p.ub, p.fn(dst), 1, 5*time.Second); len(got) != 1 {
			t.Fatalf("warm-up packet to %v lost", dst)
		}
		if after, _, _ := p.counts(); after > before {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("next hop %v never resolved for AF_PACKET", dst)
}

// sendCheck sends pkts to dst, receives them at b and compares them (in
// sequence order) and their source.
func (p *pktPair) sendCheck(t *testing.T, dst netip.Addr, pkts [][]byte) {
	t.Helper()
	eps := make([]endpoint.Endpoint, len(pkts))
	for i := range eps {
		eps[i] = rawEP(dst)
	}
	bufs := bufsOf(pkts)
	if p.dfClear {
		setFrontDF(bufs, false)
	}
	if err := p.ua.Send(bufs, eps); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for i, b := range bufs {
		if !bytes.Equal(b.Bytes(), pkts[i]) {
			t.Fatalf("Send changed packet %d", i)
		}
	}
	got := recvN(t, p.ub, p.fn(dst), len(pkts), 5*time.Second)
	if len(got) != len(pkts) {
		t.Fatalf("received %d of %d packets", len(got), len(pkts))
	}
	slices.SortFunc(got, func(x, y received) int {
		return int(binary.BigEndian.Uint32(x.p[4:])) - int(binary.BigEndian.Uint32(y.p[4:]))
	})
	src := p.A4
	if dst.Is6() {
		src = p.A6
	}
	for i, r := range got {
		if !bytes.Equal(r.p, pkts[i]) {
			t.Errorf("packet %d: got %d bytes, want %d (%x...)", i, len(r.p), len(pkts[i]), pkts[i][:8])
		}
		if r.ep != rawEP(src) {
			t.Errorf("packet %d from %v, want %v", i, r.ep, rawEP(src))
		}
	}
}

func seqPackets(first uint32, sizes ...int) [][]byte {
	var pkts [][]byte
	for i, n := range sizes {
		pkts = append(pkts, fakeESP(0x1234, first+uint32(i), n))
	}
	return pkts
}

// TestPacketSocketDelivery: with PacketSocket, raw ESP over IPv4 and IPv6
// arrives at the peer byte for byte from the right source, counted as
// TxPacketSocket; on the wire the outer header is the one the underlay
// wrote (IPv4: DF, ID 0 per RFC 6864, TTL 64, protocol 50, valid checksum;
// IPv6: hop limit 64, next header 50).
func TestPacketSocketDelivery(t *testing.T) {
	p := newPktPair(t, ModeRaw, 0)
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			src, dst := p.A4, p.B4
			if v6 {
				src, dst = p.A6, p.B6
			}
			p.warm(t, dst)
			fast0, fb0, _ := p.counts()
			var sizes []int
			for i := range 100 {
				sizes = append(sizes, 8+(i*97)%1400)
			}
			pkts := seqPackets(1, sizes...)
			p.sendCheck(t, dst, pkts)
			fast, fb, errs := p.counts()
			if fast-fast0 != uint64(len(pkts)) || fb != fb0 || errs != 0 {
				t.Errorf("TxPacketSocket +%d, fallback +%d, errors %d; want +%d, +0, 0", fast-fast0, fb-fb0, errs, len(pkts))
			}

			// The wire.
			capt := newCapture(t, p.B, "mvb")
			esp := fakeESP(0x99, 7, 100)
			var want []byte
			if v6 {
				want = make([]byte, header.IPv6HeaderLen+len(esp))
				header.IPv6(want).Encode(&header.IPv6Fields{PayloadLen: uint16(len(esp)), NextHeader: header.ProtoESP, HopLimit: 64, Src: src, Dst: dst})
			} else {
				want = make([]byte, header.IPv4MinHeaderLen+len(esp))
				header.IPv4(want).Encode(&header.IPv4Fields{TotalLen: uint16(len(want)), Flags: header.IPv4FlagDF, TTL: 64, Protocol: header.ProtoESP, Src: src, Dst: dst})
			}
			copy(want[len(want)-len(esp):], esp)
			if err := p.ua.Send(bufsOf([][]byte{esp}), []endpoint.Endpoint{rawEP(dst)}); err != nil {
				t.Fatal(err)
			}
			capt.expect(t, want)
			recvN(t, p.ub, p.fn(dst), 1, 5*time.Second)
		})
	}
}

// TestPacketSocketUnresolved: in a fresh pair the neighbour is unknown: the
// first packets go through the raw socket (counted as fallback) and still
// arrive, and once the kernel resolved the neighbour (an event) packets go
// through AF_PACKET. An unresolved destination costs no netlink query per
// packet (negative entries are cached).
func TestPacketSocketUnresolved(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			p := newPktPair(t, ModeRaw, 0)
			dst := p.B4
			if v6 {
				dst = p.B6
			}
			p.sendCheck(t, dst, seqPackets(1, 100, 200, 300))
			fast, fb, _ := p.counts()
			if fast != 0 || fb != 3 {
				t.Fatalf("first Send: TxPacketSocket %d, fallback %d; want 0, 3", fast, fb)
			}
			if r := p.pk.resolves; r != 1 {
				t.Errorf("%d resolutions for one destination, want 1", r)
			}
			p.warm(t, dst)
			fast0, fb0, _ := p.counts()
			p.sendCheck(t, dst, seqPackets(10, 100, 1400, 60))
			if fast, fb, _ := p.counts(); fast-fast0 != 3 || fb != fb0 {
				t.Errorf("after resolution: TxPacketSocket +%d, fallback +%d; want +3, +0", fast-fast0, fb-fb0)
			}
		})
	}
}

// TestPacketSocketNeighbourChange: the peer's MAC changes and the sender's
// neighbour entry is replaced: the event invalidates the cache and packets
// keep arriving through AF_PACKET. The entries live an hour here, so
// without the invalidation they would go to the old MAC and be lost.
func TestPacketSocketNeighbourChange(t *testing.T) {
	p := newPktPair(t, ModeRaw, time.Hour)
	for i, dst := range []netip.Addr{p.B4, p.B6} {
		t.Run(fmt.Sprintf("v6=%v", dst.Is6()), func(t *testing.T) {
			p.warm(t, dst)
			mac := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, byte(0x10 + i)}
			if err := p.B.NL.LinkSetHardwareAddr(p.LinkB, mac); err != nil {
				t.Fatal(err)
			}
			gen := p.pk.gen.Load()
			fam := netlink.FAMILY_V4
			if dst.Is6() {
				fam = netlink.FAMILY_V6
			}
			if err := p.A.NL.NeighSet(&netlink.Neigh{
				LinkIndex: p.LinkA.Attrs().Index, Family: fam, State: netlink.NUD_PERMANENT,
				IP: dst.AsSlice(), HardwareAddr: mac,
			}); err != nil {
				t.Fatalf("ip neigh replace: %v", err)
			}
			deadline := time.Now().Add(2 * time.Second)
			for p.pk.gen.Load() == gen && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if p.pk.gen.Load() == gen {
				t.Fatal("neighbour event did not invalidate the cache")
			}
			fast0, fb0, _ := p.counts()
			p.sendCheck(t, dst, seqPackets(100, 100, 500, 1000, 1400))
			if fast, fb, _ := p.counts(); fast-fast0 != 4 || fb != fb0 {
				t.Errorf("TxPacketSocket +%d, fallback +%d; want +4, +0", fast-fast0, fb-fb0)
			}
		})
	}
}

// TestPacketSocketExpiry: an expired entry sends the next packet through the
// kernel (neighbour confirmation) and is resolved again; the packets after
// it go through AF_PACKET.
func TestPacketSocketExpiry(t *testing.T) {
	p := newPktPair(t, ModeRaw, 0)
	p.warm(t, p.B4)
	p.pk.mu.Lock()
	p.pk.ttl = 100 * time.Millisecond
	p.pk.mu.Unlock()
	p.pk.gen.Add(1)                          // as an event: resolve again, no confirmation
	p.sendCheck(t, p.B4, seqPackets(1, 100)) // resolved with the short TTL
	if fast, fb, _ := p.counts(); fast < 2 || fb != 1 {
		t.Fatalf("TxPacketSocket %d, fallback %d after warm-up; want >= 2, 1", fast, fb)
	}
	time.Sleep(150 * time.Millisecond)
	fast0, fb0, _ := p.counts()
	p.sendCheck(t, p.B4, seqPackets(10, 100, 200, 300))
	if fast, fb, _ := p.counts(); fast-fast0 != 2 || fb-fb0 != 1 {
		t.Errorf("after expiry: TxPacketSocket +%d, fallback +%d; want +2, +1", fast-fast0, fb-fb0)
	}
}

// TestPacketSocketNoRoute: blackhole, unreachable and local routes, and a
// route that disappears, send through the raw socket (counted as fallback),
// never panic, and do not query netlink per packet.
func TestPacketSocketNoRoute(t *testing.T) {
	p := newPktPair(t, ModeRaw, time.Hour)
	p.warm(t, p.B4)
	for _, r := range []struct {
		dst string
		typ int
	}{{"198.51.100.0/24", unix.RTN_BLACKHOLE}, {"203.0.113.0/24", unix.RTN_UNREACHABLE}} {
		pf := netip.MustParsePrefix(r.dst)
		if err := p.A.NL.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: pf.Addr().AsSlice(), Mask: net.CIDRMask(pf.Bits(), 32)}, Type: r.typ}); err != nil {
			t.Fatalf("route add %s: %v", r.dst, err)
		}
	}
	time.Sleep(50 * time.Millisecond) // the route events
	for _, d := range []string{"198.51.100.7", "203.0.113.9", "192.0.2.1"} {
		dst := netip.MustParseAddr(d)
		_, fb0, _ := p.counts()
		res0 := p.pk.resolves
		for range 3 {
			eps := []endpoint.Endpoint{rawEP(dst), rawEP(dst), rawEP(dst), rawEP(dst)}
			err := p.ua.Send(bufsOf(seqPackets(1, 40, 50, 60, 70)), eps)
			t.Logf("%s: Send = %v", d, err)
		}
		if _, fb, _ := p.counts(); fb-fb0 != 12 {
			t.Errorf("%s: fallback +%d, want +12", d, fb-fb0)
		}
		if r := p.pk.resolves - res0; r != 1 {
			t.Errorf("%s: %d resolutions for 12 packets, want 1", d, r)
		}
	}
	// The connected route goes away with the address.
	gen := p.pk.gen.Load()
	if err := p.A.NL.AddrDel(p.LinkA, &netlink.Addr{IPNet: &net.IPNet{IP: p.A4.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.pk.gen.Load() == gen && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	fast0, fb0, _ := p.counts()
	err := p.ua.Send(bufsOf(seqPackets(1, 40, 50)), []endpoint.Endpoint{rawEP(p.B4), rawEP(p.B4)})
	if err == nil {
		t.Errorf("Send without a route succeeded")
	}
	if fast, fb, _ := p.counts(); fast != fast0 || fb-fb0 != 2 {
		t.Errorf("route gone: TxPacketSocket +%d, fallback +%d; want +0, +2", fast-fast0, fb-fb0)
	}
}

// TestPacketSocketMTU: a packet longer than the link MTU goes through the
// raw socket (fallback) and arrives (IPv4 fragmented by the kernel, IPv6
// too: raw sockets fragment locally), between AF_PACKET ones, in order.
func TestPacketSocketMTU(t *testing.T) {
	p := newPktPair(t, ModeRaw, time.Hour)
	// The SA said DF clear: what exceeds the MTU is fragmented (with DF
	// it could not leave; TestDFOnTheWire).
	p.dfClear = true
	for _, x := range []struct {
		ns   *testns.NS
		link netlink.Link
	}{{p.A, p.LinkA}, {p.B, p.LinkB}} {
		if err := x.ns.NL.LinkSetMTU(x.link, 1280); err != nil {
			t.Fatal(err)
		}
	}
	for _, dst := range []netip.Addr{p.B4, p.B6} {
		t.Run(fmt.Sprintf("v6=%v", dst.Is6()), func(t *testing.T) {
			p.warm(t, dst)
			fast0, fb0, _ := p.counts()
			hl := header.IPv4MinHeaderLen
			if dst.Is6() {
				hl = header.IPv6HeaderLen
			}
			// 1280-hl fits exactly; one more byte does not.
			p.sendCheck(t, dst, seqPackets(1, 100, 1400, 1280-hl, 1281-hl, 200))
			if fast, fb, _ := p.counts(); fast-fast0 != 3 || fb-fb0 != 2 {
				t.Errorf("TxPacketSocket +%d, fallback +%d; want +3, +2", fast-fast0, fb-fb0)
			}
		})
	}
}

// TestPacketSocketClose: Close stops every goroutine the AF_PACKET path
// started (netlink subscriptions), Send afterwards fails with
// net.ErrClosed, and Open works again.
func TestPacketSocketClose(t *testing.T) {
	p := newPktPair(t, ModeRaw, 0)
	p.warm(t, p.B4)
	if n := pktGoroutines(); n == 0 {
		t.Fatal("no netlink subscription goroutines while open")
	}
	if err := p.ua.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for pktGoroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := pktGoroutines(); n != 0 {
		t.Errorf("%d goroutines left after Close:\n%s", n, stacks())
	}
	if err := p.ua.Send(bufsOf(seqPackets(1, 40)), []endpoint.Endpoint{rawEP(p.B4)}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close = %v, want net.ErrClosed", err)
	}
	var err error
	p.A.Do(t, func() { _, err = p.ua.Open() })
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	p.warm(t, p.B4)
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// pktGoroutines counts goroutines in netlink subscriptions or the watcher.
func pktGoroutines() int {
	n := 0
	for _, g := range strings.Split(stacks(), "\n\n") {
		if strings.Contains(g, "vishvananda/netlink") || strings.Contains(g, "(*pktSock)") {
			n++
		}
	}
	return n
}

// TestPacketSocketOpenModes: PacketSocket opens the AF_PACKET socket only
// with raw ESP sockets (not in UDP mode), and a failed Open leaves no
// goroutine behind.
func TestPacketSocketOpenModes(t *testing.T) {
	ns := testns.New(t)
	lo := netip.MustParseAddr("127.0.0.1")
	uu, _ := openUnderlay(t, ns, Config{IPv4: lo, Mode: ModeUDP, PacketSocket: true})
	if uu.set.Load().pkt != nil {
		t.Error("AF_PACKET socket opened in UDP mode")
	}
	ur, _ := openUnderlay(t, ns, Config{IPv4: lo, Mode: ModeRaw, PacketSocket: true, Mark: 0x4d49})
	pk := ur.set.Load().pkt
	if pk == nil {
		t.Fatal("no AF_PACKET socket in raw mode")
	}
	rc, _ := pk.file.SyscallConn()
	var mark, bypass int
	var err1, err2 error
	rc.Control(func(fd uintptr) {
		mark, err1 = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK)
		bypass, err2 = unix.GetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS)
	})
	if err1 != nil || err2 != nil || mark != 0x4d49 || bypass != 1 {
		t.Errorf("SO_MARK %#x (%v), PACKET_QDISC_BYPASS %d (%v); want 0x4d49, 1", mark, err1, bypass, err2)
	}
	// Loopback is not Ethernet: everything falls back, and arrives.
	if err := ur.Send(bufsOf(seqPackets(1, 60)), []endpoint.Endpoint{rawEP(lo)}); err != nil {
		t.Errorf("Send over loopback: %v", err)
	}
	if fb := ur.Stats().TxPacketSocketFallback.Load(); fb != 1 {
		t.Errorf("loopback: fallback %d, want 1", fb)
	}
	ur.Close()
	uu.Close()
	u, err := New(Config{IPv4: netip.MustParseAddr("192.0.2.99"), Mode: ModeRaw, PacketSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Do(t, func() { _, err = u.Open() })
	if err == nil {
		u.Close()
		t.Fatal("Open with a non-local address succeeded")
	}
	deadline := time.Now().Add(2 * time.Second)
	for pktGoroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := pktGoroutines(); n != 0 {
		t.Errorf("%d goroutines left after a failed Open", n)
	}
}

// TestPacketSocketAllocs: a steady-state Send through AF_PACKET allocates
// nothing.
func TestPacketSocketAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	p := newPktPair(t, ModeRaw, time.Hour)
	for _, dst := range []netip.Addr{p.B4, p.B6} {
		p.warm(t, dst)
		batch := p.ua.BatchSize()
		sbufs := bufsOf(seqPackets(1, slices.Repeat([]int{1400}, batch)...))
		eps := slices.Repeat([]endpoint.Endpoint{rawEP(dst)}, batch)
		rbufs := bufsOf(make([][]byte, batch))
		reps := make([]endpoint.Endpoint, batch)
		watchdog := time.AfterFunc(time.Minute, func() { p.ub.Close() })
		_, fb0, _ := p.counts()
		allocs := testing.AllocsPerRun(50, func() {
			if err := p.ua.Send(sbufs, eps); err != nil {
				t.Fatal(err)
			}
			for got := 0; got < batch; {
				n, err := p.fn(dst)(rbufs, reps)
				if err != nil {
					t.Fatalf("receive: %v", err)
				}
				got += n
			}
		})
		watchdog.Stop()
		if allocs != 0 {
			t.Errorf("%v: %v allocs per batch of %d, want 0", dst, allocs, batch)
		}
		if _, fb, _ := p.counts(); fb != fb0 {
			t.Errorf("%v: %d packets fell back", dst, fb-fb0)
		}
	}
}

// TestPacketSocketHostile: one Send mixing raw and UDP endpoints, IPv4 and
// IPv6, an IPv4-mapped address, a zero and an unknown endpoint, broadcast,
// multicast, loopback and link-local destinations, and a packet without
// headroom: the good packets arrive, the rest are refused or fall back,
// nothing panics, and the first error is ErrNoSocket.
func TestPacketSocketHostile(t *testing.T) {
	p := newPktPair(t, ModeBoth, time.Hour)
	p.warm(t, p.B4)
	p.warm(t, p.B6)
	udp := endpoint.Endpoint{Addr: netip.AddrPortFrom(p.B4, endpoint.UDPEncapPort), Encap: endpoint.EncapUDP}
	mapped := rawEP(netip.AddrFrom16(p.B4.As16()))
	eps := []endpoint.Endpoint{
		rawEP(p.B4), // 1
		udp,         // 2
		mapped,      // 3
		{},
		{Addr: netip.AddrPortFrom(p.B4, 0), Encap: 7},
		rawEP(netip.MustParseAddr("255.255.255.255")),
		rawEP(netip.MustParseAddr("224.0.0.1")),
		rawEP(p.B6), // 8
		rawEP(p.B4), // 9: no headroom
		rawEP(netip.MustParseAddr("fe80::1")),
		rawEP(netip.MustParseAddr("127.0.0.1")),
		rawEP(p.B4), // 12
	}
	pkts := seqPackets(1, slices.Repeat([]int{80}, len(eps))...)
	bufs := bufsOf(pkts)
	nb := bufs[8]
	copy(nb.B[:], pkts[8])
	nb.SetBytes(0, len(pkts[8]))
	err := p.ua.Send(bufs, eps)
	if !errors.Is(err, ErrNoSocket) {
		t.Errorf("Send = %v, want ErrNoSocket", err)
	}
	seqs := func(got []received) []uint32 {
		var s []uint32
		for _, r := range got {
			s = append(s, binary.BigEndian.Uint32(r.p[4:]))
		}
		slices.Sort(s)
		return s
	}
	if s := seqs(recvN(t, p.ub, p.fns[0], 4, 5*time.Second)); !slices.Equal(s, []uint32{1, 3, 9, 12}) {
		t.Errorf("raw IPv4 received %v, want [1 3 9 12]", s)
	}
	if s := seqs(recvN(t, p.ub, p.fns[2], 1, 5*time.Second)); !slices.Equal(s, []uint32{2}) {
		t.Errorf("UDP received %v, want [2]", s)
	}
	if s := seqs(recvN(t, p.ub, p.fns[1], 1, 5*time.Second)); !slices.Equal(s, []uint32{8}) {
		t.Errorf("raw IPv6 received %v, want [8]", s)
	}
	if !bytes.Equal(nb.Bytes(), pkts[8]) || nb.Off() != 0 {
		t.Errorf("the packet without headroom was changed")
	}
	if fast, fb, _ := p.counts(); fb < 5 || fast < 4 {
		t.Errorf("TxPacketSocket %d, fallback %d; want >= 4, >= 5", fast, fb)
	}
}

// BenchmarkRawUnderlayPacketSocket is BenchmarkRawUnderlay over a veth
// pair (AF_PACKET needs an Ethernet link), with the raw socket ("raw") and
// with PacketSocket ("afpacket"), IPv4 and IPv6.
func BenchmarkRawUnderlayPacketSocket(b *testing.B) {
	p := testns.NewVethPair(b)
	p.Settle(b)
	// Permanent neighbours: no packet of the first batch waits for ARP
	// or NDP (the kernel queues only a few).
	for _, dst := range []netip.Addr{p.B4, p.B6} {
		fam := netlink.FAMILY_V4
		if dst.Is6() {
			fam = netlink.FAMILY_V6
		}
		if err := p.A.NL.NeighSet(&netlink.Neigh{LinkIndex: p.LinkA.Attrs().Index, Family: fam,
			State: netlink.NUD_PERMANENT, IP: dst.AsSlice(), HardwareAddr: p.LinkB.Attrs().HardwareAddr}); err != nil {
			b.Fatal(err)
		}
	}
	for _, v6 := range []bool{false, true} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("v6=%v/raw", v6)
			if on {
				name = fmt.Sprintf("v6=%v/afpacket", v6)
			}
			b.Run(name, func(b *testing.B) {
				cfgA := Config{IPv4: p.A4, Mode: ModeRaw, PacketSocket: on}
				cfgB := Config{IPv4: p.B4, Mode: ModeRaw}
				dst := p.B4
				if v6 {
					cfgA = Config{IPv6: p.A6, Mode: ModeRaw, PacketSocket: on}
					cfgB = Config{IPv6: p.B6, Mode: ModeRaw}
					dst = p.B6
				}
				benchUnderlayPair(b, p.A, p.B, cfgA, cfgB, dst)
			})
		}
	}
}
