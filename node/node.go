package node

// Start-up, in order (nothing seals before its reservation is durable):
//
//	Config -> SAD: for each outbound SA, load R, write R+chunk (fsync),
//	          add the SA with InitialSeq = R, bound it at R+chunk
//	       -> SPD -> TUN + underlay -> dataplane.Start -> mobility
//	       -> reservation ticker
//
// Close runs it backwards: mobility (the MN's de-registration still goes
// through the dataplane), dataplane (no more Seal), SAD (SAs dead,
// counters final), then the exact last sequence number of every outbound
// key is written, so a clean restart wastes no sequence numbers.

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/netcfg"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
	"github.com/mipsec/mipsec/spd"
	"github.com/mipsec/mipsec/underlay"
)

// Node is one running gateway, home agent or mobile node. Its methods are
// safe for concurrent use.
type Node struct {
	cfg Config
	log *zap.Logger

	sadb  *sad.DB
	spdb  *spd.DB
	store *seqstore.Store
	res   *seqstore.Reserver

	dp *dataplane.Dataplane
	// ulStats are the underlay's own counters (nil when the underlay
	// keeps none, as an injected one may).
	ulStats *underlay.Stats
	// routes are the policy routes and rules around the TUN
	// (UnderlayConfig.FWMark), removed at Close; nil when none.
	routes *netcfg.PolicyRoutes
	// mob is the mobility layer (RoleHA or RoleMN), nil for a gateway.
	mob     *mobility
	started time.Time
	events  events

	// mu serialises SAD/SPD changes (and the reservations that go with
	// them).
	mu sync.Mutex

	keysMu sync.Mutex
	keys   map[saKey]saKeyMaterial
	// keyUse lists the SAs of each key fingerprint (keyuse.go).
	keyUse map[seqstore.Fingerprint][]saKey

	// ik is the IKE daemon's side of the node (ike_kernel.go); ikeD the
	// daemon, nil without IKE connections (ike.go).
	ik   ikeState
	ikeD *ike.Daemon
	// ikeRunning: ikeD is started and not closed.
	ikeRunning atomic.Bool
	// ikeUL sends IKE messages once Start has the underlay (ike.go).
	ikeUL atomic.Pointer[ikeSender]
	// mobike moves a gateway's IKE SAs off vanished local addresses
	// (ike_mobike.go); nil when it does not watch.
	mobike *mobikeWatch

	closeOnce sync.Once
	closeErr  error
}

type saKey struct {
	dir sad.Direction
	spi uint32
}

type saKeyMaterial struct {
	enc, auth []byte
	fp        seqstore.Fingerprint
}

