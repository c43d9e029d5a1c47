package config

// The IKEv2 daemon's part of the file ([ike] and [[connection]], with
// [connection.local], [connection.remote] and [[connection.child]]): the
// connections of swanctl.conf's `connections` section in TOML, read into
// node.Config.IKE. The strings (proposals, identities, traffic selectors)
// have package ike's grammar: ParseIKEProposals, ParseESPProposals,
// ParseIdentity and ParseTS.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/node"
)

// Bounds and defaults of the IKE connections.
const (
	// MaxConnections bounds the [[connection]] tables of one file and
	// MaxChildren the [[connection.child]] tables of one connection.
	MaxConnections = 256
	MaxChildren    = 64
	// maxIKEList bounds every list of a connection or child (addresses,
	// proposals, traffic selectors, CA files).
	maxIKEList = 64
	// MaxPSKFileSize bounds a pre-shared key file, MaxPrivateKeyFileSize
	// a PEM private key (an RSA-8192 key is about 6.5 KB) and
	// MaxCertFileSize a PEM certificate (chain) or CA file.
	MaxPSKFileSize        = 1 << 10
	MaxPrivateKeyFileSize = 16 << 10
	MaxCertFileSize       = 256 << 10
	// maxCerts bounds the certificates of one PEM file.
	maxCerts = 16
	// MinPSKLen is the shortest pre-shared key that check does not warn
	// about: the AUTH payload of one IKE_AUTH lets an eavesdropper who
	// knows the nonces test PSK guesses offline (RFC 7296 §2.15).
	MinPSKLen = 20
	// MinRSABits is the smallest RSA key accepted for pubkey auth.
	MinRSABits = 2048
	// DefaultIKEPort is the IKE port of either side (RFC 7296 §2).
	DefaultIKEPort = 500
	// DefaultIKERekey is an IKE SA's rekey interval when none is
	// configured (strongSwan's, 4 h).
	DefaultIKERekey = 4 * time.Hour
	// maxKeyingTries bounds keyingtries (0 is forever).
	maxKeyingTries = 1 << 20
	// maxRetransmits bounds ike.retransmits: the timeout doubles each
	// time, and 2^20 s are 12 days.
	maxRetransmits = 20
	// minFragmentSize and maxFragmentSize bound ike.fragment_size, an IP
	// datagram: 576, what every IPv4 host takes (RFC 7383 §2.5.1), up to
	// the largest UDP datagram.
	minFragmentSize = 576
	maxFragmentSize = 65535
	// maxInitRate bounds ike.init_rate and ike.init_burst.
	maxInitRate = 1 << 20
)

// rawIKE is the optional [ike] section: the daemon's own settings.
type rawIKE struct {
	CookieThreshold *int64 `toml:"cookie_threshold"`
	MaxHalfOpen     *int64 `toml:"max_half_open"`
	Retransmit      string `toml:"retransmit"`
	Retransmits     *int64 `toml:"retransmits"`
	FragmentSize    *int64 `toml:"fragment_size"`
	InitRate        *int64 `toml:"init_rate"`
	InitBurst       *int64 `toml:"init_burst"`
}

// rawConnection is one [[connection]] table (swanctl's connections.NAME).
type rawConnection struct {
	Name          string       `toml:"name"`
	LocalAddrs    []string     `toml:"local_addrs"`
	RemoteAddrs   []string     `toml:"remote_addrs"`
	LocalPort     *int64       `toml:"local_port"`
	RemotePort    *int64       `toml:"remote_port"`
	Proposals     []string     `toml:"proposals"`
	AllowWeak     bool         `toml:"allow_weak"`
	Encap         bool         `toml:"encap"`
	Fragmentation *bool        `toml:"fragmentation"`
	MOBIKE        *bool        `toml:"mobike"`
	RekeyTime     *string      `toml:"rekey_time"`
	DPDDelay      *string      `toml:"dpd_delay"`
	KeyingTries   *int64       `toml:"keyingtries"`
	Pool          []string     `toml:"pool"`
	HomePrefix    string       `toml:"home_prefix"`
	VIPs          []string     `toml:"vips"`
	RequestHome   bool         `toml:"request_home_prefix"`
	Local         rawLocalAuth `toml:"local"`
	Remote        rawRemote    `toml:"remote"`
	Children      []rawChild   `toml:"child"`
}

type rawLocalAuth struct {
	Auth    string `toml:"auth"`
	ID      string `toml:"id"`
	PSKFile string `toml:"psk_file"`
	Cert    string `toml:"cert"`
	Key     string `toml:"key"`
}

type rawRemote struct {
	Auth    string   `toml:"auth"`
	ID      string   `toml:"id"`
	PSKFile string   `toml:"psk_file"`
	CACerts []string `toml:"cacerts"`
	PAD     []rawPAD `toml:"pad"`
}

// rawPAD is one [[connection.remote.pad]] entry (ike.PADEntry).
type rawPAD struct {
	ID        string   `toml:"id"`
	Addresses []string `toml:"addresses"`
}

type rawChild struct {
	Name         string   `toml:"name"`
	LocalTS      []string `toml:"local_ts"`
	RemoteTS     []string `toml:"remote_ts"`
	ESPProposals []string `toml:"esp_proposals"`
	Mode         string   `toml:"mode"`
	StartAction  string   `toml:"start_action"`
	RekeyTime    *string  `toml:"rekey_time"`
	LifeTime     *string  `toml:"life_time"`
	RekeyBytes   *int64   `toml:"rekey_bytes"`
	ReplayWindow *int64   `toml:"replay_window"`
}

