package ike

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// DHGroup is an IKEv2 key exchange method: a Transform Type 4 ID of the
// IANA "IKEv2 Parameters" registry ("Key Exchange Method Transform IDs",
// formerly "Diffie-Hellman Group Transform IDs"; RFC 7296 §3.3.2, §3.4).
type DHGroup uint16

// Key exchange method IDs (IANA). The ones without an implementation are
// named so that a proposal carrying them can be reported and refused.
const (
	DHNone       DHGroup = 0  // NONE
	DHMODP768    DHGroup = 1  // 768-bit MODP Group, RFC 7296 App. B; weak, not implemented
	DHMODP1024   DHGroup = 2  // 1024-bit MODP Group, RFC 7296 App. B; weak, not implemented
	DHMODP1536   DHGroup = 5  // 1536-bit MODP Group, RFC 3526; not implemented
	DHMODP2048   DHGroup = 14 // 2048-bit MODP Group, RFC 3526 §3
	DHMODP3072   DHGroup = 15 // 3072-bit MODP Group, RFC 3526 §4
	DHMODP4096   DHGroup = 16 // 4096-bit MODP Group, RFC 3526; not implemented
	DHMODP6144   DHGroup = 17 // 6144-bit MODP Group, RFC 3526; not implemented
	DHMODP8192   DHGroup = 18 // 8192-bit MODP Group, RFC 3526; not implemented
	DHECP256     DHGroup = 19 // 256-bit random ECP group, RFC 5903
	DHECP384     DHGroup = 20 // 384-bit random ECP group, RFC 5903
	DHECP521     DHGroup = 21 // 521-bit random ECP group, RFC 5903; not implemented
	DHCurve25519 DHGroup = 31 // Curve25519, RFC 8031
	DHCurve448   DHGroup = 32 // Curve448, RFC 8031; not implemented
)

func (g DHGroup) String() string {
	switch g {
	case DHNone:
		return "none"
	case DHMODP768:
		return "modp768"
	case DHMODP1024:
		return "modp1024"
	case DHMODP1536:
		return "modp1536"
	case DHMODP2048:
		return "modp2048"
	case DHMODP3072:
		return "modp3072"
	case DHMODP4096:
		return "modp4096"
	case DHECP256:
		return "ecp256"
	case DHECP384:
		return "ecp384"
	case DHECP521:
		return "ecp521"
	case DHCurve25519:
		return "curve25519"
	case DHCurve448:
		return "curve448"
	}
	return fmt.Sprintf("dh(%d)", uint16(g))
}

// Supported reports whether the group is implemented.
func (g DHGroup) Supported() bool { return g.PublicLen() != 0 }

// PublicLen is the length of the group's public value, the Key Exchange
// Data of a KE payload (RFC 7296 §3.4: a MODP value is as long as the
// prime; RFC 5903 §7: x | y for ECP; RFC 8031 §3: 32 bytes for
// Curve25519). It is also the length of the shared secret for MODP
// groups; an ECP shared secret is x alone, half of it. 0 for a group that
// is not implemented.
func (g DHGroup) PublicLen() int {
	switch g {
	case DHMODP2048:
		return 256
	case DHMODP3072:
		return 384
	case DHECP256:
		return 64
	case DHECP384:
		return 96
	case DHCurve25519:
		return 32
	}
	return 0
}

// RFC 3526 primes. Each is p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + c),
// which TestMODPPrimes recomputes from pi; the generator is 2.
const (
	modp2048Hex = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
		"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
		"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
		"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
		"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
		"83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
		"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
		"DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
		"15728E5A8AACAA68FFFFFFFFFFFFFFFF"
	modp3072Hex = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
		"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
		"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
		"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
		"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
		"83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
		"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
		"DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
		"15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64" +
		"ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
		"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B" +
		"F12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
		"BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31" +
		"43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
)

type modpGroup struct {
	p, pMinus1 *big.Int
	g          *big.Int
	size       int // bytes of p
	expBits    int // private exponent length
}

func newMODP(hexP string, expBits int) *modpGroup {
	p, ok := new(big.Int).SetString(hexP, 16)
	if !ok {
		panic("ike: bad MODP prime constant")
	}
	return &modpGroup{
		p:       p,
		pMinus1: new(big.Int).Sub(p, big.NewInt(1)),
		g:       big.NewInt(2),
		size:    (p.BitLen() + 7) / 8,
		expBits: expBits,
	}
}

// The private exponent lengths are the upper ends of RFC 3526 §8's
// "exponent size" column (twice the group's strength estimate), which
// keeps the exponentiation cheaper than a full-length exponent without
// weakening the group.
var (
	modp2048 = newMODP(modp2048Hex, 320)
	modp3072 = newMODP(modp3072Hex, 420)
)

func (g DHGroup) modp() *modpGroup {
	switch g {
	case DHMODP2048:
		return modp2048
	case DHMODP3072:
		return modp3072
	}
	return nil
}

func (g DHGroup) curve() ecdh.Curve {
	switch g {
	case DHECP256:
		return ecdh.P256()
	case DHECP384:
		return ecdh.P384()
	case DHCurve25519:
		return ecdh.X25519()
	}
	return nil
}

var (
	errDHGroup = errors.New("ike: unsupported key exchange method")
	// errDHPeer is returned for a peer public value that is not a valid
	// member of the group (wrong length, not on the curve, out of range).
	// The caller answers INVALID_SYNTAX (RFC 7296 §3.4 leaves the check
	// to the implementation; RFC 5903 §7 and RFC 8031 §2.3 require it).
	errDHPeer = errors.New("ike: invalid key exchange public value")
)

