package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
	"github.com/mipsec/mipsec/spd"
)

// Defaults of the configuration file.
const (
	DefaultStateDir  = "/var/lib/mipsec"
	DefaultTUNMTU    = 1400
	DefaultKeepalive = 20 * time.Second
	// DefaultControlSocket is where the daemon's control socket listens
	// and where the CLI looks for it when neither names another.
	DefaultControlSocket = "/run/mipsec/mipsec.sock"
)

// ErrInvalid is wrapped by every Errors: the file must be fixed;
// retrying cannot help.
var ErrInvalid = errors.New("invalid configuration")

// Error is one problem in a configuration file: where (the key path as
// written, e.g. "sa[2].enc_key", and its line when known) and what is wrong
// and what is expected.
type Error struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

func (es Errors) Unwrap() error { return ErrInvalid }

// File is a validated configuration file: the node it describes and the
// daemon's own settings around it.
type File struct {
	node.Config
	// Path is the file the configuration was read from.
	Path string

	LogLevel  zapcore.Level
	LogFormat string // "console" or "json"

	ControlSocket string

	// Warnings are what is legal but risky, found while reading the file
	// (a short pre-shared key, weak algorithms): `mipsec check` prints
	// them and `mipsec run` logs them. They never hold a secret.
	Warnings []Error
}

// Load reads and validates the file at path. A file larger than
// MaxFileSize is refused before it is read.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileSize {
		return nil, fileTooBig(path, fi.Size())
	}
	data, tooBig, err := readBounded(f, MaxFileSize)
	if err != nil {
		return nil, err
	}
	if tooBig {
		return nil, fileTooBig(path, -1)
	}
	return Parse(path, data)
}

