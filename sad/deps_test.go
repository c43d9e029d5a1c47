package sad

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: sad imports esp and internal/* only and never logs.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, "github.com/mipsec/mipsec/sad", map[string]string{
		"github.com/mipsec/mipsec/spd":       "spd is above sad (it holds sad handles)",
		"github.com/mipsec/mipsec/mip6":      "the SAD knows nothing about mobility; mip6 queries it through its own interface",
		"github.com/mipsec/mipsec/dataplane": "dataplane wires sad, not the reverse",
		"github.com/mipsec/mipsec/cmd":       "nothing imports the binary",
		"github.com/mipsec/mipsec/bench":     "nothing imports the harness",
		"go.uber.org/zap":                    "sad never logs (STYLE.md §7)",
	})
}
