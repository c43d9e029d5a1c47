package ike

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawInit builds an IKE_SA_INIT request as an initiator at src would,
// with a fresh key exchange of group and a cookie if given.
func rawInit(t testing.TB, spii uint64, group DHGroup, props []Proposal, cookie []byte, src, dst netip.AddrPort) []byte {
	t.Helper()
	ke, err := NewKeyExchange(group, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ni := make([]byte, 32)
	rand.Read(ni)
	for i := range props {
		props[i].Number = uint8(i + 1)
	}
	var ps []Payload
	if cookie != nil {
		ps = append(ps, &Notify{NotifyType: COOKIE, Data: cookie})
	}
	srcN, dstN := NATDetectionNotifies(spii, 0, src, dst)
	ps = append(ps, &SA{Proposals: props}, &KE{Group: group, Data: ke.PublicValue()}, &Nonce{Data: ni}, srcN, dstN)
	b, err := (&Message{SPIi: spii, Exchange: IKE_SA_INIT, Flags: FlagInitiator, Payloads: ps}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitStats polls p's stats until cond holds.
func waitStats(t *testing.T, p *peer, what string, cond func(Stats) bool) Stats {
	t.Helper()
	var s Stats
	eventually(t, what, func() bool { s = p.d.Stats(); return cond(s) })
	return s
}

func up(t *testing.T, a, b *peer) {
	t.Helper()
	if err := a.d.Initiate("ab", "net"); err != nil {
		t.Fatalf("Initiate: %v", err)
	}
	eventually(t, "B's child", func() bool { _, out, _ := b.k.state(); return len(out) == 1 })
	checkPair(t, a, b)
}

func TestInvalidKERetry(t *testing.T) {
	_, a, b := newPair(t, pairOpts{
		a: func(c *Connection) { c.Proposals = ikeProps(t, "aes128gcm16-prfsha256-curve25519-ecp256") },
		b: func(c *Connection) { c.Proposals = ikeProps(t, "aes128gcm16-prfsha256-ecp256") },
	})
	up(t, a, b)
	if s := b.d.Stats(); s.Failures["invalid_ke"] != 1 || s.Exchanges["IKE_SA_INIT"] != 1 {
		t.Fatalf("B stats: %v %v", s.Failures, s.Exchanges)
	}
	if l := a.d.List(); !strings.HasSuffix(l[0].Suite, "ecp256") {
		t.Fatalf("suite %q", l[0].Suite)
	}
}

func TestInvalidKEGroupNotOffered(t *testing.T) {
	_, a, b := newPair(t, pairOpts{
		a: func(c *Connection) { c.Proposals = ikeProps(t, "aes128gcm16-prfsha256-curve25519") },
		b: func(c *Connection) { c.Proposals = ikeProps(t, "aes128gcm16-prfsha256-ecp256") },
	})
	err := a.d.Initiate("ab", "net")
	if err == nil {
		t.Fatal("Initiate succeeded without a common group")
	}
	if s := a.d.Stats(); s.Failures["no_proposal"] != 1 {
		t.Fatalf("A failures %v (err %v)", s.Failures, err)
	}
	if !a.k.empty() || !b.k.empty() || len(a.d.List()) != 0 || len(b.d.List()) != 0 {
		t.Fatal("state left after a failed IKE_SA_INIT")
	}
}

func TestCookie(t *testing.T) {
	n, a, b := newPair(t, pairOpts{
		cfgB: func(c *Config) { c.CookieThreshold = 1 },
		b:    func(c *Connection) { c.RemoteAddrs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} },
	})
	// One half-open SA from elsewhere puts B at its threshold.
	ghost := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.9"), 500)
	b.d.Receive(rawInit(t, 0x1111, DHCurve25519, ikeProps(t, "aes128gcm16-prfsha256-curve25519"), nil, ghost,
		netip.AddrPortFrom(addrB, 500)), netip.AddrPortFrom(addrB, 500), ghost)
	waitStats(t, b, "the ghost's half-open SA", func(s Stats) bool { return s.HalfOpen == 1 })
	up(t, a, b)
	s := b.d.Stats()
	if s.CookiesSent != 1 || s.Failures["cookie"] != 1 {
		t.Fatalf("B: cookies sent %d, failures %v", s.CookiesSent, s.Failures)
	}
	// A's second IKE_SA_INIT starts with the COOKIE notify (§2.6).
	var inits [][]byte
	for _, p := range n.packets() {
		if p.src.Addr() == addrA && p.b[18] == byte(IKE_SA_INIT) {
			inits = append(inits, p.b)
		}
	}
	if len(inits) != 2 {
		t.Fatalf("A sent %d IKE_SA_INITs, want 2", len(inits))
	}
	m, err := Decode(inits[1])
	if err != nil {
		t.Fatal(err)
	}
	if nt, ok := m.Payloads[0].(*Notify); !ok || nt.NotifyType != COOKIE {
		t.Fatalf("first payload of the retry: %#v", m.Payloads[0])
	}
	// A wrong cookie is answered with a fresh one, without state.
	src := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.10"), 500)
	bad := make([]byte, cookieLen)
	b.d.Receive(rawInit(t, 0x2222, DHCurve25519, ikeProps(t, "aes128gcm16-prfsha256-curve25519"), bad, src,
		netip.AddrPortFrom(addrB, 500)), netip.AddrPortFrom(addrB, 500), src)
	s = waitStats(t, b, "a second cookie", func(s Stats) bool { return s.CookiesSent == 2 })
	if s.HalfOpen != 1 {
		t.Fatalf("half-open %d after a bad cookie", s.HalfOpen)
	}
}

func TestCookieJar(t *testing.T) {
	var j cookieJar
	now := time.Now()
	if err := j.init(rand.Reader, now); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("2001:db8::1")
	ni := bytes.Repeat([]byte{7}, 32)
	c := j.make(ni, ip, 42)
	if !j.valid(c, ni, ip, 42) || j.valid(c, ni, ip, 43) || j.valid(c, ni[1:], ip, 42) ||
		j.valid(c, ni, netip.MustParseAddr("2001:db8::2"), 42) || j.valid(c[:10], ni, ip, 42) {
		t.Fatal("cookie check wrong before rotation")
	}
	j.rotate(rand.Reader, now)
	if !j.valid(c, ni, ip, 42) {
		t.Fatal("cookie of the previous secret refused")
	}
	j.rotate(rand.Reader, now)
	if j.valid(c, ni, ip, 42) {
		t.Fatal("cookie two secrets old accepted")
	}
}

func TestHalfOpenBounded(t *testing.T) {
	for _, tc := range []struct {
		name            string
		threshold, max  int
		echoCookies     bool
		wantHalfOpen    int
		wantFailure     string
		sources, floods int
	}{
		// No cookies echoed: the table stops at the cookie threshold.
		{"cookies", 5, 100, false, 5, "cookie", 1, 200},
		// Cookies echoed (a real-source flood): MaxHalfOpen holds.
		{"max", 1000, 8, true, 8, "half_open_full", 50, 2},
		// One source, many ports: its rate limit holds.
		{"rate", 1000, 1000, false, DefaultInitBurst, "rate_limit", 1, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, b := newPair(t, pairOpts{
				cfgB: func(c *Config) { c.CookieThreshold, c.MaxHalfOpen = tc.threshold, tc.max },
				b:    func(c *Connection) { c.RemoteAddrs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} },
			})
			dst := netip.AddrPortFrom(addrB, 500)
			props := ikeProps(t, "aes128gcm16-prfsha256-curve25519")
			spi := uint64(1)
			start := time.Now()
			for s := range tc.sources {
				for i := range tc.floods {
					src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(s >> 8), byte(s)}), uint16(1024+i))
					spi++
					msg := rawInit(t, spi, DHCurve25519, props, nil, src, dst)
					if tc.echoCookies {
						m, _ := Decode(msg)
						nonce := m.Payloads[2].(*Nonce).Data
						var cookie []byte
						_ = b.d.call(func() error { cookie = b.d.cookies.make(nonce, src.Addr(), spi); return nil })
						msg = rawInit(t, spi, DHCurve25519, props, cookie, src, dst)
					}
					b.d.Receive(msg, dst, src)
					if i%50 == 49 {
						time.Sleep(2 * time.Millisecond) // let the loop drain the queue
					}
				}
			}
			total := uint64(tc.sources * tc.floods)
			s := waitStats(t, b, "the flood processed", func(s Stats) bool {
				return uint64(s.HalfOpen)+s.Failures[tc.wantFailure] == total
			})
			want := tc.wantHalfOpen
			if tc.name == "rate" {
				// The bucket refills while the flood runs (slowly under -race).
				want += int(DefaultInitRate*time.Since(start).Seconds()) + 1
			}
			if s.HalfOpen > want || s.HalfOpen < tc.wantHalfOpen || s.Failures[tc.wantFailure] == 0 {
				t.Fatalf("half-open %d, want %d..%d; failures %v", s.HalfOpen, tc.wantHalfOpen, want, s.Failures)
			}
			t.Logf("stats: half-open %d, failures %v, cookies %d", s.HalfOpen, s.Failures, s.CookiesSent)
		})
	}
}

