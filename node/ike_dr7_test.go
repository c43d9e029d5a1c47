package node_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
)

// dr7MN is one mobile node of TestIKEDR7 as the home agent's IKE daemon
// would have keyed it: its BU/BA child (RFC 4877 §4.2, §7.2: transport
// mode, HA[mh/6] <-> HoA[mh/5]) and the mobile node's side of its inbound
// SA, which seals the BUs the test sends.
type dr7MN struct {
	hoa, coa netip.Addr
	c        *ike.ChildSA
	seal     *sad.SA // the MN's outbound SA: the HA's inbound SA c.InSPI, same keys
}

// dr7Child installs, through k as the IKE responder would (ike/child.go
// kernelChild: Peer the connection's name, PolicyName with the peer's
// identity, Authorized its PAD addresses), the BU/BA child id of the
// mobile node hoa at coa with remote selectors remote (hoa[mh/5] once
// narrowed to the PAD, RFC 7296 §2.9), inbound SA first (RFC 7296 §2.8);
// replaces is the outbound SPI a rekey replaces. mn is the mobile node's
// SAD, where its sealing SA goes.
func dr7Child(t *testing.T, k ike.Kernel, mn *sad.DB, hoa, coa netip.Addr, id, replaces uint32, remote []string, authorized ...netip.Addr) *dr7MN {
	t.Helper()
	s := ikeSuites[0] // aes128gcm16, the esp_proposals of testdata/ha-ike.toml's bu child
	in, err := k.AllocSPI()
	if err != nil {
		t.Fatal(err)
	}
	ts := func(s string) ike.TrafficSelector {
		t.Helper()
		x, err := ike.ParseTS(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	c := &ike.ChildSA{
		Name: "bu", ID: id, Peer: "mobile-nodes", PolicyName: fmt.Sprintf("mobile-nodes/bu[%v]", hoa), Mode: ike.ModeTransport,
		Endpoint: ike.Endpoint{Local: netip.AddrPortFrom(fixture.HA, 500), Remote: netip.AddrPortFrom(coa, 500)},
		Encr:     s.encr, KeyBits: s.keyBits, Integ: s.integ,
		InSPI: in, OutSPI: 0x6d000000 | id, InKeys: randomKeys(t, s), OutKeys: randomKeys(t, s),
		LocalTS:  []ike.TrafficSelector{ts(fixture.HA.String() + "[mh/6]")},
		RemoteID: ike.IdentityFromAddr(hoa), Replaces: replaces,
	}
	for _, r := range remote {
		c.RemoteTS = append(c.RemoteTS, ts(r))
	}
	if len(authorized) == 0 {
		authorized = []netip.Addr{hoa}
	}
	for _, a := range authorized {
		c.Authorized = append(c.Authorized, netip.PrefixFrom(a, 128))
	}
	if err := k.AddInbound(c); err != nil {
		t.Fatalf("AddInbound %s: %v", c.PolicyName, err)
	}
	if err := k.AddOutbound(c); err != nil {
		t.Fatalf("AddOutbound %s: %v", c.PolicyName, err)
	}
	alg, err := esp.ParseAlgorithm(s.name)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := mn.Add(sad.Config{Name: fmt.Sprintf("mn-%v{%d}", hoa, id), Dir: sad.Outbound, Selectors: []sad.Selector{{}},
		Params: esp.Params{SPI: c.InSPI, Algorithm: alg, EncKey: c.InKeys.Enc, AuthKey: c.InKeys.Integ, Mode: esp.Transport}})
	if err != nil {
		t.Fatal(err)
	}
	return &dr7MN{hoa: hoa, coa: coa, c: c, seal: sa}
}

// dr7BU is a Binding Update (home registration, A and H, RFC 6275 §6.1.7;
// the Alternate Care-of Address option, RFC 4877 §4.1) for hoa as a
// mobile node at coa sends it (mip6.SendFromCoA, RFC 4877
// §4.2): IPv6(HoA -> HA)/MH sealed with seal in transport mode, then the
// source moved to the care-of address behind a Home Address option,
// outside ESP. It is the whole IPv6 packet, as the HA's underlay receives
// it (endpoint.EncapIP).
func dr7BU(t *testing.T, seal *sad.SA, hoa, coa netip.Addr, seq uint16) []byte {
	t.Helper()
	mh, err := mip6.EncodeMH(&mip6.BindingUpdate{Seq: seq, Flags: mip6.BUFlagA | mip6.BUFlagH,
		Lifetime: mip6.LifetimeUnits(5 * time.Minute), Options: []mip6.Option{mip6.AlternateCoA{Addr: coa}}}, hoa, fixture.HA)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, header.IPv6HeaderLen+len(mh))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(mh)))
	p[6], p[7] = header.ProtoMobility, 64
	s, d := hoa.As16(), fixture.HA.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[header.IPv6HeaderLen:], mh)
	b := pkt.Get()
	defer pkt.Put(b)
	b.Set(p)
	if v := seal.Seal(b); v != esp.OK {
		t.Fatalf("sealing the BU: %v", v)
	}
	if _, ok := mip6.SendFromCoA(b, coa, fixture.HA4, 0); !ok {
		t.Fatal("SendFromCoA failed")
	}
	return append([]byte(nil), b.Bytes()...)
}

