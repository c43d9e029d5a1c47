package ike

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/netip"
	"time"
)

// Stateless cookies (RFC 7296 §2.6). Under load (more half-open IKE SAs
// than Config.CookieThreshold) a responder answers an IKE_SA_INIT request
// that carries no valid cookie with N(COOKIE) alone and keeps nothing.
// The cookie is
//
//	<VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)
//
// with a 4-byte version and HMAC-SHA-256 keyed with the secret as the
// hash. The secret changes every cookieRotate; a cookie made with the
// previous secret is still accepted, so a cookie lives up to two periods.
type cookieJar struct {
	version      uint32
	secret, prev [32]byte
	havePrev     bool
	rotateAt     time.Time
}

const (
	cookieRotate = 2 * time.Minute
	cookieLen    = 4 + sha256.Size // within §3.10.1's 1..64 bytes
)

func (j *cookieJar) init(r io.Reader, now time.Time) error {
	if _, err := io.ReadFull(r, j.secret[:]); err != nil {
		return err
	}
	j.rotateAt = now.Add(cookieRotate)
	return nil
}

// rotate replaces the secret, keeping the old one for cookies in flight.
func (j *cookieJar) rotate(r io.Reader, now time.Time) error {
	var next [32]byte
	j.rotateAt = now.Add(cookieRotate)
	if _, err := io.ReadFull(r, next[:]); err != nil {
		return err
	}
	j.prev, j.havePrev = j.secret, true
	j.secret = next
	j.version++
	return nil
}

func cookieHash(secret *[32]byte, version uint32, ni []byte, ip netip.Addr, spii uint64) []byte {
	m := hmac.New(sha256.New, secret[:])
	m.Write(ni)
	a := ip.Unmap().AsSlice()
	m.Write(a)
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], spii)
	m.Write(s[:])
	out := binary.BigEndian.AppendUint32(make([]byte, 0, cookieLen), version)
	return m.Sum(out)
}

// make returns the cookie for an initiator's Ni, address and SPIi.
func (j *cookieJar) make(ni []byte, ip netip.Addr, spii uint64) []byte {
	return cookieHash(&j.secret, j.version, ni, ip, spii)
}

// valid reports whether c is a cookie we made for these values with the
// current or the previous secret.
func (j *cookieJar) valid(c, ni []byte, ip netip.Addr, spii uint64) bool {
	if len(c) != cookieLen {
		return false
	}
	switch v := binary.BigEndian.Uint32(c); {
	case v == j.version:
		return hmac.Equal(c, cookieHash(&j.secret, j.version, ni, ip, spii))
	case j.havePrev && v == j.version-1:
		return hmac.Equal(c, cookieHash(&j.prev, v, ni, ip, spii))
	}
	return false
}
