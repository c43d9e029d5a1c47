package bench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
)

// rawOp is the bare cryptography of one ESP packet, sealed and then opened,
// with the primitives esp is built on called directly: no SA, no sequence
// number bookkeeping, no anti-replay, no headers. It is the ceiling the
// pipeline is compared with.
//
//   - AES-GCM and ChaCha20-Poly1305: cipher.AEAD Seal then Open in place of
//     the ESP payload (inner packet + padding + 2-byte trailer), 8-byte AAD
//     (SPI, sequence number; RFC 4106 §5, RFC 7634 §2.1).
//   - AES-GMAC: GCM with the ESP header, IV and payload as AAD and no
//     plaintext (RFC 4543 §3), Seal then Open.
//   - AES-CBC + HMAC: CBC encrypt + HMAC over header, IV and ciphertext;
//     then HMAC verify + CBC decrypt (RFC 3602, RFC 4868, RFC 2404).
//   - NULL + HMAC-SHA-256: the HMAC alone, both ends (RFC 2410).
type rawOp struct {
	alg   esp.Algorithm
	buf   []byte // header (8) | IV | payload | ICV
	ivLen int
	pt    int // payload length (padded)
	seq   uint64

	aead  cipher.AEAD
	nonce [12]byte

	enc, dec cipher.BlockMode
	mac      hash.Hash
	sum      []byte
	icv      int
}

type ivSetter interface{ SetIV([]byte) }

// espPayloadLen is the padded ESP payload for an n-byte inner packet
// (RFC 4303 §2.4: payload + padding + Pad Length + Next Header), as esp pads
// it: esp's overhead less the header, IV and ICV.
func espPayloadLen(alg esp.Algorithm, n int) int {
	return n + alg.Overhead(n) - header.ESPHeaderLen - alg.IVLen() - alg.ICVLen()
}

func newRawOp(alg esp.Algorithm, size int) (*rawOp, error) {
	r := &rawOp{alg: alg, ivLen: alg.IVLen(), icv: alg.ICVLen(), pt: espPayloadLen(alg, size)}
	r.buf = make([]byte, 8+r.ivLen+r.pt+r.icv+64)
	for i := range r.buf {
		r.buf[i] = byte(i)
	}
	key := make([]byte, max(alg.EncKeyLen(), 1))
	for i := range key {
		key[i] = byte(0x40 + i)
	}
	authKey := make([]byte, alg.AuthKeyLen())
	for i := range authKey {
		authKey[i] = byte(0x80 + i)
	}
	var err error
	switch alg {
	case esp.AES128GCM16, esp.AES192GCM16, esp.AES256GCM16, esp.AES128GMAC, esp.AES256GMAC:
		var b cipher.Block
		if b, err = aes.NewCipher(key[:len(key)-4]); err == nil {
			r.aead, err = cipher.NewGCM(b)
		}
	case esp.ChaCha20Poly1305:
		r.aead, err = chacha20poly1305.New(key[:len(key)-4])
	case esp.AES128CBCSHA256, esp.AES256CBCSHA256, esp.AES128CBCSHA1, esp.AES256CBCSHA1:
		var b cipher.Block
		if b, err = aes.NewCipher(key); err == nil {
			iv := make([]byte, 16)
			r.enc, r.dec = cipher.NewCBCEncrypter(b, iv), cipher.NewCBCDecrypter(b, iv)
			_, ok1 := r.enc.(ivSetter)
			_, ok2 := r.dec.(ivSetter)
			if !ok1 || !ok2 {
				err = fmt.Errorf("CBC mode without SetIV")
			}
		}
		if alg == esp.AES128CBCSHA1 || alg == esp.AES256CBCSHA1 {
			r.mac = hmac.New(sha1.New, authKey)
		} else {
			r.mac = hmac.New(sha256.New, authKey)
		}
	case esp.NULLSHA256:
		r.mac = hmac.New(sha256.New, authKey)
	default:
		err = fmt.Errorf("no raw ceiling for %v", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: raw %v: %w", alg, err)
	}
	if r.mac != nil {
		r.sum = make([]byte, 0, r.mac.Size())
	}
	if !r.once() {
		return nil, fmt.Errorf("bench: raw %v: seal+open round trip failed", alg)
	}
	return r, nil
}

// once seals and opens one packet; false means the open failed (a bug).
func (r *rawOp) once() bool {
	r.seq++
	hdr := r.buf[:8]
	binary.BigEndian.PutUint32(hdr[4:], uint32(r.seq))
	iv := r.buf[8 : 8+r.ivLen]
	if r.ivLen >= 8 {
		binary.BigEndian.PutUint64(iv[r.ivLen-8:], r.seq)
	}
	payload := r.buf[8+r.ivLen : 8+r.ivLen+r.pt]
	switch {
	case r.aead != nil && r.alg.Encrypts():
		copy(r.nonce[4:], iv)
		ct := r.aead.Seal(payload[:0], r.nonce[:], payload, hdr)
		_, err := r.aead.Open(payload[:0], r.nonce[:], ct, hdr)
		return err == nil
	case r.aead != nil: // GMAC
		copy(r.nonce[4:], iv)
		aad := r.buf[:8+r.ivLen+r.pt]
		tag := r.aead.Seal(r.buf[8+r.ivLen+r.pt:][:0], r.nonce[:], nil, aad)
		_, err := r.aead.Open(nil, r.nonce[:], tag, aad)
		return err == nil
	default:
		if r.enc != nil {
			r.enc.(ivSetter).SetIV(iv)
			r.enc.CryptBlocks(payload, payload)
		}
		authed := r.buf[:8+r.ivLen+r.pt]
		icv := r.buf[8+r.ivLen+r.pt : 8+r.ivLen+r.pt+r.icv]
		r.mac.Reset()
		r.mac.Write(authed)
		copy(icv, r.mac.Sum(r.sum[:0]))
		// Receiver: verify, then decrypt.
		r.mac.Reset()
		r.mac.Write(authed)
		if !hmac.Equal(icv, r.mac.Sum(r.sum[:0])[:r.icv]) {
			return false
		}
		if r.dec != nil {
			r.dec.(ivSetter).SetIV(iv)
			r.dec.CryptBlocks(payload, payload)
		}
		return true
	}
}

// rawCeiling runs seal+open of size-byte packets with alg on procs
// goroutines for about d and returns packets per second for all of them
// together.
func rawCeiling(alg esp.Algorithm, size, procs int, d time.Duration) (float64, error) {
	ops := make([]*rawOp, procs)
	for i := range ops {
		var err error
		if ops[i], err = newRawOp(alg, size); err != nil {
			return 0, err
		}
	}
	var (
		stop  atomic.Bool
		total atomic.Uint64
		fail  atomic.Bool
		wg    sync.WaitGroup
	)
	start := time.Now()
	for _, op := range ops {
		wg.Go(func() {
			var n uint64
			for !stop.Load() {
				for range 16 {
					if !op.once() {
						fail.Store(true)
					}
				}
				n += 16
			}
			total.Add(n)
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	el := time.Since(start)
	if fail.Load() {
		return 0, fmt.Errorf("bench: raw %v: open failed", alg)
	}
	return float64(total.Load()) / el.Seconds(), nil
}
