package node

// The mobility layer of a node (RoleHA or RoleMN): a
// mip6.HomeAgent or mip6.MobileNode built from [mobility], plugged into the
// dataplane through its Hooks (draft-laganier-mext-dsmipv6-ipsec-00: the
// mobility tunnel layer sits after IPsec outbound and before it inbound,
// and touches outer headers only), sending its signaling through
// Dataplane.Inject (SPD -> SA1/SA2 -> AfterSeal), and reaching the SAD only
// through mip6.SAQuerier (*sad.DB).
//
// The HA installs proxy ND/ARP and TUN routes for bound home addresses
// (internal/netcfg.HomeLink); the MN watches its access interfaces
// (internal/netcfg.AddrWatcher), picks the care-of address with
// mip6.ChooseCoA and calls MobileNode.Move. Events become Prometheus
// counters here, off the packet path (mip6 logs them through zap).

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/netcfg"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
)

// Errors of the mobility control commands.
var (
	ErrNotHA = errors.New("this node is not a home agent (role = \"ha\")")
	ErrNotMN = errors.New("this node is not a mobile node (role = \"mn\")")
)

// mobility is the Node's mobility layer.
type mobility struct {
	cfg    *Config
	log    *zap.Logger
	host   Host
	events *events

	ha *mip6.HomeAgent
	mn *mip6.MobileNode
	// ike is the node's IKE daemon (nil: manual keys), set before Start:
	// the K flag moves its IKE SAs (ike_mobility.go).
	ike *ike.Daemon

	// dp is set once the dataplane exists (Inject before that fails).
	dp atomic.Pointer[dataplane.Dataplane]
	ul dataplane.Underlay

	hlMu          sync.Mutex
	hl            mip6.HomeLink
	homeLinkClose func() error
	watcher       io.Closer
	// ppUndo removes the Parameter Problem filter (nil: none installed).
	ppUndo func() error

	// forced is the CoA `mipsec mn move` chose: the watcher then leaves
	// the CoA alone until the address disappears.
	mu       sync.Mutex
	forced   netip.Addr
	lastSeen []netip.Addr

	// Event counters (metrics), written by OnEvent off the packet path.
	ctr mobilityCounters
}

// mobilityCounters are the event counts the metrics need that mip6's
// own Stats/Status do not keep (rejections, handover counts and BA
// results come from mip6 itself).
type mobilityCounters struct {
	mu sync.Mutex
	// HA
	added, updated, removed, expired uint64
	// MN
	natSeen uint64
	lastHO  time.Duration
}

// newMobility builds the HA or MN of cfg. The dataplane does not exist
// yet: its hooks come from hooks(), and Inject works after setDataplane.
func newMobility(cfg *Config, sadb *sad.DB, log *zap.Logger, host Host, ev *events) (*mobility, error) {
	m := &mobility{cfg: cfg, log: log, host: host, events: ev}
	now := host.Now
	if now == nil {
		now = time.Now
	}
	mc := cfg.Mobility
	var err error
	switch cfg.Role {
	case RoleHA:
		// The K flag (ike_mobility.go), unless turned off.
		keyMgmt, moveIKE := m.ikeServes, m.moveIKE
		if mc.NoKFlag {
			keyMgmt, moveIKE = nil, nil
		}
		m.ha, err = mip6.NewHomeAgent(mip6.HAConfig{
			Address: mc.HAAddress, AddressV4: mc.HAAddressV4, LocalAddrs: haLocalAddrs(cfg),
			HomePrefix: mc.HomePrefix, HomePrefix4: mc.HomePrefixV4,
			SAD: sadb, Inject: m.inject,
			MaxLifetime: mc.MaxLifetime, MaxCoAs: mc.MaxCoAs, NATRefresh: mc.NATRefresh,
			BURate: mc.BURate, BUBurst: mc.BUBurst,
			Logger: log, Now: now, OnEvent: m.onHAEvent,
			KeyManagement: keyMgmt, MoveIKE: moveIKE,
			// HomeLink is set in start, once the TUN exists.
			HomeLink: (*lateHomeLink)(m),
		})
	case RoleMN:
		ka := mc.NATKeepalive
		if ka < 0 {
			ka = 0
		}
		var keepalive func(netip.AddrPort) error
		if mc.NATKeepalive > 0 {
			keepalive = m.keepalive
		}
		m.mn, err = mip6.NewMobileNode(mip6.MNConfig{
			HoA: mc.HomeAddress, HoA4: mc.HomeAddressV4, HomePrefix: mc.HomePrefix,
			HA: mc.HAAddress, HAV4: mc.HAAddressV4,
			SAD: sadb, Inject: m.inject, Keepalive: keepalive,
			KeyManagement: len(cfg.IKE.Connections) > 0,
			NoKFlag:       mc.NoKFlag,
			BUL:           mip6.BULConfig{Lifetime: mc.Lifetime, NATKeepalive: ka},
			Logger:        log, Now: now, OnEvent: m.onMNEvent,
		})
	default:
		return nil, fmt.Errorf("mobility: role %q has no mobility layer", cfg.Role)
	}
	if err != nil {
		return nil, fmt.Errorf("mobility: %w", err)
	}
	return m, nil
}