// TestInitRateConfigured: Config.InitRate and InitBurst are the
// per-source bucket of IKE_SA_INIT requests that make state. With B's
// clock stopped, one source gets InitBurst half-open SAs and the rest
// count rate_limit; a second later InitRate more pass, not one beyond.
func TestInitRateConfigured(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	_, _, b := newPair(t, pairOpts{
		cfgB: func(c *Config) {
			c.InitRate, c.InitBurst = 3, 5
			c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		},
		b: func(c *Connection) { c.RemoteAddrs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} },
	})
	dst := netip.AddrPortFrom(addrB, 500)
	src := netip.MustParseAddr("198.51.100.7")
	other := netip.MustParseAddr("198.51.100.8")
	props := ikeProps(t, "aes128gcm16-prfsha256-curve25519")
	spi := uint64(100)
	flood := func(from netip.Addr, n int) {
		for range n {
			spi++
			s := netip.AddrPortFrom(from, uint16(2000+spi))
			b.d.Receive(rawInit(t, spi, DHCurve25519, props, nil, s, dst), dst, s)
		}
	}
	flood(src, 12)
	s := waitStats(t, b, "the first flood", func(s Stats) bool { return uint64(s.HalfOpen)+s.Failures["rate_limit"] == 12 })
	if s.HalfOpen != 5 || s.Failures["rate_limit"] != 7 {
		t.Fatalf("burst: half-open %d, rate_limit %d; want 5 and 7", s.HalfOpen, s.Failures["rate_limit"])
	}
	// Another source has a bucket of its own.
	flood(other, 1)
	waitStats(t, b, "another source", func(s Stats) bool { return s.HalfOpen == 6 })
	clock.Add(int64(time.Second))
	flood(src, 10)
	s = waitStats(t, b, "the second flood", func(s Stats) bool { return uint64(s.HalfOpen)+s.Failures["rate_limit"] == 6+7+10 })
	if s.HalfOpen != 9 || s.Failures["rate_limit"] != 14 {
		t.Fatalf("after 1 s: half-open %d, rate_limit %d; want 9 and 14", s.HalfOpen, s.Failures["rate_limit"])
	}
	for _, bad := range []Config{{InitRate: -1}, {InitBurst: -1}} {
		bad.Kernel, bad.Transport = newFakeKernel(0), &recorder{}
		if _, err := New(bad); err == nil {
			t.Errorf("New accepted InitRate %d, InitBurst %d", bad.InitRate, bad.InitBurst)
		}
	}
	d, err := New(Config{Kernel: newFakeKernel(0), Transport: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	if d.perSource.rate != DefaultInitRate || d.perSource.burst != DefaultInitBurst {
		t.Fatalf("defaults: rate %v burst %v", d.perSource.rate, d.perSource.burst)
	}
}

func TestWrongPSK(t *testing.T) {
	_, a, b := newPair(t, pairOpts{
		b: func(c *Connection) { c.Remote.PSK = []byte("another shared secret") },
	})
	err := a.d.Initiate("ab", "net")
	if err == nil {
		t.Fatal("Initiate succeeded with a wrong PSK")
	}
	sa, sb := a.d.Stats(), b.d.Stats()
	if sa.Failures["auth_failed"] != 1 || sb.Failures["auth_failed"] != 1 {
		t.Fatalf("auth_failed A %d B %d (err %v)", sa.Failures["auth_failed"], sb.Failures["auth_failed"], err)
	}
	eventually(t, "no state", func() bool { return len(a.d.List()) == 0 && len(b.d.List()) == 0 })
	if !a.k.empty() || !b.k.empty() || a.k.count("in ") != 0 || b.k.count("in ") != 0 || b.k.count("alloc") != 0 {
		t.Fatalf("kernel calls: A %v B %v", a.k.calls, b.k.calls)
	}
}

// TestResponderAuthFails: the initiator proves itself but the responder
// does not (its own PSK is not the one A expects): A deletes the IKE SA
// silently but for one notice, and B removes what it installed.
func TestResponderAuthFails(t *testing.T) {
	_, a, b := newPair(t, pairOpts{
		b: func(c *Connection) { c.Local.PSK = []byte("another shared secret") },
	})
	if err := a.d.Initiate("ab", "net"); err == nil {
		t.Fatal("Initiate succeeded")
	}
	eventually(t, "B's SA gone", func() bool { return len(b.d.List()) == 0 && b.k.empty() })
	if !a.k.empty() || a.k.count("in ") != 0 || a.d.Stats().Failures["auth_failed"] != 1 {
		t.Fatalf("A: %v %v", a.k.calls, a.d.Stats().Failures)
	}
}

// TestResponderAuthFailsNotice: when the responder's AUTH or identity
// is wrong, A's AUTHENTICATION_FAILED notice (RFC 7296 §2.21.2) is one
// exchange on a deleting SA: the answer is taken (not an invalid_spi
// drop), or without one the SA goes one Retransmit after the single send.
// Either way the failure counts once as auth_failed, A installs nothing
// and no SA is left on either side.
func TestResponderAuthFailsNotice(t *testing.T) {
	other, err := ParseIdentity("@someone-else.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		a, b       func(*Connection)
		lost       bool // B's answer to the notice is dropped
		retransmit time.Duration
	}{
		{"wrong PSK", nil, func(c *Connection) { c.Local.PSK = []byte("another shared secret") }, false, 2 * time.Second},
		{"wrong identity", func(c *Connection) { c.Remote.ID = other }, nil, false, 2 * time.Second},
		{"answer lost", nil, func(c *Connection) { c.Local.PSK = []byte("another shared secret") }, true, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, a, b := newPair(t, pairOpts{a: tc.a, b: tc.b,
				cfgA: func(c *Config) { c.Retransmit = tc.retransmit }})
			var dropped atomic.Int32
			if tc.lost {
				n.setFilter(func(p *packet) bool {
					if p.src.Addr() == addrB && ExchangeType(p.b[18]) == INFORMATIONAL && p.b[19]&byte(FlagResponse) != 0 {
						dropped.Add(1)
						return false
					}
					return true
				})
			}
			start := time.Now()
			res := make(chan error, 1)
			go func() { res <- a.d.Initiate("ab", "net") }()
			if tc.lost {
				eventually(t, "B's answer dropped", func() bool { return dropped.Load() == 1 })
				// Until the notice's time is up the SA is listed as
				// deleting, without children, and not counted as up.
				l := a.d.List()
				if len(l) != 1 || l[0].State != "deleting" || len(l[0].Children) != 0 || a.d.Stats().IKESAs != 0 {
					t.Fatalf("A during the notice: %+v, %d up", l, a.d.Stats().IKESAs)
				}
			}
			var ierr error
			select {
			case ierr = <-res:
			case <-time.After(10 * time.Second):
				t.Fatal("Initiate did not return")
			}
			if ierr == nil {
				t.Fatal("Initiate succeeded")
			}
			// The SA went before Initiate heard of the failure.
			if l := a.d.List(); len(l) != 0 {
				t.Fatalf("A still lists %+v", l)
			}
			if el := time.Since(start); tc.lost && el < tc.retransmit {
				t.Fatalf("A gave up on the notice after %v, before one Retransmit (%v)", el, tc.retransmit)
			}
			eventually(t, "B's SA gone", func() bool { return len(b.d.List()) == 0 && b.k.empty() })
			time.Sleep(2 * tc.retransmit / 10) // anything late would arrive now
			sa, sb := a.d.Stats(), b.d.Stats()
			if sa.Failures["auth_failed"] != 1 || sa.Failures["invalid_spi"] != 0 || sa.Failures["timeout"] != 0 ||
				sa.Failures["message_id"] != 0 || sb.Failures["invalid_spi"] != 0 ||
				sb.Failures["peer_auth_failed"] != 1 || sa.Failures["peer_auth_failed"] != 0 {
				t.Fatalf("failures: A %v, B %v (B counts the notice as peer_auth_failed)", sa.Failures, sb.Failures)
			}
			if !a.k.empty() || a.k.count("in ") != 0 || a.k.count("out ") != 0 || a.k.count("alloc") != 1 {
				t.Fatalf("A's kernel: %v", a.k.calls)
			}
			if got := len(captured(n, addrA, INFORMATIONAL, false)); got != 1 {
				t.Fatalf("A sent %d INFORMATIONAL requests, want the one notice", got)
			}
			if want := map[bool]uint64{false: 1, true: 0}[tc.lost]; sa.Exchanges["INFORMATIONAL"] != want {
				t.Fatalf("A completed %d INFORMATIONAL exchanges, want %d", sa.Exchanges["INFORMATIONAL"], want)
			}
		})
	}
}

