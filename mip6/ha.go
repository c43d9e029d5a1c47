package mip6

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// HomeLink installs and removes what makes the home agent intercept
// packets for a registered home address on the home link (RFC 6275
// §10.4.1: proxy Neighbor Discovery for an IPv6 home address; RFC 5555
// §4.5: proxy ARP for an IPv4 home address) and routes them into the
// tunnel device. The program embedding mip6 implements it with netlink.
// The home agent calls it from its signaling goroutine only, never on the
// packet path, and serially.
type HomeLink interface {
	Add(hoa netip.Addr) error
	Remove(hoa netip.Addr) error
}

// Home agent defaults.
const (
	// DefaultPrefixValidLifetime and DefaultPrefixPreferredLifetime are
	// the lifetimes of the home prefix in Mobile Prefix Advertisements
	// when the config sets none (RFC 4861 §6.2.1 AdvValidLifetime and
	// AdvPreferredLifetime defaults).
	DefaultPrefixValidLifetime     = 30 * 24 * time.Hour
	DefaultPrefixPreferredLifetime = 7 * 24 * time.Hour
	// haHopLimit is the hop limit of BAs and MPAs the home agent builds.
	haHopLimit = 64
)

// HAConfig configures a HomeAgent.
type HAConfig struct {
	// Address is the home agent's IPv6 address (HAADDR): the source of
	// its BAs and MPAs.
	Address netip.Addr
	// AddressV4 is the home agent's IPv4 address (HA_V4ADDR, RFC 5555).
	// Zero: no IPv4 care-of addresses can be served.
	AddressV4 netip.Addr
	// LocalAddrs are the home agent's other own addresses, IPv4 and IPv6
	// (the underlay's and the tunnel device's). Like Address and
	// AddressV4 they are refused as care-of addresses (ha_coa.go).
	LocalAddrs []netip.Addr
	// HomePrefix is the home link's IPv6 prefix: BUs for home addresses
	// outside it get status 132 (RFC 6275 §10.3.1) and Mobile Prefix
	// Advertisements carry it (RFC 6275 §10.6). Zero: no check, and
	// solicitations are not answered.
	HomePrefix netip.Prefix
	// HomePrefix4, if set, is where IPv4 home addresses must lie (RFC
	// 5555 §4.5); others get IPv4 Address Acknowledgement status 130.
	HomePrefix4 netip.Prefix
	// SAD answers DR-7's question: which home address an inbound SA
	// belongs to, and which outbound SA protects a BA or MPA.
	SAD SAQuerier
	// Inject sends a cleartext packet through the outbound IPsec path
	// synchronously (the dataplane calls AfterSeal inside it).
	Inject func(p []byte) error
	// HomeLink, if set, is told about bindings coming and going.
	HomeLink HomeLink
	// MaxLifetime caps granted binding lifetimes (default
	// DefaultMaxBindingLifetime). MaxCoAs caps care-of addresses per
	// binding (default DefaultMaxCoAs, RFC 5648).
	MaxLifetime time.Duration
	MaxCoAs     int
	// NATRefresh is the Refresh Time of the NAT Detection option when a
	// NAT was detected (default NATKeepaliveTimeout, RFC 5555 §3.2.2).
	NATRefresh time.Duration
	// BURate and BUBurst are the per-home-address token bucket for
	// signaling messages (defaults DefaultBURate, DefaultBUBurst).
	BURate  float64
	BUBurst int
	// QueueLen bounds the messages waiting for the signaling goroutine
	// (default DefaultSignalQueue); more are dropped and counted.
	QueueLen int
	// NATRecords is the DR-4 record table size (default
	// DefaultNATRecords).
	NATRecords int
	// PrefixValidLifetime and PrefixPreferredLifetime go into Mobile
	// Prefix Advertisements (defaults DefaultPrefixValidLifetime and
	// DefaultPrefixPreferredLifetime).
	PrefixValidLifetime, PrefixPreferredLifetime time.Duration
	// Logger logs binding events (default: none).
	Logger *zap.Logger
	// DropLogInterval is the least time between two warnings about
	// signaling dropped before processing (rate-limited, queue full, too
	// big; ha_droplog.go): each counts the drops since the previous one.
	// 0 means DefaultSignalDropLogInterval; negative turns them off (the
	// counters stay).
	DropLogInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnEvent, if set, is called for binding events (metrics), on the
	// signaling goroutine, never on the packet path.
	OnEvent func(HAEvent)
	// KeyManagement, if set, reports whether a key manager's IKE SA
	// serves hoa and can follow it (RFC 4877 §7.4): a BU with the K flag
	// for such a home address is answered with K (RFC 6275 §6.1.8), and
	// once it is accepted MoveIKE moves the IKE SA to where the BU came
	// from. Nil: the HA never sets K, and a mobile node that moves must
	// negotiate a new IKE SA from its new address.
	KeyManagement func(hoa netip.Addr) bool
	// MoveIKE is called, on the signaling goroutine, after an accepted BU
	// with the K flag was answered with K: local and remote are the home
	// agent's address and the mobile node's as the BU arrived (the care-of
	// address, or with UDP encapsulation the recorded outer IPv4 source
	// and port, RFC 5555 §4.1, DR-4); a port 0 keeps the IKE SA's port.
	MoveIKE func(hoa netip.Addr, local, remote netip.AddrPort)
}

