package ike

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// skSuites are the SK suites the tests run through, with their names.
var skSuites = []struct {
	name  string
	suite SKSuite
}{
	{"aes128gcm16", SKSuite{Encr: EncrAESGCM16, KeyBits: 128}},
	{"aes192gcm16", SKSuite{Encr: EncrAESGCM16, KeyBits: 192}},
	{"aes256gcm16", SKSuite{Encr: EncrAESGCM16, KeyBits: 256}},
	{"aes128gcm12", SKSuite{Encr: EncrAESGCM12, KeyBits: 128}},
	{"aes128gcm8", SKSuite{Encr: EncrAESGCM8, KeyBits: 128}},
	{"aes256gcm8", SKSuite{Encr: EncrAESGCM8, KeyBits: 256}},
	{"chacha20poly1305", SKSuite{Encr: EncrChaCha20Poly1305}},
	{"aes128-sha256", SKSuite{Encr: EncrAESCBC, KeyBits: 128, Integ: IntegHMACSHA2_256_128}},
	{"aes256-sha256", SKSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA2_256_128}},
	{"aes256-sha384", SKSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA2_384_192}},
	{"aes256-sha512", SKSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA2_512_256}},
}

// testKey returns n deterministic bytes that differ per seed.
func testKey(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// testSKPair makes the sender's and receiver's cipher of one direction.
func testSKPair(t testing.TB, s SKSuite, seed byte) (*SKCipher, *SKCipher, []byte, []byte) {
	t.Helper()
	ek, ak := testKey(seed, s.EncKeyLen()), testKey(seed+100, s.IntegKeyLen())
	tx, err := NewSKCipher(s, ek, ak)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := NewSKCipher(s, ek, ak)
	if err != nil {
		t.Fatal(err)
	}
	return tx, rx, ek, ak
}

// testPrefix builds an IKE header and an SK generic header (lengths left
// zero for Seal to fill): an IKE_AUTH request from the initiator.
func testPrefix(spii, spir uint64, flags, first byte, msgID uint32) []byte {
	b := make([]byte, 32)
	binary.BigEndian.PutUint64(b[0:], spii)
	binary.BigEndian.PutUint64(b[8:], spir)
	b[16] = 46   // Next Payload: SK
	b[17] = 0x20 // version 2.0
	b[18] = 35   // IKE_AUTH
	b[19] = flags
	binary.BigEndian.PutUint32(b[20:], msgID)
	b[28] = first // SK: Next Payload = first inner payload
	return b
}

// testInner builds inner payloads: IDi (FQDN), AUTH (shared key MIC) and
// N(INITIAL_CONTACT), in this order.
func testInner() []byte {
	var b []byte
	id := []byte("initiator.example.org")
	b = append(b, 39, 0) // IDi, next AUTH
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(id)))
	b = append(b, 2, 0, 0, 0) // ID_FQDN
	b = append(b, id...)
	auth := testKey(0x55, 32)
	b = append(b, 41, 0) // AUTH, next Notify
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(auth)))
	b = append(b, 2, 0, 0, 0) // shared key message integrity code
	b = append(b, auth...)
	b = append(b, 0, 0, 0, 8) // Notify, last
	b = append(b, 0, 0)       // protocol ID, SPI size
	b = binary.BigEndian.AppendUint16(b, 16384)
	return b
}

