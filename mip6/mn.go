package mip6

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
)

// DefaultMNCloseTimeout is how long MobileNode.Close waits for the BA of
// its de-registration (RFC 6275 §11.7.2) when the config sets none.
const DefaultMNCloseTimeout = 2 * time.Second

// buHopLimit is the Hop Limit of the BUs the MN builds.
const buHopLimit = 64

// Errors of the mobile node.
var (
	// ErrMNClosed is returned by Move and Start after Close.
	ErrMNClosed = errors.New("mip6: mobile node closed")
	// ErrDeregTimeout is returned by Close when the HA did not
	// acknowledge the de-registration in time (the binding then expires
	// at the HA on its own).
	ErrDeregTimeout = errors.New("mip6: de-registration not acknowledged")
	// ErrNoBUSA is wrapped when the SAD has no outbound SA for BUs from
	// the HoA to the HA (SA1, RFC 4877 §6): DR-3 cannot recognise BUs.
	ErrNoBUSA = errors.New("mip6: no outbound SA protects BUs from the home address to the home agent (SA1)")
)

// MNConfig configures a MobileNode.
type MNConfig struct {
	// HoA is the IPv6 home address (required, global unicast).
	HoA netip.Addr
	// HoA4 is the IPv4 home address (RFC 5555); invalid = none. When
	// set, registrations carry an IPv4 Home Address option (§3.1.1).
	HoA4 netip.Addr
	// HomePrefix is the home subnet prefix; a CoA inside it means the MN
	// is at home. Invalid: only the HoA itself counts as home.
	HomePrefix netip.Prefix
	// HA is the home agent's IPv6 address (required).
	HA netip.Addr
	// HAV4 is the home agent's IPv4 address (RFC 5555 HA_V4ADDR);
	// required for IPv4 care-of addresses.
	HAV4 netip.Addr
	// SAD answers the SA1 SPI query (DR-3).
	SAD SAQuerier
	// KeyManagement says the SAs come from a key manager (IKEv2, RFC
	// 4877 §7) rather than the configuration: SA1 may not exist yet at
	// Start or Move, so it is looked up again before every BU (a rekeyed
	// SA1 is followed at once, and a BU with no SA1 yet is a counted send
	// error, retransmitted on the BUL's back-off); and every BU carries
	// the K flag (RFC 6275 §9.5.1, RFC 4877 §7.4): the MN can move its IKE
	// SA with its care-of address. MNEvent.KeyMgmt tells whether the HA's
	// BA answered with K.
	KeyManagement bool
	// NoKFlag leaves the K flag out of the BUs even with KeyManagement:
	// the IKE SA stays where it was made, and the key manager negotiates a
	// new one after a move (RFC 4877 §7.4).
	NoKFlag bool
	// Inject sends a cleartext packet the MN built (a BU) through the
	// outbound IPsec path; the dataplane seals it with SA1 and calls
	// AfterSeal synchronously before it returns (required).
	Inject func(p []byte) error
	// Keepalive sends an RFC 3948 §2.3 NAT-keepalive (one 0xFF byte)
	// from the MN's UDP port 4500 to dst. Nil: none are sent. It is
	// called just before every BU sent from an IPv4 care-of address
	// (to open the NAT for HA:4500 -> MN:4500) and every NAT refresh
	// interval while data is UDP-encapsulated (RFC 5555 §4.4.2).
	Keepalive func(dst netip.AddrPort) error
	// BUL sets the binding update list timers and lifetime.
	BUL BULConfig
	// CloseTimeout bounds Close's wait for the de-registration BA
	// (DefaultMNCloseTimeout when <= 0).
	CloseTimeout time.Duration
	// Logger gets registration events (nil: none).
	Logger *zap.Logger
	// Now is the clock for timestamps (nil: time.Now). Timers run on real
	// (or synctest) time.
	Now func() time.Time
	// OnEvent, if set, is called for every MNEvent, off the packet path
	// and without the MN's locks held (it may call Status).
	OnEvent func(MNEvent)
}

