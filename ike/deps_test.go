package ike

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: ike sits beside the engine, not on it. It declares the
// small interface it needs (SPIs, SAs, policies, lifetime events) and node
// implements it; it never imports node, the dataplane or mobility code.
func TestDeps(t *testing.T) {
	pkg := testenv.Module + "/ike"
	testenv.CheckDeps(t, pkg, map[string]string{
		testenv.Module + "/node":      "node implements ike's interface, not the reverse",
		testenv.Module + "/dataplane": "IKE messages reach ike through the underlay's hand-off, not the pipeline",
		testenv.Module + "/underlay":  "the sockets are node's; ike gets and returns datagrams",
		testenv.Module + "/mip6":      "ike knows nothing of mobility (RFC 4877 needs only its selectors)",
		testenv.Module + "/sad":       "SAs are installed through ike's own interface",
		testenv.Module + "/spd":       "policies are installed through ike's own interface",
		testenv.Module + "/config":    "config builds ike's settings, not the reverse",
		testenv.Module + "/control":   "the control socket reads ike, not the reverse",
		testenv.Module + "/cmd":       "nothing imports the binary",
		testenv.Module + "/bench":     "nothing imports the harness",
	})
	// Beyond the standard library: internal/header, x/crypto (with the
	// x/sys/cpu it needs) and zap (the daemon's logger, the one the rest of
	// mipsec uses), nothing else.
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		testenv.SkipOrFail(t, "go list -deps %s: %v", pkg, err)
	}
	for _, d := range strings.Fields(string(out)) {
		switch {
		case d == pkg, d == testenv.Module+"/internal/header",
			strings.HasPrefix(d, "golang.org/x/crypto/"), d == "golang.org/x/sys/cpu",
			strings.HasPrefix(d, "go.uber.org/zap"), d == "go.uber.org/multierr":
		default:
			t.Errorf("%s imports %s: only the standard library, internal/header, x/crypto and zap are allowed", pkg, d)
		}
	}
}
