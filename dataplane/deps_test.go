package dataplane

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: dataplane is imported by cmd and bench, never the
// reverse; the Linux sockets (underlay) sit beside it.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, "github.com/mipsec/mipsec/dataplane", map[string]string{
		"github.com/mipsec/mipsec/cmd":      "nothing imports the binary",
		"github.com/mipsec/mipsec/bench":    "nothing imports the harness",
		"github.com/mipsec/mipsec/underlay": "the caller passes the sockets in (Config.Underlay); dataplane sees only the Underlay interface",
		"github.com/mipsec/mipsec/mip6":     "mobility meets the dataplane through hooks wired in node (endpoint is the shared type)",
		"github.com/mipsec/mipsec/node":     "node composes the dataplane",
		"github.com/mipsec/mipsec/ike":      "IKE installs SAs through node's ike.Kernel",
	})
}
