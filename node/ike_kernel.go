package node

// The node as the IKE daemon's Kernel (ike.Kernel): IKE-made Child SAs go
// into the node's own SAD and SPD beside the manual ones, and each IKE
// peer (ike.ChildSA.Peer) becomes a dataplane peer beside the configured
// ones.
//
//	AddInbound   inbound SA (RemoteTS -> LocalTS), inbound PROTECT policies
//	             (hit counting, dataplane/inpolicy.go), the SPI joins the
//	             peer's InSPIs
//	AddOutbound  outbound SA, the SPI joins the peer's OutSPIs, then the
//	             outbound PROTECT policies of PolicyName point at it (one
//	             spd.DB.Replace: a rekey switches them atomically, RFC 7296
//	             §2.8; the replaced SA stays until DelSA)
//	DelSA        the SA and its SPI in the peer; a peer without SAs goes
//	DelPolicies  both directions' policies of a child, one Replace
//	SetEndpoint  the peer's endpoint (raw ESP or ESP in UDP, RFC 3948)
//
// An IKE child's traffic is accepted only from its inbound SA, which
// checks every decrypted packet against the child's selectors (sad.SA,
// RFC 4301 §5.2); the underlay delivers no cleartext from outside, so
// cleartext of those selectors never enters. The policies of a new child
// go first in their direction's list: the negotiated selectors are what
// the peer agreed to protect, and a configured catch-all DISCARD (RFC 4301
// §5) must not shadow them. Names: "<PolicyName>#<i>" outbound,
// "<PolicyName>#in<i>" inbound, one per (LocalTS, RemoteTS) pair.
//
// Traps (start_action trap, ike.StartTrap): until such a child has an SA,
// its outbound policies, under the same names, are traps over its
// configured selectors, PROTECT with a reserved SPI no SA has (ike.go
// installTraps, dataplane/acquire.go); AddOutbound's policies replace them
// and DelPolicies puts them back (a rekey keeps the child's policies).
//
// Sequence numbers: an IKE-made SA's keys come from a fresh KEYMAT and are
// never used under another SPI or after a restart (RFC 7296 §2.17: a new
// Child SA, a rekey included, gets new nonces and so new keys), so its
// counter starts at 0 and nothing of it goes to the state directory (no
// reservation, no fingerprint file: package seqstore exists for manual
// keys, which outlive the process). For the same reason the key-sharing
// checks (keyuse.go) skip them. A restart loses the IKE SAs, and the
// peers negotiate new ones.
//
// Locks: n.mu (SAD and SPD changes, as for manual SAs), then n.ik.mu (the
// maps below and the peer list). The lifetime events (onExpire) take
// n.ik.mu only.

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// ikeState is what the node keeps for the IKE daemon.
type ikeState struct {
	mu sync.Mutex
	// held are inbound SPIs AllocSPI handed out and AddInbound has not
	// installed yet.
	held map[uint32]struct{}
	// sas are the IKE-made SAs.
	sas map[saKey]ikeSA
	// peers are the IKE peers by name (ike.ChildSA.Peer).
	peers map[string]*ikePeer
	// policies are the SPD names of each child's policies, by PolicyName.
	policies map[string]*ikePolicies
	// manual is the configured peer list (Config.Peers, then Reload's):
	// the dataplane runs manual + IKE peers.
	manual []dataplane.PeerConfig
	// expirer gets the lifetime events of IKE-made SAs: the daemon, or a
	// test's fake.
	expirer expirer
	// traps are the children with start_action trap, by PolicyName, and
	// trapSPIs their trap SPIs' PolicyNames (ike.go): both fixed once New
	// returns, read without a lock.
	traps    map[string]ikeTrap
	trapSPIs map[uint32]string
	// acquirer gets the traps' acquires (ike.go): the daemon, or a test's
	// fake; read on the packet path.
	acquirer atomic.Pointer[func(policyName string)]
}

// ikeTrap is a trap child's outbound policies while it has no SA: its
// configured selectors, protected by a trap SPI (dataplane/acquire.go).
type ikeTrap struct {
	spi  uint32
	sels []sad.Selector
}

type expirer interface {
	Expired(inbound bool, spi uint32, hard bool)
}

type ikeSA struct {
	peer, policy, name string
}

