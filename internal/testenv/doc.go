// Package testenv holds test helpers shared by mipsec's packages: the rule
// that a test which cannot run its real environment fails in CI instead of
// skipping (CI=true), and the package import rules of ARCHITECTURE.md.
//
// testenv imports only the standard library and the testing package; only
// _test.go files import it.
package testenv
