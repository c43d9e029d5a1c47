package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestInvisibleCharacters (issue "Safety and reliability" §6): what
// cannot be seen in the file is named, with its line, before the TOML
// is read.
func TestInvisibleCharacters(t *testing.T) {
	base, err := os.ReadFile("../testdata/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(base), "\n")
	// at puts s at the start of 1-based line n of minimal.toml.
	at := func(n int, s string) string {
		l := append([]string(nil), lines...)
		l[n-1] = s + l[n-1]
		return strings.Join(l, "")
	}
	for _, tt := range []struct {
		name, data string
		want       []string // the whole error, one line each
	}{
		{"byte order mark", "\uFEFF" + string(base),
			[]string{"f.toml:1: a UTF-8 byte order mark (EF BB BF) starts the file; save it without one"}},
		{"NUL byte", at(7, "\x00"),
			[]string{"f.toml:7: a NUL byte at column 1; a configuration file is text"}},
		{"zero width space", strings.Replace(string(base), `name = "mipsec0"`, "name = \"mip\u200bsec0\"", 1),
			[]string{`f.toml:6: U+200B ZERO WIDTH SPACE at column 12, an invisible character; delete it (in a string, write it as the escape \u200B if it is meant)`}},
		{"zero width space in a key", at(3, "\u200b"),
			[]string{`f.toml:3: U+200B ZERO WIDTH SPACE at column 1, an invisible character; delete it (in a string, write it as the escape \u200B if it is meant)`}},
		{"right-to-left override in a comment", at(1, "\u202e"),
			[]string{`f.toml:1: U+202E RIGHT-TO-LEFT OVERRIDE at column 1, an invisible character; delete it (in a string, write it as the escape \u202E if it is meant)`}},
		{"no-break space", strings.Replace(string(base), `name = "mipsec0"`, "name =\u00a0\"mipsec0\"", 1),
			[]string{`f.toml:6: U+00A0 NO-BREAK SPACE at column 7, a space that is not U+0020 SPACE; type a plain space instead (in a string, write it as the escape \u00A0 if it is meant)`}},
		{"escape", at(4, "\x1b[31m"),
			[]string{`f.toml:4: U+001B ESCAPE at column 1, a control character; delete it (in a string, write it as the escape \u001B if it is meant)`}},
		{"C1 control", at(4, "\u0085"),
			[]string{`f.toml:4: U+0085 at column 1, a C1 control character; delete it (in a string, write it as the escape \u0085 if it is meant)`}},
		{"BOM later in the file", at(2, "\uFEFF"),
			[]string{`f.toml:2: U+FEFF ZERO WIDTH NO-BREAK SPACE at column 1, an invisible character; delete it (in a string, write it as the escape \uFEFF if it is meant)`}},
		{"not UTF-8", at(5, "\xe9"),
			[]string{"f.toml:5: byte 0xe9 at column 1 is not UTF-8; save the file as UTF-8"}},
		{"UTF-16", "\xff\xfes\x00t\x00",
			[]string{"f.toml:1: the file is UTF-16 (byte order mark FF FE); save it as UTF-8"}},
		{"one per line, in file order", at(9, "\x00\x00") + "\u200b",
			[]string{"f.toml:9: a NUL byte at column 1; a configuration file is text",
				`f.toml:53: U+200B ZERO WIDTH SPACE at column 1, an invisible character; delete it (in a string, write it as the escape \u200B if it is meant)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tt.data))
			var ce Errors
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("not Errors: %v", err)
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
	// What is visible, tabs and CRLF line ends included, is fine.
	fine := strings.ReplaceAll(string(base), "\n", "\r\n")
	fine = strings.Replace(fine, "# The smallest", "#\tThe smallest (RFC 4301 §4.4, → é ✓ 日本)", 1)
	if _, err := Parse("f.toml", []byte(fine)); err != nil {
		t.Errorf("visible text refused: %v", err)
	}
	// A binary file: ten lines named, the rest counted.
	var b strings.Builder
	for i := range 25 {
		fmt.Fprintf(&b, "x%d = \"\x00\"\n", i)
	}
	_, err = Parse("bin", []byte(b.String()))
	var ce Errors
	if !errors.As(err, &ce) || len(ce) != maxTextProblems+1 || ce[9].Line != 10 || ce[10].Msg != "and 15 more lines with such characters" {
		t.Errorf("binary file: %v", err)
	}
	// A snippet (mipsec sa add -f, policy add -f) is read alike.
	if _, _, err := ParseSnippet("s.toml", []byte("\uFEFF[[sa]]\n")); err == nil || !strings.Contains(err.Error(), "s.toml:1: a UTF-8 byte order mark") {
		t.Errorf("ParseSnippet: %v", err)
	}
}

// TestReadInput: a client's -f file (JSON or TOML) gets the config file's
// text checks and size bound before the daemon sees it.
func TestReadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := `{"dir": "in", "spi": "0x1001"}`
	if got, err := ReadInput(write("ok.json", []byte(ok))); err != nil || string(got) != ok {
		t.Fatalf("plain JSON: %q %v", got, err)
	}
	for _, tt := range []struct{ name, data, want string }{
		{"bom.json", "\uFEFF" + ok, "bom.json:1: a UTF-8 byte order mark"},
		{"nul.json", "{\n\"dir\": \"in\x00\"}", "nul.json:2: a NUL byte at column 11"},
		{"zwsp.json", `{"dir": "i` + "\u200b" + `n"}`, "U+200B ZERO WIDTH SPACE"},
		{"big.json", strings.Repeat(" ", MaxFileSize+1), "larger than 4 MiB"},
	} {
		_, err := ReadInput(write(tt.name, []byte(tt.data)))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := ReadInput(dir + "/missing.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
