package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EncrAlg is an IKEv2 encryption algorithm: a Transform Type 1 ID of the
// IANA "IKEv2 Parameters" registry (RFC 7296 §3.3.2). Those below are the
// ones the SK payload implements (crypto_sk.go).
type EncrAlg uint16

// Encryption transform IDs (IANA "Transform Type 1 - Encryption Algorithm
// Transform IDs").
const (
	Encr3DES             EncrAlg = 3  // ENCR_3DES; weak, not implemented (RFC 8247 §2.1)
	EncrNull             EncrAlg = 11 // ENCR_NULL; not for IKE
	EncrAESCBC           EncrAlg = 12 // ENCR_AES_CBC, RFC 3602; Key Length 128/192/256
	EncrAESCTR           EncrAlg = 13 // ENCR_AES_CTR, RFC 5930; not implemented
	EncrAESCCM8          EncrAlg = 14 // ENCR_AES_CCM_8, RFC 5282; not implemented
	EncrAESCCM12         EncrAlg = 15 // ENCR_AES_CCM_12, RFC 5282; not implemented
	EncrAESCCM16         EncrAlg = 16 // ENCR_AES_CCM_16, RFC 5282; not implemented
	EncrAESGCM8          EncrAlg = 18 // ENCR_AES_GCM_8, RFC 5282 (8-byte ICV)
	EncrAESGCM12         EncrAlg = 19 // ENCR_AES_GCM_12, RFC 5282 (12-byte ICV)
	EncrAESGCM16         EncrAlg = 20 // ENCR_AES_GCM_16, RFC 5282 (16-byte ICV)
	EncrNullAuthAESGMAC  EncrAlg = 21 // ENCR_NULL_AUTH_AES_GMAC, RFC 4543; ESP only
	EncrCamelliaCBC      EncrAlg = 23 // ENCR_CAMELLIA_CBC, RFC 5529; not implemented
	EncrChaCha20Poly1305 EncrAlg = 28 // ENCR_CHACHA20_POLY1305, RFC 7634
)

func (e EncrAlg) String() string {
	switch e {
	case EncrAESCBC:
		return "aescbc"
	case EncrAESGCM8:
		return "aesgcm8"
	case EncrAESGCM12:
		return "aesgcm12"
	case EncrAESGCM16:
		return "aesgcm16"
	case EncrChaCha20Poly1305:
		return "chacha20poly1305"
	}
	return fmt.Sprintf("encr(%d)", uint16(e))
}

// AEAD reports whether the algorithm is a combined mode (no INTEG
// transform, no SK_ai/SK_ar; RFC 5282 §8, RFC 7634 §3).
func (e EncrAlg) AEAD() bool {
	switch e {
	case EncrAESGCM8, EncrAESGCM12, EncrAESGCM16, EncrChaCha20Poly1305:
		return true
	}
	return false
}

// IntegAlg is an IKEv2 integrity algorithm: a Transform Type 3 ID
// (RFC 7296 §3.3.2, IANA).
type IntegAlg uint16

// Integrity transform IDs (IANA "Transform Type 3 - Integrity Algorithm
// Transform IDs"). HMAC_SHA1_96 is named to be refused for IKE SAs.
const (
	IntegNone             IntegAlg = 0  // NONE (with an AEAD)
	IntegHMACMD5_96       IntegAlg = 1  // AUTH_HMAC_MD5_96; weak, not implemented
	IntegHMACSHA1_96      IntegAlg = 2  // AUTH_HMAC_SHA1_96, RFC 2404; not implemented for IKE
	IntegAESXCBC96        IntegAlg = 5  // AUTH_AES_XCBC_96, RFC 3566; not implemented
	IntegAESCMAC96        IntegAlg = 8  // AUTH_AES_CMAC_96, RFC 4494; not implemented
	IntegHMACSHA2_256_128 IntegAlg = 12 // AUTH_HMAC_SHA2_256_128, RFC 4868
	IntegHMACSHA2_384_192 IntegAlg = 13 // AUTH_HMAC_SHA2_384_192, RFC 4868
	IntegHMACSHA2_512_256 IntegAlg = 14 // AUTH_HMAC_SHA2_512_256, RFC 4868
)

func (i IntegAlg) String() string {
	switch i {
	case IntegNone:
		return "none"
	case IntegHMACSHA1_96:
		return "sha1"
	case IntegHMACSHA2_256_128:
		return "sha256"
	case IntegHMACSHA2_384_192:
		return "sha384"
	case IntegHMACSHA2_512_256:
		return "sha512"
	}
	return fmt.Sprintf("integ(%d)", uint16(i))
}

// KeyLen is the integrity key length in bytes: the hash output size for
// HMAC-SHA2 (RFC 4868 §2.1.2). 0 for none or an unimplemented algorithm.
func (i IntegAlg) KeyLen() int {
	switch i {
	case IntegHMACSHA2_256_128:
		return 32
	case IntegHMACSHA2_384_192:
		return 48
	case IntegHMACSHA2_512_256:
		return 64
	}
	return 0
}

