package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// confSA is what a test compares of one SA: everything but the keys.
type confSA struct {
	Name, Dir, Mode, Alg string
	SPI                  uint32
	Src, Dst             string
	ESN                  bool
	Window               int
	Lifetime             sad.Lifetime
	Selectors            []string
}

type confPolicy struct {
	Name, Dir, Action string
	SPI               uint32
	Selectors         []string
}

// dbContents builds the SAD and SPD from cfg, as the daemon does, and
// returns what they hold.
func dbContents(t *testing.T, cfg *File) ([]confSA, []confPolicy) {
	t.Helper()
	db := sad.New(sad.Options{})
	defer db.Close()
	for _, s := range cfg.SAs {
		if _, err := db.Add(s.Config); err != nil {
			t.Fatalf("%s: %v", s.Path, err)
		}
	}
	pdb := spd.New(db)
	if err := pdb.Replace(cfg.Policies); err != nil {
		t.Fatal(err)
	}
	var sas []confSA
	for _, sa := range db.List() {
		p := sa.Params()
		c := confSA{Name: sa.Name(), Dir: sa.Dir().String(), Mode: p.Mode.String(), Alg: p.Algorithm.String(),
			SPI: sa.SPI(), Src: p.TunnelSrc.String(), Dst: p.TunnelDst.String(), ESN: p.ESN, Lifetime: sa.Lifetime()}
		if sa.Dir() == sad.Inbound {
			c.Window = p.ReplayWindow
		}
		for _, s := range sa.Selectors() {
			c.Selectors = append(c.Selectors, FormatSelector(s))
		}
		sas = append(sas, c)
	}
	var pols []confPolicy
	for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
		for _, p := range pdb.List(d) {
			c := confPolicy{Name: p.Name, Dir: p.Dir.String(), Action: strings.ToLower(p.Action.String()), SPI: p.SPI}
			for _, s := range p.Selectors {
				c.Selectors = append(c.Selectors, FormatSelector(s))
			}
			pols = append(pols, c)
		}
	}
	return sas, pols
}

