package ike

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"net/netip"
	"testing"
)

func TestNATDetectionHash(t *testing.T) {
	// Built by hand: SPIi | SPIr | IP | port.
	in, _ := hex.DecodeString("0102030405060708" + "0000000000000000" + "c0000201" + "01f4")
	want := sha1.Sum(in)
	got := NATDetectionHash(0x0102030405060708, 0, netip.MustParseAddrPort("192.0.2.1:500"))
	if !bytes.Equal(got, want[:]) {
		t.Errorf("IPv4: got %x, want %x", got, want)
	}
	// An IPv4-mapped address is the IPv4 address.
	if m := NATDetectionHash(0x0102030405060708, 0, netip.MustParseAddrPort("[::ffff:192.0.2.1]:500")); !bytes.Equal(m, want[:]) {
		t.Errorf("mapped: got %x", m)
	}
	in6, _ := hex.DecodeString("0102030405060708" + "1112131415161718" + "20010db8000000000000000000000001" + "1194")
	want6 := sha1.Sum(in6)
	if got := NATDetectionHash(0x0102030405060708, 0x1112131415161718, netip.MustParseAddrPort("[2001:db8::1]:4500")); !bytes.Equal(got, want6[:]) {
		t.Errorf("IPv6: got %x, want %x", got, want6)
	}
	// Every input matters.
	base := NATDetectionHash(1, 2, netip.MustParseAddrPort("192.0.2.1:500"))
	for _, h := range [][]byte{
		NATDetectionHash(3, 2, netip.MustParseAddrPort("192.0.2.1:500")),
		NATDetectionHash(1, 3, netip.MustParseAddrPort("192.0.2.1:500")),
		NATDetectionHash(1, 2, netip.MustParseAddrPort("192.0.2.2:500")),
		NATDetectionHash(1, 2, netip.MustParseAddrPort("192.0.2.1:4500")),
	} {
		if bytes.Equal(h, base) || len(h) != 20 {
			t.Errorf("hash %x does not depend on its input", h)
		}
	}
}

// TestNATDetectionStrongswan checks our hashes against the two that a real
// charon put in its IKE_SA_INIT request from 192.0.2.1:500 to
// 192.0.2.2:5000 (testdata).
func TestNATDetectionStrongswan(t *testing.T) {
	v := strongswanVectors(t)[0]
	m, err := Decode(v.msg)
	if err != nil {
		t.Fatal(err)
	}
	var src, dst [][]byte
	for _, p := range m.Payloads {
		if n, ok := p.(*Notify); ok {
			switch n.NotifyType {
			case NAT_DETECTION_SOURCE_IP:
				src = append(src, n.Data)
			case NAT_DETECTION_DESTINATION_IP:
				dst = append(dst, n.Data)
			}
		}
	}
	if len(src) != 1 || len(dst) != 1 || m.SPIr != 0 {
		t.Fatalf("vector has %d source and %d destination hashes, SPIr %x", len(src), len(dst), m.SPIr)
	}
	from, to := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:5000")
	sN, dN := NATDetectionNotifies(m.SPIi, m.SPIr, from, to)
	if !bytes.Equal(sN.Data, src[0]) || !bytes.Equal(dN.Data, dst[0]) {
		t.Errorf("ours %x %x, charon's %x %x", sN.Data, dN.Data, src[0], dst[0])
	}
	if sN.NotifyType != NAT_DETECTION_SOURCE_IP || dN.NotifyType != NAT_DETECTION_DESTINATION_IP || sN.Protocol != 0 || len(sN.SPI) != 0 {
		t.Errorf("notifies %+v %+v", sN, dN)
	}
	if s, d := CheckNAT(m.SPIi, m.SPIr, src, dst, from, to); s || d {
		t.Errorf("no NAT on the path, got natSrc %v natDst %v", s, d)
	}
	// Had a NAT rewritten the source, we would see the packet from elsewhere.
	if s, d := CheckNAT(m.SPIi, m.SPIr, src, dst, netip.MustParseAddrPort("198.51.100.7:31000"), to); !s || d {
		t.Errorf("peer behind a NAT: got natSrc %v natDst %v", s, d)
	}
}

func TestCheckNAT(t *testing.T) {
	const spii, spir = 0xaaaa, 0xbbbb
	peer := netip.MustParseAddrPort("203.0.113.5:500")   // the peer's own address
	local := netip.MustParseAddrPort("192.168.1.10:500") // ours, before any NAT
	public := netip.MustParseAddrPort("198.51.100.1:1024")
	h := func(a netip.AddrPort) []byte { return NATDetectionHash(spii, spir, a) }

	tests := []struct {
		name           string
		src, dst       [][]byte
		from, to       netip.AddrPort // the received packet's addresses
		natSrc, natDst bool
	}{
		{"no NAT", [][]byte{h(peer)}, [][]byte{h(local)}, peer, local, false, false},
		// The peer sent to our public address; we received on our private one.
		{"we are behind a NAT", [][]byte{h(peer)}, [][]byte{h(public)}, peer, local, false, true},
		// The peer hashed its private address; we see its public one.
		{"the peer is behind a NAT", [][]byte{h(local)}, [][]byte{h(peer)}, public, peer, true, false},
		{"both", [][]byte{h(local)}, [][]byte{h(public)}, peer, peer, true, true},
		{"one of several source hashes matches", [][]byte{h(public), h(peer)}, [][]byte{h(local)}, peer, local, false, false},
		{"no notifications: no detection", nil, nil, peer, local, false, false},
		{"only a destination hash", nil, [][]byte{h(local)}, peer, local, true, false},
		{"garbage hashes", [][]byte{{1, 2, 3}, nil}, [][]byte{make([]byte, 20)}, peer, local, true, true},
		{"hash with other SPIs", [][]byte{NATDetectionHash(spii, 0, peer)}, [][]byte{h(local)}, peer, local, true, false},
	}
	for _, tt := range tests {
		s, d := CheckNAT(spii, spir, tt.src, tt.dst, tt.from, tt.to)
		if s != tt.natSrc || d != tt.natDst {
			t.Errorf("%s: natSrc %v natDst %v, want %v %v", tt.name, s, d, tt.natSrc, tt.natDst)
		}
	}
}