// Parse validates data (read from file, which names key files
// relative to its directory). It returns every problem it finds as
// Errors.
func Parse(file string, data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fileTooBig(file, int64(len(data)))
	}
	if errs := textProblems(data); len(errs) > 0 {
		return nil, errs.in(file)
	}
	v := &validator{file: file, baseDir: filepath.Dir(file), lines: tomlLines(data)}
	var rc rawConfig
	if errs := decodeTOML(data, &rc); len(errs) > 0 {
		for _, e := range errs {
			e.File = file
			v.errs = append(v.errs, e)
		}
		var de bool
		for _, e := range errs {
			if e.Msg != "unknown field (misspelt, or in the wrong section?)" {
				de = true
			}
		}
		if de {
			return nil, v.result()
		}
	}
	cfg := v.config(&rc)
	if err := v.result(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// validator collects errors with their lines.
type validator struct {
	file    string
	baseDir string // key file paths are relative to it
	lines   map[string]int
	errs    Errors
	warns   []Error
	// declared holds the (dir, spi) of every [[sa]] whose dir and spi
	// parse, valid or not, so that a broken SA does not also make every
	// policy and peer that names it an error.
	declared map[[2]uint32]bool
}

func (v *validator) errf(path, format string, args ...any) {
	e := Error{File: v.file, Line: v.line(path), Path: path, Msg: fmt.Sprintf(format, args...)}
	if slices.Contains(v.errs, e) {
		return // the same problem reached twice (a shorthand for both sides)
	}
	v.errs = append(v.errs, e)
}

// line finds the line of path or of its nearest ancestor that is written.
func (v *validator) line(path string) int {
	for p := path; p != ""; {
		if l, ok := v.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func (v *validator) result() error {
	if len(v.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(v.errs, func(a, b Error) int {
		if a.Line == 0 || b.Line == 0 {
			return 0
		}
		return a.Line - b.Line
	})
	return v.errs
}

func (v *validator) config(rc *rawConfig) *File {
	cfg := &File{Path: v.file}
	v.log(rc, cfg)
	cfg.StateDir = DefaultStateDir
	if rc.StateDir != nil {
		cfg.StateDir = *rc.StateDir
		if !filepath.IsAbs(cfg.StateDir) {
			v.errf("state_dir", "%q is relative; want an absolute directory such as %s", cfg.StateDir, DefaultStateDir)
		}
	}
	cfg.ControlSocket = DefaultControlSocket
	if s := rc.Control.Socket; s != "" {
		cfg.ControlSocket = s
		if !filepath.IsAbs(s) {
			v.errf("control.socket", "%q is relative; want an absolute path such as %s", s, DefaultControlSocket)
		}
	}
	v.paths(cfg)
	v.tun(&rc.TUN, &cfg.TUN)
	v.underlay(&rc.Underlay, &cfg.Underlay)
	v.sas(rc.SAs, cfg)
	v.policies(rc.Policies, cfg)
	v.peers(rc.Peers, cfg)
	v.mobility(rc, cfg)
	v.ike(rc, cfg)
	cfg.Warnings = v.warns
	return cfg
}

func (v *validator) log(rc *rawConfig, cfg *File) {
	cfg.LogLevel = zapcore.InfoLevel
	if l := rc.Log.Level; l != "" {
		lv, err := zapcore.ParseLevel(l)
		if err != nil || lv > zapcore.ErrorLevel {
			v.errf("log.level", "%q is not a level; want debug, info, warn or error", l)
		}
		cfg.LogLevel = lv
	}
	switch f := strings.ToLower(rc.Log.Format); f {
	case "", "console":
		cfg.LogFormat = "console"
	case "json":
		cfg.LogFormat = "json"
	default:
		v.errf("log.format", "%q is not a format; want console or json", rc.Log.Format)
	}
}

// IFNAMSIZ - 1: the longest Linux interface name.
const maxIfName = 15

// isIfName reports whether s can be a Linux interface name: 1..maxIfName
// characters, no '/', ':' or white space, not "." or "..".
func isIfName(s string) bool {
	return s != "" && len(s) <= maxIfName && !strings.ContainsAny(s, "/ \t\n:") && s != "." && s != ".."
}

func (v *validator) tun(r *rawTUN, t *node.TUNConfig) {
	t.Name = r.Name
	switch {
	case r.Name == "":
		v.errf("tun.name", "missing; want the TUN device name, e.g. name = \"mipsec0\"")
	case !isIfName(r.Name):
		v.errf("tun.name", "%q is not a Linux interface name (at most %d characters, no '/', ':' or spaces)", r.Name, maxIfName)
	}
	t.MTU = DefaultTUNMTU
	if r.MTU != nil {
		t.MTU = int(*r.MTU)
		if *r.MTU < 576 || *r.MTU > 65535 {
			v.errf("tun.mtu", "%d is out of range; want 576..65535 (1280 or more with IPv6)", *r.MTU)
		}
	}
	v6 := false
	for i, s := range r.Addresses {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			v.errf(indexPath("tun.addresses", i), "%q is not an address with prefix length, e.g. \"192.0.2.1/25\" or \"2001:db8:1::1/64\"", s)
			continue
		}
		v6 = v6 || p.Addr().Is6()
		t.Addresses = append(t.Addresses, p)
	}
	for i, s := range r.Routes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			v.errf(indexPath("tun.routes", i), "%q is not a prefix, e.g. \"192.0.2.128/25\"", s)
			continue
		}
		if p != p.Masked() {
			v.errf(indexPath("tun.routes", i), "%q has host bits set; want %s", s, p.Masked())
			continue
		}
		v6 = v6 || p.Addr().Is6()
		t.Routes = append(t.Routes, p)
	}
	if v6 && t.MTU < 1280 && r.MTU != nil && *r.MTU >= 576 {
		v.errf("tun.mtu", "%d is below 1280, the IPv6 minimum (RFC 8200 §5), and the TUN carries IPv6", t.MTU)
	}
}

func (v *validator) underlay(r *rawUnderlay, u *node.UnderlayConfig) {
	for i, s := range r.Local {
		p := indexPath("underlay.local", i)
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			v.errf(p, "%q is not an IP address", s)
			continue
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() {
			v.errf(p, "%s cannot be a local underlay address", a)
			continue
		}
		dst := &u.Local6
		if a.Is4() {
			dst = &u.Local4
		}
		if dst.IsValid() {
			v.errf(p, "%s: a second %s address; want at most one IPv4 and one IPv6 address", a, family(a))
			continue
		}
		*dst = a
	}
	switch strings.ToLower(r.Encap) {
	case "", "raw":
		u.Raw = true
	case "udp":
		u.UDP = true
	case "both":
		u.Raw, u.UDP = true, true
	default:
		v.errf("underlay.encap", "%q is not an encapsulation; want raw (IP protocol 50), udp (RFC 3948, port 4500) or both", r.Encap)
		u.Raw = true
	}
	u.UDPPort = endpoint.UDPEncapPort
	if r.UDPPort != nil {
		if *r.UDPPort < 1 || *r.UDPPort > 65535 {
			v.errf("underlay.udp_port", "%d is not a port; want 1..65535 (normally 4500)", *r.UDPPort)
		} else {
			u.UDPPort = uint16(*r.UDPPort)
		}
	}
	u.Keepalive = DefaultKeepalive
	if r.Keepalive != "" {
		d, ok := v.duration("underlay.keepalive", r.Keepalive, true)
		if ok {
			u.Keepalive = d
		}
	}
	switch x := r.PacketSocket.(type) {
	case nil:
	case bool:
		u.PacketSocket = x
		if x && !u.Raw {
			v.errf("underlay.packet_socket", "true, but underlay.encap = %q sends no raw ESP: the AF_PACKET path carries only raw ESP (IP protocol 50); set underlay.encap = \"raw\" or \"both\", or remove packet_socket", r.Encap)
		}
	case string:
		v.errf("underlay.packet_socket", "%q is a string; want true or false (unquoted)", x)
	default:
		v.errf("underlay.packet_socket", "%v is not a boolean; want true or false", x)
	}
	v.fwmark(r, u)
}

// fwmark reads underlay.fwmark and underlay.route_table: the underlay
// sockets' SO_MARK and the policy routing around the TUN
// (node.UnderlayConfig.FWMark).
func (v *validator) fwmark(r *rawUnderlay, u *node.UnderlayConfig) {
	u.FWMark, u.RouteTable = node.DefaultFWMark, node.DefaultRouteTable
	const want = "want an integer 1..4294967295 (\"0x...\" for hex) or \"off\""
	switch x := r.FWMark.(type) {
	case nil:
	case int64:
		if x < 1 || x > math.MaxUint32 {
			v.errf("underlay.fwmark", "%d: %s", x, want)
		} else {
			u.FWMark = uint32(x)
		}
	case string:
		if strings.EqualFold(x, "off") {
			u.FWMark = 0
			break
		}
		n, err := strconv.ParseUint(x, 0, 32)
		if err != nil || n == 0 {
			v.errf("underlay.fwmark", "%q: %s", x, want)
		} else {
			u.FWMark = uint32(n)
		}
	default:
		v.errf("underlay.fwmark", "%v: %s", x, want)
	}
	if r.RouteTable != nil {
		if *r.RouteTable < 1 || *r.RouteTable > math.MaxUint32 {
			v.errf("underlay.route_table", "%d: want a routing table number 1..%d", *r.RouteTable, uint32(math.MaxUint32-128))
			return
		}
		u.RouteTable = uint32(*r.RouteTable)
		if u.FWMark == 0 {
			v.errf("underlay.route_table", "set, but underlay.fwmark = \"off\": the tables are only used with the mark")
			return
		}
	}
	// The tables RouteTable..RouteTable+128 (one per prefix length) must
	// fit and miss the reserved ones (252 compat .. 255 local).
	switch t := u.RouteTable; {
	case u.FWMark == 0:
	case t > math.MaxUint32-128:
		v.errf("underlay.route_table", "%d: the tables %d..%d+128 (one per prefix length) do not fit; want at most %d", t, t, t, uint32(math.MaxUint32-128))
	case t <= 255 && t+128 >= 252:
		v.errf("underlay.route_table", "%d: the tables %d..%d (one per prefix length) include a reserved one (252 compat, 253 default, 254 main, 255 local); pick 256 or more", t, t, t+128)
	}
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// duration parses a Go duration ("20s", "1h30m"); "off" (with allowOff)
// gives -1, which turns a timer off.
func (v *validator) duration(path, s string, allowOff bool) (time.Duration, bool) {
	if allowOff && (s == "off" || s == "0") {
		return -1, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		hint := ""
		if allowOff {
			hint = ", or \"off\""
		}
		v.errf(path, "%q is not a positive duration; want e.g. \"20s\" or \"1h30m\"%s", s, hint)
		return 0, false
	}
	return d, true
}

// parseSPIValue reads an SPI written as an integer, "0x..." hex or a
// decimal string.
func parseSPIValue(x any) (uint32, error) {
	var n uint64
	switch t := integral(x).(type) {
	case int64:
		if t < 0 || t > math.MaxUint32 {
			return 0, fmt.Errorf("%d is out of range; want 256..4294967295", t)
		}
		n = uint64(t)
	case string:
		s := strings.TrimSpace(t)
		var err error
		if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
			n, err = strconv.ParseUint(h, 16, 32)
		} else {
			n, err = strconv.ParseUint(s, 10, 32)
		}
		if err != nil {
			return 0, fmt.Errorf("%q is not an SPI; want an integer or hex such as \"0x0000a001\"", t)
		}
	default:
		return 0, fmt.Errorf("%v is not an SPI; want an integer or hex such as \"0x0000a001\"", x)
	}
	if n == 0 {
		return 0, errors.New("0 is not a valid SPI (RFC 4303 §2.1)")
	}
	if n < 256 {
		return 0, fmt.Errorf("%d is reserved by IANA (RFC 4303 §2.1: 1..255); want 256 or more", n)
	}
	return uint32(n), nil
}

func (v *validator) dir(path, s string) (sad.Direction, bool) {
	if strings.TrimSpace(s) == "" {
		v.errf(path, "missing; want \"in\" or \"out\"")
		return 0, false
	}
	d, err := sad.ParseDirection(s)
	if err != nil {
		v.errf(path, "%q is not a direction; want \"in\" or \"out\"", s)
		return 0, false
	}
	return d, true
}

func (v *validator) sas(raws []SATable, cfg *File) {
	seen := map[[2]uint32]string{} // dir, spi -> path
	v.declared = map[[2]uint32]bool{}
	for i := range raws {
		var d sad.Direction
		switch strings.ToLower(raws[i].Dir) {
		case "out", "outbound":
			d = sad.Outbound
		case "in", "inbound":
			d = sad.Inbound
		}
		if spi, err := parseSPIValue(raws[i].SPI); err == nil && d != 0 {
			v.declared[[2]uint32{uint32(d), spi}] = true
		}
	}
	for i := range raws {
		r := &raws[i]
		path := indexPath("sa", i)
		c, ok := v.sa(path, r)
		if !ok {
			continue
		}
		k := [2]uint32{uint32(c.Dir), c.Params.SPI}
		if prev, dup := seen[k]; dup {
			v.errf(path+".spi", "%#08x is already used by the %s SA %s; SPIs must be unique per direction", c.Params.SPI, c.Dir, prev)
			continue
		}
		seen[k] = path
		cfg.SAs = append(cfg.SAs, node.SAConfig{Config: c, Path: path})
	}
	// Shared keys: the rule node applies to every SA it adds
	// (node.KeyShareProblem), here with the file's lines.
	byKey := map[seqstore.Fingerprint][]int{}
	for i, s := range cfg.SAs {
		fp := node.KeyFingerprint(s.Params)
		for _, j := range byKey[fp] {
			o := cfg.SAs[j]
			if p := node.KeyShareProblem(s.Config, o.Config); p != "" {
				v.errf(s.Path+".enc_key", "the same key as %s (%s): %s", o.Path, node.SAName(o.Dir, o.Params.SPI), p)
				break
			}
		}
		byKey[fp] = append(byKey[fp], i)
	}
	// Build them once in a scratch SAD: what sad or esp still refuse is
	// reported on the SA.
	db := sad.New(sad.Options{})
	defer db.Close()
	for _, s := range cfg.SAs {
		if _, err := db.Add(s.Config); err != nil {
			v.errf(s.Path, "%v", err)
		}
	}
}

func (v *validator) sa(path string, r *SATable) (sad.Config, bool) {
	var c sad.Config
	n := len(v.errs)
	c.Name = r.Name
	if r.SPI == nil {
		v.errf(path+".spi", "missing; want the SPI as an integer or hex (\"0x0000a001\")")
	} else if spi, err := parseSPIValue(r.SPI); err != nil {
		v.errf(path+".spi", "%v", err)
	} else {
		c.Params.SPI = spi
	}
	c.Dir, _ = v.dir(path+".dir", r.Dir)
	p := &c.Params
	if m, err := esp.ParseMode(r.Mode); err != nil {
		v.errf(path+".mode", "%q is not a mode; want tunnel or transport", r.Mode)
	} else {
		p.Mode = m
	}
	// Tunnel endpoints, from our side: local is ours, remote the peer's.
	if p.Mode == esp.Tunnel {
		local := v.addr(path+".local", r.Local, "our outer (tunnel) address")
		remote := v.addr(path+".remote", r.Remote, "the peer's outer (tunnel) address")
		if local.IsValid() && remote.IsValid() && local.Is4() != remote.Is4() {
			v.errf(path+".remote", "%s is %s but local %s is %s; tunnel endpoints must be one family", remote, family(remote), local, family(local))
		}
		if c.Dir == sad.Inbound {
			p.TunnelSrc, p.TunnelDst = remote, local
		} else {
			p.TunnelSrc, p.TunnelDst = local, remote
		}
	} else if p.Mode == esp.Transport {
		if r.Local != "" {
			v.errf(path+".local", "tunnel endpoints are for mode = \"tunnel\"; remove it")
		}
		if r.Remote != "" {
			v.errf(path+".remote", "tunnel endpoints are for mode = \"tunnel\"; remove it")
		}
	}
	if r.Algorithm == "" {
		v.errf(path+".algorithm", "missing; want one of %s", strings.Join(esp.AlgorithmNames(), ", "))
	} else if a, err := esp.ParseAlgorithm(r.Algorithm); err != nil {
		v.errf(path+".algorithm", "%q is not an algorithm; want one of %s", r.Algorithm, strings.Join(esp.AlgorithmNames(), ", "))
	} else {
		p.Algorithm = a
		p.EncKey = v.key(path, "enc_key", r.EncKey, r.EncKeyFile, a, a.EncKeyLen(), encKeyShape(a))
		p.AuthKey = v.key(path, "auth_key", r.AuthKey, r.AuthKeyFile, a, a.AuthKeyLen(), authKeyShape(a))
	}
	p.ESN = r.ESN
	p.NoReplay = r.NoReplay
	if r.ReplayWindow != nil {
		w := *r.ReplayWindow
		switch {
		case c.Dir == sad.Outbound:
			v.errf(path+".replay_window", "only an inbound SA has an anti-replay window; remove it")
		case w < esp.MinReplayWindow || w > esp.MaxReplayWindow:
			v.errf(path+".replay_window", "%d is out of range; want %d..%d packets (RFC 4303 §3.4.3)", w, esp.MinReplayWindow, esp.MaxReplayWindow)
		default:
			p.ReplayWindow = int(w)
		}
	}
	if r.NoReplay && r.ESN {
		v.errf(path+".no_replay", "cannot be combined with esn = true (RFC 4303 §3.3.3: the receiver could not infer the high half)")
	}
	if r.NoReplay && c.Dir == sad.Outbound {
		v.errf(path+".no_replay", "only an inbound SA checks replays; remove it")
	}
	if r.HopLimit != nil {
		if *r.HopLimit < 1 || *r.HopLimit > 255 {
			v.errf(path+".hop_limit", "%d is out of range; want 1..255", *r.HopLimit)
		} else {
			p.HopLimit = uint8(*r.HopLimit)
		}
	}
	if df, err := esp.ParseDF(r.DF); err != nil {
		v.errf(path+".df", "%q is not a DF rule; want copy, set or clear (RFC 4301 §8.1)", r.DF)
	} else {
		p.DF = df
	}
	c.Lifetime = v.lifetime(path+".lifetime", &r.Lifetime)
	if len(r.Selectors) == 0 {
		v.errf(path+".selectors", "missing; an SA needs at least one selector set (RFC 4301 §4.4.2), e.g. selectors = [{ local = \"192.0.2.0/25\", remote = \"192.0.2.128/25\" }]")
	}
	c.Selectors = v.selectors(path+".selectors", r.Selectors)
	return c, len(v.errs) == n
}

func (v *validator) addr(path, s, what string) netip.Addr {
	if s == "" {
		v.errf(path, "missing; want %s (tunnel mode)", what)
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		v.errf(path, "%q is not an IP address; want %s", s, what)
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		v.errf(path, "%s cannot be a tunnel endpoint; want %s", a, what)
		return netip.Addr{}
	}
	return a
}

// encKeyShape says what an encryption key of a is made of, for messages
// (why it takes none when it takes none).
func encKeyShape(a esp.Algorithm) string {
	switch {
	case a.EncKeyLen() == 0:
		return "it is NULL encryption (RFC 2410), which encrypts nothing"
	case a.CounterMode():
		return fmt.Sprintf("%d-byte key + 4-byte salt", a.EncKeyLen()-4)
	}
	return fmt.Sprintf("%d-byte AES key", a.EncKeyLen())
}

func authKeyShape(a esp.Algorithm) string {
	if a.AuthKeyLen() == 0 {
		return "it is combined mode, where the enc_key also protects integrity"
	}
	if strings.HasSuffix(a.String(), "sha1") {
		return fmt.Sprintf("%d-byte HMAC-SHA1 key", a.AuthKeyLen())
	}
	return fmt.Sprintf("%d-byte HMAC-SHA-256 key", a.AuthKeyLen())
}

// key reads field (inline hex) or field_file of an SA and checks its length.
func (v *validator) key(sapath, field, inline, file string, alg esp.Algorithm, want int, shape string) []byte {
	path := sapath + "." + field
	if want == 0 && (inline != "" || file != "") {
		remove := "remove it"
		if file != "" {
			path += "_file"
			remove = "remove " + field + "_file"
		}
		v.errf(path, "%s takes no %s: %s; %s", alg, field, shape, remove)
		return nil
	}
	var k []byte
	switch {
	case inline != "" && file != "":
		v.errf(path, "set either %s or %s_file, not both", field, field)
		return nil
	case file != "":
		path += "_file"
		b, err := v.readKeyFile(path, file)
		if err != nil {
			return nil
		}
		if k, err = DecodeHexKey(string(b)); err != nil {
			v.errf(path, "%s: not a hex key: %v (want hex text, as `openssl rand -hex %d` writes)", file, err, max(want, 1))
			return nil
		}
	case inline != "":
		var err error
		if k, err = DecodeHexKey(inline); err != nil {
			v.errf(path, "not a hex key: %v", err)
			return nil
		}
	}
	if len(k) != want {
		switch {
		case len(k) == 0:
			v.errf(path, "missing; %s needs %d bytes (%s), as %s = \"<hex>\" or %s_file = \"<path>\"", alg, want, shape, field, field)
		default:
			v.errf(path, "%d bytes, %s needs %d (%s)", len(k), alg, want, shape)
		}
		return nil
	}
	return k
}

// DecodeHexKey reads a key in hex with optional 0x, whitespace and colons.
func DecodeHexKey(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ':' || r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("odd number of hex digits (%d)", len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		var ie hex.InvalidByteError
		if errors.As(err, &ie) {
			return nil, fmt.Errorf("%q is not a hex digit", rune(ie))
		}
		return nil, err
	}
	return b, nil
}

// readKeyFile reads a key file (relative to the config file's directory)
// after checking that only its owner can read it (mode 0600 or
// stricter), that the owner is root or us and that it is no larger than a
// key file can be (readKeyFileAt).
func (v *validator) readKeyFile(path, name string) ([]byte, error) {
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(v.baseDir, p)
	}
	return v.readKeyFileAt(path, p)
}

