// Command mipsec is the single mipsec binary. Today it has the in-process
// ESP engine demo and reference commands; `run` (the TUN/underlay daemon)
// and the control subcommands arrive with the dataplane issue.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

const usage = `mipsec: a userspace IPsec ESP dataplane for mobile nodes and home agents

Usage:
  mipsec demo [flags]     seal and open traffic through the ESP engine (in process)
  mipsec algorithms       list the ESP algorithms and their sizes
  mipsec version          print the version
  mipsec help             this text

Run "mipsec demo -h" for the demo's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		return demo(args[1:], stdout, stderr)
	case "algorithms", "algs":
		return algorithms(stdout)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "mipsec", version())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mipsec: unknown command %q\n\n%s", args[0], usage)
	return 2
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
