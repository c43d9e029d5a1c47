package dataplane_test

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
)

// espLike turns udpPacket's packet into raw ESP (IP protocol 50; an IPv6
// one behind a Destination Options header when destOpts) or sets its UDP
// ports. The IPv4 header checksum is left stale: the SPD does not check it.
func espLike(p []byte, destOpts bool) []byte {
	if p[0]>>4 == 4 {
		p[9] = 50
		return p
	}
	if !destOpts {
		p[6] = 50
		return p
	}
	p[6] = 60
	p[40], p[41] = 50, 0 // next header ESP, 8 bytes
	p[42], p[43] = 1, 4  // PadN (RFC 8200 §4.2)
	clear(p[44:48])
	return p
}

func withPorts(p []byte, sport, dport uint16) []byte {
	hl := 20
	if p[0]>>4 == 6 {
		hl = 40
	}
	binary.BigEndian.PutUint16(p[hl:], sport)
	binary.BigEndian.PutUint16(p[hl+2:], dport)
	return p
}

// TestLoopDropped: with the peer's endpoint (and A's home agent, say) inside
// the protected site, as a full-tunnel route makes it, A's own ESP read
// back from the TUN (raw ESP, UDP 4500 and 4191, the underlay's own port,
// an IPv6 ESP behind a Destination Options header) is dropped as loop,
// never sealed again, and warned about once per interval with the inner
// addresses; ESP and IKE of hosts behind A to other addresses, and plain
// traffic, still go through.
func TestLoopDropped(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	a, b := newPair(t, pairOpts{logA: zap.New(core), dropLogInterval: time.Hour,
		remotesA: []netip.Addr{hostB6}, udpPortA: 4600})
	// B's endpoint moves into site B: 10.2.0.1, inside A's TUN route.
	inSite := endpoint.Endpoint{Addr: netip.AddrPortFrom(hostB4, 4500), Encap: endpoint.EncapUDP}
	if err := a.d.SetPeers([]dataplane.PeerConfig{{Name: "B", Endpoint: inSite,
		OutSPIs: []uint32{spiAB4, spiAB6}, InSPIs: []uint32{spiBA4, spiBA6}, Keepalive: -1}}); err != nil {
		t.Fatal(err)
	}
	a.ul.Record(true)

	loops := [][]byte{
		espLike(udpPacket(hostA4, hostB4, 1, 100), false),         // raw ESP to the peer's endpoint
		withPorts(udpPacket(hostA4, hostB4, 2, 100), 4500, 4500),  // ESP in UDP 4500
		withPorts(udpPacket(hostA4, hostB4, 3, 100), 4500, 4191),  // DSMIPv6 (RFC 5555 §4.1)
		withPorts(udpPacket(hostA4, hostB4, 4, 100), 4600, 9),     // the underlay's own port
		espLike(udpPacket(hostA6, hostB6, 5, 100), false),         // a remote of Config.UnderlayRemotes
		espLike(udpPacket(hostA6, hostB6, 6, 100), true),          // behind a Destination Options header
		withPorts(udpPacket(hostA6, hostB6, 7, 100), 31000, 4500), // UDP to 4500, IPv6
	}
	for _, p := range loops {
		a.tun.Outbound <- p
	}
	waitFor(t, "loop drops", func() bool { return a.d.Stats().Drops[dataplane.DropLoop] == uint64(len(loops)) })
	if n := len(a.ul.Sent()); n != 0 {
		t.Errorf("%d loop packets sealed and sent", n)
	}
	waitFor(t, "loop warning", func() bool { return len(warnings(logs, "loop")) == 1 })
	e := warnings(logs, "loop")[0]
	wantField(t, e, "src", hostA4.String())
	wantField(t, e, "dst", hostB4.String())
	wantField(t, e, "proto", uint8(50))

	// Not loops: a host's own ESP and IKE to another address of site B
	// (a nested tunnel), and ordinary traffic to the peer's address.
	other := netip.MustParseAddr("10.2.0.9")
	pass := [][]byte{
		espLike(udpPacket(hostA4, other, 10, 100), false),
		withPorts(udpPacket(hostA4, other, 11, 100), 4500, 4500),
		udpPacket(hostA4, hostB4, 12, 100),
		withPorts(udpPacket(hostA4, hostB4, 13, 100), 500, 500),
		espLike(udpPacket(hostA6, netip.MustParseAddr("fd00:b::9"), 14, 100), false),
	}
	for _, p := range pass {
		a.tun.Outbound <- p
	}
	waitFor(t, "the others sent", func() bool { return len(a.ul.Sent()) == len(pass) })
	if got := a.d.Stats().Drops[dataplane.DropLoop]; got != uint64(len(loops)) {
		t.Errorf("loop drops %d, want %d", got, len(loops))
	}
	_ = b
	if dataplane.DropLoop.String() != "loop" {
		t.Errorf("name %q", dataplane.DropLoop)
	}
}
