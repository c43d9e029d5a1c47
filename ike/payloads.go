package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Payload is one typed payload of a message. The set is closed: the types
// below are all there are, one per payload type of RFC 7296 §3.3–§3.16 and
// RFC 7383 §2.5. Byte slices of decoded payloads alias the decoded bytes.
type Payload interface {
	// Type is the payload's type code, the Next Payload value that names it.
	Type() PayloadType
	// appendBody appends the payload's body (after the generic header).
	appendBody(b []byte) ([]byte, error)
}

// SA is the Security Association payload (RFC 7296 §3.3): the proposals in
// order of preference, numbered from 1 in a request, the chosen one alone
// in a response.
type SA struct {
	Proposals []Proposal
}

// Proposal is one Proposal substructure (RFC 7296 §3.3.1). Its SPI is empty
// in an IKE_SA_INIT, 8 bytes in an IKE SA rekey and 4 bytes for AH and ESP.
type Proposal struct {
	Number     uint8
	Protocol   ProtocolID
	SPI        []byte
	Transforms []Transform
}

// Transform is one Transform substructure (RFC 7296 §3.3.2). KeyLength is
// the Key Length attribute in bits (§3.3.5), 0 when absent; any other
// attribute stays in Attributes, so that a responder can refuse the
// transform (§3.3.6).
type Transform struct {
	Type       TransformType
	ID         uint16
	KeyLength  uint16
	Attributes []Attribute
}

// Attribute is a transform attribute other than Key Length (RFC 7296
// §3.3.5). TV attributes (AF bit set) carry exactly 2 bytes of Value.
type Attribute struct {
	Type  uint16 // without the AF bit
	TV    bool
	Value []byte
}

// KE is the Key Exchange payload (RFC 7296 §3.4).
type KE struct {
	Group DHGroup // the key exchange method (Transform Type 4 ID)
	Data  []byte
}

// ID is the IDi (Initiator) or IDr payload (RFC 7296 §3.5).
type ID struct {
	Initiator bool
	IDType    IDType
	Data      []byte
}

// Cert is the Certificate payload (RFC 7296 §3.6).
type Cert struct {
	Encoding CertEncoding
	Data     []byte
}

// CertReq is the Certificate Request payload (RFC 7296 §3.7); for X.509
// its data is a list of 20-byte SHA-1 hashes of trusted CAs' public keys.
type CertReq struct {
	Encoding CertEncoding
	Data     []byte
}

// Auth is the Authentication payload (RFC 7296 §3.8).
type Auth struct {
	Method AuthMethod
	Data   []byte
}

// Nonce is the Nonce payload (RFC 7296 §3.9): 16 to 256 bytes.
type Nonce struct {
	Data []byte
}

// Nonce sizes (RFC 7296 §3.9).
const (
	MinNonceLen = 16
	MaxNonceLen = 256
)

// Notify is the Notify payload (RFC 7296 §3.10). Protocol and SPI name a
// Child SA when the notification concerns one and are empty otherwise.
type Notify struct {
	Protocol   ProtocolID
	SPI        []byte
	NotifyType NotifyType
	Data       []byte
}

// Delete is the Delete payload (RFC 7296 §3.11): the IKE SA itself
// (ProtoIKE, no SPIs) or inbound AH/ESP SPIs of the sender.
type Delete struct {
	Protocol ProtocolID
	SPIs     []uint32
}

// VendorID is the Vendor ID payload (RFC 7296 §3.12).
type VendorID struct {
	Data []byte
}

// TS is the TSi (Initiator) or TSr payload (RFC 7296 §3.13).
type TS struct {
	Initiator bool
	Selectors []TrafficSelector
}

