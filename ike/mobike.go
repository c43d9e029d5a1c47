package ike

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"go.uber.org/zap"
)

// MOBIKE (RFC 4555). Both sides announce
// MOBIKE_SUPPORTED in IKE_AUTH (§3.3); the initiator, whose addresses
// changed, then sends an INFORMATIONAL request from its new address with
// UPDATE_SA_ADDRESSES, new NAT detection notifications and, optionally, a
// COOKIE2 (§3.5):
//
//	HDR, SK{N(UPDATE_SA_ADDRESSES), N(NAT_DETECTION_SOURCE_IP),
//	    N(NAT_DETECTION_DESTINATION_IP), [N(COOKIE2)]}  -->
//	<--  HDR, SK{N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP),
//	    [N(COOKIE2)]}
//
// The responder moves the IKE SA and every Child SA of it at once to the
// addresses of the request's IP header. The request is authenticated (its
// SK payload verified) and new (the message ID window, RFC 7296 §2.3, so
// a replayed older request is answered from the cache and moves nothing);
// an UPDATE_SA_ADDRESSES on an SA without MOBIKE, or one from the
// responder's own peer role, is ignored (§3.5 gives the update to the
// initiator alone).

// maxCookie2 is the longest COOKIE2 data (RFC 4555 §4.2.2: 8 to 64 octets).
const maxCookie2 = 64

// updateAddresses answers the initiator's UPDATE_SA_ADDRESSES request:
// the NAT detection of the new path and the COOKIE2 echoed; after the
// answer the SA and its children use the request's addresses.
func (d *Daemon) updateAddresses(sa *ikeSA, inner []Payload) []Payload {
	if !sa.mobike || sa.initiator {
		d.refuse("malformed", "UPDATE_SA_ADDRESSES without MOBIKE, or to the initiator", sa.logFields()...)
		return nil
	}
	dg := sa.reqFrom
	var cookie2 []byte
	if n := findNotify(inner, COOKIE2); n != nil {
		if len(n.Data) < 8 || len(n.Data) > maxCookie2 {
			d.refuse("malformed", "COOKIE2 of a bad length (RFC 4555 §4.2.2)", sa.logFields()...)
			return []Payload{&Notify{NotifyType: INVALID_SYNTAX}}
		}
		cookie2 = n.Data
	}
	natLocal, natRemote := detectNAT(inner, sa.spii, sa.spir, dg.local, dg.remote)
	from, fromLocal := sa.remote, sa.local
	sa.remote = dg.remote
	if dg.local.IsValid() {
		sa.local = dg.local
	}
	sa.natLocal, sa.natRemote = natLocal, natRemote
	// Once in UDP (the float to 4500 at IKE_AUTH, §3.3), ESP stays there.
	sa.encap = sa.encap || natLocal || natRemote
	d.stats.MOBIKEUpdates++
	d.log.Info("MOBIKE: IKE SA and its children moved (UPDATE_SA_ADDRESSES)", append(sa.logFields(),
		zap.Stringer("from", from), zap.Stringer("remote", sa.remote), zap.Stringer("local_from", fromLocal),
		zap.Stringer("local", sa.local), zap.Bool("nat_local", natLocal), zap.Bool("nat_remote", natRemote))...)
	d.setEndpoint(sa)
	// The answer's NAT detection: from our address to the initiator's as
	// we see them (§3.5).
	src, dst := NATDetectionNotifies(sa.spii, sa.spir, sa.local, sa.remote)
	resp := []Payload{src, dst}
	if cookie2 != nil {
		resp = append(resp, &Notify{NotifyType: COOKIE2, Data: cookie2})
	}
	return resp
}

// ErrNoMOBIKE: the IKE SA did not negotiate MOBIKE, or we are not its
// initiator (RFC 4555 §3.5 gives the update to the initiator alone).
var ErrNoMOBIKE = errors.New("ike: no MOBIKE on this IKE SA (both sides announce it, and only the initiator moves)")