func TestSKRoundTrip(t *testing.T) {
	for _, tc := range skSuites {
		t.Run(tc.name, func(t *testing.T) {
			tx, rx, _, _ := testSKPair(t, tc.suite, 1)
			for _, n := range []int{0, 1, 15, 16, 17, 31, 100, 1000, 4000} {
				inner := testKey(byte(n), n)
				prefix := testPrefix(0x1122334455667788, 0x99aabbccddeeff00, 0x08, 35, 1)
				msg, err := tx.Seal(nil, prefix, inner)
				if err != nil {
					t.Fatal(err)
				}
				if len(msg) != len(prefix)+tx.BodyLen(n) {
					t.Fatalf("len %d, want %d", len(msg), len(prefix)+tx.BodyLen(n))
				}
				if got := binary.BigEndian.Uint32(msg[24:]); int(got) != len(msg) {
					t.Fatalf("IKE length %d, message %d", got, len(msg))
				}
				if got := binary.BigEndian.Uint16(msg[30:]); int(got) != len(msg)-28 {
					t.Fatalf("SK length %d, want %d", got, len(msg)-28)
				}
				if tc.suite.Encr == EncrAESCBC && (len(msg)-32-16-tx.ICVLen())%16 != 0 {
					t.Fatalf("CBC ciphertext not block aligned")
				}
				got, err := rx.Open([]byte("x"), msg, 28)
				if err != nil {
					t.Fatalf("Open(%d bytes): %v", n, err)
				}
				if !bytes.Equal(got[1:], inner) || got[0] != 'x' {
					t.Fatalf("Open: got %x, want %x", got, inner)
				}
			}
		})
	}
}

// TestSKFragmentRoundTrip: SKF (RFC 7383) has an 8-byte header, all of it
// in the associated data.
func TestSKFragmentRoundTrip(t *testing.T) {
	for _, tc := range skSuites {
		t.Run(tc.name, func(t *testing.T) {
			tx, rx, _, _ := testSKPair(t, tc.suite, 2)
			prefix := testPrefix(1, 2, 0x08, 35, 1)
			prefix[16] = 53
			prefix = append(prefix, 0, 1, 0, 3) // fragment 1 of 3
			inner := testInner()
			msg, err := tx.SealFragment(nil, prefix, inner)
			if err != nil {
				t.Fatal(err)
			}
			got, err := rx.OpenFragment(nil, msg, 28)
			if err != nil || !bytes.Equal(got, inner) {
				t.Fatalf("OpenFragment: %v %x", err, got)
			}
			// The fragment number is authenticated.
			msg[33] = 2
			if _, err := rx.OpenFragment(nil, msg, 28); !errors.Is(err, ErrSKAuth) {
				t.Fatalf("changed fragment number: %v", err)
			}
		})
	}
}

// TestSKTamper flips every bit of a sealed message in turn: Open must
// refuse each, with ErrSKAuth or (for the length fields) ErrSKMalformed,
// and append nothing.
func TestSKTamper(t *testing.T) {
	for _, tc := range skSuites {
		t.Run(tc.name, func(t *testing.T) {
			tx, rx, _, _ := testSKPair(t, tc.suite, 3)
			msg, err := tx.Seal(nil, testPrefix(5, 6, 0x08, 35, 7), testInner())
			if err != nil {
				t.Fatal(err)
			}
			for i := range msg {
				for bit := 0; bit < 8; bit++ {
					m := bytes.Clone(msg)
					m[i] ^= 1 << bit
					out, err := rx.Open(nil, m, 28)
					if err == nil {
						t.Fatalf("byte %d bit %d flipped: Open succeeded", i, bit)
					}
					if len(out) != 0 {
						t.Fatalf("byte %d: output on failure", i)
					}
					if !errors.Is(err, ErrSKAuth) && !errors.Is(err, ErrSKMalformed) {
						t.Fatalf("byte %d: error %v", i, err)
					}
				}
			}
			// Truncated and extended messages.
			for n := 0; n < len(msg); n++ {
				if _, err := rx.Open(nil, msg[:n], 28); err == nil {
					t.Fatalf("truncated to %d: Open succeeded", n)
				}
			}
			if _, err := rx.Open(nil, append(bytes.Clone(msg), 0), 28); err == nil {
				t.Fatal("extended: Open succeeded")
			}
			// Wrong key: another direction's cipher.
			_, other, _, _ := testSKPair(t, tc.suite, 4)
			if _, err := other.Open(nil, msg, 28); !errors.Is(err, ErrSKAuth) {
				t.Fatalf("wrong key: %v", err)
			}
			// Wrong offsets.
			for _, off := range []int{-1, 0, 27, 29, len(msg) - 1, len(msg), len(msg) + 5} {
				if _, err := rx.Open(nil, msg, off); err == nil {
					t.Fatalf("skOff %d: Open succeeded", off)
				}
			}
		})
	}
}