// ICVLen is the truncated MAC length in bytes (RFC 4868 §2.3: 128, 192
// and 256 bits).
func (i IntegAlg) ICVLen() int {
	return i.KeyLen() / 2
}

// SKSuite names the transforms that protect an IKE SA's SK payloads (the
// ENCR with its Key Length attribute, and INTEG), and so the lengths of
// SK_e* and SK_a* (RFC 7296 §2.14).
type SKSuite struct {
	Encr EncrAlg
	// KeyBits is the Key Length attribute in bits (RFC 7296 §3.3.5):
	// 128, 192 or 256 for AES; 0 or 256 for ChaCha20-Poly1305, which
	// has one fixed key size and no attribute (RFC 7634 §3).
	KeyBits int
	// Integ is IntegNone for an AEAD, else an HMAC-SHA2 algorithm.
	Integ IntegAlg
}

var errSKSuite = errors.New("ike: unsupported SK transform combination")

// Validate reports whether the suite is implemented and consistent.
func (s SKSuite) Validate() error {
	switch s.Encr {
	case EncrAESCBC, EncrAESGCM8, EncrAESGCM12, EncrAESGCM16:
		if s.KeyBits != 128 && s.KeyBits != 192 && s.KeyBits != 256 {
			return fmt.Errorf("%w: %v with key length %d", errSKSuite, s.Encr, s.KeyBits)
		}
	case EncrChaCha20Poly1305:
		if s.KeyBits != 0 && s.KeyBits != 256 {
			return fmt.Errorf("%w: %v with key length %d", errSKSuite, s.Encr, s.KeyBits)
		}
	default:
		return fmt.Errorf("%w: %v", errSKSuite, s.Encr)
	}
	if s.Encr.AEAD() {
		if s.Integ != IntegNone {
			return fmt.Errorf("%w: AEAD %v with integrity %v (RFC 5282 §8)", errSKSuite, s.Encr, s.Integ)
		}
		return nil
	}
	if s.Integ.KeyLen() == 0 {
		return fmt.Errorf("%w: %v needs an integrity algorithm, not %v", errSKSuite, s.Encr, s.Integ)
	}
	return nil
}

// EncKeyLen is the length of SK_ei and SK_er: the cipher key, plus the
// 4-byte salt for AES-GCM (RFC 5282 §7.1) and ChaCha20-Poly1305 (RFC 7634
// §4, 32 + 4 bytes).
func (s SKSuite) EncKeyLen() int {
	switch s.Encr {
	case EncrAESCBC:
		return s.KeyBits / 8
	case EncrAESGCM8, EncrAESGCM12, EncrAESGCM16:
		return s.KeyBits/8 + 4
	case EncrChaCha20Poly1305:
		return 32 + 4
	}
	return 0
}

// IntegKeyLen is the length of SK_ai and SK_ar (0 for an AEAD).
func (s SKSuite) IntegKeyLen() int {
	if s.Encr.AEAD() {
		return 0
	}
	return s.Integ.KeyLen()
}

// IKEKeys are the seven secrets of an IKE SA (RFC 7296 §2.14).
// SK_d derives Child SA keys and the next SKEYSEED; SK_ai/SK_ar and
// SK_ei/SK_er protect the SK payloads the initiator and the responder
// send; SK_pi/SK_pr enter the AUTH payloads.
type IKEKeys struct {
	SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte
}

// Wipe overwrites the keys with zeros (best effort: copies the garbage
// collector made are out of reach).
func (k *IKEKeys) Wipe() {
	for _, b := range [][]byte{k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr} {
		clear(b)
	}
}

// Nonce length bounds (RFC 7296 §2.10: at least 16 bytes and at least
// half the PRF key size; §3.9: at most 256 bytes).
const (
	kdfMinNonceLen = 16
	kdfMaxNonceLen = 256
)

var errKDFNonce = errors.New("ike: nonce length out of range (RFC 7296 §2.10, §3.9)")

func checkKDFNonces(prf PRFAlg, ni, nr []byte) error {
	min := max(kdfMinNonceLen, prf.Size()/2)
	if len(ni) < min || len(ni) > kdfMaxNonceLen || len(nr) < min || len(nr) > kdfMaxNonceLen {
		return errKDFNonce
	}
	return nil
}

// SKEYSEED computes SKEYSEED = prf(Ni | Nr, g^ir) for a new IKE SA
// (RFC 7296 §2.14). The HMAC PRFs take Ni | Nr whole as the key.
func SKEYSEED(prf PRFAlg, ni, nr, gir []byte) ([]byte, error) {
	if err := checkKDFNonces(prf, ni, nr); err != nil {
		return nil, err
	}
	key := make([]byte, 0, len(ni)+len(nr))
	key = append(append(key, ni...), nr...)
	defer clear(key)
	return prf.Compute(key, gir)
}

