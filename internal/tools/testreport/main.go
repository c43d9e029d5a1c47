// Command testreport reads `go test -json` events on stdin, prints a short
// report (one line per package, the output of failed tests, the list of
// skipped tests) and exits non-zero when a test failed or, with CI=true and
// without -allow-skip, when any test was skipped: in CI every integration
// test must really run (DEVELOPERS.md).
//
// Usage: go test -json ./... | go run ./internal/tools/testreport [-allow-skip]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

func main() {
	allowSkip := flag.Bool("allow-skip", false, "do not fail on skipped tests even when CI=true")
	flag.Parse()
	os.Exit(report(os.Stdin, os.Stdout, os.Getenv("CI") == "true", *allowSkip))
}

// report reads test2json events from r, writes the report to w and returns
// the exit code: 1 for a failure, or for a skip when ci && !allowSkip.
func report(r io.Reader, w io.Writer, ci, allowSkip bool) int {
	p := printer{w}

	output := map[string]*strings.Builder{} // package/test -> output
	var failed, skipped []string
	pkgFailed := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Build errors and other non-JSON lines.
			p.Println(string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			// Compiler errors (go test -json, Go 1.24+).
			p.Print(e.Output)
		case "output":
			b := output[key]
			if b == nil {
				b = &strings.Builder{}
				output[key] = b
			}
			if b.Len() < 1<<20 {
				b.WriteString(e.Output)
			}
		case "fail":
			if e.Test == "" {
				pkgFailed = true
				p.Printf("FAIL  %s (%.1fs)\n", e.Package, e.Elapsed)
				if b := output[key]; b != nil {
					p.Print(indent(b.String()))
				}
			} else {
				failed = append(failed, key)
			}
		case "pass":
			if e.Test == "" {
				p.Printf("ok    %s (%.1fs)\n", e.Package, e.Elapsed)
			}
			delete(output, key)
		case "skip":
			if e.Test == "" {
				p.Printf("----  %s (no tests)\n", e.Package)
			} else {
				reason := ""
				if b := output[key]; b != nil {
					reason = lastLines(b.String(), 2)
				}
				skipped = append(skipped, key+": "+reason)
			}
		}
	}
	sort.Strings(failed)
	sort.Strings(skipped)
	for _, k := range failed {
		p.Printf("\n--- FAIL: %s\n", k)
		if b := output[k]; b != nil {
			p.Print(indent(b.String()))
		}
	}
	if len(skipped) > 0 {
		p.Printf("\n%d skipped:\n", len(skipped))
		for _, s := range skipped {
			p.Println("  " + s)
		}
	}
	switch {
	case len(failed) > 0 || pkgFailed:
		p.Printf("\nFAIL: %d test(s) failed\n", len(failed))
		return 1
	case ci && !allowSkip && len(skipped) > 0:
		p.Printf("\nFAIL: CI=true and %d test(s) skipped; in CI every test must run\n", len(skipped))
		return 1
	}
	p.Println("\nPASS")
	return 0
}

// printer writes the report to w.
type printer struct{ w io.Writer }

func (p printer) Printf(format string, a ...any) { _, _ = fmt.Fprintf(p.w, format, a...) }
func (p printer) Println(a ...any)               { _, _ = fmt.Fprintln(p.w, a...) }
func (p printer) Print(a ...any)                 { _, _ = fmt.Fprint(p.w, a...) }

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("      " + l)
		}
	}
	return b.String()
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	for i := range ls {
		ls[i] = strings.TrimSpace(ls[i])
	}
	return strings.Join(ls, " | ")
}