func (v *validator) lifetime(path string, r *LifetimeTable) sad.Lifetime {
	var l sad.Lifetime
	lim := func(p string, r *LimitsTable) sad.Limits {
		var m sad.Limits
		if r.Bytes != nil {
			if *r.Bytes <= 0 {
				v.errf(p+".bytes", "%d: want a positive byte count (omit it for no limit)", *r.Bytes)
			} else {
				m.Bytes = uint64(*r.Bytes)
			}
		}
		if r.Packets != nil {
			if *r.Packets <= 0 {
				v.errf(p+".packets", "%d: want a positive packet count (omit it for no limit)", *r.Packets)
			} else {
				m.Packets = uint64(*r.Packets)
			}
		}
		if r.Time != "" {
			if d, ok := v.duration(p+".time", r.Time, false); ok {
				m.Time = d
			}
		}
		return m
	}
	l.Soft = lim(path+".soft", &r.Soft)
	l.Hard = lim(path+".hard", &r.Hard)
	check := func(kind string, soft, hard uint64, show func(uint64) string) {
		if soft != 0 && hard != 0 && soft > hard {
			v.errf(path+".soft."+kind, "%s is above the hard limit %s; the soft limit must come first (RFC 4301 §4.4.2.1)", show(soft), show(hard))
		}
	}
	num := func(x uint64) string { return strconv.FormatUint(x, 10) }
	check("bytes", l.Soft.Bytes, l.Hard.Bytes, num)
	check("packets", l.Soft.Packets, l.Hard.Packets, num)
	check("time", uint64(l.Soft.Time), uint64(l.Hard.Time), func(x uint64) string { return time.Duration(x).String() })
	return l
}

