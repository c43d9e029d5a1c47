package esp

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: esp sits below sad, spd, mip6 and dataplane and never logs.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, "github.com/mipsec/mipsec/esp", map[string]string{
		"github.com/mipsec/mipsec/sad":       "sad is above esp",
		"github.com/mipsec/mipsec/spd":       "spd is above esp",
		"github.com/mipsec/mipsec/mip6":      "esp knows nothing about mobility (draft-laganier: unmodified IPsec)",
		"github.com/mipsec/mipsec/dataplane": "dataplane wires esp, not the reverse",
		"github.com/mipsec/mipsec/cmd":       "nothing imports the binary",
		"github.com/mipsec/mipsec/bench":     "nothing imports the harness",
		"go.uber.org/zap":                    "esp never logs (STYLE.md §7)",
	})
}
