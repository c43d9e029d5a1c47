package ike

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/testenv"
)

// fragCerts gives A and B certificate authentication with leaves that
// carry 120 subjectAltNames each (about 4 KB), so that both IKE_AUTH
// messages exceed one 1280-octet datagram.
func fragCerts(t *testing.T) (a, b func(*Connection), certA, certB *x509.Certificate) {
	ca := newTestCA(t, "CA fragments", pkKey(t, "p256", 0))
	ka, kb := pkKey(t, "p256", 1), pkKey(t, "p256", 2)
	many := func(c *x509.Certificate) {
		for i := range 120 {
			c.DNSNames = append(c.DNSNames, fmt.Sprintf("host-%03d.fragmentation.example", i))
		}
	}
	certA, certB = ca.issue(t, "a.example", ka, many), ca.issue(t, "b.example", kb, many)
	return usePubkey([]*x509.Certificate{certA}, ka, ca.cert), usePubkey([]*x509.Certificate{certB}, kb, ca.cert), certA, certB
}

func fragOn(c *Connection) { c.Fragmentation = true }

// ikeCiphers are the SK ciphers of A's IKE SA as a third party holding
// its keys: fromI opens what the initiator sent, fromR the responder.
func ikeCiphers(t *testing.T, a *peer, proposal string) (fromI, fromR *SKCipher) {
	t.Helper()
	wk := a.d.WiresharkKeys()
	if len(wk) != 1 {
		t.Fatalf("wireshark keys: %d", len(wk))
	}
	suite, err := IKESuiteOf(ikeProps(t, proposal)[0])
	if err != nil {
		t.Fatal(err)
	}
	k := &IKEKeys{SKei: wk[0].SKei, SKer: wk[0].SKer, SKai: wk[0].SKai, SKar: wk[0].SKar}
	if _, fromI, err = NewSKCiphers(suite.SK, k, false); err != nil {
		t.Fatal(err)
	}
	if _, fromR, err = NewSKCiphers(suite.SK, k, true); err != nil {
		t.Fatal(err)
	}
	return fromI, fromR
}

// reassemble checks that ps is one message as a complete set of SKF
// fragments (RFC 7383 §2.5: one message ID, Fragment Number 1..Total,
// Next Payload only in fragment 1, each authenticated on its own) and
// returns the inner payloads.
func reassemble(t *testing.T, c *SKCipher, ps []packet) []Payload {
	t.Helper()
	if len(ps) < 2 {
		t.Fatalf("%d datagrams, want fragments", len(ps))
	}
	parts := make([][]byte, len(ps))
	var first PayloadType
	var id uint32
	for i, p := range ps {
		m, err := Decode(p.b)
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := ParseHeader(p.b); int(h.Length) != len(p.b) || len(m.Payloads) != 1 {
			t.Fatalf("fragment %d: Length wrong for %d octets, payloads %v", i, len(p.b), m.Payloads)
		}
		f, ok := m.Payloads[0].(*EncryptedFragment)
		if !ok {
			t.Fatalf("datagram %d is not an SKF fragment: %T", i, m.Payloads[0])
		}
		if i == 0 {
			id = m.MessageID
		}
		if int(f.Total) != len(ps) || m.MessageID != id || parts[f.Number-1] != nil {
			t.Fatalf("fragment %d of %d, message ID %d (first %d), %d datagrams", f.Number, f.Total, m.MessageID, id, len(ps))
		}
		if (f.Number == 1) != (f.NextPayload != PayloadNone) {
			t.Fatalf("fragment %d: Next Payload %v", f.Number, f.NextPayload)
		}
		if f.Number == 1 {
			first = f.NextPayload
		}
		if parts[f.Number-1], err = c.OpenFragment(nil, p.b, len(p.b)-len(f.Data)-skfHeaderLen); err != nil {
			t.Fatalf("fragment %d: %v", f.Number, err)
		}
	}
	inner, err := DecodePayloads(first, bytes.Join(parts, nil))
	if err != nil {
		t.Fatal(err)
	}
	return inner
}

