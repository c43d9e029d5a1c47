package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
	"github.com/mipsec/mipsec/underlay"
)

// fakeTarget is a control.Target over real databases, with the keys kept
// the way the daemon keeps them, fake peers and dataplane counters, and a
// capture hook the test can drive.
type fakeTarget struct {
	sad *sad.DB
	spd *spd.DB

	mu      sync.Mutex
	keys    map[saKey][2][]byte
	capture dataplane.Capture
	capSet  chan struct{} // gets a value each time a capture is installed
	// ul are the underlay counters (UnderlayCounters), as the daemon's
	// underlay.Linux keeps them.
	ul underlay.Stats
}

func (f *fakeTarget) UnderlayCounters() []underlay.Counter { return f.ul.Counters() }

type saKey struct {
	dir sad.Direction
	spi uint32
}

func newFakeTarget(t *testing.T) *fakeTarget {
	f := &fakeTarget{sad: sad.New(sad.Options{}), keys: map[saKey][2][]byte{}, capSet: make(chan struct{}, 16)}
	f.spd = spd.New(f.sad)
	t.Cleanup(f.sad.Close)
	return f
}

func (f *fakeTarget) SAD() *sad.DB { return f.sad }
func (f *fakeTarget) SPD() *spd.DB { return f.spd }
func (f *fakeTarget) Status() control.StatusInfo {
	return control.StatusInfo{Version: "test", Config: "/etc/mipsec/test.toml", TUN: "mipsec0"}
}

func (f *fakeTarget) AddSA(cfg sad.Config) error {
	if _, err := f.sad.Add(cfg); err != nil {
		return err
	}
	f.keep(cfg)
	return nil
}

func (f *fakeTarget) UpdateSA(cfg sad.Config) error {
	if _, _, err := f.sad.Replace(cfg); err != nil {
		return err
	}
	f.keep(cfg)
	return nil
}

func (f *fakeTarget) keep(cfg sad.Config) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[saKey{cfg.Dir, cfg.Params.SPI}] = [2][]byte{bytes.Clone(cfg.Params.EncKey), bytes.Clone(cfg.Params.AuthKey)}
}

func (f *fakeTarget) DelSA(dir sad.Direction, spi uint32) error {
	if _, err := f.sad.Delete(dir, spi); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.keys, saKey{dir, spi})
	f.mu.Unlock()
	return nil
}

func (f *fakeTarget) AddPolicy(index int, p spd.Policy) error {
	if index < 0 {
		return f.spd.Append(p)
	}
	return f.spd.Insert(index, p)
}

func (f *fakeTarget) DelPolicy(name string) error { return f.spd.Delete(name) }

func (f *fakeTarget) SAKeys(dir sad.Direction, spi uint32) (enc, auth []byte, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[saKey{dir, spi}]
	return bytes.Clone(k[0]), bytes.Clone(k[1]), ok
}

func (f *fakeTarget) Peers() []dataplane.PeerStatus {
	return []dataplane.PeerStatus{{
		Name:     "gw-b",
		Endpoint: endpoint.Endpoint{Addr: netip.MustParseAddrPort("203.0.113.1:4500"), Encap: endpoint.EncapUDP},
		LastRoam: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Roams: 3, KeepalivesSent: 7,
	}}
}

func (f *fakeTarget) DataplaneStats() dataplane.Stats {
	var st dataplane.Stats
	st.OutPackets, st.SentPackets, st.InPackets, st.DeliveredPackets = 10, 9, 8, 7
	st.Drops[dataplane.DropUnknownSPI] = 5
	st.Drops[dataplane.DropPolicyDiscard] = 1
	st.Roams = 3
	return st
}

func (f *fakeTarget) SetCapture(c dataplane.Capture) {
	f.mu.Lock()
	f.capture = c
	f.mu.Unlock()
	if c != nil {
		f.capSet <- struct{}{}
	}
}

