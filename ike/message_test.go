package ike

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var codecCmp = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

// sampleCert is a self-signed Ed25519 certificate, the same bytes every
// run (fixed key, serial and validity), so that tshark's X.509 dissector
// has a real one to read in the CERT payload.
var sampleCert = sync.OnceValue(func() []byte {
	key := ed25519.NewKeyFromSeed(pattern(ed25519.SeedSize, 1))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1234567),
		Subject:      pkix.Name{CommonName: "mn.example.org"},
		DNSNames:     []string{"mn.example.org"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	return der
})

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

const (
	sampleSPIi = 0x8a3c5e7f01020304
	sampleSPIr = 0x1122334455667788
)

// sampleInit is an IKE_SA_INIT request shaped like charon's: three IKE
// proposals (AEAD, CBC + HMAC, ChaCha20), KE, Nonce, the NAT detection
// notifies, fragmentation and signature hash algorithm support, a vendor ID.
func sampleInit() *Message {
	return &Message{
		SPIi: sampleSPIi, Exchange: IKE_SA_INIT, Flags: FlagInitiator,
		Payloads: []Payload{
			&SA{Proposals: []Proposal{
				{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
					{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 256},
					{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 128},
					{Type: TransformPRF, ID: uint16(PRFHMACSHA2_256)},
					{Type: TransformPRF, ID: uint16(PRFHMACSHA2_512)},
					{Type: TransformDH, ID: uint16(DHCurve25519)},
					{Type: TransformDH, ID: uint16(DHECP256)},
				}},
				{Number: 2, Protocol: ProtoIKE, Transforms: []Transform{
					{Type: TransformENCR, ID: uint16(EncrAESCBC), KeyLength: 128},
					{Type: TransformINTEG, ID: uint16(IntegHMACSHA2_256_128)},
					{Type: TransformPRF, ID: uint16(PRFHMACSHA2_256)},
					{Type: TransformDH, ID: uint16(DHMODP2048)},
				}},
				{Number: 3, Protocol: ProtoIKE, Transforms: []Transform{
					{Type: TransformENCR, ID: uint16(EncrChaCha20Poly1305)},
					{Type: TransformPRF, ID: uint16(PRFHMACSHA2_384)},
					{Type: TransformDH, ID: uint16(DHCurve25519)},
				}},
			}},
			&KE{Group: DHCurve25519, Data: pattern(32, 0x40)},
			&Nonce{Data: pattern(32, 0x80)},
			&Notify{NotifyType: NAT_DETECTION_SOURCE_IP, Data: pattern(20, 0x10)},
			&Notify{NotifyType: NAT_DETECTION_DESTINATION_IP, Data: pattern(20, 0x30)},
			&Notify{NotifyType: IKEV2_FRAGMENTATION_SUPPORTED},
			&Notify{NotifyType: SIGNATURE_HASH_ALGORITHMS, Data: []byte{0, 2, 0, 3, 0, 4, 0, 5}},
			&VendorID{Data: []byte("mipsec test vendor")},
		},
	}
}

