package node_test

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: node is the product as a library. It takes its
// configuration as Go values and a logger; files, sockets of the control
// protocol, metrics, packet dissection and the demos are its callers'.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, testenv.Module+"/node", map[string]string{
		testenv.Module + "/cmd":               "nothing imports the binary",
		testenv.Module + "/bench":             "the benchmarks are a caller",
		testenv.Module + "/config":            "config builds a node.Config; node never reads files",
		testenv.Module + "/control":           "the control protocol is served over a node, not inside it",
		testenv.Module + "/internal/netlab":   "namespaces and captures are for tests and demos",
		testenv.Module + "/internal/benchlab": "the side-by-side benchmark is a caller",
		"github.com/pelletier/go-toml":        "no TOML in node",
		"github.com/prometheus":               "metrics are exported by the caller (node.Stats, MobilityMetrics)",
		"github.com/gopacket":                 "no packet dissection in node",
		"github.com/google/gopacket":          "no packet dissection in node",
	})
}
