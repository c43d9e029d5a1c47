package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"
)

// saState is where an IKE SA is in its life (RFC 7296 §1.2, §1.4).
type saState uint8

const (
	stateInitSent    saState = iota // initiator: IKE_SA_INIT request out
	stateAuthSent                   // initiator: IKE_AUTH request out
	stateInitDone                   // responder: IKE_SA_INIT answered, waiting for IKE_AUTH (half-open)
	stateEstablished                // authenticated both ways
	stateDeleting                   // our Delete of the IKE SA is out
	stateDead                       // removed; kept by no table
)

func (s saState) String() string {
	switch s {
	case stateEstablished:
		return "established"
	case stateDeleting, stateDead:
		return "deleting"
	}
	return "connecting"
}

// initKey names a responder's IKE SA before the initiator knows its SPI:
// a retransmitted IKE_SA_INIT carries the same SPIi from the same place
// (RFC 7296 §2.1).
type initKey struct {
	spii   uint64
	remote netip.AddrPort
}

// ikeSA is one IKE SA. Everything here belongs to the daemon's loop.
//
// CREATE_CHILD_SA (exchange_create.go): our child exchanges in flight are
// in creating, our IKE SA rekey in ikeRekey; peerRekey is the SA the
// peer's rekey of this one made, successor the one that replaces it (the
// children move there, §2.18) and predecessor the reverse.
//
// Message IDs (RFC 7296 §2.2) run independently each way: nextReqID is
// the ID of our next request, peerNext the ID we expect of the peer's
// next request. The window is 1 (§2.3): one request of ours is in flight
// (outstanding) and the others wait in queue, in order; the peer's last
// request is answered from lastResp when it comes again.
type ikeSA struct {
	id        uint32
	conn      *connState
	initiator bool
	state     saState
	spii      uint64
	spir      uint64
	// local and remote are where IKE messages go: they float to port 4500
	// after NAT detection (§2.23) and follow an authenticated peer that
	// moved behind a NAT.
	local, remote netip.AddrPort
	initKey       initKey // responder: its key in Daemon.initIndex
	// vips and homePrefix are what the responder's CP reply gave us
	// (cp.go; initiator only).
	vips       []netip.Addr
	homePrefix netip.Prefix

	// Negotiated in IKE_SA_INIT.
	offered  []Proposal // initiator: the SAi1 proposals as sent
	proposal Proposal   // the chosen one
	suite    IKESuite
	ke       *KeyExchange
	ni, nr   []byte
	keys     *IKEKeys // SK_d stays for CREATE_CHILD_SA (§2.17, §2.18)
	out, in  *SKCipher
	// initReq and initResp are the IKE_SA_INIT messages exactly as sent
	// and received: the AUTH payloads sign them (§2.15).
	initReq, initResp []byte
	initReqHash       [32]byte // responder: tells a retransmission from a new request
	cookie            []byte   // initiator: the responder's COOKIE (§2.6)
	cookieTries       int
	triedGroups       []DHGroup // initiator: INVALID_KE_PAYLOAD retries (§1.2)
	fragmentation     bool      // both sides announced RFC 7383 support
	mobike            bool      // both sides announced MOBIKE_SUPPORTED (RFC 4555 §3.3)
	// reqFrom is the datagram of the request being answered (its
	// addresses: UPDATE_SA_ADDRESSES, RFC 4555 §3.5).
	reqFrom datagram
	frags   [2]*fragments // a request and a response being reassembled

	// NAT detection (§2.23): natLocal, we are behind a NAT; natRemote, the
	// peer is; encap, ESP and IKE use UDP 4500.
	natLocal, natRemote, encap bool

	localID, remoteID Identity

	nextReqID   uint32
	outstanding *request
	queue       []*request
	peerNext    uint32
	lastResp    [][]byte // our response to the peer's request peerNext-1, as sent (RFC 7383 §2.6.1)
	lastRespTo  netip.AddrPort

	children     []*childSA
	pendingChild *childSA // initiator: the child offered in IKE_AUTH

	creating               []*createOp
	ikeRekey               *ikeRekeyOp
	peerRekey              *ikeSA
	successor, predecessor *ikeSA
	rekeyAt                time.Time // our next IKE SA rekey; zero: none
	rekeyArmed             bool      // rekeyAt was set once

	created, established, lastRecv time.Time
	keepaliveAt                    time.Time // next NAT-keepalive; zero: none
	// waiters get the outcome of Initiate; deleteWaiters that of
	// Terminate.
	waiters, deleteWaiters []chan error
}

