package netlab

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Hand-built frames: Ethernet header, IPv4 or IPv6 header, payload.

func ether(etype uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	binary.BigEndian.PutUint16(f[12:], etype)
	return append(f, payload...)
}

func ipv4(proto byte, fragOff uint16, l4 []byte) []byte {
	h := make([]byte, 20, 20+len(l4))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(h[6:], fragOff)
	h[8], h[9] = 64, proto
	copy(h[12:], netip.MustParseAddr("198.51.100.1").AsSlice())
	copy(h[16:], netip.MustParseAddr("198.51.100.2").AsSlice())
	return ether(unix.ETH_P_IP, append(h, l4...))
}

func ipv6(next byte, l4 []byte) []byte {
	h := make([]byte, 40, 40+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6], h[7] = next, 64
	copy(h[8:], netip.MustParseAddr("2001:db8:ff::1").AsSlice())
	copy(h[24:], netip.MustParseAddr("2001:db8:ff::2").AsSlice())
	return ether(unix.ETH_P_IPV6, append(h, l4...))
}

func espHdr(spi, seq uint32, rest ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, spi)
	b = binary.BigEndian.AppendUint32(b, seq)
	return append(b, rest...)
}

func udp(sport, dport uint16, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(body)))
	b = append(b, 0, 0)
	return append(b, body...)
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		want  Frame
	}{
		{"runt", make([]byte, 10), Frame{Desc: "runt frame"}},
		{"ARP", ether(unix.ETH_P_ARP, make([]byte, 28)), Frame{Kind: Control}},
		{"LLDP", ether(0x88cc, make([]byte, 20)), Frame{Desc: "ethertype 0x88cc"}},
		{"short IPv4", ether(unix.ETH_P_IP, make([]byte, 12)), Frame{Desc: "short IPv4"}},
		{"short IPv6", ether(unix.ETH_P_IPV6, make([]byte, 30)), Frame{Desc: "short IPv6"}},
		{"raw ESP v4", ipv4(unix.IPPROTO_ESP, 0, espHdr(0xb001, 7, 1, 2, 3)),
			Frame{Kind: ESP, SPI: 0xb001, Seq: 7, Src: "198.51.100.1"}},
		{"raw ESP v6", ipv6(unix.IPPROTO_ESP, espHdr(0xa006, 9)),
			Frame{Kind: ESP, SPI: 0xa006, Seq: 9, Src: "2001:db8:ff::1"}},
		{"ESP too short", ipv4(unix.IPPROTO_ESP, 0, []byte{0, 0, 0xb0, 1}),
			Frame{Src: "198.51.100.1", Desc: "IP protocol 50"}},
		{"IPv4 fragment", ipv4(unix.IPPROTO_ESP, 185, espHdr(0xb001, 1)),
			Frame{Src: "198.51.100.1", Desc: "IPv4 fragment"}},
		{"ESP in UDP", ipv4(unix.IPPROTO_UDP, 0, udp(4500, 4500, espHdr(0xb001, 3, 0xaa))),
			Frame{Kind: ESP, SPI: 0xb001, Seq: 3, UDP: true, Src: "198.51.100.1", SrcPort: 4500}},
		{"ESP in UDP behind a NAT", ipv4(unix.IPPROTO_UDP, 0, udp(40001, 4500, espHdr(0xb001, 4))),
			Frame{Kind: ESP, SPI: 0xb001, Seq: 4, UDP: true, Src: "198.51.100.1", SrcPort: 40001}},
		{"keepalive", ipv4(unix.IPPROTO_UDP, 0, udp(4500, 4500, []byte{0xff})),
			Frame{Kind: Keepalive, Src: "198.51.100.1", SrcPort: 4500}},
		{"UDP 4500 with SPI 0 (IKE)", ipv4(unix.IPPROTO_UDP, 0, udp(4500, 4500, make([]byte, 12))),
			Frame{Src: "198.51.100.1", Desc: "UDP 4500->4500, 12 bytes"}},
		{"other UDP", ipv4(unix.IPPROTO_UDP, 0, udp(53, 5353, espHdr(1, 1))),
			Frame{Src: "198.51.100.1", Desc: "IP protocol 17"}},
		{"TCP", ipv4(unix.IPPROTO_TCP, 0, make([]byte, 20)),
			Frame{Src: "198.51.100.1", Desc: "IP protocol 6"}},
		{"neighbour solicitation", ipv6(unix.IPPROTO_ICMPV6, []byte{135, 0, 0, 0}),
			Frame{Kind: Control, Src: "2001:db8:ff::1"}},
		{"MLDv2 report", ipv6(unix.IPPROTO_ICMPV6, []byte{143, 0, 0, 0}),
			Frame{Kind: Control, Src: "2001:db8:ff::1"}},
		{"hop-by-hop (MLD)", ipv6(0, make([]byte, 8)),
			Frame{Kind: Control, Src: "2001:db8:ff::1"}},
		{"ICMPv6 echo request", ipv6(unix.IPPROTO_ICMPV6, []byte{128, 0, 0, 0}),
			Frame{Src: "2001:db8:ff::1", Desc: "ICMPv6 type 128 code 0"}},
		{"ICMPv6 parameter problem", ipv6(unix.IPPROTO_ICMPV6, []byte{4, 2, 0, 0}),
			Frame{Src: "2001:db8:ff::1", Desc: "ICMPv6 type 4 code 2"}},
		{"ICMP echo request", ipv4(unix.IPPROTO_ICMP, 0, []byte{8, 0, 0, 0}),
			Frame{Src: "198.51.100.1", Desc: "ICMP type 8 code 0"}},
		{"ICMP cut short", ipv4(unix.IPPROTO_ICMP, 0, []byte{8}),
			Frame{Src: "198.51.100.1", Desc: "IP protocol 1"}},
		{"ICMP port unreachable", ipv4(unix.IPPROTO_ICMP, 0, []byte{3, 3, 0, 0}),
			Frame{Kind: ICMPError, Src: "198.51.100.1"}},
		{"ICMPv6 unreachable", ipv6(unix.IPPROTO_ICMPV6, []byte{1, 4, 0, 0}),
			Frame{Kind: ICMPError, Src: "2001:db8:ff::1"}},
	} {
		if got := Classify(tc.frame); got != tc.want {
			t.Errorf("%s: Classify = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestStatsAdd(t *testing.T) {
	marker := []byte("PLAINTEXT-MARKER")
	var s Stats
	esp := ipv4(unix.IPPROTO_ESP, 0, espHdr(0xb001, 1))
	s.Add(esp, true, marker)
	s.Add(ipv4(unix.IPPROTO_UDP, 0, udp(40001, 4500, espHdr(0xa001, 1))), false, marker)
	s.Add(ipv4(unix.IPPROTO_UDP, 0, udp(4500, 4500, []byte{0xff})), false, marker)
	s.Add(ether(unix.ETH_P_ARP, make([]byte, 28)), false, marker)
	s.Add(ipv4(unix.IPPROTO_TCP, 0, append(make([]byte, 20), marker...)), false, marker)
	s.Add(ipv4(unix.IPPROTO_ICMP, 0, []byte{3, 3, 0, 0}), false, marker)
	want := Stats{
		Frames: 6, ESPBytes: len(esp) + 14 + 20 + 16, Keepalives: 1, Control: 1, ICMPErrors: 1, Plaintext: 1,
		ESP: []ESPPacket{
			{SPI: 0xb001, Seq: 1, Out: true, Src: "198.51.100.1", Frame: 1},
			{SPI: 0xa001, Seq: 1, UDP: true, Src: "198.51.100.1", Frame: 2},
		},
	}
	c := s.clone()
	if c.Frames != want.Frames || c.ESPBytes != want.ESPBytes || c.Keepalives != 1 || c.Control != 1 ||
		c.ICMPErrors != 1 || c.Plaintext != 1 || len(c.ESP) != 2 || c.ESP[0] != want.ESP[0] || c.ESP[1] != want.ESP[1] {
		t.Errorf("stats = %+v, want %+v", c, want)
	}
	if c.Other["IP protocol 6"] != 1 || len(c.Other) != 1 {
		t.Errorf("Other = %v", c.Other)
	}
	if c.UDPFrom["198.51.100.1:40001"] != 1 || len(c.UDPFrom) != 1 {
		t.Errorf("UDPFrom = %v", c.UDPFrom)
	}
	if c.ESPInUDP() != 1 || c.SPIs()[0xb001] != 1 || c.SPIs()[0xa001] != 1 {
		t.Errorf("ESPInUDP %d, SPIs %v", c.ESPInUDP(), c.SPIs())
	}
	c.Other["x"]++ // a clone shares nothing
	if s.Other["x"] != 0 {
		t.Error("clone shares Other")
	}
	sum := s.Summary()
	for _, w := range []string{"6 frames: 2 ESP", "(1 in UDP 4500; by SPI 0x0000a001:1 0x0000b001:1)", "1 NAT keepalives", "1 ICMP unreachable", "other [IP protocol 6:1]", "1 with plaintext"} {
		if !strings.Contains(sum, w) {
			t.Errorf("Summary() = %q, lacks %q", sum, w)
		}
	}
}

func TestPayload(t *testing.T) {
	marker := []byte("MARKER")
	var seed [32]byte
	// Odd read sizes: the markers sit at every KiB of the stream wherever
	// the reads split it.
	r := Payload(5000, marker, seed)
	var got bytes.Buffer
	buf := make([]byte, 333)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
	}
	b := got.Bytes()
	if len(b) != 5000 {
		t.Fatalf("%d bytes, want 5000", len(b))
	}
	for k := 0; k < 5000; k += 1024 {
		if !bytes.Equal(b[k:k+len(marker)], marker) {
			t.Errorf("no marker at %d: %q", k, b[k:k+len(marker)])
		}
	}
	if n := bytes.Count(b, marker); n != 5 {
		t.Errorf("%d markers, want 5", n)
	}
	again, _ := io.ReadAll(Payload(5000, marker, seed))
	if !bytes.Equal(again, b) {
		t.Error("the same seed gave different bytes")
	}
	seed[0] = 1
	other, _ := io.ReadAll(Payload(5000, marker, seed))
	if bytes.Equal(other, b) {
		t.Error("another seed gave the same bytes")
	}
}

func TestStaleOwner(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"mipsec-demo-123-a", 123, true},
		{"mipsec-demo-123-b", 123, true},
		{"mipsec-demo-123-", 0, false},
		{"mipsec-demo-123", 0, false},
		{"mipsec-demo-x-a", 0, false},
		{"mipsec-demo-0-a", 0, false},
		{"mipsec-e2e-77-12", 0, false}, // another prefix
		{"other", 0, false},
	} {
		pid, ok := staleOwner("mipsec-demo", tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("staleOwner(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

func TestEchoRequest(t *testing.T) {
	m := echoRequest(false, 0x1234, 7, []byte("hi"))
	if m[0] != 8 || inetChecksum(m) != 0 {
		t.Errorf("ICMPv4 echo request %x: type %d, checksum does not verify", m, m[0])
	}
	if m6 := echoRequest(true, 0x1234, 7, nil); m6[0] != 128 || m6[2] != 0 || m6[3] != 0 {
		t.Errorf("ICMPv6 echo request %x: want type 128, checksum left to the kernel", m6)
	}
	reply := append([]byte{0, 0, 0, 0}, m[4:]...)
	if !isEchoReply(false, reply, 0x1234, 7) || isEchoReply(false, reply, 0x1234, 8) || isEchoReply(true, reply, 0x1234, 7) {
		t.Error("isEchoReply")
	}
	if NetnsName("mipsec-e2e", "3") == "" || !strings.HasPrefix(NetnsName("mipsec-demo", "a"), "mipsec-demo-") {
		t.Error("NetnsName")
	}
	if _, ok := staleOwner("mipsec-demo", NetnsName("mipsec-demo", "a")); !ok {
		t.Error("RemoveStale does not recognise NetnsName's names")
	}
}