type ikePeer struct {
	ep endpoint.Endpoint
	// follow: a NAT is in front of the peer (ike.Endpoint.Follow); the
	// dataplane moves its ESP to the source of authenticated packets
	// (dataplane.PeerConfig.Roaming) and onPeerEndpoint tells the daemon.
	follow  bool
	out, in []uint32
}

type ikePolicies struct {
	out, in []string
}

func (s *ikeState) init(manual []dataplane.PeerConfig) {
	s.held = map[uint32]struct{}{}
	s.sas = map[saKey]ikeSA{}
	s.peers = map[string]*ikePeer{}
	s.policies = map[string]*ikePolicies{}
	s.traps = map[string]ikeTrap{}
	s.trapSPIs = map[uint32]string{}
	s.manual = clonePeers(manual)
}

// kernel is the node as ike.Kernel.
type kernel struct{ n *Node }

var _ ike.Kernel = kernel{}

// maxSPITries bounds AllocSPI's draws: with fewer than 2^31 SPIs in use,
// 64 draws all failing has a probability below 2^-64.
const maxSPITries = 64

// AllocSPI draws a random inbound SPI (crypto/rand, RFC 4303 §2.1: not
// 0..255) that no inbound SA, configured peer, IKE SA or earlier
// allocation uses, and holds it until AddInbound or ReleaseSPI.
func (k kernel) AllocSPI() (uint32, error) {
	n := k.n
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	for range maxSPITries {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("node: drawing an SPI: %w", err)
		}
		spi := binary.BigEndian.Uint32(b[:])
		if spi < 256 || n.inboundSPIUsed(spi) {
			continue
		}
		n.ik.held[spi] = struct{}{}
		return spi, nil
	}
	return 0, errors.New("node: no free inbound SPI found")
}

// inboundSPIUsed: spi is not free for a new inbound SA. The caller holds
// n.ik.mu.
func (n *Node) inboundSPIUsed(spi uint32) bool {
	if _, ok := n.ik.held[spi]; ok {
		return true
	}
	if _, ok := n.ik.sas[saKey{sad.Inbound, spi}]; ok {
		return true
	}
	if n.sadb.Lookup(sad.Inbound, spi) != nil {
		return true
	}
	for _, p := range n.ik.manual {
		if slices.Contains(p.InSPIs, spi) {
			return true
		}
	}
	return false
}

// ReleaseSPI gives back an SPI AllocSPI held.
func (k kernel) ReleaseSPI(spi uint32) {
	k.n.ik.mu.Lock()
	delete(k.n.ik.held, spi)
	k.n.ik.mu.Unlock()
}

// AddInbound installs c's inbound SA and its inbound policies, and makes
// c.InSPI one of the peer's.
func (k kernel) AddInbound(c *ike.ChildSA) error {
	n := k.n
	tl, tr, err := n.ikeTunnel(c)
	if err != nil {
		return err
	}
	cfg, sels, err := childConfig(c, sad.Inbound, tl, tr)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	spi := c.InSPI
	if _, held := n.ik.held[spi]; !held && n.inboundSPIUsed(spi) {
		return fmt.Errorf("node: %s: %w (not allocated by AllocSPI)", SAName(sad.Inbound, spi), sad.ErrDuplicateSPI)
	}
	// The SAD knows an outbound SA by its SPI alone, which the peer
	// chose: another peer may have chosen the same one (RFC 4301 §4.1
	// lets it). Refuse the child now, while the exchange can still say
	// so, rather than at AddOutbound after the peer was told yes.
	if c.OutSPI != 0 && c.OutSPI != c.Replaces && n.sadb.Lookup(sad.Outbound, c.OutSPI) != nil {
		return fmt.Errorf("node: child %s: the peer's SPI %s is already an outbound SA here (another peer chose it): %w",
			cfg.Name, spiString(c.OutSPI), sad.ErrDuplicateSPI)
	}
	undo, err := n.addIKESA(c, cfg)
	if err != nil {
		return err
	}
	delete(n.ik.held, spi)
	in := make([]spd.Policy, len(sels))
	for i, s := range sels {
		in[i] = spd.Policy{Name: fmt.Sprintf("%s#in%d", c.PolicyName, i), Dir: sad.Inbound, Action: spd.Protect,
			SPI: spi, Selectors: []sad.Selector{s}}
	}
	if err := n.setIKEPolicies(c.PolicyName, sad.Inbound, in); err != nil {
		undo()
		return err
	}
	return nil
}