// TrafficSelector is one Traffic Selector substructure (RFC 7296 §3.13.1):
// an address range with a protocol (0: any) and a port range. For ICMP and
// ICMPv6 the ports hold type (high byte) and code (low byte); for the
// Mobility Header the MH type is the high byte of the port (RFC 4301
// §4.4.1.1).
//
// Type may be left zero when encoding; it then follows Start's family.
// Types other than the two address ranges (9 and up; 0..6 are reserved
// and refused) keep their bytes after the 4-byte substructure header in
// Raw, the second header byte in Protocol.
type TrafficSelector struct {
	Type               TSType
	Protocol           uint8
	StartPort, EndPort uint16
	Start, End         netip.Addr
	Raw                []byte
}

// Encrypted is the Encrypted and Authenticated payload, SK (RFC 7296
// §3.14). Data is everything after the generic header: IV, ciphertext
// with padding and pad length, and ICV; this package neither encrypts nor
// checks it. NextPayload is the type of the first payload inside.
type Encrypted struct {
	NextPayload PayloadType
	Data        []byte
}

// EncryptedFragment is the Encrypted and Authenticated Fragment payload,
// SKF (RFC 7383 §2.5): fragment Number of Total, both from 1. NextPayload
// names the first inner payload in fragment 1 and is zero in the others.
type EncryptedFragment struct {
	NextPayload PayloadType
	Number      uint16
	Total       uint16
	Data        []byte
}

// CP is the Configuration payload, CP (RFC 7296 §3.15).
type CP struct {
	CfgType    CfgType
	Attributes []CPAttribute
}

// CPAttribute is one configuration attribute (RFC 7296 §3.15.1). A request
// may carry an empty Value to ask for one.
type CPAttribute struct {
	Type  uint16 // 15 bits; the reserved top bit is dropped
	Value []byte
}

// EAP is the Extensible Authentication payload (RFC 7296 §3.16), an opaque
// EAP message here.
type EAP struct {
	Data []byte
}

func (*SA) Type() PayloadType       { return PayloadSA }
func (*KE) Type() PayloadType       { return PayloadKE }
func (*Cert) Type() PayloadType     { return PayloadCERT }
func (*CertReq) Type() PayloadType  { return PayloadCERTREQ }
func (*Auth) Type() PayloadType     { return PayloadAUTH }
func (*Nonce) Type() PayloadType    { return PayloadNonce }
func (*Notify) Type() PayloadType   { return PayloadNotify }
func (*Delete) Type() PayloadType   { return PayloadDelete }
func (*VendorID) Type() PayloadType { return PayloadVendor }
func (*CP) Type() PayloadType       { return PayloadCP }
func (*EAP) Type() PayloadType      { return PayloadEAP }

func (*Encrypted) Type() PayloadType         { return PayloadSK }
func (*EncryptedFragment) Type() PayloadType { return PayloadSKF }

func (p *ID) Type() PayloadType {
	if p.Initiator {
		return PayloadIDi
	}
	return PayloadIDr
}

func (p *TS) Type() PayloadType {
	if p.Initiator {
		return PayloadTSi
	}
	return PayloadTSr
}

