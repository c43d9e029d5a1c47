package dataplane_test

import (
	"testing"
	"time"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
)

// endpointOfA is B's view of A.
func endpointOfA(b *gateway) endpoint.Endpoint { return b.d.Peers()[0].Endpoint }

// pingAB sends one packet A->B and waits for it.
func pingAB(t *testing.T, a, b *gateway, seq uint64) {
	t.Helper()
	a.tun.Outbound <- udpPacket(hostA4, hostB4, seq, 100)
	if got := payloadSeq(recv(t, b.tun.Inbound)); got != seq {
		t.Fatalf("A->B: got %d, want %d", got, seq)
	}
}

// pingBA sends one packet B->A and waits for it.
func pingBA(t *testing.T, a, b *gateway, seq uint64) {
	t.Helper()
	b.tun.Outbound <- udpPacket(hostB4, hostA4, seq, 100)
	if got := payloadSeq(recv(t, a.tun.Inbound)); got != seq {
		t.Fatalf("B->A: got %d, want %d", got, seq)
	}
}

func TestRoamingFollows(t *testing.T) {
	a, b := newPair(t, pairOpts{roamingB: true, roamInterval: time.Millisecond})
	pingAB(t, a, b, 1)
	pingBA(t, a, b, 1)
	if ep := endpointOfA(b); ep != epA {
		t.Fatalf("endpoint %v, want %v", ep, epA)
	}
	// A's NAT mapping changes: its packets now come from epA2, and only
	// packets to epA2 reach it.
	a.ul.SetLocal(epA2)
	pingAB(t, a, b, 2)
	waitFor(t, "roam", func() bool { return endpointOfA(b) == epA2 })
	pingBA(t, a, b, 2) // B's reply reaches A at the new endpoint
	st := b.d.Peers()[0]
	if st.Roams != 1 || st.LastRoam.IsZero() || b.d.Stats().Roams != 1 {
		t.Errorf("status %+v", st)
	}
	if a.ul.Misrouted() != 0 {
		t.Errorf("%d packets went to the old endpoint", a.ul.Misrouted())
	}
	// Back again, after the (1 ms) interval.
	time.Sleep(5 * time.Millisecond)
	a.ul.SetLocal(epA)
	pingAB(t, a, b, 3)
	waitFor(t, "roam back", func() bool { return endpointOfA(b) == epA })
	pingBA(t, a, b, 3)
}

func TestRoamingOffByDefault(t *testing.T) {
	a, b := newPair(t, pairOpts{})
	pingAB(t, a, b, 1)
	a.ul.SetLocal(epA2)
	pingAB(t, a, b, 2) // authenticated, newest, from a new source
	time.Sleep(20 * time.Millisecond)
	if ep := endpointOfA(b); ep != epA {
		t.Errorf("endpoint moved to %v with roaming off", ep)
	}
	if r := b.d.Stats().Roams; r != 0 {
		t.Errorf("Roams = %d", r)
	}
}

