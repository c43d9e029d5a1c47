package main

import "github.com/mipsec/mipsec/internal/fixture"

// The fixtures shared with node's tests (internal/fixture) under the
// names the IKE tests use.
var (
	epA, epB     = fixture.EpA, fixture.EpB
	withStateDir = fixture.WithStateDir
	eventually   = fixture.Eventually
)