// decodeBody decodes the body of a payload of known type t other than SK
// and SKF. off is the body's offset, for errors.
func decodeBody(t PayloadType, b []byte, off int) (Payload, error) {
	bad := func(at int, format string, args ...any) error {
		return malformed(off+at, t, format, args...)
	}
	short := func(min int) error {
		if len(b) < min {
			return bad(0, "body of %d bytes, shorter than %d", len(b), min)
		}
		return nil
	}
	switch t {
	case PayloadSA:
		return decodeSA(b, off)
	case PayloadKE:
		if err := short(4); err != nil {
			return nil, err
		}
		return &KE{Group: DHGroup(binary.BigEndian.Uint16(b)), Data: b[4:]}, nil
	case PayloadIDi, PayloadIDr:
		if err := short(4); err != nil {
			return nil, err
		}
		return &ID{Initiator: t == PayloadIDi, IDType: IDType(b[0]), Data: b[4:]}, nil
	case PayloadCERT:
		if err := short(1); err != nil {
			return nil, err
		}
		return &Cert{Encoding: CertEncoding(b[0]), Data: b[1:]}, nil
	case PayloadCERTREQ:
		if err := short(1); err != nil {
			return nil, err
		}
		return &CertReq{Encoding: CertEncoding(b[0]), Data: b[1:]}, nil
	case PayloadAUTH:
		if err := short(4); err != nil {
			return nil, err
		}
		return &Auth{Method: AuthMethod(b[0]), Data: b[4:]}, nil
	case PayloadNonce:
		if len(b) < MinNonceLen || len(b) > MaxNonceLen {
			return nil, bad(0, "nonce of %d bytes, outside %d..%d", len(b), MinNonceLen, MaxNonceLen)
		}
		return &Nonce{Data: b}, nil
	case PayloadNotify:
		if err := short(4); err != nil {
			return nil, err
		}
		spiLen := int(b[1])
		if spiLen > len(b)-4 {
			return nil, bad(1, "SPI size %d overruns the %d bytes left", spiLen, len(b)-4)
		}
		return &Notify{
			Protocol:   ProtocolID(b[0]),
			NotifyType: NotifyType(binary.BigEndian.Uint16(b[2:])),
			SPI:        b[4 : 4+spiLen],
			Data:       b[4+spiLen:],
		}, nil
	case PayloadDelete:
		return decodeDelete(b, off)
	case PayloadVendor:
		return &VendorID{Data: b}, nil
	case PayloadTSi, PayloadTSr:
		return decodeTS(t, b, off)
	case PayloadCP:
		return decodeCP(b, off)
	case PayloadEAP:
		return &EAP{Data: b}, nil
	}
	// decodeChain only calls with known types.
	return nil, bad(0, "no decoder")
}

func decodeEncrypted(t, next PayloadType, b []byte, off int) (Payload, error) {
	if t == PayloadSK {
		return &Encrypted{NextPayload: next, Data: b}, nil
	}
	if len(b) < 4 {
		return nil, malformed(off, t, "body of %d bytes, shorter than 4", len(b))
	}
	f := &EncryptedFragment{
		NextPayload: next,
		Number:      binary.BigEndian.Uint16(b),
		Total:       binary.BigEndian.Uint16(b[2:]),
		Data:        b[4:],
	}
	if err := f.check(); err != nil {
		return nil, malformed(off, t, "%v", err)
	}
	return f, nil
}

// check holds the rules of RFC 7383 §2.5 on the fragment fields.
func (f *EncryptedFragment) check() error {
	switch {
	case f.Total == 0 || f.Number == 0 || f.Number > f.Total:
		return fmt.Errorf("fragment %d of %d", f.Number, f.Total)
	case f.Number > 1 && f.NextPayload != PayloadNone:
		return fmt.Errorf("fragment %d names a first payload (%v); only fragment 1 may", f.Number, f.NextPayload)
	}
	return nil
}

func decodeSA(b []byte, off int) (Payload, error) {
	sa := &SA{}
	for p := 0; p < len(b); {
		at := off + p
		if len(sa.Proposals) == MaxProposals {
			return nil, malformed(at, PayloadSA, "more than %d proposals", MaxProposals)
		}
		if len(b)-p < 8 {
			return nil, malformed(at, PayloadSA, "proposal header truncated: %d bytes left", len(b)-p)
		}
		last, plen := b[p], int(binary.BigEndian.Uint16(b[p+2:]))
		switch {
		case last != 0 && last != 2:
			return nil, malformed(at, PayloadSA, "proposal Last Substruc %d, not 0 or 2", last)
		case plen < 8 || plen > len(b)-p:
			return nil, malformed(at+2, PayloadSA, "proposal length %d outside 8..%d", plen, len(b)-p)
		case last == 0 && p+plen != len(b):
			return nil, malformed(at, PayloadSA, "last proposal followed by %d bytes", len(b)-p-plen)
		case last == 2 && p+plen == len(b):
			return nil, malformed(at, PayloadSA, "proposal says more follow, but the payload ends")
		}
		prop, err := decodeProposal(b[p:p+plen], at)
		if err != nil {
			return nil, err
		}
		sa.Proposals = append(sa.Proposals, prop)
		p += plen
	}
	if len(sa.Proposals) == 0 {
		return nil, malformed(off, PayloadSA, "no proposals")
	}
	return sa, nil
}

