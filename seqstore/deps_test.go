package seqstore

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// seqstore is a leaf: the daemon (cmd/mipsec) wires it to sad; it must not
// depend on esp, sad or anything else of ours.
func TestDeps(t *testing.T) {
	testenv.CheckLeaf(t, testenv.Module+"/seqstore")
}
