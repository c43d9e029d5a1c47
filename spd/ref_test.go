package spd

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
)

// refFind is the reference model (STYLE.md §8, like wireguard-go's
// allowedips_rand_test.go): a linear first-match scan over the policies of
// dir using sad.Selector.Match, nothing else.
func refFind(ps []Policy, dir sad.Direction, f *header.Flow) int {
	n := 0
	for i := range ps {
		if ps[i].Dir != dir {
			continue
		}
		for j := range ps[i].Selectors {
			if ps[i].Selectors[j].Match(dir, f) {
				return n
			}
		}
		n++
	}
	return -1
}

// refDecide is the reference Decision (SA left out; checked by the
// RFC 4877 table tests).
func refDecide(ps []Policy, dir sad.Direction, f *header.Flow) Decision {
	i := refFind(ps, dir, f)
	if i < 0 {
		return Decision{Action: Discard, Index: -1, Reason: ReasonNoMatch}
	}
	var p *Policy
	n := 0
	for k := range ps {
		if ps[k].Dir == dir {
			if n == i {
				p = &ps[k]
				break
			}
			n++
		}
	}
	switch {
	case p.Action == Protect && dir == sad.Inbound:
		return Decision{Action: Discard, Index: i, Reason: ReasonUnprotected}
	case p.Action == Protect:
		return Decision{Action: Protect, SPI: p.SPI, Index: i}
	}
	return Decision{Action: p.Action, Index: i}
}

// testConfigs reach every index path: the linear scan, one level that
// holds everything, and budgets so tight that sets are demoted through
// every level into rest.
var testConfigs = []struct {
	name string
	cfg  indexConfig
}{
	{"default", defaultConfig},
	{"indexed", indexConfig{linearMax: 0, budgetFactor: 4, budgetSlack: 256, maxLevels: 3}},
	{"tight", indexConfig{linearMax: 0, budgetFactor: 1, budgetSlack: 0, maxLevels: 2}},
	{"starved", indexConfig{linearMax: 0, budgetFactor: 0, budgetSlack: 3, maxLevels: 1}},
	{"nolevels", indexConfig{linearMax: 0, budgetFactor: 4, budgetSlack: 256, maxLevels: 0}},
}

func newTestDB(cfg indexConfig, sadb SALookup) *DB {
	db := New(sadb)
	db.cfg = cfg
	return db
}

// gen makes random policies and flows over small address spaces, so that
// ranges overlap often. edges&1 adds the first address of each family to
// the space, edges&2 the last one; without them the index's jump table
// sees addresses outside the common prefix of its bounds.
type gen struct {
	r     *rand.Rand
	edges int
}

var (
	v4Base = netip.MustParseAddr("10.0.0.0")
	v6Base = netip.MustParseAddr("2001:db8::")
	// near are addresses just outside the clusters gen draws from.
	near = [2][4]netip.Addr{
		{netip.MustParseAddr("9.255.255.255"), netip.MustParseAddr("10.0.0.255"),
			netip.MustParseAddr("10.0.1.0"), netip.MustParseAddr("200.1.2.3")},
		{netip.MustParseAddr("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"), netip.MustParseAddr("2001:db8::1:0:0:0"),
			netip.MustParseAddr("2001:db8:1::"), netip.MustParseAddr("fe80::1")},
	}
)

// addr returns an address of family fam (32 or 128) from a space of about
// 40 values: two clusters, a few addresses near them, for IPv6 a
// v4-mapped one and, with edges, the family's first and last address.
func (g gen) addr(fam int) netip.Addr {
	n := g.r.IntN(44)
	fi := 0
	if fam == 128 {
		fi = 1
	}
	switch {
	case n >= 40:
		return near[fi][n-40]
	case n == 38 && g.edges&1 != 0 && fam == 32:
		return netip.MustParseAddr("0.0.0.0")
	case n == 39 && g.edges&2 != 0 && fam == 32:
		return netip.MustParseAddr("255.255.255.255")
	case n == 38 && g.edges&1 != 0:
		return netip.MustParseAddr("::")
	case n == 39 && g.edges&2 != 0:
		return netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	case n == 37 && fam == 128:
		return netip.MustParseAddr("::ffff:10.0.0.3")
	}
	if fam == 32 {
		b := v4Base.As4()
		b[3] = byte(n)
		return netip.AddrFrom4(b)
	}
	b := v6Base.As16()
	b[15] = byte(n)
	if n >= 32 {
		b[7] = 1 // a second cluster far away
	}
	return netip.AddrFrom16(b)
}

func (g gen) addrRange(fam int) sad.AddrRange {
	switch g.r.IntN(6) {
	case 0, 1:
		return sad.AnyAddr
	case 2:
		return sad.SingleAddr(g.addr(fam))
	case 3:
		a := g.addr(fam)
		bits := fam - g.r.IntN(5)
		if g.r.IntN(3) == 0 {
			bits = fam - 8 - g.r.IntN(3)
		}
		if g.r.IntN(8) == 0 {
			bits = g.r.IntN(fam + 1)
		}
		return sad.PrefixRange(netip.PrefixFrom(a, bits))
	}
	a, b := g.addr(fam), g.addr(fam)
	if b.Less(a) {
		a, b = b, a
	}
	return sad.AddrRange{From: a, To: b}
}

