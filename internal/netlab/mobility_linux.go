package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The mobility topology (mobility demo and e2e tests), documentation
// prefixes only (RFC 3849, RFC 5737):
//
//	cn --home-- ha --transit-- rt ==access A (IPv6)============== mn
//	                              ==access B (IPv4, NAT on rt)==
//
// The home link carries the home prefix (the HA's address HAADDR, the
// correspondent, and the MN's home addresses proxied by the HA); the
// transit link joins the HA to the access router rt, which masquerades
// the IPv4 access network out of the transit link.
var (
	// Home link (cn -- ha).
	MobHomeHA6 = netip.MustParsePrefix("2001:db8:1::1/64")
	MobHomeCN6 = netip.MustParsePrefix("2001:db8:1::10/64")
	MobHomeHA4 = netip.MustParsePrefix("192.0.2.1/24")
	MobHomeCN4 = netip.MustParsePrefix("192.0.2.10/24")
	// Transit link (ha -- rt).
	MobTransitHA6 = netip.MustParsePrefix("2001:db8:ff::1/64")
	MobTransitRT6 = netip.MustParsePrefix("2001:db8:ff::2/64")
	MobTransitHA4 = netip.MustParsePrefix("198.51.100.1/24")
	MobTransitRT4 = netip.MustParsePrefix("198.51.100.2/24")
	// Access A (rt -- mn), IPv6 only.
	MobAccessRT6 = netip.MustParsePrefix("2001:db8:2::1/64")
	MobCoA6      = netip.MustParsePrefix("2001:db8:2::100/64")
	// Access B (rt -- mn), IPv4 only, masqueraded by rt.
	MobAccessRT4 = netip.MustParsePrefix("203.0.113.1/24")
	MobCoA4      = netip.MustParsePrefix("203.0.113.10/24")

	// The MN's home addresses (on its TUN) and the HA's addresses.
	MobHoA    = netip.MustParseAddr("2001:db8:1::100")
	MobHoA4   = netip.MustParseAddr("192.0.2.100")
	MobHAAddr = MobHomeHA6.Addr()    // HAADDR (RFC 6275: on the home link)
	MobHAV4   = MobTransitHA4.Addr() // HA_V4ADDR (RFC 5555)
	// MobNATAddr is the address rt masquerades access B to.
	MobNATAddr = MobTransitRT4.Addr()
)

// Interface names of the mobility topology, NAMESPACE-LINK, as the
// example configs name them (cmd/mipsec/examples: the HA's home_link
// "ha-home", the MN's interfaces "mn-v6" and "mn-v4").
const (
	MobDevCNHome    = "cn-home"    // cn -- ha: the home link
	MobDevHAHome    = "ha-home"    //
	MobDevHATransit = "ha-transit" // ha -- rt: the transit link
	MobDevRTTransit = "rt-transit" //
	MobDevRTA       = "rt-v6"      // rt -- mn: access A, IPv6 only
	MobDevMNA       = "mn-v6"      //
	MobDevRTB       = "rt-v4"      // rt -- mn: access B, IPv4 only, NAT on rt
	MobDevMNB       = "mn-v4"      //
)

// Access names the MN's access link.
type Access int

// The access links.
const (
	AccessNone Access = iota // neither link is up
	AccessA                  // IPv6 access
	AccessB                  // IPv4 access behind the NAT
)

func (a Access) String() string {
	switch a {
	case AccessA:
		return "A (IPv6)"
	case AccessB:
		return "B (IPv4 behind NAT)"
	}
	return "none"
}

// Dev is the access link's interface name in the MN.
func (a Access) Dev() string {
	if a == AccessB {
		return MobDevMNB
	}
	return MobDevMNA
}

// RouterDev is the access link's interface name in the router rt.
func (a Access) RouterDev() string {
	if a == AccessB {
		return MobDevRTB
	}
	return MobDevRTA
}

// CoA is the MN's care-of address on the access link.
func (a Access) CoA() netip.Addr {
	if a == AccessB {
		return MobCoA4.Addr()
	}
	return MobCoA6.Addr()
}

