package e2e

// Mobile IPv6 keyed by IKEv2 (RFC 4877 §7): the home agent and the mobile
// node of cmd/mipsec/examples/ha-ike.toml and mn-ike.toml, no manual key
// anywhere, in the mobility lab of mobility_test.go.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/netlab"
)

const (
	mobExampleHAIKE = "../cmd/mipsec/examples/ha-ike.toml"
	mobExampleMNIKE = "../cmd/mipsec/examples/mn-ike.toml"
	// mobIKEConn is the MN's connection to its home agent.
	mobIKEConn = "home-agent"
)

// newMobIKELab is newMobLab on the IKE-keyed examples, with a fresh PSK
// (mode 0600) in place of /etc/mipsec/ha-mn.psk.
func newMobIKELab(t *testing.T, o mobOptions) *mobLab {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	psk := filepath.Join(t.TempDir(), "ha-mn.psk")
	if err := os.WriteFile(psk, []byte("0x"+hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withPSK := func(edit func(string) string) func(string) string {
		return func(s string) string {
			s = strings.ReplaceAll(s, "/etc/mipsec/ha-mn.psk", psk)
			if edit != nil {
				s = edit(s)
			}
			return s
		}
	}
	o.haExample, o.mnExample = mobExampleHAIKE, mobExampleMNIKE
	o.haEdit, o.mnEdit = withPSK(o.haEdit), withPSK(o.mnEdit)
	return newMobLab(t, o)
}

// mobIKESA is g's only established IKE SA, failing the test otherwise.
func mobIKESA(t *testing.T, g *gateway) control.IKESAInfo {
	t.Helper()
	sas, err := ikeList(g)
	if err != nil {
		t.Fatalf("%s: %v", g.name, err)
	}
	var up []control.IKESAInfo
	for _, sa := range sas {
		if sa.State == "established" {
			up = append(up, sa)
		}
	}
	if len(up) != 1 {
		t.Fatalf("%s: %d established IKE SAs, want 1: %+v", g.name, len(up), sas)
	}
	return up[0]
}

// waitIKEEndpoint waits until g's IKE SA has its peer (remote) or its own
// address (local) at addr.
func waitIKEEndpoint(t *testing.T, g *gateway, remote bool, addr netip.Addr, why string) control.IKESAInfo {
	t.Helper()
	var sa control.IKESAInfo
	err := netlab.Poll(context.Background(), 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		sas, err := ikeList(g)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range sas {
			if s.State != "established" {
				continue
			}
			sa = s
			got := s.Local
			if remote {
				got = s.Remote
			}
			if ap, err := netip.ParseAddrPort(got); err == nil && ap.Addr().Unmap() == addr {
				return true, ""
			}
			return false, fmt.Sprintf("IKE SA local %s remote %s, want %s at %v", s.Local, s.Remote, map[bool]string{true: "remote", false: "local"}[remote], addr)
		}
		return false, fmt.Sprintf("no established IKE SA: %+v", sas)
	})
	if err != nil {
		t.Fatalf("%s: %s: %v", g.name, why, err)
	}
	return sa
}

// TestMobilityIKE: the MN brings up its four children (BU/BA, MPD, HoTi/HoT,
// payload; RFC 4877 §7.2) with IKE from its IPv6 care-of address and
// registers with IKE-made SAs only; a TCP stream from the home address then
// runs while it moves A (IPv6) -> B (IPv4 behind the NAT) -> A, with a
// rekey of the payload child and of the IKE SA started in the middle of the
// move to B. After each move the
// HA's IKE SA has the MN's new address as its peer and the MN's has the
// new care-of address as its own (the K flag, RFC 4877 §7.4), with no new
// IKE SA; the stream's bytes arrive intact, and no packet is refused as a
// replay.
func TestMobilityIKE(t *testing.T) {
	l := newMobIKELab(t, mobOptions{})
	l.waitRegistered(mobCoA6, 20*time.Second)
	mnSA, haSA := mobIKESA(t, l.mn), mobIKESA(t, l.ha)
	if len(mnSA.Children) != 4 || len(haSA.Children) != 4 {
		t.Fatalf("children: MN %+v, HA %+v; want bu, mpd, hoti and payload on both", mnSA.Children, haSA.Children)
	}
	if haSA.RemoteID != mobHoA.String() || !strings.HasPrefix(haSA.Remote, "["+mobCoA6.String()+"]") {
		t.Errorf("HA's IKE SA: remote %s (%s); want the home address as identity from the care-of address %v", haSA.Remote, haSA.RemoteID, mobCoA6)
	}
	if haSA.HomeAddress != mobHoA.String() || mnSA.HomeAddress != mobHoA.String() {
		t.Errorf("ike list: home address %q on the HA, %q on the MN; want %v", haSA.HomeAddress, mnSA.HomeAddress, mobHoA)
	}
	for _, ch := range haSA.Children {
		if len(ch.RemoteTS) == 0 || !strings.HasPrefix(ch.RemoteTS[0], mobHoA.String()) {
			t.Errorf("HA child %s: remote selectors %v; want narrowed to the home address %v (PAD)", ch.Name, ch.RemoteTS, mobHoA)
		}
	}
	mustPing(t, l.CN, mobCN6, mobHoA, 3)
	mustPing(t, l.CN, mobCN4, mobHoA4, 3)

	st := startMobStream(t, l)
	defer st.abort()
	if err := netlab.Poll(context.Background(), 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		return st.sent() > 0, "the TCP stream sent nothing on access A"
	}); err != nil {
		t.Fatal(err)
	}
	spis := map[string]bool{mnSA.SPIi.String(): true}
	for i, to := range []netlab.Access{netlab.AccessB, netlab.AccessA} {
		if _, err := l.MoveTo(context.Background(), to); err != nil {
			t.Fatal(err)
		}
		var rekeys chan error
		if to == netlab.AccessB {
			// RFC 7296 §2.8 make-before-break in the middle of the
			// handover, behind the NAT: the payload child, then the IKE
			// SA, whose requests wait until the IKE SA follows the MN.
			rekeys = make(chan error, 1)
			go func() {
				for _, args := range [][]string{{"ike", "rekey", mobIKEConn, "payload"}, {"ike", "rekey", mobIKEConn}} {
					if out, err := l.mn.ctl(args...); err != nil {
						rekeys <- fmt.Errorf("mipsec %s: %v\n%s", strings.Join(args, " "), err, out)
						return
					}
				}
				rekeys <- nil
			}()
		}
		l.waitRegistered(to.CoA(), 20*time.Second)
		if rekeys != nil {
			if err := <-rekeys; err != nil {
				t.Fatal(err)
			}
			spis[mobIKESA(t, l.mn).SPIi.String()] = true // the rekeyed IKE SA
		}
		want := to.CoA()
		if to == netlab.AccessB {
			want = netlab.MobNATAddr
		}
		waitIKEEndpoint(t, l.ha, true, want, fmt.Sprintf("move %d to %v: the HA's IKE SA follows the BU with K", i+1, to))
		sa := waitIKEEndpoint(t, l.mn, false, to.CoA(), fmt.Sprintf("move %d to %v: the MN's IKE SA follows the BA with K", i+1, to))
		if !spis[sa.SPIi.String()] {
			t.Errorf("move %d: a new IKE SA %v; the K flag should have moved the old one", i+1, sa.SPIi)
		}
		before := st.sent()
		if err := netlab.Poll(context.Background(), 15*time.Second, 100*time.Millisecond, func() (bool, string) {
			return st.sent() > before+256<<10, fmt.Sprintf("the TCP stream is stuck at %d bytes after move %d to %v", st.sent(), i+1, to)
		}); err != nil {
			t.Fatal(err)
		}
	}
	r := st.finish()
	if r.err != nil {
		t.Fatalf("the TCP stream across A -> B -> A: %v", r.err)
	}
	t.Logf("TCP across both moves: %v", r.res)
	for _, g := range []*gateway{l.mn, l.ha} {
		if n := replayDrops(t, g); n != 0 {
			t.Errorf("%s: %d packets refused as replays", g.name, n)
		}
		is := ikeStats(t, g)
		if is.Relocations < 2 {
			t.Errorf("%s: %d IKE SA relocations, want one per move (2)", g.name, is.Relocations)
		}
	}
	mustPing(t, l.CN, mobCN4, mobHoA4, 3)
}