// sampleInner is an IKE_AUTH request's plaintext (RFC 7296 §1.2): IDi,
// CERT, CERTREQ, IDr, AUTH, CP, SAi2, TSi, TSr and status notifies.
func sampleInner() []Payload {
	return []Payload{
		&ID{Initiator: true, IDType: ID_FQDN, Data: []byte("mn.example.org")},
		&Cert{Encoding: CertX509Signature, Data: sampleCert()},
		&CertReq{Encoding: CertX509Signature, Data: pattern(40, 9)},
		&ID{IDType: ID_IPV6_ADDR, Data: netip.MustParseAddr("2001:db8::1").AsSlice()},
		&Auth{Method: AuthSharedKey, Data: pattern(32, 0xa0)},
		&CP{CfgType: CFG_REQUEST, Attributes: []CPAttribute{
			IP6AddressAttr(netip.Prefix{}),
			IP6AddressAttr(netip.MustParsePrefix("2001:db8:a::5/64")),
			IP4AddressAttr(netip.Addr{}),
			{Type: INTERNAL_IP6_DNS},
		}},
		&Notify{NotifyType: USE_TRANSPORT_MODE},
		&Notify{NotifyType: INITIAL_CONTACT},
		&Notify{NotifyType: MOBIKE_SUPPORTED},
		&SA{Proposals: []Proposal{
			{Number: 1, Protocol: ProtoESP, SPI: []byte{0xc0, 0x01, 0xca, 0xfe}, Transforms: []Transform{
				{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 128},
				{Type: TransformESN, ID: ESN_ON},
				{Type: TransformESN, ID: ESN_NONE},
			}},
			{Number: 2, Protocol: ProtoESP, SPI: []byte{0xc0, 0x01, 0xca, 0xfe}, Transforms: []Transform{
				{Type: TransformENCR, ID: uint16(EncrAESCBC), KeyLength: 256, Attributes: []Attribute{{Type: 0x0123, Value: []byte{1, 2, 3}}, {Type: 0x0200, TV: true, Value: []byte{0, 9}}}},
				{Type: TransformINTEG, ID: uint16(IntegHMACSHA2_256_128)},
				{Type: TransformESN, ID: ESN_NONE},
			}},
		}},
		&TS{Initiator: true, Selectors: []TrafficSelector{
			{Type: TS_IPV4_ADDR_RANGE, StartPort: 0, EndPort: 65535, Start: netip.MustParseAddr("192.0.2.0"), End: netip.MustParseAddr("192.0.2.127")},
			{Protocol: 135, StartPort: 5 << 8, EndPort: 5<<8 | 0xff, Start: netip.MustParseAddr("2001:db8:a::5"), End: netip.MustParseAddr("2001:db8:a::5")},
		}},
		&TS{Selectors: []TrafficSelector{
			{Type: TS_IPV6_ADDR_RANGE, Protocol: 6, StartPort: 443, EndPort: 443, Start: netip.MustParseAddr("2001:db8:b::"), End: netip.MustParseAddr("2001:db8:b::ffff")},
			{Type: 10, Protocol: 0, Raw: []byte{1, 2, 3, 4}},
		}},
		&Delete{Protocol: ProtoESP, SPIs: []uint32{0xc001cafe, 0x12345678}},
		&Delete{Protocol: ProtoIKE},
		&Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, NotifyType: REKEY_SA},
		&EAP{Data: []byte{1, 7, 0, 5, 1}},
	}
}

func sampleAuth(t testing.TB) *Message {
	t.Helper()
	inner, first, err := AppendPayloads(nil, sampleInner())
	if err != nil {
		t.Fatal(err)
	}
	if first != PayloadIDi {
		t.Fatalf("first inner payload %v, want IDi", first)
	}
	return &Message{
		SPIi: sampleSPIi, SPIr: sampleSPIr, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1,
		Payloads: []Payload{&Encrypted{NextPayload: first, Data: append(pattern(8, 0xe0), inner...)}},
	}
}

func mustAppend(t testing.TB, m *Message) []byte {
	t.Helper()
	b, err := m.Append(nil)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	frag := &Message{
		SPIi: sampleSPIi, SPIr: sampleSPIr, Exchange: IKE_AUTH, Flags: FlagResponse | FlagVersion, MessageID: 1,
		Payloads: []Payload{&EncryptedFragment{NextPayload: PayloadNone, Number: 2, Total: 3, Data: pattern(100, 1)}},
	}
	empty := &Message{SPIi: 1, SPIr: 2, Exchange: INFORMATIONAL, Flags: FlagResponse, MessageID: 7}
	for name, m := range map[string]*Message{
		"IKE_SA_INIT": sampleInit(), "IKE_AUTH": sampleAuth(t), "SKF": frag, "empty": empty,
	} {
		t.Run(name, func(t *testing.T) {
			b := mustAppend(t, m)
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := cmp.Diff(m, got, codecCmp); d != "" {
				t.Errorf("Decode(Append(m)) (-want +got):\n%s", d)
			}
			if b2 := mustAppend(t, got); !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs:\n%x\n%x", b, b2)
			}
			// Append appends: a prefix stays.
			pre := []byte("prefix")
			b3, err := m.Append(pre)
			if err != nil || !bytes.Equal(b3[:6], []byte("prefix")) || !bytes.Equal(b3[6:], b) {
				t.Errorf("Append(prefix) = %x, %v", b3, err)
			}
		})
	}
}

