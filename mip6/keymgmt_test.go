package mip6

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
)

// Tests of the K flag and key-managed SAs (RFC 4877 §7.4, RFC 6275
// §6.1.7, §6.1.8): MNConfig.KeyManagement, HAConfig.KeyManagement and
// HAConfig.MoveIKE. They reuse the harnesses of mn_test.go (mnHarness),
// ha_test.go (htRig) and agents_test.go (agNet). Helpers are prefixed km.

// kmBA hands the MN an accepting BA for seq with the given flags, as
// the dataplane delivers it after SA2 (RH2 processed, mnBARH2Done).
func kmBA(h *mnHarness, coa netip.Addr, seq uint16, flags uint8) {
	h.t.Helper()
	mh, err := EncodeMH(&BindingAck{Status: BAStatusAccepted, Flags: flags, Seq: seq, Lifetime: LifetimeUnits(600 * time.Second)}, mnHA, mnHoA)
	if err != nil {
		h.t.Fatal(err)
	}
	if !h.mn.Deliver(mnIPv6(mnBARH2Done, coa, header.ProtoMobility, mh), 0x2002, 1, endpoint.Endpoint{}) {
		h.t.Fatal("Deliver returned false for a BA")
	}
	synctest.Wait()
}

// kmSetSA1 makes the fake SAD have SA1 with spi, or none (spi 0).
func kmSetSA1(h *mnHarness, spi uint32) {
	h.sad.mu.Lock()
	h.sad.spi, h.sad.none = spi, spi == 0
	h.sad.mu.Unlock()
}

// TestMNKeyMgmtSA1Later: with KeyManagement, SA1 made by IKE after Start
// and Move is picked up by the next BU. Start and Move succeed without
// SA1; the first BU is a counted send error (not injected) and the BUL
// retransmits; once SA1 is in the SAD the retransmission leaves from the
// CoA by its SPI (DR-3) with the K flag; a rekeyed SA1 (new SPI) is
// followed by the next BU without any Move.
func TestMNKeyMgmtSA1Later(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newMNHarness(t, func(c *MNConfig) { c.KeyManagement = true })
		kmSetSA1(h, 0)
		if err := h.mn.Start(); err != nil {
			t.Fatalf("Start without SA1 under key management: %v", err)
		}
		defer h.close()
		if err := h.mn.Move(mnCoA6); err != nil {
			t.Fatalf("Move without SA1 under key management: %v", err)
		}
		h.noBU()
		st := h.mn.Status()
		if c := st.Counters; c.BUSendErrors != 1 || c.BUsSent != 0 {
			t.Errorf("counters %+v, want one send error and nothing sent", c)
		}
		if st.BUSPI != 0 || st.State != BULWaitAck || st.Attempts != 1 || st.CoA != mnCoA6 {
			t.Errorf("status without SA1: %+v", st)
		}
		ev, ok := h.lastEvent(MNBUSent)
		if !ok || !errors.Is(ev.Err, ErrNoBUSA) || ev.CoA != mnCoA6 {
			t.Fatalf("bu-sent event %+v %v, want Err ErrNoBUSA", ev, ok)
		}
		first := ev.Seq

		// IKE makes SA1: the retransmission (RFC 6275 §11.8) goes out.
		kmSetSA1(h, mnSA1SPI)
		time.Sleep(InitialBindackTimeoutFirstReg - time.Millisecond)
		h.noBU()
		time.Sleep(time.Millisecond)
		s := h.nextBU()
		if s.bu.Flags != BUFlagA|BUFlagH|BUFlagK {
			t.Errorf("flags %#04x, want A|H|K", s.bu.Flags)
		}
		if s.bu.Seq != first+1 {
			t.Errorf("seq %d, want %d (a new number for the retransmission)", s.bu.Seq, first+1)
		}
		// The fake seals with mnSA1SPI: AfterSeal took it for the BU.
		if !s.ok || s.out != epIP(mnHA) || header.IPv6(s.wire).Src() != mnCoA6 {
			t.Errorf("BU sealed by SA1 %#x: out %+v ok %v from %v, want from the CoA to the HA", mnSA1SPI, s.out, s.ok, header.IPv6(s.wire).Src())
		}
		st = h.mn.Status()
		if st.BUSPI != mnSA1SPI {
			t.Errorf("BU SPI %#x, want %#x", st.BUSPI, mnSA1SPI)
		}
		if c := st.Counters; c.BUSendErrors != 1 || c.BUsSent != 1 || c.BURetransmits != 1 {
			t.Errorf("counters %+v, want 1 error, 1 sent, 1 retransmission", c)
		}

		// IKE rekeys SA1: the next retransmission uses the new SPI, so
		// a packet sealed by the old one is data now (not registered:
		// the dataplane's endpoint) and one by the new one is the BU.
		const rekeyed = 0x9999
		kmSetSA1(h, rekeyed)
		time.Sleep(2 * InitialBindackTimeoutFirstReg)
		s2 := h.nextBU()
		if s2.bu.Flags&BUFlagK == 0 || s2.bu.Seq != first+2 {
			t.Errorf("BU after the rekey: flags %#04x seq %d", s2.bu.Flags, s2.bu.Seq)
		}
		if !s2.ok || s2.out != dpEP || header.IPv6(s2.wire).Src() != mnHoA {
			t.Errorf("packet sealed by the old SA1 after the rekey: out %+v ok %v, want data (unchanged)", s2.out, s2.ok)
		}
		if st := h.mn.Status(); st.BUSPI != rekeyed {
			t.Errorf("BU SPI %#x after the rekey, want %#x", st.BUSPI, rekeyed)
		}
		clear := mnIPv6(mnBAPlain, netip.Addr{}, header.ProtoMobility, make([]byte, 16))
		header.IPv6(clear).SetSrc(mnHoA)
		header.IPv6(clear).SetDst(mnHA)
		b := mnSeal(clear, rekeyed, 1)
		out := dpEP
		if ok := h.mn.AfterSeal(b, rekeyed, &out); !ok || out != epIP(mnHA) || header.IPv6(b.Bytes()).Src() != mnCoA6 {
			t.Errorf("AfterSeal with the rekeyed SA1: %+v %v, want the BU from the CoA", out, ok)
		}

		kmBA(h, mnCoA6, s2.bu.Seq, BAFlagK)
		if st := h.mn.Status(); st.State != BULRegistered || st.RegisteredCoA != mnCoA6 {
			t.Errorf("after the BA: %+v", st)
		}
		if ev, ok := h.lastEvent(MNRegistered); !ok || !ev.KeyMgmt {
			t.Errorf("registered event %+v %v, want KeyMgmt", ev, ok)
		}

		// The refresh (80 % of 600 s) follows the SAD too: SA1 gone is
		// a send error again, not a BU by a stale SPI.
		kmSetSA1(h, 0)
		time.Sleep(480*time.Second + 500*time.Millisecond) // the refresh, not yet its retransmission
		h.noBU()
		if c := h.mn.Status().Counters; c.BUSendErrors != 2 || c.BUsSent != 2 {
			t.Errorf("refresh without SA1: counters %+v, want 2 errors, 2 sent", c)
		}
	})
}

