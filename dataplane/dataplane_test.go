package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

func TestTunnelBothWays(t *testing.T) {
	for _, alg := range []esp.Algorithm{esp.AES128GCM16, esp.ChaCha20Poly1305} {
		t.Run(alg.String(), func(t *testing.T) {
			a, b := newPair(t, pairOpts{alg: alg})
			const n = 50
			var sentBytes uint64
			for _, tc := range []struct {
				name     string
				from, to *gateway
				src, dst netip.Addr
			}{
				{"v4 A->B", a, b, hostA4, hostB4},
				{"v4 B->A", b, a, hostB4, hostA4},
				{"v6 A->B", a, b, hostA6, hostB6},
				{"v6 B->A", b, a, hostB6, hostA6},
			} {
				for i := range n {
					p := udpPacket(tc.src, tc.dst, uint64(i), 64+i*20)
					if tc.from == a {
						sentBytes += uint64(len(p))
					}
					tc.from.tun.Outbound <- p
					got := recv(t, tc.to.tun.Inbound)
					if !bytes.Equal(got, p) {
						t.Fatalf("%s: packet %d: got\n% x\nwant\n% x", tc.name, i, got, p)
					}
				}
			}
			// The writers count after Send and Write return, which may be
			// after the packet arrived.
			waitFor(t, "counters", func() bool {
				return a.d.Stats().SentPackets == 2*n && b.d.Stats().SentPackets == 2*n &&
					a.d.Stats().DeliveredPackets == 2*n && b.d.Stats().DeliveredPackets == 2*n
			})
			sa, sb := a.d.Stats(), b.d.Stats()
			if sa.OutPackets != 2*n || sa.SentPackets != 2*n || sa.OutBytes != sentBytes {
				t.Errorf("A out: %+v, want %d packets, %d bytes", sa, 2*n, sentBytes)
			}
			if sb.InPackets != 2*n || sb.DeliveredPackets != 2*n || sb.DeliveredBytes != sentBytes {
				t.Errorf("B in: %+v, want %d packets, %d bytes", sb, 2*n, sentBytes)
			}
			if sa.SentBytes != sb.InBytes {
				t.Errorf("A sent %d ESP bytes, B received %d", sa.SentBytes, sb.InBytes)
			}
			for _, s := range []dataplane.Stats{sa, sb} {
				if s.Dropped() != 0 {
					t.Errorf("drops: %v", s.Drops)
				}
			}
			for _, spi := range []uint32{spiAB4, spiAB6} {
				if st := a.sad.Outbound(spi).Stats(); st.Packets != n {
					t.Errorf("SA %#x sealed %d, want %d", spi, st.Packets, n)
				}
				if st := b.sad.Inbound(spi).Stats(); st.Packets != n {
					t.Errorf("SA %#x opened %d, want %d", spi, st.Packets, n)
				}
			}
		})
	}
}

// TestOrderParallel pushes packets of two SAs through many workers and
// batches and checks that each SA's packets arrive complete and in order,
// with no replay drops (the in-flight bound keeps the skew in the window).
func TestOrderParallel(t *testing.T) {
	for _, batch := range []int{1, 16} {
		t.Run("batch"+itoa(batch), func(t *testing.T) {
			a, b := newPair(t, pairOpts{workers: 8, tunBatch: batch})
			const n = 3000
			go func() {
				for i := range n {
					a.tun.Outbound <- udpPacket(hostA4, hostB4, uint64(i), 100)
					a.tun.Outbound <- udpPacket(hostA6, hostB6, uint64(i), 100)
				}
			}()
			var seqs familySeqs
			for range 2 * n {
				seqs.check(t, recv(t, b.tun.Inbound))
			}
			waitFor(t, "counters", func() bool { return b.d.Stats().DeliveredPackets == 2*n })
			if s := b.d.Stats(); s.Dropped() != 0 {
				t.Errorf("B: delivered %d, drops %v", s.DeliveredPackets, s.Drops)
			}
		})
	}
}

