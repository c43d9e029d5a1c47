//go:build linux

package charontest

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// TestDeps: the harness stands beside what it tests. The IKE interop
// tests of ike and node import it, so it must never import them.
func TestDeps(t *testing.T) {
	why := "internal/charontest is imported by the tests of the packages it checks"
	banned := map[string]string{}
	for _, p := range []string{"ike", "node", "dataplane", "underlay", "esp", "sad", "spd", "mip6", "config", "control", "cmd", "bench", "e2e"} {
		banned[testenv.Module+"/"+p] = why
	}
	testenv.CheckDeps(t, testenv.Module+"/internal/charontest", banned)
}
