package oatable

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// oatable is a leaf: sad and mip6 build on it, so it imports only the
// standard library.
func TestDeps(t *testing.T) {
	testenv.CheckLeaf(t, testenv.Module+"/internal/oatable")
}
