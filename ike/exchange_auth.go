package ike

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// IKE_AUTH with a shared key or certificates (RFC 7296 §1.2, §2.15;
// auth_pubkey.go), creating the first Child SA:
//
//	HDR, SK{IDi, [CERT+], [N(INITIAL_CONTACT)], [CERTREQ], [IDr], AUTH,
//	    [N(USE_TRANSPORT_MODE)], SAi2, TSi, TSr}  -->
//	<--  HDR, SK{IDr, [CERT+], AUTH, [N(USE_TRANSPORT_MODE)], SAr2, TSi, TSr}
//
// An error in the child part (TS_UNACCEPTABLE, NO_PROPOSAL_CHOSEN) leaves
// the IKE SA up without a child (§1.2, §2.21.2).

// localIdentity is what we send in IDi/IDr: the configured identity, or
// our certificate's subject DN, or our address (ID_IPV4_ADDR /
// ID_IPV6_ADDR).
func (sa *ikeSA) localIdentity() Identity {
	l := sa.conn.cfg.Local
	if !l.ID.IsZero() {
		return l.ID
	}
	if l.Method == AuthPubkey && len(l.Certs) > 0 {
		return IdentityFromCert(l.Certs[0])
	}
	return IdentityFromAddr(sa.local.Addr())
}

// localAuth is our AUTH payload over signed: the shared key's, or a
// signature for what the peer's IKE_SA_INIT message (peerInit) announced
// in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
func (d *Daemon) localAuth(sa *ikeSA, signed, peerInit []byte) (*Auth, error) {
	l := sa.conn.cfg.Local
	if l.Method != AuthPubkey {
		data, err := PSKAuthData(sa.suite.PRF, l.PSK, signed)
		if err != nil {
			return nil, err
		}
		return &Auth{Method: AuthSharedKey, Data: data}, nil
	}
	var hashes []uint16
	announced := false
	if m, err := Decode(peerInit); err == nil {
		if n := findNotify(m.Payloads, SIGNATURE_HASH_ALGORITHMS); n != nil {
			announced, hashes = true, parseSigHashes(n.Data)
		}
	}
	return signAuth(l.Key, signed, announced, hashes, d.rand)
}

// localCerts are our CERT payloads (none with a shared key). With one
// chain configured, the peer's CERTREQ has nothing to choose from: the
// chain goes whatever CAs it names.
func (sa *ikeSA) localCerts() []Payload {
	if sa.conn.cfg.Local.Method != AuthPubkey {
		return nil
	}
	return certPayloads(sa.conn.cfg.Local)
}

// verifyPeer checks the peer's AUTH over signed, made by the holder of
// identity peer: with a shared key its PRF; with certificates the chain
// to our CAs, peer in the leaf, and the leaf's signature.
func (d *Daemon) verifyPeer(sa *ikeSA, peer Identity, a authPayloads, signed []byte) error {
	r := sa.conn.cfg.Remote
	if r.Method != AuthPubkey {
		if a.auth.Method != AuthSharedKey {
			return fmt.Errorf("ike: auth method %d, want shared key", a.auth.Method)
		}
		if !VerifyPSKAuth(sa.suite.PRF, r.PSK, signed, a.auth.Data) {
			return errors.New("ike: the shared key AUTH does not verify")
		}
		return nil
	}
	if a.auth.Method == AuthSharedKey {
		return failAuth("wrong auth method", errors.New("a shared key, want a signature"))
	}
	leaf, err := verifyPeerCerts(a.certs, r.CAs, d.now())
	if err != nil {
		return err
	}
	if err := certHasIdentity(leaf, peer); err != nil {
		return err
	}
	return verifyAuth(leaf.PublicKey, a.auth, signed)
}

