package ike

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// Authentication with certificates (RFC 7296 §2.15, §3.6–§3.8): RFC 7427
// digital signatures (AUTH method 14) where the peer announced
// SIGNATURE_HASH_ALGORITHMS, otherwise the classic method of the key
// (RSA 1 with PKCS#1 v1.5 and SHA-1, ECDSA 9/10/11 of RFC 4754). The
// signature covers SignedOctets. CERT payloads (X.509 Signature, §3.6)
// carry the chain, leaf first; CERTREQ (§3.7) the SHA-1 hashes of the
// trusted CAs' Subject Public Key Info.

// Bounds on the peer's CERT payloads.
const (
	maxPeerCerts    = 8
	maxPeerCertSize = 16 << 10
)

// Hash algorithm IDs of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4, RFC 8420
// §2 for Identity, the "hash" of Ed25519).
const (
	hashSHA1     = 1
	hashSHA256   = 2
	hashSHA384   = 3
	hashSHA512   = 4
	hashIdentity = 5
)

// authFailure is why a peer's certificate authentication failed: why is
// the short reason that the log line names.
type authFailure struct {
	why string
	err error
}

func (e *authFailure) Error() string {
	if e.err == nil {
		return "ike: " + e.why
	}
	return "ike: " + e.why + ": " + e.err.Error()
}

func (e *authFailure) Unwrap() error { return e.err }

func failAuth(why string, err error) error { return &authFailure{why: why, err: err} }

// checkLocalPubkey validates a local pubkey configuration: a chain, leaf
// first, whose leaf holds the public half of a supported Key.
func checkLocalPubkey(l LocalAuth) error {
	if len(l.Certs) == 0 {
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

// ecdsaClassic is the hash and curve of a classic ECDSA method (RFC 4754
// §3, §8).
func ecdsaClassic(m AuthMethod) (crypto.Hash, elliptic.Curve, bool) {
	switch m {
	case AuthECDSA256:
		return crypto.SHA256, elliptic.P256(), true
	case AuthECDSA384:
		return crypto.SHA384, elliptic.P384(), true
	case AuthECDSA521:
		return crypto.SHA512, elliptic.P521(), true
	}
	return 0, nil, false
}

// IdentityFromCert is the ID_DER_ASN1_DN identity of c's subject, what a
// certificate holder sends when no identity is configured.
func IdentityFromCert(c *x509.Certificate) Identity {
	return Identity{Type: ID_DER_ASN1_DN, Data: bytes.Clone(c.RawSubject)}
}

// parseSigHashes reads SIGNATURE_HASH_ALGORITHMS's data, a list of
// 16-bit hash algorithm IDs (RFC 7427 §4); a trailing odd byte is ignored.
func parseSigHashes(b []byte) []uint16 {
	var out []uint16
	for ; len(b) >= 2; b = b[2:] {
		out = append(out, binary.BigEndian.Uint16(b))
	}
	return out
}

// Signature schemes of RFC 7427 method 14.
type sigKind uint8

const (
	sigRSAPKCS1 sigKind = iota + 1
	sigRSAPSS
	sigECDSA
	sigEd25519
)

type sigScheme struct {
	kind sigKind
	hash crypto.Hash // 0 for Ed25519
	salt int         // RSASSA-PSS salt length
}

// OIDs of RFC 7427 Appendix A (RFC 4055, RFC 5758, RFC 8410).
var (
	oidSHA1WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSASHA1     = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519       = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA1          = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

var asn1Null = asn1.RawValue{Tag: asn1.TagNull}

// pssParams is RSASSA-PSS-params (RFC 4055 §3.1); absent fields take
// their defaults (SHA-1, MGF1 with SHA-1, salt 20, trailer 1).
type pssParams struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:0"`
	MGF          pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:1"`
	SaltLength   int                      `asn1:"optional,explicit,tag:2,default:20"`
	TrailerField int                      `asn1:"optional,explicit,tag:3,default:1"`
}

func hashOID(h crypto.Hash) asn1.ObjectIdentifier {
	switch h {
	case crypto.SHA256:
		return oidSHA256
	case crypto.SHA384:
		return oidSHA384
	case crypto.SHA512:
		return oidSHA512
	}
	return nil
}

func hashOfOID(o asn1.ObjectIdentifier) crypto.Hash {
	switch {
	case o.Equal(oidSHA256):
		return crypto.SHA256
	case o.Equal(oidSHA384):
		return crypto.SHA384
	case o.Equal(oidSHA512):
		return crypto.SHA512
	case o.Equal(oidSHA1):
		return crypto.SHA1
	}
	return 0
}

// algorithmIdentifier is s's DER AlgorithmIdentifier as RFC 7427 Appendix
// A writes it: RSA PKCS#1 v1.5 with NULL parameters, ECDSA and Ed25519
// without, RSASSA-PSS with all parameters but the trailer field.
func (s sigScheme) algorithmIdentifier() ([]byte, error) {
	var ai pkix.AlgorithmIdentifier
	switch s.kind {
	case sigRSAPKCS1:
		ai.Parameters = asn1Null
		switch s.hash {
		case crypto.SHA256:
			ai.Algorithm = oidSHA256WithRSA
		case crypto.SHA384:
			ai.Algorithm = oidSHA384WithRSA
		case crypto.SHA512:
			ai.Algorithm = oidSHA512WithRSA
		}
	case sigRSAPSS:
		h := pkix.AlgorithmIdentifier{Algorithm: hashOID(s.hash), Parameters: asn1Null}
		hb, err := asn1.Marshal(h)
		if err != nil {
			return nil, err
		}
		p, err := asn1.Marshal(pssParams{Hash: h,
			MGF:        pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: hb}},
			SaltLength: s.salt, TrailerField: 1})
		if err != nil {
			return nil, err
		}
		ai.Algorithm, ai.Parameters = oidRSAPSS, asn1.RawValue{FullBytes: p}
	case sigECDSA:
		switch s.hash {
		case crypto.SHA256:
			ai.Algorithm = oidECDSASHA256
		case crypto.SHA384:
			ai.Algorithm = oidECDSASHA384
		case crypto.SHA512:
			ai.Algorithm = oidECDSASHA512
		}
	case sigEd25519:
		ai.Algorithm = oidEd25519
	}
	if ai.Algorithm == nil || (s.kind == sigRSAPSS && hashOID(s.hash) == nil) {
		return nil, fmt.Errorf("ike: no AlgorithmIdentifier for signature scheme %d/%v", s.kind, s.hash)
	}
	return asn1.Marshal(ai)
}

