// Package header has typed views over packet bytes: IPv4, IPv6 and its
// extension headers (Hop-by-Hop, Routing incl. the type 2 Routing header,
// Destination Options incl. the Home Address option), UDP, ESP and the
// Mobility Header, plus the selector fields of a packet (Flow).
//
// A view is a named byte slice (gVisor style): `type IPv6 []byte`. Bounds are
// checked once by IsValid; accessors trust them afterwards and say so. Views
// never copy and never allocate.
//
// Per packet: ParseFlow (RFC 4301 §4.4.1.1 selectors in the RFC 4877 §4.2
// home-address form), InnerLen, the views' accessors, IPv4.EncodePartial
// and the checksum helpers never allocate. The TLV iterator OptIter and the
// Fields/Encode builders are for the control plane, tests and SA templates.
//
// header is a leaf: it imports only the standard library and never logs.
package header
