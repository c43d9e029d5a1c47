// Package benchcmd is `mipsec bench`: its flags, the in-process benchmarks
// (package bench) and the side-by-side run against wireguard-go in network
// namespaces (internal/benchlab). Nothing on the `mipsec run` path imports
// it (cmd/mipsec's deps test).
package benchcmd
