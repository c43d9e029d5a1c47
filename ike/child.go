package ike

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"
)

// childState is where a Child SA is (ChildStatus.State).
type childState uint8

const (
	childInstalling childState = iota // offered or inbound SA installed, outbound not yet
	childInstalled
	childRekeying // a rekey of it is in flight (exchange_create.go)
	childDeleting // our Delete is out
)

func (s childState) String() string {
	switch s {
	case childInstalled:
		return "installed"
	case childRekeying:
		return "rekeying"
	case childDeleting:
		return "deleting"
	}
	return "installing"
}

// childSA is one Child SA pair of an IKE SA. ni and nr are the nonces its
// keys came from (the IKE_SA_INIT ones for the IKE_AUTH child, §2.17);
// a rekey (CREATE_CHILD_SA) makes a new childSA with its own.
type childSA struct {
	id    uint32
	name  string
	cfg   *Child
	state childState
	mode  Mode

	offered  []Proposal // initiator: SAi2 as sent
	proposal Proposal   // the chosen one, its SPI the peer's
	suite    ESPSuite

	inSPI, outSPI             uint32
	inInstalled, outInstalled bool
	ni, nr                    []byte

	// offeredLocal/offeredRemote are the initiator's TSi/TSr as sent;
	// localTS/remoteTS the narrowed selectors installed.
	offeredLocal, offeredRemote []TrafficSelector
	localTS, remoteTS           []TrafficSelector

	policyName string
	lifetime   Lifetime
	installed  time.Time
	// gone: uninstalled; nothing of it is in the kernel any more.
	gone bool

	// CREATE_CHILD_SA (exchange_create.go). ccsa: made by one, whose
	// initiator we were when ccsaInitiator (KEYMAT's direction, §2.17;
	// otherwise the IKE SA's roles). rekeyOf is the child this one
	// replaces; rekey our rekey of this one in flight; peerNew the child
	// the peer's rekey of this one made; successor the child that
	// replaced it. replaced: its policies belong to its successor. lost:
	// a collision loser the peer deletes (§2.8.1). pendingKC is a rekey
	// responder's outbound SA, installed once the initiator has the
	// response to request exMsgID (§2.8).
	ccsa, ccsaInitiator bool
	rekeyOf             *childSA
	rekey               *createOp
	peerNew, successor  *childSA
	replaced, lost      bool
	pendingKC           *ChildSA
	exMsgID             uint32
}

func policyNameOf(conn, child string) string { return conn + "/" + child }

// responderPolicyName names the policies of a child we respond to: as
// policyNameOf, and where the connection serves many peers (a PAD, or
// remote addresses wider than one host: road warriors, a home agent's
// mobile nodes) with the peer's identity too, so that two peers' children
// of one configuration never share (and replace) each other's policies.
func (sa *ikeSA) responderPolicyName(child string) string {
	return policyNameOf(sa.conn.cfg.Name, child) + sa.peerSuffix()
}

// peerSuffix is "" for a connection with one peer, else "[identity]" of
// sa's peer (responderPolicyName's rule).
func (sa *ikeSA) peerSuffix() string {
	c := &sa.conn.cfg
	if len(c.Remote.PAD) == 0 && len(c.RemoteAddrs) == 1 && c.RemoteAddrs[0].IsSingleIP() {
		return ""
	}
	return "[" + sa.remoteID.String() + "]"
}

// peerName names sa's peer toward the Kernel (ChildSA.Peer, SetEndpoint,
// ESPMoved): the connection's name, with the peer's identity where the
// connection serves many peers, so that each has its own endpoint and one
// road warrior's new NAT mapping moves no other's.
func (sa *ikeSA) peerName() string { return sa.conn.cfg.Name + sa.peerSuffix() }

