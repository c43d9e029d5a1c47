package underlay

import (
	"bytes"
	"encoding/binary"
	"github.com/mipsec/mipsec/internal/testns"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// The mobility receive and send paths of the Linux underlay (EncapIP,
// UDP 4191, extension-header sockets, the normalised outer header), in a
// veth pair of namespaces: a sends, b receives.

var testHoA = netip.MustParseAddr("2001:db8:1::100")

// The ReceiveFunc order of an underlay with Mode ModeBoth, IPv4, IPv6,
// DSMIPv6 and ExtHeaders.
const (
	fnRaw4 = iota
	fnRaw6
	fnUDP4
	fnUDP6
	fnDSMIP
	fnDst
	fnRt
)

// mobilityUnderlays opens a (sender, ExtHeaders so that the header-included
// sockets are open) and b (receiver, everything; IPv6 bound to b6 or ::).
func mobilityUnderlays(t *testing.T, p *testns.VethPair, anyV6 bool) (ua, ub *Linux, fns []ReceiveFunc) {
	t.Helper()
	ua, _ = openUnderlay(t, p.A, Config{IPv4: p.A4, IPv6: p.A6, Mode: ModeRaw, ExtHeaders: true})
	b6 := p.B6
	if anyV6 {
		b6 = netip.IPv6Unspecified()
	}
	ub, fns = openUnderlay(t, p.B, Config{IPv4: p.B4, IPv6: b6, DSMIPv6: true, ExtHeaders: true})
	if len(fns) != 7 {
		t.Fatalf("%d ReceiveFuncs, want 7", len(fns))
	}
	return ua, ub, fns
}

// rxPkt is one received packet with the 40 bytes in front of it.
type rxPkt struct {
	front, p []byte
	ep       endpoint.Endpoint
}

// recvOne reads one batch from fn (closing u after a timeout) and returns
// its first packet.
func recvOne(t *testing.T, u *Linux, fn ReceiveFunc) rxPkt {
	t.Helper()
	type res struct {
		r   rxPkt
		err error
	}
	ch := make(chan res, 1)
	go func() {
		bufs := make([]*pkt.Buf, u.BatchSize())
		for i := range bufs {
			bufs[i] = pkt.Get()
		}
		eps := make([]endpoint.Endpoint, len(bufs))
		n, err := fn(bufs, eps)
		if err != nil || n == 0 {
			ch <- res{err: err}
			return
		}
		b := bufs[0]
		ch <- res{r: rxPkt{front: bytes.Clone(b.B[b.Off()-40 : b.Off()]), p: bytes.Clone(b.Bytes()), ep: eps[0]}}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("receive: %v", r.err)
		}
		return r.r
	case <-time.After(5 * time.Second):
		u.Close()
		<-ch
		t.Fatal("receive: timeout")
		return rxPkt{}
	}
}

// ip6Packet builds IPv6(src -> dst) with next header nh and payload.
func ip6Packet(src, dst netip.Addr, nh uint8, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6], p[7] = nh, 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[40:], payload)
	return p
}

// haoPacket is IPv6(src -> dst) / DestOpts(HAO = testHoA) / ESP.
func haoPacket(src, dst netip.Addr, esp []byte) []byte {
	do := make([]byte, header.HAODestOptsLen)
	header.DestOpts(do).EncodeHAO(header.ProtoESP, testHoA)
	return ip6Packet(src, dst, header.ProtoDestOpts, append(do, esp...))
}

// rh2Packet is IPv6(src -> dst) / RH2(testHoA, Segments Left 1) / ESP.
func rh2Packet(src, dst netip.Addr, esp []byte) []byte {
	rh := make([]byte, header.RoutingType2Len)
	header.RoutingType2(rh).Encode(header.ProtoESP, testHoA)
	return ip6Packet(src, dst, header.ProtoRouting, append(rh, esp...))
}

