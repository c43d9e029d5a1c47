package underlay

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

const pkgPath = testenv.Module + "/underlay"

// TestDeps: underlay sits beside dataplane (ARCHITECTURE.md): the dataplane
// uses it through dataplane.Underlay, and it never links the IPsec or
// mobility code.
func TestDeps(t *testing.T) {
	testenv.CheckDeps(t, pkgPath, map[string]string{
		testenv.Module + "/dataplane": "underlay implements dataplane.Underlay without importing dataplane",
		testenv.Module + "/sad":       "the underlay carries ESP, it never links the SAD",
		testenv.Module + "/spd":       "the underlay carries ESP, it never links the SPD",
		testenv.Module + "/esp":       "the underlay carries ESP, it never links the ESP code",
		testenv.Module + "/mip6":      "mobility reaches the underlay through the dataplane's hooks",
		testenv.Module + "/cmd":       "nothing imports the binary",
		"testing":                     "underlay is linked into the binary: no testing",
	})
}

// TestOnlyDeps: the standard library, pkt, endpoint, internal/header,
// golang.org/x/net, golang.org/x/sys and netlink.
func TestOnlyDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkgPath).Output()
	if err != nil {
		testenv.SkipOrFail(t, "go list -deps %s: %v", pkgPath, err)
	}
	for _, d := range strings.Fields(string(out)) {
		switch {
		case d == pkgPath, d == testenv.Module+"/pkt", d == testenv.Module+"/endpoint",
			d == testenv.Module+"/internal/header",
			strings.HasPrefix(d, "golang.org/x/net/"), strings.HasPrefix(d, "golang.org/x/sys/"),
			strings.HasPrefix(d, "github.com/vishvananda/netlink"), strings.HasPrefix(d, "github.com/vishvananda/netns"):
		default:
			t.Errorf("%s depends on %s: only std, pkt, endpoint, internal/header, x/net, x/sys and netlink", pkgPath, d)
		}
	}
}
