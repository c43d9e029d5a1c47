package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true), where every
// integration test must run: a missing tool or privilege is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail skips the test outside CI and fails it in CI. Use it for
// everything that depends on the machine (root, namespaces, Python peers).
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: cannot skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// NeedRoot skips (or fails in CI) unless the test runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root")
	}
}

// NeedCommand skips (or fails in CI) unless path is an executable file or
// a command on PATH, and returns its path.
func NeedCommand(t testing.TB, path string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err != nil {
		SkipOrFail(t, "needs %s: %v", path, err)
	}
	return p
}

// CheckDeps fails t if pkg (an import path) depends, directly or not, on a
// package named in banned. banned maps an import path prefix to the reason
// (ARCHITECTURE.md "who may import whom"), like Tailscale's deptest.
func CheckDeps(t testing.TB, pkg string, banned map[string]string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		SkipOrFail(t, "go list -deps %s: %v", pkg, err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s printed nothing", pkg)
	}
	for _, d := range deps {
		for b, why := range banned {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("%s imports %s: %s", pkg, d, why)
			}
		}
	}
}

// Module is the module path, for CheckDeps callers.
const Module = "github.com/mipsec/mipsec"

// CheckImports is CheckDeps for direct imports only: for rules such as
// "spd never imports esp itself" where a transitive path (spd → sad → esp)
// is allowed.
func CheckImports(t testing.TB, pkg string, banned map[string]string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, pkg).Output()
	if err != nil {
		SkipOrFail(t, "go list %s: %v", pkg, err)
	}
	for _, d := range strings.Fields(string(out)) {
		for b, why := range banned {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("%s imports %s directly: %s", pkg, d, why)
			}
		}
	}
}

// CheckLeaf fails t if pkg depends on any other package of this module.
func CheckLeaf(t testing.TB, pkg string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		SkipOrFail(t, "go list -deps %s: %v", pkg, err)
	}
	for _, d := range strings.Fields(string(out)) {
		if d != pkg && strings.HasPrefix(d, Module+"/") {
			t.Errorf("%s is a leaf but imports %s", pkg, d)
		}
	}
}
