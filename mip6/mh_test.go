package mip6

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mipsec/mipsec/internal/header"
)

// Helpers are prefixed mh so they cannot collide with other test files of
// the package.

var (
	mhHA   = netip.MustParseAddr("2001:db8:1::1")
	mhHoA  = netip.MustParseAddr("2001:db8:1::100")
	mhCoA  = netip.MustParseAddr("2001:db8:2::100")
	mhCoA4 = netip.MustParseAddr("198.51.100.7")
	mhHoA4 = netip.MustParseAddr("192.0.2.10")
)

// mhCmpOpts compares netip.Addr by value (it has unexported fields).
var mhCmpOpts = cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}

func mhHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mhSpecAlign is the alignment rule xn+y of each option type, written out
// from the RFCs (RFC 6275 §6.2.4–§6.2.7, RFC 5555 §3, RFC 5648
// §6.1) independently of Option.Align. dataLen picks the BID variant.
func mhSpecAlign(typ uint8, dataLen int) (x, y int) {
	switch typ {
	case OptBindingRefreshAdvice, OptNonceIndices:
		return 2, 0
	case OptAlternateCoA:
		return 8, 6
	case OptBindingAuthData:
		return 8, 2
	case OptIPv4HomeAddress, OptIPv4AddressAck, OptNATDetection, OptIPv4CareOfAddress:
		return 4, 0
	case OptBindingIdentifier:
		if dataLen > 4 {
			return 8, 2
		}
		return 2, 0
	}
	return 1, 0
}

// mhCheckWire checks the invariants of an encoded MH: a multiple of 8 with
// a matching Header Len, Payload Proto 59, a checksum that verifies for
// src/dst, and every option aligned as the spec says, counted from the
// start of the MH. It returns the non-padding options' types in order.
func mhCheckWire(t testing.TB, b []byte, src, dst netip.Addr) []uint8 {
	t.Helper()
	mh := header.MH(b)
	if len(b)%8 != 0 || !mh.IsValid() || mh.Len() != len(b) {
		t.Fatalf("encoded MH of %d bytes, Header Len %d: %x", len(b), b[1], b)
	}
	if mh.PayloadProto() != 59 || mh.Reserved() != 0 {
		t.Errorf("payload proto %d reserved %d", mh.PayloadProto(), mh.Reserved())
	}
	if !mh.VerifyChecksum(src, dst) {
		t.Errorf("checksum %#04x does not verify: %x", mh.Checksum(), b)
	}
	var types []uint8
	it := NewOptionIter(b, 6+mhFixedLen[mh.Type()])
	for {
		off := it.Offset()
		o, done, err := it.Next()
		if err != nil {
			t.Fatalf("walking options of %x: %v", b, err)
		}
		if done {
			break
		}
		if p, ok := o.(PadN); ok {
			if !bytes.Equal(b[off+2:off+p.N], make([]byte, p.N-2)) {
				t.Errorf("PadN at %d has nonzero data", off)
			}
		}
		if _, ok := o.(Pad1); ok {
			continue
		}
		if _, ok := o.(PadN); ok {
			continue
		}
		x, y := mhSpecAlign(o.OptionType(), int(b[off+1]))
		if off%x != y {
			t.Errorf("option %d at offset %d, want %dn+%d: %x", o.OptionType(), off, x, y, b)
		}
		types = append(types, o.OptionType())
	}
	return types
}

type mhVectorFile struct {
	Addresses struct {
		HomeAgent   string `json:"home_agent"`
		HomeAddress string `json:"home_address"`
		CareOf      string `json:"care_of_address"`
	} `json:"addresses"`
	Cases []struct {
		Name           string `json:"name"`
		Seq            string `json:"seq"`
		MobilityHeader string `json:"mobility_header"`
		MHChecksum     string `json:"mh_checksum"`
		FullPacket     string `json:"full_ipv6_packet"`
	} `json:"cases"`
}

// The vector file is the copy in internal/header/testdata of
// shared/testvectors/derived-esp-null-hmac-sha256-128-mip6-bu.json.
const mhVectorPath = "../internal/header/testdata/derived-esp-null-hmac-sha256-128-mip6-bu.json"

