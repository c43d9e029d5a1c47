package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/sad"
)

// TestSAUpdateKeepsSettings: `sa update` with one flag changes that
// setting only: the lifetime, the selectors, the tunnel endpoints and the
// keys stay what they were (the keys never travel back to the client).
func TestSAUpdateKeepsSettings(t *testing.T) {
	s, ft := startServer(t)
	c := cbcIn()
	c.Lifetime = sad.Lifetime{Soft: sad.Limits{Time: 50 * time.Minute}, Hard: sad.Limits{Time: time.Hour, Packets: 1 << 40}}
	c.Params.ReplayWindow = 256
	if err := ft.UpdateSA(c); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, s, "sa", "update", "--dir", "in", "--spi", "0xb001", "--replay-window", "2048")
	sa := ft.sad.Lookup(sad.Inbound, 0xb001)
	if sa == nil {
		t.Fatal("the SA is gone")
	}
	if got := sa.Lifetime(); got != c.Lifetime {
		t.Errorf("lifetime %+v, want %+v kept", got, c.Lifetime)
	}
	p := sa.Params()
	if p.ReplayWindow != 2048 || p.TunnelSrc != tunB || p.TunnelDst != tunA || sa.Name() != "b-to-a" {
		t.Errorf("after update: %+v name %q", p, sa.Name())
	}
	if enc, auth, _ := ft.SAKeys(sad.Inbound, 0xb001); !bytes.Equal(enc, cbcEnc) || !bytes.Equal(auth, cbcMac) {
		t.Error("the keys changed")
	}
	if got := sa.Selectors(); len(got) != 1 || got[0] != c.Selectors[0] {
		t.Errorf("selectors %v", got)
	}
	// sa.get never carries keys.
	var spec control.SASpec
	if err := (control.Client{Path: s.Path()}).Call("sa.get", control.SARef{Dir: "in", SPI: 0xb001}, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.EncKey != "" || spec.AuthKey != "" {
		t.Errorf("sa.get answered keys: %+v", spec)
	}
	// sa list shows the lifetime and what is left of it; SPIs are hex in JSON.
	out := mustCLI(t, s, "sa", "list", "--json")
	var sas []control.SAInfo
	if err := json.Unmarshal([]byte(out), &sas); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range sas {
		if x.SPI == 0xb001 {
			found = true
			if x.Lifetime == nil || x.Lifetime.HardTime != "1h0m0s" || x.Lifetime.HardIn == "" || x.Lifetime.SoftIn == "" {
				t.Errorf("lifetime in sa list: %+v", x.Lifetime)
			}
		}
	}
	if !found || !strings.Contains(out, `"spi": "0x0000b001"`) {
		t.Errorf("sa list --json:\n%s", out)
	}
	// Another algorithm without new keys is refused, and the SA stays.
	if _, errs, rc := cli(t, s, "sa", "update", "--dir", "in", "--spi", "0xb001", "--alg", "aes128gcm16"); rc != 1 || !strings.Contains(errs, "needs new keys") {
		t.Errorf("algorithm change without keys: %d %q", rc, errs)
	}
	if sa := ft.sad.Lookup(sad.Inbound, 0xb001); sa == nil || sa.Params().Algorithm != p.Algorithm {
		t.Error("a refused update changed the SA")
	}
	// Updating an SA that does not exist says so.
	if _, errs, rc := cli(t, s, "sa", "update", "--dir", "in", "--spi", "0xbeef", "--esn"); rc != 1 || !strings.Contains(errs, "no such SA") {
		t.Errorf("update of a missing SA: %d %q", rc, errs)
	}
}

// TestSAFlagErrors: errors name the flag the user typed, not a Go parser
// or a config key.
func TestSAFlagErrors(t *testing.T) {
	s, _ := startServer(t)
	base := []string{"sa", "add", "--dir", "out", "--spi", "0xa0f0", "--alg", "aes128gcm16",
		"--enc-key", "0x00112233445566778899aabbccddeeff00112233", "--src", "198.51.100.1", "--dst", "203.0.113.1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--src", "foo"}, "--src: "},
		{[]string{"--dst", "foo"}, "--dst: "},
		{[]string{"--enc-key", "0x00"}, "--enc-key: "},
		{[]string{"--alg", "rot13"}, "--alg: \"rot13\" is not an algorithm"},
		{[]string{"--lport", "99999"}, "--lport: "},
		{[]string{"--local", "10.0.0.0/99"}, "--local: "},
		{[]string{"--spi", "7"}, "--spi: 7 is reserved"},
	} {
		args := append(append([]string{}, base...), tc.args...)
		_, errs, rc := cli(t, s, args...)
		if rc != 2 || !strings.Contains(errs, tc.want) || strings.Contains(errs, "ParseAddr") {
			t.Errorf("%v: exit %d %q, want %q", tc.args, rc, errs, tc.want)
		}
	}
	// Inbound: --src is the peer's address, config's "remote".
	_, errs, _ := cli(t, s, "sa", "add", "--dir", "in", "--spi", "0xb0f0", "--alg", "aes128gcm16",
		"--enc-key", "0x00112233445566778899aabbccddeeff00112233", "--src", "bar", "--dst", "198.51.100.1")
	if !strings.Contains(errs, "--src: ") {
		t.Errorf("inbound --src error: %q", errs)
	}
}

// TestClientSocketFromConfig: `mipsec status -c FILE` talks to the daemon
// of FILE (its [control] socket), --socket still wins, and capture keeps
// -c for its count (--config names the file there).
func TestClientSocketFromConfig(t *testing.T) {
	s, _ := startServer(t)
	dir := t.TempDir()
	file := dir + "/gw.toml"
	if err := os.WriteFile(file, []byte("[control]\nsocket = \""+s.Path()+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status", "-c", file}, {"sa", "list", "--config", file}, {"peers", "-c", file, "--json"}} {
		var out, errb bytes.Buffer
		if rc := run(args, &out, &errb); rc != 0 {
			t.Errorf("%v: exit %d %s", args, rc, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"status", "-c", file, "--socket", dir + "/nothing.sock"}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "nothing.sock") {
		t.Errorf("--socket did not win over -c: %d %q", rc, errb.String())
	}
	errb.Reset()
	if rc := run([]string{"status", "-c", dir + "/missing.toml"}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "missing.toml") {
		t.Errorf("missing config: %d %q", rc, errb.String())
	}
}
