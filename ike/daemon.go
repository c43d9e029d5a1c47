package ike

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Daemon runs the IKE SAs of a set of connections: it answers and starts
// exchanges, installs Child SAs through its Kernel and keeps them rekeyed.
// All state is owned by one goroutine; the methods below hand it work and
// wait for the answer where they return one.
//
// Loop-owned fields (everything below mu-less "loop state") are touched by
// the daemon's goroutine only; Kernel and Transport are called from it
// only.
type Daemon struct {
	cfg   Config
	log   *zap.Logger
	rand  io.Reader
	now   func() time.Time
	conns []*connState

	in    chan datagram
	calls chan func()
	quit  chan struct{}
	done  chan struct{}

	startOnce, closeOnce sync.Once
	running              atomic.Bool
	queueFull            atomic.Uint64

	// loop state
	sas      map[uint64]*ikeSA  // by our own IKE SPI
	halfOpen map[initKey]*ikeSA // responder SAs before IKE_AUTH, by SPIi and source
	// initIndex holds every responder SA by SPIi and source, to tell a
	// retransmitted IKE_SA_INIT from a new one (§2.1).
	initIndex             map[initKey]*ikeSA
	nextSAID, nextChildID uint32
	stats                 Stats
	cookies               cookieJar
	perSource             rateTable
	logLimit              bucket // refusals an attacker can cause
	timer                 *time.Timer
	// timers are one-shot jobs (after); those with onClose also run
	// at Close, so nothing they remove stays in the kernel.
	timers []*timerJob
}

type timerJob struct {
	at      time.Time
	onClose bool
	fn      func()
}

// after runs fn on the loop once dt has passed.
func (d *Daemon) after(dt time.Duration, onClose bool, fn func()) {
	d.timers = append(d.timers, &timerJob{at: d.now().Add(dt), onClose: onClose, fn: fn})
}

// ErrUnknownConnection: Initiate, Terminate or Rekey named no configured
// connection or child.
var ErrUnknownConnection = errors.New("no such connection")

// ErrNotRunning: the daemon was not started or is closed.
var ErrNotRunning = errors.New("ike: the daemon is not running")

// queueLen bounds the datagrams waiting for the loop; callLimit bounds how
// long a method waits for the loop to take its call.
const queueLen = 1024

type datagram struct {
	b             []byte
	local, remote netip.AddrPort
}

// connState is one configured connection as the loop runs it.
type connState struct {
	cfg Connection
	// leases are the pool's addresses assigned by identity (cp.go).
	leases *leases
	// localPort and remotePort are the configured IKE ports (500 when 0).
	localPort, remotePort uint16
	// retries counts failed establishments since the last success;
	// retryAt is when a StartStart connection is initiated again (zero:
	// not scheduled).
	retries int
	retryAt time.Time
	// lastAcquire rate-limits StartTrap initiations.
	lastAcquire time.Time
	// lastFailure is the reason of the last failed setup, logged once.
	lastFailure string
	// from is the local address Renew asked to initiate from (zero:
	// LocalAddrs, or the kernel's choice).
	from netip.Addr
}

// failureKeys is the fixed key set of Stats.Failures.
var failureKeys = []string{
	"malformed", "auth_failed", "no_proposal", "ts_unacceptable", "invalid_spi",
	"message_id", "timeout", "queue_full", "cookie", "invalid_ke", "integrity",
	"half_open_full", "rate_limit", "unknown_peer", "kernel", "fragment", "internal",
	"peer_auth_failed", "pad",
}

// exchangeKeys is the fixed key set of Stats.Exchanges.
var exchangeKeys = []string{"IKE_SA_INIT", "IKE_AUTH", "CREATE_CHILD_SA", "INFORMATIONAL"}