// haLocalAddrs are the home agent's configured addresses besides
// HAAddress and HAAddressV4: the underlay's local addresses and the TUN's.
// mip6 refuses them as care-of addresses (RFC 6275 §9.5.1): a binding to
// one would send the home address's traffic to the HA itself. With no
// underlay address configured the sockets listen on every address of the
// host, which only the host knows.
func haLocalAddrs(cfg *Config) []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{cfg.Underlay.Local4, cfg.Underlay.Local6} {
		if a.IsValid() && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	for _, p := range cfg.TUN.Addresses {
		out = append(out, p.Addr())
	}
	return out
}

// lateHomeLink forwards to the HomeLink start creates (the HA is built
// before the TUN exists). Until then, and without a home_link, it does
// nothing.
type lateHomeLink mobility

func (l *lateHomeLink) Add(a netip.Addr) error {
	if hl := (*mobility)(l).homeLink(); hl != nil {
		return hl.Add(a)
	}
	return nil
}

func (l *lateHomeLink) Remove(a netip.Addr) error {
	if hl := (*mobility)(l).homeLink(); hl != nil {
		return hl.Remove(a)
	}
	return nil
}

func (m *mobility) homeLink() mip6.HomeLink {
	m.hlMu.Lock()
	defer m.hlMu.Unlock()
	return m.hl
}

// hooks returns the dataplane hooks of the HA or MN: AfterSeal (DR-1,
// DR-3), BeforeLookup (DR-4 record, HA) and Deliver (BU / BA / MPS / MPA):
// mip6's own methods, wrapped only to pass the SA's SPI (mip6 never sees
// a *sad.SA). Built once; nothing allocates per packet.
func (m *mobility) hooks() dataplane.Hooks {
	if ha := m.ha; ha != nil {
		return dataplane.Hooks{
			AfterSeal: func(b *pkt.Buf, sa *sad.SA, ep *endpoint.Endpoint) bool {
				return ha.AfterSeal(b, sa.SPI(), ep)
			},
			BeforeLookup: ha.BeforeLookup,
			Deliver: func(p []byte, sa *sad.SA, seq uint32, ep endpoint.Endpoint) bool {
				return ha.Deliver(p, sa.SPI(), seq, ep)
			},
		}
	}
	mn := m.mn
	return dataplane.Hooks{
		AfterSeal: func(b *pkt.Buf, sa *sad.SA, ep *endpoint.Endpoint) bool {
			return mn.AfterSeal(b, sa.SPI(), ep)
		},
		Deliver: func(p []byte, sa *sad.SA, seq uint32, ep endpoint.Endpoint) bool {
			return mn.Deliver(p, sa.SPI(), seq, ep)
		},
	}
}

func (m *mobility) inject(p []byte) error {
	dp := m.dp.Load()
	if dp == nil {
		return dataplane.ErrClosed
	}
	return dp.Inject(p)
}

func (m *mobility) keepalive(dst netip.AddrPort) error {
	if m.ul == nil {
		return dataplane.ErrClosed
	}
	return m.ul.SendKeepalive(endpoint.Endpoint{Addr: dst, Encap: endpoint.EncapUDP})
}