func TestInnerRoundTrip(t *testing.T) {
	want := sampleInner()
	b, first, err := AppendPayloads(nil, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePayloads(first, b)
	if err != nil {
		t.Fatal(err)
	}
	// The second TSi selector had no Type: it follows the address family.
	want[10].(*TS).Selectors[1].Type = TS_IPV6_ADDR_RANGE
	if d := cmp.Diff(want, got, codecCmp); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	m := sampleAuth(t)
	sk := m.Payloads[0].(*Encrypted)
	if got, err := DecodePayloads(sk.NextPayload, sk.Data[8:]); err != nil || len(got) != len(want) {
		t.Errorf("inner chain of the SK payload: %d payloads, %v", len(got), err)
	}
	if pf, ok := got[5].(*CP).Attributes[1].IP6Address(); !ok || pf != netip.MustParsePrefix("2001:db8:a::5/64") {
		t.Errorf("INTERNAL_IP6_ADDRESS = %v %v", pf, ok)
	}
	if _, ok := got[5].(*CP).Attributes[0].IP6Address(); ok {
		t.Error("the empty INTERNAL_IP6_ADDRESS request reads as an address")
	}
}

// TestKnownEncoding checks Append against bytes written by hand from the
// layouts of RFC 7296 §3.1, §3.2, §3.3 and §3.10, so that a symmetric
// mistake in Append and Decode cannot hide behind the round trip.
func TestKnownEncoding(t *testing.T) {
	m := &Message{
		SPIi: 0x0102030405060708, Exchange: IKE_SA_INIT, Flags: FlagInitiator,
		Payloads: []Payload{
			&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: uint16(EncrAESCBC), KeyLength: 128},
				{Type: TransformDH, ID: uint16(DHMODP2048)},
			}}}},
			&Notify{NotifyType: IKEV2_FRAGMENTATION_SUPPORTED},
		},
	}
	want := strings.Join([]string{
		"0102030405060708", "0000000000000000", // SPIs
		"21", "20", "22", "08", "00000000", "00000044", // SA first, v2.0, IKE_SA_INIT, I, msgid 0, length 68
		"29000020",             // SA: next Notify, length 32
		"0000001c", "01010002", // proposal: last, length 28, #1, IKE, no SPI, 2 transforms
		"0300000c", "0100000c800e0080", // ENCR AES-CBC, Key Length (TV) 128
		"00000008", "0400000e", //         DH 14
		"00000008", "0000402e", // Notify: last, length 8, no protocol, no SPI, 16430
	}, "")
	got := hex.EncodeToString(mustAppend(t, m))
	if got != want {
		t.Errorf("Append:\n got %s\nwant %s", got, want)
	}
}

// TestDecodeSkipsUnknown: an unknown payload without the critical bit is
// skipped (RFC 7296 §2.5) and the chain goes on behind it; with the bit the
// error carries the type for UNSUPPORTED_CRITICAL_PAYLOAD.
func TestDecodeUnknownPayload(t *testing.T) {
	build := func(flags byte) []byte {
		b := mustAppend(t, &Message{SPIi: 1, Exchange: INFORMATIONAL, Payloads: []Payload{&Notify{NotifyType: COOKIE, Data: pattern(8, 0)}}})
		// header next = 99 (unknown) -> Notify
		b[16] = 99
		unk := []byte{byte(PayloadNotify), flags, 0, 9, 'x', 'y', 'z', 'z', 'y'}
		b = append(b[:HeaderLen], append(unk, b[HeaderLen:]...)...)
		b[27] += byte(len(unk))
		return b
	}
	m, err := Decode(build(0))
	if err != nil {
		t.Fatalf("non-critical unknown payload: %v", err)
	}
	if len(m.Payloads) != 1 || m.Payloads[0].(*Notify).NotifyType != COOKIE {
		t.Errorf("payloads after the skipped one: %#v", m.Payloads)
	}
	_, err = Decode(build(0x80))
	var pe *ParseError
	if !errors.Is(err, ErrUnsupportedCritical) || !errors.As(err, &pe) {
		t.Fatalf("critical unknown payload: %v", err)
	}
	if pe.Type != 99 || pe.Offset != HeaderLen {
		t.Errorf("ParseError type %v offset %d, want 99 at %d", pe.Type, pe.Offset, HeaderLen)
	}
	if n := pe.Notify(); n.NotifyType != UNSUPPORTED_CRITICAL_PAYLOAD || !bytes.Equal(n.Data, []byte{99}) {
		t.Errorf("answer %+v", n)
	}
	// The critical bit on a known payload means nothing (§3.2).
	b := mustAppend(t, sampleInit())
	b[HeaderLen+1] |= 0x80
	if _, err := Decode(b); err != nil {
		t.Errorf("critical bit on a known payload: %v", err)
	}
}