func hasCert(ps []Payload, c *x509.Certificate) bool {
	for _, p := range ps {
		if cp, ok := p.(*Cert); ok && bytes.Equal(cp.Data, c.Raw) {
			return true
		}
	}
	return false
}

// TestFragmentSend: with fragmentation on both sides, both IKE_AUTH
// messages (4 KB of certificate each) go out as SKF fragments no larger
// than the default fragment size less the IP and UDP headers and the
// non-ESP marker (RFC 7383 §2.5.1), over IPv4 with an AEAD and over IPv6
// with AES-CBC (padding per fragment); a small CREATE_CHILD_SA still goes
// whole in an SK payload.
func TestFragmentSend(t *testing.T) {
	for _, tc := range []struct {
		name, proposal string
		a6, b6         netip.Addr
		limit          int
	}{
		{"ipv4-gcm", "aes128gcm16-prfsha256-curve25519", netip.Addr{}, netip.Addr{}, 1280 - 20 - 8 - 4},
		{"ipv6-cbc", "aes256-sha256-prfsha256-curve25519",
			netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 1280 - 40 - 8 - 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa, pb, certA, certB := fragCerts(t)
			props := func(c *Connection) {
				c.Proposals = ikeProps(t, tc.proposal)
				if tc.a6.IsValid() {
					c.Children[0].LocalTS, c.Children[0].RemoteTS = []TrafficSelector{prefixTS("::/0")}, []TrafficSelector{prefixTS("::/0")}
				}
			}
			n, a, b := newPair(t, pairOpts{a: both(pa, fragOn, props), b: both(pb, fragOn, props), addrA: tc.a6, addrB: tc.b6})
			up(t, a, b)
			if err := a.d.Rekey("ab", "net"); err != nil {
				t.Fatal(err)
			}
			waitStats(t, b, "the child rekey", func(s Stats) bool { return s.Exchanges["CREATE_CHILD_SA"] == 1 })
			for _, p := range n.packets() {
				if len(p.b) > tc.limit {
					t.Errorf("%d-octet datagram %v→%v, limit %d", len(p.b), p.src, p.dst, tc.limit)
				}
			}
			fromI, fromR := ikeCiphers(t, a, tc.proposal)
			req := reassemble(t, fromI, captured(n, a.addr, IKE_AUTH, false))
			resp := reassemble(t, fromR, captured(n, b.addr, IKE_AUTH, true))
			if !hasCert(req, certA) || !hasCert(resp, certB) {
				t.Fatalf("reassembled IKE_AUTH lacks the certificates: %v / %v", req, resp)
			}
			t.Logf("IKE_AUTH: %d request, %d response fragments", len(captured(n, a.addr, IKE_AUTH, false)),
				len(captured(n, b.addr, IKE_AUTH, true)))
			for _, ps := range [][]packet{captured(n, a.addr, CREATE_CHILD_SA, false), captured(n, b.addr, CREATE_CHILD_SA, true)} {
				if len(ps) != 1 {
					t.Fatalf("CREATE_CHILD_SA in %d datagrams", len(ps))
				}
				if m, err := Decode(ps[0].b); err != nil || len(m.Payloads) != 1 || m.Payloads[0].Type() != PayloadSK {
					t.Fatalf("CREATE_CHILD_SA: %v %v", err, m)
				}
			}
			if s := a.d.Stats(); s.Retransmits != 0 || b.d.Stats().Failures["fragment"] != 0 {
				t.Fatalf("A retransmits %d, B %v", s.Retransmits, b.d.Stats().Failures)
			}
		})
	}
}

