package header

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"testing"
)

// Test packet builders. Each takes an optional mutator hook so that hostile
// rows can change one field of an otherwise valid packet (wg
// tun/offload_linux_test.go udp4PacketMutateIPFields).

var (
	v4Src = netip.MustParseAddr("192.0.2.1")
	v4Dst = netip.MustParseAddr("198.51.100.2")
	coa   = netip.MustParseAddr("2001:db8:2::100") // care-of address
	ha    = netip.MustParseAddr("2001:db8:1::1")   // home agent
	hoa   = netip.MustParseAddr("2001:db8:1::100") // home address
	cn    = netip.MustParseAddr("2001:db8:3::5")   // correspondent
)

// ports returns a 20-byte TCP-like or 8-byte UDP-like L4 header whose first
// 4 bytes are the ports.
func ports(src, dst uint16, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b, src)
	binary.BigEndian.PutUint16(b[2:], dst)
	for i := 4; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

func tcp(src, dst uint16) []byte { return ports(src, dst, 20) }
func udp(src, dst uint16) []byte { return ports(src, dst, 8) }

func icmp(typ, code uint8) []byte { return []byte{typ, code, 0, 0, 0, 1, 0, 1} }

// mhBU is a Binding Update (RFC 6275 §6.1.7) with 4 bytes of PadN: 16 bytes.
func mhBU() []byte {
	b := make([]byte, 16)
	MH(b).Encode(&MHFields{PayloadProto: ProtoNoNext, Type: MHTypeBU,
		Data: []byte{0, 1, 0xc0, 0, 0, 0x96}})
	return b
}

// mhType is a minimal Mobility Header of the given type.
func mhType(t uint8) []byte {
	b := make([]byte, 8)
	MH(b).Encode(&MHFields{PayloadProto: ProtoNoNext, Type: t, Data: []byte{0, 0}})
	return b
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// ip4 builds an IPv4 packet carrying l4 with a correct total length and
// checksum; mut may change the fields before encoding.
func ip4(proto uint8, l4 []byte, mut ...func(*IPv4Fields)) []byte {
	f := IPv4Fields{TTL: 64, Protocol: proto, Src: v4Src, Dst: v4Dst, ID: 0x1234}
	for _, m := range mut {
		m(&f)
	}
	hl := IPv4MinHeaderLen + len(f.Options)
	if f.TotalLen == 0 {
		f.TotalLen = uint16(hl + len(l4))
	}
	b := make([]byte, hl+len(l4))
	IPv4(b).Encode(&f)
	copy(b[hl:], l4)
	return b
}

// ip6 builds an IPv6 packet whose payload (extension headers and upper
// layer) is payload; mut may change the fields before encoding.
func ip6(next uint8, payload []byte, mut ...func(*IPv6Fields)) []byte {
	f := IPv6Fields{PayloadLen: uint16(len(payload)), NextHeader: next, HopLimit: 64, Src: coa, Dst: ha}
	for _, m := range mut {
		m(&f)
	}
	b := make([]byte, IPv6HeaderLen+len(payload))
	IPv6(b).Encode(&f)
	copy(b[IPv6HeaderLen:], payload)
	return b
}

func src6(a netip.Addr) func(*IPv6Fields) { return func(f *IPv6Fields) { f.Src = a } }
func dst6(a netip.Addr) func(*IPv6Fields) { return func(f *IPv6Fields) { f.Dst = a } }

// haoOpts is a Destination Options header holding a Home Address option.
func haoOpts(next uint8, a netip.Addr) []byte {
	b := make([]byte, HAODestOptsLen)
	DestOpts(b).EncodeHAO(next, a)
	return b
}

// rawOpts is a Destination Options or Hop-by-Hop header with the given
// option bytes, padded with PadN/Pad1 to a multiple of 8.
func rawOpts(next uint8, opts ...byte) []byte {
	n := (2 + len(opts) + 7) &^ 7
	b := make([]byte, n)
	b[0], b[1] = next, uint8(n/8-1)
	copy(b[2:], opts)
	encodePadding(b[2+len(opts):], OptPad1, OptPadN)
	return b
}

func rh2(next uint8, a netip.Addr) []byte {
	b := make([]byte, RoutingType2Len)
	RoutingType2(b).Encode(next, a)
	return b
}

// rh0 is a deprecated type 0 Routing header with one address (RFC 5095).
func rh0(next uint8, a netip.Addr, segLeft uint8) []byte {
	b := rh2(next, a)
	b[2], b[3] = 0, segLeft
	return b
}

// frag6 is an IPv6 Fragment header (RFC 8200 §4.5); off in bytes.
func frag6(next uint8, off int, more bool) []byte {
	b := make([]byte, 8)
	b[0] = next
	v := uint16(off) & ipv6FragOffsetMask
	if more {
		v |= ipv6FragMore
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef)
	return b
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buVector is one case of testdata/derived-esp-null-hmac-sha256-128-mip6-bu.json
// (copied from /work/shared/testvectors; self-made, verified in Python and Go).
type buVector struct {
	Name           string `json:"name"`
	MobilityHeader string `json:"mobility_header"`
	MHChecksum     string `json:"mh_checksum"`
	FullPacket     string `json:"full_ipv6_packet"`
}

type buVectorFile struct {
	Addresses struct {
		HomeAgent   string `json:"home_agent"`
		HomeAddress string `json:"home_address"`
		CareOf      string `json:"care_of_address"`
	} `json:"addresses"`
	Cases []buVector `json:"cases"`
}

func loadBUVectors(t testing.TB) buVectorFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/derived-esp-null-hmac-sha256-128-mip6-bu.json")
	if err != nil {
		t.Fatal(err)
	}
	var v buVectorFile
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("no cases in BU vector file")
	}
	return v
}

// rfc7634 holds the packets of testdata/rfc7634-chacha20-poly1305-esp.json
// (RFC 7634 Appendix A).
type rfc7634 struct {
	InnerPacket string `json:"inner_packet"`
	OuterHeader string `json:"outer_ipv4_header"`
	FullPacket  string `json:"esp_packet_with_outer_ipv4"`
}

func loadRFC7634(t testing.TB) rfc7634 {
	t.Helper()
	raw, err := os.ReadFile("testdata/rfc7634-chacha20-poly1305-esp.json")
	if err != nil {
		t.Fatal(err)
	}
	var v rfc7634
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