func itoa(i int) string {
	return string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

func TestPolicyDrops(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	for _, tc := range []struct {
		name string
		p    []byte
		want dataplane.DropReason
	}{
		{"discard", udpPacket(hostA4, other4, 1, 64), dataplane.DropPolicyDiscard},
		{"bypass", udpPacket(hostA4, bypass4, 1, 64), dataplane.DropPolicyBypass},
		{"not ip", []byte{0x00, 1, 2, 3, 4, 5, 6, 7}, dataplane.DropNotIP},
		{"truncated", udpPacket(hostA4, hostB4, 1, 64)[:10], dataplane.DropNotIP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.d.Stats()
			a.tun.Outbound <- tc.p
			waitFor(t, tc.want.String(), func() bool { return a.d.Stats().Drops[tc.want] == before.Drops[tc.want]+1 })
			expectNone(t, b.tun.Inbound)
			after := a.d.Stats()
			if after.SentPackets != before.SentPackets || after.Dropped() != before.Dropped()+1 {
				t.Errorf("stats before %+v after %+v", before, after)
			}
		})
	}
}

// esp4 seals a packet from A to B by hand with A's SA and returns the ESP
// part (what the underlay carries).
func sealByHand(t *testing.T, sa *sad.SA, p []byte) []byte {
	t.Helper()
	buf := pkt.Get()
	defer pkt.Put(buf)
	buf.Set(p)
	if v := sa.Seal(buf); v != esp.OK {
		t.Fatal(v)
	}
	_, off, ok := esp.Locate(buf.Bytes())
	if !ok {
		t.Fatal("no ESP")
	}
	return bytes.Clone(buf.Bytes()[off:])
}

func TestInboundDrops(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	a.ul.Record(true)
	// One good packet first, so that the SA is in use.
	good := udpPacket(hostA4, hostB4, 1, 200)
	a.tun.Outbound <- good
	recv(t, b.tun.Inbound)
	wire := a.ul.Sent()[0]

	// tampered seals a fresh packet (a sequence number B has not seen)
	// and flips one bit at off (negative: from the end).
	tampered := func(off int) []byte {
		p := sealByHand(t, a.sad.Outbound(spiAB4), udpPacket(hostA4, hostB4, 9, 200))
		if off < 0 {
			off += len(p)
		}
		p[off] ^= 0x01
		return p
	}
	unknown := bytes.Clone(wire.Data)
	header.ESP(unknown).SetSPI(0xdead)
	for _, tc := range []struct {
		name   string
		data   []byte
		reason dataplane.DropReason
		verd   esp.Verdict // counted in the SA too, when not OK
	}{
		{"short", []byte{1, 2, 3}, dataplane.DropShort, esp.OK},
		{"unknown spi", unknown, dataplane.DropUnknownSPI, esp.OK},
		{"replay", wire.Data, dataplane.DropOpen, esp.DropReplay},
		{"tampered payload", tampered(100), dataplane.DropOpen, esp.DropICV},
		{"tampered icv", tampered(-1), dataplane.DropOpen, esp.DropICV},
		{"tampered seq", tampered(6), dataplane.DropOpen, esp.DropICV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.d.Stats()
			var saBefore sad.Stats
			if tc.verd != esp.OK {
				saBefore = b.sad.Inbound(spiAB4).Stats()
			}
			if err := b.ul.Inject(underlaytest.Msg{Data: tc.data, Src: epA}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, tc.reason.String(), func() bool { return b.d.Stats().Drops[tc.reason] == before.Drops[tc.reason]+1 })
			expectNone(t, b.tun.Inbound)
			if tc.verd != esp.OK {
				if got := b.sad.Inbound(spiAB4).Stats().Drops[tc.verd]; got != saBefore.Drops[tc.verd]+1 {
					t.Errorf("SA %v drops %d, want %d", tc.verd, got, saBefore.Drops[tc.verd]+1)
				}
			}
			if s := b.d.Stats(); s.DeliveredPackets != before.DeliveredPackets {
				t.Errorf("delivered changed: %d -> %d", before.DeliveredPackets, s.DeliveredPackets)
			}
		})
	}
}