// TestMNKeyMgmtBAFlagK: the BUs carry K exactly when KeyManagement is on
// (RFC 6275 §11.7.1, RFC 4877 §7.4), and the MNRegistered event has
// KeyMgmt only when the accepting BA had K too (RFC 6275 §11.7.3): a K in
// the BA to a BU without it means nothing.
func TestMNKeyMgmtBAFlagK(t *testing.T) {
	for _, tc := range []struct {
		name string
		km   bool
		baK  bool
		want bool
	}{
		{"both", true, true, true},
		{"BA without K", true, false, false},
		{"no key management, BA with K", false, true, false},
		{"neither", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := startMNHarness(t, func(c *MNConfig) { c.KeyManagement = tc.km })
				defer h.close()
				if err := h.mn.Move(mnCoA6); err != nil {
					t.Fatal(err)
				}
				s := h.nextBU()
				if k := s.bu.Flags&BUFlagK != 0; k != tc.km || s.bu.Flags&^BUFlagK != BUFlagA|BUFlagH {
					t.Errorf("BU flags %#04x, want A|H and K %v", s.bu.Flags, tc.km)
				}
				var f uint8
				if tc.baK {
					f = BAFlagK
				}
				kmBA(h, mnCoA6, s.bu.Seq, f)
				ev, ok := h.lastEvent(MNRegistered)
				if !ok || ev.CoA != mnCoA6 {
					t.Fatalf("registered event %+v %v", ev, ok)
				}
				if ev.KeyMgmt != tc.want {
					t.Errorf("KeyMgmt %v, want %v", ev.KeyMgmt, tc.want)
				}
			})
		})
	}
}

// kmMove is one HAConfig.MoveIKE call.
type kmMove struct {
	hoa           netip.Addr
	local, remote netip.AddrPort
}