// sendAuth is the initiator's IKE_AUTH request.
func (d *Daemon) sendAuth(sa *ikeSA) {
	c := sa.conn
	sa.state = stateAuthSent
	sa.localID = sa.localIdentity()
	idi := IdentityPayload(sa.localID, false)
	ps := append([]Payload{idi}, sa.localCerts()...)
	if d.firstContact(sa) {
		ps = append(ps, &Notify{NotifyType: INITIAL_CONTACT})
	}
	if c.cfg.Remote.Method == AuthPubkey {
		ps = append(ps, certReqPayload(c.cfg.Remote.CAs))
	}
	if !c.cfg.Remote.ID.IsZero() {
		ps = append(ps, IdentityPayload(c.cfg.Remote.ID, true))
	}
	if c.cfg.MOBIKE {
		ps = append(ps, &Notify{NotifyType: MOBIKE_SUPPORTED})
	}
	signed, err := SignedOctets(sa.suite.PRF, sa.initReq, sa.nr, sa.keys.SKpi, idi)
	if err != nil {
		d.initFailed(sa, "internal", err)
		return
	}
	auth, err := d.localAuth(sa, signed, sa.initResp)
	if err != nil {
		d.initFailed(sa, "auth_failed", err)
		return
	}
	ps = append(ps, auth)
	if cp := cpRequest(&c.cfg); cp != nil {
		ps = append(ps, cp)
	}
	if ch := sa.pendingChild; ch != nil {
		cps, err := d.offerChild(sa, ch)
		if err != nil {
			d.initFailed(sa, "kernel", err)
			return
		}
		ps = append(ps, cps...)
	}
	d.queueRequest(sa, &request{exchange: IKE_AUTH, payloads: ps,
		onResponse: func(m *Message, inner []Payload) { d.authResponse(sa, inner) }})
}

// firstContact: no other IKE SA of the connection exists, so the peer may
// drop whatever it still holds of us (INITIAL_CONTACT, §2.4).
func (d *Daemon) firstContact(sa *ikeSA) bool {
	for _, o := range d.sas {
		if o != sa && o.conn == sa.conn && o.state == stateEstablished {
			return false
		}
	}
	return true
}

// offerChild allocates the inbound SPI of ch and returns its SAi2, TSi
// and TSr (and USE_TRANSPORT_MODE), without key exchange transforms
// (§1.2: the IKE_AUTH child's keys come from the IKE SA's).
func (d *Daemon) offerChild(sa *ikeSA, ch *childSA) ([]Payload, error) {
	spi, err := d.cfg.Kernel.AllocSPI()
	if err != nil {
		return nil, fmt.Errorf("ike: kernel: allocate SPI: %w", err)
	}
	ch.id = d.newChildID()
	ch.inSPI = spi
	ch.mode = ch.cfg.Mode
	ch.policyName = policyNameOf(sa.conn.cfg.Name, ch.name)
	ch.lifetime = lifetimeOf(ch.cfg)
	ch.offered = WithoutDH(ch.cfg.Proposals)
	for i := range ch.offered {
		ch.offered[i].Number, ch.offered[i].SPI = uint8(i+1), spiBytes(spi)
	}
	ch.offeredLocal = resolveTS(ch.cfg.LocalTS, sa.local.Addr())
	ch.offeredRemote = resolveTS(ch.cfg.RemoteTS, sa.remote.Addr())
	var ps []Payload
	if ch.mode == ModeTransport {
		ps = append(ps, &Notify{NotifyType: USE_TRANSPORT_MODE})
	}
	return append(ps, &SA{Proposals: ch.offered},
		&TS{Initiator: true, Selectors: ch.offeredLocal},
		&TS{Initiator: false, Selectors: ch.offeredRemote}), nil
}

// authPayloads are the payloads IKE_AUTH and CREATE_CHILD_SA carry.
type authPayloads struct {
	idi, idr  *ID
	auth      *Auth
	certs     []*Cert // all CERT payloads, in order
	sa        *SA
	tsi, tsr  *TS
	transport bool
	contact   bool
	mobike    bool // MOBIKE_SUPPORTED (RFC 4555 §3.3)
	cp        *CP  // the first CP payload (cp.go)
	noAddress bool // INTERNAL_ADDRESS_FAILURE
}

func readAuth(ps []Payload) authPayloads {
	var a authPayloads
	for _, p := range ps {
		switch p := p.(type) {
		case *ID:
			if p.Initiator && a.idi == nil {
				a.idi = p
			} else if !p.Initiator && a.idr == nil {
				a.idr = p
			}
		case *Auth:
			if a.auth == nil {
				a.auth = p
			}
		case *Cert:
			a.certs = append(a.certs, p)
		case *SA:
			if a.sa == nil {
				a.sa = p
			}
		case *CP:
			if a.cp == nil {
				a.cp = p
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
			case INITIAL_CONTACT:
				a.contact = true
			case MOBIKE_SUPPORTED:
				a.mobike = true
			case INTERNAL_ADDRESS_FAILURE:
				a.noAddress = true
			}
		}
	}
	return a
}

