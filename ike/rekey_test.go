package ike

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// rig watches both fake kernels of a pair during a rekey: one ordered log
// of kernel calls and sent CREATE_CHILD_SA/INFORMATIONAL messages, and the
// "traffic" invariant that each side's policies point at an outbound SA
// whose SPI the other side has as inbound (§2.8: no packet finds no SA).
type rig struct {
	mu         sync.Mutex
	log        []string
	ka, kb     *fakeKernel
	checking   bool
	violations []string
}

func (r *rig) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *rig) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (r *rig) watch(on bool) {
	r.mu.Lock()
	r.checking = on
	r.mu.Unlock()
}

func snapshot(k *fakeKernel) (in map[uint32]bool, out map[uint32]bool, pol map[string]uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	in, out = map[uint32]bool{}, map[uint32]bool{}
	for s := range k.in {
		in[s] = true
	}
	for s := range k.out {
		out[s] = true
	}
	return in, out, maps(k.policies)
}

// check asserts the invariant after a kernel call of side.
func (r *rig) check(side, call string) {
	r.mu.Lock()
	on := r.checking
	r.mu.Unlock()
	if !on {
		return
	}
	aIn, aOut, aPol := snapshot(r.ka)
	bIn, bOut, bPol := snapshot(r.kb)
	var bad []string
	for name, spi := range aPol {
		if !aOut[spi] || !bIn[spi] {
			bad = append(bad, fmt.Sprintf("after %s %s: A's policy %s → %x (A out %v, B in %v)", side, call, name, spi, aOut[spi], bIn[spi]))
		}
	}
	for name, spi := range bPol {
		if !bOut[spi] || !aIn[spi] {
			bad = append(bad, fmt.Sprintf("after %s %s: B's policy %s → %x (B out %v, A in %v)", side, call, name, spi, bOut[spi], aIn[spi]))
		}
	}
	if len(bad) > 0 {
		r.mu.Lock()
		r.violations = append(r.violations, bad...)
		r.mu.Unlock()
	}
}

// recKernel is a fakeKernel whose SA calls go into the rig's log.
type recKernel struct {
	*fakeKernel
	side string
	r    *rig
}

func (k *recKernel) AddInbound(c *ChildSA) error {
	err := k.fakeKernel.AddInbound(c)
	s := fmt.Sprintf("%s in %x", k.side, c.InSPI)
	k.r.add(s)
	k.r.check(k.side, s)
	return err
}

func (k *recKernel) AddOutbound(c *ChildSA) error {
	err := k.fakeKernel.AddOutbound(c)
	s := fmt.Sprintf("%s out %x r %x", k.side, c.OutSPI, c.Replaces)
	k.r.add(s)
	k.r.check(k.side, s)
	return err
}

func (k *recKernel) DelSA(inbound bool, spi uint32) error {
	err := k.fakeKernel.DelSA(inbound, spi)
	dir := "out"
	if inbound {
		dir = "in"
	}
	s := fmt.Sprintf("%s del %s %x", k.side, dir, spi)
	k.r.add(s)
	k.r.check(k.side, s)
	return err
}

func (k *recKernel) DelPolicies(name string) error {
	k.r.add(k.side + " delpol " + name)
	return k.fakeKernel.DelPolicies(name)
}

// armRand is crypto/rand whose next 32-byte read (our nonces; SPIs are 8
// bytes, and crypto/ecdh ignores custom readers) starts with 16 zero
// bytes once armed: that exchange has the lowest nonce (§2.8.1).
type armRand struct {
	mu    sync.Mutex
	armed bool
}

func (r *armRand) Read(p []byte) (int, error) {
	n, err := rand.Read(p)
	r.mu.Lock()
	if r.armed && len(p) == 32 {
		clear(p[:16])
		r.armed = false
	}
	r.mu.Unlock()
	return n, err
}

func (r *armRand) arm() {
	r.mu.Lock()
	r.armed = true
	r.mu.Unlock()
}

type rekeyPair struct {
	n     *network
	a, b  *peer
	r     *rig
	randA *armRand
	randB *armRand
	hold  *holder
}

// holder keeps the CREATE_CHILD_SA messages back while active.
type holder struct {
	mu     sync.Mutex
	active bool
	held   []packet
}

func (h *holder) start() {
	h.mu.Lock()
	h.active = true
	h.mu.Unlock()
}

// wait waits for n held messages and takes them.
func (h *holder) wait(t *testing.T, n int) []packet {
	t.Helper()
	var got []packet
	eventually(t, fmt.Sprintf("%d held messages", n), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.held) < n {
			return false
		}
		got, h.held = h.held[:n], h.held[n:]
		return true
	})
	return got
}

func (h *holder) stop() {
	h.mu.Lock()
	h.active = false
	h.mu.Unlock()
}

func (p *rekeyPair) inject(pk packet) {
	p.n.mu.Lock()
	d := p.n.nodes[pk.dst.Addr()]
	p.n.mu.Unlock()
	d.Receive(pk.b, pk.dst, pk.src)
}

func newRekeyPair(t *testing.T, o pairOpts) *rekeyPair {
	t.Helper()
	p := &rekeyPair{r: &rig{}, randA: &armRand{}, randB: &armRand{}, hold: &holder{}}
	wrap := func(side string, ar *armRand, next func(*Config)) func(*Config) {
		return func(c *Config) {
			fk := c.Kernel.(*fakeKernel)
			if side == "A" {
				p.r.ka = fk
			} else {
				p.r.kb = fk
			}
			c.Kernel = &recKernel{fakeKernel: fk, side: side, r: p.r}
			c.Rand = ar
			c.RekeyGrace = 30 * time.Millisecond
			if next != nil {
				next(c)
			}
		}
	}
	o.cfgA = wrap("A", p.randA, o.cfgA)
	o.cfgB = wrap("B", p.randB, o.cfgB)
	p.n, p.a, p.b = newPair(t, o)
	p.n.setFilter(func(pk *packet) bool {
		h, err := ParseHeader(pk.b)
		if err != nil {
			return true
		}
		if h.Exchange == CREATE_CHILD_SA {
			p.hold.mu.Lock()
			if p.hold.active {
				p.hold.held = append(p.hold.held, *pk)
				p.hold.mu.Unlock()
				return false
			}
			p.hold.mu.Unlock()
		}
		if h.Exchange == CREATE_CHILD_SA || h.Exchange == INFORMATIONAL {
			side := "A"
			if pk.src.Addr() == p.b.addr {
				side = "B"
			}
			kind := "req"
			if h.Flags&FlagResponse != 0 {
				kind = "resp"
			}
			p.r.add(fmt.Sprintf("%s>%s %v", side, kind, h.Exchange))
		}
		return true
	})
	return p
}

