package netcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Policy routing around the TUN (the wg-quick scheme): the underlay's
// sockets carry a firewall mark (SO_MARK, underlay.Config.Mark), the TUN's
// routes live in tables of their own, and rules send only the unmarked
// packets there:
//
//	PRIO+2*(128-L)    from all lookup main suppress_prefixlength L
//	PRIO+2*(128-L)+1  not from all fwmark MARK lookup TABLE+L
//
// one pair per prefix length L among the TUN routes of the family, longest
// first, and TABLE+L holds the TUN routes of length L. The main table's
// own routes keep winning where they are more specific than the TUN route
// (the suppress rule rejects an answer of length L or shorter, the next
// rule then tries the TUN's routes of length L), so for unmarked packets
// the choice is main's longest-prefix match over both sets of routes, as
// when the TUN routes were in main; a marked packet, the underlay's own
// ESP, UDP 4500 or UDP 4191 (or an AF_PACKET next-hop lookup, which passes
// the mark: underlay/pktsock_linux.go), never sees a TUN route and goes out
// by main's routes, a full-tunnel 0.0.0.0/0 or ::/0 on the TUN included.
//
// A mark rather than SO_BINDTODEVICE: a mobile node's sockets listen on
// every address and its access interface changes with each move
// (RFC 6275 §11.5), and a gateway may reach different peers through
// different links; a socket bound to one device would need re-binding on
// every change, the mark needs none.

// PolicyRoutesConfig configures InstallPolicyRoutes.
type PolicyRoutesConfig struct {
	// TUN is the interface the routes lead into.
	TUN string
	// Routes are the TUN's routes (prefixes; IPv4 and IPv6).
	Routes []netip.Prefix
	// Mark is the underlay sockets' SO_MARK (not 0).
	Mark uint32
	// Table is the first routing table: the routes of prefix length L
	// go to Table+L (Table..Table+128; none may be a reserved table, 0
	// or 253..255).
	Table uint32
	// Priority is the first rule priority: the rules take
	// Priority..Priority+257, which must come before the main table's
	// rule (32766).
	Priority int
}

// PolicyRoutes is what InstallPolicyRoutes installed; Remove undoes it.
type PolicyRoutes struct {
	h      *netlink.Handle
	rules  []netlink.Rule
	routes []netlink.Route
}

// Checks on PolicyRoutesConfig (also used by the configuration).
const (
	// MaxPolicyRulePriority is the last priority the rules may take:
	// the main table's rule is 32766.
	MaxPolicyRulePriority = 32765
	policySpan            = 2 * 129 // priorities Priority..Priority+257
)

// CheckPolicyRoutes says what is wrong with mark, table and priority, nil
// when they can be used.
func CheckPolicyRoutes(mark, table uint32, priority int) error {
	switch {
	case mark == 0:
		return errors.New("netcfg: policy routing needs a non-zero fwmark")
	case table == 0 || table > 0xffffffff-128:
		return fmt.Errorf("netcfg: routing table %d: want 1..%d (the tables %d..%d+128)", table, uint32(0xffffffff-128), table, table)
	case table <= unix.RT_TABLE_LOCAL && table+128 >= unix.RT_TABLE_COMPAT:
		return fmt.Errorf("netcfg: routing tables %d..%d include a reserved one (252 compat, 253 default, 254 main, 255 local)", table, table+128)
	case priority < 1 || priority+policySpan-1 > MaxPolicyRulePriority:
		return fmt.Errorf("netcfg: rule priority %d: want 1..%d (the rules take %d priorities before main's 32766)", priority, MaxPolicyRulePriority-policySpan+1, policySpan)
	}
	return nil
}

