// Package config reads mipsec's configuration file (TOML) into a
// node.Config: parsing, field-by-field validation with every error
// collected (file:line and the key path, e.g. "sa[2].enc_key"), and the
// sad.Config / spd.Policy / dataplane.PeerConfig values built from it. The
// same grammar for SAs, policies and selectors serves the control socket
// (ParseSnippet, ParseAddrRange, ParsePorts and their Format twins).
// testdata/gateway-a.toml is the annotated example; `mipsec check -c FILE` prints what this package finds.
//
// Reference (every key; an unknown key is an error; defaults in brackets):
//
//	role = "gateway"|"ha"|"mn"         [gateway]; ha/mn need [mobility]
//	                                   (mobility.go has its keys)
//	state_dir = "/var/lib/mipsec"      sequence-number reservations (absolute)
//	[log]      level = "info"          debug|info|warn|error
//	           format = "console"      console|json
//	[control]  socket = "/run/mipsec/mipsec.sock"
//	[tun]      name (required, <= 15 chars), mtu [1400], addresses = ["ip/len"],
//	           routes = ["prefix"]
//	[underlay] local = ["ipv4", "ipv6"] (at most one each; none: all),
//	           encap = "raw"|"udp"|"both" [raw], udp_port [4500],
//	           keepalive = "20s" (or "off"),
//	           packet_socket = true|false [false]: send raw ESP through
//	           AF_PACKET (PACKET_QDISC_BYPASS), bypassing netfilter OUTPUT/
//	           POSTROUTING, the egress qdisc and kernel fragmentation;
//	           needs encap raw or both,
//	           fwmark = 4500 | "0x..." | "off" [4500]: SO_MARK of the
//	           underlay sockets; the TUN routes then go into tables
//	           route_table+L (L: prefix length) behind `not fwmark` and
//	           `suppress_prefixlength` rules (wg-quick's scheme), so the
//	           underlay's own packets never enter the TUN (a 0.0.0.0/0 or
//	           ::/0 route on the TUN works); "off": routes in main,
//	           route_table [4500] (tables route_table..route_table+128)
//	[[peer]]   name, endpoint = "ip" | "ip:port" | "[ipv6]:port",
//	           encap = "raw"|"udp" [underlay's], roaming [false],
//	           roam_interval, keepalive, out_spis = [...], in_spis = [...]
//	[[sa]]     name, spi (integer or "0x..."; >= 256), dir = "in"|"out",
//	           mode = "tunnel"|"transport" [tunnel],
//	           local, remote (our / the peer's outer address; tunnel mode),
//	           algorithm (esp.AlgorithmNames), enc_key / auth_key (hex) or
//	           enc_key_file / auth_key_file (hex text, mode 0600 or stricter,
//	           owned by root or the daemon's user; relative to the config),
//	           esn [false], replay_window [1024] (in only), no_replay (in only),
//	           hop_limit [64], df = "copy"|"set"|"clear" [copy] (see DF),
//	           lifetime = { soft = { bytes, packets, time }, hard = { ... } },
//	           selectors = [ selector, ... ] (at least one)
//	[[policy]] (ordered, first match wins) name, dir, action =
//	           "protect"|"bypass"|"discard", spi (outbound protect: required),
//	           selectors = [ selector, ... ]
//	selector:  local, remote ("any" | address | prefix | "from-to"),
//	           proto (name or number), local_port, remote_port (80, "1-1024",
//	           "any", "opaque"; tcp/udp/sctp), icmp_type, icmp_code,
//	           local_icmp_type/_code, remote_icmp_type/_code (icmp, ipv6-icmp),
//	           mh_type, local_mh_type, remote_mh_type (mh)
//
// DF: df is the outer IPv4 header's Don't Fragment bit of a tunnel-mode SA
// with IPv4 local and remote (RFC 4301 §8.1): "copy" takes it from an IPv4
// inner packet and clears it for an IPv6 one, "set" and "clear" fix it. It
// is what the wire shows on every send path (raw ESP, ESP in UDP with or
// without GSO, underlay.packet_socket). A packet with DF that exceeds the
// path MTU is dropped by the sender, not fragmented, and no ICMP Packet
// Too Big goes back to the inner source: keep the TUN MTU small enough, or
// use "clear". df has no effect in transport mode or with IPv6 local and
// remote (IPv6 has no DF bit); the home agent's and mobile node's IPv6
// SAs sent to an IPv4 care-of address get an IPv4 header with DF set
// (ARCHITECTURE.md DR-8). Over ESP in UDP, "clear" needs CAP_NET_RAW (the
// packets leave header-included); without it they leave with DF set.
// mipsec check says when a df setting has no effect.
//
// "local" is always this gateway's side: the protected source of outbound
// traffic and destination of inbound traffic (RFC 4301 §4.4.1.1), and our
// own outer address in an SA.
package config