// side returns the peer named "A" or "B" and the other one.
func (p *rekeyPair) side(s string) (*peer, *peer, string, string) {
	if s == "A" {
		return p.a, p.b, "A", "B"
	}
	return p.b, p.a, "B", "A"
}

// index is the position of the first line equal to s, -1 if none.
func index(lines []string, s string) int { return slices.Index(lines, s) }

// childOf returns the single installed SA pair of name on p's kernel.
func childOf(t *testing.T, p *peer, policy string) (in, out ChildSA) {
	t.Helper()
	ins, outs, pol := p.k.state()
	spi := pol[policy]
	for _, o := range outs {
		if o.OutSPI == spi {
			out = o
		}
	}
	for _, i := range ins {
		if i.InSPI == out.InSPI {
			in = i
		}
	}
	if out.OutSPI == 0 || in.InSPI == 0 {
		t.Fatalf("%s: no SA pair for %s (policies %v)", p.name, policy, pol)
	}
	return in, out
}

// matched asserts that x's outbound SA of a child is y's inbound one with
// the same keys, and the reverse.
func matched(t *testing.T, xo, yo ChildSA) {
	t.Helper()
	if xo.OutSPI != yo.InSPI || yo.OutSPI != xo.InSPI {
		t.Fatalf("SPIs: %x/%x vs %x/%x", xo.InSPI, xo.OutSPI, yo.InSPI, yo.OutSPI)
	}
	if !bytes.Equal(xo.OutKeys.Enc, yo.InKeys.Enc) || !bytes.Equal(xo.InKeys.Enc, yo.OutKeys.Enc) ||
		!bytes.Equal(xo.OutKeys.Integ, yo.InKeys.Integ) || bytes.Equal(xo.OutKeys.Enc, xo.InKeys.Enc) {
		t.Fatal("keys do not match across the pair")
	}
}

func setESP(t *testing.T, esp string) func(*Connection) {
	return func(c *Connection) {
		for i := range c.Children {
			c.Children[i].Proposals = espProps(t, esp)
		}
	}
}

// secondChild adds child "two" between 10.3/16 (A) and 10.4/16 (B).
func secondChild(t *testing.T, aSide bool, esp string) func(*Connection) {
	return func(c *Connection) {
		ch := c.Children[0]
		ch.Name = "two"
		ch.LocalTS, ch.RemoteTS = []TrafficSelector{prefixTS("10.3.0.0/16")}, []TrafficSelector{prefixTS("10.4.0.0/16")}
		if !aSide {
			ch.LocalTS, ch.RemoteTS = ch.RemoteTS, ch.LocalTS
		}
		ch.Proposals = espProps(t, esp)
		c.Children = append(c.Children, ch)
	}
}

// childDH is the key exchange method the named child of p negotiated.
func childDH(p *peer, name string) DHGroup {
	var g DHGroup
	_ = p.d.call(func() error {
		for _, sa := range p.d.sas {
			for _, ch := range sa.children {
				if ch.name == name && !ch.gone {
					g = ch.suite.DH
				}
			}
		}
		return nil
	})
	return g
}

// TestCreateChild: a second child with CREATE_CHILD_SA (§1.3.1) from
// either side, without and with PFS; the KEYMAT directions follow the
// exchange's initiator (§2.17).
func TestCreateChild(t *testing.T) {
	for _, tc := range []struct {
		by, esp string
		dh      DHGroup
	}{
		{"A", "aes128gcm16", DHNone},
		{"B", "aes128gcm16", DHNone},
		{"A", "aes128gcm16-curve25519", DHCurve25519},
		{"B", "aes256-sha256-modp2048", DHMODP2048},
	} {
		t.Run(tc.by+"/"+tc.esp, func(t *testing.T) {
			p := newRekeyPair(t, pairOpts{a: secondChild(t, true, tc.esp), b: secondChild(t, false, tc.esp)})
			up(t, p.a, p.b)
			init, _, _, _ := p.side(tc.by)
			if err := init.d.Initiate(init.name, "two"); err != nil {
				t.Fatalf("Initiate two: %v", err)
			}
			eventually(t, "B's second outbound", func() bool { _, out, _ := p.b.k.state(); return len(out) == 2 })
			_, ao := childOf(t, p.a, "ab/two")
			_, bo := childOf(t, p.b, "ba/two")
			matched(t, ao, bo)
			_, an := childOf(t, p.a, "ab/net")
			if bytes.Equal(an.OutKeys.Enc, ao.OutKeys.Enc) || ao.ID == an.ID {
				t.Fatal("the second child has the first one's keys or ID")
			}
			if g, h := childDH(p.a, "two"), childDH(p.b, "two"); g != tc.dh || h != tc.dh {
				t.Fatalf("child key exchange %v/%v, want %v", g, h, tc.dh)
			}
			if !slices.EqualFunc(ao.LocalTS, []TrafficSelector{prefixTS("10.3.0.0/16")}, sameTS) {
				t.Fatalf("selectors %v", ao.LocalTS)
			}
			if s := init.d.Stats(); s.Exchanges["CREATE_CHILD_SA"] != 1 || s.ChildSAs != 2 || s.Rekeys != 0 {
				t.Fatalf("stats %+v", s)
			}
			if err := init.d.Initiate(init.name, "two"); err != nil {
				t.Fatalf("Initiate two again (up): %v", err)
			}
			if err := p.a.d.Terminate("ab"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "empty kernels", func() bool { return p.a.k.empty() && p.b.k.empty() })
		})
	}
}