// lifetimeOf is a child's SA limits (kernel.go Lifetime): soft at
// RekeyTime (DefaultChildRekey), hard at LifeTime (RekeyTime + 10 %), and
// the same for bytes when RekeyBytes is set.
func lifetimeOf(c *Child) Lifetime {
	soft := c.RekeyTime
	if soft == 0 {
		soft = DefaultChildRekey
	}
	hard := c.LifeTime
	if hard == 0 {
		hard = soft + soft/10
	}
	l := Lifetime{SoftTime: soft, HardTime: hard}
	if c.RekeyBytes > 0 {
		l.SoftBytes = c.RekeyBytes
		l.HardBytes = c.RekeyBytes + c.RekeyBytes/10
	}
	return l
}

// espSPI reads a 4-byte ESP SPI (RFC 4303 §2.1: 1..255 are reserved, 0
// is no SPI).
func espSPI(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, errors.New("ike: ESP SPI not 4 bytes")
	}
	s := binary.BigEndian.Uint32(b)
	if s < 256 {
		return 0, errors.New("ike: reserved ESP SPI")
	}
	return s, nil
}

func spiBytes(s uint32) []byte { return binary.BigEndian.AppendUint32(nil, s) }

// kernelChild is ch as Kernel sees it, with keys from KEYMAT: the
// initiator→responder SA's keys first (§2.17), so the initiator sends
// with EncrIR/IntegIR and the responder receives with them.
func (d *Daemon) kernelChild(sa *ikeSA, ch *childSA, k *ChildKeys) *ChildSA {
	in := SAKeys{Enc: k.EncrRI, Integ: k.IntegRI}
	out := SAKeys{Enc: k.EncrIR, Integ: k.IntegIR}
	initiator := sa.initiator
	if ch.ccsa {
		initiator = ch.ccsaInitiator
	}
	if !initiator {
		in, out = out, in
	}
	kc := &ChildSA{
		Name:       ch.name,
		ID:         ch.id,
		Peer:       sa.peerName(),
		PolicyName: ch.policyName,
		Mode:       ch.mode,
		Endpoint:   sa.endpoint(),
		Encr:       ch.suite.Encr,
		KeyBits:    ch.suite.KeyBits,
		Integ:      ch.suite.Integ,
		ESN:        ch.suite.ESN,
		InSPI:      ch.inSPI,
		OutSPI:     ch.outSPI,
		InKeys:     in,
		OutKeys:    out,
		LocalTS:    ch.localTS,
		RemoteTS:   ch.remoteTS,
		Lifetime:   ch.lifetime,
		RemoteID:   sa.remoteID,
	}
	if e, _ := padEntry(&sa.conn.cfg, sa.remoteID); e != nil {
		kc.Authorized = e.Addrs
	} else {
		kc.Authorized = leasePrefixes(sa.conn.leaseOf(sa.remoteID))
	}
	if ch.cfg != nil {
		kc.ReplayWindow = ch.cfg.ReplayWindow
	}
	return kc
}

// deriveChild computes the child's KEYMAT from SK_d and its nonces.
func (d *Daemon) deriveChild(sa *ikeSA, ch *childSA) (*ChildKeys, error) {
	enc, integ := ch.suite.KeyLens()
	return DeriveChildKeys(sa.suite.PRF, sa.keys.SKd, nil, ch.ni, ch.nr, enc, integ)
}

// installInbound is the first half of the make-before-break order (§2.8,
// kernel.go): the inbound SA, before the message that lets the peer use
// it goes out.
func (d *Daemon) installInbound(sa *ikeSA, ch *childSA, kc *ChildSA) error {
	if err := d.cfg.Kernel.AddInbound(kc); err != nil {
		d.fail("kernel")
		d.log.Warn("kernel: add inbound SA failed", append(sa.logFields(), zap.String("child", ch.name), zap.Error(err))...)
		return err
	}
	ch.inInstalled = true
	return nil
}