// warnf records a warning at path (with its line), like errf.
func (v *validator) warnf(path, format string, args ...any) {
	v.warns = append(v.warns, Error{File: v.file, Line: v.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// clip quotes s for a message, cut to 64 bytes: a hostile value of
// megabytes does not make a message of megabytes.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return fmt.Sprintf("%q", s)
	}
	cut := n
	for cut > 0 && s[cut]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
}

// isIKEName reports whether s is a connection or child name:
// [A-Za-z0-9._-]{1,32}.
func isIKEName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ike reads [ike] and the [[connection]] tables into cfg.IKE. It runs
// after mobility, which sets the role.
func (v *validator) ike(rc *rawConfig, cfg *File) {
	if r := rc.IKE; r != nil {
		v.ikeSettings(r, &cfg.IKE)
	}
	if len(rc.Connections) == 0 {
		return
	}
	if n := len(rc.Connections); n > MaxConnections {
		v.errf(indexPath("connection", MaxConnections), "%d [[connection]] tables; a file holds at most %d", n, MaxConnections)
		return
	}
	names := map[string]string{}
	psks := map[string][]byte{} // file -> secret, each file read once
	for i := range rc.Connections {
		path := indexPath("connection", i)
		r := &rc.Connections[i]
		n := len(v.errs)
		c := v.connection(path, r, cfg, psks)
		if r.Name != "" && isIKEName(r.Name) {
			if prev, dup := names[r.Name]; dup {
				v.errf(path+".name", "%q is already the name of %s; connection names are unique", r.Name, prev)
			} else {
				names[r.Name] = path
			}
		}
		if len(v.errs) == n {
			cfg.IKE.Connections = append(cfg.IKE.Connections, c)
		}
	}
	if (cfg.Role == node.RoleMN || cfg.Role == node.RoleHA) && len(cfg.SAs) == 0 {
		v.ikeMobilityChildren(cfg)
	}
}

// ikeMobilityChildren is mobilitySAs for a home agent or mobile node keyed
// by IKE (RFC 4877 §7.2.1): some transport child must carry the Binding
// Updates between the home address and the home agent (on the HA: from
// some address of the home prefix), or no registration can ever be
// protected.
func (v *validator) ikeMobilityChildren(cfg *File) {
	mc := &cfg.Mobility
	if !mc.HAAddress.IsValid() || len(v.errs) > 0 {
		return
	}
	// The BU's source and destination prefixes, seen from this side.
	ha := netip.PrefixFrom(mc.HAAddress, 128)
	// The MH type each side sends goes in its selector's port field.
	us, them := netip.PrefixFrom(mc.HomeAddress, 128), ha
	usType, themType := uint8(header.MHTypeBU), uint8(header.MHTypeBA)
	want := fmt.Sprintf(`local_ts = ["%s[mh/5]"], remote_ts = ["%s[mh/6]"]`, mc.HomeAddress, mc.HAAddress)
	if cfg.Role == node.RoleHA {
		us, them = ha, mc.HomePrefix
		usType, themType = header.MHTypeBA, header.MHTypeBU
		want = fmt.Sprintf(`local_ts = ["%s[mh/6]"], remote_ts = ["%s[mh/5]"]`, mc.HAAddress, mc.HomePrefix)
	}
	if !us.IsValid() || !them.IsValid() {
		return
	}
	for _, c := range cfg.IKE.Connections {
		for _, ch := range c.Children {
			if ch.Mode == ike.ModeTransport && tsCarriesMH(ch.LocalTS, us, usType) && tsCarriesMH(ch.RemoteTS, them, themType) {
				return
			}
		}
	}
	v.errf("connection", "no transport-mode child carries the Binding Updates between the home address and the home agent %s; add one with mode = \"transport\", %s (RFC 4877 §7.2.1)", mc.HAAddress, want)
}

// tsCarriesMH reports whether some selector of ts takes Mobility Header
// messages of type mhType from or to an address in p: the selector of
// that traffic (MH type in the port field's high byte, RFC 4301 §4.4.1.1)
// meets one of ts (ike.NarrowTS). A "dynamic" selector, the IKE address
// (a care-of address), carries no home address's messages.
func tsCarriesMH(ts []ike.TrafficSelector, p netip.Prefix, mhType uint8) bool {
	mh := ike.TSFromPrefix(p.Masked())
	mh.Protocol = header.ProtoMobility
	mh.StartPort, mh.EndPort = uint16(mhType)<<8, uint16(mhType)<<8|0xff
	return len(ike.NarrowTS([]ike.TrafficSelector{mh}, ts)) > 0
}

func (v *validator) ikeSettings(r *rawIKE, c *node.IKEConfig) {
	maxHalf := int64(ike.DefaultMaxHalfOpen)
	if r.MaxHalfOpen != nil {
		if m := *r.MaxHalfOpen; m < 1 || m > 1<<20 {
			v.errf("ike.max_half_open", "%d is out of range; want 1..%d half-open IKE SAs [%d]", m, 1<<20, ike.DefaultMaxHalfOpen)
		} else {
			c.MaxHalfOpen, maxHalf = int(m), m
		}
	}
	if r.CookieThreshold != nil {
		switch t := *r.CookieThreshold; {
		case t < 1 || t > 1<<20:
			v.errf("ike.cookie_threshold", "%d is out of range; want 1..%d half-open IKE SAs before cookies are asked for (RFC 7296 §2.6) [%d]", t, 1<<20, ike.DefaultCookieThreshold)
		case t > maxHalf:
			v.errf("ike.cookie_threshold", "%d is above max_half_open (%d): cookies would never be asked for (RFC 7296 §2.6); want at most %d", t, maxHalf, maxHalf)
		default:
			c.CookieThreshold = int(t)
		}
	}
	if r.Retransmit != "" {
		d, err := time.ParseDuration(r.Retransmit)
		switch {
		case err != nil || d <= 0:
			v.errf("ike.retransmit", "%s is not a positive duration; want e.g. \"1s\" or \"500ms\" [%s]", clip(r.Retransmit), ike.DefaultRetransmit)
		case d > time.Minute:
			v.errf("ike.retransmit", "%s is more than a minute; the first retransmission timeout is doubled each time (RFC 7296 §2.1), want e.g. \"1s\"", d)
		default:
			c.Retransmit = d
		}
	}
	if r.Retransmits != nil {
		if n := *r.Retransmits; n < 1 || n > maxRetransmits {
			v.errf("ike.retransmits", "%d is out of range; want 1..%d tries (the timeout doubles each time) [%d]", n, maxRetransmits, ike.DefaultRetransmits)
		} else {
			c.Retransmits = int(n)
		}
	}
	if r.FragmentSize != nil {
		if n := *r.FragmentSize; n < minFragmentSize || n > maxFragmentSize {
			v.errf("ike.fragment_size", "%d is out of range; want %d..%d bytes, the IP datagram an IKE message or fragment fills (RFC 7383 §2.5.1) [%d]",
				n, minFragmentSize, maxFragmentSize, ike.DefaultFragmentSize)
		} else {
			c.FragmentSize = int(n)
		}
	}
	if r.InitRate != nil {
		if n := *r.InitRate; n < 1 || n > maxInitRate {
			v.errf("ike.init_rate", "%d is out of range; want 1..%d IKE_SA_INIT requests per second from one source address [%d]",
				n, maxInitRate, ike.DefaultInitRate)
		} else {
			c.InitRate = int(n)
		}
	}
	if r.InitBurst != nil {
		if n := *r.InitBurst; n < 1 || n > maxInitRate {
			v.errf("ike.init_burst", "%d is out of range; want 1..%d IKE_SA_INIT requests from one source address at once [%d]",
				n, maxInitRate, ike.DefaultInitBurst)
		} else {
			c.InitBurst = int(n)
		}
	}
}

// ikeDuration reads a duration that may be 0 ("0": never/off); absent
// gives def.
func (v *validator) ikeDuration(path string, s *string, def time.Duration) time.Duration {
	if s == nil {
		return def
	}
	t := strings.TrimSpace(*s)
	if t == "0" {
		return 0
	}
	d, err := time.ParseDuration(t)
	switch {
	case err != nil:
		v.errf(path, "%s is not a duration; want e.g. \"30s\", \"4h\" or \"0\"", clip(*s))
		return def
	case d < 0:
		v.errf(path, "%s is negative; want a duration such as \"30s\" or \"4h\", or \"0\"", clip(*s))
		return def
	}
	return d
}

func (v *validator) port(path string, p *int64) uint16 {
	if p == nil {
		return DefaultIKEPort
	}
	if *p < 1 || *p > 65535 {
		v.errf(path, "%d is not a port; want 1..65535 [%d]", *p, DefaultIKEPort)
		return DefaultIKEPort
	}
	return uint16(*p)
}

// maxIKEString bounds a string handed to ike's parsers (a proposal, an
// identity, a traffic selector), so that no message quotes megabytes.
const maxIKEString = 1024

// tooLong reports (as an error) a string longer than maxIKEString.
func (v *validator) tooLong(path, s string) bool {
	if len(s) > maxIKEString {
		v.errf(path, "%s is too long; at most %d bytes", clip(s), maxIKEString)
		return true
	}
	return false
}

// tooMany reports (as an error) a list longer than maxIKEList.
func (v *validator) tooMany(path string, n int) bool {
	if n > maxIKEList {
		v.errf(path, "%d entries; at most %d", n, maxIKEList)
		return true
	}
	return false
}

func (v *validator) connection(path string, r *rawConnection, cfg *File, psks map[string][]byte) ike.Connection {
	var c ike.Connection
	c.Name = r.Name
	switch {
	case r.Name == "":
		v.errf(path+".name", "missing; every connection needs a unique name of letters, digits, '.', '_' or '-'")
	case !isIKEName(r.Name):
		v.errf(path+".name", "%s is not a connection name; want 1..32 letters, digits, '.', '_' or '-'", clip(r.Name))
	}
	c.LocalAddrs = v.localAddrs(path+".local_addrs", r.LocalAddrs, cfg)
	n := len(v.errs)
	c.RemoteAddrs = v.remoteAddrs(path+".remote_addrs", r.RemoteAddrs, c.LocalAddrs, cfg)
	remoteOK := len(v.errs) == n // the first address is the one written first
	c.LocalPort = v.port(path+".local_port", r.LocalPort)
	c.RemotePort = v.port(path+".remote_port", r.RemotePort)
	c.Proposals = v.proposals(path+".proposals", r.Proposals, r.AllowWeak, ike.ParseIKEProposals)
	c.Encap = r.Encap
	c.Fragmentation = r.Fragmentation == nil || *r.Fragmentation
	c.MOBIKE = r.MOBIKE == nil || *r.MOBIKE
	v.addressing(path, r, &c, cfg)
	c.RekeyTime = v.ikeDuration(path+".rekey_time", r.RekeyTime, DefaultIKERekey)
	c.DPDDelay = v.ikeDuration(path+".dpd_delay", r.DPDDelay, 0)
	if r.KeyingTries != nil {
		if k := *r.KeyingTries; k < 0 || k > maxKeyingTries {
			v.errf(path+".keyingtries", "%d is out of range; want 0 (forever) .. %d", k, maxKeyingTries)
		} else {
			c.KeyingTries = int(k)
		}
	}
	c.Local = v.localAuth(path+".local", &r.Local, psks)
	c.Remote = v.remoteAuth(path+".remote", &r.Remote, c.Local, psks)
	if n := len(r.Children); n > MaxChildren {
		v.errf(indexPath(path+".child", MaxChildren), "%d [[connection.child]] tables; a connection holds at most %d", n, MaxChildren)
		return c
	}
	if len(r.Children) == 0 {
		v.errf(path, "no [[connection.child]]; a connection needs at least one child (the SAs it negotiates, RFC 7296 §1.3)")
	}
	names := map[string]string{}
	for i := range r.Children {
		cp := indexPath(path+".child", i)
		ch := v.child(cp, &r.Children[i], &c, r.AllowWeak, cfg)
		if isIKEName(ch.Name) {
			if prev, dup := names[ch.Name]; dup {
				v.errf(cp+".name", "%q is already the name of %s; child names are unique in a connection", ch.Name, prev)
			} else {
				names[ch.Name] = cp
			}
		}
		c.Children = append(c.Children, ch)
		if ch.Start != ike.StartNone && remoteOK && len(c.RemoteAddrs) > 0 {
			if p := c.RemoteAddrs[0]; !p.IsSingleIP() {
				v.errf(cp+".start_action", "%s needs an address to send IKE_SA_INIT to, but the first of remote_addrs is %s; put the peer's address first, or use start_action = \"none\" (responder only)", startWord(ch.Start), p)
			}
		}
	}
	return c
}

func startWord(s ike.StartAction) string {
	switch s {
	case ike.StartTrap:
		return "start_action = \"trap\""
	case ike.StartStart:
		return "start_action = \"start\""
	}
	return "start_action = \"none\""
}

func (v *validator) localAddrs(path string, ss []string, cfg *File) []netip.Addr {
	if v.tooMany(path, len(ss)) {
		return nil
	}
	var out []netip.Addr
	var have4, have6 bool
	for i, s := range ss {
		p := indexPath(path, i)
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" {
			v.errf(p, "%s is not an IP address; want this gateway's address, e.g. \"192.0.2.1\"", clip(s))
			continue
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() {
			v.errf(p, "%s cannot be a local IKE address; leave local_addrs out for any", a)
			continue
		}
		if a.Is4() && have4 || a.Is6() && have6 {
			v.errf(p, "%s: a second %s address; want at most one IPv4 and one IPv6 address", a, family(a))
			continue
		}
		if a.Is4() {
			have4 = true
		} else {
			have6 = true
		}
		if own := cfg.Underlay.Local4; a.Is4() && own.IsValid() && own != a || a.Is6() && cfg.Underlay.Local6.IsValid() && cfg.Underlay.Local6 != a {
			v.warnf(p, "%s is not the underlay's %s address (underlay.local): IKE and ESP leave from the underlay's sockets", a, family(a))
		}
		out = append(out, a)
	}
	return out
}

func (v *validator) remoteAddrs(path string, ss []string, local []netip.Addr, cfg *File) []netip.Prefix {
	if len(ss) == 0 {
		ss = []string{"%any"}
	}
	if v.tooMany(path, len(ss)) {
		return nil
	}
	var out []netip.Prefix
	for i, s := range ss {
		p := indexPath(path, i)
		t := strings.TrimSpace(s)
		var pf netip.Prefix
		switch {
		case t == "%any":
			out = append(out, netip.PrefixFrom(netip.IPv4Unspecified(), 0), netip.PrefixFrom(netip.IPv6Unspecified(), 0))
			continue
		case strings.Contains(t, "/"):
			q, err := netip.ParsePrefix(t)
			if err != nil {
				v.errf(p, "%s is not a prefix; want an address, a prefix (\"192.0.2.0/24\") or \"%%any\"", clip(s))
				continue
			}
			if q.Addr().Is4In6() {
				q = netip.PrefixFrom(q.Addr().Unmap(), max(q.Bits()-96, 0))
			}
			if q != q.Masked() {
				v.errf(p, "%s has host bits set; want %s (or the address alone)", clip(s), q.Masked())
				continue
			}
			pf = q
		default:
			a, err := netip.ParseAddr(t)
			if err != nil || a.Zone() != "" {
				v.errf(p, "%s is not an address or prefix; want e.g. \"192.0.2.2\", \"192.0.2.0/24\" or \"%%any\" (host names are not resolved)", clip(s))
				continue
			}
			a = a.Unmap()
			if a.IsUnspecified() || a.IsMulticast() {
				v.errf(p, "%s cannot be a peer address; want \"%%any\" for any peer", a)
				continue
			}
			pf = netip.PrefixFrom(a, a.BitLen())
		}
		// A family that nothing local can send from.
		fam := pf.Addr()
		if len(local) > 0 && !hasFamily(local, fam) {
			v.errf(p, "%s is %s but local_addrs has no %s address", pf, family(fam), family(fam))
			continue
		}
		u := cfg.Underlay
		if fam.Is4() && !u.Local4.IsValid() && u.Local6.IsValid() || fam.Is6() && !u.Local6.IsValid() && u.Local4.IsValid() {
			v.errf(p, "%s is %s but underlay.local has no %s address", pf, family(fam), family(fam))
			continue
		}
		out = append(out, pf)
	}
	return out
}

func hasFamily(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x.Is4() == a.Is4() {
			return true
		}
	}
	return false
}

