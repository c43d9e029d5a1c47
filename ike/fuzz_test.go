package ike

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode: Decode never panics; what it refuses is a *ParseError; what
// it accepts Append encodes, and decoding that gives the same message and
// encodes to the same bytes (decode(encode(decode(x))) is stable). The
// same holds for a payload chain read as an SK payload's plaintext.
func FuzzDecode(f *testing.F) {
	f.Add(mustAppend(f, sampleInit()))
	f.Add(mustAppend(f, sampleAuth(f)))
	f.Add(mustAppend(f, &Message{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, Payloads: []Payload{
		&EncryptedFragment{NextPayload: PayloadIDi, Number: 1, Total: 2, Data: pattern(40, 0)}}}))
	inner, _, err := AppendPayloads(nil, sampleInner())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(setMsgLen(append(rawMsg(PayloadIDi), inner...)))
	f.Add(mustAppend(f, &Message{SPIi: 3, Exchange: INFORMATIONAL, Payloads: sampleInner()}))
	for _, v := range strongswanVectors(f) {
		f.Add(v.msg)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, b, func(b []byte) ([]Payload, *Message, error) {
			m, err := Decode(b)
			if m == nil {
				return nil, nil, err
			}
			return m.Payloads, m, err
		})
		// The bytes after the header, as a decrypted SK plaintext whose
		// first payload type is the header's Next Payload byte.
		if len(b) > HeaderLen {
			checkStable(t, b[HeaderLen:], func(p []byte) ([]Payload, *Message, error) {
				ps, err := DecodePayloads(PayloadType(b[16]), p)
				return ps, nil, err
			})
		}
	})
}

func checkStable(t *testing.T, b []byte, dec func([]byte) ([]Payload, *Message, error)) {
	ps, m, err := dec(b)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %T %v is not a *ParseError", err, err)
		}
		if pe.Notify() == nil {
			t.Fatal("no notify for the error")
		}
		if ps != nil || m != nil {
			t.Fatal("payloads returned with an error")
		}
		return
	}
	encode := func(ps []Payload, m *Message) ([]byte, error) {
		if m != nil {
			return m.Append(nil)
		}
		out, _, err := AppendPayloads(nil, ps)
		return out, err
	}
	enc, err := encode(ps, m)
	if err != nil {
		t.Fatalf("Append of a decoded message: %v", err)
	}
	first := PayloadNone
	if len(ps) > 0 {
		first = ps[0].Type()
	}
	var ps2 []Payload
	var m2 *Message
	if m != nil {
		m2, err = Decode(enc)
		if err == nil {
			ps2 = m2.Payloads
		}
	} else {
		ps2, err = DecodePayloads(first, enc)
	}
	if err != nil {
		t.Fatalf("Decode of Append's output: %v\n%x", err, enc)
	}
	if m != nil {
		if d := cmp.Diff(m, m2, codecCmp); d != "" {
			t.Fatalf("decode(encode(decode(x))) differs (-first +second):\n%s", d)
		}
	} else if d := cmp.Diff(ps, ps2, codecCmp); d != "" {
		t.Fatalf("inner chain: decode(encode(decode(x))) differs (-first +second):\n%s", d)
	}
	enc2, err := encode(ps2, m2)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("second encoding differs (%v):\n%x\n%x", err, enc, enc2)
	}
	if len(enc) > len(b) {
		t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(enc))
	}
}