// installOutbound is the second half: the outbound SA and the policies.
func (d *Daemon) installOutbound(sa *ikeSA, ch *childSA, kc *ChildSA) error {
	if err := d.cfg.Kernel.AddOutbound(kc); err != nil {
		d.fail("kernel")
		d.log.Warn("kernel: add outbound SA failed", append(sa.logFields(), zap.String("child", ch.name), zap.Error(err))...)
		return err
	}
	ch.outInstalled = true
	ch.state = childInstalled
	ch.installed = d.now()
	d.log.Info("child SA up", append(sa.logFields(), zap.String("child", ch.name), zap.Uint32("in", ch.inSPI),
		zap.Uint32("out", ch.outSPI), zap.String("suite", FormatProposal(ch.proposal)), zap.Stringer("mode", ch.mode))...)
	return nil
}

// wipeKernelChild clears the keys handed to Kernel (it keeps copies).
func wipeKernelChild(kc *ChildSA, k *ChildKeys) {
	clear(kc.InKeys.Enc)
	clear(kc.InKeys.Integ)
	clear(kc.OutKeys.Enc)
	clear(kc.OutKeys.Integ)
	k.Wipe()
}

// uninstallChild removes both SAs and the policies of ch. Of a child a
// rekey replaced, the policies stay (they are its successor's) and the
// inbound SA goes Config.RekeyGrace later, for packets in flight (§2.8),
// unless the IKE SA is gone.
func (d *Daemon) uninstallChild(sa *ikeSA, ch *childSA) {
	if ch.gone {
		return
	}
	ch.gone = true
	if ch.pendingKC != nil {
		wipeChildSA(ch.pendingKC)
		ch.pendingKC = nil
	}
	if old := ch.rekeyOf; old != nil && old.peerNew == ch {
		// A peer's rekey that did not make it: old may be rekeyed again.
		old.peerNew = nil
		if old.state == childRekeying && old.rekey == nil && old.successor == nil {
			old.state = childInstalled
		}
	}
	k := d.cfg.Kernel
	if ch.inInstalled {
		spi := ch.inSPI
		del := func() {
			if err := k.DelSA(true, spi); err != nil {
				d.fail("kernel")
			}
		}
		if ch.replaced && sa != nil && sa.state != stateDead {
			d.after(d.rekeyGrace(), true, del)
		} else {
			del()
		}
	} else if ch.inSPI != 0 {
		k.ReleaseSPI(ch.inSPI)
	}
	if ch.outInstalled {
		if err := k.DelSA(false, ch.outSPI); err != nil {
			d.fail("kernel")
		}
		if !ch.replaced {
			if err := k.DelPolicies(ch.policyName); err != nil {
				d.fail("kernel")
			}
		}
	}
	ch.inInstalled, ch.outInstalled = false, false
	if sa != nil && sa.state != stateDead {
		d.log.Info("child SA down", append(sa.logFields(), zap.String("child", ch.name), zap.Uint32("in", ch.inSPI),
			zap.Uint32("out", ch.outSPI))...)
	}
}

// dropChild takes ch out of sa (or the IKE SA it moved to) and the
// kernel.
func (d *Daemon) dropChild(sa *ikeSA, ch *childSA) {
	if o := d.owner(ch); o != nil {
		sa = o
		sa.children = slices.DeleteFunc(sa.children, func(c *childSA) bool { return c == ch })
	}
	d.uninstallChild(sa, ch)
}

func (d *Daemon) rekeyGrace() time.Duration {
	if d.cfg.RekeyGrace > 0 {
		return d.cfg.RekeyGrace
	}
	return DefaultRekeyGrace
}

// newChildID numbers a child within the daemon.
func (d *Daemon) newChildID() uint32 {
	d.nextChildID++
	return d.nextChildID
}

// resolveTS substitutes the IKE address a for "dynamic" selectors.
func resolveTS(ts []TrafficSelector, a netip.Addr) []TrafficSelector {
	out := make([]TrafficSelector, len(ts))
	for i, t := range ts {
		out[i] = ResolveDynamic(t, a)
	}
	return out
}
