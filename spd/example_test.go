package spd_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// Embedding mipsec as a bump-in-the-stack IPsec (RFC 4301 §3.3): a program
// builds an SAD and an SPD, hands every outbound IP packet to the SPD and
// the SA it names, and every inbound ESP packet to the SA its SPI names.
// Only public packages are used: esp, sad, spd and pkt.
func Example() {
	gwA := netip.MustParseAddr("198.51.100.1")
	gwB := netip.MustParseAddr("203.0.113.1")
	siteA := sad.PrefixRange(netip.MustParsePrefix("192.0.2.0/25"))
	siteB := sad.PrefixRange(netip.MustParsePrefix("192.0.2.128/25"))

	// Static keys for the example. With AES-GCM and static keys a
	// restarted sender must continue above its persisted sequence number
	// (Params.InitialSeq) so that no IV repeats (RFC 8221 §3).
	params := esp.Params{
		SPI:       0xa001,
		Algorithm: esp.AES128GCM16,
		EncKey:    []byte("16-byte-key-here" + "salt"), // key || salt, RFC 4106 §8.1
		Mode:      esp.Tunnel,
		TunnelSrc: gwA,
		TunnelDst: gwB,
	}

	// Gateway A: the outbound SA and the policies that pick it.
	sadA := sad.New(sad.Options{})
	defer sadA.Close()
	sel := sad.Selector{Local: siteA, Remote: siteB}
	if _, err := sadA.Add(sad.Config{Dir: sad.Outbound, Params: params, Selectors: []sad.Selector{sel}}); err != nil {
		panic(err)
	}
	spdA := spd.New(sadA)
	if err := spdA.Replace([]spd.Policy{
		{Name: "protect-sites", Dir: sad.Outbound, Action: spd.Protect, SPI: params.SPI, Selectors: []sad.Selector{sel}},
		{Name: "discard-rest", Dir: sad.Outbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
	}); err != nil {
		panic(err)
	}

	// Gateway B: the matching inbound SA; its selectors are checked on
	// every decrypted packet (RFC 4301 §5.2).
	sadB := sad.New(sad.Options{})
	defer sadB.Close()
	if _, err := sadB.Add(sad.Config{Dir: sad.Inbound, Params: params,
		Selectors: []sad.Selector{{Local: siteB, Remote: siteA}}}); err != nil {
		panic(err)
	}

	// A sends a UDP packet from 192.0.2.10 to 192.0.2.200.
	inner := udp4(netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.200"), []byte("hello, B"))
	b := pkt.Get()
	defer pkt.Put(b)
	b.Set(inner)
	d := spdA.Lookup(sad.Outbound, b.Bytes())
	fmt.Printf("A: policy %v spi %#x\n", d.Action, d.SPI)
	fmt.Println("A: seal", d.SA.Seal(b), "wire bytes", b.Len())
	wire := bytes.Clone(b.Bytes())

	// B receives it: find the SPI, look the SA up by the SPI alone
	// (RFC 4301 §4.1), open it.
	spi, off, _ := esp.Locate(b.Bytes())
	_, v := sadB.Inbound(spi).Open(b, off)
	fmt.Println("B: open", v, "inner intact:", bytes.Equal(b.Bytes(), inner))

	// The same packet again is a replay; it is dropped and counted.
	b.Set(wire)
	_, v = sadB.Inbound(spi).Open(b, off)
	fmt.Println("B: again", v, "replay drops:", sadB.Inbound(spi).Stats().Drops[esp.DropReplay])

	// A packet outside the protected sites hits the final DISCARD.
	b.Set(udp4(netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("192.0.2.200"), nil))
	fmt.Println("A: other traffic", spdA.Lookup(sad.Outbound, b.Bytes()).Action)
	// Output:
	// A: policy PROTECT spi 0xa001
	// A: seal ok wire bytes 92
	// B: open ok inner intact: true
	// B: again replay replay drops: 1
	// A: other traffic DISCARD
}

// udp4 builds an IPv4/UDP packet (RFC 791, RFC 768; UDP checksum 0).
func udp4(src, dst netip.Addr, data []byte) []byte {
	p := make([]byte, 28+len(data))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], 5000)
	binary.BigEndian.PutUint16(p[22:], 5001)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(data)))
	copy(p[28:], data)
	return p
}
