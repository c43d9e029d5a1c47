package charontest

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultPlugins is charon's load list when Config.Plugins is empty: the
// crypto that the interop tests negotiate (openssl for AES-CBC/GCM,
// ChaCha20-Poly1305, the MODP/ECP groups and Curve25519; kdf for prf+,
// which strongSwan 5.9.6 moved out of the PRF plugins), the credentials
// (pem, pkcs1, pkcs8, x509, pubkey, revocation, constraints), then
// kernel-libipsec before kernel-netlink: the first kernel-ipsec backend
// wins, so ESP runs in charon's userspace on a TUN (ipsec0) instead of the
// kernel's XFRM, and kernel-netlink only does addresses and routes. No
// updown, no stroke.
var DefaultPlugins = []string{
	"random", "nonce", "drbg", "kdf", "openssl", "aes", "sha1", "sha2", "hmac",
	"gcm", "chapoly", "ctr", "ccm", "cmac", "xcbc", "curve25519",
	"pem", "pkcs1", "pkcs8", "x509", "pubkey", "revocation", "constraints",
	"kernel-libipsec", "kernel-netlink", "socket-default", "vici",
}

// DefaultLogLevels are charon's log levels per subsystem (strongswan.conf
// charon.filelog): control and IKE messages in enough detail to debug an
// interop failure, no keys.
var DefaultLogLevels = map[string]int{
	"default": 1,
	"ike":     2,
	"cfg":     1,
	"chd":     2,
	"knl":     1,
	"net":     1,
	"enc":     1,
}

// DefaultSettings are strongswan.conf keys under "charon" that keep
// tests short: a lost message is retransmitted after 1 s, 1.4 s, 2 s and
// given up after about 7 s (charon's own default is about 165 s).
var DefaultSettings = map[string]string{
	"retransmit_timeout": "1.0",
	"retransmit_base":    "1.4",
	"retransmit_tries":   "3",
}

// Conn is one IKE connection as vici's load-conn and swanctl.conf's
// connections section know it (swanctl.conf(5), connections.<conn>).
// Zero values are left out, so charon's defaults apply.
type Conn struct {
	Name        string   // the connection's name (initiate's "ike")
	Version     int      // IKE version; 0 means 2
	LocalAddrs  []string // local_addrs
	RemoteAddrs []string // remote_addrs
	LocalPort   int      // local_port (charon's default 500)
	RemotePort  int      // remote_port
	Proposals   []string // IKE proposals, e.g. "aes128gcm16-prfsha256-curve25519"
	VIPs        []string // vips: virtual IPs asked for by CP, "0.0.0.0" / "::" for any
	// Encap forces UDP encapsulation (RFC 3948) by faking a NAT in the
	// NAT_DETECTION payloads; charon's libipsec backend can only send and
	// receive ESP in UDP.
	Encap         bool
	MOBIKE        *bool         // mobike (charon: yes)
	Fragmentation string        // fragmentation: yes, accept, force, no
	Childless     string        // childless: allow, force, never (RFC 6023)
	DPDDelay      time.Duration // dpd_delay
	RekeyTime     time.Duration // rekey_time (IKE SA rekeying)
	ReauthTime    time.Duration // reauth_time
	OverTime      time.Duration // over_time
	RandTime      time.Duration // rand_time (0 here means charon's default)
	KeyingTries   int           // keyingtries
	Unique        string        // unique: no, never, keep, replace
	SendCertReq   *bool         // send_certreq
	SendCert      string        // send_cert: always, never, ifasked
	Local         Auth          // the local authentication round
	Remote        Auth          // the remote authentication round
	Children      map[string]Child
	// Extra holds further keys of the connection section verbatim.
	Extra map[string]string
}

// Auth is one authentication round (swanctl.conf local / remote section).
type Auth struct {
	Auth    string   // psk, pubkey, rsa/pss, ecdsa, eap-..., or empty
	ID      string   // IKE identity (an address, a FQDN, a DN "CN=...")
	Certs   []string // certificate files (PEM or DER) sent in CERT payloads
	CACerts []string // trust anchors for this round (remote)
	Pubkeys []string // raw public key files
	// Revocation is strict, ifuri or relaxed.
	Revocation string
	Extra      map[string]string
}

// Child is one CHILD_SA configuration (connections.<conn>.children.<child>).
type Child struct {
	LocalTS      []string // local_ts; empty means charon's dynamic
	RemoteTS     []string // remote_ts
	ESPProposals []string // esp_proposals, e.g. "aes128gcm16", "aes128gcm16-curve25519" (PFS)
	Mode         string   // tunnel (the only mode libipsec has), transport, ...
	StartAction  string   // start_action: none, trap, start
	DPDAction    string   // dpd_action: clear, trap, restart
	CloseAction  string   // close_action: none, trap, start
	RekeyTime    time.Duration
	LifeTime     time.Duration
	RandTime     time.Duration
	RekeyBytes   uint64
	LifeBytes    uint64
	RekeyPackets uint64
	LifePackets  uint64
	Inactivity   time.Duration
	ReplayWindow *int
	Extra        map[string]string
}