// authResponse is the initiator's check of the responder's IKE_AUTH
// answer: its AUTH, then the child (§2.15, §3.3.6, §2.9).
func (d *Daemon) authResponse(sa *ikeSA, inner []Payload) {
	c := sa.conn
	a := readAuth(inner)
	if a.idr == nil || a.auth == nil {
		reason, err := "malformed", errors.New("ike: IKE_AUTH response without IDr or AUTH")
		if n := firstError(inner); n != nil {
			err = fmt.Errorf("ike: responder refused IKE_AUTH: %v", n.NotifyType)
			if n.NotifyType == AUTHENTICATION_FAILED {
				reason = "auth_failed"
			}
		}
		d.initFailed(sa, reason, err)
		return
	}
	peer := IdentityOf(a.idr)
	if !c.cfg.Remote.ID.IsZero() && !c.cfg.Remote.ID.Matches(peer) {
		d.authFailedInitiator(sa, fmt.Errorf("ike: responder is %s, want %s", peer, c.cfg.Remote.ID))
		return
	}
	signed, err := SignedOctets(sa.suite.PRF, sa.initResp, sa.ni, sa.keys.SKpr, a.idr)
	if err == nil {
		err = d.verifyPeer(sa, peer, a, signed)
	}
	if err != nil {
		d.authFailedInitiator(sa, fmt.Errorf("responder %s: %w", peer, err))
		return
	}
	sa.remoteID = peer
	sa.mobike = c.cfg.MOBIKE && a.mobike
	if err := cpReply(sa, a.cp); err != nil {
		d.fail("malformed")
		d.log.Warn("malformed configuration reply", append(sa.logFields(), zap.Error(err))...)
	}
	if a.noAddress {
		d.fail("pool")
		d.log.Warn("the responder has no address for us (INTERNAL_ADDRESS_FAILURE)", sa.logFields()...)
	} else if len(sa.vips) > 0 {
		d.log.Info("addresses assigned by the responder", append(sa.logFields(), zap.Stringers("addrs", sa.vips),
			zap.Stringer("home_prefix", sa.homePrefix))...)
	}
	d.established(sa)
	ch := sa.pendingChild
	sa.pendingChild = nil
	if ch == nil {
		d.notifyWaiters(sa, nil)
		return
	}
	err = d.acceptChild(sa, ch, inner, a)
	if err != nil {
		d.uninstallChild(sa, ch)
	}
	d.notifyWaiters(sa, err)
}

// authFailedInitiator: the responder did not prove itself, and the IKE
// SA is deleted (§2.21.2). It is unusable at once (deleting, so that
// Initiate starts another; no child, the offered one's SPI back); one
// unretransmitted INFORMATIONAL with AUTHENTICATION_FAILED tells the
// responder, so that it removes what it installed. The SA goes with that
// exchange: at its answer (which then finds the SA, not an unknown SPI),
// or one Retransmit after the send without one. The waiters hear err then.
func (d *Daemon) authFailedInitiator(sa *ikeSA, err error) {
	d.setupFailed(sa, "auth_failed", err)
	sa.state = stateDeleting
	d.releasePending(sa)
	done := func() { d.saDied(sa, err) }
	d.queueRequest(sa, &request{exchange: INFORMATIONAL, once: true,
		payloads:   []Payload{&Notify{NotifyType: AUTHENTICATION_FAILED}},
		onResponse: func(*Message, []Payload) { done() }, onTimeout: done})
}

