// Package demo holds the demos `mipsec demo` runs: the ESP engine in
// process (Engine), and in network namespaces (Namespaces) two security
// gateways, or a home agent, a NAT router and a mobile node that moves
// while a TCP stream to its home address keeps going. They start the real
// binary and talk to it through its control socket; nothing on the `mipsec
// run` path imports this package (cmd/mipsec's deps test).
package demo

import (
	"errors"
	"flag"
)

// Env is what the namespace demos take from the binary.
type Env struct {
	// ExampleConfig returns the embedded example configuration of a role
	// ("ha" or "mn").
	ExampleConfig func(role string) ([]byte, error)
}

// parseExit is the exit code of a flag parse error: 0 for -h.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