// New checks cfg and returns a daemon that is not yet running. Errors name
// the connection (and child) at fault.
func New(cfg Config) (*Daemon, error) {
	if cfg.Kernel == nil {
		return nil, errors.New("ike: Config.Kernel is missing")
	}
	if cfg.Transport == nil {
		return nil, errors.New("ike: Config.Transport is missing")
	}
	if cfg.CookieThreshold < 0 || cfg.MaxHalfOpen < 0 || cfg.Retransmit < 0 || cfg.Retransmits < 0 || cfg.Keepalive < 0 || cfg.RekeyGrace < 0 {
		return nil, errors.New("ike: negative CookieThreshold, MaxHalfOpen, Retransmit, Retransmits, Keepalive or RekeyGrace")
	}
	if cfg.InitRate < 0 || cfg.InitBurst < 0 {
		return nil, errors.New("ike: negative InitRate or InitBurst")
	}
	if cfg.InitRate == 0 {
		cfg.InitRate = DefaultInitRate
	}
	if cfg.InitBurst == 0 {
		cfg.InitBurst = DefaultInitBurst
	}
	if cfg.CookieThreshold == 0 {
		cfg.CookieThreshold = DefaultCookieThreshold
	}
	if cfg.MaxHalfOpen == 0 {
		cfg.MaxHalfOpen = DefaultMaxHalfOpen
	}
	if cfg.Retransmit == 0 {
		cfg.Retransmit = DefaultRetransmit
	}
	if cfg.Retransmits == 0 {
		cfg.Retransmits = DefaultRetransmits
	}
	d := &Daemon{
		cfg:       cfg,
		log:       cfg.Logger,
		rand:      cfg.Rand,
		now:       cfg.Now,
		in:        make(chan datagram, queueLen),
		calls:     make(chan func()),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		sas:       make(map[uint64]*ikeSA),
		halfOpen:  make(map[initKey]*ikeSA),
		initIndex: make(map[initKey]*ikeSA),
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	if d.rand == nil {
		d.rand = rand.Reader
	}
	if d.now == nil {
		d.now = time.Now
	}
	names := map[string]bool{}
	for i := range cfg.Connections {
		c, err := checkConnection(cfg.Connections[i])
		if err != nil {
			return nil, err
		}
		if names[c.cfg.Name] {
			return nil, fmt.Errorf("ike: connection %q: defined twice", c.cfg.Name)
		}
		names[c.cfg.Name] = true
		d.conns = append(d.conns, c)
	}
	d.stats.Exchanges = map[string]uint64{}
	d.stats.Failures = map[string]uint64{}
	for _, k := range exchangeKeys {
		d.stats.Exchanges[k] = 0
	}
	for _, k := range failureKeys {
		d.stats.Failures[k] = 0
	}
	d.logLimit = bucket{rate: 5, burst: 10}
	d.perSource = rateTable{rate: float64(cfg.InitRate), burst: float64(cfg.InitBurst), max: perSourceMax, m: map[netip.Addr]*bucket{}}
	if err := d.cookies.init(d.rand, d.now()); err != nil {
		return nil, fmt.Errorf("ike: cookie secret: %w", err)
	}
	return d, nil
}

// checkConnection validates one connection and copies what the daemon
// keeps (the PSKs are its own copies).
func checkConnection(c Connection) (*connState, error) {
	if c.Name == "" {
		return nil, errors.New("ike: a connection has no name")
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("ike: connection %q: %s", c.Name, fmt.Sprintf(format, args...))
	}
	if len(c.RemoteAddrs) == 0 {
		return nil, bad("no remote address")
	}
	if len(c.Proposals) == 0 {
		return nil, bad("no IKE proposals")
	}
	for i, p := range c.Proposals {
		if err := checkProposal(p, ProtoIKE); err != nil {
			return nil, bad("IKE proposal %d (%s): %v", i+1, FormatProposal(p), err)
		}
	}
	switch c.Local.Method {
	case AuthPSK:
		if len(c.Local.PSK) == 0 {
			return nil, bad("local auth psk: the PSK is empty")
		}
	case AuthPubkey:
		if err := checkLocalPubkey(c.Local); err != nil {
			return nil, bad("local auth pubkey: %v", err)
		}
	default:
		return nil, bad("local auth method %q: want psk or pubkey", c.Local.Method)
	}
	switch c.Remote.Method {
	case AuthPSK:
		if len(c.Remote.PSK) == 0 {
			return nil, bad("remote auth psk: the PSK is empty")
		}
	case AuthPubkey:
		if err := checkRemotePubkey(c.Remote); err != nil {
			return nil, bad("remote auth pubkey: %v", err)
		}
	default:
		return nil, bad("remote auth method %q: want psk or pubkey", c.Remote.Method)
	}
	if err := checkPAD(c.Remote.PAD); err != nil {
		return nil, bad("remote: %v", err)
	}
	for _, p := range c.Pool {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return nil, bad("pool: invalid prefix %v", p)
		}
	}
	if c.DPDDelay < 0 || c.RekeyTime < 0 || c.KeyingTries < 0 {
		return nil, bad("negative dpd delay, rekey time or keying tries")
	}
	children := map[string]bool{}
	for _, ch := range c.Children {
		if ch.Name == "" {
			return nil, bad("a child has no name")
		}
		if children[ch.Name] {
			return nil, bad("child %q defined twice", ch.Name)
		}
		children[ch.Name] = true
		if len(ch.LocalTS) == 0 || len(ch.RemoteTS) == 0 {
			return nil, bad("child %q: no local or remote traffic selectors", ch.Name)
		}
		if len(ch.Proposals) == 0 {
			return nil, bad("child %q: no ESP proposals", ch.Name)
		}
		for i, p := range ch.Proposals {
			if err := checkProposal(p, ProtoESP); err != nil {
				return nil, bad("child %q: ESP proposal %d (%s): %v", ch.Name, i+1, FormatProposal(p), err)
			}
		}
		if ch.RekeyTime < 0 || ch.LifeTime < 0 || ch.ReplayWindow < 0 {
			return nil, bad("child %q: negative rekey time, life time or replay window", ch.Name)
		}
		if ch.LifeTime != 0 && ch.RekeyTime != 0 && ch.LifeTime < ch.RekeyTime {
			return nil, bad("child %q: life time %v shorter than rekey time %v", ch.Name, ch.LifeTime, ch.RekeyTime)
		}
	}
	cs := &connState{cfg: c, localPort: c.LocalPort, remotePort: c.RemotePort}
	if cs.localPort == 0 {
		cs.localPort = portIKE
	}
	if cs.remotePort == 0 {
		cs.remotePort = portIKE
	}
	cs.cfg.Local.PSK = bytes.Clone(c.Local.PSK)
	cs.cfg.Remote.PSK = bytes.Clone(c.Remote.PSK)
	cs.cfg.LocalAddrs = append([]netip.Addr(nil), c.LocalAddrs...)
	cs.cfg.RemoteAddrs = append([]netip.Prefix(nil), c.RemoteAddrs...)
	cs.cfg.Children = append([]Child(nil), c.Children...)
	return cs, nil
}

