package dataplane_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// warnings returns the Warn lines of reason r.
func warnings(logs *observer.ObservedLogs, r string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range logs.FilterLevelExact(zapcore.WarnLevel).All() {
		if e.ContextMap()["reason"] == r {
			out = append(out, e)
		}
	}
	return out
}

// wantField fails t unless e has field k with value v.
func wantField(t *testing.T, e observer.LoggedEntry, k string, v any) {
	t.Helper()
	if got, ok := e.ContextMap()[k]; !ok || got != v {
		t.Errorf("%q: field %s = %v (%T), want %v (%T); all %v", e.Message, k, got, got, v, v, e.ContextMap())
	}
}

// forged returns a packet of A's IPv4 SA to B with a fresh sequence number
// and one bit of its ciphertext flipped: the ICV fails.
func forged(t *testing.T, a *gateway) []byte {
	p := sealByHand(t, a.sad.Outbound(spiAB4), udpPacket(hostA4, hostB4, 9, 200))
	p[40] ^= 0x01
	return p
}

// TestDropWarnings: an ICV failure and an unknown SPI each give one
// warning naming the SPI, the outer source and the reason; a flood of
// 1000 forged packets gives at most a couple more lines, whose counts add
// up to every drop.
func TestDropWarnings(t *testing.T) {
	const interval = 300 * time.Millisecond
	core, logs := observer.New(zapcore.InfoLevel)
	a, b := newPair(t, pairOpts{logB: zap.New(core), dropLogInterval: interval})

	a.tun.Outbound <- udpPacket(hostA4, hostB4, 1, 200)
	recv(t, b.tun.Inbound)
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
		t.Fatalf("warnings for good traffic: %v", logs.All())
	}

	bad := forged(t, a)
	if err := b.ul.Inject(underlaytest.Msg{Data: bad, Src: epA}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ICV warning", func() bool { return len(warnings(logs, "icv")) == 1 })
	e := warnings(logs, "icv")[0]
	wantField(t, e, "spi", "0x0000a004")
	wantField(t, e, "src", epA.String())
	wantField(t, e, "peer", "A")
	wantField(t, e, "more", int64(0))

	unknown := bytes.Clone(bad)
	header.ESP(unknown).SetSPI(0xdead)
	if err := b.ul.Inject(underlaytest.Msg{Data: unknown, Src: epA2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unknown SPI warning", func() bool { return len(warnings(logs, "unknown_spi")) == 1 })
	e = warnings(logs, "unknown_spi")[0]
	wantField(t, e, "spi", "0x0000dead")
	wantField(t, e, "src", epA2.String())

	// The flood.
	const n = 1000
	before := b.d.Stats().Drops[dataplane.DropOpen]
	start := time.Now()
	for range n {
		if err := b.ul.Inject(underlaytest.Msg{Data: bad, Src: epA}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "flood dropped", func() bool { return b.d.Stats().Drops[dataplane.DropOpen] == before+n })
	flooded := time.Since(start)
	sum := func() int64 {
		var s int64
		for _, e := range warnings(logs, "icv") {
			s += 1 + e.ContextMap()["more"].(int64)
		}
		return s
	}
	waitFor(t, "the flood counted in the warnings", func() bool { return sum() == n+1 })
	time.Sleep(2 * interval)
	// One line per interval at most: the flood's own lines are bounded by
	// how long it lasted.
	lines := len(warnings(logs, "icv")) - 1
	if max := 2 + int(flooded/interval); lines > max || lines < 1 {
		t.Errorf("flood of %d in %v: %d warning lines, want 1..%d", n, flooded, lines, max)
	}
	if got := b.sad.Inbound(spiAB4).Stats().Drops[esp.DropICV]; got != n+1 {
		t.Errorf("SA ICV drops %d, want %d", got, n+1)
	}
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != lines+2 {
		t.Errorf("%d warnings, want %d: %v", n, lines+2, logs.All())
	}
}

// TestReplayAndSelectorWarnings: a replayed packet and one outside its SA's
// selectors each give a warning naming the SA.
func TestReplayAndSelectorWarnings(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	a, b := newPair(t, pairOpts{logB: zap.New(core), dropLogInterval: time.Hour})
	a.ul.Record(true)
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 1, 200)
	recv(t, b.tun.Inbound)
	if err := b.ul.Inject(underlaytest.Msg{Data: a.ul.Sent()[0].Data, Src: epA}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay warning", func() bool { return len(warnings(logs, "replay")) == 1 })
	e := warnings(logs, "replay")[0]
	wantField(t, e, "spi", "0x0000a004")
	wantField(t, e, "seq", uint32(1))

	// Sealed with A's SA but from an address outside B's selectors.
	p := sealByHand(t, a.sad.Outbound(spiAB4), udpPacket(other4, hostB4, 2, 200))
	if err := b.ul.Inject(underlaytest.Msg{Data: p, Src: epA}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "selector warning", func() bool { return len(warnings(logs, "selector")) == 1 })
	wantField(t, warnings(logs, "selector")[0], "spi", "0x0000a004")
	// An interval of an hour: one line each, however many follow.
	for range 20 {
		if err := b.ul.Inject(underlaytest.Msg{Data: a.ul.Sent()[0].Data, Src: epA}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "replays", func() bool { return b.sad.Inbound(spiAB4).Stats().Drops[esp.DropReplay] == 21 })
	if n := len(warnings(logs, "replay")); n != 1 {
		t.Errorf("%d replay warnings in an interval", n)
	}
}

// routerSolicitation is what Linux sends on a fresh TUN (RFC 4861 §6.3.7):
// ICMPv6 type 133 from a link-local address (or ::) to ff02::2.
func routerSolicitation(src netip.Addr) []byte {
	p := make([]byte, 40+8)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], 8)
	p[6], p[7] = header.ProtoICMPv6, 255
	s, d := src.As16(), netip.MustParseAddr("ff02::2").As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	p[40] = 133
	return p
}

// mldReport is an MLDv2 report (RFC 3810 §5.2) to ff02::16, with its
// Hop-by-Hop Router Alert.
func mldReport() []byte {
	p := make([]byte, 40+8+8)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], 16)
	p[6], p[7] = header.ProtoHopByHop, 1
	s, d := netip.MustParseAddr("fe80::1").As16(), netip.MustParseAddr("ff02::16").As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[40:], []byte{header.ProtoICMPv6, 0, 5, 2, 0, 0, 1, 0}) // Router Alert, PadN
	p[48] = 143
	return p
}

