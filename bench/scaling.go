package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// Defaults of ScalingOptions.
const (
	DefaultMaxPolicies = 100_000
	DefaultMaxSAs      = 1_000_000
	DefaultMaxBindings = 1_000_000
)

// Names of the curves in Scaling.
const (
	CurveSPD      = "SPD lookup"
	CurveSAD      = "SAD lookup"
	CurveBindings = "binding cache lookup"
)

// ScalingOptions select what RunScaling measures. The zero value measures
// the SPD with 10 to DefaultMaxPolicies policies, the SAD with 1 to
// DefaultMaxSAs SAs and the binding cache with 1 to DefaultMaxBindings
// bindings, one point per decade, 200 ms each. A million SAs take about 2
// GB and 10 s to build.
type ScalingOptions struct {
	// MaxPolicies, MaxSAs and MaxBindings are the largest sizes; 0 means
	// the default, negative leaves the curve out. The points are the
	// powers of ten from 10 policies, 1 SA and 1 binding up to the maximum,
	// and the maximum itself.
	MaxPolicies, MaxSAs, MaxBindings int
	// Duration is how long each point is measured; 0 means 200 ms.
	Duration time.Duration
}

// ScalePoint is the lookup cost at one size.
type ScalePoint struct {
	// N is the number of entries (policies, SAs, bindings).
	N int `json:"n"`
	// NsPerOp is the mean time of one lookup, keys in random order.
	NsPerOp float64 `json:"ns_per_op"`
	// Ops is how many lookups were timed.
	Ops uint64 `json:"ops"`
}

// ScaleCurve is one structure's lookup cost as it grows.
type ScaleCurve struct {
	// Name is CurveSPD, CurveSAD or CurveBindings.
	Name string `json:"name"`
	// Unit names what N counts ("policies", "SAs", "bindings").
	Unit string `json:"unit"`
	// What says what one op is.
	What   string       `json:"what"`
	Points []ScalePoint `json:"points"`
}

// Scaling is RunScaling's result.
type Scaling struct {
	Curves []ScaleCurve `json:"curves"`
}

// decades returns from, 10·from, ... up to max, and max.
func decades(from, max int) []int {
	var ns []int
	for n := from; n < max; n *= 10 {
		ns = append(ns, n)
	}
	return append(ns, max)
}