func mhLoadVector(t testing.TB) mhVectorFile {
	t.Helper()
	raw, err := os.ReadFile(mhVectorPath)
	if err != nil {
		t.Fatal(err)
	}
	var v mhVectorFile
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("no cases")
	}
	return v
}

// TestKnownAnswerBU decodes the MH inside the ESP-NULL plaintext of the
// derived BU vector: IPv6(CoA->HA) / DestOpts(HAO=HoA) / ESP / MH BU.
// The checksum pseudo-header uses the HoA from the HAO as source (RFC 6275
// §6.1.1).
func TestKnownAnswerBU(t *testing.T) {
	v := mhLoadVector(t)
	for i, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			pkt := mhHex(t, c.FullPacket)
			ip := header.IPv6(pkt)
			if !ip.IsValid() || ip.NextHeader() != header.ProtoDestOpts {
				t.Fatalf("not IPv6 + DestOpts: %x", pkt[:8])
			}
			dst := ip.Dst()
			do := header.DestOpts(pkt[header.IPv6HeaderLen:])
			if !do.IsValid() || do.NextHeader() != header.ProtoESP {
				t.Fatal("bad destination options")
			}
			hoa, ok := do.HomeAddress()
			if !ok {
				t.Fatal("no HAO")
			}
			// ESP NULL: no IV, the plaintext follows SPI and sequence.
			mhb := pkt[header.IPv6HeaderLen+do.Len()+8:]
			mhb = mhb[:header.MH(mhb).Len()]
			if want := mhHex(t, c.MobilityHeader); !bytes.Equal(mhb, want) {
				t.Fatalf("MH in packet %x, vector says %x", mhb, want)
			}
			if hoa != netip.MustParseAddr(v.Addresses.HomeAddress) || dst != netip.MustParseAddr(v.Addresses.HomeAgent) {
				t.Fatalf("HoA %v HA %v", hoa, dst)
			}
			m, err := DecodeMH(mhb, hoa, dst)
			if err != nil {
				t.Fatal(err)
			}
			want := &BindingUpdate{
				Seq:      uint16(i + 1), // the vectors use seq 1 and 2 for both ESP and BU
				Flags:    BUFlagA | BUFlagH,
				Lifetime: 150,
				Options:  []Option{AlternateCoA{Addr: netip.MustParseAddr(v.Addresses.CareOf)}},
			}
			if diff := cmp.Diff(Message(want), m, mhCmpOpts); diff != "" {
				t.Errorf("decoded BU (-want +got):\n%s", diff)
			}
			if d := m.(*BindingUpdate).LifetimeDuration(); d != 600*time.Second {
				t.Errorf("lifetime %v, want 600s", d)
			}
			ck := mhHex(t, c.MHChecksum)
			if got := header.MH(mhb).Checksum(); got != uint16(ck[0])<<8|uint16(ck[1]) {
				t.Errorf("checksum %#04x, vector %x", got, ck)
			}
			// Our encoder must produce the vector byte for byte (PadN(0)
			// then Alternate CoA at offset 14 = 8n+6).
			enc, err := EncodeMH(want, hoa, dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, mhb) {
				t.Errorf("EncodeMH = %x\nwant       %x", enc, mhb)
			}
			mhCheckWire(t, enc, hoa, dst)
			// The checksum binds the HoA: verifying with the CoA as source fails.
			if _, err := DecodeMH(mhb, ip.Src(), dst); !errors.Is(err, ErrChecksum) {
				t.Errorf("decode with CoA as source: %v, want ErrChecksum", err)
			}
		})
	}
}

// mhAllOptions has one of every option this package encodes, with nonzero
// fields, in an order that exercises padding.
func mhAllOptions() []Option {
	return []Option{
		BindingRefreshAdvice{Interval: 0x1234},
		AlternateCoA{Addr: mhCoA},
		NonceIndices{Home: 0xa1a2, CareOf: 0xb1b2},
		IPv4HomeAddress{PrefixLen: 32, P: true, Addr: mhHoA4},
		IPv4AddressAck{Status: IPv4AckPrefixUnauthorized, PrefixLen: 24, Addr: mhHoA4},
		NATDetection{F: true, RefreshTime: 110},
		IPv4CareOfAddress{Addr: mhCoA4},
		BindingIdentifier{BID: 1, Status: BAStatusMCoANotComplete, H: true},
		BindingIdentifier{BID: 2, O: true, CoA: mhCoA4},
		BindingIdentifier{BID: 0xffff, H: true, O: true, CoA: mhCoA},
		UnknownOption{Type: 200, Data: []byte{1, 2, 3}},
		UnknownOption{Type: 7},
		BindingAuthData{Authenticator: bytes.Repeat([]byte{0xaa}, 12)},
	}
}

