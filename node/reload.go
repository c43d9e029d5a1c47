package node

// Reload: a running node takes a new Config and applies the difference,
// the way `swanctl --load-all` does, so that what runs is what the
// configuration says.
//
//	validate  the new SAs (in a scratch SAD), the key-sharing rules among
//	          them, the policies (in a scratch SPD) and the SPIs they name
//	plan      the SA steps in an order in which every intermediate SAD keeps
//	          the key rules: a step whose key is still held by an SA that
//	          goes away waits for that SA's delete
//	apply     peers (dataplane.SetPeers: atomic, and the check of the peer
//	          list), the SA steps (UpdateSA, AddSA, the deletes that free a
//	          key), the policy list (one spd.DB.Replace), the other deletes
//
// What the SPD names stays resolvable as long as possible: the SAs a new
// policy list needs exist before it is published, and an SA the old list
// needs is deleted after it, unless its key must move first.

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"weak"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
	"github.com/mipsec/mipsec/spd"
)

// SAChange names one SA a Reload added, updated or deleted.
type SAChange struct {
	Name string
	Dir  sad.Direction
	SPI  uint32
}

// String is "a-to-b-v4 (out SA 0x0000b001)", or the SA alone when it has
// no name.
func (c SAChange) String() string {
	if c.Name == "" {
		return SAName(c.Dir, c.SPI)
	}
	return fmt.Sprintf("%s (%s)", c.Name, SAName(c.Dir, c.SPI))
}

// ReloadResult is what a Reload changed, and what it did not apply.
type ReloadResult struct {
	// Added, Updated and Deleted are the SAs changed, in the order
	// applied. An updated SA kept its (direction, SPI); with the same
	// keys its sequence numbers and replay window continue.
	Added, Updated, Deleted []SAChange
	// Policies is set when the policy list was replaced (it differed).
	Policies bool
	// Peers is set when the peer list was replaced (dataplane.SetPeers:
	// a peer whose name and endpoint stay keeps its roamed endpoint).
	Peers bool
	// NeedsRestart lists the settings that differ from the running ones
	// but are not applied live (role, state_dir, tun.*, underlay.*,
	// mobility), each as "name: running -> new"; the node goes on with
	// the running ones.
	NeedsRestart []string
}

// Changed reports whether the Reload changed anything live.
func (r ReloadResult) Changed() bool {
	return len(r.Added)+len(r.Updated)+len(r.Deleted) > 0 || r.Policies || r.Peers
}

