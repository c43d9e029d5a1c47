package main

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
)

// writeTestPair runs `mipsec pair` into a fresh directory, with its state
// in another, and returns the two files.
func writeTestPair(t *testing.T, args ...string) (a, b string) {
	t.Helper()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args = append([]string{"pair", "-o", dir, "--state-dir", t.TempDir()}, args...)
	if rc := run(args, &out, &errb); rc != 0 {
		t.Fatalf("%q: rc %d\n%s%s", args, rc, out.String(), errb.String())
	}
	a, b = filepath.Join(dir, pairFileA), filepath.Join(dir, pairFileB)
	for _, want := range []string{"wrote " + a, "wrote " + b, "mipsec check " + a + " " + b, "mipsec run -c " + a} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	return a, b
}

// TestPair: for every algorithm, the files are mode 0600, each passes
// config.Load and `mipsec check`, together they pass the cross-check,
// and every SA has its own key and a random SPI >= 0x100.
func TestPair(t *testing.T) {
	for _, name := range esp.AlgorithmNames() {
		t.Run(name, func(t *testing.T) {
			alg, _ := esp.ParseAlgorithm(name)
			a, b := writeTestPair(t, "--alg", name)
			for _, f := range []string{a, b} {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %#o, want 0600", f, fi.Mode().Perm())
				}
				var out, errb bytes.Buffer
				if rc := checkConfig(f, &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 || !strings.Contains(out.String(), "OK (2 SAs, 4 policies, 1 peer)") {
					t.Errorf("check %s: rc %d\n%s%s", f, rc, out.String(), errb.String())
				}
			}
			cfgA, cfgB := fixture.Load(t, a), fixture.Load(t, b)
			if pairs, problems := crossCheck(cfgA, cfgB); pairs != 2 || len(problems) != 0 {
				t.Errorf("cross-check: %d pairs, %q", pairs, problems)
			}
			var out, errb bytes.Buffer
			if rc := run([]string{"check", a, b}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "OK: "+a+" and "+b+" mirror each other (2 SA pairs)") {
				t.Errorf("check A B: rc %d\n%s%s", rc, out.String(), errb.String())
			}
			spis := map[uint32]bool{}
			keys := map[string]bool{}
			for _, s := range cfgA.SAs {
				p := s.Params
				if p.Algorithm != alg || p.SPI < 0x100 || spis[p.SPI] {
					t.Errorf("%s: algorithm %v, SPI %#x (seen: %v)", s.Path, p.Algorithm, p.SPI, spis[p.SPI])
				}
				spis[p.SPI] = true
				for _, k := range [][]byte{p.EncKey, p.AuthKey} {
					if len(k) > 0 && keys[string(k)] {
						t.Errorf("%s: a key is shared with another SA", s.Path)
					}
					keys[string(k)] = true
				}
			}
			if cfgA.Underlay.Local4 != netip.MustParseAddr(defaultAAddr) || cfgB.Underlay.Local4 != netip.MustParseAddr(defaultBAddr) {
				t.Errorf("underlay %v, %v", cfgA.Underlay, cfgB.Underlay)
			}
			data, _ := os.ReadFile(a)
			if !strings.Contains(string(data), "THIS FILE HOLDS SECRET KEYS") || !strings.Contains(string(data), "RFC 4303 §2.1") {
				t.Errorf("%s lacks its comments", a)
			}
		})
	}
	// Two pairs never share a key or the SPI pair.
	a1, _ := writeTestPair(t)
	a2, _ := writeTestPair(t)
	c1, c2 := fixture.Load(t, a1), fixture.Load(t, a2)
	if string(c1.SAs[0].Params.EncKey) == string(c2.SAs[0].Params.EncKey) || c1.SAs[0].Params.SPI == c2.SAs[0].Params.SPI && c1.SAs[1].Params.SPI == c2.SAs[1].Params.SPI {
		t.Error("two runs of pair gave the same key or SPIs")
	}
}