func (f *fakeTarget) tap() dataplane.Capture {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.capture
}

// Test SAs: one AES-GCM tunnel pair and one AES-CBC+HMAC SA.
var (
	gcmEnc = bytes.Repeat([]byte{0x11}, 20) // key || salt
	cbcEnc = bytes.Repeat([]byte{0x22}, 16)
	cbcMac = bytes.Repeat([]byte{0x33}, 32)
	tunA   = netip.MustParseAddr("198.51.100.1")
	tunB   = netip.MustParseAddr("203.0.113.1")
)

func gcmOut() sad.Config {
	return sad.Config{Name: "a-to-b", Dir: sad.Outbound, Params: esp.Params{
		SPI: 0xa001, Algorithm: esp.AES128GCM16, EncKey: gcmEnc, Mode: esp.Tunnel, TunnelSrc: tunA, TunnelDst: tunB,
	}, Selectors: []sad.Selector{{Local: sad.PrefixRange(netip.MustParsePrefix("192.0.2.0/25")), Remote: sad.PrefixRange(netip.MustParsePrefix("192.0.2.128/25"))}}}
}

func cbcIn() sad.Config {
	return sad.Config{Name: "b-to-a", Dir: sad.Inbound, Params: esp.Params{
		SPI: 0xb001, Algorithm: esp.AES128CBCSHA256, EncKey: cbcEnc, AuthKey: cbcMac, Mode: esp.Tunnel, TunnelSrc: tunB, TunnelDst: tunA,
	}, Selectors: []sad.Selector{{Local: sad.PrefixRange(netip.MustParsePrefix("192.0.2.0/25")), Remote: sad.PrefixRange(netip.MustParsePrefix("192.0.2.128/25"))}}}
}