// checkProposal checks a configured proposal: of protocol proto, and its
// most preferred transforms make a suite that is implemented (the
// proposal parser refuses unknown algorithms, so the others do too).
func checkProposal(p Proposal, proto ProtocolID) error {
	if p.Protocol != proto {
		return fmt.Errorf("a %v proposal where %v is wanted", p.Protocol, proto)
	}
	first, err := SelectProposal([]Proposal{p}, []Proposal{p})
	if err != nil {
		return err
	}
	if proto == ProtoIKE {
		_, err = IKESuiteOf(first)
	} else {
		_, err = ESPSuiteOf(first)
	}
	return err
}

// IKE ports (RFC 7296 §2.11, §2.23).
const (
	portIKE  = 500
	portNATT = 4500
)

// Start starts the daemon's goroutine and the children whose start action
// is StartStart.
func (d *Daemon) Start() error {
	started := false
	d.startOnce.Do(func() {
		started = true
		d.running.Store(true)
		go d.loop()
	})
	if !started {
		return errors.New("ike: Start called twice")
	}
	return d.call(func() error {
		now := d.now()
		for _, c := range d.conns {
			if c.startStart() {
				c.retryAt = now // the first tick initiates
			}
		}
		return nil
	})
}

// Close deletes every IKE SA (an INFORMATIONAL Delete, best effort, not
// waiting for retransmissions), removes their children through Kernel and
// stops the daemon.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		if !d.running.Load() {
			d.running.Store(false)
			return
		}
		_ = d.call(func() error {
			d.deleteAll()
			return nil
		})
		d.running.Store(false)
		close(d.quit)
		<-d.done
	})
	return nil
}