// parseAlgorithmIdentifier reads a method 14 AlgorithmIdentifier and
// returns the scheme, refusing SHA-1 and what it does not know.
func parseAlgorithmIdentifier(der []byte) (sigScheme, error) {
	var ai pkix.AlgorithmIdentifier
	rest, err := asn1.Unmarshal(der, &ai)
	if err != nil || len(rest) != 0 {
		return sigScheme{}, errors.New("malformed AlgorithmIdentifier")
	}
	noParams := len(ai.Parameters.FullBytes) == 0
	nullOrNone := noParams || bytes.Equal(ai.Parameters.FullBytes, []byte{5, 0})
	switch o := ai.Algorithm; {
	case o.Equal(oidSHA256WithRSA) && nullOrNone:
		return sigScheme{kind: sigRSAPKCS1, hash: crypto.SHA256}, nil
	case o.Equal(oidSHA384WithRSA) && nullOrNone:
		return sigScheme{kind: sigRSAPKCS1, hash: crypto.SHA384}, nil
	case o.Equal(oidSHA512WithRSA) && nullOrNone:
		return sigScheme{kind: sigRSAPKCS1, hash: crypto.SHA512}, nil
	case o.Equal(oidECDSASHA256) && noParams:
		return sigScheme{kind: sigECDSA, hash: crypto.SHA256}, nil
	case o.Equal(oidECDSASHA384) && noParams:
		return sigScheme{kind: sigECDSA, hash: crypto.SHA384}, nil
	case o.Equal(oidECDSASHA512) && noParams:
		return sigScheme{kind: sigECDSA, hash: crypto.SHA512}, nil
	case o.Equal(oidEd25519) && noParams:
		return sigScheme{kind: sigEd25519}, nil
	case o.Equal(oidRSAPSS) && !noParams:
		return parsePSS(ai.Parameters.FullBytes)
	case o.Equal(oidSHA1WithRSA), o.Equal(oidECDSASHA1):
		return sigScheme{}, errors.New("SHA-1 signature refused")
	}
	return sigScheme{}, fmt.Errorf("unsupported signature algorithm %v", ai.Algorithm)
}