func TestRoundTripMessages(t *testing.T) {
	cookie := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	token := [8]byte{9, 10, 11, 12, 13, 14, 15, 16}
	tests := []struct {
		name    string
		m       Message
		want    Message // nil = m
		wantLen int
	}{
		{"BU empty", &BindingUpdate{Seq: 7, Flags: BUFlagA | BUFlagH | BUFlagK, Lifetime: 0}, nil, 16},
		{"BU all flags", &BindingUpdate{Seq: 0xffff, Flags: BUFlagA | BUFlagH | BUFlagL | BUFlagK | BUFlagM | BUFlagR | BUFlagP | BUFlagF | BUFlagT, Lifetime: 0xffff}, nil, 16},
		{"BU reserved flag bits cleared", &BindingUpdate{Seq: 1, Flags: 0x007f | BUFlagA}, &BindingUpdate{Seq: 1, Flags: BUFlagA}, 16},
		{"BU DSMIPv6 IPv4 CoA", &BindingUpdate{Seq: 9, Flags: BUFlagA | BUFlagH | BUFlagF, Lifetime: 150, Options: []Option{
			IPv4HomeAddress{PrefixLen: 32, Addr: netip.IPv4Unspecified()},
			IPv4CareOfAddress{Addr: mhCoA4},
		}}, nil, 32},
		{"BU alt CoA", &BindingUpdate{Seq: 1, Flags: BUFlagA | BUFlagH, Lifetime: 150, Options: []Option{AlternateCoA{Addr: mhCoA}}}, nil, 32},
		{"BU every option", &BindingUpdate{Seq: 3, Flags: BUFlagH, Lifetime: 10, Options: mhAllOptions()}, nil, 0},
		{"BU padding options ignored", &BindingUpdate{Seq: 3, Options: []Option{PadN{N: 5}, Pad1{}, NATDetection{}}},
			&BindingUpdate{Seq: 3, Options: []Option{NATDetection{}}}, 24},
		{"BA accepted", &BindingAck{Status: BAStatusAccepted, Flags: BAFlagK, Seq: 7, Lifetime: 150}, nil, 16},
		{"BA all flags", &BindingAck{Status: BAStatusSeqOutOfWindow, Flags: BAFlagK | BAFlagR | BAFlagP | BAFlagT, Seq: 0x8000}, nil, 16},
		{"BA reserved flag bits cleared", &BindingAck{Flags: 0x0f}, &BindingAck{}, 16},
		{"BA DSMIPv6", &BindingAck{Status: BAStatusAccepted, Seq: 9, Lifetime: 150, Options: []Option{
			BindingRefreshAdvice{Interval: 100},
			IPv4AddressAck{Status: IPv4AckSuccess, PrefixLen: 32, Addr: mhHoA4},
			NATDetection{RefreshTime: NATRefreshNone},
		}}, nil, 32},
		{"BA every option", &BindingAck{Status: 166, Seq: 1, Options: mhAllOptions()}, nil, 0},
		{"BE", &BindingError{Status: BEStatusUnknownHAO, HomeAddress: mhHoA}, nil, 24},
		{"BE unspecified address", &BindingError{Status: BEStatusUnknownType}, &BindingError{Status: BEStatusUnknownType, HomeAddress: netip.IPv6Unspecified()}, 24},
		{"BE with options", &BindingError{Status: 2, HomeAddress: mhHoA, Options: mhAllOptions()}, nil, 0},
		{"BRR", &BindingRefreshRequest{}, nil, 8},
		{"BRR with BID", &BindingRefreshRequest{Options: []Option{BindingIdentifier{BID: 4}}}, nil, 16},
		{"HoTI", &HomeTestInit{Cookie: cookie}, nil, 16},
		{"CoTI", &CareOfTestInit{Cookie: cookie, Options: []Option{BindingIdentifier{BID: 3}}}, nil, 24},
		{"HoT", &HomeTest{NonceIndex: 0x0102, Cookie: cookie, Token: token}, nil, 24},
		{"CoT", &CareOfTest{NonceIndex: 0xfffe, Cookie: cookie, Token: token}, nil, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = tt.m
			}
			b, err := EncodeMH(tt.m, mhHoA, mhHA)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantLen != 0 && len(b) != tt.wantLen {
				t.Errorf("encoded %d bytes, want %d: %x", len(b), tt.wantLen, b)
			}
			if header.MH(b).Type() != tt.m.MHType() {
				t.Errorf("type %d", header.MH(b).Type())
			}
			types := mhCheckWire(t, b, mhHoA, mhHA)
			var wantTypes []uint8
			for _, o := range want.MobilityOptions() {
				wantTypes = append(wantTypes, o.OptionType())
			}
			if diff := cmp.Diff(wantTypes, types); diff != "" {
				t.Errorf("option types on the wire (-want +got):\n%s", diff)
			}
			got, err := DecodeMH(b, mhHoA, mhHA)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, mhCmpOpts); diff != "" {
				t.Errorf("decode(encode) (-want +got):\n%s", diff)
			}
			// Re-encoding the decoded message is byte-identical.
			b2, err := EncodeMH(got, mhHoA, mhHA)
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("re-encode = %x, %v\nwant        %x", b2, err, b)
			}
			// AppendMH appends after existing bytes.
			pre := []byte{0xde, 0xad}
			b3, err := AppendMH(pre, tt.m, mhHoA, mhHA)
			if err != nil || !bytes.Equal(b3[:2], pre) || !bytes.Equal(b3[2:], b) {
				t.Errorf("AppendMH = %x, %v", b3, err)
			}
		})
	}
}

