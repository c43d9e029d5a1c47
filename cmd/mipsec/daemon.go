package main

// The daemon behind `mipsec run`: it owns the SAD, the SPD, the
// sequence-number reservations (seqstore) and the dataplane, and it
// is the controlTarget the control socket and the metrics endpoint use.
//
// Start-up, in order (nothing seals before its reservation is durable):
//
//	config -> SAD: for each outbound SA, load R, write R+chunk (fsync),
//	          add the SA with InitialSeq = R, bound it at R+chunk
//	       -> SPD -> TUN + underlay -> dataplane.Start -> reservation ticker
//	       -> control socket
//
// Shutdown (SIGINT/SIGTERM) runs it backwards: control socket, dataplane
// (no more Seal), SAD (SAs dead, counters final), then the exact last
// sequence number of every outbound SA is written, so a clean restart wastes
// no sequence numbers.

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
	"github.com/mipsec/mipsec/spd"
	"github.com/mipsec/mipsec/underlay"
)

// engine is what the daemon needs of the dataplane; *dataplane.Dataplane
// has it.
type engine interface {
	Start() error
	Close() error
	Stats() dataplane.Stats
	Peers() []dataplane.PeerStatus
	SetCapture(c dataplane.Capture)
}

// openIOFunc creates the TUN device and the underlay for cfg.
type openIOFunc func(cfg *Config, log *zap.Logger) (tun.Device, dataplane.Underlay, error)

// daemonOptions are the daemon's seams for tests.
type daemonOptions struct {
	// openIO creates the TUN and the underlay; nil means the Linux
	// devices (openLinuxIO).
	openIO openIOFunc
	// store and reserver configure the sequence-number reservations.
	store    seqstore.Options
	reserver seqstore.ReserverOptions
	// noControl skips the control socket.
	noControl bool
	// metricsAddr, when set, serves Prometheus metrics there (run --metrics).
	metricsAddr string
	// workers is dataplane.Config.Workers.
	workers int
	// mobility replaces the kernel side of the HA / MN (tests).
	mobility mobilitySeams
}

// daemon is one running mipsec instance.
type daemon struct {
	cfg  *Config
	log  *zap.Logger
	opts daemonOptions

	// ControlPath is where the control socket listens (config
	// control.socket, default DefaultControlPath).
	ControlPath string

	sadb  *sad.DB
	spdb  *spd.DB
	store *seqstore.Store
	res   *seqstore.Reserver

	dp  engine
	ctl *controlServer
	// ulStats are the underlay's own counters (nil when the underlay
	// keeps none, as in tests).
	ulStats *underlay.Stats
	// mob is the mobility layer (role = "ha" or "mn"), nil for a gateway.
	mob     *mobility
	started time.Time

	// mu serialises SAD/SPD changes (and the reservations that go with
	// them) from the control socket.
	mu sync.Mutex

	keysMu sync.Mutex
	keys   map[daemonSAKey]saKeyMaterial
	// keyUse lists the SAs of each key fingerprint (keyuse.go).
	keyUse map[seqstore.Fingerprint][]daemonSAKey

	closeOnce sync.Once
	closeErr  error
}

type daemonSAKey struct {
	dir sad.Direction
	spi uint32
}

type saKeyMaterial struct {
	enc, auth []byte
	fp        seqstore.Fingerprint
}

// newDaemon builds the SAD (with durable reservations for the outbound SAs)
// and the SPD from cfg. Nothing runs yet: Start opens the devices.
func newDaemon(cfg *Config, log *zap.Logger, opts daemonOptions) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, opts: opts, ControlPath: cfg.ControlSocket, keys: map[daemonSAKey]saKeyMaterial{},
		keyUse: map[seqstore.Fingerprint][]daemonSAKey{}}
	st, err := seqstore.Open(cfg.StateDir, opts.store)
	if err != nil {
		return nil, err
	}
	d.store = st
	ropts := opts.reserver
	ropts.OnError = func(spi uint32, err error) {
		d.log.Error("sequence number reservation failed; the SA sends nothing beyond its durable reservation until it succeeds",
			zap.String("spi", spiString(spi)), zap.Error(err))
	}
	d.res = seqstore.NewReserver(st, ropts)
	d.sadb = sad.New(sad.Options{OnExpire: d.onExpire})
	d.spdb = spd.New(d.sadb)
	fail := func(err error) (*daemon, error) {
		// Nothing sealed: record the start points again, not the
		// reservations made for them.
		d.sadb.Close()
		d.res.Flush()
		return nil, err
	}
	for _, s := range cfg.SAs {
		if err := d.addSA(s.Config); err != nil {
			return fail(fmt.Errorf("%s: %w", s.Path, err))
		}
	}
	if err := d.spdb.Replace(cfg.Policies); err != nil {
		return fail(err)
	}
	return d, nil
}