// HAEventKind says what an HAEvent reports.
type HAEventKind uint8

const (
	// HABindingAdded: a home registration created a binding.
	HABindingAdded HAEventKind = iota + 1
	// HABindingUpdated: a BU refreshed or changed a binding.
	HABindingUpdated
	// HABindingRemoved: de-registration, expiry (Expired) or Close.
	HABindingRemoved
	// HABURejected: a BU was rejected (Reason; Status when a BA was sent).
	HABURejected
)

func (k HAEventKind) String() string {
	switch k {
	case HABindingAdded:
		return "added"
	case HABindingUpdated:
		return "updated"
	case HABindingRemoved:
		return "removed"
	case HABURejected:
		return "rejected"
	}
	return "event?"
}

// HAEvent is one binding event of the home agent.
type HAEvent struct {
	Kind HAEventKind
	HoA  netip.Addr
	// CoA is the primary care-of address (added/updated), the one that
	// was registered (removed) or the BU's source (rejected).
	CoA     netip.Addr
	NAT     bool
	Expired bool
	Seq     uint16
	Status  BAStatus
	Reason  string
	Time    time.Time
}

// BindingStatus is one binding as `mipsec binding list` shows it.
type BindingStatus struct {
	HoA  netip.Addr
	HoA4 netip.Addr
	// CoAs carry BID, address, NAT state, the UDP endpoint and which is
	// primary (RFC 5648).
	CoAs     []CareOf
	Seq      uint16
	Lifetime time.Duration
	Expires  time.Time
	// LastBU is when the last accepted BU was processed.
	LastBU time.Time
}

// HAStats are the home agent's counters.
type HAStats struct {
	// Received counts signaling packets Deliver took (BUs and other MH,
	// MPS), before rate limiting.
	Received uint64
	// BUAccepted counts accepted BUs (including de-registrations).
	BUAccepted uint64
	// BURejected counts rejected or dropped signaling messages by reason.
	BURejected map[string]uint64
	// RateLimited, QueueFull and TooBig count messages Deliver dropped.
	RateLimited, QueueFull, TooBig uint64
	// BAsSent and BAsFailed count BAs handed to Inject, and those that
	// could not be sent (no SA2, Inject error, AfterSeal failure).
	BAsSent, BAsFailed uint64
	// NATDetected counts accepted BUs that came through a NAT (DR-4).
	NATDetected uint64
	// MPSAnswered counts Mobile Prefix Solicitations answered.
	MPSAnswered uint64
	// HomeLinkErrors counts failed HomeLink calls.
	HomeLinkErrors uint64
	// DR1Failed counts data packets to a bound home address whose primary
	// CoA cannot be reached (dropped): an IPv4 CoA without
	// HAConfig.AddressV4, or a NAT without a usable UDP endpoint.
	DR1Failed uint64
	// BadCoA counts BUs refused for their care-of address (status 174,
	// or 169 for a home address among RFC 5648 BIDs; ha_coa.go): one of
	// the home agent's own addresses, a home address of a binding, not
	// unicast, or a source the BA cannot go to (no BA then). They are
	// also in BURejected["invalid-care-of-address"].
	BadCoA uint64
}

// Rejection reasons (HAStats.BURejected keys).
type haReason uint8

