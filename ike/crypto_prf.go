package ike

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
)

// PRFAlg is an IKEv2 pseudorandom function: a Transform Type 2 ID of the
// IANA "IKEv2 Parameters" registry (RFC 7296 §3.3.2). Only the HMAC-SHA2
// PRFs of RFC 4868 are implemented; HMAC-SHA1 (2) and AES128-XCBC (4) are
// known by number so that a proposal carrying them can be named and refused.
type PRFAlg uint16

// PRF transform IDs (IANA "Transform Type 2 - Pseudorandom Function
// Transform IDs").
const (
	PRFHMACMD5      PRFAlg = 1 // PRF_HMAC_MD5; weak, not implemented (RFC 8247 §2.3)
	PRFHMACSHA1     PRFAlg = 2 // PRF_HMAC_SHA1, RFC 2104; not implemented (weak, RFC 8247)
	PRFAES128XCBC   PRFAlg = 4 // PRF_AES128_XCBC, RFC 4434; not implemented
	PRFHMACSHA2_256 PRFAlg = 5 // PRF_HMAC_SHA2_256, RFC 4868
	PRFHMACSHA2_384 PRFAlg = 6 // PRF_HMAC_SHA2_384, RFC 4868
	PRFHMACSHA2_512 PRFAlg = 7 // PRF_HMAC_SHA2_512, RFC 4868
	PRFAES128CMAC   PRFAlg = 8 // PRF_AES128_CMAC, RFC 4615; not implemented
)

// prfPlusMaxIter is the number of prf+ blocks there can be: the block
// counter appended to each iteration is one octet, 0x01 to 0xff (RFC 7296
// §2.13: "this prf+ ... MUST NOT be used to generate more than 255 times
// the output size of the PRF").
const prfPlusMaxIter = 255

// errPRF is returned for a PRF that is not implemented.
var errPRF = errors.New("ike: unsupported PRF")

// errPRFPlusTooLong is returned when more key material is asked of prf+
// than 255 PRF outputs.
var errPRFPlusTooLong = errors.New("ike: prf+ output longer than 255 PRF blocks (RFC 7296 §2.13)")

func (p PRFAlg) String() string {
	switch p {
	case PRFHMACSHA1:
		return "prfsha1"
	case PRFAES128XCBC:
		return "prfaesxcbc"
	case PRFHMACSHA2_256:
		return "prfsha256"
	case PRFHMACSHA2_384:
		return "prfsha384"
	case PRFHMACSHA2_512:
		return "prfsha512"
	}
	return fmt.Sprintf("prf(%d)", uint16(p))
}

// Supported reports whether the PRF is implemented.
func (p PRFAlg) Supported() bool { return p.newHash() != nil }

// newHash returns the hash constructor of an HMAC PRF, or nil.
func (p PRFAlg) newHash() func() hash.Hash {
	switch p {
	case PRFHMACSHA2_256:
		return sha256.New
	case PRFHMACSHA2_384:
		return sha512.New384
	case PRFHMACSHA2_512:
		return sha512.New
	}
	return nil
}

// Size is the PRF's output length in bytes, which is also its preferred
// key length (RFC 4868 §2.1.2: the key of PRF_HMAC_SHA2_* is the hash
// output size; RFC 7296 §2.14 takes SK_d, SK_pi and SK_pr at that length).
// It is 0 for a PRF that is not implemented.
func (p PRFAlg) Size() int {
	switch p {
	case PRFHMACSHA2_256:
		return 32
	case PRFHMACSHA2_384:
		return 48
	case PRFHMACSHA2_512:
		return 64
	}
	return 0
}

// New returns the keyed PRF as a hash.Hash (HMAC with the whole key: for
// the HMAC PRFs, keys of any length are used as they are, RFC 4868 §2.2;
// RFC 7296 §2.14 uses Ni | Nr whole as the key of SKEYSEED).
func (p PRFAlg) New(key []byte) (hash.Hash, error) {
	h := p.newHash()
	if h == nil {
		return nil, errPRF
	}
	return hmac.New(h, key), nil
}

// Compute returns prf(key, data[0] | data[1] | ...).
func (p PRFAlg) Compute(key []byte, data ...[]byte) ([]byte, error) {
	m, err := p.New(key)
	if err != nil {
		return nil, err
	}
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil), nil
}

// Plus returns the first n bytes of prf+(key, seed) (RFC 7296 §2.13):
//
//	prf+ (K,S) = T1 | T2 | T3 | ...
//	T1 = prf (K, S | 0x01)
//	Tn = prf (K, Tn-1 | S | n)
//
// n may be at most 255 times the PRF's output size; more is an error, since
// the one-octet counter would wrap. seed is given in parts, concatenated.
func (p PRFAlg) Plus(key []byte, n int, seed ...[]byte) ([]byte, error) {
	m, err := p.New(key)
	if err != nil {
		return nil, err
	}
	size := p.Size()
	if n < 0 || n > prfPlusMaxIter*size {
		return nil, errPRFPlusTooLong
	}
	blocks := (n + size - 1) / size
	out := make([]byte, 0, blocks*size)
	var prev []byte
	for i := 1; i <= blocks; i++ {
		m.Reset()
		m.Write(prev)
		for _, s := range seed {
			m.Write(s)
		}
		m.Write([]byte{byte(i)})
		start := len(out)
		out = m.Sum(out)
		prev = out[start:]
	}
	return out[:n], nil
}
