package ike

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
)

// CREATE_CHILD_SA (RFC 7296 §1.3): a new Child SA, a Child SA rekey and an
// IKE SA rekey.
//
//	new child (§1.3.1):  SK{[N(USE_TRANSPORT_MODE)], SA, Ni, [KEi], TSi, TSr}
//	child rekey (§1.3.3): SK{N(REKEY_SA), [N(USE_TRANSPORT_MODE)], SA, Ni, [KEi], TSi, TSr}
//	IKE SA rekey (§1.3.2): SK{SA, Ni, KEi}
//
// A child's KEi is there when the first ESP proposal has a key exchange
// transform (PFS); KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr) with the
// nonces of this exchange, the exchange's initiator's keys first (§2.17).
//
// Make-before-break (§2.8, kernel.go): for a child rekey the responder
// installs its new inbound SA before its response leaves and switches its
// outbound (AddOutbound with Replaces) only once it knows the initiator
// has the response: the Delete of the old child, or any later request of
// the peer, or rekeySwitchTimeout. The initiator installs its new inbound
// and switches its outbound when the response arrives, then deletes the
// old child; each side removes an old outbound SA at the Delete and an
// old inbound one Config.RekeyGrace later, for packets in flight.
//
// Collisions (§2.8.1, §2.8.2): of two rekeys of one SA, the exchange with
// the lowest of the four nonces loses; its initiator deletes what it
// created and the winner's initiator deletes the old SA. A child request
// during an IKE SA rekey, and an IKE SA rekey during a child exchange of
// ours, are answered TEMPORARY_FAILURE (§2.25), which the other side
// retries after a random delay.

// maxChildren bounds the children one IKE SA may hold, so that a peer
// cannot fill the kernel with CREATE_CHILD_SA (NO_ADDITIONAL_SAS, §1.3).
const maxChildren = 64

// rekeySwitchTimeout bounds how long a rekey's responder keeps sending on
// the old child when neither the Delete nor another request comes.
const rekeySwitchTimeout = 30 * time.Second

// createOp is our CREATE_CHILD_SA for a child, in flight.
type createOp struct {
	ch      *childSA // the new child
	old     *childSA // the child it rekeys; nil: a new child
	cfg     *Child
	ke      *KeyExchange // nil without PFS
	ni      []byte
	tried   []DHGroup
	req     *request
	waiters []chan error
}

// ikeRekeyOp is our rekey of an IKE SA, in flight.
type ikeRekeyOp struct {
	spi     uint64 // our SPI of the new IKE SA (its SPIi)
	offered []Proposal
	ke      *KeyExchange
	ni      []byte
	tried   []DHGroup
	req     *request
	waiters []chan error
}

// createPayloads are the payloads of a CREATE_CHILD_SA message.
type createPayloads struct {
	sa        *SA
	nonce     *Nonce
	ke        *KE
	tsi, tsr  *TS
	transport bool
	rekey     *Notify
}

func readCreate(ps []Payload) createPayloads {
	var a createPayloads
	for _, p := range ps {
		switch p := p.(type) {
		case *SA:
			if a.sa == nil {
				a.sa = p
			}
		case *Nonce:
			if a.nonce == nil {
				a.nonce = p
			}
		case *KE:
			if a.ke == nil {
				a.ke = p
			}
		case *TS:
			if p.Initiator && a.tsi == nil {
				a.tsi = p
			} else if !p.Initiator && a.tsr == nil {
				a.tsr = p
			}
		case *Notify:
			switch p.NotifyType {
			case USE_TRANSPORT_MODE:
				a.transport = true
			case REKEY_SA:
				if a.rekey == nil {
					a.rekey = p
				}
			}
		}
	}
	return a
}

// firstGroup is the key exchange method of the first proposal (the one
// our KE payload carries), DHNone if it has none.
func firstGroup(ps []Proposal) DHGroup {
	if len(ps) == 0 {
		return DHNone
	}
	for _, t := range ps[0].Transforms {
		if t.Type == TransformDH && t.ID != 0 {
			return DHGroup(t.ID)
		}
	}
	return DHNone
}

// lowNonce is the lower of an exchange's two nonces (§2.8.1).
func lowNonce(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}

// retryDelay is the random wait before a request refused with
// TEMPORARY_FAILURE goes again (§2.25): one to three Retransmit.
func (d *Daemon) retryDelay() time.Duration {
	var b [2]byte
	_, _ = d.rand.Read(b[:])
	return d.cfg.Retransmit + time.Duration(binary.BigEndian.Uint16(b[:]))*2*d.cfg.Retransmit/65536
}

// chooseWithKE selects among theirs, preferring a proposal with the key
// exchange method of their KE payload (saves an INVALID_KE_PAYLOAD round
// trip, as in IKE_SA_INIT).
func chooseWithKE(ours, theirs []Proposal, ke *KE) (Proposal, error) {
	chosen, err := SelectProposal(ours, theirs)
	if err != nil || ke == nil {
		return chosen, err
	}
	if hasDH(chosen) && DHGroup(dhOf(chosen)) != ke.Group {
		if alt, err := SelectProposal(onlyGroup(ours, ke.Group), onlyGroup(theirs, ke.Group)); err == nil {
			return alt, nil
		}
	}
	return chosen, nil
}

func hasDH(p Proposal) bool { return dhOf(p) != 0 }

func dhOf(p Proposal) uint16 {
	for _, t := range p.Transforms {
		if t.Type == TransformDH {
			return t.ID
		}
	}
	return 0
}

func invalidKE(g DHGroup) []Payload {
	return []Payload{&Notify{NotifyType: INVALID_KE_PAYLOAD, Data: binary.BigEndian.AppendUint16(nil, uint16(g))}}
}

