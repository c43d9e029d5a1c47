// Package sad is the Security Association Database (RFC 4301 §4.4.2): SAs
// indexed by SPI for O(1) lock-free inbound lookup (RFC 4301 §4.1: unicast
// lookup is by SPI alone), per-SA state and atomic counters, soft and hard
// lifetimes, and the query API the mobility layer uses
// (draft-laganier-mext-dsmipv6-ipsec-00: which outbound SPI protects a
// selector, which selectors an inbound SPI was created for).
//
// sad imports esp and internal/*; it never imports spd, mip6 or dataplane
// and never logs.
package sad