// spiSizeOK holds RFC 7296 §3.3.1: no SPI or 8 bytes for IKE (IKE_SA_INIT;
// IKE SA rekey), 4 bytes for AH and ESP. Other protocols are not checked.
func spiSizeOK(p ProtocolID, n int) bool {
	switch p {
	case ProtoIKE:
		return n == 0 || n == 8
	case ProtoAH, ProtoESP:
		return n == 4
	}
	return true
}

func decodeProposal(b []byte, off int) (Proposal, error) {
	bad := func(at int, format string, args ...any) (Proposal, error) {
		return Proposal{}, malformed(off+at, PayloadSA, "proposal %d: "+format, append([]any{b[4]}, args...)...)
	}
	prop := Proposal{Number: b[4], Protocol: ProtocolID(b[5])}
	spiLen, nt := int(b[6]), int(b[7])
	if !spiSizeOK(prop.Protocol, spiLen) {
		return bad(6, "SPI size %d for protocol %v", spiLen, prop.Protocol)
	}
	if spiLen > len(b)-8 {
		return bad(6, "SPI size %d overruns the proposal", spiLen)
	}
	prop.SPI = b[8 : 8+spiLen]
	if nt == 0 || nt > MaxTransforms {
		return bad(7, "%d transforms, want 1..%d", nt, MaxTransforms)
	}
	p := 8 + spiLen
	for i := 0; i < nt; i++ {
		if len(b)-p < 8 {
			return bad(p, "transform %d of %d truncated: %d bytes left", i+1, nt, len(b)-p)
		}
		last, tlen := b[p], int(binary.BigEndian.Uint16(b[p+2:]))
		switch {
		case last != 0 && last != 3:
			return bad(p, "transform %d: Last Substruc %d, not 0 or 3", i+1, last)
		case tlen < 8 || tlen > len(b)-p:
			return bad(p+2, "transform %d: length %d outside 8..%d", i+1, tlen, len(b)-p)
		case (last == 0) != (i == nt-1):
			return bad(p, "transform %d of %d: Last Substruc %d", i+1, nt, last)
		}
		tr, err := decodeTransform(b[p:p+tlen], off+p)
		if err != nil {
			return bad(p, "transform %d: %v", i+1, err)
		}
		prop.Transforms = append(prop.Transforms, tr)
		p += tlen
	}
	if p != len(b) {
		return bad(p, "%d bytes after the last transform", len(b)-p)
	}
	return prop, nil
}

func decodeTransform(b []byte, off int) (Transform, error) {
	tr := Transform{Type: TransformType(b[4]), ID: binary.BigEndian.Uint16(b[6:])}
	for p, n := 8, 0; p < len(b); n++ {
		if n == MaxAttributes {
			return Transform{}, fmt.Errorf("more than %d attributes (offset %d)", MaxAttributes, off+p)
		}
		if len(b)-p < 4 {
			return Transform{}, fmt.Errorf("attribute truncated: %d bytes left (offset %d)", len(b)-p, off+p)
		}
		at := binary.BigEndian.Uint16(b[p:])
		typ, tv := at&0x7fff, at&0x8000 != 0
		if tv {
			v := b[p+2 : p+4]
			if typ == AttrKeyLength {
				if tr.KeyLength != 0 {
					return Transform{}, fmt.Errorf("second Key Length attribute (offset %d)", off+p)
				}
				if tr.KeyLength = binary.BigEndian.Uint16(v); tr.KeyLength == 0 {
					return Transform{}, fmt.Errorf("key length 0 (offset %d)", off+p)
				}
			} else {
				tr.Attributes = append(tr.Attributes, Attribute{Type: typ, TV: true, Value: v})
			}
			p += 4
			continue
		}
		if typ == AttrKeyLength {
			return Transform{}, fmt.Errorf("key length in TLV form (offset %d)", off+p)
		}
		alen := int(binary.BigEndian.Uint16(b[p+2:]))
		if alen > len(b)-p-4 {
			return Transform{}, fmt.Errorf("attribute length %d overruns the %d bytes left (offset %d)", alen, len(b)-p-4, off+p+2)
		}
		tr.Attributes = append(tr.Attributes, Attribute{Type: typ, Value: b[p+4 : p+4+alen]})
		p += 4 + alen
	}
	return tr, nil
}

