package underlay

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
)

// FuzzClassify checks the receive-side demultiplexer on arbitrary datagrams:
// what it accepts is a whole ESP header with a non-zero SPI inside p; UDP
// keepalives (RFC 3948 §2.3) and non-ESP-marker datagrams (§2.2) are never
// accepted; raw IPv4 payloads start at the IHL and never come from
// fragments; every refusal is counted exactly once.
func FuzzClassify(f *testing.F) {
	esp := fakeESP(0x100, 1, 40)
	ip := make([]byte, header.IPv4MinHeaderLen+len(esp))
	header.IPv4(ip).Encode(&header.IPv4Fields{
		TotalLen: uint16(len(ip)), TTL: 64, Protocol: 50,
		Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"),
	})
	copy(ip[header.IPv4MinHeaderLen:], esp)
	for k := range numESPSockKinds {
		f.Add(uint8(k), esp)
		f.Add(uint8(k), ip)
		f.Add(uint8(k), []byte{0xFF})
		f.Add(uint8(k), []byte{0, 0, 0, 0, 1, 2, 3, 4, 5})
		f.Add(uint8(k), []byte{})
	}
	f.Fuzz(func(t *testing.T, kind uint8, p []byte) {
		k := sockKind(kind % uint8(numESPSockKinds))
		var c rxCounts
		off, n, ok := classify(k, p, &c)
		refused := c.keepalive + c.nonESP + c.malformed + c.fragment
		if ok == (refused == 1) || refused > 1 {
			t.Fatalf("ok=%v with %d refusals counted", ok, refused)
		}
		if !ok {
			return
		}
		if off < 0 || n < header.ESPHeaderLen || off+n > len(p) {
			t.Fatalf("ESP at [%d:%d] in %d bytes", off, off+n, len(p))
		}
		if header.ESP(p[off:off+n]).SPI() == 0 {
			t.Fatalf("SPI 0 accepted")
		}
		switch k {
		case sockUDP4, sockUDP6:
			if off != 0 || n != len(p) || binary.BigEndian.Uint32(p) == 0 {
				t.Fatalf("UDP: ESP at [%d:%d] of %d bytes (marker %x)", off, off+n, len(p), p[:4])
			}
		case sockRaw4:
			h := header.IPv4(p)
			if off != h.HeaderLen() || h.IsFragment() || off+n != h.TotalLen() {
				t.Fatalf("raw IPv4: ESP at [%d:%d], IHL %d, total %d, fragment %v", off, off+n, h.HeaderLen(), h.TotalLen(), h.IsFragment())
			}
		case sockRaw6:
			if off != 0 || n != len(p) {
				t.Fatalf("raw IPv6: ESP at [%d:%d] of %d", off, off+n, len(p))
			}
		}
	})
}