const (
	rejMalformed haReason = iota
	rejChecksum
	rejNotBU
	rejDR7
	rejNotHomeReg
	rejNotHomeSubnet
	rejNoCoA
	rejBID
	rejSeq
	rejNotRegistered
	rejInvalidCoA
	rejResources
	rejUnknownBID
	rejOther
	rejMPS
	numReasons
)

var haReasonNames = [numReasons]string{
	rejMalformed:     "malformed",
	rejChecksum:      "checksum",
	rejNotBU:         "not-bu",
	rejDR7:           "dr7-wrong-sa",
	rejNotHomeReg:    "not-home-registration",
	rejNotHomeSubnet: "not-home-subnet",
	rejNoCoA:         "no-care-of-address",
	rejBID:           "bid-malformed",
	rejSeq:           "sequence-out-of-window",
	rejNotRegistered: "not-registered",
	rejInvalidCoA:    "invalid-care-of-address",
	rejResources:     "too-many-care-of-addresses",
	rejUnknownBID:    "unknown-bid",
	rejOther:         "other",
	rejMPS:           "mps-invalid",
}

func (r haReason) String() string { return haReasonNames[r] }

type haCounters struct {
	received, accepted                     atomic.Uint64
	rejected                               [numReasons]atomic.Uint64
	rateLimited, queueFull, tooBig         atomic.Uint64
	baSent, baFailed, nat, mps, hlErr, dr1 atomic.Uint64
	badCoA                                 atomic.Uint64
}

// baKind is where a BA or MPA goes (RFC 6275 §9.5.4, RFC 5555 §4.2).
type baKind uint8

const (
	baHome baKind = iota // to the home address as sealed (MN at home)
	baRH2                // to an IPv6 CoA with a type 2 Routing header
	baV4                 // in IPv4/UDP 4191 to the BU's outer source
)

// baDest is the destination of the one BA/MPA being injected; AfterSeal
// recognises it by the SPI of the SA that sealed it.
type baDest struct {
	spi  uint32
	kind baKind
	to   netip.AddrPort
}