// createChild starts our CREATE_CHILD_SA for a new child of cfg, or with
// old a rekey of old. ws (nil ones aside) get the outcome.
func (d *Daemon) createChild(sa *ikeSA, cfg *Child, old *childSA, ws ...chan error) error {
	if sa.state != stateEstablished || sa.successor != nil {
		return errors.New("ike: the IKE SA is not established")
	}
	if old != nil && (old.rekey != nil || old.peerNew != nil || old.successor != nil || old.state != childInstalled) {
		return fmt.Errorf("ike: child %s is being rekeyed or deleted", old.name)
	}
	ch := &childSA{id: d.newChildID(), name: cfg.Name, cfg: cfg, mode: cfg.Mode, ccsa: true, ccsaInitiator: true,
		policyName: policyNameOf(sa.conn.cfg.Name, cfg.Name), lifetime: lifetimeOf(cfg)}
	local, remote := resolveTS(cfg.LocalTS, sa.local.Addr()), resolveTS(cfg.RemoteTS, sa.remote.Addr())
	if old != nil {
		// §2.8: the same selectors and mode as the child it replaces.
		ch.name, ch.mode, ch.policyName, ch.rekeyOf = old.name, old.mode, old.policyName, old
		local, remote = old.localTS, old.remoteTS
	}
	spi, err := d.cfg.Kernel.AllocSPI()
	if err != nil {
		d.fail("kernel")
		return fmt.Errorf("ike: kernel: allocate SPI: %w", err)
	}
	ch.inSPI = spi
	ch.offeredLocal, ch.offeredRemote = local, remote
	for i, p := range cfg.Proposals {
		p.Number, p.SPI = uint8(i+1), spiBytes(spi)
		ch.offered = append(ch.offered, p)
	}
	op := &createOp{ch: ch, old: old, cfg: cfg}
	for _, w := range ws {
		if w != nil {
			op.waiters = append(op.waiters, w)
		}
	}
	if g := firstGroup(ch.offered); g != DHNone {
		op.ke, err = NewKeyExchange(g, d.rand)
	}
	if err == nil {
		op.ni, err = d.newNonce(sa.suite.PRF)
	}
	if err != nil {
		d.cfg.Kernel.ReleaseSPI(spi)
		d.fail("internal")
		return err
	}
	if old != nil {
		old.rekey = op
		old.state = childRekeying
	}
	sa.creating = append(sa.creating, op)
	d.sendCreate(sa, op)
	return nil
}

// sendCreate queues the request of op (again after INVALID_KE_PAYLOAD).
func (d *Daemon) sendCreate(sa *ikeSA, op *createOp) {
	ch := op.ch
	var ps []Payload
	if op.old != nil {
		ps = append(ps, &Notify{Protocol: ProtoESP, SPI: spiBytes(op.old.inSPI), NotifyType: REKEY_SA})
	}
	if ch.mode == ModeTransport {
		ps = append(ps, &Notify{NotifyType: USE_TRANSPORT_MODE})
	}
	ps = append(ps, &SA{Proposals: ch.offered}, &Nonce{Data: op.ni})
	if op.ke != nil {
		ps = append(ps, &KE{Group: op.ke.Group(), Data: op.ke.PublicValue()})
	}
	ps = append(ps, &TS{Initiator: true, Selectors: ch.offeredLocal}, &TS{Initiator: false, Selectors: ch.offeredRemote})
	op.req = &request{exchange: CREATE_CHILD_SA, payloads: ps,
		onResponse: func(_ *Message, inner []Payload) { d.createResponse(sa, op, inner) }}
	d.queueRequest(sa, op.req)
}

// endCreate takes op out of sa: its SPI back unless installed, its
// waiters told, the old child (if no other rekey took it) installed again.
func (d *Daemon) endCreate(sa *ikeSA, op *createOp, err error) {
	sa.creating = slices.DeleteFunc(sa.creating, func(o *createOp) bool { return o == op })
	if ch := op.ch; !ch.inInstalled && ch.inSPI != 0 && !ch.gone {
		ch.gone = true
		d.cfg.Kernel.ReleaseSPI(ch.inSPI)
	}
	if old := op.old; old != nil && old.rekey == op {
		old.rekey = nil
		if old.state == childRekeying && old.peerNew == nil && old.successor == nil {
			old.state = childInstalled
		}
		if theirs := old.peerNew; theirs != nil && theirs.pendingKC != nil && !theirs.lost {
			// The peer's rekey of old stands (§2.8.1).
			d.after(rekeySwitchTimeout, false, func() { d.promote(theirs) })
		}
	}
	for _, w := range op.waiters {
		w <- err
	}
	op.waiters = nil
}