// AddOutbound installs c's outbound SA, makes c.OutSPI one of the peer's
// and then points the outbound policies of c.PolicyName at it.
func (k kernel) AddOutbound(c *ike.ChildSA) error {
	n := k.n
	tl, tr, err := n.ikeTunnel(c)
	if err != nil {
		return err
	}
	cfg, sels, err := childConfig(c, sad.Outbound, tl, tr)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	if c.Replaces != 0 {
		if old, ok := n.ik.sas[saKey{sad.Outbound, c.Replaces}]; !ok || old.policy != c.PolicyName {
			n.log.Warn("ike: a rekeyed child replaces no outbound SA of its policies", zap.String("child", cfg.Name),
				zap.String("replaces", spiString(c.Replaces)), zap.String("policies", c.PolicyName))
		}
	}
	// The SA and the peer's SPI first: a packet the new policies send
	// finds both.
	undo, err := n.addIKESA(c, cfg)
	if err != nil {
		return err
	}
	out := make([]spd.Policy, len(sels))
	for i, s := range sels {
		out[i] = spd.Policy{Name: fmt.Sprintf("%s#%d", c.PolicyName, i), Dir: sad.Outbound, Action: spd.Protect,
			SPI: c.OutSPI, Selectors: []sad.Selector{s}}
	}
	if err := n.setIKEPolicies(c.PolicyName, sad.Outbound, out); err != nil {
		undo()
		return err
	}
	if c.Replaces != 0 {
		// The SAD query (mip6's BU and BA SPIs) names the new SA from
		// now on, as the policies do, until the old one is deleted.
		n.sadb.Supersede(c.Replaces)
	}
	return nil
}

// addIKESA adds the SA of cfg for child c, records it and adds its SPI to
// c's peer; undo takes all of it back. The caller holds n.mu and n.ik.mu.
func (n *Node) addIKESA(c *ike.ChildSA, cfg sad.Config) (undo func(), err error) {
	ep, err := peerEndpoint(c.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("node: child %s: %w", cfg.Name, err)
	}
	if c.Peer == "" {
		return nil, fmt.Errorf("node: child %s: no peer name", cfg.Name)
	}
	sa, err := n.sadb.Add(cfg)
	if err != nil {
		return nil, fmt.Errorf("node: child %s: %w", cfg.Name, err)
	}
	k := saKey{cfg.Dir, cfg.Params.SPI}
	n.ik.sas[k] = ikeSA{peer: c.Peer, policy: c.PolicyName, name: cfg.Name}
	p := n.ik.peers[c.Peer]
	newPeer := p == nil
	if newPeer {
		p = &ikePeer{}
		n.ik.peers[c.Peer] = p
	}
	oldEP, oldFollow := p.ep, p.follow
	p.ep, p.follow = ep, c.Endpoint.Follow
	if cfg.Dir == sad.Outbound {
		p.out = append(p.out, k.spi)
	} else {
		p.in = append(p.in, k.spi)
	}
	undo = func() {
		n.sadb.Delete(k.dir, k.spi)
		delete(n.ik.sas, k)
		n.unpeer(c.Peer, k)
		if !newPeer {
			if p := n.ik.peers[c.Peer]; p != nil {
				p.ep, p.follow = oldEP, oldFollow
			}
		}
		n.publishPeers()
		n.dropKeys(k.dir, k.spi)
	}
	if err := n.publishPeers(); err != nil {
		undo()
		return nil, fmt.Errorf("node: child %s: peer %q: %w", cfg.Name, c.Peer, err)
	}
	n.storeIKEKeys(cfg)
	n.log.Info("ike sa added", zap.String("sa", sa.Name()), zap.String("spi", spiString(k.spi)), zap.Stringer("dir", k.dir),
		zap.Stringer("algorithm", cfg.Params.Algorithm), zap.Stringer("mode", cfg.Params.Mode), zap.String("peer", c.Peer),
		zap.Stringer("endpoint", ep))
	return undo, nil
}

// unpeer removes k's SPI from peer, and the peer once it has none. The
// caller holds n.ik.mu and publishes.
func (n *Node) unpeer(peer string, k saKey) {
	p := n.ik.peers[peer]
	if p == nil {
		return
	}
	if k.dir == sad.Outbound {
		p.out = slices.DeleteFunc(p.out, func(s uint32) bool { return s == k.spi })
	} else {
		p.in = slices.DeleteFunc(p.in, func(s uint32) bool { return s == k.spi })
	}
	if len(p.out)+len(p.in) == 0 {
		delete(n.ik.peers, peer)
	}
}