// ip4UDP is IPv4(src -> dst) / UDP(sport -> dport) / payload, checksums set.
func ip4UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	header.IPv4(p).Encode(&header.IPv4Fields{TotalLen: uint16(len(p)), TTL: 64, Protocol: header.ProtoUDP,
		Flags: header.IPv4FlagDF, Src: src, Dst: dst})
	u := header.UDP(p[20:])
	u.SetSrcPort(sport)
	u.SetDstPort(dport)
	u.SetLength(8 + len(payload))
	copy(p[28:], payload)
	u.SetChecksum(header.UDPChecksum(src, dst, u))
	return p
}

// capture is an AF_PACKET socket on the veth of ns, for what arrived on
// the wire.
type capture struct{ fd int }

func newCapture(t *testing.T, ns *testns.NS, ifname string) *capture {
	t.Helper()
	var fd int
	var err error
	ns.Do(t, func() {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return
		}
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return
		}
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("AF_PACKET capture in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.Timeval{Usec: 100_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &capture{fd: fd}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// expect waits up to 5 s for a frame whose L3 packet is want.
func (c *capture) expect(t *testing.T, want []byte) {
	t.Helper()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // timeout: poll again
		}
		if bytes.Equal(buf[:n], want) {
			return
		}
	}
	t.Fatalf("capture: packet not seen on the wire:\n% x", want)
}

