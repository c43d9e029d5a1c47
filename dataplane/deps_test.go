package dataplane

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: dataplane is imported by cmd and bench, never the reverse.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, "github.com/mipsec/mipsec/dataplane", map[string]string{
		"github.com/mipsec/mipsec/cmd":   "nothing imports the binary",
		"github.com/mipsec/mipsec/bench": "nothing imports the harness",
	})
}