var protos = []uint8{sad.ProtoAny, header.ProtoTCP, header.ProtoUDP, header.ProtoSCTP,
	header.ProtoICMP, header.ProtoICMPv6, header.ProtoMobility, header.ProtoESP}

func (g gen) proto() uint8 {
	if g.r.IntN(10) == 0 {
		return uint8(g.r.IntN(256))
	}
	return protos[g.r.IntN(len(protos))]
}

func (g gen) ports() sad.Ports {
	switch g.r.IntN(8) {
	case 0, 1, 2:
		return sad.Ports{}
	case 3:
		return sad.Opaque
	case 4:
		return sad.Port(uint16(g.r.IntN(6)))
	case 5:
		return sad.ICMPType(uint8(g.r.IntN(4)))
	case 6:
		return sad.ICMPTypeCode(uint8(g.r.IntN(4)), uint8(g.r.IntN(3)))
	}
	lo := uint16(g.r.IntN(6))
	return sad.PortsRange(lo, lo+uint16(g.r.IntN(4)))
}

func (g gen) policy(name string) Policy {
	p := Policy{Name: name, Dir: sad.Outbound, Action: Action(g.r.IntN(3))}
	if g.r.IntN(2) == 0 {
		p.Dir = sad.Inbound
	}
	if p.Action == Protect {
		p.SPI = 1 + g.r.Uint32N(1000)
	}
	fam := 32
	if g.r.IntN(2) == 0 {
		fam = 128
	}
	n := 1
	if g.r.IntN(4) == 0 {
		n += g.r.IntN(3)
	}
	for range n {
		p.Selectors = append(p.Selectors, sad.Selector{
			Local:      g.addrRange(fam),
			Remote:     g.addrRange(fam),
			Proto:      g.proto(),
			LocalPort:  g.ports(),
			RemotePort: g.ports(),
		})
	}
	return p
}

func (g gen) policies(n int) []Policy {
	ps := make([]Policy, n)
	for i := range ps {
		name := ""
		if g.r.IntN(4) != 0 {
			name = "p" + itoa(i)
		}
		ps[i] = g.policy(name)
	}
	return ps
}

func (g gen) flow() header.Flow {
	fam := 32
	if g.r.IntN(2) == 0 {
		fam = 128
	}
	f := header.Flow{Src: g.addr(fam), Dst: g.addr(fam), Proto: g.proto()}
	switch g.r.IntN(30) {
	case 0:
		f.Src = netip.Addr{}
	case 1:
		f.Dst = netip.Addr{}
	case 2:
		if fam == 128 {
			f.Src = f.Src.WithZone("eth0")
		}
	case 3:
		f.Dst = g.addr(160 - fam) // the other family
	}
	f.SrcPort = uint16(g.r.IntN(7))
	f.DstPort = uint16(g.r.IntN(7))
	f.TypeCode = uint16(g.r.IntN(5))<<8 | uint16(g.r.IntN(4))
	if g.r.IntN(6) == 0 {
		f.Opaque, f.Fragment = true, true
	}
	return f
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}

// checkAll compares db with the reference model on flows.
func checkAll(t *testing.T, db *DB, ps []Policy, flows []header.Flow) {
	t.Helper()
	for i := range flows {
		for _, dir := range []sad.Direction{sad.Outbound, sad.Inbound} {
			want := refDecide(ps, dir, &flows[i])
			got := db.LookupFlow(dir, &flows[i])
			if got != want {
				t.Fatalf("flow %d %+v %v:\n got %+v\nwant %+v\npolicies:\n%s", i, flows[i], dir, got, want, dump(ps))
			}
		}
	}
}

func dump(ps []Policy) string {
	s := ""
	for i, p := range ps {
		s += itoa(i) + " " + p.Dir.String() + " " + p.Action.String() + ":"
		for _, sel := range p.Selectors {
			s += " {" + rangeString(sel.Local) + " " + rangeString(sel.Remote) + " proto " + itoa(int(sel.Proto)) +
				" " + portsString(sel.LocalPort) + " " + portsString(sel.RemotePort) + "}"
		}
		s += "\n"
	}
	return s
}

func rangeString(r sad.AddrRange) string {
	if r.IsAny() {
		return "any"
	}
	return r.From.String() + "-" + r.To.String()
}

func portsString(p sad.Ports) string {
	switch p.Match {
	case sad.PortAny:
		return "any"
	case sad.PortOpaque:
		return "opaque"
	}
	return itoa(int(p.Lo)) + "-" + itoa(int(p.Hi))
}