// captured returns the packets from src of exchange ex.
func captured(n *network, src netip.Addr, ex ExchangeType, response bool) []packet {
	var out []packet
	for _, p := range n.packets() {
		if p.src.Addr() == src && len(p.b) >= HeaderLen && ExchangeType(p.b[18]) == ex && (p.b[19]&byte(FlagResponse) != 0) == response {
			out = append(out, p)
		}
	}
	return out
}

func TestHostileSK(t *testing.T) {
	n, a, b := newPair(t, pairOpts{})
	up(t, a, b)
	req := captured(n, addrA, IKE_AUTH, false)[0]
	before := b.d.List()
	ik, ok0, _ := b.k.state()
	_ = ik
	// A forged INFORMATIONAL with the right SPIs and message ID 2.
	forged := bytes.Clone(req.b)
	forged[18] = byte(INFORMATIONAL)
	binary.BigEndian.PutUint32(forged[20:], 2)
	flipped := bytes.Clone(req.b)
	binary.BigEndian.PutUint32(flipped[20:], 2)
	flipped[len(flipped)-1] ^= 0x80
	truncated := bytes.Clone(req.b[:len(req.b)-5])
	binary.BigEndian.PutUint32(truncated[24:], uint32(len(truncated)))
	binary.BigEndian.PutUint32(truncated[20:], 2)
	garbage := make([]byte, 200)
	rand.Read(garbage)
	copy(garbage, req.b[:16])
	for _, m := range [][]byte{forged, flipped, truncated, garbage, req.b[:27], nil} {
		b.d.Receive(m, req.dst, netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), 4500))
	}
	s := waitStats(t, b, "the drops", func(s Stats) bool {
		return s.Failures["integrity"]+s.Failures["malformed"]+s.Failures["message_id"] >= 5
	})
	if s.Failures["integrity"] < 2 {
		t.Fatalf("integrity failures %d: %v", s.Failures["integrity"], s.Failures)
	}
	after := b.d.List()
	if len(after) != 1 || after[0].Remote != before[0].Remote || after[0].State != "established" {
		t.Fatalf("B's SA changed: %+v → %+v", before, after)
	}
	_, ok1, _ := b.k.state()
	if len(ok0) != len(ok1) || b.k.count("endpoint") != 0 || b.k.count("del") != 0 {
		t.Fatalf("B's kernel changed: %v", b.k.calls)
	}
	// The SA still works: a Terminate goes through.
	if err := a.d.Terminate("ab"); err != nil {
		t.Fatal(err)
	}
}

