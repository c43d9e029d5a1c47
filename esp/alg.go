package esp

import (
	"fmt"
	"strings"
)

// Algorithm is an ESP transform suite. Names follow IKEv2/strongSwan
// proposals (for example "aes128gcm16", "aes128-sha256", "null-sha256").
type Algorithm uint8

const (
	AlgInvalid Algorithm = iota
	// AES128GCM16, AES192GCM16 and AES256GCM16: RFC 4106, 16-byte ICV,
	// key || 4-byte salt (§8.1).
	AES128GCM16
	AES192GCM16
	AES256GCM16
	// ChaCha20Poly1305: RFC 7634, 32-byte key || 4-byte salt.
	ChaCha20Poly1305
	// AES128GMAC and AES256GMAC: RFC 4543, integrity only, key || 4-byte salt.
	AES128GMAC
	AES256GMAC
	// AES-CBC (RFC 3602) with HMAC-SHA-256-128 (RFC 4868).
	AES128CBCSHA256
	AES256CBCSHA256
	// AES-CBC (RFC 3602) with HMAC-SHA1-96 (RFC 2404), for interop.
	AES128CBCSHA1
	AES256CBCSHA1
	// NULLSHA256: NULL encryption (RFC 2410) with HMAC-SHA-256-128,
	// integrity-only ESP as Mobile IPv6 BUs often use (RFC 4877 §4.3).
	NULLSHA256
	numAlgorithms
)

type algInfo struct {
	name      string
	encKeyLen int  // encryption key length incl. the 4-byte salt for AEADs
	authKey   int  // integrity key length (0 for combined-mode algorithms)
	ivLen     int  // explicit IV bytes on the wire
	icvLen    int  // ICV bytes on the wire
	block     int  // cipher block size for padding (RFC 4303 §2.4)
	aead      bool // combined mode (GCM, ChaCha20-Poly1305, GMAC)
	encrypts  bool // provides confidentiality
}

var algs = [numAlgorithms]algInfo{
	AES128GCM16:      {"aes128gcm16", 16 + 4, 0, 8, 16, 4, true, true},
	AES192GCM16:      {"aes192gcm16", 24 + 4, 0, 8, 16, 4, true, true},
	AES256GCM16:      {"aes256gcm16", 32 + 4, 0, 8, 16, 4, true, true},
	ChaCha20Poly1305: {"chacha20poly1305", 32 + 4, 0, 8, 16, 4, true, true},
	AES128GMAC:       {"aes128gmac", 16 + 4, 0, 8, 16, 4, true, false},
	AES256GMAC:       {"aes256gmac", 32 + 4, 0, 8, 16, 4, true, false},
	AES128CBCSHA256:  {"aes128-sha256", 16, 32, 16, 16, 16, false, true},
	AES256CBCSHA256:  {"aes256-sha256", 32, 32, 16, 16, 16, false, true},
	AES128CBCSHA1:    {"aes128-sha1", 16, 20, 16, 12, 16, false, true},
	AES256CBCSHA1:    {"aes256-sha1", 32, 20, 16, 12, 16, false, true},
	NULLSHA256:       {"null-sha256", 0, 32, 0, 16, 4, false, false},
}

// ParseAlgorithm maps a strongSwan-style proposal name to an Algorithm.
// Matching ignores case; "aes128gcm128" is accepted for "aes128gcm16" (so
// for 192 and 256) and "sha256" may be spelled "sha2_256".
func ParseAlgorithm(name string) (Algorithm, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.ReplaceAll(n, "sha2_256", "sha256")
	switch n {
	case "aes128gcm128":
		n = "aes128gcm16"
	case "aes192gcm128":
		n = "aes192gcm16"
	case "aes256gcm128":
		n = "aes256gcm16"
	}
	for a := AES128GCM16; a < numAlgorithms; a++ {
		if algs[a].name == n {
			return a, nil
		}
	}
	return AlgInvalid, fmt.Errorf("esp: unknown algorithm %q (known: %s)", name, strings.Join(AlgorithmNames(), ", "))
}

// AlgorithmNames lists the names ParseAlgorithm accepts.
func AlgorithmNames() []string {
	var s []string
	for a := AES128GCM16; a < numAlgorithms; a++ {
		s = append(s, algs[a].name)
	}
	return s
}

func (a Algorithm) valid() bool { return a > AlgInvalid && a < numAlgorithms }

// String returns the proposal name.
func (a Algorithm) String() string {
	if !a.valid() {
		return fmt.Sprintf("Algorithm(%d)", uint8(a))
	}
	return algs[a].name
}

// EncKeyLen is the length of the encryption key Params.EncKey must have,
// including the 4-byte salt of AES-GCM, AES-GMAC and ChaCha20-Poly1305.
func (a Algorithm) EncKeyLen() int { return algs[a].encKeyLen }

// AuthKeyLen is the length of the integrity key Params.AuthKey must have,
// 0 for combined-mode algorithms.
func (a Algorithm) AuthKeyLen() int { return algs[a].authKey }

// IVLen is the explicit IV length on the wire.
func (a Algorithm) IVLen() int { return algs[a].ivLen }

// ICVLen is the ICV length on the wire.
func (a Algorithm) ICVLen() int { return algs[a].icvLen }

// BlockSize is the padding block (RFC 4303 §2.4): 16 for AES-CBC, else 4.
func (a Algorithm) BlockSize() int { return algs[a].block }

// AEAD reports whether a is a combined-mode algorithm.
func (a Algorithm) AEAD() bool { return algs[a].aead }

// Encrypts reports whether a provides confidentiality.
func (a Algorithm) Encrypts() bool { return algs[a].encrypts }

// CounterMode reports whether a derives its nonce from a counter, so that
// reusing a key after a restart without persisted sequence numbers repeats
// nonces (RFC 8221 §3).
func (a Algorithm) CounterMode() bool { return algs[a].aead }

// Overhead returns the number of bytes ESP adds to a payload of n bytes
// with minimal padding (header, IV, padding, trailer, ICV; RFC 4303 §2.4),
// outer IP header excluded. Outbound.Overhead gives the worst case.
func (a Algorithm) Overhead(n int) int {
	i := algs[a]
	body := i.ivLen + n + ESPTrailerLen
	pad := (-body) & (i.block - 1)
	if i.block == 16 {
		pad = (-(n + ESPTrailerLen)) & 15
	}
	return 8 + i.ivLen + pad + ESPTrailerLen + i.icvLen
}

// ESPTrailerLen is Pad Length + Next Header.
const ESPTrailerLen = 2