// startServer runs a control server for a fake target on a temporary
// socket, with the two test SAs and one policy.
func startServer(t *testing.T) (*control.Server, *fakeTarget) {
	t.Helper()
	ft := newFakeTarget(t)
	for _, c := range []sad.Config{gcmOut(), cbcIn()} {
		if err := ft.AddSA(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := ft.AddPolicy(-1, spd.Policy{Name: "protect", Dir: sad.Outbound, Action: spd.Protect, SPI: 0xa001, Selectors: gcmOut().Selectors}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shortTempDir(t), "run", "mipsec.sock")
	s, err := control.Listen(path, ft, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ft
}

// shortTempDir keeps socket paths under the 108-byte sun_path limit.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mipsec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// cli runs the mipsec command line against the server's socket.
func cli(t *testing.T, s *control.Server, args ...string) (stdout, stderr string, rc int) {
	t.Helper()
	// --socket goes after the subcommand words, before the other flags.
	i := 1
	if len(args) > 1 && (args[0] == "sa" || args[0] == "policy") {
		i = 2
	}
	full := append(append(append([]string{}, args[:i]...), "--socket", s.Path()), args[i:]...)
	var out, errb bytes.Buffer
	rc = run(full, &out, &errb)
	return out.String(), errb.String(), rc
}

func mustCLI(t *testing.T, s *control.Server, args ...string) string {
	t.Helper()
	out, errs, rc := cli(t, s, args...)
	if rc != 0 {
		t.Fatalf("mipsec %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), rc, out, errs)
	}
	return out
}

func wantContains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s: output lacks %q\n%s", what, w, got)
		}
	}
}

func TestControlCommands(t *testing.T) {
	s, ft := startServer(t)

	out := mustCLI(t, s, "status")
	wantContains(t, "status", out, "running (pid", "SAs       1 out, 1 in", "policies  1 out, 0 in", "peers     1", "tun       mipsec0")

	// Counters and drops by reason show in stats.
	sa := ft.sad.Lookup(sad.Inbound, 0xb001)
	junk := make([]byte, 72)
	copy(junk, []byte{0, 0, 0xb0, 0x01, 0, 0, 0, 1}) // SPI 0xb001, seq 1, no valid ICV
	_, v := sa.Open(newPacketBuf(t, junk), 0)
	if v == esp.OK {
		t.Fatal("junk opened")
	}
	ft.ul.RxIPMalformed.Add(3)
	ft.ul.RxKeepalives.Add(2)
	out = mustCLI(t, s, "stats")
	wantContains(t, "stats", out, "DIR", "0x0000a001", "a-to-b", "0x0000b001", v.String()+"=1", "policy_discard=1 unknown_spi=5", "spd out: no_match 0",
		"underlay: ", "rx_ip_malformed=3", "rx_keepalives=2", "rx_non_esp=0")
	var st control.StatsInfo
	if err := json.Unmarshal([]byte(mustCLI(t, s, "stats", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.SAs) != 2 || st.SAs[1].Drops[v.String()] != 1 || st.Dataplane.Drops["unknown_spi"] != 5 {
		t.Errorf("stats --json: %+v", st)
	}
	if st.Underlay["rx_ip_malformed"] != 3 || st.Underlay["rx_keepalives"] != 2 || len(st.Underlay) != len(ft.ul.Counters()) {
		t.Errorf("stats --json underlay: %v", st.Underlay)
	}

	out = mustCLI(t, s, "peers")
	wantContains(t, "peers", out, "gw-b", "203.0.113.1:4500", "udp", "2026-01-02T03:04:05Z")

	// sa list never shows keys.
	out = mustCLI(t, s, "sa", "list")
	wantContains(t, "sa list", out, "out  0x0000a001  a-to-b", "aes128gcm16", "198.51.100.1 -> 203.0.113.1", "192.0.2.0/25 -> 192.0.2.128/25 proto any")
	js := mustCLI(t, s, "sa", "list", "--json")
	for _, k := range [][]byte{gcmEnc, cbcEnc, cbcMac} {
		if h := fmt.Sprintf("%x", k); strings.Contains(out+js, h) {
			t.Errorf("sa list shows a key")
		}
	}

	// sa add with flags, then update, then del.
	mustCLI(t, s, "sa", "add", "--name", "new", "--dir", "in", "--spi", "0xc001", "--alg", "chacha20poly1305",
		"--enc-key", strings.Repeat("44", 36), "--src", "203.0.113.9", "--dst", "198.51.100.1", "--remote", "10.9.0.0/16", "--local", "10.1.0.0/16")
	if ft.sad.Lookup(sad.Inbound, 0xc001) == nil {
		t.Fatal("sa add: SA missing")
	}
	mustCLI(t, s, "sa", "update", "--name", "renamed", "--dir", "in", "--spi", "0xc001", "--alg", "chacha20poly1305",
		"--enc-key", strings.Repeat("44", 36), "--src", "203.0.113.9", "--dst", "198.51.100.1", "--remote", "10.9.0.0/16", "--local", "10.1.0.0/16", "--proto", "tcp", "--rport", "443")
	if got := ft.sad.Lookup(sad.Inbound, 0xc001); got == nil || got.Name() != "renamed" {
		t.Fatalf("sa update: %v", got)
	}
	out = mustCLI(t, s, "sa", "list")
	wantContains(t, "sa list after update", out, "renamed", "10.1.0.0/16 -> 10.9.0.0/16 proto tcp rport 443")
	mustCLI(t, s, "sa", "del", "in", "0xc001")
	// Flags may also follow the positional arguments.
	var o, e bytes.Buffer
	if rc := run([]string{"sa", "del", "in", "0xc001", "--socket", s.Path()}, &o, &e); rc != 1 || !strings.Contains(e.String(), "no such SA") {
		t.Errorf("sa del with a trailing --socket: rc %d, %q", rc, e.String())
	}
	if ft.sad.Lookup(sad.Inbound, 0xc001) != nil {
		t.Fatal("sa del: SA still there")
	}
	// Errors from the daemon come back as exit 1 with the reason.
	_, errs, rc := cli(t, s, "sa", "del", "--dir", "in", "--spi", "0xc001")
	if rc != 1 || !strings.Contains(errs, "no such SA") {
		t.Errorf("sa del of a missing SA: rc %d, %q", rc, errs)
	}
	_, errs, rc = cli(t, s, "sa", "add", "--dir", "out", "--spi", "0xa001", "--alg", "aes128gcm16", "--enc-key", strings.Repeat("11", 20), "--src", "198.51.100.1", "--dst", "203.0.113.1")
	if rc != 1 || !strings.Contains(errs, "duplicate SPI") {
		t.Errorf("sa add duplicate: rc %d, %q", rc, errs)
	}
	// A bad flag value is caught before dialing, naming the field.
	_, errs, rc = cli(t, s, "sa", "add", "--dir", "sideways", "--spi", "1")
	if rc != 2 || !strings.Contains(errs, "dir:") {
		t.Errorf("sa add bad dir: rc %d, %q", rc, errs)
	}

	// sa add -f with a TOML [[sa]] snippet and with JSON.
	dir := t.TempDir()
	tomlFile := filepath.Join(dir, "sa.toml")
	os.WriteFile(filepath.Join(dir, "d001.key"), []byte(strings.Repeat("55", 36)+"\n"), 0o600)
	os.WriteFile(tomlFile, []byte(`
# The same form as an [[sa]] table of the config file.
[[sa]]
name = "from-toml"
spi = 0x0000d001
dir = "out"
mode = "tunnel"
local = "198.51.100.1"
remote = "203.0.113.1"
algorithm = "aes256gcm16"
enc_key_file = "d001.key"
lifetime = { soft = { time = "50m" }, hard = { time = "1h" } }
selectors = [{ local = "10.0.0.0/8", remote = "any", proto = "tcp", remote_port = "1000-2000" }]
`), 0o600)
	mustCLI(t, s, "sa", "add", "-f", tomlFile)
	got := ft.sad.Lookup(sad.Outbound, 0xd001)
	if got == nil || got.Name() != "from-toml" || got.Lifetime().Hard.Time != time.Hour || got.Params().TunnelDst != tunB {
		t.Fatalf("sa add -f toml: %v", got)
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8 -> any proto tcp rport 1000-2000"}, control.SAInfoOf(got).Selectors); diff != "" {
		t.Errorf("selectors from TOML (-want +got):\n%s", diff)
	}
	if enc, _, _ := ft.SAKeys(sad.Outbound, 0xd001); !bytes.Equal(enc, bytes.Repeat([]byte{0x55}, 36)) {
		t.Errorf("key from the key file: %x", enc)
	}
	// A bad snippet gets the config's line-numbered errors, before dialing.
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[sa]]\nspi = 0x1\ndir = \"out\"\nalgorithm = \"rot13\"\n"), 0o600)
	_, errs, rc = cli(t, s, "sa", "add", "-f", bad)
	if rc != 1 || !strings.Contains(errs, "bad.toml:4") || !strings.Contains(errs, "algorithm") {
		t.Errorf("sa add -f bad.toml: rc %d\n%s", rc, errs)
	}
	jsonFile := filepath.Join(dir, "sa.json")
	os.WriteFile(jsonFile, []byte(`{"name":"from-json","dir":"in","spi":57345,"mode":"transport","algorithm":"null-sha256","auth_key":"`+strings.Repeat("66", 32)+`","selectors":[{"local":"2001:db8::1","remote":"2001:db8::2","proto":"mh"}]}`), 0o600)
	mustCLI(t, s, "sa", "add", "-f", jsonFile)
	if ft.sad.Lookup(sad.Inbound, 0xe001) == nil {
		t.Fatal("sa add -f json: SA missing")
	}

	// Policies.
	mustCLI(t, s, "policy", "add", "--name", "ike", "--dir", "out", "--action", "bypass", "--proto", "udp", "--rport", "500", "--index", "0")
	mustCLI(t, s, "policy", "add", "--name", "drop-rest", "--dir", "out", "--action", "discard")
	out = mustCLI(t, s, "policy", "list")
	wantContains(t, "policy list", out, "out  0  ike        BYPASS", "out  1  protect    PROTECT  0x0000a001", "out  2  drop-rest  DISCARD", "proto udp rport 500")
	mustCLI(t, s, "policy", "del", "ike")
	if n := ft.spd.Len(sad.Outbound); n != 2 {
		t.Errorf("after policy del: %d outbound policies, want 2", n)
	}
	polFile := filepath.Join(dir, "policy.toml")
	os.WriteFile(polFile, []byte(`
[[policy]]
name = "to-d001"
dir = "out"
action = "protect"
spi = 0x0000d001
selectors = [{ local = "10.0.0.0/8", remote = "any", proto = "tcp", remote_port = "1000-2000" }]
`), 0o600)
	mustCLI(t, s, "policy", "add", "-f", polFile, "--index", "0")
	if ps := ft.spd.List(sad.Outbound); ps[0].Name != "to-d001" || ps[0].SPI != 0xd001 {
		t.Errorf("policy add -f: %+v", ps[0])
	}
	_, errs, rc = cli(t, s, "policy", "del", "ike")
	if rc != 1 || !strings.Contains(errs, "no such policy") {
		t.Errorf("policy del missing: rc %d %q", rc, errs)
	}
	_, errs, rc = cli(t, s, "policy", "add", "--name", "x", "--dir", "out", "--action", "protect")
	if rc != 2 || !strings.Contains(errs, "--spi: missing; an outbound protect policy names its SA by SPI") {
		t.Errorf("policy add protect without SPI: rc %d %q", rc, errs)
	}
}

