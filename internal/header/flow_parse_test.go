package header

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type flowCase struct {
	name string
	pkt  []byte
	want Flow
	ok   bool
}

// flowCases are the ParseFlow table rows; the fuzz targets use them as seeds.
func flowCases(t testing.TB) []flowCase {
	v4 := func(proto uint8, sp, dp, tc uint16) Flow {
		return Flow{Src: v4Src, Dst: v4Dst, Proto: proto, SrcPort: sp, DstPort: dp, TypeCode: tc}
	}
	v6 := func(src, dst netip.Addr, proto uint8, sp, dp, tc uint16) Flow {
		return Flow{Src: src, Dst: dst, Proto: proto, SrcPort: sp, DstPort: dp, TypeCode: tc}
	}
	with := func(f Flow, mut func(*Flow)) Flow { mut(&f); return f }
	frag := func(f *Flow) { f.Fragment = true }
	opaque := func(f *Flow) { f.Fragment, f.Opaque, f.SrcPort, f.DstPort, f.TypeCode = true, true, 0, 0, 0 }
	ihl := func(n int) func(*IPv4Fields) {
		return func(f *IPv4Fields) {
			f.Options = make([]byte, n*4-IPv4MinHeaderLen)
			f.Options[0] = 1 // NOP, then EOL
		}
	}
	fragOff := func(off int, more bool) func(*IPv4Fields) {
		return func(f *IPv4Fields) {
			f.FragmentOffset = off
			if more {
				f.Flags |= IPv4FlagMF
			}
		}
	}
	setByte := func(p []byte, i int, v byte) []byte { p = append([]byte(nil), p...); p[i] = v; return p }
	setLen4 := func(n int) func(*IPv4Fields) { return func(f *IPv4Fields) { f.TotalLen = uint16(n) } }
	setLen6 := func(n int) func(*IPv6Fields) { return func(f *IPv6Fields) { f.PayloadLen = uint16(n) } }
	vec := loadBUVectors(t)
	rfc := loadRFC7634(t)

	return []flowCase{
		// IPv4.
		{"v4/tcp", ip4(ProtoTCP, tcp(40000, 443)), v4(ProtoTCP, 40000, 443, 0), true},
		{"v4/udp", ip4(ProtoUDP, udp(4500, 4500)), v4(ProtoUDP, 4500, 4500, 0), true},
		{"v4/sctp", ip4(ProtoSCTP, ports(5000, 6000, 12)), v4(ProtoSCTP, 5000, 6000, 0), true},
		{"v4/icmp-echo", ip4(ProtoICMP, icmp(8, 0)), v4(ProtoICMP, 0, 0, 0x0800), true},
		{"v4/icmp-unreach-frag-needed", ip4(ProtoICMP, icmp(3, 4)), v4(ProtoICMP, 0, 0, 0x0304), true},
		{"v4/rfc7634-inner-icmp", mustHex(t, rfc.InnerPacket), Flow{
			Src: netip.MustParseAddr("198.51.100.5"), Dst: netip.MustParseAddr("192.0.2.5"),
			Proto: ProtoICMP, TypeCode: 0x0800}, true},
		{"v4/rfc7634-outer-esp", mustHex(t, rfc.FullPacket), Flow{
			Src: netip.MustParseAddr("203.0.113.153"), Dst: netip.MustParseAddr("203.0.113.5"),
			Proto: ProtoESP}, true},
		{"v4/esp", ip4(ProtoESP, make([]byte, 24)), v4(ProtoESP, 0, 0, 0), true},
		{"v4/mh-is-not-special", ip4(ProtoMobility, mhType(MHTypeBU)), v4(ProtoMobility, 0, 0, 0), true},
		{"v4/ihl6-udp", ip4(ProtoUDP, udp(53, 5353), ihl(6)), v4(ProtoUDP, 53, 5353, 0), true},
		{"v4/ihl15-tcp", ip4(ProtoTCP, tcp(1, 2), ihl(15)), v4(ProtoTCP, 1, 2, 0), true},
		{"v4/first-fragment", ip4(ProtoUDP, udp(1000, 2000), fragOff(0, true)),
			with(v4(ProtoUDP, 1000, 2000, 0), frag), true},
		{"v4/middle-fragment", ip4(ProtoUDP, udp(1000, 2000), fragOff(1480, true)),
			with(v4(ProtoUDP, 0, 0, 0), opaque), true},
		{"v4/last-fragment", ip4(ProtoTCP, tcp(1000, 2000), fragOff(8, false)),
			with(v4(ProtoTCP, 0, 0, 0), opaque), true},
		{"v4/df-is-not-fragment", ip4(ProtoTCP, tcp(7, 8), func(f *IPv4Fields) { f.Flags = IPv4FlagDF }),
			v4(ProtoTCP, 7, 8, 0), true},
		{"v4/tcp-3-bytes", ip4(ProtoTCP, []byte{1, 2, 3}), with(v4(ProtoTCP, 0, 0, 0), func(f *Flow) { f.Opaque = true }), true},
		{"v4/first-fragment-2-bytes", ip4(ProtoUDP, []byte{1, 2}, fragOff(0, true)),
			with(v4(ProtoUDP, 0, 0, 0), func(f *Flow) { f.Opaque, f.Fragment = true, true }), true},
		{"v4/icmp-1-byte", ip4(ProtoICMP, []byte{8}), with(v4(ProtoICMP, 0, 0, 0), func(f *Flow) { f.Opaque = true }), true},
		{"v4/no-l4", ip4(ProtoTCP, nil), with(v4(ProtoTCP, 0, 0, 0), func(f *Flow) { f.Opaque = true }), true},
		{"v4/trailing-bytes-ignored", append(ip4(ProtoUDP, udp(9, 10)), 0xff, 0xff, 0xff, 0xff), v4(ProtoUDP, 9, 10, 0), true},
		// Total length 22: the ports lie in bytes beyond it (link padding).
		{"v4/ports-beyond-total-len", ip4(ProtoUDP, udp(9, 10), setLen4(22)),
			with(v4(ProtoUDP, 0, 0, 0), func(f *Flow) { f.Opaque = true }), true},
		{"v4/hostile/total-len-over-buffer", ip4(ProtoUDP, udp(9, 10), setLen4(29)), Flow{}, false},
		{"v4/hostile/total-len-below-ihl", ip4(ProtoUDP, udp(9, 10), setLen4(19)), Flow{}, false},
		{"v4/hostile/ihl-4", setByte(ip4(ProtoUDP, udp(9, 10)), 0, 0x44), Flow{}, false},
		{"v4/hostile/ihl-15-short", setByte(ip4(ProtoUDP, udp(9, 10)), 0, 0x4f), Flow{}, false},
		{"v4/hostile/19-bytes", ip4(ProtoUDP, udp(9, 10))[:19], Flow{}, false},
		{"hostile/empty", nil, Flow{}, false},
		{"hostile/version-5", setByte(ip4(ProtoUDP, udp(9, 10)), 0, 0x55), Flow{}, false},
		{"hostile/version-0", make([]byte, 60), Flow{}, false},
		{"hostile/version-6-in-v4", setByte(ip4(ProtoUDP, udp(9, 10)), 0, 0x65), Flow{}, false},

		// IPv6.
		{"v6/tcp", ip6(ProtoTCP, tcp(40000, 22)), v6(coa, ha, ProtoTCP, 40000, 22, 0), true},
		{"v6/udp", ip6(ProtoUDP, udp(4191, 4191)), v6(coa, ha, ProtoUDP, 4191, 4191, 0), true},
		{"v6/sctp", ip6(ProtoSCTP, ports(1, 2, 12)), v6(coa, ha, ProtoSCTP, 1, 2, 0), true},
		{"v6/icmpv6-echo", ip6(ProtoICMPv6, icmp(128, 0)), v6(coa, ha, ProtoICMPv6, 0, 0, 0x8000), true},
		{"v6/icmpv6-mps", ip6(ProtoICMPv6, icmp(146, 0)), v6(coa, ha, ProtoICMPv6, 0, 0, 0x9200), true},
		{"v6/icmp-proto-1-has-no-type", ip6(ProtoICMP, icmp(8, 0)), v6(coa, ha, ProtoICMP, 0, 0, 0), true},
		{"v6/esp", ip6(ProtoESP, make([]byte, 32)), v6(coa, ha, ProtoESP, 0, 0, 0), true},
		{"v6/ah", ip6(ProtoAH, make([]byte, 24)), v6(coa, ha, ProtoAH, 0, 0, 0), true},
		{"v6/no-next", ip6(ProtoNoNext, nil), v6(coa, ha, ProtoNoNext, 0, 0, 0), true},
		{"v6/ipv4-in-ipv6", ip6(ProtoIPv4, ip4(ProtoTCP, tcp(1, 2))), v6(coa, ha, ProtoIPv4, 0, 0, 0), true},
		{"v6/mh-bu-no-hao", ip6(ProtoMobility, mhBU(), src6(hoa)), v6(hoa, ha, ProtoMobility, 0, 0, 0x0500), true},
		{"v6/mh-bu-hao", ip6(ProtoDestOpts, cat(haoOpts(ProtoMobility, hoa), mhBU())),
			v6(hoa, ha, ProtoMobility, 0, 0, 0x0500), true},
		{"v6/derived-vector-hao-esp", mustHex(t, vec.Cases[0].FullPacket), v6(hoa, ha, ProtoESP, 0, 0, 0), true},
		{"v6/hao-after-rh0", ip6(ProtoRouting, cat(rh0(ProtoDestOpts, cn, 0), haoOpts(ProtoUDP, hoa), udp(1, 2))),
			v6(hoa, ha, ProtoUDP, 1, 2, 0), true},
		{"v6/hao-with-pad1-and-unknown-opts", ip6(ProtoDestOpts, cat(rawOpts(ProtoTCP,
			0, 0x1e, 1, 0xaa, OptHomeAddress, 16,
			0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0), tcp(5, 6))),
			v6(hoa, ha, ProtoTCP, 5, 6, 0), true},
		{"v6/mh-ba-rh2", ip6(ProtoRouting, cat(rh2(ProtoMobility, hoa), mhType(MHTypeBA)), src6(ha), dst6(coa)),
			v6(ha, hoa, ProtoMobility, 0, 0, 0x0600), true},
		{"v6/rh2-tcp", ip6(ProtoRouting, cat(rh2(ProtoTCP, hoa), tcp(80, 50000)), src6(cn), dst6(coa)),
			v6(cn, hoa, ProtoTCP, 80, 50000, 0), true},
		{"v6/rh2-segleft-0", ip6(ProtoRouting, cat(func() []byte { b := rh2(ProtoTCP, hoa); b[3] = 0; return b }(), tcp(80, 1)),
			src6(cn), dst6(hoa)), v6(cn, hoa, ProtoTCP, 80, 1, 0), true},
		{"v6/rh0-does-not-change-dst", ip6(ProtoRouting, cat(rh0(ProtoUDP, cn, 1), udp(3, 4))),
			v6(coa, ha, ProtoUDP, 3, 4, 0), true},
		{"v6/hao-and-rh2", ip6(ProtoRouting, cat(rh2(ProtoDestOpts, hoa), haoOpts(ProtoUDP, cn), udp(7, 8)), src6(coa), dst6(coa)),
			v6(cn, hoa, ProtoUDP, 7, 8, 0), true},
		{"v6/first-fragment", ip6(ProtoFragment, cat(frag6(ProtoUDP, 0, true), udp(500, 500))),
			with(v6(coa, ha, ProtoUDP, 500, 500, 0), frag), true},
		{"v6/non-initial-fragment", ip6(ProtoFragment, cat(frag6(ProtoUDP, 1232, true), udp(500, 500))),
			with(v6(coa, ha, ProtoUDP, 0, 0, 0), opaque), true},
		{"v6/last-fragment", ip6(ProtoFragment, cat(frag6(ProtoTCP, 8, false), tcp(1, 1))),
			with(v6(coa, ha, ProtoTCP, 0, 0, 0), opaque), true},
		{"v6/non-initial-fragment-of-destopts", ip6(ProtoFragment, cat(frag6(ProtoDestOpts, 8, false), make([]byte, 8))),
			with(v6(coa, ha, ProtoDestOpts, 0, 0, 0), opaque), true},
		{"v6/atomic-fragment", ip6(ProtoFragment, cat(frag6(ProtoTCP, 0, false), tcp(1, 2))),
			v6(coa, ha, ProtoTCP, 1, 2, 0), true},
		{"v6/hao-then-fragment", ip6(ProtoDestOpts, cat(haoOpts(ProtoFragment, hoa), frag6(ProtoESP, 0, true), make([]byte, 16))),
			with(v6(hoa, ha, ProtoESP, 0, 0, 0), frag), true},
		{"v6/hao-then-non-initial-fragment", ip6(ProtoDestOpts, cat(haoOpts(ProtoFragment, hoa), frag6(ProtoESP, 64, false), make([]byte, 16))),
			with(v6(hoa, ha, ProtoESP, 0, 0, 0), opaque), true},
		{"v6/all-ext-headers", ip6(ProtoHopByHop, cat(
			rawOpts(ProtoDestOpts, 5, 2, 0, 0), // Router Alert
			rawOpts(ProtoRouting),
			rh2(ProtoFragment, hoa),
			frag6(ProtoDestOpts, 0, true),
			haoOpts(ProtoTCP, cn),
			tcp(8080, 443)), src6(coa), dst6(coa)),
			with(v6(cn, hoa, ProtoTCP, 8080, 443, 0), frag), true},
		{"v6/mh-2-bytes", ip6(ProtoMobility, []byte{59, 0}), with(v6(coa, ha, ProtoMobility, 0, 0, 0), func(f *Flow) { f.Opaque = true }), true},
		{"v6/udp-after-ext-cut", ip6(ProtoDestOpts, cat(rawOpts(ProtoUDP), []byte{1, 2, 3})),
			with(v6(coa, ha, ProtoUDP, 0, 0, 0), func(f *Flow) { f.Opaque = true }), true},
		{"v6/icmpv6-1-byte", ip6(ProtoICMPv6, []byte{128}), with(v6(coa, ha, ProtoICMPv6, 0, 0, 0), func(f *Flow) { f.Opaque = true }), true},
		{"v6/trailing-bytes-ignored", append(ip6(ProtoUDP, udp(1, 2)), 9, 9, 9), v6(coa, ha, ProtoUDP, 1, 2, 0), true},
		{"v6/payload-len-0", ip6(ProtoUDP, nil), with(v6(coa, ha, ProtoUDP, 0, 0, 0), func(f *Flow) { f.Opaque = true }), true},
		{"v6/4in6-addresses", ip6(ProtoUDP, udp(1, 2), src6(netip.MustParseAddr("::ffff:192.0.2.1"))),
			v6(netip.MustParseAddr("::ffff:192.0.2.1"), ha, ProtoUDP, 1, 2, 0), true},

		{"v6/hostile/39-bytes", ip6(ProtoUDP, nil)[:39], Flow{}, false},
		{"v6/hostile/payload-len-over-buffer", ip6(ProtoUDP, udp(1, 2), setLen6(9)), Flow{}, false},
		{"v6/hostile/ext-cut-by-payload-len", ip6(ProtoDestOpts, haoOpts(ProtoUDP, hoa), setLen6(16)), Flow{}, false},
		{"v6/hostile/ext-len-over-payload", ip6(ProtoDestOpts, setByte(haoOpts(ProtoUDP, hoa), 1, 3)), Flow{}, false},
		{"v6/hostile/fragment-cut", ip6(ProtoFragment, []byte{ProtoUDP, 0, 0, 0}), Flow{}, false},
		{"v6/hostile/hao-len-15", ip6(ProtoDestOpts, cat(setByte(haoOpts(ProtoUDP, hoa), 7, 15), udp(1, 2))), Flow{}, false},
		{"v6/hostile/opt-overruns-header", ip6(ProtoDestOpts, cat(rawOpts(ProtoUDP, 0x1e, 5), udp(1, 2))), Flow{}, false},
		{"v6/hostile/padn-overruns-header", ip6(ProtoDestOpts, cat([]byte{ProtoUDP, 0, 1, 5, 0, 0, 0, 0}, udp(1, 2))), Flow{}, false},
		{"v6/hostile/opt-type-in-last-byte", ip6(ProtoDestOpts, cat([]byte{ProtoUDP, 0, 0, 0, 0, 0, 0, 0x1e}, udp(1, 2))), Flow{}, false},
		{"v6/hostile/two-haos", ip6(ProtoDestOpts, cat(haoOpts(ProtoDestOpts, hoa), haoOpts(ProtoUDP, cn), udp(1, 2))), Flow{}, false},
		{"v6/hostile/two-haos-one-header", ip6(ProtoDestOpts, cat(rawOpts(ProtoUDP, cat(haoOpts(0, hoa)[6:], haoOpts(0, cn)[6:])...), udp(1, 2))), Flow{}, false},
		{"v6/hostile/two-rh2", ip6(ProtoRouting, cat(rh2(ProtoRouting, hoa), rh2(ProtoUDP, cn), udp(1, 2))), Flow{}, false},
		{"v6/hostile/rh2-segleft-2", ip6(ProtoRouting, cat(setByte(rh2(ProtoUDP, hoa), 3, 2), udp(1, 2))), Flow{}, false},
		{"v6/hostile/rh2-len-4", ip6(ProtoRouting, cat(setByte(rh2(ProtoUDP, hoa), 1, 4), make([]byte, 16), udp(1, 2))), Flow{}, false},
		{"v6/hostile/hbh-chain-loop-cut", ip6(ProtoHopByHop, cat(rawOpts(ProtoHopByHop), rawOpts(ProtoHopByHop))), Flow{}, false},
		{"v6/hostile/version-4-in-v6", setByte(ip6(ProtoUDP, udp(1, 2)), 0, 0x40), Flow{}, false},
	}
}