func TestReplayAndWindow(t *testing.T) {
	n, a, b := newPair(t, pairOpts{a: func(c *Connection) { c.DPDDelay = 30 * time.Millisecond }})
	up(t, a, b)
	req := captured(n, addrA, IKE_AUTH, false)[0]
	resp := captured(n, addrB, IKE_AUTH, true)[0]
	// The same request again: the same bytes back (§2.1).
	b.d.Receive(req.b, req.dst, req.src)
	eventually(t, "the cached response", func() bool { return len(captured(n, addrB, IKE_AUTH, true)) == 2 })
	if again := captured(n, addrB, IKE_AUTH, true)[1]; !bytes.Equal(again.b, resp.b) || again.dst != req.src {
		t.Fatal("the retransmitted response differs")
	}
	// After a liveness check (message ID 2), ID 1 is outside the window.
	waitStats(t, a, "a DPD exchange", func(s Stats) bool { return s.Exchanges["INFORMATIONAL"] >= 1 })
	b.d.Receive(req.b, req.dst, req.src)
	waitStats(t, b, "the out-of-window drop", func(s Stats) bool { return s.Failures["message_id"] == 1 })
	if got := len(captured(n, addrB, IKE_AUTH, true)); got != 2 {
		t.Fatalf("%d IKE_AUTH responses, want 2", got)
	}
	// A response to no request of A's is dropped too (the cached one B
	// sent above was the first).
	before := a.d.Stats().Failures["message_id"]
	a.d.Receive(resp.b, resp.dst, resp.src)
	waitStats(t, a, "the stray response", func(s Stats) bool { return s.Failures["message_id"] == before+1 })
	if len(a.d.List()) != 1 {
		t.Fatal("A's SA gone")
	}
}

func TestRetransmitDroppedResponse(t *testing.T) {
	n, a, b := newPair(t, pairOpts{})
	var dropped atomic.Bool
	n.setFilter(func(p *packet) bool {
		if p.src.Addr() == addrB && p.b[18] == byte(IKE_AUTH) && !dropped.Load() {
			dropped.Store(true)
			return false
		}
		return true
	})
	up(t, a, b)
	if s := a.d.Stats(); s.Retransmits != 1 || !dropped.Load() {
		t.Fatalf("retransmits %d", s.Retransmits)
	}
	// B answered the retransmission from its cache: one IKE_AUTH processed.
	if s := b.d.Stats(); s.Exchanges["IKE_AUTH"] != 1 {
		t.Fatalf("B processed %d IKE_AUTHs", s.Exchanges["IKE_AUTH"])
	}
	// Duplicated IKE_SA_INIT requests get the same answer, one SA.
	init := captured(n, addrA, IKE_SA_INIT, false)[0]
	b.d.Receive(init.b, init.dst, init.src)
	waitStats(t, b, "the late duplicate dropped", func(s Stats) bool { return s.Failures["message_id"] == 1 })
	if len(b.d.List()) != 1 || len(captured(n, addrB, IKE_SA_INIT, true)) != 1 {
		t.Fatal("a duplicate IKE_SA_INIT made a second SA")
	}
}

