package ike

import (
	"bytes"
	"testing"
)

// FuzzSKOpen feeds hostile messages to Open under every suite: it must not
// panic, must refuse anything that is not a message sealed with the key,
// and must append nothing when it refuses. The seeds are real sealed
// messages, so the fuzzer mutates from valid structure; the only inputs
// allowed to open are those seeds themselves.
func FuzzSKOpen(f *testing.F) {
	type entry struct {
		rx     *SKCipher
		sealed [][]byte
	}
	var ciphers []entry
	for i, tc := range skSuites {
		tx, rx, _, _ := testSKPair(f, tc.suite, byte(40+i))
		// The fuzzing workers rebuild these seeds: the same IVs each time.
		tx.testRand = &countingReader{}
		e := entry{rx: rx}
		for _, inner := range [][]byte{nil, testInner(), testKey(1, 100)} {
			msg, err := tx.Seal(nil, testPrefix(1, 2, 0x08, 35, 1), inner)
			if err != nil {
				f.Fatal(err)
			}
			e.sealed = append(e.sealed, msg)
			f.Add(uint8(i), uint16(28), msg)
		}
		ciphers = append(ciphers, e)
	}
	f.Add(uint8(0), uint16(28), make([]byte, 64))
	f.Fuzz(func(t *testing.T, which uint8, off uint16, msg []byte) {
		e := ciphers[int(which)%len(ciphers)]
		in := bytes.Clone(msg)
		dst := []byte("prefix")
		out, err := e.rx.Open(dst, msg, int(off))
		if !bytes.Equal(msg, in) {
			t.Fatal("Open modified its input")
		}
		if err != nil {
			if string(out) != "prefix" {
				t.Fatalf("output on failure: %q", out)
			}
			return
		}
		for _, s := range e.sealed {
			if bytes.Equal(s, msg) && off == 28 {
				return
			}
		}
		t.Fatalf("Open accepted a message that was never sealed: %x", msg)
	})
}

// countingReader is a deterministic byte stream 0, 1, 2, ...
type countingReader struct{ n byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}
