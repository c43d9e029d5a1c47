package mip6

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mipsec/mipsec/endpoint"
)

var (
	hcLocal6 = netip.MustParseAddr("2001:db8:1::53") // HAConfig.LocalAddrs
	hcLocal4 = netip.MustParseAddr("203.0.113.53")
	hcOuter  = netip.AddrPortFrom(htCoA4, 4500) // a UDP 4191 BU's outer source, no NAT
)

// newHCRig is a home agent with extra own addresses, where HoA2 is bound
// (CoA6b, IPv4 HoA htHoA4) and HoA1 is bound to htCoA6 with seq 1.
func newHCRig(t *testing.T, mut ...func(*HAConfig)) *htRig {
	t.Helper()
	r := newHTRig(t, func(c *HAConfig) {
		c.LocalAddrs = []netip.Addr{hcLocal6, netip.AddrFrom16(hcLocal4.As16())} // mapped on purpose
		for _, f := range mut {
			f(c)
		}
	})
	src := endpoint.Endpoint{Encap: endpoint.EncapIP}
	r.ha.Deliver(htBU6(t, htHoA2, htCoA6b, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6b}, IPv4HomeAddress{PrefixLen: 32, Addr: htHoA4})), htSA1b, 1, src)
	r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(1, 100, AlternateCoA{Addr: htCoA6})), htSA1a, 1, src)
	r.pump()
	if b, ok := r.ha.Cache().LookupV4(htHoA4); !ok || b.HoA != htHoA2 {
		t.Fatal("HoA2 has no IPv4 home address")
	}
	if st := r.ha.Stats(); st.BUAccepted != 2 {
		t.Fatalf("setup: %+v", st)
	}
	r.takeSent()
	r.events = nil
	return r
}

// hcUnchanged checks that HoA1 is still bound to htCoA6 with seq 1, HoA2
// to htCoA6b, and the home link saw nothing new.
func hcUnchanged(t *testing.T, r *htRig) {
	t.Helper()
	b, ok := r.ha.Cache().Lookup(htHoA1)
	if !ok || len(b.CoAs) != 1 || b.Primary().Addr != htCoA6 || b.Seq != 1 || b.HoA4.IsValid() {
		t.Errorf("HoA1 binding changed: %v", b)
	}
	b, ok = r.ha.Cache().Lookup(htHoA2)
	if !ok || len(b.CoAs) != 1 || b.Primary().Addr != htCoA6b || b.HoA4 != htHoA4 {
		t.Errorf("HoA2 binding changed: %v", b)
	}
	want := []string{"add " + htHoA2.String(), "add " + htHoA4.String(), "add " + htHoA1.String()}
	if got := r.hl.list(); !slices.Equal(got, want) {
		t.Errorf("home link %v, want %v", got, want)
	}
	for _, e := range r.events {
		if e.Kind != HABURejected || e.Reason != "invalid-care-of-address" {
			t.Errorf("event %+v", e)
		}
	}
}