// TestMobilityIKEForeignHoA: an MN that proves its own identity (the home
// address 2001:db8:1::100) but asks for SAs for another home address is
// refused by the HA's PAD (RFC 4877 §4.2): TS_UNACCEPTABLE for every child,
// counted, nothing installed, and no binding.
func TestMobilityIKEForeignHoA(t *testing.T) {
	other, other4 := "2001:db8:1::200", "192.0.2.200"
	l := newMobIKELab(t, mobOptions{mnEdit: func(s string) string {
		// Everything of the other mobile node's home addresses, but the
		// identity.
		s = strings.ReplaceAll(s, `"`+mobHoA.String(), `"`+other)
		s = strings.ReplaceAll(s, `"`+mobHoA4.String(), `"`+other4)
		return strings.Replace(s, `id = "`+other+`"`, `id = "`+mobHoA.String()+`"`, 1)
	}})
	err := netlab.Poll(context.Background(), 10*time.Second, 100*time.Millisecond, func() (bool, string) {
		is := ikeStats(t, l.ha)
		return is.Failures["pad"] >= 4, fmt.Sprintf("HA failures %v", is.Failures)
	})
	if err != nil {
		t.Fatalf("the PAD refusals: %v", err)
	}
	sa := mobIKESA(t, l.ha)
	if len(sa.Children) != 0 {
		t.Errorf("HA: children %+v for a foreign home address", sa.Children)
	}
	if bs, err := l.bindings(); err != nil || len(bs) != 0 {
		t.Errorf("HA bindings %+v (%v), want none", bs, err)
	}
}