// start runs once the dataplane runs: the HA's home link and signaling
// goroutine; the MN's BUL and address watcher (its first report moves the
// MN to the best address there is).
func (m *mobility) start(dp *dataplane.Dataplane, ul dataplane.Underlay, tun string) error {
	m.dp.Store(dp)
	m.ul = ul
	m.suppressParamProblems()
	if err := m.startAgent(tun); err != nil {
		if m.ppUndo != nil {
			if uerr := m.ppUndo(); uerr != nil {
				m.log.Warn("removing the nftables table", zap.String("table", "inet "+netcfg.MIP6FilterTable), zap.Error(uerr))
			}
			m.ppUndo = nil
		}
		return err
	}
	return nil
}

// startAgent starts the HA (home link, signaling) or the MN (BUL, address
// watcher).
func (m *mobility) startAgent(tun string) error {
	if m.ha != nil {
		m.warnForwarding()
		mk := m.host.HomeLink
		if mk == nil {
			mk = linuxHomeLink
		}
		hl, closeFn, err := mk(m.cfg.Mobility, tun)
		if err != nil {
			return err
		}
		m.hlMu.Lock()
		m.hl, m.homeLinkClose = hl, closeFn
		m.hlMu.Unlock()
		return m.ha.Start()
	}
	if err := m.mn.Start(); err != nil {
		return err
	}
	watch := m.host.WatchAddrs
	if watch == nil {
		watch = linuxWatch
	}
	w, err := watch(m.cfg.Mobility, tun, m.addrsChanged)
	if err != nil {
		return err
	}
	m.watcher = w
	return nil
}

// warnForwarding logs, in one line, the home prefixes whose address family
// the kernel does not forward, and the sysctls to set: the HA forwards the
// traffic of bound home addresses between the home link and the TUN, and
// the home link refuses bindings of such a family (netcfg.ErrForwarding)
// until mipsec restarts with forwarding on.
func (m *mobility) warnForwarding() {
	fwd := m.host.Forwarding
	if fwd == nil {
		fwd = netcfg.Forwarding
	}
	var off []netip.Prefix
	var set []string
	for _, p := range []netip.Prefix{m.cfg.Mobility.HomePrefix, m.cfg.Mobility.HomePrefixV4} {
		if p.IsValid() && !fwd(p.Addr()) {
			off = append(off, p)
			set = append(set, netcfg.ForwardingSysctl(p.Addr())+"=1")
		}
	}
	if len(off) > 0 {
		m.log.Warn("forwarding is off for the home prefixes named: the home agent forwards their home addresses' traffic "+
			"between the home link and the TUN, and none of it passes (with home_link, their bindings are refused); run `sysctl -w "+strings.Join(set, " ")+
			"` (or set it in /etc/sysctl.d), then restart mipsec", zap.Stringers("home_prefixes", off), zap.Strings("sysctl", set))
	}
}

// suppressParamProblems installs the nftables filter that keeps a kernel
// without Mobile IPv6 from answering the HA's Binding Updates (Home
// Address option, RFC 6275 §6.3) or the MN's Binding Acknowledgements
// (type 2 Routing header, §6.4), which mipsec reads from raw sockets, with
// ICMPv6 Parameter Problems across the access network. Failing is not
// fatal: mobility works, the kernel just sends those errors.
func (m *mobility) suppressParamProblems() {
	install := m.host.ParamProblems
	if install == nil {
		install = netcfg.SuppressMIP6ParamProblems
	}
	what := "Binding Updates with a Home Address option (RFC 6275 6.3)"
	if m.mn != nil {
		what = "Binding Acknowledgements with a type 2 Routing header (RFC 6275 6.4)"
	}
	undo, err := install()
	switch {
	case errors.Is(err, netcfg.ErrNoNft):
		m.log.Warn("nft (nftables) is not installed: the kernel will answer "+what+
			" with ICMPv6 Parameter Problems; install nftables to suppress them", zap.Error(err))
	case err != nil:
		m.log.Warn("cannot install the nftables filter for ICMPv6 Parameter Problems: the kernel will answer "+what+
			" with them", zap.String("table", "inet "+netcfg.MIP6FilterTable), zap.Error(err))
	case undo != nil:
		m.ppUndo = undo
		m.log.Info("kernel ICMPv6 Parameter Problems for Mobile IPv6 headers suppressed",
			zap.String("table", "inet "+netcfg.MIP6FilterTable))
	}
}

