// Package endpoint is the underlay endpoint: where an ESP packet comes from
// or goes to, and how it is carried there (Encap): ESP over IP (RFC 4303),
// ESP in UDP (RFC 3948, port 4500), or a whole IP packet sent
// header-included for the mobility signaling (a Home Address option,
// RFC 6275 §6.3; a type 2 Routing header, §6.4; the DSMIPv6 IPv4 tunnel in
// UDP 4191, RFC 5555 §4.1).
//
// dataplane (the pipeline), underlay (the Linux sockets) and the test fakes
// share this one type. endpoint is a leaf: it imports only the standard
// library.
package endpoint
