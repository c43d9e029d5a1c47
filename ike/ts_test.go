package ike

import (
	"net/netip"
	"strings"
	"testing"
)

func tsOf(t *testing.T, s string) TrafficSelector {
	t.Helper()
	ts, err := ParseTS(s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func tsList(t *testing.T, ss ...string) []TrafficSelector {
	t.Helper()
	var out []TrafficSelector
	for _, s := range ss {
		out = append(out, tsOf(t, s))
	}
	return out
}

func formatTSs(ts []TrafficSelector) string {
	var s []string
	for _, x := range ts {
		s = append(s, FormatTS(x))
	}
	return strings.Join(s, " ")
}

func TestParseTS(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		in         string
		start, end string
		proto      uint8
		from, to   uint16
		out        string // FormatTS; "" means in
	}{
		{in: "10.1.0.0/16", start: "10.1.0.0", end: "10.1.255.255", to: 0xffff},
		{in: "10.1.2.3/16", start: "10.1.0.0", end: "10.1.255.255", to: 0xffff, out: "10.1.0.0/16"},
		{in: "192.0.2.1", start: "192.0.2.1", end: "192.0.2.1", to: 0xffff, out: "192.0.2.1/32"},
		{in: "0.0.0.0/0", start: "0.0.0.0", end: "255.255.255.255", to: 0xffff},
		{in: "::/0", start: "::", end: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", to: 0xffff},
		{in: "2001:db8::/64", start: "2001:db8::", end: "2001:db8::ffff:ffff:ffff:ffff", to: 0xffff},
		{in: "2001:db8::1", start: "2001:db8::1", end: "2001:db8::1", to: 0xffff, out: "2001:db8::1/128"},
		{in: "::ffff:192.0.2.1", start: "192.0.2.1", end: "192.0.2.1", to: 0xffff, out: "192.0.2.1/32"},
		{in: "192.0.2.1-192.0.2.9", start: "192.0.2.1", end: "192.0.2.9", to: 0xffff},
		{in: "192.0.2.0-192.0.2.255", start: "192.0.2.0", end: "192.0.2.255", to: 0xffff, out: "192.0.2.0/24"},
		{in: "10.1.0.0/16[tcp/80]", start: "10.1.0.0", end: "10.1.255.255", proto: 6, from: 80, to: 80},
		{in: "10.0.0.0/8[udp/1000-2000]", start: "10.0.0.0", end: "10.255.255.255", proto: 17, from: 1000, to: 2000},
		{in: "10.0.0.0/8[UDP/%any]", start: "10.0.0.0", end: "10.255.255.255", proto: 17, to: 0xffff, out: "10.0.0.0/8[udp]"},
		{in: "10.0.0.0/8[tcp]", start: "10.0.0.0", end: "10.255.255.255", proto: 6, to: 0xffff},
		{in: "10.0.0.0/8[udp/opaque]", start: "10.0.0.0", end: "10.255.255.255", proto: 17, from: 0xffff, to: 0},
		{in: "0.0.0.0/0[icmp/8]", start: "0.0.0.0", end: "255.255.255.255", proto: 1, from: 0x0800, to: 0x08ff},
		{in: "0.0.0.0/0[icmp/8/0]", start: "0.0.0.0", end: "255.255.255.255", proto: 1, from: 0x0800, to: 0x0800},
		{in: "0.0.0.0/0[icmp/3-4]", start: "0.0.0.0", end: "255.255.255.255", proto: 1, from: 0x0300, to: 0x04ff},
		{in: "0.0.0.0/0[icmp/3/1-3/4]", start: "0.0.0.0", end: "255.255.255.255", proto: 1, from: 0x0301, to: 0x0304},
		{in: "::/0[ipv6-icmp/128]", start: "::", end: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", proto: 58, from: 0x8000, to: 0x80ff},
		{in: "::/0[icmp6/135-136]", start: "::", end: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", proto: 58, from: 0x8700, to: 0x88ff, out: "::/0[ipv6-icmp/135-136]"},
		{in: "2001:db8::1[mh/5]", start: "2001:db8::1", end: "2001:db8::1", proto: 135, from: 0x0500, to: 0x05ff, out: "2001:db8::1/128[mh/5]"},
		{in: "10.0.0.0/8[47]", start: "10.0.0.0", end: "10.255.255.255", proto: 47, to: 0xffff, out: "10.0.0.0/8[gre]"},
		{in: "10.0.0.0/8[200]", start: "10.0.0.0", end: "10.255.255.255", proto: 200, to: 0xffff},
		{in: "10.0.0.0/8[any]", start: "10.0.0.0", end: "10.255.255.255", to: 0xffff, out: "10.0.0.0/8"},
		{in: " 10.0.0.0/8 [ tcp / 22 ] ", start: "10.0.0.0", end: "10.255.255.255", proto: 6, from: 22, to: 22, out: "10.0.0.0/8[tcp/22]"},
	}
	for _, tt := range tests {
		ts, err := ParseTS(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if ts.Start != a(tt.start) || ts.End != a(tt.end) || ts.Protocol != tt.proto || ts.StartPort != tt.from || ts.EndPort != tt.to {
			t.Errorf("%q: got %v-%v proto %d ports %#x-%#x", tt.in, ts.Start, ts.End, ts.Protocol, ts.StartPort, ts.EndPort)
		}
		if ts.Type != tsTypeOf(ts.Start) || IsDynamic(ts) {
			t.Errorf("%q: type %d", tt.in, ts.Type)
		}
		out := tt.out
		if out == "" {
			out = tt.in
		}
		if got := FormatTS(ts); got != out {
			t.Errorf("%q: FormatTS = %q, want %q", tt.in, got, out)
		}
		if again, err := ParseTS(FormatTS(ts)); err != nil || !sameTS(again, ts) {
			t.Errorf("%q: reparse %+v, %v", tt.in, again, err)
		}
		// Every parsed selector encodes.
		if _, err := (&TS{Selectors: []TrafficSelector{ts}}).appendBody(nil); err != nil {
			t.Errorf("%q: encode: %v", tt.in, err)
		}
	}
}

func TestParseTSDynamic(t *testing.T) {
	d := tsOf(t, "dynamic")
	if !IsDynamic(d) || !sameTS(d, TSDynamic) || FormatTS(d) != "dynamic" {
		t.Errorf("dynamic: %+v %q", d, FormatTS(d))
	}
	dp := tsOf(t, "Dynamic[tcp/443]")
	if !IsDynamic(dp) || dp.Protocol != 6 || dp.StartPort != 443 || FormatTS(dp) != "dynamic[tcp/443]" {
		t.Errorf("dynamic[tcp/443]: %+v %q", dp, FormatTS(dp))
	}
	r := ResolveDynamic(dp, netip.MustParseAddr("192.0.2.7"))
	if IsDynamic(r) || FormatTS(r) != "192.0.2.7/32[tcp/443]" {
		t.Errorf("resolved: %q", FormatTS(r))
	}
	if r := ResolveDynamic(tsOf(t, "10.0.0.0/8"), netip.MustParseAddr("192.0.2.7")); FormatTS(r) != "10.0.0.0/8" {
		t.Errorf("a fixed selector was resolved: %q", FormatTS(r))
	}
	if IsDynamic(tsOf(t, "0.0.0.0/0")) || IsDynamic(TrafficSelector{Type: 9, Raw: []byte{}}) {
		t.Error("fixed selectors reported dynamic")
	}
	// Unresolved, dynamic narrows and contains nothing.
	if n := NarrowTS([]TrafficSelector{d}, tsList(t, "0.0.0.0/0")); len(n) != 0 {
		t.Errorf("dynamic narrowed to %q", formatTSs(n))
	}
}

func TestParseTSErrors(t *testing.T) {
	for _, in := range []string{
		"", "   ", "[tcp/80]", "garbage", "10.0.0.0/33", "10.0.0.0/-1", "::/129", "10.0.0.256",
		"fe80::1%eth0", "fe80::/64%eth0", "10.0.0.9-10.0.0.1", "10.0.0.1-::1", "10.0.0.1-", "-10.0.0.1",
		"10.0.0.0/8[tcp/80", "10.0.0.0/8tcp/80]", "10.0.0.0/8[tcp/80]]", "10.0.0.0/8[[tcp]",
		"10.0.0.0/8[bogus]", "10.0.0.0/8[256]", "10.0.0.0/8[-1]",
		"10.0.0.0/8[tcp/65536]", "10.0.0.0/8[tcp/80-79]", "10.0.0.0/8[tcp/x]", "10.0.0.0/8[tcp/1-2-3]",
		"10.0.0.0/8[47/80]", "10.0.0.0/8[esp/1]", "10.0.0.0/8[any/80]", "10.0.0.0/8[/80]",
		"0.0.0.0/0[icmp/256]", "0.0.0.0/0[icmp/8/256]", "0.0.0.0/0[icmp/9-8]", "0.0.0.0/0[icmp/8/5-8/4]",
		"0.0.0.0/0[icmp/a]", "::/0[mh/x]",
		"\x00", strings.Repeat("1", 300),
	} {
		if ts, err := ParseTS(in); err == nil {
			t.Errorf("%q: accepted as %q", in, FormatTS(ts))
		}
	}
}

func TestTSFromPrefix(t *testing.T) {
	for _, tc := range []struct{ p, start, end string }{
		{"10.1.2.3/24", "10.1.2.0", "10.1.2.255"},
		{"10.1.2.3/31", "10.1.2.2", "10.1.2.3"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"2001:db8::/33", "2001:db8::", "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::5/128", "2001:db8::5", "2001:db8::5"},
	} {
		ts := TSFromPrefix(netip.MustParsePrefix(tc.p))
		if ts.Start.String() != tc.start || ts.End.String() != tc.end || ts.Protocol != 0 || ts.StartPort != 0 || ts.EndPort != 0xffff {
			t.Errorf("%s: %+v", tc.p, ts)
		}
	}
	if ts := TSFromPrefix(netip.Prefix{}); ts.Start.IsValid() {
		t.Errorf("invalid prefix: %+v", ts)
	}
}

func TestFormatTSOdd(t *testing.T) {
	for _, tc := range []struct {
		ts   TrafficSelector
		want string
	}{
		{TrafficSelector{Type: 9, Raw: []byte{1}}, "ts-type(9)"},
		{TrafficSelector{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.2"), Protocol: 1, StartPort: 0x0801, EndPort: 0x0902}, "10.0.0.1-10.0.0.2[icmp/8/1-9/2]"},
		{TrafficSelector{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.1"), Protocol: 0, StartPort: 5, EndPort: 6}, "10.0.0.1/32[any/5-6]"},
	} {
		if got := FormatTS(tc.ts); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestNarrowTS(t *testing.T) {
	tests := []struct {
		name         string
		ours, theirs []string
		want         string
	}{
		// RFC 7296 §2.9: the initiator proposes everything, the responder
		// narrows to what its policy allows.
		{"initiator proposes 0.0.0.0/0", []string{"10.1.0.0/16"}, []string{"0.0.0.0/0"}, "10.1.0.0/16"},
		{"ours wider: theirs kept", []string{"0.0.0.0/0"}, []string{"10.1.2.0/24", "10.9.0.1"}, "10.1.2.0/24 10.9.0.1/32"},
		// §2.9: the first selector of each is the packet that triggered; both survive narrowing.
		{"several of ours", []string{"10.1.0.0/16", "10.3.0.0/16"}, []string{"10.1.2.3[tcp/80]", "0.0.0.0/0"},
			"10.1.2.3/32[tcp/80] 10.1.0.0/16 10.3.0.0/16"},
		{"disjoint", []string{"10.1.0.0/16"}, []string{"10.2.0.0/16"}, ""},
		{"families differ", []string{"::/0"}, []string{"0.0.0.0/0"}, ""},
		{"partial ranges", []string{"10.0.0.5-10.0.0.20"}, []string{"10.0.0.0-10.0.0.9"}, "10.0.0.5-10.0.0.9"},
		{"protocol any meets tcp", []string{"10.0.0.0/8"}, []string{"10.0.0.0/8[tcp/443]"}, "10.0.0.0/8[tcp/443]"},
		{"tcp meets any", []string{"10.0.0.0/8[tcp/443]"}, []string{"10.0.0.0/8"}, "10.0.0.0/8[tcp/443]"},
		{"tcp meets udp", []string{"10.0.0.0/8[tcp]"}, []string{"10.0.0.0/8[udp]"}, ""},
		{"port ranges", []string{"10.0.0.0/8[udp/1000-2000]"}, []string{"10.0.0.0/8[udp/1500-3000]"}, "10.0.0.0/8[udp/1500-2000]"},
		{"ports disjoint", []string{"10.0.0.0/8[udp/1000-2000]"}, []string{"10.0.0.0/8[udp/3000]"}, ""},
		{"opaque within any", []string{"10.0.0.0/8[udp]"}, []string{"10.0.0.0/8[udp/opaque]"}, "10.0.0.0/8[udp/opaque]"},
		{"any narrowed to opaque", []string{"10.0.0.0/8[udp/opaque]"}, []string{"10.0.0.0/8"}, "10.0.0.0/8[udp/opaque]"},
		{"opaque meets opaque", []string{"10.0.0.0/8[udp/opaque]"}, []string{"10.0.0.0/8[udp/opaque]"}, "10.0.0.0/8[udp/opaque]"},
		{"opaque is not a port", []string{"10.0.0.0/8[udp/53]"}, []string{"10.0.0.0/8[udp/opaque]"}, ""},
		{"ICMP type within any", []string{"0.0.0.0/0[icmp]"}, []string{"0.0.0.0/0[icmp/8]"}, "0.0.0.0/0[icmp/8]"},
		{"ICMP type and code", []string{"0.0.0.0/0[icmp/8]"}, []string{"0.0.0.0/0[icmp/8/0]"}, "0.0.0.0/0[icmp/8/0]"},
		{"ICMP types differ", []string{"0.0.0.0/0[icmp/8]"}, []string{"0.0.0.0/0[icmp/0]"}, ""},
		{"MH type", []string{"2001:db8::/64[mh/5-6]"}, []string{"::/0[mh/5]"}, "2001:db8::/64[mh/5]"},
		{"MH types differ", []string{"::/0[mh/5]"}, []string{"::/0[mh/6]"}, ""},
		{"duplicates dropped", []string{"10.1.0.0/16", "10.1.0.0/16[any]"}, []string{"0.0.0.0/0", "10.0.0.0/8"}, "10.1.0.0/16"},
		{"nothing offered", []string{"0.0.0.0/0"}, nil, ""},
	}
	for _, tt := range tests {
		got := NarrowTS(tsList(t, tt.ours...), tsList(t, tt.theirs...))
		if f := formatTSs(got); f != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, f, tt.want)
		}
		// What we narrowed to is within both sides.
		if !TSSubset(got, tsList(t, tt.ours...)) || !TSSubset(got, tsList(t, tt.theirs...)) {
			t.Errorf("%s: %q not within both sides", tt.name, formatTSs(got))
		}
	}
	// Hostile selectors: inverted ranges, mixed families, raw types.
	hostile := []TrafficSelector{
		{Type: TS_IPV4_ADDR_RANGE, Start: netip.MustParseAddr("10.0.0.9"), End: netip.MustParseAddr("10.0.0.1"), EndPort: 0xffff},
		{Type: TS_IPV4_ADDR_RANGE, Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("::1"), EndPort: 0xffff},
		{Type: TS_IPV6_ADDR_RANGE, Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.2"), EndPort: 0xffff},
		{Type: TS_IPV4_ADDR_RANGE, Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.2"), StartPort: 9, EndPort: 8},
		{Type: 12, Raw: []byte{1, 2, 3}},
		{},
	}
	if got := NarrowTS(tsList(t, "0.0.0.0/0", "::/0"), hostile); len(got) != 0 {
		t.Errorf("hostile selectors narrowed to %q", formatTSs(got))
	}
	if TSSubset(hostile[:1], tsList(t, "0.0.0.0/0")) {
		t.Error("an inverted range counted as a subset")
	}
}

func TestTSSubset(t *testing.T) {
	tests := []struct {
		a, b []string
		want bool
	}{
		{[]string{"10.1.0.0/16"}, []string{"10.0.0.0/8"}, true},
		{[]string{"10.0.0.0/8"}, []string{"10.1.0.0/16"}, false},
		{[]string{"10.1.0.0/16", "10.2.0.1"}, []string{"10.1.0.0/16", "10.2.0.0/24"}, true},
		{[]string{"10.1.0.0/16", "10.3.0.1"}, []string{"10.1.0.0/16", "10.2.0.0/24"}, false},
		{[]string{"10.1.0.0/16[tcp/80]"}, []string{"10.0.0.0/8"}, true},
		{[]string{"10.1.0.0/16"}, []string{"10.0.0.0/8[tcp]"}, false},
		{[]string{"10.1.0.0/16[tcp/80-90]"}, []string{"10.0.0.0/8[tcp/80-89]"}, false},
		{[]string{"10.1.0.0/16[udp/opaque]"}, []string{"10.0.0.0/8[udp]"}, true},
		{[]string{"10.1.0.0/16[udp]"}, []string{"10.0.0.0/8[udp/opaque]"}, false},
		{[]string{"0.0.0.0/0[icmp/8/0]"}, []string{"0.0.0.0/0[icmp/8]"}, true},
		{[]string{"::/0"}, []string{"0.0.0.0/0"}, false},
		{nil, []string{"0.0.0.0/0"}, true},
		{[]string{"0.0.0.0/0"}, nil, false},
		{[]string{"dynamic"}, []string{"0.0.0.0/0"}, false},
	}
	for _, tt := range tests {
		if got := TSSubset(tsList(t, tt.a...), tsList(t, tt.b...)); got != tt.want {
			t.Errorf("TSSubset(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
