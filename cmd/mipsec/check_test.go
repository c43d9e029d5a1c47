package main

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/seqstore"
)

const ext4Magic = 0xef53

// fakeProbe reports every path on a filesystem of type fsType, writable
// unless writeErr is set, and both address families forwarded.
func fakeProbe(fsType int64, writeErr error) stateProbe {
	return stateProbe{
		statfs:     func(string) (int64, error) { return fsType, nil },
		writable:   func(string) error { return writeErr },
		forwarding: func(netip.Addr) bool { return true },
	}
}

func TestCheck(t *testing.T) {
	existing := t.TempDir()
	gcm := "../../testdata/gateway-a.toml" // aes128gcm16 outbound: counter mode
	cbcOnly := func(t *testing.T, stateDir string) string {
		// gateway-a with the v4 SAs turned into CBC: nothing counter-mode.
		f := withStateDir(t, gcm, stateDir)
		data, _ := os.ReadFile(f)
		s := strings.ReplaceAll(string(data), `algorithm = "aes128gcm16"
enc_key = "0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223"`, `algorithm = "aes128-sha256"
enc_key = "0x4a0b1c2d3e4f5061728394a5b6c7d8e9"
auth_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"`)
		os.WriteFile(f, []byte(s), 0o600)
		return f
	}
	for _, tt := range []struct {
		name     string
		file     func(t *testing.T) string
		probe    stateProbe
		rc       int
		warn     []string // substrings of stderr
		noWarn   bool
		stdoutOK bool
	}{
		{name: "persistent", file: func(t *testing.T) string { return withStateDir(t, gcm, existing) },
			probe: fakeProbe(ext4Magic, nil), rc: 0, noWarn: true, stdoutOK: true},
		{name: "tmpfs", file: func(t *testing.T) string { return withStateDir(t, gcm, existing) },
			probe: fakeProbe(tmpfsMagic, nil), rc: 0, stdoutOK: true,
			warn: []string{"is on tmpfs", "sa[0] (a-to-b-v4) uses a counter-mode algorithm", "RFC 8221 §3", "reuses IVs"}},
		{name: "ramfs", file: func(t *testing.T) string { return withStateDir(t, gcm, existing) },
			probe: fakeProbe(ramfsMagic, nil), rc: 0, stdoutOK: true, warn: []string{"is on ramfs", "RFC 8221"}},
		{name: "not writable", file: func(t *testing.T) string { return withStateDir(t, gcm, existing) },
			probe: fakeProbe(ext4Magic, errors.New("permission denied")), rc: 0, stdoutOK: true,
			warn: []string{"is not writable", "permission denied", "RFC 8221"}},
		{name: "missing", file: func(t *testing.T) string { return withStateDir(t, gcm, filepath.Join(existing, "a", "b")) },
			probe: fakeProbe(ext4Magic, nil), rc: 0, stdoutOK: true, warn: []string{"does not exist yet; mipsec run creates it (mode 0700) under " + existing}},
		{name: "missing on tmpfs", file: func(t *testing.T) string { return withStateDir(t, gcm, filepath.Join(existing, "a")) },
			probe: fakeProbe(tmpfsMagic, nil), rc: 0, stdoutOK: true, warn: []string{"does not exist yet", "is on tmpfs"}},
		{name: "cbc only on tmpfs", file: func(t *testing.T) string { return cbcOnly(t, existing) },
			probe: fakeProbe(tmpfsMagic, nil), rc: 0, noWarn: true, stdoutOK: true},
		{name: "endpoint mismatch", file: func(t *testing.T) string {
			f := withStateDir(t, gcm, existing)
			data, _ := os.ReadFile(f)
			os.WriteFile(f, []byte(strings.Replace(string(data), `endpoint = "203.0.113.1"`, `endpoint = "203.0.113.9"`, 1)), 0o600)
			return f
		}, probe: fakeProbe(ext4Magic, nil), rc: 0, stdoutOK: true,
			warn: []string{`sa[0]: remote tunnel address 203.0.113.1 is not the endpoint 203.0.113.9 of its peer "gateway-b"`}},
		{name: "bad config", file: func(t *testing.T) string { return "../../testdata/bad/many-errors.toml" },
			probe: fakeProbe(ext4Magic, nil), rc: 1, warn: []string{"sa[0].mode", "underlay.encap", "sa[1].dir", "4 errors"}},
		{name: "no such file", file: func(t *testing.T) string { return filepath.Join(existing, "nope.toml") },
			probe: fakeProbe(ext4Magic, nil), rc: 1, warn: []string{"no such file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			rc := checkConfig(tt.file(t), &out, &errb, tt.probe)
			if rc != tt.rc {
				t.Errorf("rc %d, want %d\nstdout: %s\nstderr: %s", rc, tt.rc, out.String(), errb.String())
			}
			for _, w := range tt.warn {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
			if tt.noWarn && errb.Len() != 0 {
				t.Errorf("unexpected warnings:\n%s", errb.String())
			}
			if got := strings.Contains(out.String(), ": OK ("); got != tt.stdoutOK {
				t.Errorf("stdout %q", out.String())
			}
		})
	}
}

// TestCheckCorruptState: a corrupt sequence-number record is an error
// for check, as it is for run.
func TestCheckCorruptState(t *testing.T) {
	state := t.TempDir()
	file := withStateDir(t, "../../testdata/gateway-a.toml", state)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.SAs[0].Params
	st, _ := seqstore.Open(state, seqstore.Options{})
	if err := os.WriteFile(st.Path(node.KeyFingerprint(p)), []byte("mipsec seqstore v2\ngarbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if rc := checkConfig(file, &out, &errb, fakeProbe(ext4Magic, nil)); rc != 1 {
		t.Fatalf("rc %d\n%s", rc, errb.String())
	}
	if !strings.Contains(errb.String(), "sa[0]") || !strings.Contains(errb.String(), "corrupt") {
		t.Errorf("stderr: %s", errb.String())
	}
}

func TestCheckCommandLine(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"check", "-c", "../../testdata/bad/key-length.toml"}, &out, &errb); rc != 1 {
		t.Errorf("rc %d", rc)
	}
	if !strings.Contains(errb.String(), "key-length.toml:26: sa[0].enc_key: 15 bytes, aes128gcm16 needs 20 (16-byte key + 4-byte salt)") {
		t.Errorf("stderr: %s", errb.String())
	}
	out.Reset()
	errb.Reset()
	if rc := run([]string{"check", "-c", "../../testdata/gateway-b.toml"}, &out, &errb); rc != 0 {
		t.Errorf("rc %d: %s", rc, errb.String())
	}
	if rc := run([]string{"check", "extra"}, &out, &errb); rc != 2 {
		t.Errorf("stray argument: rc %d", rc)
	}
	if rc := run([]string{"run", "-c", "../../testdata/bad/syntax.toml"}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "nothing started") {
		t.Errorf("run with a bad config: rc %d: %s", rc, errb.String())
	}
}