// proposals parses a proposal list entry by entry (so that an error names
// its entry), then as a whole. A list that needs allowWeak gets a
// warning.
func (v *validator) proposals(path string, ss []string, allowWeak bool, parse func([]string, bool) ([]ike.Proposal, error)) []ike.Proposal {
	if v.tooMany(path, len(ss)) {
		return nil
	}
	n := len(v.errs)
	for i, s := range ss {
		if v.tooLong(indexPath(path, i), s) {
			continue
		}
		if _, err := parse([]string{s}, false); err == nil {
			continue
		}
		_, err := parse([]string{s}, true)
		switch {
		case err != nil:
			v.errf(indexPath(path, i), "%s", ikeMsg(err))
		case !allowWeak:
			v.errf(indexPath(path, i), "%s uses weak algorithms; set allow_weak = true on the connection to accept them", clip(s))
		default:
			v.warnf(indexPath(path, i), "%s uses weak algorithms (allow_weak = true)", clip(s))
		}
	}
	if len(v.errs) != n {
		return nil
	}
	out, err := parse(ss, allowWeak)
	if err != nil {
		v.errf(path, "%s", ikeMsg(err))
		return nil
	}
	return out
}

// ikeMsg is an error of package ike in the config's words.
func ikeMsg(err error) string { return strings.TrimPrefix(err.Error(), "ike: ") }

