package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/esp"
)

// genkeyConfig is a one-SA config around the key lines of an SA.
const genkeyConfig = `state_dir = "/var/lib/mipsec/test"

[tun]
name = "mipsec0"

[underlay]
local = ["198.51.100.1"]

[[sa]]
spi = 0x0000b001
dir = "out"
local = "198.51.100.1"
remote = "203.0.113.1"
algorithm = %q
%s
selectors = [{ local = "192.0.2.0/25", remote = "192.0.2.128/25" }]
`

var hexKeyLine = regexp.MustCompile(`^0x[0-9a-f]+$`)

// TestGenkey: every algorithm gets keys of exactly its sizes, in a form a
// config takes as it is printed, fresh each time.
func TestGenkey(t *testing.T) {
	for _, name := range esp.AlgorithmNames() {
		t.Run(name, func(t *testing.T) {
			alg, _ := esp.ParseAlgorithm(name)
			genkey := func(args ...string) string {
				t.Helper()
				var out, errb bytes.Buffer
				if rc := run(append([]string{"genkey", "--alg", name}, args...), &out, &errb); rc != 0 {
					t.Fatalf("genkey %q: rc %d: %s", args, rc, errb.String())
				}
				return out.String()
			}
			out := genkey()
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			var keyLines string
			switch {
			case alg.AuthKeyLen() == 0: // combined mode: one bare key
				if len(lines) != 1 || !hexKeyLine.MatchString(lines[0]) {
					t.Fatalf("output %q, want one 0x... line", out)
				}
				keyLines = fmt.Sprintf("enc_key = %q", lines[0])
			case alg.EncKeyLen() == 0: // NULL
				if len(lines) != 1 || !strings.HasPrefix(lines[0], `auth_key = "0x`) {
					t.Fatalf("output %q, want one auth_key line", out)
				}
				keyLines = out
			default:
				if len(lines) != 2 || !strings.HasPrefix(lines[0], `enc_key = "0x`) || !strings.HasPrefix(lines[1], `auth_key = "0x`) {
					t.Fatalf("output %q, want enc_key and auth_key lines", out)
				}
				keyLines = out
			}
			cfg, err := config.Parse("genkey.toml", fmt.Appendf(nil, genkeyConfig, name, keyLines))
			if err != nil {
				t.Fatalf("the keys do not parse in a config:\n%s\n%v", keyLines, err)
			}
			p := cfg.SAs[0].Params
			if len(p.EncKey) != alg.EncKeyLen() || len(p.AuthKey) != alg.AuthKeyLen() {
				t.Errorf("keys of %d and %d bytes, want %d and %d", len(p.EncKey), len(p.AuthKey), alg.EncKeyLen(), alg.AuthKeyLen())
			}
			if out2 := genkey(); out2 == out {
				t.Errorf("two runs printed the same keys")
			}
			// --enc and --auth print one key bare.
			for _, k := range []struct {
				flag string
				n    int
			}{{"--enc", alg.EncKeyLen()}, {"--auth", alg.AuthKeyLen()}} {
				var o, e bytes.Buffer
				rc := run([]string{"genkey", "--alg", name, k.flag}, &o, &e)
				if k.n == 0 {
					if rc != 2 || e.Len() == 0 {
						t.Errorf("%s with no such key: rc %d, stderr %q", k.flag, rc, e.String())
					}
					continue
				}
				s := strings.TrimSpace(o.String())
				if rc != 0 || !hexKeyLine.MatchString(s) {
					t.Fatalf("%s: rc %d, %q", k.flag, rc, o.String())
				}
				b, err := config.DecodeHexKey(s)
				if err != nil || len(b) != k.n {
					t.Errorf("%s: %d bytes (%v), want %d", k.flag, len(b), err, k.n)
				}
			}
		})
	}
}

// TestGenkeyDefault: without --alg, the 20 bytes of aes128gcm16
// (16-byte key + 4-byte salt), as testdata/gateway-a.toml says.
func TestGenkeyDefault(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"genkey"}, &out, &errb); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	k, err := config.DecodeHexKey(strings.TrimSpace(out.String()))
	if err != nil || len(k) != 20 {
		t.Errorf("%q: %d bytes, %v", out.String(), len(k), err)
	}
	// `mipsec genkey > a-b.key` makes a key file the config reads.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a-b.key"), out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(filepath.Join(dir, "c.toml"), fmt.Appendf(nil, genkeyConfig, "aes128gcm16", `enc_key_file = "a-b.key"`))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg.SAs[0].Params.EncKey, k) {
		t.Errorf("key file read as %x, want %x", cfg.SAs[0].Params.EncKey, k)
	}
}

func TestGenkeyUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"genkey", "-h"}, &out, &errb); rc != 0 {
		t.Errorf("-h: rc %d", rc)
	}
	if !strings.Contains(out.String(), "usage: mipsec genkey") || !strings.Contains(out.String(), "4-byte salt") || !strings.Contains(out.String(), "-alg") {
		t.Errorf("-h printed %q", out.String())
	}
	for _, args := range [][]string{
		{"genkey", "--alg", "rot13"},
		{"genkey", "--enc", "--auth", "--alg", "aes128-sha256"},
		{"genkey", "extra"},
		{"genkey", "--bogus"},
	} {
		out.Reset()
		errb.Reset()
		if rc := run(args, &out, &errb); rc != 2 || errb.Len() == 0 || out.Len() != 0 {
			t.Errorf("%q: rc %d, stdout %q, stderr %q", args, rc, out.String(), errb.String())
		}
	}
	out.Reset()
	run([]string{"help"}, &out, &errb)
	for _, cmd := range []string{"mipsec genkey", "mipsec pair", "mipsec check A B"} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("usage lacks %q", cmd)
		}
	}
}