// TestRoamingIgnoresBadPackets: a replayed packet, a forged one and an older
// (reordered) authenticated one from a new source do not move the endpoint.
func TestRoamingIgnoresBadPackets(t *testing.T) {
	a, b := newPair(t, pairOpts{roamingB: true, roamInterval: time.Millisecond})
	a.ul.Record(true)
	// Packet 2 is held back by the network.
	var held underlaytest.Msg
	n := 0
	a.ul.SetFilter(func(m underlaytest.Msg) []underlaytest.Msg {
		n++
		if n == 2 {
			held = m
			return nil
		}
		return []underlaytest.Msg{m}
	})
	pingAB(t, a, b, 1)
	a.tun.Outbound <- udpPacket(hostA4, hostB4, 2, 100)
	waitFor(t, "packet 2 held", func() bool { return len(a.ul.Sent()) == 2 })
	pingAB(t, a, b, 3)
	sent := a.ul.Sent()
	time.Sleep(5 * time.Millisecond) // past the roam interval

	inject := func(name string, data []byte, src endpoint.Endpoint, wantDrop bool) {
		t.Helper()
		before := b.d.Stats()
		if err := b.ul.Inject(underlaytest.Msg{Data: data, Src: src}); err != nil {
			t.Fatal(err)
		}
		if wantDrop {
			waitFor(t, name+" drop", func() bool { return b.d.Stats().Dropped() == before.Dropped()+1 })
			expectNone(t, b.tun.Inbound)
		} else {
			recv(t, b.tun.Inbound)
		}
		time.Sleep(5 * time.Millisecond)
		if ep := endpointOfA(b); ep != epA {
			t.Fatalf("%s from %v moved the endpoint to %v", name, src, ep)
		}
	}
	// Replays of the newest and of an old packet.
	inject("replay newest", sent[2].Data, epA2, true)
	inject("replay old", sent[0].Data, epA2, true)
	// A forgery claiming a higher sequence number.
	forged := append([]byte(nil), sent[2].Data...)
	header.ESP(forged).SetSeq(1000)
	inject("forged", forged, epA2, true)
	// The held packet 2: authenticated and within the window, so it is
	// delivered, but older than 3.
	if header.ESP(held.Data).Seq() != 2 {
		t.Fatalf("held packet has seq %d", header.ESP(held.Data).Seq())
	}
	inject("older", held.Data, epA2, false)
	if got := b.sad.Inbound(spiAB4).Stats().Drops; got[esp.DropReplay] != 2 || got[esp.DropICV] != 1 {
		t.Errorf("SA drops %v", got)
	}
	if r := b.d.Stats().Roams; r != 0 {
		t.Errorf("Roams = %d", r)
	}
	// And a genuine newer packet from the new source does move it.
	a.ul.SetFilter(nil)
	a.ul.SetLocal(epA2)
	pingAB(t, a, b, 4)
	waitFor(t, "roam", func() bool { return endpointOfA(b) == epA2 })
}

func TestRoamingRateLimit(t *testing.T) {
	a, b := newPair(t, pairOpts{roamingB: true, roamInterval: 200 * time.Millisecond})
	pingAB(t, a, b, 1)
	a.ul.SetLocal(epA2)
	pingAB(t, a, b, 2)
	waitFor(t, "first roam", func() bool { return endpointOfA(b) == epA2 })
	roamed := time.Now()
	// Within the interval a second change is refused...
	a.ul.SetLocal(epA3)
	pingAB(t, a, b, 3)
	time.Sleep(10 * time.Millisecond)
	if ep := endpointOfA(b); ep != epA2 && time.Since(roamed) < 200*time.Millisecond {
		t.Fatalf("second roam within the interval: %v", ep)
	}
	// ...and accepted after it, on the next newest packet.
	time.Sleep(time.Until(roamed.Add(250 * time.Millisecond)))
	pingAB(t, a, b, 4)
	waitFor(t, "second roam", func() bool { return endpointOfA(b) == epA3 })
	if r := b.d.Peers()[0].Roams; r != 2 {
		t.Errorf("Roams = %d, want 2", r)
	}
}

// TestSetPeersKeepsRoamedEndpoint: an unchanged peer keeps its roamed
// endpoint across SetPeers; a changed one starts from its new config.
func TestSetPeersKeepsRoamedEndpoint(t *testing.T) {
	a, b := newPair(t, pairOpts{roamingB: true, roamInterval: time.Millisecond})
	pingAB(t, a, b, 1)
	a.ul.SetLocal(epA2)
	pingAB(t, a, b, 2)
	waitFor(t, "roam", func() bool { return endpointOfA(b) == epA2 })
	pc := dataplane.PeerConfig{
		Name: "A", Endpoint: epA, OutSPIs: []uint32{spiBA4, spiBA6}, InSPIs: []uint32{spiAB4, spiAB6},
		Roaming: true, RoamInterval: time.Millisecond, Keepalive: -1,
	}
	other := dataplane.PeerConfig{Name: "C", Endpoint: epA3}
	if err := b.d.SetPeers([]dataplane.PeerConfig{pc, other}); err != nil {
		t.Fatal(err)
	}
	if ep := endpointOfA(b); ep != epA2 {
		t.Errorf("after SetPeers: %v, want the roamed %v", ep, epA2)
	}
	pingBA(t, a, b, 1)
	pc.Endpoint = epA3
	if err := b.d.SetPeers([]dataplane.PeerConfig{pc}); err != nil {
		t.Fatal(err)
	}
	if ep := endpointOfA(b); ep != epA3 {
		t.Errorf("after SetPeers with a new endpoint: %v, want %v", ep, epA3)
	}
	if err := b.d.SetPeers([]dataplane.PeerConfig{pc, pc}); err == nil {
		t.Error("duplicate peers accepted")
	}
}