func authMethod(path, s string, v *validator) ike.AuthMethodName {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "psk":
		return ike.AuthPSK
	case "pubkey":
		return ike.AuthPubkey
	case "":
		v.errf(path, "missing; want \"psk\" (pre-shared key, psk_file) or \"pubkey\" (certificates)")
	default:
		v.errf(path, "%s is not an authentication method; want \"psk\" or \"pubkey\"", clip(s))
	}
	return ""
}

func (v *validator) identity(path, s string) ike.Identity {
	if s == "" || v.tooLong(path, s) {
		return ike.Identity{}
	}
	id, err := ike.ParseIdentity(s)
	if err != nil {
		v.errf(path, "%s", ikeMsg(err))
		return ike.Identity{}
	}
	return id
}

func (v *validator) localAuth(path string, r *rawLocalAuth, psks map[string][]byte) ike.LocalAuth {
	var a ike.LocalAuth
	a.Method = authMethod(path+".auth", r.Auth, v)
	a.ID = v.identity(path+".id", r.ID)
	switch a.Method {
	case ike.AuthPSK:
		if r.Cert != "" {
			v.errf(path+".cert", "auth = \"psk\" takes no certificate; remove cert, or set auth = \"pubkey\" and remove psk_file")
		}
		if r.Key != "" {
			v.errf(path+".key", "auth = \"psk\" takes no private key; remove key, or set auth = \"pubkey\" and remove psk_file")
		}
		if r.PSKFile == "" {
			v.errf(path+".psk_file", "missing; auth = \"psk\" needs the file of the pre-shared key (mode 0600)")
		} else {
			a.PSK = v.psk(path+".psk_file", r.PSKFile, psks)
		}
	case ike.AuthPubkey:
		if r.PSKFile != "" {
			v.errf(path+".psk_file", "auth = \"pubkey\" takes no pre-shared key; remove psk_file, or set auth = \"psk\" and remove cert and key")
		}
		if r.Cert == "" {
			v.errf(path+".cert", "missing; auth = \"pubkey\" needs the PEM certificate (chain, leaf first)")
		} else {
			a.Certs = v.certs(path+".cert", r.Cert)
		}
		if r.Key == "" {
			v.errf(path+".key", "missing; auth = \"pubkey\" needs the PEM private key of the certificate (mode 0600)")
		} else {
			a.Key = v.privateKey(path+".key", r.Key)
		}
		if len(a.Certs) > 0 && a.Key != nil {
			type equaler interface{ Equal(crypto.PublicKey) bool }
			if pk, ok := a.Certs[0].PublicKey.(equaler); !ok || !pk.Equal(a.Key.Public()) {
				v.errf(path+".key", "is not the private key of the certificate %s (the first of cert)", clip(r.Cert))
			}
		}
	}
	return a
}

