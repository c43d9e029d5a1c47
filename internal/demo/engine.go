package demo

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// The demo's two gateways and the sites behind them (documentation
// prefixes only, RFC 5737 / RFC 3849).
var (
	gwA   = netip.MustParseAddr("198.51.100.1")
	gwB   = netip.MustParseAddr("203.0.113.1")
	siteA = netip.MustParsePrefix("192.0.2.0/25")
	siteB = netip.MustParsePrefix("192.0.2.128/25")
	hostA = netip.MustParseAddr("192.0.2.10")
	hostB = netip.MustParseAddr("192.0.2.200")
)

const (
	spiAB = 0x0000a001 // A -> B, chosen by B (RFC 4303 §2.1)
	spiBA = 0x0000b001 // B -> A, chosen by A
)

// gateway is one side of the demo: its own SAD and SPD, as an embedding
// program would hold them.
type gateway struct {
	name string
	sad  *sad.DB
	spd  *spd.DB
}

func newGateway(name string, alg esp.Algorithm, local, remote netip.Addr, localSite, remoteSite netip.Prefix, outSPI, inSPI uint32) (*gateway, error) {
	g := &gateway{name: name, sad: sad.New(sad.Options{})}
	g.spd = spd.New(g.sad)
	enc, auth := demoKeys(alg)
	sel := sad.Selector{Local: sad.PrefixRange(localSite), Remote: sad.PrefixRange(remoteSite)}
	in := sel
	if _, err := g.sad.Add(sad.Config{Name: name + "-out", Dir: sad.Outbound, Selectors: []sad.Selector{sel}, Params: esp.Params{
		SPI: outSPI, Algorithm: alg, EncKey: enc, AuthKey: auth, Mode: esp.Tunnel, TunnelSrc: local, TunnelDst: remote,
	}}); err != nil {
		return nil, err
	}
	if _, err := g.sad.Add(sad.Config{Name: name + "-in", Dir: sad.Inbound, Selectors: []sad.Selector{in}, Params: esp.Params{
		SPI: inSPI, Algorithm: alg, EncKey: enc, AuthKey: auth, Mode: esp.Tunnel, TunnelSrc: remote, TunnelDst: local,
	}}); err != nil {
		return nil, err
	}
	err := g.spd.Replace([]spd.Policy{
		{Name: name + "-ike", Dir: sad.Outbound, Action: spd.Bypass, Selectors: []sad.Selector{{Proto: header.ProtoUDP, RemotePort: sad.Port(500)}}},
		{Name: name + "-protect", Dir: sad.Outbound, Action: spd.Protect, SPI: outSPI, Selectors: []sad.Selector{sel}},
		{Name: name + "-discard", Dir: sad.Outbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
		{Name: name + "-in-protect", Dir: sad.Inbound, Action: spd.Protect, Selectors: []sad.Selector{in}},
		{Name: name + "-in-discard", Dir: sad.Inbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
	})
	return g, err
}

// demoKeys returns fixed demo keys. Real deployments configure their own;
// counter-mode AEADs with static keys need persisted sequence numbers.
func demoKeys(a esp.Algorithm) (enc, auth []byte) {
	enc = bytes.Repeat([]byte{0x11}, a.EncKeyLen())
	auth = bytes.Repeat([]byte{0x22}, a.AuthKeyLen())
	return enc, auth
}

// send runs the outbound walk: SPD, then seal with the chosen SA.
func (g *gateway) send(b *pkt.Buf) (spd.Decision, esp.Verdict) {
	d := g.spd.Lookup(sad.Outbound, b.Bytes())
	if d.Action != spd.Protect {
		return d, esp.DropPolicy
	}
	if d.SA == nil {
		return d, esp.DropNoSA
	}
	return d, d.SA.Seal(b)
}

// receive runs the inbound walk: find ESP behind the outer header, SA by
// SPI alone, then Open (replay, ICV, decrypt, inner selector check).
func (g *gateway) receive(b *pkt.Buf) (*sad.SA, esp.Verdict) {
	p := b.Bytes()
	ip := header.IPv4(p)
	if !ip.IsValid() || ip.Protocol() != header.ProtoESP {
		return nil, esp.DropMalformed
	}
	off := ip.HeaderLen()
	e := header.ESP(p[off:])
	if !e.IsValid() {
		return nil, esp.DropMalformed
	}
	sa := g.sad.Inbound(e.SPI())
	if sa == nil {
		return nil, esp.DropNoSA
	}
	_, v := sa.Open(b, off)
	return sa, v
}

func Engine(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo --engine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("packets", 100000, "packets per algorithm in the throughput step")
	size := fs.Int("size", 1400, "inner packet size in bytes for the throughput step (64..8192)")
	algList := fs.String("algs", "all", "comma-separated algorithms, or all")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *size < 64 || *size > 8192 || *n < 1 {
		fmt.Fprintln(stderr, "mipsec demo: -size must be 64..8192 and -packets at least 1")
		return 2
	}
	var algs []esp.Algorithm
	names := esp.AlgorithmNames()
	if *algList != "all" {
		names = strings.Split(*algList, ",")
	}
	for _, s := range names {
		a, err := esp.ParseAlgorithm(s)
		if err != nil {
			fmt.Fprintln(stderr, "mipsec demo:", err)
			return 2
		}
		algs = append(algs, a)
	}

	p := func(format string, a ...any) { fmt.Fprintf(stdout, format, a...) }
	p("mipsec demo --engine: the ESP engine (esp, sad, spd) in one process, two gateways back to back.\n")
	p("`mipsec demo` (no flag) runs the same over TUN devices in two network namespaces.\n\n")

	alg := algs[0]
	a, err := newGateway("A", alg, gwA, gwB, siteA, siteB, spiAB, spiBA)
	if err == nil {
		var b *gateway
		b, err = newGateway("B", alg, gwB, gwA, siteB, siteA, spiBA, spiAB)
		if err == nil {
			err = walk(p, alg, a, b)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "mipsec demo:", err)
		return 1
	}

	p("\n[4/4] Throughput: %d packets of %d bytes per algorithm, seal on A and open on B, one core\n", *n, *size)
	p("      %-18s %12s %10s %10s  %s\n", "algorithm", "packets/s", "Gb/s", "allocs/pkt", "B's counters")
	for _, alg := range algs {
		if err := throughput(p, alg, *n, *size); err != nil {
			fmt.Fprintln(stderr, "mipsec demo:", err)
			return 1
		}
	}
	p("\nDone. Next: `make test` runs every check, including interop with scapy's ESP.\n")
	return 0
}

// icmpEcho builds an IPv4 ICMP echo request of total length n.
func icmpEcho(src, dst netip.Addr, n int, seq uint16) []byte {
	p := make([]byte, n)
	header.IPv4(p).Encode(&header.IPv4Fields{TotalLen: uint16(n), TTL: 64, Protocol: header.ProtoICMP, Src: src, Dst: dst, Flags: header.IPv4FlagDF})
	icmp := p[header.IPv4MinHeaderLen:]
	icmp[0] = 8
	icmp[6], icmp[7] = byte(seq>>8), byte(seq)
	for i := 8; i < len(icmp); i++ {
		icmp[i] = byte(i)
	}
	c := ^header.Checksum(icmp, 0)
	icmp[2], icmp[3] = byte(c>>8), byte(c)
	return p
}

func walk(p func(string, ...any), alg esp.Algorithm, a, b *gateway) error {
	p("[1/4] Gateway A %v (site %v) and gateway B %v (site %v), algorithm %v, tunnel mode\n", gwA, siteA, gwB, siteB, alg)
	for _, pol := range a.spd.List(sad.Outbound) {
		p("      A SPD out: %-12s %-8v spi=%#08x\n", pol.Name, pol.Action, pol.SPI)
	}

	p("\n[2/4] One packet: ICMP echo %v -> %v\n", hostA, hostB)
	inner := icmpEcho(hostA, hostB, 84, 1)
	buf := pkt.Get()
	defer pkt.Put(buf)
	buf.Set(inner)
	d, v := a.send(buf)
	if v != esp.OK {
		return fmt.Errorf("gateway A: seal: %v (policy %d)", v, d.Index)
	}
	wire := append([]byte(nil), buf.Bytes()...)
	ip := header.IPv4(wire)
	e := header.ESP(wire[ip.HeaderLen():])
	p("      A: SPD -> %v spi=%#08x; on the wire: IPv4 %v > %v proto %d, ESP spi=%#08x seq=%d, %d bytes\n",
		d.Action, d.SPI, ip.Src(), ip.Dst(), ip.Protocol(), e.SPI(), e.Seq(), len(wire))
	p("      %s\n", hex.EncodeToString(wire[:min(48, len(wire))]))
	if bytes.Contains(wire, inner[header.IPv4MinHeaderLen+8:header.IPv4MinHeaderLen+40]) && alg.Encrypts() {
		return fmt.Errorf("plaintext visible on the wire")
	}
	sa, v := b.receive(buf)
	if v != esp.OK {
		return fmt.Errorf("gateway B: open: %v", v)
	}
	if !bytes.Equal(buf.Bytes(), inner) {
		return fmt.Errorf("gateway B: inner packet differs from what A sent")
	}
	p("      B: SA %q by SPI alone, replay + ICV ok, inner packet matches its selectors: delivered, identical to A's (%d bytes)\n", sa.Name(), buf.Len())

	p("\n[3/4] Hostile input: every bad packet is dropped and counted, never delivered\n")
	try := func(what string, mutate func([]byte) []byte) {
		buf.Set(mutate(append([]byte(nil), wire...)))
		_, v := b.receive(buf)
		p("      %-44s -> %v\n", what, v)
	}
	try("the same packet again (replay)", func(w []byte) []byte { return w })
	// A fresh packet (seq 2), forged in flight: the ICV check fails, and
	// the window is not advanced, so the genuine copy still gets through.
	buf.Set(icmpEcho(hostA, hostB, 84, 2))
	if _, v := a.send(buf); v != esp.OK {
		return fmt.Errorf("gateway A: seal: %v", v)
	}
	fresh := append([]byte(nil), buf.Bytes()...)
	try("a new packet with one byte flipped", func([]byte) []byte {
		w := append([]byte(nil), fresh...)
		w[len(w)-20] ^= 1
		return w
	})
	try("the same new packet, unmodified", func([]byte) []byte { return append([]byte(nil), fresh...) })
	try("unknown SPI", func(w []byte) []byte { header.ESP(w[ip.HeaderLen():]).SetSPI(0xdead); return w })
	try("cut short", func(w []byte) []byte {
		w = w[:ip.HeaderLen()+6]
		header.IPv4(w).SetTotalLen(len(w))
		return w
	})
	buf.Set(icmpEcho(netip.MustParseAddr("198.18.0.1"), hostB, 84, 2))
	_, v = a.send(buf)
	p("      %-44s -> %v\n", "A sends from outside its site (SPD)", v)
	st := b.sad.Inbound(spiAB).Stats()
	p("      B's inbound SA counters: packets=%d", st.Packets)
	for i, c := range st.Drops {
		if c > 0 {
			p(" %v=%d", esp.Verdict(i), c)
		}
	}
	p("\n")
	return nil
}

func throughput(p func(string, ...any), alg esp.Algorithm, n, size int) error {
	a, err := newGateway("A", alg, gwA, gwB, siteA, siteB, spiAB, spiBA)
	if err != nil {
		return err
	}
	b, err := newGateway("B", alg, gwB, gwA, siteB, siteA, spiBA, spiAB)
	if err != nil {
		return err
	}
	inner := icmpEcho(hostA, hostB, size, 1)
	buf := pkt.Get()
	defer pkt.Put(buf)
	out := a.sad.Outbound(spiAB)
	in := b.sad.Inbound(spiAB)
	var before, after runtimeStats
	before.read()
	start := time.Now()
	for i := 0; i < n; i++ {
		buf.Set(inner)
		if v := out.Seal(buf); v != esp.OK {
			return fmt.Errorf("%v: seal: %v", alg, v)
		}
		if _, v := in.Open(buf, header.IPv4MinHeaderLen); v != esp.OK {
			return fmt.Errorf("%v: open: %v", alg, v)
		}
	}
	el := time.Since(start)
	after.read()
	st := in.Stats()
	pps := float64(n) / el.Seconds()
	p("      %-18v %12.0f %10.2f %10.2f  packets=%d drops=%d\n", alg, pps, pps*float64(size)*8/1e9,
		float64(after.mallocs-before.mallocs)/float64(n), st.Packets, sumDrops(st))
	return nil
}

func sumDrops(st sad.Stats) (n uint64) {
	for _, c := range st.Drops {
		n += c
	}
	return n
}
