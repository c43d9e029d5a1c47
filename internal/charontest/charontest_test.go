//go:build linux

package charontest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongswan/govici/vici"

	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testns"
)

// ---- configuration rendering (no root) ---------------------------------------

func TestStrongswanConf(t *testing.T) {
	got := strongswanConf(DefaultPlugins, map[string]int{"ike": 4, "default": 1},
		map[string]string{"retransmit_tries": "3", "plugins.kernel-libipsec.allow_peer_ts": "yes"}, "/tmp/x/charon.vici")
	for _, want := range []string{
		"charon {\n",
		"  retransmit_tries = 3\n",
		"  plugins {\n    kernel-libipsec {\n      allow_peer_ts = yes\n    }\n    vici {\n      socket = unix:///tmp/x/charon.vici\n    }\n  }\n",
		"  filelog {\n    stderr {\n      default = 1\n      ike = 4\n",
		"      time_format = %H:%M:%S\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("strongswan.conf lacks %q:\n%s", want, got)
		}
	}
	load := ""
	for _, l := range strings.Split(got, "\n") {
		if s, ok := strings.CutPrefix(l, "  load = "); ok {
			load = " " + strings.Trim(s, `"`) + " "
		}
	}
	li, ln := strings.Index(load, " kernel-libipsec "), strings.Index(load, " kernel-netlink ")
	if li < 0 || ln < 0 || li > ln {
		t.Errorf("load list %q: kernel-libipsec must come before kernel-netlink", load)
	}
	for _, p := range []string{"kdf", "vici", "socket-default", "openssl", "curve25519"} {
		if !strings.Contains(load, " "+p+" ") {
			t.Errorf("load list %q lacks %s", load, p)
		}
	}
	if strings.Contains(load, " updown ") || strings.Contains(load, " stroke ") {
		t.Errorf("load list %q: no updown, no stroke", load)
	}
}