// Mobility is one instance of the mobility topology: namespaces CN, HA,
// RT and MN (names PREFIX-PID-{cn,ha,rt,mn}), their veths, addresses,
// routes, sysctls and rt's NAT. Close deletes all of it.
type Mobility struct {
	CN, HA, RT, MN string

	mu  sync.Mutex
	nss []string
	up  map[Access]bool
}

// NewMobility builds the mobility topology with the MN on access A (link
// B down). The namespaces are named PREFIX-PID-TAG{cn,ha,rt,mn}
// (RemoveStale(prefix) removes those of killed runs); use a prefix of your
// own (e.g. "mipsec-demo") and a tag that differs between the labs one
// process runs at the same time (e.g. "3-"). It needs root, ip (iproute2)
// and nft (nftables). On error nothing is left.
func NewMobility(ctx context.Context, prefix, tag string) (m *Mobility, err error) {
	for _, c := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("the mobility topology needs %s: %w", c, err)
		}
	}
	m = &Mobility{
		CN: NetnsName(prefix, tag+"cn"), HA: NetnsName(prefix, tag+"ha"),
		RT: NetnsName(prefix, tag+"rt"), MN: NetnsName(prefix, tag+"mn"),
		up: map[Access]bool{},
	}
	defer func() {
		if err != nil {
			m.Close()
			m = nil
		}
	}()
	for _, ns := range []string{m.CN, m.HA, m.RT, m.MN} {
		if err := AddNetns(ctx, ns); err != nil {
			return m, err
		}
		m.nss = append(m.nss, ns)
	}
	links := []struct{ a, b Link }{
		{Link{NS: m.CN, Dev: MobDevCNHome, V4: MobHomeCN4, V6: MobHomeCN6}, Link{NS: m.HA, Dev: MobDevHAHome, V4: MobHomeHA4, V6: MobHomeHA6}},
		{Link{NS: m.HA, Dev: MobDevHATransit, V4: MobTransitHA4, V6: MobTransitHA6}, Link{NS: m.RT, Dev: MobDevRTTransit, V4: MobTransitRT4, V6: MobTransitRT6}},
		{Link{NS: m.RT, Dev: MobDevRTA, V6: MobAccessRT6}, Link{NS: m.MN, Dev: MobDevMNA}},
		{Link{NS: m.RT, Dev: MobDevRTB, V4: MobAccessRT4}, Link{NS: m.MN, Dev: MobDevMNB}},
	}
	for _, l := range links {
		if err := Veth(ctx, l.a, l.b); err != nil {
			return m, err
		}
	}
	sysctls := []struct{ ns, key, val string }{
		{m.HA, "net/ipv6/conf/all/forwarding", "1"},
		{m.HA, "net/ipv4/ip_forward", "1"},
		{m.HA, "net/ipv6/conf/" + MobDevHAHome + "/proxy_ndp", "1"},
		{m.RT, "net/ipv6/conf/all/forwarding", "1"},
		{m.RT, "net/ipv4/ip_forward", "1"},
		// Access B is IPv4 only: no IPv6 at all on it (no link-local
		// address, no MLD, no ND).
		{m.RT, "net/ipv6/conf/" + MobDevRTB + "/disable_ipv6", "1"},
		{m.MN, "net/ipv6/conf/" + MobDevMNB + "/disable_ipv6", "1"},
		// The router's address on access A survives the link going down
		// (IPv6 addresses are flushed on down by default); the MN's is
		// removed by SetLink itself.
		{m.RT, "net/ipv6/conf/" + MobDevRTA + "/keep_addr_on_down", "1"},
		{m.MN, "net/ipv6/conf/" + MobDevMNA + "/keep_addr_on_down", "1"},
	}
	for _, s := range sysctls {
		if err := Sysctl(s.ns, s.key, s.val); err != nil {
			return m, err
		}
	}
	routes := [][]string{
		{m.CN, "-6", "route", "add", "default", "via", MobHomeHA6.Addr().String()},
		{m.CN, "-4", "route", "add", "default", "via", MobHomeHA4.Addr().String()},
		{m.HA, "-6", "route", "add", "2001:db8:2::/64", "via", MobTransitRT6.Addr().String()},
		{m.RT, "-6", "route", "add", "2001:db8:1::/64", "via", MobTransitHA6.Addr().String()},
		{m.RT, "-4", "route", "add", "192.0.2.0/24", "via", MobTransitHA4.Addr().String()},
	}
	for _, r := range routes {
		if err := IP(ctx, append([]string{"-n", r[0]}, r[1:]...)...); err != nil {
			return m, err
		}
	}
	// rt masquerades access B out of the transit link (Linux keeps the
	// source port when it is free: an endpoint-independent mapping,
	// RFC 4787).
	if err := NFT(ctx, m.RT, `table ip mipsec_nat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 203.0.113.0/24 oifname "`+MobDevRTTransit+`" masquerade
	}
}
`); err != nil {
		return m, err
	}
	// The MN starts on A: B's ends go down, A gets the MN's address and
	// routes.
	if err := IP(ctx, "-n", m.RT, "link", "set", MobDevRTB, "down"); err != nil {
		return m, err
	}
	if err := IP(ctx, "-n", m.MN, "link", "set", MobDevMNB, "down"); err != nil {
		return m, err
	}
	if err := IP(ctx, "-n", m.MN, "link", "set", MobDevMNA, "down"); err != nil {
		return m, err
	}
	if err := m.SetLink(ctx, AccessA, true); err != nil {
		return m, err
	}
	return m, nil
}