// request is one request of ours: built when it is sent (its message ID
// is assigned then), retransmitted byte-identical (§2.1).
type request struct {
	exchange ExchangeType
	payloads []Payload // inside SK; unused for IKE_SA_INIT
	id       uint32
	msg      [][]byte // as sent: one datagram, or its fragments (RFC 7383 §2.5)
	tries    int
	nextAt   time.Time
	// once: sent once, never retransmitted (an AUTHENTICATION_FAILED
	// notice, §2.21.2): its response is awaited one Retransmit, then
	// onTimeout runs, with no timeout counted.
	once bool
	// onResponse gets the authenticated response (m's SK payload opened
	// into inner). onTimeout runs when the retransmissions are spent; nil:
	// the IKE SA is dead (§2.4).
	onResponse func(m *Message, inner []Payload)
	onTimeout  func()
}

// newSPI returns a fresh, nonzero IKE SPI unused by the daemon.
func (d *Daemon) newSPI() (uint64, error) {
	var b [8]byte
	for range 16 {
		if _, err := io.ReadFull(d.rand, b[:]); err != nil {
			return 0, err
		}
		if s := binary.BigEndian.Uint64(b[:]); s != 0 && d.sas[s] == nil {
			return s, nil
		}
	}
	return 0, errors.New("ike: no free IKE SPI")
}

// nonceLen is the length of our nonces: 32 bytes, as strongSwan sends, at
// least half the PRF's key size (RFC 7296 §2.10) for every PRF we have.
const nonceLen = 32

func (d *Daemon) newNonce(prf PRFAlg) ([]byte, error) {
	n := make([]byte, max(nonceLen, prf.Size()/2))
	if _, err := io.ReadFull(d.rand, n); err != nil {
		return nil, err
	}
	return n, nil
}

func (d *Daemon) newSA(c *connState, initiator bool) *ikeSA {
	d.nextSAID++
	now := d.now()
	return &ikeSA{id: d.nextSAID, conn: c, initiator: initiator, created: now, lastRecv: now}
}

// localSPI is the SPI of ours, the key of Daemon.sas.
func (sa *ikeSA) localSPI() uint64 {
	if sa.initiator {
		return sa.spii
	}
	return sa.spir
}

func (sa *ikeSA) hasChild(name string) bool {
	for _, ch := range sa.children {
		if ch.name == name && !ch.gone {
			return true
		}
	}
	for _, op := range sa.creating {
		if op.old == nil && op.ch.name == name {
			return true
		}
	}
	return sa.pendingChild != nil && sa.pendingChild.name == name
}

func (sa *ikeSA) nat() bool { return sa.natLocal || sa.natRemote || sa.encap }

// endpoint is where the SA's children's ESP goes: UDP 4500 between the
// IKE SA's addresses and ports once encapsulated (RFC 3948), the bare
// addresses otherwise.
func (sa *ikeSA) endpoint() Endpoint {
	if sa.encap {
		return Endpoint{Local: sa.local, Remote: sa.remote, Encap: true, Follow: sa.follows()}
	}
	return Endpoint{Local: netip.AddrPortFrom(sa.local.Addr(), 0), Remote: netip.AddrPortFrom(sa.remote.Addr(), 0)}
}

func (sa *ikeSA) logFields() []zap.Field {
	return []zap.Field{zap.String("conn", sa.conn.cfg.Name), zap.Uint32("ike", sa.id),
		zap.String("spis", fmt.Sprintf("%016x_i %016x_r", sa.spii, sa.spir))}
}

