package esp

// Crypto suites: the per-SA cipher objects and the one routine each for
// protecting and checking an ESP packet in place.
//
// Layout handled here (RFC 4303 §2, Fig. 1), offsets into a Buf's array a:
//
//	s          s+8          s+8+ivLen                  e-icvLen      e
//	| SPI|seq  |     IV     | payload ‖ TFC ‖ pad ‖ PL ‖ NH | ICV        |
//	                         \______ ptStart .. ptEnd _____/
//
// Allocation-free, concurrency-safe state. Go's cipher.AEAD, cipher.Block
// and hash.Hash are interfaces, so every slice passed to their methods
// escapes: a nonce or AAD in a stack array would be moved to the heap on
// every call. Packet bytes live in the (heap) Buf already; the few bytes
// that are not part of the packet (nonce, ESN AAD, the ESN high half for
// the HMAC, the HMAC output) live in a per-SA sync.Pool of *scratch, which
// also holds the stateful objects: an HMAC (hash.Hash is not safe for
// concurrent use; a pooled HMAC is a Clone of a template that was Reset
// once, so it restores the precomputed ipad/opad states by UnmarshalBinary
// instead of rehashing the key, without allocating) and the AES-CBC modes
// (cipher.BlockMode keeps the IV; *aes.CBCEncrypter's SetIV lets one object
// serve every packet). A sync.Pool Get/Put pair costs about 10 ns and never
// allocates in steady state; under the race detector it drops Puts, which
// is why the allocation tests skip under -race.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

// suiteKind is how a suite protects a packet.
type suiteKind uint8

const (
	kindAEAD suiteKind = iota + 1 // AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634)
	kindGMAC                      // AES-GMAC (RFC 4543): GCM with empty plaintext
	kindCBC                       // AES-CBC (RFC 3602) + HMAC (RFC 4868, RFC 2404)
	kindNULL                      // NULL (RFC 2410) + HMAC-SHA-256-128
)

const (
	saltLen  = 4  // RFC 4106 §8.1, RFC 4543 §3.2, RFC 7634 §2
	nonceLen = 12 // salt ‖ 8-byte IV (RFC 4106 §4)
)

// cbcMode is the AES-CBC BlockMode of crypto/aes, whose IV can be reset so
// that one object serves many packets.
type cbcMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// scratch is the per-call state of one Seal or Open (see the file comment).
type scratch struct {
	nonce [nonceLen]byte
	aad   [12]byte // SPI ‖ seq_hi ‖ seq_lo (ESN AAD, RFC 4106 §5)
	hi    [4]byte  // seq_hi appended to the HMAC input (RFC 4303 §2.2.1)
	sum   [sha256.Size]byte
	mac   hash.Hash // HMAC; nil for combined-mode suites
	cbc   cbcMode   // encrypter (outbound) or decrypter (inbound); nil unless CBC
}

// cryptoState is one direction of one SA. It is immutable after
// newCryptoState except salt, which Destroy zeroes.
type cryptoState struct {
	kind   suiteKind
	ivLen  int
	icvLen int
	aead   cipher.AEAD // GCM, GMAC, ChaCha20-Poly1305
	salt   atomic.Uint32
	// ivBlock is AES under K_iv, the CBC IV generator (outbound CBC only).
	ivBlock cipher.Block
	pool    sync.Pool // *scratch
}