// TestPairAddresses: other documentation addresses, IPv6 sites over an
// IPv4 underlay and IPv6 everywhere, with ESN.
func TestPairAddresses(t *testing.T) {
	for _, args := range [][]string{
		{"--a-site", "2001:db8:a::/48", "--b-site", "2001:db8:b::/48"},
		{"--a-addr", "2001:db8:ffff::1", "--b-addr", "2001:db8:fffe::1", "--a-site", "2001:db8:a::/48", "--b-site", "2001:db8:b::/48", "--esn"},
		{"--a-addr", "198.51.100.7", "--b-addr", "203.0.113.9", "--a-site", "192.0.2.64/26", "--b-site", "192.0.2.8/32", "--alg", "chacha20poly1305"},
	} {
		a, b := writeTestPair(t, args...)
		cfgA, cfgB := fixture.Load(t, a), fixture.Load(t, b)
		if pairs, problems := crossCheck(cfgA, cfgB); pairs != 2 || len(problems) != 0 {
			t.Errorf("%q: %d pairs, %q", args, pairs, problems)
		}
		var want netip.Prefix
		for i, a := range args {
			if a == "--b-site" {
				want = netip.MustParsePrefix(args[i+1])
			}
		}
		if got := cfgA.SAs[0].Selectors[0].Remote; got != sad.PrefixRange(want) || len(cfgA.TUN.Routes) != 1 || cfgA.TUN.Routes[0] != want {
			t.Errorf("%q: A's remote selector %v, routes %v", args, got, cfgA.TUN.Routes)
		}
		if esn := len(args) > 0 && args[len(args)-1] == "--esn"; cfgA.SAs[0].Params.ESN != esn || cfgB.SAs[1].Params.ESN != esn {
			t.Errorf("%q: esn %v %v", args, cfgA.SAs[0].Params.ESN, cfgB.SAs[1].Params.ESN)
		}
	}
}

// TestPairRefusesOverwrite: existing files stay unless --force, which
// replaces both with new keys, mode 0600.
func TestPairRefusesOverwrite(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	var out, errb bytes.Buffer
	if rc := run([]string{"pair", "-o", dir, "--state-dir", state}, &out, &errb); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	a := filepath.Join(dir, pairFileA)
	before, _ := os.ReadFile(a)
	errb.Reset()
	if rc := run([]string{"pair", "-o", dir, "--state-dir", state}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), a+" exists; not replacing it") {
		t.Errorf("second run: rc %d: %s", rc, errb.String())
	}
	if after, _ := os.ReadFile(a); !bytes.Equal(before, after) {
		t.Error("the refused run changed the file")
	}
	// One existing file is enough to refuse; the other is not written.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, pairFileB), []byte("mine\n"), 0o644)
	if rc := run([]string{"pair", "-o", dir2}, &out, &errb); rc != 1 {
		t.Errorf("with gateway-b.toml present: rc %d", rc)
	}
	if _, err := os.Stat(filepath.Join(dir2, pairFileA)); err == nil {
		t.Error("gateway-a.toml was written although gateway-b.toml was refused")
	}
	os.Chmod(a, 0o644)
	if rc := run([]string{"pair", "-o", dir, "--state-dir", state, "--force"}, &out, &errb); rc != 0 {
		t.Fatalf("--force: rc %d: %s", rc, errb.String())
	}
	after, _ := os.ReadFile(a)
	if bytes.Equal(before, after) {
		t.Error("--force kept the old keys")
	}
	if fi, _ := os.Stat(a); fi.Mode().Perm() != 0o600 {
		t.Errorf("after --force: mode %#o", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%s holds %d entries, want the two files", dir, len(ents))
	}
}

func TestPairUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"pair", "-h"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "usage: mipsec pair -o DIR") || !strings.Contains(out.String(), "-a-site") {
		t.Errorf("-h: rc %d: %q", rc, out.String())
	}
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{nil, "-o DIR is required"},
		{[]string{"--alg", "rot13"}, "not an algorithm"},
		{[]string{"--a-site", "192.0.2.1/25"}, "host bits set; want 192.0.2.0/25"},
		{[]string{"--a-site", "192.0.2.0/24"}, "overlap"},
		{[]string{"--b-site", "2001:db8:b::/48"}, "one family"},
		{[]string{"--b-addr", "2001:db8::1"}, "one family"},
		{[]string{"--b-addr", defaultAAddr}, "their own outer addresses"},
		{[]string{"--a-addr", "nonsense"}, "not an IP address"},
		{[]string{"--state-dir", "state"}, "relative"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		out.Reset()
		errb.Reset()
		args := []string{"pair"}
		if tt.msg != "-o DIR is required" {
			args = append(args, "-o", dir)
		}
		args = append(args, tt.args...)
		if rc := run(args, &out, &errb); rc != 2 || !strings.Contains(errb.String(), tt.msg) {
			t.Errorf("%q: rc %d, stderr %q, want %q", args, rc, errb.String(), tt.msg)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused command line wrote %d files", len(ents))
	}
}

var (
	// The outer addresses of pair's defaults (RFC 5737).
	pairEpA = endpoint.Endpoint{Addr: netip.MustParseAddrPort(defaultAAddr + ":0")}
	pairEpB = endpoint.Endpoint{Addr: netip.MustParseAddrPort(defaultBAddr + ":0")}
)

// TestPairCarriesTraffic builds both gateways of a fresh pair in process
// (in-memory TUNs and underlay) and sends ICMP both ways: each packet
// leaves as ESP under the pair's SPI and arrives unchanged.
func TestPairCarriesTraffic(t *testing.T) {
	for _, alg := range []string{"aes128gcm16", "aes256-sha256", "chacha20poly1305"} {
		t.Run(alg, func(t *testing.T) {
			pathA, pathB := writeTestPair(t, "--alg", alg)
			cfgA, cfgB := fixture.Load(t, pathA), fixture.Load(t, pathB)
			ua, ub := underlaytest.NewPair(pairEpA, pairEpB)
			tunA, tunB := tuntest.New(1, 64), tuntest.New(1, 64)
			start := func(cfg *config.File, dev *tuntest.TUN, conn *underlaytest.Underlay, name string) *node.Node {
				c := cfg.Config
				c.Logger = zaptest.NewLogger(t).Named(name)
				c.Device, c.Conn = dev, conn
				c.Workers = 2
				n, err := node.New(c)
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { n.Close() })
				return n
			}
			a := start(cfgA, tunA, ua, "A")
			b := start(cfgB, tunB, ub, "B")
			ua.Record(true)
			ub.Record(true)
			send := func(from *tuntest.TUN, to *tuntest.TUN, src, dst netip.Addr, n int) {
				t.Helper()
				for i := range n {
					p := fixture.ICMPEcho(src, dst, 120, uint16(i))
					from.Outbound <- p
					select {
					case got := <-to.Inbound:
						if !bytes.Equal(got, p) {
							t.Fatalf("%v -> %v: delivered %x, sent %x", src, dst, got, p)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("%v -> %v: packet %d not delivered\nA %+v\nB %+v", src, dst, i, a.Stats(), b.Stats())
					}
				}
			}
			send(tunA, tunB, fixture.HostA, fixture.HostB, 3)
			send(tunB, tunA, fixture.HostB, fixture.HostA, 3)
			for _, c := range []struct {
				ul  *underlaytest.Underlay
				spi uint32
			}{{ua, cfgA.SAs[0].Params.SPI}, {ub, cfgB.SAs[0].Params.SPI}} {
				esp := 0
				for _, m := range c.ul.Sent() {
					if len(m.Data) >= 8 && binary.BigEndian.Uint32(m.Data) == c.spi {
						esp++
					}
				}
				if esp != 3 {
					t.Errorf("%d ESP packets under SPI %s, want 3", esp, spiHex(c.spi))
				}
			}
		})
	}
}