// nextDeadline is the SA's next timer: a retransmission, or the liveness
// check (§2.4).
func (sa *ikeSA) nextDeadline() time.Time {
	var t time.Time
	if sa.outstanding != nil {
		t = sa.outstanding.nextAt
	} else if sa.state == stateEstablished && sa.conn.cfg.DPDDelay > 0 && len(sa.queue) == 0 {
		t = sa.lastRecv.Add(sa.conn.cfg.DPDDelay)
	}
	if !sa.keepaliveAt.IsZero() && (t.IsZero() || sa.keepaliveAt.Before(t)) {
		t = sa.keepaliveAt
	}
	if !sa.rekeyAt.IsZero() && (t.IsZero() || sa.rekeyAt.Before(t)) {
		t = sa.rekeyAt
	}
	return t
}

// keepalive sends a NAT-keepalive (RFC 3948 §2.3) when due: the side
// behind a NAT keeps its mapping open while the IKE SA is up.
func (d *Daemon) keepalive(sa *ikeSA, now time.Time) {
	if sa.keepaliveAt.IsZero() || now.Before(sa.keepaliveAt) {
		return
	}
	ka, ok := d.cfg.Transport.(KeepaliveSender)
	if !ok || sa.state != stateEstablished || !sa.natLocal {
		sa.keepaliveAt = time.Time{}
		return
	}
	if err := ka.SendKeepalive(sa.local, sa.remote); err != nil {
		if ce := d.log.Check(zap.DebugLevel, "keepalive failed"); ce != nil {
			ce.Write(zap.Stringer("remote", sa.remote), zap.Error(err))
		}
	}
	sa.keepaliveAt = now.Add(d.keepaliveInterval())
}

func (d *Daemon) keepaliveInterval() time.Duration {
	if d.cfg.Keepalive > 0 {
		return d.cfg.Keepalive
	}
	return DefaultKeepalive
}

// saTimers runs the SA's due timers.
func (d *Daemon) saTimers(sa *ikeSA, now time.Time) {
	d.keepalive(sa, now)
	if !sa.rekeyAt.IsZero() && !now.Before(sa.rekeyAt) {
		sa.rekeyAt = time.Time{}
		if err := d.rekeyIKE(sa, nil); err != nil {
			d.log.Info("IKE SA rekey not started", append(sa.logFields(), zap.Error(err))...)
		}
	}
	if r := sa.outstanding; r != nil {
		if now.Before(r.nextAt) {
			return
		}
		if r.once || r.tries >= d.cfg.Retransmits {
			sa.outstanding = nil
			if !r.once {
				d.log.Info("exchange timed out", append(sa.logFields(), zap.Stringer("exchange", r.exchange),
					zap.Int("tries", r.tries+1))...)
				d.fail("timeout")
			}
			if r.onTimeout != nil {
				r.onTimeout()
			} else {
				d.saDied(sa, errors.New("ike: peer did not answer (retransmissions exhausted)"))
			}
			if sa.state != stateDead {
				d.sendNext(sa)
			}
			return
		}
		r.tries++
		r.nextAt = now.Add(d.backoff(r.tries))
		d.stats.Retransmits++
		d.sendAll(r.msg, sa.local, sa.remote)
		return
	}
	if sa.state == stateEstablished && sa.conn.cfg.DPDDelay > 0 && len(sa.queue) == 0 &&
		!now.Before(sa.lastRecv.Add(sa.conn.cfg.DPDDelay)) {
		// Liveness check (§2.4): an empty INFORMATIONAL request.
		d.queueRequest(sa, &request{exchange: INFORMATIONAL, onResponse: func(*Message, []Payload) {}})
	}
}

// backoff is the wait after the n-th send of a request: Retransmit × 2^n.
func (d *Daemon) backoff(n int) time.Duration {
	b := d.cfg.Retransmit << min(n, 20)
	if b <= 0 || b > 10*time.Minute {
		b = 10 * time.Minute
	}
	return b
}