// newCryptoState builds the cipher objects for alg. Key lengths are checked
// by Params.validate; here any length the primitive accepts goes (the HMAC
// known-answer tests use the RFC 4231 key lengths). outbound selects the
// CBC direction and K_iv.
func newCryptoState(alg Algorithm, encKey, authKey []byte, outbound bool) (*cryptoState, error) {
	if !alg.valid() {
		return nil, fmt.Errorf("%w: algorithm %v", ErrInvalidParams, alg)
	}
	info := algs[alg]
	st := &cryptoState{ivLen: info.ivLen, icvLen: info.icvLen}
	switch alg {
	case AES128GCM16, AES192GCM16, AES256GCM16, AES128GMAC, AES256GMAC:
		if len(encKey) <= saltLen {
			return nil, fmt.Errorf("%w: %v key too short", ErrInvalidParams, alg)
		}
		k := encKey[:len(encKey)-saltLen]
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %v: %v", ErrInvalidParams, alg, err)
		}
		// Standard nonce (12) and tag (16) sizes: RFC 4106 §4, §6; RFC 4543 §3.4.
		if st.aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
		st.salt.Store(binary.BigEndian.Uint32(encKey[len(k):]))
		st.kind = kindAEAD
		if !info.encrypts {
			st.kind = kindGMAC
		}
	case ChaCha20Poly1305:
		if len(encKey) != chacha20poly1305.KeySize+saltLen {
			return nil, fmt.Errorf("%w: %v key must be %d bytes", ErrInvalidParams, alg, chacha20poly1305.KeySize+saltLen)
		}
		var err error
		if st.aead, err = chacha20poly1305.New(encKey[:chacha20poly1305.KeySize]); err != nil {
			return nil, err
		}
		st.salt.Store(binary.BigEndian.Uint32(encKey[chacha20poly1305.KeySize:]))
		st.kind = kindAEAD
	case AES128CBCSHA256, AES256CBCSHA256, AES128CBCSHA1, AES256CBCSHA1, NULLSHA256:
		newHash := sha256.New
		if alg == AES128CBCSHA1 || alg == AES256CBCSHA1 {
			newHash = sha1.New
		}
		tmpl, err := newHMACTemplate(newHash, authKey)
		if err != nil {
			return nil, err
		}
		var block cipher.Block
		st.kind = kindNULL
		if alg != NULLSHA256 {
			st.kind = kindCBC
			if block, err = aes.NewCipher(encKey); err != nil {
				return nil, fmt.Errorf("%w: %v: %v", ErrInvalidParams, alg, err)
			}
			if outbound {
				if st.ivBlock, err = newIVBlock(len(encKey)); err != nil {
					return nil, err
				}
			}
			// Fail here, not per packet, if crypto/aes ever stops
			// offering a resettable IV.
			var zero [aes.BlockSize]byte
			if _, ok := cipher.NewCBCEncrypter(block, zero[:]).(cbcMode); !ok {
				return nil, fmt.Errorf("esp: crypto/aes CBC mode has no SetIV")
			}
		}
		st.pool.New = func() any {
			c, err := tmpl.Clone()
			if err != nil {
				panic("esp: HMAC Clone: " + err.Error()) // checked in newHMACTemplate
			}
			sc := &scratch{mac: c}
			if block != nil {
				var zero [aes.BlockSize]byte
				if outbound {
					sc.cbc = cipher.NewCBCEncrypter(block, zero[:]).(cbcMode)
				} else {
					sc.cbc = cipher.NewCBCDecrypter(block, zero[:]).(cbcMode)
				}
			}
			return sc
		}
		return st, nil
	default:
		return nil, fmt.Errorf("%w: algorithm %v", ErrInvalidParams, alg)
	}
	st.pool.New = func() any { return new(scratch) }
	return st, nil
}

// newHMACTemplate returns an HMAC for key that has been Reset once, so that
// it holds the marshaled ipad/opad states (FIPS 198-1 §6 precomputation)
// and its Clones restore them without allocating.
func newHMACTemplate(newHash func() hash.Hash, key []byte) (hash.Cloner, error) {
	h := hmac.New(newHash, key)
	h.Reset()
	c, ok := h.(hash.Cloner)
	if !ok {
		return nil, fmt.Errorf("esp: HMAC does not implement hash.Cloner")
	}
	if _, err := c.Clone(); err != nil {
		return nil, fmt.Errorf("esp: HMAC Clone: %w", err)
	}
	return c, nil
}

// newIVBlock returns AES under a fresh random key K_iv of n bytes, the
// AES-CBC IV generator (see cryptoState.makeIV).
func newIVBlock(n int) (cipher.Block, error) {
	k := make([]byte, n)
	defer clear(k)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("esp: K_iv: %w", err)
	}
	return aes.NewCipher(k)
}

// makeIV writes the IV for sequence number seq into iv.
//
// Counter-mode suites (GCM, GMAC, ChaCha20-Poly1305): IV = seq as 64-bit
// big-endian. RFC 4106 §3.1, RFC 4543 §3.1 and RFC 7634 §2 require only
// that an IV never repeats for a key; the sequence number never repeats
// within an SA because Seal refuses to wrap it (RFC 4303 §3.3.3). (RFC 8750
// §4 standardizes the same value for the implicit-IV variants.)
//
// AES-CBC: the IV must be unpredictable (RFC 3602 §3), not a counter. IV =
// AES_{K_iv}(seq ‖ 0^64), where K_iv is a key of the cipher's length drawn
// from crypto/rand when the outbound SA is created and never used for
// anything else: encrypting a nonce under a secret key is NIST SP 800-38A
// App. C's first method, distinct seqs give distinct IVs (AES is a
// permutation), and an attacker who does not know K_iv cannot predict
// them. Because K_iv is random per SA instance, a manually keyed SA that
// restarts its counter still gets fresh IVs. One AES block per packet, no
// allocation, no system call.
func (st *cryptoState) makeIV(iv []byte, seq uint64) {
	switch st.kind {
	case kindAEAD, kindGMAC:
		binary.BigEndian.PutUint64(iv, seq)
	case kindCBC:
		binary.BigEndian.PutUint64(iv, seq)
		clear(iv[8:aes.BlockSize])
		st.ivBlock.Encrypt(iv, iv)
	}
}