// TestUnderlayExtHeaders: a packet with a Home Address option and one with
// a type 2 Routing header, sent header-included (EncapIP) from a, are on
// the wire exactly as built and come out of b's Destination Options and
// Routing sockets as EncapIP with the IPv6 header rebuilt, from (src, 0);
// bound to b's address and bound to :: (destination from IPV6_PKTINFO).
func TestUnderlayExtHeaders(t *testing.T) {
	for _, anyV6 := range []bool{false, true} {
		name := "bound"
		if anyV6 {
			name = "any"
		}
		t.Run(name, func(t *testing.T) {
			p := testns.NewVethPair(t)
			ua, ub, fns := mobilityUnderlays(t, p, anyV6)
			capt := newCapture(t, p.B, "mvb")
			to := endpoint.Endpoint{Addr: netip.AddrPortFrom(p.B6, 0), Encap: endpoint.EncapIP}
			for _, c := range []struct {
				fn   int
				pkt  []byte
				stat func() uint64
			}{
				{fnDst, haoPacket(p.A6, p.B6, fakeESP(0x100, 1, 64)), ub.stats.RxExtHeaders.Load},
				{fnRt, rh2Packet(p.A6, p.B6, fakeESP(0x101, 2, 64)), ub.stats.RxExtHeaders.Load},
			} {
				before := c.stat()
				if err := ua.Send(bufsOf([][]byte{c.pkt}), []endpoint.Endpoint{to}); err != nil {
					t.Fatalf("Send: %v", err)
				}
				capt.expect(t, c.pkt)
				got := recvOne(t, ub, fns[c.fn])
				if !bytes.Equal(got.p, c.pkt) {
					t.Errorf("received\n% x\nwant\n% x", got.p, c.pkt)
				}
				if want := (endpoint.Endpoint{Addr: netip.AddrPortFrom(p.A6, 0), Encap: endpoint.EncapIP}); got.ep != want {
					t.Errorf("from %v, want %v", got.ep, want)
				}
				if c.stat() != before+1 {
					t.Errorf("RxExtHeaders %d, want %d", c.stat(), before+1)
				}
			}
			if n := ua.stats.TxHeaderIncluded.Load(); n != 2 {
				t.Errorf("TxHeaderIncluded = %d, want 2", n)
			}
			// A chain that does not parse (a Destination Options header
			// longer than the packet) is counted, not returned; the HAO
			// packet after it is.
			bad := haoPacket(p.A6, p.B6, fakeESP(0x100, 3, 16))
			bad[41] = 20
			good := haoPacket(p.A6, p.B6, fakeESP(0x100, 4, 16))
			if err := ua.Send(bufsOf([][]byte{bad, good}), []endpoint.Endpoint{to, to}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := recvOne(t, ub, fns[fnDst])
			if !bytes.Equal(got.p, good) {
				t.Errorf("after the bad one: got\n% x\nwant\n% x", got.p, good)
			}
			if n := ub.stats.RxIPMalformed.Load(); n != 1 {
				t.Errorf("RxIPMalformed = %d, want 1", n)
			}
		})
	}
}

// TestUnderlayDSMIPv6: IPv4/UDP 4191 sent header-included from a reaches
// b's 4191 socket and comes out as the inner IPv6 packet from (a4, 4500)
// (and is on the wire as built); a datagram from an ordinary UDP socket
// likewise; garbage is counted; UDP from source port 4191 to b's 4500
// socket is EncapIP too (the MN's BA), with GRO on.
func TestUnderlayDSMIPv6(t *testing.T) {
	p := testns.NewVethPair(t)
	ua, ub, fns := mobilityUnderlays(t, p, false)
	capt := newCapture(t, p.B, "mvb")
	inner := ip6Packet(testHoA, p.B6, header.ProtoESP, fakeESP(0x200, 1, 48))
	wire := ip4UDP(p.A4, p.B4, endpoint.UDPEncapPort, endpoint.DSMIPv6Port, inner)
	if err := ua.Send(bufsOf([][]byte{wire}), []endpoint.Endpoint{{Addr: netip.AddrPortFrom(p.B4, 0), Encap: endpoint.EncapIP}}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	capt.expect(t, wire)
	got := recvOne(t, ub, fns[fnDSMIP])
	if !bytes.Equal(got.p, inner) {
		t.Errorf("received\n% x\nwant\n% x", got.p, inner)
	}
	if want := (endpoint.Endpoint{Addr: netip.AddrPortFrom(p.A4, endpoint.UDPEncapPort), Encap: endpoint.EncapIP}); got.ep != want {
		t.Errorf("from %v, want %v", got.ep, want)
	}

	// Ordinary UDP sockets in a: from port 5555 to 4191, and from 4191
	// to 4500.
	send := func(sport, dport uint16, payload []byte) {
		t.Helper()
		var c *net.UDPConn
		var err error
		p.A.Do(t, func() {
			c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.A4, sport)))
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WriteToUDPAddrPort(payload, netip.AddrPortFrom(p.B4, dport)); err != nil {
			t.Fatal(err)
		}
	}
	// Garbage that is not IPv4/IPv6-shaped: text, a lone 0xFF (a NAT
	// keepalive on the wrong port), zeros, a truncated IPv6 header, a
	// cut packet. Each one is counted in RxIPMalformed.
	for _, g := range [][]byte{[]byte("hello"), []byte("garbage"), {0xff}, {0, 0, 0}, {0x60, 0, 0, 0, 0, 200, 50, 64}, inner[:45]} {
		send(5555, endpoint.DSMIPv6Port, g)
	}
	send(5555, endpoint.DSMIPv6Port, inner)
	got = recvOne(t, ub, fns[fnDSMIP])
	if !bytes.Equal(got.p, inner) || got.ep != (endpoint.Endpoint{Addr: netip.AddrPortFrom(p.A4, 5555), Encap: endpoint.EncapIP}) {
		t.Errorf("got % x from %v", got.p, got.ep)
	}
	if n := ub.stats.RxIPMalformed.Load(); n != 6 {
		t.Errorf("RxIPMalformed = %d, want 6", n)
	}
	var byName uint64
	for _, c := range ub.stats.Counters() {
		if c.Name == "rx_ip_malformed" {
			byName = c.Value
		}
	}
	if byName != 6 {
		t.Errorf("Counters() rx_ip_malformed = %d, want 6", byName)
	}
	if n := ub.stats.RxDSMIPv6.Load(); n != 2 {
		t.Errorf("RxDSMIPv6 = %d, want 2", n)
	}
	send(endpoint.DSMIPv6Port, endpoint.UDPEncapPort, inner)
	got = recvOne(t, ub, fns[fnUDP4])
	if !bytes.Equal(got.p, inner) || got.ep != (endpoint.Endpoint{Addr: netip.AddrPortFrom(p.A4, endpoint.DSMIPv6Port), Encap: endpoint.EncapIP}) {
		t.Errorf("4191 -> 4500: got % x from %v", got.p, got.ep)
	}
	if _, gro := ub.Offloads(false); !gro {
		t.Log("GRO is off on this kernel: the GRO path was not exercised")
	}
	// The same without GRO (the recvmmsg path).
	uc, fc := openUnderlay(t, p.B, Config{IPv4: p.B4, Mode: ModeUDP, UDPPort: 4600, DisableGRO: true})
	send(endpoint.DSMIPv6Port, 4600, inner)
	got = recvOne(t, uc, fc[0])
	if !bytes.Equal(got.p, inner) || got.ep != (endpoint.Endpoint{Addr: netip.AddrPortFrom(p.A4, endpoint.DSMIPv6Port), Encap: endpoint.EncapIP}) {
		t.Errorf("4191 -> 4600 without GRO: got % x from %v", got.p, got.ep)
	}
	send(endpoint.DSMIPv6Port, 4600, []byte{0x45, 1, 2})
	send(endpoint.DSMIPv6Port, 4600, inner)
	recvOne(t, uc, fc[0])
	if n := uc.stats.RxIPMalformed.Load(); n != 1 {
		t.Errorf("4600 socket: RxIPMalformed = %d, want 1", n)
	}
}

// TestUnderlayRawOuterHeader: raw ESP comes with the normalised outer
// header in front (IPv4 20 bytes; IPv6 40 bytes, destination from the
// bound address or IPV6_PKTINFO), which transport mode needs.
func TestUnderlayRawOuterHeader(t *testing.T) {
	for _, anyV6 := range []bool{false, true} {
		p := testns.NewVethPair(t)
		ua, ub, fns := mobilityUnderlays(t, p, anyV6)
		esp := fakeESP(0x300, 7, 60)
		if err := ua.Send(bufsOf([][]byte{esp, esp}), []endpoint.Endpoint{
			{Addr: netip.AddrPortFrom(p.B4, 0)}, {Addr: netip.AddrPortFrom(p.B6, 0)},
		}); err != nil {
			t.Fatal(err)
		}
		got := recvOne(t, ub, fns[fnRaw4])
		h4 := header.IPv4(got.front[20:])
		if !bytes.Equal(got.p, esp) || h4[0] != 0x45 || h4.Protocol() != header.ProtoESP ||
			h4.Src() != p.A4 || h4.Dst() != p.B4 || h4.TotalLen() != 20+len(esp) || !h4.IsChecksumValid() {
			t.Errorf("IPv4: header % x, packet % x", got.front[20:], got.p)
		}
		got = recvOne(t, ub, fns[fnRaw6])
		want := ip6Packet(p.A6, p.B6, header.ProtoESP, nil)
		binary.BigEndian.PutUint16(want[4:], uint16(len(esp)))
		if !bytes.Equal(got.p, esp) || !bytes.Equal(got.front, want) {
			t.Errorf("IPv6 (any=%v): header\n% x\nwant\n% x", anyV6, got.front, want)
		}
	}
}

// TestUnderlayNormalise4: a raw IPv4 header with options becomes 20 bytes
// in front of ESP, with its length and checksum fixed.
func TestUnderlayNormalise4(t *testing.T) {
	esp := fakeESP(9, 3, 40)
	b := pkt.Get()
	defer pkt.Put(b)
	hdr := make([]byte, 24)
	header.IPv4(hdr).Encode(&header.IPv4Fields{TotalLen: uint16(24 + len(esp)), TTL: 9, Protocol: header.ProtoESP,
		Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), Options: []byte{1, 1, 1, 0}})
	b.Set(append(hdr, esp...))
	var c rxCounts
	off, n, ok := classify(sockRaw4, b.Bytes(), &c)
	if !ok || off != 24 {
		t.Fatal(off, n, ok)
	}
	b.SetBytes(b.Off()+off, n)
	normalise4(b, off)
	h := header.IPv4(b.B[b.Off()-20 : b.Off()])
	if h[0] != 0x45 || h.TTL() != 9 || h.TotalLen() != 20+len(esp) || !h.IsChecksumValid() ||
		h.Src() != netip.MustParseAddr("192.0.2.1") || !bytes.Equal(b.Bytes(), esp) {
		t.Errorf("normalised % x", h)
	}
}