// hcRefused checks that exactly one BA with status want went out (to
// the IPv6 CoA with RH2, or wrapped in IPv4/UDP to outer) and that the
// refusal was counted.
func hcRefused(t *testing.T, r *htRig, want BAStatus, outer netip.AddrPort) {
	t.Helper()
	sent := r.takeSent()
	if len(sent) != 1 {
		t.Fatalf("%d packets sent, want one BA", len(sent))
	}
	s := sent[0]
	wantEP := epIP(htCoA6)
	if outer.IsValid() {
		wantEP = epIP(outer.Addr())
	}
	if !s.ok || s.spi != htSA2a || s.out != wantEP {
		t.Errorf("BA spi %#x to %v ok %v, want %v", s.spi, s.out, s.ok, wantEP)
	}
	ba := htBA(t, s, htHoA1)
	if ba.Status != want || ba.Seq != 2 || ba.Lifetime != 0 {
		t.Errorf("BA status %d (%v) seq %d lifetime %d, want %d", ba.Status, ba.Status, ba.Seq, ba.Lifetime, want)
	}
	if _, ok := htOpt[NATDetection](ba.Options); ok != outer.IsValid() {
		t.Errorf("NAT Detection option %v (RFC 5555 §4.2: only and always to UDP BUs)", ok)
	}
	st := r.ha.Stats()
	if st.BadCoA != 1 || st.BURejected["invalid-care-of-address"] != 1 || st.BUAccepted != 2 || st.BAsSent != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestHARefusesBadCoA6: an authenticated BU whose IPv6 care-of address
// (Alternate CoA option, RFC 4877 §4.3) is the HA's own, another
// binding's home address, or not unicast gets status 174 (RFC 6275
// §6.1.8, §9.5.1) and changes nothing.
func TestHARefusesBadCoA6(t *testing.T) {
	for _, tc := range []struct {
		name string
		coa  netip.Addr
		opts []Option
		want BAStatus
	}{
		{name: "HA address", coa: htHA},
		{name: "HA local address", coa: hcLocal6},
		{name: "HA IPv4 address mapped", coa: netip.AddrFrom16(htHA4.As16())},
		{name: "HA local IPv4 mapped", coa: netip.AddrFrom16(hcLocal4.As16())},
		{name: "other binding's HoA", coa: htHoA2},
		{name: "other binding's IPv4 HoA mapped", coa: netip.AddrFrom16(htHoA4.As16())},
		{name: "multicast", coa: netip.MustParseAddr("ff0e::1")},
		{name: "link-local multicast", coa: netip.MustParseAddr("ff02::1")},
		{name: "unspecified", coa: netip.IPv6Unspecified()},
		{name: "loopback", coa: netip.IPv6Loopback()},
		{name: "link-local", coa: netip.MustParseAddr("fe80::1")},
		{name: "IPv4 CoA option: HA IPv4", opts: []Option{IPv4CareOfAddress{Addr: htHA4}}},
		{name: "IPv4 CoA option: broadcast", opts: []Option{IPv4CareOfAddress{Addr: netip.MustParseAddr("255.255.255.255")}}},
		{name: "BID: HA address", opts: []Option{BindingIdentifier{BID: 1, CoA: htCoA6}, BindingIdentifier{BID: 2, CoA: htHA}}},
		{name: "BID: other HoA", opts: []Option{BindingIdentifier{BID: 1, CoA: htHoA2}}},
		{name: "BID: own HoA", opts: []Option{BindingIdentifier{BID: 1, CoA: htCoA6}, BindingIdentifier{BID: 2, CoA: htHoA1}}, want: BAStatusMCoASimultaneousHomeFor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHCRig(t)
			opts := tc.opts
			if tc.coa.IsValid() {
				opts = append(opts, AlternateCoA{Addr: tc.coa})
			}
			r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(2, 100, opts...)), htSA1a, 2, endpoint.Endpoint{Encap: endpoint.EncapIP})
			r.pump()
			want := tc.want
			if want == 0 {
				want = BAStatusInvalidCoA
			}
			hcRefused(t, r, want, netip.AddrPort{})
			hcUnchanged(t, r)
			// Data for HoA1 still goes to its registered CoA (DR-1).
			if out, ok := htData(t, r, htHoA1); !ok || out != epRaw(htCoA6) {
				t.Errorf("DR-1 %v %v", out, ok)
			}
			// The refusal consumed no sequence number; a good BU works.
			r.ha.Deliver(htBU6(t, htHoA1, htCoA6b, htHomeBU(2, 100, AlternateCoA{Addr: htCoA6b})), htSA1a, 3, endpoint.Endpoint{Encap: endpoint.EncapIP})
			r.pump()
			if b, _ := r.ha.Cache().Lookup(htHoA1); b == nil || b.Primary().Addr != htCoA6b || b.Seq != 2 {
				t.Errorf("good BU after the refusal: %v", b)
			}
		})
	}
}

// TestHARefusesBadCoA4: the same for the IPv4 CoA option of a BU in UDP
// 4191 (RFC 5555 §4.5): the BA, status 174, goes back wrapped to the
// outer source with the NAT Detection option.
func TestHARefusesBadCoA4(t *testing.T) {
	for _, tc := range []struct {
		name string
		coa4 netip.Addr
		hoa4 netip.Addr // the BU's IPv4 Home Address option
	}{
		{name: "HA IPv4 address", coa4: htHA4},
		{name: "HA local IPv4 address", coa4: hcLocal4},
		{name: "other binding's IPv4 HoA", coa4: htHoA4},
		{name: "own requested IPv4 HoA", coa4: netip.MustParseAddr("192.0.2.51"), hoa4: netip.MustParseAddr("192.0.2.51")},
		{name: "unspecified", coa4: netip.IPv4Unspecified()},
		{name: "this network", coa4: netip.MustParseAddr("0.1.2.3")},
		{name: "loopback", coa4: netip.MustParseAddr("127.0.0.1")},
		{name: "loopback 127/8", coa4: netip.MustParseAddr("127.200.0.9")},
		{name: "multicast", coa4: netip.MustParseAddr("224.0.0.5")},
		{name: "multicast 239", coa4: netip.MustParseAddr("239.255.255.250")},
		{name: "limited broadcast", coa4: netip.MustParseAddr("255.255.255.255")},
		{name: "reserved 240/4", coa4: netip.MustParseAddr("240.0.0.1")},
		{name: "link-local", coa4: netip.MustParseAddr("169.254.7.7")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHCRig(t)
			opts := []Option{IPv4CareOfAddress{Addr: tc.coa4}}
			if tc.hoa4.IsValid() {
				opts = append(opts, IPv4HomeAddress{PrefixLen: 32, Addr: tc.hoa4})
			}
			r.deliver4(htSA1a, 2, hcOuter, htBUPlain(t, htHoA1, htHomeBU(2, 100, opts...)))
			r.pump()
			hcRefused(t, r, BAStatusInvalidCoA, hcOuter)
			hcUnchanged(t, r)
			if r.ha.nat.Len() != 0 {
				t.Error("DR-4 record not taken")
			}
		})
	}
}