func spiString(spi uint32) string { return fmt.Sprintf("%#08x", spi) }

// Start opens the TUN and the underlay, starts the dataplane, the
// reservation ticker and the control socket.
func (d *daemon) Start() error {
	openIO := d.opts.openIO
	if openIO == nil {
		openIO = openLinuxIO
	}
	dev, ul, err := openIO(d.cfg, d.log)
	if err != nil {
		return err
	}
	var hooks dataplane.Hooks
	if d.cfg.Role == RoleHA || d.cfg.Role == RoleMN {
		seams := d.opts.mobility
		if d.opts.openIO != nil && seams.paramProblems == nil {
			// Not the kernel's TUN and sockets: leave its nftables alone.
			seams.paramProblems = func() (func() error, error) { return nil, nil }
		}
		m, err := newMobility(d.cfg, d.sadb, d.log.Named("mip6"), seams)
		if err != nil {
			dev.Close()
			ul.Close()
			return err
		}
		d.mob = m
		hooks = m.hooks()
	}
	dp, err := dataplane.New(dataplane.Config{
		TUN: dev, Underlay: ul, SAD: d.sadb, SPD: d.spdb, Peers: d.cfg.Peers,
		Workers: d.opts.workers, Logger: d.log.Named("dataplane"), Hooks: hooks,
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
	d.dp = dp
	if us, ok := ul.(interface {
		Stats() *underlay.Stats
	}); ok {
		d.ulStats = us.Stats()
	}
	if d.mob != nil {
		tunName := d.cfg.TUN.Name
		if n, err := dev.Name(); err == nil {
			tunName = n
		}
		if err := d.mob.start(dp, ul, tunName); err != nil {
			return fmt.Errorf("mobility (role %s): %w", d.cfg.Role, err)
		}
	}
	d.res.Start()
	d.started = time.Now()
	if !d.opts.noControl {
		ctl, err := listenControl(d.ControlPath, d, d.log.Named("control"))
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		d.ctl = ctl
	}
	d.log.Info("mipsec running",
		zap.String("config", d.cfg.File), zap.String("tun", d.cfg.TUN.Name),
		zap.Int("sas", len(d.sadb.List())), zap.Int("policies", d.spdb.Len(sad.Outbound)+d.spdb.Len(sad.Inbound)),
		zap.Int("peers", len(d.cfg.Peers)), zap.String("state_dir", d.cfg.StateDir), zap.String("control", d.ControlPath),
		zap.String("role", roleName(d.cfg.Role)))
	return nil
}

// Close stops everything in reverse order and records the exact sequence
// numbers. It is idempotent.
func (d *daemon) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		if d.ctl != nil {
			errs = append(errs, d.ctl.Close())
		}
		// The MN's de-registration BU and its BA go through the
		// dataplane: the mobility layer stops first.
		if d.mob != nil {
			if err := d.mob.close(); err != nil {
				d.log.Warn("mobility shutdown", zap.Error(err))
			}
		}
		if d.dp != nil {
			errs = append(errs, d.dp.Close())
		}
		d.res.Close()
		d.sadb.Close() // SAs dead: their counters are final
		if err := d.res.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("recording sequence numbers: %w", err))
		}
		d.keysMu.Lock()
		for k, m := range d.keys {
			clear(m.enc)
			clear(m.auth)
			delete(d.keys, k)
		}
		d.keysMu.Unlock()
		d.closeErr = errors.Join(errs...)
		d.log.Info("mipsec stopped", zap.Error(d.closeErr))
	})
	return d.closeErr
}