// TestUnderlayHeaderIncludedLazy: an underlay opened without DSMIPv6 or
// ExtHeaders opens the header-included sockets at the first EncapIP Send.
func TestUnderlayHeaderIncludedLazy(t *testing.T) {
	p := testns.NewVethPair(t)
	ua, _ := openUnderlay(t, p.A, Config{IPv4: p.A4, IPv6: p.A6, Mode: ModeUDP})
	capt := newCapture(t, p.B, "mvb")
	if ua.set.Load().s[sockHdr6] != nil {
		t.Fatal("header-included socket open before use")
	}
	pk := haoPacket(p.A6, p.B6, fakeESP(0x400, 1, 32))
	// The lazy open happens in the calling goroutine's network namespace,
	// as Open does: call Send inside a.
	var err error
	p.A.Do(t, func() {
		err = ua.Send(bufsOf([][]byte{pk}), []endpoint.Endpoint{{Addr: netip.AddrPortFrom(p.B6, 0), Encap: endpoint.EncapIP}})
	})
	if err != nil {
		t.Fatal(err)
	}
	capt.expect(t, pk)
	if ua.set.Load().s[sockHdr6] == nil || ua.set.Load().s[sockHdr4] == nil {
		t.Error("header-included sockets not kept open")
	}
}

func TestNewMobilityConfig(t *testing.T) {
	if _, err := New(Config{IPv6: netip.IPv6Loopback(), DSMIPv6: true}); err == nil {
		t.Error("DSMIPv6 without IPv4 accepted")
	}
	if _, err := New(Config{IPv4: netip.MustParseAddr("127.0.0.1"), ExtHeaders: true}); err == nil {
		t.Error("ExtHeaders without IPv6 accepted")
	}
}