// kmIKE records the home agent's key-management callbacks.
type kmIKE struct {
	mu    sync.Mutex
	asked []netip.Addr
	moves []kmMove
}

func (k *kmIKE) takeMoves() []kmMove {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.moves
	k.moves = nil
	return m
}

// kmRig is an htRig whose KeyManagement says serves(hoa) (nil: not
// set) and whose MoveIKE is recorded.
func kmRig(t *testing.T, serves func(netip.Addr) bool, mut ...func(*HAConfig)) (*htRig, *kmIKE) {
	t.Helper()
	k := &kmIKE{}
	r := newHTRig(t, func(c *HAConfig) {
		if serves != nil {
			c.KeyManagement = func(hoa netip.Addr) bool {
				k.mu.Lock()
				k.asked = append(k.asked, hoa)
				k.mu.Unlock()
				return serves(hoa)
			}
		}
		c.MoveIKE = func(hoa netip.Addr, local, remote netip.AddrPort) {
			k.mu.Lock()
			k.moves = append(k.moves, kmMove{hoa, local, remote})
			k.mu.Unlock()
		}
		for _, f := range mut {
			f(c)
		}
	})
	return r, k
}

// kmBU is htHomeBU with the K flag when k.
func kmBU(k bool, seq, life uint16, opts ...Option) *BindingUpdate {
	bu := htHomeBU(seq, life, opts...)
	if k {
		bu.Flags |= BUFlagK
	}
	return bu
}

// kmDeliver6 delivers a BU from an IPv6 CoA (Home Address option) on spi
// and returns the one BA it got.
func kmDeliver6(t *testing.T, r *htRig, spi uint32, hoa, coa netip.Addr, bu *BindingUpdate) *BindingAck {
	t.Helper()
	r.ha.Deliver(htBU6(t, hoa, coa, bu), spi, uint32(bu.Seq), endpoint.Endpoint{Addr: netip.AddrPortFrom(coa, 0), Encap: endpoint.EncapIP})
	r.pump()
	sent := r.takeSent()
	if len(sent) != 1 {
		t.Fatalf("%d packets sent, want the BA", len(sent))
	}
	return htBA(t, sent[0], hoa)
}

