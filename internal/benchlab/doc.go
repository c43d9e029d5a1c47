// Package benchlab is the side-by-side throughput benchmark behind
// `mipsec bench` (part 1 of the benchmark issue): two network namespaces
// joined by a veth (MTU 1500), and iperf3 and ping through each system in
// turn, interleaved over several rounds:
//
//   - mipsec with ESP in UDP (aes128gcm16), with raw ESP (aes128gcm16) and
//     with ESP in UDP (chacha20poly1305), each a pair of `mipsec run`
//     daemons; the raw ESP gateways (mipsec-raw) run with
//     [underlay] packet_socket = true (raw ESP sent through AF_PACKET),
//     and the optional mipsec-raw-kernel, run only when named, is the same
//     tunnel through the kernel's raw IP socket (packet_socket = false);
//   - wireguard-go (built from golang.zx2c4.com/wireguard) configured with
//     `wg` from wireguard-tools;
//   - strongSwan's userspace IPsec (strongswan-libipsec): a charon with
//     kernel-libipsec in each namespace (private /run, as
//     internal/charontest runs it), PSK, IKE
//     aes128gcm16-prfsha256-curve25519, ESP aes128gcm16 in UDP 4500
//     (libipsec has no raw ESP), driven with swanctl; the inner addresses
//     are a /32 on lo that charon routes into ipsec0 (table 220), whose MTU
//     stays libipsec's 1400 (it reads packets into buffers of that size);
//     after the tests the CHILD_SAs' byte counters must cover what iperf3
//     moved, or the round's figures are discarded;
//   - the plain veth, the ceiling.
//
// The figures per system are TCP with 1 and with 4 streams, UDP goodput and
// loss for 1400-byte packets, the idle ping round-trip time, and the CPU
// seconds the tunnel processes of both ends spend per GB received in the
// TCP tests (from utime+stime in /proc/PID/stat). Each is summarised over the rounds as
// median, min and max, with the ratio of the median to wireguard-go's, and
// written as a table, JSON and SVG bar charts. chart.go holds the
// dependency-free SVG writers (WriteBarChart, WriteLineChart, CheckSVG) that
// package bench uses too: benchlab never imports bench, which links the
// dataplane.
//
// The parsers (iperf3 -J output, /proc/PID/stat lines), the statistics and
// the report writers are portable; running the benchmark (Run) needs Linux,
// root, ip (iproute2), iperf3, for wireguard-go wg, and for
// strongswan-libipsec Debian's strongswan-charon, strongswan-swanctl and
// libcharon-extra-plugins (StrongswanMissing). The namespace
// machinery is internal/netlab's. Everything Run creates (namespaces,
// daemons, iperf3, temporary files) is removed when it returns, also on
// error and when its context is cancelled (Ctrl-C); the processes die with
// this one if it is killed.
package benchlab
