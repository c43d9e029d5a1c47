package netcfg

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

const pkgPath = testenv.Module + "/internal/netcfg"

// TestDeps: netcfg is kernel plumbing; it links no mipsec package (the
// daemon wires it to mip6) and never the testing package.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, pkgPath, map[string]string{
		testenv.Module + "/esp":       "netcfg configures the kernel, it never links the ESP code",
		testenv.Module + "/sad":       "netcfg configures the kernel, it never links the SAD",
		testenv.Module + "/spd":       "netcfg configures the kernel, it never links the SPD",
		testenv.Module + "/dataplane": "netcfg configures the kernel, it never links the dataplane",
		testenv.Module + "/mip6":      "netcfg implements mip6.HomeLink without importing mip6",
		testenv.Module + "/cmd":       "nothing imports the binary",
		"testing":                     "netcfg is linked into the binary: no testing",
	})
}

// TestThirdPartyDeps: the standard library, golang.org/x/sys and netlink.
func TestThirdPartyDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkgPath).Output()
	if err != nil {
		testenv.SkipOrFail(t, "go list -deps %s: %v", pkgPath, err)
	}
	for _, d := range strings.Fields(string(out)) {
		switch {
		case d == pkgPath, strings.HasPrefix(d, "golang.org/x/sys/"),
			strings.HasPrefix(d, "github.com/vishvananda/netlink"), strings.HasPrefix(d, "github.com/vishvananda/netns"):
		default:
			t.Errorf("%s depends on %s: only std, golang.org/x/sys and netlink", pkgPath, d)
		}
	}
}