// TestHAKeyMgmtKFlag6: a BU with K for a home address whose IKE SA can
// follow it is answered with K, and once accepted the IKE SA is moved to
// (HA, CoA), ports kept (RFC 4877 §7.4, RFC 6275 §10.3.1). Without K in
// the BU, for a home address KeyManagement refuses, or for a
// de-registration, nothing moves.
func TestHAKeyMgmtKFlag6(t *testing.T) {
	r, k := kmRig(t, func(a netip.Addr) bool { return a == htHoA1 })
	ha0 := netip.AddrPortFrom(htHA, 0)

	ba := kmDeliver6(t, r, htSA1a, htHoA1, htCoA6, kmBU(true, 7, 100, AlternateCoA{Addr: htCoA6}))
	if ba.Status != BAStatusAccepted || ba.Flags&BAFlagK == 0 {
		t.Errorf("BA status %v flags %#02x, want accepted with K", ba.Status, ba.Flags)
	}
	want := []kmMove{{htHoA1, ha0, netip.AddrPortFrom(htCoA6, 0)}}
	if got := k.takeMoves(); !slices.Equal(got, want) {
		t.Errorf("MoveIKE calls %+v, want %+v", got, want)
	}
	if b, ok := r.ha.Cache().Lookup(htHoA1); !ok || b.Primary().Addr != htCoA6 {
		t.Errorf("binding %v %v", b, ok)
	}

	// A move with K: the IKE SA follows to the new CoA.
	ba = kmDeliver6(t, r, htSA1a, htHoA1, htCoA6b, kmBU(true, 8, 100, AlternateCoA{Addr: htCoA6b}))
	want = []kmMove{{htHoA1, ha0, netip.AddrPortFrom(htCoA6b, 0)}}
	if got := k.takeMoves(); ba.Flags&BAFlagK == 0 || !slices.Equal(got, want) {
		t.Errorf("BA flags %#02x, MoveIKE %+v, want K and %+v", ba.Flags, got, want)
	}

	// No K in the BU: no K back, nothing moves.
	ba = kmDeliver6(t, r, htSA1a, htHoA1, htCoA6, kmBU(false, 9, 100, AlternateCoA{Addr: htCoA6}))
	if ba.Status != BAStatusAccepted || ba.Flags&BAFlagK != 0 {
		t.Errorf("BA to a BU without K: status %v flags %#02x", ba.Status, ba.Flags)
	}
	if got := k.takeMoves(); len(got) != 0 {
		t.Errorf("MoveIKE for a BU without K: %+v", got)
	}

	// KeyManagement says no for HoA2: no K, nothing moves.
	ba = kmDeliver6(t, r, htSA1b, htHoA2, htCoA6b, kmBU(true, 1, 100, AlternateCoA{Addr: htCoA6b}))
	if ba.Status != BAStatusAccepted || ba.Flags&BAFlagK != 0 {
		t.Errorf("BA for a home address without an IKE SA: status %v flags %#02x", ba.Status, ba.Flags)
	}
	if got := k.takeMoves(); len(got) != 0 {
		t.Errorf("MoveIKE for a home address KeyManagement refused: %+v", got)
	}
	k.mu.Lock()
	asked := slices.Clone(k.asked)
	k.mu.Unlock()
	if !slices.Contains(asked, htHoA2) || slices.Contains(asked, netip.Addr{}) {
		t.Errorf("KeyManagement asked about %v, want the BUs' home addresses", asked)
	}

	// De-registration with K (lifetime 0): the binding goes, the IKE SA
	// stays where it is.
	ba = kmDeliver6(t, r, htSA1a, htHoA1, htCoA6, kmBU(true, 10, 0, AlternateCoA{Addr: htCoA6}))
	if ba.Status != BAStatusAccepted {
		t.Errorf("de-registration BA status %v", ba.Status)
	}
	if _, ok := r.ha.Cache().Lookup(htHoA1); ok {
		t.Error("binding kept after the de-registration")
	}
	if got := k.takeMoves(); len(got) != 0 {
		t.Errorf("MoveIKE for a de-registration: %+v", got)
	}
	if st := r.ha.Stats(); st.BUAccepted != 5 || len(st.BURejected) != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestHAKeyMgmtKFlagUnset: without KeyManagement the HA never answers K
// and never moves an IKE SA, whatever the BU says; with KeyManagement but
// no MoveIKE it answers K and calls nothing.
func TestHAKeyMgmtKFlagUnset(t *testing.T) {
	r, k := kmRig(t, nil)
	ba := kmDeliver6(t, r, htSA1a, htHoA1, htCoA6, kmBU(true, 1, 100, AlternateCoA{Addr: htCoA6}))
	if ba.Status != BAStatusAccepted || ba.Flags&BAFlagK != 0 {
		t.Errorf("KeyManagement nil: BA status %v flags %#02x, want accepted without K", ba.Status, ba.Flags)
	}
	if got := k.takeMoves(); len(got) != 0 {
		t.Errorf("KeyManagement nil: MoveIKE %+v", got)
	}

	r, _ = kmRig(t, func(netip.Addr) bool { return true }, func(c *HAConfig) { c.MoveIKE = nil })
	ba = kmDeliver6(t, r, htSA1a, htHoA1, htCoA6, kmBU(true, 1, 100, AlternateCoA{Addr: htCoA6}))
	if ba.Status != BAStatusAccepted || ba.Flags&BAFlagK == 0 {
		t.Errorf("MoveIKE nil: BA status %v flags %#02x, want accepted with K", ba.Status, ba.Flags)
	}
}

// TestHAKeyMgmtKFlag4: for a UDP-encapsulated BU from an IPv4 CoA (RFC
// 5555 §4.1) the IKE SA moves to (HA_V4ADDR:4500, the recorded outer
// source and port, DR-4): the NAT's mapping when there is one.
func TestHAKeyMgmtKFlag4(t *testing.T) {
	for _, tc := range []struct {
		name  string
		outer netip.AddrPort
	}{
		{"nat", htNAT},
		{"no nat", netip.AddrPortFrom(htCoA4, PortESPInUDP)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, k := kmRig(t, func(a netip.Addr) bool { return a == htHoA1 })
			if !r.deliver4(htSA1a, 77, tc.outer, htBUPlain(t, htHoA1, kmBU(true, 3, 50, IPv4CareOfAddress{Addr: htCoA4}))) {
				t.Fatal("Deliver did not take the BU")
			}
			r.pump()
			sent := r.takeSent()
			if len(sent) != 1 {
				t.Fatalf("%d packets sent, want the BA", len(sent))
			}
			ba := htBA(t, sent[0], htHoA1)
			if ba.Status != BAStatusAccepted || ba.Flags&BAFlagK == 0 {
				t.Errorf("BA status %v flags %#02x, want accepted with K", ba.Status, ba.Flags)
			}
			want := []kmMove{{htHoA1, netip.AddrPortFrom(htHA4, PortESPInUDP), tc.outer}}
			if got := k.takeMoves(); !slices.Equal(got, want) {
				t.Errorf("MoveIKE %+v, want %+v", got, want)
			}
			// Without K: nothing moves.
			r.deliver4(htSA1a, 78, tc.outer, htBUPlain(t, htHoA1, kmBU(false, 4, 50, IPv4CareOfAddress{Addr: htCoA4})))
			r.pump()
			sent = r.takeSent()
			if len(sent) != 1 {
				t.Fatalf("%d packets sent, want the BA", len(sent))
			}
			if ba := htBA(t, sent[0], htHoA1); ba.Status != BAStatusAccepted || ba.Flags&BAFlagK != 0 {
				t.Errorf("BA to a BU without K: status %v flags %#02x", ba.Status, ba.Flags)
			}
			if got := k.takeMoves(); len(got) != 0 {
				t.Errorf("MoveIKE for a BU without K: %+v", got)
			}
		})
	}
}