// TestEncodeOptionBytes pins the wire layout of each option against byte
// strings written from RFC 5555 §3 / RFC 5648 §6.1 / RFC 6275 §6.2 figures.
func TestEncodeOptionBytes(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string // the MH from offset 6, checksum excluded
	}{
		{"BU IPv4 HoA + IPv4 CoA", &BindingUpdate{Seq: 1, Flags: BUFlagA | BUFlagH | BUFlagF, Lifetime: 150, Options: []Option{
			IPv4HomeAddress{PrefixLen: 32, Addr: mhHoA4}, IPv4CareOfAddress{Addr: mhCoA4}}},
			"0001 c100 0096 | 1d06 8000 c000020a | 2006 0000 c6336407 | 0102 0000"},
		{"BU IPv4 HoA prefix request P", &BindingUpdate{Options: []Option{IPv4HomeAddress{PrefixLen: 24, P: true, Addr: netip.IPv4Unspecified()}}},
			"0000 0000 0000 | 1d06 6200 00000000 | 0102 0000"},
		{"BA NAT detection F", &BindingAck{Status: 0, Seq: 1, Lifetime: 150, Options: []Option{NATDetection{F: true, RefreshTime: 110}}},
			"00 00 0001 0096 | 1f06 8000 0000006e | 0102 0000"},
		{"BA IPv4 ack", &BindingAck{Status: 0, Flags: BAFlagK, Seq: 2, Options: []Option{IPv4AddressAck{Status: IPv4AckSuccess, PrefixLen: 32, Addr: mhHoA4}}},
			"00 80 0002 0000 | 1e06 0080 c000020a | 0102 0000"},
		{"BA refresh advice", &BindingAck{Seq: 3, Lifetime: 150, Options: []Option{BindingRefreshAdvice{Interval: 10}}},
			"00 00 0003 0096 | 0202 000a"},
		{"BU BID IPv6 CoA at 8n+2", &BindingUpdate{Options: []Option{BindingIdentifier{BID: 1, H: true, CoA: mhCoA}}},
			"0000 0000 0000 | 0104 00000000 | 2314 0001 0080 20010db8000200000000000000000100"},
		{"BU BID IPv4 CoA", &BindingUpdate{Options: []Option{BindingIdentifier{BID: 2, Status: 4, O: true, CoA: mhCoA4}}},
			"0000 0000 0000 | 0104 00000000 | 2308 0002 0440 c6336407 | 0102 0000"},
		{"BU BID no CoA", &BindingUpdate{Options: []Option{BindingIdentifier{BID: 3}}},
			"0000 0000 0000 | 2304 0003 0000 | 0104 00000000"},
		{"BU nonce indices + BAD last", &BindingUpdate{Options: []Option{NonceIndices{Home: 1, CareOf: 2}, BindingAuthData{Authenticator: bytes.Repeat([]byte{0xaa}, 12)}}},
			"0000 0000 0000 | 0404 0001 0002 | 050c aaaaaaaaaaaaaaaaaaaaaaaa"},
		{"BU unknown option unaligned, then Pad1 before 2n", &BindingUpdate{Options: []Option{UnknownOption{Type: 0xc8, Data: []byte{1}}, BindingRefreshAdvice{Interval: 1}}},
			"0000 0000 0000 | c801 01 | 00 | 0202 0001 | 0102 0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeMH(tt.m, mhHoA, mhHA)
			if err != nil {
				t.Fatal(err)
			}
			want := mhHex(t, strings.ReplaceAll(tt.want, "|", ""))
			if !bytes.Equal(b[6:], want) {
				t.Errorf("data = %x\nwant   %x", b[6:], want)
			}
			mhCheckWire(t, b, mhHoA, mhHA)
		})
	}
}

