package config

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/node"
)

// ikeBase is a gateway without SAs; the connections are appended.
const ikeBase = `[tun]
name = "mipsec0"
addresses = ["10.1.0.1/16"]
routes = ["10.2.0.0/16"]

[underlay]
local = ["192.0.2.1"]
`

// testPSK is a 32-byte secret; its text must never appear in a message.
const testPSK = "Sup3rSecretPreSharedKey-0123456789"

// writeFile writes data to dir/name with mode perm (chmod after the
// write, so that the umask does not change it).
func writeFile(t *testing.T, dir, name, data string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// parseIKE parses ikeBase+body as dir/gw.toml with a 0600 site.psk
// holding testPSK in dir.
func parseIKE(t *testing.T, dir, body string) (*File, error) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "site.psk")); err != nil {
		writeFile(t, dir, "site.psk", testPSK+"\n", 0o600)
	}
	return Parse(filepath.Join(dir, "gw.toml"), []byte(ikeBase+body))
}

// lineOf is the 1-based line of ikeBase+body holding marker.
func lineOf(t *testing.T, body, marker string) int {
	t.Helper()
	for i, l := range strings.Split(ikeBase+body, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("marker %q not in the config", marker)
	return 0
}

// minConn is the least connection: PSK both ways, one child.
const minConn = `
[[connection]]
name = "site-b"
remote_addrs = ["192.0.2.2"]
[connection.local]
auth = "psk"
psk_file = "site.psk"
[[connection.child]]
name = "net"
remote_ts = ["10.2.0.0/16"]
`

func mustTS(t *testing.T, ss ...string) []ike.TrafficSelector {
	t.Helper()
	var out []ike.TrafficSelector
	for _, s := range ss {
		ts, err := ike.ParseTS(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		out = append(out, ts)
	}
	return out
}

func mustID(t *testing.T, s string) ike.Identity {
	t.Helper()
	id, err := ike.ParseIdentity(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return id
}

func mustProps(t *testing.T, parse func([]string, bool) ([]ike.Proposal, error), weak bool, ss ...string) []ike.Proposal {
	t.Helper()
	p, err := parse(ss, weak)
	if err != nil {
		t.Fatalf("%v: %v", ss, err)
	}
	return p
}

// TestIKEPAD: [[connection.remote.pad]] entries become ike.PADEntry, an
// address a single-address prefix.
func TestIKEPAD(t *testing.T) {
	cfg, err := parseIKE(t, t.TempDir(), minConn+`[connection.remote]
[[connection.remote.pad]]
id = "2001:db8:1::100"
addresses = ["2001:db8:1::100", "192.0.2.100"]
[[connection.remote.pad]]
id = "mn2@example.org"
addresses = ["2001:db8:1:2::/64"]
`)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.IKE.Connections[0].Remote.PAD
	want := []ike.PADEntry{
		{ID: mustID(t, "2001:db8:1::100"), Addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::100/128"), netip.MustParsePrefix("192.0.2.100/32")}},
		{ID: mustID(t, "mn2@example.org"), Addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8:1:2::/64")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PAD %+v, want %+v", got, want)
	}
}

// TestIKEAddressing: pool, home_prefix, vips and request_home_prefix
// reach ike.Connection; on a home agent the home prefix defaults to
// mobility.home_prefix.
func TestIKEAddressing(t *testing.T) {
	cfg, err := parseIKE(t, t.TempDir(), strings.Replace(minConn, "remote_addrs", `pool = ["10.9.0.0/28", "2001:db8:9::1000/120"]
home_prefix = "2001:db8:9::/64"
vips = ["::", "0.0.0.0"]
request_home_prefix = true
remote_addrs`, 1))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.IKE.Connections[0]
	if len(c.Pool) != 2 || c.Pool[1] != netip.MustParsePrefix("2001:db8:9::1000/120") || c.HomePrefix != netip.MustParsePrefix("2001:db8:9::/64") ||
		len(c.VIPs) != 2 || !c.VIPs[0].IsUnspecified() || !c.VIPs[1].Is4() || !c.RequestHomePrefix {
		t.Fatalf("connection %+v", c)
	}
	for _, tc := range []struct{ edit, path, want string }{
		{`pool = ["10.9.0.1/28"] #<`, "pool[0]", "host bits set"},
		{`vips = ["::", "::1"] #<`, "vips[1]", "a second IPv6 address"},
		{`vips = ["nowhere"] #<`, "vips[0]", "is not an address"},
		{`home_prefix = "10.0.0.0/8" #<`, "home_prefix", "not an IPv6 prefix"},
		{`home_prefix = "2001:db8::/32" #<`, "home_prefix", "without a pool"},
	} {
		body := strings.Replace(minConn, "remote_addrs", tc.edit+"\nremote_addrs", 1)
		_, err := parseIKE(t, t.TempDir(), body)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(":%d: connection[0].%s: ", lineOf(t, body, "#<"), tc.path)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s: %s", tc.edit, err, tc.path, tc.want)
		}
	}
}

// TestIKEDaemonLimits: fragment_size, init_rate and init_burst take
// their bounds and reach node.Config.IKE (node/ike.go hands them to
// ike.Config); absent, they stay 0, ike's defaults.
func TestIKEDaemonLimits(t *testing.T) {
	for _, tc := range []struct {
		body              string
		frag, rate, burst int
	}{
		{"", 0, 0, 0},
		{"[ike]\nfragment_size = 576\ninit_rate = 1\ninit_burst = 1\n", 576, 1, 1},
		{"[ike]\nfragment_size = 65535\ninit_rate = 1048576\ninit_burst = 1048576\n", 65535, 1 << 20, 1 << 20},
		{"[ike]\nfragment_size = 1200\n", 1200, 0, 0},
		{"[ike]\ninit_burst = 3\n", 0, 0, 3},
	} {
		cfg, err := parseIKE(t, t.TempDir(), tc.body+minConn)
		if err != nil {
			t.Fatalf("%q: %v", tc.body, err)
		}
		if got := cfg.IKE; got.FragmentSize != tc.frag || got.InitRate != tc.rate || got.InitBurst != tc.burst {
			t.Errorf("%q: fragment_size %d, init_rate %d, init_burst %d; want %d, %d, %d", tc.body,
				got.FragmentSize, got.InitRate, got.InitBurst, tc.frag, tc.rate, tc.burst)
		}
	}
	if ike.DefaultFragmentSize < minFragmentSize || ike.DefaultInitRate > maxInitRate || ike.DefaultInitBurst > maxInitRate {
		t.Error("ike's defaults are outside the accepted ranges")
	}
}

// TestIKEFull: every key of [ike], [[connection]], its local, remote and
// children lands in node.Config.IKE.
func TestIKEFull(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "remote.psk", "0x00112233445566778899aabbccddeeff0011223344\n", 0o600)
	body := `
[ike]
cookie_threshold = 10
max_half_open = 100
retransmit = "500ms"
retransmits = 3
fragment_size = 1400
init_rate = 5
init_burst = 8

[[connection]]
name = "site-b"
local_addrs = ["192.0.2.1", "2001:db8::1"]
remote_addrs = ["192.0.2.2", "198.51.100.0/24", "2001:db8:2::/48"]
local_port = 4501
remote_port = 4502
proposals = ["aes256gcm16-prfsha384-ecp384", "aes128-sha256-modp2048"]
allow_weak = false
encap = true
fragmentation = false
mobike = false
rekey_time = "2h"
dpd_delay = "30s"
keyingtries = 3
  [connection.local]
  auth = "psk"
  id = "gw-a.example.org"
  psk_file = "site.psk"
  [connection.remote]
  auth = "psk"
  id = "gw-b.example.org"
  psk_file = "remote.psk"
  [[connection.child]]
  name = "net"
  local_ts = ["10.1.0.0/16", "2001:db8:a::/48"]
  remote_ts = ["10.2.0.0/16"]
  esp_proposals = ["aes256gcm16", "aes128-sha256"]
  mode = "tunnel"
  start_action = "start"
  rekey_time = "30m"
  life_time = "40m"
  rekey_bytes = 1000000
  replay_window = 2048
  [[connection.child]]
  name = "host"
  local_ts = ["192.0.2.1/32"]
  remote_ts = ["192.0.2.2/32"]
  mode = "transport"
  start_action = "trap"

[[connection]]
name = "roadwarriors"
remote_addrs = ["%any"]
  [connection.local]
  auth = "psk"
  psk_file = "site.psk"
  [[connection.child]]
  name = "rw"
  remote_ts = ["dynamic"]
`
	writeFile(t, dir, "site.psk", testPSK+"\n", 0o600)
	base := strings.Replace(ikeBase, `local = ["192.0.2.1"]`, `local = ["192.0.2.1", "2001:db8::1"]`, 1)
	cfg, err := Parse(filepath.Join(dir, "gw.toml"), []byte(base+body))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	got := cfg.IKE
	wantSettings := node.IKEConfig{CookieThreshold: 10, MaxHalfOpen: 100, Retransmit: 500 * time.Millisecond, Retransmits: 3,
		FragmentSize: 1400, InitRate: 5, InitBurst: 8}
	if got.CookieThreshold != wantSettings.CookieThreshold || got.MaxHalfOpen != wantSettings.MaxHalfOpen ||
		got.Retransmit != wantSettings.Retransmit || got.Retransmits != wantSettings.Retransmits ||
		got.FragmentSize != wantSettings.FragmentSize || got.InitRate != wantSettings.InitRate || got.InitBurst != wantSettings.InitBurst {
		t.Errorf("settings %+v, want %+v", got, wantSettings)
	}
	remotePSK := []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44}
	want := []ike.Connection{{
		Name:          "site-b",
		LocalAddrs:    []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
		RemoteAddrs:   mustPrefixes("192.0.2.2/32", "198.51.100.0/24", "2001:db8:2::/48"),
		LocalPort:     4501,
		RemotePort:    4502,
		Proposals:     mustProps(t, ike.ParseIKEProposals, false, "aes256gcm16-prfsha384-ecp384", "aes128-sha256-modp2048"),
		Encap:         true,
		Fragmentation: false,
		MOBIKE:        false,
		RekeyTime:     2 * time.Hour,
		DPDDelay:      30 * time.Second,
		KeyingTries:   3,
		Local:         ike.LocalAuth{Method: ike.AuthPSK, ID: mustID(t, "gw-a.example.org"), PSK: []byte(testPSK)},
		Remote:        ike.RemoteAuth{Method: ike.AuthPSK, ID: mustID(t, "gw-b.example.org"), PSK: remotePSK},
		Children: []ike.Child{{
			Name:         "net",
			LocalTS:      mustTS(t, "10.1.0.0/16", "2001:db8:a::/48"),
			RemoteTS:     mustTS(t, "10.2.0.0/16"),
			Proposals:    mustProps(t, ike.ParseESPProposals, false, "aes256gcm16", "aes128-sha256"),
			Mode:         ike.ModeTunnel,
			Start:        ike.StartStart,
			RekeyTime:    30 * time.Minute,
			LifeTime:     40 * time.Minute,
			RekeyBytes:   1000000,
			ReplayWindow: 2048,
		}, {
			Name:      "host",
			LocalTS:   mustTS(t, "192.0.2.1/32"),
			RemoteTS:  mustTS(t, "192.0.2.2/32"),
			Proposals: ike.DefaultESPProposals(),
			Mode:      ike.ModeTransport,
			Start:     ike.StartTrap,
			RekeyTime: time.Hour,
			LifeTime:  66 * time.Minute,
		}},
	}, {
		Name:          "roadwarriors",
		RemoteAddrs:   mustPrefixes("0.0.0.0/0", "::/0"),
		LocalPort:     500,
		RemotePort:    500,
		Proposals:     ike.DefaultIKEProposals(),
		Fragmentation: true,
		MOBIKE:        true,
		RekeyTime:     4 * time.Hour,
		Local:         ike.LocalAuth{Method: ike.AuthPSK, PSK: []byte(testPSK)},
		Remote:        ike.RemoteAuth{Method: ike.AuthPSK, PSK: []byte(testPSK)},
		Children: []ike.Child{{
			Name:      "rw",
			LocalTS:   mustTS(t, "dynamic"),
			RemoteTS:  mustTS(t, "dynamic"),
			Proposals: ike.DefaultESPProposals(),
			RekeyTime: time.Hour,
			LifeTime:  66 * time.Minute,
		}},
	}}
	if len(got.Connections) != len(want) {
		t.Fatalf("%d connections, want %d", len(got.Connections), len(want))
	}
	for i := range want {
		g, w := got.Connections[i], want[i]
		// Field by field, so that a failure names the field.
		gv, wv := reflect.ValueOf(g), reflect.ValueOf(w)
		for f := 0; f < gv.NumField(); f++ {
			if !gv.Type().Field(f).IsExported() {
				continue // ike's own test knobs
			}
			if !reflect.DeepEqual(gv.Field(f).Interface(), wv.Field(f).Interface()) {
				t.Errorf("connection[%d].%s = %+v, want %+v", i, gv.Type().Field(f).Name, gv.Field(f).Interface(), wv.Field(f).Interface())
			}
		}
	}
	// Manual SAs keep working beside connections.
	if len(cfg.SAs) != 0 || len(cfg.Policies) != 0 {
		t.Errorf("SAs %d, policies %d", len(cfg.SAs), len(cfg.Policies))
	}
}

// TestIKEDefaults: the least connection gets every default.
func TestIKEDefaults(t *testing.T) {
	cfg, err := parseIKE(t, t.TempDir(), minConn)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.IKE
	if s.CookieThreshold != 0 || s.MaxHalfOpen != 0 || s.Retransmit != 0 || s.Retransmits != 0 {
		t.Errorf("without [ike] the settings are ike's defaults (zero): %+v", s)
	}
	if len(s.Connections) != 1 {
		t.Fatalf("%d connections", len(s.Connections))
	}
	c := s.Connections[0]
	if c.LocalAddrs != nil || c.LocalPort != 500 || c.RemotePort != 500 || !c.Fragmentation || !c.MOBIKE || c.Encap ||
		c.RekeyTime != DefaultIKERekey || c.DPDDelay != 0 || c.KeyingTries != 0 {
		t.Errorf("connection defaults: %+v", c)
	}
	if !reflect.DeepEqual(c.Proposals, ike.DefaultIKEProposals()) {
		t.Errorf("proposals %v, want the default", c.Proposals)
	}
	if c.Local.ID.Type != 0 || c.Remote.ID.Type != 0 {
		t.Errorf("identities %+v %+v, want none", c.Local.ID, c.Remote.ID)
	}
	if c.Remote.Method != ike.AuthPSK || !bytes.Equal(c.Remote.PSK, []byte(testPSK)) {
		t.Errorf("remote auth %v, want the local side's psk", c.Remote.Method)
	}
	ch := c.Children[0]
	if ch.Mode != ike.ModeTunnel || ch.Start != ike.StartNone || ch.RekeyTime != time.Hour || ch.LifeTime != 66*time.Minute ||
		ch.RekeyBytes != 0 || ch.ReplayWindow != 0 {
		t.Errorf("child defaults: %+v", ch)
	}
	if !reflect.DeepEqual(ch.LocalTS, mustTS(t, "dynamic")) || !reflect.DeepEqual(ch.Proposals, ike.DefaultESPProposals()) {
		t.Errorf("child local_ts %v / proposals %v, want dynamic / default", ch.LocalTS, ch.Proposals)
	}
	// "0" turns the IKE rekey and DPD off.
	cfg, err = parseIKE(t, t.TempDir(), strings.Replace(minConn, "name = \"site-b\"", "name = \"site-b\"\nrekey_time = \"0\"\ndpd_delay = \"0s\"", 1))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.IKE.Connections[0]; c.RekeyTime != 0 || c.DPDDelay != 0 {
		t.Errorf("rekey_time %v, dpd_delay %v, want 0", c.RekeyTime, c.DPDDelay)
	}
}

// ikeErrs returns the messages of err (Errors) or fails.
func ikeErrs(t *testing.T, err error) []string {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("want Errors, got %v", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

// hasMsg reports whether one of msgs starts with prefix and holds sub.
func hasMsg(msgs []string, prefix, sub string) bool {
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) && strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// TestIKEErrors: each mistake is reported at its file:line and field path.
func TestIKEErrors(t *testing.T) {
	// Each body marks the line of the error with "#<".
	for _, tt := range []struct {
		name, body, path, msg string
	}{
		{"unknown key", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nbogus = 1 #<", 1), "connection.child.bogus", "unknown field"},
		{"unknown key in local", strings.Replace(minConn, "auth = \"psk\"", "auth = \"psk\"\npassword = \"x\" #<", 1), "connection.local.password", "unknown field"},
		{"missing name", strings.Replace(strings.Replace(minConn, "name = \"site-b\"\n", "", 1), "[[connection]]", "[[connection]] #<", 1), "connection[0].name", "missing"},
		{"bad name", strings.Replace(minConn, "name = \"site-b\"", "name = \"site b\" #<", 1), "connection[0].name", "not a connection name"},
		{"duplicate name", minConn + strings.Replace(minConn, "name = \"site-b\"", "name = \"site-b\" #<", 1), "connection[1].name", "already the name of connection[0]"},
		{"duplicate child", minConn + "[[connection.child]]\nname = \"net\" #<\nremote_ts = [\"10.3.0.0/16\"]\n", "connection[0].child[1].name", "already the name of connection[0].child[0]"},
		{"remote host part", strings.Replace(minConn, "remote_addrs = [\"192.0.2.2\"]", "remote_addrs = [\"192.0.2.2\", \"198.51.100.7/24\"] #<", 1), "connection[0].remote_addrs[1]", "host bits set; want 198.51.100.0/24"},
		{"remote host name", strings.Replace(minConn, "remote_addrs = [\"192.0.2.2\"]", "remote_addrs = [\"gw-b.example.org\"] #<", 1), "connection[0].remote_addrs[0]", "not an address or prefix"},
		{"local not an address", strings.Replace(minConn, "remote_addrs", "local_addrs = [\"192.0.2.0/24\"] #<\nremote_addrs", 1), "connection[0].local_addrs[0]", "not an IP address"},
		{"two local v4", strings.Replace(minConn, "remote_addrs", "local_addrs = [\"192.0.2.1\", \"192.0.2.9\"] #<\nremote_addrs", 1), "connection[0].local_addrs[1]", "a second IPv4 address"},
		{"remote family not local", strings.Replace(minConn, "remote_addrs = [\"192.0.2.2\"]", "local_addrs = [\"192.0.2.1\"]\nremote_addrs = [\"2001:db8::2\"] #<", 1), "connection[0].remote_addrs[0]", "IPv6 but local_addrs has no IPv6"},
		{"port 0", strings.Replace(minConn, "remote_addrs", "local_port = 0 #<\nremote_addrs", 1), "connection[0].local_port", "0 is not a port"},
		{"port too big", strings.Replace(minConn, "remote_addrs", "remote_port = 65536 #<\nremote_addrs", 1), "connection[0].remote_port", "65536 is not a port"},
		{"negative duration", strings.Replace(minConn, "remote_addrs", "dpd_delay = \"-5s\" #<\nremote_addrs", 1), "connection[0].dpd_delay", "negative"},
		{"bad duration", strings.Replace(minConn, "remote_addrs", "rekey_time = \"soon\" #<\nremote_addrs", 1), "connection[0].rekey_time", "\"soon\" is not a duration"},
		{"child bad duration", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nrekey_time = \"1 hour\" #<", 1), "connection[0].child[0].rekey_time", "not a duration"},
		{"child rekey 0", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nrekey_time = \"0\" #<", 1), "connection[0].child[0].rekey_time", "want a duration such as"},
		{"bad keyingtries", strings.Replace(minConn, "remote_addrs", "keyingtries = -1 #<\nremote_addrs", 1), "connection[0].keyingtries", "out of range"},
		{"no remote_ts", strings.Replace(strings.Replace(minConn, "remote_ts = [\"10.2.0.0/16\"]", "local_ts = [\"10.1.0.0/16\"]", 1), "[[connection.child]]", "[[connection.child]] #<", 1), "connection[0].child[0].remote_ts", "missing"},
		{"bad ts", strings.Replace(minConn, "remote_ts = [\"10.2.0.0/16\"]", "remote_ts = [\"10.2.0.0/16\", \"nonsense\"] #<", 1), "connection[0].child[0].remote_ts[1]", ""},
		{"life <= rekey", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nrekey_time = \"1h\"\nlife_time = \"1h\" #<", 1), "connection[0].child[0].life_time", "not above rekey_time (1h0m0s)"},
		{"life below default rekey", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nlife_time = \"30m\" #<", 1), "connection[0].child[0].life_time", "not above rekey_time"},
		{"bad mode", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nmode = \"beet\" #<", 1), "connection[0].child[0].mode", "not a mode"},
		{"bad start", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nstart_action = \"route\" #<", 1), "connection[0].child[0].start_action", "not a start action"},
		{"initiator to any", strings.Replace(strings.Replace(minConn, "remote_addrs = [\"192.0.2.2\"]", "remote_addrs = [\"%any\"]", 1), "name = \"net\"", "name = \"net\"\nstart_action = \"start\" #<", 1), "connection[0].child[0].start_action", "needs an address to send IKE_SA_INIT to"},
		{"replay window", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nreplay_window = 10 #<", 1), "connection[0].child[0].replay_window", "out of range"},
		{"rekey_bytes", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nrekey_bytes = -1 #<", 1), "connection[0].child[0].rekey_bytes", "negative"},
		{"no children", strings.Replace(strings.Replace(minConn, "[[connection.child]]\nname = \"net\"\nremote_ts = [\"10.2.0.0/16\"]\n", "", 1), "[[connection]]", "[[connection]] #<", 1), "connection[0]", "no [[connection.child]]"},
		{"bad proposal", strings.Replace(minConn, "remote_addrs", "proposals = [\"default\", \"aes128-md5-modp1024\"] #<\nremote_addrs", 1), "connection[0].proposals[1]", ""},
		{"weak without allow_weak", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nesp_proposals = [\"aes128-sha1\"] #<", 1), "connection[0].child[0].esp_proposals[0]", "allow_weak = true"},
		{"missing auth", strings.Replace(minConn, "[connection.local]\nauth = \"psk\"", "[connection.local] #<", 1), "connection[0].local.auth", "missing"},
		{"bad auth", strings.Replace(minConn, "auth = \"psk\"", "auth = \"eap\" #<", 1), "connection[0].local.auth", "not an authentication method"},
		{"pad without id", minConn + "[connection.remote]\n[[connection.remote.pad]] #<\naddresses = [\"10.2.0.1\"]\n", "connection[0].remote.pad[0].id", "missing"},
		{"pad without addresses", minConn + "[connection.remote]\n[[connection.remote.pad]] #<\nid = \"mn1@example.org\"\n", "connection[0].remote.pad[0].addresses", "missing"},
		{"pad bad address", minConn + "[connection.remote]\n[[connection.remote.pad]]\nid = \"mn1@example.org\"\naddresses = [\"10.2.0.1/16\"] #<\n", "connection[0].remote.pad[0].addresses[0]", "host bits set"},
		{"pad twice", minConn + "[connection.remote]\n[[connection.remote.pad]]\nid = \"mn1@example.org\"\naddresses = [\"10.2.0.1\"]\n[[connection.remote.pad]]\nid = \"mn1@example.org\" #<\naddresses = [\"10.2.0.2\"]\n", "connection[0].remote.pad[1].id", "already PAD entry 0"},
		{"psk and cert", strings.Replace(minConn, "psk_file = \"site.psk\"", "psk_file = \"site.psk\"\ncert = \"a.pem\" #<", 1), "connection[0].local.cert", "auth = \"psk\" takes no certificate"},
		{"psk and cacerts", minConn + "[connection.remote]\ncacerts = [\"ca.pem\"] #<\n", "connection[0].remote.cacerts", "takes no CA certificates"},
		{"pubkey without cert", strings.Replace(minConn, "[connection.local]\nauth = \"psk\"\npsk_file = \"site.psk\"", "[connection.local] #<\nauth = \"pubkey\"", 1), "connection[0].local.cert", "missing"},
		{"pubkey without key", strings.Replace(minConn, "[connection.local]\nauth = \"psk\"\npsk_file = \"site.psk\"", "[connection.local] #<\nauth = \"pubkey\"", 1), "connection[0].local.key", "missing"},
		{"pubkey with psk", strings.Replace(strings.Replace(minConn, "auth = \"psk\"", "auth = \"pubkey\"", 1), "psk_file = \"site.psk\"", "psk_file = \"site.psk\" #<", 1), "connection[0].local.psk_file", "takes no pre-shared key"},
		{"pubkey without cacerts", minConn + "[connection.remote] #<\nauth = \"pubkey\"\n", "connection[0].remote.cacerts", "missing"},
		{"remote psk without local", strings.Replace(minConn, "auth = \"psk\"\npsk_file = \"site.psk\"", "auth = \"pubkey\"\ncert = \"none.pem\"\nkey = \"none.key\"", 1) + "[connection.remote] #<\nauth = \"psk\"\n", "connection[0].remote.psk_file", "missing"},
		{"psk file missing", strings.Replace(minConn, "psk_file = \"site.psk\"", "psk_file = \"nothere.psk\" #<", 1), "connection[0].local.psk_file", "no such file"},
		{"ike cookie", "[ike]\ncookie_threshold = 0 #<\n" + minConn, "ike.cookie_threshold", "out of range"},
		{"ike cookie above max", "[ike]\nmax_half_open = 10\ncookie_threshold = 11 #<\n" + minConn, "ike.cookie_threshold", "above max_half_open (10)"},
		{"ike retransmit", "[ike]\nretransmit = \"-1s\" #<\n" + minConn, "ike.retransmit", "not a positive duration"},
		{"ike retransmits", "[ike]\nretransmits = 100 #<\n" + minConn, "ike.retransmits", "out of range"},
		{"ike fragment_size small", "[ike]\nfragment_size = 575 #<\n" + minConn, "ike.fragment_size", "575 is out of range; want 576..65535 bytes"},
		{"ike fragment_size large", "[ike]\nfragment_size = 65536 #<\n" + minConn, "ike.fragment_size", "out of range"},
		{"ike fragment_size negative", "[ike]\nfragment_size = -1280 #<\n" + minConn, "ike.fragment_size", "out of range"},
		{"ike init_rate 0", "[ike]\ninit_rate = 0 #<\n" + minConn, "ike.init_rate", "0 is out of range; want 1..1048576"},
		{"ike init_rate large", "[ike]\ninit_rate = 1048577 #<\n" + minConn, "ike.init_rate", "out of range"},
		{"ike init_burst 0", "[ike]\ninit_burst = 0 #<\n" + minConn, "ike.init_burst", "0 is out of range; want 1..1048576"},
		{"ike init_burst negative", "[ike]\ninit_burst = -3 #<\n" + minConn, "ike.init_burst", "out of range"},
		{"ike init_rate string", "[ike]\ninit_rate = \"20/s\" #<\n" + minConn, "", ""},
		{"ike unknown", "[ike]\nlifetime = 1 #<\n" + minConn, "ike.lifetime", "unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := parseIKE(t, dir, tt.body)
			if err == nil {
				t.Fatal("accepted")
			}
			msgs := ikeErrs(t, err)
			file := filepath.Join(dir, "gw.toml")
			prefix := fmt.Sprintf("%s:%d: %s: ", file, lineOf(t, tt.body, "#<"), tt.path)
			if tt.path == "" {
				prefix = file + ":"
			}
			if !hasMsg(msgs, prefix, tt.msg) {
				t.Errorf("want an error %q...%q; got\n%s", prefix, tt.msg, strings.Join(msgs, "\n"))
			}
			for _, m := range msgs {
				if strings.Contains(m, testPSK) {
					t.Errorf("the PSK is in a message: %s", m)
				}
			}
		})
	}
}