// Receive hands the daemon one IKE message (without the non-ESP marker)
// that arrived on local from remote. It copies msg and does not block: a
// full queue is a counted drop (Stats.Failures["queue_full"]). local must
// be the address and port the datagram was sent to (NAT detection
// compares it with the peer's hash, §2.23); an invalid or unspecified
// address (a socket that cannot tell) is taken as unknown, with the
// connection's LocalAddrs in its place.
func (d *Daemon) Receive(msg []byte, local, remote netip.AddrPort) {
	if !d.running.Load() || len(msg) > MaxMessageLen {
		return
	}
	dg := datagram{b: bytes.Clone(msg), local: local, remote: remote}
	select {
	case d.in <- dg:
	default:
		d.queueFull.Add(1)
	}
}

// Initiate starts the named child of connection conn (child "": every
// child), establishing the IKE SA first if there is none: the first
// child comes with IKE_AUTH, the others with CREATE_CHILD_SA (RFC 7296
// §1.3.1). It returns once they are up or failed (the first error).
func (d *Daemon) Initiate(conn, child string) error {
	var names []string
	var wait chan error
	err := d.call(func() error {
		c := d.conn(conn)
		if c == nil {
			return fmt.Errorf("%w: %q", ErrUnknownConnection, conn)
		}
		if child == "" {
			if len(c.cfg.Children) == 0 {
				return fmt.Errorf("ike: connection %q has no children", conn)
			}
			for _, o := range c.cfg.Children {
				names = append(names, o.Name)
			}
		} else if c.child(child) == nil {
			return fmt.Errorf("%w: %q/%q", ErrUnknownConnection, conn, child)
		} else {
			names = []string{child}
		}
		sa := d.activeSA(c)
		if sa == nil {
			var err error
			if sa, err = d.initiate(c, c.child(names[0])); err != nil {
				return err
			}
			names = names[1:] // it comes (or fails) with IKE_AUTH
		}
		if sa.state != stateEstablished {
			wait = make(chan error, 1)
			sa.waiters = append(sa.waiters, wait)
		}
		return nil
	})
	if err == nil && wait != nil {
		select {
		case err = <-wait:
		case <-d.done:
			return ErrNotRunning
		}
	}
	if len(names) > 0 {
		if cerr := d.initiateChildren(conn, names); err == nil {
			err = cerr
		}
	}
	return err
}

// startChildren waits for the connection's IKE SA being set up and
// brings up names on it (StartStart children beyond the first).
func (d *Daemon) startChildren(conn string, names []string) {
	var wait chan error
	err := d.call(func() error {
		sa := d.activeSA(d.conn(conn))
		if sa == nil {
			return errors.New("ike: the IKE SA failed")
		}
		if sa.state != stateEstablished {
			wait = make(chan error, 1)
			sa.waiters = append(sa.waiters, wait)
		}
		return nil
	})
	if err == nil && wait != nil {
		select {
		case <-wait: // a failed first child leaves the IKE SA up
		case <-d.done:
			return
		}
	}
	if err == nil {
		err = d.initiateChildren(conn, names)
	}
	if err != nil && !errors.Is(err, ErrNotRunning) {
		d.log.Warn("starting children failed", zap.String("conn", conn), zap.Error(err))
	}
}

// initiateChildren brings up those of names that the connection's
// established IKE SA does not have, each with CREATE_CHILD_SA, and waits.
func (d *Daemon) initiateChildren(conn string, names []string) error {
	var waits []chan error
	err := d.call(func() error {
		c := d.conn(conn)
		sa := d.activeSA(c)
		if sa == nil || sa.state != stateEstablished {
			return fmt.Errorf("ike: %s: no IKE SA established", conn)
		}
		for _, n := range names {
			if sa.hasChild(n) {
				continue
			}
			w := make(chan error, 1)
			if err := d.createChild(sa, c.child(n), nil, w); err != nil {
				return err
			}
			waits = append(waits, w)
		}
		return nil
	})
	for _, w := range waits {
		select {
		case e := <-w:
			if err == nil {
				err = e
			}
		case <-d.done:
			return ErrNotRunning
		}
	}
	return err
}

