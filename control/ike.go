package control

// Control commands of the IKEv2 daemon (package ike), swanctl's
// --list-sas, --initiate, --terminate and --rekey:
//
//	ike.list                         the IKE SAs and their Child SAs (no keys)
//	ike.wireshark                    the IKE SAs' keys, for Wireshark
//	ike.initiate {"name","child"}    establish a connection (child "": all)
//	ike.terminate {"name"}           delete a connection's IKE SA
//	ike.rekey {"name","child"}       rekey a child (child "": the IKE SA)
//
// initiate, terminate and rekey wait for the daemon at most "timeout"
// (default DefaultIKETimeout, at most MaxIKETimeout); a daemon without
// [[connection]] answers ErrNoIKE.
//
// Keys: only ike.wireshark carries them (SK_ei, SK_er, SK_ai, SK_ar, RFC
// 7296 §2.14), and only because the request names it; ike.list never does.
// As for sa.wireshark, what protects them is the socket's permissions
// (doc.go: 0600, root, SO_PEERCRED).

import (
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/node"
)

func init() {
	methods["ike.list"] = method{"IKE: the IKE SAs and their child SAs (never their keys)", (*Server).cmdIKEList}
	methods["ike.wireshark"] = method{"IKE: the IKE SAs' keys, for Wireshark's ikev2_decryption_table", (*Server).cmdIKEWireshark}
	methods["ike.initiate"] = method{"IKE: establish a connection's IKE SA and child (args: name, child, timeout)", (*Server).cmdIKEInitiate}
	methods["ike.terminate"] = method{"IKE: delete a connection's IKE SA and its children (args: name, timeout)", (*Server).cmdIKETerminate}
	methods["ike.rekey"] = method{"IKE: rekey a child, or the IKE SA without one (args: name, child, timeout)", (*Server).cmdIKERekey}
}

// IKE limits and defaults.
const (
	// MaxIKENameLen bounds a connection or child name in a request.
	MaxIKENameLen = 128
	// DefaultIKETimeout is how long initiate, terminate and rekey wait
	// for the daemon (swanctl --timeout); MaxIKETimeout the most a
	// request may ask for.
	DefaultIKETimeout = 30 * time.Second
	MaxIKETimeout     = 10 * time.Minute
)

// Errors of the ike commands.
var (
	ErrNoIKE = errors.New("no IKE connections configured ([[connection]] in the config)")
	// ErrIKETimeout: the daemon did not finish within the request's
	// timeout. It goes on trying; ike.list shows where it is.
	ErrIKETimeout = errors.New("timed out")
)

// IKEDaemon is what the ike commands use of the IKE daemon; *ike.Daemon
// has it.
type IKEDaemon interface {
	Initiate(conn, child string) error
	Terminate(conn string) error
	Rekey(conn, child string) error
	List() []ike.SAStatus
	Stats() ike.Stats
	WiresharkKeys() []ike.WiresharkKey
}

// IKETarget is the optional part of a Target that runs an IKE daemon:
// node.Node.IKE, nil without IKE connections.
type IKETarget interface {
	IKE() *ike.Daemon
}

// IKEDaemonTarget is the same for a Target whose daemon is some other
// IKEDaemon (tests' fakes); it is asked before IKETarget.
type IKEDaemonTarget interface {
	IKEDaemon() IKEDaemon
}

var _ IKEDaemon = (*ike.Daemon)(nil)

// IKEOf returns t's IKE daemon, nil when it has none (no [[connection]]).
// The metrics read it the same way.
func IKEOf(t any) IKEDaemon {
	if dt, ok := t.(IKEDaemonTarget); ok {
		if d := dt.IKEDaemon(); d != nil {
			return d
		}
	}
	if it, ok := t.(IKETarget); ok {
		if d := it.IKE(); d != nil { // a nil *ike.Daemon is no daemon
			return d
		}
	}
	return nil
}