// RekeySKEYSEED computes the SKEYSEED of an IKE SA that rekeys an old one
// in CREATE_CHILD_SA: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr),
// where prf is the old IKE SA's PRF and Ni, Nr are the nonces of the
// CREATE_CHILD_SA exchange (RFC 7296 §2.18). The new SA's keys then come
// from DeriveIKEKeys with the new SA's PRF and SPIs.
func RekeySKEYSEED(oldPRF PRFAlg, oldSKd, gir, ni, nr []byte) ([]byte, error) {
	if err := checkKDFNonces(oldPRF, ni, nr); err != nil {
		return nil, err
	}
	if len(gir) == 0 {
		return nil, errors.New("ike: IKE SA rekey needs a key exchange (RFC 7296 §1.3.2)")
	}
	return oldPRF.Compute(oldSKd, gir, ni, nr)
}

// DeriveIKEKeys computes {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi |
// SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14). SK_d,
// SK_pi and SK_pr are the PRF's preferred key size, its output length
// (RFC 7296 §2.14, RFC 4868 §2.1.2); SK_a* and SK_e* are the suite's key
// lengths, with the AEAD salt included in SK_e* and no SK_a* for an AEAD.
func DeriveIKEKeys(prf PRFAlg, suite SKSuite, skeyseed, ni, nr []byte, spii, spir uint64) (*IKEKeys, error) {
	if err := suite.Validate(); err != nil {
		return nil, err
	}
	if !prf.Supported() {
		return nil, errPRF
	}
	if err := checkKDFNonces(prf, ni, nr); err != nil {
		return nil, err
	}
	var spis [16]byte
	binary.BigEndian.PutUint64(spis[:8], spii)
	binary.BigEndian.PutUint64(spis[8:], spir)
	pl, al, el := prf.Size(), suite.IntegKeyLen(), suite.EncKeyLen()
	keymat, err := prf.Plus(skeyseed, 3*pl+2*al+2*el, ni, nr, spis[:])
	if err != nil {
		return nil, err
	}
	var k IKEKeys
	next := func(n int) []byte {
		b := keymat[:n:n]
		keymat = keymat[n:]
		return b
	}
	k.SKd = next(pl)
	k.SKai = next(al)
	k.SKar = next(al)
	k.SKei = next(el)
	k.SKer = next(el)
	k.SKpi = next(pl)
	k.SKpr = next(pl)
	return &k, nil
}

// ChildKeys are the ESP keys of a Child SA pair, taken from KEYMAT in the
// order RFC 7296 §2.17 gives: the SA the initiator sends on (initiator to
// responder) first, its encryption key then its integrity key, then the
// same for the SA the responder sends on. An AEAD's encryption key carries
// its salt (RFC 4106 §8.1, RFC 7634 §4) and its integrity key is empty.
type ChildKeys struct {
	EncrIR, IntegIR []byte // initiator -> responder
	EncrRI, IntegRI []byte // responder -> initiator
}

// Wipe overwrites the keys with zeros.
func (k *ChildKeys) Wipe() {
	for _, b := range [][]byte{k.EncrIR, k.IntegIR, k.EncrRI, k.IntegRI} {
		clear(b)
	}
}

// DeriveChildKeys computes KEYMAT = prf+(SK_d, Ni | Nr), or with a key
// exchange in CREATE_CHILD_SA (PFS) KEYMAT = prf+(SK_d, g^ir (new) | Ni |
// Nr) (RFC 7296 §2.17), and splits it into encKeyLen/integKeyLen-byte keys
// for the two directions. gir is nil without PFS. For the first Child SA
// (IKE_AUTH) Ni and Nr are the IKE_SA_INIT nonces; for CREATE_CHILD_SA,
// the nonces of that exchange.
func DeriveChildKeys(prf PRFAlg, skd, gir, ni, nr []byte, encKeyLen, integKeyLen int) (*ChildKeys, error) {
	if encKeyLen < 0 || integKeyLen < 0 || encKeyLen+integKeyLen == 0 || encKeyLen > 64 || integKeyLen > 64 {
		return nil, errors.New("ike: bad Child SA key lengths")
	}
	if err := checkKDFNonces(prf, ni, nr); err != nil {
		return nil, err
	}
	keymat, err := prf.Plus(skd, 2*(encKeyLen+integKeyLen), gir, ni, nr)
	if err != nil {
		return nil, err
	}
	next := func(n int) []byte {
		b := keymat[:n:n]
		keymat = keymat[n:]
		return b
	}
	var k ChildKeys
	k.EncrIR = next(encKeyLen)
	k.IntegIR = next(integKeyLen)
	k.EncrRI = next(encKeyLen)
	k.IntegRI = next(integKeyLen)
	return &k, nil
}
