package netlab

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/internal/testenv"
)

// reach pings dst from src in ns (3 tries of 500 ms); false when there is
// no reply or src cannot be bound (the address is gone).
func reach(t *testing.T, ns string, src, dst string) bool {
	t.Helper()
	p, err := NewPinger(ns, mustAddr(src), mustAddr(dst), []byte("netlab mobility"))
	if err != nil {
		return false
	}
	defer p.Close()
	rtt, err := p.Echo(context.Background(), 1, 3, 500*time.Millisecond)
	return err == nil && rtt > 0
}

// TestMobilityTopology builds the mobility topology without mipsec: the
// correspondent reaches the HA on the home link; on access A the MN reaches
// HAADDR over IPv6 and not HA_V4ADDR; after MoveTo(B) it reaches HA_V4ADDR
// with its source masqueraded to 198.51.100.2 (seen on the HA's transit
// link) and no longer HAADDR; MoveTo(A) flips it back; Close leaves no
// namespace.
func TestMobilityTopology(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "ip")
	testenv.NeedCommand(t, "nft")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	RemoveStale("mipsec-netlab")
	m, err := NewMobility(ctx, "mipsec-netlab", "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		nss := m.Namespaces()
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, ns := range nss {
			if strings.Contains(string(out), ns) {
				t.Errorf("namespace %s left after Close", ns)
			}
		}
	}()

	for _, p := range [][2]string{{"2001:db8:1::10", "2001:db8:1::1"}, {"192.0.2.10", "192.0.2.1"}} {
		if !reach(t, m.CN, p[0], p[1]) {
			t.Errorf("cn %s cannot reach ha %s on the home link", p[0], p[1])
		}
	}
	if m.At() != AccessA || !m.Up(AccessA) || m.Up(AccessB) {
		t.Fatalf("after NewMobility: at %v (A up %v, B up %v), want A only", m.At(), m.Up(AccessA), m.Up(AccessB))
	}
	checkA := func(when string) {
		t.Helper()
		if !reach(t, m.MN, MobCoA6.Addr().String(), MobHAAddr.String()) {
			t.Errorf("%s: mn %v cannot reach HAADDR %v over access A", when, MobCoA6.Addr(), MobHAAddr)
		}
		if reach(t, m.MN, MobCoA4.Addr().String(), MobHAV4.String()) {
			t.Errorf("%s: mn reaches HA_V4ADDR from %v with access B down", when, MobCoA4.Addr())
		}
	}
	checkA("on A")

	// On B: the HA sees the echo requests from the NAT's address only.
	capt, err := StartCaptureOpts(m.HA, MobDevHATransit, CaptureOptions{Keep: func(f Frame) bool { return f.Desc == "ICMP type 8 code 0" }})
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Close()
	mv, err := m.MoveTo(ctx, AccessB)
	if err != nil {
		t.Fatal(err)
	}
	if mv.From != AccessA || mv.To != AccessB || mv.Down.IsZero() || mv.Up.Before(mv.Down) || m.At() != AccessB {
		t.Errorf("MoveTo(B) = %+v, at %v", mv, m.At())
	}
	if !reach(t, m.MN, MobCoA4.Addr().String(), MobHAV4.String()) {
		t.Errorf("on B: mn %v cannot reach HA_V4ADDR %v", MobCoA4.Addr(), MobHAV4)
	}
	if reach(t, m.MN, MobCoA6.Addr().String(), MobHAAddr.String()) {
		t.Errorf("on B: mn still reaches HAADDR from %v", MobCoA6.Addr())
	}
	time.Sleep(100 * time.Millisecond)
	capt.Close()
	var fromNAT, fromCoA int
	for _, f := range capt.Kept() {
		if f.Out || len(f.Data) < 34 {
			continue
		}
		switch f.Src {
		case MobNATAddr.String():
			fromNAT++
		case MobCoA4.Addr().String():
			fromCoA++
		}
	}
	if fromNAT == 0 || fromCoA != 0 {
		t.Errorf("ICMP on the HA's transit link: %d from the NAT %v, %d from the CoA %v; want some from the NAT only",
			fromNAT, MobNATAddr, fromCoA, MobCoA4.Addr())
	}
	// IPv6 is off on access B at both ends.
	for _, ns := range []string{m.RT, m.MN} {
		dev := MobDevMNB
		if ns == m.RT {
			dev = MobDevRTB
		}
		if err := InNetns(ns, func() error {
			b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6")
			if err == nil && strings.TrimSpace(string(b)) != "1" {
				t.Errorf("%s: IPv6 enabled on %s", ns, dev)
			}
			return err
		}); err != nil {
			t.Error(err)
		}
	}

	mv, err = m.MoveTo(ctx, AccessA)
	if err != nil {
		t.Fatal(err)
	}
	if mv.From != AccessB || mv.To != AccessA || m.At() != AccessA {
		t.Errorf("MoveTo(A) = %+v, at %v", mv, m.At())
	}
	checkA("back on A")

	// Both up (a forced move with the old link usable), then none.
	if err := m.SetLink(ctx, AccessB, true); err != nil {
		t.Fatal(err)
	}
	if m.At() != AccessNone || !reach(t, m.MN, MobCoA4.Addr().String(), MobHAV4.String()) ||
		!reach(t, m.MN, MobCoA6.Addr().String(), MobHAAddr.String()) {
		t.Errorf("both links up: at %v; want both HA addresses reachable", m.At())
	}
	if _, err := m.MoveTo(ctx, Access(7)); err == nil {
		t.Error("MoveTo(7) succeeded")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestClassifyMobility: the mobility signaling forms are ESP with their
// flags; UDP 4191 without ESP inside, and HAO without ESP behind it, are
// Other.
func TestClassifyMobility(t *testing.T) {
	hoa := make([]byte, 16)
	// Destination Options: next header, length 2 (24 bytes): PadN(4),
	// HAO (type 201, 16 bytes); RFC 6275 §6.3 alignment 8n+6.
	dstopts := func(next byte) []byte {
		b := []byte{next, 2, 1, 2, 0, 0, 201, 16}
		return append(b, hoa...)
	}
	// Type 2 Routing header: next, length 2, type 2, segments left 1,
	// reserved, the home address.
	rh2 := func(next byte) []byte { return append([]byte{next, 2, 2, 1, 0, 0, 0, 0}, hoa...) }
	inner6 := func(next byte, l4 []byte) []byte {
		h := make([]byte, 40, 40+len(l4))
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
		h[6], h[7] = next, 64
		return append(h, l4...)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  Frame
	}{
		{"BU from an IPv6 CoA", ipv6(unix.IPPROTO_DSTOPTS, append(dstopts(unix.IPPROTO_ESP), espHdr(0x101, 5)...)),
			Frame{Kind: ESP, SPI: 0x101, Seq: 5, Src: "2001:db8:ff::1", HAO: true}},
		{"BA to an IPv6 CoA", ipv6(unix.IPPROTO_ROUTING, append(rh2(unix.IPPROTO_ESP), espHdr(0x102, 6)...)),
			Frame{Kind: ESP, SPI: 0x102, Seq: 6, Src: "2001:db8:ff::1", RH2: true}},
		{"HAO then cleartext MH", ipv6(unix.IPPROTO_DSTOPTS, append(dstopts(135), make([]byte, 16)...)),
			Frame{Src: "2001:db8:ff::1", Desc: "IPv6 with HAO/RH2, then IP protocol 135"}},
		{"truncated destination options", ipv6(unix.IPPROTO_DSTOPTS, []byte{50, 9, 1, 0}),
			Frame{Src: "2001:db8:ff::1", Desc: "IP protocol 60"}},
		{"BU in UDP 4191", ipv4(unix.IPPROTO_UDP, 0, udp(4500, 4191, inner6(unix.IPPROTO_ESP, espHdr(0x101, 7, 0xaa)))),
			Frame{Kind: ESP, SPI: 0x101, Seq: 7, Src: "198.51.100.1", SrcPort: 4500, DSMIP: true}},
		{"BA from UDP 4191 to the NAT's 4500", ipv4(unix.IPPROTO_UDP, 0, udp(4191, 4500, inner6(unix.IPPROTO_ESP, espHdr(0x102, 8)))),
			Frame{Kind: ESP, SPI: 0x102, Seq: 8, Src: "198.51.100.1", SrcPort: 4191, DSMIP: true}},
		{"cleartext MH in UDP 4191", ipv4(unix.IPPROTO_UDP, 0, udp(4500, 4191, inner6(135, make([]byte, 16)))),
			Frame{Src: "198.51.100.1", Desc: "UDP 4500->4191 without ESP, 56 bytes"}},
		{"garbage in UDP 4191", ipv4(unix.IPPROTO_UDP, 0, udp(40000, 4191, []byte("garbage"))),
			Frame{Src: "198.51.100.1", Desc: "UDP 40000->4191 without ESP, 7 bytes"}},
	} {
		got := Classify(tc.frame)
		if got != tc.want {
			t.Errorf("%s: Classify = %+v, want %+v", tc.name, got, tc.want)
		}
		if got.Signaling() != (got.DSMIP || got.HAO || got.RH2) || got.Signaling() && got.Kind != ESP {
			t.Errorf("%s: Signaling() = %v for %+v", tc.name, got.Signaling(), got)
		}
	}
	var s Stats
	s.AddAt(ipv6(unix.IPPROTO_ROUTING, append(rh2(unix.IPPROTO_ESP), espHdr(0x102, 6)...)), false, nil, time.Unix(5, 0))
	s.Add(ipv4(unix.IPPROTO_UDP, 0, udp(4500, 4191, inner6(unix.IPPROTO_ESP, espHdr(0x101, 7)))), true, nil)
	s.Add(ipv6(unix.IPPROTO_ESP, espHdr(0x7, 1)), true, nil)
	if d, h, r := s.Signaling(); d != 1 || h != 0 || r != 1 {
		t.Errorf("Signaling() = %d, %d, %d; want 1, 0, 1", d, h, r)
	}
	if !s.ESP[0].Signaling() || !s.ESP[0].Time.Equal(time.Unix(5, 0)) || s.ESP[0].Len == 0 || s.ESP[2].Signaling() {
		t.Errorf("ESP packets %+v", s.ESP)
	}
	if sum := s.Summary(); !strings.Contains(sum, "signaling: 1 in UDP 4191, 0 with HAO, 1 with RH2") {
		t.Errorf("Summary() = %q", sum)
	}
}

func TestHandoverAfter(t *testing.T) {
	t0 := time.Unix(50, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	s := Stats{ESP: []ESPPacket{
		{SPI: 8, Out: true, Time: at(-1)},
		{SPI: 1, DSMIP: true, Time: at(10)},
		{SPI: 7, Time: at(15)},
		{SPI: 1, DSMIP: true, Time: at(16)}, // a retransmission: not the first
		{SPI: 2, DSMIP: true, Out: true, Time: at(20)},
		{SPI: 8, UDP: true, Out: true, Time: at(30)},
	}}
	h := s.HandoverAfter(t0)
	if !h.BU.Equal(at(10)) || !h.BA.Equal(at(20)) || !h.ToMN.Equal(at(30)) || !h.FromMN.Equal(at(15)) {
		t.Errorf("HandoverAfter = %+v", h)
	}
	if h := s.HandoverAfter(at(25)); !h.BU.IsZero() || !h.BA.IsZero() || !h.FromMN.IsZero() || !h.ToMN.Equal(at(30)) {
		t.Errorf("HandoverAfter(25ms) = %+v", h)
	}
}
