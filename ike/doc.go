// Package ike is mipsec's IKEv2 daemon (RFC 7296): the message codec
// (message.go, payloads.go, consts.go, errors.go), the crypto core
// (crypto_*.go: PRFs, key exchange groups, the key schedule, SK payload
// protection), proposals, identities, traffic selectors, NAT detection and
// authentication by shared key or certificate (proposal.go, identity.go,
// ts.go, natd.go, auth.go, auth_pubkey.go), and the Daemon (daemon.go, sa.go, exchange_*.go, child.go,
// cookie.go, list.go), which runs the exchanges and installs Child SAs
// through the Kernel interface that node implements (kernel.go), sending
// through its Transport (config.go).
//
// # Exchanges
//
// One goroutine owns every SA; Receive queues datagrams (bounded, a full
// queue is a counted drop) and the methods are calls into that loop, which
// also runs the timers. What is implemented:
//
//   - IKE_SA_INIT (§1.2) both ways: the initiator's KE is the first group
//     of its first proposal, retried once per group on INVALID_KE_PAYLOAD
//     and with the COOKIE first on a cookie (§2.6); 32-byte nonces; NAT
//     detection (SPIr zero in the request) and, with a NAT or
//     Connection.Encap (a faked source hash), the float to port 4500
//     (§2.23); IKEV2_FRAGMENTATION_SUPPORTED (with Connection.Fragmentation)
//     and SIGNATURE_HASH_ALGORITHMS announced. The responder keeps no state
//     until the proposal, the KE group, a cookie (when more than
//     CookieThreshold SAs are half-open; the secret rotates), the
//     MaxHalfOpen bound and the per-source rate (Config.InitRate per
//     second, up to InitBurst; 20 and 40) all pass.
//   - IKE_AUTH with a shared key or certificates (§2.15; either way
//     each direction) and the first Child SA. Certificates: CERT payloads
//     with the configured chain, CERTREQ with the CAs' SPKI hashes (§3.6,
//     §3.7), the subject DN as the default identity; RFC 7427 signatures
//     (method 14: RSA PKCS#1 v1.5, ECDSA, Ed25519 per RFC 8420; RSASSA-PSS
//     accepted) where the peer announced SIGNATURE_HASH_ALGORITHMS, else
//     RSA (1, SHA-1) or
//     ECDSA (9/10/11, RFC 4754); the peer's chain verified to
//     RemoteAuth.CAs at the daemon's clock, its ID in the certificate
//     (subject or subjectAltName), SHA-1 refused in method 14. SAi2 with
//     the SPI from Kernel.AllocSPI, narrowing by the responder (§2.9,
//     "dynamic" as the IKE address), USE_TRANSPORT_MODE, INITIAL_CONTACT
//     both ways (§2.4), KEYMAT in §2.17's order, inbound SA before the
//     message that lets the peer use it and outbound after (§2.8). A child
//     refusal (TS_UNACCEPTABLE, NO_PROPOSAL_CHOSEN) leaves the IKE SA up.
//     A failed AUTH installs nothing and keeps nothing; an initiator that
//     refuses the responder's tells it with AUTHENTICATION_FAILED in one
//     unretransmitted INFORMATIONAL, its IKE SA deleting until the answer
//     or one Retransmit (§2.21.2).
//   - Message IDs with window 1 (§2.3): requests queue per IKE SA and are
//     retransmitted byte-identical with exponential backoff until
//     Config.Retransmits (§2.1), then the IKE SA is dead; the last response
//     is cached and resent for a retransmitted request; everything else
//     outside the window is dropped. Nothing in an SK payload is used
//     before SKCipher.Open has checked it, and the IKE SA follows a new
//     address only on such a checked request, behind a NAT (§2.23).
//   - IKE fragmentation (RFC 7383) where both sides announced it:
//     received SKF fragments are reassembled once each is authenticated
//     (bounded in count and size); a protected message of ours too long for
//     Config.FragmentSize (an IP datagram, DefaultFragmentSize 1280, less
//     the IP and UDP headers and the non-ESP marker) goes out as SKF
//     fragments each sealed on its own (fragment_send.go), retransmitted
//     and cached as the whole set (§2.6.1). No PMTU probing (§2.5.2).
//   - INFORMATIONAL (§1.4): Deletes of children and of the IKE SA both ways,
//     liveness checks after Connection.DPDDelay of silence (§2.4), with
//     StartStart connections initiated again with backoff.
//   - CREATE_CHILD_SA (§1.3, exchange_create.go) both ways: further
//     children (Initiate; StartStart children beyond the first after
//     IKE_AUTH), with PFS where the first ESP proposal has a key exchange
//     (KEi retried once per group on INVALID_KE_PAYLOAD) and KEYMAT from
//     this exchange's nonces (§2.17). Child rekeys (N(REKEY_SA), §2.8) by
//     Rekey or by Kernel's soft lifetime event (Daemon.Expired; the
//     kernel's soft lifetime is the only rekey timer of a child), make
//     before break: the responder installs its new inbound SA before it
//     answers and switches its outbound (AddOutbound with Replaces) once
//     the initiator's Delete of the old child, or any later request,
//     shows it has the answer; the initiator installs inbound and
//     switches outbound on the answer, then deletes the old child; an old
//     outbound SA goes at the Delete, an old inbound one
//     Config.RekeyGrace later. IKE SA rekeys (§2.18) by Rekey(conn, "")
//     or at Connection.RekeyTime less up to 10 % jitter: SKEYSEED from
//     the old SK_d, message IDs from 0, the rekey's initiator the new
//     SA's original initiator, the children moved, the old SA deleted by
//     the rekey's initiator. Collisions of two rekeys of one SA: the
//     exchange with the lowest nonce loses and its initiator deletes what
//     it made (§2.8.1, §2.8.2); a child exchange against an IKE SA rekey
//     is answered TEMPORARY_FAILURE and retried after a random delay
//     (§2.25); a rekey of a child we do not have is CHILD_SA_NOT_FOUND
//     (and ours, so refused, is created anew).
//
// Not yet: revocation (CRL, OCSP), hash-and-URL certificates, raw public
// keys, MOBIKE, the configuration payload and EAP. NAT-keepalives (RFC
// 3948 §2.3) go out where the Transport is a KeepaliveSender.
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