func TestSwanctlConf(t *testing.T) {
	dir := t.TempDir()
	crt := filepath.Join(dir, "moon.crt")
	os.WriteFile(crt, []byte("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"), 0o600)
	conn := Conn{
		Name:        "gw",
		LocalAddrs:  []string{"192.0.2.1"},
		RemoteAddrs: []string{"192.0.2.2", "2001:db8::2"},
		Proposals:   []string{"aes128gcm16-prfsha256-curve25519"},
		Encap:       true,
		MOBIKE:      new(false),
		DPDDelay:    1500 * time.Millisecond, // rounds up to 2s
		Local:       Auth{Auth: "pubkey", ID: "C=CH, O=test, CN=moon", Certs: []string{crt}},
		Remote:      Auth{Auth: "psk", ID: "sun"},
		Children: map[string]Child{
			"z": {LocalTS: []string{"198.51.100.1/32"}, RemoteTS: []string{"203.0.113.0/24"}, ESPProposals: []string{"aes128gcm16"}, Mode: "tunnel", ReplayWindow: new(0)},
			"a": {StartAction: "trap"},
		},
		Extra: map[string]string{"aggressive": "no"},
	}
	got, err := swanctlConf([]Conn{conn}, []shared{{name: "ike-1", owners: []string{"moon", "sun"}, secret: []byte("s e\"c")}})
	if err != nil {
		t.Fatal(err)
	}
	want := `# written by internal/charontest: the configuration loaded over vici
connections {
  gw {
    version = 2
    local_addrs = 192.0.2.1
    remote_addrs = 192.0.2.2, 2001:db8::2
    proposals = aes128gcm16-prfsha256-curve25519
    encap = yes
    mobike = no
    dpd_delay = 2s
    aggressive = no
    local {
      auth = pubkey
      id = "C=CH, O=test, CN=moon"
      certs = ` + crt + `
    }
    remote {
      auth = psk
      id = sun
    }
    children {
      a {
        start_action = trap
      }
      z {
        local_ts = 198.51.100.1/32
        remote_ts = 203.0.113.0/24
        esp_proposals = aes128gcm16
        mode = tunnel
        replay_window = 0
      }
    }
  }
}
secrets {
  ike-1 {
    id-1 = moon
    id-2 = sun
    secret = 0x7320652263
  }
}
`
	if got != want {
		t.Errorf("swanctl.conf:\n%s\nwant:\n%s", got, want)
	}

	// The vici message carries the certificate's contents, not its name.
	tr, err := conn.tree()
	if err != nil {
		t.Fatal(err)
	}
	m, err := tr.message()
	if err != nil {
		t.Fatal(err)
	}
	local, _ := m.Get("local").(*vici.Message)
	if certs, _ := local.Get("certs").([]string); len(certs) != 1 || !strings.HasPrefix(certs[0], "-----BEGIN CERTIFICATE-----") {
		t.Errorf("vici local.certs = %q", certs)
	}
	conn.Local.Certs = []string{filepath.Join(dir, "missing.crt")}
	if tr, _ := conn.tree(); tr != nil {
		if _, err := tr.message(); err == nil {
			t.Error("a missing certificate file: no error")
		}
	}

	for _, bad := range []Conn{{}, {Name: "a b"}, {Name: "a.b"}, {Name: "x", Children: map[string]Child{"c{": {}}}} {
		if _, err := bad.tree(); err == nil {
			t.Errorf("connection %q / children %v: no error", bad.Name, bad.Children)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"":             `""`,
		"a b":          `"a b"`,
		`x"y\z`:        `"x\"y\\z"`,
		"n\nl":         `"n\nl"`,
		"CN=x, O=y":    `"CN=x, O=y"`,
		"a#b":          `"a#b"`,
		"%H:%M:%S":     "%H:%M:%S",
		"{":            `"{"`,
		"198.51.100.1": "198.51.100.1",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// ---- parsing of list-sas and events (no root) ---------------------------------

// msg builds a vici message from alternating keys and values.
func msg(t *testing.T, kv ...any) *vici.Message {
	t.Helper()
	m := vici.NewMessage()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := m.Set(kv[i].(string), kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func childMsg(t *testing.T, spiIn, spiOut string) *vici.Message {
	return msg(t, "name", "net", "uniqueid", "3", "reqid", "1", "state", "INSTALLED", "mode", "TUNNEL",
		"protocol", "ESP", "encap", "yes", "spi-in", spiIn, "spi-out", spiOut, "encr-alg", "AES_GCM_16",
		"encr-keysize", "128", "bytes-in", "84", "packets-in", "1", "bytes-out", "168", "packets-out", "2",
		"rekey-time", "3310", "life-time", "3956", "install-time", "4",
		"local-ts", []string{"198.51.100.1/32"}, "remote-ts", []string{"203.0.113.1/32"})
}

func ikeMsg(t *testing.T, ispi string, children *vici.Message) *vici.Message {
	kv := []any{"uniqueid", "1", "version", "2", "state", "ESTABLISHED", "local-host", "192.0.2.1",
		"local-port", "4500", "local-id", "192.0.2.1", "remote-host", "2001:db8::2", "remote-port", "4500",
		"remote-id", "192.0.2.2", "initiator", "yes", "initiator-spi", ispi, "responder-spi", "cc7d6b3f4b8b3a62",
		"nat-remote", "yes", "nat-any", "yes", "encr-alg", "AES_GCM_16", "encr-keysize", "128",
		"prf-alg", "PRF_HMAC_SHA2_256", "dh-group", "CURVE_25519", "established", "4", "rekey-time", "13085"}
	if children != nil {
		kv = append(kv, "child-sas", children)
	}
	return msg(t, kv...)
}

func TestParseIKESA(t *testing.T) {
	m := ikeMsg(t, "b50cef404cdf6505", msg(t, "net-3", childMsg(t, "6e76eaad", "8b6b584a")))
	sa, err := parseIKESA("ike", m)
	if err != nil {
		t.Fatal(err)
	}
	if sa.Name != "ike" || sa.State != "ESTABLISHED" || sa.Version != 2 || !sa.Initiator ||
		sa.InitiatorSPI != 0xb50cef404cdf6505 || sa.ResponderSPI != 0xcc7d6b3f4b8b3a62 ||
		sa.Local != netip.MustParseAddrPort("192.0.2.1:4500") || sa.Remote != netip.MustParseAddrPort("[2001:db8::2]:4500") ||
		!sa.NATRemote || sa.NATLocal || sa.Encr != "AES_GCM_16" || sa.EncrKeySize != 128 || sa.Integ != "" ||
		sa.PRF != "PRF_HMAC_SHA2_256" || sa.DH != "CURVE_25519" || sa.Established != 4*time.Second || sa.RekeyIn != 13085*time.Second {
		t.Errorf("IKE SA %+v", sa)
	}
	if len(sa.Children) != 1 {
		t.Fatalf("children %+v", sa.Children)
	}
	ch := sa.Children[0]
	if ch.Name != "net" || ch.SPIIn != 0x6e76eaad || ch.SPIOut != 0x8b6b584a || !ch.Encap || ch.Mode != "TUNNEL" ||
		ch.BytesOut != 168 || ch.PacketsIn != 1 || ch.LocalTS[0] != "198.51.100.1/32" || ch.RemoteTS[0] != "203.0.113.1/32" ||
		ch.LifeIn != 3956*time.Second || ch.ESN {
		t.Errorf("CHILD_SA %+v", ch)
	}
	if got := sa.Child("net"); len(got) != 1 || sa.Child("other") != nil {
		t.Errorf("Child(net) = %v", got)
	}
	sa.Children = append(sa.Children, ChildSA{Name: "net", State: "DELETED"})
	if got := sa.Installed("net"); len(got) != 1 || got[0].SPIIn != 0x6e76eaad || len(sa.Child("net")) != 2 {
		t.Errorf("Installed(net) = %v", got)
	}

	// Malformed values are errors, never panics; missing ones are zero.
	for _, bad := range []*vici.Message{
		ikeMsg(t, "not-hex", nil),
		ikeMsg(t, "b50cef404cdf650511", nil), // 72 bits
		msg(t, "local-host", "192.0.2.300"),
		msg(t, "local-host", "192.0.2.1", "local-port", "70000"),
		msg(t, "version", "-1"),
		ikeMsg(t, "01", msg(t, "net-1", childMsg(t, "1234567890", "1"))), // 40-bit SPI
		ikeMsg(t, "01", msg(t, "net-1", msg(t, "bytes-in", "many"))),
	} {
		if sa, err := parseIKESA("x", bad); err == nil {
			t.Errorf("%v: parsed as %+v", bad, sa)
		}
	}
	if sa, err := parseIKESA("x", msg(t, "child-sas", "not a section", "state", "CONNECTING")); err != nil || sa.State != "CONNECTING" || sa.Children != nil {
		t.Errorf("sparse SA: %+v, %v", sa, err)
	}
}

func TestParseEvent(t *testing.T) {
	now := time.Now()
	up := parseEvent(vici.Event{Name: "child-updown", Timestamp: now, Message: msg(t,
		"up", "yes", "ike", ikeMsg(t, "01", msg(t, "net-3", childMsg(t, "0000aaaa", "0000bbbb"))))})
	if up.Err != nil || up.Kind != ChildUpDown || !up.Up || up.IKE.Name != "ike" || up.Child.SPIIn != 0xaaaa || !up.Time.Equal(now) {
		t.Errorf("child-updown: %+v", up)
	}
	down := parseEvent(vici.Event{Name: "ike-updown", Message: msg(t, "ike", ikeMsg(t, "01", nil))})
	if down.Err != nil || down.Kind != IKEUpDown || down.Up || down.IKE.InitiatorSPI != 1 {
		t.Errorf("ike-updown: %+v", down)
	}
	rk := parseEvent(vici.Event{Name: "ike-rekey", Message: msg(t, "ike", msg(t, "old", ikeMsg(t, "01", nil), "new", ikeMsg(t, "02", nil)))})
	if rk.Err != nil || rk.OldIKE.InitiatorSPI != 1 || rk.IKE.InitiatorSPI != 2 || rk.IKE.Name != "ike" {
		t.Errorf("ike-rekey: %+v", rk)
	}
	crk := parseEvent(vici.Event{Name: "child-rekey", Message: msg(t, "ike",
		ikeMsg(t, "05", msg(t, "net-3", msg(t, "old", childMsg(t, "00000001", "00000002"), "new", childMsg(t, "00000003", "00000004")))))})
	if crk.Err != nil || crk.OldChild.SPIIn != 1 || crk.Child.SPIIn != 3 || crk.Child.SPIOut != 4 || crk.IKE.InitiatorSPI != 5 {
		t.Errorf("child-rekey: %+v", crk)
	}
	for name, m := range map[string]*vici.Message{
		"ike-rekey":    msg(t, "ike", msg(t, "old", ikeMsg(t, "01", nil))),
		"child-rekey":  msg(t, "ike", ikeMsg(t, "01", nil)),
		"child-updown": msg(t, "up", "yes"),
		"ike-updown":   msg(t, "ike", msg(t, "initiator-spi", "zz")),
	} {
		if e := parseEvent(vici.Event{Name: name, Message: m}); e.Err == nil {
			t.Errorf("%s %v: no error: %+v", name, m, e)
		}
	}
	if e := parseEvent(vici.Event{Name: "child-rekey"}); e.Err == nil {
		t.Error("an event without message: no error")
	}
}

func TestWaitEvent(t *testing.T) {
	var h hub
	ch := h.subscribe()
	h.publish(Event{Kind: IKEUpDown, Up: true})
	h.publish(Event{Kind: ChildUpDown, Up: true})
	e, err := WaitEvent(ch, time.Second, func(e Event) bool { return e.Kind == ChildUpDown })
	if err != nil || e.Kind != ChildUpDown {
		t.Fatalf("WaitEvent: %v %v", e, err)
	}
	if _, err := WaitEvent(ch, 20*time.Millisecond, func(Event) bool { return true }); err == nil {
		t.Error("no event: no timeout")
	}
	for range 1100 {
		h.publish(Event{Kind: IKERekey})
	}
	if h.droppedCount() != 1100-1024 {
		t.Errorf("dropped %d", h.droppedCount())
	}
	h.close()
	h.publish(Event{}) // after close: ignored
	for range ch {
	}
	if _, err := WaitEvent(ch, time.Second, func(Event) bool { return false }); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed channel: %v", err)
	}
	if _, ok := <-h.subscribe(); ok {
		t.Error("subscribe after close: open channel")
	}
}

// ---- charon in namespaces (root) ----------------------------------------------

var (
	innerA = netip.MustParseAddr("198.51.100.1")
	innerB = netip.MustParseAddr("203.0.113.1")
)

// pair is two namespaces joined by a veth, with inner addresses on lo,
// and a charon in each.
type pair struct {
	*testns.VethPair
	a, b *Charon
}

func newPair(t *testing.T) *pair { return newPairWith(t, Config{}, Config{}) }

// newPairWith is newPair with the Config fields of cfgA and cfgB (their
// Namespace, Dir and Name are filled in).
func newPairWith(t *testing.T, cfgA, cfgB Config) *pair {
	t.Helper()
	Need(t)
	p := &pair{VethPair: testns.NewVethPair(t)}
	for _, x := range []struct {
		ns   *testns.NS
		addr netip.Addr
	}{{p.A, innerA}, {p.B, innerB}} {
		lo, err := x.ns.NL.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		x.ns.AddAddr(t, lo, netip.PrefixFrom(x.addr, 32))
	}
	var err error
	cfgA.Namespace, cfgA.Dir, cfgA.Name = p.A.Name, t.TempDir(), "A"
	cfgB.Namespace, cfgB.Dir, cfgB.Name = p.B.Name, t.TempDir(), "B"
	if p.a, err = Start(t, cfgA); err != nil {
		t.Fatal(err)
	}
	if p.b, err = Start(t, cfgB); err != nil {
		t.Fatal(err)
	}
	return p
}

// conns are the two ends of one connection: A (initiator) and B.
func (p *pair) conns(local, remote Auth) (Conn, Conn) {
	ca := Conn{
		Name:        "ike",
		LocalAddrs:  []string{p.A4.String()},
		RemoteAddrs: []string{p.B4.String()},
		Proposals:   []string{"aes128gcm16-prfsha256-curve25519"},
		Encap:       true,
		Local:       local,
		Remote:      remote,
		Children: map[string]Child{"net": {
			LocalTS: []string{innerA.String() + "/32"}, RemoteTS: []string{innerB.String() + "/32"},
			ESPProposals: []string{"aes128gcm16"}, Mode: "tunnel",
		}},
	}
	cb := ca
	cb.LocalAddrs, cb.RemoteAddrs = ca.RemoteAddrs, ca.LocalAddrs
	cb.Local, cb.Remote = remote, local
	cb.Children = map[string]Child{"net": {
		LocalTS: ca.Children["net"].RemoteTS, RemoteTS: ca.Children["net"].LocalTS,
		ESPProposals: []string{"aes128gcm16"}, Mode: "tunnel",
	}}
	return ca, cb
}

// ping sends echo requests from innerA to innerB through the tunnel.
func (p *pair) ping(t *testing.T) {
	t.Helper()
	pg, err := netlab.NewPinger(p.A.Name, innerA, innerB, []byte("charontest"))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for seq := 1; seq <= 3; seq++ {
		rtt, err := pg.Echo(context.Background(), seq, 3, time.Second)
		if err != nil || rtt == 0 {
			t.Fatalf("ping %v -> %v seq %d: rtt %v, %v", innerA, innerB, seq, rtt, err)
		}
	}
}

// established checks that both charons have one established IKE SA "ike"
// with one installed CHILD_SA "net", and that the two ends agree on the
// SPIs; it returns A's CHILD_SA.
func (p *pair) established(t *testing.T) ChildSA {
	t.Helper()
	sa, err := p.a.IKESA("ike")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := p.b.IKESA("ike")
	if err != nil {
		t.Fatal(err)
	}
	if sa.State != "ESTABLISHED" || sb.State != "ESTABLISHED" || sa.Initiator == sb.Initiator {
		t.Fatalf("IKE SAs: A %s initiator=%v, B %s initiator=%v", sa.State, sa.Initiator, sb.State, sb.Initiator)
	}
	if sa.InitiatorSPI == 0 || sa.InitiatorSPI != sb.InitiatorSPI || sa.ResponderSPI != sb.ResponderSPI {
		t.Errorf("IKE SPIs: A %016x/%016x, B %016x/%016x", sa.InitiatorSPI, sa.ResponderSPI, sb.InitiatorSPI, sb.ResponderSPI)
	}
	if sa.Encr != "AES_GCM_16" || sa.EncrKeySize != 128 || sa.PRF != "PRF_HMAC_SHA2_256" || sa.DH != "CURVE_25519" {
		t.Errorf("IKE SA algorithms: %s-%d %s %s", sa.Encr, sa.EncrKeySize, sa.PRF, sa.DH)
	}
	// encap = yes fakes a NAT in A's NAT_DETECTION_SOURCE_IP; both move
	// to port 4500 (RFC 7296 §2.23).
	if !sa.NATAny || !sb.NATAny || sa.Local.Port() != 4500 || sb.Local.Port() != 4500 ||
		sa.Remote.Addr() != p.B4 || sb.Remote.Addr() != p.A4 {
		t.Errorf("NAT/ports: A %v -> %v NAT %v, B %v -> %v NAT %v", sa.Local, sa.Remote, sa.NATAny, sb.Local, sb.Remote, sb.NATAny)
	}
	ca, cb := sa.Installed("net"), sb.Installed("net")
	if len(ca) != 1 || len(cb) != 1 {
		t.Fatalf("CHILD_SAs: A %+v, B %+v", sa.Children, sb.Children)
	}
	if ca[0].State != "INSTALLED" || cb[0].State != "INSTALLED" || !ca[0].Encap || ca[0].Mode != "TUNNEL" ||
		ca[0].Encr != "AES_GCM_16" || ca[0].EncrKeySize != 128 {
		t.Errorf("CHILD_SA A %+v", ca[0])
	}
	if ca[0].SPIIn == 0 || ca[0].SPIIn != cb[0].SPIOut || ca[0].SPIOut != cb[0].SPIIn {
		t.Errorf("ESP SPIs: A in %08x out %08x, B in %08x out %08x", ca[0].SPIIn, ca[0].SPIOut, cb[0].SPIIn, cb[0].SPIOut)
	}
	if strings.Join(ca[0].LocalTS, ",") != innerA.String()+"/32" || strings.Join(cb[0].LocalTS, ",") != innerB.String()+"/32" {
		t.Errorf("TS: A %v === %v, B %v === %v", ca[0].LocalTS, ca[0].RemoteTS, cb[0].LocalTS, cb[0].RemoteTS)
	}
	return ca[0]
}

// TestPSK: a PSK connection with ESP AES-GCM in UDP between two charons
// on libipsec: initiate, matching SAs on both ends, ping through the
// tunnel, a CHILD_SA rekey with new SPIs and traffic on them, an IKE SA
// rekey, termination seen by the peer, and a restart that reloads the
// configuration.
func TestPSK(t *testing.T) {
	p := newPair(t)
	psk := []byte("charontest 0123456789 secret")
	for _, c := range []*Charon{p.a, p.b} {
		if err := c.LoadShared([]string{p.A4.String(), p.B4.String()}, psk); err != nil {
			t.Fatal(err)
		}
	}
	ca, cb := p.conns(Auth{Auth: "psk", ID: p.A4.String()}, Auth{Auth: "psk", ID: p.B4.String()})
	if err := p.a.LoadConn(ca); err != nil {
		t.Fatal(err)
	}
	if err := p.b.LoadConn(cb); err != nil {
		t.Fatal(err)
	}
	evB := p.b.Events()
	if err := p.a.Initiate("net", "ike", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := WaitEvent(evB, 5*time.Second, func(e Event) bool { return e.Kind == ChildUpDown && e.Up }); err != nil {
		t.Fatalf("B: %v", err)
	}
	first := p.established(t)
	p.ping(t)
	// TCP through libipsec (ipsec0 has an MTU of 1400).
	res, err := netlab.Transfer(context.Background(), p.B.Name, netip.AddrPortFrom(innerB, 5201), p.A.Name, innerA,
		netlab.Payload(1<<20, []byte("charontest-marker"), [32]byte{1}), 64<<10, nil)
	if err != nil {
		t.Fatalf("TCP transfer: %v", err)
	}
	t.Logf("TCP through charon's libipsec: %v", res)
	after, err := p.a.IKESA("ike")
	if err != nil {
		t.Fatal(err)
	}
	if c := after.Child("net")[0]; c.PacketsOut < 3 || c.PacketsIn < 3 {
		t.Errorf("after 3 pings: CHILD_SA counters %d out, %d in", c.PacketsOut, c.PacketsIn)
	}

	// The swanctl.conf written for the record loads by hand too.
	if out, err := p.b.Swanctl("--list-conns"); err != nil || !strings.Contains(out, "ike:") || !strings.Contains(out, "net:") {
		t.Errorf("swanctl --list-conns: %v\n%s", err, out)
	}

	// CHILD_SA rekey (RFC 7296 §2.8): new SPIs on both ends, old ones gone.
	evA := p.a.Events()
	if err := p.a.RekeyChild("net"); err != nil {
		t.Fatal(err)
	}
	e, err := WaitEvent(evA, 10*time.Second, func(e Event) bool { return e.Kind == ChildRekey })
	if err != nil {
		t.Fatal(err)
	}
	if e.OldChild.SPIIn != first.SPIIn || e.Child.SPIIn == first.SPIIn || e.Child.SPIOut == first.SPIOut {
		t.Errorf("child-rekey %v, first SPIs %08x/%08x", e, first.SPIIn, first.SPIOut)
	}
	settled(t, p.a)
	settled(t, p.b)
	if now := p.established(t); now.SPIIn != e.Child.SPIIn {
		t.Errorf("after rekey: CHILD_SA in %08x, event said %08x", now.SPIIn, e.Child.SPIIn)
	}
	p.ping(t)

	// IKE SA rekey from B, the responder (RFC 7296 §2.18).
	before, _ := p.b.IKESA("ike")
	if err := p.b.RekeyIKE("ike"); err != nil {
		t.Fatal(err)
	}
	if e, err = WaitEvent(evA, 10*time.Second, func(e Event) bool { return e.Kind == IKERekey }); err != nil {
		t.Fatal(err)
	}
	if e.OldIKE.InitiatorSPI != before.InitiatorSPI || e.IKE.InitiatorSPI == before.InitiatorSPI {
		t.Errorf("ike-rekey %v, before %016x", e, before.InitiatorSPI)
	}
	settled(t, p.a)
	settled(t, p.b)
	p.established(t)
	// The side that rekeyed is the new SA's original initiator (§2.18).
	if sb, _ := p.b.IKESA("ike"); !sb.Initiator || sb.InitiatorSPI != e.IKE.InitiatorSPI {
		t.Errorf("after B's IKE rekey: B initiator=%v SPI %016x, event %016x", sb.Initiator, sb.InitiatorSPI, e.IKE.InitiatorSPI)
	}
	p.ping(t)

	// Termination: B sees the IKE SA go down.
	if err := p.a.Terminate("ike"); err != nil {
		t.Fatal(err)
	}
	if _, err := WaitEvent(evB, 5*time.Second, func(e Event) bool { return e.Kind == IKEUpDown && !e.Up }); err != nil {
		t.Fatalf("B: %v", err)
	}
	for _, c := range []*Charon{p.a, p.b} {
		if sas, err := c.ListSAs(); err != nil || len(sas) != 0 {
			t.Errorf("%s after terminate: %+v, %v", c.Name(), sas, err)
		}
	}
	if err := p.a.RekeyChild("net"); err == nil {
		t.Error("rekey without SA: no error")
	}

	// Kill and restart B: it comes back with its secret and connection.
	pid := p.b.Pid()
	p.b.Kill()
	if p.b.Running() {
		t.Fatal("B runs after Kill")
	}
	if _, err := p.b.ListSAs(); err == nil {
		t.Error("ListSAs on a killed charon: no error")
	}
	if err := p.b.Restart(); err != nil {
		t.Fatal(err)
	}
	if p.b.Pid() == pid || p.b.Pid() == 0 {
		t.Errorf("pid %d after restart (was %d)", p.b.Pid(), pid)
	}
	if err := p.a.Initiate("net", "ike", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// B's event channel from before the restart goes on.
	if _, err := WaitEvent(evB, 5*time.Second, func(e Event) bool { return e.Kind == ChildUpDown && e.Up }); err != nil {
		t.Fatalf("B after restart: %v", err)
	}
	p.established(t)
	p.ping(t)
}

// settled waits until c has exactly one IKE SA with one installed
// CHILD_SA (after a rekey the old IKE SA lingers until its deletion is
// done, the old CHILD_SA as DELETED for delete_rekeyed_delay).
func settled(t *testing.T, c *Charon) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sas, err := c.ListSAs()
		if err != nil {
			t.Fatal(err)
		}
		if len(sas) == 1 && len(sas[0].Installed("net")) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: SAs %+v, want one with one installed CHILD_SA", c.Name(), sas)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCerts: ECDSA certificates from one CA; A names its certificate and
// the CA in the connection, B loads them into charon's credential store.
func TestCerts(t *testing.T) {
	Need(t)
	ca, err := NewCA(t.TempDir(), ECDSA, "C=CH, O=mipsec test, CN=Test CA")
	if err != nil {
		t.Fatal(err)
	}
	moon, err := ca.Issue("moon", ECDSA, "C=CH, O=mipsec test, CN=moon.example.com", "moon.example.com")
	if err != nil {
		t.Fatal(err)
	}
	sun, err := ca.Issue("sun", ECDSA, "C=CH, O=mipsec test, CN=sun.example.com", "sun.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var logA lockedBuffer
	p := newPairWith(t, Config{Log: &logA, LogKeys: true}, Config{LogKeys: true})
	if err := p.a.LoadKey(moon.KeyPath); err != nil {
		t.Fatal(err)
	}
	if err := p.b.LoadKey(sun.KeyPath); err != nil {
		t.Fatal(err)
	}
	if err := p.b.LoadCert(sun.KeyPath); err == nil {
		t.Error("LoadCert of a private key: no error")
	}
	if err := p.b.LoadCert(sun.CertPath); err != nil {
		t.Fatal(err)
	}
	if err := p.b.LoadCACert(ca.CertPath); err != nil {
		t.Fatal(err)
	}
	ca1, cb := p.conns(
		Auth{Auth: "pubkey", ID: "moon.example.com", Certs: []string{moon.CertPath}},
		Auth{Auth: "pubkey", ID: "sun.example.com", CACerts: []string{ca.CertPath}})
	cb.Remote.CACerts, cb.Local.CACerts = nil, nil // B: the CA from the store
	if err := p.a.LoadConn(ca1); err != nil {
		t.Fatal(err)
	}
	if err := p.b.LoadConn(cb); err != nil {
		t.Fatal(err)
	}
	if err := p.a.Initiate("net", "ike", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	p.established(t)
	sa, _ := p.a.IKESA("ike")
	if sa.LocalID != "moon.example.com" || sa.RemoteID != "sun.example.com" {
		t.Errorf("identities %q -> %q", sa.LocalID, sa.RemoteID)
	}
	p.ping(t)

	// Config.Log got the log; LogKeys dumped the keys, the same on both
	// ends.
	if !strings.Contains(logA.String(), "Starting IKE charon daemon") || !strings.Contains(logA.String(), "authentication of 'sun.example.com' with ECDSA") {
		t.Errorf("A's Config.Log lacks the start or the ECDSA authentication:\n%.2000s", logA.String())
	}
	ka, err := p.a.LoggedKeys()
	if err != nil {
		t.Fatal(err)
	}
	kb, err := p.b.LoggedKeys()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"SKEYSEED": 32, "Sk_d secret": 32, "Sk_ei secret": 20, "Sk_er secret": 20,
		"Sk_pi secret": 32, "Sk_pr secret": 32, "encryption initiator key": 20, "encryption responder key": 20}
	for name, n := range want {
		a, b := findKey(ka, name), findKey(kb, name)
		if len(a) != n || !bytes.Equal(a, b) {
			t.Errorf("%s: A %x, B %x (want %d equal bytes)", name, a, b, n)
		}
	}
	if a, b := findKey(ka, "Sk_ai secret"), findKey(kb, "Sk_ei secret"); a != nil || bytes.Equal(a, b) {
		t.Errorf("AEAD: Sk_ai %x", a)
	}
}

// TestCertsWrongIdentity: a peer whose certificate does not name the
// identity the initiator expects is rejected; the right one is accepted.
func TestCertsWrongIdentity(t *testing.T) {
	Need(t)
	ca, err := NewCA(t.TempDir(), ECDSA, "CN=Test CA")
	if err != nil {
		t.Fatal(err)
	}
	moon, err := ca.Issue("moon", ECDSA, "CN=moon.example.com", "moon.example.com")
	if err != nil {
		t.Fatal(err)
	}
	sun, err := ca.Issue("sun", Ed25519, "CN=sun.example.com", "sun.example.com")
	if err != nil {
		t.Fatal(err)
	}
	p := newPair(t)
	for _, x := range []struct {
		c *Charon
		k string
	}{{p.a, moon.KeyPath}, {p.b, sun.KeyPath}} {
		if err := x.c.LoadKey(x.k); err != nil {
			t.Fatal(err)
		}
	}
	ca1, cb := p.conns(
		Auth{Auth: "pubkey", ID: "moon.example.com", Certs: []string{moon.CertPath}},
		Auth{Auth: "pubkey", ID: "sun.example.com", Certs: []string{sun.CertPath}, CACerts: []string{ca.CertPath}})
	cb.Remote.CACerts = []string{ca.CertPath}
	ca1.Remote.ID = "mars.example.com" // not what sun's certificate says
	if err := p.a.LoadConn(ca1); err != nil {
		t.Fatal(err)
	}
	if err := p.b.LoadConn(cb); err != nil {
		t.Fatal(err)
	}
	if err := p.a.Initiate("net", "ike", 10*time.Second); err == nil {
		t.Fatal("initiate to a peer with the wrong identity succeeded")
	}
	if sas, err := p.a.ListSAs(); err != nil || len(sas) != 0 {
		t.Errorf("A after the failure: %+v, %v", sas, err)
	}
	// The right identity works (and sun's Ed25519 certificate with it).
	good := ca1
	good.Name, good.Remote.ID = "good", "sun.example.com"
	if err := p.a.LoadConn(good); err != nil {
		t.Fatal(err)
	}
	if err := p.a.Initiate("net", "good", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if sa, err := p.a.IKESA("good"); err != nil || sa.State != "ESTABLISHED" || sa.RemoteID != "sun.example.com" {
		t.Errorf("good: %+v, %v", sa, err)
	}
}

// TestCleanup: a test's charons, their namespaces and sockets are gone
// when it ends, also when it fails.
func TestCleanup(t *testing.T) {
	Need(t)
	var pids []int
	var socks, nss []string
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "pass", true: "fail"}[fail], func(t *testing.T) {
			p := newPair(t)
			pids = append(pids, p.a.Pid(), p.b.Pid())
			socks = append(socks, p.a.Socket(), p.b.Socket())
			nss = append(nss, p.A.Name, p.B.Name)
			if fail {
				// An early end: the subtest returns before it used its
				// charons (t.Cleanup runs however a test ends; a skip
				// here would be a skip that make test fails in CI).
				return
			}
			if _, err := p.a.ListSAs(); err != nil {
				t.Errorf("list-sas: %v", err)
			}
		})
	}
	for _, pid := range pids {
		if pid == 0 {
			t.Error("charon had no pid")
		} else if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
			t.Errorf("charon %d still runs", pid)
		}
	}
	for _, s := range append(socks, nss...) {
		p := s
		if !strings.HasPrefix(s, "/") {
			p = filepath.Join("/run/netns", s)
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}

func findKey(ks []LoggedKey, name string) []byte {
	for _, k := range ks {
		if k.Name == name {
			return k.Data
		}
	}
	return nil
}

func TestTestLog(t *testing.T) {
	var got []string
	rec := &recorder{TB: t, logf: func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) }}
	var w io.Writer
	t.Run("log", func(t *testing.T) {
		rec.TB = t
		w = TestLog(rec, "B")
		w.Write([]byte("one\ntw"))
		w.Write([]byte("o\nthree"))
	})
	// The subtest's cleanup flushed "three"; later writes are dropped.
	if n, err := w.Write([]byte("late\n")); n != 5 || err != nil {
		t.Errorf("late write: %d, %v", n, err)
	}
	if strings.Join(got, "|") != "B: one|B: two|B: three" {
		t.Errorf("logged %q", got)
	}
}

// recorder is a testing.TB whose Logf is logf.
type recorder struct {
	testing.TB
	logf func(string, ...any)
}

func (r *recorder) Logf(f string, a ...any) { r.logf(f, a...) }

func TestParseLoggedKeys(t *testing.T) {
	log := `16:24:44 09[IKE] <ike|1> Sk_ei secret => 20 bytes @ 0x7f90f4007f50
16:24:44 09[IKE] <ike|1>    0: 24 78 7F F5 C8 A2 6C DA 2D 7D 4A 8D 52 A2 83 CA  $x....l.-}J.R...
16:24:44 09[IKE] <ike|1>   16: 7A B2 B6 71                                      z..q
16:24:44 12[CHD] <ike|1> encryption initiator key => 3 bytes @ 0x1
16:24:44 12[CHD] <ike|1>    0: 54 4C 56                                         TLV
16:24:44 12[IKE] <ike|1> Sk_d secret => 32 bytes @ 0x7f90f4007660
16:24:44 12[IKE] <ike|1>    0: C8 30 2F CD C9 6E 80 EC D4 C3 C4 9B DA D0 32 C0  .0/..n........2.
16:24:44 12[IKE] <ike|1> received packet: truncated dump above
16:24:44 12[IKE] <ike|1> SKEYSEED => 2 bytes @ 0x2
16:24:44 12[IKE] <ike|1>    0: ZZ 01                                            ..
`
	ks := parseLoggedKeys(log)
	if len(ks) != 2 || ks[0].Name != "Sk_ei secret" || ks[0].Subsystem != "IKE" || len(ks[0].Data) != 20 ||
		ks[0].Data[0] != 0x24 || ks[0].Data[19] != 0x71 || ks[1].Name != "encryption initiator key" ||
		ks[1].Subsystem != "CHD" || string(ks[1].Data) != "TLV" {
		t.Errorf("keys %+v", ks)
	}
}

// lockedBuffer is a bytes.Buffer for Config.Log.

// lockedBuffer is a bytes.Buffer for Config.Log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
