package main

// `mipsec check A B` (or -c A -c B): check each file as `mipsec check`
// does, then that the two mirror each other: every outbound SA of one is an
// inbound SA of the other with the same SPI, algorithm, keys, ESN and mode,
// the tunnel endpoints and the selectors swapped; and every outbound
// protect policy names an SPI the other side opens.

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// configPaths is check's repeatable -c.
type configPaths []string

func (p *configPaths) String() string { return strings.Join(*p, ", ") }

func (p *configPaths) Set(s string) error {
	*p = append(*p, s)
	return nil
}

// errUsage is a command line check cannot run; usage has been printed.
var errUsage = errors.New("usage")

// checkFiles is `mipsec check` after its flags: flagged are the -c files,
// args the FILE arguments. One file is checked alone; two are checked
// each and then cross-checked. A lone FILE argument is a usage error, as
// before: one file is -c FILE.
func checkFiles(flagged, args []string, stdout, stderr io.Writer, probe stateProbe, usage func()) int {
	files, err := checkFileList(flagged, args, stderr)
	if err != nil {
		usage()
		return 2
	}
	if len(files) == 1 {
		return checkConfig(files[0], stdout, stderr, probe)
	}
	a, b := files[0], files[1]
	rc := 0
	for _, f := range files {
		if checkConfig(f, stdout, stderr, probe) != 0 {
			rc = 1
		}
	}
	if rc != 0 {
		fmt.Fprintf(stderr, "%s and %s: not cross-checked: fix the errors above first\n", a, b)
		return rc
	}
	cfgA, err := config.Load(a)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", a, err)
		return 1
	}
	cfgB, err := config.Load(b)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b, err)
		return 1
	}
	pairs, problems := crossCheck(cfgA, cfgB)
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s and %s do not mirror each other: %d problem%s\n", a, b, len(problems), plural(len(problems)))
		return 1
	}
	fmt.Fprintf(stdout, "OK: %s and %s mirror each other (%d SA pair%s)\n", a, b, pairs, plural(pairs))
	return 0
}

// checkFileList says which files check looks at.
func checkFileList(flagged, args []string, stderr io.Writer) ([]string, error) {
	files := append(slices.Clip(flagged), args...)
	switch {
	case len(files) == 0:
		return []string{DefaultConfigPath}, nil
	case len(args) == 1 && len(flagged) == 0:
		fmt.Fprintf(stderr, "mipsec check: a lone argument %q: check one file with -c FILE, or give two to check that they mirror each other\n", args[0])
		return nil, errUsage
	case len(files) > 2:
		fmt.Fprintf(stderr, "mipsec check: %d files; check takes one (-c FILE) or two (A B, or -c A -c B) to cross-check\n", len(files))
		return nil, errUsage
	case len(files) == 2:
		if same(files[0], files[1]) {
			fmt.Fprintf(stderr, "mipsec check: %s and %s are the same file; a cross-check compares the two ends of a tunnel\n", files[0], files[1])
			return nil, errUsage
		}
	}
	return files, nil
}

// same reports whether a and b name one existing file.
func same(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// crossCheck compares two validated configs, a and b, that should be the
// two ends of one or more tunnels. pairs is the number of SAs of one side
// found, by SPI, on the other; problems holds one line per mismatch, each
// naming both files, in a's order then b's. Keys are compared in constant
// time and never printed.
func crossCheck(a, b *config.File) (pairs int, problems []string) {
	for _, side := range [2][2]*config.File{{a, b}, {b, a}} {
		x, y := side[0], side[1]
		for _, out := range x.SAs {
			if out.Dir != sad.Outbound {
				continue
			}
			in, ok := findSA(y, sad.Inbound, out.Params.SPI)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: %s has no inbound SA with SPI %s to open it", saLabel(x, out), y.Path, spiHex(out.Params.SPI)))
				continue
			}
			pairs++
			for _, m := range mirrorProblems(x, y, out, in) {
				problems = append(problems, fmt.Sprintf("%s and %s: %s", saLabel(x, out), saLabel(y, in), m))
			}
		}
		for _, in := range y.SAs {
			if in.Dir != sad.Inbound {
				continue
			}
			if _, ok := findSA(x, sad.Outbound, in.Params.SPI); !ok {
				problems = append(problems, fmt.Sprintf("%s: %s has no outbound SA with SPI %s to send under it", saLabel(y, in), x.Path, spiHex(in.Params.SPI)))
			}
		}
		for i, p := range x.Policies {
			if p.Dir != sad.Outbound || p.Action != spd.Protect {
				continue
			}
			if _, ok := findSA(y, sad.Inbound, p.SPI); !ok {
				problems = append(problems, fmt.Sprintf("%s policy[%d] (%s): protects with SPI %s, but %s has no inbound SA with that SPI", x.Path, i, p.Name, spiHex(p.SPI), y.Path))
			}
		}
	}
	return pairs, problems
}

