package ike

import (
	"crypto/subtle"
	"errors"
)

// Authentication with a shared key (RFC 7296 §2.15).

// keyPad is the PSK key pad of RFC 7296 §2.15, 17 ASCII bytes without a
// terminator.
const keyPad = "Key Pad for IKEv2"

// SignedOctets is the data an AUTH payload covers (RFC 7296 §2.15):
//
//	message | peerNonce | prf(SK_p, RestOfIDPayload)
//
// where message is the sender's first message of the IKE SA (its
// IKE_SA_INIT request or response, as sent), peerNonce the Nonce Data the
// other side sent in IKE_SA_INIT, skp the sender's SK_pi or SK_pr, and
// RestOfIDPayload the sender's IDi or IDr payload body after the generic
// header: ID Type, three reserved zero bytes and the identification data.
// The verifier computes the same with the sender's values.
func SignedOctets(prf PRFAlg, message, peerNonce, skp []byte, id *ID) ([]byte, error) {
	if id == nil {
		return nil, errors.New("ike: signed octets without an ID payload")
	}
	if len(message) == 0 || len(peerNonce) == 0 || len(skp) == 0 {
		return nil, errors.New("ike: signed octets need the message, the peer's nonce and SK_p")
	}
	mac, err := prf.Compute(skp, []byte{byte(id.IDType), 0, 0, 0}, id.Data)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(message)+len(peerNonce)+len(mac))
	return append(append(append(out, message...), peerNonce...), mac...), nil
}

// PSKAuthData is the Authentication Data of a shared key AUTH payload
// (RFC 7296 §2.15): prf(prf(Shared Secret, "Key Pad for IKEv2"),
// signed), with signed from SignedOctets.
func PSKAuthData(prf PRFAlg, psk, signed []byte) ([]byte, error) {
	if len(psk) == 0 {
		return nil, errors.New("ike: empty pre-shared key")
	}
	k, err := prf.Compute(psk, []byte(keyPad))
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return prf.Compute(k, signed)
}

// VerifyPSKAuth reports whether got is the shared key Authentication Data
// for signed, comparing in constant time.
func VerifyPSKAuth(prf PRFAlg, psk, signed, got []byte) bool {
	want, err := PSKAuthData(prf, psk, signed)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(want, got) == 1
}