// New builds the SAD (with durable reservations for the outbound keys) and
// the SPD of cfg. Nothing runs yet: Start opens the devices. An error names
// the SA (SAConfig.Path) or policy it is about.
func New(cfg Config) (*Node, error) {
	if cfg.Role == "" {
		cfg.Role = RoleGateway
	}
	switch cfg.Role {
	case RoleGateway, RoleHA, RoleMN:
	default:
		return nil, fmt.Errorf("node: role %q: want %q, %q or %q", cfg.Role, RoleGateway, RoleHA, RoleMN)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.StateDir == "" {
		return nil, errors.New("node: no StateDir: the sequence-number reservations need a persistent directory")
	}
	n := &Node{cfg: cfg, log: cfg.Logger, keys: map[saKey]saKeyMaterial{},
		keyUse: map[seqstore.Fingerprint][]saKey{}}
	n.events.log = n.log
	n.ik.init(cfg.Peers)
	st, err := seqstore.Open(cfg.StateDir, cfg.SeqStore)
	if err != nil {
		return nil, err
	}
	n.store = st
	ropts := cfg.Reservations
	ropts.OnError = func(spi uint32, err error) {
		n.log.Error("sequence number reservation failed; the SA sends nothing beyond its durable reservation until it succeeds",
			zap.String("spi", spiString(spi)), zap.Error(err))
	}
	n.res = seqstore.NewReserver(st, ropts)
	n.sadb = sad.New(sad.Options{OnExpire: n.onExpire})
	n.spdb = spd.New(n.sadb)
	fail := func(err error) (*Node, error) {
		// Nothing sealed: record the start points again, not the
		// reservations made for them.
		n.sadb.Close()
		n.res.Flush()
		return nil, err
	}
	for _, s := range cfg.SAs {
		if err := n.addSA(s.Config); err != nil {
			if s.Path != "" {
				err = fmt.Errorf("%s: %w", s.Path, err)
			}
			return fail(err)
		}
	}
	if err := n.spdb.Replace(cfg.Policies); err != nil {
		return fail(err)
	}
	if err := n.newIKE(); err != nil {
		return fail(err)
	}
	return n, nil
}

func spiString(spi uint32) string { return fmt.Sprintf("%#08x", spi) }

// Start opens the TUN and the underlay (or takes Config.Device and
// Config.Conn), starts the dataplane, the mobility layer and the
// reservation ticker. After a failed Start, call Close.
func (n *Node) Start() error {
	dev, ul := n.cfg.Device, n.cfg.Conn
	if dev == nil || ul == nil {
		if dev != nil || ul != nil {
			return errors.New("node: Device and Conn are injected together or not at all")
		}
		var err error
		if dev, ul, n.routes, err = openLinuxIO(&n.cfg, n.log, n.ReceiveIKE); err != nil {
			return err
		}
	}
	var hooks dataplane.Hooks
	if n.cfg.Role == RoleHA || n.cfg.Role == RoleMN {
		host := n.cfg.Host
		if n.cfg.Device != nil && host.ParamProblems == nil {
			// Not the kernel's TUN and sockets: leave its nftables alone.
			host.ParamProblems = func() (func() error, error) { return nil, nil }
		}
		if n.cfg.Device != nil && host.Forwarding == nil {
			// Nor does the kernel forward between the home link and it.
			host.Forwarding = func(netip.Addr) bool { return true }
		}
		m, err := newMobility(&n.cfg, n.sadb, n.log.Named("mip6"), host, &n.events)
		if err != nil {
			dev.Close()
			ul.Close()
			return err
		}
		n.mob = m
		m.ike = n.ikeD
		hooks = m.hooks()
	}
	n.ik.mu.Lock()
	peers := n.allPeers()
	n.ik.mu.Unlock()
	dp, err := dataplane.New(dataplane.Config{
		TUN: dev, Underlay: ul, SAD: n.sadb, SPD: n.spdb, Peers: peers,
		Workers: n.cfg.Workers, Logger: n.log.Named("dataplane"), Hooks: hooks,
		OnPeerEndpoint: n.onPeerEndpoint, OnAcquire: n.onAcquire,
		UDPPort: n.cfg.Underlay.UDPPort, UnderlayRemotes: n.underlayRemotes(),
	})
	if err != nil {
		dev.Close()
		ul.Close()
		return err
	}
	if err := dp.Start(); err != nil {
		dp.Close()
		return err
	}
	n.ik.mu.Lock()
	n.dp = dp // the IKE peers go to it from now on
	n.ik.mu.Unlock()
	if us, ok := ul.(interface {
		Stats() *underlay.Stats
	}); ok {
		n.ulStats = us.Stats()
	}
	tunName := n.cfg.TUN.Name
	if nm, err := dev.Name(); err == nil {
		tunName = nm
	}
	if n.mob != nil {
		if err := n.mob.start(dp, ul, tunName); err != nil {
			return fmt.Errorf("mobility (role %s): %w", n.cfg.Role, err)
		}
	}
	if err := n.startIKE(ul); err != nil {
		return err
	}
	n.startMOBIKE(tunName)
	n.res.Start()
	n.started = time.Now()
	n.log.Info("node running",
		zap.String("tun", n.cfg.TUN.Name),
		zap.Int("sas", len(n.sadb.List())), zap.Int("policies", n.spdb.Len(sad.Outbound)+n.spdb.Len(sad.Inbound)),
		zap.Int("peers", len(n.cfg.Peers)), zap.String("state_dir", n.cfg.StateDir),
		zap.String("role", RoleName(n.cfg.Role)))
	return nil
}

// underlayRemotes are the outer destinations no peer and no SA names:
// the mobile node's home agent (the loop check, dataplane.DropLoop).
func (n *Node) underlayRemotes() []netip.Addr {
	if n.cfg.Role != RoleMN {
		return nil
	}
	return []netip.Addr{n.cfg.Mobility.HAAddress, n.cfg.Mobility.HAAddressV4}
}

// Close stops everything in reverse order and records the exact sequence
// numbers. It is idempotent; subscribers' channels are closed.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		// The IKE daemon first: its Deletes go out through the underlay
		// and it removes its children through the Kernel.
		// The address watch before it: no move starts on a closing
		// daemon, and those in flight end with it.
		n.mobike.stop()
		if n.ikeD != nil {
			n.ikeRunning.Store(false)
			if err := n.ikeD.Close(); err != nil {
				n.log.Warn("ike shutdown", zap.Error(err))
			}
		}
		n.mobike.wait()
		// The MN's de-registration BU and its BA go through the
		// dataplane: the mobility layer stops first.
		if n.mob != nil {
			if err := n.mob.close(); err != nil {
				n.log.Warn("mobility shutdown", zap.Error(err))
			}
		}
		if n.dp != nil {
			errs = append(errs, n.dp.Close())
		}
		// After the TUN is gone (its routes went with it): the rules, and
		// the routes of a TUN a failed Start left open.
		if err := n.routes.Remove(); err != nil {
			errs = append(errs, fmt.Errorf("policy routing: %w", err))
		}
		n.res.Close()
		n.sadb.Close() // SAs dead: their counters are final
		if err := n.res.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("recording sequence numbers: %w", err))
		}
		n.keysMu.Lock()
		for k, m := range n.keys {
			clear(m.enc)
			clear(m.auth)
			delete(n.keys, k)
		}
		n.keysMu.Unlock()
		n.events.close()
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped", zap.Error(n.closeErr))
	})
	return n.closeErr
}

