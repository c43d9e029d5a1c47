// Package esp owns the ESP packet transforms of RFC 4303: sealing and
// opening in place, the algorithms (AES-GCM RFC 4106 with 128, 192 or
// 256-bit keys, ChaCha20-Poly1305 RFC 7634, AES-GMAC RFC 4543, AES-CBC
// RFC 3602 with HMAC-SHA-256-128 RFC 4868 or HMAC-SHA1-96 RFC 2404, NULL
// RFC 2410), transport and tunnel mode, sequence numbers with ESN (RFC
// 4303 §2.2.1) and the anti-replay window (RFC 4303 §3.4.3 and App. A,
// RFC 6479).
//
// An SA is two objects built from the same Params: an Outbound (NewOutbound,
// Seal, SealBatch, SealDummy) and an Inbound (NewInbound, Open, OpenBatch).
// Both are safe for concurrent use by many goroutines. A caller that seals
// or opens batches concurrently and must keep the wire order takes the
// order-sensitive step itself, in order: Outbound.ReserveSeq before sealing
// with SealBatchSeq, and Inbound.OpenAccept (the replay window update)
// between OpenBegin and OpenEnd.
//
// esp imports only internal/* and crypto libraries. It never logs and never
// imports sad, spd, mip6 or dataplane.
//
// Hot-path contract: Seal, Open and their batch forms work in place in a
// pkt.Buf (headroom in front for the ESP header, IV and outer header;
// tailroom behind for the trailer and ICV), never copy the payload (only
// IP header bytes move in transport mode), never allocate, and return a
// Verdict instead of an error. Constructors validate Params and return
// errors wrapping ErrInvalidParams.
//
// Design notes:
//   - IVs: the counter-mode suites (GCM, GMAC, ChaCha20-Poly1305) use the
//     64-bit sequence number, which never repeats because Seal refuses to
//     wrap (RFC 4303 §3.3.3); AES-CBC uses AES under a random per-SA key
//     K_iv applied to the sequence number (see cryptoState.makeIV).
//   - Per-call state that Go's crypto interfaces would otherwise force onto
//     the heap (nonce, ESN AAD, HMAC output) and the stateful HMAC and CBC
//     objects come from a per-SA sync.Pool (suite.go).
//   - Key hygiene: no copy of the raw keys is kept; Destroy zeroes the salt
//     and drops the cipher state. Go's expanded key schedules cannot be
//     wiped.
package esp