func TestExampleConfigs(t *testing.T) {
	hour := sad.Lifetime{} // the examples bound no SA: nothing rekeys manual SAs
	const (
		v4a = "192.0.2.0/25"
		v4b = "192.0.2.128/25"
		v6a = "2001:db8:a::/48"
		v6b = "2001:db8:b::/48"
		gwA = "198.51.100.1"
		gwB = "203.0.113.1"
	)
	sel := func(l, r string) []string { return []string{l + " -> " + r + " proto any"} }
	out, in := sad.Outbound.String(), sad.Inbound.String()
	for _, tt := range []struct {
		file      string
		tun       node.TUNConfig
		stateDir  string
		format    string
		peer      dataplane.PeerConfig
		sas       []confSA
		policies  []confPolicy
		warnCount int
	}{
		{
			file: "gateway-a.toml", stateDir: "/var/lib/mipsec/gateway-a", format: "console",
			tun: node.TUNConfig{Name: "mipsec-a", MTU: 1400, Addresses: mustPrefixes("192.0.2.1/25", "2001:db8:a::1/64"), Routes: mustPrefixes(v4b, v6b)},
			peer: dataplane.PeerConfig{Name: "gateway-b", Endpoint: endpoint.Endpoint{Addr: mustAddrPort(gwB + ":0")},
				OutSPIs: []uint32{0xb001, 0xb006}, InSPIs: []uint32{0xa001, 0xa006}, Keepalive: 20 * time.Second},
			sas: []confSA{
				{Name: "a-to-b-v4", Dir: out, Mode: "tunnel", Alg: "aes128gcm16", SPI: 0xb001, Src: gwA, Dst: gwB, Lifetime: hour, Selectors: sel(v4a, v4b)},
				{Name: "a-to-b-v6", Dir: out, Mode: "tunnel", Alg: "aes128-sha256", SPI: 0xb006, Src: gwA, Dst: gwB, Selectors: sel(v6a, v6b)},
				{Name: "b-to-a-v4", Dir: in, Mode: "tunnel", Alg: "aes128gcm16", SPI: 0xa001, Src: gwB, Dst: gwA, Window: 1024, Lifetime: hour, Selectors: sel(v4a, v4b)},
				{Name: "b-to-a-v6", Dir: in, Mode: "tunnel", Alg: "aes128-sha256", SPI: 0xa006, Src: gwB, Dst: gwA, Window: 1024, Selectors: sel(v6a, v6b)},
			},
			policies: []confPolicy{
				{Name: "out-v4", Dir: out, Action: "protect", SPI: 0xb001, Selectors: sel(v4a, v4b)},
				{Name: "out-v6", Dir: out, Action: "protect", SPI: 0xb006, Selectors: sel(v6a, v6b)},
				{Name: "out-default", Dir: out, Action: "discard", Selectors: sel("any", "any")},
				{Name: "in-v4", Dir: in, Action: "protect", Selectors: sel(v4a, v4b)},
				{Name: "in-v6", Dir: in, Action: "protect", Selectors: sel(v6a, v6b)},
				{Name: "in-default", Dir: in, Action: "discard", Selectors: sel("any", "any")},
			},
		},
		{
			file: "gateway-b.toml", stateDir: "/var/lib/mipsec/gateway-b", format: "json",
			tun: node.TUNConfig{Name: "mipsec-b", MTU: 1400, Addresses: mustPrefixes("192.0.2.129/25", "2001:db8:b::1/64"), Routes: mustPrefixes(v4a, v6a)},
			peer: dataplane.PeerConfig{Name: "gateway-a", Endpoint: endpoint.Endpoint{Addr: mustAddrPort(gwA + ":0")},
				OutSPIs: []uint32{0xa001, 0xa006}, InSPIs: []uint32{0xb001, 0xb006}, Keepalive: 20 * time.Second},
			sas: []confSA{
				{Name: "b-to-a-v4", Dir: out, Mode: "tunnel", Alg: "aes128gcm16", SPI: 0xa001, Src: gwB, Dst: gwA, Lifetime: hour, Selectors: sel(v4b, v4a)},
				{Name: "b-to-a-v6", Dir: out, Mode: "tunnel", Alg: "aes128-sha256", SPI: 0xa006, Src: gwB, Dst: gwA, Selectors: sel(v6b, v6a)},
				{Name: "a-to-b-v4", Dir: in, Mode: "tunnel", Alg: "aes128gcm16", SPI: 0xb001, Src: gwA, Dst: gwB, Window: 1024, Lifetime: hour, Selectors: sel(v4b, v4a)},
				{Name: "a-to-b-v6", Dir: in, Mode: "tunnel", Alg: "aes128-sha256", SPI: 0xb006, Src: gwA, Dst: gwB, Window: 1024, Selectors: sel(v6b, v6a)},
			},
			policies: []confPolicy{
				{Name: "out-v4", Dir: out, Action: "protect", SPI: 0xa001, Selectors: sel(v4b, v4a)},
				{Name: "out-v6", Dir: out, Action: "protect", SPI: 0xa006, Selectors: sel(v6b, v6a)},
				{Name: "out-default", Dir: out, Action: "discard", Selectors: sel("any", "any")},
				{Name: "in-v4", Dir: in, Action: "protect", Selectors: sel(v4b, v4a)},
				{Name: "in-v6", Dir: in, Action: "protect", Selectors: sel(v6b, v6a)},
				{Name: "in-default", Dir: in, Action: "discard", Selectors: sel("any", "any")},
			},
		},
	} {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("..", "testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.tun, cfg.TUN, cmp.Comparer(prefixesEqual)); diff != "" {
				t.Errorf("tun (-want +got):\n%s", diff)
			}
			if cfg.StateDir != tt.stateDir || cfg.LogFormat != tt.format || !cfg.Underlay.Raw || cfg.Underlay.UDP || cfg.Underlay.UDPPort != 4500 {
				t.Errorf("state_dir %q format %q underlay %+v", cfg.StateDir, cfg.LogFormat, cfg.Underlay)
			}
			if diff := cmp.Diff([]dataplane.PeerConfig{tt.peer}, cfg.Peers, cmp.Comparer(addrPortEqual)); diff != "" {
				t.Errorf("peers (-want +got):\n%s", diff)
			}
			sas, pols := dbContents(t, cfg)
			if diff := cmp.Diff(tt.sas, sas); diff != "" {
				t.Errorf("SAD (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.policies, pols); diff != "" {
				t.Errorf("SPD (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExamplePairMatches: every SA of gateway A is an SA of gateway B with
// the opposite direction, the same SPI, algorithm and keys, and the
// tunnel endpoints swapped, so the two files really talk to each other.
func TestExamplePairMatches(t *testing.T) {
	a, err := Load("../testdata/gateway-a.toml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load("../testdata/gateway-b.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.SAs) != len(b.SAs) {
		t.Fatalf("%d vs %d SAs", len(a.SAs), len(b.SAs))
	}
	for _, sa := range a.SAs {
		found := false
		for _, sb := range b.SAs {
			if sb.Params.SPI != sa.Params.SPI || sb.Dir == sa.Dir {
				continue
			}
			found = true
			pa, pb := sa.Params, sb.Params
			if pa.Algorithm != pb.Algorithm || string(pa.EncKey) != string(pb.EncKey) || string(pa.AuthKey) != string(pb.AuthKey) ||
				pa.TunnelSrc != pb.TunnelSrc || pa.TunnelDst != pb.TunnelDst || pa.ESN != pb.ESN {
				t.Errorf("SPI %#x: A and B disagree: %+v / %+v", pa.SPI, pa, pb)
			}
		}
		if !found {
			t.Errorf("SPI %#x %v of A has no mirror in B", sa.Params.SPI, sa.Dir)
		}
	}
}

// TestBadConfigs: every file in testdata/bad is refused with an error that
// names the field and its line and says what is wrong.
func TestBadConfigs(t *testing.T) {
	for _, tt := range []struct {
		file, path, msg string
		setup           func(t *testing.T, dir string) // runs in a copy of testdata/bad
	}{
		{file: "unknown-field", path: "tun.nmae", msg: "unknown field"},
		{file: "bad-hex", path: "sa[0].enc_key", msg: "not a hex key: 'g' is not a hex digit"},
		{file: "key-length", path: "sa[0].enc_key", msg: "15 bytes, aes128gcm16 needs 20 (16-byte key + 4-byte salt)"},
		{file: "keyfile-perms", path: "sa[0].enc_key_file", msg: "mode 0644; a key file must be 0600 or stricter",
			setup: func(t *testing.T, dir string) { writeKeyFile(t, filepath.Join(dir, "gcm.key"), 0o644) }},
		{file: "duplicate-spi", path: "sa[2].spi", msg: "0x0000a001 is already used by the in SA sa[1]"},
		{file: "policy-missing-spi", path: "policy[0].spi", msg: "0x0000b009 names no out SA"},
		{file: "mixed-families", path: "sa[0].selectors[0].remote", msg: "is IPv6 but local 192.0.2.0/25 is IPv4"},
		{file: "bad-port-range", path: "policy[0].selectors[0].local_port", msg: "the range ends before it starts"},
		{file: "unknown-algorithm", path: "sa[0].algorithm", msg: `"aes128-rot13" is not an algorithm; want one of aes128gcm16`},
		{file: "soft-over-hard", path: "sa[0].lifetime.soft.bytes", msg: "3000000 is above the hard limit 2000000"},
		{file: "bad-mode", path: "sa[0].mode", msg: `"tunel" is not a mode; want tunnel or transport`},
		{file: "bad-encap", path: "underlay.encap", msg: `"gre" is not an encapsulation`},
		{file: "missing-tun-name", path: "tun.name", msg: "missing"},
		{file: "reserved-spi", path: "sa[1].spi", msg: "42 is reserved by IANA"},
		{file: "bad-endpoint", path: "peer[0].endpoint", msg: "raw ESP has none"},
		{file: "mixed-tunnel-endpoints", path: "sa[0].remote", msg: "tunnel endpoints must be one family"},
		{file: "syntax", path: "", msg: "basic strings cannot have new lines"},
		{file: "peer-unknown-spi", path: "peer[0].out_spis[1]", msg: "0x0000b002 names no out SA"},
		{file: "bad-log-level", path: "log.level", msg: `"chatty" is not a level`},
		{file: "relative-state-dir", path: "state_dir", msg: "is relative"},
		{file: "port-without-proto", path: "policy[0].selectors[0].remote_port", msg: "ports need proto = tcp, udp or sctp"},
		{file: "bad-duration", path: "underlay.keepalive", msg: `"20 parsecs" is not a positive duration`},
		{file: "missing-key", path: "sa[1].auth_key", msg: "missing; aes128-sha256 needs 32 bytes"},
		{file: "no-selectors", path: "sa[1].selectors", msg: "at least one selector set"},
		{file: "icmp-on-tcp", path: "policy[0].selectors[0].icmp_type", msg: "need proto = icmp or ipv6-icmp"},
		{file: "many-errors", path: "sa[1].dir", msg: `"sideways" is not a direction`},
		// role and [mobility] (config_mobility.go)
		{file: "bad-role", path: "role", msg: `"router" is not a role`},
		{file: "mobility-on-gateway", path: "mobility", msg: `needs role = "ha" or "mn"`},
		{file: "mobility-missing", path: "role", msg: "needs a [mobility] section"},
		{file: "ha-missing-prefix", path: "mobility.home_prefix", msg: "missing; want the home link's IPv6 prefix"},
		{file: "ha-bad-lifetime", path: "mobility.max_lifetime", msg: "100h0m0s is out of range; want 4s..72h49m0s"},
		{file: "ha-address-off-link", path: "mobility.ha_address", msg: "2001:db8:ff::1 is not in home_prefix 2001:db8:1::/64"},
		{file: "ha-no-back-sa", path: "sa[0]", msg: "no outbound SA protects Binding Acknowledgements"},
		{file: "mn-ha-field", path: "mobility.home_link", msg: `is for role = "ha"; a mobile node has none`},
		{file: "mn-hoa-off-link", path: "mobility.home_address", msg: "2001:db8:2::100 is not in home_prefix"},
		{file: "mn-local", path: "underlay.local", msg: `must be empty with role = "mn"`},
		{file: "mn-v4-raw", path: "underlay.encap", msg: `must be "both" with mobility.ha_address_v4`},
		{file: "mn-roaming", path: "peer[0].roaming", msg: "must be false with role = \"mn\": only accepted Binding Updates"},
		{file: "mn-no-bu-sa", path: "mobility.home_address", msg: "no outbound SA protects Binding Updates from 2001:db8:1::100"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			src := filepath.Join("..", "testdata", "bad", tt.file+".toml")
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, tt.file+".toml")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			_, err = Load(file)
			var ce Errors
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load = %v, want Errors", err)
			}
			var hit *Error
			for i := range ce {
				if ce[i].Path == tt.path && strings.Contains(ce[i].Msg, tt.msg) {
					hit = &ce[i]
				}
			}
			if hit == nil {
				t.Fatalf("no error at %q containing %q; got:\n%v", tt.path, tt.msg, err)
			}
			if hit.Line == 0 {
				t.Errorf("error without a line: %v", hit)
			}
			// The line is where the field is written (or, for a missing
			// field, its section).
			lines := strings.Split(string(data), "\n")
			if hit.Line > len(lines) {
				t.Fatalf("line %d beyond the file", hit.Line)
			}
			if key := lastKey(tt.path); key != "" && !strings.Contains(lines[hit.Line-1], key) && !strings.HasPrefix(hit.Msg, "missing") && !strings.HasPrefix(key, "[") {
				t.Errorf("line %d is %q, which does not write %s", hit.Line, lines[hit.Line-1], key)
			}
			if !strings.HasPrefix(hit.Error(), file+":") {
				t.Errorf("error does not start with file:line: %q", hit.Error())
			}
			if tt.file == "many-errors" && len(ce) < 3 {
				t.Errorf("many-errors: only %d errors reported:\n%v", len(ce), err)
			}
		})
	}
}

func lastKey(path string) string {
	if i := strings.LastIndexAny(path, ".]"); i >= 0 && path[i] == '.' {
		return path[i+1:]
	}
	if i := strings.LastIndex(path, "["); i >= 0 {
		return path[i:]
	}
	return path
}

func writeKeyFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("00010203 04050607 08090a0b 0c0d0e0f 10111213\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
}

func TestKeyFiles(t *testing.T) {
	data, err := os.ReadFile("../testdata/bad/keyfile-perms.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		mode os.FileMode
		ok   bool
	}{
		{"0600", 0o600, true},
		{"0400", 0o400, true},
		{"0640", 0o640, false},
		{"0604", 0o604, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "c.toml")
			os.WriteFile(file, data, 0o600)
			writeKeyFile(t, filepath.Join(dir, "gcm.key"), tt.mode)
			cfg, err := Load(file)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got := cfg.SAs[0].Params.EncKey; len(got) != 20 || got[19] != 0x13 {
					t.Errorf("key from file: %x", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "0600 or stricter") {
				t.Errorf("mode %v accepted: %v", tt.mode, err)
			}
		})
	}
	// A key file owned by another user (needs root to make one).
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		file := filepath.Join(dir, "c.toml")
		os.WriteFile(file, data, 0o600)
		key := filepath.Join(dir, "gcm.key")
		writeKeyFile(t, key, 0o600)
		if err := os.Chown(key, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(file); err == nil || !strings.Contains(err.Error(), "is owned by uid 65534; a key file must belong to root") {
			t.Errorf("foreign owner: %v", err)
		}
	}
	// A missing key file and a key given twice.
	dir := t.TempDir()
	file := filepath.Join(dir, "c.toml")
	os.WriteFile(file, data, 0o600)
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing key file: %v", err)
	}
	both := strings.Replace(string(data), `enc_key_file = "gcm.key"`, `enc_key_file = "gcm.key"`+"\nenc_key = \"00\"", 1)
	if _, err := Parse(file, []byte(both)); err == nil || !strings.Contains(err.Error(), "set either enc_key or enc_key_file, not both") {
		t.Errorf("both key forms: %v", err)
	}
}