// mhFix sets the checksum for mhHoA -> mhHA over the first Header Len
// bytes of b (all of b if shorter), so hostile rows fail for the reason
// they test.
func mhFix(b []byte) []byte {
	n := min(len(b), header.MH(b).Len())
	header.MH(b).SetChecksum(header.MHChecksum(mhHoA, mhHA, b[:n]))
	return b
}

func TestDecodeHostile(t *testing.T) {
	bu := func(opts string) []byte { // a BU whose data after the fixed part is opts
		o := mhHex(t, opts)
		b := append(mhHex(t, "3b 00 05 00 0000 0001 8000 0001"), o...)
		if len(b)%8 != 0 {
			t.Fatalf("test row of %d bytes: %x", len(b), b)
		}
		b[1] = uint8(len(b)/8 - 1)
		return b
	}
	long := make([]byte, MHMaxLen+8)
	copy(long, mhHex(t, "3b ff 00 00 0000 0000"))
	tests := []struct {
		name string
		b    []byte
		fix  bool // recompute the checksum
		want error
	}{
		{"empty", nil, false, ErrMalformed},
		{"7 bytes", mhHex(t, "3b00000000000000")[:7], false, ErrMalformed},
		{"header len past end", mhHex(t, "3b01000000000000"), true, ErrMalformed},
		{"header len 255 on 16 bytes", mhHex(t, "3bff0000 00000000 00000000 00000000"), true, ErrMalformed},
		{"BU header len 0 below minimum", mhHex(t, "3b000500 0000 0001"), true, ErrMalformed},
		{"BA header len 0 below minimum", mhHex(t, "3b000600 0000 0001"), true, ErrMalformed},
		{"BE header len 1 below minimum", mhHex(t, "3b010700 0000 0100 00000000 00000000"), true, ErrMalformed},
		{"HoT header len 1 below minimum", mhHex(t, "3b010300 0000 0100 00000000 00000000"), true, ErrMalformed},
		{"bad checksum", bu("0100 0100"), false, ErrChecksum},
		{"payload proto 6", func() []byte { b := bu("0100 0100"); b[0] = 6; return b }(), true, ErrPayloadProto},
		{"unknown MH type 8", mhHex(t, "3b000800 0000 0000"), true, ErrUnknownType},
		{"unknown MH type 255", mhHex(t, "3b00ff00 0000 0000"), true, ErrUnknownType},
		{"option length past end", bu("0305 0000"), true, ErrMalformedOption},
		{"PadN length past end", bu("0103 0000"), true, ErrMalformedOption},
		{"type byte last, no length", bu("000000 03"), true, ErrMalformedOption},
		{"alt CoA length 15", bu("0100 030f" + strings.Repeat("00", 15) + "00"), true, ErrMalformedOption},
		{"alt CoA length 17", bu("0100 0311" + strings.Repeat("00", 17) + "0105 0000000000"), true, ErrMalformedOption},
		{"IPv4 HoA length 5", bu("1d05 0000000000 0103 000000"), true, ErrMalformedOption},
		{"IPv4 CoA length 7", bu("2007 00000000000000 0101 00"), true, ErrMalformedOption},
		{"IPv4 ack length 2", bu("1e02 0000"), true, ErrMalformedOption},
		{"NAT detection length 0", bu("1f00 0000"), true, ErrMalformedOption},
		{"refresh advice length 4", bu("0204 00000000 0104 00000000"), true, ErrMalformedOption},
		{"nonce indices length 2", bu("0402 0000"), true, ErrMalformedOption},
		{"BID length 0", bu("2300 0000"), true, ErrMalformedOption},
		{"BID length 6", bu("2306 000000000000 0102 0000"), true, ErrMalformedOption},
		{"BID length 16", bu("2310" + strings.Repeat("00", 16) + "0100"), true, ErrMalformedOption},
		{"option after BAD", bu("0100 0502 0000 0202 0000 0100"), true, ErrMalformedOption},
		{"MH over 2048 claimed", long[:16], true, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte(nil), tt.b...)
			if tt.fix && len(b) >= 6 {
				mhFix(b)
			}
			m, err := DecodeMH(b, mhHoA, mhHA)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeMH(%x) = %v, %v; want %v", b, m, err, tt.want)
			}
			if m != nil {
				t.Errorf("message %v with error", m)
			}
		})
	}
}

