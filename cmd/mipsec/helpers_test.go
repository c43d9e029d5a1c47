package main

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"testing"

	"github.com/mipsec/mipsec/config"
)

// gatewayConfig loads testdata/gateway-X.toml with its state in stateDir.
func gatewayConfig(t *testing.T, name, stateDir string) *config.File {
	t.Helper()
	cfg, err := config.Load(withStateDir(t, "../../testdata/"+name, stateDir))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var (
	// The outer addresses of testdata/gateway-a.toml and gateway-b.toml.
	epA = endpoint.Endpoint{Addr: netip.MustParseAddrPort("198.51.100.1:0")}
	epB = endpoint.Endpoint{Addr: netip.MustParseAddrPort("203.0.113.1:0")}
)

const spiAtoB = 0x0000b001 // gateway-a.toml's aes128gcm16 outbound SA

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sealSeq seals one packet with sa and returns the ESP sequence number it
// carries, or the verdict.
func sealSeq(sa *sad.SA, i int) (uint32, esp.Verdict) {
	b := pkt.Get()
	defer pkt.Put(b)
	b.Set(icmpEcho(hostA, hostB, 100, uint16(i)))
	if v := sa.Seal(b); v != esp.OK {
		return 0, v
	}
	e := b.Bytes()[header.IPv4MinHeaderLen:]
	return binary.BigEndian.Uint32(e[4:8]), esp.OK
}

// The addresses of testdata/ha.toml and mn.toml.
var (
	topoHoA  = netip.MustParseAddr("2001:db8:1::100")
	topoHoA4 = netip.MustParseAddr("192.0.2.100")
	topoHA   = netip.MustParseAddr("2001:db8:1::1")
	topoHA4  = netip.MustParseAddr("198.51.100.1")
)

// The sites of testdata/gateway-a.toml and gateway-b.toml.
var (
	hostA = netip.MustParseAddr("192.0.2.10")
	hostB = netip.MustParseAddr("192.0.2.200")
)

// icmpEcho builds an IPv4 ICMP echo request of total length n.
func icmpEcho(src, dst netip.Addr, n int, seq uint16) []byte {
	p := make([]byte, n)
	header.IPv4(p).Encode(&header.IPv4Fields{TotalLen: uint16(n), TTL: 64, Protocol: header.ProtoICMP, Src: src, Dst: dst, Flags: header.IPv4FlagDF})
	icmp := p[header.IPv4MinHeaderLen:]
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[6:], seq)
	binary.BigEndian.PutUint16(icmp[2:], ^header.Checksum(icmp, 0))
	return p
}
