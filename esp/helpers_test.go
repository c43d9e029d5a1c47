package esp

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// Packet builders and helpers shared by the tests. They build packets with
// header.*.Encode and plain byte writes, independent of the code under test.

var allAlgorithms = func() []Algorithm {
	var a []Algorithm
	for x := AES128GCM16; x < numAlgorithms; x++ {
		a = append(a, x)
	}
	return a
}()

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func loadJSON(t testing.TB, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func key(n int, seed byte) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = seed + byte(i)*13
	}
	return k
}

var (
	v4a, v4b = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	v6a, v6b = netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:2::2")
	tun4s    = netip.MustParseAddr("203.0.113.1")
	tun4d    = netip.MustParseAddr("203.0.113.2")
	tun6s    = netip.MustParseAddr("2001:db8:ffff::1")
	tun6d    = netip.MustParseAddr("2001:db8:ffff::2")
	hoa      = netip.MustParseAddr("2001:db8:1::100")
)

// testParams returns Params for alg; outer is the tunnel family (4 or 6),
// ignored in transport mode.
func testParams(alg Algorithm, mode Mode, outer int, esn bool) Params {
	p := Params{
		SPI:       0x1234,
		Algorithm: alg,
		EncKey:    key(alg.EncKeyLen(), 0x11),
		AuthKey:   key(alg.AuthKeyLen(), 0x77),
		ESN:       esn,
		Mode:      mode,
	}
	if mode == Tunnel {
		p.TunnelSrc, p.TunnelDst = tun4s, tun4d
		if outer == 6 {
			p.TunnelSrc, p.TunnelDst = tun6s, tun6d
		}
	}
	return p
}

func newPair(t testing.TB, p Params) (*Outbound, *Inbound) {
	t.Helper()
	o, err := NewOutbound(p)
	if err != nil {
		t.Fatalf("NewOutbound(%+v): %v", p.withoutKeys(), err)
	}
	in, err := NewInbound(p)
	if err != nil {
		t.Fatalf("NewInbound: %v", err)
	}
	return o, in
}

// udp returns a UDP header and n payload bytes (checksum 0: esp does not
// look at it).
func udp(n int, seed byte) []byte {
	b := make([]byte, header.UDPHeaderLen+n)
	u := header.UDP(b)
	u.SetSrcPort(4500 + uint16(seed))
	u.SetDstPort(53)
	u.SetLength(len(b))
	for i := range n {
		b[header.UDPHeaderLen+i] = seed + byte(i)
	}
	return b
}

// ipv4 builds an IPv4 packet; opts (a multiple of 4 bytes) follow the
// fixed header.
func ipv4(f header.IPv4Fields, opts, payload []byte) []byte {
	hl := header.IPv4MinHeaderLen + len(opts)
	p := make([]byte, hl+len(payload))
	f.TotalLen = uint16(len(p))
	header.IPv4(p).Encode(&f)
	p[0] = header.IPv4Version<<4 | byte(hl/4)
	copy(p[header.IPv4MinHeaderLen:], opts)
	copy(p[hl:], payload)
	header.IPv4(p).UpdateChecksum()
	return p
}

func ipv4UDP(n int) []byte {
	return ipv4(header.IPv4Fields{TOS: 0xb9, ID: 0x4242, Flags: header.IPv4FlagDF, TTL: 61,
		Protocol: header.ProtoUDP, Src: v4a, Dst: v4b}, nil, udp(n, 7))
}

// ext is one IPv6 extension header; its first byte (Next Header) is filled
// in by ipv6.
type ext struct {
	proto uint8
	b     []byte
}

func hopByHop() ext { return ext{header.ProtoHopByHop, []byte{0, 0, 1, 4, 0, 0, 0, 0}} }

// destOpts without a HAO: one experimental option (type 0x1e) and padding.
func destOpts() ext { return ext{header.ProtoDestOpts, []byte{0, 0, 0x1e, 2, 0xaa, 0xbb, 1, 0}} }

// destOptsHAO is the RFC 6275 §6.3 layout: PadN(2) then the HAO at 8n+6.
func destOptsHAO(a netip.Addr) ext {
	b := []byte{0, 2, 1, 2, 0, 0, optHomeAddress, 16}
	a16 := a.As16()
	return ext{header.ProtoDestOpts, append(b, a16[:]...)}
}

// routing2 is a type 2 Routing header (RFC 6275 §6.4).
func routing2(a netip.Addr) ext {
	b := []byte{0, 2, 2, 1, 0, 0, 0, 0}
	a16 := a.As16()
	return ext{header.ProtoRouting, append(b, a16[:]...)}
}

func fragment(offset uint16, more bool) ext {
	b := make([]byte, 8)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef)
	return ext{header.ProtoFragment, b}
}

func ipv6(tc uint8, src, dst netip.Addr, exts []ext, upper uint8, payload []byte) []byte {
	n := header.IPv6HeaderLen
	for _, e := range exts {
		n += len(e.b)
	}
	p := make([]byte, n+len(payload))
	first := upper
	if len(exts) > 0 {
		first = exts[0].proto
	}
	header.IPv6(p).Encode(&header.IPv6Fields{TrafficClass: tc, FlowLabel: 0x12345, PayloadLen: uint16(len(p) - header.IPv6HeaderLen),
		NextHeader: first, HopLimit: 63, Src: src, Dst: dst})
	off := header.IPv6HeaderLen
	for i, e := range exts {
		copy(p[off:], e.b)
		if i+1 < len(exts) {
			p[off] = exts[i+1].proto
		} else {
			p[off] = upper
		}
		off += len(e.b)
	}
	copy(p[off:], payload)
	return p
}