func (v *validator) selectors(path string, raws []SelectorTable) []sad.Selector {
	var out []sad.Selector
	n := len(v.errs)
	fam := 0 // bits of the first set that names a family
	famPath := ""
	for i := range raws {
		p := indexPath(path, i)
		s, ok := v.selector(p, &raws[i])
		if !ok {
			continue
		}
		for _, r := range []struct {
			field string
			a     sad.AddrRange
		}{{"local", s.Local}, {"remote", s.Remote}} {
			bits, _ := r.a.Validate()
			if bits == 0 {
				continue
			}
			if fam == 0 {
				fam, famPath = bits, p+"."+r.field
			} else if bits != fam {
				v.errf(p+"."+r.field, "mixes IPv%d with IPv%d at %s; one entry is one address family (RFC 4301 §4.4.1.1): use a separate SA or policy", ipv(bits), ipv(fam), famPath)
			}
		}
		out = append(out, s)
	}
	if len(v.errs) == n && len(out) > 0 {
		if err := sad.ValidateSelectors(out, "selector"); err != nil {
			v.errf(path, "%v", err)
		}
	}
	return out
}

func ipv(bits int) int {
	if bits == 32 {
		return 4
	}
	return 6
}

// ProtocolNumbers are the protocol names a selector accepts.
var ProtocolNumbers = map[string]uint8{
	"any": sad.ProtoAny, "icmp": header.ProtoICMP, "tcp": header.ProtoTCP, "udp": header.ProtoUDP,
	"esp": header.ProtoESP, "ipv6-icmp": header.ProtoICMPv6, "icmpv6": header.ProtoICMPv6,
	"sctp": header.ProtoSCTP, "mh": header.ProtoMobility, "mobility": header.ProtoMobility,
	"gre": 47,
}