// nonce fills sc.nonce with salt ‖ IV (RFC 4106 §4, RFC 4543 §3.2, RFC 7634 §2).
func (st *cryptoState) nonce(sc *scratch, iv []byte) []byte {
	return st.nonceAt(sc.nonce[:], iv)
}

// nonceAt writes salt ‖ IV into dst (nonceLen bytes) and returns it.
func (st *cryptoState) nonceAt(dst, iv []byte) []byte {
	binary.BigEndian.PutUint32(dst[:saltLen], st.salt.Load())
	copy(dst[saltLen:], iv)
	return dst[:nonceLen]
}

// aeadInputs returns the AEAD nonce and AAD for the ESP packet a[s:e]
// with IV iv. Without ESN, where the tailroom has room, the nonce is built
// behind the ICV, outside what Seal and Open read and write, and the AAD is
// the ESP header in place: no pooled scratch (sc is nil). Otherwise both
// live in a pooled scratch. aeadDone releases what it used.
func (st *cryptoState) aeadInputs(a []byte, s, e int, iv []byte, seq uint64, esn bool) (nonce, aad []byte, sc *scratch) {
	if !esn && len(a)-e >= nonceLen {
		return st.nonceAt(a[e:e+nonceLen], iv), a[s : s+8], nil
	}
	sc = st.pool.Get().(*scratch)
	return st.nonce(sc, iv), aeadAAD(sc, a, s, seq, esn), sc
}

// aeadDone clears the salt left in the tailroom, or returns sc to the pool.
func (st *cryptoState) aeadDone(sc *scratch, nonce []byte) {
	if sc == nil {
		clear(nonce)
		return
	}
	st.pool.Put(sc)
}

// aeadAAD returns the AEAD additional data: SPI ‖ seq_lo, which is the ESP
// header in place, or with ESN SPI ‖ seq_hi ‖ seq_lo in sc (RFC 4106 §5,
// RFC 7634 §2.1).
func aeadAAD(sc *scratch, a []byte, s int, seq uint64, esn bool) []byte {
	if !esn {
		return a[s : s+8]
	}
	copy(sc.aad[:4], a[s:s+4])
	binary.BigEndian.PutUint32(sc.aad[4:], uint32(seq>>32))
	binary.BigEndian.PutUint32(sc.aad[8:], uint32(seq))
	return sc.aad[:]
}

// macOf computes the HMAC over a[s:ptEnd] (SPI ‖ seq_lo ‖ IV ‖ ciphertext),
// followed by seq_hi under ESN: RFC 4303 §2.2.1 and §3.3.2.1 step 4 append
// the high half, which is never sent, after the Next Header field. HMAC
// needs no implicit ICV padding (RFC 4868 §2.2, RFC 2404 §2).
func (sc *scratch) macOf(a []byte, s, ptEnd int, seq uint64, esn bool) []byte {
	sc.mac.Reset()
	sc.mac.Write(a[s:ptEnd])
	if esn {
		binary.BigEndian.PutUint32(sc.hi[:], uint32(seq>>32))
		sc.mac.Write(sc.hi[:])
	}
	return sc.mac.Sum(sc.sum[:0])
}

// gmacESN runs f with a[s-4:ptEnd] rewritten to SPI ‖ seq_hi ‖ seq_lo ‖ IV
// ‖ payload ‖ ... ‖ NH, the contiguous AES-GMAC AAD under ESN (RFC 4543
// §3.3 and Fig. 4: the IV is authenticated; draft-mcgrew-gcm-test-01's
// GMAC case confirms it), and restores the four bytes before the ESP header
// and the SPI afterwards. The four bytes before s belong to b (headroom or
// the IP header in front of ESP); f returns false if s < 4.
func gmacESN(a []byte, s int, seq uint64, f func(aad []byte)) bool {
	if s < 4 {
		return false
	}
	saved := binary.BigEndian.Uint32(a[s-4:])
	spi := binary.BigEndian.Uint32(a[s:])
	binary.BigEndian.PutUint32(a[s-4:], spi)
	binary.BigEndian.PutUint32(a[s:], uint32(seq>>32))
	f(a[s-4:])
	binary.BigEndian.PutUint32(a[s:], spi)
	binary.BigEndian.PutUint32(a[s-4:], saved)
	return true
}

