package esp

import "github.com/mipsec/mipsec/internal/header"

// Locate finds the ESP header in the IPv4 or IPv6 packet p, as it arrives
// from the network: it returns the SPI and the offset of the ESP header,
// which is the espOff that Inbound.Open (and sad.SA.Open) take. It walks
// IPv6 extension headers (Hop-by-Hop, Routing, Fragment, Destination
// Options, RFC 8200 §4) because a Home Address option or a type 2 Routing
// header may precede ESP (RFC 6275 §6.3, §6.4).
//
// ok is false when p is not a valid IP packet, is a fragment (ESP is
// processed after reassembly, RFC 4303 §3.4.1), does not carry ESP, or
// is too short for the SPI and sequence number. The SA is then looked up by
// the SPI alone (RFC 4301 §4.1). Locate does not allocate.
func Locate(p []byte) (spi uint32, espOff int, ok bool) {
	if len(p) == 0 {
		return 0, 0, false
	}
	switch p[0] >> 4 {
	case 4:
		ip := header.IPv4(p)
		if !ip.IsValid() || ip.IsFragment() || ip.Protocol() != header.ProtoESP {
			return 0, 0, false
		}
		espOff = ip.HeaderLen()
		p = p[:ip.TotalLen()]
	case 6:
		ip := header.IPv6(p)
		if !ip.IsValid() {
			return 0, 0, false
		}
		it := header.NewExtIter(ip)
		for {
			h, done, err := it.Next()
			if err != nil {
				return 0, 0, false
			}
			if done {
				break
			}
			if h.Proto == header.ProtoFragment {
				return 0, 0, false
			}
		}
		if it.UpperProto() != header.ProtoESP {
			return 0, 0, false
		}
		espOff = it.UpperOffset()
		p = p[:header.IPv6HeaderLen+ip.PayloadLen()]
	default:
		return 0, 0, false
	}
	e := header.ESP(p[espOff:])
	if !e.IsValid() {
		return 0, 0, false
	}
	return e.SPI(), espOff, true
}
