package netcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HomeLink answers on the home link for the home addresses of mobile nodes
// that are away (RFC 6275 §10.4.1: the home agent "intercepts" packets for
// a bound home address with proxy Neighbor Discovery; proxy ARP for an
// IPv4 home address, RFC 5555 §4.3) and routes them into the TUN, where
// the SPD sends them through the MN's tunnel SA. Its methods are safe for
// concurrent use; Add and Remove are idempotent.
type HomeLink struct {
	h        *netlink.Handle
	homeName string
	tunName  string
	// fwd4, fwd6: IPv4 / IPv6 forwarding was on at NewHomeLink.
	fwd4, fwd6 bool

	mu    sync.Mutex
	added map[netip.Addr]bool
}

// HomeLinkConfig configures NewHomeLink.
type HomeLinkConfig struct {
	// Interface is the home link's interface (proxy ND / ARP entries go
	// there); TUN the interface home addresses are routed into.
	Interface, TUN string
}

// ErrForwarding means the kernel does not forward the family: a home
// agent forwards between the home link and the TUN.
var ErrForwarding = errors.New("netcfg: forwarding is off")

// NewHomeLink checks both interfaces and the kernel settings of the
// current network namespace: it turns proxy_ndp on for the home link
// (net.ipv6.conf.IF.proxy_ndp = 1) and records whether IPv4 and IPv6
// forwarding are on (Add of a home address of a family that is not
// forwarded fails with ErrForwarding and the sysctl to set). The netlink
// socket it opens stays in this namespace.
func NewHomeLink(cfg HomeLinkConfig) (*HomeLink, error) {
	if cfg.Interface == "" || cfg.TUN == "" {
		return nil, errors.New("netcfg: home link: want the home-link interface and the TUN")
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netcfg: netlink: %w", err)
	}
	hl := &HomeLink{h: h, homeName: cfg.Interface, tunName: cfg.TUN, added: map[netip.Addr]bool{}}
	for _, n := range []string{cfg.Interface, cfg.TUN} {
		if _, err := h.LinkByName(n); err != nil {
			h.Close()
			return nil, fmt.Errorf("netcfg: home link: interface %q: %w", n, err)
		}
	}
	hl.fwd6 = Forwarding(netip.IPv6Unspecified())
	hl.fwd4 = Forwarding(netip.IPv4Unspecified())
	if hl.fwd6 {
		p := "/proc/sys/net/ipv6/conf/" + cfg.Interface + "/proxy_ndp"
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			h.Close()
			return nil, fmt.Errorf("netcfg: home link: turning on proxy ND (RFC 6275 §10.4.1) on %s: %w", cfg.Interface, err)
		}
	}
	return hl, nil
}

// ForwardingSysctl names, as sysctl(8) writes it, the setting that turns
// the kernel's forwarding of a's address family on.
func ForwardingSysctl(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "net.ipv4.ip_forward"
	}
	return "net.ipv6.conf.all.forwarding"
}

// Forwarding reports whether the kernel forwards a's address family in the
// current network namespace (ForwardingSysctl(a) is not 0; false when it
// cannot be read).
func Forwarding(a netip.Addr) bool {
	return sysctlOn(strings.ReplaceAll(ForwardingSysctl(a), ".", "/"))
}

// sysctlOn reads a 0/1 sysctl of the current namespace.
func sysctlOn(name string) bool {
	b, err := os.ReadFile("/proc/sys/" + name)
	return err == nil && strings.TrimSpace(string(b)) != "0"
}

// Close releases the netlink socket. Entries stay: Remove them first.
func (hl *HomeLink) Close() error {
	hl.h.Close()
	return nil
}

// Add installs the host route hoa/128 (or /32) into the TUN and the proxy
// ND (IPv6) or proxy ARP (IPv4) entry for hoa on the home link, in that
// order (Linux answers ARP for a pneigh entry only when the route leads
// elsewhere). Adding what is there already is not an error.
func (hl *HomeLink) Add(hoa netip.Addr) error {
	hoa = hoa.Unmap()
	if err := hl.check(hoa); err != nil {
		return err
	}
	home, tun, err := hl.links()
	if err != nil {
		return err
	}
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if err := hl.h.RouteReplace(hostRoute(tun, hoa)); err != nil {
		return fmt.Errorf("netcfg: route %s into %s: %w", hoa, hl.tunName, err)
	}
	if err := hl.h.NeighSet(proxyNeigh(home, hoa)); err != nil {
		return fmt.Errorf("netcfg: proxy %s for %s on %s: %w", proxyKind(hoa), hoa, hl.homeName, err)
	}
	hl.added[hoa] = true
	return nil
}

