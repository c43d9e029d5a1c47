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
//   - the mobility tunnel layer: the hooks of HomeAgent and MobileNode
//     (AfterSeal, BeforeLookup, Deliver). Data packets keep the header the
//     SA built: AfterSeal only chooses the endpoint (the CoA, raw or in
//     UDP; DR-1, DR-3), the dataplane cuts in front of ESP and the
//     underlay builds the outer header (RFC 4303 §3.1.2). Signaling is
//     built whole after sealing by pure functions that add only outer
//     headers (SendFromCoA: Home Address option or IPv4/UDP 4191; BAToCoA:
//     type 2 Routing header; BAToV4: IPv4/UDP 4191; RFC 6275 §6.3, §6.4,
//     RFC 5555 §4.1) and leaves header-included (EncapIP); StripUDPEncap
//     takes UDP 4500/4191 apart.
//
// The hooks speak package endpoint (a leaf), so mip6 never imports the
// dataplane; node wraps them into dataplane.Hooks. mip6 reaches the SAD
// only through SAQuerier, which it declares itself (the BU SPI for a home
// address, the home address of an inbound SPI); it never imports esp, sad,
// spd or dataplane, and never changes SA state when a node moves.
package mip6
