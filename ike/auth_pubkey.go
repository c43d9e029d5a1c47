package ike

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Authentication with certificates (RFC 7296 §2.15, §3.6–§3.8): RFC 7427
// digital signatures (AUTH method 14) where the peer announced
// SIGNATURE_HASH_ALGORITHMS, otherwise the classic methods (RSA 1, ECDSA
// 9/10/11 of RFC 4754).

// checkLocalPubkey validates a local pubkey configuration: a chain, leaf
// first, whose leaf holds the public half of a supported Key.
func checkLocalPubkey(l LocalAuth) error {
	if len(l.Certs) == 0 || l.Certs[0] == nil {
		return errors.New("no certificate")
	}
	for i, c := range l.Certs {
		if c == nil {
			return fmt.Errorf("certificate %d is nil", i+1)
		}
	}
	if l.Key == nil {
		return errors.New("no private key")
	}
	switch k := l.Key.Public().(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits, want 2048 at least", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if _, err := ecdsaMethod(k.Curve); err != nil {
			return err
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", k)
	}
	pub, ok := l.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(l.Certs[0].PublicKey) {
		return errors.New("the private key does not match the certificate")
	}
	return nil
}

// checkRemotePubkey validates a remote pubkey configuration: trust
// anchors to chain the peer's certificate to.
func checkRemotePubkey(r RemoteAuth) error {
	if len(r.CAs) == 0 {
		return errors.New("no CA certificates")
	}
	for i, c := range r.CAs {
		if c == nil {
			return fmt.Errorf("CA certificate %d is nil", i+1)
		}
	}
	return nil
}

// ecdsaMethod is the classic AUTH method of an ECDSA key's curve
// (RFC 4754 §3).
func ecdsaMethod(c elliptic.Curve) (AuthMethod, error) {
	switch c {
	case elliptic.P256():
		return AuthECDSA256, nil
	case elliptic.P384():
		return AuthECDSA384, nil
	case elliptic.P521():
		return AuthECDSA521, nil
	}
	return 0, fmt.Errorf("unsupported ECDSA curve %s", c.Params().Name)
}