// timeOps runs op(i) for i = 0, 1, ... in chunks for about d and returns
// ns per call and the number of calls. op returns false on a wrong answer.
func timeOps(ctx context.Context, d time.Duration, op func(i int) bool) (float64, uint64, error) {
	const chunk = 1024
	var n uint64
	i := 0
	start := time.Now()
	deadline := start.Add(d)
	for {
		for range chunk {
			if !op(i) {
				return 0, 0, fmt.Errorf("bench: wrong lookup result at op %d", i)
			}
			i++
		}
		n += chunk
		now := time.Now()
		if now.After(deadline) {
			return float64(now.Sub(start).Nanoseconds()) / float64(n), n, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
	}
}

// RunScaling measures how lookup cost grows with the size of the SPD
// (spd.DB.LookupFlow on a VPN concentrator's outbound policies: one PROTECT
// policy per peer, half IPv4, half IPv6, hosts and sites, between IKE
// BYPASS entries and a final DISCARD), the SAD (sad.DB.Inbound by SPI) and
// the binding cache (mip6.BindingCache.Lookup by home address), keys in
// random order, on one goroutine. Each structure grows through the points
// in place. It writes one line per point to progress (nil for none) and
// returns what it has, with ctx's error, when ctx is done.
func RunScaling(ctx context.Context, o ScalingOptions, progress io.Writer) (Scaling, error) {
	if progress == nil {
		progress = io.Discard
	}
	d := o.Duration
	if d <= 0 {
		d = 200 * time.Millisecond
	}
	pick := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	var s Scaling
	type run struct {
		max int
		f   func(context.Context, int, time.Duration, io.Writer) (ScaleCurve, error)
	}
	for _, r := range []run{
		{pick(o.MaxPolicies, DefaultMaxPolicies), scaleSPD},
		{pick(o.MaxSAs, DefaultMaxSAs), scaleSAD},
		{pick(o.MaxBindings, DefaultMaxBindings), scaleBindings},
	} {
		if r.max < 0 {
			continue
		}
		c, err := r.f(ctx, r.max, d, progress)
		if len(c.Points) > 0 {
			s.Curves = append(s.Curves, c)
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// measure times op with timeOps, adds the point for n entries to c and
// writes it to progress.
func (c *ScaleCurve) measure(ctx context.Context, n int, d time.Duration, progress io.Writer, op func(i int) bool) error {
	ns, ops, err := timeOps(ctx, d, op)
	if err != nil {
		return err
	}
	p := ScalePoint{N: n, NsPerOp: ns, Ops: ops}
	c.Points = append(c.Points, p)
	fmt.Fprintf(progress, "scaling %-22s %9d %-8s %9.1f ns/op\n", c.Name, p.N, c.Unit, p.NsPerOp)
	return nil
}

// shuffled returns the first n of xs in random order.
func shuffled[T any](r *rand.Rand, xs []T, n int) []T {
	keys := make([]T, n)
	for i, j := range r.Perm(n) {
		keys[i] = xs[j]
	}
	return keys
}

// concentratorPolicies returns an outbound SPD of n policies (n >= 4) and
// flows to look up (90 % to a peer, 10 % to no peer: the DISCARD), like
// spd's BenchmarkLookup.
func concentratorPolicies(n int, r *rand.Rand) ([]spd.Policy, []header.Flow) {
	local4 := sad.PrefixRange(netip.MustParsePrefix("172.16.0.0/12"))
	local6 := sad.PrefixRange(netip.MustParsePrefix("2001:db8:ffff::/48"))
	ps := []spd.Policy{
		{Name: "ike", Dir: sad.Outbound, Action: spd.Bypass, Selectors: []sad.Selector{
			{Proto: header.ProtoUDP, LocalPort: sad.Port(500), RemotePort: sad.Port(500)},
			{Proto: header.ProtoUDP, LocalPort: sad.Port(4500), RemotePort: sad.Port(4500)},
		}},
		{Name: "icmp-errors", Dir: sad.Outbound, Action: spd.Bypass, Selectors: []sad.Selector{
			{Proto: header.ProtoICMPv6, LocalPort: sad.ICMPType(2)},
		}},
	}
	peers := n - 3
	perm := r.Perm(peers)
	remotes := make([]sad.AddrRange, peers)
	for i := range peers {
		k := perm[i]
		local := local4
		if i%2 == 0 {
			a := netip.AddrFrom4([4]byte{10, byte(k >> 12), byte(k >> 4), byte(k<<4) | 1})
			remotes[i] = sad.SingleAddr(a)
			if i%8 == 0 {
				remotes[i] = sad.PrefixRange(netip.PrefixFrom(a, 28))
			}
		} else {
			var b [16]byte
			copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8, byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)})
			b[15] = 1
			a := netip.AddrFrom16(b)
			remotes[i] = sad.SingleAddr(a)
			if i%8 == 1 {
				remotes[i] = sad.PrefixRange(netip.PrefixFrom(a, 64))
			}
			local = local6
		}
		ps = append(ps, spd.Policy{Name: "peer" + strconv.Itoa(i), Dir: sad.Outbound, Action: spd.Protect,
			SPI: uint32(0x1000 + i), Selectors: []sad.Selector{{Local: local, Remote: remotes[i]}}})
	}
	ps = append(ps, spd.Policy{Name: "discard", Dir: sad.Outbound, Action: spd.Discard, Selectors: []sad.Selector{{}}})
	flows := make([]header.Flow, 4096)
	for i := range flows {
		rem := remotes[r.IntN(peers)]
		f := header.Flow{Proto: header.ProtoTCP, SrcPort: uint16(1024 + r.IntN(60000)), DstPort: 443, Dst: rem.To}
		if rem.To.Is6() {
			f.Src = netip.MustParseAddr("2001:db8:ffff::10")
		} else {
			f.Src = netip.MustParseAddr("172.16.0.10")
		}
		if i%10 == 9 {
			f.Dst = f.Dst.Next()
		}
		flows[i] = f
	}
	return ps, flows
}

func scaleSPD(ctx context.Context, maxN int, d time.Duration, w io.Writer) (ScaleCurve, error) {
	c := ScaleCurve{Name: CurveSPD, Unit: "policies", What: "spd.DB.LookupFlow, outbound, concentrator policies"}
	if maxN < 10 {
		return c, fmt.Errorf("bench: SPD scaling needs at least 10 policies, not %d", maxN)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, n := range decades(10, maxN) {
		ps, flows := concentratorPolicies(n, r)
		db := spd.New(nil)
		if err := db.Replace(ps); err != nil {
			return c, fmt.Errorf("bench: SPD of %d policies: %w", n, err)
		}
		err := c.measure(ctx, n, d, w, func(i int) bool {
			dec := db.LookupFlow(sad.Outbound, &flows[i&4095])
			// A peer's PROTECT (with its SA's SPI) or the final
			// DISCARD; never the IKE BYPASS (the flows are TCP 443).
			return dec.Action == spd.Protect && dec.SPI >= 0x1000 || dec.Action == spd.Discard
		})
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

func scaleSAD(ctx context.Context, maxN int, d time.Duration, w io.Writer) (ScaleCurve, error) {
	c := ScaleCurve{Name: CurveSAD, Unit: "SAs", What: "sad.DB.Inbound by SPI (hit)"}
	if maxN < 1 {
		return c, fmt.Errorf("bench: SAD scaling needs at least 1 SA, not %d", maxN)
	}
	db := sad.New(sad.Options{})
	defer db.Close()
	r := rand.New(rand.NewPCG(2, 2))
	alg := esp.AES128GCM16
	encKey := key(alg.EncKeyLen(), 0x33)
	sel := []sad.Selector{{}}
	src, dst := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("198.51.100.1")
	var spis []uint32
	for _, n := range decades(1, maxN) {
		for len(spis) < n {
			if len(spis)&0xfff == 0 {
				if err := ctx.Err(); err != nil {
					return c, err
				}
			}
			spi := r.Uint32() | 0x100 // never 0, never reserved 1-255 (RFC 4303 §2.1)
			if db.Inbound(spi) != nil {
				continue // drawn before
			}
			if _, err := db.Add(sad.Config{Dir: sad.Inbound, Selectors: sel, Params: esp.Params{
				SPI: spi, Algorithm: alg, EncKey: encKey, Mode: esp.Tunnel,
				TunnelSrc: src, TunnelDst: dst, NoReplay: true,
			}}); err != nil {
				return c, fmt.Errorf("bench: SAD of %d SAs: %w", n, err)
			}
			spis = append(spis, spi)
		}
		keys := shuffled(r, spis, n)
		j := 0
		err := c.measure(ctx, n, d, w, func(int) bool {
			k := keys[j]
			if j++; j == n {
				j = 0
			}
			sa := db.Inbound(k)
			return sa != nil && sa.SPI() == k
		})
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

func scaleBindings(ctx context.Context, maxN int, d time.Duration, w io.Writer) (ScaleCurve, error) {
	c := ScaleCurve{Name: CurveBindings, Unit: "bindings", What: "mip6.BindingCache.Lookup by home address (hit)"}
	if maxN < 1 {
		return c, fmt.Errorf("bench: binding cache scaling needs at least 1 binding, not %d", maxN)
	}
	bc := mip6.NewBindingCache(mip6.BindingCacheConfig{})
	r := rand.New(rand.NewPCG(3, 3))
	coa := netip.MustParseAddr("2001:db8:c0a::1")
	coas := []mip6.CareOf{{Addr: coa}}
	var hoas []netip.Addr
	for _, n := range decades(1, maxN) {
		for i := len(hoas); i < n; i++ {
			if i&0xfff == 0 {
				if err := ctx.Err(); err != nil {
					return c, err
				}
			}
			h := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x40, 8: byte(i >> 24), 9: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
			if _, _, err := bc.Update(mip6.Registration{HoA: h, Seq: 1, Lifetime: time.Hour, CoAs: coas, Replace: true}); err != nil {
				return c, fmt.Errorf("bench: binding cache of %d: %w", n, err)
			}
			hoas = append(hoas, h)
		}
		keys := shuffled(r, hoas, n)
		j := 0
		err := c.measure(ctx, n, d, w, func(int) bool {
			b, ok := bc.Lookup(keys[j])
			if j++; j == n {
				j = 0
			}
			return ok && b.Primary().Addr == coa
		})
		if err != nil {
			return c, err
		}
	}
	return c, nil
}
