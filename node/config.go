package node

import (
	"io"
	"net/netip"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
	"github.com/mipsec/mipsec/spd"
)

// Roles of a node.
const (
	RoleGateway = "gateway" // an RFC 4301 security gateway
	RoleHA      = "ha"      // a Mobile IPv6 / DSMIPv6 home agent (RFC 6275, RFC 5555)
	RoleMN      = "mn"      // a mobile node
)

// RoleName is the role as prose: "gateway", "home agent", "mobile node".
func RoleName(role string) string {
	switch role {
	case RoleHA:
		return "home agent"
	case RoleMN:
		return "mobile node"
	}
	return "gateway"
}

// Config is one node: what it is (Role, Mobility), its SAs and policies,
// its devices, and the seams an embedder may replace. Package config builds
// one from a TOML file; a Go program may fill one in directly. New checks
// what the engine itself refuses; the rest is the builder's job (config
// reports it with file and line).
type Config struct {
	// Role is RoleGateway (the default when empty), RoleHA or RoleMN.
	Role string
	// StateDir holds the sequence-number reservations of the outbound
	// keys (package seqstore). It must survive reboots: losing it while
	// keeping counter-mode keys reuses nonces.
	StateDir string

	TUN      TUNConfig
	Underlay UnderlayConfig
	Peers    []dataplane.PeerConfig
	// SAs in order. Their keys are copied; the node never logs them.
	SAs      []SAConfig
	Policies []spd.Policy
	// Mobility is the home agent's or mobile node's configuration.
	Mobility MobilityConfig

	// Logger gets lifecycle events (never per packet); nil: none.
	Logger *zap.Logger
	// Device and Conn, when set, replace the Linux TUN device and the
	// underlay sockets (package underlay) that Start would open: a
	// netstack TUN and an in-process underlay run a node with no root.
	// The node closes them.
	Device tun.Device
	Conn   dataplane.Underlay
	// Host replaces the kernel side of mobility; see Host.
	Host Host
	// Workers is the number of crypto goroutines; 0: GOMAXPROCS.
	Workers int
	// SeqStore and Reservations tune the sequence-number reservations
	// (zero: the defaults).
	SeqStore     seqstore.Options
	Reservations seqstore.ReserverOptions

	// IKE is the IKEv2 daemon's configuration (package ike); with no
	// connections there is no daemon and the node is keyed by hand only.
	IKE IKEConfig
}

// TUNConfig is the inner side.
type TUNConfig struct {
	// Name is the TUN interface (at most 15 bytes).
	Name      string
	MTU       int
	Addresses []netip.Prefix
	Routes    []netip.Prefix
}

// UnderlayConfig is the outer side.
type UnderlayConfig struct {
	// Local holds at most one IPv4 and one IPv6 address; invalid when
	// that family is not used (both invalid: every address of both).
	Local4, Local6 netip.Addr
	// Raw and UDP say which encapsulations listen: raw ESP (RFC 4303)
	// and ESP in UDP (RFC 3948).
	Raw, UDP  bool
	UDPPort   uint16
	Keepalive time.Duration
	// PacketSocket sends raw ESP through an AF_PACKET socket that
	// bypasses netfilter's OUTPUT and POSTROUTING hooks, the egress qdisc
	// and kernel fragmentation (underlay.Config.PacketSocket). Needs Raw.
	PacketSocket bool
	// FWMark is the firewall mark (SO_MARK) of every underlay socket;
	// with it the TUN's routes go into routing tables of their own
	// (RouteTable+L for prefix length L) behind `ip rule not fwmark
	// FWMark` and `suppress_prefixlength` rules, the wg-quick scheme
	// (internal/netcfg/policyroute_linux.go): the underlay's own packets
	// never enter the TUN, a full-tunnel 0.0.0.0/0 or ::/0 route
	// included. 0: no mark, the routes go into the main table (and a
	// TUN route covering a peer or the home agent loops, which the
	// dataplane then drops as DropLoop). Only for the TUN and underlay
	// Start opens itself (not an injected Device and Conn).
	FWMark uint32
	// RouteTable is the first of the routing tables (RouteTable ..
	// RouteTable+128); 0 means DefaultRouteTable.
	RouteTable uint32
}

