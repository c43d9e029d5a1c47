// Package netlab is the network-namespace laboratory shared by the
// namespace demos (`mipsec demo`, internal/demo/mobility_linux.go, and
// `mipsec demo --gateway`, internal/demo/gateways_linux.go) and the
// end-to-end tests (package e2e). It owns the machinery both need to put
// real `mipsec run` gateways into namespaces and push traffic through them:
//
//   - namespaces: creation (loopback up, no duplicate address detection),
//     deletion, removal of stale ones left by killed runs (PREFIX-PID-*),
//     veth pairs with addresses, and running code inside a namespace on a
//     locked OS thread that is never reused (InNetns);
//   - processes: starting commands so that they die with this process
//     (Pdeathsig, forked from one long-lived locked thread), and gateways
//     (`ip netns exec NS mipsec run -c FILE`) with their logs (SyncBuffer);
//   - the standard two-site topology: documentation addresses, the
//     gateway config fields and the pair of configs with mirrored SPIs
//     and keys;
//   - the mobility topology (Mobility): namespaces cn, ha, rt and mn, the
//     home link, the transit link, an IPv6 access network and an IPv4 one
//     masqueraded by rt (nftables), and handovers between them (MoveTo);
//     the example configs of HA and MN written with a lab's own state
//     directory and control socket (WriteMobilityConfig, SetTOML), and the
//     JSON of `mipsec binding list` and `mipsec mn status` (Ctl,
//     ParseBindings, ParseMNStatus);
//   - traffic: ICMP echo (Pinger), TCP transfers checked by SHA-256 with a
//     plaintext marker in the payload (Transfer, Payload, Paced for a
//     stream of any length), sequence-numbered UDP streams that measure
//     loss and gaps across a handover (UDPStream);
//   - capture: an AF_PACKET socket on an interface that classifies every
//     frame (ESP, ESP in UDP 4500, BU/BA in UDP 4191 or behind a Home
//     Address option or type 2 Routing header, NAT keepalive, ARP/ND/MLD,
//     ICMP errors, anything else), looks for the plaintext marker, keeps
//     chosen frames and writes a pcap (Capture, Classify); frames and
//     packets can be sent again as they were (SendFrame, SendIP).
//
// It is not a test package: the demo in the binary uses it. It imports only
// the standard library and golang.org/x/sys, never testing, and never the
// packages under test. Everything but this file is Linux-only.
package netlab