// IKESPI is an IKE SPI (64 bits, RFC 7296 §3.1) in answers: "0x1a2b3c4d5e6f7081".
type IKESPI uint64

func (s IKESPI) String() string { return fmt.Sprintf("0x%016x", uint64(s)) }

// MarshalJSON writes the SPI in hex.
func (s IKESPI) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// UnmarshalJSON reads the hex string (or a number).
func (s *IKESPI) UnmarshalJSON(b []byte) error {
	str := string(b)
	if len(str) >= 2 && str[0] == '"' {
		str = str[1 : len(str)-1]
	}
	v, err := strconv.ParseUint(str, 0, 64)
	if err != nil {
		return fmt.Errorf("%s is not an IKE SPI; want \"0x1a2b3c4d5e6f7081\"", b)
	}
	*s = IKESPI(v)
	return nil
}

// IKESAInfo is one IKE SA in the ike.list answer (ike.SAStatus).
type IKESAInfo struct {
	Name string `json:"name"`
	ID   uint32 `json:"id"`
	// State: "connecting", "established", "rekeying", "deleting".
	State     string `json:"state"`
	Initiator bool   `json:"initiator"`
	SPIi      IKESPI `json:"spi_i"`
	SPIr      IKESPI `json:"spi_r"`
	// Local and Remote are the IKE endpoints, address and port.
	Local    string `json:"local,omitempty"`
	Remote   string `json:"remote,omitempty"`
	LocalID  string `json:"local_id,omitempty"`
	RemoteID string `json:"remote_id,omitempty"`
	// HomeAddress is, on a home agent or mobile node, the home address
	// the IKE SA's children are bound to (RFC 4877 §7.2): the single IPv6
	// address of their remote (HA) or local (MN) selectors.
	HomeAddress string `json:"home_address,omitempty"`
	// VIPs are the addresses the peer's configuration reply gave us,
	// PeerVIPs those our pool gave the peer, HomePrefix the home prefix
	// the peer told us (RFC 7296 §2.19, RFC 4877 §9, RFC 5026).
	VIPs       []string `json:"vips,omitempty"`
	PeerVIPs   []string `json:"peer_vips,omitempty"`
	HomePrefix string   `json:"home_prefix,omitempty"`
	// NATLocal and NATRemote: the side NAT detection (RFC 7296 §2.23)
	// found behind a NAT. Encap: IKE and ESP use UDP port 4500.
	NATLocal  bool `json:"nat_local"`
	NATRemote bool `json:"nat_remote"`
	Encap     bool `json:"encap"`
	// Suite is the negotiated proposal ("aes128gcm16/prfsha256/curve25519").
	Suite       string         `json:"suite,omitempty"`
	Established time.Time      `json:"established,omitzero"`
	RekeyAt     time.Time      `json:"rekey_at,omitzero"`
	Children    []IKEChildInfo `json:"children"`
}

// IKEChildInfo is one Child SA of an IKESAInfo (ike.ChildStatus).
type IKEChildInfo struct {
	Name string `json:"name"`
	ID   uint32 `json:"id"`
	// State: "installing", "installed", "rekeying", "deleting".
	State string `json:"state"`
	Mode  string `json:"mode"` // "tunnel" or "transport"
	Suite string `json:"suite,omitempty"`
	// SPIIn and SPIOut are the ESP SPIs of the inbound and outbound SA.
	SPIIn  SPI `json:"spi_in"`
	SPIOut SPI `json:"spi_out"`
	// LocalTS and RemoteTS are the traffic selectors (RFC 7296 §3.13.1)
	// in the config's grammar (ike.FormatTS): "10.1.0.0/16",
	// "10.1.0.0/16[tcp/443]".
	LocalTS   []string  `json:"local_ts"`
	RemoteTS  []string  `json:"remote_ts"`
	Installed time.Time `json:"installed,omitzero"`
	RekeyAt   time.Time `json:"rekey_at,omitzero"`
	ExpireAt  time.Time `json:"expire_at,omitzero"`
}