// mutate returns a copy of the encoding of m changed by f.
func mutated(t *testing.T, m *Message, f func(b []byte) []byte) []byte {
	b := mustAppend(t, m)
	return f(append([]byte(nil), b...))
}

func setMsgLen(b []byte) []byte {
	n := len(b)
	b[24], b[25], b[26], b[27] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return b
}

// msg builds a message from a header-next type and raw payload bytes.
func rawMsg(next PayloadType, payloads ...string) []byte {
	b := make([]byte, HeaderLen)
	b[0], b[16], b[17], b[18] = 1, byte(next), 0x20, byte(INFORMATIONAL)
	for _, p := range payloads {
		x, err := hex.DecodeString(strings.ReplaceAll(p, " ", ""))
		if err != nil {
			panic(err)
		}
		b = append(b, x...)
	}
	return setMsgLen(b)
}

func TestDecodeHostile(t *testing.T) {
	init := sampleInit()
	vendors := &Message{SPIi: 1, Exchange: INFORMATIONAL}
	for range MaxPayloads + 1 {
		vendors.Payloads = append(vendors.Payloads, &VendorID{})
	}
	many := strings.Repeat("2b000004 ", MaxPayloads) + "00000004"
	unknowns := strings.Repeat("63000004 ", MaxPayloads) + "00000004" // 99, non-critical, skipped but counted
	saHdr := func(body string) string {
		x, _ := hex.DecodeString(strings.ReplaceAll(body, " ", ""))
		return hex.EncodeToString([]byte{0, 0, byte((len(x) + 4) >> 8), byte(len(x) + 4)}) + hex.EncodeToString(x)
	}
	tr := "0000 0008 01000014" // one ENCR AES-GCM-16 transform, last
	tooManyProps := ""
	for i := 0; i <= MaxProposals; i++ {
		last := "02"
		if i == MaxProposals {
			last = "00"
		}
		tooManyProps += last + "000010 01010001 " + tr
	}
	tests := []struct {
		name string
		b    []byte
		err  error
		off  int    // -1: do not check
		what string // substring of the message
	}{
		{"empty", nil, ErrMalformed, 0, "shorter than the 28-byte"},
		{"truncated header", mustAppend(t, init)[:27], ErrMalformed, 0, "shorter"},
		{"IKEv1", mutated(t, init, func(b []byte) []byte { b[17] = 0x10; return b }), ErrMalformed, 17, "not IKEv2"},
		{"major version 3", mutated(t, init, func(b []byte) []byte { b[17] = 0x30; return b }), ErrInvalidMajorVersion, 17, "major version 3"},
		{"length beyond the bytes", mutated(t, init, func(b []byte) []byte { b[27]++; return b }), ErrMalformed, 24, "outside"},
		{"length short of the bytes", mutated(t, init, func(b []byte) []byte { b[27]--; return b }), ErrMalformed, 24, "bytes given"},
		{"length below the header", mutated(t, init, func(b []byte) []byte { b[24], b[25], b[26], b[27] = 0, 0, 0, 27; return b }), ErrMalformed, 24, "outside"},
		{"length 70000", rawMsg(PayloadVendor, strings.Repeat("00", 70000-HeaderLen)), ErrMalformed, 24, "at most 65535"},
		{"length 4 GiB", mutated(t, init, func(b []byte) []byte { b[24] = 0xff; return b }), ErrMalformed, 24, "outside"},
		{"payload length 0", rawMsg(PayloadVendor, "00000000"), ErrMalformed, 30, "shorter than its header"},
		{"payload length 3", rawMsg(PayloadVendor, "00000003"), ErrMalformed, 30, "shorter than its header"},
		{"payload length overrun", rawMsg(PayloadVendor, "0000ffff 00"), ErrMalformed, 30, "overruns"},
		{"generic header truncated", rawMsg(PayloadVendor, "2b000004 0000"), ErrMalformed, 32, "truncated"},
		{"chain ends early", rawMsg(PayloadVendor, "2b000004"), ErrMalformed, 32, "truncated"},
		{"bytes after the chain", rawMsg(PayloadVendor, "00000004 00000000"), ErrMalformed, 32, "after the last payload"},
		{"bytes but no payload", rawMsg(PayloadNone, "2b000004"), ErrMalformed, 28, "after the last payload"},
		{"too many payloads", rawMsg(PayloadVendor, many), ErrMalformed, -1, "more than 64 payloads"},
		{"too many unknown payloads", rawMsg(99, unknowns), ErrMalformed, -1, "more than 64 payloads"},
		{"too many payloads to encode", nil, nil, 0, ""}, // checked below
		// SA (§3.3)
		{"SA without proposals", rawMsg(PayloadSA, "00000004"), ErrMalformed, 32, "no proposals"},
		{"proposal truncated", rawMsg(PayloadSA, saHdr("000000 08 0101")), ErrMalformed, 32, "proposal header truncated"},
		{"proposal length 0", rawMsg(PayloadSA, saHdr("00000000 01010001")), ErrMalformed, 34, "proposal length 0"},
		{"proposal length overrun", rawMsg(PayloadSA, saHdr("00000100 01010001"+tr)), ErrMalformed, 34, "proposal length 256"},
		{"last proposal followed by more", rawMsg(PayloadSA, saHdr("00000010 01010001 "+tr+" 00000010 02010001 "+tr)), ErrMalformed, 32, "last proposal followed"},
		{"more proposals promised", rawMsg(PayloadSA, saHdr("02000010 01010001 "+tr)), ErrMalformed, 32, "more follow"},
		{"proposal Last Substruc 1", rawMsg(PayloadSA, saHdr("01000010 01010001 "+tr)), ErrMalformed, 32, "Last Substruc 1"},
		{"too many proposals", rawMsg(PayloadSA, saHdr(tooManyProps)), ErrMalformed, -1, "more than 32 proposals"},
		{"IKE SPI of 4", rawMsg(PayloadSA, saHdr("00000014 01010401 01020304 "+tr)), ErrMalformed, 38, "SPI size 4 for protocol IKE"},
		{"ESP without SPI", rawMsg(PayloadSA, saHdr("00000010 01030001 "+tr)), ErrMalformed, 38, "SPI size 0 for protocol ESP"},
		{"SPI overrun", rawMsg(PayloadSA, saHdr("0000000c 010108 01 01020304")), ErrMalformed, 38, "overruns"},
		{"no transforms", rawMsg(PayloadSA, saHdr("00000008 01010000")), ErrMalformed, 39, "0 transforms"},
		{"transform count above the bytes", rawMsg(PayloadSA, saHdr("00000010 01010003 0300000801000014")), ErrMalformed, 48, "transform 2 of 3 truncated"},
		{"transform Last Substruc early", rawMsg(PayloadSA, saHdr("00000010 01010003 "+tr)), ErrMalformed, 40, "transform 1 of 3: Last Substruc 0"},
		{"transform count below the bytes", rawMsg(PayloadSA, saHdr("00000018 01010001 0300000801000014 "+tr)), ErrMalformed, -1, "Last Substruc 3"},
		{"transform length 0", rawMsg(PayloadSA, saHdr("00000010 01010001 00000000 01000014")), ErrMalformed, -1, "length 0"},
		{"transform length overrun", rawMsg(PayloadSA, saHdr("00000010 01010001 00000040 01000014")), ErrMalformed, -1, "length 64"},
		{"Key Length twice", rawMsg(PayloadSA, saHdr("00000018 01010001 00000010 01000014 800e0080 800e0100")), ErrMalformed, -1, "second Key Length"},
		{"Key Length 0", rawMsg(PayloadSA, saHdr("00000014 01010001 0000000c 01000014 800e0000")), ErrMalformed, -1, "key length 0"},
		{"Key Length TLV", rawMsg(PayloadSA, saHdr("00000016 01010001 0000000e 01000014 000e0002 0080")), ErrMalformed, -1, "TLV form"},
		{"attribute truncated", rawMsg(PayloadSA, saHdr("00000012 01010001 0000000a 01000014 800e")), ErrMalformed, -1, "attribute truncated"},
		{"attribute overrun", rawMsg(PayloadSA, saHdr("00000014 01010001 0000000c 01000014 0001ffff")), ErrMalformed, -1, "attribute length 65535"},
		{"too many attributes", rawMsg(PayloadSA, saHdr("00000054 01010001 0000004c 01000014 "+strings.Repeat("80010001", MaxAttributes+1))), ErrMalformed, -1, "more than 16 attributes"},
		// fixed-layout payloads
		{"KE short", rawMsg(PayloadKE, "00000007 001f00"), ErrMalformed, 32, "shorter than 4"},
		{"ID short", rawMsg(PayloadIDi, "00000006 0200"), ErrMalformed, 32, "shorter than 4"},
		{"CERT empty", rawMsg(PayloadCERT, "00000004"), ErrMalformed, 32, "shorter than 1"},
		{"AUTH short", rawMsg(PayloadAUTH, "00000005 02"), ErrMalformed, 32, "shorter than 4"},
		{"nonce 15 bytes", rawMsg(PayloadNonce, "00000013"+strings.Repeat("aa", 15)), ErrMalformed, 32, "nonce of 15 bytes"},
		{"nonce 257 bytes", rawMsg(PayloadNonce, "00000105"+strings.Repeat("aa", 257)), ErrMalformed, 32, "nonce of 257 bytes"},
		{"notify SPI overrun", rawMsg(PayloadNotify, "0000000c 03084009 01020304"), ErrMalformed, 33, "SPI size 8 overruns"},
		{"notify short", rawMsg(PayloadNotify, "00000006 0000"), ErrMalformed, 32, "shorter than 4"},
		// Delete (§3.11)
		{"delete 65535 SPIs", rawMsg(PayloadDelete, "0000000c 0304ffff 01020304"), ErrMalformed, 34, "65535 SPIs"},
		{"delete count mismatch", rawMsg(PayloadDelete, "00000010 03040003 01020304 05060708"), ErrMalformed, 34, "3 SPIs of 4 bytes, but 8"},
		{"delete SPI size 8", rawMsg(PayloadDelete, "00000010 03080001 0102030405060708"), ErrMalformed, 33, "SPI size 8"},
		{"delete IKE with SPIs", rawMsg(PayloadDelete, "0000000c 01040001 01020304"), ErrMalformed, 32, "IKE SA delete"},
		{"delete protocol 9", rawMsg(PayloadDelete, "00000008 09000000"), ErrMalformed, 32, "protocol PROTO(9)"},
		// TS (§3.13)
		{"TS count 255", rawMsg(PayloadTSi, "00000008 ff000000"), ErrMalformed, 32, "255 traffic selectors"},
		{"TS count above the bytes", rawMsg(PayloadTSi, "00000018 02000000 07000010 0000ffff c0000200 c00002ff"), ErrMalformed, 52, "selector 2 of 2 truncated"},
		{"TS count below the bytes", rawMsg(PayloadTSi, "00000018 00000000 07000010 0000ffff c0000200 c00002ff"), ErrMalformed, 36, "16 bytes after selector 0"},
		{"TS selector length 0", rawMsg(PayloadTSi, "0000000c 01000000 07000000"), ErrMalformed, 38, "length 0"},
		{"TS IPv4 selector of 40", rawMsg(PayloadTSi, "00000030 01000000 07000028"+strings.Repeat("00", 36)), ErrMalformed, 38, "want 16"},
		{"TS selector overrun", rawMsg(PayloadTSr, "00000018 01000000 08000028 0000ffff c0000200 c00002ff"), ErrMalformed, 38, "length 40 outside"},
		// CP (§3.15)
		{"CP attribute overrun", rawMsg(PayloadCP, "0000000c 01000000 00080011"), ErrMalformed, 38, "overruns"},
		{"CP attribute truncated", rawMsg(PayloadCP, "0000000a 01000000 0008"), ErrMalformed, 36, "attribute truncated"},
		{"too many CP attributes", rawMsg(PayloadCP, hexLen16(8+4*(MaxCPAttributes+1))+"01000000"+strings.Repeat("00010000", MaxCPAttributes+1)), ErrMalformed, -1, "more than 64 attributes"},
		// SK and SKF (§3.14, RFC 7383 §2.5)
		{"SK not last", rawMsg(PayloadSK, "23000008 01020304 00000004"), ErrMalformed, 28, "not last"},
		{"SKF short", rawMsg(PayloadSKF, "23000006 0001"), ErrMalformed, 32, "shorter than 4"},
		{"SKF number 0", rawMsg(PayloadSKF, "23000008 00000002"), ErrMalformed, 32, "fragment 0 of 2"},
		{"SKF number above total", rawMsg(PayloadSKF, "23000008 00030002"), ErrMalformed, 32, "fragment 3 of 2"},
		{"SKF total 0", rawMsg(PayloadSKF, "00000008 00000000"), ErrMalformed, 32, "fragment 0 of 0"},
		{"SKF 2 names a payload", rawMsg(PayloadSKF, "23000008 00020002"), ErrMalformed, 32, "only fragment 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				if _, err := vendors.Append(nil); !errors.Is(err, ErrEncode) {
					t.Errorf("Append of %d payloads: %v, want ErrEncode", len(vendors.Payloads), err)
				}
				return
			}
			m, err := Decode(tt.b)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Decode = %v, %v; want %v", m, err, tt.err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("%T is not a *ParseError", err)
			}
			if tt.off >= 0 && pe.Offset != tt.off {
				t.Errorf("offset %d, want %d (%v)", pe.Offset, tt.off, err)
			}
			if !strings.Contains(err.Error(), tt.what) {
				t.Errorf("error %q does not say %q", err, tt.what)
			}
			if m != nil {
				t.Errorf("a message came with the error: %v", m)
			}
		})
	}
}

