// Package sad is the Security Association Database (RFC 4301 §4.4.2): SAs
// indexed by SPI for O(1) lock-free inbound lookup (RFC 4301 §4.1: unicast
// lookup is by SPI alone), per-SA state and atomic counters, soft and hard
// lifetimes, and the query API the mobility layer uses
// (draft-laganier-mext-dsmipv6-ipsec-00: which outbound SPI protects a
// selector, which selectors an inbound SPI was created for).
//
// sad imports esp and internal/*; it never imports spd, mip6 or dataplane
// and never logs.
//
// # What is where
//
//   - DB (db.go): Add, Replace, Delete, Close, List, Len; the packet-path
//     lookups Inbound and Outbound. Inbound and outbound SAs live in two
//     SPI indexes (index.go), since every SPI is chosen by its receiver
//     (RFC 4303 §2.1) and an outbound SPI may equal an inbound one.
//   - SA (sa.go): one unidirectional SA around an esp.Outbound or
//     esp.Inbound, with its selectors, lifetimes and counters. Seal and
//     Open (and the batch forms) are the per-packet entry points.
//   - Lifetimes (lifetime.go): soft and hard limits in bytes, packets and
//     time (RFC 4301 §4.4.2.1), reported once each through
//     Options.OnExpire.
//   - Selectors (selector.go): RFC 4301 §4.4.1.1 selector sets, shared
//     with spd.
//   - Query API (query.go): OutboundSPIFor, SelectorsOf, HomeAddressOf,
//     with how mip6 uses them.
//
// # Hot-path contract
//
//   - DB.Inbound, DB.Outbound and DB.Lookup take no lock, never allocate,
//     and cost one hash and (almost always) one probe: an open-addressing
//     table of atomic slots, rebuilt and republished by writers.
//   - SA.Seal, SA.Open, SA.SealBatch and SA.OpenBatch (and their step
//     forms: ReserveSeq and SealBatchSeq; OpenBegin, OpenAccept and
//     OpenEnd, between which the in-flight guard is held) never block, never
//     log and return an esp.Verdict, which they count in the SA's
//     per-verdict counters (Stats). They do not allocate, except that the
//     packet that crosses a lifetime limit starts the event goroutine
//     (at most twice per SA). Per packet they add a few atomic operations
//     to esp's work: an in-flight guard (so that Delete and Replace can
//     wait for packets inside esp), the packet and byte counters, and two
//     threshold loads for the lifetimes.
//   - SA.Open checks every decrypted packet against the SA's selectors
//     (RFC 4301 §5.2 step 4) and wipes what it does not deliver.
//   - A hard lifetime stops the SA at the packet that reaches it; a packet
//     that would pass it is refused (esp.DropExpired). The callback never
//     runs on the packet path.
//   - Everything else (Add, Delete, Replace, List, the query API,
//     SA.Selectors) is control plane: it may lock and allocate.
package sad
