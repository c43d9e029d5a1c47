package underlay

import (
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// setFrontDF leaves in front of each ESP packet the IPv4 header an SA
// would have built with or without DF (what the dataplane's cut leaves in
// the headroom), the one frontDF reads.
func setFrontDF(bufs []*pkt.Buf, df bool) {
	for _, b := range bufs {
		var flags uint16
		if df {
			flags = header.IPv4FlagDF
		}
		header.IPv4(b.B[b.Off()-header.IPv4MinHeaderLen : b.Off()]).Encode(&header.IPv4Fields{
			TotalLen: uint16(header.IPv4MinHeaderLen + b.Len()), Flags: flags, TTL: 64, Protocol: header.ProtoESP,
			Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.1"),
		})
	}
}

// TestFrontDF: the DF bit of an IPv4 header directly in front of ESP
// decides; anything else in front means DF set.
func TestFrontDF(t *testing.T) {
	esp := fakeESP(0x100, 1, 80)
	fresh := func() *pkt.Buf { return bufsOf([][]byte{esp})[0] }
	for _, df := range []bool{true, false} {
		b := fresh()
		setFrontDF([]*pkt.Buf{b}, df)
		if got := frontDF(b); got != df {
			t.Errorf("IPv4 header with DF=%v in front: frontDF = %v", df, got)
		}
	}
	cases := map[string]func(b *pkt.Buf){
		"nothing": func(b *pkt.Buf) { clear(b.B[:b.Off()]) },
		"ipv6": func(b *pkt.Buf) {
			header.IPv6(b.B[b.Off()-header.IPv6HeaderLen : b.Off()]).Encode(&header.IPv6Fields{
				PayloadLen: uint16(b.Len()), NextHeader: header.ProtoESP, HopLimit: 64,
				Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
			})
		},
		"wrong-length": func(b *pkt.Buf) {
			setFrontDF([]*pkt.Buf{b}, false)
			b.B[b.Off()-header.IPv4MinHeaderLen+3]++
		},
		"not-esp": func(b *pkt.Buf) {
			setFrontDF([]*pkt.Buf{b}, false)
			b.B[b.Off()-header.IPv4MinHeaderLen+9] = header.ProtoUDP
		},
		"no-headroom": func(b *pkt.Buf) { b.SetBytes(4, b.Len()) },
	}
	for name, f := range cases {
		b := fresh()
		f(b)
		if !frontDF(b) {
			t.Errorf("%s in front: frontDF = false, want true (the default)", name)
		}
	}
}