func (v *validator) remoteAuth(path string, r *rawRemote, local ike.LocalAuth, psks map[string][]byte) ike.RemoteAuth {
	var a ike.RemoteAuth
	a.Method = local.Method // the default: the local side's
	if r.Auth != "" {
		a.Method = authMethod(path+".auth", r.Auth, v)
	}
	a.ID = v.identity(path+".id", r.ID)
	switch a.Method {
	case ike.AuthPSK:
		if len(r.CACerts) > 0 {
			v.errf(path+".cacerts", "auth = \"psk\" takes no CA certificates; remove cacerts, or set auth = \"pubkey\"")
		}
		switch {
		case r.PSKFile != "":
			a.PSK = v.psk(path+".psk_file", r.PSKFile, psks)
		case local.Method == ike.AuthPSK:
			a.PSK = local.PSK
		default:
			v.errf(path+".psk_file", "missing; auth = \"psk\" needs the file of the peer's pre-shared key (the local side has none to share)")
		}
	case ike.AuthPubkey:
		if r.PSKFile != "" {
			v.errf(path+".psk_file", "auth = \"pubkey\" takes no pre-shared key; remove psk_file, or set auth = \"psk\"")
		}
		if len(r.CACerts) == 0 {
			v.errf(path+".cacerts", "missing; auth = \"pubkey\" needs the CA certificates the peer's certificate chains to")
		}
		if !v.tooMany(path+".cacerts", len(r.CACerts)) {
			for i, f := range r.CACerts {
				a.CAs = append(a.CAs, v.certs(indexPath(path+".cacerts", i), f)...)
			}
		}
	}
	a.PAD = v.pad(path+".pad", r.PAD)
	return a
}