// TestPktinfoDst parses IPV6_PKTINFO control data, and refuses broken
// control data without panicking.
func TestPktinfoDst(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::2")
	oob := make([]byte, pktinfoControlSize+unix.CmsgSpace(4))
	// A first, unrelated cmsg, then IPV6_PKTINFO.
	h := (*unix.Cmsghdr)(unsafePointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
	h.SetLen(unix.CmsgLen(4))
	o2 := oob[unix.CmsgSpace(4):]
	h2 := (*unix.Cmsghdr)(unsafePointer(&o2[0]))
	h2.Level, h2.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h2.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	a16 := a.As16()
	copy(o2[unix.CmsgLen(0):], a16[:])
	if got := pktinfoDst(oob); got != a {
		t.Errorf("got %v, want %v", got, a)
	}
	for _, bad := range [][]byte{nil, oob[:8], oob[:unix.SizeofCmsghdr+2]} {
		if got := pktinfoDst(bad); got.IsValid() {
			t.Errorf("broken control data gave %v", got)
		}
	}
	broken := bytes.Clone(oob)
	(*unix.Cmsghdr)(unsafePointer(&broken[0])).SetLen(1000)
	if got := pktinfoDst(broken); got.IsValid() {
		t.Errorf("overlong cmsg gave %v", got)
	}
}

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