// findSA returns the SA of f with dir and spi.
func findSA(f *config.File, dir sad.Direction, spi uint32) (node.SAConfig, bool) {
	for _, s := range f.SAs {
		if s.Dir == dir && s.Params.SPI == spi {
			return s, true
		}
	}
	return node.SAConfig{}, false
}

// saLabel names an SA for a cross-check line: "a.toml sa[0] (out 0x0000b001)".
func saLabel(f *config.File, s node.SAConfig) string {
	return fmt.Sprintf("%s %s (%s %s)", f.Path, s.Path, s.Dir, spiHex(s.Params.SPI))
}

// mirrorProblems compares out (an outbound SA of x) with in (the inbound SA
// of y under the same SPI).
func mirrorProblems(x, y *config.File, out, in node.SAConfig) []string {
	var ps []string
	po, pi := out.Params, in.Params
	if po.Algorithm != pi.Algorithm {
		ps = append(ps, fmt.Sprintf("algorithms differ (%s in %s, %s in %s)", po.Algorithm, x.Path, pi.Algorithm, y.Path))
	} else {
		var which []string
		if subtle.ConstantTimeCompare(po.EncKey, pi.EncKey) != 1 {
			which = append(which, "enc_key")
		}
		if subtle.ConstantTimeCompare(po.AuthKey, pi.AuthKey) != 1 {
			which = append(which, "auth_key")
		}
		if len(which) > 0 {
			ps = append(ps, "keys differ ("+strings.Join(which, " and ")+")")
		}
	}
	if po.ESN != pi.ESN {
		ps = append(ps, fmt.Sprintf("esn differs (%v in %s, %v in %s)", po.ESN, x.Path, pi.ESN, y.Path))
	}
	if po.Mode != pi.Mode {
		ps = append(ps, fmt.Sprintf("modes differ (%s in %s, %s in %s)", po.Mode, x.Path, pi.Mode, y.Path))
	} else if po.Mode == esp.Tunnel && (po.TunnelSrc != pi.TunnelSrc || po.TunnelDst != pi.TunnelDst) {
		// Params hold the packets' outer source and destination: the
		// sender's local is the receiver's remote.
		ps = append(ps, fmt.Sprintf("tunnel endpoints do not mirror (%s: local %s, remote %s; %s: local %s, remote %s): each side's local must be the other's remote",
			x.Path, po.TunnelSrc, po.TunnelDst, y.Path, pi.TunnelDst, pi.TunnelSrc))
	}
	if !selectorsMirror(out.Selectors, in.Selectors) {
		ps = append(ps, fmt.Sprintf("selectors do not mirror (%s: %s; %s: %s): each side's local must be the other's remote",
			x.Path, formatSelectors(out.Selectors), y.Path, formatSelectors(in.Selectors)))
	}
	return ps
}

// mirrorSelector is s seen from the other end: local and remote swap.
func mirrorSelector(s sad.Selector) sad.Selector {
	s.Local, s.Remote = s.Remote, s.Local
	s.LocalPort, s.RemotePort = s.RemotePort, s.LocalPort
	return s
}

// selectorsMirror reports whether the sets a and b are each other's mirror,
// in any order.
func selectorsMirror(a, b []sad.Selector) bool {
	for _, s := range a {
		if !slices.Contains(b, mirrorSelector(s)) {
			return false
		}
	}
	for _, s := range b {
		if !slices.Contains(a, mirrorSelector(s)) {
			return false
		}
	}
	return true
}

func formatSelectors(ss []sad.Selector) string {
	f := make([]string, len(ss))
	for i, s := range ss {
		f[i] = config.FormatSelector(s)
	}
	return "[" + strings.Join(f, ", ") + "]"
}
