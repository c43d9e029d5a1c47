package netlab

import (
	"fmt"
	"net/netip"
	"path/filepath"
)

// The standard two-site topology, documentation prefixes only (RFC 5737,
// RFC 3849): the underlay addresses of the veth between gateways A and B,
// and the sites behind them (the TUN addresses).
var (
	UnderlayA4 = netip.MustParsePrefix("198.51.100.1/24")
	UnderlayB4 = netip.MustParsePrefix("198.51.100.2/24")
	UnderlayA6 = netip.MustParsePrefix("2001:db8:ff::1/64")
	UnderlayB6 = netip.MustParsePrefix("2001:db8:ff::2/64")

	SiteA4 = netip.MustParsePrefix("192.0.2.1/25")
	SiteB4 = netip.MustParsePrefix("192.0.2.129/25")
	SiteA6 = netip.MustParsePrefix("2001:db8:a::1/64")
	SiteB6 = netip.MustParsePrefix("2001:db8:b::1/64")
)

// The SPIs of the standard pair (A's outbound = B's inbound).
const (
	SPIAB4 = 0x0000b001
	SPIAB6 = 0x0000b006
	SPIBA4 = 0x0000a001
	SPIBA6 = 0x0000a006
)

// GatewayConfig fills a gateway config template (the demo's embedded
// netdemo/gateway.toml.tmpl, e2e/testdata/gateway.toml.tmpl).
type GatewayConfig struct {
	StateDir, Socket, TUN, LogLevel string
	MTU                             int
	Site4, Site6                    string // TUN addresses
	Local4, Local6                  string // our site prefixes
	Remote4, Remote6                string // the peer's site prefixes
	Locals                          []string
	Local, Remote                   string // outer addresses of the SAs
	Encap                           string
	UDPPort                         int
	Keepalive                       string
	PeerName, Endpoint              string
	Roaming                         bool
	RoamInterval                    string
	Out4, Out6, In4, In6            string
	OutKey4, InKey4                 string
	OutKey6, InKey6                 string
	OutAuth6, InAuth6               string
}

// PairKeys are the keys of the standard pair as the config spells them:
// AES-128-GCM (key + salt) for IPv4, AES-128-CBC + HMAC-SHA-256 for IPv6.
type PairKeys struct {
	AB4, BA4       string // A->B and B->A, IPv4
	AB6, BA6       string // encryption, IPv6
	AuthAB, AuthBA string // authentication, IPv6
}

// PairConfigs returns the configs of gateways A and B of the standard
// topology, with their state and control sockets under dir, the outer
// addresses outerA and outerB, encap "raw" or "udp" (port 4500), MTU 1400,
// keepalives every 20 s, and mirrored SPIs and keys.
func PairConfigs(dir, encap string, outerA, outerB netip.Addr, k PairKeys) (a, b GatewayConfig) {
	mk := func(name string, local, remote netip.Addr) GatewayConfig {
		c := GatewayConfig{
			StateDir: filepath.Join(dir, "state-"+name), Socket: filepath.Join(dir, name+".sock"),
			TUN: "mipsec-" + name, MTU: 1400, Encap: encap, UDPPort: 4500, Keepalive: "20s",
			Locals: []string{local.String()}, Local: local.String(), Remote: remote.String(),
			Endpoint: remote.String(),
		}
		if encap == "udp" {
			c.Endpoint = netip.AddrPortFrom(remote, 4500).String()
		}
		return c
	}
	spi := func(v uint32) string { return fmt.Sprintf("0x%08x", v) }
	a = mk("a", outerA, outerB)
	a.PeerName = "gateway-b"
	a.Site4, a.Site6 = SiteA4.String(), SiteA6.String()
	a.Local4, a.Local6, a.Remote4, a.Remote6 = "192.0.2.0/25", "2001:db8:a::/48", "192.0.2.128/25", "2001:db8:b::/48"
	a.Out4, a.Out6, a.In4, a.In6 = spi(SPIAB4), spi(SPIAB6), spi(SPIBA4), spi(SPIBA6)
	a.OutKey4, a.InKey4, a.OutKey6, a.InKey6, a.OutAuth6, a.InAuth6 = k.AB4, k.BA4, k.AB6, k.BA6, k.AuthAB, k.AuthBA

	b = mk("b", outerB, outerA)
	b.PeerName = "gateway-a"
	b.Site4, b.Site6 = SiteB4.String(), SiteB6.String()
	b.Local4, b.Local6, b.Remote4, b.Remote6 = a.Remote4, a.Remote6, a.Local4, a.Local6
	b.Out4, b.Out6, b.In4, b.In6 = a.In4, a.In6, a.Out4, a.Out6
	b.OutKey4, b.InKey4, b.OutKey6, b.InKey6, b.OutAuth6, b.InAuth6 = k.BA4, k.AB4, k.BA6, k.AB6, k.AuthBA, k.AuthAB
	return a, b
}
