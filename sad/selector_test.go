package sad

import (
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
)

func TestPrefixRange(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name     string
		p        netip.Prefix
		from, to netip.Addr
	}{
		{"v4 /24", netip.MustParsePrefix("192.0.2.0/24"), a("192.0.2.0"), a("192.0.2.255")},
		{"v4 host bits set are masked", netip.MustParsePrefix("192.0.2.77/24"), a("192.0.2.0"), a("192.0.2.255")},
		{"v4 /32", netip.MustParsePrefix("192.0.2.7/32"), a("192.0.2.7"), a("192.0.2.7")},
		{"v4 /0", netip.MustParsePrefix("0.0.0.0/0"), a("0.0.0.0"), a("255.255.255.255")},
		{"v4 /31", netip.MustParsePrefix("192.0.2.6/31"), a("192.0.2.6"), a("192.0.2.7")},
		{"v6 /64", netip.MustParsePrefix("2001:db8:1::/64"), a("2001:db8:1::"), a("2001:db8:1::ffff:ffff:ffff:ffff")},
		{"v6 /127 odd bits", netip.MustParsePrefix("2001:db8::3/127"), a("2001:db8::2"), a("2001:db8::3")},
		{"v6 /128", netip.MustParsePrefix("2001:db8::1/128"), a("2001:db8::1"), a("2001:db8::1")},
		{"v6 /0", netip.MustParsePrefix("::/0"), a("::"), a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
		{"v6 /3", netip.MustParsePrefix("2000::/3"), a("2000::"), a("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PrefixRange(tt.p)
			if got.From != tt.from || got.To != tt.to {
				t.Errorf("PrefixRange(%v) = %v-%v, want %v-%v", tt.p, got.From, got.To, tt.from, tt.to)
			}
			if _, err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// An invalid prefix must not turn into ANY.
func TestPrefixRangeInvalid(t *testing.T) {
	for _, p := range []netip.Prefix{{}, netip.PrefixFrom(netip.MustParseAddr("192.0.2.1"), 33), netip.PrefixFrom(netip.Addr{}, 0)} {
		r := PrefixRange(p)
		if r.IsAny() {
			t.Errorf("PrefixRange(%#v) is ANY", p)
		}
		for _, a := range []netip.Addr{hoa, v4a, netip.IPv6Unspecified(), netip.MustParseAddr("::1")} {
			if r.Contains(a) {
				t.Errorf("PrefixRange(%#v) = %v contains %v", p, r, a)
			}
		}
		if _, err := r.Validate(); err == nil {
			t.Errorf("PrefixRange(%#v) = %v passes validation", p, r)
		}
	}
}

func TestSelectorMatch(t *testing.T) {
	pfx := func(s string) AddrRange { return PrefixRange(netip.MustParsePrefix(s)) }
	// The MN's BU/BA entry (RFC 4877 §6.1) and
	// the HA's mirror.
	mnBU := Selector{Local: SingleAddr(hoa), Remote: SingleAddr(ha), Proto: header.ProtoMobility,
		LocalPort: MHType(mhBU), RemotePort: MHType(mhBAck)}
	haBU := Selector{Local: SingleAddr(ha), Remote: SingleAddr(hoa), Proto: header.ProtoMobility,
		LocalPort: MHType(mhBAck), RemotePort: MHType(mhBU)}
	mnMPS := Selector{Local: SingleAddr(hoa), Remote: SingleAddr(ha), Proto: header.ProtoICMPv6,
		LocalPort: ICMPType(mps), RemotePort: ICMPType(mpa)}
	web := Selector{Local: pfx("2001:db8:1::/64"), Remote: AnyAddr, Proto: header.ProtoTCP,
		LocalPort: PortsRange(1024, 65535), RemotePort: Port(443)}
	dns4 := Selector{Local: pfx("192.0.2.0/24"), Remote: SingleAddr(v4b), Proto: header.ProtoUDP,
		RemotePort: Port(53)}
	payload := Selector{Local: SingleAddr(hoa)} // entry 4: HoA -> any, any protocol

	frag := func(p []byte) *header.Flow { // a non-initial fragment of p
		f := flow(p)
		f.Fragment, f.Opaque, f.SrcPort, f.DstPort, f.TypeCode = true, true, 0, 0, 0
		return f
	}
	tests := []struct {
		name string
		sel  Selector
		dir  Direction
		f    *header.Flow
		want bool
	}{
		// MH types per direction (RFC 4301 §4.4.1.3).
		{"MN sends BU", mnBU, Outbound, flow(ip6(hoa, ha, mh(mhBU))), true},
		{"MN sends BU from CoA with HAO", mnBU, Outbound, flow(ip6HAO(coa, hoa, ha, mh(mhBU))), true},
		{"MN may not send BAck", mnBU, Outbound, flow(ip6(hoa, ha, mh(mhBAck))), false},
		{"MN receives BAck", mnBU, Inbound, flow(ip6(ha, hoa, mh(mhBAck))), true},
		{"MN may not receive BU", mnBU, Inbound, flow(ip6(ha, hoa, mh(mhBU))), false},
		{"HA receives BU", haBU, Inbound, flow(ip6(hoa, ha, mh(mhBU))), true},
		{"HA receives BU via HAO", haBU, Inbound, flow(ip6HAO(coa, hoa, ha, mh(mhBU))), true},
		{"HA: BU from CoA without HAO", haBU, Inbound, flow(ip6(coa, ha, mh(mhBU))), false},
		{"HA sends BAck", haBU, Outbound, flow(ip6(ha, hoa, mh(mhBAck))), true},
		{"HA: BU from another HoA", haBU, Inbound, flow(ip6(other, ha, mh(mhBU))), false},
		{"HA: HoTI not in BU selector", haBU, Inbound, flow(ip6(hoa, ha, mh(mhHoTI))), false},
		{"MH type in ICMP selector", mnMPS, Outbound, flow(ip6(hoa, ha, mh(mps))), false},
		{"send-only MH: remote OPAQUE refuses inbound",
			Selector{Local: SingleAddr(hoa), Proto: header.ProtoMobility, LocalPort: MHType(mhHoTI), RemotePort: Opaque},
			Inbound, flow(ip6(cn, hoa, mh(mhHoTI))), false},
		{"send-only MH: outbound ok",
			Selector{Local: SingleAddr(hoa), Proto: header.ProtoMobility, LocalPort: MHType(mhHoTI), RemotePort: Opaque},
			Outbound, flow(ip6(hoa, cn, mh(mhHoTI))), true},
		{"truncated MH is OPAQUE", mnBU, Outbound, &header.Flow{Src: hoa, Dst: ha, Proto: header.ProtoMobility, Opaque: true}, false},

		// ICMP type/code (RFC 4301 §4.4.1.1: type high byte, code low byte).
		{"MPS out", mnMPS, Outbound, flow(ip6(hoa, ha, icmp6(mps, 0))), true},
		{"MPS any code", mnMPS, Outbound, flow(ip6(hoa, ha, icmp6(mps, 200))), true},
		{"MPA in", mnMPS, Inbound, flow(ip6(ha, hoa, icmp6(mpa, 0))), true},
		{"MPS in refused", mnMPS, Inbound, flow(ip6(ha, hoa, icmp6(mps, 0))), false},
		{"echo not MPS", mnMPS, Outbound, flow(ip6(hoa, ha, icmp6(128, 0))), false},
		{"type+code exact", Selector{Proto: header.ProtoICMPv6, LocalPort: ICMPTypeCode(1, 3)}, Outbound, flow(ip6(hoa, ha, icmp6(1, 3))), true},
		{"type+code other code", Selector{Proto: header.ProtoICMPv6, LocalPort: ICMPTypeCode(1, 3)}, Outbound, flow(ip6(hoa, ha, icmp6(1, 4))), false},
		{"type with code range", Selector{Proto: header.ProtoICMPv6, LocalPort: PortsRange(1<<8|2, 1<<8|4)}, Outbound, flow(ip6(hoa, ha, icmp6(1, 4))), true},
		{"type with code range, below", Selector{Proto: header.ProtoICMPv6, LocalPort: PortsRange(1<<8|2, 1<<8|4)}, Outbound, flow(ip6(hoa, ha, icmp6(1, 1))), false},
		{"ICMPv4 echo", Selector{Proto: header.ProtoICMP, LocalPort: ICMPType(8)}, Outbound, flow(ip4(v4a, v4b, icmp4(8, 0))), true},
		{"ICMPv4 selector vs ICMPv6 packet", Selector{Proto: header.ProtoICMP, LocalPort: ICMPType(128)}, Outbound, flow(ip6(hoa, ha, icmp6(128, 0))), false},
		{"ICMP ANY/ANY", Selector{Proto: header.ProtoICMPv6}, Inbound, flow(ip6(ha, hoa, icmp6(3, 1))), true},

		// TCP/UDP ports, per direction.
		{"tcp out", web, Outbound, flow(ip6(hoa, cn, tcp(40000, 443))), true},
		{"tcp out wrong remote port", web, Outbound, flow(ip6(hoa, cn, tcp(40000, 80))), false},
		{"tcp out low local port", web, Outbound, flow(ip6(hoa, cn, tcp(1023, 443))), false},
		{"tcp in (ports swap)", web, Inbound, flow(ip6(cn, hoa, tcp(443, 40000))), true},
		{"tcp in not swapped", web, Inbound, flow(ip6(cn, hoa, tcp(40000, 443))), false},
		{"tcp in local outside prefix", web, Inbound, flow(ip6(cn, other, tcp(443, 40000))), false},
		{"udp selector vs tcp", dns4, Outbound, flow(ip4(v4a, v4b, tcp(5353, 53))), false},
		{"udp v4 out", dns4, Outbound, flow(ip4(v4a, v4b, udp(5353, 53, 10))), true},
		{"udp v4 in", dns4, Inbound, flow(ip4(v4b, v4a, udp(53, 5353, 10))), true},
		{"udp v4 wrong remote", dns4, Outbound, flow(ip4(v4a, netip.MustParseAddr("198.51.100.21"), udp(5353, 53, 10))), false},
		{"udp v4 local last of /24", dns4, Outbound, flow(ip4(netip.MustParseAddr("192.0.2.255"), v4b, udp(1, 53, 0))), true},
		{"udp v4 local past /24", dns4, Outbound, flow(ip4(netip.MustParseAddr("192.0.3.0"), v4b, udp(1, 53, 0))), false},
		{"v4 selector vs v6 packet", dns4, Outbound, flow(ip6(hoa, cn, udp(1, 53, 0))), false},
		{"v4-mapped v6 range vs v4 packet",
			Selector{Local: PrefixRange(netip.MustParsePrefix("::ffff:192.0.2.0/120"))},
			Outbound, flow(ip4(v4a, v4b, udp(1, 2, 0))), false},
		{"port range vs truncated UDP (OPAQUE)", dns4, Outbound, &header.Flow{Src: v4a, Dst: v4b, Proto: header.ProtoUDP, Opaque: true}, false},
		{"SCTP ports", Selector{Proto: header.ProtoSCTP, RemotePort: Port(9)}, Outbound,
			&header.Flow{Src: hoa, Dst: cn, Proto: header.ProtoSCTP, SrcPort: 1, DstPort: 9}, true},

		// OPAQUE and ANY (RFC 4301 §4.4.1.1, §5.1 note on fragments).
		{"fragment: port range", web, Outbound, frag(ip6(hoa, cn, tcp(40000, 443))), false},
		{"fragment: ANY ports", Selector{Proto: header.ProtoTCP}, Outbound, frag(ip6(hoa, cn, tcp(40000, 443))), true},
		{"fragment: OPAQUE ports", Selector{Proto: header.ProtoTCP, LocalPort: Opaque, RemotePort: Opaque}, Outbound, frag(ip6(hoa, cn, tcp(40000, 443))), true},
		{"OPAQUE vs available ports", Selector{Proto: header.ProtoTCP, RemotePort: Opaque}, Outbound, flow(ip6(hoa, cn, tcp(40000, 443))), false},
		{"OPAQUE vs protocol without ports", Selector{RemotePort: Opaque}, Outbound, flow(ip6(hoa, cn, l4{header.ProtoESP, make([]byte, 8)})), true},
		{"port range vs protocol without ports", Selector{RemotePort: Port(0)}, Outbound, flow(ip6(hoa, cn, l4{header.ProtoESP, make([]byte, 8)})), false},
		{"payload entry: any protocol", payload, Outbound, flow(ip6(hoa, cn, udp(1, 2, 3))), true},
		{"payload entry: ESP is a next-layer protocol", payload, Outbound, flow(ip6(hoa, cn, l4{header.ProtoESP, make([]byte, 8)})), true},
		{"payload entry: other source", payload, Outbound, flow(ip6(other, cn, udp(1, 2, 3))), false},
		{"payload entry inbound: local is dst", payload, Inbound, flow(ip6(cn, hoa, udp(1, 2, 3))), true},
		{"ANY everything, v4", Selector{}, Inbound, flow(ip4(v4a, v4b, udp(1, 2, 3))), true},
		{"ANY everything, v6", Selector{}, Outbound, flow(ip6(hoa, cn, mh(mhBU))), true},
		{"proto mismatch", Selector{Proto: header.ProtoUDP}, Outbound, flow(ip6(hoa, cn, tcp(1, 2))), false},

		// Hostile address ranges.
		{"empty range (From > To)", Selector{Local: AddrRange{From: hoa.Next(), To: hoa.Prev()}}, Outbound, flow(ip6(hoa, cn, udp(1, 2, 3))), false},
		{"invalid prefix matches nothing", Selector{Local: PrefixRange(netip.Prefix{})}, Outbound, flow(ip6(hoa, cn, udp(1, 2, 3))), false},
		{"zero flow", Selector{Local: SingleAddr(hoa)}, Outbound, &header.Flow{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.Match(tt.dir, tt.f); got != tt.want {
				t.Errorf("Match(%v, %+v) = %v, want %v", tt.dir, *tt.f, got, tt.want)
			}
		})
	}
}

func TestParseDirection(t *testing.T) {
	for in, want := range map[string]Direction{"in": Inbound, "Inbound": Inbound, " out ": Outbound, "OUTBOUND": Outbound} {
		if d, err := ParseDirection(in); err != nil || d != want {
			t.Errorf("ParseDirection(%q) = %v, %v", in, d, err)
		}
	}
	for _, in := range []string{"", "both", "i n"} {
		if _, err := ParseDirection(in); err == nil {
			t.Errorf("ParseDirection(%q) accepted", in)
		}
	}
}
