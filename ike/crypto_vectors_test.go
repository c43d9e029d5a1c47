package ike

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPRFVectors: RFC 4231 §4.2, §4.3 and §4.7 (test cases 1, 2 and 6), the
// HMAC-SHA2 vectors RFC 4868 §2.7.1 takes for PRF_HMAC_SHA2_*.
func TestPRFVectors(t *testing.T) {
	keys := [][]byte{bytes.Repeat([]byte{0x0b}, 20), []byte("Jefe"), bytes.Repeat([]byte{0xaa}, 131)}
	data := []string{"Hi There", "what do ya want for nothing?", "Test Using Larger Than Block-Size Key - Hash Key First"}
	want := map[PRFAlg][]string{
		PRFHMACSHA2_256: {
			"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
			"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
		},
		PRFHMACSHA2_384: {
			"afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
			"af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
			"4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
		},
		PRFHMACSHA2_512: {
			"87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
			"164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
			"80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
		},
	}
	for prf, w := range want {
		for i := range keys {
			got, err := prf.Compute(keys[i], []byte(data[i][:3]), []byte(data[i][3:]))
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != w[i] {
				t.Errorf("%v case %d: %x", prf, i, got)
			}
		}
	}
	if _, err := PRFHMACSHA1.Compute([]byte("k")); err == nil || PRFHMACSHA1.Supported() {
		t.Error("PRF_HMAC_SHA1 is implemented")
	}
}

// TestPRFPlus: prf+ is T1 | T2 | ... with T1 = prf(K, S | 1) and
// Tn = prf(K, Tn-1 | S | n), any prefix of it is consistent, and it stops
// at 255 blocks (RFC 7296 §2.13).
func TestPRFPlus(t *testing.T) {
	for _, prf := range []PRFAlg{PRFHMACSHA2_256, PRFHMACSHA2_384, PRFHMACSHA2_512} {
		k, s := []byte("key"), []byte("seed material")
		full, err := prf.Plus(k, 255*prf.Size(), s[:4], s[4:])
		if err != nil {
			t.Fatal(err)
		}
		var prev []byte
		for n := 1; n <= 255; n++ {
			tn, _ := prf.Compute(k, prev, s, []byte{byte(n)})
			if !bytes.Equal(full[(n-1)*prf.Size():n*prf.Size()], tn) {
				t.Fatalf("%v: T%d differs", prf, n)
			}
			prev = tn
		}
		for _, n := range []int{0, 1, prf.Size() - 1, prf.Size() + 1, 1000} {
			p, err := prf.Plus(k, n, s)
			if err != nil || !bytes.Equal(p, full[:n]) {
				t.Fatalf("%v: Plus(%d) not a prefix: %v", prf, n, err)
			}
		}
		if _, err := prf.Plus(k, 255*prf.Size()+1, s); !errors.Is(err, errPRFPlusTooLong) {
			t.Fatalf("%v: 256 blocks: %v", prf, err)
		}
		if _, err := prf.Plus(k, -1, s); err == nil {
			t.Fatalf("%v: negative length accepted", prf)
		}
	}
}