func TestControlNoDaemon(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"status", "--socket", filepath.Join(t.TempDir(), "none.sock")}, &out, &errb); rc != 1 {
		t.Errorf("status without a daemon: exit %d", rc)
	}
	if !strings.Contains(errb.String(), "is `mipsec run` running") {
		t.Errorf("stderr: %s", errb.String())
	}
}

func TestControlSocketEnv(t *testing.T) {
	s, _ := startServer(t)
	t.Setenv("MIPSEC_SOCKET", s.Path())
	var out, errb bytes.Buffer
	if rc := run([]string{"peers"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "gw-b") {
		t.Errorf("peers via $MIPSEC_SOCKET: rc %d\n%s%s", rc, out.String(), errb.String())
	}
}

func TestControlSocketFile(t *testing.T) {
	s, ft := startServer(t)
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o750 {
		t.Errorf("socket directory mode %v, want 0750", di.Mode().Perm())
	}

	// A second daemon on the same path refuses to start.
	if _, err := control.Listen(s.Path(), ft, nil); !errors.Is(err, control.ErrDaemonRunning) {
		t.Errorf("second listen: %v, want control.ErrDaemonRunning", err)
	}

	// A stale socket (nobody listening) is replaced.
	stale := filepath.Join(shortTempDir(t), "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s2, err := control.Listen(stale, ft, nil)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if err := (control.Client{Path: stale}).Call("status", nil, nil); err != nil {
		t.Errorf("status on the replacing daemon: %v", err)
	}
	s2.Close()
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after Close: %v", err)
	}

	// A file that is not a socket is never removed.
	plain := filepath.Join(shortTempDir(t), "plain")
	os.WriteFile(plain, []byte("keep"), 0o600)
	if _, err := control.Listen(plain, ft, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen on a plain file: %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Error("plain file was changed")
	}
}