// HomeAgent is the Mobile IPv6 / DSMIPv6 home agent in the "unmodified
// IPsec" model (draft-laganier-mext-dsmipv6-ipsec-00; ARCHITECTURE.md, the
// unmodified-IPsec rules):
//
//   - Deliver takes the BUs (SA1) and Mobile Prefix Solicitations (SA5)
//     that transport-mode ESP opened, rate-limits them per home address
//     and queues a copy for the signaling goroutine, which processes them
//     (RFC 6275 §10.3.1, RFC 4877 §4.2 DR-7, RFC 5555 §4.5, RFC 5648),
//     updates the BindingCache and injects the BA or MPA.
//   - BeforeLookup records the outer IPv4 source of UDP-encapsulated ESP
//     packets by (SPI, sequence number) for NAT detection (DR-4).
//   - AfterSeal sends BAs/MPAs where the BU came from and points data
//     packets for a bound home address at its primary CoA (DR-1).
//
// Deliver, BeforeLookup and AfterSeal are safe for concurrent use by the
// packet workers; BeforeLookup and AfterSeal never allocate.
type HomeAgent struct {
	cfg   HAConfig
	log   *zap.Logger
	cache *BindingCache
	nat   *NATRecords
	rl    *tokenBuckets
	q     *sigQueue

	pending atomic.Pointer[baDest]

	chMu   sync.Mutex
	chq    []Change
	chWake chan struct{}

	st haCounters
	// own are the home agent's own addresses (refused as CoAs); rejLog
	// rate-limits the rejection warnings.
	own    []netip.Addr
	rejLog logLimiter
	// drops is the warning about signaling Deliver dropped
	// (ha_droplog.go).
	drops sigDropLog

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Errors from NewHomeAgent.
var (
	ErrHAConfig = errors.New("mip6: invalid home agent config")
)

// NewHomeAgent checks cfg and returns a home agent; call Start to run it.
func NewHomeAgent(cfg HAConfig) (*HomeAgent, error) {
	switch {
	case !cfg.Address.Is6() || cfg.Address.Is4In6() || !bcUnicast(cfg.Address):
		return nil, errors.Join(ErrHAConfig, errors.New("the HA address must be a unicast IPv6 address"))
	case cfg.AddressV4.IsValid() && !cfg.AddressV4.Is4():
		return nil, errors.Join(ErrHAConfig, errors.New("the HA IPv4 address must be an IPv4 address"))
	case cfg.HomePrefix.IsValid() && !cfg.HomePrefix.Addr().Is6():
		return nil, errors.Join(ErrHAConfig, errors.New("the home prefix must be an IPv6 prefix"))
	case cfg.HomePrefix4.IsValid() && !cfg.HomePrefix4.Addr().Is4():
		return nil, errors.Join(ErrHAConfig, errors.New("the IPv4 home prefix must be an IPv4 prefix"))
	case cfg.SAD == nil:
		return nil, errors.Join(ErrHAConfig, errors.New("a SAD querier is required"))
	case cfg.Inject == nil:
		return nil, errors.Join(ErrHAConfig, errors.New("an Inject function is required"))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NATRefresh <= 0 {
		cfg.NATRefresh = NATKeepaliveTimeout
	}
	if cfg.PrefixValidLifetime <= 0 {
		cfg.PrefixValidLifetime = DefaultPrefixValidLifetime
	}
	if cfg.PrefixPreferredLifetime <= 0 {
		cfg.PrefixPreferredLifetime = DefaultPrefixPreferredLifetime
	}
	cfg.PrefixPreferredLifetime = min(cfg.PrefixPreferredLifetime, cfg.PrefixValidLifetime)
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ha := &HomeAgent{
		cfg:    cfg,
		log:    log.Named("ha"),
		nat:    NewNATRecords(cfg.NATRecords),
		rl:     newTokenBuckets(cfg.BURate, cfg.BUBurst, cfg.Now),
		q:      newSigQueue(cfg.QueueLen),
		chWake: make(chan struct{}, 1),
		own:    ownAddresses(&cfg),
	}
	ha.drops.init(cfg.DropLogInterval)
	ha.cache = NewBindingCache(BindingCacheConfig{
		MaxLifetime: cfg.MaxLifetime,
		MaxCoAs:     cfg.MaxCoAs,
		Now:         cfg.Now,
		OnChange:    ha.onChange,
	})
	return ha, nil
}

// Cache returns the home agent's binding cache (read side: Lookup,
// AcceptsFrom for the inbound checks of the embedding program).
func (ha *HomeAgent) Cache() *BindingCache { return ha.cache }

// Start runs the signaling goroutine and binding expiry until Close.
func (ha *HomeAgent) Start() error {
	ha.mu.Lock()
	defer ha.mu.Unlock()
	if ha.closed {
		return errors.New("mip6: home agent closed")
	}
	if ha.started {
		return errors.New("mip6: home agent already started")
	}
	ha.started = true
	ctx, cancel := context.WithCancel(context.Background())
	ha.cancel = cancel
	ha.wg.Add(2)
	go func() {
		defer ha.wg.Done()
		ha.cache.Run(ctx)
	}()
	go func() {
		defer ha.wg.Done()
		ha.run(ctx)
	}()
	return nil
}

// Close stops the goroutines, then removes the home-link state of every
// binding still live (nobody intercepts for them any more). Bindings stay
// in the cache for Bindings(). Safe to call more than once.
func (ha *HomeAgent) Close() error {
	ha.mu.Lock()
	if ha.closed {
		ha.mu.Unlock()
		return nil
	}
	ha.closed = true
	if ha.cancel != nil {
		ha.cancel()
	}
	ha.mu.Unlock()
	ha.wg.Wait()
	ha.drainChanges()
	var errs []error
	if ha.cfg.HomeLink != nil {
		ha.cache.Range(func(b *Binding) bool {
			errs = append(errs, ha.homeLinkRemove(b.HoA))
			if b.HoA4.IsValid() {
				errs = append(errs, ha.homeLinkRemove(b.HoA4))
			}
			return true
		})
	}
	return errors.Join(errs...)
}

// run is the signaling goroutine.
func (ha *HomeAgent) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			ha.stopDropLog()
			return
		case <-ha.drops.wake:
			ha.dropsWoken()
		case <-ha.drops.timerC():
			ha.logDrops()
		case it := <-ha.q.full:
			ha.handle(it)
			ha.q.release(it)
			ha.drainChanges()
		case <-ha.chWake:
			ha.drainChanges()
		}
	}
}

