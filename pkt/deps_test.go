package pkt

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// ARCHITECTURE.md: pkt is a leaf; it imports only the standard library.
func TestDeps(t *testing.T) {
	testenv.CheckLeaf(t, "github.com/mipsec/mipsec/pkt")
}