func decodeDelete(b []byte, off int) (Payload, error) {
	if len(b) < 4 {
		return nil, malformed(off, PayloadDelete, "body of %d bytes, shorter than 4", len(b))
	}
	d := &Delete{Protocol: ProtocolID(b[0])}
	spiLen, n := int(b[1]), int(binary.BigEndian.Uint16(b[2:]))
	switch d.Protocol {
	case ProtoIKE:
		if spiLen != 0 || n != 0 || len(b) != 4 {
			return nil, malformed(off, PayloadDelete, "IKE SA delete with SPI size %d, %d SPIs, %d bytes", spiLen, n, len(b)-4)
		}
		return d, nil
	case ProtoAH, ProtoESP:
	default:
		return nil, malformed(off, PayloadDelete, "protocol %v", d.Protocol)
	}
	switch {
	case spiLen != 4:
		return nil, malformed(off+1, PayloadDelete, "SPI size %d for %v, want 4", spiLen, d.Protocol)
	case n > MaxDeleteSPIs:
		return nil, malformed(off+2, PayloadDelete, "%d SPIs, more than %d", n, MaxDeleteSPIs)
	case n*4 != len(b)-4:
		return nil, malformed(off+2, PayloadDelete, "%d SPIs of 4 bytes, but %d bytes follow", n, len(b)-4)
	}
	if n > 0 {
		d.SPIs = make([]uint32, n)
		for i := range d.SPIs {
			d.SPIs[i] = binary.BigEndian.Uint32(b[4+4*i:])
		}
	}
	return d, nil
}

func decodeTS(t PayloadType, b []byte, off int) (Payload, error) {
	if len(b) < 4 {
		return nil, malformed(off, t, "body of %d bytes, shorter than 4", len(b))
	}
	ts := &TS{Initiator: t == PayloadTSi}
	n := int(b[0])
	if n > MaxTrafficSelectors {
		return nil, malformed(off, t, "%d traffic selectors, more than %d", n, MaxTrafficSelectors)
	}
	p := 4
	for i := 0; i < n; i++ {
		if len(b)-p < 4 {
			return nil, malformed(off+p, t, "selector %d of %d truncated: %d bytes left", i+1, n, len(b)-p)
		}
		typ, slen := TSType(b[p]), int(binary.BigEndian.Uint16(b[p+2:]))
		if slen < 4 || slen > len(b)-p {
			return nil, malformed(off+p+2, t, "selector %d: length %d outside 4..%d", i+1, slen, len(b)-p)
		}
		if typ < TS_IPV4_ADDR_RANGE {
			// 0..6 are reserved (IANA); 0 also means "follow the address" to Append.
			return nil, malformed(off+p, t, "selector %d: reserved type %d", i+1, typ)
		}
		s := b[p : p+slen]
		sel := TrafficSelector{Type: typ, Protocol: s[1]}
		alen := 0
		switch typ {
		case TS_IPV4_ADDR_RANGE:
			alen = 4
		case TS_IPV6_ADDR_RANGE:
			alen = 16
		default:
			sel.Raw = s[4:]
		}
		if alen != 0 {
			if slen != 8+2*alen {
				return nil, malformed(off+p+2, t, "selector %d: length %d for type %d, want %d", i+1, slen, typ, 8+2*alen)
			}
			sel.StartPort = binary.BigEndian.Uint16(s[4:])
			sel.EndPort = binary.BigEndian.Uint16(s[6:])
			sel.Start, _ = netip.AddrFromSlice(s[8 : 8+alen])
			sel.End, _ = netip.AddrFromSlice(s[8+alen:])
		}
		ts.Selectors = append(ts.Selectors, sel)
		p += slen
	}
	if p != len(b) {
		return nil, malformed(off+p, t, "%d bytes after selector %d", len(b)-p, n)
	}
	return ts, nil
}

