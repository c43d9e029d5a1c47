package esp

import (
	"bytes"
	"testing"

	"github.com/mipsec/mipsec/pkt"
)

// TestAEADNonceInTailroom: Seal and Open of AES-GCM and ChaCha20-Poly1305
// build the nonce behind the packet in the Buf's tailroom and must leave no
// salt (key material) there; a packet that ends at the very end of the Buf
// (no tailroom) takes the pooled scratch instead and opens the same.
func TestAEADNonceInTailroom(t *testing.T) {
	for _, alg := range []Algorithm{AES128GCM16, AES256GCM16, ChaCha20Poly1305} {
		t.Run(alg.String(), func(t *testing.T) {
			p := testParams(alg, Tunnel, 4, false)
			out, in := newPair(t, p)
			salt := p.EncKey[len(p.EncKey)-saltLen:]
			plain := ipv4UDP(1400)

			b := new(pkt.Buf)
			b.Set(plain)
			for i := b.End(); i < pkt.Size; i++ {
				b.B[i] = 0xee // tailroom garbage: the salt must not survive in it
			}
			if v := out.Seal(b); v != OK {
				t.Fatalf("Seal: %v", v)
			}
			wire := append([]byte(nil), b.Bytes()...)
			tail := b.B[b.End():]
			if bytes.Contains(tail, salt) {
				t.Fatalf("the salt is left in the tailroom after Seal")
			}
			if !bytes.Equal(tail[:nonceLen], make([]byte, nonceLen)) || tail[nonceLen] != 0xee {
				t.Errorf("Seal's nonce area behind the packet: % x", tail[:nonceLen+1])
			}

			// Open in place with tailroom.
			r := new(pkt.Buf)
			r.Set(wire)
			if _, v := in.Open(r, espOffsetOf(wire)); v != OK || !bytes.Equal(r.Bytes(), plain) {
				t.Fatalf("Open: %v", v)
			}
			if bytes.Contains(r.B[len(wire)+pkt.Headroom:], salt) {
				t.Fatalf("the salt is left in the tailroom after Open")
			}

			// No tailroom: the packet ends where the Buf does.
			wire2 := sealed(t, out, plain)
			z := new(pkt.Buf)
			copy(z.B[pkt.Size-len(wire2):], wire2)
			z.SetBytes(pkt.Size-len(wire2), len(wire2))
			if z.TailroomLen() != 0 {
				t.Fatal("test setup: tailroom left")
			}
			if _, v := in.Open(z, espOffsetOf(wire2)); v != OK || !bytes.Equal(z.Bytes(), plain) {
				t.Fatalf("Open without tailroom: %v", v)
			}
			// A forged ICV is refused on both paths and leaves nothing.
			for _, room := range []bool{true, false} {
				f := sealed(t, out, plain) // a number not yet accepted
				f[len(f)-1] ^= 1
				fb := new(pkt.Buf)
				if room {
					fb.Set(f)
				} else {
					copy(fb.B[pkt.Size-len(f):], f)
					fb.SetBytes(pkt.Size-len(f), len(f))
				}
				if _, v := in.Open(fb, espOffsetOf(f)); v != DropICV {
					t.Errorf("forged ICV (tailroom %v): %v", room, v)
				}
				if bytes.Contains(fb.B[:], plain[20:]) {
					t.Errorf("forged ICV (tailroom %v): plaintext left in the Buf", room)
				}
			}
		})
	}
}