func TestInitTimeout(t *testing.T) {
	n, a, b := newPair(t, pairOpts{})
	n.setFilter(func(p *packet) bool { return p.dst.Addr() != addrB })
	start := time.Now()
	err := a.d.Initiate("ab", "net")
	if err == nil {
		t.Fatal("Initiate succeeded without a peer")
	}
	// 40 ms × (1 + 2 + 4 + 8) with 3 retransmissions.
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("gave up after %v", el)
	}
	s := a.d.Stats()
	if s.Failures["timeout"] != 1 || s.Retransmits != 3 || len(a.d.List()) != 0 || !a.k.empty() || !b.k.empty() {
		t.Fatalf("stats %v retransmits %d", s.Failures, s.Retransmits)
	}
}

func TestDeleteChild(t *testing.T) {
	for _, from := range []string{"initiator", "responder"} {
		t.Run(from, func(t *testing.T) {
			_, a, b := newPair(t, pairOpts{})
			up(t, a, b)
			del := a
			if from == "responder" {
				del = b
			}
			in, _, _ := del.k.state()
			del.d.Expired(true, in[0].InSPI, true)
			eventually(t, "both kernels empty", func() bool { return a.k.empty() && b.k.empty() })
			for _, p := range []*peer{a, b} {
				l := p.d.List()
				if len(l) != 1 || l[0].State != "established" || len(l[0].Children) != 0 {
					t.Fatalf("%s: %+v", p.name, l)
				}
				if p.k.count("del true") != 1 || p.k.count("del false") != 1 || p.k.count("delpol") != 1 {
					t.Fatalf("%s kernel calls %v", p.name, p.k.calls)
				}
			}
			// A soft expiry needs a rekey, which is not there yet: nothing happens.
			del.d.Expired(true, 12345, false)
		})
	}
}

func TestDeleteIKE(t *testing.T) {
	for _, from := range []string{"initiator", "responder"} {
		t.Run(from, func(t *testing.T) {
			_, a, b := newPair(t, pairOpts{})
			up(t, a, b)
			var err error
			if from == "initiator" {
				err = a.d.Terminate("ab")
			} else {
				err = b.d.Terminate("ba")
			}
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "everything gone", func() bool {
				return a.k.empty() && b.k.empty() && len(a.d.List()) == 0 && len(b.d.List()) == 0
			})
			if err := a.d.Terminate("nope"); !errors.Is(err, ErrUnknownConnection) {
				t.Fatalf("Terminate(nope): %v", err)
			}
		})
	}
}

func TestCloseDeletes(t *testing.T) {
	_, a, b := newPair(t, pairOpts{})
	up(t, a, b)
	if err := a.d.Close(); err != nil {
		t.Fatal(err)
	}
	if !a.k.empty() {
		t.Fatalf("A's kernel after Close: %v", a.k.calls)
	}
	eventually(t, "B saw the Delete", func() bool { return b.k.empty() && len(b.d.List()) == 0 })
	if err := a.d.Initiate("ab", "net"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Initiate after Close: %v", err)
	}
}

func TestDPDRestart(t *testing.T) {
	n, a, b := newPair(t, pairOpts{a: func(c *Connection) {
		c.DPDDelay = 50 * time.Millisecond
		c.Children[0].Start = StartStart
	}})
	eventually(t, "the StartStart child", func() bool {
		_, bOut, _ := b.k.state()
		_, aOut, _ := a.k.state()
		return len(aOut) == 1 && len(bOut) == 1
	})
	checkPair(t, a, b)
	first := a.d.List()[0].SPIi
	// B goes silent: A's liveness check times out and A's child goes.
	var dead atomic.Bool
	dead.Store(true)
	n.setFilter(func(p *packet) bool { return !dead.Load() || p.dst.Addr() != addrB })
	waitStats(t, a, "A's timeout", func(s Stats) bool { return s.Failures["timeout"] >= 1 })
	eventually(t, "A's kernel empty", func() bool { return a.k.empty() })
	dead.Store(false)
	// A initiates again; B takes the new SA (INITIAL_CONTACT replaces the old one).
	eventually(t, "a new IKE SA", func() bool {
		l := a.d.List()
		return len(l) == 1 && l[0].State == "established" && l[0].SPIi != first && len(l[0].Children) == 1
	})
	eventually(t, "B has one SA", func() bool { return len(b.d.List()) == 1 })
	checkPair(t, a, b)
}