// onExpire logs lifetime events; a hard-expired outbound SA records its
// exact last sequence number.
func (n *Node) onExpire(e sad.Event) {
	fields := []zap.Field{zap.String("sa", e.Name), zap.String("spi", spiString(e.SPI)),
		zap.Stringer("dir", e.Dir), zap.Stringer("reason", e.Reason)}
	if n.ikeExpired(e) {
		// The daemon rekeys (soft) or deletes the child (hard); no
		// reservation to record.
		n.log.Info("ike sa lifetime", append(fields, zap.Bool("hard", e.Hard))...)
		n.events.publish(SAExpired{Time: time.Now(), Name: e.Name, Dir: e.Dir, SPI: e.SPI, Hard: e.Hard, Reason: e.Reason})
		return
	}
	// Nothing in the node rekeys: a key manager subscribed to SAExpired
	// may; otherwise the hard limit ends the SA's traffic.
	if e.Hard {
		n.log.Error("sa removed at its hard lifetime: the traffic it carried is dropped until an SA replaces it (sa add, or a reload with new keys)", fields...)
	} else {
		n.log.Warn("sa reached its soft lifetime: replace it before the hard lifetime removes it", fields...)
	}
	if e.Hard && e.Dir == sad.Outbound {
		if err := n.res.Release(e.SPI, e.SA); err != nil {
			n.log.Warn("recording the last sequence number", zap.String("spi", spiString(e.SPI)), zap.Error(err))
		}
	}
	n.events.publish(SAExpired{Time: time.Now(), Name: e.Name, Dir: e.Dir, SPI: e.SPI, Hard: e.Hard, Reason: e.Reason})
}