// rawExchange sends raw bytes on a fresh connection and returns everything
// the server writes until it closes or the deadline passes.
func rawExchange(t *testing.T, path string, send []byte, closeWrite bool) (string, bool) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		c.Write(send)
		if closeWrite {
			c.(*net.UnixConn).CloseWrite()
		}
	}()
	got, err := io.ReadAll(c)
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	return string(got), !timedOut
}

func TestControlHostile(t *testing.T) {
	old := control.RequestTimeout
	control.RequestTimeout = 300 * time.Millisecond
	t.Cleanup(func() { control.RequestTimeout = old })
	s, ft := startServer(t)

	huge := append(bytes.Repeat([]byte("a"), control.MaxRequestLen+10), '\n')
	hugeJSON := []byte(`{"cmd":"sa.add","args":{"name":"` + strings.Repeat("x", control.MaxRequestLen) + `"}}` + "\n")
	deep := []byte(strings.Repeat("[", 60000) + "\n")
	for _, tt := range []struct {
		name       string
		send       []byte
		closeWrite bool
		want       string // in the (first) error answer
	}{
		{"garbage", []byte("hello there\n"), false, "malformed request"},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe, '\n'}, false, "malformed request"},
		{"huge line", huge, false, "request too large"},
		{"huge JSON", hugeJSON, false, "request too large"},
		{"deep nesting", deep, false, "malformed request"},
		{"unknown cmd", []byte(`{"cmd":"rm -rf"}` + "\n"), true, `unknown command "rm -rf"`},
		{"empty cmd", []byte(`{}` + "\n"), true, `unknown command ""`},
		{"null", []byte("null\n"), true, `unknown command ""`},
		{"cmd wrong type", []byte(`{"cmd":42}` + "\n"), false, "malformed request"},
		{"unknown field", []byte(`{"cmd":"status","sudo":true}` + "\n"), false, "malformed request"},
		{"trailing data", []byte(`{"cmd":"status"} {"cmd":"status"}` + "\n"), false, "trailing data"},
		{"array", []byte(`[{"cmd":"status"}]` + "\n"), false, "malformed request"},
		{"args for status", []byte(`{"cmd":"status","args":{"x":1}}` + "\n"), true, "unknown field"},
		{"args wrong type", []byte(`{"cmd":"sa.del","args":{"dir":"in","spi":true}}` + "\n"), true, "args"},
		{"spi overflow", []byte(`{"cmd":"sa.del","args":{"dir":"in","spi":4294967296}}` + "\n"), true, "args"},
		{"spi negative", []byte(`{"cmd":"sa.del","args":{"dir":"in","spi":-1}}` + "\n"), true, "args"},
		{"sa.del no args", []byte(`{"cmd":"sa.del"}` + "\n"), true, "dir"},
		{"sa.add no args", []byte(`{"cmd":"sa.add"}` + "\n"), true, "an SA is required"},
		{"sa.add args string", []byte(`{"cmd":"sa.add","args":"x"}` + "\n"), true, "args"},
		{"sa.add bad key", []byte(`{"cmd":"sa.add","args":{"dir":"out","spi":4097,"algorithm":"aes128gcm16","enc_key":"zz","local":"192.0.2.1","remote":"192.0.2.2"}}` + "\n"), true, "sa.enc_key"},
		{"sa.add short key", []byte(`{"cmd":"sa.add","args":{"dir":"out","spi":4097,"algorithm":"aes128gcm16","enc_key":"11","local":"192.0.2.1","remote":"192.0.2.2","selectors":[{}]}}` + "\n"), true, "sa.enc_key"},
		{"sa.add bad selector", []byte(`{"cmd":"sa.add","args":{"dir":"out","spi":4097,"algorithm":"aes128gcm16","local":"192.0.2.1","remote":"192.0.2.2","selectors":[{"local":"10.0.0.0/99"}]}}` + "\n"), true, "sa.selectors[0].local"},
		{"sa.add reserved SPI", []byte(`{"cmd":"sa.add","args":{"dir":"out","spi":5,"algorithm":"aes128gcm16","enc_key":"0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223","local":"192.0.2.1","remote":"192.0.2.2","selectors":[{}]}}` + "\n"), true, "reserved by IANA"},
		{"sa.add key file", []byte(`{"cmd":"sa.add","args":{"dir":"out","spi":4097,"algorithm":"aes128gcm16","enc_key_file":"/etc/shadow","local":"192.0.2.1","remote":"192.0.2.2","selectors":[{}]}}` + "\n"), true, "key files are read by the client"},
		{"policy.add missing SA", []byte(`{"cmd":"policy.add","args":{"name":"p","dir":"out","action":"protect","spi":"0x9999","selectors":[{}],"index":0}}` + "\n"), true, "names no out SA"},
		{"policy.add negative index", []byte(`{"cmd":"policy.add","args":{"name":"p","dir":"out","action":"discard","selectors":[{}],"index":-5}}` + "\n"), true, "negative"},
		{"policy.add huge index", []byte(`{"cmd":"policy.add","args":{"name":"p","dir":"out","action":"discard","selectors":[{}],"index":99999}}` + "\n"), true, "index out of range"},
		{"policy.del no name", []byte(`{"cmd":"policy.del","args":{}}` + "\n"), true, "name is required"},
		{"capture bad args", []byte(`{"cmd":"capture","args":{"count":"many"}}` + "\n"), true, "capture"},
		{"capture bad duration", []byte(`{"cmd":"capture","args":{"duration":"forever"}}` + "\n"), true, "duration"},
		{"no newline then EOF", []byte(`{"cmd":"status"}`), true, "not terminated by a newline"},
		{"slowloris", []byte(`{"cmd":"sta`), false, "no complete request within"},
		{"silent", nil, false, "no complete request within"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, closed := rawExchange(t, s.Path(), tt.send, tt.closeWrite)
			if !closed {
				t.Fatalf("server neither answered nor closed in time; got %q", got)
			}
			first, _, _ := strings.Cut(got, "\n")
			var resp control.Response
			if err := json.Unmarshal([]byte(first), &resp); err != nil {
				t.Fatalf("answer %q is not a response: %v", first, err)
			}
			if resp.OK || !strings.Contains(resp.Error, tt.want) {
				t.Errorf("answer %q, want an error containing %q", first, tt.want)
			}
		})
	}

	// The server still works, and nothing was changed.
	if err := (control.Client{Path: s.Path()}).Call("status", nil, nil); err != nil {
		t.Fatalf("status after hostile requests: %v", err)
	}
	if n := len(ft.sad.List()); n != 2 {
		t.Errorf("%d SAs after hostile requests, want 2", n)
	}

	// Several requests on one connection are answered in order.
	got, _ := rawExchange(t, s.Path(), []byte("{\"cmd\":\"status\"}\n\n{\"cmd\":\"peers\"}\n{\"cmd\":\"nope\"}\n{\"cmd\":\"sa.list\"}\n"), true)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], `{"ok":true`) || !strings.HasPrefix(lines[1], `{"ok":true`) ||
		!strings.HasPrefix(lines[2], `{"ok":false`) || !strings.HasPrefix(lines[3], `{"ok":true`) {
		t.Errorf("pipelined answers:\n%s", got)
	}
}

func TestControlConnectionLimit(t *testing.T) {
	old := control.RequestTimeout
	control.RequestTimeout = 2 * time.Second
	t.Cleanup(func() { control.RequestTimeout = old })
	s, _ := startServer(t)
	var idle []net.Conn
	for range control.MaxConns {
		c, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "too many control connections") {
		t.Errorf("over the limit: %q, %v", line, err)
	}
}

func TestControlCloseEndsConnections(t *testing.T) {
	s, _ := startServer(t)
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on an idle connection")
	}
}