// TestTamperedInFlight tampers with every packet on the wire: nothing is
// delivered.
func TestTamperedInFlight(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	a.ul.SetFilter(func(m underlaytest.Msg) []underlaytest.Msg {
		m.Data[len(m.Data)-20] ^= 0x80
		return []underlaytest.Msg{m}
	})
	const n = 20
	for i := range n {
		a.tun.Outbound <- udpPacket(hostA6, hostB6, uint64(i), 300)
	}
	waitFor(t, "ICV drops", func() bool { return b.d.Stats().Drops[dataplane.DropOpen] == n })
	expectNone(t, b.tun.Inbound)
	if got := b.sad.Inbound(spiAB6).Stats().Drops[esp.DropICV]; got != n {
		t.Errorf("ICV drops %d, want %d", got, n)
	}
}

// TestDuplicated duplicates every packet on the wire: each is delivered
// once, the copies are replays.
func TestDuplicated(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	a.ul.SetFilter(func(m underlaytest.Msg) []underlaytest.Msg {
		c := m
		c.Data = bytes.Clone(m.Data)
		return []underlaytest.Msg{m, c}
	})
	const n = 20
	for i := range n {
		a.tun.Outbound <- udpPacket(hostA4, hostB4, uint64(i), 100)
		if got := payloadSeq(recv(t, b.tun.Inbound)); got != uint64(i) {
			t.Fatalf("got %d, want %d", got, i)
		}
	}
	waitFor(t, "replay drops", func() bool { return b.d.Stats().Drops[dataplane.DropOpen] == n })
	expectNone(t, b.tun.Inbound)
}

func TestTransportModeDropped(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	_ = a
	// An inbound transport-mode SA on B.
	p := esp.Params{SPI: 0x7777, Algorithm: esp.AES128GCM16, EncKey: key(esp.AES128GCM16, 7), Mode: esp.Transport}
	if _, err := b.sad.Add(sad.Config{Dir: sad.Inbound, Params: p, Selectors: []sad.Selector{{}}}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	header.ESP(data).SetSPI(0x7777)
	header.ESP(data).SetSeq(1)
	if err := b.ul.Inject(underlaytest.Msg{Data: data, Src: epA}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "transport drop", func() bool { return b.d.Stats().Drops[dataplane.DropTransportMode] == 1 })
}

func TestHooks(t *testing.T) {
	var sealed, looked int
	dropNext := false
	a, b := newPair(t, pairOpts{
		hooksA: dataplane.Hooks{AfterSeal: func(buf *pkt.Buf, sa *sad.SA, ep *endpoint.Endpoint) bool {
			sealed++
			if sa.SPI() != spiAB4 || *ep != epB {
				t.Errorf("AfterSeal: spi %#x ep %v", sa.SPI(), *ep)
			}
			if buf.Bytes()[0]>>4 != 4 || buf.Bytes()[9] != 50 {
				t.Errorf("AfterSeal: no IPv4/ESP outer header: % x", buf.Bytes()[:20])
			}
			return true
		}},
		hooksB: dataplane.Hooks{BeforeLookup: func(buf *pkt.Buf, ep endpoint.Endpoint) bool {
			looked++
			if header.ESP(buf.Bytes()).SPI() != spiAB4 || ep != epA {
				t.Errorf("BeforeLookup: % x from %v", buf.Bytes()[:8], ep)
			}
			if dropNext {
				return false
			}
			return true
		}},
	})
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 1, 100)
	recv(t, b.tun.Inbound)
	dropNext = true // the hooks run on workers, but one packet at a time here
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 2, 100)
	waitFor(t, "hook drop", func() bool { return b.d.Stats().Drops[dataplane.DropBeforeLookupHook] == 1 })
	expectNone(t, b.tun.Inbound)
	if sealed != 2 || looked != 2 {
		t.Errorf("hooks ran %d, %d times; want 2, 2", sealed, looked)
	}
}