// parsePSS reads RSASSA-PSS-params: SHA-2 only, MGF1 with the same hash,
// trailer field 1.
func parsePSS(der []byte) (sigScheme, error) {
	var p pssParams
	rest, err := asn1.Unmarshal(der, &p)
	if err != nil || len(rest) != 0 {
		return sigScheme{}, errors.New("malformed RSASSA-PSS parameters")
	}
	h := crypto.SHA1 // the default hashAlgorithm
	if p.Hash.Algorithm != nil {
		h = hashOfOID(p.Hash.Algorithm)
	}
	if h == crypto.SHA1 || h == 0 {
		return sigScheme{}, errors.New("RSASSA-PSS without SHA-2 refused")
	}
	var mgfHash pkix.AlgorithmIdentifier
	if !p.MGF.Algorithm.Equal(oidMGF1) {
		return sigScheme{}, errors.New("RSASSA-PSS without MGF1")
	}
	if rest, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil || len(rest) != 0 || hashOfOID(mgfHash.Algorithm) != h {
		return sigScheme{}, errors.New("RSASSA-PSS with MGF1 of another hash")
	}
	if p.TrailerField != 1 || p.SaltLength < 0 || p.SaltLength > 512 {
		return sigScheme{}, errors.New("RSASSA-PSS trailer field or salt length unsupported")
	}
	return sigScheme{kind: sigRSAPSS, hash: h, salt: p.SaltLength}, nil
}

// chooseScheme is the method 14 scheme for key given the hashes the peer
// announced; ok false where only a classic method fits.
func chooseScheme(pub crypto.PublicKey, hashes []uint16) (sigScheme, bool) {
	has := func(h uint16) bool { return slices.Contains(hashes, h) }
	first := func(order ...uint16) crypto.Hash {
		for _, h := range order {
			if has(h) {
				return map[uint16]crypto.Hash{hashSHA256: crypto.SHA256, hashSHA384: crypto.SHA384, hashSHA512: crypto.SHA512}[h]
			}
		}
		return 0
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if h := first(hashSHA256, hashSHA384, hashSHA512); h != 0 {
			return sigScheme{kind: sigRSAPKCS1, hash: h}, true
		}
	case *ecdsa.PublicKey:
		// The hash of the curve's strength first (RFC 5656 §6.2.1).
		order := []uint16{hashSHA256, hashSHA384, hashSHA512}
		switch k.Curve {
		case elliptic.P384():
			order = []uint16{hashSHA384, hashSHA512, hashSHA256}
		case elliptic.P521():
			order = []uint16{hashSHA512, hashSHA384, hashSHA256}
		}
		if h := first(order...); h != 0 {
			return sigScheme{kind: sigECDSA, hash: h}, true
		}
	case ed25519.PublicKey:
		if has(hashIdentity) {
			return sigScheme{kind: sigEd25519}, true
		}
	}
	return sigScheme{}, false
}

func digest(h crypto.Hash, msg []byte) []byte {
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}