func decodeCP(b []byte, off int) (Payload, error) {
	if len(b) < 4 {
		return nil, malformed(off, PayloadCP, "body of %d bytes, shorter than 4", len(b))
	}
	c := &CP{CfgType: CfgType(b[0])}
	for p := 4; p < len(b); {
		if len(c.Attributes) == MaxCPAttributes {
			return nil, malformed(off+p, PayloadCP, "more than %d attributes", MaxCPAttributes)
		}
		if len(b)-p < 4 {
			return nil, malformed(off+p, PayloadCP, "attribute truncated: %d bytes left", len(b)-p)
		}
		typ, alen := binary.BigEndian.Uint16(b[p:])&0x7fff, int(binary.BigEndian.Uint16(b[p+2:]))
		if alen > len(b)-p-4 {
			return nil, malformed(off+p+2, PayloadCP, "attribute %d: length %d overruns the %d bytes left", typ, alen, len(b)-p-4)
		}
		c.Attributes = append(c.Attributes, CPAttribute{Type: typ, Value: b[p+4 : p+4+alen]})
		p += 4 + alen
	}
	return c, nil
}

// Encoders. Each appends the body after the generic header; appendChain
// checks the total against the 16-bit length.

func (p *SA) appendBody(b []byte) ([]byte, error) {
	if len(p.Proposals) == 0 || len(p.Proposals) > MaxProposals {
		return b, fmt.Errorf("%d proposals, want 1..%d", len(p.Proposals), MaxProposals)
	}
	for i := range p.Proposals {
		pr := &p.Proposals[i]
		if !spiSizeOK(pr.Protocol, len(pr.SPI)) || len(pr.SPI) > 255 {
			return b, fmt.Errorf("proposal %d: SPI of %d bytes for %v", pr.Number, len(pr.SPI), pr.Protocol)
		}
		if len(pr.Transforms) == 0 || len(pr.Transforms) > MaxTransforms {
			return b, fmt.Errorf("proposal %d: %d transforms, want 1..%d", pr.Number, len(pr.Transforms), MaxTransforms)
		}
		last := byte(2)
		if i == len(p.Proposals)-1 {
			last = 0
		}
		start := len(b)
		b = append(b, last, 0, 0, 0, pr.Number, byte(pr.Protocol), byte(len(pr.SPI)), byte(len(pr.Transforms)))
		b = append(b, pr.SPI...)
		for j := range pr.Transforms {
			var err error
			if b, err = pr.Transforms[j].append(b, j == len(pr.Transforms)-1); err != nil {
				return b, fmt.Errorf("proposal %d transform %d: %w", pr.Number, j+1, err)
			}
		}
		if err := putLen16(b[start+2:], len(b)-start); err != nil {
			return b, fmt.Errorf("proposal %d: %w", pr.Number, err)
		}
	}
	return b, nil
}

func (t *Transform) append(b []byte, last bool) ([]byte, error) {
	n := len(t.Attributes)
	if t.KeyLength != 0 {
		n++
	}
	if n > MaxAttributes {
		return b, fmt.Errorf("%d attributes, more than %d", n, MaxAttributes)
	}
	l := byte(3)
	if last {
		l = 0
	}
	start := len(b)
	b = append(b, l, 0, 0, 0, byte(t.Type), 0)
	b = binary.BigEndian.AppendUint16(b, t.ID)
	if t.KeyLength != 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8000|AttrKeyLength)
		b = binary.BigEndian.AppendUint16(b, t.KeyLength)
	}
	for _, a := range t.Attributes {
		if a.Type > 0x7fff || a.Type == AttrKeyLength {
			return b, fmt.Errorf("attribute type %d (Key Length goes in KeyLength)", a.Type)
		}
		if a.TV {
			if len(a.Value) != 2 {
				return b, fmt.Errorf("TV attribute %d with %d bytes, want 2", a.Type, len(a.Value))
			}
			b = binary.BigEndian.AppendUint16(b, 0x8000|a.Type)
			b = append(b, a.Value...)
			continue
		}
		if len(a.Value) > 0xffff {
			return b, fmt.Errorf("attribute %d of %d bytes", a.Type, len(a.Value))
		}
		b = binary.BigEndian.AppendUint16(b, a.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b, putLen16(b[start+2:], len(b)-start)
}

func (p *KE) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(p.Group))
	return append(append(b, 0, 0), p.Data...), nil
}

