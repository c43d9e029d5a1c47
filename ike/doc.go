// Package ike is mipsec's IKEv2 (RFC 7296). So far it holds the message
// codec (message.go, payloads.go, consts.go, errors.go) and the crypto core
// (crypto_*.go: PRFs, key exchange groups, the key schedule, SK payload
// protection); the exchanges and the SA installation through node come
// next.
//
// # Codec
//
// Decode parses one IKE message (RFC 7296 §3.1 header, §3.2 generic
// payload headers) into a Message whose Payloads are typed: SA with its
// proposals, transforms and attributes (§3.3), KE (§3.4), IDi/IDr (§3.5),
// CERT (§3.6), CERTREQ (§3.7), AUTH (§3.8), Nonce (§3.9), Notify (§3.10),
// Delete (§3.11), Vendor ID (§3.12), TSi/TSr (§3.13), SK (§3.14, the
// ciphertext kept opaque), CP (§3.15), EAP (§3.16, opaque) and SKF, the
// encrypted fragment of RFC 7383 §2.5. Message.Append encodes, appending
// to a caller's buffer; DecodePayloads and AppendPayloads do the same for
// the payload chain inside an SK payload once the caller has decrypted it.
//
// Decode takes untrusted bytes. Every length field is checked against the
// bytes that are there before anything is sliced or allocated, counts are
// bounded (MaxPayloads, MaxProposals, MaxTransforms, MaxAttributes,
// MaxTrafficSelectors, MaxCPAttributes, MaxDeleteSPIs), a zero or short
// length is an error rather than a loop, and nothing panics (FuzzDecode).
// Errors are *ParseError, with the offset and what was wrong, wrapping
// ErrMalformed, ErrUnsupportedCritical (an unknown payload with the
// critical bit, §2.5) or ErrInvalidMajorVersion; ParseError.Notify gives
// the notification to answer with. Unknown payloads without the critical
// bit are skipped. Reserved fields and flag bits are ignored on receipt
// and written as zero, so decode(encode(decode(b))) equals decode(b).
//
// Decoded byte fields alias the input: copy what outlives the buffer.
//
// # Imports
//
// The codec uses the standard library only; the package as a whole adds
// x/crypto and, when the exchanges need packet views, internal/header. It
// knows nothing of node, dataplane or mip6 (deps_test.go): node will
// implement the small interface ike declares for SPIs, SAs and policies.
package ike
