package ike

import (
	"encoding/binary"
	"strconv"
)

// Wire sizes (RFC 7296 §3.1, §3.2; RFC 3948 §2.2).
const (
	HeaderLen        = 28 // IKE header
	GenericHeaderLen = 4  // generic payload header
	NonESPMarkerLen  = 4  // zero bytes before an IKE message on UDP 4500

	// MaxMessageLen bounds a message both ways: it travels in one UDP
	// datagram (longer ones are fragmented, RFC 7383).
	MaxMessageLen = 65535

	version2 = 0x20 // major version 2, minor 0: all Append writes
)

// Limits Decode enforces on untrusted input, past what the length fields
// allow. They are far above what any peer sends (a strongSwan IKE_SA_INIT
// with proposals = default has 8 payloads and two proposals of 38 transforms each) and
// keep the decoded structure small whatever the bytes claim. Append refuses
// to exceed them too, so everything Append writes Decode reads.
const (
	MaxPayloads         = 64   // payloads in one chain (the message, or an SK payload's plaintext), unknown ones included
	MaxProposals        = 32   // proposals in one SA payload
	MaxTransforms       = 128  // transforms in one proposal
	MaxAttributes       = 16   // attributes in one transform
	MaxTrafficSelectors = 64   // selectors in one TS payload
	MaxCPAttributes     = 64   // attributes in one CP payload
	MaxDeleteSPIs       = 1024 // SPIs in one Delete payload
)

// Header is the fixed IKE header (RFC 7296 §3.1).
type Header struct {
	SPIi, SPIr  uint64 // initiator's and responder's IKE SPI
	NextPayload PayloadType
	Exchange    ExchangeType
	Flags       Flags
	MessageID   uint32
	Length      uint32 // of the whole message, header included
}

// ParseHeader reads the IKE header at the start of b. It checks the version
// (ErrInvalidMajorVersion above 2, ErrMalformed below) and that Length lies
// between HeaderLen and len(b) (and MaxMessageLen); reserved flag bits are
// dropped. A responder
// uses it to answer a message whose payloads do not decode.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, malformed(0, PayloadNone, "%d bytes, shorter than the %d-byte IKE header", len(b), HeaderLen)
	}
	switch major := b[17] >> 4; {
	case major > 2:
		return Header{}, &ParseError{Offset: 17, What: "major version " + strconv.Itoa(int(major)), Err: ErrInvalidMajorVersion}
	case major < 2:
		return Header{}, malformed(17, PayloadNone, "major version %d is not IKEv2", major)
	}
	h := Header{
		SPIi:        binary.BigEndian.Uint64(b[0:]),
		SPIr:        binary.BigEndian.Uint64(b[8:]),
		NextPayload: PayloadType(b[16]),
		Exchange:    ExchangeType(b[18]),
		Flags:       Flags(b[19]) & flagsKnown,
		MessageID:   binary.BigEndian.Uint32(b[20:]),
		Length:      binary.BigEndian.Uint32(b[24:]),
	}
	if h.Length < HeaderLen || uint64(h.Length) > uint64(min(len(b), MaxMessageLen)) {
		return Header{}, malformed(24, PayloadNone, "length %d outside %d..%d (the bytes given, at most %d)", h.Length, HeaderLen, len(b), MaxMessageLen)
	}
	return h, nil
}

// Message is one IKE message: the header fields a sender chooses and the
// payload chain. Next Payload and Length are derived by Append.
//
// An SK (*Encrypted) or SKF (*EncryptedFragment) payload, if any, is the
// last one (RFC 7296 §3.14, RFC 7383 §2.5); its ciphertext stays opaque here.
type Message struct {
	SPIi, SPIr uint64
	Exchange   ExchangeType
	Flags      Flags
	MessageID  uint32
	Payloads   []Payload
}

// Decode parses one IKE message, which must fill b exactly (strip the
// non-ESP marker of UDP 4500 first). Every length and count is checked
// against the bytes and the Max* limits; nothing is allocated in
// proportion to a claimed length. Byte fields of the payloads alias b.
//
// Errors are *ParseError wrapping ErrMalformed, ErrUnsupportedCritical or
// ErrInvalidMajorVersion. Unknown payloads without the critical bit are
// skipped (RFC 7296 §2.5).
func Decode(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if int(h.Length) != len(b) {
		return nil, malformed(24, PayloadNone, "length %d but %d bytes given", h.Length, len(b))
	}
	ps, err := decodeChain(h.NextPayload, b[HeaderLen:], HeaderLen, true)
	if err != nil {
		return nil, err
	}
	return &Message{SPIi: h.SPIi, SPIr: h.SPIr, Exchange: h.Exchange, Flags: h.Flags, MessageID: h.MessageID, Payloads: ps}, nil
}

// DecodePayloads parses a payload chain that starts with a payload of type
// first: the plaintext of an SK payload once decrypted (RFC 7296 §3.14:
// its Next Payload field names the first inner payload) or a reassembled
// set of SKF fragments. An SK or SKF payload inside is ErrMalformed. Error
// offsets count from the start of b.
func DecodePayloads(first PayloadType, b []byte) ([]Payload, error) {
	return decodeChain(first, b, 0, false)
}