// TestSelectorForms covers the selector syntax the examples do not use.
func TestSelectorForms(t *testing.T) {
	data, err := os.ReadFile("../testdata/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sel, want string
	}{
		{`{ local = "192.0.2.10-192.0.2.20", remote = "192.0.2.200" }`, "192.0.2.10-192.0.2.20 -> 192.0.2.200 proto any"},
		{`{ proto = "tcp", local_port = 22, remote_port = "1024-65535" }`, "any -> any proto tcp lport 22 rport 1024-65535"},
		{`{ proto = 17, remote_port = "opaque" }`, "any -> any proto udp rport opaque"},
		{`{ proto = "icmp", icmp_type = 8, icmp_code = 0 }`, "any -> any proto icmp lport 2048 rport 2048"},
		{`{ proto = "ipv6-icmp", local_icmp_type = 128, remote_icmp_type = 129 }`, "any -> any proto ipv6-icmp lport 32768-33023 rport 33024-33279"},
		{`{ proto = "mh", local_mh_type = 5, remote_mh_type = 6 }`, "any -> any proto mh lport 1280-1535 rport 1536-1791"},
	} {
		t.Run(tt.sel, func(t *testing.T) {
			s := strings.Replace(string(data), `selectors = [{}]`, "selectors = ["+tt.sel+"]", 1)
			cfg, err := Parse("sel.toml", []byte(s))
			if err != nil {
				t.Fatal(err)
			}
			p := cfg.Policies[len(cfg.Policies)-1]
			if got := FormatSelector(p.Selectors[0]); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("/etc/mipsec/x.toml", []byte(`
[tun]
name = "t0"
[underlay]
encap = "udp"
[[sa]]
spi = "0x1000"
dir = "out"
local = "198.51.100.1"
remote = "203.0.113.1"
algorithm = "chacha20poly1305"
enc_key = "`+strings.Repeat("ab", 36)+`"
selectors = [{}]
[[peer]]
name = "p"
endpoint = "[2001:db8::1]"
out_spis = [4096]
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != DefaultStateDir || cfg.ControlSocket != DefaultControlSocket || cfg.TUN.MTU != DefaultTUNMTU ||
		cfg.Underlay.Keepalive != DefaultKeepalive || cfg.LogFormat != "console" || cfg.LogLevel.String() != "info" {
		t.Errorf("defaults: %+v", cfg)
	}
	if ep := cfg.Peers[0].Endpoint; ep.Encap != endpoint.EncapUDP || ep.Addr.String() != "[2001:db8::1]:4500" {
		t.Errorf("peer endpoint %v", ep)
	}
	if cfg.SAs[0].Params.SPI != 0x1000 {
		t.Errorf("spi %#x", cfg.SAs[0].Params.SPI)
	}
}
