package benchlab

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// benchlab drives tunnels from the outside (processes, iperf3) and is
// linked into the binary (`mipsec bench`): it never links the dataplane
// it measures, not even through another package (bench links all of it),
// and never the testing package.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, testenv.Module+"/internal/benchlab", map[string]string{
		testenv.Module + "/esp":       "benchlab measures gateways from the outside",
		testenv.Module + "/sad":       "benchlab measures gateways from the outside",
		testenv.Module + "/spd":       "benchlab measures gateways from the outside",
		testenv.Module + "/dataplane": "benchlab measures gateways from the outside",
		testenv.Module + "/mip6":      "benchlab measures gateways from the outside",
		testenv.Module + "/bench":     "bench links the dataplane; the charts live in benchlab",
		testenv.Module + "/cmd":       "nothing imports the binary",
		"testing":                     "benchlab is linked into the binary (mipsec bench): no testing",
	})
}