// TestChildRekey: a rekey by either side (§1.3.3, §2.8), in the
// make-before-break order, with the traffic invariant held throughout.
func TestChildRekey(t *testing.T) {
	for _, tc := range []struct{ by, esp string }{
		{"A", "aes128gcm16"},
		{"B", "aes128gcm16"},
		{"A", "aes128gcm16-curve25519"},
		{"B", "aes256-sha256-modp2048"},
	} {
		t.Run(tc.by+"/"+tc.esp, func(t *testing.T) {
			p := newRekeyPair(t, pairOpts{a: setESP(t, tc.esp), b: setESP(t, tc.esp)})
			up(t, p.a, p.b)
			init, resp, I, R := p.side(tc.by)
			_, io := childOf(t, init, init.name+"/net")
			_, ro := childOf(t, resp, resp.name+"/net")
			p.r.watch(true)
			start := len(p.r.lines())
			if err := init.d.Rekey(init.name, "net"); err != nil {
				t.Fatalf("Rekey: %v", err)
			}
			eventually(t, "old SAs gone", func() bool {
				ai, ao, _ := p.a.k.state()
				bi, bo, _ := p.b.k.state()
				return len(ai) == 1 && len(ao) == 1 && len(bi) == 1 && len(bo) == 1 && index(p.r.lines(), fmt.Sprintf("%s del in %x", R, ro.InSPI)) >= 0 &&
					index(p.r.lines(), fmt.Sprintf("%s del in %x", I, io.InSPI)) >= 0
			})
			p.r.watch(false)
			if len(p.r.violations) > 0 {
				t.Fatalf("traffic invariant broken:\n%s", strings.Join(p.r.violations, "\n"))
			}
			no, nr := checkPair(t, init, resp)
			if no.OutSPI == io.OutSPI || no.InSPI == io.InSPI || bytes.Equal(no.OutKeys.Enc, io.OutKeys.Enc) {
				t.Fatal("the rekeyed child has the old SPIs or keys")
			}
			if no.Name != "net" || no.PolicyName != io.PolicyName || no.ID == io.ID || nr.ID == ro.ID {
				t.Fatalf("new child %q %q id %d, old id %d", no.Name, no.PolicyName, no.ID, io.ID)
			}
			l := p.r.lines()[start:]
			at := func(s string) int {
				i := index(l, s)
				if i < 0 {
					t.Fatalf("no %q in\n%s", s, strings.Join(l, "\n"))
				}
				return i
			}
			rIn := at(fmt.Sprintf("%s in %x", R, nr.InSPI))
			rResp := at(R + ">resp CREATE_CHILD_SA")
			iIn := at(fmt.Sprintf("%s in %x", I, no.InSPI))
			iOut := at(fmt.Sprintf("%s out %x r %x", I, no.OutSPI, io.OutSPI))
			iDel := at(I + ">req INFORMATIONAL")
			rOut := at(fmt.Sprintf("%s out %x r %x", R, nr.OutSPI, ro.OutSPI))
			rDelOut := at(fmt.Sprintf("%s del out %x", R, ro.OutSPI))
			rDelIn := at(fmt.Sprintf("%s del in %x", R, ro.InSPI))
			iDelOut := at(fmt.Sprintf("%s del out %x", I, io.OutSPI))
			iDelIn := at(fmt.Sprintf("%s del in %x", I, io.InSPI))
			if !(rIn < rResp && rResp < iIn && iIn < iOut && iOut < iDel && iDel < rOut && rOut < rDelOut &&
				rOut < rDelIn && iOut < iDelOut && rOut < iDelIn && iDelOut < iDelIn) {
				t.Fatalf("make-before-break order broken:\n%s", strings.Join(l, "\n"))
			}
			if slices.ContainsFunc(l, func(s string) bool { return strings.Contains(s, "delpol") }) {
				t.Fatalf("policies removed during a rekey:\n%s", strings.Join(l, "\n"))
			}
			for _, x := range []*peer{p.a, p.b} {
				if s := x.d.Stats(); s.Rekeys != 1 || s.ChildSAs != 1 {
					t.Fatalf("%s stats %+v", x.name, s)
				}
				if ls := x.d.List(); len(ls) != 1 || len(ls[0].Children) != 1 || ls[0].Children[0].State != "installed" {
					t.Fatalf("%s list %+v", x.name, ls)
				}
			}
			// Again: the new child rekeys like the first.
			if err := resp.d.Rekey(resp.name, "net"); err != nil {
				t.Fatalf("second Rekey: %v", err)
			}
			waitStats(t, init, "the second rekey", func(s Stats) bool { return s.Rekeys == 2 })
			eventually(t, "one pair again", func() bool {
				ai, ao, _ := p.a.k.state()
				bi, bo, _ := p.b.k.state()
				return len(ai) == 1 && len(ao) == 1 && len(bi) == 1 && len(bo) == 1
			})
			checkPair(t, p.a, p.b)
		})
	}
}