// ---- the configuration tree ------------------------------------------------

// tree is an ordered strongswan settings tree: strongswan.conf,
// swanctl.conf and vici messages have the same shape (key = value, lists,
// named sections), so one tree renders to all of them.
type tree struct{ items []item }

type item struct {
	key             string
	value           string   // a key = value pair ...
	list            []string // ... or a list ...
	files           []string // ... or a list of file contents (vici) / names (swanctl.conf) ...
	sub             *tree    // ... or a section
	isList, isFiles bool
}

func (t *tree) set(k, v string) {
	if v != "" {
		t.items = append(t.items, item{key: k, value: v})
	}
}

func (t *tree) setInt(k string, v int) {
	if v != 0 {
		t.set(k, strconv.Itoa(v))
	}
}

func (t *tree) setUint(k string, v uint64) {
	if v != 0 {
		t.set(k, strconv.FormatUint(v, 10))
	}
}

func (t *tree) setBool(k string, v *bool) {
	if v != nil {
		t.set(k, yesNo(*v))
	}
}

// setDur writes d in whole seconds, rounded up (charon's time values have
// a resolution of one second).
func (t *tree) setDur(k string, d time.Duration) {
	if d > 0 {
		t.set(k, strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)+"s")
	}
}

func (t *tree) setList(k string, v []string) {
	if len(v) > 0 {
		t.items = append(t.items, item{key: k, list: slices.Clone(v), isList: true})
	}
}

func (t *tree) setFiles(k string, paths []string) {
	if len(paths) > 0 {
		t.items = append(t.items, item{key: k, files: slices.Clone(paths), isFiles: true})
	}
}

func (t *tree) section(k string) *tree {
	for _, it := range t.items {
		if it.key == k && it.sub != nil {
			return it.sub
		}
	}
	s := &tree{}
	t.items = append(t.items, item{key: k, sub: s})
	return s
}

// extra adds kv in key order.
func (t *tree) extra(kv map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		t.set(k, kv[k])
	}
}

// render writes t in strongswan.conf / swanctl.conf syntax.
func (t *tree) render(b *strings.Builder, depth int) {
	ind := strings.Repeat("  ", depth)
	for _, it := range t.items {
		switch {
		case it.sub != nil:
			fmt.Fprintf(b, "%s%s {\n", ind, it.key)
			it.sub.render(b, depth+1)
			fmt.Fprintf(b, "%s}\n", ind)
		case it.isList || it.isFiles:
			vs := it.list
			if it.isFiles {
				vs = it.files
			}
			q := make([]string, len(vs))
			for i, v := range vs {
				q[i] = quote(v)
			}
			fmt.Fprintf(b, "%s%s = %s\n", ind, it.key, strings.Join(q, ", "))
		default:
			fmt.Fprintf(b, "%s%s = %s\n", ind, it.key, quote(it.value))
		}
	}
}

// quote puts v in double quotes when the settings parser would otherwise
// end or split it (strongswan.conf(5): whitespace, braces, '=', ',', '#',
// quotes).
func quote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\r\n{}=,#\"\\'") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`, "\r", `\r`)
	return `"` + r.Replace(v) + `"`
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// ---- strongswan.conf --------------------------------------------------------

// strongswanConf is charon's strongswan.conf: the load list, the stderr
// logger (the harness copies it to charon.log and Config.Log), the vici
// socket and the settings.
func strongswanConf(plugins []string, levels map[string]int, settings map[string]string, socket string) string {
	root := &tree{}
	ch := root.section("charon")
	ch.set("load", strings.Join(plugins, " "))
	// Settings first: a dotted key opens the sections it names, and the
	// harness's own keys below must win over them.
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		parts := strings.Split(k, ".")
		s := ch
		for _, p := range parts[:len(parts)-1] {
			s = s.section(p)
		}
		s.set(parts[len(parts)-1], settings[k])
	}
	lg := ch.section("filelog").section("stderr")
	for _, sub := range slices.Sorted(maps.Keys(levels)) {
		lg.set(sub, strconv.Itoa(levels[sub]))
	}
	lg.set("time_format", "%H:%M:%S")
	lg.set("ike_name", "yes")
	lg.set("flush_line", "yes")
	ch.section("plugins").section("vici").set("socket", "unix://"+socket)
	var b strings.Builder
	b.WriteString("# written by internal/charontest\n")
	root.render(&b, 0)
	return b.String()
}