// onChange is the BindingCache's OnChange: called with the cache lock
// held, from Update (signaling goroutine) or Expire (cache.Run). It only
// queues the change.
func (ha *HomeAgent) onChange(c Change) {
	ha.chMu.Lock()
	ha.chq = append(ha.chq, c)
	ha.chMu.Unlock()
	select {
	case ha.chWake <- struct{}{}:
	default:
	}
}

// drainChanges applies queued binding changes to the home link and
// reports them, in order (signaling goroutine, or Close after it ended).
func (ha *HomeAgent) drainChanges() {
	ha.chMu.Lock()
	cs := ha.chq
	ha.chq = nil
	ha.chMu.Unlock()
	for _, c := range cs {
		ha.applyChange(c)
	}
}

func (ha *HomeAgent) applyChange(c Change) {
	now := ha.cfg.Now()
	switch c.Kind {
	case BindingAdded:
		ha.homeLinkAdd(c.New.HoA)
		if c.New.HoA4.IsValid() {
			ha.homeLinkAdd(c.New.HoA4)
		}
		p := c.New.Primary()
		ha.log.Info("binding added", zap.Stringer("hoa", c.New.HoA), zap.Stringer("coa", p.Addr),
			zap.Bool("nat", p.NAT), zap.Uint16("seq", c.New.Seq), zap.Duration("lifetime", c.New.Lifetime))
		ha.event(HAEvent{Kind: HABindingAdded, HoA: c.New.HoA, CoA: p.Addr, NAT: p.NAT, Seq: c.New.Seq, Time: now})
	case BindingUpdated:
		if c.Old.HoA4 != c.New.HoA4 {
			if c.Old.HoA4.IsValid() {
				_ = ha.homeLinkRemove(c.Old.HoA4)
			}
			if c.New.HoA4.IsValid() {
				ha.homeLinkAdd(c.New.HoA4)
			}
		}
		p, op := c.New.Primary(), c.Old.Primary()
		if p != op {
			ha.log.Info("binding moved", zap.Stringer("hoa", c.New.HoA), zap.Stringer("from", op.Addr),
				zap.Stringer("coa", p.Addr), zap.Bool("nat", p.NAT), addrPortField("endpoint", p.Endpoint))
		}
		ha.event(HAEvent{Kind: HABindingUpdated, HoA: c.New.HoA, CoA: p.Addr, NAT: p.NAT, Seq: c.New.Seq, Time: now})
	case BindingRemoved:
		_ = ha.homeLinkRemove(c.Old.HoA)
		if c.Old.HoA4.IsValid() {
			_ = ha.homeLinkRemove(c.Old.HoA4)
		}
		p := c.Old.Primary()
		ha.log.Info("binding removed", zap.Stringer("hoa", c.Old.HoA), zap.Stringer("coa", p.Addr), zap.Bool("expired", c.Expired))
		ha.event(HAEvent{Kind: HABindingRemoved, HoA: c.Old.HoA, CoA: p.Addr, NAT: p.NAT, Expired: c.Expired, Seq: c.Old.Seq, Time: now})
	}
}

func (ha *HomeAgent) homeLinkAdd(a netip.Addr) {
	if ha.cfg.HomeLink == nil {
		return
	}
	if err := ha.cfg.HomeLink.Add(a); err != nil {
		ha.st.hlErr.Add(1)
		ha.log.Warn("home link add failed", zap.Stringer("addr", a), zap.Error(err))
	}
}

func (ha *HomeAgent) homeLinkRemove(a netip.Addr) error {
	if ha.cfg.HomeLink == nil {
		return nil
	}
	err := ha.cfg.HomeLink.Remove(a)
	if err != nil {
		ha.st.hlErr.Add(1)
		ha.log.Warn("home link remove failed", zap.Stringer("addr", a), zap.Error(err))
	}
	return err
}

func (ha *HomeAgent) event(e HAEvent) {
	if ha.cfg.OnEvent != nil {
		ha.cfg.OnEvent(e)
	}
}