// Terminate deletes the IKE SA of conn and its children, waiting for the
// peer's answer to the Delete or for its retransmissions to run out.
func (d *Daemon) Terminate(conn string) error {
	var waits []chan error
	err := d.call(func() error {
		c := d.conn(conn)
		if c == nil {
			return fmt.Errorf("%w: %q", ErrUnknownConnection, conn)
		}
		c.retryAt = time.Time{}
		for _, sa := range d.sas {
			if sa.conn != c || sa.state == stateDead {
				continue
			}
			w := make(chan error, 1)
			if sa.state != stateEstablished {
				d.removeSA(sa, errors.New("ike: terminated"))
				w <- nil
			} else {
				sa.deleteWaiters = append(sa.deleteWaiters, w)
				d.deleteIKESA(sa)
			}
			waits = append(waits, w)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-d.done:
			return ErrNotRunning
		}
	}
	return nil
}

// Rekey rekeys child of conn (RFC 7296 §1.3.3), or with child "" the IKE
// SA itself (§1.3.2), on the connection's established IKE SA, and waits
// for the outcome.
func (d *Daemon) Rekey(conn, child string) error {
	w := make(chan error, 1)
	err := d.call(func() error {
		c := d.conn(conn)
		if c == nil || (child != "" && c.child(child) == nil) {
			return fmt.Errorf("%w: %q/%q", ErrUnknownConnection, conn, child)
		}
		sa := d.activeSA(c)
		if sa == nil || sa.state != stateEstablished {
			return fmt.Errorf("ike: rekey %s: no IKE SA established", conn)
		}
		if child == "" {
			return d.rekeyIKE(sa, w)
		}
		for _, ch := range sa.children {
			if ch.name == child && ch.successor == nil && !ch.gone && ch.state != childDeleting {
				return d.rekeyChild(sa, ch, w)
			}
		}
		return fmt.Errorf("ike: rekey %s/%s: the child is not up", conn, child)
	})
	if err != nil {
		return err
	}
	select {
	case err = <-w:
	case <-d.done:
		err = ErrNotRunning
	}
	return err
}

// Expired is Kernel's lifetime event for the SA with this SPI (either SA
// of a child): soft starts a rekey of its child (RFC 7296 §2.8), hard
// deletes the child. The kernel's soft lifetime (Child.RekeyTime, set in
// ChildSA.Lifetime) is the only trigger of a child rekey: ike keeps no
// timer of its own, and a child already rekeying or replaced is left
// alone, so the second SA's event does nothing.
func (d *Daemon) Expired(inbound bool, spi uint32, hard bool) {
	d.post(func() {
		sa, ch := d.findChild(inbound, spi)
		if ch == nil {
			return
		}
		fields := []zap.Field{zap.String("conn", sa.conn.cfg.Name), zap.String("child", ch.name), zap.Uint32("spi", spi)}
		if !hard {
			if ch.state != childInstalled || ch.replaced || ch.rekey != nil || ch.peerNew != nil || ch.successor != nil {
				return
			}
			d.log.Info("child SA soft lifetime reached: rekeying", fields...)
			if err := d.rekeyChild(sa, ch, nil); err != nil {
				d.log.Warn("child SA rekey not started", append(fields, zap.Error(err))...)
			}
			return
		}
		d.log.Info("child SA hard lifetime reached: deleting", fields...)
		if ch.replaced || ch.state == childDeleting {
			d.dropChild(sa, ch)
			return
		}
		d.deleteChild(sa, ch)
	})
}

// Acquire is Kernel's report that traffic matched the policies of a child
// with StartTrap and found no SA: the child is initiated (at most once per
// acquireInterval per connection).
func (d *Daemon) Acquire(policyName string) {
	d.post(func() {
		for _, c := range d.conns {
			for i := range c.cfg.Children {
				ch := &c.cfg.Children[i]
				if policyNameOf(c.cfg.Name, ch.Name) != policyName || ch.Start != StartTrap {
					continue
				}
				now := d.now()
				if !c.lastAcquire.IsZero() && now.Sub(c.lastAcquire) < acquireInterval {
					return
				}
				c.lastAcquire = now
				if sa := d.activeSA(c); sa != nil {
					// An IKE SA is up (or coming): the child alone is
					// missing, e.g. deleted by the peer while its IKE SA
					// stayed; CREATE_CHILD_SA brings it back (§1.3.1).
					if sa.state == stateEstablished && !sa.hasChild(ch.Name) {
						if err := d.createChild(sa, ch, nil); err != nil {
							d.log.Warn("acquire: CREATE_CHILD_SA failed", zap.String("conn", c.cfg.Name), zap.Error(err))
						}
					}
					return
				}
				if _, err := d.initiate(c, ch); err != nil {
					d.log.Warn("acquire: initiate failed", zap.String("conn", c.cfg.Name), zap.Error(err))
				}
				return
			}
		}
	})
}

// acquireInterval bounds the rate of trap-triggered initiations.
const acquireInterval = time.Second

// List returns the IKE SAs and their children.
func (d *Daemon) List() []SAStatus {
	var out []SAStatus
	_ = d.call(func() error {
		out = d.list()
		return nil
	})
	return out
}

// Stats returns the daemon's counters.
func (d *Daemon) Stats() Stats {
	var s Stats
	err := d.call(func() error {
		s = d.snapshotStats()
		return nil
	})
	if err != nil {
		s = Stats{Exchanges: map[string]uint64{}, Failures: map[string]uint64{}}
		for _, k := range exchangeKeys {
			s.Exchanges[k] = 0
		}
		for _, k := range failureKeys {
			s.Failures[k] = 0
		}
		s.Failures["queue_full"] = d.queueFull.Load()
	}
	return s
}

// WiresharkKeys returns the keys of the established IKE SAs in the form of
// Wireshark's ikev2_decryption_table.
func (d *Daemon) WiresharkKeys() []WiresharkKey {
	var out []WiresharkKey
	_ = d.call(func() error {
		out = d.wiresharkKeys()
		return nil
	})
	return out
}

// call runs fn on the loop and returns its error.
func (d *Daemon) call(fn func() error) error {
	if !d.running.Load() {
		return ErrNotRunning
	}
	res := make(chan error, 1)
	select {
	case d.calls <- func() { res <- fn() }:
	case <-d.done:
		return ErrNotRunning
	}
	select {
	case err := <-res:
		return err
	case <-d.done:
		return ErrNotRunning
	}
}

// post runs fn on the loop without waiting for it (Kernel's events, which
// may come from the loop's own Kernel calls: waiting could deadlock).
func (d *Daemon) post(fn func()) {
	if !d.running.Load() {
		return
	}
	go func() {
		select {
		case d.calls <- fn:
		case <-d.done:
		}
	}()
}

// loop is the daemon's goroutine: it owns every SA.
func (d *Daemon) loop() {
	defer close(d.done)
	d.timer = time.NewTimer(time.Hour)
	defer d.timer.Stop()
	for {
		d.armTimer()
		select {
		case dg := <-d.in:
			d.handle(dg)
		case fn := <-d.calls:
			fn()
		case <-d.timer.C:
			d.tick()
		case <-d.quit:
			return
		}
	}
}

// armTimer points the timer at the earliest deadline of any SA, any
// connection's retry and the cookie secret's rotation.
func (d *Daemon) armTimer() {
	next := d.cookies.rotateAt
	for _, sa := range d.sas {
		d.armIKERekey(sa)
		if t := sa.nextDeadline(); !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	for _, sa := range d.halfOpen {
		if t := sa.created.Add(halfOpenTimeout); t.Before(next) {
			next = t
		}
	}
	for _, c := range d.conns {
		if !c.retryAt.IsZero() && c.retryAt.Before(next) {
			next = c.retryAt
		}
	}
	for _, t := range d.timers {
		if t.at.Before(next) {
			next = t.at
		}
	}
	wait := next.Sub(d.now())
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	d.timer.Reset(wait)
}

// halfOpenTimeout is how long a responder keeps an IKE SA that never saw
// its IKE_AUTH.
const halfOpenTimeout = 30 * time.Second

// tick runs everything that is due.
func (d *Daemon) tick() {
	now := d.now()
	if !now.Before(d.cookies.rotateAt) {
		if err := d.cookies.rotate(d.rand, now); err != nil {
			d.log.Error("cookie secret rotation failed", zap.Error(err))
		}
	}
	for k, sa := range d.halfOpen {
		if !now.Before(sa.created.Add(halfOpenTimeout)) {
			delete(d.halfOpen, k)
			d.removeSA(sa, errors.New("ike: half-open IKE SA timed out"))
		}
	}
	for _, sa := range d.sas {
		d.saTimers(sa, now)
	}
	var due []*timerJob
	d.timers = slices.DeleteFunc(d.timers, func(t *timerJob) bool {
		if now.Before(t.at) {
			return false
		}
		due = append(due, t)
		return true
	})
	for _, t := range due {
		t.fn()
	}
	for _, c := range d.conns {
		if c.retryAt.IsZero() || now.Before(c.retryAt) {
			continue
		}
		c.retryAt = time.Time{}
		if d.activeSA(c) != nil {
			continue
		}
		var names []string
		for i := range c.cfg.Children {
			if c.cfg.Children[i].Start == StartStart {
				names = append(names, c.cfg.Children[i].Name)
			}
		}
		if _, err := d.initiate(c, c.child(names[0])); err != nil {
			d.log.Warn("initiate failed", zap.String("conn", c.cfg.Name), zap.Error(err))
			d.scheduleRetry(c)
			continue
		}
		if len(names) > 1 {
			// The others with CREATE_CHILD_SA once IKE_AUTH is done.
			go d.startChildren(c.cfg.Name, names[1:])
		}
	}
}

// scheduleRetry sets the next initiation of a StartStart connection after
// a failure: Retransmit × 2^retries, at most maxRetryBackoff, and none
// after KeyingTries failures.
func (d *Daemon) scheduleRetry(c *connState) {
	if !c.startStart() || !d.running.Load() {
		return
	}
	c.retries++
	if c.cfg.KeyingTries > 0 && c.retries >= c.cfg.KeyingTries {
		d.log.Warn("giving up on the connection after its keying tries", zap.String("conn", c.cfg.Name),
			zap.Int("tries", c.retries))
		return
	}
	back := d.cfg.Retransmit << min(c.retries, 16)
	if back > maxRetryBackoff || back <= 0 {
		back = maxRetryBackoff
	}
	c.retryAt = d.now().Add(back)
}

const maxRetryBackoff = 2 * time.Minute

func (c *connState) startStart() bool {
	for _, ch := range c.cfg.Children {
		if ch.Start == StartStart {
			return true
		}
	}
	return false
}

func (c *connState) child(name string) *Child {
	for i := range c.cfg.Children {
		if c.cfg.Children[i].Name == name {
			return &c.cfg.Children[i]
		}
	}
	return nil
}

func (d *Daemon) conn(name string) *connState {
	for _, c := range d.conns {
		if c.cfg.Name == name {
			return c
		}
	}
	return nil
}

// activeSA is the connection's IKE SA that is being set up or is up
// (not one being deleted).
func (d *Daemon) activeSA(c *connState) *ikeSA {
	for _, sa := range d.sas {
		if sa.conn == c && sa.successor == nil && (sa.state == stateEstablished || (sa.initiator && sa.state < stateEstablished)) {
			return sa
		}
	}
	return nil
}

// armIKERekey schedules an established IKE SA's rekey once, at
// Connection.RekeyTime less a random jitter of up to 10 % (so that two
// peers with the same setting rarely collide, §2.8.2).
func (d *Daemon) armIKERekey(sa *ikeSA) {
	rt := sa.conn.cfg.RekeyTime
	if sa.rekeyArmed || rt <= 0 || sa.state != stateEstablished {
		return
	}
	sa.rekeyArmed = true
	var b [2]byte
	_, _ = d.rand.Read(b[:])
	sa.rekeyAt = sa.established.Add(rt - time.Duration(binary.BigEndian.Uint16(b[:]))*(rt/10)/65536)
}

func (d *Daemon) findChild(inbound bool, spi uint32) (*ikeSA, *childSA) {
	for _, sa := range d.sas {
		for _, ch := range sa.children {
			if (inbound && ch.inSPI == spi) || (!inbound && ch.outSPI == spi) {
				return sa, ch
			}
		}
	}
	return nil, nil
}

// fail counts a failure reason.
func (d *Daemon) fail(reason string) { d.stats.Failures[reason]++ }

// refuse counts a refusal an attacker can cause and logs it at a bounded
// rate.
func (d *Daemon) refuse(reason, msg string, fields ...zap.Field) {
	d.fail(reason)
	if d.logLimit.allow(d.now()) {
		d.log.Info(msg, append(fields, zap.String("reason", reason))...)
	}
}

func (d *Daemon) snapshotStats() Stats {
	s := Stats{
		Exchanges:     make(map[string]uint64, len(d.stats.Exchanges)),
		Failures:      make(map[string]uint64, len(d.stats.Failures)),
		Rekeys:        d.stats.Rekeys,
		Retransmits:   d.stats.Retransmits,
		CookiesSent:   d.stats.CookiesSent,
		ESPMoves:      d.stats.ESPMoves,
		MOBIKEUpdates: d.stats.MOBIKEUpdates,
		Relocations:   d.stats.Relocations,
		Renewals:      d.stats.Renewals,
		HalfOpen:      len(d.halfOpen),
	}
	for k, v := range d.stats.Exchanges {
		s.Exchanges[k] = v
	}
	for k, v := range d.stats.Failures {
		s.Failures[k] = v
	}
	s.Failures["queue_full"] += d.queueFull.Load()
	for _, sa := range d.sas {
		if sa.state == stateEstablished && sa.successor == nil {
			s.IKESAs++
		}
		s.ChildSAs += len(sa.children)
	}
	return s
}

// deleteAll is Close: every established IKE SA gets one Delete (no
// retransmission) and every SA and child goes.
func (d *Daemon) deleteAll() {
	for _, sa := range d.sas {
		if sa.state == stateEstablished || sa.state == stateDeleting {
			if b, err := d.sealRequest(sa, INFORMATIONAL, []Payload{&Delete{Protocol: ProtoIKE}}); err == nil {
				d.sendAll(b, sa.local, sa.remote)
			}
		}
		d.removeSA(sa, ErrNotRunning)
	}
	for k, sa := range d.halfOpen {
		delete(d.halfOpen, k)
		d.removeSA(sa, ErrNotRunning)
	}
	for _, c := range d.conns {
		c.retryAt = time.Time{}
	}
	for _, t := range d.timers {
		if t.onClose {
			t.fn()
		}
	}
	d.timers = nil
}

// bucket is a token bucket: rate tokens per second up to burst.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func (b *bucket) allow(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// rateTable holds one bucket per source address, at most max of them:
// when full, it starts again empty (an attacker with many addresses gets
// no more than the cookie and half-open limits allow anyway).
type rateTable struct {
	rate, burst float64
	max         int
	m           map[netip.Addr]*bucket
}

// perSourceMax bounds the sources whose IKE_SA_INIT rate is kept
// (Config.InitRate, InitBurst).
const perSourceMax = 4096

func (t *rateTable) allow(a netip.Addr, now time.Time) bool {
	b := t.m[a]
	if b == nil {
		if len(t.m) >= t.max {
			clear(t.m)
		}
		b = &bucket{rate: t.rate, burst: t.burst}
		t.m[a] = b
	}
	return b.allow(now)
}