// TestMobilityIKENoK: with the K flag off on either side (RFC 4877 §7.4:
// the MN's BUs without K, or the HA's BAs without it), the IKE SA does not
// move with the MN: after the move to B the MN negotiates a new IKE SA from
// its IPv4 care-of address (to the HA's IPv4 address, behind the NAT), the
// HA drops the old one on its INITIAL_CONTACT, and traffic to the home
// addresses flows on the new children.
func TestMobilityIKENoK(t *testing.T) {
	noK := func(s string) string {
		return strings.Replace(s, "[mobility]\n", "[mobility]\nk_flag = false\n", 1)
	}
	for _, tc := range []struct {
		name string
		o    mobOptions
	}{{"mn", mobOptions{mnEdit: noK}}, {"ha", mobOptions{haEdit: noK}}} {
		t.Run("off on the "+tc.name, func(t *testing.T) {
			l := newMobIKELab(t, tc.o)
			l.waitRegistered(mobCoA6, 20*time.Second)
			old := mobIKESA(t, l.mn).SPIi
			if _, err := l.MoveTo(context.Background(), netlab.AccessB); err != nil {
				t.Fatal(err)
			}
			l.waitRegistered(mobCoA4, 20*time.Second)
			sa := waitIKEEndpoint(t, l.mn, false, mobCoA4, "the MN's new IKE SA from its IPv4 care-of address")
			if sa.SPIi == old || len(sa.Children) != 4 {
				t.Fatalf("MN: IKE SA %v with %d children; want a new one (not %v) with all 4", sa.SPIi, len(sa.Children), old)
			}
			if ap, err := netip.ParseAddrPort(sa.Remote); err != nil || ap.Addr() != netlab.MobHAV4 {
				t.Errorf("MN: the new IKE SA goes to %s, want the HA's IPv4 address %v", sa.Remote, netlab.MobHAV4)
			}
			waitIKEEndpoint(t, l.ha, true, netlab.MobNATAddr, "the HA's IKE SA is the new one, behind the NAT")
			if err := netlab.Poll(context.Background(), 10*time.Second, 100*time.Millisecond, func() (bool, string) {
				sas, err := ikeList(l.ha)
				return err == nil && len(sas) == 1, fmt.Sprintf("HA IKE SAs %+v (%v); want the old one gone (INITIAL_CONTACT)", sas, err)
			}); err != nil {
				t.Error(err)
			}
			if mn, ha := ikeStats(t, l.mn), ikeStats(t, l.ha); mn.Renewals != 1 || mn.Relocations != 0 || ha.Relocations != 0 {
				t.Errorf("renewals %d (want 1), relocations MN %d HA %d (want 0)", mn.Renewals, mn.Relocations, ha.Relocations)
			}
			mustPing(t, l.CN, mobCN6, mobHoA, 3)
			mustPing(t, l.CN, mobCN4, mobHoA4, 3)
		})
	}
}

// TestMobilityIKEStartBehindNAT: the MN starts on access B, IPv4 only
// behind the NAT (DSMIPv6 with IKE, RFC 5555, RFC 4877 §7): its IKE goes to
// the HA's IPv4 address from the IPv4 care-of address, floats to UDP 4500
// (NAT detection, RFC 7296 §2.23), and it registers with IKE-made SAs; both
// home addresses are reachable.
func TestMobilityIKEStartBehindNAT(t *testing.T) {
	l := newMobIKELab(t, mobOptions{noMN: true})
	if _, err := l.MoveTo(context.Background(), netlab.AccessB); err != nil {
		t.Fatal(err)
	}
	l.mn.start()
	b := l.waitRegistered(mobCoA4, 30*time.Second)
	if p, _ := b.Primary(); !p.NAT {
		t.Errorf("binding %+v: want the NAT detected", p)
	}
	sa := waitIKEEndpoint(t, l.mn, false, mobCoA4, "the MN's IKE SA from its IPv4 care-of address")
	if ap, err := netip.ParseAddrPort(sa.Remote); err != nil || ap != netip.AddrPortFrom(netlab.MobHAV4, 4500) || !sa.Encap || !sa.NATLocal {
		t.Errorf("MN's IKE SA: remote %s encap %v nat_local %v; want %v:4500 in UDP behind the NAT", sa.Remote, sa.Encap, sa.NATLocal, netlab.MobHAV4)
	}
	waitIKEEndpoint(t, l.ha, true, netlab.MobNATAddr, "the HA sees the MN's IKE SA from the NAT")
	mustPing(t, l.CN, mobCN6, mobHoA, 3)
	mustPing(t, l.CN, mobCN4, mobHoA4, 3)
}