// TestECPVectors: RFC 5903 §8.1 (256-bit) and §8.2 (384-bit): both sides'
// public values as x | y and the shared secret g^ir as x.
func TestECPVectors(t *testing.T) {
	for _, v := range []struct {
		g                             DHGroup
		i, gix, giy, r, grx, gry, gir string
	}{
		{DHECP256,
			"C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
			"DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180",
			"5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
			"C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
			"D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63",
			"56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
			"D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE"},
		{DHECP384,
			"099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655 E35B5380 41E649EE 3FAEF896 783AB194",
			"667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6 DE3AC808 ACB4BDB4 C88732AE E95F41AA",
			"9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E EB9FCFF3 C2C947DA E69B4C63 4573A81C",
			"41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942 E0308312 916B8ED2 960E4BD5 5A7448FC",
			"E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D 0D1AC43A 0336DEF9 6FDA41D0 774A3571",
			"DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF F83FA401 42209DFF 5EAAD96D B9E6386C",
			"11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4 D6031355 69B9E9D0 9CF5D4A2 70F59746"},
	} {
		i, err := newKeyExchangeFromPrivate(v.g, unhex(t, v.i))
		if err != nil {
			t.Fatal(err)
		}
		r, err := newKeyExchangeFromPrivate(v.g, unhex(t, v.r))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := i.PublicValue(), unhex(t, v.gix+v.giy); !bytes.Equal(got, want) {
			t.Errorf("%v g^i: %x", v.g, got)
		}
		if got, want := r.PublicValue(), unhex(t, v.grx+v.gry); !bytes.Equal(got, want) {
			t.Errorf("%v g^r: %x", v.g, got)
		}
		for _, side := range []struct{ k, peer *KeyExchange }{{i, r}, {r, i}} {
			s, err := side.k.SharedSecret(side.peer.PublicValue())
			if err != nil || !bytes.Equal(s, unhex(t, v.gir)) {
				t.Errorf("%v g^ir: %x %v", v.g, s, err)
			}
		}
		// Hostile peer values: the 0x04 form, wrong lengths, off the curve.
		pub := r.PublicValue()
		bad := [][]byte{append([]byte{4}, pub...), pub[1:], nil, make([]byte, len(pub))}
		off := bytes.Clone(pub)
		off[len(off)-1] ^= 1
		bad = append(bad, off)
		for _, b := range bad {
			if _, err := i.SharedSecret(b); err == nil {
				t.Errorf("%v: peer value %x accepted", v.g, b)
			}
		}
	}
}