// queueRequest sends r now if no request of ours is in flight, or after
// the ones before it (window size 1, §2.3).
func (d *Daemon) queueRequest(sa *ikeSA, r *request) {
	sa.queue = append(sa.queue, r)
	if sa.outstanding == nil {
		d.sendNext(sa)
	}
}

// sendNext sends the first queued request.
func (d *Daemon) sendNext(sa *ikeSA) {
	for sa.outstanding == nil && len(sa.queue) > 0 && sa.state != stateDead {
		r := sa.queue[0]
		sa.queue = sa.queue[1:]
		b, err := d.sealRequest(sa, r.exchange, r.payloads)
		if err != nil {
			d.log.Error("cannot build request", append(sa.logFields(), zap.Error(err))...)
			d.fail("internal")
			continue
		}
		r.id = sa.nextReqID - 1
		r.msg = b
		d.sendAll(b, sa.local, sa.remote)
		r.nextAt = d.now().Add(d.backoff(0))
		sa.outstanding = r
	}
}

// sealRequest builds our next request (taking its message ID).
func (d *Daemon) sealRequest(sa *ikeSA, ex ExchangeType, ps []Payload) ([][]byte, error) {
	id := sa.nextReqID
	b, err := d.seal(sa, ex, id, false, ps)
	if err != nil {
		return nil, err
	}
	sa.nextReqID++
	return b, nil
}

// seal builds a protected message of sa: the header and an SK payload
// holding ps (RFC 7296 §3.14), or SKF fragments where it is too long and
// both sides announced them (fragment_send.go).
func (d *Daemon) seal(sa *ikeSA, ex ExchangeType, id uint32, response bool, ps []Payload) ([][]byte, error) {
	if sa.out == nil {
		return nil, errors.New("ike: no keys yet")
	}
	inner, first, err := AppendPayloads(nil, ps)
	if err != nil {
		return nil, err
	}
	var flags Flags
	if sa.initiator {
		flags |= FlagInitiator
	}
	if response {
		flags |= FlagResponse
	}
	hdr := Message{SPIi: sa.spii, SPIr: sa.spir, Exchange: ex, Flags: flags, MessageID: id,
		Payloads: []Payload{&Encrypted{NextPayload: first}}}
	if limit := d.ikeSizeLimit(sa.remote); sa.fragmentation && HeaderLen+skHeaderLen+sa.out.BodyLen(len(inner)) > limit {
		return sealFragments(sa.out, hdr, first, inner, limit)
	}
	prefix, err := hdr.Append(nil)
	if err != nil {
		return nil, err
	}
	b, err := sa.out.Seal(nil, prefix, inner)
	if err != nil {
		return nil, err
	}
	return [][]byte{b}, nil
}

// send sends b on the IKE SA's current path.
func (d *Daemon) send(sa *ikeSA, b []byte) {
	d.sendTo(b, sa.local, sa.remote)
}

func (d *Daemon) sendTo(b []byte, local, remote netip.AddrPort) {
	if err := d.cfg.Transport.Send(b, local, remote); err != nil {
		if ce := d.log.Check(zap.DebugLevel, "send failed"); ce != nil {
			ce.Write(zap.Stringer("remote", remote), zap.Error(err))
		}
	}
}

// open authenticates and decrypts the SK payload of a message of sa
// (RFC 7296 §3.14) and decodes what it holds. Nothing in a message is
// looked at before this succeeds.
func (d *Daemon) open(sa *ikeSA, b []byte) (*Message, []Payload, error) {
	m, err := Decode(b)
	if err != nil {
		return nil, nil, err
	}
	if len(m.Payloads) == 0 {
		return nil, nil, errNoSK
	}
	switch e := m.Payloads[len(m.Payloads)-1].(type) {
	case *Encrypted:
		skOff := len(b) - GenericHeaderLen - len(e.Data)
		plain, err := sa.in.Open(nil, b, skOff)
		if err != nil {
			return nil, nil, err
		}
		inner, err := DecodePayloads(e.NextPayload, plain)
		if err != nil {
			return m, nil, err
		}
		return m, inner, nil
	case *EncryptedFragment:
		inner, err := d.openFragment(sa, m, b, e)
		var pe *ParseError
		if errors.As(err, &pe) {
			return m, nil, err // authenticated, undecodable inside
		}
		if err != nil {
			return nil, nil, err
		}
		return m, inner, nil
	}
	return nil, nil, errNoSK
}