// addSA adds one SA; an outbound one gets its durable reservation first.
// The caller holds n.mu or runs before Start.
func (n *Node) addSA(c sad.Config) error {
	spi := c.Params.SPI
	if n.sadb.Lookup(c.Dir, spi) != nil {
		return fmt.Errorf("%w: %v SA %s", sad.ErrDuplicateSPI, c.Dir, spiString(spi))
	}
	n.ik.mu.Lock()
	owned := n.ikeOwns(c.Dir, spi)
	n.ik.mu.Unlock()
	if owned {
		return fmt.Errorf("%w: %v SA %s belongs to the IKE daemon", sad.ErrDuplicateSPI, c.Dir, spiString(spi))
	}
	var res seqstore.LoadResult
	fp := KeyFingerprint(c.Params)
	if err := n.checkKeyShare(c, fp); err != nil {
		return err
	}
	if c.Dir == sad.Outbound {
		initial, r, err := n.res.Prepare(spi, fp, seqstore.MaxSeq(c.Params.ESN), LegacyFingerprints(c.Params)...)
		if err != nil {
			return fmt.Errorf("%s: %w", SAName(c.Dir, spi), err)
		}
		res = r
		c.Params.InitialSeq = max(c.Params.InitialSeq, initial)
		// Bounded from its first packet, before Attach raises the bound.
		c.Params.SeqReserve, _ = n.res.Reserved(spi)
	}
	sa, err := n.sadb.Add(c)
	if err != nil {
		if c.Dir == sad.Outbound {
			n.res.Abort(spi)
		}
		return err
	}
	if c.Dir == sad.Outbound {
		if err := n.res.Attach(spi, sa); err != nil {
			return err
		}
	}
	n.storeKeys(c, fp)
	n.logSA("sa added", sa, res)
	return nil
}

func (n *Node) logSA(msg string, sa *sad.SA, res seqstore.LoadResult) {
	p := sa.Params()
	fields := []zap.Field{zap.String("sa", sa.Name()), zap.String("spi", spiString(sa.SPI())),
		zap.Stringer("dir", sa.Dir()), zap.Stringer("algorithm", p.Algorithm), zap.Stringer("mode", p.Mode)}
	if sa.Dir() == sad.Outbound {
		r, _ := n.res.Reserved(sa.SPI())
		fields = append(fields, zap.Uint64("seq", sa.Seq()), zap.Uint64("reserved", r), zap.Stringer("seq_state", res))
		if sa.Seq() >= seqstore.MaxSeq(p.ESN) {
			n.log.Warn("sequence space exhausted: the SA cannot send; rekey it (new keys or SPI)", fields...)
			return
		}
	}
	n.log.Info(msg, fields...)
}

func (n *Node) storeKeys(c sad.Config, fp seqstore.Fingerprint) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	k := saKey{c.Dir, c.Params.SPI}
	if old, ok := n.keys[k]; ok {
		clear(old.enc)
		clear(old.auth)
		n.unuseKey(old.fp, k)
	}
	n.keys[k] = saKeyMaterial{enc: append([]byte(nil), c.Params.EncKey...), auth: append([]byte(nil), c.Params.AuthKey...), fp: fp}
	n.keyUse[fp] = append(n.keyUse[fp], k)
}

// unuseKey removes k from the SAs of fp; the caller holds keysMu.
func (n *Node) unuseKey(fp seqstore.Fingerprint, k saKey) {
	hs := n.keyUse[fp]
	for i, h := range hs {
		if h == k {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(n.keyUse, fp)
	} else {
		n.keyUse[fp] = hs
	}
}

func (n *Node) dropKeys(dir sad.Direction, spi uint32) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	k := saKey{dir, spi}
	if old, ok := n.keys[k]; ok {
		clear(old.enc)
		clear(old.auth)
		delete(n.keys, k)
		n.unuseKey(old.fp, k)
	}
}

// SAD returns the live SA database (read it; change SAs through AddSA,
// UpdateSA and DelSA, which keep the reservations and key checks).
func (n *Node) SAD() *sad.DB { return n.sadb }

// SPD returns the live policy database (read it; change it through
// AddPolicy and DelPolicy).
func (n *Node) SPD() *spd.DB { return n.spdb }

