// Command mipsec is the mipsec binary: `run` (a node from a config file,
// with its control socket and metrics), `check`, the control subcommands
// (package control's client), and the demos and benchmarks (packages
// internal/demo and internal/benchcmd).
package main

import (
	"os"
	"runtime/debug"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
		if bi.Main.Version != "" {
			return bi.Main.Version
		}
	}
	return "devel"
}
