package main

// The command registry: every subcommand is one entry here and its
// handler. `mipsec help` and the summary line of `mipsec CMD -h` are
// generated from it, and run dispatches through it.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mipsec/mipsec/internal/benchcmd"
	"github.com/mipsec/mipsec/internal/demo"
)

type command struct {
	// name is the command's words ("sa add"); aliases are other names.
	name    string
	aliases []string
	// args is what follows the name in the usage line.
	args    string
	summary string
	group   string
	run     func(args []string, stdout, stderr io.Writer) int
}

// Groups, in the order help prints them.
const (
	groupDaemon  = "The daemon and its configuration"
	groupControl = "Control: a running daemon (-c FILE: the daemon of that config; or --socket PATH, $MIPSEC_SOCKET)"
	groupDemo    = "Demos and benchmarks"
	groupOther   = "Other"
)

var groups = []string{groupDaemon, groupControl, groupDemo, groupOther}

var commands []command

func init() {
	commands = []command{
		{name: "run", args: "[-c FILE] [--metrics ADDR]", group: groupDaemon, run: runDaemon,
			summary: "run a gateway, home agent or mobile node (role =) from a config; SIGHUP reloads it"},
		{name: "check", args: "A B | [-c FILE]", group: groupDaemon, run: checkCmd,
			summary: "validate a config without running it, or two configs and that they mirror each other"},
		{name: "genkey", args: "[--alg NAME]", group: groupDaemon, run: genkeyCmd,
			summary: "a fresh random key of the size an algorithm takes, in the config's hex"},
		{name: "pair", args: "-o DIR [flags]", group: groupDaemon, run: pairCmd,
			summary: "write a matching pair of gateway configs with fresh keys and SPIs"},
		{name: "algorithms", aliases: []string{"algs"}, group: groupDaemon, run: func(_ []string, stdout, _ io.Writer) int { return algorithms(stdout) },
			summary: "list the ESP algorithms and their key sizes"},

		{name: "status", args: "[--json]", group: groupControl, run: ctlStatus, summary: "the daemon: role, config, TUN, uptime, SAs, policies, peers"},
		{name: "stats", args: "[--json]", group: groupControl, run: ctlStats, summary: "per-SA counters, dataplane and underlay counters, drops by reason"},
		{name: "peers", args: "[--json]", group: groupControl, run: ctlPeers, summary: "the peers, their current endpoints and when each was last heard from"},
		{name: "sa list", aliases: []string{"sa ls", "sa show"}, args: "[--json|--wireshark]", group: groupControl, run: ctlSAList,
			summary: "the SAs with lifetimes and counters (--wireshark: esp_sa lines, with keys)"},
		{name: "sa add", args: "[flags | -f FILE]", group: groupControl, run: func(a []string, o, e io.Writer) int { return ctlSAChange("add", a, o, e) },
			summary: "add an SA"},
		{name: "sa update", aliases: []string{"sa replace"}, args: "--dir D --spi SPI [flags] | -f FILE", group: groupControl,
			run: func(a []string, o, e io.Writer) int { return ctlSAChange("update", a, o, e) }, summary: "change an SA; flags not given keep their values"},
		{name: "sa del", aliases: []string{"sa delete", "sa rm"}, args: "in|out SPI", group: groupControl, run: ctlSADel, summary: "delete an SA"},
		{name: "policy list", aliases: []string{"policy ls", "policy show"}, args: "[--json] [--dir D]", group: groupControl, run: ctlPolicyList,
			summary: "the policies in order, with hits"},
		{name: "policy add", aliases: []string{"policy insert"}, args: "[flags | -f FILE]", group: groupControl, run: ctlPolicyAdd,
			summary: "insert a policy (--index N) or append one"},
		{name: "policy del", aliases: []string{"policy delete", "policy rm"}, args: "NAME", group: groupControl, run: ctlPolicyDel, summary: "delete a policy"},
		{name: "binding list", aliases: []string{"binding ls", "binding show", "bindings"}, args: "[--json]", group: groupControl, run: ctlBindingList,
			summary: "home agent: the bindings (HoA, CoAs, NAT, lifetime left)"},
		{name: "mn status", aliases: []string{"mn show"}, args: "[--json]", group: groupControl, run: ctlMNStatus,
			summary: "mobile node: the binding update list, CoA, NAT, last handover"},
		{name: "mn move", args: "ADDR", group: groupControl, run: ctlMNMove, summary: "mobile node: force the care-of address"},
		{name: "ike list", aliases: []string{"ike ls", "ike show", "ike list-sas"}, args: "[--json|--wireshark]", group: groupControl, run: ctlIKEList,
			summary: "IKE: the IKE and child SAs, as swanctl --list-sas (--wireshark: their keys for Wireshark)"},
		{name: "ike initiate", aliases: []string{"ike up"}, args: "NAME [CHILD] [--timeout D]", group: groupControl,
			run:     func(a []string, o, e io.Writer) int { return ctlIKEAction("initiate", a, o, e) },
			summary: "IKE: establish connection NAME's IKE SA and its child CHILD (none: every child)"},
		{name: "ike terminate", aliases: []string{"ike down"}, args: "NAME [--timeout D]", group: groupControl,
			run:     func(a []string, o, e io.Writer) int { return ctlIKEAction("terminate", a, o, e) },
			summary: "IKE: delete connection NAME's IKE SA and its child SAs"},
		{name: "ike rekey", args: "NAME [CHILD] [--timeout D]", group: groupControl,
			run:     func(a []string, o, e io.Writer) int { return ctlIKEAction("rekey", a, o, e) },
			summary: "IKE: rekey child CHILD of connection NAME, or without CHILD its IKE SA"},
		{name: "capture", args: "-w FILE.pcap [--inner|--outer|--both] [-c COUNT] [--duration D]", group: groupControl, run: ctlCapture,
			summary: "write the daemon's packets to a pcap file"},

		{name: "demo", args: "[--gateway | --engine] [flags]", group: groupDemo, run: demoCmd,
			summary: "the mobility demo in namespaces (root); --gateway: two gateways keyed by IKEv2 (--pubkey: certificates, --manual: manual keys); --engine: the ESP engine in process"},
		{name: "bench", args: "[--inprocess] [--scaling] [flags]", group: groupDemo, run: benchcmd.Main,
			summary: "mipsec vs wireguard-go vs the bare veth (root); --inprocess, --scaling: no root"},

		{name: "version", aliases: []string{"-version", "--version"}, group: groupOther,
			run: func(_ []string, stdout, _ io.Writer) int { fmt.Fprintln(stdout, "mipsec", version()); return 0 }, summary: "print the version"},
		{name: "help", aliases: []string{"-h", "-help", "--help"}, args: "[COMMAND]", group: groupOther, run: helpCmd, summary: "this text, or a command's flags"},
	}
}

func demoCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--engine" || args[0] == "-engine") {
		return demo.Engine(args[1:], stdout, stderr)
	}
	return demo.Namespaces(args, stdout, stderr, demo.Env{ExampleConfig: exampleConfig})
}

// lookup finds the command args start with (its longest name or alias)
// and the arguments after it.
func lookup(args []string) (*command, []string) {
	var best *command
	n := 0
	for i := range commands {
		c := &commands[i]
		for _, name := range append([]string{c.name}, c.aliases...) {
			w := strings.Fields(name)
			if len(w) > n && len(w) <= len(args) && equalWords(w, args[:len(w)]) {
				best, n = c, len(w)
			}
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[n:]
}

func equalWords(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func commandNamed(name string) *command {
	c, rest := lookup(strings.Fields(name))
	if c == nil || len(rest) != 0 {
		return nil
	}
	return c
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeHelp(stderr)
		return 2
	}
	c, rest := lookup(args)
	if c == nil {
		if sub := subcommands(args[0]); len(sub) > 0 {
			// "mipsec sa -h": the group's commands, asked for.
			if len(args) == 2 && isHelpFlag(args[1]) {
				writeGroupHelp(stdout, args[0], sub)
				return 0
			}
			// "mipsec sa" or "mipsec sa frob": the group's commands.
			if len(args) > 1 {
				fmt.Fprintf(stderr, "mipsec %s: unknown command %q\n\n", args[0], args[1])
			}
			for _, s := range sub {
				fmt.Fprintf(stderr, "  mipsec %-40s %s\n", s.name+" "+s.args, s.summary)
			}
			return 2
		}
		fmt.Fprintf(stderr, "mipsec: unknown command %q (mipsec help lists them)\n", args[0])
		return 2
	}
	return c.run(rest, stdout, stderr)
}

// subcommands are the commands whose first word is word, when it is a
// group ("sa", "policy").
func subcommands(word string) []*command {
	var out []*command
	for i := range commands {
		if w := strings.Fields(commands[i].name); len(w) > 1 && w[0] == word {
			out = append(out, &commands[i])
		}
	}
	return out
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// writeGroupHelp is `mipsec GROUP -h` (and `mipsec help GROUP`): the
// commands whose first word is the group's.
func writeGroupHelp(w io.Writer, group string, sub []*command) {
	fmt.Fprintf(w, "usage: mipsec %s COMMAND [flags]\n", group)
	if g, ok := groupSummaries[group]; ok {
		fmt.Fprintf(w, "\n%s\n", g)
	}
	fmt.Fprintln(w)
	for _, s := range sub {
		use := s.name
		if s.args != "" {
			use += " " + s.args
		}
		fmt.Fprintf(w, "  mipsec %-40s %s\n", use, s.summary)
	}
	fmt.Fprintf(w, "\n\"mipsec %s COMMAND -h\" shows a command's flags.\n", group)
}

// groupSummaries say what a group of commands is about, for `mipsec GROUP -h`.
var groupSummaries = map[string]string{
	"ike": "The IKEv2 daemon of a running mipsec ([[connection]] tables in its config), as swanctl shows and drives\n" +
		"charon's: list the IKE and child SAs, initiate, terminate and rekey connections.",
}

func helpCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 {
		if c, _ := lookup(args); c == nil {
			if sub := subcommands(args[0]); len(sub) > 0 {
				writeGroupHelp(stdout, args[0], sub)
				return 0
			}
		}
	}
	if len(args) > 0 {
		c, rest := lookup(args)
		if c == nil || len(rest) != 0 {
			fmt.Fprintf(stderr, "mipsec help: no command %q\n", strings.Join(args, " "))
			return 2
		}
		if c.name != "help" {
			return c.run([]string{"-h"}, stdout, stdout)
		}
	}
	writeHelp(stdout)
	return 0
}

func writeHelp(w io.Writer) {
	fmt.Fprintln(w, "mipsec: userspace IPsec (ESP) for gateways, Mobile IPv6 home agents and mobile nodes")
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g)
		for _, c := range commands {
			if c.group != g {
				continue
			}
			use := c.name
			if c.args != "" {
				use += " " + c.args
			}
			if len(use) > 38 {
				fmt.Fprintf(w, "  mipsec %s\n  %-45s %s\n", use, "", c.summary)
			} else {
				fmt.Fprintf(w, "  mipsec %-38s %s\n", use, c.summary)
			}
		}
	}
	fmt.Fprintln(w, "\n\"mipsec help COMMAND\" or \"mipsec COMMAND -h\" shows a command's flags.")
}

// commandUsage is a FlagSet's usage for the registered command name:
// the usage line, the summary, the flags.
func commandUsage(fs *flag.FlagSet, name string) func() {
	return func() {
		w := fs.Output()
		if c := commandNamed(name); c != nil {
			fmt.Fprintf(w, "usage: mipsec %s %s\n\n%s\n", c.name, c.args, c.summary)
		} else {
			fmt.Fprintf(w, "usage: mipsec %s\n", name)
		}
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
}

// flagExit is the exit code of a flag parse error: 0 for -h (the usage
// was printed), 2 otherwise.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
