// Command mipsec is the mipsec binary: `run` (a node from a config file,
// with its control socket and metrics), `check`, the control subcommands
// (package control's client), and the demos and benchmarks (packages
// internal/demo and internal/benchcmd).
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/mipsec/mipsec/internal/benchcmd"
	"github.com/mipsec/mipsec/internal/demo"
)

const usage = `mipsec: a userspace IPsec ESP dataplane for mobile nodes and home agents

Usage:
  mipsec run [-c FILE]    run the daemon (TUN + underlay) from a TOML config: a
                          gateway, a home agent or a mobile node (role =)
  mipsec check [-c FILE]  validate a config without running it (exit 1 on errors)
  mipsec check A B        validate two configs and that they mirror each other (or -c A -c B)
  mipsec genkey [--alg N] a fresh random key of the size algorithm N takes, in the config's hex
  mipsec pair -o DIR      a matching pair of gateway configs, fresh keys and SPIs (-h: flags)
  mipsec demo [flags]     the mobility demo (root): CN, home agent, NAT router and mobile node in
                          namespaces; a TCP stream to the home address survives IPv6 -> IPv4
                          behind NAT -> IPv6 moves (handover time, loss, ESP-only captures)
  mipsec demo --gateway   two gateways in network namespaces: ping, TCP, ESP-only capture (root)
  mipsec demo --engine    the ESP engine in process: every algorithm, hostile packets, throughput
  mipsec bench [flags]    mipsec vs wireguard-go vs the bare veth in namespaces with iperf3 (root);
                          --inprocess, --scaling: the pipeline per algorithm and lookup curves (no root)
  mipsec algorithms       list the ESP algorithms and their sizes

Control (talk to a running daemon over its socket; --socket PATH, default
$MIPSEC_SOCKET or /run/mipsec/mipsec.sock, the daemon's [control] socket):
  mipsec status [--json]                  daemon summary
  mipsec stats [--json]                   per-SA counters, drops by reason
  mipsec peers [--json]                   peers and their current endpoints
  mipsec sa list [--json|--wireshark]     SAs (--wireshark: esp_sa lines, with keys)
  mipsec sa add|update [flags | -f FILE]  add or replace an SA
  mipsec sa del in|out SPI                delete an SA
  mipsec policy list [--json] [--dir D]   policies in order, with hits
  mipsec policy add [flags | -f FILE]     insert a policy (--index N) or append
  mipsec policy del NAME                  delete a policy
  mipsec binding list [--json]            home agent: bindings (HoA, CoAs, NAT, lifetime left)
  mipsec mn status [--json]               mobile node: binding update list, CoA, NAT, handover
  mipsec mn move ADDR                     mobile node: force the care-of address
  mipsec capture -w FILE.pcap [--inner|--outer|--both] [-c COUNT] [--duration D]
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
		if len(args) > 1 && (args[1] == "--engine" || args[1] == "-engine") {
			return demo.Engine(args[2:], stdout, stderr)
		}
		return demo.Namespaces(args[1:], stdout, stderr, demo.Env{ExampleConfig: exampleConfig})
	case "bench":
		return benchcmd.Main(args[1:], stdout, stderr)
	case "run":
		return runDaemon(args[1:], stdout, stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "genkey":
		return genkeyCmd(args[1:], stdout, stderr)
	case "pair":
		return pairCmd(args[1:], stdout, stderr)
	case "algorithms", "algs":
		return algorithms(stdout)
	case "status":
		return ctlStatus(args[1:], stdout, stderr)
	case "stats":
		return ctlStats(args[1:], stdout, stderr)
	case "peers":
		return ctlPeers(args[1:], stdout, stderr)
	case "sa":
		return ctlSA(args[1:], stdout, stderr)
	case "policy":
		return ctlPolicy(args[1:], stdout, stderr)
	case "capture":
		return ctlCapture(args[1:], stdout, stderr)
	case "binding", "bindings":
		return ctlBinding(args[1:], stdout, stderr)
	case "mn":
		return ctlMN(args[1:], stdout, stderr)
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
