package ike

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Traffic selectors in swanctl.conf's syntax (local_ts, remote_ts):
//
//	ADDR[PROTO/PORT]
//
// ADDR is a prefix ("10.1.0.0/16", "::/0"), one address (a /32 or /128),
// a range "192.0.2.1-192.0.2.9", or "dynamic": the IKE SA's address, which
// the engine substitutes (IsDynamic, ResolveDynamic). The optional
// bracketed part is a protocol, by name (tcp, udp, sctp, icmp, ipv6-icmp
// or icmp6, mh, gre, esp, ...) or number, or "any" / "%any"; then
// optionally '/' and a port: a number, a range "1000-2000", "opaque"
// (RFC 7296 §3.13.1: Start Port 65535, End Port 0) or "%any". For ICMP,
// ICMPv6 and the Mobility Header the "port" is the type in the high byte
// and the code (MH: unused) in the low byte (RFC 4301 §4.4.1.1), written
// TYPE (any code: TYPE<<8 .. TYPE<<8|0xff), TYPE/CODE, or a range of
// those, "3-4" or "1/0-1/4". Ports need a protocol that has them.

// Protocol numbers the selector syntax knows by name (IANA).
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoDCCP   = 33
	protoGRE    = 47
	protoESP    = 50
	protoAH     = 51
	protoICMPv6 = 58
	protoSCTP   = 132
	protoMH     = 135
	protoUDPLit = 136
)

var protoByName = map[string]uint8{
	"icmp": protoICMP, "tcp": protoTCP, "udp": protoUDP, "dccp": protoDCCP, "gre": protoGRE,
	"esp": protoESP, "ah": protoAH, "ipv6-icmp": protoICMPv6, "icmp6": protoICMPv6, "icmpv6": protoICMPv6,
	"sctp": protoSCTP, "mh": protoMH, "ipv6-mh": protoMH, "udplite": protoUDPLit,
}

var protoName = map[uint8]string{
	protoICMP: "icmp", protoTCP: "tcp", protoUDP: "udp", protoDCCP: "dccp", protoGRE: "gre",
	protoESP: "esp", protoAH: "ah", protoICMPv6: "ipv6-icmp", protoSCTP: "sctp", protoMH: "mh",
	protoUDPLit: "udplite",
}

// hasPorts: protocols whose selectors carry ports (RFC 4301 §4.4.1.1).
func hasPorts(p uint8) bool {
	switch p {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLit:
		return true
	}
	return false
}

// typedPorts: protocols whose "ports" are a type (and code) (RFC 4301
// §4.4.1.1).
func typedPorts(p uint8) bool { return p == protoICMP || p == protoICMPv6 || p == protoMH }

// Port range values (RFC 7296 §3.13.1).
const (
	portAny    = 0xffff // End Port of "any"
	opaqueFrom = 0xffff // OPAQUE: Start Port 65535,
	opaqueTo   = 0      // End Port 0
)

// TSDynamic is "dynamic", any protocol and port: the IKE SA's own
// address, substituted by ResolveDynamic.
var TSDynamic = TrafficSelector{EndPort: portAny}

// IsDynamic reports whether ts stands for the IKE address ("dynamic",
// with or without a protocol and port).
func IsDynamic(ts TrafficSelector) bool {
	return ts.Type == 0 && !ts.Start.IsValid() && !ts.End.IsValid() && ts.Raw == nil
}

// ResolveDynamic returns ts with a dynamic address replaced by a (as a
// single-address range); other selectors come back as they are.
func ResolveDynamic(ts TrafficSelector, a netip.Addr) TrafficSelector {
	if !IsDynamic(ts) || !a.IsValid() {
		return ts
	}
	a = a.Unmap().WithZone("")
	ts.Start, ts.End, ts.Type = a, a, tsTypeOf(a)
	return ts
}

func tsTypeOf(a netip.Addr) TSType {
	if a.Is4() {
		return TS_IPV4_ADDR_RANGE
	}
	return TS_IPV6_ADDR_RANGE
}

const maxTSLen = 256

