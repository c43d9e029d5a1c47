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
// For every outbound SA (per SPI and key) the state directory holds one
// small file, out-<spi>-<key fingerprint>.seq, with a reserved high-water
// mark R: no sequence number above R has ever been
// used, and every number up to R may have been. Numbers are used only once
// they are covered by a reservation that is already on disk:
//
//	start:   R  = Load(spi, key fingerprint)     (0 for a new SA or a new key)
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
// A record is bound to the SPI and to a fingerprint of the keys
// (HMAC-SHA-256 keyed with the SA's keys over a fixed label, truncated to
// 128 bits), never to the keys themselves. A new key under the same SPI
// starts a fresh counter in a file of its own; going back to an older key
// continues above that key's mark. A record that does not parse or fails
// its checksum is an error (ErrCorrupt), never a silent reset to 0.
//
// seqstore is a leaf: it imports only the standard library (deps_test.go).
package seqstore