// Sysctl writes val to /proc/sys/KEY in namespace ns (KEY with slashes,
// e.g. net/ipv4/ip_forward).
func Sysctl(ns, key, val string) error {
	return InNetns(ns, func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(val), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", strings.ReplaceAll(key, "/", "."), val, ns, err)
		}
		return nil
	})
}

// NFT runs `nft -f -` in namespace ns with script on stdin; the error
// carries nft's output.
func NFT(ctx context.Context, ns, script string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Namespaces returns the namespaces of the topology.
func (m *Mobility) Namespaces() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.nss...)
}

// Close deletes the namespaces (and with them every veth, address, route
// and NAT rule); the processes running in them are the caller's to stop.
// It is safe to call more than once; it returns the first error.
func (m *Mobility) Close() error {
	m.mu.Lock()
	nss := m.nss
	m.nss = nil
	m.mu.Unlock()
	var errs []error
	for _, ns := range nss {
		if err := DelNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Up reports whether access link a is up in the MN.
func (m *Mobility) Up(a Access) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.up[a]
}

// At returns the access link the MN is on: the only one up, AccessNone
// when none or both are.
func (m *Mobility) At() Access {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.up[AccessA] && !m.up[AccessB]:
		return AccessA
	case m.up[AccessB] && !m.up[AccessA]:
		return AccessB
	}
	return AccessNone
}