// ParseTS parses one traffic selector in the syntax above.
func ParseTS(s string) (TrafficSelector, error) {
	bad := func(format string, args ...any) (TrafficSelector, error) {
		return TrafficSelector{}, fmt.Errorf("ike: traffic selector %q: %s", s, fmt.Sprintf(format, args...))
	}
	if len(s) > maxTSLen {
		return TrafficSelector{}, fmt.Errorf("ike: traffic selector of %d bytes, more than %d", len(s), maxTSLen)
	}
	in := strings.TrimSpace(s)
	addr, pp, hasPP := strings.Cut(in, "[")
	ts := TrafficSelector{EndPort: portAny}
	addr = strings.TrimSpace(addr)
	switch {
	case addr == "":
		return bad("no address")
	case strings.EqualFold(addr, "dynamic"):
	case strings.Contains(addr, "/"):
		p, err := netip.ParsePrefix(addr)
		if err != nil || p.Addr().Zone() != "" {
			return bad("bad prefix %q", addr)
		}
		ts = TSFromPrefix(p)
	case strings.Contains(addr, "-"):
		a, z, _ := strings.Cut(addr, "-")
		from, err1 := netip.ParseAddr(strings.TrimSpace(a))
		to, err2 := netip.ParseAddr(strings.TrimSpace(z))
		if err1 != nil || err2 != nil || from.Zone() != "" || to.Zone() != "" {
			return bad("bad address range %q", addr)
		}
		from, to = from.Unmap(), to.Unmap()
		switch {
		case from.Is4() != to.Is4():
			return bad("range of two families")
		case from.Compare(to) > 0:
			return bad("inverted address range")
		}
		ts.Start, ts.End, ts.Type = from, to, tsTypeOf(from)
	default:
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			return bad("bad address %q", addr)
		}
		ts = TSFromPrefix(netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	if !hasPP {
		return ts, nil
	}
	pp, ok := strings.CutSuffix(pp, "]")
	if !ok || strings.ContainsAny(pp, "[]") {
		return bad("unbalanced brackets")
	}
	proto, port, hasPort := strings.Cut(strings.ToLower(strings.TrimSpace(pp)), "/")
	switch proto = strings.TrimSpace(proto); {
	case proto == "any" || proto == "%any" || proto == "":
		ts.Protocol = 0
	case protoByName[proto] != 0:
		ts.Protocol = protoByName[proto]
	default:
		n, err := strconv.ParseUint(proto, 10, 8)
		if err != nil {
			return bad("unknown protocol %q", proto)
		}
		ts.Protocol = uint8(n)
	}
	port = strings.TrimSpace(port)
	if !hasPort || port == "%any" || port == "any" {
		return ts, nil
	}
	if !hasPorts(ts.Protocol) && !typedPorts(ts.Protocol) {
		if ts.Protocol == 0 {
			return bad("a port needs a protocol")
		}
		return bad("protocol %d has no ports", ts.Protocol)
	}
	var err error
	if ts.StartPort, ts.EndPort, err = parsePorts(port, typedPorts(ts.Protocol)); err != nil {
		return bad("%v", err)
	}
	return ts, nil
}

func parsePorts(s string, typed bool) (from, to uint16, err error) {
	if s == "opaque" {
		return opaqueFrom, opaqueTo, nil
	}
	a, z, isRange := strings.Cut(s, "-")
	one := func(v string, end bool) (uint16, error) {
		v = strings.TrimSpace(v)
		if !typed {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return 0, fmt.Errorf("bad port %q", v)
			}
			return uint16(n), nil
		}
		t, c, hasCode := strings.Cut(v, "/")
		tn, err := strconv.ParseUint(t, 10, 8)
		if err != nil {
			return 0, fmt.Errorf("bad type %q", t)
		}
		code := uint64(0)
		if end {
			code = 0xff
		}
		if hasCode {
			if code, err = strconv.ParseUint(c, 10, 8); err != nil {
				return 0, fmt.Errorf("bad code %q", c)
			}
		}
		return uint16(tn)<<8 | uint16(code), nil
	}
	if from, err = one(a, false); err != nil {
		return 0, 0, err
	}
	if !isRange {
		z = a
	}
	if to, err = one(z, true); err != nil {
		return 0, 0, err
	}
	if from > to {
		return 0, 0, errors.New("inverted port range")
	}
	return from, to, nil
}