// TestHARefusesBadSource: when the source on the wire, where the BA goes
// (and, behind a NAT, the data), is the HA's own address or a home
// address of a binding, the BU is dropped without a BA and counted.
func TestHARefusesBadSource(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   netip.Addr     // IPv6: the Home Address option's address
		outer netip.AddrPort // IPv4: the UDP 4191 outer source
	}{
		{name: "HAO is the HA", src: htHA},
		{name: "HAO is an HA local address", src: hcLocal6},
		{name: "HAO is another HoA", src: htHoA2},
		{name: "HAO is multicast", src: netip.MustParseAddr("ff02::1")},
		{name: "outer is the HA", outer: netip.AddrPortFrom(htHA4, 4500)},
		{name: "outer is an HA local address", outer: netip.AddrPortFrom(hcLocal4, 4500)},
		{name: "outer is another IPv4 HoA", outer: netip.AddrPortFrom(htHoA4, 4500)},
		{name: "outer is broadcast", outer: netip.MustParseAddrPort("255.255.255.255:4500")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHCRig(t)
			if tc.src.IsValid() {
				r.ha.Deliver(htBU6(t, htHoA1, tc.src, htHomeBU(2, 100, AlternateCoA{Addr: htCoA6b})), htSA1a, 2, endpoint.Endpoint{Encap: endpoint.EncapIP})
			} else {
				r.deliver4(htSA1a, 2, tc.outer, htBUPlain(t, htHoA1, htHomeBU(2, 100, IPv4CareOfAddress{Addr: htCoA4})))
			}
			r.pump()
			if s := r.takeSent(); len(s) != 0 {
				t.Errorf("%d packets sent, want none", len(s))
			}
			st := r.ha.Stats()
			if st.BadCoA != 1 || st.BURejected["invalid-care-of-address"] != 1 || st.BUAccepted != 2 || st.BAsSent != 2 {
				t.Errorf("stats %+v", st)
			}
			hcUnchanged(t, r)
		})
	}
}

// TestHADeregistrationKept: CoA == HoA still de-registers (RFC 6275
// §9.5.1, §10.3.2), whatever the lifetime, and a lifetime-0 BU is not
// refused for its care-of address: it binds none.
func TestHADeregistrationKept(t *testing.T) {
	for _, tc := range []struct {
		name string
		life uint16
		coa  netip.Addr
	}{
		{"CoA == HoA, lifetime 100", 100, htHoA1},
		{"CoA == HoA, lifetime 0", 0, htHoA1},
		{"lifetime 0, CoA the HA", 0, htHA},
		{"lifetime 0, CoA multicast", 0, netip.MustParseAddr("ff02::1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHCRig(t)
			r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(2, tc.life, AlternateCoA{Addr: tc.coa})), htSA1a, 2, endpoint.Endpoint{Encap: endpoint.EncapIP})
			r.pump()
			if _, ok := r.ha.Cache().Lookup(htHoA1); ok {
				t.Fatal("binding survived de-registration")
			}
			sent := r.takeSent()
			if len(sent) != 1 {
				t.Fatalf("%d packets sent", len(sent))
			}
			if ba := htBA(t, sent[0], htHoA1); ba.Status != BAStatusAccepted || ba.Lifetime != 0 || ba.Seq != 2 {
				t.Errorf("BA %+v", ba)
			}
			if st := r.ha.Stats(); st.BadCoA != 0 || st.BUAccepted != 3 || len(st.BURejected) != 0 {
				t.Errorf("stats %+v", st)
			}
			if _, ok := r.ha.Cache().Lookup(htHoA2); !ok {
				t.Error("the other binding went too")
			}
		})
	}
	// From home: `IPv6(HoA -> HA) / MH BU` without options.
	r := newHCRig(t)
	r.ha.Deliver(htBUPlain(t, htHoA1, htHomeBU(2, 100)), htSA1a, 2, endpoint.Endpoint{Addr: netip.AddrPortFrom(htHoA1, 0)})
	r.pump()
	if _, ok := r.ha.Cache().Lookup(htHoA1); ok {
		t.Fatal("binding survived de-registration from home")
	}
	if st := r.ha.Stats(); st.BadCoA != 0 || st.BUAccepted != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestHAGoodCoAsAccepted: addresses next to the refused ones are fine.