// TestChildRekeyCollision: both sides rekey the child at once (§2.8.1);
// both requests are delivered before either response. The exchange with
// the lowest nonce loses whichever side started it.
func TestChildRekeyCollision(t *testing.T) {
	for _, loser := range []string{"A", "B"} {
		t.Run("lowest nonce "+loser, func(t *testing.T) {
			p := newRekeyPair(t, pairOpts{})
			up(t, p.a, p.b)
			_, ao := childOf(t, p.a, "ab/net")
			if loser == "A" {
				p.randA.arm()
			} else {
				p.randB.arm()
			}
			p.hold.start()
			errs := make(chan error, 2)
			go func() { errs <- p.a.d.Rekey("ab", "net") }()
			go func() { errs <- p.b.d.Rekey("ba", "net") }()
			reqs := p.hold.wait(t, 2)
			for _, r := range reqs {
				p.inject(r)
			}
			resps := p.hold.wait(t, 2)
			// Both sides have answered the other's rekey; neither has its
			// own answer yet.
			ours, theirs := rekeySPIs(t, p.a)
			if ls := p.a.d.List(); ls[0].Children[0].State != "rekeying" {
				t.Fatalf("A's child during the rekey: %+v", ls[0].Children)
			}
			p.hold.stop()
			for _, r := range resps {
				p.inject(r)
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatalf("Rekey: %v", err)
				}
			}
			eventually(t, "one pair left", func() bool {
				ai, aout, _ := p.a.k.state()
				bi, bout, _ := p.b.k.state()
				return len(ai) == 1 && len(aout) == 1 && len(bi) == 1 && len(bout) == 1
			})
			time.Sleep(100 * time.Millisecond) // nothing more goes
			no, _ := checkPair(t, p.a, p.b)
			if no.OutSPI == ao.OutSPI {
				t.Fatal("the old child survived")
			}
			// The winner is the exchange the other side started.
			want := ours
			if loser == "A" {
				want = theirs
			}
			if no.InSPI != want {
				t.Fatalf("A's surviving inbound SPI %x; A's exchange made %x, B's %x: the lowest nonce's exchange won", no.InSPI, ours, theirs)
			}
			for _, x := range []*peer{p.a, p.b} {
				if ls := x.d.List(); len(ls) != 1 || len(ls[0].Children) != 1 || ls[0].Children[0].State != "installed" {
					t.Fatalf("%s list %+v", x.name, ls)
				}
				x.k.mu.Lock()
				leak := len(x.k.allocated)
				x.k.mu.Unlock()
				if leak != 0 {
					t.Fatalf("%s: %d SPIs allocated and never released", x.name, leak)
				}
			}
		})
	}
}

// rekeySPIs are p's inbound SPIs of the two rekeys of child net in
// flight: of its own exchange and of the peer's.
func rekeySPIs(t *testing.T, p *peer) (ours, theirs uint32) {
	t.Helper()
	_ = p.d.call(func() error {
		for _, sa := range p.d.sas {
			for _, ch := range sa.children {
				if ch.rekey != nil && ch.peerNew != nil {
					ours, theirs = ch.rekey.ch.inSPI, ch.peerNew.inSPI
				}
			}
		}
		return nil
	})
	if ours == 0 || theirs == 0 {
		t.Fatal("no colliding rekeys in flight")
	}
	return ours, theirs
}

// saIDs returns the IKE SAs p's daemon holds: SPIs and initiator flags.
func saIDs(p *peer) (spis [][2]uint64, initiator []bool) {
	_ = p.d.call(func() error {
		for _, sa := range p.d.sas {
			spis = append(spis, [2]uint64{sa.spii, sa.spir})
			initiator = append(initiator, sa.initiator)
		}
		return nil
	})
	return spis, initiator
}

// TestIKERekey: a rekey of the IKE SA by either side (§1.3.2, §2.18): new
// SPIs and keys, the child moves, the old SA is gone on both sides, the
// rekey's initiator is the new SA's original initiator, and the new SA
// carries DPD, a child rekey and the final delete.
func TestIKERekey(t *testing.T) {
	for _, by := range []string{"A", "B"} {
		t.Run(by, func(t *testing.T) {
			dpd := func(c *Connection) { c.DPDDelay = 200 * time.Millisecond }
			p := newRekeyPair(t, pairOpts{a: dpd, b: dpd})
			up(t, p.a, p.b)
			init, resp, _, _ := p.side(by)
			old := p.a.d.List()[0]
			oldKeys := p.a.d.WiresharkKeys()
			_, co := childOf(t, p.a, "ab/net")
			if err := init.d.Rekey(init.name, ""); err != nil {
				t.Fatalf("Rekey IKE: %v", err)
			}
			eventually(t, "one IKE SA on each side", func() bool {
				a, _ := saIDs(p.a)
				b, _ := saIDs(p.b)
				return len(a) == 1 && len(b) == 1
			})
			ia, fa := saIDs(init)
			ib, fb := saIDs(resp)
			if ia[0] != ib[0] || ia[0] == [2]uint64{old.SPIi, old.SPIr} || ia[0][0] == old.SPIi || ia[0][1] == old.SPIr {
				t.Fatalf("SPIs after the rekey %x / %x, before %x %x", ia, ib, old.SPIi, old.SPIr)
			}
			if !fa[0] || fb[0] {
				t.Fatalf("initiator flags %v / %v: the rekey's initiator is the original initiator (§2.18)", fa, fb)
			}
			if nk := p.a.d.WiresharkKeys(); len(nk) != 1 || bytes.Equal(nk[0].SKei, oldKeys[0].SKei) || !bytes.Equal(nk[0].SKei, p.b.d.WiresharkKeys()[0].SKei) {
				t.Fatal("new IKE keys equal the old ones, or differ between the sides")
			}
			for _, x := range []*peer{p.a, p.b} {
				ls := x.d.List()
				if len(ls) != 1 || ls[0].State != "established" || len(ls[0].Children) != 1 || ls[0].Children[0].InSPI == 0 {
					t.Fatalf("%s list %+v", x.name, ls)
				}
				if s := x.d.Stats(); s.Rekeys != 1 || s.IKESAs != 1 || s.ChildSAs != 1 {
					t.Fatalf("%s stats %+v", x.name, s)
				}
			}
			// The child is untouched in the kernel.
			if _, c2 := childOf(t, p.a, "ab/net"); c2.OutSPI != co.OutSPI {
				t.Fatal("the child changed with the IKE SA rekey")
			}
			// Liveness checks on the new SA.
			before := p.a.d.Stats().Exchanges["INFORMATIONAL"]
			waitStats(t, p.a, "a DPD on the new SA", func(s Stats) bool { return s.Exchanges["INFORMATIONAL"] > before+1 })
			// A child rekey on the new SA (its SK_d).
			if err := resp.d.Rekey(resp.name, "net"); err != nil {
				t.Fatalf("child Rekey on the new IKE SA: %v", err)
			}
			eventually(t, "one pair", func() bool {
				ai, ao, _ := p.a.k.state()
				bi, bo, _ := p.b.k.state()
				return len(ai) == 1 && len(ao) == 1 && len(bi) == 1 && len(bo) == 1
			})
			checkPair(t, p.a, p.b)
			// And another IKE rekey, by the other side.
			if err := resp.d.Rekey(resp.name, ""); err != nil {
				t.Fatalf("second IKE rekey: %v", err)
			}
			if err := p.a.d.Terminate("ab"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "everything gone", func() bool {
				a, _ := saIDs(p.a)
				b, _ := saIDs(p.b)
				return len(a) == 0 && len(b) == 0 && p.a.k.empty() && p.b.k.empty()
			})
		})
	}
}