// TestSKIVUnique: the AEAD IV is a per-key counter, never repeated, and
// the CBC IV is random.
func TestSKIVUnique(t *testing.T) {
	for _, tc := range skSuites {
		t.Run(tc.name, func(t *testing.T) {
			tx, _, _, _ := testSKPair(t, tc.suite, 5)
			seen := map[string]bool{}
			for i := 0; i < 1000; i++ {
				// Same message ID every time: the IV must still differ.
				msg, err := tx.Seal(nil, testPrefix(1, 2, 0x08, 35, 3), nil)
				if err != nil {
					t.Fatal(err)
				}
				iv := string(msg[32 : 32+tx.IVLen()])
				if seen[iv] {
					t.Fatalf("IV %x repeated", iv)
				}
				seen[iv] = true
			}
			if tc.suite.Encr.AEAD() {
				tx.ivCounter.Store(^uint64(0) - 1)
				if _, err := tx.Seal(nil, testPrefix(1, 2, 0x08, 35, 3), nil); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Seal(nil, testPrefix(1, 2, 0x08, 35, 3), nil); err == nil {
					t.Fatal("Seal after 2^64-1 IVs succeeded")
				}
			}
		})
	}
}

// TestSKPadding: a CBC message whose pad length claims more than the
// plaintext holds fails (after a good ICV) with ErrSKAuth; padding of any
// content is accepted.
func TestSKPadding(t *testing.T) {
	s := SKSuite{Encr: EncrAESCBC, KeyBits: 128, Integ: IntegHMACSHA2_256_128}
	_, rx, ek, ak := testSKPair(t, s, 6)
	build := func(pt []byte) []byte {
		msg := testPrefix(1, 2, 0x08, 35, 1)
		iv := testKey(9, 16)
		msg = append(msg, iv...)
		ct := bytes.Clone(pt)
		c, _ := NewSKCipher(s, ek, ak)
		cbcEncrypt(c.block, iv, ct)
		msg = append(msg, ct...)
		total := len(msg) + 16
		binary.BigEndian.PutUint32(msg[24:], uint32(total))
		binary.BigEndian.PutUint16(msg[30:], uint16(total-28))
		c.mac.Write(msg)
		return append(msg, c.mac.Sum(nil)[:16]...)
	}
	pt := make([]byte, 32)
	pt[31] = 31 // all padding: empty inner
	for i := range 31 {
		pt[i] = 0xee
	}
	if got, err := rx.Open(nil, build(pt), 28); err != nil || len(got) != 0 {
		t.Fatalf("31 bytes of padding: %v %x", err, got)
	}
	pt[31] = 32
	if _, err := rx.Open(nil, build(pt), 28); !errors.Is(err, ErrSKAuth) {
		t.Fatalf("pad length 32 of 32: %v", err)
	}
	pt[31] = 255
	if _, err := rx.Open(nil, build(pt), 28); !errors.Is(err, ErrSKAuth) {
		t.Fatalf("pad length 255 of 32: %v", err)
	}
}