func ipv6UDP(n int) []byte {
	return ipv6(0xb9, v6a, v6b, nil, header.ProtoUDP, udp(n, 9))
}

// ipv6Mobile is an MN's packet with every header of interest: Hop-by-Hop,
// a Destination Options header before the Routing header (stays), a type 2
// Routing header, a Destination Options header with a HAO (stays, RFC 6275
// §6.3), and a last Destination Options header (encrypted). ESP goes at
// offset 40+8+8+24+24 = 104.
func ipv6Mobile(n int) []byte {
	return ipv6(0, v6a, v6b, []ext{hopByHop(), destOpts(), routing2(hoa), destOptsHAO(hoa), destOpts()},
		header.ProtoUDP, udp(n, 3))
}

// espOffsetOf finds the ESP header in a packet built by Seal by walking the
// IPv4 header or the IPv6 chain to Next Header 50; -1 if there is none.
func espOffsetOf(p []byte) int {
	switch p[0] >> 4 {
	case 4:
		if p[9] != header.ProtoESP {
			return -1
		}
		return int(p[0]&0xf) * 4
	case 6:
		nh, off := p[6], header.IPv6HeaderLen
		for nh != header.ProtoESP {
			switch nh {
			case header.ProtoHopByHop, header.ProtoRouting, header.ProtoDestOpts:
			default:
				return -1
			}
			nh, off = p[off], off+(int(p[off+1])+1)*8
		}
		return off
	}
	return -1
}

// sealed seals a copy of plain with o and returns the wire bytes.
func sealed(t testing.TB, o *Outbound, plain []byte) []byte {
	t.Helper()
	b := new(pkt.Buf)
	b.Set(plain)
	if v := o.Seal(b); v != OK {
		t.Fatalf("Seal: %v", v)
	}
	return append([]byte(nil), b.Bytes()...)
}

// open opens a copy of wire in a fresh Buf (so that b.B holds nothing from
// earlier packets) and returns the Buf.
func open(in *Inbound, wire []byte, espOff int) (*pkt.Buf, uint8, Verdict) {
	b := new(pkt.Buf)
	b.Set(wire)
	nh, v := in.Open(b, espOff)
	return b, nh, v
}

// craft builds a tunnel- or transport-mode ESP packet around an arbitrary
// plaintext pt (payload ‖ padding ‖ Pad Length ‖ Next Header, chosen by the
// test) with a valid ICV, through the same sealESP as Seal. hdr is the IP
// header to put in front (protocol/Next Header 50 already; lengths fixed
// here), or nil for none. It returns the wire bytes and the ESP offset.
func craft(t testing.TB, o *Outbound, hdr []byte, seq uint64, pt []byte) ([]byte, int) {
	t.Helper()
	st := o.st.Load()
	b := pkt.Get()
	defer pkt.Put(b)
	n := len(hdr) + header.ESPHeaderLen + o.info.ivLen + len(pt) + o.info.icvLen
	b.SetBytes(pkt.Headroom, n)
	p := b.Bytes()
	copy(p, hdr)
	s := b.Off() + len(hdr)
	copy(b.B[s+header.ESPHeaderLen+o.info.ivLen:], pt)
	if v := st.sealESP(b.B[:], s, b.End(), o.spi, seq, o.esn, nil); v != OK {
		t.Fatalf("sealESP: %v", v)
	}
	fixLengths(p)
	return append([]byte(nil), p...), len(hdr)
}

// fixLengths sets the IPv4 total length and checksum or the IPv6 payload
// length of p to len(p).
func fixLengths(p []byte) {
	if len(p) == 0 {
		return
	}
	switch p[0] >> 4 {
	case 4:
		header.IPv4(p).SetTotalLen(len(p))
		header.IPv4(p).UpdateChecksum()
	case 6:
		header.IPv6(p).SetPayloadLen(len(p) - header.IPv6HeaderLen)
	}
}

// trailer returns payload ‖ 1,2,...,pad ‖ pad ‖ nh.
func trailer(payload []byte, pad int, nh uint8) []byte {
	b := append([]byte(nil), payload...)
	for i := range pad {
		b = append(b, byte(i+1))
	}
	return append(b, byte(pad), nh)
}

// minPad is the padding Seal uses for an n-byte payload with alg.
func minPad(alg Algorithm, n int) int {
	if alg.BlockSize() == 16 {
		return (-(n + 2)) & 15
	}
	return (-(alg.IVLen() + n + 2)) & 3
}

// espHeader4 is an IPv4 header (protocol 50) to put in front of crafted
// packets.
func espHeader4() []byte {
	return ipv4(header.IPv4Fields{TTL: 64, Protocol: header.ProtoESP, Src: tun4s, Dst: tun4d}, nil, nil)
}

func ipv4ChecksumOK(p []byte) bool {
	return header.Checksum(p[:int(p[0]&0xf)*4], 0) == 0xffff
}