// TestIKERekeyCollision: both sides rekey the IKE SA at once (§2.8.2); the
// exchange with the lowest nonce loses and one IKE SA remains, with the
// child.
func TestIKERekeyCollision(t *testing.T) {
	for _, loser := range []string{"A", "B"} {
		t.Run("lowest nonce "+loser, func(t *testing.T) {
			// Held messages must not be retransmitted meanwhile (a loaded
			// machine under -race holds them past 40 ms).
			slow := func(c *Config) { c.Retransmit = 2 * time.Second }
			p := newRekeyPair(t, pairOpts{cfgA: slow, cfgB: slow})
			up(t, p.a, p.b)
			if loser == "A" {
				p.randA.arm()
			} else {
				p.randB.arm()
			}
			p.hold.start()
			errs := make(chan error, 2)
			go func() { errs <- p.a.d.Rekey("ab", "") }()
			go func() { errs <- p.b.d.Rekey("ba", "") }()
			for _, r := range p.hold.wait(t, 2) {
				p.inject(r)
			}
			resps := p.hold.wait(t, 2)
			// The old SA is rekeying; the one A's rekey made is listed too.
			if ls := p.b.d.List(); len(ls) != 2 || ls[0].State != "rekeying" || ls[1].State != "established" {
				t.Fatalf("B during the rekey: %+v", ls)
			}
			p.hold.stop()
			for _, r := range resps {
				p.inject(r)
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatalf("Rekey: %v", err)
				}
			}
			eventually(t, "one IKE SA on each side", func() bool {
				a, _ := saIDs(p.a)
				b, _ := saIDs(p.b)
				return len(a) == 1 && len(b) == 1
			})
			sa, fa := saIDs(p.a)
			sb, _ := saIDs(p.b)
			if sa[0] != sb[0] {
				t.Fatalf("different IKE SAs survived: %x / %x", sa, sb)
			}
			// The winner is the exchange the other side started.
			if fa[0] != (loser == "B") {
				t.Fatalf("A is initiator %v of the survivor; the lowest nonce's exchange won", fa[0])
			}
			for _, x := range []*peer{p.a, p.b} {
				if ls := x.d.List(); len(ls) != 1 || len(ls[0].Children) != 1 {
					t.Fatalf("%s list %+v", x.name, ls)
				}
			}
			checkPair(t, p.a, p.b)
			if err := p.b.d.Rekey("ba", "net"); err != nil {
				t.Fatalf("child rekey on the survivor: %v", err)
			}
		})
	}
}

// TestSoftExpiry: the kernel's soft lifetime events of both SAs of a child
// start one rekey.
func TestSoftExpiry(t *testing.T) {
	p := newRekeyPair(t, pairOpts{})
	up(t, p.a, p.b)
	ai, ao := childOf(t, p.a, "ab/net")
	p.a.d.Expired(true, ai.InSPI, false)
	p.a.d.Expired(false, ao.OutSPI, false)
	p.a.d.Expired(true, 0x1234, false) // no such SA
	waitStats(t, p.b, "the rekey", func(s Stats) bool { return s.Rekeys == 1 })
	eventually(t, "the old pair gone", func() bool {
		_, out, _ := p.a.k.state()
		_, bout, _ := p.b.k.state()
		return len(out) == 1 && len(bout) == 1 && out[0].OutSPI != ao.OutSPI
	})
	time.Sleep(50 * time.Millisecond)
	if got := len(captured(p.n, addrA, CREATE_CHILD_SA, false)); got != 1 {
		t.Fatalf("%d CREATE_CHILD_SA requests, want 1", got)
	}
	checkPair(t, p.a, p.b)
}

// TestRekeyRefused: the responder refuses the rekey (NO_PROPOSAL_CHOSEN:
// A wants PFS, B has none); the old child stays and nothing leaks.
func TestRekeyRefused(t *testing.T) {
	p := newRekeyPair(t, pairOpts{a: setESP(t, "aes128gcm16-curve25519"), b: setESP(t, "aes128gcm16")})
	up(t, p.a, p.b)
	ai, ao := childOf(t, p.a, "ab/net")
	err := p.a.d.Rekey("ab", "net")
	if err == nil || !strings.Contains(err.Error(), "NO_PROPOSAL_CHOSEN") {
		t.Fatalf("Rekey: %v", err)
	}
	ai2, ao2 := childOf(t, p.a, "ab/net")
	if ai2.InSPI != ai.InSPI || ao2.OutSPI != ao.OutSPI {
		t.Fatal("the old child changed")
	}
	checkPair(t, p.a, p.b)
	p.a.k.mu.Lock()
	leak := len(p.a.k.allocated)
	p.a.k.mu.Unlock()
	if leak != 0 || p.a.k.count("release") != 1 {
		t.Fatalf("%d SPIs held, %d released", leak, p.a.k.count("release"))
	}
	if ls := p.a.d.List(); ls[0].Children[0].State != "installed" {
		t.Fatalf("state %q", ls[0].Children[0].State)
	}
	if p.b.d.Stats().Failures["no_proposal"] != 1 || p.a.d.Stats().Rekeys != 0 {
		t.Fatal("not counted")
	}
	// The child still rekeys where the peer allows it (B → A, no PFS
	// offered: A's PFS proposal needs a KE, so A refuses too).
	if err := p.b.d.Rekey("ba", "net"); err == nil {
		t.Fatal("B's rekey without PFS accepted by A, which requires it")
	}
	checkPair(t, p.a, p.b)
}