// TSFromPrefix is the selector of every address of p, any protocol and
// port.
func TSFromPrefix(p netip.Prefix) TrafficSelector {
	p = p.Masked()
	a := p.Addr()
	if !a.IsValid() {
		return TrafficSelector{}
	}
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return TrafficSelector{Type: tsTypeOf(a), Start: a, End: last, EndPort: portAny}
}

// FormatTS writes ts in the syntax above: a prefix where the range is
// one ("10.1.0.0/16", "192.0.2.1/32"), else "a-b", and the protocol and
// port in brackets unless they are "any".
func FormatTS(ts TrafficSelector) string {
	var b strings.Builder
	switch {
	case IsDynamic(ts):
		b.WriteString("dynamic")
	case ts.Raw != nil || !ts.Start.IsValid() || !ts.End.IsValid():
		return fmt.Sprintf("ts-type(%d)", ts.Type)
	default:
		if p, ok := rangePrefix(ts.Start, ts.End); ok {
			b.WriteString(p.String())
		} else {
			b.WriteString(ts.Start.String() + "-" + ts.End.String())
		}
	}
	anyPort := ts.StartPort == 0 && ts.EndPort == portAny
	if ts.Protocol == 0 && anyPort {
		return b.String()
	}
	b.WriteByte('[')
	if n, ok := protoName[ts.Protocol]; ok {
		b.WriteString(n)
	} else if ts.Protocol == 0 {
		b.WriteString("any")
	} else {
		b.WriteString(strconv.Itoa(int(ts.Protocol)))
	}
	if !anyPort {
		b.WriteByte('/')
		b.WriteString(formatPorts(ts.StartPort, ts.EndPort, typedPorts(ts.Protocol)))
	}
	b.WriteByte(']')
	return b.String()
}

func formatPorts(from, to uint16, typed bool) string {
	switch {
	case from == opaqueFrom && to == opaqueTo:
		return "opaque"
	case !typed && from == to:
		return strconv.Itoa(int(from))
	case !typed:
		return strconv.Itoa(int(from)) + "-" + strconv.Itoa(int(to))
	}
	tc := func(v uint16) string { return strconv.Itoa(int(v>>8)) + "/" + strconv.Itoa(int(v&0xff)) }
	switch {
	case from&0xff == 0 && to&0xff == 0xff && from>>8 == to>>8:
		return strconv.Itoa(int(from >> 8))
	case from&0xff == 0 && to&0xff == 0xff:
		return strconv.Itoa(int(from>>8)) + "-" + strconv.Itoa(int(to>>8))
	case from == to:
		return tc(from)
	}
	return tc(from) + "-" + tc(to)
}

