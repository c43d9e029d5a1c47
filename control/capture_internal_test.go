package control

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestBuildOuterIPv6(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	espb := []byte{0, 0, 0x10, 0x01, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8}
	p := gopacket.NewPacket(buildOuter(espb, src, dst, 0, 0, false), layers.LinkTypeRaw, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	e, _ := p.Layer(layers.LayerTypeIPSecESP).(*layers.IPSecESP)
	if ip == nil || e == nil || e.SPI != 0x1001 || e.Seq != 9 || ip.SrcIP.String() != "2001:db8::1" {
		t.Errorf("IPv6 outer:\n%s", p.Dump())
	}
}