// TestCreateChildInvalidKE: the responder wants another group for the
// child's PFS (§1.3): the initiator retries with it.
func TestCreateChildInvalidKE(t *testing.T) {
	p := newRekeyPair(t, pairOpts{a: secondChild(t, true, "aes128gcm16-curve25519-modp2048"), b: secondChild(t, false, "aes128gcm16-modp2048")})
	up(t, p.a, p.b)
	if err := p.a.d.Initiate("ab", "two"); err != nil {
		t.Fatalf("Initiate: %v", err)
	}
	eventually(t, "B's second child", func() bool { _, out, _ := p.b.k.state(); return len(out) == 2 })
	_, ao := childOf(t, p.a, "ab/two")
	_, bo := childOf(t, p.b, "ba/two")
	matched(t, ao, bo)
	if childDH(p.a, "two") != DHMODP2048 || p.b.d.Stats().Failures["invalid_ke"] != 1 {
		t.Fatalf("group %v, invalid_ke %d", childDH(p.a, "two"), p.b.d.Stats().Failures["invalid_ke"])
	}
	if got := len(captured(p.n, addrA, CREATE_CHILD_SA, false)); got != 2 {
		t.Fatalf("%d requests, want 2", got)
	}
}

// TestCreateChildRetransmit: a lost response; the retransmitted request
// gets the cached answer and nothing is installed twice.
func TestCreateChildRetransmit(t *testing.T) {
	p := newRekeyPair(t, pairOpts{})
	up(t, p.a, p.b)
	var dropped bool
	var mu sync.Mutex
	prev := p.n.filter
	p.n.setFilter(func(pk *packet) bool {
		h, err := ParseHeader(pk.b)
		mu.Lock()
		defer mu.Unlock()
		if err == nil && h.Exchange == CREATE_CHILD_SA && h.Flags&FlagResponse != 0 && !dropped {
			dropped = true
			return false
		}
		return prev(pk)
	})
	ins := p.b.k.count("in ")
	if err := p.a.d.Rekey("ab", "net"); err != nil {
		t.Fatalf("Rekey: %v", err)
	}
	if got := len(captured(p.n, addrA, CREATE_CHILD_SA, false)); got != 2 {
		t.Fatalf("%d requests, want 2 (one retransmission)", got)
	}
	if got := p.b.k.count("in ") - ins; got != 1 {
		t.Fatalf("B installed %d inbound SAs for one rekey", got)
	}
	eventually(t, "one pair", func() bool {
		in, out, _ := p.a.k.state()
		bin, bout, _ := p.b.k.state()
		return len(out) == 1 && len(bout) == 1 && len(in) == 1 && len(bin) == 1
	})
	checkPair(t, p.a, p.b)
}

// exchange sends one request of payloads ps on p's IKE SA and returns
// the response payloads.
func exchange(t *testing.T, p *peer, ex ExchangeType, ps []Payload) []Payload {
	t.Helper()
	if _, _, err := AppendPayloads(nil, ps); err != nil {
		t.Fatalf("cannot encode the request: %v", err)
	}
	got := make(chan []Payload, 1)
	err := p.d.call(func() error {
		for _, sa := range p.d.sas {
			if sa.state == stateEstablished {
				p.d.queueRequest(sa, &request{exchange: ex, payloads: ps,
					onResponse: func(_ *Message, inner []Payload) { got <- inner }})
				return nil
			}
		}
		return fmt.Errorf("no IKE SA")
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
	}
	return nil
}

func notifyOf(ps []Payload) (NotifyType, []byte) {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.NotifyType.IsError() {
			return n.NotifyType, n.Data
		}
	}
	return 0, nil
}