// pad is [[connection.remote.pad]]: the peer authorization database of a
// responder (RFC 4301 §4.4.3), each entry an identity and the addresses
// (or prefixes) its children may have as remote traffic selectors; an
// identity no entry names is refused.
func (v *validator) pad(path string, raw []rawPAD) []ike.PADEntry {
	if v.tooMany(path, len(raw)) {
		return nil
	}
	var out []ike.PADEntry
	seen := map[string]int{}
	for i, r := range raw {
		p := indexPath(path, i)
		if r.ID == "" {
			v.errf(p+".id", "missing; a PAD entry names the identity it authorizes")
			continue
		}
		e := ike.PADEntry{ID: v.identity(p+".id", r.ID)}
		if j, dup := seen[e.ID.String()]; dup {
			v.errf(p+".id", "identity %q is already PAD entry %d", r.ID, j)
			continue
		}
		seen[e.ID.String()] = i
		if len(r.Addresses) == 0 {
			v.errf(p+".addresses", "missing; the addresses the identity may claim, e.g. its home address")
		}
		if v.tooMany(p+".addresses", len(r.Addresses)) {
			continue
		}
		for j, s := range r.Addresses {
			pp, err := parseAddrOrPrefix(s)
			if err != nil {
				v.errf(indexPath(p+".addresses", j), "%v", err)
				continue
			}
			e.Addrs = append(e.Addrs, pp)
		}
		out = append(out, e)
	}
	return out
}

// addressing reads a connection's configuration-payload settings (RFC 7296
// §2.19, ike/cp.go): a responder's pool and the home prefix it answers
// with (on a home agent, mobility.home_prefix by default: RFC 4877 §9,
// RFC 5026), an initiator's vips and request_home_prefix.
func (v *validator) addressing(path string, r *rawConnection, c *ike.Connection, cfg *File) {
	if !v.tooMany(path+".pool", len(r.Pool)) {
		for i, s := range r.Pool {
			p, err := parseAddrOrPrefix(s)
			if err != nil {
				v.errf(indexPath(path+".pool", i), "%v", err)
				continue
			}
			c.Pool = append(c.Pool, p)
		}
	}
	if r.HomePrefix != "" {
		p, err := netip.ParsePrefix(r.HomePrefix)
		switch {
		case err != nil || !p.Addr().Is6() || p.Addr().Zone() != "":
			v.errf(path+".home_prefix", "%s is not an IPv6 prefix; want e.g. \"2001:db8:1::/64\" (RFC 5026 MIP6_HOME_PREFIX)", clip(r.HomePrefix))
		case p != p.Masked():
			v.errf(path+".home_prefix", "%q has host bits set; want %v", r.HomePrefix, p.Masked())
		default:
			c.HomePrefix = p
		}
	} else if cfg.Role == node.RoleHA && len(c.Pool) > 0 {
		c.HomePrefix = cfg.Mobility.HomePrefix
	}
	if len(c.Pool) == 0 && r.HomePrefix != "" {
		v.errf(path+".home_prefix", "without a pool there is no address to give out; add pool, or remove home_prefix")
	}
	if !v.tooMany(path+".vips", len(r.VIPs)) {
		seen := map[bool]bool{}
		for i, s := range r.VIPs {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				v.errf(indexPath(path+".vips", i), "%s is not an address; want \"::\" or \"0.0.0.0\" (any of that family) or the address to ask for", clip(s))
				continue
			}
			a = a.Unmap()
			if seen[a.Is4()] {
				v.errf(indexPath(path+".vips", i), "a second %s address; one per family", family(a))
				continue
			}
			seen[a.Is4()] = true
			c.VIPs = append(c.VIPs, a)
		}
	}
	c.RequestHomePrefix = r.RequestHome
}

// parseAddrOrPrefix reads "2001:db8::1" (a single address) or a prefix
// with its host bits zero.
func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: an address with a zone", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a prefix", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %v?)", s, p.Masked())
	}
	return p, nil
}

// resolve makes a file name relative to the config file's directory.
func (v *validator) resolve(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(v.baseDir, name)
}

// psk reads a pre-shared key file (readSecretFile: mode 0600 or stricter,
// ours or root's): the bytes of the file without trailing line ends;
// "0x" then hex, or "0s" then base64, as swanctl's secrets write them.
// Nothing of the secret goes into a message.
func (v *validator) psk(path, name string, cache map[string][]byte) []byte {
	p := v.resolve(name)
	if k, ok := cache[p]; ok {
		return k
	}
	b, err := v.readSecretFile(path, p, MaxPSKFileSize, "a PSK file holds one secret")
	if err != nil {
		return nil
	}
	s := bytes.TrimRight(b, "\r\n")
	var k []byte
	switch {
	case bytes.HasPrefix(s, []byte("0x")) || bytes.HasPrefix(s, []byte("0X")):
		k, err = DecodeHexKey(string(s))
		if err != nil {
			v.errf(path, "%s starts with \"0x\" but the rest is not hex digits; write the secret as \"0x\" and hex, \"0s\" and base64, or as plain text without a \"0x\"", p)
			return nil
		}
	case bytes.HasPrefix(s, []byte("0s")):
		k, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(s[2:])))
		if err != nil {
			v.errf(path, "%s starts with \"0s\" but the rest is not base64; write the secret as \"0s\" and base64, \"0x\" and hex, or as plain text without a \"0s\"", p)
			return nil
		}
	default:
		k = bytes.Clone(s)
	}
	clear(b)
	if len(k) == 0 {
		v.errf(path, "%s is empty; want the pre-shared key, e.g. as `openssl rand -base64 32` writes it", p)
		return nil
	}
	if len(k) < MinPSKLen {
		v.warnf(path, "the pre-shared key in %s is %d bytes; one captured IKE_AUTH lets an eavesdropper test guesses offline (RFC 7296 §2.15): use at least %d random bytes, e.g. `openssl rand -base64 32`", p, len(k), MinPSKLen)
	}
	cache[p] = k
	return k
}