// DelSA removes an IKE-made SA; one that is not there (or is not IKE's) is
// left alone without an error.
func (k kernel) DelSA(inbound bool, spi uint32) error {
	dir := sad.Outbound
	if inbound {
		dir = sad.Inbound
	}
	n := k.n
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delIKESA(dir, spi)
}

// delIKESA deletes an IKE-made SA. The caller holds n.mu.
func (n *Node) delIKESA(dir sad.Direction, spi uint32) error {
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	k := saKey{dir, spi}
	s, ok := n.ik.sas[k]
	if !ok {
		return nil
	}
	if _, err := n.sadb.Delete(dir, spi); err != nil && !errors.Is(err, sad.ErrNotFound) {
		return err
	}
	delete(n.ik.sas, k)
	n.unpeer(s.peer, k)
	n.dropKeys(dir, spi)
	n.log.Info("ike sa deleted", zap.String("sa", s.name), zap.String("spi", spiString(spi)), zap.Stringer("dir", dir))
	return n.publishPeers()
}

// DelPolicies removes both directions' policies of policyName.
func (k kernel) DelPolicies(policyName string) error {
	n := k.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	if n.ik.policies[policyName] == nil {
		return nil
	}
	// A trap child's traps come back in place of its policies: its next
	// traffic negotiates it again.
	if err := n.setIKEPolicies(policyName, sad.Outbound, n.trapPolicies(policyName)); err != nil {
		return err
	}
	if err := n.setIKEPolicies(policyName, sad.Inbound, nil); err != nil {
		return err
	}
	if _, trap := n.ik.traps[policyName]; trap {
		n.log.Info("ike policies deleted, trap back", zap.String("policies", policyName))
		return nil
	}
	delete(n.ik.policies, policyName)
	n.log.Info("ike policies deleted", zap.String("policies", policyName))
	return nil
}

// trapPolicies are the outbound trap policies of the trap child
// policyName, named as its real ones so that AddOutbound's policies take
// their place; nil for a child without trap.
func (n *Node) trapPolicies(policyName string) []spd.Policy {
	t, ok := n.ik.traps[policyName]
	if !ok {
		return nil
	}
	ps := make([]spd.Policy, len(t.sels))
	for i, s := range t.sels {
		ps[i] = spd.Policy{Name: fmt.Sprintf("%s#%d", policyName, i), Dir: sad.Outbound, Action: spd.Protect,
			SPI: t.spi, Selectors: []sad.Selector{s}}
	}
	return ps
}

// SetEndpoint moves the peer's ESP to ep (its SAs' own tunnel addresses
// stay: the underlay builds the outer header for the endpoint, and inbound
// SAs are found by SPI alone, RFC 4301 §4.1). A peer without SAs is no
// dataplane peer: nothing to move.
func (k kernel) SetEndpoint(peer string, ep ike.Endpoint) error {
	e, err := peerEndpoint(ep)
	if err != nil {
		return fmt.Errorf("node: peer %q: %w", peer, err)
	}
	n := k.n
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	p := n.ik.peers[peer]
	if p == nil || p.ep == e && p.follow == ep.Follow {
		return nil
	}
	old, oldFollow := p.ep, p.follow
	p.ep, p.follow = e, ep.Follow
	if err := n.publishPeers(); err != nil {
		p.ep, p.follow = old, oldFollow
		return fmt.Errorf("node: peer %q: %w", peer, err)
	}
	n.log.Info("ike peer endpoint", zap.String("peer", peer), zap.Stringer("from", old), zap.Stringer("to", e))
	return nil
}

// publishPeers gives the dataplane the configured peers and the IKE ones
// (before Start, Start does). The caller holds n.ik.mu.
func (n *Node) publishPeers() error {
	if n.dp == nil {
		return nil
	}
	return n.dp.SetPeers(n.allPeers())
}

// allPeers is the configured peers, then the IKE peers by name. The
// caller holds n.ik.mu (or runs before Start).
func (n *Node) allPeers() []dataplane.PeerConfig {
	ps := clonePeers(n.ik.manual)
	if n.mobilityRole() {
		// The mobility layer chooses every endpoint (ike_mobility.go):
		// an IKE peer's endpoint would send the traffic of a home
		// address without a binding to whichever mobile node's care-of
		// address was last installed.
		return ps
	}
	names := make([]string, 0, len(n.ik.peers))
	for name := range n.ik.peers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := n.ik.peers[name]
		ps = append(ps, dataplane.PeerConfig{Name: name, Endpoint: p.ep, Roaming: p.follow,
			OutSPIs: slices.Clone(p.out), InSPIs: slices.Clone(p.in)})
	}
	return ps
}