func addrPortString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// IKESAInfoOf is the wire form of st.
func IKESAInfoOf(st ike.SAStatus) IKESAInfo {
	in := IKESAInfo{
		Name: st.Name, ID: st.ID, State: st.State, Initiator: st.Initiator, SPIi: IKESPI(st.SPIi), SPIr: IKESPI(st.SPIr),
		Local: addrPortString(st.Local), Remote: addrPortString(st.Remote), LocalID: st.LocalID, RemoteID: st.RemoteID,
		NATLocal: st.NATLocal, NATRemote: st.NATRemote, Encap: st.Encap, Suite: st.Suite,
		Established: utc(st.Established), RekeyAt: utc(st.RekeyAt), Children: []IKEChildInfo{},
	}
	for _, a := range st.VIPs {
		in.VIPs = append(in.VIPs, a.String())
	}
	for _, a := range st.PeerVIPs {
		in.PeerVIPs = append(in.PeerVIPs, a.String())
	}
	if st.HomePrefix.IsValid() {
		in.HomePrefix = st.HomePrefix.String()
	}
	for _, c := range st.Children {
		ci := IKEChildInfo{
			Name: c.Name, ID: c.ID, State: c.State, Mode: c.Mode.String(), Suite: c.Suite,
			SPIIn: SPI(c.InSPI), SPIOut: SPI(c.OutSPI), LocalTS: []string{}, RemoteTS: []string{},
			Installed: utc(c.Installed), RekeyAt: utc(c.RekeyAt), ExpireAt: utc(c.ExpireAt),
		}
		for _, ts := range c.LocalTS {
			ci.LocalTS = append(ci.LocalTS, ike.FormatTS(ts))
		}
		for _, ts := range c.RemoteTS {
			ci.RemoteTS = append(ci.RemoteTS, ike.FormatTS(ts))
		}
		in.Children = append(in.Children, ci)
	}
	return in
}

func (s *Server) ikeDaemon() (IKEDaemon, error) {
	if d := IKEOf(s.t); d != nil {
		return d, nil
	}
	return nil, ErrNoIKE
}

func (s *Server) cmdIKEList(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	d, err := s.ikeDaemon()
	if err != nil {
		return nil, err
	}
	role := s.t.Status().Role
	return ikeList(d, role == node.RoleHA || role == node.RoleMN, role == node.RoleHA), nil
}

// homeAddress is the first single IPv6 address of st's children's remote
// (remote: a home agent) or local selectors: the home address the IKE SA
// is for (RFC 4877 §7.2); "" when none.
func homeAddress(st ike.SAStatus, remote bool) string {
	for _, c := range st.Children {
		ts := c.LocalTS
		if remote {
			ts = c.RemoteTS
		}
		for _, t := range ts {
			if a := t.Start.Unmap(); a.Is6() && t.Start == t.End {
				return a.String()
			}
		}
	}
	return ""
}