// acceptChild checks the responder's child part and installs it: inbound
// then outbound (the exchange is complete).
func (d *Daemon) acceptChild(sa *ikeSA, ch *childSA, inner []Payload, a authPayloads) error {
	if n := firstError(inner); n != nil {
		switch n.NotifyType {
		case TS_UNACCEPTABLE:
			d.fail("ts_unacceptable")
		case NO_PROPOSAL_CHOSEN:
			d.fail("no_proposal")
		default:
			d.fail("malformed")
		}
		d.log.Warn("responder refused the child SA", append(sa.logFields(), zap.String("child", ch.name), zap.Stringer("notify", n.NotifyType))...)
		return fmt.Errorf("ike: child %s: responder answered %v", ch.name, n.NotifyType)
	}
	bad := func(reason string, err error) error {
		d.fail(reason)
		d.log.Warn("responder's child SA unacceptable", append(sa.logFields(), zap.String("child", ch.name), zap.Error(err))...)
		// The responder installed it: delete it there (§1.4.1).
		d.queueRequest(sa, &request{exchange: INFORMATIONAL, payloads: []Payload{&Delete{Protocol: ProtoESP, SPIs: []uint32{ch.inSPI}}},
			onResponse: func(*Message, []Payload) {}})
		return fmt.Errorf("ike: child %s: %w", ch.name, err)
	}
	if a.sa == nil || len(a.sa.Proposals) != 1 || a.tsi == nil || a.tsr == nil {
		return bad("malformed", errors.New("no SAr2, TSi or TSr"))
	}
	chosen := a.sa.Proposals[0]
	if err := CheckChosen(ch.offered, chosen); err != nil {
		return bad("no_proposal", err)
	}
	suite, err := ESPSuiteOf(chosen)
	if err != nil {
		return bad("no_proposal", err)
	}
	if suite.DH != DHNone {
		return bad("no_proposal", errors.New("a key exchange in the IKE_AUTH child"))
	}
	out, err := espSPI(chosen.SPI)
	if err != nil {
		return bad("malformed", err)
	}
	if !TSSubset(a.tsi.Selectors, ch.offeredLocal) || !TSSubset(a.tsr.Selectors, ch.offeredRemote) ||
		len(a.tsi.Selectors) == 0 || len(a.tsr.Selectors) == 0 {
		return bad("ts_unacceptable", errors.New("narrowed selectors are not within what we proposed"))
	}
	if a.transport != (ch.mode == ModeTransport) {
		return bad("no_proposal", fmt.Errorf("we asked for %v mode, the responder answered otherwise", ch.mode))
	}
	ch.proposal, ch.suite, ch.outSPI = chosen, suite, out
	ch.localTS, ch.remoteTS = a.tsi.Selectors, a.tsr.Selectors
	ch.ni, ch.nr = sa.ni, sa.nr
	k, err := d.deriveChild(sa, ch)
	if err != nil {
		return bad("internal", err)
	}
	kc := d.kernelChild(sa, ch, k)
	defer wipeKernelChild(kc, k)
	if err := d.installInbound(sa, ch, kc); err != nil {
		return bad("kernel", err)
	}
	sa.children = append(sa.children, ch)
	if err := d.installOutbound(sa, ch, kc); err != nil {
		sa.children = sa.children[:len(sa.children)-1]
		return bad("kernel", err)
	}
	return nil
}

// established marks sa up: out of the half-open table, the connection's
// retry count reset.
func (d *Daemon) established(sa *ikeSA) {
	sa.state = stateEstablished
	sa.established = d.now()
	if !sa.initiator && d.halfOpen[sa.initKey] == sa {
		delete(d.halfOpen, sa.initKey)
	}
	sa.conn.retries = 0
	sa.conn.lastFailure = ""
	sa.ke = nil
	if _, ok := d.cfg.Transport.(KeepaliveSender); ok && sa.natLocal {
		sa.keepaliveAt = sa.established.Add(d.keepaliveInterval())
	}
	d.log.Info("IKE SA up", append(sa.logFields(), zap.Bool("initiator", sa.initiator),
		zap.String("suite", FormatProposal(sa.proposal)), zap.Stringer("local", sa.local), zap.Stringer("remote", sa.remote),
		zap.String("remote_id", sa.remoteID.String()), zap.Bool("encap", sa.encap))...)
}

func (d *Daemon) notifyWaiters(sa *ikeSA, err error) {
	for _, w := range sa.waiters {
		w <- err
	}
	sa.waiters = nil
}