// Status is a summary of a node.
type Status struct {
	Role     string
	TUN      string
	StateDir string
	SAs      int
	Policies int
	Peers    int
	// IKESAs is the number of established IKE SAs (0 without IKE).
	IKESAs int
	// Started is when Start returned; zero before.
	Started time.Time
}

// Status returns the node's summary.
func (n *Node) Status() Status {
	return Status{
		Role: n.cfg.Role, TUN: n.cfg.TUN.Name, StateDir: n.cfg.StateDir,
		SAs: len(n.sadb.List()), Policies: n.spdb.Len(sad.Outbound) + n.spdb.Len(sad.Inbound),
		Peers: len(n.Peers()), IKESAs: n.ikeSACount(), Started: n.started,
	}
}

// SAStats is one SA's counters with its sequence number state.
type SAStats struct {
	Name     string    `json:"name,omitempty"`
	Dir      string    `json:"dir"`
	SPI      uint32    `json:"spi"`
	Seq      uint64    `json:"seq"`
	Reserved uint64    `json:"reserved,omitempty"`
	Stats    sad.Stats `json:"stats"`
}

// Stats are a node's counters.
type Stats struct {
	SAs       []SAStats       `json:"sas"`
	Dataplane dataplane.Stats `json:"dataplane"`
	// Drops are the dataplane's drops by reason name.
	Drops map[string]uint64 `json:"drops"`
	// EventsDropped counts events a subscriber had no room for.
	EventsDropped uint64 `json:"events_dropped"`
}

// Stats returns the per-SA counters (sad) and the dataplane's counters
// and drops by reason.
func (n *Node) Stats() Stats {
	var out Stats
	for _, sa := range n.sadb.List() {
		s := SAStats{Name: sa.Name(), Dir: sa.Dir().String(), SPI: sa.SPI(), Seq: sa.Seq(), Stats: sa.Stats()}
		if sa.Dir() == sad.Outbound {
			s.Reserved, _ = n.res.Reserved(sa.SPI())
		}
		out.SAs = append(out.SAs, s)
	}
	out.Dataplane = n.DataplaneStats()
	out.EventsDropped = n.events.droppedCount()
	out.Drops = map[string]uint64{}
	for r := range dataplane.NumDropReasons {
		out.Drops[r.String()] = out.Dataplane.Drops[r]
	}
	return out
}

// DataplaneStats returns the dataplane's counters (zero before Start).
func (n *Node) DataplaneStats() dataplane.Stats {
	if n.dp == nil {
		return dataplane.Stats{}
	}
	return n.dp.Stats()
}

// UnderlayCounters returns the underlay's own counters (what it consumed
// or refused before the dataplane saw it), nil when it keeps none.
func (n *Node) UnderlayCounters() []underlay.Counter {
	return n.ulStats.Counters()
}

// SAs lists the live SAs, outbound first.
func (n *Node) SAs() []*sad.SA { return n.sadb.List() }

// Policies lists the policies of one direction in order.
func (n *Node) Policies(dir sad.Direction) []spd.Policy { return n.spdb.List(dir) }

// AddSA adds an SA; an outbound one gets a durable sequence-number
// reservation first (a key used before under this SPI continues above its
// mark).
func (n *Node) AddSA(c sad.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addSA(c)
}