// TestX25519Vectors: RFC 7748 §6.1, and the all-zero shared secret RFC 8031
// §2.3 requires refusing (a low-order peer value).
func TestX25519Vectors(t *testing.T) {
	a, err := newKeyExchangeFromPrivate(DHCurve25519, unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := newKeyExchangeFromPrivate(DHCurve25519, unhex(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(a.PublicValue()) != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" ||
		hex.EncodeToString(b.PublicValue()) != "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f" {
		t.Fatalf("public values %x %x", a.PublicValue(), b.PublicValue())
	}
	for _, p := range []struct{ k, peer *KeyExchange }{{a, b}, {b, a}} {
		s, err := p.k.SharedSecret(p.peer.PublicValue())
		if err != nil || hex.EncodeToString(s) != "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742" {
			t.Fatalf("shared secret %x %v", s, err)
		}
	}
	// Low-order points (0, 1 and the order-8 point of RFC 7748's
	// discussion) give an all-zero output.
	for _, lo := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	} {
		if _, err := a.SharedSecret(unhex(t, lo)); !errors.Is(err, errDHPeer) {
			t.Errorf("low-order point %s: %v", lo, err)
		}
	}
	if _, err := a.SharedSecret(make([]byte, 31)); err == nil {
		t.Error("31-byte value accepted")
	}
}

// piTimes2 returns floor(pi * 2^bits) by Machin's formula,
// pi = 16 arctan(1/5) - 4 arctan(1/239), in integers.
func piTimes2(bits uint) *big.Int {
	const guard = 64
	one := new(big.Int).Lsh(big.NewInt(1), bits+guard)
	arctanInv := func(x int64) *big.Int {
		xb, x2 := big.NewInt(x), big.NewInt(x*x)
		term := new(big.Int).Quo(one, xb)
		sum := new(big.Int).Set(term)
		for n := int64(1); term.Sign() != 0; n++ {
			term.Quo(term, x2)
			d := new(big.Int).Quo(term, big.NewInt(2*n+1))
			if n%2 == 1 {
				sum.Sub(sum, d)
			} else {
				sum.Add(sum, d)
			}
		}
		return sum
	}
	pi := new(big.Int).Mul(big.NewInt(16), arctanInv(5))
	pi.Sub(pi, new(big.Int).Mul(big.NewInt(4), arctanInv(239)))
	return pi.Rsh(pi, guard)
}

// TestMODPPrimes recomputes the RFC 3526 primes from their definition
// (§3: p = 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 }; §4:
// p = 2^3072 - 2^3008 - 1 + 2^64 * { [2^2942 pi] + 1690314 }).
func TestMODPPrimes(t *testing.T) {
	for _, v := range []struct {
		m    *modpGroup
		n    uint
		c    int64
		name string
	}{{modp2048, 2048, 124476, "modp2048"}, {modp3072, 3072, 1690314, "modp3072"}} {
		p := new(big.Int).Lsh(big.NewInt(1), v.n)
		p.Sub(p, new(big.Int).Lsh(big.NewInt(1), v.n-64))
		p.Sub(p, big.NewInt(1))
		q := piTimes2(v.n - 130)
		q.Add(q, big.NewInt(v.c))
		p.Add(p, q.Lsh(q, 64))
		if p.Cmp(v.m.p) != 0 {
			t.Errorf("%s: prime constant differs from RFC 3526's definition", v.name)
		}
		if !v.m.p.ProbablyPrime(4) || v.m.size*8 != int(v.n) {
			t.Errorf("%s: not a %d-bit prime", v.name, v.n)
		}
	}
}

func TestMODPExchange(t *testing.T) {
	for _, g := range []DHGroup{DHMODP2048, DHMODP3072} {
		a, err := NewKeyExchange(g, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewKeyExchange(g, nil)
		if len(a.PublicValue()) != g.PublicLen() {
			t.Fatalf("%v: public value %d bytes", g, len(a.PublicValue()))
		}
		s1, err1 := a.SharedSecret(b.PublicValue())
		s2, err2 := b.SharedSecret(a.PublicValue())
		if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) || len(s1) != g.PublicLen() {
			t.Fatalf("%v: %v %v", g, err1, err2)
		}
		m := g.modp()
		pm1 := m.pMinus1.FillBytes(make([]byte, m.size))
		p := m.p.FillBytes(make([]byte, m.size))
		one := big.NewInt(1).FillBytes(make([]byte, m.size))
		for _, bad := range [][]byte{make([]byte, m.size), one, pm1, p, bytes.Repeat([]byte{0xff}, m.size), a.PublicValue()[1:]} {
			if _, err := a.SharedSecret(bad); !errors.Is(err, errDHPeer) {
				t.Errorf("%v: bad peer value accepted: %v", g, err)
			}
		}
	}
	for _, g := range []DHGroup{DHMODP1024, DHECP521, DHCurve448, 999} {
		if _, err := NewKeyExchange(g, nil); err == nil || g.Supported() {
			t.Errorf("%v: implemented", g)
		}
	}
}

func TestKeyLengths(t *testing.T) {
	ni, nr := testKey(1, 32), testKey(2, 32)
	for _, tc := range skSuites {
		for _, prf := range []PRFAlg{PRFHMACSHA2_256, PRFHMACSHA2_384, PRFHMACSHA2_512} {
			k, err := DeriveIKEKeys(prf, tc.suite, testKey(3, prf.Size()), ni, nr, 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(k.SKd) != prf.Size() || len(k.SKpi) != prf.Size() || len(k.SKpr) != prf.Size() ||
				len(k.SKei) != tc.suite.EncKeyLen() || len(k.SKer) != tc.suite.EncKeyLen() ||
				len(k.SKai) != tc.suite.IntegKeyLen() || len(k.SKar) != tc.suite.IntegKeyLen() {
				t.Errorf("%s %v: lengths", tc.name, prf)
			}
			if tc.suite.Encr.AEAD() && len(k.SKai) != 0 {
				t.Errorf("%s: AEAD with SK_a", tc.name)
			}
		}
	}
	want := map[string]int{"aes128gcm16": 20, "aes192gcm16": 28, "aes256gcm16": 36, "chacha20poly1305": 36, "aes128-sha256": 16, "aes256-sha512": 32}
	for _, tc := range skSuites {
		if n, ok := want[tc.name]; ok && tc.suite.EncKeyLen() != n {
			t.Errorf("%s: SK_e %d bytes, want %d", tc.name, tc.suite.EncKeyLen(), n)
		}
	}
	if _, err := SKEYSEED(PRFHMACSHA2_256, ni[:15], nr, nil); err == nil {
		t.Error("15-byte nonce accepted")
	}
	if _, err := SKEYSEED(PRFHMACSHA2_512, ni[:31], nr, nil); err == nil {
		t.Error("nonce under half the PRF key size accepted")
	}
	if _, err := RekeySKEYSEED(PRFHMACSHA2_256, ni, nil, ni, nr); err == nil {
		t.Error("IKE rekey without key exchange accepted")
	}
	if _, err := DeriveChildKeys(PRFHMACSHA2_256, ni, nil, ni, nr, 0, 0); err == nil {
		t.Error("empty Child SA keys accepted")
	}
}