func TestSKBadKeys(t *testing.T) {
	for _, tc := range []struct {
		s      SKSuite
		el, al int
	}{
		{SKSuite{Encr: EncrAESGCM16, KeyBits: 128}, 16, 0},                               // salt missing
		{SKSuite{Encr: EncrAESGCM16, KeyBits: 128}, 20, 32},                              // AEAD with SK_a
		{SKSuite{Encr: EncrAESGCM16, KeyBits: 100}, 16, 0},                               // key length
		{SKSuite{Encr: EncrAESGCM16, KeyBits: 128, Integ: IntegHMACSHA2_256_128}, 20, 0}, // AEAD + INTEG
		{SKSuite{Encr: EncrAESCBC, KeyBits: 128}, 16, 0},                                 // CBC without INTEG
		{SKSuite{Encr: EncrAESCBC, KeyBits: 128, Integ: IntegHMACSHA1_96}, 16, 20},       // SHA-1
		{SKSuite{Encr: 3, KeyBits: 192, Integ: IntegHMACSHA2_256_128}, 24, 32},           // 3DES
		{SKSuite{Encr: EncrChaCha20Poly1305, KeyBits: 128}, 36, 0},
	} {
		if _, err := NewSKCipher(tc.s, make([]byte, tc.el), make([]byte, tc.al)); err == nil {
			t.Errorf("%+v: accepted", tc.s)
		}
	}
}

func TestSKSealBounds(t *testing.T) {
	tx, _, _, _ := testSKPair(t, SKSuite{Encr: EncrAESGCM16, KeyBits: 128}, 7)
	if _, err := tx.Seal(nil, make([]byte, 20), nil); err == nil {
		t.Fatal("short prefix accepted")
	}
	if _, err := tx.Seal(nil, testPrefix(1, 2, 8, 35, 1), make([]byte, 70000)); err == nil {
		t.Fatal("oversize message accepted")
	}
}

// TestSKAllocs: with room in dst, Seal and Open do not allocate.
func TestSKAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	for _, tc := range skSuites {
		t.Run(tc.name, func(t *testing.T) {
			tx, rx, _, _ := testSKPair(t, tc.suite, 8)
			prefix := testPrefix(1, 2, 0x08, 35, 1)
			inner := testKey(1, 1024)
			buf := make([]byte, 0, 2048)
			out := make([]byte, 0, 2048)
			var msg []byte
			if n := testing.AllocsPerRun(100, func() {
				msg, _ = tx.Seal(buf[:0], prefix, inner)
			}); n != 0 {
				t.Errorf("Seal: %v allocations", n)
			}
			if n := testing.AllocsPerRun(100, func() {
				if _, err := rx.Open(out[:0], msg, 28); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Open: %v allocations", n)
			}
		})
	}
}

func BenchmarkSKSeal(b *testing.B) {
	for _, tc := range skSuites {
		b.Run(tc.name, func(b *testing.B) {
			tx, _, _, _ := testSKPair(b, tc.suite, 1)
			prefix := testPrefix(1, 2, 0x08, 35, 1)
			inner := testKey(1, 1024)
			buf := make([]byte, 0, 2048)
			b.ReportAllocs()
			b.SetBytes(int64(len(inner)))
			for b.Loop() {
				if _, err := tx.Seal(buf[:0], prefix, inner); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSKOpen(b *testing.B) {
	for _, tc := range skSuites {
		b.Run(tc.name, func(b *testing.B) {
			tx, rx, _, _ := testSKPair(b, tc.suite, 1)
			inner := testKey(1, 1024)
			msg, err := tx.Seal(nil, testPrefix(1, 2, 0x08, 35, 1), inner)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, 0, 2048)
			b.ReportAllocs()
			b.SetBytes(int64(len(inner)))
			for b.Loop() {
				if _, err := rx.Open(out[:0], msg, 28); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func ExampleSKCipher() {
	suite := SKSuite{Encr: EncrAESGCM16, KeyBits: 256}
	key := make([]byte, suite.EncKeyLen()) // SK_ei from DeriveIKEKeys
	send, _ := NewSKCipher(suite, key, nil)
	recv, _ := NewSKCipher(suite, key, nil)
	// IKE header (SK first) and the SK generic header; Seal sets both lengths.
	prefix := testPrefix(1, 2, 0x08, 39, 1)
	msg, _ := send.Seal(nil, prefix, []byte("inner payloads"))
	inner, err := recv.Open(nil, msg, 28)
	fmt.Println(len(msg), string(inner), err)
	// Output: 71 inner payloads <nil>
}