// mnRoute is everything AfterSeal needs, published as one immutable value
// through an atomic pointer so the per-packet hook is lock-free.
type mnRoute struct {
	buSPI  uint32
	hasSPI bool
	buCoA  netip.Addr // source of the BU being sent (DR-3); HoA = at home
	// data is where every other SPI goes (registered CoA: mn.regCoA);
	// zero (not IsValid) leaves the dataplane's endpoint.
	data endpoint.Endpoint
}

// MobileNode is the mobile node's mobility layer (RFC 6275 §11, RFC 5555
// §4.4, RFC 4877) in the unmodified-IPsec model of
// draft-laganier-mext-dsmipv6-ipsec-00: a goroutine drives the home
// registration's BULEntry with a timer and injects BUs through IPsec;
// AfterSeal (DR-3) sends SA1-sealed BUs from the newest CoA and all other
// traffic from the registered one; Deliver processes the BAs IPsec opened.
//
// Create it with NewMobileNode, Move to a care-of address, Start, and
// Close. Safe for concurrent use.
type MobileNode struct {
	cfg  MNConfig
	log  *zap.Logger
	now  func() time.Time
	hoa  netip.Addr
	ha   netip.Addr
	haV4 netip.Addr

	route atomic.Pointer[mnRoute]
	ctr   mnCounters

	kick    chan struct{} // wakes the goroutine (buffered 1)
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when the goroutine returns

	mu           sync.Mutex
	bul          *BULEntry
	started      bool
	closed       bool
	coa          netip.Addr // last Move's CoA; invalid when home or none
	home         bool
	regCoA       netip.Addr
	moveAt       time.Time // when the pending Move happened (zero: none)
	lastHandover time.Time
	handoverDur  time.Duration
	lastStatus   BAStatus
	haveBA       bool
	lastBUHoA4   bool // the last BU carried the IPv4 Home Address option
	hoa4Unsupp   bool
	hoa4Ack      *IPv4AddressAck
	deregDone    chan struct{} // closed when Close's de-registration is acknowledged

	// retxLog rate-limits the retransmission lines (the MN goroutine
	// only, in step).
	retxLog struct {
		last time.Time
		held uint64
	}
}

// mnRetxLogInterval is the least time between two lines about BU
// retransmissions; the ones in between are counted in the next line.
const mnRetxLogInterval = 10 * time.Second

