package ike

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"go.uber.org/zap"
)

// IKE_SA_INIT (RFC 7296 §1.2, §2.6, §2.10, §2.23, §3):
//
//	HDR(SPIi, 0), [N(COOKIE)], SAi1, KEi, Ni, N(NAT_DETECTION_SOURCE_IP),
//	    N(NAT_DETECTION_DESTINATION_IP), [N(IKEV2_FRAGMENTATION_SUPPORTED)],
//	    N(SIGNATURE_HASH_ALGORITHMS)  -->
//	<--  HDR(SPIi, SPIr), SAr1, KEr, Nr, N(NAT_DETECTION_*), [N(...)]
//
// or, statelessly, <-- HDR(SPIi, 0), N(COOKIE) | N(INVALID_KE_PAYLOAD) |
// N(NO_PROPOSAL_CHOSEN).

// maxCookieTries bounds how often an initiator retries with a new cookie.
const maxCookieTries = 3

// sigHashAlgorithms is N(SIGNATURE_HASH_ALGORITHMS)'s data: SHA2-256,
// SHA2-384, SHA2-512 (RFC 7427 §4, IANA hash algorithm IDs 2, 3, 4) and
// Identity for Ed25519 (5, RFC 8420 §2).
var sigHashAlgorithms = []byte{0, 2, 0, 3, 0, 4, 0, 5}

