package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/sad"
)

// TestCrossCheckExamples: the example pairs of testdata mirror each other.
func TestCrossCheckExamples(t *testing.T) {
	for _, tt := range []struct {
		a, b  string
		pairs int
	}{
		{"gateway-a.toml", "gateway-b.toml", 4},
		{"ha.toml", "mn.toml", 10},
	} {
		a, b := fixture.Load(t, "../../testdata/"+tt.a), fixture.Load(t, "../../testdata/"+tt.b)
		if pairs, problems := crossCheck(a, b); pairs != tt.pairs || len(problems) != 0 {
			t.Errorf("%s and %s: %d pairs (want %d), %q", tt.a, tt.b, pairs, tt.pairs, problems)
		}
		if pairs, problems := crossCheck(b, a); pairs != tt.pairs || len(problems) != 0 {
			t.Errorf("%s and %s: %d pairs (want %d), %q", tt.b, tt.a, pairs, tt.pairs, problems)
		}
	}
}

// editSA replaces old with new in the [[sa]] of file whose dir is dir
// (pair writes one of each).
func editSA(t *testing.T, file, dir, old, new string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(data), "\n[[sa]]\n")
	n := 0
	for i, b := range blocks[1:] {
		body, rest, _ := strings.Cut(b, "\n\n") // the SA ends at a blank line
		if strings.Contains(body, "\ndir = \""+dir+"\"\n") {
			if !strings.Contains(body, old) {
				t.Fatalf("the %s SA of %s has no %q", dir, file, old)
			}
			blocks[i+1] = strings.Replace(body, old, new, 1) + "\n\n" + rest
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%s: %d SAs with dir = %q", file, n, dir)
	}
	if err := os.WriteFile(file, []byte(strings.Join(blocks, "\n[[sa]]\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

func replaceAll(t *testing.T, file, old, new string) {
	t.Helper()
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %q", file, old)
	}
	os.WriteFile(file, []byte(strings.ReplaceAll(string(data), old, new)), 0o600)
}

// TestCrossCheckCatches mutates B of a fresh pair and expects
// `mipsec check A B` to say what is wrong, naming both files and SAs, exit 1.
func TestCrossCheckCatches(t *testing.T) {
	for _, tt := range []struct {
		name   string
		alg    string
		mutate func(t *testing.T, a, b string, ab, ba uint32, key []byte)
		want   func(a, b string, ab, ba uint32) []string
	}{
		{
			name: "wrong key",
			mutate: func(t *testing.T, a, b string, ab, ba uint32, key []byte) {
				other := append([]byte(nil), key...)
				other[0] ^= 1
				editSA(t, b, "in", hexKey(key), hexKey(other))
			},
			want: func(a, b string, ab, ba uint32) []string {
				return []string{fmt.Sprintf("%s sa[0] (out 0x%08x) and %s sa[1] (in 0x%08x): keys differ (enc_key)", a, ab, b, ab)}
			},
		},
		{
			name: "wrong auth key",
			alg:  "aes128-sha256",
			mutate: func(t *testing.T, a, b string, ab, ba uint32, key []byte) {
				cfg := fixture.Load(t, b)
				auth := cfg.SAs[1].Params.AuthKey
				other := append([]byte(nil), auth...)
				other[len(other)-1] ^= 0x80
				editSA(t, b, "in", hexKey(auth), hexKey(other))
			},
			want: func(a, b string, ab, ba uint32) []string {
				return []string{fmt.Sprintf("%s sa[0] (out 0x%08x) and %s sa[1] (in 0x%08x): keys differ (auth_key)", a, ab, b, ab)}
			},
		},
		{
			name: "wrong SPI",
			mutate: func(t *testing.T, a, b string, ab, ba uint32, key []byte) {
				// B's inbound SA and its peer's in_spis: B still validates.
				replaceAll(t, b, spiHex(ab), spiHex(ab^0x10000000))
			},
			want: func(a, b string, ab, ba uint32) []string {
				wrong := ab ^ 0x10000000
				return []string{
					fmt.Sprintf("%s sa[0] (out 0x%08x): %s has no inbound SA with SPI 0x%08x to open it", a, ab, b, ab),
					fmt.Sprintf("%s sa[1] (in 0x%08x): %s has no outbound SA with SPI 0x%08x to send under it", b, wrong, a, wrong),
					fmt.Sprintf("%s policy[0] (out): protects with SPI 0x%08x, but %s has no inbound SA with that SPI", a, ab, b),
				}
			},
		},
		{
			name: "mismatched selectors",
			mutate: func(t *testing.T, a, b string, ab, ba uint32, key []byte) {
				editSA(t, b, "in", `remote = "192.0.2.0/25"`, `remote = "192.0.2.0/26"`)
			},
			want: func(a, b string, ab, ba uint32) []string {
				return []string{fmt.Sprintf("%s sa[0] (out 0x%08x) and %s sa[1] (in 0x%08x): selectors do not mirror "+
					"(%s: [192.0.2.0/25 -> 192.0.2.128/25 proto any]; %s: [192.0.2.128/25 -> 192.0.2.0/26 proto any]): each side's local must be the other's remote", a, ab, b, ab, a, b)}
			},
		},
		{
			name: "selectors not swapped",
			mutate: func(t *testing.T, a, b string, ab, ba uint32, key []byte) {
				// B's outbound SA written from A's side.
				editSA(t, b, "out", `selectors = [{ local = "192.0.2.128/25", remote = "192.0.2.0/25" }]`, `selectors = [{ local = "192.0.2.0/25", remote = "192.0.2.128/25" }]`)
			},
			want: func(a, b string, ab, ba uint32) []string {
				return []string{fmt.Sprintf("%s sa[0] (out 0x%08x) and %s sa[1] (in 0x%08x): selectors do not mirror", b, ba, a, ba)}
			},
		},
		{
			name: "tunnel endpoint",
			mutate: func(t *testing.T, a, b string, ab, ba uint32, key []byte) {
				editSA(t, b, "in", `remote = "198.51.100.1"`, `remote = "198.51.100.2"`)
			},
			want: func(a, b string, ab, ba uint32) []string {
				return []string{fmt.Sprintf("%s sa[0] (out 0x%08x) and %s sa[1] (in 0x%08x): tunnel endpoints do not mirror (%s: local 198.51.100.1, remote 203.0.113.1; %s: local 203.0.113.1, remote 198.51.100.2)", a, ab, b, ab, a, b)}
			},
		},
		{
			name: "esn",
			mutate: func(t *testing.T, a, b string, ab, ba uint32, key []byte) {
				editSA(t, b, "in", "replay_window = 1024\n", "replay_window = 1024\nesn = true\n")
			},
			want: func(a, b string, ab, ba uint32) []string {
				return []string{fmt.Sprintf("%s sa[0] (out 0x%08x) and %s sa[1] (in 0x%08x): esn differs (false in %s, true in %s)", a, ab, b, ab, a, b)}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			if tt.alg != "" {
				args = []string{"--alg", tt.alg}
			}
			a, b := writeTestPair(t, args...)
			cfgA := fixture.Load(t, a)
			ab, ba := cfgA.SAs[0].Params.SPI, cfgA.SAs[1].Params.SPI
			key := cfgA.SAs[0].Params.EncKey
			tt.mutate(t, a, b, ab, ba, key)
			// B alone is still a valid config: only the pair is wrong.
			var out, errb bytes.Buffer
			if rc := run([]string{"check", "-c", b}, &out, &errb); rc != 0 {
				t.Fatalf("the mutated %s alone: rc %d: %s", b, rc, errb.String())
			}
			for _, cmd := range [][]string{{"check", a, b}, {"check", "-c", a, "-c", b}} {
				out.Reset()
				errb.Reset()
				if rc := run(cmd, &out, &errb); rc != 1 {
					t.Errorf("%q: rc %d, want 1\n%s%s", cmd, rc, out.String(), errb.String())
				}
				for _, w := range tt.want(a, b, ab, ba) {
					if !strings.Contains(errb.String(), w) {
						t.Errorf("%q: stderr lacks\n  %s\ngot:\n%s", cmd, w, errb.String())
					}
				}
				if !strings.Contains(errb.String(), "do not mirror each other") || strings.Contains(out.String(), "OK: ") {
					t.Errorf("%q: stdout %q stderr %q", cmd, out.String(), errb.String())
				}
				// Keys are never printed, in any form.
				for _, s := range fixture.Load(t, a).SAs {
					for _, k := range [][]byte{s.Params.EncKey, s.Params.AuthKey} {
						if len(k) > 0 && (strings.Contains(strings.ToLower(errb.String()+out.String()), hex.EncodeToString(k))) {
							t.Errorf("a key of %s is in the output", s.Path)
						}
					}
				}
			}
		})
	}
}

// TestCrossCheckInMemory covers what a text edit cannot reach without
// also breaking the single-file check: algorithm and mode.
func TestCrossCheckInMemory(t *testing.T) {
	a, b := writeTestPair(t)
	cfgA, cfgB := fixture.Load(t, a), fixture.Load(t, b)
	in := &cfgB.SAs[1].Params
	in.Algorithm = esp.AES256GCM16
	cfgB.SAs[0].Params.Mode = esp.Transport
	_, problems := crossCheck(cfgA, cfgB)
	joined := strings.Join(problems, "\n")
	for _, w := range []string{
		"sa[1] (in 0x", "algorithms differ (aes128gcm16 in " + a + ", aes256gcm16 in " + b + ")",
		"modes differ (transport in " + b + ", tunnel in " + a + ")",
	} {
		if !strings.Contains(joined, w) {
			t.Errorf("problems lack %q:\n%s", w, joined)
		}
	}
	if strings.Contains(joined, "keys differ") {
		t.Errorf("keys of different algorithms compared:\n%s", joined)
	}
	// Selector sets mirror in any order; ports swap with the addresses.
	s1 := sad.Selector{Local: sad.AnyAddr, Proto: 6, LocalPort: sad.Port(22), RemotePort: sad.PortsRange(1024, 65535)}
	s2 := sad.Selector{Proto: 17}
	if !selectorsMirror([]sad.Selector{s1, s2}, []sad.Selector{mirrorSelector(s2), mirrorSelector(s1)}) {
		t.Error("reordered mirrored selectors do not mirror")
	}
	if selectorsMirror([]sad.Selector{s1, s2}, []sad.Selector{s1, mirrorSelector(s2)}) {
		t.Error("unswapped ports mirror")
	}
	if selectorsMirror([]sad.Selector{s1, s2}, []sad.Selector{mirrorSelector(s1)}) {
		t.Error("a missing selector mirrors")
	}
}

// TestCheckTwoFiles: `check -c A -c B` used to check only B (flag keeps
// the last -c); now both are checked, whichever is bad.
func TestCheckTwoFiles(t *testing.T) {
	good := "../../testdata/gateway-a.toml"
	bad := "../../testdata/bad/syntax.toml"
	for _, args := range [][]string{
		{"check", "-c", bad, "-c", good},
		{"check", "-c", good, "-c", bad},
		{"check", bad, good},
		{"check", "-c", good, bad},
	} {
		var out, errb bytes.Buffer
		if rc := run(args, &out, &errb); rc != 1 {
			t.Errorf("%q: rc %d, want 1", args, rc)
		}
		if !strings.Contains(errb.String(), "syntax.toml: 1 error") || !strings.Contains(out.String(), "gateway-a.toml: OK") {
			t.Errorf("%q: both files were not checked\nstdout: %s\nstderr: %s", args, out.String(), errb.String())
		}
		if !strings.Contains(errb.String(), "not cross-checked") {
			t.Errorf("%q: stderr %s", args, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"check", "-c", "../../testdata/gateway-b.toml", "-c", good}, &out, &errb); rc != 0 ||
		!strings.Contains(out.String(), "gateway-b.toml: OK") || !strings.Contains(out.String(), "gateway-a.toml: OK") ||
		!strings.Contains(out.String(), "OK: ../../testdata/gateway-b.toml and ../../testdata/gateway-a.toml mirror each other (4 SA pairs)") {
		t.Errorf("rc %d\n%s%s", rc, out.String(), errb.String())
	}
	for _, args := range [][]string{
		{"check", good},                  // one file is -c FILE
		{"check", good, good},            // the same file twice
		{"check", "-c", good, good, bad}, // three
	} {
		out.Reset()
		errb.Reset()
		if rc := run(args, &out, &errb); rc != 2 || !strings.Contains(errb.String(), "usage: mipsec check") {
			t.Errorf("%q: rc %d, stderr %s", args, rc, errb.String())
		}
	}
}
