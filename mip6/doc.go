// Package mip6 is Mobile IPv6 and Dual-Stack MIPv6 (RFC 6275, RFC 5555)
// protected by IPsec per RFC 4877, in the "unmodified IPsec" model of
// draft-laganier-mext-dsmipv6-ipsec-00: the Mobility Header codec, the
// binding cache (HA), the binding update list (MN), BU/BA logic and the
// mobility tunnel layer hooks that rewrite outer headers after IPsec.
//
// Status: placeholder until the mobility issue lands.
//
// mip6 reaches the SAD only through a small interface it declares itself
// (the BU SPI for a home address, the home address of an inbound SPI); it
// never imports esp, sad, spd or dataplane.
package mip6
