package esp

import (
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
)

func TestLocate(t *testing.T) {
	v4 := func(proto uint8, flags uint16, payload int) []byte {
		p := make([]byte, 20+payload)
		header.IPv4(p).Encode(&header.IPv4Fields{TotalLen: uint16(len(p)), TTL: 64, Protocol: proto, Flags: flags,
			Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")})
		if payload >= 4 {
			header.ESP(p[20:]).SetSPI(0x01020304)
		}
		return p
	}
	v6 := func(ext []byte, next uint8, payload int) []byte {
		p := make([]byte, 40+len(ext)+payload)
		first := next
		if len(ext) > 0 {
			first = header.ProtoDestOpts
		}
		header.IPv6(p).Encode(&header.IPv6Fields{PayloadLen: uint16(len(ext) + payload), NextHeader: first, HopLimit: 64,
			Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")})
		copy(p[40:], ext)
		if payload >= 4 {
			header.ESP(p[40+len(ext):]).SetSPI(0x0a0b0c0d)
		}
		return p
	}
	hao := make([]byte, header.HAODestOptsLen)
	header.DestOpts(hao).EncodeHAO(header.ProtoESP, netip.MustParseAddr("2001:db8::100"))
	frag := v4(header.ProtoESP, header.IPv4FlagMF, 16)
	fragHdr := []byte{header.ProtoESP, 0, 0, 8, 0, 0, 0, 1} // offset 1
	v6frag := v6(nil, header.ProtoFragment, 24)
	copy(v6frag[40:], fragHdr)

	for _, tt := range []struct {
		name   string
		p      []byte
		spi    uint32
		off    int
		wantOK bool
	}{
		{"ipv4 esp", v4(header.ProtoESP, 0, 16), 0x01020304, 20, true},
		{"ipv6 esp", v6(nil, header.ProtoESP, 16), 0x0a0b0c0d, 40, true},
		{"ipv6 hao then esp", v6(hao, 0, 16), 0x0a0b0c0d, 64, true},
		{"ipv4 udp", v4(header.ProtoUDP, 0, 16), 0, 0, false},
		{"ipv4 fragment", frag, 0, 0, false},
		{"ipv6 fragment", v6frag, 0, 0, false},
		{"ipv4 esp too short", v4(header.ProtoESP, 0, 7), 0, 0, false},
		{"ipv6 esp too short", v6(nil, header.ProtoESP, 4), 0, 0, false},
		{"empty", nil, 0, 0, false},
		{"version 5", []byte{0x50, 0, 0, 0}, 0, 0, false},
		{"ipv4 truncated", v4(header.ProtoESP, 0, 16)[:30], 0, 0, false},
		{"ipv6 ext header runs past payload", v6(hao[:16], 0, 0), 0, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spi, off, ok := Locate(tt.p)
			if ok != tt.wantOK || spi != tt.spi || off != tt.off {
				t.Fatalf("Locate = (%#x, %d, %v), want (%#x, %d, %v)", spi, off, ok, tt.spi, tt.off, tt.wantOK)
			}
		})
	}
}

func FuzzLocate(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 50, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 0, 0, 1, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		spi, off, ok := Locate(p)
		if !ok {
			return
		}
		// Invariants: the ESP header fits, its SPI is what was returned,
		// and the byte before it names ESP as the next protocol.
		if off < header.IPv4MinHeaderLen || off+header.ESPHeaderLen > len(p) {
			t.Fatalf("offset %d outside packet of %d", off, len(p))
		}
		if got := header.ESP(p[off:]).SPI(); got != spi {
			t.Fatalf("spi %#x, bytes say %#x", spi, got)
		}
	})
}
