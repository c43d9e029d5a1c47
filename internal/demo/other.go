//go:build !linux

package demo

import (
	"fmt"
	"io"
)

// Namespaces needs Linux network namespaces; see gateways_linux.go.
func Namespaces(args []string, stdout, stderr io.Writer, env Env) int {
	fmt.Fprintln(stderr, "mipsec demo: the namespace demo needs Linux (network namespaces, TUN); try mipsec demo --engine")
	return 1
}