// createResponse is the answer to our CREATE_CHILD_SA for a child.
func (d *Daemon) createResponse(sa *ikeSA, op *createOp, inner []Payload) {
	ch, old := op.ch, op.old
	fields := append(sa.logFields(), zap.String("child", ch.name))
	if sa.state != stateEstablished {
		d.endCreate(sa, op, errors.New("ike: the IKE SA went down"))
		return
	}
	if old != nil && (old.gone || old.rekey != op) {
		d.endCreate(sa, op, errors.New("ike: the child was deleted during its rekey"))
		return
	}
	if n := firstError(inner); n != nil {
		d.createRefused(sa, op, n)
		return
	}
	bad := func(reason string, err error) {
		d.fail(reason)
		d.log.Warn("responder's CREATE_CHILD_SA answer unacceptable", append(fields, zap.Error(err))...)
		// The responder installed it: have it deleted there (§1.4.1).
		d.queueRequest(sa, &request{exchange: INFORMATIONAL, payloads: []Payload{&Delete{Protocol: ProtoESP, SPIs: []uint32{ch.inSPI}}},
			onResponse: func(*Message, []Payload) {}})
		d.endCreate(sa, op, fmt.Errorf("ike: child %s: %w", ch.name, err))
	}
	a := readCreate(inner)
	if a.sa == nil || len(a.sa.Proposals) != 1 || a.nonce == nil || a.tsi == nil || a.tsr == nil {
		bad("malformed", errors.New("no SA, Nr, TSi or TSr"))
		return
	}
	chosen := a.sa.Proposals[0]
	if err := CheckChosen(ch.offered, chosen); err != nil {
		bad("no_proposal", err)
		return
	}
	suite, err := ESPSuiteOf(chosen)
	if err != nil {
		bad("no_proposal", err)
		return
	}
	out, err := espSPI(chosen.SPI)
	if err != nil {
		bad("malformed", err)
		return
	}
	var gir []byte
	if suite.DH != DHNone {
		if op.ke == nil || op.ke.Group() != suite.DH || a.ke == nil || a.ke.Group != suite.DH {
			bad("invalid_ke", fmt.Errorf("chosen key exchange %v does not match the KE payloads", suite.DH))
			return
		}
		if gir, err = op.ke.SharedSecret(a.ke.Data); err != nil {
			bad("malformed", err)
			return
		}
		defer clear(gir)
	}
	nr := bytes.Clone(a.nonce.Data)
	if len(nr) < max(MinNonceLen, sa.suite.PRF.Size()/2) || len(nr) > MaxNonceLen {
		bad("malformed", errors.New("responder's nonce too short or long (§2.10)"))
		return
	}
	if !TSSubset(a.tsi.Selectors, ch.offeredLocal) || !TSSubset(a.tsr.Selectors, ch.offeredRemote) ||
		len(a.tsi.Selectors) == 0 || len(a.tsr.Selectors) == 0 {
		bad("ts_unacceptable", errors.New("narrowed selectors are not within what we proposed"))
		return
	}
	if a.transport != (ch.mode == ModeTransport) {
		bad("no_proposal", fmt.Errorf("we asked for %v mode, the responder answered otherwise", ch.mode))
		return
	}
	ch.proposal, ch.suite, ch.outSPI = chosen, suite, out
	ch.localTS, ch.remoteTS = a.tsi.Selectors, a.tsr.Selectors
	ch.ni, ch.nr = op.ni, nr
	if old != nil && old.peerNew != nil {
		// Both sides rekeyed old (§2.8.1): the exchange with the lowest
		// nonce loses, and its initiator deletes what it created.
		theirs := old.peerNew
		if bytes.Compare(lowNonce(ch.ni, ch.nr), lowNonce(theirs.ni, theirs.nr)) < 0 {
			d.log.Info("child rekey collision lost: deleting ours", append(fields, zap.Uint32("ours", ch.inSPI))...)
			d.queueRequest(sa, &request{exchange: INFORMATIONAL, payloads: []Payload{&Delete{Protocol: ProtoESP, SPIs: []uint32{ch.inSPI}}},
				onResponse: func(*Message, []Payload) {}})
			// The peer's rekey stands: its Delete of old switches us over.
			d.endCreate(sa, op, nil)
			return
		}
		d.log.Info("child rekey collision won: the peer deletes its own", append(fields, zap.Uint32("theirs", theirs.inSPI))...)
		theirs.lost = true
	}
	encLen, integLen := suite.KeyLens()
	k, err := DeriveChildKeys(sa.suite.PRF, sa.keys.SKd, gir, ch.ni, ch.nr, encLen, integLen)
	if err != nil {
		bad("internal", err)
		return
	}
	kc := d.kernelChild(sa, ch, k)
	defer wipeKernelChild(kc, k)
	if err := d.installInbound(sa, ch, kc); err != nil {
		bad("kernel", err)
		return
	}
	if old != nil && !old.gone {
		kc.Replaces = old.outSPI
	}
	if err := d.installOutbound(sa, ch, kc); err != nil {
		d.uninstallChild(sa, ch)
		bad("kernel", err)
		return
	}
	sa.children = append(sa.children, ch)
	if old != nil {
		old.successor, old.replaced = ch, true
		old.rekey = nil
		d.stats.Rekeys++
		d.log.Info("child SA rekeyed", append(fields, zap.Uint32("old_in", old.inSPI), zap.Uint32("in", ch.inSPI))...)
		d.deleteChild(sa, old)
		ch.rekeyOf = nil // no chain of predecessors
	}
	d.endCreate(sa, op, nil)
}

// createRefused handles an error notify answering our child request.
func (d *Daemon) createRefused(sa *ikeSA, op *createOp, n *Notify) {
	ch, old := op.ch, op.old
	fields := append(sa.logFields(), zap.String("child", ch.name), zap.Stringer("notify", n.NotifyType))
	switch n.NotifyType {
	case INVALID_KE_PAYLOAD:
		// §1.3: again with the group the responder wants, where we
		// offered it, once per group.
		if op.ke != nil && len(n.Data) == 2 {
			g := DHGroup(binary.BigEndian.Uint16(n.Data))
			if g != op.ke.Group() && !slices.Contains(op.tried, g) && offersGroup(ch.offered, g) && g.Supported() {
				if ke, err := NewKeyExchange(g, d.rand); err == nil {
					op.tried = append(op.tried, op.ke.Group())
					op.ke = ke
					d.log.Info("responder asked for another key exchange method", append(fields, zap.Stringer("group", g))...)
					d.sendCreate(sa, op)
					return
				}
			}
		}
		d.fail("invalid_ke")
	case TEMPORARY_FAILURE:
		// §2.25: another exchange collided; again after a random delay,
		// unless the peer's own rekey of the child took its place.
		if old != nil && old.peerNew != nil {
			d.endCreate(sa, op, nil)
			return
		}
		waiters := op.waiters
		op.waiters = nil
		d.endCreate(sa, op, nil)
		d.after(d.retryDelay(), false, func() { d.retryCreate(sa.conn, op.cfg, old, waiters, 0) })
		return
	case CHILD_SA_NOT_FOUND:
		// The peer has no such child (§2.25): ours goes, and a new one
		// takes its place.
		if old != nil && old.peerNew == nil {
			waiters := op.waiters
			op.waiters = nil
			d.endCreate(sa, op, nil)
			d.log.Info("peer no longer has the child: creating it anew", fields...)
			d.dropChild(sa, old)
			if err := d.createChild(sa, op.cfg, nil, waiters...); err != nil {
				tell(waiters, err)
			}
			return
		}
		d.fail("malformed")
	case TS_UNACCEPTABLE:
		d.fail("ts_unacceptable")
	case NO_PROPOSAL_CHOSEN:
		d.fail("no_proposal")
	default:
		d.fail("malformed")
	}
	d.log.Warn("responder refused the CREATE_CHILD_SA", fields...)
	d.endCreate(sa, op, fmt.Errorf("ike: child %s: responder answered %v", ch.name, n.NotifyType))
}

// tell sends err to every waiter.
func tell(ws []chan error, err error) {
	for _, w := range ws {
		w <- err
	}
}

// maxRetries bounds the TEMPORARY_FAILURE retries of one request.
const maxRetries = 8

