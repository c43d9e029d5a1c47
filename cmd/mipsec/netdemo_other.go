//go:build !linux

package main

import (
	"fmt"
	"io"
)

// netdemo needs Linux network namespaces; see netdemo_linux.go.
func netdemo(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "mipsec demo: the namespace demo needs Linux (network namespaces, TUN); try mipsec demo --engine")
	return 1
}