// Move moves the established IKE SA of connection conn, of which we are
// the initiator, to the local address local (same family as the peer;
// our port stays): UPDATE_SA_ADDRESSES is sent from there with its NAT
// detection and a COOKIE2, and once the peer's answer echoes the COOKIE2
// the children's ESP goes from the new address too (RFC 4555 §3.5). It
// returns when the peer answered (or the exchange failed), or when the
// IKE SA or the daemon went away first (a Delete, Close).
func (d *Daemon) Move(conn string, local netip.Addr) error {
	w := make(chan error, 1)
	gone := make(chan error, 1)
	err := d.call(func() error {
		c := d.conn(conn)
		if c == nil {
			return fmt.Errorf("%w: %q", ErrUnknownConnection, conn)
		}
		sa := d.activeSA(c)
		if sa == nil || sa.state != stateEstablished {
			return fmt.Errorf("ike: move %s: no IKE SA established", conn)
		}
		if !sa.mobike || !sa.initiator {
			return ErrNoMOBIKE
		}
		local = local.Unmap()
		if !local.IsValid() || local.IsUnspecified() || local.Is4() != sa.remote.Addr().Unmap().Is4() {
			return fmt.Errorf("ike: move %s: local address %v is not of the peer's family (%v)", conn, local, sa.remote)
		}
		cookie := make([]byte, 16)
		if _, err := io.ReadFull(d.rand, cookie); err != nil {
			return err
		}
		from := sa.local
		sa.local = netip.AddrPortFrom(local, sa.local.Port())
		// Told why if the SA goes before the answer (removeSA drops the
		// request; an established SA's waiters hear nothing else);
		// forgotten once the exchange ends.
		sa.waiters = append(sa.waiters, gone)
		unwait := func() {
			sa.waiters = slices.DeleteFunc(sa.waiters, func(c chan error) bool { return c == gone })
		}
		src, dst := NATDetectionNotifies(sa.spii, sa.spir, sa.local, sa.remote)
		d.queueRequest(sa, &request{exchange: INFORMATIONAL,
			payloads: []Payload{&Notify{NotifyType: UPDATE_SA_ADDRESSES}, src, dst, &Notify{NotifyType: COOKIE2, Data: cookie}},
			onResponse: func(m *Message, inner []Payload) {
				unwait()
				w <- d.movedResponse(sa, from, cookie, inner)
			},
			onTimeout: func() {
				unwait()
				w <- errors.New("ike: UPDATE_SA_ADDRESSES unanswered")
				d.removeSA(sa, errors.New("ike: UPDATE_SA_ADDRESSES unanswered"))
			}})
		return nil
	})
	if err != nil {
		return err
	}
	select {
	case err := <-w:
		return err
	case why := <-gone:
		select {
		case err := <-w: // the timeout that removed it
			return err
		default:
		}
		if errors.Is(why, ErrNotRunning) {
			return ErrNotRunning
		}
		return fmt.Errorf("ike: move %s: the IKE SA went before the peer answered: %w", conn, why)
	case <-d.done:
		return ErrNotRunning
	}
}

// movedResponse checks the answer to our UPDATE_SA_ADDRESSES: the COOKIE2
// echoed (§3.5, a return routability check of the new path), then the NAT
// detection of the new path; the children follow.
func (d *Daemon) movedResponse(sa *ikeSA, from netip.AddrPort, cookie []byte, inner []Payload) error {
	if n := firstError(inner); n != nil {
		d.fail("malformed")
		return fmt.Errorf("ike: UPDATE_SA_ADDRESSES refused: %v", n.NotifyType)
	}
	if n := findNotify(inner, COOKIE2); n == nil || !bytes.Equal(n.Data, cookie) {
		d.refuse("malformed", "UPDATE_SA_ADDRESSES answer without our COOKIE2 (RFC 4555 §3.5)", sa.logFields()...)
		return errors.New("ike: UPDATE_SA_ADDRESSES answer without our COOKIE2")
	}
	natLocal, natRemote := detectNAT(inner, sa.spii, sa.spir, sa.local, sa.remote)
	sa.natLocal, sa.natRemote = natLocal, natRemote
	sa.encap = sa.encap || natLocal || natRemote
	d.stats.MOBIKEUpdates++
	// A new IKE SA of the connection (after a failure) starts from here
	// too, not from a configured address that may be gone.
	sa.conn.from = sa.local.Addr()
	d.log.Info("MOBIKE: moved the IKE SA and its children (UPDATE_SA_ADDRESSES)", append(sa.logFields(),
		zap.Stringer("local_from", from), zap.Stringer("local", sa.local), zap.Stringer("remote", sa.remote),
		zap.Bool("nat_local", natLocal), zap.Bool("nat_remote", natRemote))...)
	if err := d.setEndpoint(sa); err != nil {
		return fmt.Errorf("ike: kernel: %w", err)
	}
	return nil
}
