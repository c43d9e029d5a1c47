// Package spd is the Security Policy Database (RFC 4301 §4.4.1): one
// ordered list of policies per direction, each with 1..N selector sets
// (RFC 4301 §4.4.1.2) and an action, DISCARD, BYPASS or PROTECT, and the
// lookup that decides, per packet, which policy applies (RFC 4301 §5).
//
// # What it owns
//
//   - Policy, Action and their validation (one address family per entry,
//     RFC 4301 §4.4.1.1; outbound PROTECT names its SA by SPI).
//   - DB: the ordered lists, their writers (Replace, Insert, Append,
//     Delete), List, per-policy hit counters and drop counters (Stats).
//   - The decision path: LookupFlow on a header.Flow and Lookup on packet
//     bytes (header.ParseFlow, which puts the packet in home-address form,
//     RFC 4877 §4.2: HAO address as source, type 2 RH address as
//     destination).
//
// Selectors and their matching semantics are sad's (sad.Selector.Match),
// since SAD entries carry the same selectors (RFC 4301 §4.4.2); spd only
// indexes them and confirms every candidate with Match.
//
// # Imports
//
// spd imports sad (selectors; *sad.SA handles through its own SALookup
// interface, which *sad.DB satisfies), internal/header and the standard
// library. It never imports esp, mip6 or dataplane, and never logs (no
// zap): deps_test.go checks it.
//
// # Model
//
// The SPD is correlated (entries may overlap) and searched in order every
// time (RFC 4301 §4.4.1 "Decorrelation", §5): first match wins, per
// direction, and there is no cache to invalidate. Outbound, SPD-S and
// SPD-O share one list. Inbound, Lookup serves the traffic that did not
// arrive under ESP addressed to us (RFC 4301 §5.2 step 2; ESP goes to the
// SAD by SPI): BYPASS and DISCARD apply (SPD-I), and a PROTECT policy that
// matches cleartext means the packet should have been protected, so it is
// discarded and counted (ReasonUnprotected). No match: DISCARD (RFC 4301
// §5 MUST), Index -1, counted in Stats.NoMatch. Every list should end in a
// catch-all DISCARD (RFC 4301 §4.4.1). Mobile IPv6 uses one host-wide SPD
// keyed on the home address (DR-2; ARCHITECTURE.md, the unmodified-IPsec
// rules), no per-interface entries; rfc4877_test.go holds the RFC 4877 §6
// MN and HA tables.
//
// # Hot-path contract
//
// LookupFlow and Lookup are lock-free, safe for concurrent use, never
// allocate, never block and never log; they return a Decision by value.
// They load one immutable snapshot from an atomic.Pointer (STYLE.md §5),
// so a lookup sees either the policy lists before a write or after it,
// never a mix. Writers are serialised by a mutex, validate, build a whole
// new snapshot, index included, and publish it with one atomic store: a
// write costs a rebuild of that direction's table (about 0.1-0.2 s of CPU
// for 100000 policies). The outbound SA of a PROTECT decision is resolved
// per lookup through SALookup.Outbound, so SAs added or replaced after
// the policy are picked up without an SPD write; nil means the caller
// drops (ReasonNoSA).
//
// Counters: each selector set carries its policy's hit counter inline,
// next to what the lookup reads anyway, so counting costs no extra cache
// miss; a write carries the counts into the new snapshot. A
// lookup that races with a write can lose its increment.
//
// # The index
//
// A linear scan would cost O(policies) per packet; the index makes a
// lookup cost about O(log n) plus the candidates that really overlap.
// Selector sets get ids in policy order (set id order = policy order), so
// "first matching policy" is "lowest matching set id". Sets are placed by
// address ranges (sad.AddrRange, inclusive, IPv4 and IPv6 apart):
//
//	remote range not ANY  ->  remote levels (up to 3)
//	    too wide for the budget ─┐
//	remote ANY, local not ANY ──>┴─> local levels (up to 3)
//	    too wide, or ANY there ──┐
//	both ANY ───────────────────>┴─> rest, split by protocol (+ ProtoAny)
//
// A level is, per family, a sorted array of elementary intervals: every
// range start and every range end+1 cuts the address space, and each
// interval lists, in ascending set id, the sets whose range covers it:
//
//	ranges:  A=[10.0.0.0/24]   B=[10.0.0.5]   C=[10.0.0.0-10.0.1.255]
//	cuts:    10.0.0.0   10.0.0.5   10.0.0.6   10.0.1.0   10.0.2.0
//	          |  A,C     |  A,B,C   |  A,C     |  C       |  (none) ...
//	lookup 10.0.0.7: interval 10.0.0.6 -> candidates A, C
//
// An interval with one candidate (a peer's host or prefix: the common
// case) keeps it inline, next to the interval's start. The interval
// holding an address is found with a jump table in front of a binary
// search: the 2^k slots index the k bits that follow the prefix all cuts
// share (k ~ log2 of the number of cuts, at most 18), each slot naming the
// few intervals that start in it:
//
//	key:  [ shared prefix | k slot bits | rest ]
//	jump[slot] .. jump[slot+1]  ->  binary search over ~1 interval
//
// A set covering many intervals would be copied into each of them, so
// each level has a budget (4 entries per set, plus a constant): the sets
// covering the most intervals move to the next level, built from fewer
// cuts, where they cover fewer intervals; what no level takes goes to
// rest. Memory stays linear in the number of sets.
//
// A lookup takes the candidates of the flow's remote (then local) address
// in each level, plus rest's lists for the flow's protocol and for
// ProtoAny. Each list is ascending, so each is scanned only up to the best
// set found so far, and a candidate counts only if sad.Selector.Match
// agrees. The index only rules sets out: a set in a level can only match
// an address its range contains, and a set in rest only a packet of its
// protocol (or any, for ProtoAny). Tables of at most 2 sets are scanned
// linearly. Pathological sets (everything ANY in both addresses and the
// same protocol) fall back to an ordered scan of rest: correct, O(n).
//
// For a VPN concentrator with 100000 peers (/32, /128 hosts and prefixes,
// IKE BYPASS in front and a catch-all DISCARD), a lookup touches about
// five cache lines; BenchmarkLookupRatio compares it with a 10-policy SPD
// (target <= 3x). The snapshot of such an SPD is about 27 MB, half of it
// the sad.Selector copies.
//
// TODO: a write rebuilds the whole direction (O(n log n)); incremental
// updates would make single inserts into large SPDs cheaper.
package spd