// UpdateSA replaces an SA (sad.DB.Replace). With the same keys the
// sequence numbers continue and the reservation carries over; with new keys
// the SA starts from the new key's own reservation.
func (n *Node) UpdateSA(c sad.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	spi := c.Params.SPI
	if n.isIKESA(c.Dir, spi) {
		return fmt.Errorf("node: %s is the IKE daemon's: it rekeys it (ike rekey), a manual update would not", SAName(c.Dir, spi))
	}
	res := seqstore.Resumed
	fp := KeyFingerprint(c.Params)
	if err := n.checkKeyShare(c, fp); err != nil {
		return err
	}
	if c.Dir == sad.Outbound {
		if n.sadb.Lookup(sad.Outbound, spi) == nil {
			return fmt.Errorf("%w: %v SA %s", sad.ErrNotFound, c.Dir, spiString(spi))
		}
		if old, ok := n.res.Fingerprint(spi); !ok || old != fp {
			initial, r, err := n.res.Prepare(spi, fp, seqstore.MaxSeq(c.Params.ESN), LegacyFingerprints(c.Params)...)
			if err != nil {
				return fmt.Errorf("%s: %w", SAName(c.Dir, spi), err)
			}
			res = r
			c.Params.InitialSeq = max(c.Params.InitialSeq, initial)
		} else if cur := n.sadb.Lookup(sad.Outbound, spi); cur != nil {
			// The same keys: the same start, so that sad.Replace hands
			// the esp state over instead of stopping the SA.
			c.Params.InitialSeq = max(c.Params.InitialSeq, cur.Params().InitialSeq)
		}
		// A rebuilt transform is bounded from its first packet.
		c.Params.SeqReserve, _ = n.res.Reserved(spi)
	}
	sa, _, err := n.sadb.Replace(c)
	if err != nil {
		if c.Dir == sad.Outbound {
			n.res.Abort(spi) // the old SA keeps its reservation
		}
		return err
	}
	if c.Dir == sad.Outbound {
		if err := n.res.Attach(spi, sa); err != nil {
			return err
		}
	}
	n.storeKeys(c, fp)
	n.logSA("sa updated", sa, res)
	return nil
}

// DelSA deletes an SA; an outbound one records its exact last sequence
// number first.
func (n *Node) DelSA(dir sad.Direction, spi uint32) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isIKESA(dir, spi) {
		// The daemon still counts on it; its peer's next rekey or DPD
		// notices.
		return n.delIKESA(dir, spi)
	}
	sa, err := n.sadb.Delete(dir, spi)
	if err != nil {
		return err
	}
	if dir == sad.Outbound {
		if err := n.res.Release(spi, nil); err != nil {
			n.log.Warn("recording the last sequence number", zap.String("spi", spiString(spi)), zap.Error(err))
		}
	}
	n.dropKeys(dir, spi)
	n.log.Info("sa deleted", zap.String("sa", sa.Name()), zap.String("spi", spiString(spi)), zap.Stringer("dir", dir))
	return nil
}

// AddPolicy inserts p at index of its direction's list; -1 appends.
func (n *Node) AddPolicy(index int, p spd.Policy) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	if index < 0 {
		err = n.spdb.Append(p)
	} else {
		err = n.spdb.Insert(index, p)
	}
	if err == nil {
		n.log.Info("policy added", zap.String("policy", p.Name), zap.Stringer("dir", p.Dir), zap.Stringer("action", p.Action), zap.Int("index", index))
	}
	return err
}

// DelPolicy removes the policy called name.
func (n *Node) DelPolicy(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	err := n.spdb.Delete(name)
	if err == nil {
		n.log.Info("policy deleted", zap.String("policy", name))
	}
	return err
}

// SAKeys returns copies of an SA's keys (for `mipsec sa list --wireshark`).
func (n *Node) SAKeys(dir sad.Direction, spi uint32) (enc, auth []byte, ok bool) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	m, ok := n.keys[saKey{dir, spi}]
	if !ok {
		return nil, nil, false
	}
	return append([]byte(nil), m.enc...), append([]byte(nil), m.auth...), true
}

// Peers lists the peers with their current endpoints (the configured
// ones before Start).
func (n *Node) Peers() []dataplane.PeerStatus {
	if n.dp != nil {
		return n.dp.Peers()
	}
	st := make([]dataplane.PeerStatus, 0, len(n.cfg.Peers))
	for _, p := range n.cfg.Peers {
		st = append(st, dataplane.PeerStatus{Name: p.Name, Endpoint: p.Endpoint})
	}
	return st
}

// SetCapture installs (or, with nil, removes) the packet tap.
func (n *Node) SetCapture(c dataplane.Capture) {
	if n.dp != nil {
		n.dp.SetCapture(c)
	}
}