// TestLinkLocalNotWarned: the kernel's RS and MLD reports from the TUN are
// counted as link_local, not as policy discards, and logged nowhere; a
// real discard is warned about with its inner addresses and protocol.
func TestLinkLocalNotWarned(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	a, _ := newPair(t, pairOpts{logA: zap.New(core), dropLogInterval: 50 * time.Millisecond})
	pkts := [][]byte{
		routerSolicitation(netip.MustParseAddr("fe80::1")),
		routerSolicitation(netip.IPv6Unspecified()),
		mldReport(),
	}
	for _, p := range pkts {
		a.tun.Outbound <- p
	}
	waitFor(t, "link_local drops", func() bool { return a.d.Stats().Drops[dataplane.DropLinkLocal] == uint64(len(pkts)) })
	time.Sleep(200 * time.Millisecond)
	if s := a.d.Stats(); s.Drops[dataplane.DropPolicyDiscard] != 0 {
		t.Errorf("policy_discard %d", s.Drops[dataplane.DropPolicyDiscard])
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("link-local traffic logged: %v", logs.All())
	}
	if dataplane.DropLinkLocal.String() != "link_local" {
		t.Errorf("name %q", dataplane.DropLinkLocal)
	}

	a.tun.Outbound <- udpPacket(hostA4, other4, 1, 64)
	waitFor(t, "discard warning", func() bool { return len(warnings(logs, "policy_discard")) == 1 })
	e := warnings(logs, "policy_discard")[0]
	wantField(t, e, "src", hostA4.String())
	wantField(t, e, "dst", other4.String())
	wantField(t, e, "proto", uint8(17))
	wantField(t, e, "dport", uint16(5001))
	if n := logs.Len(); n != 1 {
		t.Errorf("%d lines: %v", n, logs.All())
	}
}

// TestLastReceived: a peer's LastReceived is set by an authenticated
// packet, to the second, and moved neither by forged nor by replayed ones.
func TestLastReceived(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	a.ul.Record(true)
	last := func() time.Time { return b.d.Peers()[0].LastReceived }
	if !last().IsZero() {
		t.Fatalf("LastReceived %v before any packet", last())
	}
	start := time.Now()
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 1, 200)
	recv(t, b.tun.Inbound)
	l1 := last()
	if l1.IsZero() || l1.Before(start.Add(-2*time.Second)) || l1.After(time.Now()) {
		t.Fatalf("LastReceived %v, sent at %v", l1, start)
	}
	if !a.d.Peers()[0].LastReceived.IsZero() {
		t.Errorf("A heard from B: %v", a.d.Peers()[0].LastReceived)
	}

	time.Sleep(1100 * time.Millisecond) // the coarse clock moves on
	before := b.d.Stats().Drops[dataplane.DropOpen]
	for _, p := range [][]byte{forged(t, a), a.ul.Sent()[0].Data} {
		if err := b.ul.Inject(underlaytest.Msg{Data: p, Src: epA}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "forged and replayed dropped", func() bool { return b.d.Stats().Drops[dataplane.DropOpen] == before+2 })
	if got := last(); !got.Equal(l1) {
		t.Errorf("LastReceived moved by refused packets: %v -> %v", l1, got)
	}

	a.tun.Outbound <- udpPacket(hostA4, hostB4, 2, 200)
	recv(t, b.tun.Inbound)
	if got := last(); !got.After(l1) {
		t.Errorf("LastReceived %v after a packet a second later, was %v", got, l1)
	}
}