// InstallPolicyRoutes adds cfg.Routes into the TUN in their tables and the
// rules above, in the network namespace of the calling thread. Rules left
// by an earlier run that was killed (same priorities, same tables) are
// removed first. On error nothing it added stays.
func InstallPolicyRoutes(cfg PolicyRoutesConfig) (*PolicyRoutes, error) {
	if err := CheckPolicyRoutes(cfg.Mark, cfg.Table, cfg.Priority); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netcfg: netlink: %w", err)
	}
	pr := &PolicyRoutes{h: h}
	link, err := h.LinkByName(cfg.TUN)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netcfg: TUN %q: %w", cfg.TUN, err)
	}
	pr.removeStale(cfg)
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		var lens []int
		for _, p := range cfg.Routes {
			p = unmapPrefix(p)
			if !p.IsValid() || (p.Addr().Is4() != (fam == unix.AF_INET)) {
				continue
			}
			p = p.Masked()
			r := netlink.Route{LinkIndex: link.Attrs().Index, Dst: hostNet(p.Addr()), Scope: netlink.SCOPE_LINK,
				Table: int(cfg.Table) + p.Bits()}
			r.Dst.Mask = prefixMask(p)
			if err := h.RouteReplace(&r); err != nil {
				pr.Remove()
				return nil, fmt.Errorf("netcfg: route %v into %s (table %d): %w", p, cfg.TUN, r.Table, err)
			}
			pr.routes = append(pr.routes, r)
			if !slices.Contains(lens, p.Bits()) {
				lens = append(lens, p.Bits())
			}
		}
		for _, l := range lens {
			prio := cfg.Priority + 2*(128-l)
			sup := netlink.NewRule()
			sup.Family, sup.Priority, sup.Table, sup.SuppressPrefixlen = fam, prio, unix.RT_TABLE_MAIN, l
			tab := netlink.NewRule()
			tab.Family, tab.Priority, tab.Table, tab.Mark, tab.Invert = fam, prio+1, int(cfg.Table)+l, cfg.Mark, true
			for _, r := range []*netlink.Rule{sup, tab} {
				if err := h.RuleAdd(r); err != nil {
					pr.Remove()
					return nil, fmt.Errorf("netcfg: ip rule %v: %w (policy routing needs CONFIG_IP_MULTIPLE_TABLES / CONFIG_IPV6_MULTIPLE_TABLES)", r, err)
				}
				pr.rules = append(pr.rules, *r)
			}
		}
	}
	return pr, nil
}

// removeStale deletes rules of cfg's priorities that point at its tables
// or suppress in main: what a killed daemon left.
func (pr *PolicyRoutes) removeStale(cfg PolicyRoutesConfig) {
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := pr.h.RuleList(fam)
		if err != nil {
			continue
		}
		for _, r := range rules {
			if r.Priority < cfg.Priority || r.Priority >= cfg.Priority+policySpan {
				continue
			}
			ours := r.Table >= int(cfg.Table) && r.Table <= int(cfg.Table)+128 && r.Invert && r.Mark == cfg.Mark ||
				r.Table == unix.RT_TABLE_MAIN && r.SuppressPrefixlen >= 0
			if ours {
				r.Family = fam
				_ = pr.h.RuleDel(&r)
			}
		}
	}
}

// Rules returns the rules installed (for tests and logs).
func (pr *PolicyRoutes) Rules() []netlink.Rule { return slices.Clone(pr.rules) }

// Remove deletes the rules and routes it installed and closes the netlink
// socket; what is gone already (the TUN's routes go with the TUN) is not
// an error. It may be called more than once.
func (pr *PolicyRoutes) Remove() error {
	if pr == nil || pr.h == nil {
		return nil
	}
	var errs []error
	for i := len(pr.rules) - 1; i >= 0; i-- {
		if err := pr.h.RuleDel(&pr.rules[i]); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("netcfg: removing %v: %w", pr.rules[i], err))
		}
	}
	for i := range pr.routes {
		if err := pr.h.RouteDel(&pr.routes[i]); err != nil && !gone(err) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("netcfg: removing route %v (table %d): %w", pr.routes[i].Dst, pr.routes[i].Table, err))
		}
	}
	pr.rules, pr.routes = nil, nil
	pr.h.Close()
	pr.h = nil
	return errors.Join(errs...)
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.IsValid() && p.Addr().Is4In6() {
		return netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
	}
	return p
}

func prefixMask(p netip.Prefix) net.IPMask { return net.CIDRMask(p.Bits(), p.Addr().BitLen()) }