func (v *validator) selector(path string, r *SelectorTable) (sad.Selector, bool) {
	var s sad.Selector
	n := len(v.errs)
	var err error
	if s.Local, err = ParseAddrRange(r.Local); err != nil {
		v.errf(path+".local", "%v", err)
	}
	if s.Remote, err = ParseAddrRange(r.Remote); err != nil {
		v.errf(path+".remote", "%v", err)
	}
	lb, _ := s.Local.Validate()
	rb, _ := s.Remote.Validate()
	if len(v.errs) == n && lb != 0 && rb != 0 && lb != rb {
		v.errf(path+".remote", "%s is IPv%d but local %s is IPv%d; a selector set is one address family (RFC 4301 §4.4.1.1)", r.Remote, ipv(rb), r.Local, ipv(lb))
	}
	switch x := integral(r.Proto).(type) {
	case nil:
	case string:
		if pr, ok := ProtocolNumbers[strings.ToLower(x)]; ok {
			s.Proto = pr
		} else if u, err := strconv.ParseUint(x, 10, 8); err == nil {
			s.Proto = uint8(u)
		} else {
			v.errf(path+".proto", "%q is not a protocol; want a number 0..255 or one of any, tcp, udp, icmp, ipv6-icmp, sctp, mh, esp, gre", x)
		}
	case int64:
		if x < 0 || x > 255 {
			v.errf(path+".proto", "%d is out of range; want 0..255 (IANA protocol number) or a name", x)
		} else {
			s.Proto = uint8(x)
		}
	default:
		v.errf(path+".proto", "want a protocol number or name")
	}
	ports := s.Proto == header.ProtoTCP || s.Proto == header.ProtoUDP || s.Proto == header.ProtoSCTP
	icmp := s.Proto == header.ProtoICMP || s.Proto == header.ProtoICMPv6
	mh := s.Proto == header.ProtoMobility
	side := func(name string, port any, icmpType, icmpCode, bothType, bothCode, mhType, bothMH *int64) sad.Ports {
		if icmpType == nil {
			icmpType = bothType
		}
		if icmpCode == nil {
			icmpCode = bothCode
		}
		if mhType == nil {
			mhType = bothMH
		}
		var out sad.Ports
		set := 0
		if port != nil {
			set++
			if !ports {
				v.errf(path+"."+name+"_port", "ports need proto = tcp, udp or sctp (RFC 4301 §4.4.1.1); for ICMP use icmp_type/icmp_code, for MH mh_type")
			} else if p, err := ParsePorts(port); err != nil {
				v.errf(path+"."+name+"_port", "%v", err)
			} else {
				out = p
			}
		}
		if icmpType != nil || icmpCode != nil {
			set++
			switch {
			case !icmp:
				v.errf(path+".icmp_type", "ICMP type/code need proto = icmp or ipv6-icmp")
			case icmpType == nil:
				v.errf(path+".icmp_code", "an ICMP code needs an icmp_type")
			case *icmpType < 0 || *icmpType > 255:
				v.errf(path+".icmp_type", "%d is out of range; want 0..255", *icmpType)
			case icmpCode != nil && (*icmpCode < 0 || *icmpCode > 255):
				v.errf(path+".icmp_code", "%d is out of range; want 0..255", *icmpCode)
			case icmpCode != nil:
				out = sad.ICMPTypeCode(uint8(*icmpType), uint8(*icmpCode))
			default:
				out = sad.ICMPType(uint8(*icmpType))
			}
		}
		if mhType != nil {
			set++
			switch {
			case !mh:
				v.errf(path+".mh_type", "a Mobility Header type needs proto = mh (135)")
			case *mhType < 0 || *mhType > 255:
				v.errf(path+".mh_type", "%d is out of range; want 0..255 (RFC 6275 §6.1.2)", *mhType)
			default:
				out = sad.MHType(uint8(*mhType))
			}
		}
		if set > 1 {
			v.errf(path, "%s side: set only one of %s_port, ICMP type/code and MH type", name, name)
		}
		return out
	}
	s.LocalPort = side("local", r.LocalPort, r.LocalICMPType, r.LocalICMPCode, r.ICMPType, r.ICMPCode, r.LocalMHType, r.MHType)
	s.RemotePort = side("remote", r.RemotePort, r.RemoteICMPType, r.RemoteICMPCode, r.ICMPType, r.ICMPCode, r.RemoteMHType, r.MHType)
	return s, len(v.errs) == n
}

