package endpoint

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: endpoint is a leaf, the standard library only.
func TestDeps(t *testing.T) {
	const pkg = testenv.Module + "/endpoint"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		testenv.SkipOrFail(t, "go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if d != pkg {
			t.Errorf("endpoint depends on %s: the standard library only", d)
		}
	}
}