// onExpire logs lifetime events; a hard-expired outbound SA records its
// exact last sequence number.
func (d *daemon) onExpire(e sad.Event) {
	d.log.Info("sa lifetime", zap.String("sa", e.Name), zap.String("spi", spiString(e.SPI)),
		zap.Stringer("dir", e.Dir), zap.Bool("hard", e.Hard), zap.Stringer("reason", e.Reason))
	if e.Hard && e.Dir == sad.Outbound {
		if err := d.res.Release(e.SPI, e.SA); err != nil {
			d.log.Warn("recording the last sequence number", zap.String("spi", spiString(e.SPI)), zap.Error(err))
		}
	}
}

// addSA adds one SA; an outbound one gets its durable reservation first.
// The caller holds d.mu or runs before Start.
func (d *daemon) addSA(c sad.Config) error {
	spi := c.Params.SPI
	if d.sadb.Lookup(c.Dir, spi) != nil {
		return fmt.Errorf("%w: %v SA %s", sad.ErrDuplicateSPI, c.Dir, spiString(spi))
	}
	var res seqstore.LoadResult
	fp := keyFingerprint(c.Params)
	if err := d.checkKeyShare(c, fp); err != nil {
		return err
	}
	if c.Dir == sad.Outbound {
		initial, r, err := d.res.Prepare(spi, fp, seqstore.MaxSeq(c.Params.ESN), legacyFingerprints(c.Params)...)
		if err != nil {
			return fmt.Errorf("%s: %w", saName(c.Dir, spi), err)
		}
		res = r
		c.Params.InitialSeq = max(c.Params.InitialSeq, initial)
		// Bounded from its first packet, before Attach raises the bound.
		c.Params.SeqReserve, _ = d.res.Reserved(spi)
	}
	sa, err := d.sadb.Add(c)
	if err != nil {
		if c.Dir == sad.Outbound {
			d.res.Abort(spi)
		}
		return err
	}
	if c.Dir == sad.Outbound {
		if err := d.res.Attach(spi, sa); err != nil {
			return err
		}
	}
	d.storeKeys(c, fp)
	d.logSA("sa added", sa, res)
	return nil
}

func (d *daemon) logSA(msg string, sa *sad.SA, res seqstore.LoadResult) {
	p := sa.Params()
	fields := []zap.Field{zap.String("sa", sa.Name()), zap.String("spi", spiString(sa.SPI())),
		zap.Stringer("dir", sa.Dir()), zap.Stringer("algorithm", p.Algorithm), zap.Stringer("mode", p.Mode)}
	if sa.Dir() == sad.Outbound {
		r, _ := d.res.Reserved(sa.SPI())
		fields = append(fields, zap.Uint64("seq", sa.Seq()), zap.Uint64("reserved", r), zap.Stringer("seq_state", res))
		if sa.Seq() >= seqstore.MaxSeq(p.ESN) {
			d.log.Warn("sequence space exhausted: the SA cannot send; rekey it (new keys or SPI)", fields...)
			return
		}
	}
	d.log.Info(msg, fields...)
}

func (d *daemon) storeKeys(c sad.Config, fp seqstore.Fingerprint) {
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	k := daemonSAKey{c.Dir, c.Params.SPI}
	if old, ok := d.keys[k]; ok {
		clear(old.enc)
		clear(old.auth)
		d.unuseKey(old.fp, k)
	}
	d.keys[k] = saKeyMaterial{enc: append([]byte(nil), c.Params.EncKey...), auth: append([]byte(nil), c.Params.AuthKey...), fp: fp}
	d.keyUse[fp] = append(d.keyUse[fp], k)
}