// KeyExchange is one side's ephemeral key exchange: a private value and
// its public value (the KE payload data). Use it once: a new exchange
// (IKE_SA_INIT, or a CREATE_CHILD_SA with KE) needs a new KeyExchange.
type KeyExchange struct {
	group DHGroup
	ec    *ecdh.PrivateKey
	x     *big.Int // MODP private exponent
	pub   []byte
}

// NewKeyExchange makes a fresh private value for group g, reading
// randomness from r (crypto/rand.Reader when r is nil).
func NewKeyExchange(g DHGroup, r io.Reader) (*KeyExchange, error) {
	if r == nil {
		r = rand.Reader
	}
	if c := g.curve(); c != nil {
		k, err := c.GenerateKey(r)
		if err != nil {
			return nil, err
		}
		return newECKeyExchange(g, k), nil
	}
	if m := g.modp(); m != nil {
		buf := make([]byte, (m.expBits+7)/8)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		x := new(big.Int).SetBytes(buf)
		// Keep the exponent at expBits bits with the top bit set, so the
		// exponent is never tiny whatever the random bytes were.
		x.SetBit(x, m.expBits-1, 1)
		for i := m.expBits; i < len(buf)*8; i++ {
			x.SetBit(x, i, 0)
		}
		return newMODPKeyExchange(g, m, x), nil
	}
	return nil, errDHGroup
}

// newKeyExchangeFromPrivate builds a KeyExchange from a fixed private
// value (tests: RFC 5903 §8 and RFC 7748 §6.1 give private keys).
func newKeyExchangeFromPrivate(g DHGroup, priv []byte) (*KeyExchange, error) {
	if c := g.curve(); c != nil {
		k, err := c.NewPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return newECKeyExchange(g, k), nil
	}
	if m := g.modp(); m != nil {
		x := new(big.Int).SetBytes(priv)
		if x.Sign() == 0 || x.Cmp(m.pMinus1) >= 0 {
			return nil, errors.New("ike: MODP private value out of range")
		}
		return newMODPKeyExchange(g, m, x), nil
	}
	return nil, errDHGroup
}

func newECKeyExchange(g DHGroup, k *ecdh.PrivateKey) *KeyExchange {
	pub := k.PublicKey().Bytes()
	if g != DHCurve25519 {
		// crypto/ecdh encodes NIST points uncompressed, 0x04 | x | y;
		// IKEv2 sends x | y without the 0x04 (RFC 5903 §7).
		pub = pub[1:]
	}
	return &KeyExchange{group: g, ec: k, pub: pub}
}

func newMODPKeyExchange(g DHGroup, m *modpGroup, x *big.Int) *KeyExchange {
	y := new(big.Int).Exp(m.g, x, m.p)
	return &KeyExchange{group: g, x: x, pub: y.FillBytes(make([]byte, m.size))}
}

// Group is the key exchange method.
func (k *KeyExchange) Group() DHGroup { return k.group }

// PublicValue is the Key Exchange Data to send in the KE payload. The
// caller must not modify it.
func (k *KeyExchange) PublicValue() []byte { return k.pub }

// SharedSecret computes g^ir from the peer's Key Exchange Data. It checks
// the peer value first: the exact length of the group; for ECP a point on
// the curve (crypto/ecdh checks it, RFC 5903 §7); for Curve25519 a shared
// secret that is not all zero (RFC 8031 §2.3); for MODP 1 < y < p-1, which
// keeps out the values of order 1 and 2 (RFC 7296 §3.4 leaves the check to
// the implementation; NIST SP 800-56A's partial validation). The result is
// the x coordinate for ECP (RFC 5903 §7), the 32-byte X25519 output, or
// g^ir padded with leading zeros to the length of the prime (RFC 7296
// §2.14).
//
// The MODP exponentiation uses math/big, which is not constant-time; the
// private exponent is ephemeral and used for one exchange only.
func (k *KeyExchange) SharedSecret(peer []byte) ([]byte, error) {
	if len(peer) != k.group.PublicLen() {
		return nil, errDHPeer
	}
	if k.ec != nil {
		var pk *ecdh.PublicKey
		var err error
		if k.group == DHCurve25519 {
			pk, err = k.ec.Curve().NewPublicKey(peer)
		} else {
			var buf [1 + 96]byte
			buf[0] = 4
			n := copy(buf[1:], peer)
			pk, err = k.ec.Curve().NewPublicKey(buf[:1+n])
		}
		if err != nil {
			return nil, errDHPeer
		}
		s, err := k.ec.ECDH(pk)
		if err != nil {
			// crypto/ecdh refuses an all-zero X25519 output itself.
			return nil, errDHPeer
		}
		if k.group == DHCurve25519 {
			var zero [32]byte
			if subtle.ConstantTimeCompare(s, zero[:]) == 1 {
				return nil, errDHPeer
			}
		}
		return s, nil
	}
	m := k.group.modp()
	if m == nil || k.x == nil {
		return nil, errDHGroup
	}
	y := new(big.Int).SetBytes(peer)
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(m.pMinus1) >= 0 {
		return nil, errDHPeer
	}
	s := new(big.Int).Exp(y, k.x, m.p)
	return s.FillBytes(make([]byte, m.size)), nil
}