// setManualPeers replaces the configured peers (Reload), keeping the IKE
// ones.
func (n *Node) setManualPeers(ps []dataplane.PeerConfig) error {
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	old := n.ik.manual
	n.ik.manual = clonePeers(ps)
	if err := n.publishPeers(); err != nil {
		n.ik.manual = old
		return err
	}
	return nil
}

// setIKEPolicies makes ps the policies of direction dir of the child
// policyName, in one spd.DB.Replace of the whole SPD: they take the place
// of the child's current ones in that list, or go first. The caller holds
// n.mu and n.ik.mu.
func (n *Node) setIKEPolicies(policyName string, dir sad.Direction, ps []spd.Policy) error {
	rec := n.ik.policies[policyName]
	if rec == nil {
		rec = &ikePolicies{}
	}
	oldNames := &rec.out
	if dir == sad.Inbound {
		oldNames = &rec.in
	}
	var all []spd.Policy
	for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
		list := n.spdb.List(d)
		if d != dir {
			all = append(all, list...)
			continue
		}
		at := -1
		kept := list[:0]
		for _, p := range list {
			if slices.Contains(*oldNames, p.Name) {
				if at < 0 {
					at = len(kept)
				}
				continue
			}
			kept = append(kept, p)
		}
		at = max(at, 0)
		start := len(all)
		all = append(all, kept[:at]...)
		all = append(all, ps...)
		all = append(all, kept[at:]...)
		n.orderIKEPolicies(all[start:], ps)
	}
	if err := n.spdb.Replace(all); err != nil {
		return fmt.Errorf("node: policies %s: %w", policyName, err)
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	*oldNames = names
	if len(rec.out)+len(rec.in) == 0 {
		delete(n.ik.policies, policyName)
	} else {
		n.ik.policies[policyName] = rec
	}
	return nil
}

// orderIKEPolicies sorts the IKE children's policies in list (one
// direction's; ps are being added) narrowest first, in the slots they
// hold, so that no child's wide selectors shadow another's narrow ones: on
// a mobile node the payload child (HoA -> any) would otherwise take the
// Binding Updates of the BU child (RFC 4877 §7.2, RFC 4301 §4.4.1). Equal
// ones keep their order; manual policies stay where they are. The caller
// holds n.ik.mu.
func (n *Node) orderIKEPolicies(list, ps []spd.Policy) {
	var slots []int
	var ike []spd.Policy
	for i, p := range list {
		if n.isIKEPolicy(p.Name) || slices.ContainsFunc(ps, func(q spd.Policy) bool { return q.Name == p.Name }) {
			slots = append(slots, i)
			ike = append(ike, p)
		}
	}
	rank := func(p spd.Policy) int {
		r := 0
		for i := range p.Selectors {
			r = max(r, p.Selectors[i].Specificity())
		}
		return r
	}
	slices.SortStableFunc(ike, func(a, b spd.Policy) int { return rank(b) - rank(a) })
	for i, at := range slots {
		list[at] = ike[i]
	}
}

// isIKEPolicy reports whether name is an IKE child's policy. The caller
// holds n.ik.mu.
func (n *Node) isIKEPolicy(name string) bool {
	for _, r := range n.ik.policies {
		if slices.Contains(r.out, name) || slices.Contains(r.in, name) {
			return true
		}
	}
	return false
}

// ikeOwns reports whether (dir, spi) is an IKE-made SA or a held SPI.
// The caller holds n.ik.mu.
func (n *Node) ikeOwns(dir sad.Direction, spi uint32) bool {
	if _, ok := n.ik.sas[saKey{dir, spi}]; ok {
		return true
	}
	_, held := n.ik.held[spi]
	return dir == sad.Inbound && held
}

// isIKESA reports whether (dir, spi) is an IKE-made SA.
func (n *Node) isIKESA(dir sad.Direction, spi uint32) bool {
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	_, ok := n.ik.sas[saKey{dir, spi}]
	return ok
}