// signAuth is our AUTH payload over signed (RFC 7296 §2.15): method 14
// with the AlgorithmIdentifier in front of the signature (RFC 7427 §3)
// when the peer announced SIGNATURE_HASH_ALGORITHMS with a hash our key
// can use, the classic method of the key otherwise.
func signAuth(key crypto.Signer, signed []byte, announced bool, hashes []uint16, rand io.Reader) (*Auth, error) {
	pub := key.Public()
	if s, ok := chooseScheme(pub, hashes); announced && ok {
		ai, err := s.algorithmIdentifier()
		if err != nil {
			return nil, err
		}
		var sig []byte
		switch s.kind {
		case sigEd25519:
			sig, err = key.Sign(rand, signed, crypto.Hash(0))
		case sigRSAPSS:
			sig, err = key.Sign(rand, digest(s.hash, signed), &rsa.PSSOptions{SaltLength: s.salt, Hash: s.hash})
		default: // PKCS#1 v1.5 and ECDSA (DER Ecdsa-Sig-Value)
			sig, err = key.Sign(rand, digest(s.hash, signed), s.hash)
		}
		if err != nil {
			return nil, fmt.Errorf("ike: sign: %w", err)
		}
		data := append([]byte{byte(len(ai))}, ai...)
		return &Auth{Method: AuthDigitalSignature, Data: append(data, sig...)}, nil
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		sig, err := key.Sign(rand, digest(crypto.SHA1, signed), crypto.SHA1)
		if err != nil {
			return nil, fmt.Errorf("ike: sign: %w", err)
		}
		return &Auth{Method: AuthRSASignature, Data: sig}, nil
	case *ecdsa.PublicKey:
		m, err := ecdsaMethod(k.Curve)
		if err != nil {
			return nil, err
		}
		h, _, _ := ecdsaClassic(m)
		der, err := key.Sign(rand, digest(h, signed), h)
		if err != nil {
			return nil, fmt.Errorf("ike: sign: %w", err)
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
			return nil, errors.New("ike: sign: the signer's ECDSA signature is not DER")
		}
		// r || s, each as long as the curve's order (RFC 4754 §7).
		n := (k.Curve.Params().BitSize + 7) / 8
		data := make([]byte, 2*n)
		rs.R.FillBytes(data[:n])
		rs.S.FillBytes(data[n:])
		return &Auth{Method: m, Data: data}, nil
	}
	return nil, fmt.Errorf("ike: the peer did not announce a signature hash usable with a %T key (RFC 7427, RFC 8420)", pub)
}

// verifyAuth checks a peer's signature AUTH over signed with the leaf
// certificate's public key.
func verifyAuth(pub crypto.PublicKey, a *Auth, signed []byte) error {
	bad := func(err error) error { return failAuth("bad signature", err) }
	switch a.Method {
	case AuthDigitalSignature:
		if len(a.Data) < 1 || len(a.Data) < 1+int(a.Data[0]) {
			return bad(errors.New("truncated AlgorithmIdentifier"))
		}
		s, err := parseAlgorithmIdentifier(a.Data[1 : 1+int(a.Data[0])])
		if err != nil {
			return failAuth("unsupported signature algorithm", err)
		}
		sig := a.Data[1+int(a.Data[0]):]
		switch k := pub.(type) {
		case *rsa.PublicKey:
			switch s.kind {
			case sigRSAPKCS1:
				err = rsa.VerifyPKCS1v15(k, s.hash, digest(s.hash, signed), sig)
			case sigRSAPSS:
				err = rsa.VerifyPSS(k, s.hash, digest(s.hash, signed), sig, &rsa.PSSOptions{SaltLength: s.salt, Hash: s.hash})
			default:
				return bad(errors.New("a non-RSA signature algorithm for an RSA key"))
			}
		case *ecdsa.PublicKey:
			if s.kind != sigECDSA {
				return bad(errors.New("a non-ECDSA signature algorithm for an ECDSA key"))
			}
			if !ecdsa.VerifyASN1(k, digest(s.hash, signed), sig) {
				err = errors.New("ECDSA verification failed")
			}
		case ed25519.PublicKey:
			if s.kind != sigEd25519 {
				return bad(errors.New("a non-Ed25519 signature algorithm for an Ed25519 key"))
			}
			if !ed25519.Verify(k, signed, sig) {
				err = errors.New("Ed25519 verification failed")
			}
		default:
			return bad(fmt.Errorf("unsupported key type %T", pub))
		}
		if err != nil {
			return bad(err)
		}
		return nil
	case AuthRSASignature:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return bad(errors.New("RSA signature method for a non-RSA key"))
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA1, digest(crypto.SHA1, signed), a.Data); err != nil {
			return bad(err)
		}
		return nil
	case AuthECDSA256, AuthECDSA384, AuthECDSA521:
		h, curve, _ := ecdsaClassic(a.Method)
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != curve {
			return bad(fmt.Errorf("method %d for a key that is not on its curve", a.Method))
		}
		n := (curve.Params().BitSize + 7) / 8
		if len(a.Data) != 2*n {
			return bad(fmt.Errorf("ECDSA signature of %d bytes, want %d", len(a.Data), 2*n))
		}
		r, s := new(big.Int).SetBytes(a.Data[:n]), new(big.Int).SetBytes(a.Data[n:])
		if !ecdsa.Verify(k, digest(h, signed), r, s) {
			return bad(errors.New("ECDSA verification failed"))
		}
		return nil
	}
	return failAuth("wrong auth method", fmt.Errorf("method %d, want a signature", a.Method))
}

