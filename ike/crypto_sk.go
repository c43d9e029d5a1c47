package ike

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

// The SK payload (RFC 7296 §3.14) and the SKF payload (RFC 7383 §2.5):
//
//	IKE header | payloads before SK | SK header (4 bytes; SKF: 8) |
//	IV | Encrypted(inner payloads | Padding | Pad Length) | ICV
//
// With AES-CBC and HMAC-SHA2 the IV is one random 16-byte block, the
// plaintext is padded to the block size and the ICV is the truncated HMAC
// (SK_a) over the whole message from the first octet of the IKE header to
// the last octet before the ICV (RFC 7296 §3.14, RFC 4868 §2.3). With an
// AEAD (AES-GCM, RFC 5282 §3 and §5; ChaCha20-Poly1305, RFC 7634 §3) the
// IV is 8 bytes, the nonce is salt (the last 4 bytes of SK_e) | IV, the
// ICV is the AEAD tag, there is no SK_a, and the associated data is the
// message from the first octet of the IKE header to the last octet of the
// SK payload's generic header, without the IV (RFC 5282 §5.1; for SKF,
// through the Total Fragments field, RFC 7383 §2.5.3). In both cases the
// IKE header's Length and the SK payload's Payload Length are final before
// the ICV is computed, since both are covered by it.

const (
	skIKEHdrLen  = 28
	skHeaderLen  = 4 // generic payload header
	skfHeaderLen = 8 // generic payload header, Fragment Number, Total Fragments
	// maxSKMessage bounds what Seal builds and Open accepts: an IKE
	// message travels in one UDP datagram, and the SK payload's length
	// field is 16 bits.
	maxSKMessage = 65535
	aeadIVLen    = 8
	aeadSaltLen  = 4
	cbcBlockLen  = aes.BlockSize
)

var (
	// ErrSKMalformed is returned by Open for an SK payload whose lengths
	// are inconsistent (with the message, with the header length fields,
	// with the algorithm's IV, block and ICV sizes). It depends only on
	// what is in clear on the wire, never on a key.
	ErrSKMalformed = errors.New("ike: malformed encrypted payload")
	// ErrSKAuth is returned by Open for every failure that depends on the
	// key: a wrong ICV, or (after a good ICV) an impossible pad length. It
	// says nothing more, so that it is no oracle (RFC 7296 §3.14: the
	// ICV is checked before anything else of the payload is used).
	ErrSKAuth = errors.New("ike: encrypted payload failed authentication")
	// errIVExhausted: 2^64 messages under one key; never reached in
	// practice, and refused rather than wrapping.
	errIVExhausted = errors.New("ike: SK payload IV counter exhausted; rekey the IKE SA")
)

// SKCipher protects the SK payloads of one direction of an IKE SA: the
// messages one side sends (with SK_ei and SK_ai for the original
// initiator, SK_er and SK_ar for the responder; RFC 7296 §2.14). The
// sender and the receiver of a direction each hold one made from the same
// keys. Seal and Open may be called from several goroutines.
type SKCipher struct {
	suite  SKSuite
	ivLen  int
	icvLen int
	block  cipher.Block // AES-CBC; AES-GCM-8's counter mode
	aead   cipher.AEAD  // AEADs; AES-GCM-8 holds a 16-byte-tag GCM and truncates
	salt   [aeadSaltLen]byte

	// ivCounter is the last AEAD IV sent under this key. The IV of an
	// AEAD must never repeat under a key (RFC 5282 §3.1, RFC 7634 §2 and
	// §4: a repeated GCM nonce gives away the authentication key and the
	// XOR of two plaintexts). A 64-bit counter per key is unique by
	// construction. The message ID is not: SK_ei protects both the
	// initiator's requests and its responses to the responder's requests,
	// and the two message ID sequences are independent (RFC 7296 §2.2),
	// so request 3 and response 3 would share an IV; a message built
	// again for the same ID would too. The counter never wraps (Seal
	// fails at 2^64-1), and a new key comes with a new SKCipher.
	ivCounter atomic.Uint64

	// mu guards the per-message working memory below. It lives here, not
	// on the stack, because what is passed through the cipher.AEAD and
	// cipher.Block interfaces escapes, and Seal and Open should not
	// allocate.
	mu      sync.Mutex
	mac     hash.Hash // HMAC keyed with SK_a (CBC suites)
	macSum  [64]byte
	nonce   [aeadSaltLen + aeadIVLen]byte
	ctr, ks [aes.BlockSize]byte // AES-GCM-8 counter mode
	scratch []byte              // AES-GCM-8 Open: the recomputed ciphertext and full tag

	testRand io.Reader // tests only: the source of CBC IVs instead of crypto/rand
}