func (p *ID) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(p.IDType), 0, 0, 0), p.Data...), nil
}

func (p *Cert) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(p.Encoding)), p.Data...), nil
}

func (p *CertReq) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(p.Encoding)), p.Data...), nil
}

func (p *Auth) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(p.Method), 0, 0, 0), p.Data...), nil
}

func (p *Nonce) appendBody(b []byte) ([]byte, error) {
	if len(p.Data) < MinNonceLen || len(p.Data) > MaxNonceLen {
		return b, fmt.Errorf("nonce of %d bytes, want %d..%d", len(p.Data), MinNonceLen, MaxNonceLen)
	}
	return append(b, p.Data...), nil
}

func (p *Notify) appendBody(b []byte) ([]byte, error) {
	if len(p.SPI) > 255 {
		return b, fmt.Errorf("SPI of %d bytes", len(p.SPI))
	}
	b = append(b, byte(p.Protocol), byte(len(p.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(p.NotifyType))
	return append(append(b, p.SPI...), p.Data...), nil
}

func (p *Delete) appendBody(b []byte) ([]byte, error) {
	switch p.Protocol {
	case ProtoIKE:
		if len(p.SPIs) != 0 {
			return b, errors.New("an IKE SA delete carries no SPIs")
		}
		return append(b, byte(ProtoIKE), 0, 0, 0), nil
	case ProtoAH, ProtoESP:
	default:
		return b, fmt.Errorf("protocol %v", p.Protocol)
	}
	if len(p.SPIs) > MaxDeleteSPIs {
		return b, fmt.Errorf("%d SPIs, more than %d", len(p.SPIs), MaxDeleteSPIs)
	}
	b = append(b, byte(p.Protocol), 4)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.SPIs)))
	for _, s := range p.SPIs {
		b = binary.BigEndian.AppendUint32(b, s)
	}
	return b, nil
}

func (p *VendorID) appendBody(b []byte) ([]byte, error) { return append(b, p.Data...), nil }
func (p *EAP) appendBody(b []byte) ([]byte, error)      { return append(b, p.Data...), nil }

func (p *TS) appendBody(b []byte) ([]byte, error) {
	if len(p.Selectors) > MaxTrafficSelectors {
		return b, fmt.Errorf("%d selectors, more than %d", len(p.Selectors), MaxTrafficSelectors)
	}
	b = append(b, byte(len(p.Selectors)), 0, 0, 0)
	for i := range p.Selectors {
		var err error
		if b, err = p.Selectors[i].append(b); err != nil {
			return b, fmt.Errorf("selector %d: %w", i+1, err)
		}
	}
	return b, nil
}