// linuxHomeLink is netcfg's HomeLink on the configured home link; with no
// home_link there is none (the operator routes and proxies by hand).
func linuxHomeLink(mc MobilityConfig, tun string) (mip6.HomeLink, func() error, error) {
	if mc.HomeLink == "" {
		return nil, func() error { return nil }, nil
	}
	hl, err := netcfg.NewHomeLink(netcfg.HomeLinkConfig{Interface: mc.HomeLink, TUN: tun})
	if err != nil {
		return nil, nil, err
	}
	return hl, hl.Close, nil
}

func linuxWatch(mc MobilityConfig, tun string, fn func([]netip.Addr)) (io.Closer, error) {
	return netcfg.WatchAddrs(netcfg.WatchConfig{Interfaces: mc.Interfaces, Exclude: []string{tun}}, fn)
}

// addrsChanged is the watcher's report: the usable addresses now. The MN
// moves to the best of them (mip6.ChooseCoA: the home link, then global
// IPv6, then IPv4) unless `mipsec mn move` forced one that is still there.
func (m *mobility) addrsChanged(addrs []netip.Addr) {
	m.mu.Lock()
	m.lastSeen = addrs
	forced := m.forced
	if forced.IsValid() && !containsAddr(addrs, forced) {
		m.forced = netip.Addr{}
		forced = netip.Addr{}
	}
	m.mu.Unlock()
	if forced.IsValid() {
		return
	}
	coa, ok := mip6.ChooseCoA(addrs, m.cfg.Mobility.HomePrefix)
	if !ok {
		m.log.Warn("no usable care-of address on the watched interfaces", zap.Stringers("addresses", addrs))
		return
	}
	if st := m.mn.Status(); st.CoA == coa || st.Home && m.cfg.Mobility.HomePrefix.Contains(coa) {
		return
	}
	if err := m.mn.Move(coa); err != nil {
		m.log.Warn("movement: cannot use the care-of address", zap.Stringer("coa", coa), zap.Error(err))
	}
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// Move forces the MN's care-of address (`mipsec mn move`).
func (m *mobility) Move(coa netip.Addr) error {
	if m.mn == nil {
		return ErrNotMN
	}
	coa = coa.Unmap()
	if err := mip6.CheckCoA(coa); err != nil {
		return err
	}
	if err := m.mn.Move(coa); err != nil {
		return err
	}
	m.mu.Lock()
	m.forced = coa
	m.mu.Unlock()
	return nil
}

// close de-registers the MN (bounded wait) and stops the HA; it runs
// before the dataplane closes, because the de-registration BU and its BA
// go through it.
func (m *mobility) close() error {
	var errs []error
	if m.watcher != nil {
		errs = append(errs, m.watcher.Close())
	}
	if m.mn != nil {
		errs = append(errs, m.mn.Close())
	}
	if m.ha != nil {
		errs = append(errs, m.ha.Close())
		m.hlMu.Lock()
		c := m.homeLinkClose
		m.hl, m.homeLinkClose = nil, nil
		m.hlMu.Unlock()
		if c != nil {
			errs = append(errs, c())
		}
	}
	if m.ppUndo != nil {
		if err := m.ppUndo(); err != nil {
			errs = append(errs, fmt.Errorf("removing nftables table inet %s: %w", netcfg.MIP6FilterTable, err))
		}
		m.ppUndo = nil
	}
	m.dp.Store(nil)
	return errors.Join(errs...)
}

func (m *mobility) onHAEvent(e mip6.HAEvent) {
	c := &m.ctr
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := BindingChanged{Time: e.Time, HoA: e.HoA, CoA: e.CoA}
	switch e.Kind {
	case mip6.HABindingAdded:
		c.added++
		ev.Change = BindingAdded
	case mip6.HABindingUpdated:
		c.updated++
		ev.Change = BindingUpdated
	case mip6.HABindingRemoved:
		c.removed++
		ev.Change, ev.CoA = BindingRemoved, netip.Addr{}
		if e.Expired {
			c.expired++
			ev.Change = BindingExpired
		}
	default:
		return
	}
	m.events.publish(ev)
}

func (m *mobility) onMNEvent(e mip6.MNEvent) {
	c := &m.ctr
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Kind == mip6.MNMoved && m.ike != nil && e.CoA.IsValid() && e.CoA != m.cfg.Mobility.HomeAddress {
		// IKE from the new care-of address if none is up yet (RFC 4877
		// §7.3; from an IPv4 one to the HA's IPv4 address, RFC 5555).
		go m.initiateFrom(e.CoA)
	}
	if e.Kind == mip6.MNRegistered {
		if e.Handover > 0 {
			c.lastHO = e.Handover
		}
		if e.NAT {
			c.natSeen++
		}
		m.events.publish(Registered{Time: e.Time, CoA: e.CoA, NAT: e.NAT, Handover: e.Handover})
		if m.ike != nil {
			// Off the receive path: the IKE daemon is waited for.
			if e.KeyMgmt {
				go m.relocateMN(e.CoA)
			} else {
				go m.renewIKE(e.CoA)
			}
		}
	}
}

// MobilityMetrics is what the Prometheus collector and the control
// socket's stats read of the mobility layer. HA and MN are the whole
// counter snapshots of mip6, so that a counter added there reaches both
// without a change here (cmd/mipsec's drops_exported_test.go checks that
// every field is exported).
type MobilityMetrics struct {
	Role string
	// HA
	Bindings      int
	BindingEvents map[string]uint64 // added, updated, removed, expired
	// HA are the home agent's counters (RoleHA only).
	HA mip6.HAStats
	// MN
	// MN are the mobile node's counters (RoleMN only).
	MN           mip6.MNCounters
	LastHandover time.Duration
	Registered   bool
	NAT          bool
	// NATDetected counts the mobile node's accepted registrations that
	// reported a NAT (the home agent's count is HA.NATDetected).
	NATDetected uint64
}

// metrics snapshots the counters (not on the packet path).
func (m *mobility) metrics() MobilityMetrics {
	out := MobilityMetrics{Role: m.cfg.Role}
	c := &m.ctr
	if m.ha != nil {
		out.HA = m.ha.Stats()
		out.Bindings = m.ha.Cache().Len()
		c.mu.Lock()
		out.BindingEvents = map[string]uint64{"added": c.added, "updated": c.updated, "removed": c.removed, "expired": c.expired}
		c.mu.Unlock()
		return out
	}
	st := m.mn.Status()
	out.MN = st.Counters
	out.Registered = st.RegisteredCoA.IsValid()
	out.NAT = st.NAT
	c.mu.Lock()
	out.NATDetected = c.natSeen
	out.LastHandover = c.lastHO
	c.mu.Unlock()
	return out
}

// MobilityMetrics returns the mobility layer's counters; false for a
// gateway.
func (n *Node) MobilityMetrics() (MobilityMetrics, bool) {
	if n.mob == nil {
		return MobilityMetrics{}, false
	}
	return n.mob.metrics(), true
}

// Bindings is the home agent's binding cache.
func (n *Node) Bindings() ([]mip6.BindingStatus, error) {
	if n.mob == nil || n.mob.ha == nil {
		return nil, fmt.Errorf("%w: it is a %s", ErrNotHA, RoleName(n.cfg.Role))
	}
	return n.mob.ha.Bindings(), nil
}

// MNStatus is the mobile node's registration.
func (n *Node) MNStatus() (mip6.MNStatus, error) {
	if n.mob == nil || n.mob.mn == nil {
		return mip6.MNStatus{}, fmt.Errorf("%w: it is a %s", ErrNotMN, RoleName(n.cfg.Role))
	}
	return n.mob.mn.Status(), nil
}

// MNMove forces the mobile node's care-of address; movement detection
// leaves it alone until the address disappears.
func (n *Node) MNMove(coa netip.Addr) error {
	if n.mob == nil || n.mob.mn == nil {
		return fmt.Errorf("%w: it is a %s", ErrNotMN, RoleName(n.cfg.Role))
	}
	return n.mob.Move(coa)
}
