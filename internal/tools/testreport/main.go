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
	ci := os.Getenv("CI") == "true"

	output := map[string]*strings.Builder{} // package/test -> output
	var failed, skipped []string
	pkgFailed := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Build errors and other non-JSON lines.
			fmt.Println(string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
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
				fmt.Printf("FAIL  %s (%.1fs)\n", e.Package, e.Elapsed)
				if b := output[key]; b != nil {
					fmt.Print(indent(b.String()))
				}
			} else {
				failed = append(failed, key)
			}
		case "pass":
			if e.Test == "" {
				fmt.Printf("ok    %s (%.1fs)\n", e.Package, e.Elapsed)
			}
			delete(output, key)
		case "skip":
			if e.Test == "" {
				fmt.Printf("----  %s (no tests)\n", e.Package)
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
		fmt.Printf("\n--- FAIL: %s\n", k)
		if b := output[k]; b != nil {
			fmt.Print(indent(b.String()))
		}
	}
	if len(skipped) > 0 {
		fmt.Printf("\n%d skipped:\n", len(skipped))
		for _, s := range skipped {
			fmt.Println("  " + s)
		}
	}
	switch {
	case len(failed) > 0 || pkgFailed:
		fmt.Printf("\nFAIL: %d test(s) failed\n", len(failed))
		os.Exit(1)
	case ci && !*allowSkip && len(skipped) > 0:
		fmt.Printf("\nFAIL: CI=true and %d test(s) skipped; in CI every test must run\n", len(skipped))
		os.Exit(1)
	}
	fmt.Println("\nPASS")
}

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
