package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mipsec/mipsec/sad"
)

// FormatAddrRange writes r the way ParseAddrRange reads it.
func FormatAddrRange(r sad.AddrRange) string {
	if r.IsAny() {
		return "any"
	}
	if r.From == r.To {
		return r.From.String()
	}
	// A prefix if the range is exactly one.
	for bits := 0; bits <= r.From.BitLen(); bits++ {
		p := netip.PrefixFrom(r.From, bits).Masked()
		if p.Addr() == r.From && sad.PrefixRange(p) == r {
			return p.String()
		}
	}
	return r.From.String() + "-" + r.To.String()
}

// FormatPorts writes p the way ParsePorts reads it.
func FormatPorts(p sad.Ports) string {
	switch p.Match {
	case sad.PortOpaque:
		return "opaque"
	case sad.PortInRange:
		if p.Lo == p.Hi {
			return strconv.Itoa(int(p.Lo))
		}
		return fmt.Sprintf("%d-%d", p.Lo, p.Hi)
	}
	return "any"
}

// FormatProto names protocol p (its number when it has no name).
func FormatProto(p uint8) string {
	for n, v := range ProtocolNumbers {
		if v == p && n != "icmpv6" && n != "mobility" {
			return n
		}
	}
	return strconv.Itoa(int(p))
}

// FormatSelector prints a selector set as "local -> remote proto lport rport",
// leaving out ANY ports.
func FormatSelector(s sad.Selector) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s -> %s proto %s", FormatAddrRange(s.Local), FormatAddrRange(s.Remote), FormatProto(s.Proto))
	if s.LocalPort.Match != sad.PortAny {
		fmt.Fprintf(&b, " lport %s", FormatPorts(s.LocalPort))
	}
	if s.RemotePort.Match != sad.PortAny {
		fmt.Fprintf(&b, " rport %s", FormatPorts(s.RemotePort))
	}
	return b.String()
}
