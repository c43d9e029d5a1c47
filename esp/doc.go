// Package esp owns the ESP packet transforms of RFC 4303: sealing and
// opening in place, the algorithms (AES-GCM RFC 4106, ChaCha20-Poly1305
// RFC 7634, AES-GMAC RFC 4543, AES-CBC RFC 3602 with HMAC-SHA-256-128
// RFC 4868 or HMAC-SHA1-96 RFC 2404, NULL RFC 2410), transport and tunnel
// mode, sequence numbers with ESN (RFC 4303 §2.2.1) and the anti-replay
// window (RFC 4303 §3.4.3 and App. A, RFC 6479).
//
// esp imports only internal/* and crypto libraries. It never logs and never
// imports sad, spd, mip6 or dataplane.
//
// Hot-path contract: Seal, Open and their batch forms work in place in a
// pkt.Buf (headroom in front for the ESP header, IV and outer header;
// tailroom behind for the trailer and ICV), never copy the payload, never
// allocate, and return a Verdict instead of an error.
package esp
