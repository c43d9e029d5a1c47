package spd

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: spd imports sad handles and internal/header only.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, "github.com/mipsec/mipsec/spd", map[string]string{
		"github.com/mipsec/mipsec/mip6":      "the SPD knows nothing about mobility",
		"github.com/mipsec/mipsec/dataplane": "dataplane wires spd, not the reverse",
		"github.com/mipsec/mipsec/cmd":       "nothing imports the binary",
		"github.com/mipsec/mipsec/bench":     "nothing imports the harness",
		"go.uber.org/zap":                    "spd never logs (STYLE.md §7)",
	})
	testenv.CheckImports(t, "github.com/mipsec/mipsec/spd", map[string]string{
		"github.com/mipsec/mipsec/esp": "spd names SAs through sad; transforms are not its business",
	})
}
