package control

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: control serves a node over a socket; it is below the
// binary and beside the metrics, never above them.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, testenv.Module+"/control", map[string]string{
		testenv.Module + "/cmd":             "nothing imports the binary",
		testenv.Module + "/bench":           "the benchmarks are a caller",
		testenv.Module + "/internal/netlab": "namespaces are for tests and demos",
		"github.com/prometheus":             "metrics are served beside control, by cmd/mipsec",
	})
}