func decodeChain(next PayloadType, b []byte, base int, outer bool) ([]Payload, error) {
	var ps []Payload
	off, n := 0, 0
	for next != PayloadNone {
		t := next
		if n == MaxPayloads {
			return nil, malformed(base+off, t, "more than %d payloads", MaxPayloads)
		}
		n++
		if len(b)-off < GenericHeaderLen {
			return nil, malformed(base+off, t, "generic payload header truncated: %d bytes left", len(b)-off)
		}
		next = PayloadType(b[off])
		critical := b[off+1]&0x80 != 0
		plen := int(binary.BigEndian.Uint16(b[off+2:]))
		if plen < GenericHeaderLen {
			return nil, malformed(base+off+2, t, "payload length %d shorter than its header", plen)
		}
		if plen > len(b)-off {
			return nil, malformed(base+off+2, t, "payload length %d overruns the %d bytes left", plen, len(b)-off)
		}
		body := b[off+GenericHeaderLen : off+plen]
		bodyOff := base + off + GenericHeaderLen
		if !t.known() {
			if critical {
				return nil, &ParseError{Offset: base + off, Type: t, What: "unknown payload type with the critical bit", Err: ErrUnsupportedCritical}
			}
			off += plen
			continue
		}
		if t == PayloadSK || t == PayloadSKF {
			if !outer {
				return nil, malformed(base+off, t, "encrypted payload inside an encrypted payload")
			}
			if off+plen != len(b) {
				return nil, malformed(base+off, t, "encrypted payload is not last: %d bytes follow", len(b)-off-plen)
			}
			p, err := decodeEncrypted(t, next, body, bodyOff)
			if err != nil {
				return nil, err
			}
			return append(ps, p), nil
		}
		p, err := decodeBody(t, body, bodyOff)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
		off += plen
	}
	if off != len(b) {
		return nil, malformed(base+off, PayloadNone, "%d bytes after the last payload", len(b)-off)
	}
	return ps, nil
}

// Append appends the encoded message to b and returns the extended slice.
// Reserved fields are zero and the critical bit is clear (RFC 7296 §3.2:
// every payload written is one the RFCs define).
func (m *Message) Append(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, HeaderLen)...)
	h := b[start:]
	binary.BigEndian.PutUint64(h[0:], m.SPIi)
	binary.BigEndian.PutUint64(h[8:], m.SPIr)
	h[17] = version2
	h[18] = byte(m.Exchange)
	h[19] = byte(m.Flags & flagsKnown)
	binary.BigEndian.PutUint32(h[20:], m.MessageID)
	b, first, err := appendChain(b, m.Payloads, true)
	if err != nil {
		return b[:start], err
	}
	b[start+16] = byte(first)
	if n := len(b) - start; n > MaxMessageLen {
		return b[:start], encodeErr("message of %d bytes, more than %d (fragment it, RFC 7383)", n, MaxMessageLen)
	}
	binary.BigEndian.PutUint32(b[start+24:], uint32(len(b)-start))
	return b, nil
}

// AppendPayloads appends a payload chain without an IKE header (the
// plaintext of an SK payload, RFC 7296 §3.14) and returns the type of its
// first payload, for the SK payload's Next Payload field. SK and SKF are
// refused inside.
func AppendPayloads(b []byte, ps []Payload) ([]byte, PayloadType, error) {
	return appendChain(b, ps, false)
}

func appendChain(b []byte, ps []Payload, outer bool) ([]byte, PayloadType, error) {
	start := len(b)
	if len(ps) > MaxPayloads {
		return b, PayloadNone, encodeErr("%d payloads, more than %d", len(ps), MaxPayloads)
	}
	for i, p := range ps {
		if p == nil {
			return b[:start], PayloadNone, encodeErr("payload %d is nil", i)
		}
		t := p.Type()
		next := PayloadNone
		if i+1 < len(ps) && ps[i+1] != nil {
			next = ps[i+1].Type()
		}
		switch e := p.(type) {
		case *Encrypted:
			if !outer || i != len(ps)-1 {
				return b[:start], PayloadNone, encodeErr("SK payload must be the last of a message")
			}
			next = e.NextPayload
		case *EncryptedFragment:
			if !outer || i != len(ps)-1 {
				return b[:start], PayloadNone, encodeErr("SKF payload must be the last of a message")
			}
			next = e.NextPayload
		}
		hdr := len(b)
		b = append(b, byte(next), 0, 0, 0)
		var err error
		if b, err = p.appendBody(b); err != nil {
			return b[:start], PayloadNone, encodeErr("%v payload %d: %v", t, i, err)
		}
		n := len(b) - hdr
		if n > 0xffff {
			return b[:start], PayloadNone, encodeErr("%v payload %d: %d bytes, more than its length field holds", t, i, n)
		}
		binary.BigEndian.PutUint16(b[hdr+2:], uint16(n))
	}
	if len(ps) == 0 {
		return b, PayloadNone, nil
	}
	return b, ps[0].Type(), nil
}