// storeIKEKeys keeps a copy of an IKE SA's keys for SAKeys (the Wireshark
// table), outside the key-sharing bookkeeping (keyUse): see the top of
// this file.
func (n *Node) storeIKEKeys(c sad.Config) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	n.keys[saKey{c.Dir, c.Params.SPI}] = saKeyMaterial{enc: append([]byte(nil), c.Params.EncKey...),
		auth: append([]byte(nil), c.Params.AuthKey...)}
}

// ikeExpired handles the lifetime event of an IKE-made SA: after a hard
// one (the SAD removed the SA) the SA is forgotten, and either goes to the
// daemon (soft: rekey; hard: the child is gone). It reports false for a
// manual SA.
func (n *Node) ikeExpired(e sad.Event) bool {
	n.ik.mu.Lock()
	k := saKey{e.Dir, e.SPI}
	s, ok := n.ik.sas[k]
	if cur := n.sadb.Lookup(e.Dir, e.SPI); ok && cur != nil && cur != e.SA {
		// A late event of an SA deleted since, whose SPI a new IKE SA
		// took: not the new one's.
		n.ik.mu.Unlock()
		return true
	}
	if ok && e.Hard {
		delete(n.ik.sas, k)
		n.unpeer(s.peer, k)
		if err := n.publishPeers(); err != nil {
			n.log.Warn("ike: peers after a hard expiry", zap.Error(err))
		}
	}
	x := n.ik.expirer
	n.ik.mu.Unlock()
	if !ok {
		return false
	}
	if e.Hard {
		n.dropKeys(e.Dir, e.SPI)
	}
	if x != nil {
		x.Expired(e.Dir == sad.Inbound, e.SPI, e.Hard)
	}
	return true
}

// seqSoftMargin: a 32-bit sequence number space is reported as a soft
// lifetime this many packets before it runs out (RFC 4303 §3.3.3: the SA
// must be rekeyed before the counter cycles), so the daemon rekeys in time.
const seqSoftMargin = 1 << 26

// childConfig is the sad.Config of c's SA in direction dir, and the
// selectors of its policies (one per (LocalTS, RemoteTS) pair). The keys
// are c's (esp copies what it keeps; the node copies them for SAKeys). A
// tunnel-mode SA's outer addresses are tunLocal -> tunRemote (outbound)
// where they are valid (a mobility role, ike_mobility.go), else the IKE
// SA's.
func childConfig(c *ike.ChildSA, dir sad.Direction, tunLocal, tunRemote netip.Addr) (sad.Config, []sad.Selector, error) {
	name := fmt.Sprintf("%s{%d}", c.Name, c.ID)
	algName, ok := ike.ESPAlgorithmName(c.Encr, c.KeyBits, c.Integ)
	if !ok {
		return sad.Config{}, nil, fmt.Errorf("node: child %s: ESP transform %v/%d/%v is not one esp implements", name, c.Encr, c.KeyBits, c.Integ)
	}
	alg, err := esp.ParseAlgorithm(algName)
	if err != nil {
		return sad.Config{}, nil, fmt.Errorf("node: child %s: %w", name, err)
	}
	p := esp.Params{Algorithm: alg, ESN: c.ESN, Mode: esp.Tunnel}
	keys := c.InKeys
	p.SPI = c.InSPI
	if dir == sad.Outbound {
		keys, p.SPI = c.OutKeys, c.OutSPI
	}
	if p.SPI < 256 {
		return sad.Config{}, nil, fmt.Errorf("node: child %s: %v SPI %s is reserved (RFC 4303 §2.1)", name, dir, spiString(p.SPI))
	}
	p.EncKey, p.AuthKey = keys.Enc, keys.Integ
	if c.Mode == ike.ModeTransport {
		p.Mode = esp.Transport
	} else {
		local, remote := c.Endpoint.Local.Addr().Unmap(), c.Endpoint.Remote.Addr().Unmap()
		if tunLocal.IsValid() && tunRemote.IsValid() {
			local, remote = tunLocal, tunRemote
		}
		if !local.IsValid() && remote.IsValid() {
			local = netip.IPv6Unspecified()
			if remote.Is4() {
				local = netip.IPv4Unspecified()
			}
		}
		p.TunnelSrc, p.TunnelDst = local, remote
		if dir == sad.Inbound {
			p.TunnelSrc, p.TunnelDst = remote, local
		}
	}
	var sels []sad.Selector
	for _, l := range c.LocalTS {
		for _, r := range c.RemoteTS {
			if s, ok := tsSelector(l, r); ok {
				sels = append(sels, s)
			}
		}
	}
	if len(sels) == 0 {
		return sad.Config{}, nil, fmt.Errorf("node: child %s: no pair of its traffic selectors can match a packet", name)
	}
	lt := c.Lifetime
	life := sad.Lifetime{
		Soft: sad.Limits{Bytes: lt.SoftBytes, Time: lt.SoftTime},
		Hard: sad.Limits{Bytes: lt.HardBytes, Time: lt.HardTime},
	}
	if dir == sad.Outbound && !c.ESN {
		life.Soft.Packets = 1<<32 - 1 - seqSoftMargin
	}
	return sad.Config{Name: name, Dir: dir, Params: p, Selectors: sels, Lifetime: life}, sels, nil
}

