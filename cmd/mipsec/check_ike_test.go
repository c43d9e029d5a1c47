package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ikePair writes testdata/ike-gateway-a.toml and -b.toml into a temp dir
// with their PSK file (content psk, mode 0600) and state there.
func ikePair(t *testing.T, psk string) (a, b, key string) {
	t.Helper()
	dir := t.TempDir()
	key = filepath.Join(dir, "a-b.psk")
	if err := os.WriteFile(key, []byte(psk), 0o600); err != nil {
		t.Fatal(err)
	}
	var out [2]string
	for i, name := range []string{"ike-gateway-a.toml", "ike-gateway-b.toml"} {
		f := withStateDir(t, "../../testdata/"+name, filepath.Join(dir, "state"))
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte("/etc/mipsec/gateway-a-b.psk"), []byte(key))
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out[i] = f
	}
	return out[0], out[1], key
}

// TestCheckIKE: the IKE example pair passes check, which counts the
// connections, does not ask for [[policy]] tables (the daemon installs
// the children's policies) and never prints the secret.
func TestCheckIKE(t *testing.T) {
	const psk = "0sq2Vx3mZ0c8b1Lh4Yk9TnRw2pF7sJd6GaU0oE5iXyWcM=\n"
	a, b, _ := ikePair(t, psk)
	for _, f := range []string{a, b} {
		var out, errb bytes.Buffer
		if rc := checkConfig(f, &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 {
			t.Fatalf("%s: rc %d\n%s%s", f, rc, out.String(), errb.String())
		}
		if want := f + ": OK (0 SAs, 0 policies, 0 peers, 1 IKE connection)\n"; out.String() != want {
			t.Errorf("stdout %q, want %q", out.String(), want)
		}
		if errb.Len() != 0 {
			t.Errorf("warnings: %s", errb.String())
		}
	}
	// A short key: a warning with file:line and the field, not the key.
	const short = "hunter2"
	a, _, _ = ikePair(t, short+"\n")
	var out, errb bytes.Buffer
	if rc := checkConfig(a, &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	if w := errb.String(); !strings.HasPrefix(w, "warning: "+a+":") || !strings.Contains(w, ": connection[0].local.psk_file: the pre-shared key in ") ||
		!strings.Contains(w, "is 7 bytes") || strings.Contains(w+out.String(), short) {
		t.Errorf("short PSK warning: %q", w)
	}
	// A group-readable key file is an error that says chmod 600.
	a, _, key := ikePair(t, psk)
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if rc := checkConfig(a, &out, &errb, fakeProbe(ext4Magic, nil)); rc != 1 || !strings.Contains(errb.String(), "chmod 600 "+key) ||
		strings.Contains(errb.String(), "q2Vx3mZ0") {
		t.Errorf("rc %d: %s", rc, errb.String())
	}
}

// TestCheckIKERouteLoop: a TUN route covering an IKE peer is a warning
// with underlay.fwmark = "off", as for a [[peer]].
func TestCheckIKERouteLoop(t *testing.T) {
	a, _, _ := ikePair(t, "0sq2Vx3mZ0c8b1Lh4Yk9TnRw2pF7sJd6GaU0oE5iXyWcM=\n")
	data, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`routes = ["192.0.2.128/25", "2001:db8:b::/48"]`), []byte(`routes = ["0.0.0.0/0"]`), 1)
	data = bytes.Replace(data, []byte("[underlay]\n"), []byte("[underlay]\nfwmark = \"off\"\n"), 1)
	if err := os.WriteFile(a, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if rc := checkConfig(a, &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	if !strings.Contains(errb.String(), `warning: tun.routes: 0.0.0.0/0 covers 203.0.113.1, the peer of IKE connection "gateway-b", and underlay.fwmark = "off"`) {
		t.Errorf("no route-loop warning: %s", errb.String())
	}
}