func TestHAGoodCoAsAccepted(t *testing.T) {
	for i, coa := range []netip.Addr{
		netip.MustParseAddr("2001:db8:1::54"), // in the home prefix, nobody's home address
		netip.MustParseAddr("fec0::1"),        // deprecated site-local, still unicast
		netip.MustParseAddr("fd00::1"),        // ULA
	} {
		r := newHCRig(t)
		r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(2, 100, AlternateCoA{Addr: coa})), htSA1a, 2, endpoint.Endpoint{Encap: endpoint.EncapIP})
		r.pump()
		if b, _ := r.ha.Cache().Lookup(htHoA1); b == nil || b.Primary().Addr != coa {
			t.Errorf("%d %v: binding %v", i, coa, b)
		}
	}
	for _, coa4 := range []netip.Addr{
		netip.MustParseAddr("1.0.0.1"), netip.MustParseAddr("223.255.255.254"), netip.MustParseAddr("169.255.0.1"),
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("126.255.255.255"),
	} {
		r := newHCRig(t)
		r.deliver4(htSA1a, 2, netip.AddrPortFrom(coa4, 4500), htBUPlain(t, htHoA1, htHomeBU(2, 100, IPv4CareOfAddress{Addr: coa4})))
		r.pump()
		if b, _ := r.ha.Cache().Lookup(htHoA1); b == nil || b.Primary().Addr != coa4 || b.Primary().NAT {
			t.Errorf("%v: binding %v", coa4, b)
		}
		if st := r.ha.Stats(); st.BadCoA != 0 {
			t.Errorf("%v: stats %+v", coa4, st)
		}
	}
}