func hexLen16(n int) string { return hex.EncodeToString([]byte{0, 0, byte(n >> 8), byte(n)}) }

// TestInnerChainHostile: an SK payload cannot nest, and errors inside the
// plaintext chain count offsets from its start.
func TestInnerChainHostile(t *testing.T) {
	if _, err := DecodePayloads(PayloadSK, []byte{0, 0, 0, 4}); !errors.Is(err, ErrMalformed) {
		t.Errorf("SK inside SK: %v", err)
	}
	_, err := DecodePayloads(PayloadNonce, []byte{0, 0, 0, 8, 1, 2, 3, 4})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Offset != 4 || pe.Type != PayloadNonce {
		t.Errorf("short nonce in an inner chain: %v", err)
	}
	if ps, err := DecodePayloads(PayloadNone, nil); err != nil || len(ps) != 0 {
		t.Errorf("empty inner chain: %v, %v", ps, err)
	}
}

// TestDecodeAllocBounded: claims of huge counts cost nothing before the
// bytes are found missing (no allocation proportional to a claimed length).
func TestDecodeAllocBounded(t *testing.T) {
	inputs := [][]byte{
		rawMsg(PayloadDelete, "0000000c 0304ffff 01020304"),
		rawMsg(PayloadTSi, "00000008 40000000"),
		rawMsg(PayloadSA, "0000000c 000000ff 010100ff"),
		rawMsg(PayloadVendor, "0000ffff"),
		rawMsg(PayloadCP, "0000000c 01000000 0001ffff"),
	}
	var before, after runtime.MemStats
	const rounds = 200
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range rounds {
		for _, b := range inputs {
			if _, err := Decode(b); err == nil {
				t.Fatalf("Decode(%x) accepted", b)
			}
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / rounds / uint64(len(inputs))
	if per > 2048 {
		t.Errorf("%d bytes allocated per hostile decode, want under 2 KiB", per)
	}
}

func TestAppendRefuses(t *testing.T) {
	tests := []struct {
		name string
		ps   []Payload
	}{
		{"nil payload", []Payload{nil}},
		{"SK not last", []Payload{&Encrypted{}, &Nonce{Data: pattern(16, 0)}}},
		{"SKF not last", []Payload{&EncryptedFragment{Number: 1, Total: 1}, &VendorID{}}},
		{"SKF 0 of 0", []Payload{&EncryptedFragment{}}},
		{"nonce 8 bytes", []Payload{&Nonce{Data: pattern(8, 0)}}},
		{"SA without proposals", []Payload{&SA{}}},
		{"proposal without transforms", []Payload{&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE}}}}},
		{"ESP proposal without SPI", []Payload{&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoESP, Transforms: []Transform{{Type: TransformENCR, ID: uint16(EncrAESGCM16)}}}}}}},
		{"TV attribute of 3 bytes", []Payload{&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{{Type: TransformENCR, Attributes: []Attribute{{Type: 1, TV: true, Value: []byte{1, 2, 3}}}}}}}}}},
		{"Key Length as an attribute", []Payload{&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{{Type: TransformENCR, Attributes: []Attribute{{Type: AttrKeyLength, TV: true, Value: []byte{0, 128}}}}}}}}}},
		{"IPv4 TS with an IPv6 end", []Payload{&TS{Selectors: []TrafficSelector{{Type: TS_IPV4_ADDR_RANGE, Start: netip.MustParseAddr("192.0.2.1"), End: netip.MustParseAddr("2001:db8::1")}}}}},
		{"TS without addresses", []Payload{&TS{Selectors: []TrafficSelector{{}}}}},
		{"IKE delete with SPIs", []Payload{&Delete{Protocol: ProtoIKE, SPIs: []uint32{1}}}},
		{"vendor ID of 70000 bytes", []Payload{&VendorID{Data: make([]byte, 70000)}}},
		{"notify SPI of 300 bytes", []Payload{&Notify{SPI: make([]byte, 300)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Message{Exchange: INFORMATIONAL, Payloads: tt.ps}
			pre := []byte{1, 2, 3}
			b, err := m.Append(pre)
			if !errors.Is(err, ErrEncode) {
				t.Fatalf("Append = %x, %v; want ErrEncode", b, err)
			}
			if !bytes.Equal(b, pre) {
				t.Errorf("Append left %x after failing, want the buffer as given", b)
			}
		})
	}
	if _, _, err := AppendPayloads(nil, []Payload{&Encrypted{}}); !errors.Is(err, ErrEncode) {
		t.Errorf("AppendPayloads with SK: %v", err)
	}
}

