package main

import (
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// The `mipsec run` path (config → node, control for its socket) links no
// demo or benchmark code: those are packages of their own that only the
// binary's dispatch (main.go) imports.
func TestRunPathDeps(t *testing.T) {
	for _, pkg := range []string{"node", "config", "control"} {
		testenv.CheckDeps(t, testenv.Module+"/"+pkg, map[string]string{
			testenv.Module + "/internal/demo":     "the demos are not on the run path",
			testenv.Module + "/internal/benchcmd": "`mipsec bench` is not on the run path",
			testenv.Module + "/internal/benchlab": "the side-by-side benchmark is not on the run path",
			testenv.Module + "/internal/netlab":   "namespace labs are for demos and tests",
			testenv.Module + "/bench":             "the benchmarks are not on the run path",
		})
	}
}
