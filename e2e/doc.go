// Package e2e holds mipsec's end-to-end tests: real `mipsec run` daemons in
// network namespaces, joined by a veth, with real traffic through the TUNs.
//
// Every test creates its own namespaces (named mipsec-e2e-PID-N), uses only
// documentation addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32) and removes the namespaces and every process it started
// when it ends, also on failure. The tests need root (they fail instead of
// skipping when CI=true) and the ip command (iproute2). Traffic, ping and
// captures run in the test process itself, on sockets opened inside the
// namespaces (setns on a locked thread), so no other tool is needed.
//
// The package has no non-test code; run it with `go test ./e2e`.
package e2e