// remoteAddr is where an initiator sends: the first remote prefix, which
// must be a single address.
func (c *connState) remoteAddr() (netip.Addr, error) {
	if c.from.IsValid() {
		for _, p := range c.cfg.RemoteAddrs {
			if p.IsSingleIP() && p.Addr().Unmap().Is4() == c.from.Is4() {
				return p.Addr(), nil
			}
		}
	}
	for _, p := range c.cfg.RemoteAddrs {
		if p.IsSingleIP() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("ike: connection %q: no single remote address to initiate to", c.cfg.Name)
}

// localFor is the configured local address of remote's family, if any.
func (c *connState) localFor(remote netip.Addr) netip.Addr {
	if c.from.IsValid() && c.from.Is4() == remote.Unmap().Is4() {
		return c.from
	}
	for _, a := range c.cfg.LocalAddrs {
		if a.Unmap().Is4() == remote.Unmap().Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// accepts reports whether an IKE_SA_INIT from a may be for c.
func (c *connState) accepts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.cfg.RemoteAddrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// initiate starts an IKE SA of c whose IKE_AUTH brings up ch.
func (d *Daemon) initiate(c *connState, ch *Child) (*ikeSA, error) {
	remote, err := c.remoteAddr()
	if err != nil {
		return nil, err
	}
	sa := d.newSA(c, true)
	if sa.spii, err = d.newSPI(); err != nil {
		return nil, err
	}
	sa.local = netip.AddrPortFrom(c.localFor(remote), c.localPort)
	sa.remote = netip.AddrPortFrom(remote, c.remotePort)
	for i, p := range c.cfg.Proposals {
		p.Number, p.SPI = uint8(i+1), nil
		sa.offered = append(sa.offered, p)
	}
	group := DHNone
	for _, t := range sa.offered[0].Transforms {
		if t.Type == TransformDH {
			group = DHGroup(t.ID)
			break
		}
	}
	if sa.ke, err = NewKeyExchange(group, d.rand); err != nil {
		return nil, fmt.Errorf("ike: connection %q: %w", c.cfg.Name, err)
	}
	if sa.ni, err = d.newNonce(PRFHMACSHA2_512); err != nil {
		return nil, err
	}
	if ch != nil {
		sa.pendingChild = &childSA{name: ch.Name, cfg: ch}
	}
	d.sas[sa.spii] = sa
	if err := d.sendInit(sa); err != nil {
		d.removeSA(sa, err)
		return nil, err
	}
	d.log.Info("initiating IKE SA", append(sa.logFields(), zap.Stringer("remote", sa.remote))...)
	return sa, nil
}

// sendInit (re)builds and sends the IKE_SA_INIT request: after a COOKIE
// or INVALID_KE_PAYLOAD answer it is a new message with ID 0 again.
func (d *Daemon) sendInit(sa *ikeSA) error {
	c := sa.conn
	var ps []Payload
	if sa.cookie != nil {
		ps = append(ps, &Notify{NotifyType: COOKIE, Data: sa.cookie}) // first (§2.6)
	}
	ps = append(ps, &SA{Proposals: sa.offered},
		&KE{Group: sa.ke.Group(), Data: sa.ke.PublicValue()},
		&Nonce{Data: sa.ni})
	// NAT detection with SPIr = 0 as in our header (§2.23).
	src, dst := NATDetectionNotifies(sa.spii, 0, sa.local, sa.remote)
	if c.cfg.Encap {
		// A source hash that cannot match makes the peer see a NAT, so
		// both sides float to 4500 and encapsulate ESP (§2.23).
		fake := make([]byte, len(src.Data))
		if _, err := io.ReadFull(d.rand, fake); err != nil {
			return err
		}
		src = &Notify{NotifyType: NAT_DETECTION_SOURCE_IP, Data: fake}
	}
	ps = append(ps, src, dst)
	if c.cfg.Fragmentation {
		ps = append(ps, &Notify{NotifyType: IKEV2_FRAGMENTATION_SUPPORTED})
	}
	if !c.cfg.noSigHash {
		ps = append(ps, &Notify{NotifyType: SIGNATURE_HASH_ALGORITHMS, Data: sigHashAlgorithms})
	}
	m := Message{SPIi: sa.spii, Exchange: IKE_SA_INIT, Flags: FlagInitiator, Payloads: ps}
	b, err := m.Append(nil)
	if err != nil {
		return err
	}
	sa.initReq = b
	sa.state = stateInitSent
	sa.nextReqID = 1
	sa.outstanding = &request{exchange: IKE_SA_INIT, msg: [][]byte{b}, nextAt: d.now().Add(d.backoff(0))}
	d.send(sa, b)
	return nil
}

// initFailed ends an initiator's IKE SA that IKE_SA_INIT refused.
// The same reason is logged once until the connection succeeds (a
// StartStart connection retries with backoff).
func (d *Daemon) initFailed(sa *ikeSA, reason string, err error) {
	d.setupFailed(sa, reason, err)
	d.saDied(sa, err)
}

// setupFailed counts and logs (once per reason, as initFailed) an
// initiator's failed setup.
func (d *Daemon) setupFailed(sa *ikeSA, reason string, err error) {
	d.fail(reason)
	if sa.conn.lastFailure != reason {
		sa.conn.lastFailure = reason
		d.log.Warn("IKE SA setup failed", append(sa.logFields(), zap.String("reason", reason), zap.Error(err))...)
	}
}

// initResponse is the responder's answer to our IKE_SA_INIT.
func (d *Daemon) initResponse(dg datagram, h Header) {
	sa := d.sas[h.SPIi]
	if sa == nil || !sa.initiator || sa.state != stateInitSent || h.MessageID != 0 || sa.outstanding == nil {
		d.refuse("invalid_spi", "IKE_SA_INIT response for no IKE SA of ours", zap.Stringer("from", dg.remote))
		return
	}
	m, err := Decode(dg.b)
	if err != nil {
		d.refuse("malformed", "malformed IKE_SA_INIT response", append(sa.logFields(), zap.Error(err))...)
		return
	}
	ps := m.Payloads
	if n := findNotify(ps, COOKIE); n != nil {
		if len(n.Data) == 0 || len(n.Data) > 64 || sa.cookieTries >= maxCookieTries {
			d.initFailed(sa, "cookie", errors.New("ike: unusable COOKIE from the responder"))
			return
		}
		sa.cookie = bytes.Clone(n.Data)
		sa.cookieTries++
		d.retryInit(sa)
		return
	}
	if n := findNotify(ps, INVALID_KE_PAYLOAD); n != nil {
		// §1.2, §3.10.1: the group the responder wants, once per group and
		// only one we offered.
		if len(n.Data) != 2 {
			d.initFailed(sa, "invalid_ke", errors.New("ike: INVALID_KE_PAYLOAD without a group"))
			return
		}
		g := DHGroup(binary.BigEndian.Uint16(n.Data))
		if g == sa.ke.Group() || slices.Contains(sa.triedGroups, g) || !offersGroup(sa.offered, g) || !g.Supported() {
			d.initFailed(sa, "invalid_ke", fmt.Errorf("ike: responder wants key exchange %v, which we do not offer (or tried)", g))
			return
		}
		ke, err := NewKeyExchange(g, d.rand)
		if err != nil {
			d.initFailed(sa, "internal", err)
			return
		}
		sa.triedGroups = append(sa.triedGroups, sa.ke.Group())
		sa.ke = ke
		d.log.Info("responder asked for another key exchange method", append(sa.logFields(), zap.Stringer("group", g))...)
		d.retryInit(sa)
		return
	}
	if n := firstError(ps); n != nil {
		reason := "malformed"
		if n.NotifyType == NO_PROPOSAL_CHOSEN {
			reason = "no_proposal"
		}
		d.initFailed(sa, reason, fmt.Errorf("ike: responder refused IKE_SA_INIT: %v", n.NotifyType))
		return
	}
	var saP *SA
	var keP *KE
	var nonce *Nonce
	for _, p := range ps {
		switch p := p.(type) {
		case *SA:
			saP = p
		case *KE:
			keP = p
		case *Nonce:
			nonce = p
		}
	}
	if saP == nil || keP == nil || nonce == nil || len(saP.Proposals) != 1 || h.SPIr == 0 {
		d.initFailed(sa, "malformed", errors.New("ike: IKE_SA_INIT response without SA, KE, Nonce or SPIr"))
		return
	}
	chosen := saP.Proposals[0]
	if err := CheckChosen(sa.offered, chosen); err != nil {
		d.initFailed(sa, "no_proposal", err)
		return
	}
	suite, err := IKESuiteOf(chosen)
	if err != nil {
		d.initFailed(sa, "no_proposal", err)
		return
	}
	if suite.DH != sa.ke.Group() || keP.Group != suite.DH {
		d.initFailed(sa, "invalid_ke", fmt.Errorf("ike: responder chose %v with a %v KE, we sent %v", suite.DH, keP.Group, sa.ke.Group()))
		return
	}
	nr := bytes.Clone(nonce.Data)
	if len(nr) < max(MinNonceLen, suite.PRF.Size()/2) || len(nr) > MaxNonceLen {
		d.initFailed(sa, "malformed", errors.New("ike: responder's nonce too short or long (§2.10)"))
		return
	}
	gir, err := sa.ke.SharedSecret(keP.Data)
	if err != nil {
		d.initFailed(sa, "malformed", err)
		return
	}
	sa.spir, sa.nr, sa.proposal, sa.suite = h.SPIr, nr, chosen, suite
	err = d.deriveKeys(sa, gir)
	clear(gir)
	if err != nil {
		d.initFailed(sa, "internal", err)
		return
	}
	sa.initResp = dg.b
	sa.fragmentation = sa.conn.cfg.Fragmentation && findNotify(ps, IKEV2_FRAGMENTATION_SUPPORTED) != nil
	if dg.local.IsValid() {
		sa.local = dg.local
	}
	sa.natLocal, sa.natRemote = detectNAT(ps, sa.spii, sa.spir, sa.local, dg.remote)
	sa.encap = sa.conn.cfg.Encap || sa.natLocal || sa.natRemote
	if sa.encap {
		// Float (§2.23): IKE_AUTH and all that follows from and to 4500.
		sa.local = netip.AddrPortFrom(sa.local.Addr(), portNATT)
		sa.remote = netip.AddrPortFrom(dg.remote.Addr(), portNATT)
		if sa.natLocal || sa.natRemote {
			d.log.Info("NAT detected", append(sa.logFields(), zap.Bool("local", sa.natLocal), zap.Bool("remote", sa.natRemote))...)
		}
	}
	sa.outstanding = nil
	sa.lastRecv = d.now()
	d.stats.Exchanges["IKE_SA_INIT"]++
	d.sendAuth(sa)
}

// retryInit sends IKE_SA_INIT again after COOKIE or INVALID_KE_PAYLOAD.
func (d *Daemon) retryInit(sa *ikeSA) {
	if err := d.sendInit(sa); err != nil {
		d.initFailed(sa, "internal", err)
	}
}

// onlyGroup returns the proposals of ps that offer key exchange g, with g
// as their only key exchange transform.
func onlyGroup(ps []Proposal, g DHGroup) []Proposal {
	var out []Proposal
	for _, p := range ps {
		if !offersGroup([]Proposal{p}, g) {
			continue
		}
		p.Transforms = slices.DeleteFunc(slices.Clone(p.Transforms), func(t Transform) bool {
			return t.Type == TransformDH && DHGroup(t.ID) != g
		})
		out = append(out, p)
	}
	return out
}

func offersGroup(ps []Proposal, g DHGroup) bool {
	for _, p := range ps {
		for _, t := range p.Transforms {
			if t.Type == TransformDH && DHGroup(t.ID) == g {
				return true
			}
		}
	}
	return false
}

// deriveKeys computes SKEYSEED and the seven keys (§2.14) and the SK
// ciphers of both directions.
func (d *Daemon) deriveKeys(sa *ikeSA, gir []byte) error {
	skeyseed, err := SKEYSEED(sa.suite.PRF, sa.ni, sa.nr, gir)
	if err != nil {
		return err
	}
	defer clear(skeyseed)
	k, err := DeriveIKEKeys(sa.suite.PRF, sa.suite.SK, skeyseed, sa.ni, sa.nr, sa.spii, sa.spir)
	if err != nil {
		return err
	}
	out, in, err := NewSKCiphers(sa.suite.SK, k, sa.initiator)
	if err != nil {
		k.Wipe()
		return err
	}
	sa.keys, sa.out, sa.in = k, out, in
	return nil
}

// detectNAT reads the peer's NAT detection hashes (§2.23) with
// CheckNAT: natLocal, we are behind a NAT; natRemote, the peer is. An
// unknown local address is not taken for a NAT of ours.
func detectNAT(ps []Payload, spii, spir uint64, local, remote netip.AddrPort) (natLocal, natRemote bool) {
	var srcs, dsts [][]byte
	for _, p := range ps {
		if n, ok := p.(*Notify); ok {
			switch n.NotifyType {
			case NAT_DETECTION_SOURCE_IP:
				srcs = append(srcs, n.Data)
			case NAT_DETECTION_DESTINATION_IP:
				dsts = append(dsts, n.Data)
			}
		}
	}
	natRemote, natLocal = CheckNAT(spii, spir, srcs, dsts, remote, local)
	if !local.IsValid() {
		natLocal = false
	}
	return natLocal, natRemote
}

// initRequest is an IKE_SA_INIT request to us as responder. Until the
// request has passed every check (proposal, key exchange group, cookie
// under load, the half-open bound, the per-source rate) nothing is kept.
func (d *Daemon) initRequest(dg datagram, h Header) {
	if h.SPIr != 0 || h.MessageID != 0 || h.SPIi == 0 {
		d.refuse("malformed", "IKE_SA_INIT request with SPIr or message ID set", zap.Stringer("from", dg.remote))
		return
	}
	key := initKey{h.SPIi, dg.remote}
	if sa := d.initIndex[key]; sa != nil {
		// A retransmission gets the same answer (§2.1) while the SA is
		// half-open; a different request with the same SPIi from the same
		// place, or one after IKE_AUTH, is dropped.
		if sa.state == stateInitDone && sa.initReqHash == sha256.Sum256(dg.b) {
			d.sendTo(sa.initResp, dg.local, dg.remote)
		} else {
			d.refuse("message_id", "a second IKE_SA_INIT with the same SPIi", zap.Stringer("from", dg.remote))
		}
		return
	}
	m, err := Decode(dg.b)
	if err != nil {
		d.refuse("malformed", "malformed IKE_SA_INIT request", zap.Stringer("from", dg.remote), zap.Error(err))
		return
	}
	var c *connState
	for _, cc := range d.conns {
		if cc.accepts(dg.remote.Addr()) {
			c = cc
			break
		}
	}
	if c == nil {
		d.refuse("unknown_peer", "IKE_SA_INIT from an address no connection accepts", zap.Stringer("from", dg.remote))
		return
	}
	var saP *SA
	var keP *KE
	var nonce *Nonce
	for _, p := range m.Payloads {
		switch p := p.(type) {
		case *SA:
			saP = p
		case *KE:
			keP = p
		case *Nonce:
			nonce = p
		}
	}
	if saP == nil || keP == nil || nonce == nil {
		d.refuse("malformed", "IKE_SA_INIT request without SA, KE or Nonce", zap.Stringer("from", dg.remote))
		return
	}
	chosen, err := SelectProposal(c.cfg.Proposals, saP.Proposals)
	var suite IKESuite
	if err == nil {
		suite, err = IKESuiteOf(chosen)
	}
	if err != nil {
		d.refuse("no_proposal", "no acceptable IKE proposal", zap.String("conn", c.cfg.Name), zap.Stringer("from", dg.remote))
		d.answerInit(dg, h.SPIi, &Notify{NotifyType: NO_PROPOSAL_CHOSEN})
		return
	}
	if keP.Group != suite.DH {
		// The group of their KE, where both sides accept it, saves a
		// round trip (as strongSwan does).
		if alt, err := SelectProposal(onlyGroup(c.cfg.Proposals, keP.Group), onlyGroup(saP.Proposals, keP.Group)); err == nil {
			if s, err := IKESuiteOf(alt); err == nil {
				chosen, suite = alt, s
			}
		}
	}
	if keP.Group != suite.DH {
		// §1.2, §3.4: the group we chose, statelessly.
		d.refuse("invalid_ke", "KE of another group than the chosen one", zap.String("conn", c.cfg.Name),
			zap.Stringer("from", dg.remote), zap.Stringer("got", keP.Group), zap.Stringer("want", suite.DH))
		d.answerInit(dg, h.SPIi, &Notify{NotifyType: INVALID_KE_PAYLOAD, Data: binary.BigEndian.AppendUint16(nil, uint16(suite.DH))})
		return
	}
	if len(nonce.Data) < max(MinNonceLen, suite.PRF.Size()/2) || len(nonce.Data) > MaxNonceLen {
		d.refuse("malformed", "initiator's nonce too short or long", zap.Stringer("from", dg.remote))
		return
	}
	if len(d.halfOpen) >= d.cfg.CookieThreshold {
		// §2.6: the cookie, if any, is the first payload.
		var got []byte
		if n, ok := m.Payloads[0].(*Notify); ok && n.NotifyType == COOKIE {
			got = n.Data
		}
		if !d.cookies.valid(got, nonce.Data, dg.remote.Addr(), h.SPIi) {
			d.stats.CookiesSent++
			d.refuse("cookie", "asking for a cookie", zap.Stringer("from", dg.remote), zap.Bool("had", got != nil))
			d.answerInit(dg, h.SPIi, &Notify{NotifyType: COOKIE, Data: d.cookies.make(nonce.Data, dg.remote.Addr(), h.SPIi)})
			return
		}
	}
	if len(d.halfOpen) >= d.cfg.MaxHalfOpen {
		d.refuse("half_open_full", "half-open IKE SA table full", zap.Stringer("from", dg.remote))
		return
	}
	if !d.perSource.allow(dg.remote.Addr(), d.now()) {
		d.refuse("rate_limit", "IKE_SA_INIT rate from one source exceeded", zap.Stringer("from", dg.remote))
		return
	}

	sa := d.newSA(c, false)
	sa.spii = h.SPIi
	if sa.spir, err = d.newSPI(); err != nil {
		d.fail("internal")
		return
	}
	sa.local, sa.remote = dg.local, dg.remote
	if !sa.local.IsValid() {
		port := dg.local.Port()
		if port == 0 {
			port = c.localPort
		}
		sa.local = netip.AddrPortFrom(c.localFor(dg.remote.Addr()), port)
	}
	sa.proposal, sa.suite = chosen, suite
	sa.ni = bytes.Clone(nonce.Data)
	if sa.ke, err = NewKeyExchange(suite.DH, d.rand); err != nil {
		d.fail("internal")
		return
	}
	gir, err := sa.ke.SharedSecret(keP.Data)
	if err != nil {
		d.refuse("malformed", "bad key exchange value", zap.Stringer("from", dg.remote), zap.Error(err))
		return
	}
	if sa.nr, err = d.newNonce(suite.PRF); err != nil {
		clear(gir)
		d.fail("internal")
		return
	}
	err = d.deriveKeys(sa, gir)
	clear(gir)
	if err != nil {
		d.fail("internal")
		return
	}
	sa.natLocal, sa.natRemote = detectNAT(m.Payloads, sa.spii, 0, dg.local, dg.remote)
	sa.encap = c.cfg.Encap || sa.natLocal || sa.natRemote
	theyFragment := findNotify(m.Payloads, IKEV2_FRAGMENTATION_SUPPORTED) != nil
	sa.fragmentation = c.cfg.Fragmentation && theyFragment

	chosenCopy := chosen
	chosenCopy.SPI = nil
	ps := []Payload{&SA{Proposals: []Proposal{chosenCopy}},
		&KE{Group: suite.DH, Data: sa.ke.PublicValue()},
		&Nonce{Data: sa.nr}}
	if c.cfg.Remote.Method == AuthPubkey {
		ps = append(ps, certReqPayload(c.cfg.Remote.CAs)) // §1.2, §3.7
	}
	src, dst := NATDetectionNotifies(sa.spii, sa.spir, sa.local, dg.remote)
	if c.cfg.Encap {
		fake := make([]byte, len(src.Data))
		if _, err := io.ReadFull(d.rand, fake); err != nil {
			d.fail("internal")
			return
		}
		src = &Notify{NotifyType: NAT_DETECTION_SOURCE_IP, Data: fake}
	}
	ps = append(ps, src, dst)
	if sa.fragmentation {
		ps = append(ps, &Notify{NotifyType: IKEV2_FRAGMENTATION_SUPPORTED})
	}
	if findNotify(m.Payloads, SIGNATURE_HASH_ALGORITHMS) != nil && !c.cfg.noSigHash {
		ps = append(ps, &Notify{NotifyType: SIGNATURE_HASH_ALGORITHMS, Data: sigHashAlgorithms})
	}
	resp := Message{SPIi: sa.spii, SPIr: sa.spir, Exchange: IKE_SA_INIT, Flags: FlagResponse, Payloads: ps}
	b, err := resp.Append(nil)
	if err != nil {
		d.fail("internal")
		return
	}
	sa.initReq = dg.b
	sa.initReqHash = sha256.Sum256(dg.b)
	sa.initResp = b
	sa.initKey = key
	sa.state = stateInitDone
	sa.peerNext = 1
	d.sas[sa.spir] = sa
	d.halfOpen[key] = sa
	d.initIndex[key] = sa
	d.stats.Exchanges["IKE_SA_INIT"]++
	d.sendTo(b, dg.local, dg.remote)
	if ce := d.log.Check(zap.DebugLevel, "IKE_SA_INIT answered"); ce != nil {
		ce.Write(append(sa.logFields(), zap.Stringer("from", dg.remote))...)
	}
}

// answerInit sends a stateless IKE_SA_INIT answer: HDR(SPIi, 0) and one
// notify (§2.6, §1.2).
func (d *Daemon) answerInit(dg datagram, spii uint64, n *Notify) {
	m := Message{SPIi: spii, Exchange: IKE_SA_INIT, Flags: FlagResponse, Payloads: []Payload{n}}
	b, err := m.Append(nil)
	if err != nil {
		return
	}
	d.sendTo(b, dg.local, dg.remote)
}