// ---- swanctl.conf / load-conn -------------------------------------------------

// tree is c as the body of its connection section: vici's load-conn
// message is {c.Name = tree}, swanctl.conf's connections section the same.
func (c Conn) tree() (*tree, error) {
	if c.Name == "" || strings.ContainsAny(c.Name, " \t{}=.#\"") {
		return nil, fmt.Errorf("charontest: connection name %q: need a plain name", c.Name)
	}
	t := &tree{}
	v := c.Version
	if v == 0 {
		v = 2
	}
	t.setInt("version", v)
	t.setList("local_addrs", c.LocalAddrs)
	t.setList("remote_addrs", c.RemoteAddrs)
	t.setInt("local_port", c.LocalPort)
	t.setInt("remote_port", c.RemotePort)
	t.setList("proposals", c.Proposals)
	t.setList("vips", c.VIPs)
	if c.Encap {
		t.set("encap", "yes")
	}
	t.setBool("mobike", c.MOBIKE)
	t.set("fragmentation", c.Fragmentation)
	t.set("childless", c.Childless)
	t.setDur("dpd_delay", c.DPDDelay)
	t.setDur("rekey_time", c.RekeyTime)
	t.setDur("reauth_time", c.ReauthTime)
	t.setDur("over_time", c.OverTime)
	t.setDur("rand_time", c.RandTime)
	t.setInt("keyingtries", c.KeyingTries)
	t.set("unique", c.Unique)
	t.setBool("send_certreq", c.SendCertReq)
	t.set("send_cert", c.SendCert)
	t.extra(c.Extra)
	c.Local.fill(t.section("local"))
	c.Remote.fill(t.section("remote"))
	if len(c.Children) > 0 {
		cs := t.section("children")
		for _, name := range slices.Sorted(maps.Keys(c.Children)) {
			if name == "" || strings.ContainsAny(name, " \t{}=.#\"") {
				return nil, fmt.Errorf("charontest: %s: child name %q: need a plain name", c.Name, name)
			}
			c.Children[name].fill(cs.section(name))
		}
	}
	return t, nil
}

func (a Auth) fill(t *tree) {
	t.set("auth", a.Auth)
	t.set("id", a.ID)
	t.setFiles("certs", a.Certs)
	t.setFiles("cacerts", a.CACerts)
	t.setFiles("pubkeys", a.Pubkeys)
	t.set("revocation", a.Revocation)
	t.extra(a.Extra)
}

func (ch Child) fill(t *tree) {
	t.setList("local_ts", ch.LocalTS)
	t.setList("remote_ts", ch.RemoteTS)
	t.setList("esp_proposals", ch.ESPProposals)
	t.set("mode", ch.Mode)
	t.set("start_action", ch.StartAction)
	t.set("dpd_action", ch.DPDAction)
	t.set("close_action", ch.CloseAction)
	t.setDur("rekey_time", ch.RekeyTime)
	t.setDur("life_time", ch.LifeTime)
	t.setDur("rand_time", ch.RandTime)
	t.setUint("rekey_bytes", ch.RekeyBytes)
	t.setUint("life_bytes", ch.LifeBytes)
	t.setUint("rekey_packets", ch.RekeyPackets)
	t.setUint("life_packets", ch.LifePackets)
	t.setDur("inactivity", ch.Inactivity)
	if ch.ReplayWindow != nil {
		t.set("replay_window", strconv.Itoa(*ch.ReplayWindow))
	}
	t.extra(ch.Extra)
}

// shared is one IKE pre-shared key (vici load-shared, swanctl.conf
// secrets.ike<suffix>).
type shared struct {
	name   string // unique key of the secret
	owners []string
	secret []byte
}

// swanctlConf renders the connections and secrets loaded so far as a
// swanctl.conf, so that `swanctl --load-all` with SWANCTL_DIR pointing at
// the charon's swanctl directory loads the same configuration by hand.
// Secrets are written in hex (swanctl.conf(5): 0x prefix).
func swanctlConf(conns []Conn, secrets []shared) (string, error) {
	root := &tree{}
	cs := root.section("connections")
	for _, c := range conns {
		t, err := c.tree()
		if err != nil {
			return "", err
		}
		cs.items = append(cs.items, item{key: c.Name, sub: t})
	}
	ss := root.section("secrets")
	for _, s := range secrets {
		t := ss.section(s.name)
		for i, o := range s.owners {
			t.set(fmt.Sprintf("id-%d", i+1), o)
		}
		t.set("secret", "0x"+hex.EncodeToString(s.secret))
	}
	var b strings.Builder
	b.WriteString("# written by internal/charontest: the configuration loaded over vici\n")
	root.render(&b, 0)
	return b.String(), nil
}
