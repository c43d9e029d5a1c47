// Package netlab is the network-namespace laboratory shared by the
// namespace demo (`mipsec demo`, cmd/mipsec/netdemo_linux.go) and the
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
//   - traffic: ICMP echo (Pinger), TCP transfers checked by SHA-256 with a
//     plaintext marker in the payload (Transfer, Payload);
//   - capture: an AF_PACKET socket on an interface that classifies every
//     frame (ESP, ESP in UDP 4500, NAT keepalive, ARP/ND/MLD, ICMP errors,
//     anything else) and looks for the plaintext marker (Capture, Classify).
//
// It is not a test package: the demo in the binary uses it. It imports only
// the standard library and golang.org/x/sys, never testing, and never the
// packages under test. Everything but this file is Linux-only.
package netlab