// ikeList is the daemon's IKE SAs, by name and then ID; mobility: with
// the home address each is for (homeAddress; remote on a home agent).
func ikeList(d IKEDaemon, mobility, remote bool) []IKESAInfo {
	out := []IKESAInfo{}
	for _, st := range d.List() {
		in := IKESAInfoOf(st)
		if mobility {
			in.HomeAddress = homeAddress(st, remote)
		}
		out = append(out, in)
	}
	slices.SortStableFunc(out, func(a, b IKESAInfo) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// IKEWiresharkKey is one IKE SA's keys as ike.wireshark answers them
// (ike.WiresharkKey): the keys in hex, the algorithms in Wireshark's
// names.
type IKEWiresharkKey struct {
	SPIi       IKESPI `json:"spi_i"`
	SPIr       IKESPI `json:"spi_r"`
	SKei       string `json:"sk_ei"`
	SKer       string `json:"sk_er"`
	Encryption string `json:"encryption"`
	SKai       string `json:"sk_ai,omitempty"`
	SKar       string `json:"sk_ar,omitempty"`
	Integrity  string `json:"integrity"`
}

func (s *Server) cmdIKEWireshark(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	d, err := s.ikeDaemon()
	if err != nil {
		return nil, err
	}
	out := []IKEWiresharkKey{}
	for _, k := range d.WiresharkKeys() {
		h := hex.EncodeToString
		out = append(out, IKEWiresharkKey{SPIi: IKESPI(k.SPIi), SPIr: IKESPI(k.SPIr), SKei: h(k.SKei), SKer: h(k.SKer),
			Encryption: k.EncrName, SKai: h(k.SKai), SKar: h(k.SKar), Integrity: k.IntegName})
		clear(k.SKei)
		clear(k.SKer)
		clear(k.SKai)
		clear(k.SKar)
	}
	return out, nil
}

// IKEArgs name a connection and a child: the arguments of ike.initiate,
// ike.terminate (no child) and ike.rekey.
type IKEArgs struct {
	Name  string `json:"name"`
	Child string `json:"child,omitempty"`
	// Timeout bounds the wait for the daemon ("30s"); absent:
	// DefaultIKETimeout.
	Timeout string `json:"timeout,omitempty"`
}

// IKEActionInfo is what ike.initiate, ike.terminate and ike.rekey answer:
// the connection's newest IKE SA before and after the action (absent
// where there was or is none).
type IKEActionInfo struct {
	Action string     `json:"action"` // "initiate", "terminate", "rekey"
	Name   string     `json:"name"`
	Child  string     `json:"child,omitempty"`
	Before *IKESAInfo `json:"before,omitempty"`
	After  *IKESAInfo `json:"after,omitempty"`
}

// checkIKEName refuses what no configured name can be: empty (where
// required), longer than MaxIKENameLen, invalid UTF-8 (encoding/json
// turns it into U+FFFD), control or invisible format characters.
func checkIKEName(key, v string, required bool) error {
	switch {
	case v == "" && required:
		return fmt.Errorf("%w: args: %s is required", ErrBadRequest, key)
	case len(v) > MaxIKENameLen:
		return fmt.Errorf("%w: args: %s is %d bytes long; names are at most %d", ErrBadRequest, key, len(v), MaxIKENameLen)
	case !utf8.ValidString(v) || strings.ContainsRune(v, utf8.RuneError):
		return fmt.Errorf("%w: args: %s %+q is not valid UTF-8", ErrBadRequest, key, v)
	}
	for _, r := range v {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w: args: %s %q holds the control or invisible character %U", ErrBadRequest, key, v, r)
		}
	}
	return nil
}

func ikeActionArgs(raw json.RawMessage, childAllowed bool) (IKEArgs, time.Duration, error) {
	var a IKEArgs
	if len(raw) == 0 {
		return a, 0, fmt.Errorf("%w: args: name is required", ErrBadRequest)
	}
	if err := decodeArgs(raw, &a); err != nil {
		return a, 0, err
	}
	if err := checkIKEName("name", a.Name, true); err != nil {
		return a, 0, err
	}
	if !childAllowed && a.Child != "" {
		return a, 0, fmt.Errorf("%w: args: terminate takes no child (it deletes the IKE SA with all its children)", ErrBadRequest)
	}
	if err := checkIKEName("child", a.Child, false); err != nil {
		return a, 0, err
	}
	timeout := DefaultIKETimeout
	if a.Timeout != "" {
		d, err := time.ParseDuration(a.Timeout)
		if err != nil || d <= 0 || d > MaxIKETimeout {
			return a, 0, fmt.Errorf("%w: args: timeout %q: want a duration above 0 and at most %v", ErrBadRequest, a.Timeout, MaxIKETimeout)
		}
		timeout = d
	}
	return a, timeout, nil
}

// ikeWait runs f, a daemon call that may wait for exchanges, for at most
// timeout (or until the server closes). After a timeout f goes on in the
// background; the daemon bounds it with its own retransmission limit.
func (s *Server) ikeWait(timeout time.Duration, what string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("IKE daemon call panicked", zap.String("call", what), zap.Any("panic", r))
				done <- errors.New("internal error")
			}
		}()
		done <- f()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var closed <-chan struct{}
	if s.ctx != nil {
		closed = s.ctx.Done()
	}
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%s: %w after %v (the daemon goes on trying; mipsec ike list shows where it is)", what, ErrIKETimeout, timeout)
	case <-closed:
		return fmt.Errorf("%s: the daemon is shutting down", what)
	}
}