// NewSKCipher makes the protection of one direction from its encryption
// key (SK_ei or SK_er, AEAD salt included) and integrity key (SK_ai or
// SK_ar; empty for an AEAD). The keys are copied.
func NewSKCipher(suite SKSuite, encKey, integKey []byte) (*SKCipher, error) {
	if err := suite.Validate(); err != nil {
		return nil, err
	}
	if len(encKey) != suite.EncKeyLen() || len(integKey) != suite.IntegKeyLen() {
		return nil, errors.New("ike: SK key lengths do not match the suite")
	}
	c := &SKCipher{suite: suite}
	var err error
	switch suite.Encr {
	case EncrAESCBC:
		c.ivLen, c.icvLen = cbcBlockLen, suite.Integ.ICVLen()
		if c.block, err = aes.NewCipher(encKey); err != nil {
			return nil, err
		}
		var h func() hash.Hash
		switch suite.Integ {
		case IntegHMACSHA2_256_128:
			h = sha256.New
		case IntegHMACSHA2_384_192:
			h = sha512.New384
		case IntegHMACSHA2_512_256:
			h = sha512.New
		}
		c.mac = hmac.New(h, integKey)
	case EncrAESGCM8, EncrAESGCM12, EncrAESGCM16:
		k := encKey[:len(encKey)-aeadSaltLen]
		copy(c.salt[:], encKey[len(k):])
		if c.block, err = aes.NewCipher(k); err != nil {
			return nil, err
		}
		c.ivLen = aeadIVLen
		switch suite.Encr {
		case EncrAESGCM8:
			// crypto/cipher has no GCM with tags under 12 bytes. A GCM
			// tag of t bits is the first t bits of the full tag
			// (NIST SP 800-38D §7.1, step 6), so the 16-byte GCM
			// computes the tag and Seal/Open keep its first 8 bytes.
			c.icvLen = 8
			c.aead, err = cipher.NewGCM(c.block)
		case EncrAESGCM12:
			c.icvLen = 12
			c.aead, err = cipher.NewGCMWithTagSize(c.block, 12)
		default:
			c.icvLen = 16
			c.aead, err = cipher.NewGCM(c.block)
		}
		if err != nil {
			return nil, err
		}
	case EncrChaCha20Poly1305:
		k := encKey[:chacha20poly1305.KeySize]
		copy(c.salt[:], encKey[len(k):])
		if c.aead, err = chacha20poly1305.New(k); err != nil {
			return nil, err
		}
		c.ivLen, c.icvLen = aeadIVLen, chacha20poly1305.Overhead
	}
	return c, nil
}

// NewSKCiphers makes both directions of an IKE SA from its keys: out
// protects what this side sends, in what it receives. The original
// initiator sends with SK_ei/SK_ai and receives with SK_er/SK_ar.
func NewSKCiphers(suite SKSuite, k *IKEKeys, initiator bool) (out, in *SKCipher, err error) {
	ei, ai, er, ar := k.SKei, k.SKai, k.SKer, k.SKar
	if !initiator {
		ei, ai, er, ar = er, ar, ei, ai
	}
	if out, err = NewSKCipher(suite, ei, ai); err != nil {
		return nil, nil, err
	}
	if in, err = NewSKCipher(suite, er, ar); err != nil {
		return nil, nil, err
	}
	return out, in, nil
}

// Suite is the transforms this cipher was made for.
func (c *SKCipher) Suite() SKSuite { return c.suite }

// IVLen is the length of the IV at the start of the SK payload's body.
func (c *SKCipher) IVLen() int { return c.ivLen }

// ICVLen is the length of the Integrity Checksum Data at its end.
func (c *SKCipher) ICVLen() int { return c.icvLen }

// padLen is the Padding length for inner bytes of plaintext: to the AES
// block with CBC (RFC 7296 §3.14); none with the AEADs, which are counter
// modes with a block size of one octet and need no alignment.
func (c *SKCipher) padLen(inner int) int {
	if c.suite.Encr != EncrAESCBC {
		return 0
	}
	return (cbcBlockLen - (inner+1)%cbcBlockLen) % cbcBlockLen
}

// BodyLen is the number of bytes Seal adds after the SK (or SKF) header
// for inner bytes of inner payloads: IV, encrypted inner payloads,
// Padding, Pad Length and ICV. The SK payload's length is BodyLen + 4.
func (c *SKCipher) BodyLen(inner int) int {
	return c.ivLen + inner + c.padLen(inner) + 1 + c.icvLen
}

// Seal appends to dst a protected message: prefix, which is the IKE
// header, any payloads before SK, and the SK payload's generic header
// (Next Payload = the first inner payload's type), followed by the SK
// payload's body made from inner, the inner payloads in clear. It sets
// the IKE header's Length and the SK payload's Payload Length (at
// prefix[len(prefix)-2:]) to their final values, in the output, before
// they are authenticated. dst and prefix/inner must not overlap. With
// enough capacity in dst, Seal does not allocate.
func (c *SKCipher) Seal(dst, prefix, inner []byte) ([]byte, error) {
	return c.seal(dst, prefix, inner, len(prefix)-skHeaderLen)
}