// unuseKey removes k from the SAs of fp; the caller holds keysMu.
func (d *daemon) unuseKey(fp seqstore.Fingerprint, k daemonSAKey) {
	hs := d.keyUse[fp]
	for i, h := range hs {
		if h == k {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(d.keyUse, fp)
	} else {
		d.keyUse[fp] = hs
	}
}

func (d *daemon) dropKeys(dir sad.Direction, spi uint32) {
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	k := daemonSAKey{dir, spi}
	if old, ok := d.keys[k]; ok {
		clear(old.enc)
		clear(old.auth)
		delete(d.keys, k)
		d.unuseKey(old.fp, k)
	}
}

// --- controlTarget and the methods the control socket calls -------------

// SAD returns the live SA database.
func (d *daemon) SAD() *sad.DB { return d.sadb }

// SPD returns the live policy database.
func (d *daemon) SPD() *spd.DB { return d.spdb }

// Status is the daemon's part of the "status" answer.
func (d *daemon) Status() map[string]any {
	st := map[string]any{
		"config":    d.cfg.File,
		"tun":       d.cfg.TUN.Name,
		"state_dir": d.cfg.StateDir,
		"control":   d.ControlPath,
		"sas":       len(d.sadb.List()),
		"policies":  d.spdb.Len(sad.Outbound) + d.spdb.Len(sad.Inbound),
		"peers":     len(d.cfg.Peers),
		"role":      d.cfg.Role,
	}
	if !d.started.IsZero() {
		st["started"] = d.started.UTC().Format(time.RFC3339)
		st["uptime"] = time.Since(d.started).Truncate(time.Second).String()
	}
	return st
}

// saStat is one SA's counters with its sequence number state.
type saStat struct {
	Name     string    `json:"name,omitempty"`
	Dir      string    `json:"dir"`
	SPI      uint32    `json:"spi"`
	Seq      uint64    `json:"seq"`
	Reserved uint64    `json:"reserved,omitempty"`
	Stats    sad.Stats `json:"stats"`
}

// daemonStatsSnapshot is Stats' answer.
type daemonStatsSnapshot struct {
	SAs       []saStat        `json:"sas"`
	Dataplane dataplane.Stats `json:"dataplane"`
	// Drops are the dataplane's drops by reason name.
	Drops map[string]uint64 `json:"drops"`
}

// Stats returns the per-SA counters (sad) and the dataplane's counters
// and drops by reason.
func (d *daemon) Stats() daemonStatsSnapshot {
	var out daemonStatsSnapshot
	for _, sa := range d.sadb.List() {
		s := saStat{Name: sa.Name(), Dir: sa.Dir().String(), SPI: sa.SPI(), Seq: sa.Seq(), Stats: sa.Stats()}
		if sa.Dir() == sad.Outbound {
			s.Reserved, _ = d.res.Reserved(sa.SPI())
		}
		out.SAs = append(out.SAs, s)
	}
	out.Dataplane = d.DataplaneStats()
	out.Drops = map[string]uint64{}
	for r := range dataplane.NumDropReasons {
		out.Drops[r.String()] = out.Dataplane.Drops[r]
	}
	return out
}

// DataplaneStats returns the dataplane's counters (zero before Start).
func (d *daemon) DataplaneStats() dataplane.Stats {
	if d.dp == nil {
		return dataplane.Stats{}
	}
	return d.dp.Stats()
}

// UnderlayCounters returns the underlay's own counters (what it consumed
// or refused before the dataplane saw it), nil when it keeps none.
func (d *daemon) UnderlayCounters() []underlay.Counter {
	return d.ulStats.Counters()
}

// SAs lists the live SAs, outbound first.
func (d *daemon) SAs() []*sad.SA { return d.sadb.List() }

// Policies lists the policies of one direction in order.
func (d *daemon) Policies(dir sad.Direction) []spd.Policy { return d.spdb.List(dir) }

// AddSA adds an SA; an outbound one gets a durable sequence-number
// reservation first (a key used before under this SPI continues above its
// mark).
func (d *daemon) AddSA(c sad.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addSA(c)
}

// UpdateSA replaces an SA (sad.DB.Replace). With the same keys the
// sequence numbers continue and the reservation carries over; with new keys
// the SA starts from the new key's own reservation.
func (d *daemon) UpdateSA(c sad.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	spi := c.Params.SPI
	res := seqstore.Resumed
	fp := keyFingerprint(c.Params)
	if err := d.checkKeyShare(c, fp); err != nil {
		return err
	}
	if c.Dir == sad.Outbound {
		if d.sadb.Lookup(sad.Outbound, spi) == nil {
			return fmt.Errorf("%w: %v SA %s", sad.ErrNotFound, c.Dir, spiString(spi))
		}
		if old, ok := d.res.Fingerprint(spi); !ok || old != fp {
			initial, r, err := d.res.Prepare(spi, fp, seqstore.MaxSeq(c.Params.ESN), legacyFingerprints(c.Params)...)
			if err != nil {
				return fmt.Errorf("%s: %w", saName(c.Dir, spi), err)
			}
			res = r
			c.Params.InitialSeq = max(c.Params.InitialSeq, initial)
		} else if cur := d.sadb.Lookup(sad.Outbound, spi); cur != nil {
			// The same keys: the same start, so that sad.Replace hands
			// the esp state over instead of stopping the SA.
			c.Params.InitialSeq = max(c.Params.InitialSeq, cur.Params().InitialSeq)
		}
		// A rebuilt transform is bounded from its first packet.
		c.Params.SeqReserve, _ = d.res.Reserved(spi)
	}
	sa, _, err := d.sadb.Replace(c)
	if err != nil {
		if c.Dir == sad.Outbound {
			d.res.Abort(spi) // the old SA keeps its reservation
		}
		return err
	}
	if c.Dir == sad.Outbound {
		if err := d.res.Attach(spi, sa); err != nil {
			return err
		}
	}
	d.storeKeys(c, fp)
	d.logSA("sa updated", sa, res)
	return nil
}

// DelSA deletes an SA; an outbound one records its exact last sequence
// number first.
func (d *daemon) DelSA(dir sad.Direction, spi uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	sa, err := d.sadb.Delete(dir, spi)
	if err != nil {
		return err
	}
	if dir == sad.Outbound {
		if err := d.res.Release(spi, nil); err != nil {
			d.log.Warn("recording the last sequence number", zap.String("spi", spiString(spi)), zap.Error(err))
		}
	}
	d.dropKeys(dir, spi)
	d.log.Info("sa deleted", zap.String("sa", sa.Name()), zap.String("spi", spiString(spi)), zap.Stringer("dir", dir))
	return nil
}

// AddPolicy inserts p at index of its direction's list; -1 appends.
func (d *daemon) AddPolicy(index int, p spd.Policy) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	if index < 0 {
		err = d.spdb.Append(p)
	} else {
		err = d.spdb.Insert(index, p)
	}
	if err == nil {
		d.log.Info("policy added", zap.String("policy", p.Name), zap.Stringer("dir", p.Dir), zap.Stringer("action", p.Action), zap.Int("index", index))
	}
	return err
}

