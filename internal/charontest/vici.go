//go:build linux

package charontest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strongswan/govici/vici"
)

// callTimeout bounds a vici command that does not wait for the network.
const callTimeout = 10 * time.Second

// session returns the command session, or an error when charon is not
// running.
func (c *Charon) session() (*vici.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.proc == nil || !c.proc.Running() {
		return nil, fmt.Errorf("charontest: %s: charon is not running", c.name)
	}
	return c.cmd, nil
}

// call sends one vici command and checks its success field.
func (c *Charon) call(timeout time.Duration, cmd string, in *vici.Message) (*vici.Message, error) {
	s, err := c.session()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := s.Call(ctx, cmd, in)
	if err != nil {
		return out, fmt.Errorf("charontest: %s: %s: %w", c.name, cmd, err)
	}
	return out, nil
}

// message converts t to a vici message; file lists become the files'
// contents (what swanctl sends for certs, cacerts and pubkeys).
func (t *tree) message() (*vici.Message, error) {
	m := vici.NewMessage()
	for _, it := range t.items {
		var v any
		switch {
		case it.sub != nil:
			sub, err := it.sub.message()
			if err != nil {
				return nil, err
			}
			v = sub
		case it.isFiles:
			var data []string
			for _, p := range it.files {
				b, err := os.ReadFile(p)
				if err != nil {
					return nil, fmt.Errorf("charontest: %s: %w", it.key, err)
				}
				data = append(data, string(b))
			}
			v = data
		case it.isList:
			v = it.list
		default:
			v = it.value
		}
		if err := m.Set(it.key, v); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// LoadConn loads (or replaces) conn (vici load-conn) and rewrites
// Dir/swanctl/swanctl.conf with everything loaded so far.
func (c *Charon) LoadConn(conn Conn) error {
	t, err := conn.tree()
	if err != nil {
		return err
	}
	body, err := t.message()
	if err != nil {
		return err
	}
	m := vici.NewMessage()
	if err := m.Set(conn.Name, body); err != nil {
		return err
	}
	if _, err := c.call(callTimeout, "load-conn", m); err != nil {
		return err
	}
	c.mu.Lock()
	replaced := false
	for i := range c.conns {
		if c.conns[i].Name == conn.Name {
			c.conns[i], replaced = conn, true
		}
	}
	if !replaced {
		c.conns = append(c.conns, conn)
	}
	c.mu.Unlock()
	return c.writeSwanctlConf()
}

// UnloadConn unloads the connection name (vici unload-conn).
func (c *Charon) UnloadConn(name string) error {
	m := vici.NewMessage()
	m.Set("name", name)
	if _, err := c.call(callTimeout, "unload-conn", m); err != nil {
		return err
	}
	c.mu.Lock()
	for i := range c.conns {
		if c.conns[i].Name == name {
			c.conns = append(c.conns[:i], c.conns[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	return c.writeSwanctlConf()
}

// LoadShared loads an IKE pre-shared key for the identities owners (vici
// load-shared, type IKE). The same owners replace the earlier secret.
func (c *Charon) LoadShared(owners []string, secret []byte) error {
	if len(owners) == 0 {
		return errors.New("charontest: LoadShared: no owners")
	}
	c.mu.Lock()
	idx := len(c.secrets)
	for i, s := range c.secrets {
		if strings.Join(s.owners, "\x00") == strings.Join(owners, "\x00") {
			idx = i
		}
	}
	name := fmt.Sprintf("ike-%d", idx+1)
	c.mu.Unlock()
	m := vici.NewMessage()
	m.Set("id", name)
	m.Set("type", "IKE")
	m.Set("data", string(secret))
	m.Set("owners", owners)
	if _, err := c.call(callTimeout, "load-shared", m); err != nil {
		return err
	}
	c.mu.Lock()
	s := shared{name: name, owners: append([]string(nil), owners...), secret: append([]byte(nil), secret...)}
	if idx < len(c.secrets) {
		c.secrets[idx] = s
	} else {
		c.secrets = append(c.secrets, s)
	}
	c.mu.Unlock()
	return c.writeSwanctlConf()
}

// cred is a certificate or private key loaded from a file.
type cred struct {
	path string
	key  bool
	ca   bool
}

// LoadCert loads a certificate file (PEM or DER) into charon's credential
// store (vici load-cert); charon finds it by the identity of an Auth round
// that names no Certs.
func (c *Charon) LoadCert(path string) error { return c.loadCred(cred{path: path}) }

// LoadCACert loads a trust anchor (vici load-cert with flag CA).
func (c *Charon) LoadCACert(path string) error { return c.loadCred(cred{path: path, ca: true}) }

// LoadKey loads a private key file (PEM or DER, RSA, ECDSA or Ed25519;
// vici load-key).
func (c *Charon) LoadKey(path string) error { return c.loadCred(cred{path: path, key: true}) }

func (c *Charon) loadCred(cr cred) error {
	data, err := os.ReadFile(cr.path)
	if err != nil {
		return fmt.Errorf("charontest: %s: %w", c.name, err)
	}
	m := vici.NewMessage()
	cmd, sub := "load-cert", "x509"
	if cr.key {
		cmd, sub = "load-key", "private"
		m.Set("type", "any")
	} else {
		m.Set("type", "X509")
		flag := "NONE"
		if cr.ca {
			flag, sub = "CA", "x509ca"
		}
		m.Set("flag", flag)
	}
	m.Set("data", string(data))
	if _, err := c.call(callTimeout, cmd, m); err != nil {
		return fmt.Errorf("%w (%s)", err, cr.path)
	}
	// A copy in the swanctl directory, for `swanctl --load-all` by hand.
	os.WriteFile(filepath.Join(c.cfg.Dir, "swanctl", sub, filepath.Base(cr.path)), data, 0o600)
	c.mu.Lock()
	c.creds = append(c.creds, cr)
	c.mu.Unlock()
	return nil
}

func (c *Charon) writeSwanctlConf() error {
	c.mu.Lock()
	conf, err := swanctlConf(c.conns, c.secrets)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.cfg.Dir, "swanctl", "swanctl.conf"), []byte(conf), 0o600)
}

// Initiate starts the CHILD_SA child of connection ike (vici initiate;
// either may be empty, not both) and waits up to timeout for it to be
// established; timeout <= 0 returns at once (charon goes on in the
// background: watch Events).
func (c *Charon) Initiate(child, ike string, timeout time.Duration) error {
	m := vici.NewMessage()
	m.Set("child", child)
	m.Set("ike", ike)
	ms := -1
	if timeout > 0 {
		ms = int(timeout / time.Millisecond)
	}
	m.Set("timeout", strconv.Itoa(ms))
	m.Set("init-limits", "no")
	_, err := c.call(max(timeout, 0)+callTimeout, "initiate", m)
	return err
}

// Terminate deletes the IKE SAs of connection ike and their CHILD_SAs
// (vici terminate: INFORMATIONAL with a Delete payload, RFC 7296 §1.4.1),
// waiting up to 10 s for the peer's answer.
func (c *Charon) Terminate(ike string) error { return c.terminate("ike", ike) }

// TerminateChild deletes the CHILD_SAs named child.
func (c *Charon) TerminateChild(child string) error { return c.terminate("child", child) }

func (c *Charon) terminate(key, name string) error {
	m := vici.NewMessage()
	m.Set(key, name)
	m.Set("timeout", "10000")
	_, err := c.call(20*time.Second, "terminate", m)
	return err
}

// RekeyChild starts rekeying the CHILD_SAs named child (CREATE_CHILD_SA,
// RFC 7296 §2.8); it returns when charon has queued it, so wait for the
// ChildRekey event. No matching SA is an error.
func (c *Charon) RekeyChild(child string) error { return c.rekey("child", child, false) }

// RekeyIKE starts rekeying the IKE SAs of connection ike (RFC 7296
// §2.18); wait for the IKERekey event.
func (c *Charon) RekeyIKE(ike string) error { return c.rekey("ike", ike, false) }

// Reauth starts reauthenticating the IKE SAs of connection ike (a new
// IKE SA, RFC 7296 §2.8.3).
func (c *Charon) Reauth(ike string) error { return c.rekey("ike", ike, true) }

func (c *Charon) rekey(key, name string, reauth bool) error {
	m := vici.NewMessage()
	m.Set(key, name)
	if reauth {
		m.Set("reauth", "yes")
	}
	out, err := c.call(callTimeout, "rekey", m)
	if err != nil {
		return err
	}
	if n, _ := out.Get("matches").(string); n == "0" {
		return fmt.Errorf("charontest: %s: rekey %s %s: no SA matched", c.name, key, name)
	}
	return nil
}

// ListSAs lists the IKE SAs and their CHILD_SAs (vici list-sas).
//
// govici's CallStreaming hands the list-sa events and the final reply
// over two channels and may see the reply first (dropping SAs), so the
// command session is subscribed to list-sa itself: its reader dispatches
// the events before it reads the reply, and they are all in c.listed
// when Call returns.
func (c *Charon) ListSAs() ([]IKESA, error) {
	c.listMu.Lock()
	defer c.listMu.Unlock()
	c.mu.Lock()
	listed := c.listed
	c.mu.Unlock()
	drain(listed)
	if _, err := c.call(callTimeout, "list-sas", nil); err != nil {
		return nil, err
	}
	var sas []IKESA
	for _, ev := range drain(listed) {
		if ev.Name != "list-sa" || ev.Message == nil {
			continue
		}
		for _, name := range ev.Message.Keys() {
			sub, ok := ev.Message.Get(name).(*vici.Message)
			if !ok {
				continue
			}
			sa, err := parseIKESA(name, sub)
			if err != nil {
				return nil, fmt.Errorf("charontest: %s: list-sas: %w", c.name, err)
			}
			sas = append(sas, sa)
		}
	}
	return sas, nil
}

// drain returns what ch holds now.
func drain(ch <-chan vici.Event) []vici.Event {
	var evs []vici.Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// IKESA returns the one IKE SA of connection name; several or none is an
// error.
func (c *Charon) IKESA(name string) (IKESA, error) {
	sas, err := c.ListSAs()
	if err != nil {
		return IKESA{}, err
	}
	var found []IKESA
	for _, sa := range sas {
		if sa.Name == name {
			found = append(found, sa)
		}
	}
	if len(found) != 1 {
		return IKESA{}, fmt.Errorf("charontest: %s: %d IKE SAs of %s (want 1)", c.name, len(found), name)
	}
	return found[0], nil
}

// ---- parsed list-sas ----------------------------------------------------------

// IKESA is one IKE SA as list-sas and the events report it.
type IKESA struct {
	Name                     string // connection name
	UniqueID                 uint32
	Version                  int
	State                    string // CREATED, CONNECTING, ESTABLISHED, REKEYING, REKEYED, DELETING, ...
	Local, Remote            netip.AddrPort
	LocalID, RemoteID        string
	Initiator                bool // this side initiated the SA
	InitiatorSPI             uint64
	ResponderSPI             uint64
	NATLocal, NATRemote      bool // NAT detected in front of this side / the peer
	NATFake, NATAny          bool // NATFake: faked by encap = yes
	Encr                     string
	EncrKeySize              int
	Integ                    string // empty for AEAD
	IntegKeySize             int
	PRF                      string
	DH                       string
	Established              time.Duration // since
	RekeyIn, ReauthIn        time.Duration
	TasksQueued, TasksActive []string
	Children                 []ChildSA
}

// ChildSA is one CHILD_SA of an IKESA.
type ChildSA struct {
	Name                 string
	UniqueID, ReqID      uint32
	State                string // INSTALLED, REKEYING, REKEYED, DELETING, ...
	Mode                 string // TUNNEL, TRANSPORT
	Protocol             string // ESP, AH
	Encap                bool   // ESP in UDP
	SPIIn, SPIOut        uint32
	Encr                 string
	EncrKeySize          int
	Integ                string
	IntegKeySize         int
	DH                   string // PFS group of the last CREATE_CHILD_SA
	ESN                  bool
	BytesIn, PacketsIn   uint64
	BytesOut, PacketsOut uint64
	RekeyIn, LifeIn      time.Duration
	Installed            time.Duration // since
	LocalTS, RemoteTS    []string      // e.g. "198.51.100.1/32", "10.0.0.0/8[tcp/80]"
}

// Child returns the CHILD_SAs of sa named name.
func (sa IKESA) Child(name string) []ChildSA {
	var cs []ChildSA
	for _, ch := range sa.Children {
		if ch.Name == name {
			cs = append(cs, ch)
		}
	}
	return cs
}

// Installed returns the CHILD_SAs of sa named name in state INSTALLED
// (after a rekey charon keeps the old one, DELETED, for the
// delete_rekeyed_delay of strongswan.conf, 5 s by default, so that
// packets in flight on it are still accepted).
func (sa IKESA) Installed(name string) []ChildSA {
	var cs []ChildSA
	for _, ch := range sa.Children {
		if ch.Name == name && ch.State == "INSTALLED" {
			cs = append(cs, ch)
		}
	}
	return cs
}

// fields reads a vici section, collecting the first malformed value.
type fields struct {
	m   *vici.Message
	err error
}

func (f *fields) str(k string) string { s, _ := f.m.Get(k).(string); return s }

func (f *fields) list(k string) []string { l, _ := f.m.Get(k).([]string); return l }

func (f *fields) yes(k string) bool { return f.str(k) == "yes" }

func (f *fields) uint(k string, bits int, base int) uint64 {
	s := f.str(k)
	if s == "" {
		return 0
	}
	v, err := strconv.ParseUint(s, base, bits)
	if err != nil && f.err == nil {
		f.err = fmt.Errorf("%s = %q: %w", k, s, err)
	}
	return v
}

func (f *fields) int(k string) int { return int(f.uint(k, 31, 10)) }

func (f *fields) secs(k string) time.Duration { return time.Duration(f.uint(k, 32, 10)) * time.Second }

func (f *fields) addrPort(host, port string) netip.AddrPort {
	h := f.str(host)
	if h == "" {
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(h)
	if err != nil && f.err == nil {
		f.err = fmt.Errorf("%s = %q: %w", host, h, err)
	}
	return netip.AddrPortFrom(a, uint16(f.uint(port, 16, 10)))
}

func (f *fields) sub(k string) *vici.Message { m, _ := f.m.Get(k).(*vici.Message); return m }

func parseIKESA(name string, m *vici.Message) (IKESA, error) {
	f := &fields{m: m}
	sa := IKESA{
		Name:         name,
		UniqueID:     uint32(f.uint("uniqueid", 32, 10)),
		Version:      f.int("version"),
		State:        f.str("state"),
		Local:        f.addrPort("local-host", "local-port"),
		Remote:       f.addrPort("remote-host", "remote-port"),
		LocalID:      f.str("local-id"),
		RemoteID:     f.str("remote-id"),
		Initiator:    f.yes("initiator"),
		InitiatorSPI: f.uint("initiator-spi", 64, 16),
		ResponderSPI: f.uint("responder-spi", 64, 16),
		NATLocal:     f.yes("nat-local"),
		NATRemote:    f.yes("nat-remote"),
		NATFake:      f.yes("nat-fake"),
		NATAny:       f.yes("nat-any"),
		Encr:         f.str("encr-alg"),
		EncrKeySize:  f.int("encr-keysize"),
		Integ:        f.str("integ-alg"),
		IntegKeySize: f.int("integ-keysize"),
		PRF:          f.str("prf-alg"),
		DH:           f.str("dh-group"),
		Established:  f.secs("established"),
		RekeyIn:      f.secs("rekey-time"),
		ReauthIn:     f.secs("reauth-time"),
		TasksQueued:  f.list("tasks-queued"),
		TasksActive:  f.list("tasks-active"),
	}
	if f.err != nil {
		return sa, fmt.Errorf("IKE SA %s: %w", name, f.err)
	}
	if cs := f.sub("child-sas"); cs != nil {
		for _, k := range cs.Keys() {
			cm, ok := cs.Get(k).(*vici.Message)
			if !ok {
				continue
			}
			ch, err := parseChildSA(cm)
			if err != nil {
				return sa, fmt.Errorf("IKE SA %s: CHILD_SA %s: %w", name, k, err)
			}
			sa.Children = append(sa.Children, ch)
		}
	}
	return sa, nil
}

func parseChildSA(m *vici.Message) (ChildSA, error) {
	f := &fields{m: m}
	ch := ChildSA{
		Name:         f.str("name"),
		UniqueID:     uint32(f.uint("uniqueid", 32, 10)),
		ReqID:        uint32(f.uint("reqid", 32, 10)),
		State:        f.str("state"),
		Mode:         f.str("mode"),
		Protocol:     f.str("protocol"),
		Encap:        f.yes("encap"),
		SPIIn:        uint32(f.uint("spi-in", 32, 16)),
		SPIOut:       uint32(f.uint("spi-out", 32, 16)),
		Encr:         f.str("encr-alg"),
		EncrKeySize:  f.int("encr-keysize"),
		Integ:        f.str("integ-alg"),
		IntegKeySize: f.int("integ-keysize"),
		DH:           f.str("dh-group"),
		ESN:          f.str("esn") == "1",
		BytesIn:      f.uint("bytes-in", 64, 10),
		PacketsIn:    f.uint("packets-in", 64, 10),
		BytesOut:     f.uint("bytes-out", 64, 10),
		PacketsOut:   f.uint("packets-out", 64, 10),
		RekeyIn:      f.secs("rekey-time"),
		LifeIn:       f.secs("life-time"),
		Installed:    f.secs("install-time"),
		LocalTS:      f.list("local-ts"),
		RemoteTS:     f.list("remote-ts"),
	}
	return ch, f.err
}

// ---- events -------------------------------------------------------------------

// EventKind is the name of a vici event.
type EventKind string

// The events the harness subscribes to.
const (
	IKEUpDown   EventKind = "ike-updown"
	ChildUpDown EventKind = "child-updown"
	IKERekey    EventKind = "ike-rekey"
	ChildRekey  EventKind = "child-rekey"
)

var eventNames = []string{string(IKEUpDown), string(ChildUpDown), string(IKERekey), string(ChildRekey)}

// Event is one SA event of charon.
type Event struct {
	Kind EventKind
	Time time.Time
	// Up: an updown event for an SA that came up (false: went down).
	Up bool
	// IKE is the IKE SA the event is about; for IKERekey the new one.
	IKE IKESA
	// OldIKE is the rekeyed IKE SA (IKERekey only).
	OldIKE IKESA
	// Child is the CHILD_SA of ChildUpDown, the new one of ChildRekey.
	Child ChildSA
	// OldChild is the rekeyed CHILD_SA (ChildRekey only).
	OldChild ChildSA
	// Err is set when the event's message could not be parsed.
	Err error
}

func (e Event) String() string {
	switch e.Kind {
	case IKEUpDown:
		return fmt.Sprintf("%s %s up=%v %s", e.Kind, e.IKE.Name, e.Up, e.IKE.State)
	case ChildUpDown:
		return fmt.Sprintf("%s %s/%s up=%v %s %08x/%08x", e.Kind, e.IKE.Name, e.Child.Name, e.Up, e.Child.State, e.Child.SPIIn, e.Child.SPIOut)
	case IKERekey:
		return fmt.Sprintf("%s %s %016x -> %016x", e.Kind, e.IKE.Name, e.OldIKE.InitiatorSPI, e.IKE.InitiatorSPI)
	case ChildRekey:
		return fmt.Sprintf("%s %s/%s %08x -> %08x", e.Kind, e.IKE.Name, e.Child.Name, e.OldChild.SPIIn, e.Child.SPIIn)
	}
	return string(e.Kind)
}

// parseEvent turns a vici event into an Event (vici README, "Server-issued
// events").
func parseEvent(ev vici.Event) Event {
	e := Event{Kind: EventKind(ev.Name), Time: ev.Timestamp}
	m := ev.Message
	if m == nil {
		e.Err = errors.New("no message")
		return e
	}
	up, _ := m.Get("up").(string)
	e.Up = up == "yes"
	for _, name := range m.Keys() {
		sub, ok := m.Get(name).(*vici.Message)
		if !ok {
			continue
		}
		switch e.Kind {
		case IKERekey:
			oldM, _ := sub.Get("old").(*vici.Message)
			newM, _ := sub.Get("new").(*vici.Message)
			if oldM == nil || newM == nil {
				e.Err = errors.New("ike-rekey without old and new")
				return e
			}
			if e.OldIKE, e.Err = parseIKESA(name, oldM); e.Err == nil {
				e.IKE, e.Err = parseIKESA(name, newM)
			}
		case ChildRekey:
			// The IKE SA with child-sas {<name>-<id> {old {...} new {...}}}.
			cs, _ := sub.Get("child-sas").(*vici.Message)
			rest := vici.NewMessage()
			for _, k := range sub.Keys() {
				if k != "child-sas" {
					rest.Set(k, sub.Get(k))
				}
			}
			if e.IKE, e.Err = parseIKESA(name, rest); e.Err != nil {
				return e
			}
			if cs == nil || len(cs.Keys()) == 0 {
				e.Err = errors.New("child-rekey without child-sas")
				return e
			}
			c, _ := cs.Get(cs.Keys()[0]).(*vici.Message)
			var oldM, newM *vici.Message
			if c != nil {
				oldM, _ = c.Get("old").(*vici.Message)
				newM, _ = c.Get("new").(*vici.Message)
			}
			if oldM == nil || newM == nil {
				e.Err = errors.New("child-rekey without old and new")
				return e
			}
			if e.OldChild, e.Err = parseChildSA(oldM); e.Err == nil {
				e.Child, e.Err = parseChildSA(newM)
			}
		default:
			e.IKE, e.Err = parseIKESA(name, sub)
			if e.Kind == ChildUpDown && len(e.IKE.Children) > 0 {
				e.Child = e.IKE.Children[0]
			}
		}
		return e
	}
	e.Err = errors.New("no SA section")
	return e
}

// forward parses the event session's events into the hub until the
// session closes.
func (c *Charon) forward(ch <-chan vici.Event, done chan<- struct{}) {
	defer close(done)
	for ev := range ch {
		c.hub.publish(parseEvent(ev))
	}
}

// Events returns a channel that gets every SA event from now on, across
// Restart, until the test's cleanup closes it. It buffers 1024 events;
// past that, events are dropped (Dropped counts them).
func (c *Charon) Events() <-chan Event { return c.hub.subscribe() }

// Dropped is the number of events dropped for full Events channels.
func (c *Charon) Dropped() int { return c.hub.droppedCount() }

// WaitEvent reads ch until an event for which match is true arrives and
// returns it; the events before it are consumed. It fails after timeout or
// when ch closes.
func WaitEvent(ch <-chan Event, timeout time.Duration, match func(Event) bool) (Event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var seen []string
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return Event{}, fmt.Errorf("charontest: event channel closed; saw %v", seen)
			}
			if match(e) {
				return e, nil
			}
			seen = append(seen, e.String())
		case <-t.C:
			return Event{}, fmt.Errorf("charontest: no matching event in %v; saw %v", timeout, seen)
		}
	}
}

// hub fans events out to the Events channels.
type hub struct {
	mu      sync.Mutex
	subs    []chan Event
	closed  bool
	dropped int
}

func (h *hub) subscribe() <-chan Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan Event, 1024)
	if h.closed {
		close(ch)
		return ch
	}
	h.subs = append(h.subs, ch)
	return ch
}

func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for _, ch := range h.subs {
		select {
		case ch <- e:
		default:
			h.dropped++
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		for _, ch := range h.subs {
			close(ch)
		}
	}
}

func (h *hub) droppedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}