// TestHAKeyMgmtRejectedKFlag: a BU with K that is rejected moves no IKE
// SA: H clear (131), home address outside the home prefix (132), stale
// sequence number (135), DR-7 failure (silently discarded, RFC 4877 §4.2)
// and a UDP BU without the IPv4 CoA option (128).
func TestHAKeyMgmtRejectedKFlag(t *testing.T) {
	outside := netip.MustParseAddr("2001:db8:2::100")
	const saOutside, sa2Outside = 0x1003, 0x2003
	r, k := kmRig(t, func(netip.Addr) bool { return true })
	r.sad.in[saOutside] = outside
	r.sad.out[htKey(outside, header.ProtoMobility, uint16(MHTypeBA)<<8)] = sa2Outside

	// A registration to be stale against (one move).
	kmDeliver6(t, r, htSA1a, htHoA1, htCoA6, kmBU(true, 10, 100, AlternateCoA{Addr: htCoA6}))
	if got := k.takeMoves(); len(got) != 1 {
		t.Fatalf("setup: MoveIKE %+v, want one", got)
	}

	for _, tc := range []struct {
		name string
		spi  uint32
		hoa  netip.Addr
		bu   *BindingUpdate
		want BAStatus
	}{
		{"H clear", htSA1a, htHoA1, &BindingUpdate{Seq: 11, Flags: BUFlagA | BUFlagK, Lifetime: 100, Options: []Option{AlternateCoA{Addr: htCoA6b}}}, BAStatusHomeRegNotSupported},
		{"not home subnet", saOutside, outside, kmBU(true, 1, 100, AlternateCoA{Addr: htCoA6b}), BAStatusNotHomeSubnet},
		{"stale sequence", htSA1a, htHoA1, kmBU(true, 5, 100, AlternateCoA{Addr: htCoA6b}), BAStatusSeqOutOfWindow},
	} {
		ba := kmDeliver6(t, r, tc.spi, tc.hoa, htCoA6b, tc.bu)
		if ba.Status != tc.want {
			t.Errorf("%s: BA status %v, want %v", tc.name, ba.Status, tc.want)
		}
		if got := k.takeMoves(); len(got) != 0 {
			t.Errorf("%s: MoveIKE for a rejected BU: %+v", tc.name, got)
		}
	}

	// DR-7: HoA2's BU on HoA1's SA1 is dropped without a BA.
	r.ha.Deliver(htBU6(t, htHoA2, htCoA6b, kmBU(true, 1, 100, AlternateCoA{Addr: htCoA6b})), htSA1a, 20, endpoint.Endpoint{Encap: endpoint.EncapIP})
	r.pump()
	if s := r.takeSent(); len(s) != 0 {
		t.Errorf("DR-7 failure answered: %d packets", len(s))
	}
	if got := k.takeMoves(); len(got) != 0 {
		t.Errorf("MoveIKE for a BU failing DR-7: %+v", got)
	}

	// Over UDP without the IPv4 CoA option.
	r.deliver4(htSA1a, 21, htNAT, htBUPlain(t, htHoA1, kmBU(true, 12, 100)))
	r.pump()
	sent := r.takeSent()
	if len(sent) != 1 {
		t.Fatalf("%d packets sent, want the BA", len(sent))
	}
	if ba := htBA(t, sent[0], htHoA1); ba.Status != BAStatusUnspecified {
		t.Errorf("UDP BU without IPv4 CoA: status %v", ba.Status)
	}
	if got := k.takeMoves(); len(got) != 0 {
		t.Errorf("MoveIKE for a rejected UDP BU: %+v", got)
	}

	if b, ok := r.ha.Cache().Lookup(htHoA1); !ok || b.Primary().Addr != htCoA6 || b.Seq != 10 {
		t.Errorf("rejected BUs changed the binding: %v %v", b, ok)
	}
	st := r.ha.Stats()
	for _, reason := range []string{"not-home-registration", "not-home-subnet", "sequence-out-of-window", "no-care-of-address"} {
		if st.BURejected[reason] != 1 {
			t.Errorf("rejections %v: want one %s", st.BURejected, reason)
		}
	}
	if st.BUAccepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestAgentsKeyMgmtKFlag: a key-managed MobileNode against a HomeAgent
// whose IKE SA serves the home address: every BU has K, every BA answers
// K, the MN's MNRegistered events say KeyMgmt, and the HA moves the IKE
// SA to the IPv6 CoA and then to the NAT's mapping of the IPv4 CoA's port
// 4500 as the BU arrived on the (fake) wire.
func TestAgentsKeyMgmtKFlag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &agNet{t: t}
		var (
			mu    sync.Mutex
			moves []kmMove
			evs   []MNEvent
		)
		ha, err := NewHomeAgent(HAConfig{
			Address: mnHA, AddressV4: mnHAV4, HomePrefix: mnHome,
			SAD: agSAD{}, Inject: n.haInject, HomeLink: &agHomeLink{},
			KeyManagement: func(hoa netip.Addr) bool { return hoa == mnHoA },
			MoveIKE: func(hoa netip.Addr, local, remote netip.AddrPort) {
				mu.Lock()
				moves = append(moves, kmMove{hoa, local, remote})
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		mn, err := NewMobileNode(MNConfig{
			HoA: mnHoA, HomePrefix: mnHome, HA: mnHA, HAV4: mnHAV4,
			SAD: agSAD{}, Inject: n.mnInject, KeyManagement: true,
			OnEvent: func(ev MNEvent) {
				if ev.Kind == MNRegistered {
					mu.Lock()
					evs = append(evs, ev)
					mu.Unlock()
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		n.mn, n.ha = mn, ha
		if err := ha.Start(); err != nil {
			t.Fatal(err)
		}
		if err := mn.Start(); err != nil {
			t.Fatal(err)
		}
		take := func() ([]kmMove, []MNEvent) {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			m, e := moves, evs
			moves, evs = nil, nil
			return m, e
		}

		if err := mn.Move(mnCoA6); err != nil {
			t.Fatal(err)
		}
		m, e := take()
		want := []kmMove{{mnHoA, netip.AddrPortFrom(mnHA, 0), netip.AddrPortFrom(mnCoA6, 0)}}
		if !slices.Equal(m, want) {
			t.Errorf("IPv6 CoA: MoveIKE %+v, want %+v", m, want)
		}
		if len(e) != 1 || !e[0].KeyMgmt || e[0].CoA != mnCoA6 {
			t.Errorf("IPv6 CoA: registered events %+v, want one with KeyMgmt", e)
		}

		n.set(func(n *agNet) { n.nat = true })
		if err := mn.Move(mnCoA4); err != nil {
			t.Fatal(err)
		}
		m, e = take()
		want = []kmMove{{mnHoA, netip.AddrPortFrom(mnHAV4, PortESPInUDP), agNAT}}
		if !slices.Equal(m, want) {
			t.Errorf("IPv4 CoA behind a NAT: MoveIKE %+v, want %+v", m, want)
		}
		if len(e) != 1 || !e[0].KeyMgmt || e[0].CoA != mnCoA4 || !e[0].NAT {
			t.Errorf("IPv4 CoA: registered events %+v, want one with KeyMgmt and NAT", e)
		}

		if err := mn.Close(); err != nil {
			t.Errorf("MN Close: %v", err)
		}
		if m, _ := take(); len(m) != 0 {
			t.Errorf("MoveIKE for the de-registration: %+v", m)
		}
		if err := ha.Close(); err != nil {
			t.Errorf("HA Close: %v", err)
		}
		if s := ha.Stats(); len(s.BURejected) != 0 || s.BUAccepted != 3 {
			t.Errorf("HA stats %+v", s)
		}
	})
}