var (
	errNoSK       = errors.New("ike: no SK payload")
	errFragment   = errors.New("ike: unacceptable IKE fragment (RFC 7383)")
	errIncomplete = errors.New("ike: IKE fragment kept until the message is complete")
)

// fragments collects the SKF fragments of one message (RFC 7383 §2.6):
// only authenticated ones, at most maxFragments and maxReassembled bytes.
type fragments struct {
	msgID uint32
	total uint16
	first PayloadType
	parts [][]byte
	have  int
	size  int
}

const (
	maxFragments   = 64
	maxReassembled = 128 << 10
)

// openFragment authenticates one SKF payload and adds it to the message
// being reassembled; the inner payloads come back with the last one, else
// errIncomplete. Fragments are used only where both sides announced
// IKEV2_FRAGMENTATION_SUPPORTED.
func (d *Daemon) openFragment(sa *ikeSA, m *Message, b []byte, e *EncryptedFragment) ([]Payload, error) {
	if !sa.fragmentation || e.Total > maxFragments {
		return nil, errFragment
	}
	plain, err := sa.in.OpenFragment(nil, b, len(b)-len(e.Data)-skfHeaderLen)
	if err != nil {
		return nil, err
	}
	dir := 0
	if m.Flags&FlagResponse != 0 {
		dir = 1
	}
	f := sa.frags[dir]
	if f == nil || f.msgID != m.MessageID || f.total != e.Total {
		// A new message, or the sender fragmented again (§2.6.2).
		f = &fragments{msgID: m.MessageID, total: e.Total, parts: make([][]byte, e.Total)}
		sa.frags[dir] = f
	}
	i := int(e.Number) - 1
	if f.parts[i] != nil {
		return nil, errIncomplete
	}
	if f.size+len(plain) > maxReassembled {
		sa.frags[dir] = nil
		return nil, errFragment
	}
	f.parts[i] = plain
	f.have++
	f.size += len(plain)
	if e.Number == 1 {
		f.first = e.NextPayload
	}
	if f.have < int(f.total) {
		return nil, errIncomplete
	}
	sa.frags[dir] = nil
	all := make([]byte, 0, f.size)
	for _, p := range f.parts {
		all = append(all, p...)
	}
	return DecodePayloads(f.first, all)
}

// handle is one datagram: IKE_SA_INIT by SPIs and source, every other
// exchange by our SPI; requests and responses apart (RFC 7296 §2.1, §3.1).
func (d *Daemon) handle(dg datagram) {
	if dg.local.Addr().IsUnspecified() {
		dg.local = netip.AddrPortFrom(netip.Addr{}, dg.local.Port())
	}
	h, err := ParseHeader(dg.b)
	if err != nil || int(h.Length) != len(dg.b) {
		d.refuse("malformed", "malformed IKE message", zap.Stringer("from", dg.remote))
		return
	}
	response := h.Flags&FlagResponse != 0
	fromInitiator := h.Flags&FlagInitiator != 0
	if h.Exchange == IKE_SA_INIT {
		if response {
			d.initResponse(dg, h)
		} else if fromInitiator {
			d.initRequest(dg, h)
		} else {
			d.refuse("malformed", "IKE_SA_INIT request without the I flag", zap.Stringer("from", dg.remote))
		}
		return
	}
	var sa *ikeSA
	if fromInitiator {
		sa = d.sas[h.SPIr]
		if sa != nil && (sa.initiator || sa.spii != h.SPIi) {
			sa = nil
		}
	} else {
		sa = d.sas[h.SPIi]
		if sa != nil && (!sa.initiator || sa.spir != h.SPIr) {
			sa = nil
		}
	}
	if sa == nil || sa.in == nil || sa.state == stateDead {
		d.refuse("invalid_spi", "message for an unknown IKE SA", zap.Stringer("from", dg.remote),
			zap.Stringer("exchange", h.Exchange))
		return
	}
	if response {
		d.response(sa, dg, h)
	} else {
		d.request(sa, dg, h)
	}
}