// BeforeLookup is DR-4's first half: for a packet that arrived in UDP port
// 4191 over IPv4 (src.Encap EncapIP with an IPv4 source and a port: b is
// the inner IP packet) it records the outer source address and port under
// the packet's clear-text (SPI, sequence number) in the NAT records,
// before IPsec verifies it.
//
// Only UDP 4191 carries BUs from an IPv4 network (RFC 5555 §4.1: a BU from
// an IPv4-only network MUST use the UDP format, on the DSMIPv6 port), so
// ESP-in-UDP data on port 4500 is not recorded: a record per data packet
// would cost a slot lock on the hot path and push the BUs' records out of
// the table. It always returns true (never drops). Allocation-free.
func (ha *HomeAgent) BeforeLookup(b *pkt.Buf, src endpoint.Endpoint) bool {
	if src.Encap != endpoint.EncapIP {
		return true
	}
	a := src.Addr.Addr().Unmap()
	if !a.Is4() || src.Addr.Port() == 0 {
		return true
	}
	if spi, seq, ok := RecordKey(b.Bytes(), DecapIP); ok {
		ha.nat.Record(spi, seq, netip.AddrPortFrom(a, src.Addr.Port()))
	}
	return true
}

// AfterSeal runs after ESP sealed an outbound packet with SA spi; *ep is
// where the dataplane will send it.
//
//   - The BA or MPA being injected (recognised by its SA's SPI): built
//     whole, to the IPv6 CoA the BU came from with a type 2 Routing header
//     (BAToCoA, RFC 6275 §6.4) or in IPv4/UDP 4191 to the BU's outer IPv4
//     source (BAToV4, RFC 5555 §4.1); *ep becomes EncapIP. To a home
//     address at home: *ep unchanged.
//   - Anything else is DR-1: an IPv6 packet whose outer destination (the
//     SA template's home address) has a binding goes to the primary CoA:
//     *ep = (CoA, EncapRaw), or (NAT endpoint, EncapUDP) when a NAT was
//     detected (RFC 5555 §4.5). b is not touched: the dataplane cuts the
//     packet in front of ESP and the underlay's socket builds the outer
//     header (RFC 4303 §3.1.2: the ICV does not cover it). No binding:
//     *ep unchanged.
//
// false means drop: a signaling packet could not be built, or the primary
// CoA cannot be reached (HAStats.DR1Failed). Lock-free, allocation-free.
func (ha *HomeAgent) AfterSeal(b *pkt.Buf, spi uint32, ep *endpoint.Endpoint) bool {
	if d := ha.pending.Load(); d != nil && d.spi == spi {
		return ha.routeSignal(b, d, ep)
	}
	p := b.Bytes()
	if len(p) < header.IPv6HeaderLen || p[0]>>4 != header.IPv6Version {
		return true
	}
	bd, ok := ha.cache.Lookup(header.IPv6(p).Dst())
	if !ok {
		return true
	}
	to, ok := ha.toCoA(bd.Primary())
	if !ok {
		ha.st.dr1.Add(1)
		return false
	}
	*ep = to
	return true
}

// toCoA is DR-1's endpoint for data to care-of address c: raw ESP to an
// IPv6 CoA or to an IPv4 CoA without a NAT, ESP in UDP to the NAT's
// mapping (RFC 5555 §4.5, RFC 3948 §2.1). An IPv4 CoA needs the HA's IPv4
// address (RFC 5555 §4.1); false when c cannot be reached.
func (ha *HomeAgent) toCoA(c CareOf) (endpoint.Endpoint, bool) {
	coa := c.Addr.Unmap()
	switch {
	case coa.Is6():
		return endpoint.Endpoint{Addr: netip.AddrPortFrom(coa, 0), Encap: endpoint.EncapRaw}, true
	case !coa.Is4() || !ha.cfg.AddressV4.IsValid():
		return endpoint.Endpoint{}, false
	case !c.NAT:
		return endpoint.Endpoint{Addr: netip.AddrPortFrom(coa, 0), Encap: endpoint.EncapRaw}, true
	}
	nat := netip.AddrPortFrom(c.Endpoint.Addr().Unmap(), c.Endpoint.Port())
	if !nat.Addr().Is4() || nat.Port() == 0 {
		return endpoint.Endpoint{}, false
	}
	return endpoint.Endpoint{Addr: nat, Encap: endpoint.EncapUDP}, true
}

func (ha *HomeAgent) routeSignal(b *pkt.Buf, d *baDest, ep *endpoint.Endpoint) bool {
	var (
		to endpoint.Endpoint
		ok bool
	)
	switch d.kind {
	case baRH2:
		to, ok = BAToCoA(b, d.to.Addr())
	case baV4:
		to, ok = BAToV4(b, ha.cfg.AddressV4, d.to)
	default:
		return true
	}
	if ok {
		*ep = to
	}
	return ok
}