// TestFragmentSendNotNegotiated: where one side did not announce
// IKEV2_FRAGMENTATION_SUPPORTED, IKE_AUTH goes whole, larger than the
// fragment size, both ways.
func TestFragmentSendNotNegotiated(t *testing.T) {
	for _, side := range []string{"a", "b"} {
		t.Run("off="+side, func(t *testing.T) {
			pa, pb, _, _ := fragCerts(t)
			oa, ob := both(pa, fragOn), both(pb, fragOn)
			if side == "a" {
				oa = pa
			} else {
				ob = pb
			}
			n, a, b := newPair(t, pairOpts{a: oa, b: ob})
			up(t, a, b)
			for _, ps := range [][]packet{captured(n, a.addr, IKE_AUTH, false), captured(n, b.addr, IKE_AUTH, true)} {
				if len(ps) != 1 || len(ps[0].b) <= 1280 {
					t.Fatalf("IKE_AUTH in %d datagrams (first %d octets), want one whole", len(ps), len(ps[0].b))
				}
				if m, err := Decode(ps[0].b); err != nil || m.Payloads[0].Type() != PayloadSK {
					t.Fatalf("IKE_AUTH: %v %v", err, m)
				}
			}
		})
	}
}

// TestFragmentRetransmit: the first time, one fragment of A's IKE_AUTH
// request is lost, and then one fragment of B's response: A retransmits
// the whole set each time (RFC 7383 §2.6.1), B answers the repeated
// request from its cache with every fragment of the response, and the SA
// comes up with one IKE_AUTH exchange on B.
func TestFragmentRetransmit(t *testing.T) {
	pa, pb, _, _ := fragCerts(t)
	// Slower retransmissions than newPair's, so that a loaded machine does
	// not add any to the two counted below.
	slow := func(c *Config) { c.Retransmit = 150 * time.Millisecond }
	n, a, b := newPair(t, pairOpts{a: both(pa, fragOn), b: both(pb, fragOn), cfgA: slow, cfgB: slow})
	var droppedReq, droppedResp atomic.Int32
	n.setFilter(func(p *packet) bool {
		h, err := ParseHeader(p.b)
		if err != nil || h.Exchange != IKE_AUTH {
			return true
		}
		m, err := Decode(p.b)
		if err != nil {
			return true
		}
		f, ok := m.Payloads[0].(*EncryptedFragment)
		if !ok || f.Number != 2 {
			return true
		}
		if h.Flags&FlagResponse == 0 {
			return !droppedReq.CompareAndSwap(0, 1)
		}
		return !droppedResp.CompareAndSwap(0, 1)
	})
	up(t, a, b)
	if droppedReq.Load() != 1 || droppedResp.Load() != 1 {
		t.Fatalf("dropped %d request, %d response fragments", droppedReq.Load(), droppedResp.Load())
	}
	total := func(p packet) int {
		m, _ := Decode(p.b)
		return int(m.Payloads[0].(*EncryptedFragment).Total)
	}
	// Delivered: the request sent three times (the first less the
	// dropped fragment), the response twice (less one). A is up on the
	// last response's fragment 2; the rest follows.
	var req, resp []packet
	ok := func() bool {
		req, resp = captured(n, a.addr, IKE_AUTH, false), captured(n, b.addr, IKE_AUTH, true)
		return len(req) > 0 && len(resp) > 0 && len(req) == 3*total(req[0])-1 && len(resp) == 2*total(resp[0])-1
	}
	for range 100 {
		if ok() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !ok() {
		t.Fatalf("request in %d datagrams, response in %d", len(req), len(resp))
	}
	if s := a.d.Stats(); s.Retransmits != 2 {
		t.Fatalf("A retransmits %d", s.Retransmits)
	}
	if s := b.d.Stats(); s.Exchanges["IKE_AUTH"] != 1 {
		t.Fatalf("B: %v", s.Exchanges)
	}
}

// TestSealFragments: inner payloads of many lengths split into fragments
// within the limit that open on their own and join to the original, with
// CBC padding and with AEADs; a limit with no room and a message beyond
// maxFragments are refused.
func TestSealFragments(t *testing.T) {
	for _, prop := range []string{"aes256-sha256-prfsha256-curve25519", "aes128gcm16-prfsha256-curve25519",
		"chacha20poly1305-prfsha256-curve25519"} {
		suite, err := IKESuiteOf(ikeProps(t, prop)[0])
		if err != nil {
			t.Fatal(err)
		}
		out, err := NewSKCipher(suite.SK, bytes.Repeat([]byte{7}, suite.SK.EncKeyLen()), bytes.Repeat([]byte{9}, suite.SK.IntegKeyLen()))
		if err != nil {
			t.Fatal(err)
		}
		in, _ := NewSKCipher(suite.SK, bytes.Repeat([]byte{7}, suite.SK.EncKeyLen()), bytes.Repeat([]byte{9}, suite.SK.IntegKeyLen()))
		hdr := Message{SPIi: 1, SPIr: 2, Exchange: INFORMATIONAL, Flags: FlagInitiator, MessageID: 5}
		for _, limit := range []int{300, 1228, 1248} {
			for _, n := range []int{1, 100, 1000, 1199, 1200, 1201, 4000, 9999} {
				inner := make([]byte, n)
				for i := range inner {
					inner[i] = byte(i)
				}
				frags, err := sealFragments(out, hdr, PayloadNotify, inner, limit)
				if err != nil {
					t.Fatalf("%s limit %d, %d octets: %v", prop, limit, n, err)
				}
				var got []byte
				for i, f := range frags {
					if len(f) > limit {
						t.Fatalf("%s limit %d, %d octets: fragment %d is %d octets", prop, limit, n, i+1, len(f))
					}
					m, err := Decode(f)
					if err != nil {
						t.Fatal(err)
					}
					e := m.Payloads[0].(*EncryptedFragment)
					if int(e.Number) != i+1 || int(e.Total) != len(frags) || m.MessageID != 5 {
						t.Fatalf("fragment %d: %d of %d, message ID %d", i+1, e.Number, e.Total, m.MessageID)
					}
					plain, err := in.OpenFragment(nil, f, len(f)-len(e.Data)-skfHeaderLen)
					if err != nil {
						t.Fatalf("%s fragment %d: %v", prop, i+1, err)
					}
					got = append(got, plain...)
				}
				if !bytes.Equal(got, inner) {
					t.Fatalf("%s limit %d, %d octets: joined fragments differ", prop, limit, n)
				}
				// Fragments fill the limit: exactly with an AEAD, within
				// the CBC padding's block otherwise.
				slack := 0
				if suite.SK.Encr == EncrAESCBC {
					slack = cbcBlockLen - 1
				}
				if len(frags) > 1 && len(frags[0]) < limit-slack {
					t.Fatalf("%s limit %d: first of %d fragments only %d octets", prop, limit, len(frags), len(frags[0]))
				}
			}
		}
		if _, err := sealFragments(out, hdr, PayloadNotify, make([]byte, 100), HeaderLen+skfHeaderLen+out.IVLen()+1+out.ICVLen()); err == nil {
			t.Errorf("%s: a limit with no room for data accepted", prop)
		}
		if _, err := sealFragments(out, hdr, PayloadNotify, make([]byte, 300*maxFragments), 300); err != errTooManyFragments {
			t.Errorf("%s: more than %d fragments: %v", prop, maxFragments, err)
		}
	}
}

// TestFragmentSizeLimit: the IKE message limit per family and setting.
func TestFragmentSizeLimit(t *testing.T) {
	v4, v6 := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("[2001:db8::1]:4500")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.1]:500")
	for _, tc := range []struct {
		size   int
		remote netip.AddrPort
		want   int
	}{
		{0, v4, 1248}, {0, v6, 1228}, {0, mapped, 1248}, {1500, v4, 1468}, {100, v4, 576 - 32}, {100, v6, 576 - 52},
	} {
		d := &Daemon{cfg: Config{FragmentSize: tc.size}}
		if got := d.ikeSizeLimit(tc.remote); got != tc.want {
			t.Errorf("FragmentSize %d to %v: %d, want %d", tc.size, tc.remote, got, tc.want)
		}
	}
}