// TestCreateChildHostile: authenticated but unacceptable CREATE_CHILD_SA
// requests are refused with the right notify, and nothing is installed
// or kept.
func TestCreateChildHostile(t *testing.T) {
	pfs := setESP(t, "aes128gcm16-curve25519")
	p := newRekeyPair(t, pairOpts{a: pfs, b: pfs})
	up(t, p.a, p.b) // the IKE_AUTH child has no KE
	nonce := make([]byte, 32)
	rand.Read(nonce)
	espSA := func(spi []byte, esp string) *SA {
		pr := espProps(t, esp)
		for i := range pr {
			pr[i].Number, pr[i].SPI = uint8(i+1), spi
		}
		return &SA{Proposals: pr}
	}
	ts := []Payload{&TS{Initiator: true, Selectors: []TrafficSelector{prefixTS("10.1.0.0/16")}},
		&TS{Initiator: false, Selectors: []TrafficSelector{prefixTS("10.2.0.0/16")}}}
	ke := func(g DHGroup) *KE {
		k, err := NewKeyExchange(g, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return &KE{Group: g, Data: k.PublicValue()}
	}
	spi := []byte{0xde, 0xad, 0xbe, 0xef}
	ikeSPI := binary.BigEndian.AppendUint64(nil, 0x1122334455667788)
	ikeSA := func(spi []byte) *SA {
		pr := ikeProps(t, "aes128gcm16-prfsha256-curve25519")
		pr[0].Number, pr[0].SPI = 1, spi
		return &SA{Proposals: pr}
	}
	before := p.b.k.count("in ")
	for _, tc := range []struct {
		name string
		ps   []Payload
		want NotifyType
		data []byte
	}{
		{"rekey of an SPI not ours", append([]Payload{&Notify{Protocol: ProtoESP, SPI: []byte{0, 0, 0x12, 0x34}, NotifyType: REKEY_SA},
			espSA(spi, "aes128gcm16-curve25519"), &Nonce{Data: nonce}, ke(DHCurve25519)}, ts...), CHILD_SA_NOT_FOUND, nil},
		{"rekey with a 2-byte SPI", append([]Payload{&Notify{Protocol: ProtoESP, SPI: []byte{1, 2}, NotifyType: REKEY_SA},
			espSA(spi, "aes128gcm16-curve25519"), &Nonce{Data: nonce}}, ts...), INVALID_SYNTAX, nil},
		{"KE of an unnegotiated group", append([]Payload{espSA(spi, "aes128gcm16-curve25519"), &Nonce{Data: nonce}, ke(DHMODP2048)}, ts...),
			INVALID_KE_PAYLOAD, []byte{0, byte(DHCurve25519)}},
		{"no KE for PFS", append([]Payload{espSA(spi, "aes128gcm16-curve25519"), &Nonce{Data: nonce}}, ts...),
			INVALID_KE_PAYLOAD, []byte{0, byte(DHCurve25519)}},
		{"bad KE value", append([]Payload{espSA(spi, "aes128gcm16-curve25519"), &Nonce{Data: nonce}, &KE{Group: DHCurve25519, Data: make([]byte, 32)}}, ts...),
			INVALID_SYNTAX, nil},
		{"no acceptable proposal", append([]Payload{espSA(spi, "aes256-sha256-curve25519"), &Nonce{Data: nonce}, ke(DHCurve25519)}, ts...),
			NO_PROPOSAL_CHOSEN, nil},
		{"reserved ESP SPI", append([]Payload{espSA([]byte{0, 0, 0, 7}, "aes128gcm16-curve25519"), &Nonce{Data: nonce}, ke(DHCurve25519)}, ts...),
			NO_PROPOSAL_CHOSEN, nil},
		{"no nonce", append([]Payload{espSA(spi, "aes128gcm16-curve25519"), ke(DHCurve25519)}, ts...), INVALID_SYNTAX, nil},
		{"no TS", []Payload{espSA(spi, "aes128gcm16-curve25519"), &Nonce{Data: nonce}, ke(DHCurve25519)}, INVALID_SYNTAX, nil},
		{"TS outside", []Payload{espSA(spi, "aes128gcm16-curve25519"), &Nonce{Data: nonce}, ke(DHCurve25519),
			&TS{Initiator: true, Selectors: []TrafficSelector{prefixTS("172.16.0.0/12")}}, ts[1]}, TS_UNACCEPTABLE, nil},
		{"IKE rekey with a zero SPI", []Payload{ikeSA(make([]byte, 8)), &Nonce{Data: nonce}, ke(DHCurve25519)}, NO_PROPOSAL_CHOSEN, nil},
		{"IKE rekey with a KE of another group", []Payload{ikeSA(ikeSPI), &Nonce{Data: nonce}, ke(DHMODP2048)},
			INVALID_KE_PAYLOAD, []byte{0, byte(DHCurve25519)}},
		{"IKE rekey with a bad KE", []Payload{ikeSA(ikeSPI), &Nonce{Data: nonce}, &KE{Group: DHCurve25519, Data: []byte{1}}}, INVALID_SYNTAX, nil},
	} {
		got, data := notifyOf(exchange(t, p.a, CREATE_CHILD_SA, tc.ps))
		if got != tc.want || (tc.data != nil && !bytes.Equal(data, tc.data)) {
			t.Errorf("%s: answered %v %x, want %v %x", tc.name, got, data, tc.want, tc.data)
		}
	}
	if got := p.b.k.count("in ") - before; got != 0 {
		t.Fatalf("B installed %d inbound SAs for refused requests", got)
	}
	p.b.k.mu.Lock()
	leak := len(p.b.k.allocated)
	p.b.k.mu.Unlock()
	if leak != 0 {
		t.Fatalf("B holds %d SPIs", leak)
	}
	if sa, _ := saIDs(p.b); len(sa) != 1 {
		t.Fatalf("B has %d IKE SAs", len(sa))
	}
	// The IKE SA and the child still work.
	checkPair(t, p.a, p.b)
	if err := p.a.d.Rekey("ab", "net"); err != nil {
		t.Fatalf("Rekey after the hostile requests: %v", err)
	}
}

// TestRekeyTemporaryFailure: an IKE SA rekey and a child rekey cross
// (§2.25): each side answers TEMPORARY_FAILURE and retries after a
// random delay, and both rekeys complete.
func TestRekeyTemporaryFailure(t *testing.T) {
	p := newRekeyPair(t, pairOpts{})
	up(t, p.a, p.b)
	p.hold.start()
	errs := make(chan error, 2)
	go func() { errs <- p.a.d.Rekey("ab", "") }()
	go func() { errs <- p.b.d.Rekey("ba", "net") }()
	for _, r := range p.hold.wait(t, 2) {
		p.inject(r)
	}
	resps := p.hold.wait(t, 2)
	p.hold.stop()
	for _, r := range resps {
		p.inject(r)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Rekey: %v", err)
		}
	}
	waitStats(t, p.a, "both rekeys", func(s Stats) bool { return s.Rekeys == 2 })
	eventually(t, "one IKE SA and one pair", func() bool {
		a, _ := saIDs(p.a)
		in, out, _ := p.a.k.state()
		bin, bout, _ := p.b.k.state()
		return len(a) == 1 && len(out) == 1 && len(bout) == 1 && len(in) == 1 && len(bin) == 1
	})
	checkPair(t, p.a, p.b)
}