// newestSA is the connection's IKE SA with the highest ID, nil if none.
func newestSA(d IKEDaemon, name string) *IKESAInfo {
	var best *IKESAInfo
	for _, sa := range ikeList(d, false, false) {
		if sa.Name == name && (best == nil || sa.ID > best.ID) {
			sa := sa
			best = &sa
		}
	}
	return best
}

func (s *Server) ikeAction(action string, raw json.RawMessage, run func(d IKEDaemon, a IKEArgs) error) (any, error) {
	a, timeout, err := ikeActionArgs(raw, action != "terminate")
	if err != nil {
		return nil, err
	}
	d, err := s.ikeDaemon()
	if err != nil {
		return nil, err
	}
	what := a.Name
	if a.Child != "" {
		what += "/" + a.Child
	}
	before := newestSA(d, a.Name)
	if err := s.ikeWait(timeout, what, func() error { return run(d, a) }); err != nil {
		if errors.Is(err, ike.ErrUnknownConnection) && !strings.Contains(err.Error(), a.Name) {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return nil, err
	}
	return IKEActionInfo{Action: action, Name: a.Name, Child: a.Child, Before: before, After: newestSA(d, a.Name)}, nil
}

func (s *Server) cmdIKEInitiate(raw json.RawMessage) (any, error) {
	return s.ikeAction("initiate", raw, func(d IKEDaemon, a IKEArgs) error { return d.Initiate(a.Name, a.Child) })
}

func (s *Server) cmdIKETerminate(raw json.RawMessage) (any, error) {
	return s.ikeAction("terminate", raw, func(d IKEDaemon, a IKEArgs) error { return d.Terminate(a.Name) })
}

func (s *Server) cmdIKERekey(raw json.RawMessage) (any, error) {
	return s.ikeAction("rekey", raw, func(d IKEDaemon, a IKEArgs) error { return d.Rekey(a.Name, a.Child) })
}

// IKEStatsInfo is the IKE daemon's part of the "stats" answer (ike.Stats),
// absent without IKE connections.
type IKEStatsInfo struct {
	IKESAs   int `json:"ike_sas"`
	ChildSAs int `json:"child_sas"`
	HalfOpen int `json:"half_open"`
	// Exchanges are completed exchanges by type ("IKE_SA_INIT",
	// "IKE_AUTH", "CREATE_CHILD_SA", "INFORMATIONAL": RFC 7296's names);
	// Failures refused or failed messages and exchanges by reason.
	Exchanges   map[string]uint64 `json:"exchanges"`
	Failures    map[string]uint64 `json:"failures"`
	Rekeys      uint64            `json:"rekeys"`
	Retransmits uint64            `json:"retransmits"`
	CookiesSent uint64            `json:"cookies_sent"`
	// ESPMoves: IKE SAs moved after their peer's ESP came from a NAT's
	// new mapping (RFC 7296 §2.23).
	ESPMoves uint64 `json:"esp_moves"`
	// MOBIKEUpdates: IKE SAs moved by the initiator's
	// UPDATE_SA_ADDRESSES (RFC 4555 §3.5).
	MOBIKEUpdates uint64 `json:"mobike_updates"`
	// Relocations: IKE SAs moved with a mobile node on a Binding Update
	// or Acknowledgement with the K flag (RFC 4877 §7.4).
	Relocations uint64 `json:"relocations"`
	// Renewals: IKE SAs negotiated again from a mobile node's new care-of
	// address, without the K flag (RFC 4877 §7.4).
	Renewals uint64 `json:"renewals"`
}

// ikeStatsOf is t's IKE counters, nil without an IKE daemon.
func ikeStatsOf(t any) *IKEStatsInfo {
	d := IKEOf(t)
	if d == nil {
		return nil
	}
	st := d.Stats()
	in := &IKEStatsInfo{IKESAs: st.IKESAs, ChildSAs: st.ChildSAs, HalfOpen: st.HalfOpen,
		Exchanges: map[string]uint64{}, Failures: map[string]uint64{},
		Rekeys: st.Rekeys, Retransmits: st.Retransmits, CookiesSent: st.CookiesSent, ESPMoves: st.ESPMoves, MOBIKEUpdates: st.MOBIKEUpdates,
		Relocations: st.Relocations, Renewals: st.Renewals}
	for k, n := range st.Exchanges {
		in.Exchanges[k] = n
	}
	for k, n := range st.Failures {
		in.Failures[k] = n
	}
	return in
}

// HumanDuration is d as ike list prints it: seconds below 2 minutes
// ("95s"), minutes below 2 hours ("65m"), else hours and minutes
// ("3h59m"); negative is "0s".
func HumanDuration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
}