func TestParseFlow(t *testing.T) {
	for _, tt := range flowCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			f := Flow{Src: cn, Proto: 99, Opaque: true} // garbage from a previous packet
			ok := ParseFlow(tt.pkt, &f)
			if ok != tt.ok {
				t.Fatalf("ParseFlow ok = %v, want %v (flow %+v)", ok, tt.ok, f)
			}
			if diff := cmp.Diff(tt.want, f, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("ParseFlow flow (-want +got):\n%s", diff)
			}
			ref, _, refOK := refParseFlow(tt.pkt)
			if refOK != ok || ref != f {
				t.Errorf("reference model disagrees: ok %v flow %+v", refOK, ref)
			}
			if ok {
				checkFlowInvariants(t, tt.pkt, f)
			}
		})
	}
}

// TestParseFlowTruncated cuts every valid row at every length. With the
// length fields left alone the packet is always invalid; with the length
// fields patched to the cut, the result must match the reference model and
// keep the invariants (a cut in the extension headers is invalid, a cut in
// the ports is Opaque).
func TestParseFlowTruncated(t *testing.T) {
	for _, tt := range flowCases(t) {
		if !tt.ok {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			full, _ := InnerLen(tt.pkt)
			for n := range full {
				var f Flow
				if ParseFlow(tt.pkt[:n], &f) {
					t.Fatalf("cut at %d of %d: accepted %+v", n, full, f)
				}
				if f != (Flow{}) {
					t.Fatalf("cut at %d: rejected but flow not cleared: %+v", n, f)
				}
				p := append([]byte(nil), tt.pkt[:n]...)
				switch {
				case len(p) >= IPv6HeaderLen && p[0]>>4 == 6:
					IPv6(p).SetPayloadLen(n - IPv6HeaderLen)
				case len(p) >= IPv4MinHeaderLen && p[0]>>4 == 4:
					IPv4(p).SetTotalLen(n)
				}
				ok := ParseFlow(p, &f)
				ref, _, refOK := refParseFlow(p)
				if ok != refOK || f != ref {
					t.Fatalf("patched cut at %d: got %v %+v, reference %v %+v", n, ok, f, refOK, ref)
				}
				if ok {
					checkFlowInvariants(t, p, f)
					if f.Src != tt.want.Src || f.Proto != tt.want.Proto && !tt.want.Opaque {
						t.Fatalf("patched cut at %d: %+v, full packet %+v", n, f, tt.want)
					}
					hasPorts := tt.want.SrcPort|tt.want.DstPort|tt.want.TypeCode != 0
					if hasPorts && f.SrcPort|f.DstPort|f.TypeCode != 0 && (f.SrcPort != tt.want.SrcPort ||
						f.DstPort != tt.want.DstPort || f.TypeCode != tt.want.TypeCode) {
						t.Fatalf("patched cut at %d: ports %+v, full packet %+v", n, f, tt.want)
					}
					if hasPorts && !f.Opaque && f.SrcPort|f.DstPort|f.TypeCode == 0 {
						t.Fatalf("patched cut at %d: lost the ports without Opaque: %+v", n, f)
					}
				}
			}
		})
	}
}

func TestParseFlowAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for _, tt := range flowCases(t) {
		var f Flow
		if n := testing.AllocsPerRun(100, func() { ParseFlow(tt.pkt, &f) }); n != 0 {
			t.Errorf("%s: %v allocs per ParseFlow, want 0", tt.name, n)
		}
	}
}

func TestInnerLen(t *testing.T) {
	v4 := ip4(ProtoUDP, udp(1, 2))
	v6 := ip6(ProtoUDP, udp(1, 2))
	pad := func(b []byte, n int) []byte { return append(append([]byte(nil), b...), make([]byte, n)...) }
	tests := []struct {
		name string
		pkt  []byte
		want int
		ok   bool
	}{
		{"v4", v4, 28, true},
		{"v4/tfc-padding", pad(v4, 100), 28, true},
		{"v6", v6, 48, true},
		{"v6/tfc-padding", pad(v6, 3), 48, true},
		{"v6/payload-0", ip6(ProtoNoNext, nil), 40, true},
		{"empty", nil, 0, false},
		{"v4/19-bytes", v4[:19], 0, false},
		{"v4/cut", v4[:27], 0, false},
		{"v4/total-below-ihl", ip4(ProtoUDP, nil, func(f *IPv4Fields) { f.TotalLen = 16 }), 0, false},
		{"v4/total-below-options", ip4(ProtoUDP, make([]byte, 4), func(f *IPv4Fields) { f.TotalLen = 24; f.Options = make([]byte, 8) }), 0, false},
		{"v6/39-bytes", v6[:39], 0, false},
		{"v6/cut", v6[:47], 0, false},
		{"version-5", append([]byte{0x50}, v4[1:]...), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := InnerLen(tt.pkt)
			if n != tt.want || ok != tt.ok {
				t.Errorf("InnerLen = %d, %v; want %d, %v", n, ok, tt.want, tt.ok)
			}
		})
	}
}

func BenchmarkParseFlow(b *testing.B) {
	benches := []struct {
		name string
		pkt  []byte
	}{
		{"ipv4-tcp", ip4(ProtoTCP, tcp(40000, 443))},
		{"ipv6-tcp", ip6(ProtoTCP, tcp(40000, 443))},
		{"ipv6-hao-mh", ip6(ProtoDestOpts, cat(haoOpts(ProtoMobility, hoa), mhBU()))},
		{"ipv6-hao-esp", ip6(ProtoDestOpts, cat(haoOpts(ProtoESP, hoa), make([]byte, 64)))},
		{"ipv6-rh2-tcp", ip6(ProtoRouting, cat(rh2(ProtoTCP, hoa), tcp(80, 50000)))},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			var f Flow
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.pkt)))
			for b.Loop() {
				if !ParseFlow(bb.pkt, &f) {
					b.Fatal("ParseFlow failed")
				}
			}
		})
	}
}