// Defaults of the policy routing around the TUN (UnderlayConfig.FWMark).
const (
	// DefaultFWMark is 4500 (0x1194), after the ESP-in-UDP port
	// (RFC 3948 §2.1), as wg-quick uses its port 51820.
	DefaultFWMark = 4500
	// DefaultRouteTable: the tables 4500..4628.
	DefaultRouteTable = 4500
	// RulePriority is the first priority of the rules (30000..30256).
	RulePriority = 30000
)

// SAConfig is one SA. Params.InitialSeq of an outbound SA is raised to
// its key's reservation (package seqstore).
type SAConfig struct {
	sad.Config
	// Path names the SA in errors, e.g. "sa[2]" of a config file; empty:
	// its direction and SPI.
	Path string
}

// MobilityConfig is the home agent's or mobile node's configuration.
// Fields of the other role are ignored; zero durations and counts mean
// mip6's defaults.
type MobilityConfig struct {
	// HAAddress is the home agent's IPv6 address (HAADDR); HAAddressV4
	// its IPv4 address for DSMIPv6 (RFC 5555), invalid when none.
	HAAddress, HAAddressV4 netip.Addr
	// HomePrefix is the home link's IPv6 prefix; HomePrefixV4 its IPv4
	// prefix (HA only; invalid when none).
	HomePrefix, HomePrefixV4 netip.Prefix

	// HomeLink is the home-link interface on which the HA answers for the
	// home addresses of bound MNs (proxy ND / ARP); "" for none.
	HomeLink    string
	MaxLifetime time.Duration
	MaxCoAs     int
	NATRefresh  time.Duration
	BURate      float64
	BUBurst     int

	// HomeAddress and HomeAddressV4 are the MN's home addresses
	// (HomeAddressV4 invalid when none).
	HomeAddress, HomeAddressV4 netip.Addr
	Lifetime                   time.Duration
	// Interfaces are the underlay interfaces watched for movement; empty
	// means every interface but the TUN.
	Interfaces []string
	// NATKeepalive is the keepalive interval behind a NAT; negative: off.
	NATKeepalive time.Duration
	// NoKFlag (both roles, with IKE) turns the K flag off (RFC 4877 §7.4,
	// node/ike_mobility.go): the MN's BUs and the HA's BAs never carry
	// it, the IKE SA does not move with the care-of address, and the MN
	// negotiates a new IKE SA from each new one.
	NoKFlag bool
}

// Host is the kernel side of mobility. A nil field means the Linux
// implementation (package internal/netcfg), except that with an injected
// Device the ICMPv6 Parameter Problem filter is left alone.
type Host struct {
	// HomeLink builds the HA's proxy ND / ARP and TUN routes for bound
	// home addresses on cfg.Mobility.HomeLink; none when that is empty.
	HomeLink func(mc MobilityConfig, tun string) (mip6.HomeLink, func() error, error)
	// WatchAddrs starts the MN's movement detection: fn gets the usable
	// addresses whenever they change, first at once.
	WatchAddrs func(mc MobilityConfig, tun string, fn func([]netip.Addr)) (io.Closer, error)
	// ParamProblems installs the filter that keeps a kernel without Mobile
	// IPv6 from answering Home Address options and type 2 Routing headers
	// with ICMPv6 Parameter Problems; undo removes it.
	ParamProblems func() (undo func() error, err error)
	// Forwarding reports whether the kernel forwards the address family of
	// a; the HA warns at start for a home prefix whose family it does not
	// (netcfg.Forwarding: the sysctls of the current namespace; with an
	// injected Device nothing is asked).
	Forwarding func(a netip.Addr) bool
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// IKEConfig configures the node's IKEv2 daemon (package ike). The node is
// its Kernel (SPIs, SAs, policies and peer endpoints on its own SAD, SPD
// and dataplane) and its Transport (UDP 500, and UDP 4500 shared with ESP
// in UDP behind the non-ESP marker, RFC 3948 §2.2). Manual SAs keep
// working beside the IKE-made ones.
type IKEConfig struct {
	Connections []ike.Connection
	// CookieThreshold, MaxHalfOpen, Retransmit, Retransmits,
	// FragmentSize, InitRate and InitBurst are ike.Config's; zero: ike's
	// defaults.
	CookieThreshold int
	MaxHalfOpen     int
	Retransmit      time.Duration
	Retransmits     int
	FragmentSize    int
	InitRate        int
	InitBurst       int
	// Transport, when set, replaces the underlay's IKE sockets (tests and
	// embedders with an injected Conn); IKE datagrams for the node then go
	// to Node.ReceiveIKE.
	Transport ike.Transport
}
