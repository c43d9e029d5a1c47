package netlab

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

const pkgPath = testenv.Module + "/internal/netlab"

// netlab is the lab bench of the demo and the e2e tests: it drives
// gateways from the outside and never links the code under test; it is
// not a test package, because the binary's demo uses it.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, pkgPath, map[string]string{
		testenv.Module + "/esp":       "netlab tests gateways from the outside, it never links the ESP code",
		testenv.Module + "/sad":       "netlab tests gateways from the outside, it never links the SAD",
		testenv.Module + "/spd":       "netlab tests gateways from the outside, it never links the SPD",
		testenv.Module + "/dataplane": "netlab tests gateways from the outside, it never links the dataplane",
		testenv.Module + "/mip6":      "netlab tests gateways from the outside, it never links mobility",
		testenv.Module + "/cmd":       "nothing imports the binary",
		"testing":                     "netlab is linked into the binary (mipsec demo): no testing",
	})
	testenv.CheckLeaf(t, pkgPath)
}

// TestThirdPartyDeps: the standard library, golang.org/x/sys and
// netlink's netns only.
func TestThirdPartyDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkgPath).Output()
	if err != nil {
		testenv.SkipOrFail(t, "go list -deps %s: %v", pkgPath, err)
	}
	for _, d := range strings.Fields(string(out)) {
		switch {
		case d == pkgPath, strings.HasPrefix(d, "golang.org/x/sys/"),
			d == "github.com/vishvananda/netlink/netns", strings.HasPrefix(d, "github.com/vishvananda/netns"):
		default:
			t.Errorf("%s depends on %s: only std, golang.org/x/sys and netlink/netns", pkgPath, d)
		}
	}
}