// TestIKEWarnings: legal but risky settings give warnings with file:line
// and path, and the file is accepted.
func TestIKEWarnings(t *testing.T) {
	for _, tt := range []struct {
		name, body, path, msg string
	}{
		{"transport with networks", strings.Replace(minConn, "name = \"net\"", "name = \"net\"\nmode = \"transport\"", 1), "connection[0].child[0].remote_ts[0]", "mode = \"transport\" protects the hosts' own traffic"},
		{"weak with allow_weak", strings.Replace(strings.Replace(minConn, "remote_addrs", "allow_weak = true\nremote_addrs", 1), "name = \"net\"", "name = \"net\"\nesp_proposals = [\"aes128-sha1\"]", 1), "connection[0].child[0].esp_proposals[0]", "weak algorithms"},
		{"local not the underlay's", strings.Replace(minConn, "remote_addrs", "local_addrs = [\"192.0.2.9\"]\nremote_addrs", 1), "connection[0].local_addrs[0]", "not the underlay's IPv4 address"},
		{"remote_ts cover the peer", strings.Replace(minConn, "remote_ts = [\"10.2.0.0/16\"]", "remote_ts = [\"192.0.2.0/24\"]", 1), "connection[0].child[0].remote_ts[0]", "covers the peer's address 192.0.2.2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			base := ikeBase
			if strings.Contains(tt.name, "cover") {
				base += "fwmark = \"off\"\n"
			}
			writeFile(t, dir, "site.psk", testPSK, 0o600)
			file := filepath.Join(dir, "gw.toml")
			cfg, err := Parse(file, []byte(base+tt.body))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, w := range cfg.Warnings {
				if w.File == file && w.Line > 0 && w.Path == tt.path && strings.Contains(w.Msg, tt.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("want a warning at %s: %q; got %v", tt.path, tt.msg, cfg.Warnings)
			}
		})
	}
	// With policy routing (the default fwmark) the peer's address in
	// remote_ts does not loop: no warning.
	cfg, err := parseIKE(t, t.TempDir(), strings.Replace(minConn, "remote_ts = [\"10.2.0.0/16\"]", "remote_ts = [\"192.0.2.0/24\"]", 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings with fwmark: %v", cfg.Warnings)
	}
}

// TestIKEPSKFiles: the PSK file's mode, owner, size and notations.
func TestIKEPSKFiles(t *testing.T) {
	for _, tt := range []struct {
		name    string
		content string
		perm    os.FileMode
		psk     []byte // accepted with this secret
		warn    string // and this warning
		err     string // or refused with this message
	}{
		{"0600 text", testPSK + "\n", 0o600, []byte(testPSK), "", ""},
		{"0400 text CRLF", testPSK + "\r\n", 0o400, []byte(testPSK), "", ""},
		{"0644", testPSK, 0o644, nil, "", "has mode 0644; a key file must be 0600 or stricter (chmod 600 "},
		{"0640", testPSK, 0o640, nil, "", "chmod 600"},
		{"0604", testPSK, 0o604, nil, "", "chmod 600"},
		{"hex", "0x000102030405060708090a0b0c0d0e0f10111213\n", 0o600, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, "", ""},
		{"base64", "0sAAECAwQFBgcICQoLDA0ODxAREhM=\n", 0o600, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, "", ""},
		{"bad hex", "0xSECRETzz" + testPSK, 0o600, nil, "", "not hex digits"},
		{"bad base64", "0s!!SECRET" + testPSK, 0o600, nil, "", "not base64"},
		{"short", "tooshort\n", 0o600, []byte("tooshort"), "is 8 bytes", ""},
		{"empty", "\n", 0o600, nil, "", "is empty"},
		{"empty hex", "0x\n", 0o600, nil, "", "is empty"},
		{"too big", strings.Repeat("k", MaxPSKFileSize+1), 0o600, nil, "", "a PSK file holds one secret, at most 1024 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "site.psk", tt.content, tt.perm)
			file := filepath.Join(dir, "gw.toml")
			body := strings.Replace(minConn, "psk_file = \"site.psk\"", "psk_file = \"site.psk\" #<", 1)
			cfg, err := Parse(file, []byte(ikeBase+body))
			if tt.err != "" {
				if err == nil {
					t.Fatal("accepted")
				}
				msgs := ikeErrs(t, err)
				prefix := fmt.Sprintf("%s:%d: connection[0].local.psk_file: ", file, lineOf(t, body, "#<"))
				if !hasMsg(msgs, prefix, tt.err) {
					t.Errorf("want %q...%q; got %v", prefix, tt.err, msgs)
				}
				for _, m := range msgs {
					if strings.Contains(m, "SECRET") || strings.Contains(m, testPSK) {
						t.Errorf("a secret is in the message: %s", m)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.IKE.Connections[0]
			if !bytes.Equal(c.Local.PSK, tt.psk) || !bytes.Equal(c.Remote.PSK, tt.psk) {
				t.Errorf("PSK %x / %x, want %x", c.Local.PSK, c.Remote.PSK, tt.psk)
			}
			var ws []string
			for _, w := range cfg.Warnings {
				ws = append(ws, w.Error())
				if strings.Contains(w.Msg, string(tt.psk)) {
					t.Errorf("the PSK is in a warning: %s", w.Msg)
				}
			}
			if tt.warn == "" && len(ws) > 0 {
				t.Errorf("warnings: %v", ws)
			}
			if tt.warn != "" && !hasMsg(ws, fmt.Sprintf("%s:%d: connection[0].local.psk_file: ", file, lineOf(t, body, "#<")), tt.warn) {
				t.Errorf("want a warning %q; got %v", tt.warn, ws)
			}
		})
	}
	// Not a regular file.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "site.psk"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(filepath.Join(dir, "gw.toml"), []byte(ikeBase+minConn))
	if err == nil || !strings.Contains(err.Error(), "is a directory, not a regular file") {
		t.Errorf("a directory as PSK file: %v", err)
	}
}

// TestIKEMobilityRoles: the IKE-keyed home agent and mobile node examples
// (testdata/ha-ike.toml, mn-ike.toml) parse with their PSK file, mirror
// each other, and need no [[sa]]; without a child for the Binding Updates
// the file is refused with the child to add (RFC 4877 §7.2.1).
func TestIKEMobilityRoles(t *testing.T) {
	dir := t.TempDir()
	psk := writeFile(t, dir, "ha-mn.psk", testPSK+"\n", 0o600)
	load := func(name string, edit func(string) string) (*File, error) {
		data, err := os.ReadFile("../testdata/" + name + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "/etc/mipsec/ha-mn.psk", psk)
		if edit != nil {
			text = edit(text)
		}
		return Parse(filepath.Join(dir, name+".toml"), []byte(text))
	}
	mn, err := load("mn-ike", nil)
	if err != nil {
		t.Fatal(err)
	}
	ha, err := load("ha-ike", nil)
	if err != nil {
		t.Fatal(err)
	}
	if mn.Role != node.RoleMN || ha.Role != node.RoleHA || len(mn.SAs) != 0 || len(ha.SAs) != 0 {
		t.Fatalf("roles %q %q, %d and %d manual SAs", mn.Role, ha.Role, len(mn.SAs), len(ha.SAs))
	}
	for _, f := range []*File{mn, ha} {
		if len(f.Warnings) > 0 {
			t.Errorf("%s: warnings %v", f.Role, f.Warnings)
		}
	}
	mc, hc := mn.IKE.Connections[0], ha.IKE.Connections[0]
	hoa := mn.Mobility.HomeAddress
	if !mc.Local.ID.Equal(ike.IdentityFromAddr(hoa)) || len(hc.Remote.PAD) != 1 || !hc.Remote.PAD[0].ID.Equal(mc.Local.ID) ||
		hc.Remote.PAD[0].Addrs[0] != netip.PrefixFrom(hoa, 128) {
		t.Errorf("the MN's identity %v is not the HA's PAD entry %+v", mc.Local.ID, hc.Remote.PAD)
	}
	if mc.MOBIKE || hc.MOBIKE {
		t.Error("MOBIKE on: the K flag moves a mobile node's IKE SA")
	}
	if len(mc.Children) != 4 || len(hc.Children) != 4 || mc.Children[0].Mode != ike.ModeTransport || hc.Children[0].Mode != ike.ModeTransport {
		t.Fatalf("children: MN %d, HA %d", len(mc.Children), len(hc.Children))
	}
	for i := range mc.Children {
		m, h := mc.Children[i], hc.Children[i]
		if m.Name != h.Name || m.Mode != h.Mode || !ike.TSSubset(m.LocalTS, h.RemoteTS) || !ike.TSSubset(m.RemoteTS, h.LocalTS) {
			t.Errorf("child %s: MN %v -> %v is not within the HA's %v <- %v", m.Name, m.LocalTS, m.RemoteTS, h.RemoteTS, h.LocalTS)
		}
	}
	if mn.Mobility.NoKFlag || ha.Mobility.NoKFlag {
		t.Error("the K flag is on by default")
	}
	noK, err := load("mn-ike", func(s string) string { return strings.Replace(s, "[mobility]\n", "[mobility]\nk_flag = false\n", 1) })
	if err != nil || !noK.Mobility.NoKFlag {
		t.Errorf("k_flag = false: %v, NoKFlag %v", err, noK != nil && noK.Mobility.NoKFlag)
	}
	noBU := func(text string) string {
		return strings.Replace(text, `mode = "transport"
  local_ts = ["2001:db8:1::100[mh/5]"]`, `mode = "tunnel"
  local_ts = ["2001:db8:1::100[mh/5]"]`, 1)
	}
	if _, err := load("mn-ike", noBU); err == nil || !strings.Contains(err.Error(), "no transport-mode child carries the Binding Updates") ||
		!strings.Contains(err.Error(), `local_ts = ["2001:db8:1::100[mh/5]"]`) {
		t.Errorf("MN without a BU child: %v", err)
	}
	// A transport child for another MH type (HoTI, 1) carries no BUs.
	if _, err := load("mn-ike", func(s string) string {
		s = noBU(s)
		return strings.Replace(s, `name = "hoti"
  local_ts`, `name = "hoti"
  mode = "transport"
  local_ts`, 1)
	}); err == nil || !strings.Contains(err.Error(), "no transport-mode child carries the Binding Updates") {
		t.Errorf("MN whose only transport MH child is for HoTI: %v", err)
	}
	haNoBU := func(text string) string {
		return strings.Replace(text, `remote_ts = ["2001:db8:1::/64[mh/5]"]`, `remote_ts = ["2001:db8:9::/64[mh/5]"]`, 1)
	}
	if _, err := load("ha-ike", haNoBU); err == nil || !strings.Contains(err.Error(), "no transport-mode child carries the Binding Updates") {
		t.Errorf("HA without a BU child for its home prefix: %v", err)
	}
}

// TestIKEBothKinds: manual SAs and policies beside an IKE connection.
func TestIKEBothKinds(t *testing.T) {
	data, err := os.ReadFile("../testdata/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "site.psk", testPSK, 0o600)
	data = append(data, strings.ReplaceAll(minConn, "192.0.2.2", "203.0.113.1")...)
	cfg, err := Parse(filepath.Join(dir, "gw.toml"), data)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.SAs) != 2 || len(cfg.Policies) != 2 || len(cfg.IKE.Connections) != 1 {
		t.Errorf("%d SAs, %d policies, %d connections; want 2, 2, 1", len(cfg.SAs), len(cfg.Policies), len(cfg.IKE.Connections))
	}
}

// TestIKEExamples: testdata/ike-gateway-a.toml and -b.toml, with their
// PSK file written (mode 0600) where they name it.
func TestIKEExamples(t *testing.T) {
	dir := t.TempDir()
	psk := writeFile(t, dir, "a-b.psk", "0s"+"q2Vx3mZ0c8b1Lh4Yk9TnRw2pF7sJd6GaU0oE5iXyWcM="+"\n", 0o600)
	var conns [2]ike.Connection
	for i, name := range []string{"ike-gateway-a", "ike-gateway-b"} {
		data, err := os.ReadFile("../testdata/" + name + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte("/etc/mipsec/gateway-a-b.psk"), []byte(psk))
		cfg, err := Parse(filepath.Join(dir, name+".toml"), data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(cfg.Warnings) > 0 {
			t.Errorf("%s: warnings %v", name, cfg.Warnings)
		}
		if len(cfg.IKE.Connections) != 1 {
			t.Fatalf("%s: %d connections", name, len(cfg.IKE.Connections))
		}
		conns[i] = cfg.IKE.Connections[0]
	}
	a, b := conns[0], conns[1]
	// The pair mirrors: addresses, identities, selectors, the secret.
	if a.RemoteAddrs[0].Addr() != b.LocalAddrs[0] || b.RemoteAddrs[0].Addr() != a.LocalAddrs[0] {
		t.Errorf("addresses do not mirror: %v %v / %v %v", a.LocalAddrs, a.RemoteAddrs, b.LocalAddrs, b.RemoteAddrs)
	}
	if !reflect.DeepEqual(a.Local.ID, b.Remote.ID) || !reflect.DeepEqual(a.Remote.ID, b.Local.ID) {
		t.Errorf("identities do not mirror")
	}
	if !reflect.DeepEqual(a.Children[0].LocalTS, b.Children[0].RemoteTS) || !reflect.DeepEqual(a.Children[0].RemoteTS, b.Children[0].LocalTS) {
		t.Errorf("selectors do not mirror")
	}
	if !bytes.Equal(a.Local.PSK, b.Remote.PSK) || len(a.Local.PSK) != 32 {
		t.Errorf("PSKs differ or are not 32 bytes")
	}
	if a.Children[0].Start != ike.StartStart || b.Children[0].Start != ike.StartNone {
		t.Errorf("A should start, B wait")
	}
}

// testCert makes a self-signed certificate for key.
func testCert(t *testing.T, key crypto.Signer, ca bool) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gw-a.example.org"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestIKEPubkey: certificates and private keys in their PEM forms.
func TestIKEPubkey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	sec1 := func(k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	}
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}))
	body := strings.Replace(minConn, "auth = \"psk\"\npsk_file = \"site.psk\"", "auth = \"pubkey\"\ncert = \"a.pem\"\nkey = \"a.key\" #<", 1) +
		"[connection.remote]\ncacerts = [\"ca.pem\"]\n"
	for _, tt := range []struct {
		name      string
		cert, key string
		signer    crypto.Signer
		keyPerm   os.FileMode
		err       string
	}{
		{"ecdsa pkcs8", string(testCert(t, ec, false)), pkcs8(ec), ec, 0o600, ""},
		{"ecdsa sec1", string(testCert(t, ec, false)), sec1(ec), ec, 0o600, ""},
		{"ed25519", string(testCert(t, ed, false)), pkcs8(ed), ed, 0o600, ""},
		{"rsa 1024 pkcs1", string(testCert(t, small, false)), pkcs1, small, 0o600, "an RSA key of 1024 bits; want at least 2048"},
		{"key of another cert", string(testCert(t, ec, false)), pkcs8(other), nil, 0o600, "is not the private key of the certificate"},
		{"key mode 0644", string(testCert(t, ec, false)), pkcs8(ec), nil, 0o644, "chmod 600"},
		{"encrypted key", string(testCert(t, ec, false)), "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", nil, 0o600, "is encrypted"},
		{"no key", string(testCert(t, ec, false)), "hello", nil, 0o600, "holds no PEM private key"},
		{"garbage key", string(testCert(t, ec, false)), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", nil, 0o600, "not a private key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "a.pem", tt.cert, 0o644)
			writeFile(t, dir, "a.key", tt.key, tt.keyPerm)
			writeFile(t, dir, "ca.pem", string(testCert(t, other, true)), 0o644)
			file := filepath.Join(dir, "gw.toml")
			cfg, err := Parse(file, []byte(ikeBase+body))
			if tt.err != "" {
				if err == nil {
					t.Fatal("accepted")
				}
				prefix := fmt.Sprintf("%s:%d: connection[0].local.key: ", file, lineOf(t, body, "#<"))
				if msgs := ikeErrs(t, err); !hasMsg(msgs, prefix, tt.err) {
					t.Errorf("want %q...%q, got %v", prefix, tt.err, msgs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.IKE.Connections[0]
			if c.Local.Method != ike.AuthPubkey || c.Remote.Method != ike.AuthPubkey || len(c.Local.Certs) != 1 || len(c.Remote.CAs) != 1 {
				t.Fatalf("auth %+v / %+v", c.Local.Method, c.Remote.Method)
			}
			type equaler interface{ Equal(crypto.PublicKey) bool }
			if !c.Local.Key.Public().(equaler).Equal(tt.signer.Public()) {
				t.Errorf("the key read is not the one written")
			}
			if !c.Remote.CAs[0].IsCA {
				t.Errorf("CA not read")
			}
		})
	}
	// Certificate files: not PEM, a key where a certificate belongs.
	for _, tt := range []struct{ name, data, err string }{
		{"empty", "", "holds no PEM certificate"},
		{"key block", pkcs8(ec), "PEM block 1 is \"PRIVATE KEY\""},
		{"garbage cert", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate 1:"},
	} {
		t.Run("cacerts "+tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "a.pem", string(testCert(t, ec, false)), 0o644)
			writeFile(t, dir, "a.key", pkcs8(ec), 0o600)
			writeFile(t, dir, "ca.pem", tt.data, 0o644)
			file := filepath.Join(dir, "gw.toml")
			_, err := Parse(file, []byte(ikeBase+body))
			prefix := fmt.Sprintf("%s:%d: connection[0].remote.cacerts[0]: ", file, lineOf(t, body, "cacerts"))
			if err == nil || !hasMsg(ikeErrs(t, err), prefix, tt.err) {
				t.Errorf("want %q...%q, got %v", prefix, tt.err, err)
			}
			if lines := strings.Split(tt.data, "\n"); err != nil && len(lines) > 1 && strings.Contains(err.Error(), lines[1]) {
				t.Errorf("file content in the message: %v", err)
			}
		})
	}
}