// TestFragmentTshark: tshark, with the keys WiresharkKeys gives,
// dissects our SKF fragments (RFC 7383 §2.5: Fragment Number, Total
// Fragments) and finds every fragment's ICV correct.
func TestFragmentTshark(t *testing.T) {
	tshark := testenv.NeedCommand(t, "tshark")
	pa, pb, _, _ := fragCerts(t)
	n, a, b := newPair(t, pairOpts{a: both(pa, fragOn), b: both(pb, fragOn)})
	up(t, a, b)
	keys := a.d.WiresharkKeys()
	if len(keys) != 1 {
		t.Fatalf("%d keys", len(keys))
	}
	k := keys[0]
	pcap := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
	eventually(t, "the IKE_AUTH response's fragments", func() bool {
		r := captured(n, b.addr, IKE_AUTH, true)
		if len(r) == 0 {
			return false
		}
		m, _ := Decode(r[0].b)
		return len(r) == int(m.Payloads[0].(*EncryptedFragment).Total)
	})
	for i, p := range n.packets() {
		pcap = appendPcapUDP(pcap, uint32(i+1), p.src.Addr().As4(), p.dst.Addr().As4(), p.b)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "fragments.pcap")
	if d := os.Getenv("IKE_PCAP_DIR"); d != "" {
		file = filepath.Join(d, "fragments.pcap")
	}
	if err := os.WriteFile(file, pcap, 0o644); err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString
	uat := fmt.Sprintf(`uat:ikev2_decryption_table:%016x,%016x,%s,%s,"%s",%s,%s,"%s"`,
		k.SPIi, k.SPIr, h(k.SKei), h(k.SKer), k.EncrName, h(k.SKai), h(k.SKar), k.IntegName)
	run := func(args ...string) string {
		cmd := exec.Command(tshark, append([]string{"-n", "-r", file, "-o", uat}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run("-T", "fields", "-E", "separator=;", "-e", "isakmp.exchangetype", "-e", "isakmp.flags",
		"-e", "isakmp.frag.number", "-e", "isakmp.frag.total")
	var frags []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(l, ";"); len(f) == 4 && f[0] == "35" {
			frags = append(frags, f[1]+" "+f[2]+"/"+f[3])
		}
	}
	nReq, nResp := len(captured(n, a.addr, IKE_AUTH, false)), len(captured(n, b.addr, IKE_AUTH, true))
	var want []string
	for i := range nReq {
		want = append(want, fmt.Sprintf("0x08 %d/%d", i+1, nReq))
	}
	for i := range nResp {
		want = append(want, fmt.Sprintf("0x20 %d/%d", i+1, nResp))
	}
	if nReq < 2 || nResp < 2 || strings.Join(frags, ",") != strings.Join(want, ",") {
		t.Fatalf("tshark's IKE_AUTH fragments %v, want %v:\n%s", frags, want, out)
	}
	verbose := run("-V")
	if strings.Contains(verbose, "Malformed") || strings.Contains(verbose, "Expert Info (Warning") {
		t.Errorf("tshark complains:\n%s", verbose)
	}
	// Each fragment's ICV checks; both messages reassemble into their
	// inner payloads.
	if c := strings.Count(verbose, "[correct]"); c != nReq+nResp {
		t.Errorf("tshark found %d correct ICVs, want %d", c, nReq+nResp)
	}
	for _, w := range []string{"Reassembled ISAKMP length", "Payload: Certificate (37)", "Payload: Authentication (39)"} {
		if c := strings.Count(verbose, w); c != 2 {
			t.Errorf("tshark -V: %q %d times, want 2", w, c)
		}
	}
	for _, w := range []string{"Payload: Identification - Initiator (35)", "Payload: Identification - Responder (36)"} {
		if !strings.Contains(verbose, w) {
			t.Errorf("tshark -V: no %q", w)
		}
	}
}
