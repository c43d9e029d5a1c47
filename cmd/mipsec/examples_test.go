package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/node"
)

func TestExampleMobilityCheck(t *testing.T) {
	for _, name := range []string{"ha", "mn"} {
		f := withStateDir(t, filepath.Join("..", "..", "testdata", name+".toml"), t.TempDir())
		var out, errb bytes.Buffer
		if rc := checkConfig(f, &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 {
			t.Errorf("check %s = %d\n%s%s", name, rc, out.String(), errb.String())
		}
		if !strings.Contains(out.String(), "OK ("+node.RoleName(name)+", 10 SAs, 14 policies, 0 peers)") {
			t.Errorf("check %s: %q", name, out.String())
		}
		if errb.Len() != 0 {
			t.Errorf("check %s warns: %s", name, errb.String())
		}
	}
}

// TestExampleEmbedded: the embedded examples are the files in examples/
// (and testdata/ha.toml, mn.toml link to them).
func TestExampleEmbedded(t *testing.T) {
	for _, name := range []string{"ha", "mn", "ha.toml"} {
		got, err := exampleConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(name, ".toml") + ".toml"
		want, err := os.ReadFile(filepath.Join("examples", base))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: embedded copy differs from examples/%s", name, base)
		}
		td, err := os.ReadFile(filepath.Join("..", "..", "testdata", base))
		if err != nil || !bytes.Equal(td, want) {
			t.Errorf("testdata/%s is not examples/%s (%v)", base, base, err)
		}
		if _, err := config.Parse("embedded-"+base, got); err != nil {
			t.Errorf("embedded %s: %v", name, err)
		}
	}
	for _, bad := range []string{"", "gateway", "../config.go", "examples/ha.toml"} {
		if _, err := exampleConfig(bad); err == nil || !strings.Contains(err.Error(), "no example configuration") {
			t.Errorf("exampleConfig(%q) = %v", bad, err)
		}
	}
}
