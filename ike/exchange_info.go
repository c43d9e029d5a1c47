package ike

import (
	"errors"

	"go.uber.org/zap"
)

// INFORMATIONAL (RFC 7296 §1.4): Deletes of Child SAs and of the IKE SA
// (§1.4.1), the liveness check, an empty request (§2.4), and notices.

// peerAuthFailed: the initiator did not accept our AUTH (or identity) and
// said so in an INFORMATIONAL of the new IKE SA (§2.21.2). The notice is
// inside the SK payload, so only the peer sends it; it is counted and
// logged, and the SA goes after the (empty) answer.
func (d *Daemon) peerAuthFailed(sa *ikeSA) func() {
	d.fail("peer_auth_failed")
	d.log.Warn("the peer refused our authentication (AUTHENTICATION_FAILED): check our id, key or certificate against its remote auth",
		append(sa.logFields(), zap.String("remote_id", sa.remoteID.String()))...)
	return func() { d.removeSA(sa, errors.New("ike: the peer reported AUTHENTICATION_FAILED")) }
}

// infoRequest answers the peer's INFORMATIONAL request.
func (d *Daemon) infoRequest(sa *ikeSA, inner []Payload) ([]Payload, func()) {
	if sa.state != stateEstablished && sa.state != stateDeleting {
		// Before IKE_AUTH completed only the initiator's notice of a
		// failed authentication is of use.
		if n := findNotify(inner, AUTHENTICATION_FAILED); n != nil && !sa.initiator {
			return nil, d.peerAuthFailed(sa)
		}
		return nil, nil
	}
	if findNotify(inner, UPDATE_SA_ADDRESSES) != nil {
		return d.updateAddresses(sa, inner), nil
	}
	var resp []Payload
	var gone []*childSA
	for _, p := range inner {
		switch p := p.(type) {
		case *Delete:
			switch p.Protocol {
			case ProtoIKE:
				// §1.4.1: answer empty; the IKE SA and its children go.
				d.log.Info("peer deleted the IKE SA", sa.logFields()...)
				return nil, func() { d.removeSA(sa, errors.New("ike: deleted by the peer")) }
			case ProtoESP:
				var ours []uint32
				for _, spi := range p.SPIs {
					for _, ch := range sa.children {
						if ch.outSPI != spi {
							continue
						}
						// A child we are deleting ourselves is not listed
						// again (§1.4.1, simultaneous deletes).
						if ch.state != childDeleting {
							ours = append(ours, ch.inSPI)
						}
						gone = append(gone, ch)
					}
				}
				if len(ours) > 0 {
					resp = append(resp, &Delete{Protocol: ProtoESP, SPIs: ours})
				}
			}
		case *Notify:
			switch {
			case p.NotifyType == AUTHENTICATION_FAILED:
				return nil, d.peerAuthFailed(sa)
			case p.NotifyType.IsError():
				d.log.Info("peer notified an error", append(sa.logFields(), zap.Stringer("notify", p.NotifyType))...)
			}
		}
	}
	if len(gone) == 0 {
		return resp, nil
	}
	return resp, func() {
		for _, ch := range gone {
			d.log.Info("peer deleted the child SA", append(sa.logFields(), zap.String("child", ch.name))...)
			d.dropChild(sa, ch)
		}
	}
}

// deleteChild sends our Delete of ch (our inbound SPI, §1.4.1) and
// removes it when the peer answers (or the IKE SA dies).
func (d *Daemon) deleteChild(sa *ikeSA, ch *childSA) {
	if ch.state == childDeleting || sa.state != stateEstablished {
		return
	}
	ch.state = childDeleting
	d.queueRequest(sa, &request{exchange: INFORMATIONAL,
		payloads: []Payload{&Delete{Protocol: ProtoESP, SPIs: []uint32{ch.inSPI}}},
		onResponse: func(*Message, []Payload) {
			d.dropChild(sa, ch)
		}})
}