// response is the answer to our outstanding request, or dropped.
func (d *Daemon) response(sa *ikeSA, dg datagram, h Header) {
	r := sa.outstanding
	if r == nil || h.MessageID != r.id || h.Exchange != r.exchange {
		d.refuse("message_id", "response to no outstanding request", append(sa.logFields(),
			zap.Uint32("msgid", h.MessageID))...)
		return
	}
	m, inner, err := d.open(sa, dg.b)
	if errors.Is(err, errIncomplete) {
		sa.lastRecv = d.now()
		return
	}
	if err != nil {
		d.dropOpen(sa, err)
		if m == nil {
			return
		}
		// Authenticated but undecodable inside: the exchange failed.
		inner = nil
	}
	sa.lastRecv = d.now()
	sa.outstanding = nil
	d.stats.Exchanges[r.exchange.String()]++
	if r.onResponse != nil {
		r.onResponse(m, inner)
	}
	if sa.state != stateDead {
		d.sendNext(sa)
	}
}

// verify authenticates a message of sa without using its content; first
// is false for an SKF fragment other than number 1.
func (d *Daemon) verify(sa *ikeSA, b []byte) (first bool, err error) {
	m, err := Decode(b)
	if err != nil {
		return false, err
	}
	if len(m.Payloads) == 0 {
		return false, errNoSK
	}
	switch e := m.Payloads[len(m.Payloads)-1].(type) {
	case *Encrypted:
		_, err = sa.in.Open(nil, b, len(b)-GenericHeaderLen-len(e.Data))
		return true, err
	case *EncryptedFragment:
		if !sa.fragmentation {
			return false, errFragment
		}
		_, err = sa.in.OpenFragment(nil, b, len(b)-len(e.Data)-skfHeaderLen)
		return e.Number == 1, err
	}
	return false, errNoSK
}

// dropOpen counts a message that failed open.
func (d *Daemon) dropOpen(sa *ikeSA, err error) {
	switch {
	case errors.Is(err, ErrSKAuth):
		d.refuse("integrity", "SK payload failed its integrity check", sa.logFields()...)
	case errors.Is(err, errFragment):
		d.refuse("fragment", "IKE fragment dropped (not negotiated, or too many or too long)", sa.logFields()...)
	default:
		d.refuse("malformed", "malformed protected message", append(sa.logFields(), zap.Error(err))...)
	}
}