// readPublicFile reads a certificate file (no secret: any mode) of at
// most MaxCertFileSize bytes.
func (v *validator) readPublicFile(path, p string) []byte {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		v.errf(path, "%v", err)
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		v.errf(path, "%v", err)
		return nil
	}
	if !fi.Mode().IsRegular() {
		v.errf(path, "%s is %s, not a regular file", p, fileKind(fi.Mode()))
		return nil
	}
	b, tooBig, err := readBounded(f, MaxCertFileSize)
	switch {
	case err != nil:
		v.errf(path, "%v", err)
		return nil
	case tooBig:
		v.errf(path, "%s is larger than %s; a certificate file holds a few PEM certificates", p, sizeWords(MaxCertFileSize))
		return nil
	}
	return b
}

// certs reads the PEM certificates of a file, in order.
func (v *validator) certs(path, name string) []*x509.Certificate {
	p := v.resolve(name)
	b := v.readPublicFile(path, p)
	if b == nil {
		return nil
	}
	var out []*x509.Certificate
	for i := 1; ; i++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			v.errf(path, "%s: PEM block %d is %q; a certificate file holds CERTIFICATE blocks only (the private key goes into key)", p, i, clipType(blk.Type))
			return nil
		}
		if len(out) == maxCerts {
			v.errf(path, "%s holds more than %d certificates", p, maxCerts)
			return nil
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			v.errf(path, "%s: certificate %d: %v", p, i, err)
			return nil
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		v.errf(path, "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", p)
		return nil
	}
	now := time.Now()
	for i, c := range out {
		if now.After(c.NotAfter) {
			v.warnf(path, "%s: certificate %d (%s) expired on %s", p, i+1, c.Subject, c.NotAfter.UTC().Format(time.DateOnly))
		} else if now.Before(c.NotBefore) {
			v.warnf(path, "%s: certificate %d (%s) is not valid before %s", p, i+1, c.Subject, c.NotBefore.UTC().Format(time.DateOnly))
		}
	}
	return out
}

// clipType bounds a PEM block type for a message.
func clipType(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// privateKey reads a PEM private key (PKCS#8, PKCS#1 or SEC1) from a
// file of mode 0600 or stricter.
func (v *validator) privateKey(path, name string) crypto.Signer {
	p := v.resolve(name)
	b, err := v.readSecretFile(path, p, MaxPrivateKeyFileSize, "a key file holds one PEM private key")
	if err != nil {
		return nil
	}
	defer clear(b)
	var blk *pem.Block
	rest := b
	for {
		blk, rest = pem.Decode(rest)
		if blk == nil || strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			break
		}
	}
	if blk == nil {
		v.errf(path, "%s holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)", p)
		return nil
	}
	defer clear(blk.Bytes)
	if _, enc := blk.Headers["DEK-Info"]; enc || blk.Type == "ENCRYPTED PRIVATE KEY" {
		v.errf(path, "%s is encrypted; the daemon reads unencrypted keys only (protect it by its mode, 0600)", p)
		return nil
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		v.errf(path, "%s: a %q PEM block; want PRIVATE KEY (PKCS#8), RSA PRIVATE KEY (PKCS#1) or EC PRIVATE KEY (SEC1)", p, clipType(blk.Type))
		return nil
	}
	if err != nil {
		v.errf(path, "%s: not a %s: %v", p, strings.ToLower(blk.Type), err)
		return nil
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			v.errf(path, "%s: an RSA key of %d bits; want at least %d", p, bits, MinRSABits)
			return nil
		}
		return k
	case *ecdsa.PrivateKey:
		return k
	case ed25519.PrivateKey:
		return k
	}
	v.errf(path, "%s: a %T key; want RSA, ECDSA or Ed25519", p, k)
	return nil
}