// TestHABadCoAHostile throws random BUs from a pool of good and bad
// addresses (as Alternate CoA, IPv4 CoA, BID CoAs and sources) at the HA:
// no binding ever holds a refused address, every refusal is counted, and
// every BA that goes out goes to a good address.
func TestHABadCoAHostile(t *testing.T) {
	pool := []netip.Addr{
		htCoA6, htCoA6b, htCoA4, netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("2001:db8:cc::5"),
		htHA, htHA4, hcLocal6, hcLocal4, htHoA1, htHoA2, htHoA4,
		netip.AddrFrom16(htHA4.As16()), netip.AddrFrom16(htHoA4.As16()),
		netip.IPv6Unspecified(), netip.IPv4Unspecified(), netip.IPv6Loopback(), netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("ff02::1"), netip.MustParseAddr("224.0.0.1"), netip.MustParseAddr("255.255.255.255"),
		netip.MustParseAddr("fe80::1"), netip.MustParseAddr("169.254.0.1"), netip.MustParseAddr("0.0.0.1"),
		netip.MustParseAddr("fe80::1%eth0"), {},
	}
	rng := rand.New(rand.NewPCG(10, 4))
	pick := func() netip.Addr { return pool[rng.IntN(len(pool))] }
	// HoA2 stays bound (CoA6b, IPv4 HoA htHoA4); HoA1's MN is hostile.
	r := newHCRig(t, func(c *HAConfig) { c.BUBurst, c.BURate = 1<<20, 1<<20 })
	spi, hoa := uint32(htSA1a), htHoA1
	seq := uint16(1)
	espSeq := uint32(10)
	for i := range 3000 {
		seq++
		var opts []Option
		for range rng.IntN(4) {
			switch rng.IntN(4) {
			case 0:
				a := pick()
				if a.Is4() {
					a = netip.AddrFrom16(a.As16())
				}
				if a.IsValid() {
					opts = append(opts, AlternateCoA{Addr: a})
				}
			case 1:
				if a := pick().Unmap(); a.Is4() {
					opts = append(opts, IPv4CareOfAddress{Addr: a})
				}
			case 2:
				opts = append(opts, BindingIdentifier{BID: uint16(1 + rng.IntN(3)), CoA: pick()})
			case 3:
				if a := pick(); a.Is4() {
					opts = append(opts, IPv4HomeAddress{PrefixLen: 32, Addr: a})
				}
			}
		}
		life := uint16(rng.IntN(3) * 50)
		bu := htHomeBU(seq, life, opts...)
		espSeq++
		before := r.ha.Stats()
		if rng.IntN(3) == 0 {
			outer := netip.AddrPortFrom(pick().Unmap(), uint16(4500+rng.IntN(2)))
			if !outer.Addr().Is4() {
				outer = hcOuter
			}
			r.deliver4(spi, espSeq, outer, htBUPlain(t, hoa, bu))
		} else {
			src := pick()
			if !src.Is6() || src.Is4In6() {
				src = htCoA6
			}
			r.ha.Deliver(htBU6(t, hoa, src, bu), spi, espSeq, endpoint.Endpoint{Encap: endpoint.EncapIP})
		}
		r.pump()
		after := r.ha.Stats()
		if d := after.BadCoA - before.BadCoA; d > 1 {
			t.Fatalf("BU %d counted %d refusals", i, d)
		}
		for _, s := range r.takeSent() {
			if !s.ok {
				t.Fatalf("BU %d: AfterSeal dropped the BA", i)
			}
			if a := s.out.Addr.Addr(); s.out != dpEP && (coaScope(a) != "" || r.ha.isOwnAddress(a.Unmap())) {
				t.Fatalf("BU %d: BA sent to %v", i, s.out)
			}
		}
		if b, ok := r.ha.Cache().Lookup(htHoA2); !ok || b.Primary().Addr != htCoA6b || b.HoA4 != htHoA4 || len(b.CoAs) != 1 {
			t.Fatalf("BU %d changed HoA2's binding: %v", i, b)
		}
		b, ok := r.ha.Cache().Lookup(htHoA1)
		if !ok {
			continue
		}
		for _, c := range b.CoAs {
			a := c.Addr
			bad := coaScope(a) != "" || r.ha.isOwnAddress(a) || a == htHoA1 || a == htHoA2 || a == htHoA4 || (a.IsValid() && a == b.HoA4)
			if c.Endpoint.IsValid() && (coaScope(c.Endpoint.Addr()) != "" || r.ha.isOwnAddress(c.Endpoint.Addr())) {
				bad = true
			}
			if bad {
				t.Fatalf("BU %d: %v bound to %v (endpoint %v, IPv4 HoA %v)", i, b.HoA, a, c.Endpoint, b.HoA4)
			}
		}
	}
	st := r.ha.Stats()
	if st.BadCoA == 0 || st.BUAccepted == 0 {
		t.Errorf("the pool exercised nothing: %+v", st)
	}
	t.Logf("stats %+v", st)
}

// TestHARejectLogLimited: the rejection warning is rate-limited per
// reason, what it held back is reported with the next line, and the
// counters are complete.
func TestHARejectLogLimited(t *testing.T) {
	var l logLimiter
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for range 100 {
		if ok, _ := l.allow(rejInvalidCoA, now); ok {
			n++
		}
	}
	if n != rejLogBurst {
		t.Errorf("%d lines at once, want %d", n, rejLogBurst)
	}
	if ok, _ := l.allow(rejSeq, now); !ok {
		t.Error("another reason was held back")
	}
	ok, held := l.allow(rejInvalidCoA, now.Add(rejLogInterval))
	if !ok || held != 100-rejLogBurst {
		t.Errorf("after an interval: %v, %d held back", ok, held)
	}
	if ok, held := l.allow(rejInvalidCoA, now.Add(rejLogInterval)); ok || held != 0 {
		t.Errorf("second line in the same interval: %v %d", ok, held)
	}

	r := newHCRig(t, func(c *HAConfig) { c.BUBurst = 100 })
	for i := range 50 {
		r.ha.Deliver(htBU6(t, htHoA1, htCoA6, htHomeBU(2, 100, AlternateCoA{Addr: htHA})), htSA1a, uint32(10+i), endpoint.Endpoint{Encap: endpoint.EncapIP})
		r.pump()
	}
	if st := r.ha.Stats(); st.BadCoA != 50 || st.BURejected["invalid-care-of-address"] != 50 {
		t.Errorf("stats %+v", st)
	}
	hcUnchanged(t, r)
}

// TestAddrPortField: no "invalid AddrPort" in the logs.
func TestAddrPortField(t *testing.T) {
	if f := addrPortField("from", netip.AddrPort{}); f.Key != "" {
		t.Errorf("invalid AddrPort logged as %+v", f)
	}
	if f := addrPortField("from", htNAT); f.Key != "from" || fmt.Sprint(f.Interface) != htNAT.String() {
		t.Errorf("field %+v", f)
	}
}
