// Package config reads mipsec's configuration file (TOML) into a
// node.Config: parsing, field-by-field validation with every error
// collected (file:line and the key path, e.g. "sa[2].enc_key"), and the
// sad.Config / spd.Policy / dataplane.PeerConfig values built from it. The
// same grammar for SAs, policies and selectors serves the control socket
// (ParseSnippet, ParseAddrRange, ParsePorts and their Format twins).
// testdata/gateway-a.toml is the annotated example (testdata/ike-gateway-a.toml
// for IKEv2 connections); `mipsec check -c FILE` prints what this package finds.
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
//	[ike]      (the IKEv2 daemon, RFC 7296; ike.go) cookie_threshold [32]
//	           (half-open IKE SAs before COOKIEs, §2.6; <= max_half_open),
//	           max_half_open [4096], retransmit ["1s"] (doubled each time,
//	           at most "1m"), retransmits [5] (1..20), fragment_size [1280]
//	           (576..65535: the IP datagram an IKE message or fragment
//	           fills, RFC 7383 §2.5.1), init_rate [20] / init_burst [40]
//	           (IKE_SA_INIT requests per second / at once that one source
//	           address may make half-open SAs with; 1..1048576)
//	[[connection]] (at most 256; role gateway only: the home agent and
//	           mobile node refuse them, issue 13) name ([A-Za-z0-9._-],
//	           1..32, unique), local_addrs = ["ip"] (at most one per
//	           family; none: any), remote_addrs = ["ip" | "prefix" |
//	           "%any"] [%any] (the first is where an initiator sends; a
//	           prefix without host bits), local_port, remote_port [500],
//	           proposals [["default"]] (ike.ParseIKEProposals),
//	           allow_weak [false] (weak algorithms; then a warning),
//	           encap [false] (force ESP in UDP), fragmentation [true]
//	           (RFC 7383), mobike [true] (RFC 4555: the peer, as
//	           initiator, may move the SAs with UPDATE_SA_ADDRESSES),
//	           rekey_time ["4h"; "0": never], dpd_delay ["0":
//	           off], keyingtries [0: forever]
//	  .local   auth = "psk"|"pubkey" (required), id (ike.ParseIdentity;
//	           none: the local address), psk: psk_file; pubkey: cert (PEM
//	           chain, leaf first), key (PEM PKCS#8, PKCS#1 or SEC1, not
//	           encrypted; RSA >= 2048 bits, ECDSA or Ed25519; the leaf's key)
//	  .remote  auth [local's], id (none or "%any": any proven identity),
//	           psk: psk_file [local's]; pubkey: cacerts = ["ca.pem", ...]
//	  [[connection.child]] (1..64) name (as a connection's, unique in it),
//	           local_ts [["dynamic"]], remote_ts (required; ike.ParseTS:
//	           "prefix[proto/port]" or "dynamic"), esp_proposals
//	           [["default"]], mode = "tunnel"|"transport" [tunnel],
//	           start_action = "none"|"trap"|"start" [none] (trap and
//	           start need remote_addrs' first entry to be an address),
//	           rekey_time ["1h", > 0], life_time [rekey_time + 10 %,
//	           > rekey_time], rekey_bytes [0: none], replay_window [0:
//	           esp's default; else 32..8192]
//
// Secret files (psk_file, key; relative to the config file) are regular
// files of mode 0600 or stricter owned by root or the daemon's user. A PSK
// file holds the secret as written without trailing line ends; "0x" then
// hex or "0s" then base64 (swanctl's notation) are decoded. An empty PSK
// is an error, one shorter than 20 bytes a warning (an eavesdropper tests
// guesses offline, RFC 7296 §2.15). No message ever shows a secret. The
// two sides may use different methods (psk one way, pubkey the other);
// one side takes only its method's keys. Warnings (File.Warnings, printed
// by check, logged by run) also name weak proposals, local_addrs that
// differ from underlay.local, transport-mode children whose selectors are
// more than hosts, and, with underlay.fwmark = "off", a tunnel child whose
// remote_ts cover the peer's address (its IKE and ESP would loop into
// the TUN). Manual [[sa]] and [[policy]] tables work beside connections.
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