// ParseAddrRange reads a selector address: "any", an address, a prefix or "from-to".
func ParseAddrRange(s string) (sad.AddrRange, error) {
	s = strings.TrimSpace(s)
	const want = "want \"any\", an address, a prefix (\"192.0.2.0/24\") or a range (\"192.0.2.10-192.0.2.20\")"
	switch {
	case s == "" || strings.EqualFold(s, "any"):
		return sad.AnyAddr, nil
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return sad.AddrRange{}, fmt.Errorf("%q is not a prefix; %s", s, want)
		}
		if p != p.Masked() {
			return sad.AddrRange{}, fmt.Errorf("%q has host bits set; want %s", s, p.Masked())
		}
		return sad.PrefixRange(p), nil
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		from, err1 := netip.ParseAddr(strings.TrimSpace(a))
		to, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil {
			return sad.AddrRange{}, fmt.Errorf("%q is not a range; %s", s, want)
		}
		r := sad.AddrRange{From: from.Unmap(), To: to.Unmap()}
		if _, err := r.Validate(); err != nil {
			return sad.AddrRange{}, fmt.Errorf("%q: %v", s, err)
		}
		return r, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return sad.AddrRange{}, fmt.Errorf("%q is not an address; %s", s, want)
	}
	return sad.SingleAddr(a.Unmap()), nil
}