// TestDecodeAccepts has odd but valid rows.
func TestDecodeAccepts(t *testing.T) {
	bu := func(opts string) []byte {
		b := append(mhHex(t, "3b 00 05 00 0000 0001 8000 0001"), mhHex(t, opts)...)
		if len(b)%8 != 0 {
			t.Fatalf("test row of %d bytes: %x", len(b), b)
		}
		b[1] = uint8(len(b)/8 - 1)
		return mhFix(b)
	}
	tests := []struct {
		name string
		b    []byte
		want Message
	}{
		{"zero-length PadN", bu("0100 0100"), &BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1}},
		{"four Pad1", bu("00000000"), &BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1}},
		{"PadN with nonzero data ignored", bu("0102 ffff"), &BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1}},
		{"PadN filling to the end", bu("010a" + strings.Repeat("00", 10)), &BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1}},
		{"misaligned alt CoA accepted", bu("0310 20010db8000200000000000000000100 0100"),
			&BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1, Options: []Option{AlternateCoA{Addr: mhCoA}}}},
		{"unknown options skipped and recorded", bu("c802 abcd 0000 1f06 0000 00000010 0000 6400 0000"),
			&BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1, Options: []Option{
				UnknownOption{Type: 0xc8, Data: []byte{0xab, 0xcd}}, NATDetection{RefreshTime: 16}, UnknownOption{Type: 0x64}}}},
		{"padding after BAD", bu("0100 050c" + strings.Repeat("11", 12) + "0102 0000"),
			&BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1, Options: []Option{BindingAuthData{Authenticator: bytes.Repeat([]byte{0x11}, 12)}}}},
		{"NAT detection reserved bits ignored", bu("1f06 7fff 0000006e 0102 0000"), &BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1, Options: []Option{NATDetection{RefreshTime: 110}}}},
		{"trailing bytes after Header Len ignored", append(bu("0100 0100"), 0xff, 0xff), &BindingUpdate{Seq: 1, Flags: BUFlagA, Lifetime: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMH(tt.b, mhHoA, mhHA)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, m, mhCmpOpts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeTruncatedEveryLength cuts every encoded message at every
// length: a short buffer is ErrMalformed; with Header Len rewritten to fit
// (and the checksum fixed) decoding never panics and fails with a sentinel.
func TestDecodeTruncatedEveryLength(t *testing.T) {
	msgs := []Message{
		&BindingUpdate{Seq: 3, Flags: BUFlagH, Lifetime: 10, Options: mhAllOptions()},
		&BindingAck{Status: 1, Seq: 1, Options: mhAllOptions()[:9]},
		&BindingError{Status: 1, HomeAddress: mhHoA},
		&HomeTest{NonceIndex: 1},
		&BindingRefreshRequest{},
	}
	for _, m := range msgs {
		full, err := EncodeMH(m, mhHoA, mhHA)
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(full) {
			if _, err := DecodeMH(full[:n], mhHoA, mhHA); !errors.Is(err, ErrMalformed) {
				t.Errorf("type %d cut at %d/%d: %v, want ErrMalformed", m.MHType(), n, len(full), err)
			}
			if n < 8 || n%8 != 0 {
				continue
			}
			b := append([]byte(nil), full[:n]...)
			b[1] = uint8(n/8 - 1)
			mhFix(b)
			_, err := DecodeMH(b, mhHoA, mhHA)
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMalformedOption) {
				t.Errorf("type %d Header Len cut to %d: %v", m.MHType(), n, err)
			}
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	many := make([]Option, 0, 200)
	for range 200 {
		many = append(many, AlternateCoA{Addr: mhCoA})
	}
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"nil", nil, ErrUnknownType},
		{"alt CoA IPv4", &BindingUpdate{Options: []Option{AlternateCoA{Addr: mhCoA4}}}, ErrMalformedOption},
		{"alt CoA invalid", &BindingUpdate{Options: []Option{AlternateCoA{}}}, ErrMalformedOption},
		{"IPv4 HoA IPv6", &BindingUpdate{Options: []Option{IPv4HomeAddress{PrefixLen: 32, Addr: mhHoA}}}, ErrMalformedOption},
		{"IPv4 HoA prefix 64", &BindingUpdate{Options: []Option{IPv4HomeAddress{PrefixLen: 64, Addr: mhHoA4}}}, ErrMalformedOption},
		{"IPv4 ack no address", &BindingAck{Options: []Option{IPv4AddressAck{}}}, ErrMalformedOption},
		{"IPv4 CoA IPv6", &BindingUpdate{Options: []Option{IPv4CareOfAddress{Addr: mhCoA}}}, ErrMalformedOption},
		{"nil option", &BindingUpdate{Options: []Option{nil}}, ErrMalformedOption},
		{"BAD not last", &BindingUpdate{Options: []Option{BindingAuthData{Authenticator: make([]byte, 12)}, NonceIndices{}}}, ErrMalformedOption},
		{"unknown option with known type", &BindingUpdate{Options: []Option{UnknownOption{Type: OptAlternateCoA}}}, ErrMalformedOption},
		{"unknown option with pad type", &BindingUpdate{Options: []Option{UnknownOption{Type: OptPadN}}}, ErrMalformedOption},
		{"unknown option too long", &BindingUpdate{Options: []Option{UnknownOption{Type: 99, Data: make([]byte, 256)}}}, ErrMalformedOption},
		{"over 2048 bytes", &BindingUpdate{Options: many}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := EncodeMH(tt.m, mhHoA, mhHA); !errors.Is(err, tt.want) {
				t.Errorf("EncodeMH = %x, %v; want %v", b, err, tt.want)
			}
		})
	}
}

