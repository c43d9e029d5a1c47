// Package netcfg is the kernel side of mobility in `mipsec run`, through
// netlink (github.com/vishvananda/netlink) and nftables (the nft binary):
//
//   - HomeLink: on the home agent, when a binding appears, proxy neighbour
//     discovery (RFC 6275 §10.4.1) for an IPv6 home address or proxy ARP
//     (a pneigh entry) for an IPv4 one on the home-link interface, and a
//     host route for the home address into the TUN; Remove undoes both when
//     the binding ends. It implements mip6.HomeLink.
//   - AddrWatcher: on the mobile node, netlink address and link events on
//     the underlay interfaces, debounced, reported as the current list of
//     usable addresses, from which the daemon picks the care-of address
//     (mip6.ChooseCoA, RFC 6275 §11.5.1 movement detection).
//   - SuppressMIP6ParamProblems: on a kernel without Mobile IPv6
//     (CONFIG_IPV6_MIP6 off), an nftables table (inet mipsec_mip6, through
//     the nft binary) that drops the ICMPv6 Parameter Problems the kernel
//     sends for the Home Address options (RFC 6275 §6.3) and type 2
//     Routing headers (§6.4) mipsec handles itself from raw sockets.
//   - InstallPolicyRoutes: the TUN's routes in tables of their own behind
//     `not fwmark` and `suppress_prefixlength` rules (wg-quick's scheme),
//     so that the underlay's marked sockets never route into the TUN, a
//     full-tunnel 0.0.0.0/0 or ::/0 included (node/linux.go installs it,
//     node.Close removes it).
//
// It is Linux-only and imports no mipsec package: cmd/mipsec wires it to
// mip6.
package netcfg
