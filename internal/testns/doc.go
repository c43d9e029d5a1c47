// Package testns gives tests their own Linux network namespaces, entered
// per OS thread: New makes one named "mipsec-t-<pid>-<n>" with lo up and
// deletes it in t.Cleanup, NS.Do runs a function on a thread inside it (so
// the sockets and TUN devices it opens live there), and NewVethPair joins
// two by a veth with documentation addresses only (RFC 5737, RFC 3849), so
// nothing is ever routed to the host. Without root, tests skip (and fail
// in CI: internal/testenv).
//
// Only tests import it; the tests of dataplane and underlay share it.
package testns
