// Package mip6 is Mobile IPv6 and Dual-Stack MIPv6 (RFC 6275, RFC 5555)
// protected by IPsec per RFC 4877, in the "unmodified IPsec" model of
// draft-laganier-mext-dsmipv6-ipsec-00.
//
// What is here:
//
//   - the Mobility Header codec (mh_*.go: BU, BA, BE, BRR, HoTI/CoTI/HoT/CoT
//     and the RFC 6275/5555/5648 options) and Mobile Prefix Discovery
//     (mpd.go, RFC 6275 §6.7);
//   - the home agent (HomeAgent): BU processing (RFC 6275 §10.3.1 with
//     RFC 4877 §4.2 and RFC 5555 §5.2.1), the binding cache with multiple
//     care-of addresses (RFC 5648), NAT detection keyed by SPI (DR-4) and
//     the home-link side effects through the HomeLink interface;
//   - the mobile node (MobileNode): the binding update list state machine
//     (BULEntry), BU building, BA handling, NAT keepalives and the choice
//     of care-of address (ChooseCoA);
//   - the mobility tunnel layer: pure functions that change only the outer
//     header of a packet ESP has already sealed (RewriteToCoA, SendFromCoA,
//     BAToCoA, StripUDPEncap), and the hooks of HomeAgent and MobileNode
//     that use them (AfterSeal, BeforeLookup, Deliver).
//
// The hooks return an Out (how and where the packet leaves) and take a
// Source (where a packet came from), so mip6 never imports the dataplane;
// the program that runs both (cmd/mipsec) maps them. mip6 reaches the SAD
// only through SAQuerier, which it declares itself (the BU SPI for a home
// address, the home address of an inbound SPI); it never imports esp, sad,
// spd or dataplane, and never changes SA state when a node moves.
package mip6