// Remove deletes the proxy entry and the route Add installed for hoa.
// Removing what is not there is not an error.
func (hl *HomeLink) Remove(hoa netip.Addr) error {
	hoa = hoa.Unmap()
	if !hoa.IsValid() {
		return fmt.Errorf("netcfg: remove: invalid address")
	}
	home, tun, err := hl.links()
	if err != nil {
		return err
	}
	hl.mu.Lock()
	defer hl.mu.Unlock()
	var errs []error
	if err := hl.h.NeighDel(proxyNeigh(home, hoa)); err != nil && !gone(err) {
		errs = append(errs, fmt.Errorf("netcfg: removing proxy %s for %s on %s: %w", proxyKind(hoa), hoa, hl.homeName, err))
	}
	if err := hl.h.RouteDel(hostRoute(tun, hoa)); err != nil && !gone(err) {
		errs = append(errs, fmt.Errorf("netcfg: removing route %s from %s: %w", hoa, hl.tunName, err))
	}
	delete(hl.added, hoa)
	return errors.Join(errs...)
}

// Installed lists the home addresses Add installed and Remove has not
// removed (for status and tests).
func (hl *HomeLink) Installed() []netip.Addr {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	out := make([]netip.Addr, 0, len(hl.added))
	for a := range hl.added {
		out = append(out, a)
	}
	return out
}

func (hl *HomeLink) check(hoa netip.Addr) error {
	switch {
	case !hoa.IsValid():
		return errors.New("netcfg: add: invalid address")
	case hoa.IsUnspecified() || hoa.IsMulticast() || hoa.IsLoopback() || hoa.IsLinkLocalUnicast():
		return fmt.Errorf("netcfg: add: %s is not a unicast home address", hoa)
	case hoa.Is4() && !hl.fwd4:
		return fmt.Errorf("%w for IPv4: the home agent forwards the traffic of %s between the home link and the TUN; sysctl -w %s=1, then restart mipsec (it reads forwarding when it starts)", ErrForwarding, hoa, ForwardingSysctl(hoa))
	case hoa.Is6() && !hl.fwd6:
		return fmt.Errorf("%w for IPv6: the home agent forwards the traffic of %s between the home link and the TUN (RFC 6275 §10.4.1); sysctl -w %s=1, then restart mipsec (it reads forwarding, and turns proxy_ndp on, when it starts)", ErrForwarding, hoa, ForwardingSysctl(hoa))
	}
	return nil
}

// links looks both interfaces up by name each time: an interface that was
// re-created has a new index.
func (hl *HomeLink) links() (home, tun int, err error) {
	l, err := hl.h.LinkByName(hl.homeName)
	if err != nil {
		return 0, 0, fmt.Errorf("netcfg: home link %q: %w", hl.homeName, err)
	}
	t, err := hl.h.LinkByName(hl.tunName)
	if err != nil {
		return 0, 0, fmt.Errorf("netcfg: TUN %q: %w", hl.tunName, err)
	}
	return l.Attrs().Index, t.Attrs().Index, nil
}

func hostRoute(link int, a netip.Addr) *netlink.Route {
	return &netlink.Route{LinkIndex: link, Dst: hostNet(a), Scope: netlink.SCOPE_LINK}
}

func proxyNeigh(link int, a netip.Addr) *netlink.Neigh {
	fam := unix.AF_INET6
	if a.Is4() {
		fam = unix.AF_INET
	}
	return &netlink.Neigh{LinkIndex: link, Family: fam, Flags: netlink.NTF_PROXY, IP: net.IP(a.AsSlice())}
}

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func proxyKind(a netip.Addr) string {
	if a.Is4() {
		return "ARP"
	}
	return "ND"
}

// gone: the entry was not there.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}