func TestNewErrors(t *testing.T) {
	tn := tuntest.New(1, 1)
	ua, _ := underlaytest.NewPair(epA, epB)
	sadb := sad.New(sad.Options{})
	defer sadb.Close()
	good := dataplane.Config{TUN: tn, Underlay: ua, SAD: sadb, SPD: nil}
	for _, tc := range []struct {
		name string
		mod  func(c *dataplane.Config)
	}{
		{"no spd", func(c *dataplane.Config) {}},
		{"no tun", func(c *dataplane.Config) { c.TUN = nil }},
		{"bad endpoint", func(c *dataplane.Config) {
			c.Peers = []dataplane.PeerConfig{{Name: "x", Endpoint: endpoint.Endpoint{Addr: netip.MustParseAddrPort("1.2.3.4:0"), Encap: endpoint.EncapUDP}}}
		}},
		{"duplicate name", func(c *dataplane.Config) {
			c.Peers = []dataplane.PeerConfig{{Name: "x", Endpoint: epA}, {Name: "x", Endpoint: epB}}
		}},
		{"duplicate spi", func(c *dataplane.Config) {
			c.Peers = []dataplane.PeerConfig{{Name: "x", Endpoint: epA, OutSPIs: []uint32{1}}, {Name: "y", Endpoint: epB, OutSPIs: []uint32{1}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			if _, err := dataplane.New(c); !errors.Is(err, dataplane.ErrInvalidConfig) {
				t.Errorf("err = %v, want ErrInvalidConfig", err)
			} else {
				t.Log(err)
			}
		})
	}
}

func TestCloseIdempotentAndStartTwice(t *testing.T) {
	a, _ := newPair(t, pairOpts{})
	if err := a.d.Start(); !errors.Is(err, dataplane.ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	if err := a.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Start(); !errors.Is(err, dataplane.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}

// TestCloseUnderLoad closes both gateways while packets flow.
func TestCloseUnderLoad(t *testing.T) {
	a, b := newPair(t, pairOpts{workers: 4, tunBatch: 8})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case a.tun.Outbound <- udpPacket(hostA4, hostB4, uint64(i), 500):
			case <-stop:
				return
			}
		}
	}()
	go func() {
		for range b.tun.Inbound {
		}
	}()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	<-done
	a.d.Close()
	b.d.Close()
	close(b.tun.Inbound)
	s := a.d.Stats()
	if s.OutPackets != s.SentPackets+s.Dropped() {
		t.Errorf("A: out %d != sent %d + dropped %d", s.OutPackets, s.SentPackets, s.Dropped())
	}
	s = b.d.Stats()
	if s.InPackets != s.DeliveredPackets+s.Dropped() {
		t.Errorf("B: in %d != delivered %d + dropped %d (%v)", s.InPackets, s.DeliveredPackets, s.Dropped(), s.Drops)
	}
}

func TestKeepalive(t *testing.T) {
	a, b := newPair(t, pairOpts{keepaliveA: 20 * time.Millisecond})
	waitFor(t, "3 keepalives", func() bool { return len(a.ul.Keepalives()) >= 3 })
	for _, ep := range a.ul.Keepalives() {
		if ep != epB {
			t.Errorf("keepalive to %v, want %v", ep, epB)
		}
	}
	if got := a.d.Peers()[0].KeepalivesSent; got < 3 {
		t.Errorf("KeepalivesSent = %d", got)
	}
	if n := len(b.ul.Keepalives()); n != 0 {
		t.Errorf("B (keepalive off) sent %d", n)
	}
	// While traffic flows to B, no keepalive is needed (RFC 3948 §4).
	stop := make(chan struct{})
	flowing := make(chan struct{})
	go func() {
		defer close(flowing)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				a.tun.Outbound <- udpPacket(hostA4, hostB4, uint64(i), 64)
			}
		}
	}()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-b.tun.Inbound:
			case <-flowing:
				return
			}
		}
	}()
	time.Sleep(40 * time.Millisecond) // the interval in which the last one may still go out
	before := len(a.ul.Keepalives())
	time.Sleep(200 * time.Millisecond)
	during := len(a.ul.Keepalives()) - before
	close(stop)
	<-flowing
	<-drained
	if during > 3 { // unsuppressed: about 10
		t.Errorf("%d keepalives in 200 ms of traffic", during)
	}
}

func TestCapture(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	ca, cb := &countCapture{}, &countCapture{}
	a.d.SetCapture(ca)
	b.d.SetCapture(cb)
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 1, 100)
	recv(t, b.tun.Inbound)
	a.d.SetCapture(nil)
	b.d.SetCapture(nil)
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 2, 100)
	recv(t, b.tun.Inbound)
	if ca.inner[1] != 1 || ca.outer[1] != 1 || cb.inner[0] != 1 || cb.outer[0] != 1 {
		t.Errorf("A %+v B %+v", ca, cb)
	}
}

type countCapture struct{ inner, outer [2]int }