// DelPolicy removes the policy called name.
func (d *daemon) DelPolicy(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.spdb.Delete(name)
	if err == nil {
		d.log.Info("policy deleted", zap.String("policy", name))
	}
	return err
}

// SAKeys returns copies of an SA's keys (for `mipsec sa list --wireshark`).
func (d *daemon) SAKeys(dir sad.Direction, spi uint32) (enc, auth []byte, ok bool) {
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	m, ok := d.keys[daemonSAKey{dir, spi}]
	if !ok {
		return nil, nil, false
	}
	return append([]byte(nil), m.enc...), append([]byte(nil), m.auth...), true
}

// Peers lists the peers with their current endpoints (the configured
// ones before Start).
func (d *daemon) Peers() []dataplane.PeerStatus {
	if d.dp != nil {
		return d.dp.Peers()
	}
	st := make([]dataplane.PeerStatus, 0, len(d.cfg.Peers))
	for _, p := range d.cfg.Peers {
		st = append(st, dataplane.PeerStatus{Name: p.Name, Endpoint: p.Endpoint})
	}
	return st
}

// SetCapture installs (or, with nil, removes) the packet tap.
func (d *daemon) SetCapture(c dataplane.Capture) {
	if d.dp != nil {
		d.dp.SetCapture(c)
	}
}