// rangePrefix returns the prefix that covers exactly start..end, if any.
func rangePrefix(start, end netip.Addr) (netip.Prefix, bool) {
	if start.Is4() != end.Is4() {
		return netip.Prefix{}, false
	}
	for bits := 0; bits <= start.BitLen(); bits++ {
		p := netip.PrefixFrom(start, bits)
		if p.Masked().Addr() != start {
			continue
		}
		if TSFromPrefix(p).End == end {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// addrRange reports ts's family and whether it is an address range this
// package can compare (not dynamic, not a raw selector type).
func addrRange(ts TrafficSelector) (is4, ok bool) {
	if ts.Raw != nil || !ts.Start.IsValid() || !ts.End.IsValid() || ts.Start.Is4() != ts.End.Is4() {
		return false, false
	}
	switch ts.Type {
	case 0:
	case TS_IPV4_ADDR_RANGE:
		if !ts.Start.Is4() {
			return false, false
		}
	case TS_IPV6_ADDR_RANGE:
		if !ts.Start.Is6() {
			return false, false
		}
	default:
		return false, false
	}
	return ts.Start.Is4(), ts.Start.Compare(ts.End) <= 0
}

func isOpaque(from, to uint16) bool { return from == opaqueFrom && to == opaqueTo }

// portsMeet intersects two port ranges. "Any" (0-65535) contains OPAQUE
// (RFC 4301 §4.4.1.1); OPAQUE meets nothing narrower. Inverted ranges
// other than OPAQUE are empty.
func portsMeet(af, at, bf, bt uint16) (from, to uint16, ok bool) {
	anyA, anyB := af == 0 && at == portAny, bf == 0 && bt == portAny
	opA, opB := isOpaque(af, at), isOpaque(bf, bt)
	switch {
	case opA && (opB || anyB), opB && anyA:
		return opaqueFrom, opaqueTo, true
	case opA || opB || af > at || bf > bt:
		return 0, 0, false
	}
	from, to = max(af, bf), min(at, bt)
	return from, to, from <= to
}

// tsMeet is the intersection of two selectors.
func tsMeet(a, b TrafficSelector) (TrafficSelector, bool) {
	a4, okA := addrRange(a)
	b4, okB := addrRange(b)
	if !okA || !okB || a4 != b4 {
		return TrafficSelector{}, false
	}
	r := TrafficSelector{Type: tsTypeOf(a.Start)}
	switch {
	case a.Protocol == b.Protocol, b.Protocol == 0:
		r.Protocol = a.Protocol
	case a.Protocol == 0:
		r.Protocol = b.Protocol
	default:
		return TrafficSelector{}, false
	}
	r.Start, r.End = a.Start, a.End
	if b.Start.Compare(r.Start) > 0 {
		r.Start = b.Start
	}
	if b.End.Compare(r.End) < 0 {
		r.End = b.End
	}
	if r.Start.Compare(r.End) > 0 {
		return TrafficSelector{}, false
	}
	var ok bool
	if r.StartPort, r.EndPort, ok = portsMeet(a.StartPort, a.EndPort, b.StartPort, b.EndPort); !ok {
		return TrafficSelector{}, false
	}
	return r, true
}

func sameTS(a, b TrafficSelector) bool {
	return a.Type == b.Type && a.Protocol == b.Protocol && a.StartPort == b.StartPort &&
		a.EndPort == b.EndPort && a.Start == b.Start && a.End == b.End
}

// NarrowTS is a responder's narrowing (RFC 7296 §2.9): each of theirs
// intersected with each of ours (address range, protocol with 0 for any,
// port range with OPAQUE inside "any"), empty intersections dropped,
// duplicates dropped, in their order, then ours. Dynamic selectors must
// be resolved first (ResolveDynamic); they and selector types other than
// the address ranges intersect nothing. An empty result means
// TS_UNACCEPTABLE.
func NarrowTS(ours, theirs []TrafficSelector) []TrafficSelector {
	var out []TrafficSelector
	for _, t := range theirs {
		for _, o := range ours {
			r, ok := tsMeet(t, o)
			if !ok {
				continue
			}
			dup := false
			for _, e := range out {
				if sameTS(e, r) {
					dup = true
					break
				}
			}
			if !dup {
				out = append(out, r)
			}
		}
	}
	return out
}

// tsWithin reports whether every packet a matches, b matches too.
func tsWithin(a, b TrafficSelector) bool {
	r, ok := tsMeet(a, b)
	if !ok {
		return false
	}
	want := TrafficSelector{Type: tsTypeOf(a.Start), Protocol: a.Protocol, StartPort: a.StartPort, EndPort: a.EndPort, Start: a.Start, End: a.End}
	return sameTS(r, want)
}

// TSSubset reports whether every selector of a lies within some selector
// of b: the initiator's check that the responder narrowed and did not
// widen (RFC 7296 §2.9). An empty a is a subset of anything; a dynamic
// or non-address selector in a is within nothing.
func TSSubset(a, b []TrafficSelector) bool {
	for _, s := range a {
		in := false
		for _, t := range b {
			if tsWithin(s, t) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}
