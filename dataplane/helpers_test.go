package dataplane_test

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// The test topology: gateway A protects siteA4/siteA6, gateway B siteB4/
// siteB6. Each direction has an SA with an IPv4 outer header (IPv4 inner)
// and one with an IPv6 outer header (IPv6 inner).
var (
	gwA4   = netip.MustParseAddr("198.51.100.1")
	gwB4   = netip.MustParseAddr("203.0.113.1")
	gwA6   = netip.MustParseAddr("2001:db8:a::1")
	gwB6   = netip.MustParseAddr("2001:db8:b::1")
	hostA4 = netip.MustParseAddr("10.1.0.1")
	hostB4 = netip.MustParseAddr("10.2.0.1")
	hostA6 = netip.MustParseAddr("fd00:a::1")
	hostB6 = netip.MustParseAddr("fd00:b::1")
	siteA4 = netip.MustParsePrefix("10.1.0.0/16")
	siteB4 = netip.MustParsePrefix("10.2.0.0/16")
	siteA6 = netip.MustParsePrefix("fd00:a::/64")
	siteB6 = netip.MustParsePrefix("fd00:b::/64")
	// other is outside every site: the SPD discards it.
	other4 = netip.MustParseAddr("10.9.0.1")
	// bypass4 hits a BYPASS policy.
	bypass4 = netip.MustParseAddr("10.8.0.1")

	epA  = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.1:4500"), Encap: endpoint.EncapUDP}
	epB  = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.2:4500"), Encap: endpoint.EncapUDP}
	epA2 = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.99:31000"), Encap: endpoint.EncapUDP}
	epA3 = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.77:32000"), Encap: endpoint.EncapUDP}
)

// SPIs: spiAB4 is A->B with an IPv4 outer header, and so on.
const (
	spiAB4 = 0xa004
	spiAB6 = 0xa006
	spiBA4 = 0xb004
	spiBA6 = 0xb006
)

type pairOpts struct {
	alg          esp.Algorithm
	workers      int
	tunBatch     int
	roamingB     bool          // B follows A's endpoint
	roamInterval time.Duration // B's peer A
	keepaliveA   time.Duration // A's keepalive to B
	hooksA       dataplane.Hooks
	hooksB       dataplane.Hooks
	noReplay     bool
	// logA and logB replace the test loggers (zaptest/observer);
	// dropLogInterval is both sides' Config.DropLogInterval.
	logA, logB      *zap.Logger
	dropLogInterval time.Duration
	// remotesA, udpPortA: A's Config.UnderlayRemotes and UDPPort.
	remotesA []netip.Addr
	udpPortA uint16
}

type gateway struct {
	d   *dataplane.Dataplane
	tun *tuntest.TUN
	ul  *underlaytest.Underlay
	sad *sad.DB
	spd *spd.DB
}