// TestIKEDR7: on a home agent keyed by IKEv2 (testdata/ha-ike.toml, no
// manual SAs), the SAD query API of the mobility layer (mip6/saquery.go)
// answers for the Child SAs the IKE daemon installs through the node's
// ike.Kernel, and DR-7 (RFC 4877 §4.2: a BU only on the SA of its home
// address) holds for them, also across a rekey:
//
//   - HomeAddressOf(inbound SPI) is each mobile node's home address and
//     BAckSPI (HA -> HoA, MH BA) each one's own outbound SA;
//   - a BU for MN2's home address sealed with MN1's SA registers nothing
//     and is not answered: the SA's own selector check (RFC 4301 §5.2,
//     hoa1[mh/5]) refuses it before the mobility layer, which never sees
//     it;
//   - on a BU child whose selectors pin no single home address (two
//     authorized addresses), the selector check passes and DR-7 is what
//     drops the BU: its counter grows, no binding, no BA;
//   - MN1's BU on MN1's SA (and MN2's on MN2's) is accepted and answered
//     on that MN's own outbound SA;
//   - after a rekey of MN1's child (new child replacing the old, old SAs
//     deleted with DelSA) a BU on the new SA is accepted and answered on
//     the new outbound SA, and one on the deleted SPI finds no SA.
func TestIKEDR7(t *testing.T) {
	hoa1, hoa2 := netip.MustParseAddr("2001:db8:1::100"), netip.MustParseAddr("2001:db8:1::200")
	coa1, coa2 := netip.MustParseAddr("2001:db8:2::100"), netip.MustParseAddr("2001:db8:3::200")

	psk := filepath.Join(t.TempDir(), "ha-mn.psk")
	if err := os.WriteFile(psk, []byte("Sup3rSecretPreSharedKey-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fixture.EditConfig(t, "ha-ike.toml", t.TempDir(), "/etc/mipsec/ha-mn.psk", psk)
	if len(cfg.SAs) != 0 || cfg.Role != node.RoleHA {
		t.Fatalf("ha-ike.toml: role %q, %d manual SAs", cfg.Role, len(cfg.SAs))
	}
	uHA, _ := underlaytest.NewPair(endpoint.Endpoint{Addr: netip.AddrPortFrom(fixture.HA, 0)}, endpoint.Endpoint{Addr: netip.AddrPortFrom(coa1, 0)})
	uHA.SetAddrs(fixture.HA4)
	hl := &fakeHomeLink{live: map[netip.Addr]bool{}}
	o := opts{workers: 2, device: tuntest.New(1, 64), conn: uHA}
	o.host.HomeLink = func(node.MobilityConfig, string) (mip6.HomeLink, func() error, error) {
		return hl, func() error { return nil }, nil
	}
	o.host.ParamProblems = func() (func() error, error) { return func() error { return nil }, nil }
	ha, err := newNode(cfg, zaptest.NewLogger(t).Named("HA"), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := ha.Start(); err != nil {
		ha.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ha.Close() })
	if len(ha.SAs()) != 0 {
		t.Fatalf("SAs before IKE installed any: %v", ha.SAs())
	}
	k := ha.Kernel()
	mnSAD := sad.New(sad.Options{})
	t.Cleanup(mnSAD.Close)

	mn1 := dr7Child(t, k, mnSAD, hoa1, coa1, 1, 0, []string{hoa1.String() + "[mh/5]"})
	mn2 := dr7Child(t, k, mnSAD, hoa2, coa2, 2, 0, []string{hoa2.String() + "[mh/5]"})

	// The SAD query API (draft-laganier-mext-dsmipv6-ipsec-00) on
	// IKE-made SAs.
	db := ha.SAD()
	for _, m := range []*dr7MN{mn1, mn2} {
		if got, ok := db.HomeAddressOf(m.c.InSPI); !ok || got != m.hoa {
			t.Errorf("HomeAddressOf(%#x) = %v, %v; want %v", m.c.InSPI, got, ok, m.hoa)
		}
		if spi, ok := mip6.BAckSPI(db, fixture.HA, m.hoa); !ok || spi != m.c.OutSPI {
			t.Errorf("BAckSPI(HA -> %v) = %#x, %v; want %#x", m.hoa, spi, ok, m.c.OutSPI)
		}
		if sa := db.Inbound(m.c.InSPI); sa == nil || sa.Params().Mode != esp.Transport {
			t.Errorf("inbound SA %#x: %v", m.c.InSPI, sa)
		}
	}
	if _, ok := mip6.BAckSPI(db, fixture.HA, netip.MustParseAddr("2001:db8:1::999")); ok {
		t.Error("BAckSPI found an SA for a home address no MN has")
	}

	metrics := func() mip6.HAStats {
		t.Helper()
		m, ok := ha.MobilityMetrics()
		if !ok {
			t.Fatal("no mobility metrics")
		}
		return m.HA
	}
	binding := func(hoa netip.Addr) (mip6.BindingStatus, bool) {
		t.Helper()
		bs, err := ha.Bindings()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.HoA == hoa {
				return b, true
			}
		}
		return mip6.BindingStatus{}, false
	}
	deliver := func(p []byte, from netip.Addr) {
		t.Helper()
		err := uHA.Inject(underlaytest.Msg{Data: p,
			Src: endpoint.Endpoint{Addr: netip.AddrPortFrom(from, 0), Encap: endpoint.EncapIP},
			Dst: endpoint.Endpoint{Addr: netip.AddrPortFrom(fixture.HA, 0), Encap: endpoint.EncapIP}})
		if err != nil {
			t.Fatal(err)
		}
	}
	sent := func(spi uint32) uint64 {
		t.Helper()
		sa := db.Outbound(spi)
		if sa == nil {
			t.Fatalf("no outbound SA %#x", spi)
		}
		return sa.Stats().Packets
	}
	inStats := func(spi uint32) sad.Stats {
		t.Helper()
		sa := db.Inbound(spi)
		if sa == nil {
			t.Fatalf("no inbound SA %#x", spi)
		}
		return sa.Stats()
	}

	// 1. MN2's home address on MN1's SA: the SA's selectors (hoa1[mh/5])
	// refuse the decrypted packet; nothing reaches the mobility layer.
	deliver(dr7BU(t, mn1.seal, hoa2, coa1, 1), coa1)
	eventually(t, "the selector drop on MN1's SA", func() bool {
		return inStats(mn1.c.InSPI).Drops[esp.DropSelector] == 1
	})

	// 2. A BU child whose selectors pin no single home address (two
	// authorized ones): the selector check lets a BU for either through,
	// and DR-7 drops it (HomeAddressOf knows no home address for the SA).
	hoa3, hoa3b := netip.MustParseAddr("2001:db8:1::300"), netip.MustParseAddr("2001:db8:1::301")
	coa3 := netip.MustParseAddr("2001:db8:4::300")
	mn3 := dr7Child(t, k, mnSAD, hoa3, coa3, 3, 0, []string{hoa3.String() + "[mh/5]", hoa3b.String() + "[mh/5]"}, hoa3, hoa3b)
	if a, ok := db.HomeAddressOf(mn3.c.InSPI); ok {
		t.Errorf("HomeAddressOf an SA of two home addresses: %v", a)
	}
	deliver(dr7BU(t, mn3.seal, hoa3, coa3, 1), coa3)
	eventually(t, "the DR-7 drop", func() bool { return metrics().BURejected["dr7-wrong-sa"] == 1 })
	if st := inStats(mn3.c.InSPI); st.Packets != 1 || st.Dropped() != 0 {
		t.Errorf("MN3's inbound SA: %+v, want the BU opened", st)
	}

	// 3. MN1's BU on its own SA is accepted and answered on MN1's SA2.
	deliver(dr7BU(t, mn1.seal, hoa1, coa1, 2), coa1)
	eventually(t, "MN1's binding", func() bool {
		b, ok := binding(hoa1)
		return ok && len(b.CoAs) == 1 && b.CoAs[0].Addr == coa1
	})
	eventually(t, "the BA to MN1", func() bool { return metrics().BAsSent == 1 })
	st := metrics()
	if st.BUAccepted != 1 || st.BURejected["dr7-wrong-sa"] != 1 || len(st.BURejected) != 1 {
		t.Errorf("after MN1's BU: accepted %d, rejected %v", st.BUAccepted, st.BURejected)
	}
	// The one BA sent went on MN1's SA: the BUs of steps 1 and 2 (queued
	// before, handled in order) were not answered.
	if n1, n2, n3 := sent(mn1.c.OutSPI), sent(mn2.c.OutSPI), sent(mn3.c.OutSPI); n1 != 1 || n2 != 0 || n3 != 0 {
		t.Errorf("BAs on MN1's, MN2's, MN3's SAs: %d %d %d; want 1 0 0", n1, n2, n3)
	}
	for _, a := range []netip.Addr{hoa2, hoa3, hoa3b} {
		if b, ok := binding(a); ok {
			t.Errorf("a binding for %v: %+v", a, b)
		}
	}
	if !hl.has(hoa1) || hl.has(hoa2) {
		t.Errorf("home link entries: %v %v", hl.has(hoa1), hl.has(hoa2))
	}

	// MN2's own BU on MN2's SA is accepted too: DR-7 tells the SAs apart.
	deliver(dr7BU(t, mn2.seal, hoa2, coa2, 1), coa2)
	eventually(t, "MN2's binding", func() bool {
		b, ok := binding(hoa2)
		return ok && len(b.CoAs) == 1 && b.CoAs[0].Addr == coa2
	})
	eventually(t, "the BA to MN2", func() bool { return sent(mn2.c.OutSPI) == 1 })

	// 4. Rekey of MN1's child (RFC 7296 §2.8): the new child, then the
	// old SAs deleted.
	old := mn1
	mn1 = dr7Child(t, k, mnSAD, hoa1, coa1, 4, old.c.OutSPI, []string{hoa1.String() + "[mh/5]"})
	if mn1.c.PolicyName != old.c.PolicyName {
		t.Fatalf("rekeyed child's policies %q, want %q", mn1.c.PolicyName, old.c.PolicyName)
	}
	// Until the old SAs go, the SAD query names the new outbound SA, as
	// the policies do (sad.DB.Supersede), although its SPI is the higher.
	if spi, ok := mip6.BAckSPI(db, fixture.HA, hoa1); !ok || spi != mn1.c.OutSPI || spi < old.c.OutSPI {
		t.Errorf("BAckSPI between the rekey and the old SA's delete = %#x, %v; want the new %#x (old %#x)", spi, ok, mn1.c.OutSPI, old.c.OutSPI)
	}
	if err := k.DelSA(true, old.c.InSPI); err != nil {
		t.Fatal(err)
	}
	if err := k.DelSA(false, old.c.OutSPI); err != nil {
		t.Fatal(err)
	}
	if a, ok := db.HomeAddressOf(old.c.InSPI); ok {
		t.Errorf("HomeAddressOf the deleted SPI %#x = %v", old.c.InSPI, a)
	}
	if a, ok := db.HomeAddressOf(mn1.c.InSPI); !ok || a != hoa1 {
		t.Errorf("HomeAddressOf the new SPI %#x = %v, %v; want %v", mn1.c.InSPI, a, ok, hoa1)
	}
	if spi, ok := mip6.BAckSPI(db, fixture.HA, hoa1); !ok || spi != mn1.c.OutSPI {
		t.Errorf("BAckSPI after the rekey = %#x, %v; want %#x", spi, ok, mn1.c.OutSPI)
	}
	if spi, ok := mip6.BAckSPI(db, fixture.HA, hoa2); !ok || spi != mn2.c.OutSPI {
		t.Errorf("MN2's BAckSPI after MN1's rekey = %#x, %v; want %#x", spi, ok, mn2.c.OutSPI)
	}

	// A BU on the new SA is accepted and answered on the new SA2.
	before, _ := binding(hoa1)
	deliver(dr7BU(t, mn1.seal, hoa1, coa1, 3), coa1)
	eventually(t, "MN1's BU on the rekeyed SA", func() bool {
		b, ok := binding(hoa1)
		return ok && b.Seq == 3
	})
	eventually(t, "the BA on the rekeyed SA", func() bool { return sent(mn1.c.OutSPI) == 1 })
	if before.Seq != 2 {
		t.Errorf("MN1's binding before the rekeyed BU: seq %d, want 2", before.Seq)
	}

	// One on the deleted SPI finds no SA.
	unknown := ha.Stats().Drops["unknown_spi"]
	accepted := metrics().BUAccepted
	deliver(dr7BU(t, old.seal, hoa1, coa1, 4), coa1)
	eventually(t, "the BU on the deleted SA dropped", func() bool { return ha.Stats().Drops["unknown_spi"] == unknown+1 })
	if b, _ := binding(hoa1); b.Seq != 3 {
		t.Errorf("the BU on the deleted SA moved MN1's binding to seq %d", b.Seq)
	}
	if st := metrics(); st.BUAccepted != accepted || st.Received != 4 {
		t.Errorf("after the BU on the deleted SA: accepted %d (was %d), received %d (want 4: steps 2, 3, MN2's, the rekeyed one)",
			st.BUAccepted, accepted, st.Received)
	}
}