// timesLine is ", "-joined "installed 12s ago", "rekeying in 59m",
// "expires in 65m" for the times that are set.
func timesLine(now time.Time, since, rekey, expire time.Time, sinceWord string) string {
	var parts []string
	if !since.IsZero() {
		parts = append(parts, sinceWord+" "+HumanDuration(now.Sub(since))+" ago")
	}
	if !rekey.IsZero() {
		parts = append(parts, "rekeying in "+HumanDuration(rekey.Sub(now)))
	}
	if !expire.IsZero() {
		parts = append(parts, "expires in "+HumanDuration(expire.Sub(now)))
	}
	return strings.Join(parts, ", ")
}

// endpointString is "192.0.2.1[4500]" (swanctl's form) for "192.0.2.1:4500".
func endpointString(s string) string {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		if s == "" {
			return "%any"
		}
		return s
	}
	return fmt.Sprintf("%s[%d]", ap.Addr(), ap.Port())
}

// WriteIKESAs prints sas as swanctl --list-sas does, times relative to
// now: per IKE SA its name, ID, state, the SPIs (* marks ours), both
// ends with their identities and NAT, the suite, established and rekey
// times, then each child with its mode, SPIs, suite, times and
// selectors. No SAs: "no IKE SAs".
func WriteIKESAs(w io.Writer, sas []IKESAInfo, now time.Time) {
	if len(sas) == 0 {
		fmt.Fprintln(w, "no IKE SAs")
		return
	}
	for _, sa := range sas {
		mi, mr := "*", ""
		if !sa.Initiator {
			mi, mr = "", "*"
		}
		fmt.Fprintf(w, "%s: #%d, %s, IKEv2, %016x_i%s %016x_r%s\n", sa.Name, sa.ID, strings.ToUpper(sa.State), uint64(sa.SPIi), mi, uint64(sa.SPIr), mr)
		side := func(label, id, ep string, nat bool) {
			fmt.Fprintf(w, "  %-6s ", label)
			if id != "" {
				fmt.Fprintf(w, "'%s' @ ", id)
			}
			fmt.Fprint(w, endpointString(ep))
			if nat {
				fmt.Fprint(w, " [NAT]")
			}
			fmt.Fprintln(w)
		}
		side("local", sa.LocalID, sa.Local, sa.NATLocal)
		side("remote", sa.RemoteID, sa.Remote, sa.NATRemote)
		if sa.HomeAddress != "" {
			fmt.Fprintf(w, "  home address %s\n", sa.HomeAddress)
		}
		if len(sa.VIPs) > 0 {
			fmt.Fprintf(w, "  assigned to us %s", strings.Join(sa.VIPs, ", "))
			if sa.HomePrefix != "" {
				fmt.Fprintf(w, " (home prefix %s)", sa.HomePrefix)
			}
			fmt.Fprintln(w)
		}
		if len(sa.PeerVIPs) > 0 {
			fmt.Fprintf(w, "  assigned to the peer %s\n", strings.Join(sa.PeerVIPs, ", "))
		}
		if sa.Suite != "" {
			fmt.Fprintf(w, "  %s\n", sa.Suite)
		}
		if l := timesLine(now, sa.Established, sa.RekeyAt, time.Time{}, "established"); l != "" {
			fmt.Fprintf(w, "  %s\n", l)
		}
		for _, c := range sa.Children {
			proto := "ESP"
			if sa.Encap {
				proto = "ESP in UDP"
			}
			fmt.Fprintf(w, "  %s: #%d, %s, %s, %s SPIs: %08x_i %08x_o\n", c.Name, c.ID, strings.ToUpper(c.State), strings.ToUpper(c.Mode), proto, uint32(c.SPIIn), uint32(c.SPIOut))
			var parts []string
			if c.Suite != "" {
				parts = append(parts, c.Suite)
			}
			if l := timesLine(now, c.Installed, c.RekeyAt, c.ExpireAt, "installed"); l != "" {
				parts = append(parts, l)
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "    %s\n", strings.Join(parts, ", "))
			}
			fmt.Fprintf(w, "    local  %s\n", strings.Join(c.LocalTS, " "))
			fmt.Fprintf(w, "    remote %s\n", strings.Join(c.RemoteTS, " "))
		}
	}
}