// TestCheckRouteLoop: a TUN route covering the peer's endpoint (here
// 0.0.0.0/0, a full tunnel) is a warning with underlay.fwmark = "off",
// naming the fix, and a note on stdout with the default fwmark, which
// says what run does about it; the shipped mobile node's home route that
// covers its home agent is a note too.
func TestCheckRouteLoop(t *testing.T) {
	full := func(t *testing.T, extra string) string {
		f := withStateDir(t, "../../testdata/gateway-a.toml", t.TempDir())
		data, _ := os.ReadFile(f)
		s := strings.Replace(string(data), `routes = ["192.0.2.128/25", "2001:db8:b::/48"]`, `routes = ["0.0.0.0/0", "::/0"]`, 1)
		s = strings.Replace(s, "[underlay]\n", "[underlay]\n"+extra, 1)
		os.WriteFile(f, []byte(s), 0o600)
		return f
	}
	var out, errb bytes.Buffer
	if rc := checkConfig(full(t, `fwmark = "off"`+"\n"), &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	for _, w := range []string{`warning: tun.routes: 0.0.0.0/0 covers 203.0.113.1, the endpoint of peer "gateway-b"`,
		"loops", `drop reason "loop"`, `remove underlay.fwmark = "off"`, "more specific route to 203.0.113.1"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errb.String())
		}
	}
	if n := strings.Count(errb.String(), "tun.routes:"); n != 1 {
		t.Errorf("%d route warnings (one per address), want 1:\n%s", n, errb.String())
	}

	out.Reset()
	errb.Reset()
	if rc := checkConfig(full(t, "fwmark = 0x51\nroute_table = 1000\n"), &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	if strings.Contains(errb.String(), "tun.routes") {
		t.Errorf("a warning with fwmark on:\n%s", errb.String())
	}
	for _, w := range []string{"note: tun.routes: 0.0.0.0/0 covers 203.0.113.1", "underlay.fwmark = 0x51", "tables 1000..1128", "ip rule not fwmark 0x51"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, out.String())
		}
	}

	out.Reset()
	errb.Reset()
	if rc := checkConfig(withStateDir(t, "../../testdata/mn.toml", t.TempDir()), &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	if !strings.Contains(out.String(), "note: tun.routes: 2001:db8:1::/64 covers 2001:db8:1::1, the home agent") {
		t.Errorf("mn: no note about the home agent:\n%s", out.String())
	}

	// Bad values.
	for _, tt := range []struct{ extra, want string }{
		{"fwmark = 0\n", "underlay.fwmark"},
		{`fwmark = "x"` + "\n", "underlay.fwmark"},
		{"route_table = 200\n", "reserved"},
		{"fwmark = \"off\"\nroute_table = 1000\n", "only used with the mark"},
	} {
		errb.Reset()
		if rc := checkConfig(full(t, tt.extra), &out, &errb, fakeProbe(ext4Magic, nil)); rc != 1 || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%q: rc %d, stderr %s", tt.extra, rc, errb.String())
		}
	}
}

