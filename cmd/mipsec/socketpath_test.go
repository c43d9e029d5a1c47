package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/config"
)

// TestResolveSocketExamples: -c of every shipped configuration finds the
// socket its daemon listens on.
func TestResolveSocketExamples(t *testing.T) {
	t.Setenv("MIPSEC_SOCKET", "/run/env.sock")
	for file, want := range map[string]string{
		"../../testdata/gateway-a.toml": "/run/mipsec/gateway-a.sock",
		"../../testdata/gateway-b.toml": "/run/mipsec/gateway-b.sock",
		"../../testdata/ha.toml":        "/run/mipsec/ha.sock",
		"../../testdata/mn.toml":        "/run/mipsec/mn.sock",
		"examples/ha.toml":              "/run/mipsec/ha.sock",
		"examples/mn.toml":              "/run/mipsec/mn.sock",
	} {
		got, err := resolveSocket("", file)
		if err != nil || got != want {
			t.Errorf("resolveSocket(\"\", %s) = %q, %v; want %q", file, got, err, want)
		}
	}
}

func TestResolveSocket(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gw, err := os.ReadFile("../../testdata/gateway-a.toml")
	if err != nil {
		t.Fatal(err)
	}
	good := write("good.toml", string(gw))
	// Errors elsewhere: a key file that is not there, an unknown field.
	broken := write("broken.toml", strings.Replace(string(gw),
		`enc_key = "0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223"`, `enc_key_file = "/nonexistent/a-b.key"
colour = "blue"`, 1))
	noControl := write("nocontrol.toml", strings.Replace(string(gw), "[control]\nsocket = \"/run/mipsec/gateway-a.sock\"\n", "", 1))
	brokenNoControl := write("brokennocontrol.toml", strings.Replace(string(gw), "[control]\nsocket = \"/run/mipsec/gateway-a.sock\"\n", "colour = 1\n", 1))
	relative := write("relative.toml", strings.Replace(string(gw), `socket = "/run/mipsec/gateway-a.sock"`, `socket = "gw.sock"`, 1))
	unparsable := write("unparsable.toml", string(gw)+"\n[tun\nname = \"x\"\n")
	missing := filepath.Join(dir, "missing.toml")

	for _, tc := range []struct {
		name           string
		env            string
		socket, config string
		want           string
		wantErr        []string // substrings of the error
	}{
		{name: "nothing", want: config.DefaultControlSocket},
		{name: "env", env: "/run/env.sock", want: "/run/env.sock"},
		{name: "--socket", env: "/run/env.sock", socket: "/run/x.sock", want: "/run/x.sock"},
		{name: "--socket beats -c", socket: "/run/x.sock", config: missing, want: "/run/x.sock"},
		{name: "-c", env: "/run/env.sock", config: good, want: "/run/mipsec/gateway-a.sock"},
		{name: "-c without [control]", env: "/run/env.sock", config: noControl, want: config.DefaultControlSocket},
		{name: "-c with errors elsewhere", config: broken, want: "/run/mipsec/gateway-a.sock"},
		{name: "-c with errors and no [control]", config: brokenNoControl, want: config.DefaultControlSocket},
		{name: "-c with a relative socket", config: relative, wantErr: []string{relative, "control.socket", "relative"}},
		{name: "-c that does not parse", config: unparsable, wantErr: []string{unparsable, "does not parse", "--socket"}},
		{name: "-c missing", config: missing, wantErr: []string{missing, "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MIPSEC_SOCKET", tc.env)
			got, err := resolveSocket(tc.socket, tc.config)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("resolveSocket = %q, want an error", got)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("resolveSocket(%q, %q) = %q, %v; want %q", tc.socket, tc.config, got, err, tc.want)
			}
		})
	}
}