func TestOptionIterPadding(t *testing.T) {
	b := mhHex(t, "3b010500 0000 0001 0000 0001 00 0103 000000 0202 0005")
	it := NewOptionIter(b, 12)
	var got []Option
	var offs []int
	for {
		off := it.Offset()
		o, done, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		got = append(got, o)
		offs = append(offs, off)
	}
	want := []Option{Pad1{}, PadN{N: 5}, BindingRefreshAdvice{Interval: 5}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{12, 13, 18}, offs); diff != "" {
		t.Errorf("offsets (-want +got):\n%s", diff)
	}
	// After an error the iterator is done.
	it = NewOptionIter(mhHex(t, "3b000500 0000 0001 0305"), 8)
	if _, _, err := it.Next(); !errors.Is(err, ErrMalformedOption) {
		t.Fatalf("err %v", err)
	}
	if _, done, err := it.Next(); !done || err != nil {
		t.Errorf("after error: done %v err %v", done, err)
	}
}

// TestOptionAlign checks each option's Align against the spec table.
func TestOptionAlign(t *testing.T) {
	for _, o := range append(mhAllOptions(), Pad1{}, PadN{N: 3}) {
		x, y := o.Align()
		wx, wy := mhSpecAlign(o.OptionType(), o.dataLen())
		if x != wx || y != wy {
			t.Errorf("%T: Align %dn+%d, spec %dn+%d", o, x, y, wx, wy)
		}
	}
}