func TestNAT(t *testing.T) {
	n, a, b := newPair(t, pairOpts{cfgA: func(c *Config) { c.Keepalive = 20 * time.Millisecond }})
	n.natInside = addrA
	n.natOutside = netip.MustParseAddr("203.0.113.7")
	// B must accept the NAT's address.
	_ = b.d.call(func() error {
		b.d.conns[0].cfg.RemoteAddrs = []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")}
		return nil
	})
	up(t, a, b)
	la, lb := a.d.List()[0], b.d.List()[0]
	if !la.NATLocal || la.NATRemote || !la.Encap || !lb.NATRemote || lb.NATLocal || !lb.Encap {
		t.Fatalf("NAT flags: A %+v B %+v", la, lb)
	}
	if la.Local.Port() != 4500 || la.Remote.Port() != 4500 || lb.Local.Port() != 4500 || lb.Remote.Addr() != n.natOutside {
		t.Fatalf("ports: A %v→%v, B %v→%v", la.Local, la.Remote, lb.Local, lb.Remote)
	}
	_, aOut, _ := a.k.state()
	_, bOut, _ := b.k.state()
	if ep := aOut[0].Endpoint; !ep.Encap || ep.Remote != netip.AddrPortFrom(addrB, 4500) || ep.Local.Port() != 4500 {
		t.Fatalf("A endpoint %v", ep)
	}
	if ep := bOut[0].Endpoint; !ep.Encap || ep.Remote != lb.Remote || ep.Local != netip.AddrPortFrom(addrB, 4500) {
		t.Fatalf("B endpoint %v (SA remote %v)", ep, lb.Remote)
	}
	// A, behind the NAT, sends keepalives (RFC 3948 §2.3); B does not.
	eventually(t, "A's keepalives", func() bool { return a.d.cfg.Transport.(*transport).keepalives.Load() >= 2 })
	if got := b.d.cfg.Transport.(*transport).keepalives.Load(); got != 0 {
		t.Fatalf("B sent %d keepalives", got)
	}
	// IKE_AUTH went 4500 to 4500.
	if p := captured(n, addrA, IKE_AUTH, false); len(p) != 0 {
		t.Fatal("the NAT did not rewrite A's source")
	}
	// An unauthenticated packet from a new port does not move B.
	req := captured(n, n.natOutside, IKE_AUTH, false)[0]
	forged := bytes.Clone(req.b)
	binary.BigEndian.PutUint32(forged[20:], 2)
	forged[len(forged)-1] ^= 1
	moved := netip.AddrPortFrom(n.natOutside, 55555)
	b.d.Receive(forged, netip.AddrPortFrom(addrB, 4500), moved)
	waitStats(t, b, "the forged packet's drop", func(s Stats) bool { return s.Failures["integrity"] == 1 })
	if got := b.d.List()[0].Remote; got != lb.Remote || b.k.count("endpoint") != 0 {
		t.Fatalf("B moved to %v on a forged packet", got)
	}
	// The NAT rebinds; A's next request (a Delete of the child) comes from a
	// new port and B follows it, children included.
	n.rebind()
	in, _, _ := a.k.state()
	a.d.Expired(true, in[0].InSPI, true)
	eventually(t, "B followed", func() bool { return b.d.List()[0].Remote != lb.Remote })
	if b.k.count("endpoint") != 1 {
		t.Fatalf("B kernel calls %v", b.k.calls)
	}
}

func TestEncapWithoutNAT(t *testing.T) {
	_, a, b := newPair(t, pairOpts{a: func(c *Connection) { c.Encap = true }})
	up(t, a, b)
	la, lb := a.d.List()[0], b.d.List()[0]
	if !la.Encap || !lb.Encap || la.NATLocal || !lb.NATRemote || la.Remote.Port() != 4500 {
		t.Fatalf("A %+v B %+v", la, lb)
	}
	ao, bo := checkPair(t, a, b)
	if !ao.Endpoint.Encap || !bo.Endpoint.Encap || bo.Endpoint.Remote != netip.AddrPortFrom(addrA, 4500) {
		t.Fatalf("endpoints %v %v", ao.Endpoint, bo.Endpoint)
	}
}

func TestTSUnacceptable(t *testing.T) {
	_, a, b := newPair(t, pairOpts{b: func(c *Connection) {
		c.Children[0].RemoteTS = []TrafficSelector{prefixTS("172.16.0.0/12")}
	}})
	err := a.d.Initiate("ab", "net")
	if err == nil || !strings.Contains(err.Error(), "TS_UNACCEPTABLE") {
		t.Fatalf("Initiate: %v", err)
	}
	// The IKE SA is up without a child (§1.2); nothing is installed.
	if established(a) != 1 || established(b) != 1 || !a.k.empty() || !b.k.empty() {
		t.Fatalf("A %+v B %+v", a.d.List(), b.d.List())
	}
	if b.d.Stats().Failures["ts_unacceptable"] != 1 {
		t.Fatal("not counted")
	}
	// Again with CREATE_CHILD_SA on the IKE SA (§1.3.1): refused the same way.
	if err := a.d.Initiate("ab", "net"); err == nil || !strings.Contains(err.Error(), "TS_UNACCEPTABLE") {
		t.Fatalf("second Initiate: %v", err)
	}
	if established(a) != 1 || !a.k.empty() || !b.k.empty() || b.d.Stats().Failures["ts_unacceptable"] != 2 {
		t.Fatalf("after the second: A %+v B %+v", a.d.List(), b.d.Stats())
	}
}

func TestTransportMode(t *testing.T) {
	set := func(c *Connection) {
		c.Children[0].Mode = ModeTransport
		c.Children[0].LocalTS = []TrafficSelector{TSDynamic}
		c.Children[0].RemoteTS = []TrafficSelector{TSDynamic}
	}
	_, a, b := newPair(t, pairOpts{a: set, b: set})
	up(t, a, b)
	ao, _ := checkPair(t, a, b)
	if ao.Mode != ModeTransport || len(ao.LocalTS) != 1 || ao.LocalTS[0].Start != addrA || ao.RemoteTS[0].End != addrB {
		t.Fatalf("child %+v", ao)
	}
}

func TestNarrowing(t *testing.T) {
	_, a, b := newPair(t, pairOpts{b: func(c *Connection) {
		c.Children[0].RemoteTS = []TrafficSelector{prefixTS("10.1.2.0/24")}
	}})
	up(t, a, b)
	ao, _ := checkPair(t, a, b)
	if len(ao.LocalTS) != 1 || !sameTS(ao.LocalTS[0], prefixTS("10.1.2.0/24")) {
		t.Fatalf("A's narrowed local TS %v", ao.LocalTS)
	}
}