// SealFragment is Seal for an Encrypted Fragment payload (SKF, RFC 7383
// §2.5): prefix ends with the SKF payload's 8-byte header (generic header,
// Fragment Number, Total Fragments) and inner is this fragment's share of
// the inner payloads.
func (c *SKCipher) SealFragment(dst, prefix, inner []byte) ([]byte, error) {
	return c.seal(dst, prefix, inner, len(prefix)-skfHeaderLen)
}

func (c *SKCipher) seal(dst, prefix, inner []byte, skOff int) ([]byte, error) {
	if skOff < skIKEHdrLen {
		return nil, errors.New("ike: Seal prefix shorter than IKE header and SK header")
	}
	pad := c.padLen(len(inner))
	ptLen := len(inner) + pad + 1
	total := len(prefix) + c.ivLen + ptLen + c.icvLen
	if total > maxSKMessage {
		return nil, errors.New("ike: protected message too long")
	}
	var iv [aeadIVLen]byte
	if c.aead != nil {
		n, err := c.nextIV()
		if err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint64(iv[:], n)
	}
	base := len(dst)
	// GCM-8 writes the full 16-byte tag before it is cut to 8.
	extra := 0
	if c.aead != nil {
		extra = c.aead.Overhead() - c.icvLen
	}
	out := slices.Grow(dst, total+extra)[:base+total]
	msg := out[base:]
	copy(msg, prefix)
	binary.BigEndian.PutUint32(msg[24:28], uint32(total))
	binary.BigEndian.PutUint16(msg[skOff+2:skOff+4], uint16(total-skOff))
	ivOff := len(prefix)
	ptOff := ivOff + c.ivLen
	pt := msg[ptOff : ptOff+ptLen]
	copy(pt, inner)
	// Padding: any value is allowed (RFC 7296 §3.14); zeros.
	clear(pt[len(inner) : len(inner)+pad])
	pt[ptLen-1] = byte(pad)

	if c.aead == nil {
		var err error
		if c.testRand != nil {
			_, err = io.ReadFull(c.testRand, msg[ivOff:ptOff])
		} else {
			_, err = rand.Read(msg[ivOff:ptOff])
		}
		if err != nil {
			return nil, err
		}
		cbcEncrypt(c.block, msg[ivOff:ptOff], pt)
		c.mu.Lock()
		c.mac.Reset()
		c.mac.Write(msg[:ptOff+ptLen])
		sum := c.mac.Sum(c.macSum[:0])
		copy(msg[ptOff+ptLen:], sum[:c.icvLen])
		c.mu.Unlock()
		return out, nil
	}
	copy(msg[ivOff:ptOff], iv[:])
	c.mu.Lock()
	c.setNonce(iv[:])
	ct := c.aead.Seal(pt[:0], c.nonce[:], pt, msg[:ivOff])
	c.mu.Unlock()
	if len(ct) != ptLen+c.icvLen {
		// GCM-8: clear the tag's second half beyond the message.
		clear(ct[ptLen+c.icvLen:])
	}
	return out, nil
}

func (c *SKCipher) nextIV() (uint64, error) {
	for {
		n := c.ivCounter.Load()
		if n == ^uint64(0) {
			return 0, errIVExhausted
		}
		if c.ivCounter.CompareAndSwap(n, n+1) {
			return n + 1, nil
		}
	}
}

// Open checks and decrypts the SK payload of msg, a whole IKE message
// whose last payload is the SK payload with its generic header at
// msg[skOff:], and appends the inner payloads to dst. The ICV is checked
// before any decrypted byte is looked at; every failure that depends on
// the key is ErrSKAuth, every inconsistent length ErrSKMalformed, and no
// input panics. On failure nothing is appended. dst must not overlap msg;
// with enough capacity in dst, Open does not allocate.
func (c *SKCipher) Open(dst, msg []byte, skOff int) ([]byte, error) {
	return c.open(dst, msg, skOff, skHeaderLen)
}

// OpenFragment is Open for an SKF payload (RFC 7383 §2.5) at msg[skfOff:].
func (c *SKCipher) OpenFragment(dst, msg []byte, skfOff int) ([]byte, error) {
	return c.open(dst, msg, skfOff, skfHeaderLen)
}

