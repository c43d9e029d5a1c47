package config

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: config turns TOML into a node.Config; it serves no
// sockets and exports no metrics.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, testenv.Module+"/config", map[string]string{
		testenv.Module + "/cmd":     "nothing imports the binary",
		testenv.Module + "/control": "the control protocol uses config's grammar, not the reverse",
		"github.com/prometheus":     "no metrics in config",
	})
}