func TestConfigErrors(t *testing.T) {
	k, tr := newFakeKernel(0), &transport{n: newNetwork()}
	good := func() Connection { return conn(t, "c1", addrA, addrB, true) }
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no kernel", func(c *Config) { c.Kernel = nil }, "Kernel"},
		{"no transport", func(c *Config) { c.Transport = nil }, "Transport"},
		{"no proposals", func(c *Config) { c.Connections[0].Proposals = nil }, `"c1": no IKE proposals`},
		{"empty psk", func(c *Config) { c.Connections[0].Local.PSK = nil }, `"c1": local auth psk`},
		{"remote psk", func(c *Config) { c.Connections[0].Remote.PSK = nil }, `"c1": remote auth psk`},
		{"pubkey", func(c *Config) { c.Connections[0].Local.Method = AuthPubkey }, `"c1": local auth pubkey: no certificate`},
		{"no ts", func(c *Config) { c.Connections[0].Children[0].LocalTS = nil }, `child "net": no local or remote traffic selectors`},
		{"no esp", func(c *Config) { c.Connections[0].Children[0].Proposals = nil }, `child "net": no ESP proposals`},
		{"esp as ike", func(c *Config) { c.Connections[0].Proposals = espProps(t, "aes128gcm16") }, `"c1": IKE proposal 1`},
		{"twice", func(c *Config) { c.Connections = append(c.Connections, good()) }, "defined twice"},
		{"no remote", func(c *Config) { c.Connections[0].RemoteAddrs = nil }, "no remote address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Connections: []Connection{good()}, Kernel: k, Transport: tr}
			tc.mod(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
	d, err := New(Config{Connections: []Connection{good()}, Kernel: k, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Initiate("c1", "net"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Initiate before Start: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownNames(t *testing.T) {
	_, a, _ := newPair(t, pairOpts{})
	if err := a.d.Initiate("nope", ""); !errors.Is(err, ErrUnknownConnection) {
		t.Fatal(err)
	}
	if err := a.d.Initiate("ab", "nope"); !errors.Is(err, ErrUnknownConnection) {
		t.Fatal(err)
	}
	if err := a.d.Rekey("ab", "nope"); !errors.Is(err, ErrUnknownConnection) {
		t.Fatal(err)
	}
	if err := a.d.Rekey("ab", "net"); err == nil || !strings.Contains(err.Error(), "no IKE SA") {
		t.Fatalf("Rekey without an IKE SA: %v", err)
	}
}

func TestQueueFull(t *testing.T) {
	_, _, b := newPair(t, pairOpts{})
	msg := make([]byte, HeaderLen)
	// Hold the loop so that the queue fills.
	release := make(chan struct{})
	go b.d.call(func() error { <-release; return nil })
	time.Sleep(10 * time.Millisecond)
	for range queueLen + 10 {
		b.d.Receive(msg, netip.AddrPortFrom(addrB, 500), netip.AddrPortFrom(addrA, 500))
	}
	close(release)
	s := waitStats(t, b, "the drops", func(s Stats) bool { return s.Failures["malformed"] >= queueLen })
	if s.Failures["queue_full"] < 10 {
		t.Fatalf("queue_full %d", s.Failures["queue_full"])
	}
}

// TestWiresharkNames: the names are those TestSKTshark has tshark use.
func TestWiresharkNames(t *testing.T) {
	for _, tc := range tsharkSuites {
		e, i, ok := wiresharkNames(tc.suite)
		if !ok || e != tc.encr || i != tc.integ {
			t.Errorf("%+v: %q %q %v, want %q %q", tc.suite, e, i, ok, tc.encr, tc.integ)
		}
	}
	if _, _, ok := wiresharkNames(SKSuite{Encr: EncrChaCha20Poly1305}); ok {
		t.Error("chacha20poly1305 has a name")
	}
}

func TestAcquire(t *testing.T) {
	n, a, b := newPair(t, pairOpts{a: func(c *Connection) {
		c.Children[0].Start = StartTrap
		c.Children[0].ReplayWindow = 128
	}})
	a.d.Acquire("ab/other") // no such policy: nothing
	a.d.Acquire("ab/net")
	a.d.Acquire("ab/net") // rate-limited: one IKE SA
	eventually(t, "the trapped child", func() bool {
		_, bOut, _ := b.k.state()
		_, aOut, _ := a.k.state()
		return len(aOut) == 1 && len(bOut) == 1
	})
	ao, _ := checkPair(t, a, b)
	if ao.ReplayWindow != 128 {
		t.Fatalf("replay window %d", ao.ReplayWindow)
	}
	if got := len(captured(n, addrA, IKE_SA_INIT, false)); got != 1 {
		t.Fatalf("%d IKE_SA_INITs", got)
	}
}

func TestInitiateAllChildren(t *testing.T) {
	two := func(aSide bool) func(c *Connection) {
		return func(c *Connection) {
			ch := c.Children[0]
			ch.Name = "second"
			ch.LocalTS, ch.RemoteTS = []TrafficSelector{prefixTS("10.3.0.0/16")}, []TrafficSelector{prefixTS("10.4.0.0/16")}
			if !aSide {
				ch.LocalTS, ch.RemoteTS = ch.RemoteTS, ch.LocalTS
			}
			c.Children = append(c.Children, ch)
		}
	}
	_, a, b := newPair(t, pairOpts{a: two(true), b: two(false)})
	if err := a.d.Initiate("ab", ""); err != nil {
		t.Fatalf("Initiate(ab, \"\"): %v", err)
	}
	// The second child came with CREATE_CHILD_SA (§1.3.1).
	eventually(t, "both children on B", func() bool { _, out, _ := b.k.state(); return len(out) == 2 })
	_, _, aPol := a.k.state()
	_, _, bPol := b.k.state()
	if len(aPol) != 2 || aPol["ab/second"] == 0 || bPol["ba/second"] == 0 || aPol["ab/net"] == 0 {
		t.Fatalf("policies A %v B %v", aPol, bPol)
	}
	if s := a.d.Stats(); s.Exchanges["CREATE_CHILD_SA"] != 1 || s.ChildSAs != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestFragmentedRequest: A's IKE_AUTH request reaches B as three SKF
// fragments out of order (RFC 7383 §2.6), sealed with the initiator's
// keys; B reassembles them, and answers a retransmission once.
func TestFragmentedRequest(t *testing.T) {
	for _, negotiated := range []bool{true, false} {
		t.Run(fmt.Sprint("negotiated=", negotiated), func(t *testing.T) { testFragmented(t, negotiated) })
	}
}

func testFragmented(t *testing.T, negotiated bool) {
	var b *peer
	var fragmented atomic.Int32
	set := func(c *Connection) {
		c.Fragmentation = true
		c.Proposals = ikeProps(t, "aes256-sha256-prfsha256-curve25519")
	}
	setB := set
	if !negotiated {
		setB = func(c *Connection) { c.Proposals = ikeProps(t, "aes256-sha256-prfsha256-curve25519") }
	}
	n, a, b := newPair(t, pairOpts{a: set, b: setB})
	n.setFilter(func(p *packet) bool {
		h, err := ParseHeader(p.b)
		if err != nil || p.dst.Addr() != addrB || h.Exchange != IKE_AUTH || (negotiated && fragmented.Load() >= 2) {
			return true
		}
		fragmented.Add(1)
		var frags [][]byte
		err = b.d.call(func() error {
			sa := b.d.sas[h.SPIr]
			m, _ := Decode(p.b)
			e := m.Payloads[0].(*Encrypted)
			plain, err := sa.in.Open(nil, p.b, HeaderLen)
			if err != nil {
				return err
			}
			c, err := NewSKCipher(sa.suite.SK, sa.keys.SKei, sa.keys.SKai)
			if err != nil {
				return err
			}
			third := len(plain)/3 + 1
			for i := 0; i < 3; i++ {
				part := plain[min(i*third, len(plain)):min((i+1)*third, len(plain))]
				f := &EncryptedFragment{Number: uint16(i + 1), Total: 3}
				if i == 0 {
					f.NextPayload = e.NextPayload
				}
				prefix, err := (&Message{SPIi: h.SPIi, SPIr: h.SPIr, Exchange: IKE_AUTH, Flags: h.Flags, MessageID: h.MessageID,
					Payloads: []Payload{f}}).Append(nil)
				if err != nil {
					return err
				}
				sealed, err := c.SealFragment(nil, prefix, part)
				if err != nil {
					return err
				}
				frags = append(frags, sealed)
			}
			return nil
		})
		if err != nil {
			t.Errorf("fragmenting: %v", err)
			return true
		}
		for _, i := range []int{1, 2, 0} {
			b.d.Receive(frags[i], p.dst, p.src)
		}
		return false
	})
	if !negotiated {
		if err := a.d.Initiate("ab", "net"); err == nil {
			t.Fatal("fragments accepted without IKEV2_FRAGMENTATION_SUPPORTED")
		}
		if s := b.d.Stats(); s.Failures["fragment"] != 3*uint64(fragmented.Load()) || !b.k.empty() {
			t.Fatalf("B: %v", s.Failures)
		}
		return
	}
	up(t, a, b)
	if s := b.d.Stats(); s.Exchanges["IKE_AUTH"] != 1 || s.Failures["fragment"] != 0 || fragmented.Load() == 0 {
		t.Fatalf("B: %v %v (fragmented %d)", s.Exchanges, s.Failures, fragmented.Load())
	}
}

func TestIPv6(t *testing.T) {
	v6 := func(s string) TrafficSelector { return prefixTS(s) }
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	_, a, b := newPair(t, pairOpts{addrA: a6, addrB: b6,
		a: func(c *Connection) {
			c.Children[0].LocalTS = []TrafficSelector{v6("2001:db8:1::/48")}
			c.Children[0].RemoteTS = []TrafficSelector{v6("2001:db8:2::/48")}
		},
		b: func(c *Connection) {
			c.Children[0].LocalTS = []TrafficSelector{v6("2001:db8:2::/48")}
			c.Children[0].RemoteTS = []TrafficSelector{v6("2001:db8:1::/48")}
		}})
	if err := a.d.Initiate("ab", "net"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B's child", func() bool { _, out, _ := b.k.state(); return len(out) == 1 })
	ao, _ := checkPair(t, a, b)
	la := a.d.List()[0]
	if la.RemoteID != "2001:db8::2" || la.Encap || ao.Endpoint.Remote.Addr() != b6 || ao.LocalTS[0].Type != TS_IPV6_ADDR_RANGE {
		t.Fatalf("%+v %+v", la, ao)
	}
}

// TestStatsKeys: Failures has exactly the documented key set.
func TestStatsKeys(t *testing.T) {
	_, a, _ := newPair(t, pairOpts{})
	s := a.d.Stats()
	if len(s.Failures) != len(failureKeys) || len(s.Exchanges) != 4 {
		t.Fatalf("%v %v", s.Failures, s.Exchanges)
	}
	for _, k := range failureKeys {
		if _, ok := s.Failures[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
}

// TestAcquireOnEstablishedSA: a trap child whose IKE SA is already up
// (here brought up by another child) comes with CREATE_CHILD_SA on that
// SA (§1.3.1), not with a second IKE SA.
func TestAcquireOnEstablishedSA(t *testing.T) {
	two := func(aSide bool) func(c *Connection) {
		return func(c *Connection) {
			ch := c.Children[0]
			ch.Name = "second"
			ch.LocalTS, ch.RemoteTS = []TrafficSelector{prefixTS("10.3.0.0/16")}, []TrafficSelector{prefixTS("10.4.0.0/16")}
			if !aSide {
				ch.LocalTS, ch.RemoteTS = ch.RemoteTS, ch.LocalTS
			} else {
				ch.Start = StartTrap
			}
			c.Children = append(c.Children, ch)
		}
	}
	n, a, b := newPair(t, pairOpts{a: two(true), b: two(false)})
	if err := a.d.Initiate("ab", "net"); err != nil {
		t.Fatalf("Initiate(ab, net): %v", err)
	}
	a.d.Acquire("ab/second")
	eventually(t, "the trapped child on B", func() bool { _, out, _ := b.k.state(); return len(out) == 2 })
	if got := len(captured(n, addrA, IKE_SA_INIT, false)); got != 1 {
		t.Fatalf("%d IKE_SA_INITs, want 1", got)
	}
	if s := a.d.Stats(); s.Exchanges["CREATE_CHILD_SA"] != 1 || s.IKESAs != 1 {
		t.Fatalf("stats %+v", s)
	}
}
