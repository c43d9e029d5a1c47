package esp

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestParseAlgorithm(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Algorithm
	}{
		{"aes128gcm16", AES128GCM16},
		{"aes192gcm16", AES192GCM16},
		{" AES192GCM16 ", AES192GCM16},
		{"aes192gcm128", AES192GCM16}, // strongSwan's ICV-in-bits spelling
		{"aes256gcm128", AES256GCM16},
		{"aes256-sha2_256", AES256CBCSHA256},
		{"aes192gcm12", AlgInvalid}, // 12-byte ICV: not offered
		{"aes192gcm8", AlgInvalid},
		{"aes192gmac", AlgInvalid},
		{"aes192-sha256", AlgInvalid},
		{"aes192", AlgInvalid},
		{"", AlgInvalid},
	} {
		got, err := ParseAlgorithm(tt.in)
		if got != tt.want || (err == nil) != (tt.want != AlgInvalid) {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	names := AlgorithmNames()
	if len(names) != int(numAlgorithms)-1 {
		t.Fatalf("AlgorithmNames: %d names for %d algorithms", len(names), numAlgorithms-1)
	}
	for _, n := range names {
		if a, err := ParseAlgorithm(n); err != nil || a.String() != n {
			t.Errorf("%q does not round-trip: %v, %v", n, a, err)
		}
	}
	if i := slices.Index(names, "aes192gcm16"); i < 0 || names[i-1] != "aes128gcm16" || names[i+1] != "aes256gcm16" {
		t.Errorf("aes192gcm16 not between aes128gcm16 and aes256gcm16: %q", names)
	}
}

// TestAES192GCM16: the suite's shape (RFC 4106 §8.1, §3, §6), key lengths
// other than 24+4 refused, and a packet opens only under its own key and
// salt. Round trips, tampering and allocations are covered for every
// algorithm by TestRoundTrip, TestTamper and TestZeroAllocs.
func TestAES192GCM16(t *testing.T) {
	a := AES192GCM16
	if a.EncKeyLen() != 28 || a.AuthKeyLen() != 0 || a.IVLen() != 8 || a.ICVLen() != 16 || a.BlockSize() != 4 ||
		!a.AEAD() || !a.Encrypts() || !a.CounterMode() {
		t.Fatalf("%v: enc %d auth %d iv %d icv %d block %d aead %v encrypts %v",
			a, a.EncKeyLen(), a.AuthKeyLen(), a.IVLen(), a.ICVLen(), a.BlockSize(), a.AEAD(), a.Encrypts())
	}
	p := testParams(a, Tunnel, 4, false)
	// 20 and 36 bytes are valid AES-128/256 key material: still wrong here.
	for _, n := range []int{0, 4, 20, 24, 27, 29, 32, 36} {
		q := p
		q.EncKey = key(n, 3)
		if _, err := NewOutbound(q); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("NewOutbound with a %d-byte key: %v", n, err)
		}
		if _, err := NewInbound(q); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("NewInbound with a %d-byte key: %v", n, err)
		}
	}
	q := p
	q.AuthKey = key(32, 1)
	if _, err := NewOutbound(q); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("NewOutbound with an auth_key: %v", err)
	}

	o, in := newPair(t, p)
	plain := markedUDP4()
	wire := sealed(t, o, plain)
	if bytes.Contains(wire, marker) {
		t.Fatal("plaintext on the wire")
	}
	if n, want := len(wire)-len(plain), 20+a.Overhead(len(plain)); n != want {
		t.Errorf("sealed %d bytes more, want %d", n, want)
	}
	wrong := func(name string, mut func(k []byte)) {
		q := p
		q.EncKey = bytes.Clone(p.EncKey)
		mut(q.EncKey)
		other, err := NewInbound(q)
		if err != nil {
			t.Fatal(err)
		}
		if b, _, v := open(other, wire, 20); v != DropICV || bytes.Contains(b.B[:], marker) {
			t.Errorf("%s: %v, want %v and no plaintext", name, v, DropICV)
		}
	}
	wrong("last AES key byte", func(k []byte) { k[23] ^= 1 }) // the key is used in full, not cut at 16
	wrong("salt", func(k []byte) { k[27] ^= 1 })
	// Same first 16 bytes and salt under AES-128: another cipher.
	q = testParams(AES128GCM16, Tunnel, 4, false)
	q.EncKey = append(bytes.Clone(p.EncKey[:16]), p.EncKey[24:]...)
	in128, err := NewInbound(q)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, v := open(in128, wire, 20); v != DropICV {
		t.Errorf("AES-128 SA opened an AES-192 packet: %v", v)
	}
	if b, nh, v := open(in, wire, 20); v != OK || nh != 4 || !bytes.Equal(b.Bytes(), plain) {
		t.Errorf("own SA: %d, %v", nh, v)
	}
}