// Deliver takes a packet a transport-mode SA opened (p: the decrypted IP
// packet, IPv6 header and extension headers as received, e.g. with the
// Home Address option; spi, seq: the ESP SPI and sequence number; src: the
// underlay endpoint it came from). Mobility Header messages and ICMPv6
// Mobile Prefix Solicitations are signaling: Deliver rate-limits them per
// home address (the one the SA belongs to), copies them into the bounded
// queue of the signaling goroutine, or drops and counts them (and the
// signaling goroutine warns about it at most once per
// HAConfig.DropLogInterval, ha_droplog.go), and returns true. Other packets return false (for the TUN). It never blocks.
func (ha *HomeAgent) Deliver(p []byte, spi, seq uint32, src endpoint.Endpoint) bool {
	switch haClassify(p) {
	case sigNone:
		return false
	case sigMalformed:
		ha.st.received.Add(1)
		ha.st.rejected[rejMalformed].Add(1)
		return true
	}
	ha.st.received.Add(1)
	if len(p) > sigMaxPacket {
		ha.st.tooBig.Add(1)
		ha.drops.note()
		return true
	}
	key, _ := ha.cfg.SAD.HomeAddressOf(spi)
	if !ha.rl.allow(key) {
		ha.st.rateLimited.Add(1)
		ha.drops.note()
		return true
	}
	if !ha.q.put(p, spi, seq, src) {
		ha.st.queueFull.Add(1)
		ha.drops.note()
	}
	return true
}

type sigKind uint8

const (
	sigNone sigKind = iota
	sigMalformed
	sigMH
	sigMPS
)

// haClassify tells signaling (MH, ICMPv6 MPS) from other transport-mode
// traffic without copying.
func haClassify(p []byte) sigKind {
	if len(p) == 0 || p[0]>>4 != header.IPv6Version {
		return sigNone
	}
	ip := header.IPv6(p)
	if !ip.IsValid() {
		return sigMalformed
	}
	it := header.NewExtIter(ip)
	for {
		_, done, err := it.Next()
		if err != nil {
			return sigMalformed
		}
		if done {
			break
		}
	}
	end := header.IPv6HeaderLen + ip.PayloadLen()
	switch it.UpperProto() {
	case header.ProtoMobility:
		return sigMH
	case header.ProtoICMPv6:
		if off := it.UpperOffset(); off < end && p[off] == ICMPv6TypeMPS {
			return sigMPS
		}
	}
	return sigNone
}

// Bindings returns the live bindings, sorted by home address.
func (ha *HomeAgent) Bindings() []BindingStatus {
	var out []BindingStatus
	ha.cache.Range(func(b *Binding) bool {
		out = append(out, BindingStatus{
			HoA: b.HoA, HoA4: b.HoA4, CoAs: slices.Clone(b.CoAs), Seq: b.Seq,
			Lifetime: b.Lifetime, Expires: b.Expires, LastBU: b.Registered,
		})
		return true
	})
	slices.SortFunc(out, func(a, b BindingStatus) int { return a.HoA.Compare(b.HoA) })
	return out
}

// Stats returns a snapshot of the counters.
func (ha *HomeAgent) Stats() HAStats {
	s := HAStats{
		Received:       ha.st.received.Load(),
		BUAccepted:     ha.st.accepted.Load(),
		BURejected:     make(map[string]uint64),
		RateLimited:    ha.st.rateLimited.Load(),
		QueueFull:      ha.st.queueFull.Load(),
		TooBig:         ha.st.tooBig.Load(),
		BAsSent:        ha.st.baSent.Load(),
		BAsFailed:      ha.st.baFailed.Load(),
		NATDetected:    ha.st.nat.Load(),
		MPSAnswered:    ha.st.mps.Load(),
		HomeLinkErrors: ha.st.hlErr.Load(),
		DR1Failed:      ha.st.dr1.Load(),
		BadCoA:         ha.st.badCoA.Load(),
	}
	for r := range numReasons {
		if n := ha.st.rejected[r].Load(); n > 0 {
			s.BURejected[r.String()] = n
		}
	}
	return s
}