// retryCreate is a child request refused with TEMPORARY_FAILURE, again
// (§2.25) on the IKE SA that now holds the child (or the connection's):
// not if what it wanted happened meanwhile, later while that IKE SA is
// itself being rekeyed.
func (d *Daemon) retryCreate(c *connState, cfg *Child, old *childSA, ws []chan error, n int) {
	sa := d.activeSA(c)
	if old != nil {
		sa = d.owner(old)
	}
	switch {
	case old != nil && (old.gone || old.successor != nil || old.peerNew != nil):
		tell(ws, nil)
	case sa == nil || (sa.state != stateEstablished && sa.successor == nil):
		tell(ws, errors.New("ike: the IKE SA went down"))
	case old == nil && sa.hasChild(cfg.Name):
		tell(ws, nil)
	case sa.successor != nil || sa.ikeRekey != nil || (old != nil && old.state != childInstalled):
		if n >= maxRetries {
			tell(ws, errors.New("ike: gave up after repeated TEMPORARY_FAILURE"))
			return
		}
		d.after(d.retryDelay(), false, func() { d.retryCreate(c, cfg, old, ws, n+1) })
	default:
		if err := d.createChild(sa, cfg, old, ws...); err != nil {
			tell(ws, err)
		}
	}
}

// narrowChild is cc's selectors narrowed to the initiator's (§2.9), the
// remote ones also to the peer's PAD entry (pad.go): tsi are its own (our
// remote), tsr ours (our local); nil, nil where either side has nothing
// left, with padRefused where only the PAD left nothing.
func (sa *ikeSA) narrowChild(cc *Child, tsi, tsr []TrafficSelector) (local, remote []TrafficSelector, padRefused bool) {
	remote = NarrowTS(resolveTS(cc.RemoteTS, sa.remote.Addr()), tsi)
	local = NarrowTS(resolveTS(cc.LocalTS, sa.local.Addr()), tsr)
	if len(local) == 0 || len(remote) == 0 {
		return nil, nil, false
	}
	if remote, padRefused = sa.padNarrow(remote); padRefused {
		return nil, nil, true
	}
	return local, remote, false
}

// matchChild picks the configured child whose selectors meet the
// initiator's, narrowed (§2.9): among those that take the initiator's
// selectors as they are, the one configured narrowest (so that a child
// for one protocol or prefix is chosen over a wider one that also covers
// the request, as a home agent's HoTi child over its payload child, RFC
// 4877 §7.2), else the first that meets them at all; a transport child
// only where the initiator asked for transport mode (USE_TRANSPORT_MODE,
// §1.3.1). padRefused: no child matched, and some would have but for the
// PAD.
func (sa *ikeSA) matchChild(transport bool, tsi, tsr *TS) (cfg *Child, local, remote []TrafficSelector, padRefused bool) {
	var exact *Child
	var exactL, exactR []TrafficSelector
	for i := range sa.conn.cfg.Children {
		cc := &sa.conn.cfg.Children[i]
		if cc.Mode == ModeTransport && !transport {
			continue
		}
		l, r, pad := sa.narrowChild(cc, tsi.Selectors, tsr.Selectors)
		padRefused = padRefused || pad
		if l == nil {
			continue
		}
		if cfg == nil {
			cfg, local, remote = cc, l, r
		}
		if !slices.EqualFunc(l, tsr.Selectors, sameTS) || !slices.EqualFunc(r, tsi.Selectors, sameTS) {
			continue
		}
		if exact == nil || sa.narrowerChild(cc, exact) && !sa.narrowerChild(exact, cc) {
			exact, exactL, exactR = cc, l, r
		}
	}
	if exact != nil {
		return exact, exactL, exactR, false
	}
	if cfg != nil {
		return cfg, local, remote, false
	}
	return nil, nil, nil, padRefused
}

// narrowerChild: a's configured selectors lie within b's (equal ones
// too).
func (sa *ikeSA) narrowerChild(a, b *Child) bool {
	la, ra := resolveTS(a.LocalTS, sa.local.Addr()), resolveTS(a.RemoteTS, sa.remote.Addr())
	lb, rb := resolveTS(b.LocalTS, sa.local.Addr()), resolveTS(b.RemoteTS, sa.remote.Addr())
	return TSSubset(la, lb) && TSSubset(ra, rb)
}

// refuseTS counts and logs a child refused for its selectors, by the PAD
// or because no child's meet them, and returns the TS_UNACCEPTABLE answer.
func (d *Daemon) refuseTS(sa *ikeSA, pad bool) []Payload {
	if pad {
		d.refuse("pad", "child refused: its remote traffic selectors are outside what the PAD allows the peer (RFC 4301 §4.4.3)",
			append(sa.logFields(), zap.String("remote_id", sa.remoteID.String()))...)
	} else {
		d.refuse("ts_unacceptable", "no child's traffic selectors meet the initiator's", sa.logFields()...)
	}
	return []Payload{&Notify{NotifyType: TS_UNACCEPTABLE}}
}

// The responder's child, in IKE_AUTH (respondChild) and CREATE_CHILD_SA
// (createChildRequest): chooseChild selects the ESP proposal for the
// narrowed selectors, installResponderChild installs the inbound SA
// before the response goes and outboundAfterResponse the outbound one
// after it (make-before-break, §2.8, kernel.go).

// chooseChild selects our ESP proposal of cfg among theirs (preferring
// the group of the initiator's KE payload; ke nil: none) and returns the
// child it makes between local and remote, without its ID, SPI or
// nonces; or the NO_PROPOSAL_CHOSEN answer.
func (d *Daemon) chooseChild(sa *ikeSA, cfg *Child, ours, theirs []Proposal, ke *KE, local, remote []TrafficSelector,
	fields []zap.Field) (*childSA, []Payload) {
	chosen, err := chooseWithKE(ours, theirs, ke)
	var suite ESPSuite
	if err == nil {
		suite, err = ESPSuiteOf(chosen)
	}
	var out uint32
	if err == nil {
		out, err = espSPI(chosen.SPI)
	}
	if err != nil {
		d.refuse("no_proposal", "no acceptable ESP proposal", append(fields, zap.Error(err))...)
		return nil, []Payload{&Notify{NotifyType: NO_PROPOSAL_CHOSEN}}
	}
	return &childSA{name: cfg.Name, cfg: cfg, mode: cfg.Mode, proposal: chosen, suite: suite,
		outSPI: out, localTS: local, remoteTS: remote,
		policyName: sa.responderPolicyName(cfg.Name), lifetime: lifetimeOf(cfg)}, nil
}