func (s *TrafficSelector) append(b []byte) ([]byte, error) {
	typ := s.Type
	if typ == 0 {
		switch {
		case s.Start.Is4():
			typ = TS_IPV4_ADDR_RANGE
		case s.Start.Is6():
			typ = TS_IPV6_ADDR_RANGE
		default:
			return b, errors.New("no type and no start address")
		}
	}
	start := len(b)
	b = append(b, byte(typ), s.Protocol, 0, 0)
	switch typ {
	case TS_IPV4_ADDR_RANGE:
		if !s.Start.Is4() || !s.End.Is4() {
			return b, fmt.Errorf("IPv4 range %v..%v", s.Start, s.End)
		}
		b = binary.BigEndian.AppendUint16(b, s.StartPort)
		b = binary.BigEndian.AppendUint16(b, s.EndPort)
		a, z := s.Start.As4(), s.End.As4()
		b = append(append(b, a[:]...), z[:]...)
	case TS_IPV6_ADDR_RANGE:
		if !s.Start.Is6() || !s.End.Is6() {
			return b, fmt.Errorf("IPv6 range %v..%v", s.Start, s.End)
		}
		b = binary.BigEndian.AppendUint16(b, s.StartPort)
		b = binary.BigEndian.AppendUint16(b, s.EndPort)
		a, z := s.Start.As16(), s.End.As16()
		b = append(append(b, a[:]...), z[:]...)
	default:
		b = append(b, s.Raw...)
	}
	return b, putLen16(b[start+2:], len(b)-start)
}

func (p *Encrypted) appendBody(b []byte) ([]byte, error) { return append(b, p.Data...), nil }

func (p *EncryptedFragment) appendBody(b []byte) ([]byte, error) {
	if err := p.check(); err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint16(b, p.Number)
	b = binary.BigEndian.AppendUint16(b, p.Total)
	return append(b, p.Data...), nil
}

func (p *CP) appendBody(b []byte) ([]byte, error) {
	if len(p.Attributes) > MaxCPAttributes {
		return b, fmt.Errorf("%d attributes, more than %d", len(p.Attributes), MaxCPAttributes)
	}
	b = append(b, byte(p.CfgType), 0, 0, 0)
	for _, a := range p.Attributes {
		if a.Type > 0x7fff || len(a.Value) > 0xffff {
			return b, fmt.Errorf("attribute type %d with %d bytes", a.Type, len(a.Value))
		}
		b = binary.BigEndian.AppendUint16(b, a.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b, nil
}

func putLen16(b []byte, n int) error {
	if n > 0xffff {
		return fmt.Errorf("%d bytes, more than a 16-bit length holds", n)
	}
	binary.BigEndian.PutUint16(b, uint16(n))
	return nil
}

// Configuration attribute helpers (RFC 7296 §3.15.1).

// IP4AddressAttr is INTERNAL_IP4_ADDRESS with a: 4 bytes, or none in a
// request when a is the zero Addr.
func IP4AddressAttr(a netip.Addr) CPAttribute {
	if !a.Is4() {
		return CPAttribute{Type: INTERNAL_IP4_ADDRESS}
	}
	v := a.As4()
	return CPAttribute{Type: INTERNAL_IP4_ADDRESS, Value: v[:]}
}

// IP4Address reads an INTERNAL_IP4_ADDRESS value.
func (a CPAttribute) IP4Address() (netip.Addr, bool) {
	if a.Type != INTERNAL_IP4_ADDRESS || len(a.Value) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(a.Value)), true
}

// IP6AddressAttr is INTERNAL_IP6_ADDRESS with p: the 16-byte address and
// the prefix length. A request with an invalid p (the zero Prefix) has an
// empty value, which asks for any address (RFC 4877 §9 asks for a home
// address this way).
func IP6AddressAttr(p netip.Prefix) CPAttribute {
	if !p.IsValid() || !p.Addr().Is6() {
		return CPAttribute{Type: INTERNAL_IP6_ADDRESS}
	}
	v := p.Addr().As16()
	return CPAttribute{Type: INTERNAL_IP6_ADDRESS, Value: append(v[:], byte(p.Bits()))}
}

// IP6Address reads an INTERNAL_IP6_ADDRESS value: 17 bytes, address and
// prefix length (at most 128).
func (a CPAttribute) IP6Address() (netip.Prefix, bool) {
	if a.Type != INTERNAL_IP6_ADDRESS || len(a.Value) != 17 || a.Value[16] > 128 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(netip.AddrFrom16([16]byte(a.Value[:16])), int(a.Value[16])), true
}