// TestIKEHostile: huge values, deep nesting and too many tables are
// refused with bounded messages, never a panic.
func TestIKEHostile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "site.psk", testPSK, 0o600)
	file := filepath.Join(dir, "gw.toml")
	parse := func(body string) error {
		_, err := Parse(file, []byte(ikeBase+body))
		return err
	}
	// A megabyte name: refused, and the message stays short.
	huge := strings.Repeat("é", 1<<19)
	err := parse(strings.Replace(minConn, "name = \"site-b\"", "name = \""+huge+"\"", 1))
	if err == nil || len(err.Error()) > 1000 || !strings.Contains(err.Error(), "connection[0].name") {
		t.Errorf("huge name: %d bytes of error: %.200v", len(fmt.Sprint(err)), err)
	}
	err = parse(strings.Replace(minConn, "remote_ts = [\"10.2.0.0/16\"]", "remote_ts = [\""+huge+"\"]", 1))
	if err == nil || len(err.Error()) > 1000 {
		t.Errorf("huge selector: %d bytes of error", len(fmt.Sprint(err)))
	}
	// Invalid UTF-8 in a value: the text check names the line.
	err = parse(strings.Replace(minConn, "name = \"net\"", "name = \"n\xffet\"", 1))
	if err == nil || !strings.Contains(err.Error(), "is not UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	// Deeply nested arrays and tables.
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	if err := parse(strings.Replace(minConn, "remote_ts = [\"10.2.0.0/16\"]", "remote_ts = "+deep, 1)); err == nil {
		t.Error("nested arrays accepted")
	}
	dotted := "[connection." + strings.Repeat("a.", 5000) + "b]\n"
	if err := parse(minConn + dotted); err == nil {
		t.Error("deep table accepted")
	}
	// Too many connections and children.
	var b strings.Builder
	for i := 0; i < 100000; i++ {
		b.WriteString("[[connection]]\n")
	}
	err = parse(b.String())
	want := fmt.Sprintf("%s:%d: connection[%d]: 100000 [[connection]] tables; a file holds at most %d", file, strings.Count(ikeBase, "\n")+MaxConnections+1, MaxConnections, MaxConnections)
	if err == nil || !hasMsg(ikeErrs(t, err), want, "") {
		t.Errorf("want %q, got %.300v", want, err)
	}
	b.Reset()
	b.WriteString(strings.Replace(minConn, "[[connection.child]]\nname = \"net\"\nremote_ts = [\"10.2.0.0/16\"]\n", "", 1))
	for i := 0; i <= MaxChildren; i++ {
		fmt.Fprintf(&b, "[[connection.child]]\nname = \"c%d\"\nremote_ts = [\"10.2.0.0/16\"]\n", i)
	}
	err = parse(b.String())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("connection[0].child[%d]: %d [[connection.child]] tables; a connection holds at most %d", MaxChildren, MaxChildren+1, MaxChildren)) {
		t.Errorf("too many children: %.300v", err)
	}
	// Long lists.
	list := "[" + strings.Repeat("\"10.2.0.0/16\", ", maxIKEList) + "\"10.3.0.0/16\"]"
	err = parse(strings.Replace(minConn, "remote_ts = [\"10.2.0.0/16\"]", "remote_ts = "+list, 1))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("connection[0].child[0].remote_ts: %d entries; at most %d", maxIKEList+1, maxIKEList)) {
		t.Errorf("long list: %.300v", err)
	}
	// Wrong types stop with go-toml's error at the line.
	if err := parse(strings.Replace(minConn, "remote_addrs = [\"192.0.2.2\"]", "remote_addrs = 5", 1)); err == nil {
		t.Error("remote_addrs = 5 accepted")
	}
	if err := parse(strings.Replace(minConn, "[connection.local]", "local = 7\n[connection.x]", 1)); err == nil {
		t.Error("local = 7 accepted")
	}
}