// installResponderChild gives ch its ID and our SPI, derives its keys
// from its nonces (gir: the shared secret of a PFS exchange, nil
// without; §2.17), installs the inbound SA and records ch in sa. It
// returns the response's child payloads (mid, the Nonce and KE of
// CREATE_CHILD_SA, between SA and TSi) and the kernel SA of the outbound
// half with its keys, for the caller to install and wipe; or the
// TEMPORARY_FAILURE answer, with nothing kept.
func (d *Daemon) installResponderChild(sa *ikeSA, ch *childSA, gir []byte, mid ...Payload) ([]Payload, *ChildSA, *ChildKeys, []Payload) {
	temporary := []Payload{&Notify{NotifyType: TEMPORARY_FAILURE}}
	ch.id = d.newChildID()
	var err error
	if ch.inSPI, err = d.cfg.Kernel.AllocSPI(); err != nil {
		d.fail("kernel")
		d.log.Warn("kernel: allocate SPI failed", append(sa.logFields(), zap.String("child", ch.name), zap.Error(err))...)
		return nil, nil, nil, temporary
	}
	encLen, integLen := ch.suite.KeyLens()
	k, err := DeriveChildKeys(sa.suite.PRF, sa.keys.SKd, gir, ch.ni, ch.nr, encLen, integLen)
	if err != nil {
		d.cfg.Kernel.ReleaseSPI(ch.inSPI)
		d.fail("internal")
		return nil, nil, nil, temporary
	}
	kc := d.kernelChild(sa, ch, k)
	if err := d.installInbound(sa, ch, kc); err != nil {
		d.cfg.Kernel.ReleaseSPI(ch.inSPI)
		wipeKernelChild(kc, k)
		return nil, nil, nil, temporary
	}
	sa.children = append(sa.children, ch)
	answer := ch.proposal
	answer.SPI = spiBytes(ch.inSPI)
	var ps []Payload
	if ch.mode == ModeTransport {
		ps = append(ps, &Notify{NotifyType: USE_TRANSPORT_MODE})
	}
	ps = append(ps, &SA{Proposals: []Proposal{answer}})
	ps = append(ps, mid...)
	ps = append(ps, &TS{Initiator: true, Selectors: ch.remoteTS}, &TS{Initiator: false, Selectors: ch.localTS})
	return ps, kc, k, nil
}

// outboundAfterResponse is what follows the response of a new child: its
// outbound SA and policies (the initiator may use the child only once it
// has the response), unless the IKE SA or the child went meanwhile.
func (d *Daemon) outboundAfterResponse(sa *ikeSA, ch *childSA, kc *ChildSA, k *ChildKeys) func() {
	return func() {
		defer wipeKernelChild(kc, k)
		if sa.state == stateDead || ch.gone {
			return
		}
		if err := d.installOutbound(sa, ch, kc); err != nil {
			d.dropChild(sa, ch)
		}
	}
}

// createChildRequest answers the peer's CREATE_CHILD_SA: a new child, a
// child rekey or an IKE SA rekey. It returns the response payloads and
// what to do once the response is sent.
func (d *Daemon) createChildRequest(sa *ikeSA, h Header, inner []Payload) ([]Payload, func()) {
	temporary := []Payload{&Notify{NotifyType: TEMPORARY_FAILURE}}
	if sa.state != stateEstablished || sa.successor != nil {
		return temporary, nil // being deleted or rekeyed away (§2.25)
	}
	a := readCreate(inner)
	if a.sa == nil || a.nonce == nil || len(a.sa.Proposals) == 0 {
		d.fail("malformed")
		return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}, nil
	}
	if a.sa.Proposals[0].Protocol == ProtoIKE && a.rekey == nil && a.tsi == nil && a.tsr == nil {
		return d.ikeRekeyRequest(sa, a)
	}
	if a.tsi == nil || a.tsr == nil {
		d.fail("malformed")
		return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}, nil
	}
	if sa.ikeRekey != nil && sa.ikeRekey.req == sa.outstanding {
		return temporary, nil // §2.25.2: our IKE SA rekey is in flight
	}
	var old *childSA
	if a.rekey != nil {
		spi, err := espSPI(a.rekey.SPI)
		if a.rekey.Protocol != ProtoESP || err != nil {
			d.refuse("malformed", "REKEY_SA of no ESP SPI", sa.logFields()...)
			return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}, nil
		}
		for _, ch := range sa.children {
			if ch.outSPI == spi && ch.outInstalled && !ch.gone {
				old = ch
			}
		}
		if old == nil {
			d.refuse("invalid_spi", "REKEY_SA for no child of ours", append(sa.logFields(), zap.Uint32("spi", spi))...)
			return []Payload{&Notify{Protocol: ProtoESP, SPI: spiBytes(spi), NotifyType: CHILD_SA_NOT_FOUND}}, nil
		}
		if old.state == childDeleting || old.successor != nil || old.peerNew != nil {
			return temporary, nil // §2.25.1: we are closing it, or it is rekeyed
		}
		if op := old.rekey; op != nil && op.req != sa.outstanding {
			// Ours is not sent yet: theirs takes its place.
			sa.queue = slices.DeleteFunc(sa.queue, func(r *request) bool { return r == op.req })
			d.endCreate(sa, op, nil)
			old.state = childRekeying
		}
	}
	var cfg *Child
	var local, remote []TrafficSelector
	var padRefused bool
	if old != nil {
		cfg = old.cfg
		if old.mode == ModeTransport && !a.transport {
			cfg = nil
		} else if local, remote, padRefused = sa.narrowChild(cfg, a.tsi.Selectors, a.tsr.Selectors); local == nil {
			cfg = nil
		}
	} else {
		cfg, local, remote, padRefused = sa.matchChild(a.transport, a.tsi, a.tsr)
	}
	if cfg == nil {
		return d.refuseTS(sa, padRefused), nil
	}
	fields := append(sa.logFields(), zap.String("child", cfg.Name))
	if old == nil && len(sa.children) >= maxChildren {
		d.refuse("internal", "too many children on one IKE SA", fields...)
		return []Payload{&Notify{NotifyType: NO_ADDITIONAL_SAS}}, nil
	}
	ch, refusal := d.chooseChild(sa, cfg, cfg.Proposals, a.sa.Proposals, a.ke, local, remote, fields)
	if refusal != nil {
		return refusal, nil
	}
	suite := ch.suite
	if suite.DH != DHNone && (a.ke == nil || a.ke.Group != suite.DH) {
		d.refuse("invalid_ke", "KE of another group than the chosen one", fields...)
		return invalidKE(suite.DH), nil
	}
	if n := len(a.nonce.Data); n < max(MinNonceLen, sa.suite.PRF.Size()/2) || n > MaxNonceLen {
		d.refuse("malformed", "initiator's nonce too short or long", fields...)
		return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}, nil
	}
	ch.ccsa = true
	if old != nil {
		ch.name, ch.mode, ch.policyName, ch.rekeyOf = old.name, old.mode, old.policyName, old
	}
	var err error
	ch.ni = bytes.Clone(a.nonce.Data)
	if ch.nr, err = d.newNonce(sa.suite.PRF); err != nil {
		d.fail("internal")
		return temporary, nil
	}
	mid := []Payload{&Nonce{Data: ch.nr}}
	var gir []byte
	if suite.DH != DHNone {
		ke, err := NewKeyExchange(suite.DH, d.rand)
		if err != nil {
			d.fail("internal")
			return temporary, nil
		}
		if gir, err = ke.SharedSecret(a.ke.Data); err != nil {
			d.refuse("malformed", "bad key exchange value", append(fields, zap.Error(err))...)
			return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}, nil
		}
		defer clear(gir)
		mid = append(mid, &KE{Group: suite.DH, Data: ke.PublicValue()})
	}
	ps, kc, k, refusal := d.installResponderChild(sa, ch, gir, mid...)
	if refusal != nil {
		return refusal, nil
	}
	if old == nil {
		return ps, d.outboundAfterResponse(sa, ch, kc, k)
	}
	// A rekey: we keep sending on old until the initiator is known to
	// have our response (§2.8).
	old.peerNew = ch
	old.state = childRekeying
	ch.pendingKC, ch.exMsgID = kc, h.MessageID
	return ps, func() {
		if old.rekey == nil {
			d.after(rekeySwitchTimeout, false, func() { d.promote(ch) })
		}
	}
}