// TestCheckHAForwarding: for a home agent, check warns (exit 0) for each
// home prefix whose family this machine does not forward, with the sysctl
// to set and that check may run elsewhere; not for a family forwarded, and
// never for a mobile node or a gateway, which the HA's rule does not
// concern.
func TestCheckHAForwarding(t *testing.T) {
	ha := withStateDir(t, "../../testdata/ha.toml", t.TempDir())
	for _, tt := range []struct {
		name       string
		file       string
		forwarding func(netip.Addr) bool
		want       []string // each in its own warning line
		notWant    string
	}{
		{"HA, IPv4 off", ha, func(a netip.Addr) bool { return a.Is6() },
			[]string{"mobility.home_prefix_v4 192.0.2.0/24: forwarding of its family is off on this machine (net.ipv4.ip_forward = 0)"}, "net.ipv6"},
		{"HA, both off", ha, func(netip.Addr) bool { return false }, []string{
			"mobility.home_prefix 2001:db8:1::/64: forwarding of its family is off on this machine (net.ipv6.conf.all.forwarding = 0)",
			"`sysctl -w net.ipv4.ip_forward=1` before `mipsec run` (a warning only: check may run on another machine than the home agent)"}, ""},
		{"HA, both on", ha, func(netip.Addr) bool { return true }, nil, "forwarding"},
		{"MN", withStateDir(t, "../../testdata/mn.toml", t.TempDir()), func(netip.Addr) bool { return false }, nil, "forwarding"},
		{"gateway", withStateDir(t, "../../testdata/gateway-a.toml", t.TempDir()), func(netip.Addr) bool { return false }, nil, "forwarding"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			probe := fakeProbe(ext4Magic, nil)
			probe.forwarding = tt.forwarding
			var out, errb bytes.Buffer
			if rc := checkConfig(tt.file, &out, &errb, probe); rc != 0 || !strings.Contains(out.String(), ": OK (") {
				t.Fatalf("rc %d, stdout %q, stderr:\n%s", rc, out.String(), errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), "warning: ") || !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
			if tt.notWant != "" && strings.Contains(errb.String(), tt.notWant) {
				t.Errorf("stderr names %q:\n%s", tt.notWant, errb.String())
			}
		})
	}
}
