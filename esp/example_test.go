package esp_test

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// Seal an IPv4 packet into a tunnel-mode ESP packet and open it again.
func Example() {
	p := esp.Params{
		SPI:       0x1000,
		Algorithm: esp.AES128GCM16,
		EncKey:    bytes.Repeat([]byte{0x42}, esp.AES128GCM16.EncKeyLen()), // key ‖ salt
		Mode:      esp.Tunnel,
		TunnelSrc: netip.MustParseAddr("2001:db8::1"),
		TunnelDst: netip.MustParseAddr("2001:db8::2"),
	}
	out, err := esp.NewOutbound(p)
	if err != nil {
		panic(err)
	}
	in, err := esp.NewInbound(p)
	if err != nil {
		panic(err)
	}

	// An IPv4/UDP packet as a TUN device would deliver it.
	inner := make([]byte, 28+5)
	header.IPv4(inner).Encode(&header.IPv4Fields{TotalLen: uint16(len(inner)), TTL: 64, Protocol: header.ProtoUDP,
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")})
	copy(inner[28:], "hello")

	b := pkt.Get() // headroom and tailroom for the ESP header, outer header and trailer
	defer pkt.Put(b)
	b.Set(inner)
	if v := out.Seal(b); v != esp.OK {
		panic(v)
	}
	fmt.Printf("sealed: %d bytes, seq %d, overhead %d\n", b.Len(), out.Seq(), b.Len()-len(inner))
	wire := bytes.Clone(b.Bytes())

	// The receiver: ESP follows the 40-byte outer IPv6 header.
	nh, v := in.Open(b, header.IPv6HeaderLen)
	fmt.Println("opened:", v, "next header", nh, "inner intact:", bytes.Equal(b.Bytes(), inner))

	// The same packet again is a replay (RFC 4303 §3.4.3).
	b.Set(wire)
	_, v = in.Open(b, header.IPv6HeaderLen)
	fmt.Println("again:", v)
	// Output:
	// sealed: 108 bytes, seq 1, overhead 75
	// opened: ok next header 4 inner intact: true
	// again: replay
}