// owner is the IKE SA that holds ch, nil if none.
func (d *Daemon) owner(ch *childSA) *ikeSA {
	for _, sa := range d.sas {
		if slices.Contains(sa.children, ch) {
			return sa
		}
	}
	return nil
}

// promote installs the outbound SA of a child the peer's rekey made,
// replacing the old child's (§2.8): the initiator has our response.
func (d *Daemon) promote(ch *childSA) {
	kc := ch.pendingKC
	if kc == nil || ch.gone || ch.lost {
		return
	}
	old := ch.rekeyOf
	if old != nil && old.rekey != nil {
		return // our own rekey of old is unresolved (§2.8.1)
	}
	sa := d.owner(ch)
	if sa == nil || sa.state == stateDead {
		return
	}
	ch.pendingKC = nil
	defer wipeChildSA(kc)
	if old != nil && !old.gone {
		kc.Replaces = old.outSPI
	}
	if err := d.installOutbound(sa, ch, kc); err != nil {
		d.dropChild(sa, ch)
		return
	}
	if old != nil {
		old.successor, old.replaced = ch, true
		if old.state == childRekeying {
			old.state = childInstalled // until the peer deletes it
		}
		d.stats.Rekeys++
		d.log.Info("child SA rekeyed by the peer", append(sa.logFields(), zap.String("child", ch.name),
			zap.Uint32("old_in", old.inSPI), zap.Uint32("in", ch.inSPI))...)
	}
	ch.rekeyOf = nil
}

// peerRequest is a new request of the peer on sa, with message ID id: it
// has every response before it, so the children its rekeys made may be
// used (§2.8), and an IKE SA it rekeyed to sa takes the children over.
func (d *Daemon) peerRequest(sa *ikeSA, id uint32) {
	if p := sa.predecessor; p != nil && p.successor == sa && len(p.children) > 0 {
		d.moveChildren(p, sa)
	}
	for _, ch := range slices.Clone(sa.children) {
		if ch.pendingKC != nil && id > ch.exMsgID {
			d.promote(ch)
		}
	}
}

// wipeChildSA clears the keys of a ChildSA handed to Kernel.
func wipeChildSA(kc *ChildSA) {
	clear(kc.InKeys.Enc)
	clear(kc.InKeys.Integ)
	clear(kc.OutKeys.Enc)
	clear(kc.OutKeys.Integ)
}

// rekeyChild starts our rekey of ch (§1.3.3).
func (d *Daemon) rekeyChild(sa *ikeSA, ch *childSA, w chan error) error {
	if ch.cfg == nil {
		return fmt.Errorf("ike: child %s has no configuration", ch.name)
	}
	return d.createChild(sa, ch.cfg, ch, w)
}

// rekeyIKE starts our rekey of the IKE SA (§1.3.2, §2.18).
func (d *Daemon) rekeyIKE(sa *ikeSA, ws ...chan error) error {
	if sa.state != stateEstablished || sa.successor != nil || sa.peerRekey != nil {
		return errors.New("ike: the IKE SA is not established or already rekeyed")
	}
	if op := sa.ikeRekey; op != nil {
		for _, w := range ws {
			if w != nil {
				op.waiters = append(op.waiters, w)
			}
		}
		return nil
	}
	spi, err := d.newSPI()
	if err != nil {
		return err
	}
	op := &ikeRekeyOp{spi: spi}
	for i, p := range sa.conn.cfg.Proposals {
		p.Number, p.SPI = uint8(i+1), binary.BigEndian.AppendUint64(nil, spi)
		op.offered = append(op.offered, p)
	}
	if op.ke, err = NewKeyExchange(firstGroup(op.offered), d.rand); err != nil {
		return err
	}
	if op.ni, err = d.newNonce(PRFHMACSHA2_512); err != nil {
		return err
	}
	for _, w := range ws {
		if w != nil {
			op.waiters = append(op.waiters, w)
		}
	}
	sa.ikeRekey = op
	d.sendIKERekey(sa, op)
	return nil
}

// retryIKERekey is an IKE SA rekey refused with TEMPORARY_FAILURE, again
// (§2.25), unless the peer rekeyed the SA meanwhile.
func (d *Daemon) retryIKERekey(sa *ikeSA, ws []chan error, n int) {
	switch {
	case sa.successor != nil || sa.peerRekey != nil:
		tell(ws, nil)
	case sa.state != stateEstablished:
		tell(ws, errors.New("ike: the IKE SA went down"))
	case len(sa.creating) > 0:
		if n >= maxRetries {
			tell(ws, errors.New("ike: gave up after repeated TEMPORARY_FAILURE"))
			return
		}
		d.after(d.retryDelay(), false, func() { d.retryIKERekey(sa, ws, n+1) })
	default:
		if err := d.rekeyIKE(sa, ws...); err != nil {
			tell(ws, err)
		}
	}
}

