// Package seqstore keeps the durable sequence-number reservations that let
// a daemon with manually configured keys restart, or crash, without reusing
// an ESP sequence number, and so without reusing the IV of a counter-mode
// suite (AES-GCM, AES-GMAC, ChaCha20-Poly1305 use the sequence number as
// their nonce: RFC 4106 §3.1, RFC 7634 §2; RFC 8221 §3 warns against them with
// static keys for exactly this reason; RFC 4303 §3.3.3 asks a manually keyed
// sender to keep its counter across reboots).
//
// # Protocol
//
// For every key an outbound SA has used, under whatever SPI, the state
// directory holds one small file, key-<key fingerprint>.seq, with a
// reserved high-water mark R: no sequence number above R has ever been used
// with that key, and every number up to R may have been. Numbers are used only once
// they are covered by a reservation that is already on disk:
//
//	start:   R  = Load(key fingerprint)          (0 for a key never used)
//	         InitialSeq = R                      (first packet carries R+1)
//	         write R' = R + chunk; fsync file; rename; fsync directory
//	         sa.SetSeqReserve(R')                (esp refuses numbers > R')
//	running: when sa.Seq() passes R' - chunk/2, write and fsync R'' = seq +
//	         chunk first, then SetSeqReserve(R'')
//	stop:    after the dataplane has stopped, write the exact last number
//	         (nothing is wasted by a clean restart)
//
// After a crash or power loss the next start continues above R', so above
// every number that was ever sent. What a crash costs is the unused rest of
// the chunk: at most one chunk of the 2^32 space (2^64 with ESN) per crash.
//
// # Chunk size
//
// The chunk trades sequence space against fsyncs. The first reservation after
// a start is Options.InitialChunk (2^20 by default: 4096 crashes of a 32-bit
// SA before its space is gone). Later extensions size the chunk from the
// measured rate, so that half a chunk lasts at least Options.Horizon (2 s by
// default: time for several polls and a slow fsync) and is clamped to
// [MinChunk, MaxChunk] (2^16 .. 2^26). A quiet SA therefore wastes little on a
// crash and a busy one (10 Mpps) fsyncs about once a second. If the disk
// stalls longer than the margin, esp answers DropSeqReserve: the SA stops
// sending rather than risk a reused IV (it fails closed).
//
// # Keys
//
// A record belongs to a key, never to an SPI: with a counter-IV suite the
// nonce is salt || sequence number whatever the SPI (RFC 4106 §3.1, RFC 4543
// §3.1, RFC 7634 §2), so a key moved to a new SPI, by a config change, by
// `sa add` after `sa del`, or by `sa update`, continues above its mark
// instead of starting again at 1. A key may be reserved by one outbound SA
// at a time (Reserver.Prepare refuses a second with ErrKeyInUse). A record
// names the key by a fingerprint (HMAC-SHA-256 keyed with the key itself
// over a fixed label, truncated to 128 bits), never by the key. Version 1
// files (out-<spi>-<fp>.seq, one per SPI) are read and replaced at the
// key's next reservation. A record that does not parse or fails its
// checksum is an error (ErrCorrupt), never a silent reset to 0.
//
// seqstore is a leaf: it imports only the standard library (deps_test.go).
package seqstore