// sealESP protects the ESP packet a[s:e] in place (RFC 4303 §3.3): it
// writes SPI and seq_lo, the IV (explicitIV if not nil, for known-answer
// tests and hand-built test packets; else makeIV), encrypts a[ptStart:ptEnd]
// (payload through Next Header, built by the caller) and writes the ICV to
// a[e-icvLen:e]. Separate algorithms encrypt, then MAC (§3.3.2.1).
// It returns DropTooBig only for AES-GMAC with ESN when s < 4.
func (st *cryptoState) sealESP(a []byte, s, e int, spi uint32, seq uint64, esn bool, explicitIV []byte) Verdict {
	binary.BigEndian.PutUint32(a[s:], spi)
	binary.BigEndian.PutUint32(a[s+4:], uint32(seq))
	ptStart, ptEnd := s+8+st.ivLen, e-st.icvLen
	iv := a[s+8 : ptStart]
	if explicitIV != nil {
		copy(iv, explicitIV)
	} else {
		st.makeIV(iv, seq)
	}
	if st.kind == kindAEAD {
		// In place: cap(pt) reaches the ICV slot (RFC 4106 §3, §6).
		nonce, aad, sc := st.aeadInputs(a, s, e, iv, seq, esn)
		pt := a[ptStart:ptEnd]
		st.aead.Seal(pt[:0], nonce, pt, aad)
		st.aeadDone(sc, nonce)
		return OK
	}
	sc := st.pool.Get().(*scratch)
	v := OK
	switch st.kind {
	case kindGMAC:
		// Empty plaintext; everything from the SPI through the Next
		// Header is AAD (RFC 4543 §3.3); the tag is the ICV.
		nonce := st.nonce(sc, iv)
		if !esn {
			st.aead.Seal(a[ptEnd:ptEnd], nonce, nil, a[s:ptEnd])
		} else if !gmacESN(a, s, seq, func(aad []byte) {
			st.aead.Seal(a[ptEnd:ptEnd], nonce, nil, aad[:ptEnd-s+4])
		}) {
			v = DropTooBig
		}
	case kindCBC:
		sc.cbc.SetIV(iv)
		pt := a[ptStart:ptEnd]
		sc.cbc.CryptBlocks(pt, pt)
		copy(a[ptEnd:e], sc.macOf(a, s, ptEnd, seq, esn))
	case kindNULL:
		copy(a[ptEnd:e], sc.macOf(a, s, ptEnd, seq, esn))
	}
	st.pool.Put(sc)
	return v
}

// openESP checks and decrypts the ESP packet a[s:e] in place using the
// full sequence number seq chosen by the replay check (RFC 4303 §3.4.4:
// for ESN the inferred high half enters the AAD or ICV). Separate
// algorithms verify the ICV in constant time before decrypting
// (§3.4.4.1). It returns OK or DropICV (DropTooBig for AES-GMAC with ESN
// when s < 4). On DropICV an AEAD has already cleared its output (Go's
// AEADs zero dst on failure) and this clears the region again.
func (st *cryptoState) openESP(a []byte, s, e int, seq uint64, esn bool) Verdict {
	ptStart, ptEnd := s+8+st.ivLen, e-st.icvLen
	iv := a[s+8 : ptStart]
	if st.kind == kindAEAD {
		nonce, aad, sc := st.aeadInputs(a, s, e, iv, seq, esn)
		ct := a[ptStart:e]
		_, err := st.aead.Open(ct[:0], nonce, ct, aad)
		st.aeadDone(sc, nonce)
		if err != nil {
			clear(a[ptStart:ptEnd])
			return DropICV
		}
		return OK
	}
	sc := st.pool.Get().(*scratch)
	v := OK
	switch st.kind {
	case kindGMAC:
		nonce := st.nonce(sc, iv)
		var err error
		if !esn {
			_, err = st.aead.Open(a[ptEnd:ptEnd], nonce, a[ptEnd:e], a[s:ptEnd])
		} else if !gmacESN(a, s, seq, func(aad []byte) {
			_, err = st.aead.Open(a[ptEnd:ptEnd], nonce, a[ptEnd:e], aad[:ptEnd-s+4])
		}) {
			v = DropTooBig
		}
		if err != nil {
			v = DropICV
		}
	case kindCBC:
		if !hmac.Equal(sc.macOf(a, s, ptEnd, seq, esn)[:st.icvLen], a[ptEnd:e]) {
			v = DropICV
			break
		}
		sc.cbc.SetIV(iv)
		ct := a[ptStart:ptEnd]
		sc.cbc.CryptBlocks(ct, ct)
	case kindNULL:
		if !hmac.Equal(sc.macOf(a, s, ptEnd, seq, esn)[:st.icvLen], a[ptEnd:e]) {
			v = DropICV
		}
	}
	st.pool.Put(sc)
	return v
}