// ParsePorts reads a selector port: 80, "80", "1000-2000", "any" or "opaque".
func ParsePorts(x any) (sad.Ports, error) {
	const want = "want a port 0..65535, a range \"lo-hi\", \"any\" or \"opaque\""
	switch t := integral(x).(type) {
	case int64:
		if t < 0 || t > 65535 {
			return sad.Ports{}, fmt.Errorf("%d is out of range; %s", t, want)
		}
		return sad.Port(uint16(t)), nil
	case string:
		s := strings.TrimSpace(t)
		switch {
		case strings.EqualFold(s, "any"):
			return sad.Ports{}, nil
		case strings.EqualFold(s, "opaque"):
			return sad.Opaque, nil
		}
		lo, hi, isRange := strings.Cut(s, "-")
		l, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		if err != nil {
			return sad.Ports{}, fmt.Errorf("%q is not a port; %s", s, want)
		}
		if !isRange {
			return sad.Port(uint16(l)), nil
		}
		h, err := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		if err != nil {
			return sad.Ports{}, fmt.Errorf("%q is not a port range; %s", s, want)
		}
		if h < l {
			return sad.Ports{}, fmt.Errorf("%q: the range ends before it starts; want lo <= hi", s)
		}
		return sad.PortsRange(uint16(l), uint16(h)), nil
	}
	return sad.Ports{}, fmt.Errorf("%v: %s", x, want)
}

func (v *validator) policies(raws []PolicyTable, cfg *File) {
	spis := v.declared
	scratch := spd.New(nil)
	for i := range raws {
		r := &raws[i]
		path := indexPath("policy", i)
		n := len(v.errs)
		var p spd.Policy
		p.Name = r.Name
		p.Dir, _ = v.dir(path+".dir", r.Dir)
		switch strings.ToLower(r.Action) {
		case "protect":
			p.Action = spd.Protect
		case "bypass":
			p.Action = spd.Bypass
		case "discard":
			p.Action = spd.Discard
		case "":
			v.errf(path+".action", "missing; want protect, bypass or discard")
		default:
			v.errf(path+".action", "%q is not an action; want protect, bypass or discard", r.Action)
		}
		if r.SPI != nil {
			spi, err := parseSPIValue(r.SPI)
			switch {
			case err != nil:
				v.errf(path+".spi", "%v", err)
			case p.Action != spd.Protect:
				v.errf(path+".spi", "only a protect policy names an SA; remove it")
			case p.Dir != 0 && !spis[[2]uint32{uint32(p.Dir), spi}]:
				v.errf(path+".spi", "%#08x names no %s SA; want the spi of an [[sa]] with dir = %q", spi, p.Dir, dirWord(p.Dir))
			default:
				p.SPI = spi
			}
		} else if p.Action == spd.Protect && p.Dir == sad.Outbound {
			v.errf(path+".spi", "missing; an outbound protect policy names its SA by SPI")
		}
		if len(r.Selectors) == 0 {
			v.errf(path+".selectors", "missing; want at least one selector set, e.g. [{ local = \"any\", remote = \"any\" }] for a catch-all")
		}
		p.Selectors = v.selectors(path+".selectors", r.Selectors)
		if len(v.errs) != n {
			continue
		}
		if err := scratch.Append(p); err != nil {
			field := ""
			if errors.Is(err, spd.ErrDuplicateName) {
				field = ".name"
			}
			v.errf(path+field, "%v", err)
			continue
		}
		cfg.Policies = append(cfg.Policies, p)
	}
}

func dirWord(d sad.Direction) string {
	if d == sad.Inbound {
		return "in"
	}
	return "out"
}

func IsCatchAllDiscard(p spd.Policy) bool {
	if p.Action != spd.Discard {
		return false
	}
	for _, s := range p.Selectors {
		if s == (sad.Selector{}) {
			return true
		}
	}
	return false
}