func key(alg esp.Algorithm, seed byte) []byte {
	k := make([]byte, alg.EncKeyLen())
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// saParams returns the params of one direction's SA.
func saParams(o pairOpts, spi uint32, src, dst netip.Addr) esp.Params {
	return esp.Params{
		SPI: spi, Algorithm: o.alg, EncKey: key(o.alg, byte(spi)),
		Mode: esp.Tunnel, TunnelSrc: src, TunnelDst: dst, NoReplay: o.noReplay,
	}
}

// newDBs builds the SAD and SPD of one gateway. local/remote sites and the
// SPIs are from its point of view.
func newDBs(t testing.TB, o pairOpts, out4, out6, in4, in6 uint32, me4, me6, peer4, peer6 netip.Addr, l4, l6, r4, r6 netip.Prefix) (*sad.DB, *spd.DB) {
	t.Helper()
	sadb := sad.New(sad.Options{})
	t.Cleanup(sadb.Close)
	sel4 := sad.Selector{Local: sad.PrefixRange(l4), Remote: sad.PrefixRange(r4)}
	sel6 := sad.Selector{Local: sad.PrefixRange(l6), Remote: sad.PrefixRange(r6)}
	in := func(s sad.Selector) sad.Selector { return s } // inbound SAs use the same local/remote view
	for _, c := range []sad.Config{
		{Dir: sad.Outbound, Params: saParams(o, out4, me4, peer4), Selectors: []sad.Selector{sel4}},
		{Dir: sad.Outbound, Params: saParams(o, out6, me6, peer6), Selectors: []sad.Selector{sel6}},
		{Dir: sad.Inbound, Params: saParams(o, in4, peer4, me4), Selectors: []sad.Selector{in(sel4)}},
		{Dir: sad.Inbound, Params: saParams(o, in6, peer6, me6), Selectors: []sad.Selector{in(sel6)}},
	} {
		if _, err := sadb.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	spdb := spd.New(sadb)
	if err := spdb.Replace([]spd.Policy{
		{Name: "bypass", Dir: sad.Outbound, Action: spd.Bypass, Selectors: []sad.Selector{{Remote: sad.SingleAddr(bypass4)}}},
		{Name: "v4", Dir: sad.Outbound, Action: spd.Protect, SPI: out4, Selectors: []sad.Selector{sel4}},
		{Name: "v6", Dir: sad.Outbound, Action: spd.Protect, SPI: out6, Selectors: []sad.Selector{sel6}},
		{Name: "discard", Dir: sad.Outbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
		// The inbound half of SPD-S (RFC 4301 §4.4.1), as a config has
		// it: the dataplane counts the ESP it delivers against it.
		{Name: "in-v4", Dir: sad.Inbound, Action: spd.Protect, Selectors: []sad.Selector{in(sel4)}},
		{Name: "in-v6", Dir: sad.Inbound, Action: spd.Protect, Selectors: []sad.Selector{in(sel6)}},
		{Name: "in-discard", Dir: sad.Inbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
	}); err != nil {
		t.Fatal(err)
	}
	return sadb, spdb
}

// newPair builds two gateways back to back over underlaytest, started.
// Cleanup closes them and checks for goroutine leaks.
func newPair(t testing.TB, o pairOpts) (a, b *gateway) {
	t.Helper()
	if o.alg == 0 {
		o.alg = esp.AES128GCM16
	}
	leakCheck(t)
	ua, ub := underlaytest.NewPair(epA, epB)
	a = &gateway{tun: tuntest.New(o.tunBatch, 4096), ul: ua}
	b = &gateway{tun: tuntest.New(o.tunBatch, 4096), ul: ub}
	a.sad, a.spd = newDBs(t, o, spiAB4, spiAB6, spiBA4, spiBA6, gwA4, gwA6, gwB4, gwB6, siteA4, siteA6, siteB4, siteB6)
	b.sad, b.spd = newDBs(t, o, spiBA4, spiBA6, spiAB4, spiAB6, gwB4, gwB6, gwA4, gwA6, siteB4, siteB6, siteA4, siteA6)
	logA, logB := o.logA, o.logB
	if logA == nil {
		logA = zaptest.NewLogger(t).Named("A")
	}
	if logB == nil {
		logB = zaptest.NewLogger(t).Named("B")
	}
	var err error
	a.d, err = dataplane.New(dataplane.Config{
		TUN: a.tun, Underlay: ua, SAD: a.sad, SPD: a.spd, Workers: o.workers, Hooks: o.hooksA,
		Logger: logA, DropLogInterval: o.dropLogInterval, UnderlayRemotes: o.remotesA, UDPPort: o.udpPortA,
		Peers: []dataplane.PeerConfig{{
			Name: "B", Endpoint: epB, OutSPIs: []uint32{spiAB4, spiAB6}, InSPIs: []uint32{spiBA4, spiBA6},
			Keepalive: o.keepaliveA,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.d, err = dataplane.New(dataplane.Config{
		TUN: b.tun, Underlay: ub, SAD: b.sad, SPD: b.spd, Workers: o.workers, Hooks: o.hooksB,
		Logger: logB, DropLogInterval: o.dropLogInterval,
		Peers: []dataplane.PeerConfig{{
			Name: "A", Endpoint: epA, OutSPIs: []uint32{spiBA4, spiBA6}, InSPIs: []uint32{spiAB4, spiAB6},
			Roaming: o.roamingB, RoamInterval: o.roamInterval, Keepalive: -1,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*gateway{a, b} {
		if err := g.d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := g.d.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	return a, b
}

// leakCheck fails the test when goroutines started during it are still
// running a moment after its cleanups (wireguard-go goroutineLeakCheck).
func leakCheck(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// udpPacket builds an IPv4 or IPv6 UDP packet (UDP checksum 0 for IPv4,
// left 0 for IPv6 too: nothing here checks it) with an 8-byte sequence
// number at the start of the payload, padded to size bytes in all.
func udpPacket(src, dst netip.Addr, seq uint64, size int) []byte {
	hl := 20
	if src.Is6() {
		hl = 40
	}
	size = max(size, hl+8+8)
	p := make([]byte, size)
	if src.Is4() {
		p[0], p[8], p[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(p[2:], uint16(size))
		s, d := src.As4(), dst.As4()
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(p[i:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	} else {
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(size-40))
		p[6], p[7] = 17, 64
		s, d := src.As16(), dst.As16()
		copy(p[8:], s[:])
		copy(p[24:], d[:])
	}
	binary.BigEndian.PutUint16(p[hl:], 5000)
	binary.BigEndian.PutUint16(p[hl+2:], 5001)
	binary.BigEndian.PutUint16(p[hl+4:], uint16(size-hl))
	binary.BigEndian.PutUint64(p[hl+8:], seq)
	for i := hl + 16; i < size; i++ {
		p[i] = byte(i)
	}
	return p
}

// payloadSeq returns the sequence number udpPacket wrote.
func payloadSeq(p []byte) uint64 {
	hl := 20
	if p[0]>>4 == 6 {
		hl = 40
	}
	return binary.BigEndian.Uint64(p[hl+8:])
}

// familySeqs follows the payload numbers (payloadSeq) of the IPv4 and the
// IPv6 packets of a test, each family counting up from 0.
type familySeqs struct{ v4, v6 uint64 }

// check fails t unless p carries its family's next number.
func (s *familySeqs) check(t *testing.T, p []byte) {
	t.Helper()
	next := &s.v4
	if p[0]>>4 == 6 {
		next = &s.v6
	}
	if seq := payloadSeq(p); seq != *next {
		t.Fatalf("IPv%d: got packet %d, want %d", p[0]>>4, seq, *next)
	}
	*next++
}

// recv waits for one packet on ch.
func recv(t testing.TB, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("timeout waiting for a packet")
		return nil
	}
}

// expectNone checks that nothing arrives on ch for a short while.
func expectNone(t testing.TB, ch <-chan []byte) {
	t.Helper()
	select {
	case p := <-ch:
		t.Fatalf("unexpected packet delivered: % x", p)
	case <-time.After(100 * time.Millisecond):
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
