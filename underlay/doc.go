// Package underlay is the Linux underlay: the sockets that carry ESP to and
// from peers, behind dataplane.Underlay (shaped like wireguard-go's conn
// beside device). New(Config) returns a *Linux; the dataplane sees only the
// interface.
//
//   - underlay_linux.go: raw ESP sockets (IP protocol 50, RFC 4303), ESP in
//     UDP 4500 (RFC 3948: NAT keepalives §2.3 are consumed and counted,
//     non-ESP-marker datagrams §2.2 go to Config.IKE or are counted; never
//     returned), batched with recvmmsg/sendmmsg and UDP GSO/GRO; for the
//     mobility signaling (Config.DSMIPv6, ExtHeaders) UDP 4191 (RFC 5555
//     §4.1), raw Destination Options and Routing receivers for the Home
//     Address option (RFC 6275 §6.3) and the type 2 Routing header (§6.4)
//     that rebuild the IPv6 header, and header-included (IPPROTO_RAW) sends
//     for endpoint.EncapIP.
//   - pktsock_linux.go: Config.PacketSocket: raw ESP sent through AF_PACKET
//     (PACKET_QDISC_BYPASS), the outer header written into the headroom,
//     next hops from a netlink-fed cache; raw socket fallback.
//   - ike_linux.go: IKE (RFC 7296 §2.11): with Config.IKE the non-ESP-marker
//     datagrams on the ESP-in-UDP port, and with IKE500 those on UDP 500,
//     go to the callback with their real destination (IP_PKTINFO /
//     IPV6_PKTINFO on a wildcard socket); SendIKE sends from 500, or from
//     the ESP-in-UDP port behind the marker.
//   - mmsg_linux.go: recvmmsg without allocations.
//   - outer.go: WriteOuterHeader, the normalised outer header left in front
//     of raw ESP (transport mode needs it, RFC 4303 §3.4.4.2); test fakes
//     (dataplane/underlaytest) use it too. frontDF: the outer IPv4 DF bit
//     every send path writes is the SA's (RFC 4301 §8.1), read from the
//     header the dataplane left in front of ESP.
//
// Nothing on the packet path allocates, locks or logs; the counters (Stats)
// are atomics added once per batch.
//
// underlay imports pkt, endpoint, internal/header, x/net, x/sys and
// netlink; never dataplane, sad, spd, esp or mip6 (deps_test.go).
package underlay