// NewMobileNode checks cfg and returns a mobile node, not yet started.
func NewMobileNode(cfg MNConfig) (*MobileNode, error) {
	hoa, ha := cfg.HoA.Unmap(), cfg.HA.Unmap()
	switch {
	case !hoa.Is6() || !hoa.IsGlobalUnicast():
		return nil, fmt.Errorf("mip6: mobile node home address %v must be a global IPv6 unicast address", cfg.HoA)
	case !ha.Is6() || !ha.IsGlobalUnicast():
		return nil, fmt.Errorf("mip6: home agent address %v must be a global IPv6 unicast address", cfg.HA)
	case cfg.HAV4.IsValid() && !cfg.HAV4.Unmap().Is4():
		return nil, fmt.Errorf("mip6: home agent IPv4 address %v is not IPv4", cfg.HAV4)
	case cfg.HoA4.IsValid() && (!cfg.HoA4.Unmap().Is4() || !cfg.HoA4.Unmap().IsGlobalUnicast()):
		return nil, fmt.Errorf("mip6: IPv4 home address %v is not an IPv4 unicast address", cfg.HoA4)
	case cfg.HomePrefix.IsValid() && (!cfg.HomePrefix.Addr().Is6() || !cfg.HomePrefix.Contains(hoa)):
		return nil, fmt.Errorf("mip6: home prefix %v must be IPv6 and contain the home address %v", cfg.HomePrefix, hoa)
	case cfg.SAD == nil:
		return nil, errors.New("mip6: mobile node needs a SAD (SAQuerier)")
	case cfg.Inject == nil:
		return nil, errors.New("mip6: mobile node needs an Inject function")
	}
	if cfg.HomePrefix.IsValid() {
		cfg.HomePrefix = cfg.HomePrefix.Masked()
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultMNCloseTimeout
	}
	mn := &MobileNode{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		hoa:     hoa,
		ha:      ha,
		haV4:    cfg.HAV4.Unmap(),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	mn.cfg.HoA4 = cfg.HoA4.Unmap()
	if mn.log == nil {
		mn.log = zap.NewNop()
	}
	if mn.now == nil {
		mn.now = time.Now
	}
	// RFC 6275 §11.7.1 leaves the first sequence number to the MN; a
	// random one makes a restarted MN unlikely to repeat a number the HA
	// still holds (status 135 resynchronises otherwise).
	mn.bul = NewBULEntry(ha, hoa, uint16(rand.Uint32()), cfg.BUL)
	mn.route.Store(&mnRoute{})
	return mn, nil
}

// Start looks up SA1's SPI and starts the goroutine that sends BUs,
// retransmits, refreshes and keeps the NAT mapping alive. A CoA given to
// Move before Start is registered now.
func (mn *MobileNode) Start() error {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	switch {
	case mn.closed:
		return ErrMNClosed
	case mn.started:
		return errors.New("mip6: mobile node already started")
	}
	if err := mn.lookupSPI(); err != nil && !mn.cfg.KeyManagement {
		return err
	}
	mn.started = true
	go mn.run()
	mn.wake()
	return nil
}

// lookupSPI refreshes SA1's SPI in the route (DR-3). With mn.mu held.
func (mn *MobileNode) lookupSPI() error {
	spi, ok := BUSPI(mn.cfg.SAD, mn.hoa, mn.ha)
	if !ok {
		return fmt.Errorf("%w (HoA %v, HA %v)", ErrNoBUSA, mn.hoa, mn.ha)
	}
	r := *mn.route.Load()
	r.buSPI, r.hasSPI = spi, true
	mn.route.Store(&r)
	return nil
}

// isHome reports whether a is the home address or inside the home prefix
// (RFC 6275 §11.5.4: the MN is attached to its home link).
func (mn *MobileNode) isHome(a netip.Addr) bool {
	return a == mn.hoa || mn.cfg.HomePrefix.IsValid() && mn.cfg.HomePrefix.Contains(a)
}

// Move tells the MN its care-of address changed (movement detection or
// `mipsec mn move`). coa must pass CheckCoA. coa == HoA or inside
// HomePrefix means the MN returned home: it de-registers with a lifetime-0
// BU from the HoA (RFC 6275 §11.5.4, §11.7.2). Otherwise a home
// registration from coa starts (RFC 6275 §11.7.1); until its BA is
// accepted, data keeps the registered CoA (DR-3). An IPv4 coa needs
// MNConfig.HAV4 (RFC 5555 §4.4.1). Moving to the CoA already registered or
// being registered does nothing. SA1's SPI is looked up again.
func (mn *MobileNode) Move(coa netip.Addr) error {
	coa = coa.Unmap()
	if err := CheckCoA(coa); err != nil {
		return err
	}
	home := mn.isHome(coa)
	if !home && coa.Is4() && !mn.haV4.IsValid() {
		return fmt.Errorf("mip6: IPv4 care-of address %v needs the home agent's IPv4 address (RFC 5555): %w", coa, ErrBadCoA)
	}
	mn.mu.Lock()
	if mn.closed {
		mn.mu.Unlock()
		return ErrMNClosed
	}
	if err := mn.lookupSPI(); err != nil && !mn.cfg.KeyManagement {
		mn.mu.Unlock()
		return err
	}
	now := mn.now()
	var ev MNEvent
	switch {
	case home && mn.home:
		mn.mu.Unlock()
		return nil
	case home:
		mn.home, mn.coa = true, netip.Addr{}
		// Deregister does nothing when no binding exists or the last
		// registration failed: there is nothing to remove at the HA.
		mn.bul.Deregister(mn.hoa)
		mn.moveAt = time.Time{}
		if mn.bul.State() == BULDeregistering {
			mn.moveAt = now
		}
		ev = MNEvent{Kind: MNMoved, Time: now, CoA: mn.hoa}
	case !mn.home && coa == mn.coa && mn.bul.State() != BULFailed && mn.bul.State() != BULIdle:
		mn.mu.Unlock()
		return nil
	default:
		mn.home, mn.coa = false, coa
		mn.moveAt = now
		mn.bul.Register(coa)
		ev = MNEvent{Kind: MNMoved, Time: now, CoA: coa}
	}
	mn.mu.Unlock()
	mn.log.Info("mobile node moved", zap.Stringer("coa", ev.CoA), zap.Bool("home", home))
	mn.emit(ev)
	mn.wake()
	return nil
}

// Close de-registers (lifetime 0, RFC 6275 §11.7.2) if a binding exists
// or a registration is outstanding, waits up to MNConfig.CloseTimeout for
// the BA (retransmitting meanwhile), and stops the goroutine. It returns
// ErrDeregTimeout (wrapped) when no BA came; the binding then expires at
// the HA. Later calls return nil.
func (mn *MobileNode) Close() error {
	mn.mu.Lock()
	if mn.closed {
		mn.mu.Unlock()
		return nil
	}
	mn.closed = true
	started := mn.started
	var wait chan struct{}
	if st := mn.bul.State(); started && st != BULIdle && st != BULFailed {
		coa := netip.Addr{} // keep the current CoA (away)
		if mn.home {
			coa = mn.hoa
		}
		mn.bul.Deregister(coa)
		wait = make(chan struct{})
		mn.deregDone = wait
	}
	mn.mu.Unlock()
	var err error
	if wait != nil {
		mn.wake()
		t := time.NewTimer(mn.cfg.CloseTimeout)
		select {
		case <-wait:
		case <-t.C:
			err = fmt.Errorf("%w within %v", ErrDeregTimeout, mn.cfg.CloseTimeout)
		}
		t.Stop()
	}
	if started {
		close(mn.done)
		<-mn.stopped
	}
	return err
}

// wake makes the goroutine run Tick now.
func (mn *MobileNode) wake() {
	select {
	case mn.kick <- struct{}{}:
	default:
	}
}

func (mn *MobileNode) emit(evs ...MNEvent) {
	if mn.cfg.OnEvent == nil {
		return
	}
	for _, ev := range evs {
		if ev.Kind != 0 {
			mn.cfg.OnEvent(ev)
		}
	}
}

// run is the MN goroutine: Tick at each deadline or kick.
func (mn *MobileNode) run() {
	defer close(mn.stopped)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		next := mn.step()
		if !next.IsZero() {
			t.Reset(max(next.Sub(mn.now()), 0))
		}
		select {
		case <-mn.done:
			t.Stop()
			return
		case <-mn.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// step runs the BUL timers once: sends a due BU (from the goroutine only,
// so the route's BU CoA always matches the BU being injected) and a due
// keepalive. It returns the next deadline.
func (mn *MobileNode) step() time.Time {
	mn.mu.Lock()
	now := mn.now()
	a := mn.bul.Tick(now)
	var (
		p   []byte
		err error
		evs [2]MNEvent
		ka  netip.AddrPort
		pre netip.AddrPort // keepalive sent just before the BU
	)
	if a.Expired {
		mn.ctr.expirations.Add(1)
		evs[0] = MNEvent{Kind: MNExpired, Time: now, CoA: mn.regCoA}
		// Once per accepted registration (BULEntry.Tick).
		mn.log.Warn("home registration expired at the home agent: no Binding Acknowledgement for its refresh",
			zap.Stringer("coa", mn.regCoA), zap.Int("unanswered_bus", mn.bul.Attempts()), zap.Uint16("last_seq", mn.bul.Seq()))
	}
	attempts := mn.bul.Attempts()
	if a.SendBU {
		if mn.cfg.KeyManagement {
			// The key manager may have made or rekeyed SA1 since (DR-3:
			// the BU must leave by its SPI).
			err = mn.lookupSPI()
		}
		if err == nil {
			p, err = mn.buildBU(a.BU)
		}
		// DR-3: the BU leaves from its own CoA, set before Inject runs
		// AfterSeal on this goroutine.
		r := *mn.route.Load()
		r.buCoA = a.BU.CoA
		mn.route.Store(&r)
		if a.BU.CoA.Is4() && mn.haV4.IsValid() {
			// RFC 5555 §4.1 / RFC 3948 §2.3: a BU from an IPv4 CoA
			// (4500 -> 4191) only opens a NAT mapping toward the HA's
			// port 4191; the HA's UDP-encapsulated data comes from
			// port 4500 (§4.4.2). A keepalive 4500 -> 4500 sent just
			// before every such BU opens that mapping too, so data
			// passes as soon as the BA switches to UDP.
			pre = netip.AddrPortFrom(mn.haV4, PortESPInUDP)
		}
	}
	if a.SendKeepalive {
		if r := mn.route.Load(); r.data.Encap == endpoint.EncapUDP {
			ka = r.data.Addr
		}
	}
	mn.mu.Unlock()

	if pre.IsValid() {
		mn.sendKeepalive(pre)
	}
	if a.SendBU {
		if err == nil {
			err = mn.cfg.Inject(p)
		}
		if err != nil {
			mn.ctr.buSendErrors.Add(1)
			mn.log.Warn("binding update not sent", zap.Uint16("seq", a.BU.Seq), zap.Stringer("coa", a.BU.CoA), zap.Error(err))
		} else {
			mn.ctr.busSent.Add(1)
		}
		if a.BU.Retransmit {
			mn.ctr.buRetransmits.Add(1)
			mn.logRetransmit(now, a.BU, attempts)
		}
		if a.GaveUp {
			// Once per registration: the back-off takes at least the
			// sum of its intervals to get there (RFC 6275 §11.8).
			mn.ctr.buGiveUps.Add(1)
			mn.log.Warn("binding update unanswered: retransmission back-off at its maximum, retrying at that interval",
				zap.Stringer("coa", a.BU.CoA), zap.Uint16("seq", a.BU.Seq), zap.Int("attempts", attempts),
				zap.Bool("deregistration", a.BU.Lifetime == 0))
		}
		evs[1] = MNEvent{Kind: MNBUSent, Time: now, CoA: a.BU.CoA, Seq: a.BU.Seq, Lifetime: a.BU.Lifetime, Err: err}
	}
	mn.emit(evs[:]...)
	if ka.IsValid() {
		mn.sendKeepalive(ka)
	}
	mn.mu.Lock()
	next := mn.bul.Next(mn.now())
	mn.mu.Unlock()
	return next
}

// logRetransmit logs a retransmitted BU, at most once per
// mnRetxLogInterval with the number held back since the previous line
// (MN goroutine).
func (mn *MobileNode) logRetransmit(now time.Time, bu BUToSend, attempts int) {
	l := &mn.retxLog
	if !l.last.IsZero() && now.Sub(l.last) < mnRetxLogInterval {
		l.held++
		return
	}
	held := zap.Skip()
	if l.held > 0 {
		held = zap.Uint64("suppressed", l.held)
	}
	l.last, l.held = now, 0
	mn.log.Info("binding update retransmitted: no Binding Acknowledgement yet",
		zap.Stringer("coa", bu.CoA), zap.Uint16("seq", bu.Seq), zap.Int("attempts", attempts),
		zap.Bool("deregistration", bu.Lifetime == 0), held)
}

// sendKeepalive sends one RFC 3948 §2.3 NAT-keepalive to dst.
func (mn *MobileNode) sendKeepalive(dst netip.AddrPort) {
	if mn.cfg.Keepalive == nil {
		return
	}
	err := mn.cfg.Keepalive(dst)
	if err != nil {
		mn.ctr.keepaliveErrors.Add(1)
		mn.log.Warn("NAT keepalive not sent", zap.Stringer("dst", dst), zap.Error(err))
	} else {
		mn.ctr.keepalives.Add(1)
	}
	mn.emit(MNEvent{Kind: MNKeepalive, Time: mn.now(), Err: err})
}

// AfterSeal is the MN's post-IPsec hook (DR-3; RFC 5555 §5.1; RFC 4877
// §4.3). b.Bytes() is the packet an SA with SPI spi just sealed, with the
// header the SA built (`IPv6(HoA -> HA) / ESP`); *ep is where the
// dataplane will send it.
//
//   - spi is SA1's (a BU): sent from the CoA of the BU being sent, built
//     here in full by SendFromCoA (HAO for an IPv6 CoA, RFC 6275 §6.3;
//     IPv4/UDP 4500 -> 4191 for an IPv4 CoA, RFC 5555 §4.1): *ep becomes
//     EncapIP. From home: *ep unchanged, the plain `IPv6(HoA -> HA) / ESP`
//     (RFC 4877 §4.3).
//   - any other SPI (data, tunnel mode): the registered CoA's path, until
//     the BA for a new CoA is accepted: IPv6 CoA -> (HA, EncapRaw); IPv4
//     CoA -> (HAV4, EncapRaw), or (HAV4:4500, EncapUDP) once a BA carried
//     a NAT Detection option (RFC 5555 §4.4.2). b is not touched: the
//     dataplane cuts it in front of ESP and the underlay builds the outer
//     header (RFC 4303 §3.1.2). Not registered or at home: *ep unchanged.
//
// It returns false (drop the packet) only when a BU cannot be built
// (malformed packet or no headroom). Lock-free; never allocates.
func (mn *MobileNode) AfterSeal(b *pkt.Buf, spi uint32, ep *endpoint.Endpoint) bool {
	r := mn.route.Load()
	if !r.hasSPI || spi != r.buSPI {
		if r.data.IsValid() {
			*ep = r.data
		}
		return true
	}
	if !r.buCoA.IsValid() || r.buCoA == mn.hoa {
		return true
	}
	to, ok := SendFromCoA(b, r.buCoA, mn.haV4, PortESPInUDP)
	if !ok {
		mn.ctr.afterSealErrors.Add(1)
		return false
	}
	*ep = to
	return true
}

// dataTo is where data goes once coa is registered; zero at home.
func (mn *MobileNode) dataTo(coa netip.Addr, nat bool) endpoint.Endpoint {
	switch {
	case !coa.IsValid() || coa == mn.hoa:
		return endpoint.Endpoint{}
	case coa.Is6():
		return endpoint.Endpoint{Addr: netip.AddrPortFrom(mn.ha, 0), Encap: endpoint.EncapRaw}
	case nat:
		return endpoint.Endpoint{Addr: netip.AddrPortFrom(mn.haV4, PortESPInUDP), Encap: endpoint.EncapUDP}
	default:
		return endpoint.Endpoint{Addr: netip.AddrPortFrom(mn.haV4, 0), Encap: endpoint.EncapRaw}
	}
}

// Status returns a snapshot of the registration.
func (mn *MobileNode) Status() MNStatus {
	r := mn.route.Load()
	mn.mu.Lock()
	defer mn.mu.Unlock()
	nat, ka := mn.bul.NAT()
	st := MNStatus{
		State:              mn.bul.State(),
		Home:               mn.home,
		HoA:                mn.hoa,
		HoA4:               mn.cfg.HoA4,
		HA:                 mn.ha,
		HAV4:               mn.haV4,
		CoA:                mn.coa,
		RegisteredCoA:      mn.regCoA,
		Data:               r.data,
		NAT:                nat,
		Keepalive:          ka,
		Seq:                mn.bul.Seq(),
		Attempts:           mn.bul.Attempts(),
		Expires:            mn.bul.Expires(),
		LastBAStatus:       mn.lastStatus,
		HaveBA:             mn.haveBA,
		IPv4HoAUnsupported: mn.hoa4Unsupp,
		LastHandover:       mn.lastHandover,
		HandoverDuration:   mn.handoverDur,
		Counters:           mn.ctr.snapshot(),
	}
	if r.hasSPI {
		st.BUSPI = r.buSPI
	}
	if mn.hoa4Ack != nil {
		a := *mn.hoa4Ack
		st.IPv4HoAAck = &a
	}
	return st
}