// Reload makes the running node's SAs, policies and peers those of cfg,
// changing only what differs, against the live SAD and SPD (which includes
// what AddSA, UpdateSA, DelSA, AddPolicy and DelPolicy did since):
//
//   - An SA is identified by its direction and SPI. One that is only in
//     cfg is added; one that is only live is deleted (an outbound one
//     records its exact last sequence number); one whose name, selectors,
//     lifetimes, ESP parameters or keys differ is replaced (UpdateSA: with
//     the same keys its sequence numbers and replay window continue). An
//     identical one is not touched: its counters, lifetimes, replay window
//     and sequence numbers go on. An SA that hard-expired and was removed
//     is added again.
//   - The policy list is replaced in one atomic step (spd.DB.Replace) if it
//     differs; a policy that keeps its name keeps its hit counter.
//   - The peer list is replaced (dataplane.SetPeers) if it differs.
//   - Role, StateDir, TUN, Underlay, Mobility and the IKE connections are
//     not applied live: the ones that differ are listed in
//     ReloadResult.NeedsRestart.
//   - The IKE daemon's SAs, policies and peers are not the
//     configuration's: they stay, and an SA of cfg may not take one of
//     their SPIs.
//     Logger, Device, Conn, Host, Workers, SeqStore and Reservations are
//     ignored.
//
// Everything is validated first: an SA sad or esp refuses, two SAs with
// one (dir, SPI), two SAs that may not share a key (KeyShareProblem), a
// policy spd refuses or an outbound PROTECT policy whose SPI is not an
// outbound SA of cfg, a peer list the dataplane refuses. On such an error
// nothing changed and the result is zero. A key that moves to another SPI
// is freed (its SA deleted or updated) before the SA that takes it is
// added; keys that swap between SAs are handled by deleting and adding.
//
// An error while applying (the state directory failing to record a
// reservation, or AddSA, UpdateSA, DelSA or a policy change racing with
// the Reload) stops it there: the result lists what was applied, and the
// error says where it stopped. Reloads of one node are serialised.
// Reload needs a started node.
func (n *Node) Reload(cfg Config) (ReloadResult, error) {
	if n.dp == nil {
		return ReloadResult{}, errors.New("node: Reload before Start")
	}
	st := n.reloadState()
	st.mu.Lock()
	defer st.mu.Unlock()

	n.mu.Lock()
	p, err := n.planReload(&cfg, st.peers)
	n.mu.Unlock()
	if err != nil {
		return ReloadResult{}, err
	}
	res := ReloadResult{NeedsRestart: n.needsRestart(&cfg)}
	if p.peers {
		if err := n.setManualPeers(cfg.Peers); err != nil {
			return ReloadResult{}, fmt.Errorf("peers: %w", err)
		}
		st.peers = clonePeers(cfg.Peers)
		res.Peers = true
	}
	for _, op := range p.ops {
		if err := n.applyOp(op, &res); err != nil {
			return res, err
		}
	}
	if p.policies {
		n.mu.Lock()
		err := n.spdb.Replace(n.withIKEPolicies(cfg.Policies))
		n.mu.Unlock()
		if err != nil {
			return res, fmt.Errorf("reload stopped replacing the policies: %w", err)
		}
		res.Policies = true
		n.log.Info("policies replaced", zap.Int("out", n.spdb.Len(sad.Outbound)), zap.Int("in", n.spdb.Len(sad.Inbound)))
	}
	for _, op := range p.late {
		if err := n.applyOp(op, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// reloadPlan is what a Reload does, validated.
type reloadPlan struct {
	// ops run before the policy list is replaced, late after it.
	ops, late []reloadOp
	policies  bool
	peers     bool
}

type opKind uint8

const (
	opDelete opKind = iota
	opUpdate
	opAdd
)

func (k opKind) String() string {
	return [...]string{"deleting", "updating", "adding"}[k]
}

// reloadOp is one SA step.
type reloadOp struct {
	kind opKind
	c    sad.Config // the new SA (opUpdate, opAdd); Dir and SPI for opDelete
	path string     // SAConfig.Path, for errors
	name string     // the SA's name, for the result
	// as is the list of the result the step goes to: its kind, but for
	// an update that became a delete and an add, whose add is reported
	// as the update and whose delete (silent) is not reported.
	as     opKind
	silent bool
}

func (n *Node) applyOp(op reloadOp, res *ReloadResult) error {
	var err error
	switch op.kind {
	case opDelete:
		err = n.DelSA(op.c.Dir, op.c.Params.SPI)
	case opUpdate:
		err = n.UpdateSA(op.c)
	case opAdd:
		err = n.AddSA(op.c)
	}
	ch := SAChange{Name: op.name, Dir: op.c.Dir, SPI: op.c.Params.SPI}
	if err != nil {
		what := ch.String()
		if op.path != "" {
			what = op.path + " " + what
		}
		return fmt.Errorf("reload stopped %s %s: %w", op.kind, what, err)
	}
	if !op.silent {
		list := [...]*[]SAChange{opDelete: &res.Deleted, opUpdate: &res.Updated, opAdd: &res.Added}[op.as]
		*list = append(*list, ch)
	}
	return nil
}

// keyHolder is an SA as the key rules see it: its direction, algorithm
// and key fingerprint.
type keyHolder struct {
	c  sad.Config // Dir and Params.Algorithm are what KeyShareProblem reads
	fp seqstore.Fingerprint
	ok bool // fp is known
}

// planReload validates cfg against the live node and orders the steps.
// The caller holds n.mu.
func (n *Node) planReload(cfg *Config, runningPeers []dataplane.PeerConfig) (*reloadPlan, error) {
	// The new SAs on their own: each valid, one per (dir, SPI), keys
	// shared only where KeyShareProblem allows it.
	scratch := sad.New(sad.Options{})
	defer scratch.Close()
	where := func(s SAConfig) string {
		if s.Path != "" {
			return s.Path
		}
		return SAName(s.Dir, s.Params.SPI)
	}
	newIdx := map[saKey]int{}
	built := make([]*sad.SA, len(cfg.SAs))
	fps := make([]seqstore.Fingerprint, len(cfg.SAs))
	byKey := map[seqstore.Fingerprint][]int{}
	for i, s := range cfg.SAs {
		k := saKey{s.Dir, s.Params.SPI}
		if j, dup := newIdx[k]; dup {
			return nil, fmt.Errorf("%s: %w: %s is also %s", where(s), sad.ErrDuplicateSPI, SAName(s.Dir, s.Params.SPI), where(cfg.SAs[j]))
		}
		newIdx[k] = i
		sa, err := scratch.Add(s.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where(s), err)
		}
		built[i] = sa
		fps[i] = KeyFingerprint(s.Params)
		for _, j := range byKey[fps[i]] {
			if p := KeyShareProblem(s.Config, cfg.SAs[j].Config); p != "" {
				return nil, fmt.Errorf("%s: the key of %s is also the key of %s (%s): %s", where(s), SAName(s.Dir, s.Params.SPI), where(cfg.SAs[j]), SAName(cfg.SAs[j].Dir, cfg.SAs[j].Params.SPI), p)
			}
		}
		byKey[fps[i]] = append(byKey[fps[i]], i)
	}
	// The policies: what spd refuses, and outbound PROTECT policies whose
	// SA would not exist.
	if err := spd.New(nil).Replace(cfg.Policies); err != nil {
		return nil, err
	}
	for i, pol := range cfg.Policies {
		if pol.Dir == sad.Outbound && pol.Action == spd.Protect {
			if _, ok := newIdx[saKey{sad.Outbound, pol.SPI}]; !ok {
				return nil, fmt.Errorf("policy %d %q: SPI %s is not an outbound SA of the new configuration", i, pol.Name, spiString(pol.SPI))
			}
		}
	}

	// The IKE daemon's SAs, policies and SPIs are not the configuration's:
	// a Reload neither touches them nor may take their SPIs.
	n.ik.mu.Lock()
	for i, s := range cfg.SAs {
		if n.ikeOwns(s.Dir, s.Params.SPI) {
			n.ik.mu.Unlock()
			return nil, fmt.Errorf("%s: %w: %s belongs to the IKE daemon", where(s), sad.ErrDuplicateSPI, SAName(cfg.SAs[i].Dir, s.Params.SPI))
		}
	}
	live := slices.DeleteFunc(n.sadb.List(), func(sa *sad.SA) bool {
		_, ike := n.ik.sas[saKey{sa.Dir(), sa.SPI()}]
		return ike
	})
	liveOut, liveIn := n.manualPolicies(sad.Outbound), n.manualPolicies(sad.Inbound)
	n.ik.mu.Unlock()

	// The live SAs and their keys.
	state := make(map[saKey]keyHolder, len(live))
	liveBy := make(map[saKey]*sad.SA, len(live))
	n.keysMu.Lock()
	for _, sa := range live {
		k := saKey{sa.Dir(), sa.SPI()}
		liveBy[k] = sa
		m, ok := n.keys[k]
		state[k] = keyHolder{c: sad.Config{Dir: sa.Dir(), Params: sa.Params()}, fp: m.fp, ok: ok}
	}
	p := &reloadPlan{}
	// The difference.
	var pending []reloadOp // updates and adds, in cfg order
	for i, s := range cfg.SAs {
		k := saKey{s.Dir, s.Params.SPI}
		op := reloadOp{c: s.Config, path: s.Path, name: s.Name}
		cur := liveBy[k]
		switch {
		case cur == nil:
			op.kind = opAdd
		case saChanged(cur, built[i], s.Config, n.keys, k):
			op.kind = opUpdate
		default:
			continue
		}
		op.as = op.kind
		pending = append(pending, op)
	}
	n.keysMu.Unlock()
	deletes := map[saKey]reloadOp{}
	var deleteOrder []saKey
	for _, sa := range live {
		k := saKey{sa.Dir(), sa.SPI()}
		if _, keep := newIdx[k]; !keep {
			deletes[k] = reloadOp{kind: opDelete, as: opDelete, c: sad.Config{Dir: k.dir, Params: sa.Params()}, name: sa.Name()}
			deleteOrder = append(deleteOrder, k)
		}
	}

	// The order. A pending step may run when no SA of the current state
	// other than its own holds its key in a way KeyShareProblem refuses.
	// The new SAs keep the rules among themselves (checked above), so
	// what blocks a step is an SA to be deleted, or one to be updated
	// away from that key.
	blockers := func(op reloadOp) []saKey {
		self := saKey{op.c.Dir, op.c.Params.SPI}
		fp := KeyFingerprint(op.c.Params)
		var out []saKey
		for k, h := range state {
			if k != self && h.ok && h.fp == fp && KeyShareProblem(op.c, h.c) != "" {
				out = append(out, k)
			}
		}
		slices.SortFunc(out, func(a, b saKey) int {
			return cmp.Or(cmp.Compare(a.dir, b.dir), cmp.Compare(a.spi, b.spi))
		})
		return out
	}
	emit := func(op reloadOp) {
		k := saKey{op.c.Dir, op.c.Params.SPI}
		if op.kind == opDelete {
			delete(state, k)
		} else {
			state[k] = keyHolder{c: op.c, fp: KeyFingerprint(op.c.Params), ok: true}
		}
		p.ops = append(p.ops, op)
	}
	for len(pending) > 0 {
		progress := false
		for i := 0; i < len(pending); {
			if len(blockers(pending[i])) == 0 {
				emit(pending[i])
				pending = slices.Delete(pending, i, i+1)
				progress = true
				continue
			}
			i++
		}
		if progress {
			continue
		}
		// Stuck: delete early an SA that goes away and holds a key a
		// step needs.
		for _, op := range pending {
			for _, b := range blockers(op) {
				if d, ok := deletes[b]; ok {
					emit(d)
					delete(deletes, b)
					progress = true
				}
			}
		}
		if progress {
			continue
		}
		// Keys that go round between SAs being updated: one of them is
		// deleted now and added with its new key once the others moved.
		i := slices.IndexFunc(pending, func(op reloadOp) bool { return op.kind == opUpdate })
		if i < 0 {
			// Unreachable: the new SAs keep the key rules among
			// themselves, and every other holder is deleted.
			return nil, fmt.Errorf("%s: no order of the changes keeps the key rules", where(SAConfig{Config: pending[0].c, Path: pending[0].path}))
		}
		u := pending[i]
		emit(reloadOp{kind: opDelete, c: u.c, path: u.path, name: u.name, silent: true})
		u.kind = opAdd // still reported as the update
		pending[i] = u
	}
	for _, k := range deleteOrder {
		if d, ok := deletes[k]; ok {
			p.late = append(p.late, d)
		}
	}

	p.policies = !policiesEqual(cfg.Policies, liveOut, liveIn)
	p.peers = !peersEqual(cfg.Peers, runningPeers)
	return p, nil
}

// saChanged reports whether the live SA cur (k) differs from the new
// config c, which the scratch SAD built as nw (normalized Params, without
// keys). keys are the node's key copies (n.keys; keysMu held).
func saChanged(cur, nw *sad.SA, c sad.Config, keys map[saKey]saKeyMaterial, k saKey) bool {
	if cur.Name() != c.Name || cur.Lifetime() != c.Lifetime || !slices.Equal(cur.Selectors(), c.Selectors) {
		return true
	}
	m, ok := keys[k]
	if !ok || !bytes.Equal(m.enc, c.Params.EncKey) || !bytes.Equal(m.auth, c.Params.AuthKey) {
		return true // no copy of the live keys: replace it to be sure
	}
	a, b := cur.Params(), nw.Params()
	// The live InitialSeq was raised (to the key's reservation, or past
	// the numbers a replaced SA used): only a start above it is a change.
	if b.InitialSeq > a.InitialSeq {
		return true
	}
	a.InitialSeq, b.InitialSeq = 0, 0
	return !reflect.DeepEqual(a, b)
}

// policiesEqual reports whether the list ps (both directions, in order)
// is the running one: out and in are the live lists of each direction.
func policiesEqual(ps, out, in []spd.Policy) bool {
	var nout, nin []spd.Policy
	for _, p := range ps {
		if p.Dir == sad.Outbound {
			nout = append(nout, p)
		} else {
			nin = append(nin, p)
		}
	}
	eq := func(a, b spd.Policy) bool {
		return a.Name == b.Name && a.Dir == b.Dir && a.Action == b.Action && a.SPI == b.SPI && slices.Equal(a.Selectors, b.Selectors)
	}
	return slices.EqualFunc(nout, out, eq) && slices.EqualFunc(nin, in, eq)
}

func peersEqual(a, b []dataplane.PeerConfig) bool {
	return slices.EqualFunc(a, b, func(x, y dataplane.PeerConfig) bool {
		return x.Name == y.Name && x.Endpoint == y.Endpoint && x.Roaming == y.Roaming &&
			x.RoamInterval == y.RoamInterval && x.Keepalive == y.Keepalive &&
			slices.Equal(x.OutSPIs, y.OutSPIs) && slices.Equal(x.InSPIs, y.InSPIs)
	})
}

func clonePeers(ps []dataplane.PeerConfig) []dataplane.PeerConfig {
	out := slices.Clone(ps)
	for i := range out {
		out[i].OutSPIs = slices.Clone(out[i].OutSPIs)
		out[i].InSPIs = slices.Clone(out[i].InSPIs)
	}
	return out
}

// needsRestart lists the settings of cfg that differ from those the node
// started with and that Reload does not apply.
func (n *Node) needsRestart(cfg *Config) []string {
	var out []string
	diff := func(name string, running, next any) {
		if !reflect.DeepEqual(running, next) {
			out = append(out, fmt.Sprintf("%s: %v -> %v", name, running, next))
		}
	}
	role := cfg.Role
	if role == "" {
		role = RoleGateway
	}
	diff("role", n.cfg.Role, role)
	diff("state_dir", n.cfg.StateDir, cfg.StateDir)
	ot, nt := n.cfg.TUN, cfg.TUN
	diff("tun.name", ot.Name, nt.Name)
	diff("tun.mtu", ot.MTU, nt.MTU)
	diff("tun.addresses", prefixes(ot.Addresses), prefixes(nt.Addresses))
	diff("tun.routes", prefixes(ot.Routes), prefixes(nt.Routes))
	ou, nu := n.cfg.Underlay, cfg.Underlay
	diff("underlay.local", localAddrs(ou), localAddrs(nu))
	diff("underlay.encap", encapName(ou), encapName(nu))
	diff("underlay.udp_port", ou.UDPPort, nu.UDPPort)
	diff("underlay.keepalive", ou.Keepalive, nu.Keepalive)
	diff("underlay.packet_socket", ou.PacketSocket, nu.PacketSocket)
	if !reflect.DeepEqual(normMobility(n.cfg.Mobility), normMobility(cfg.Mobility)) {
		out = append(out, "mobility: changed")
	}
	if (len(n.cfg.IKE.Connections) > 0 || len(cfg.IKE.Connections) > 0) && !reflect.DeepEqual(n.cfg.IKE.Connections, cfg.IKE.Connections) {
		out = append(out, "ike: changed")
	}
	return out
}

// prefixes prints a list of addresses or prefixes, "[]" when empty or
// nil alike.
func prefixes[T fmt.Stringer](ps []T) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return fmt.Sprint(s)
}

func localAddrs(u UnderlayConfig) string {
	var s []netip.Addr
	for _, a := range []netip.Addr{u.Local4, u.Local6} {
		if a.IsValid() {
			s = append(s, a)
		}
	}
	return prefixes(s)
}

func encapName(u UnderlayConfig) string {
	switch {
	case u.Raw && u.UDP:
		return "both"
	case u.UDP:
		return "udp"
	case u.Raw:
		return "raw"
	}
	return "none"
}

func normMobility(m MobilityConfig) MobilityConfig {
	if len(m.Interfaces) == 0 {
		m.Interfaces = nil
	}
	return m
}

// reloadState is what Reloads of one node share: their lock and the peer
// list the dataplane runs. It lives beside the Node, keyed by a weak
// pointer and dropped with the Node, so that Reload adds nothing to the
// Node itself; it could as well be a field of Node.
type reloadState struct {
	mu    sync.Mutex
	peers []dataplane.PeerConfig // Config.Peers until a Reload replaces them
}

var reloadStates struct {
	mu sync.Mutex
	m  map[weak.Pointer[Node]]*reloadState
}

func (n *Node) reloadState() *reloadState {
	k := weak.Make(n)
	reloadStates.mu.Lock()
	defer reloadStates.mu.Unlock()
	if s := reloadStates.m[k]; s != nil {
		return s
	}
	if reloadStates.m == nil {
		reloadStates.m = map[weak.Pointer[Node]]*reloadState{}
	}
	s := &reloadState{peers: clonePeers(n.cfg.Peers)}
	reloadStates.m[k] = s
	runtime.AddCleanup(n, func(k weak.Pointer[Node]) {
		reloadStates.mu.Lock()
		delete(reloadStates.m, k)
		reloadStates.mu.Unlock()
	}, k)
	return s
}