// IKE SAs as lines of Wireshark's IKEv2 decryption table (the
// "ikev2_decryption_table" UAT file, ~/.config/wireshark/; Preferences >
// Protocols > ISAKMP), so that the IKE_AUTH and later exchanges of a
// capture decrypt. Eight comma-separated fields; the SPIs and keys are
// UAT byte fields (bare hex, empty for AEAD's absent integrity keys), the
// algorithms quoted, in the spelling of Wireshark's packet-isakmp.c
// (ike/crypto_tshark_test.go checks them against tshark):
//
//	1a2b3c4d5e6f7081,8a9b0c1d2e3f4051,<SK_ei>,<SK_er>,"AES-GCM-128 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"

// IKEWiresharkLine formats one ikev2_decryption_table line; ok is false
// when a field cannot be one (keys not in hex, an algorithm name with a
// quote or control character, no encryption key).
func IKEWiresharkLine(k IKEWiresharkKey) (string, bool) {
	for _, h := range []string{k.SKei, k.SKer, k.SKai, k.SKar} {
		if _, err := hex.DecodeString(h); err != nil {
			return "", false
		}
	}
	if k.SKei == "" || k.SKer == "" {
		return "", false
	}
	for _, n := range []string{k.Encryption, k.Integrity} {
		if n == "" || strings.ContainsAny(n, `"\`) || strings.IndexFunc(n, unicode.IsControl) >= 0 {
			return "", false
		}
	}
	return fmt.Sprintf(`%016x,%016x,%s,%s,"%s",%s,%s,"%s"`, uint64(k.SPIi), uint64(k.SPIr),
		strings.ToLower(k.SKei), strings.ToLower(k.SKer), k.Encryption, strings.ToLower(k.SKai), strings.ToLower(k.SKar), k.Integrity), true
}

// WriteIKEWireshark prints the ikev2_decryption_table lines to w and a
// note per IKE SA it had to leave out to notes.
func WriteIKEWireshark(w, notes io.Writer, keys []IKEWiresharkKey) {
	for _, k := range keys {
		line, ok := IKEWiresharkLine(k)
		if !ok {
			fmt.Fprintf(notes, "mipsec: IKE SA %016x_i %016x_r left out: its keys or algorithm names (%q, %q) do not fit the table\n",
				uint64(k.SPIi), uint64(k.SPIr), k.Encryption, k.Integrity)
			continue
		}
		fmt.Fprintln(w, line)
	}
}