func (d *Daemon) sendIKERekey(sa *ikeSA, op *ikeRekeyOp) {
	ps := []Payload{&SA{Proposals: op.offered}, &Nonce{Data: op.ni}, &KE{Group: op.ke.Group(), Data: op.ke.PublicValue()}}
	op.req = &request{exchange: CREATE_CHILD_SA, payloads: ps,
		onResponse: func(_ *Message, inner []Payload) { d.ikeRekeyResponse(sa, op, inner) }}
	d.queueRequest(sa, op.req)
}

// adoptPeerRekey: our rekey of sa failed or lost, and the peer's, which
// we answered, stands (§2.8.2): its SA takes the children when the peer
// deletes sa.
func (d *Daemon) adoptPeerRekey(sa *ikeSA) {
	if p := sa.peerRekey; p != nil && sa.successor == nil && p.state == stateEstablished {
		sa.successor, p.predecessor = p, sa
		d.stats.Rekeys++
	}
}

func (d *Daemon) endIKERekey(sa *ikeSA, op *ikeRekeyOp, err error) {
	if sa.ikeRekey == op {
		sa.ikeRekey = nil
	}
	for _, w := range op.waiters {
		w <- err
	}
	op.waiters = nil
}

// ikeRekeyResponse is the answer to our IKE SA rekey.
func (d *Daemon) ikeRekeyResponse(sa *ikeSA, op *ikeRekeyOp, inner []Payload) {
	if sa.state != stateEstablished || sa.ikeRekey != op {
		d.endIKERekey(sa, op, errors.New("ike: the IKE SA went down"))
		return
	}
	fail := func(reason string, err error) {
		d.fail(reason)
		d.log.Warn("IKE SA rekey failed", append(sa.logFields(), zap.Error(err))...)
		d.endIKERekey(sa, op, fmt.Errorf("ike: IKE SA rekey: %w", err))
		d.adoptPeerRekey(sa)
	}
	if n := firstError(inner); n != nil {
		switch n.NotifyType {
		case INVALID_KE_PAYLOAD:
			if len(n.Data) == 2 {
				g := DHGroup(binary.BigEndian.Uint16(n.Data))
				if g != op.ke.Group() && !slices.Contains(op.tried, g) && offersGroup(op.offered, g) && g.Supported() {
					if ke, err := NewKeyExchange(g, d.rand); err == nil {
						op.tried = append(op.tried, op.ke.Group())
						op.ke = ke
						d.sendIKERekey(sa, op)
						return
					}
				}
			}
			fail("invalid_ke", errors.New("responder wants a key exchange method we do not offer"))
		case TEMPORARY_FAILURE:
			if sa.peerRekey != nil {
				d.endIKERekey(sa, op, nil) // the peer's rekey took its place
				d.adoptPeerRekey(sa)
				return
			}
			waiters := op.waiters
			op.waiters = nil
			d.endIKERekey(sa, op, nil)
			d.after(d.retryDelay(), false, func() { d.retryIKERekey(sa, waiters, 0) })
		case NO_PROPOSAL_CHOSEN:
			fail("no_proposal", errors.New("responder answered NO_PROPOSAL_CHOSEN"))
		default:
			fail("malformed", fmt.Errorf("responder answered %v", n.NotifyType))
		}
		return
	}
	a := readCreate(inner)
	if a.sa == nil || len(a.sa.Proposals) != 1 || a.nonce == nil || a.ke == nil {
		fail("malformed", errors.New("no SA, Nr or KEr"))
		return
	}
	chosen := a.sa.Proposals[0]
	if err := CheckChosen(op.offered, chosen); err != nil {
		fail("no_proposal", err)
		return
	}
	suite, err := IKESuiteOf(chosen)
	if err != nil {
		fail("no_proposal", err)
		return
	}
	if len(chosen.SPI) != 8 || binary.BigEndian.Uint64(chosen.SPI) == 0 {
		fail("malformed", errors.New("responder's IKE SPI is not 8 nonzero bytes"))
		return
	}
	if suite.DH != op.ke.Group() || a.ke.Group != suite.DH {
		fail("invalid_ke", fmt.Errorf("responder chose %v with a %v KE, we sent %v", suite.DH, a.ke.Group, op.ke.Group()))
		return
	}
	ns := d.rekeyedSA(sa, true, suite, chosen)
	ns.spii, ns.spir = op.spi, binary.BigEndian.Uint64(chosen.SPI)
	ns.ni, ns.nr = op.ni, bytes.Clone(a.nonce.Data)
	if err := d.deriveRekeyed(sa, ns, op.ke, a.ke.Data); err != nil {
		fail("malformed", err)
		return
	}
	d.sas[ns.spii] = ns
	d.endIKERekey(sa, op, nil)
	if p := sa.peerRekey; p != nil {
		// Both sides rekeyed (§2.8.2): the lowest nonce loses.
		if bytes.Compare(lowNonce(ns.ni, ns.nr), lowNonce(p.ni, p.nr)) < 0 {
			d.log.Info("IKE SA rekey collision lost: deleting ours", ns.logFields()...)
			d.adoptPeerRekey(sa)
			d.deleteIKESA(ns)
			return
		}
		d.log.Info("IKE SA rekey collision won: the peer deletes its own", p.logFields()...)
	}
	sa.successor, ns.predecessor = ns, sa
	d.moveChildren(sa, ns)
	d.stats.Rekeys++
	d.log.Info("IKE SA rekeyed", append(sa.logFields(), zap.String("new", fmt.Sprintf("%016x_i %016x_r", ns.spii, ns.spir)))...)
	d.deleteIKESA(sa)
}

// rekeyedSA is the new IKE SA of a rekey of sa (§2.18): the peer, paths,
// identities and NAT state of sa; initiator is whether we started the
// rekey, which makes us the new SA's original initiator (the I flag).
func (d *Daemon) rekeyedSA(sa *ikeSA, initiator bool, suite IKESuite, chosen Proposal) *ikeSA {
	ns := d.newSA(sa.conn, initiator)
	ns.local, ns.remote = sa.local, sa.remote
	ns.natLocal, ns.natRemote, ns.encap = sa.natLocal, sa.natRemote, sa.encap
	ns.fragmentation = sa.fragmentation
	ns.localID, ns.remoteID = sa.localID, sa.remoteID
	ns.vips, ns.homePrefix = sa.vips, sa.homePrefix
	ns.proposal, ns.suite = chosen, suite
	ns.proposal.SPI = nil
	ns.keepaliveAt = sa.keepaliveAt
	return ns
}