func TestParseHeader(t *testing.T) {
	b := mustAppend(t, sampleAuth(t))
	b[19] |= 0xc7 // reserved flag bits
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{SPIi: sampleSPIi, SPIr: sampleSPIr, NextPayload: PayloadSK, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1, Length: uint32(len(b))}
	if h != want {
		t.Errorf("ParseHeader = %+v, want %+v", h, want)
	}
	b[17] = 0x31
	_, err = ParseHeader(b)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Notify().NotifyType != INVALID_MAJOR_VERSION {
		t.Errorf("major version 3: %v", err)
	}
	b[17] = 0x2f // minor versions are ignored (§3.1)
	if _, err := ParseHeader(b); err != nil {
		t.Errorf("minor version 15: %v", err)
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{IKE_SA_INIT.String(), "IKE_SA_INIT"},
		{ExchangeType(99).String(), "EXCHANGE(99)"},
		{PayloadSKF.String(), "SKF"},
		{NAT_DETECTION_SOURCE_IP.String(), "NAT_DETECTION_SOURCE_IP"},
		{NotifyType(40000).String(), "NOTIFY(40000)"},
		{TransformDH.String(), "DH"},
		{ProtoESP.String(), "ESP"},
	} {
		if tt.got != tt.want {
			t.Errorf("%q, want %q", tt.got, tt.want)
		}
	}
	if !TS_UNACCEPTABLE.IsError() || INITIAL_CONTACT.IsError() {
		t.Error("IsError")
	}
}