func (c *countCapture) Inner(p []byte, out bool) { c.inner[b2i(out)]++ }
func (c *countCapture) Outer(p []byte, ep endpoint.Endpoint, out bool) {
	c.outer[b2i(out)]++
}
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAfterSealRewritesEndpoint: the hook's *ep is where the packet goes.
func TestAfterSealRewritesEndpoint(t *testing.T) {
	a, b := newPair(t, pairOpts{hooksA: dataplane.Hooks{AfterSeal: func(buf *pkt.Buf, sa *sad.SA, ep *endpoint.Endpoint) bool {
		*ep = epA3
		return true
	}}})
	a.ul.Record(true)
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 1, 100)
	waitFor(t, "send", func() bool { return len(a.ul.Sent()) == 1 })
	if got := a.ul.Sent()[0].Dst; got != epA3 {
		t.Errorf("sent to %v, want %v", got, epA3)
	}
	expectNone(t, b.tun.Inbound)
	if b.ul.Misrouted() != 1 {
		t.Errorf("misrouted %d", b.ul.Misrouted())
	}
}

// TestNoPeerFallback: an SA no peer claims goes as raw ESP to its tunnel
// destination.
func TestNoPeerFallback(t *testing.T) {
	a, _ := newPair(t, pairOpts{})
	if err := a.d.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	a.ul.Record(true)
	a.tun.Outbound <- udpPacket(hostA6, hostB6, 1, 100)
	waitFor(t, "send", func() bool { return len(a.ul.Sent()) == 1 })
	want := endpoint.Endpoint{Addr: netip.AddrPortFrom(gwB6, 0), Encap: endpoint.EncapRaw}
	m := a.ul.Sent()[0]
	if m.Dst != want {
		t.Errorf("sent to %v, want %v", m.Dst, want)
	}
	if spi := header.ESP(m.Data).SPI(); spi != spiAB6 {
		t.Errorf("sent SPI %#x: the outer header was not cut off?", spi)
	}
}

func TestCloseBeforeStart(t *testing.T) {
	leakCheck(t)
	tn := tuntest.New(1, 1)
	ua, _ := underlaytest.NewPair(epA, epB)
	sadb := sad.New(sad.Options{})
	defer sadb.Close()
	d, err := dataplane.New(dataplane.Config{TUN: tn, Underlay: ua, SAD: sadb, SPD: spd.New(sadb)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.Read([][]byte{make([]byte, 10)}, []int{0}, 0); err == nil {
		t.Error("TUN not closed")
	}
	if err := ua.SendKeepalive(epB); err == nil {
		t.Error("underlay not closed")
	}
}

// TestSeqOrderOnWire: batches sealed concurrently by many workers still put
// each SA's packets on the wire with increasing ESP sequence numbers (they
// are reserved in read order), so a peer with a small anti-replay window
// (32 in Linux and strongSwan) sees no reordering. Before the reservation,
// a batch read first but sealed last carried numbers hundreds above the
// batches that followed it on the wire.
func TestSeqOrderOnWire(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8)) // more workers than cores: preempted sealers
	a, b := newPair(t, pairOpts{workers: 8, tunBatch: 16})
	a.ul.Record(true)
	const n = 3200 // n + n/4 fit the TUN channel (4096): nothing blocks
	go func() {
		for i := range n {
			a.tun.Outbound <- udpPacket(hostA4, hostB4, uint64(i), 1200)
			if i%4 == 0 {
				a.tun.Outbound <- udpPacket(hostA6, hostB6, uint64(i/4), 200)
			}
		}
	}()
	waitFor(t, "A's packets on the wire", func() bool { return len(a.ul.Sent()) == n+n/4 })
	last := map[uint32]uint32{}
	for i, m := range a.ul.Sent() {
		spi, seq := binary.BigEndian.Uint32(m.Data), binary.BigEndian.Uint32(m.Data[4:])
		if seq <= last[spi] {
			t.Fatalf("packet %d on the wire: SPI %#x seq %d after seq %d", i, spi, seq, last[spi])
		}
		last[spi] = seq
	}
	for range n + n/4 {
		recv(t, b.tun.Inbound)
	}
	if s := b.d.Stats(); s.Dropped() != 0 {
		t.Errorf("B drops %v", s.Drops)
	}
}
