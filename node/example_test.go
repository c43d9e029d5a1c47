package node_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// Two security gateways in one process, with no root: each node's TUN is a
// gVisor netstack and the two underlays are joined in memory. A TCP stream
// from a host behind A reaches a host behind B through ESP (AES-128-GCM,
// tunnel mode, RFC 4303 / RFC 4106).
func Example() {
	var (
		gwA, gwB     = netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")
		siteA, siteB = netip.MustParsePrefix("192.0.2.0/25"), netip.MustParsePrefix("192.0.2.128/25")
		hostA, hostB = netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.200")
	)
	// One fresh key per SA and direction (16-byte key + 4-byte salt):
	// a counter-mode key is never shared (node refuses it).
	key := func() []byte { k := make([]byte, 20); rand.Read(k); return k }
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	kAB, kBA := key(), key()

	// gateway builds one side: its SAs, its policies, its devices.
	gateway := func(me, peer netip.Addr, local, remote netip.Prefix, out, in uint32, kOut, kIn []byte,
		dev tun.Device, conn *underlaytest.Underlay) *node.Node {
		sel := []sad.Selector{{Local: sad.PrefixRange(local), Remote: sad.PrefixRange(remote)}}
		sa := func(dir sad.Direction, spi uint32, k []byte, src, dst netip.Addr) node.SAConfig {
			return node.SAConfig{Config: sad.Config{Dir: dir, Selectors: sel, Params: esp.Params{
				SPI: spi, Algorithm: esp.AES128GCM16, EncKey: k, Mode: esp.Tunnel, TunnelSrc: src, TunnelDst: dst}}}
		}
		dir, err := os.MkdirTemp("", "mipsec-example-")
		if err != nil {
			log.Fatal(err)
		}
		dirs = append(dirs, dir)
		n, err := node.New(node.Config{
			StateDir: dir, // sequence-number reservations: keep it on disk
			SAs:      []node.SAConfig{sa(sad.Outbound, out, kOut, me, peer), sa(sad.Inbound, in, kIn, peer, me)},
			Policies: []spd.Policy{
				{Name: "protect", Dir: sad.Outbound, Action: spd.Protect, SPI: out, Selectors: sel},
				{Name: "rest", Dir: sad.Outbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
			},
			Device: dev, Conn: conn, // no root: nothing of the kernel's
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := n.Start(); err != nil {
			log.Fatal(err)
		}
		return n
	}
	ua, ub := underlaytest.NewPair(endpoint.Endpoint{Addr: netip.AddrPortFrom(gwA, 0)}, endpoint.Endpoint{Addr: netip.AddrPortFrom(gwB, 0)})
	tunA, netA := newNetstack(hostA)
	tunB, netB := newNetstack(hostB)
	a := gateway(gwA, gwB, siteA, siteB, 0xb001, 0xa001, kAB, kBA, tunA, ua)
	defer a.Close()
	b := gateway(gwB, gwA, siteB, siteA, 0xa001, 0xb001, kBA, kAB, tunB, ub)
	defer b.Close()

	// A TCP echo of one message, host A -> host B.
	ln, err := netB.ListenTCPAddrPort(netip.AddrPortFrom(hostB, 7))
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := netA.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(hostB, 7))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	msg := []byte("through ESP and back")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", got)
	for _, s := range a.Stats().SAs {
		if s.Dir == "out" {
			fmt.Printf("A's SA %#x sealed packets: %v\n", s.SPI, s.Stats.Packets > 0)
		}
	}
	// Output:
	// through ESP and back
	// A's SA 0xb001 sealed packets: true
}

// newNetstack is a userspace TCP/IP stack with one address, as a TUN.
func newNetstack(addr netip.Addr) (tun.Device, *netstack.Net) {
	dev, n, err := netstack.CreateNetTUN([]netip.Addr{addr}, nil, 1380)
	if err != nil {
		log.Fatal(err)
	}
	return dev, n
}

// A home agent and a mobile node (testdata/ha.toml and mn.toml: the
// RFC 4877 SAs with manual keys) in one process. The mobile node registers
// its care-of address, then moves to another; the SAs stay bound to the
// home address and only the outer header changes. Host replaces the
// kernel side of mobility (proxy ND, address watching, nftables).
func ExampleNode_MNMove() {
	coa1, coa2 := netip.MustParseAddr("2001:db8:2::100"), netip.MustParseAddr("2001:db8:3::100")
	haAddr := netip.MustParseAddr("2001:db8:1::1")
	uHA, uMN := underlaytest.NewPair(endpoint.Endpoint{Addr: netip.AddrPortFrom(haAddr, 0)},
		endpoint.Endpoint{Addr: netip.AddrPortFrom(coa1, 0)})
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	start := func(file string, dev tun.Device, conn *underlaytest.Underlay, host node.Host) *node.Node {
		cfg, err := config.Load(file)
		if err != nil {
			log.Fatal(err)
		}
		c := cfg.Config
		c.StateDir, _ = os.MkdirTemp("", "mipsec-example-")
		dirs = append(dirs, c.StateDir)
		c.Device, c.Conn, c.Host = dev, conn, host
		n, err := node.New(c)
		if err != nil {
			log.Fatal(err)
		}
		if err := n.Start(); err != nil {
			log.Fatal(err)
		}
		return n
	}
	noHomeLink := func(node.MobilityConfig, string) (mip6.HomeLink, func() error, error) {
		return nil, func() error { return nil }, nil
	}
	noFilter := func() (func() error, error) { return nil, nil }
	ha := start("../testdata/ha.toml", tuntest.New(1, 64), uHA, node.Host{HomeLink: noHomeLink, ParamProblems: noFilter})
	defer ha.Close()
	events, _ := ha.Subscribe(16)
	mn := start("../testdata/mn.toml", tuntest.New(1, 64), uMN, node.Host{ParamProblems: noFilter,
		WatchAddrs: func(node.MobilityConfig, string, func([]netip.Addr)) (io.Closer, error) {
			return io.NopCloser(nil), nil
		}})
	defer mn.Close()

	mnEvents, _ := mn.Subscribe(16)
	for _, coa := range []netip.Addr{coa1, coa2} {
		uMN.SetLocal(endpoint.Endpoint{Addr: netip.AddrPortFrom(coa, 0)}) // the MN's new link
		if err := mn.MNMove(coa); err != nil {
			log.Fatal(err)
		}
		for ev := range events { // the HA accepted the BU
			if b, ok := ev.(node.BindingChanged); ok && b.CoA == coa {
				fmt.Printf("HA: binding %s for %s -> %s\n", b.Change, b.HoA, b.CoA)
				break
			}
		}
		for ev := range mnEvents { // the MN accepted the BA
			if r, ok := ev.(node.Registered); ok && r.CoA == coa {
				fmt.Println("MN: registered at", r.CoA)
				break
			}
		}
	}
	// Output:
	// HA: binding added for 2001:db8:1::100 -> 2001:db8:2::100
	// MN: registered at 2001:db8:2::100
	// HA: binding updated for 2001:db8:1::100 -> 2001:db8:3::100
	// MN: registered at 2001:db8:3::100
}