// tsSelector is the RFC 4301 selector of the traffic selector pair (l, r)
// (RFC 7296 §3.13.1): addresses, the protocol (0 is any; two different
// ones match nothing) and ports (0-65535 is any, start > end is OPAQUE;
// for ICMP and the Mobility Header the type and code, as sad encodes
// them). ok is false when no packet can match both.
func tsSelector(l, r ike.TrafficSelector) (sad.Selector, bool) {
	lr, ok1 := tsRange(l)
	rr, ok2 := tsRange(r)
	if !ok1 || !ok2 || lr.From.Is4() != rr.From.Is4() {
		return sad.Selector{}, false
	}
	proto := l.Protocol
	if proto == 0 {
		proto = r.Protocol
	} else if r.Protocol != 0 && r.Protocol != proto {
		return sad.Selector{}, false
	}
	return sad.Selector{Local: lr, Remote: rr, Proto: proto, LocalPort: tsPorts(l), RemotePort: tsPorts(r)}, true
}

func tsRange(ts ike.TrafficSelector) (sad.AddrRange, bool) {
	from, to := ts.Start.Unmap(), ts.End.Unmap()
	if !from.IsValid() || !to.IsValid() || from.Is4() != to.Is4() || from.Compare(to) > 0 {
		return sad.AddrRange{}, false
	}
	return sad.AddrRange{From: from.WithZone(""), To: to.WithZone("")}, true
}

func tsPorts(ts ike.TrafficSelector) sad.Ports {
	switch {
	case ts.StartPort == 0 && ts.EndPort == 0xffff:
		return sad.Ports{}
	case ts.StartPort > ts.EndPort:
		return sad.Opaque
	}
	return sad.PortsRange(ts.StartPort, ts.EndPort)
}

// peerEndpoint is the dataplane endpoint of an IKE SA's ESP: UDP to the
// remote port (RFC 3948) or raw ESP to the remote address.
func peerEndpoint(ep ike.Endpoint) (endpoint.Endpoint, error) {
	a := ep.Remote.Addr().Unmap().WithZone("")
	if !a.IsValid() || a.IsUnspecified() {
		return endpoint.Endpoint{}, fmt.Errorf("no remote address in endpoint %v", ep.Remote)
	}
	if !ep.Encap {
		return endpoint.Endpoint{Addr: netip.AddrPortFrom(a, 0), Encap: endpoint.EncapRaw}, nil
	}
	if ep.Remote.Port() == 0 {
		return endpoint.Endpoint{}, fmt.Errorf("UDP encapsulation to %v without a port", a)
	}
	return endpoint.Endpoint{Addr: netip.AddrPortFrom(a, ep.Remote.Port()), Encap: endpoint.EncapUDP}, nil
}

// manualPolicies is the live list of dir without the IKE children's
// policies. The caller holds n.ik.mu.
func (n *Node) manualPolicies(dir sad.Direction) []spd.Policy {
	return slices.DeleteFunc(n.spdb.List(dir), func(p spd.Policy) bool { return n.isIKEPolicy(p.Name) })
}

// withIKEPolicies is ps with the IKE children's live policies first, in
// their order: the list a Reload publishes. The caller holds n.mu.
func (n *Node) withIKEPolicies(ps []spd.Policy) []spd.Policy {
	n.ik.mu.Lock()
	defer n.ik.mu.Unlock()
	var out []spd.Policy
	for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
		for _, p := range n.spdb.List(d) {
			if n.isIKEPolicy(p.Name) {
				out = append(out, p)
			}
		}
	}
	return append(out, ps...)
}