// openLinuxIO creates and configures the TUN device and opens the
// underlay sockets.
func openLinuxIO(cfg *Config, log *zap.Logger) (tun.Device, dataplane.Underlay, error) {
	dev, err := dataplane.CreateTUN(cfg.TUN.Name, cfg.TUN.MTU)
	if err != nil {
		return nil, nil, err
	}
	name := cfg.TUN.Name
	if n, err := dev.Name(); err == nil {
		name = n
	}
	if err := dataplane.ConfigureTUN(name, cfg.TUN.Addresses, cfg.TUN.Routes, cfg.TUN.MTU); err != nil {
		dev.Close()
		return nil, nil, err
	}
	log.Info("tun up", zap.String("tun", name), zap.Int("mtu", cfg.TUN.MTU),
		zap.Stringers("addresses", cfg.TUN.Addresses), zap.Stringers("routes", cfg.TUN.Routes))
	uc := underlayConfig(cfg)
	ul, err := underlay.New(uc)
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	logUnderlayOpen(log, cfg, uc)
	return dev, ul, nil
}

// underlayConfig is the underlay.Config of cfg's [underlay]
// section and role: the sockets openLinuxIO opens.
func underlayConfig(cfg *Config) underlay.Config {
	uc := underlay.Config{IPv4: cfg.Underlay.Local4, IPv6: cfg.Underlay.Local6, UDPPort: cfg.Underlay.UDPPort,
		PacketSocket: cfg.Underlay.PacketSocket}
	switch {
	case cfg.Underlay.Raw && cfg.Underlay.UDP:
		uc.Mode = underlay.ModeBoth
	case cfg.Underlay.UDP:
		uc.Mode = underlay.ModeUDP
	default:
		uc.Mode = underlay.ModeRaw
	}
	if !uc.IPv4.IsValid() && !uc.IPv6.IsValid() {
		// No local address configured: listen on all of both families.
		uc.IPv4, uc.IPv6 = netip.IPv4Unspecified(), netip.IPv6Unspecified()
	}
	switch cfg.Role {
	case RoleHA:
		// BUs from IPv4 care-of addresses come in UDP 4191 (RFC 5555
		// §4.1); from IPv6 ones with a Home Address option (RFC 6275
		// §6.3), which the kernel does not process.
		uc.DSMIPv6 = cfg.Mobility.HAAddressV4.IsValid()
		uc.ExtHeaders = true
	case RoleMN:
		// BAs to an IPv6 care-of address carry a type 2 Routing header
		// (RFC 6275 §6.4); to an IPv4 one they come from UDP port 4191
		// to our 4500, which the UDP socket classifies.
		uc.ExtHeaders = true
	}
	return uc
}

// logUnderlayOpen logs the open underlay uc; with packet_socket it says
// once that raw ESP bypasses the kernel's egress hooks.
func logUnderlayOpen(log *zap.Logger, cfg *Config, uc underlay.Config) {
	var addrs []netip.Addr
	for _, a := range []netip.Addr{uc.IPv4, uc.IPv6} {
		if a.IsValid() {
			addrs = append(addrs, a)
		}
	}
	log.Info("underlay open", zap.Stringers("local", addrs),
		zap.Bool("raw", cfg.Underlay.Raw), zap.Bool("udp", cfg.Underlay.UDP), zap.Uint16("udp_port", uc.UDPPort),
		zap.Bool("dsmipv6", uc.DSMIPv6), zap.Bool("ext_headers", uc.ExtHeaders), zap.Bool("packet_socket", uc.PacketSocket))
	if uc.PacketSocket {
		log.Info("underlay.packet_socket: raw ESP leaves through an AF_PACKET socket (PACKET_QDISC_BYPASS), " +
			"bypassing netfilter OUTPUT and POSTROUTING, the egress qdisc and kernel fragmentation; " +
			"packets whose next hop is unresolved or that exceed the link MTU still take the raw IP socket")
	}
}

var _ controlTarget = (*daemon)(nil)