// TestRandomVsReference compares every decision with the linear model on
// random policy sets and random flows.
func TestRandomVsReference(t *testing.T) {
	iters := 300
	if testing.Short() {
		iters = 50
	}
	for _, tc := range testConfigs {
		t.Run(tc.name, func(t *testing.T) {
			g := gen{r: rand.New(rand.NewPCG(1, uint64(len(tc.name))))}
			for it := range iters {
				g.edges = it % 4
				n := 1 + g.r.IntN(60)
				if it%50 == 0 {
					n = 400 + g.r.IntN(400)
				}
				ps := g.policies(n)
				db := newTestDB(tc.cfg, nil)
				if err := db.Replace(ps); err != nil {
					t.Fatal(err)
				}
				flows := make([]header.Flow, 200)
				for i := range flows {
					flows[i] = g.flow()
				}
				checkAll(t, db, ps, flows)
			}
		})
	}
}

// TestRandomMutations applies random Insert, Append and Delete to a DB and
// to a plain slice, comparing List and every decision after each step.
func TestRandomMutations(t *testing.T) {
	for _, tc := range testConfigs {
		t.Run(tc.name, func(t *testing.T) {
			g := gen{r: rand.New(rand.NewPCG(2, uint64(len(tc.name))))}
			for round := range 20 {
				g.edges = round % 4
				ps := g.policies(g.r.IntN(40))
				db := newTestDB(tc.cfg, nil)
				if err := db.Replace(ps); err != nil {
					t.Fatal(err)
				}
				next := len(ps)
				var (
					caches [2]Cache
					last   header.Flow
				)
				for step := range 40 {
					switch op := g.r.IntN(3); {
					case op == 0 || len(ps) == 0:
						p := g.policy("m" + itoa(round) + "." + itoa(next))
						next++
						dirList := dirPositions(ps, p.Dir)
						at := g.r.IntN(len(dirList) + 1)
						if err := db.Insert(at, p); err != nil {
							t.Fatal(err)
						}
						// Position in the mixed slice: before the at-th
						// policy of that direction, or at the end.
						pos := len(ps)
						if at < len(dirList) {
							pos = dirList[at]
						}
						ps = append(ps[:pos], append([]Policy{p}, ps[pos:]...)...)
					case op == 1:
						p := g.policy("a" + itoa(round) + "." + itoa(next))
						next++
						if err := db.Append(p); err != nil {
							t.Fatal(err)
						}
						ps = append(ps, p)
					default:
						i := g.r.IntN(len(ps))
						if ps[i].Name == "" {
							if err := db.Delete(""); err == nil {
								t.Fatal("Delete(\"\") succeeded")
							}
							continue
						}
						if err := db.Delete(ps[i].Name); err != nil {
							t.Fatalf("step %d: %v", step, err)
						}
						ps = append(ps[:i], ps[i+1:]...)
					}
					for _, dir := range []sad.Direction{sad.Outbound, sad.Inbound} {
						got := db.List(dir)
						var want []Policy
						for _, p := range ps {
							if p.Dir == dir {
								want = append(want, p)
							}
						}
						if !equalPolicies(got, want) {
							t.Fatalf("step %d: List(%v) differs:\n got %s\nwant %s", step, dir, dump(got), dump(want))
						}
					}
					flows := make([]header.Flow, 50)
					for i := range flows {
						flows[i] = g.flow()
					}
					checkAll(t, db, ps, flows)
					checkCached(t, db, ps, flows, &caches, &last)
				}
			}
		})
	}
}

// checkCached compares lookups through caches (one per direction, kept
// across the caller's mutations) with the reference model: first the flow
// the caches hold from the previous call (*last; answered from a stale
// entry if a write did not invalidate it), then each flow twice in a row
// (the second from the cache) and the flows again in reverse. It leaves
// the flow the caches now hold in *last.
func checkCached(t *testing.T, db *DB, ps []Policy, flows []header.Flow, caches *[2]Cache, last *header.Flow) {
	t.Helper()
	check := func(f *header.Flow) {
		for di, dir := range []sad.Direction{sad.Outbound, sad.Inbound} {
			want := refDecide(ps, dir, f)
			if got := db.lookup(dir, f, &caches[di]); got != want {
				t.Fatalf("cached %+v %v:\n got %+v\nwant %+v\npolicies:\n%s", *f, dir, got, want, dump(ps))
			}
		}
	}
	if last.Src.IsValid() {
		check(last)
	}
	for i := range flows {
		check(&flows[i])
		check(&flows[i])
	}
	for i := len(flows) - 1; i >= 0; i-- {
		check(&flows[i])
	}
	*last = flows[0]
}

// dirPositions returns the positions in ps of the policies of dir.
func dirPositions(ps []Policy, dir sad.Direction) []int {
	var out []int
	for i := range ps {
		if ps[i].Dir == dir {
			out = append(out, i)
		}
	}
	return out
}

func equalPolicies(a, b []Policy) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Dir != b[i].Dir || a[i].Action != b[i].Action || a[i].SPI != b[i].SPI ||
			len(a[i].Selectors) != len(b[i].Selectors) {
			return false
		}
		for j := range a[i].Selectors {
			if a[i].Selectors[j] != b[i].Selectors[j] {
				return false
			}
		}
	}
	return true
}