// authRequest is the responder's IKE_AUTH: verify the initiator, answer
// with our own AUTH and the child. It returns the response payloads and
// what to do once the response is sent.
func (d *Daemon) authRequest(sa *ikeSA, h Header, inner []Payload) ([]Payload, func()) {
	if sa.state != stateInitDone || h.MessageID != 1 {
		d.fail("message_id")
		return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}, nil
	}
	c := sa.conn
	a := readAuth(inner)
	failed := func(err error) ([]Payload, func()) {
		d.refuse("auth_failed", "IKE_AUTH failed", append(sa.logFields(), zap.Stringer("from", sa.remote), zap.Error(err))...)
		// §2.21.2: AUTHENTICATION_FAILED in the response; then nothing
		// of this SA remains.
		return []Payload{&Notify{NotifyType: AUTHENTICATION_FAILED}}, func() { d.removeSA(sa, err) }
	}
	if a.idi == nil || a.auth == nil {
		return failed(errors.New("ike: IKE_AUTH without IDi or AUTH"))
	}
	peer := IdentityOf(a.idi)
	if !c.cfg.Remote.ID.IsZero() && !c.cfg.Remote.ID.Matches(peer) {
		return failed(fmt.Errorf("ike: initiator is %s, want %s", peer, c.cfg.Remote.ID))
	}
	signed, err := SignedOctets(sa.suite.PRF, sa.initReq, sa.nr, sa.keys.SKpi, a.idi)
	if err == nil {
		err = d.verifyPeer(sa, peer, a, signed)
	}
	if err != nil {
		return failed(fmt.Errorf("initiator %s: %w", peer, err))
	}
	if _, ok := padEntry(&c.cfg, peer); !ok {
		d.refuse("pad", "IKE_AUTH refused: the initiator's identity is not in the PAD", append(sa.logFields(),
			zap.Stringer("from", sa.remote), zap.String("remote_id", peer.String()))...)
		return []Payload{&Notify{NotifyType: AUTHENTICATION_FAILED}}, func() { d.removeSA(sa, errNoPADEntry) }
	}
	sa.remoteID = peer
	sa.localID = sa.localIdentity()
	idr := IdentityPayload(sa.localID, true)
	signed, err = SignedOctets(sa.suite.PRF, sa.initResp, sa.ni, sa.keys.SKpr, idr)
	if err != nil {
		d.fail("internal")
		return []Payload{&Notify{NotifyType: AUTHENTICATION_FAILED}}, func() { d.removeSA(sa, err) }
	}
	auth, err := d.localAuth(sa, signed, sa.initReq)
	if err != nil {
		return failed(fmt.Errorf("our AUTH: %w", err))
	}
	d.established(sa)
	if a.contact {
		d.initialContact(sa)
	}
	resp := append(append([]Payload{idr}, sa.localCerts()...), auth)
	if a.mobike && c.cfg.MOBIKE {
		sa.mobike = true
		resp = append(resp, &Notify{NotifyType: MOBIKE_SUPPORTED})
	}
	reply, noAddress := d.cpAnswer(sa, a.cp)
	switch {
	case noAddress != nil:
		return append(resp, noAddress), nil // §1.2: the IKE SA without a child
	case reply != nil:
		resp = append(resp, reply)
	}
	if a.sa == nil && a.tsi == nil && a.tsr == nil {
		return resp, nil // no child asked for
	}
	cps, after := d.respondChild(sa, a)
	return append(resp, cps...), after
}

// initialContact deletes the other IKE SAs of sa's connection with the
// same peer identity, without a Delete: the peer has forgotten them (§2.4).
func (d *Daemon) initialContact(sa *ikeSA) {
	for _, o := range d.sas {
		if o != sa && o.conn == sa.conn && o.state >= stateEstablished && o.state != stateDead && o.remoteID.Equal(sa.remoteID) {
			d.log.Info("INITIAL_CONTACT: deleting an older IKE SA of the peer", o.logFields()...)
			d.removeSA(o, errors.New("ike: replaced after INITIAL_CONTACT"))
		}
	}
}

// respondChild picks the child configuration whose selectors meet the
// initiator's, narrows them (§2.9), selects the ESP proposal, allocates
// our SPI and installs the inbound SA; the outbound one follows the
// response. A refusal is a notify in the response; the IKE SA stays.
func (d *Daemon) respondChild(sa *ikeSA, a authPayloads) ([]Payload, func()) {
	if a.sa == nil || a.tsi == nil || a.tsr == nil {
		d.fail("malformed")
		return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}, nil
	}
	cfg, local, remote, padRefused := sa.matchChild(a.transport, a.tsi, a.tsr)
	if cfg == nil {
		return d.refuseTS(sa, padRefused), nil
	}
	fields := append(sa.logFields(), zap.String("child", cfg.Name))
	// No key exchange in the IKE_AUTH child: its keys come from SK_d and
	// the IKE SA's nonces (§1.2, §2.17).
	ch, refusal := d.chooseChild(sa, cfg, WithoutDH(cfg.Proposals), a.sa.Proposals, nil, local, remote, fields)
	if refusal != nil {
		return refusal, nil
	}
	ch.ni, ch.nr = sa.ni, sa.nr
	ps, kc, k, refusal := d.installResponderChild(sa, ch, nil)
	if refusal != nil {
		return refusal, nil
	}
	return ps, d.outboundAfterResponse(sa, ch, kc, k)
}