// deriveRekeyed computes the new SA's keys: SKEYSEED = prf(SK_d (old),
// g^ir (new) | Ni | Nr) with the old PRF, then the seven keys with the new
// suite and SPIs (§2.18); it marks ns established with message IDs at 0.
func (d *Daemon) deriveRekeyed(sa, ns *ikeSA, ke *KeyExchange, peer []byte) error {
	if n := len(ns.ni); n < max(MinNonceLen, ns.suite.PRF.Size()/2) || n > MaxNonceLen {
		return errors.New("ike: nonce too short or long (§2.10)")
	}
	if n := len(ns.nr); n < max(MinNonceLen, ns.suite.PRF.Size()/2) || n > MaxNonceLen {
		return errors.New("ike: nonce too short or long (§2.10)")
	}
	gir, err := ke.SharedSecret(peer)
	if err != nil {
		return err
	}
	defer clear(gir)
	skeyseed, err := RekeySKEYSEED(sa.suite.PRF, sa.keys.SKd, gir, ns.ni, ns.nr)
	if err != nil {
		return err
	}
	defer clear(skeyseed)
	k, err := DeriveIKEKeys(ns.suite.PRF, ns.suite.SK, skeyseed, ns.ni, ns.nr, ns.spii, ns.spir)
	if err != nil {
		return err
	}
	out, in, err := NewSKCiphers(ns.suite.SK, k, ns.initiator)
	if err != nil {
		k.Wipe()
		return err
	}
	ns.keys, ns.out, ns.in = k, out, in
	ns.state = stateEstablished
	ns.established = d.now()
	ns.lastRecv = ns.established
	return nil
}

// ikeRekeyRequest answers the peer's rekey of sa.
func (d *Daemon) ikeRekeyRequest(sa *ikeSA, a createPayloads) ([]Payload, func()) {
	temporary := []Payload{&Notify{NotifyType: TEMPORARY_FAILURE}}
	if sa.peerRekey != nil || len(sa.creating) > 0 && slices.ContainsFunc(sa.creating, func(o *createOp) bool { return o.req == sa.outstanding }) {
		return temporary, nil // §2.25.2: a child exchange of ours is in flight
	}
	if op := sa.ikeRekey; op != nil && op.req != sa.outstanding {
		// Ours is not sent yet: theirs takes its place.
		sa.queue = slices.DeleteFunc(sa.queue, func(r *request) bool { return r == op.req })
		d.endIKERekey(sa, op, nil)
	}
	chosen, err := chooseWithKE(sa.conn.cfg.Proposals, a.sa.Proposals, a.ke)
	var suite IKESuite
	if err == nil {
		suite, err = IKESuiteOf(chosen)
	}
	if err == nil && (len(chosen.SPI) != 8 || binary.BigEndian.Uint64(chosen.SPI) == 0) {
		err = errors.New("ike: IKE SPI not 8 nonzero bytes")
	}
	if err != nil {
		d.refuse("no_proposal", "no acceptable IKE proposal for the rekey", append(sa.logFields(), zap.Error(err))...)
		return []Payload{&Notify{NotifyType: NO_PROPOSAL_CHOSEN}}, nil
	}
	if a.ke == nil || a.ke.Group != suite.DH {
		d.refuse("invalid_ke", "IKE SA rekey with a KE of another group", sa.logFields()...)
		return invalidKE(suite.DH), nil
	}
	ns := d.rekeyedSA(sa, false, suite, chosen)
	ns.spii = binary.BigEndian.Uint64(chosen.SPI)
	if ns.spir, err = d.newSPI(); err != nil {
		d.fail("internal")
		return temporary, nil
	}
	ns.ni = bytes.Clone(a.nonce.Data)
	if ns.nr, err = d.newNonce(suite.PRF); err != nil {
		d.fail("internal")
		return temporary, nil
	}
	ke, err := NewKeyExchange(suite.DH, d.rand)
	if err != nil {
		d.fail("internal")
		return temporary, nil
	}
	if err := d.deriveRekeyed(sa, ns, ke, a.ke.Data); err != nil {
		d.refuse("malformed", "IKE SA rekey failed", append(sa.logFields(), zap.Error(err))...)
		return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}, nil
	}
	d.sas[ns.spir] = ns
	sa.peerRekey = ns
	answer := chosen
	answer.SPI = binary.BigEndian.AppendUint64(nil, ns.spir)
	ps := []Payload{&SA{Proposals: []Proposal{answer}}, &Nonce{Data: ns.nr}, &KE{Group: suite.DH, Data: ke.PublicValue()}}
	return ps, func() {
		if sa.ikeRekey != nil {
			return // ours is in flight: its response settles the collision
		}
		// The initiator deletes sa; its children come over then, or with
		// the first request on ns.
		sa.successor, ns.predecessor = ns, sa
		d.stats.Rekeys++
		d.log.Info("IKE SA rekeyed by the peer", append(sa.logFields(), zap.String("new", fmt.Sprintf("%016x_i %016x_r", ns.spii, ns.spir)))...)
	}
}

// moveChildren hands the children of a rekeyed IKE SA to its successor
// (§2.18); nothing changes in the kernel.
func (d *Daemon) moveChildren(from, to *ikeSA) {
	moved := from.children
	to.children = append(to.children, moved...)
	from.children = nil
	for _, op := range slices.Clone(from.creating) {
		if op.req == from.outstanding {
			d.endCreate(from, op, errors.New("ike: the IKE SA was rekeyed during the exchange"))
			continue
		}
		// Not sent yet: it goes on the new IKE SA instead.
		from.queue = slices.DeleteFunc(from.queue, func(r *request) bool { return r == op.req })
		ws := op.waiters
		op.waiters = nil
		d.endCreate(from, op, nil)
		if err := d.createChild(to, op.cfg, op.old, ws...); err != nil {
			tell(ws, err)
		}
	}
	// The peer has gone on to another IKE SA: it has every answer of the
	// old one, so the children its rekeys made may be used (§2.8).
	for _, ch := range moved {
		if ch.pendingKC != nil {
			d.promote(ch)
		}
	}
}