// certPayloads are the CERT payloads of our chain, leaf first (§3.6).
func certPayloads(l LocalAuth) []Payload {
	ps := make([]Payload, 0, len(l.Certs))
	for _, c := range l.Certs {
		ps = append(ps, &Cert{Encoding: CertX509Signature, Data: bytes.Clone(c.Raw)})
	}
	return ps
}

// certReqPayload is a CERTREQ naming cas by the SHA-1 hash of their
// Subject Public Key Info (§3.7).
func certReqPayload(cas []*x509.Certificate) *CertReq {
	data := make([]byte, 0, sha1.Size*len(cas))
	for _, c := range cas {
		h := sha1.Sum(c.RawSubjectPublicKeyInfo)
		data = append(data, h[:]...)
	}
	return &CertReq{Encoding: CertX509Signature, Data: data}
}

// verifyPeerCerts checks the peer's CERT payloads: at most maxPeerCerts,
// each at most maxPeerCertSize, the first X.509 one the leaf, which must
// chain to cas (the others as intermediates) at now and may sign
// (keyUsage digitalSignature where present). Extended key usages are not
// required, as with strongSwan.
func verifyPeerCerts(ps []*Cert, cas []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	if len(ps) > maxPeerCerts {
		return nil, failAuth("too many certificates", fmt.Errorf("%d CERT payloads, at most %d", len(ps), maxPeerCerts))
	}
	var leaf *x509.Certificate
	inter := x509.NewCertPool()
	for _, p := range ps {
		if len(p.Data) > maxPeerCertSize {
			return nil, failAuth("certificate too large", fmt.Errorf("%d bytes, at most %d", len(p.Data), maxPeerCertSize))
		}
		if p.Encoding != CertX509Signature {
			continue
		}
		c, err := x509.ParseCertificate(p.Data)
		if err != nil {
			return nil, failAuth("malformed certificate", err)
		}
		if leaf == nil {
			leaf = c
		} else {
			inter.AddCert(c)
		}
	}
	if leaf == nil {
		return nil, failAuth("no certificate", nil)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var inv x509.CertificateInvalidError
		var ua x509.UnknownAuthorityError
		switch {
		case errors.As(err, &inv) && inv.Reason == x509.Expired:
			return nil, failAuth("expired", err)
		case errors.As(err, &ua):
			return nil, failAuth("unknown CA", err)
		}
		return nil, failAuth("invalid certificate chain", err)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, failAuth("certificate not for signatures", errors.New("keyUsage without digitalSignature"))
	}
	return leaf, nil
}

// certHasIdentity checks that the peer's identity is in its certificate
// (§3.5, RFC 4945 §3.1): a DN is the subject, an FQDN, RFC 822 address
// or IP address one of its subjectAltNames.
func certHasIdentity(c *x509.Certificate, id Identity) error {
	ok := false
	switch id.Type {
	case ID_DER_ASN1_DN:
		ok = id.Equal(Identity{Type: ID_DER_ASN1_DN, Data: c.RawSubject})
	case ID_FQDN:
		name := strings.TrimSuffix(string(id.Data), ".")
		ok = slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(strings.TrimSuffix(n, "."), name) })
	case ID_RFC822_ADDR:
		ok = slices.ContainsFunc(c.EmailAddresses, func(e string) bool { return strings.EqualFold(e, string(id.Data)) })
	case ID_IPV4_ADDR, ID_IPV6_ADDR:
		ip := net.IP(id.Data)
		if (id.Type == ID_IPV4_ADDR && len(id.Data) == 4) || (id.Type == ID_IPV6_ADDR && len(id.Data) == 16) {
			ok = slices.ContainsFunc(c.IPAddresses, ip.Equal)
		}
	}
	if !ok {
		return failAuth("identity not in the certificate", fmt.Errorf("%s", id))
	}
	return nil
}