// TestStartStartChildren: StartStart children beyond the first come up
// with CREATE_CHILD_SA after IKE_AUTH.
func TestStartStartChildren(t *testing.T) {
	start := func(c *Connection) {
		for i := range c.Children {
			c.Children[i].Start = StartStart
		}
	}
	p := newRekeyPair(t, pairOpts{
		a: func(c *Connection) { secondChild(t, true, "aes128gcm16")(c); start(c) },
		b: secondChild(t, false, "aes128gcm16"),
	})
	eventually(t, "both children", func() bool {
		_, out, _ := p.b.k.state()
		_, aout, _ := p.a.k.state()
		return len(out) == 2 && len(aout) == 2
	})
	_, ao := childOf(t, p.a, "ab/two")
	_, bo := childOf(t, p.b, "ba/two")
	matched(t, ao, bo)
}

// TestIKERekeyTimer: Connection.RekeyTime rekeys the IKE SA by itself
// (less a jitter), and again on the new SA.
func TestIKERekeyTimer(t *testing.T) {
	p := newRekeyPair(t, pairOpts{a: func(c *Connection) { c.RekeyTime = 150 * time.Millisecond }})
	up(t, p.a, p.b)
	if ls := p.a.d.List(); ls[0].RekeyAt.IsZero() || ls[0].RekeyAt.After(time.Now().Add(150*time.Millisecond)) {
		t.Fatalf("RekeyAt %v", ls[0].RekeyAt)
	}
	waitStats(t, p.b, "two IKE SA rekeys", func(s Stats) bool { return s.Rekeys >= 2 })
	eventually(t, "one IKE SA on each side", func() bool {
		a, _ := saIDs(p.a)
		b, _ := saIDs(p.b)
		return len(a) == 1 && len(b) == 1
	})
	checkPair(t, p.a, p.b)
	if _, fa := saIDs(p.a); !fa[0] {
		t.Fatal("A rekeyed but is not the initiator of the new SA")
	}
}

// TestRekeyChildNotFound: the peer no longer has the child (§2.25): it
// answers CHILD_SA_NOT_FOUND, and the rekeying side replaces the child
// with a new one.
func TestRekeyChildNotFound(t *testing.T) {
	p := newRekeyPair(t, pairOpts{})
	up(t, p.a, p.b)
	_, ao := childOf(t, p.a, "ab/net")
	// B forgets the child without telling A.
	_ = p.b.d.call(func() error {
		for _, sa := range p.b.d.sas {
			for _, ch := range slices.Clone(sa.children) {
				p.b.d.dropChild(sa, ch)
			}
		}
		return nil
	})
	if !p.b.k.empty() {
		t.Fatal("B still has SAs")
	}
	if err := p.a.d.Rekey("ab", "net"); err != nil {
		t.Fatalf("Rekey: %v", err)
	}
	eventually(t, "a new child", func() bool {
		_, bout, _ := p.b.k.state()
		return len(bout) == 1
	})
	no, _ := checkPair(t, p.a, p.b)
	if no.OutSPI == ao.OutSPI {
		t.Fatal("the old child is still there")
	}
	if p.b.d.Stats().Failures["invalid_spi"] != 1 {
		t.Fatal("the refusal was not counted")
	}
}

// TestChildQueuedDuringIKERekey: a child request queued behind our IKE SA
// rekey goes out on the new IKE SA (§2.18).
func TestChildQueuedDuringIKERekey(t *testing.T) {
	p := newRekeyPair(t, pairOpts{a: secondChild(t, true, "aes128gcm16"), b: secondChild(t, false, "aes128gcm16")})
	up(t, p.a, p.b)
	p.hold.start()
	errs := make(chan error, 2)
	go func() { errs <- p.a.d.Rekey("ab", "") }()
	req := p.hold.wait(t, 1)
	go func() { errs <- p.a.d.Initiate("ab", "two") }()
	eventually(t, "the child request queued", func() bool {
		n := 0
		_ = p.a.d.call(func() error {
			for _, sa := range p.a.d.sas {
				n += len(sa.queue)
			}
			return nil
		})
		return n == 1
	})
	p.hold.stop()
	p.inject(req[0])
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "one IKE SA with both children", func() bool {
		a, _ := saIDs(p.a)
		b, _ := saIDs(p.b)
		ls := p.b.d.List()
		return len(a) == 1 && len(b) == 1 && len(ls) == 1 && len(ls[0].Children) == 2
	})
	_, ao := childOf(t, p.a, "ab/two")
	_, bo := childOf(t, p.b, "ba/two")
	matched(t, ao, bo)
}

// TestTooManyChildren: a peer cannot fill the kernel with children.
func TestTooManyChildren(t *testing.T) {
	p := newRekeyPair(t, pairOpts{})
	up(t, p.a, p.b)
	ts := []Payload{&TS{Initiator: true, Selectors: []TrafficSelector{prefixTS("10.1.0.0/16")}},
		&TS{Initiator: false, Selectors: []TrafficSelector{prefixTS("10.2.0.0/16")}}}
	var last NotifyType
	for i := range maxChildren {
		nonce := make([]byte, 32)
		rand.Read(nonce)
		pr := espProps(t, "aes128gcm16")
		pr[0].Number, pr[0].SPI = 1, binary.BigEndian.AppendUint32(nil, 0x10000+uint32(i))
		last, _ = notifyOf(exchange(t, p.a, CREATE_CHILD_SA, append([]Payload{&SA{Proposals: pr}, &Nonce{Data: nonce}}, ts...)))
		if last == NO_ADDITIONAL_SAS {
			break
		}
	}
	if last != NO_ADDITIONAL_SAS {
		t.Fatalf("the %d-th child: %v", maxChildren+1, last)
	}
	if s := p.b.d.Stats(); s.ChildSAs != maxChildren {
		t.Fatalf("B holds %d children", s.ChildSAs)
	}
}
