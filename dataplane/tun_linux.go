package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// CreateTUN creates (or attaches to) the TUN device name with the given MTU.
// It is golang.zx2c4.com/wireguard/tun.CreateTUN, which opens the device with
// IFF_VNET_HDR and turns on the virtio-net offloads (TSO, and UDP GSO/GRO
// where the kernel has them): reads and writes then need an offset of at
// least pkt.VirtioNetHdrLen, and one Read may return many packets. The
// device is created in the network namespace of the calling thread.
// Addresses, routes and link state are ConfigureTUN's job.
func CreateTUN(name string, mtu int) (tun.Device, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("%w: TUN name %q (1 to %d bytes)", ErrInvalidConfig, name, unix.IFNAMSIZ-1)
	}
	if mtu < 576 || mtu > 65535 {
		return nil, fmt.Errorf("%w: TUN MTU %d (576 to 65535)", ErrInvalidConfig, mtu)
	}
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("dataplane: create TUN %q: %w", name, err)
	}
	return dev, nil
}

// ConfigureTUN sets the link name's MTU (when mtu > 0), adds addrs (an
// address that is already there is fine), brings the link up and routes
// each prefix of routes through it (replacing a route to the same prefix).
// It works in the network namespace of the calling thread. IPv6 addresses
// skip duplicate address detection (IFA_F_NODAD): a point-to-point tunnel
// has no neighbours to collide with.
func ConfigureTUN(name string, addrs []netip.Prefix, routes []netip.Prefix, mtu int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("dataplane: TUN %q: %w", name, err)
	}
	if mtu > 0 {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("dataplane: TUN %q: set MTU %d: %w", name, mtu, err)
		}
	}
	for _, p := range addrs {
		if !p.IsValid() {
			return fmt.Errorf("%w: TUN %q: invalid address %v", ErrInvalidConfig, name, p)
		}
		a := &netlink.Addr{IPNet: prefixIPNet(p)}
		if p.Addr().Is6() && !p.Addr().Is4In6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("dataplane: TUN %q: add address %v: %w", name, p, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("dataplane: TUN %q: set up: %w", name, err)
	}
	for _, p := range routes {
		if !p.IsValid() {
			return fmt.Errorf("%w: TUN %q: invalid route %v", ErrInvalidConfig, name, p)
		}
		r := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       prefixIPNet(p.Masked()),
			Scope:     netlink.SCOPE_LINK,
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("dataplane: TUN %q: route %v: %w", name, p, err)
		}
	}
	return nil
}

// prefixIPNet converts for netlink (control plane only).
func prefixIPNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().Unmap()
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits -= 96
	}
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}
