// Package e2e holds mipsec's end-to-end tests: real `mipsec run` daemons in
// network namespaces, joined by a veth, with real traffic through the TUNs.
//
//   - TestPing: ping over IPv4 and IPv6 between the sites, both ways, and
//     `mipsec stats` over the control socket.
//   - TestTransfer: 8 MiB over TCP, checked by SHA-256, in raw ESP and ESP
//     in UDP, over IPv4 and IPv6 outer addresses, with a capture on the veth
//     that holds only ESP and never the plaintext.
//   - TestRestart: SIGTERM and SIGKILL restarts; the sequence numbers on
//     the wire continue above every earlier one and above the persisted
//     reservation.
//   - TestNATRebinding: A behind an nftables masquerade whose mapping
//     changes mid-transfer; with roaming the transfer survives, without it
//     it stalls.
//   - TestNATKeepalive: RFC 3948 keepalives on an idle UDP tunnel.
//   - TestScapyInterop: scapy's ESP (testdata/scapy_peer.py) as the peer
//     of a running gateway, both directions, AES-GCM and AES-CBC+HMAC.
//   - TestExampleConfigs: testdata/gateway-a.toml and gateway-b.toml as
//     shipped; TestBadConfigs: `mipsec check` errors name the field.
//   - TestWireshark: `mipsec capture --outer` decrypts in tshark with the
//     lines of `mipsec sa list --wireshark` (GCM and CBC+HMAC, raw and UDP,
//     IPv4 and IPv6 outer).
//   - TestMobility*: a home agent and a mobile node (testdata/ha.toml,
//     mn.toml) with a correspondent, a NAT router and two access networks
//     (internal/netlab Mobility): registration, a TCP stream checked across
//     IPv6 -> IPv4/NAT -> IPv6 moves, NAT detected only behind the NAT, UDP
//     only where needed, data on the old CoA until the BA, de-registration,
//     expiry, and the hostile cases (foreign home address, replayed BU,
//     stale sequence number -> 135, unauthenticated packets from a new
//     address, garbage on UDP 4191); tshark decodes the BU/BA.
//   - TestBenchSmoke: a short `mipsec bench` run against wireguard-go.
//   - TestIKE* (ike_test.go): the IKEv2 daemon in `mipsec run`
//     (testdata/ike-gateway.toml.tmpl, one PSK [[connection]]) against
//     strongSwan's charon (internal/charontest, ESP in UDP through
//     kernel-libipsec): TestIKECharonResponder (mipsec initiates; each of three
//     IKE and four ESP proposals once, IPv4 and IPv6 outer; both list the same
//     SPIs and algorithms, ping both ways, 4 MiB TCP), TestIKECharonInitiator
//     (IPv4 and IPv6 outer), TestIKEDelete (terminate from either side and
//     mipsec's SIGTERM: the peer sees the Delete, SAs and policies go, traffic
//     stops), TestIKEDPD (charon killed: liveness checks time out, the SA goes;
//     charon restarted: it comes back), TestIKEWrongPSK and
//     TestIKEWrongIdentity (no SA, auth_failed counted, one log line),
//     TestIKEWireshark (tshark decrypts IKE_AUTH with `mipsec ike list
//     --wireshark`), TestIKECharonCases (`mipsec ike initiate`, a child deleted
//     alone, INITIAL_CONTACT after a crash, charon's DPD, narrowing,
//     INVALID_KE_PAYLOAD either way, TS_UNACCEPTABLE, NO_PROPOSAL_CHOSEN),
//     TestIKECharonSelectors (two subnets, a TCP port), TestIKECharonLoss (lost
//     IKE_AUTH responses either way, nftables), TestIKECharonFragments
//     (charon's fragmented IKE_AUTH), TestIKENAT (a real NAT, either side
//     behind it, a mapping changed in the middle of TCP transfers either way,
//     followed on charon's next IKE message or at once on its authenticated
//     ESP), TestIKETrap (start_action trap: the first packet brings the SA,
//     a deleted child comes back on the next), TestIKEHostile (replayed
//     IKE_SA_INITs past cookie_threshold, garbage, a forged message on the SA;
//     then charon's retry with the COOKIE), TestIKECharonRekey and
//     TestIKEMipsecRekey and TestIKECharonRekeyTCP (child and IKE SA rekeys
//     by either side, during a TCP transfer: no replay drop on either side,
//     no stall of a second), TestIKERekeyTimers (rekeys by lifetime, against
//     charon and colliding between two mipsec daemons, no ping lost),
//     TestIKEMipsecPair (testdata/ike-gateway-a.toml and -b.toml as shipped,
//     mipsec to mipsec) and TestIKEMipsecRecovery (mipsec to mipsec over
//     IPv6, the responder crashes: DPD, a new SA).
//   - TestIKEPair* (ike_pair_test.go, ike_pair_live_test.go): the charon
//     scenarios between two mipsec daemons: the proposal matrix with either
//     side initiating over IPv4 and IPv6, ESN agreed and refused, deletes
//     from either side, a wrong PSK, RSA and ECDSA certificates and refused
//     identities, DPD with the peer killed and back, a NAT with the mapping
//     changed mid-transfer, and rekeys by each side during one TCP stream.
//   - TestIKECert* (ike_cert_test.go): certificates against charon, either
//     side initiating, RSA-2048 and ECDSA P-256, FQDN and DN identities
//     (ping, TCP by SHA-256); a certificate for another identity and one
//     from an untrusted CA are refused with nothing installed;
//     TestIKECertExamplePair runs testdata/ike-gateway-{a,b}-cert.toml.
//
// Every test creates its own namespaces (named mipsec-e2e-PID-N), uses only
// documentation addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32), routes nothing to the host's uplink, and removes the
// namespaces and every process it started when it ends, also on failure;
// the daemons die with the test binary (Pdeathsig) if it is killed. The
// tests need root (they fail instead of skipping when CI=true), ip
// (iproute2), nft (nftables), tshark, /usr/bin/python3 with scapy
// (python3-scapy) and, for the IKE tests with charon, strongSwan
// (charontest.Need). Ping, TCP and the captures run in the test process
// on sockets opened inside the namespaces (setns on a locked thread).
// That machinery (namespaces, veths, gateways, ping, TCP, the capture and
// its frame classification) is internal/netlab, shared with `mipsec demo`.
//
// The package has no non-test code; run it with `go test ./e2e`.
package e2e