// SetLink brings access link a up or down at both ends. Up: the MN gets
// its routes through it and then its care-of address on it (IPv6: default and
// HAADDR/128 via rt, so HAADDR is reached over the access link even when
// the MN's TUN routes the home prefix; IPv4: default and HA_V4ADDR/32 via
// rt). Down: the link goes down first (that is the moment of a
// handover), then the MN's address on it is removed, as when a node
// leaves a network.
func (m *Mobility) SetLink(ctx context.Context, a Access, up bool) error {
	dev, rdev := a.Dev(), a.RouterDev()
	pfx := MobCoA6
	fam, gw, ha := "-6", MobAccessRT6.Addr(), MobHAAddr
	if a == AccessB {
		pfx, fam, gw, ha = MobCoA4, "-4", MobAccessRT4.Addr(), MobHAV4
	}
	if !up {
		if err := IP(ctx, "-n", m.MN, "link", "set", dev, "down"); err != nil {
			return err
		}
		m.mu.Lock()
		m.up[a] = false
		m.mu.Unlock()
		if err := IP(ctx, "-n", m.RT, "link", "set", rdev, "down"); err != nil {
			return err
		}
		// The address may be gone already (keep_addr_on_down for IPv4
		// does not exist: the kernel keeps IPv4 addresses anyway).
		IP(ctx, "-n", m.MN, "addr", "del", pfx.String(), "dev", dev)
		return nil
	}
	// Links and routes first (onlink: the gateway needs no address of
	// ours), the address last: whoever watches address events (movement
	// detection) finds the link usable when the address appears.
	if err := IP(ctx, "-n", m.RT, "link", "set", rdev, "up"); err != nil {
		return err
	}
	if err := IP(ctx, "-n", m.MN, "link", "set", dev, "up"); err != nil {
		return err
	}
	for _, dst := range []string{"default", netip.PrefixFrom(ha, ha.BitLen()).String()} {
		if err := IP(ctx, "-n", m.MN, fam, "route", "replace", dst, "via", gw.String(), "dev", dev, "onlink"); err != nil {
			return err
		}
	}
	args := []string{"-n", m.MN, "addr", "replace", pfx.String(), "dev", dev}
	if a == AccessA {
		args = append(args, "nodad")
	}
	if err := IP(ctx, args...); err != nil {
		return err
	}
	m.mu.Lock()
	m.up[a] = true
	m.mu.Unlock()
	return nil
}

// Move records one handover made by MoveTo.
type Move struct {
	From, To Access
	Down     time.Time // the old link went down (zero when none was up)
	Up       time.Time // the new link is up with its address and routes
}

// MoveTo moves the MN to access link to: the other link goes down (if up),
// then to comes up (if down). Both links up (see SetLink) is the way to
// test a forced move with the old link still usable.
func (m *Mobility) MoveTo(ctx context.Context, to Access) (Move, error) {
	if to != AccessA && to != AccessB {
		return Move{}, fmt.Errorf("netlab: move to %v: want AccessA or AccessB", to)
	}
	other := AccessA
	if to == AccessA {
		other = AccessB
	}
	mv := Move{From: m.At(), To: to}
	if m.Up(other) {
		mv.Down = time.Now()
		if err := m.SetLink(ctx, other, false); err != nil {
			return mv, err
		}
	}
	if !m.Up(to) {
		if err := m.SetLink(ctx, to, true); err != nil {
			return mv, err
		}
	}
	mv.Up = time.Now()
	return mv, nil
}

// WriteMobilityConfig writes example (an HA or MN example config) to
// dir/NAME.toml with its state directory dir/state-NAME and its control
// socket dir/NAME.sock, and the keys of set changed (SetTOML); it returns
// the config's path and the socket's.
func WriteMobilityConfig(example []byte, dir, name string, set map[string]string) (path, socket string, err error) {
	socket = dir + "/" + name + ".sock"
	all := map[string]string{
		"state_dir":      strconv.Quote(dir + "/state-" + name),
		"control.socket": strconv.Quote(socket),
	}
	for k, v := range set {
		all[k] = v
	}
	cfg, err := SetTOML(string(example), all)
	if err != nil {
		return "", "", fmt.Errorf("%s config: %w", name, err)
	}
	path = dir + "/" + name + ".toml"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", "", err
	}
	return path, socket, nil
}

// DaemonReady is a Gateway.Start readiness check: the daemon logged that
// it runs and its control socket exists.
func DaemonReady(socket string) func(log string) bool {
	return func(log string) bool {
		if !strings.Contains(log, "mipsec running") {
			return false
		}
		_, err := os.Stat(socket)
		return err == nil
	}
}

// Poll calls cond every interval until it returns true (nil), ctx is done
// or timeout passes; then the error names what (from cond's last
// description) was still not true.
func Poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, what := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", context.Cause(ctx), what)
		case <-time.After(interval):
		}
	}
}
