package sad_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
)

// A home agent's tunnel SAs toward one mobile node (RFC 4877 §6, SA8 and
// SA7 as seen on the HA): the outbound SA seals traffic for the home
// address, the inbound SA opens the MN's traffic and checks that its inner
// source is that home address (RFC 4301 §5.2). The two SAs share an SPI
// and keys here so that one DB can play both ends.
func Example() {
	ha := netip.MustParseAddr("2001:db8:1::1")
	hoa := netip.MustParseAddr("2001:db8:1::100")
	cn := netip.MustParseAddr("2001:db8:5::5")

	db := sad.New(sad.Options{OnExpire: func(e sad.Event) { fmt.Println(e) }})
	defer db.Close()

	p := esp.Params{
		SPI:       0x2000,
		Algorithm: esp.AES128GCM16,
		EncKey:    []byte("0123456789abcdefSALT"), // key || salt, RFC 4106 §8.1
		Mode:      esp.Tunnel,
		TunnelSrc: ha,
		TunnelDst: hoa, // DR-1: the HoA, rewritten to the CoA after ESP
	}
	out, err := db.Add(sad.Config{
		Name: "to-mn", Dir: sad.Outbound, Params: p,
		Selectors: []sad.Selector{{Remote: sad.SingleAddr(hoa)}},
		Lifetime:  sad.Lifetime{Soft: sad.Limits{Packets: 1 << 30}, Hard: sad.Limits{Packets: 1 << 31}},
	})
	if err != nil {
		panic(err)
	}
	if _, err := db.Add(sad.Config{
		Name: "from-mn", Dir: sad.Inbound, Params: p,
		Selectors: []sad.Selector{{Remote: sad.SingleAddr(hoa)}},
	}); err != nil {
		panic(err)
	}

	// Which SA protects a packet from a correspondent to the HoA?
	spi, _ := db.OutboundSPIFor(&header.Flow{Src: cn, Dst: hoa, Proto: header.ProtoUDP})
	fmt.Printf("outbound SPI %#x\n", spi)

	b := pkt.Get()
	defer pkt.Put(b)
	b.Set(udp6(hoa, cn)) // a packet from the MN's home address
	fmt.Println("seal:", db.Outbound(spi).Seal(b))

	// On the wire: IPv6(HA -> HoA) ESP. The receiver finds the SA by the
	// SPI alone (RFC 4303 §2.1).
	wire := header.ESP(b.Bytes()[header.IPv6HeaderLen:])
	in := db.Inbound(wire.SPI())
	nh, v := in.Open(b, header.IPv6HeaderLen)
	fmt.Println("open:", v, "next header", nh, "inner", netip.AddrFrom16([16]byte(b.Bytes()[8:24])))

	// A packet whose inner source is not the HoA fails the selector check.
	b.Reset()
	b.Set(udp6(cn, hoa))
	out.Seal(b)
	_, v = in.Open(b, header.IPv6HeaderLen)
	fmt.Println("spoofed:", v, "bytes left", b.Len())

	fmt.Printf("in: %d packets, %d selector drops\n", in.Stats().Packets, in.Stats().Drops[esp.DropSelector])
	// Output:
	// outbound SPI 0x2000
	// seal: ok
	// open: ok next header 41 inner 2001:db8:1::100
	// spoofed: selector bytes left 0
	// in: 1 packets, 1 selector drops
}

// udp6 returns a minimal IPv6/UDP packet src -> dst.
func udp6(src, dst netip.Addr) []byte {
	p := make([]byte, header.IPv6HeaderLen+header.UDPHeaderLen+4)
	binary.BigEndian.PutUint32(p, 6<<28)
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-header.IPv6HeaderLen))
	p[6], p[7] = header.ProtoUDP, 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	u := header.UDP(p[header.IPv6HeaderLen:])
	u.SetSrcPort(5000)
	u.SetDstPort(7)
	u.SetLength(len(u))
	return p
}
