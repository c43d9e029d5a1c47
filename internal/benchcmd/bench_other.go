//go:build !linux

package benchcmd

import (
	"context"
	"fmt"
	"io"
)

// benchE2E needs Linux network namespaces; see bench_linux.go.
func benchE2E(ctx context.Context, f *benchFlags, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "mipsec bench: the side-by-side run needs Linux (network namespaces, TUN); try mipsec bench --inprocess")
	return 1
}
