package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCommandsHelp: every registered command answers -h with exit 0 and a
// usage that names it, `mipsec help` lists every command with its
// summary, and `mipsec help CMD` is CMD -h.
func TestCommandsHelp(t *testing.T) {
	var help, errb bytes.Buffer
	if rc := run([]string{"help"}, &help, &errb); rc != 0 {
		t.Fatalf("help: %d %s", rc, errb.String())
	}
	for _, c := range commands {
		if !strings.Contains(help.String(), "mipsec "+c.name) || !strings.Contains(help.String(), c.summary) {
			t.Errorf("help lacks %q: %q", c.name, c.summary)
		}
		if c.name == "version" || c.name == "help" || c.name == "algorithms" {
			continue
		}
		var out, e bytes.Buffer
		args := append(strings.Fields(c.name), "-h")
		if rc := run(args, &out, &e); rc != 0 {
			t.Errorf("%v: exit %d, want 0\n%s%s", args, rc, out.String(), e.String())
			continue
		}
		text := strings.ToLower(out.String() + e.String())
		if !strings.Contains(text, "usage") || !strings.Contains(text, "mipsec "+c.name) {
			t.Errorf("%v: usage does not name the command:\n%s", args, text)
		}
		var viaHelp bytes.Buffer
		run([]string{"help", c.name}, &viaHelp, &viaHelp)
		if viaHelp.Len() == 0 {
			t.Errorf("help %s printed nothing", c.name)
		}
	}
	// Aliases reach the same command; a group alone lists its commands.
	if c, rest := lookup([]string{"sa", "rm", "in", "0x1"}); c == nil || c.name != "sa del" || len(rest) != 2 {
		t.Errorf("lookup(sa rm in 0x1) = %v %v", c, rest)
	}
	var out, e bytes.Buffer
	if rc := run([]string{"sa"}, &out, &e); rc != 2 || !strings.Contains(e.String(), "mipsec sa add") {
		t.Errorf("mipsec sa: %d %q", rc, e.String())
	}
	if rc := run([]string{"sa", "frob"}, &out, &e); rc != 2 || !strings.Contains(e.String(), `unknown command "frob"`) {
		t.Errorf("mipsec sa frob: %d %q", rc, e.String())
	}
	if rc := run([]string{"help", "nonsense"}, &out, &e); rc != 2 {
		t.Errorf("help nonsense: %d", rc)
	}
}