// TestInboundPolicyHits: ESP delivered through an SA counts on the first
// inbound policy its inner packet matches, when it is PROTECT; the SPD's
// own counters (cleartext) stay untouched; a policy change keeps a named
// policy's count.
func TestInboundPolicyHits(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	hits := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, h := range b.d.Stats().InboundPolicyHits {
			m[h.Name] = h.Hits
		}
		return m
	}
	for i := range 5 {
		a.tun.Outbound <- udpPacket(hostA4, hostB4, uint64(i), 100)
		recv(t, b.tun.Inbound)
	}
	for i := range 3 {
		a.tun.Outbound <- udpPacket(hostA6, hostB6, uint64(i), 100)
		recv(t, b.tun.Inbound)
	}
	waitFor(t, "hits", func() bool { h := hits(); return h["in-v4"] == 5 && h["in-v6"] == 3 })
	if h := hits(); len(h) != 3 || h["in-discard"] != 0 {
		t.Errorf("hits %v", h)
	}
	if got := b.d.Stats().InboundPolicyHits[0]; got.Name != "in-v4" {
		t.Errorf("first %v, want in-v4 (List order)", got)
	}
	st := b.spd.Stats(sad.Inbound)
	if st.Unprotected != 0 || st.NoMatch != 0 {
		t.Errorf("spd inbound counters moved: %+v", st)
	}
	for _, p := range st.Policies {
		if p.Hits != 0 {
			t.Errorf("spd's own hits moved: %+v", st.Policies)
		}
	}
	if out := hits(); out["in-v4"] != 5 {
		t.Fatal(out)
	}

	// A new inbound policy in front: the copy follows within a second or
	// so, and in-v4 keeps its count.
	sel := sad.Selector{Local: sad.PrefixRange(siteB4), Remote: sad.SingleAddr(hostA4)}
	if err := b.spd.Insert(0, spd.Policy{Name: "in-hostA", Dir: sad.Inbound, Action: spd.Protect, Selectors: []sad.Selector{sel}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new list", func() bool { return len(b.d.Stats().InboundPolicyHits) == 4 })
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 9, 100)
	recv(t, b.tun.Inbound)
	waitFor(t, "the new policy's hit", func() bool { return hits()["in-hostA"] == 1 })
	if h := hits(); h["in-v4"] != 5 || h["in-v6"] != 3 {
		t.Errorf("counts after the change: %v", h)
	}
}

// TestDropPathAllocs: sampling a dropped packet (claiming an empty slot)
// allocates nothing, inbound and outbound.
func TestDropPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	a, b := stagePair(t, pairOpts{})
	bad := forged(t, a)
	unknown := bytes.Clone(bad)
	header.ESP(unknown).SetSPI(0xdead)
	in := dataplane.NewBatch(false, 2)
	out := dataplane.NewBatch(true, 1)
	defer in.Release()
	defer out.Release()
	inbound := func() {
		in.FillIn([][]byte{bad, unknown}, epA)
		b.d.OpenBatch(in)
		b.d.EmptyDropSamples()
	}
	discard := [][]byte{udpPacket(hostA4, other4, 1, 64)}
	outbound := func() {
		out.FillOut(discard)
		a.d.SealBatch(out)
		a.d.EmptyDropSamples()
	}
	inbound()
	outbound()
	if n := testing.AllocsPerRun(200, inbound); n != 0 {
		t.Errorf("inbound drops: %v allocs per batch", n)
	}
	if n := testing.AllocsPerRun(200, outbound); n != 0 {
		t.Errorf("outbound discard: %v allocs per batch", n)
	}
	if s := b.d.Stats(); s.Drops[dataplane.DropUnknownSPI] == 0 || s.Drops[dataplane.DropOpen] == 0 {
		t.Errorf("B drops %v", s.Drops)
	}
}

// TestStageInboundHits: the worker stage counts inbound policy hits (the
// allocation tests and the benchmarks run with them).
func TestStageInboundHits(t *testing.T) {
	a, b := stagePair(t, pairOpts{})
	pkts := [][]byte{udpPacket(hostA4, hostB4, 1, 100), udpPacket(hostA4, hostB4, 2, 100), udpPacket(hostA6, hostB6, 3, 100)}
	out := dataplane.NewBatch(true, len(pkts))
	in := dataplane.NewBatch(false, len(pkts))
	defer out.Release()
	defer in.Release()
	out.FillOut(pkts)
	a.d.SealBatch(out)
	(&wire{}).carry(out, in)
	b.d.OpenBatch(in)
	h := b.d.Stats().InboundPolicyHits
	if len(h) != 3 || h[0].Hits != 2 || h[1].Hits != 1 || h[2].Hits != 0 {
		t.Errorf("hits %+v", h)
	}
}