func (v *validator) child(path string, r *rawChild, c *ike.Connection, allowWeak bool, cfg *File) ike.Child {
	var ch ike.Child
	ch.Name = r.Name
	switch {
	case r.Name == "":
		v.errf(path+".name", "missing; every child needs a name, unique in its connection")
	case !isIKEName(r.Name):
		v.errf(path+".name", "%s is not a child name; want 1..32 letters, digits, '.', '_' or '-'", clip(r.Name))
	}
	local := r.LocalTS
	if len(local) == 0 {
		local = []string{"dynamic"}
	}
	ch.LocalTS = v.trafficSelectors(path+".local_ts", local)
	if len(r.RemoteTS) == 0 {
		v.errf(path+".remote_ts", "missing; want the peer's protected networks, e.g. remote_ts = [\"10.2.0.0/16\"], or [\"dynamic\"] for the peer's own address")
	}
	ch.RemoteTS = v.trafficSelectors(path+".remote_ts", r.RemoteTS)
	ch.Proposals = v.proposals(path+".esp_proposals", r.ESPProposals, allowWeak, ike.ParseESPProposals)
	switch strings.ToLower(strings.TrimSpace(r.Mode)) {
	case "", "tunnel":
		ch.Mode = ike.ModeTunnel
	case "transport":
		ch.Mode = ike.ModeTransport
	default:
		v.errf(path+".mode", "%s is not a mode; want \"tunnel\" or \"transport\"", clip(r.Mode))
	}
	switch strings.ToLower(strings.TrimSpace(r.StartAction)) {
	case "", "none":
		ch.Start = ike.StartNone
	case "trap":
		ch.Start = ike.StartTrap
	case "start":
		ch.Start = ike.StartStart
	default:
		v.errf(path+".start_action", "%s is not a start action; want \"none\" (wait for the peer), \"trap\" (on traffic) or \"start\" (at once)", clip(r.StartAction))
	}
	ch.RekeyTime = ike.DefaultChildRekey
	if r.RekeyTime != nil {
		d := v.ikeDuration(path+".rekey_time", r.RekeyTime, ike.DefaultChildRekey)
		if d == 0 {
			v.errf(path+".rekey_time", "0; a child is rekeyed before its keys wear out (RFC 7296 §2.8): want a duration such as \"1h\"")
		} else {
			ch.RekeyTime = d
		}
	}
	ch.LifeTime = ch.RekeyTime + ch.RekeyTime/10
	if r.LifeTime != nil {
		d := v.ikeDuration(path+".life_time", r.LifeTime, 0)
		switch {
		case d == 0:
			v.errf(path+".life_time", "0; want a duration above rekey_time (%s), e.g. %q", ch.RekeyTime, (ch.RekeyTime + ch.RekeyTime/10).String())
		case d <= ch.RekeyTime:
			v.errf(path+".life_time", "%s is not above rekey_time (%s): the child would die before it is rekeyed; want e.g. %q", d, ch.RekeyTime, (ch.RekeyTime + ch.RekeyTime/10).String())
		default:
			ch.LifeTime = d
		}
	}
	if r.RekeyBytes != nil {
		if b := *r.RekeyBytes; b < 0 {
			v.errf(path+".rekey_bytes", "%d is negative; want a byte count, or 0 for none", b)
		} else {
			ch.RekeyBytes = uint64(b)
		}
	}
	if r.ReplayWindow != nil {
		switch w := *r.ReplayWindow; {
		case w == 0:
		case w < esp.MinReplayWindow || w > esp.MaxReplayWindow:
			v.errf(path+".replay_window", "%d is out of range; want %d..%d packets (RFC 4303 §3.4.3), or 0 for the default", w, esp.MinReplayWindow, esp.MaxReplayWindow)
		default:
			ch.ReplayWindow = int(w)
		}
	}
	v.childWarnings(path, r, &ch, c, cfg)
	return ch
}

func (v *validator) trafficSelectors(path string, ss []string) []ike.TrafficSelector {
	if v.tooMany(path, len(ss)) {
		return nil
	}
	var out []ike.TrafficSelector
	for i, s := range ss {
		if v.tooLong(indexPath(path, i), s) {
			continue
		}
		ts, err := ike.ParseTS(s)
		if err != nil {
			v.errf(indexPath(path, i), "%s", ikeMsg(err))
			continue
		}
		out = append(out, ts)
	}
	return out
}

// childWarnings: a transport-mode child that protects more than hosts,
// and a tunnel-mode child whose remote_ts cover the peer's own address.
func (v *validator) childWarnings(path string, r *rawChild, ch *ike.Child, c *ike.Connection, cfg *File) {
	if ch.Mode == ike.ModeTransport {
		for _, side := range []struct {
			field string
			ts    []ike.TrafficSelector
		}{{"local_ts", ch.LocalTS}, {"remote_ts", ch.RemoteTS}} {
			if side.field == "remote_ts" && len(c.Remote.PAD) > 0 {
				continue // narrowed to each peer's PAD addresses (RFC 4301 §4.4.3)
			}
			for i, ts := range side.ts {
				if !tsIsHost(ts) {
					v.warnf(indexPath(path+"."+side.field, i), "%s is more than one address, but mode = \"transport\" protects the hosts' own traffic only (RFC 4301 §4.1): want host addresses or \"dynamic\", or mode = \"tunnel\"", ike.FormatTS(ts))
				}
			}
		}
		return
	}
	if cfg.Underlay.FWMark != 0 {
		return // policy routing keeps the underlay's packets out of the TUN
	}
	for i, ts := range ch.RemoteTS {
		for _, p := range c.RemoteAddrs {
			if !p.IsSingleIP() || !tsCovers(ts, p.Addr()) {
				continue
			}
			v.warnf(indexPath(path+".remote_ts", i), "%s covers the peer's address %s, and underlay.fwmark = \"off\": IKE and ESP to the peer would be routed into the TUN and loop; remove underlay.fwmark = \"off\" (policy routing around the TUN) or narrow remote_ts", ike.FormatTS(ts), p.Addr())
			break
		}
	}
}

// tsIsHost reports whether ts names one address (or is "dynamic", the
// IKE SA's own).
func tsIsHost(ts ike.TrafficSelector) bool {
	return ike.IsDynamic(ts) || ts.Start.IsValid() && ts.Start == ts.End
}

// tsCovers reports whether a lies in ts's address range.
func tsCovers(ts ike.TrafficSelector, a netip.Addr) bool {
	if ike.IsDynamic(ts) || !ts.Start.IsValid() || !ts.End.IsValid() || ts.Start.Is4() != a.Is4() {
		return false
	}
	return ts.Start.Compare(a) <= 0 && a.Compare(ts.End) <= 0
}
