package mip6

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: mip6 stays outside the ESP engine (draft-laganier).
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, "github.com/mipsec/mipsec/mip6", map[string]string{
		"github.com/mipsec/mipsec/esp":       "mobility never touches ESP transforms",
		"github.com/mipsec/mipsec/sad":       "mip6 declares its own SAQuerier interface; *sad.DB satisfies it",
		"github.com/mipsec/mipsec/spd":       "mobility never edits policies",
		"github.com/mipsec/mipsec/dataplane": "dataplane implements mip6's Injector, not the reverse",
		"github.com/mipsec/mipsec/cmd":       "nothing imports the binary",
		"github.com/mipsec/mipsec/bench":     "nothing imports the harness",
	})
}