func (c *SKCipher) open(dst, msg []byte, skOff, hdrLen int) ([]byte, error) {
	n := len(msg)
	if n > maxSKMessage || skOff < skIKEHdrLen || skOff > n-hdrLen-c.ivLen-1-c.icvLen {
		return dst, ErrSKMalformed
	}
	// The SK payload must be the last payload (RFC 7296 §3.14) and both
	// lengths must describe exactly this message.
	if binary.BigEndian.Uint32(msg[24:28]) != uint32(n) ||
		int(binary.BigEndian.Uint16(msg[skOff+2:skOff+4])) != n-skOff {
		return dst, ErrSKMalformed
	}
	ivOff := skOff + hdrLen
	ctOff := ivOff + c.ivLen
	icvOff := n - c.icvLen
	ctLen := icvOff - ctOff
	iv := msg[ivOff:ctOff]
	ct := msg[ctOff:icvOff]
	icv := msg[icvOff:]

	base := len(dst)
	var pt []byte
	switch {
	case c.aead == nil: // AES-CBC + HMAC: authenticate, then decrypt
		if ctLen%cbcBlockLen != 0 {
			return dst, ErrSKMalformed
		}
		c.mu.Lock()
		c.mac.Reset()
		c.mac.Write(msg[:icvOff])
		sum := c.mac.Sum(c.macSum[:0])
		ok := subtle.ConstantTimeCompare(sum[:c.icvLen], icv) == 1
		c.mu.Unlock()
		if !ok {
			return dst, ErrSKAuth
		}
		out := append(dst, ct...)
		pt = out[base:]
		cbcDecrypt(c.block, iv, pt)
		dst = out
	case c.icvLen == 8: // AES-GCM-8
		out := slices.Grow(dst, ctLen)[:base+ctLen]
		pt = out[base:]
		c.mu.Lock()
		c.setNonce(iv)
		c.gcmCTR(pt, ct)
		// Recompute the full tag over the same ciphertext: sealing the
		// candidate plaintext again gives back ct and the 16-byte tag.
		c.scratch = slices.Grow(c.scratch[:0], ctLen+16)
		full := c.aead.Seal(c.scratch[:0], c.nonce[:], pt, msg[:ivOff])
		ok := subtle.ConstantTimeCompare(full[ctLen:ctLen+8], icv) == 1
		clear(full)
		c.mu.Unlock()
		if !ok {
			clear(pt)
			return dst[:base], ErrSKAuth
		}
		dst = out
	default:
		c.mu.Lock()
		c.setNonce(iv)
		out, err := c.aead.Open(dst, c.nonce[:], msg[ctOff:], msg[:ivOff])
		c.mu.Unlock()
		if err != nil {
			return dst, ErrSKAuth
		}
		pt = out[base:]
		dst = out
	}
	pad := int(pt[len(pt)-1])
	if pad > len(pt)-1 {
		clear(pt)
		return dst[:base], ErrSKAuth
	}
	return dst[:len(dst)-1-pad], nil
}

// cbcEncrypt encrypts buf in place in CBC mode (RFC 3602) with iv; len(buf)
// is a multiple of the block size. Written out rather than
// cipher.NewCBCEncrypter so that the per-message path does not allocate.
func cbcEncrypt(b cipher.Block, iv, buf []byte) {
	prev := iv
	for i := 0; i < len(buf); i += cbcBlockLen {
		blk := buf[i : i+cbcBlockLen]
		subtle.XORBytes(blk, blk, prev)
		b.Encrypt(blk, blk)
		prev = blk
	}
}

// cbcDecrypt decrypts buf in place in CBC mode with iv.
func cbcDecrypt(b cipher.Block, iv, buf []byte) {
	var prev, cur [cbcBlockLen]byte
	copy(prev[:], iv)
	for i := 0; i < len(buf); i += cbcBlockLen {
		blk := buf[i : i+cbcBlockLen]
		copy(cur[:], blk)
		b.Decrypt(blk, blk)
		subtle.XORBytes(blk, blk, prev[:])
		prev = cur
	}
}

// setNonce sets c.nonce to salt | iv (RFC 5282 §4, RFC 7634 §2). c.mu is held.
func (c *SKCipher) setNonce(iv []byte) {
	copy(c.nonce[:], c.salt[:])
	copy(c.nonce[aeadSaltLen:], iv)
}

// gcmCTR is GCM's encryption function GCTR from the first counter after
// J0 = nonce | 0x00000001 (NIST SP 800-38D §7.2): dst = src XOR keystream,
// counters nonce | 2, nonce | 3, ... c.mu is held.
func (c *SKCipher) gcmCTR(dst, src []byte) {
	copy(c.ctr[:], c.nonce[:])
	cnt := uint32(2)
	for i := 0; i < len(src); i += aes.BlockSize {
		binary.BigEndian.PutUint32(c.ctr[12:], cnt)
		cnt++
		c.block.Encrypt(c.ks[:], c.ctr[:])
		end := min(i+aes.BlockSize, len(src))
		subtle.XORBytes(dst[i:end], src[i:end], c.ks[:end-i])
	}
	clear(c.ks[:])
}
