//go:build linux

package underlay_test

import (
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/underlay"
)

// The Linux underlay is a dataplane.Underlay, although underlay does not
// import dataplane (deps_test.go).
var _ dataplane.Underlay = (*underlay.Linux)(nil)