// TestSeqLess checks SeqLess against RFC 6275 §9.5.1 and its example.
func TestSeqLess(t *testing.T) {
	// RFC 6275 §9.5.1: with last accepted 15, 0..15 and 32783..65535 are
	// not greater; 16..32782 are.
	for s := 0; s <= 0xffff; s++ {
		newer := s >= 16 && s <= 32782
		if got := SeqLess(15, uint16(s)); got != newer {
			t.Fatalf("SeqLess(15, %d) = %v, want %v", s, got, newer)
		}
	}
	tests := []struct {
		a, b uint16
		want bool
	}{
		{0, 1, true}, {1, 0, false}, {5, 5, false},
		{0xffff, 0, true}, {0, 0xffff, false},
		{0, 32767, true}, {0, 32768, false}, {32768, 0, false},
		{40000, 7231, true}, {40000, 7232, false}, // 7231-40000 = 32767 mod 2^16
	}
	for _, tt := range tests {
		if got := SeqLess(tt.a, tt.b); got != tt.want {
			t.Errorf("SeqLess(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	// Antisymmetric: never both.
	for _, a := range []uint16{0, 1, 100, 32767, 32768, 65535} {
		for d := range 65536 {
			b := a + uint16(d)
			if SeqLess(a, b) && SeqLess(b, a) {
				t.Fatalf("SeqLess both ways for %d, %d", a, b)
			}
		}
	}
}

func TestStatusStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{BAStatusAccepted.String(), "accepted"},
		{BAStatusSeqOutOfWindow.String(), "sequence number out of window"},
		{BAStatus(135).String(), "sequence number out of window"},
		{BAStatusNotHomeAgent.String(), "not home agent for this mobile node"},
		{BAStatus(2).String(), "accepted (2)"},
		{BAStatus(200).String(), "rejected (200)"},
		{BEStatusUnknownType.String(), "unrecognized MH type"},
		{BEStatus(9).String(), "BE status 9"},
		{IPv4AckDynamicUnavailable.String(), "dynamic IPv4 home address assignment not available"},
		{IPv4AckStatus(5).String(), "success (5)"},
		{IPv4AckStatus(140).String(), "failure (140)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
	if !BAStatusAcceptedPrefixDiscover.Accepted() || BAStatusUnspecified.Accepted() {
		t.Error("Accepted boundary at 128")
	}
	if !IPv4AckStatus(127).Success() || IPv4AckUnspecified.Success() {
		t.Error("Success boundary at 128")
	}
	for s, n := range baStatusNames {
		if n == "" || s.String() != n {
			t.Errorf("status %d name %q", s, n)
		}
	}
}

func TestLifetimeUnits(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want uint16
	}{
		{0, 0}, {-time.Second, 0}, {3 * time.Second, 0}, {4 * time.Second, 1},
		{600 * time.Second, 150}, {time.Hour * 100, 0xffff},
	}
	for _, tt := range tests {
		if got := LifetimeUnits(tt.d); got != tt.want {
			t.Errorf("LifetimeUnits(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
	ba := &BindingAck{Lifetime: 150}
	if ba.LifetimeDuration() != 10*time.Minute {
		t.Error(ba.LifetimeDuration())
	}
}

// TestMHTypesMatchHeader keeps the exported MH types equal to the view's.
func TestMHTypesMatchHeader(t *testing.T) {
	for typ := range uint8(8) {
		m := newMessage(typ)
		if m == nil || m.MHType() != typ {
			t.Errorf("type %d: %T", typ, m)
		}
	}
	if newMessage(8) != nil {
		t.Error("type 8 known")
	}
}