// request is the peer's request: a new one (message ID peerNext) is
// processed and answered, the previous one answered again from the cache,
// anything else dropped (§2.2, §2.3).
func (d *Daemon) request(sa *ikeSA, dg datagram, h Header) {
	retrans := sa.lastResp != nil && h.MessageID == sa.peerNext-1
	if h.MessageID != sa.peerNext && !retrans {
		d.refuse("message_id", "request outside the window", append(sa.logFields(),
			zap.Uint32("msgid", h.MessageID), zap.Uint32("want", sa.peerNext))...)
		return
	}
	if retrans {
		// Answered again only once authenticated; of a fragmented
		// request, on its first fragment only (RFC 7383 §2.6.1).
		first, err := d.verify(sa, dg.b)
		if err != nil {
			d.dropOpen(sa, err)
			return
		}
		// No liveness from it (§2.4): a retransmission proves the
		// bytes authentic, not that the peer is alive now, and anyone
		// who recorded them can send them again.
		if first {
			d.sendAll(sa.lastResp, dg.local, dg.remote)
		}
		return
	}
	m, inner, err := d.open(sa, dg.b)
	if errors.Is(err, errIncomplete) {
		sa.lastRecv = d.now()
		return
	}
	if err != nil && m == nil {
		d.dropOpen(sa, err)
		return
	}
	sa.lastRecv = d.now()
	d.follow(sa, dg)
	sa.reqFrom = dg
	d.peerRequest(sa, h.MessageID)
	var resp []Payload
	var after func()
	if err != nil {
		// Authenticated, but the inner payloads do not decode (§2.21.1).
		d.fail("malformed")
		var pe *ParseError
		n := &Notify{NotifyType: INVALID_SYNTAX}
		if errors.As(err, &pe) {
			n = pe.Notify()
		}
		resp = []Payload{n}
	} else {
		switch h.Exchange {
		case IKE_AUTH:
			resp, after = d.authRequest(sa, h, inner)
		case INFORMATIONAL:
			resp, after = d.infoRequest(sa, inner)
		case CREATE_CHILD_SA:
			resp, after = d.createChildRequest(sa, h, inner)
		default:
			// Unknown exchange types in an authenticated request: refuse
			// without acting (§2.21.1 names INVALID_SYNTAX for what we
			// cannot process).
			resp = []Payload{&Notify{NotifyType: INVALID_SYNTAX}}
		}
	}
	b, serr := d.seal(sa, h.Exchange, h.MessageID, true, resp)
	if serr != nil {
		d.log.Error("cannot build response", append(sa.logFields(), zap.Error(serr))...)
		d.fail("internal")
		return
	}
	sa.peerNext++
	sa.lastResp, sa.lastRespTo = b, dg.remote
	d.sendAll(b, dg.local, dg.remote)
	if _, known := d.stats.Exchanges[h.Exchange.String()]; known && err == nil {
		d.stats.Exchanges[h.Exchange.String()]++
	}
	if after != nil {
		after()
	}
}

// follow moves the IKE SA (and its children) to where an authenticated
// request came from, when NAT traversal is in use (RFC 7296 §2.23): the
// initiator floats to 4500, and a NAT may give it a new port. Without a
// NAT the SA stays where it is; answers go where each request came from
// anyway.
func (d *Daemon) follow(sa *ikeSA, dg datagram) {
	if dg.remote == sa.remote && (!dg.local.IsValid() || dg.local == sa.local) {
		return
	}
	if !sa.follows() {
		return
	}
	sa.remote = dg.remote
	if dg.local.IsValid() {
		sa.local = dg.local
	}
	d.log.Info("IKE SA moved", append(sa.logFields(), zap.Stringer("local", sa.local), zap.Stringer("remote", sa.remote))...)
	d.setEndpoint(sa)
}

// follows reports whether the SA follows its peer to a new address or
// port. The side behind a NAT keeps its peer's address (§2.23): only a
// responder (whose initiator floats to 4500) or an initiator whose
// responder is behind a NAT follows.
func (sa *ikeSA) follows() bool {
	return sa.natRemote || !sa.initiator && sa.nat()
}

// setEndpoint tells the kernel where sa's children's ESP goes now (after
// sa moved on authenticated input); a failure is counted and logged, and
// returned. An IKE SA without children has nothing to move.
func (d *Daemon) setEndpoint(sa *ikeSA) error {
	if len(sa.children) == 0 {
		return nil
	}
	err := d.cfg.Kernel.SetEndpoint(sa.peerName(), sa.endpoint())
	if err != nil {
		d.fail("kernel")
		d.log.Warn("kernel: set endpoint failed", append(sa.logFields(), zap.Error(err))...)
	}
	return err
}

// ESPMoved tells the daemon that the kernel moved peer's ESP to remote
// after an authenticated ESP packet from there (Endpoint.Follow): a NAT in
// front of the peer changed its mapping. The peer's IKE SA moves with it,
// so that the next request (a liveness check, a rekey) reaches it; the
// NAT's mapping is shared by IKE and ESP on UDP 4500 (RFC 3948 §2.2).
// Nothing moves for a peer without a NAT in front of it, or for another
// address family.
func (d *Daemon) ESPMoved(peer string, remote netip.AddrPort) {
	d.post(func() {
		for _, sa := range d.sas {
			if sa.peerName() != peer || sa.state != stateEstablished || !sa.encap || !sa.follows() ||
				remote == sa.remote || remote.Addr().Is4() != sa.remote.Addr().Is4() || remote.Port() == 0 {
				continue
			}
			from := sa.remote
			sa.remote = remote
			d.stats.ESPMoves++
			d.log.Info("IKE SA moved after its ESP (NAT mapping changed)", append(sa.logFields(),
				zap.Stringer("from", from), zap.Stringer("remote", sa.remote))...)
			d.setEndpoint(sa)
		}
	})
}