func (v *validator) peers(raws []rawPeer, cfg *File) {
	dirOf := v.declared
	names := map[string]string{}
	owner := map[[2]uint32]string{}
	for i := range raws {
		r := &raws[i]
		path := indexPath("peer", i)
		n := len(v.errs)
		var pc dataplane.PeerConfig
		pc.Name = r.Name
		if r.Name == "" {
			v.errf(path+".name", "missing; every peer needs a unique name")
		} else if prev, dup := names[r.Name]; dup {
			v.errf(path+".name", "%q is already the name of %s", r.Name, prev)
		} else {
			names[r.Name] = path
		}
		switch strings.ToLower(r.Encap) {
		case "":
			pc.Endpoint.Encap = endpoint.EncapRaw
			if cfg.Underlay.UDP && !cfg.Underlay.Raw {
				pc.Endpoint.Encap = endpoint.EncapUDP
			}
		case "raw":
			pc.Endpoint.Encap = endpoint.EncapRaw
			if !cfg.Underlay.Raw {
				v.errf(path+".encap", "raw, but underlay.encap does not listen for raw ESP; set underlay.encap = \"raw\" or \"both\"")
			}
		case "udp":
			pc.Endpoint.Encap = endpoint.EncapUDP
			if !cfg.Underlay.UDP {
				v.errf(path+".encap", "udp, but underlay.encap does not listen on UDP; set underlay.encap = \"udp\" or \"both\"")
			}
		default:
			v.errf(path+".encap", "%q is not an encapsulation; want raw or udp", r.Encap)
		}
		if ap, ok := v.endpoint(path+".endpoint", r.Endpoint, pc.Endpoint.Encap, cfg.Underlay.UDPPort); ok {
			pc.Endpoint.Addr = ap
			a := ap.Addr()
			if a.Is4() && !cfg.Underlay.Local4.IsValid() && cfg.Underlay.Local6.IsValid() ||
				a.Is6() && !cfg.Underlay.Local6.IsValid() && cfg.Underlay.Local4.IsValid() {
				v.errf(path+".endpoint", "%s is %s but underlay.local has no %s address", a, family(a), family(a))
			}
		}
		pc.Roaming = r.Roaming
		if r.RoamInterval != "" {
			if d, ok := v.duration(path+".roam_interval", r.RoamInterval, false); ok {
				pc.RoamInterval = d
			}
		}
		pc.Keepalive = cfg.Underlay.Keepalive
		if r.Keepalive != "" {
			if d, ok := v.duration(path+".keepalive", r.Keepalive, true); ok {
				pc.Keepalive = d
			}
		}
		spiList := func(field string, xs []any, dir sad.Direction) []uint32 {
			var out []uint32
			for j, x := range xs {
				p := indexPath(path+"."+field, j)
				spi, err := parseSPIValue(x)
				if err != nil {
					v.errf(p, "%v", err)
					continue
				}
				k := [2]uint32{uint32(dir), spi}
				if !dirOf[k] {
					v.errf(p, "%#08x names no %s SA; want the spi of an [[sa]] with dir = %q", spi, dir, dirWord(dir))
					continue
				}
				if prev, dup := owner[k]; dup {
					v.errf(p, "%#08x already belongs to %s; an SPI belongs to one peer", spi, prev)
					continue
				}
				owner[k] = path
				out = append(out, spi)
			}
			return out
		}
		pc.OutSPIs = spiList("out_spis", r.OutSPIs, sad.Outbound)
		pc.InSPIs = spiList("in_spis", r.InSPIs, sad.Inbound)
		if len(pc.OutSPIs) == 0 && len(pc.InSPIs) == 0 && len(v.errs) == n {
			v.errf(path, "names no SAs; want out_spis and/or in_spis")
		}
		if len(v.errs) == n {
			cfg.Peers = append(cfg.Peers, pc)
		}
	}
}

// endpoint reads "ip", "ip:port" or "[ipv6]:port".
func (v *validator) endpoint(path, s string, encap endpoint.Encap, udpPort uint16) (netip.AddrPort, bool) {
	if s == "" {
		v.errf(path, "missing; want the peer's outer address, \"203.0.113.1\" or \"203.0.113.1:4500\"")
		return netip.AddrPort{}, false
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if encap == endpoint.EncapRaw {
			v.errf(path, "%q has a port, but raw ESP has none; drop the port or set encap = \"udp\"", s)
			return netip.AddrPort{}, false
		}
		if ap.Port() == 0 {
			v.errf(path, "%q: port 0; want 1..65535 (normally 4500)", s)
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), v.usable(path, ap.Addr())
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil || a.Zone() != "" {
		v.errf(path, "%q is not an address or address:port; want \"203.0.113.1\", \"203.0.113.1:4500\" or \"[2001:db8::1]:4500\"", s)
		return netip.AddrPort{}, false
	}
	a = a.Unmap()
	port := uint16(0)
	if encap == endpoint.EncapUDP {
		port = udpPort
	}
	return netip.AddrPortFrom(a, port), v.usable(path, a)
}

func (v *validator) usable(path string, a netip.Addr) bool {
	if a.IsUnspecified() || a.IsMulticast() {
		v.errf(path, "%s cannot be a peer address", a)
		return false
	}
	return true
}

// CounterModeSAs lists the outbound SAs whose IVs come from the sequence
// number: with manual keys they need the state directory.
func (c *File) CounterModeSAs() []string {
	var out []string
	for _, s := range c.SAs {
		if s.Dir == sad.Outbound && s.Params.Algorithm.CounterMode() {
			name := s.Path
			if s.Name != "" {
				name += " (" + s.Name + ")"
			}
			out = append(out, name)
		}
	}
	return out
}

// ParseSnippet validates the [[sa]] and [[policy]] tables of a
// config-file fragment with the config's validator. Policies may name SAs
// the daemon already has, so their SPIs count as declared.
func ParseSnippet(file string, data []byte) ([]sad.Config, []spd.Policy, error) {
	if len(data) > MaxFileSize {
		return nil, nil, fileTooBig(file, int64(len(data)))
	}
	if errs := textProblems(data); len(errs) > 0 {
		return nil, nil, errs.in(file)
	}
	v := &validator{file: file, baseDir: filepath.Dir(file), lines: tomlLines(data)}
	var rc rawConfig
	if errs := decodeTOML(data, &rc); len(errs) > 0 {
		for _, e := range errs {
			e.File = file
			v.errs = append(v.errs, e)
		}
		return nil, nil, v.result()
	}
	var cfg File
	v.sas(rc.SAs, &cfg)
	for _, p := range rc.Policies {
		if spi, err := parseSPIValue(p.SPI); err == nil {
			v.declared[[2]uint32{uint32(sad.Outbound), spi}] = true
			v.declared[[2]uint32{uint32(sad.Inbound), spi}] = true
		}
	}
	v.policies(rc.Policies, &cfg)
	if err := v.result(); err != nil {
		return nil, nil, err
	}
	sas := make([]sad.Config, 0, len(cfg.SAs))
	for _, s := range cfg.SAs {
		sas = append(sas, s.Config)
	}
	return sas, cfg.Policies, nil
}