// removeSA takes the IKE SA out of every table and its children out of
// the kernel (both SAs and the policies), and tells whoever waits.
func (d *Daemon) removeSA(sa *ikeSA, reason error) {
	if sa.state == stateDead {
		return
	}
	wasUp := (sa.state == stateEstablished || sa.state == stateDeleting) && !sa.established.IsZero()
	if s := sa.successor; s != nil && s.state == stateEstablished {
		d.moveChildren(sa, s) // rekeyed (§2.18)
	}
	for _, op := range slices.Clone(sa.creating) {
		d.endCreate(sa, op, errors.New("ike: IKE SA deleted"))
	}
	if op := sa.ikeRekey; op != nil {
		d.endIKERekey(sa, op, errors.New("ike: IKE SA deleted"))
	}
	sa.state = stateDead
	for _, ch := range sa.children {
		d.uninstallChild(sa, ch)
	}
	sa.children = nil
	d.releasePending(sa)
	if d.sas[sa.localSPI()] == sa {
		delete(d.sas, sa.localSPI())
	}
	if !sa.initiator {
		if d.halfOpen[sa.initKey] == sa {
			delete(d.halfOpen, sa.initKey)
		}
		if d.initIndex[sa.initKey] == sa {
			delete(d.initIndex, sa.initKey)
		}
	}
	sa.outstanding, sa.queue = nil, nil
	if sa.keys != nil {
		sa.keys.Wipe()
	}
	for _, w := range sa.waiters {
		if reason == nil {
			reason = errors.New("ike: IKE SA deleted")
		}
		w <- reason
	}
	sa.waiters = nil
	for _, w := range sa.deleteWaiters {
		w <- nil
	}
	sa.deleteWaiters = nil
	d.releaseLease(sa)
	if wasUp {
		d.log.Info("IKE SA down", sa.logFields()...)
	}
}

// releasePending drops the child offered in IKE_AUTH that did not come
// up, its SPI back to the kernel.
func (d *Daemon) releasePending(sa *ikeSA) {
	if pc := sa.pendingChild; pc != nil {
		if pc.inSPI != 0 && !pc.inInstalled {
			d.cfg.Kernel.ReleaseSPI(pc.inSPI)
		}
		sa.pendingChild = nil
	}
}

// saDied is an IKE SA that failed or whose peer is gone: removed, and its
// connection initiated again if it has StartStart children.
func (d *Daemon) saDied(sa *ikeSA, reason error) {
	c := sa.conn
	d.removeSA(sa, reason)
	if c.retryAt.IsZero() && d.activeSA(c) == nil {
		d.scheduleRetry(c)
	}
}

// deleteIKESA sends our Delete of the IKE SA (§1.4.1); the SA goes when
// the peer answers or the retransmissions run out.
func (d *Daemon) deleteIKESA(sa *ikeSA) {
	if sa.state != stateEstablished {
		return
	}
	sa.state = stateDeleting
	done := func() { d.removeSA(sa, errors.New("ike: IKE SA deleted")) }
	d.queueRequest(sa, &request{exchange: INFORMATIONAL, payloads: []Payload{&Delete{Protocol: ProtoIKE}},
		onResponse: func(*Message, []Payload) { done() }, onTimeout: done})
}

// findNotify returns the first notify of type t among ps.
func findNotify(ps []Payload, t NotifyType) *Notify {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}

// firstError returns the first error notify among ps.
func firstError(ps []Payload) *Notify {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.NotifyType.IsError() {
			return n
		}
	}
	return nil
}
