package mip6

import (
	"net/netip"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// Decap is the verdict of StripUDPEncap: what b now holds, or why the
// packet is not for IPsec. The hot path counts it; it never builds an
// error (STYLE.md §6).
type Decap uint8

const (
	// DecapESP: b.Bytes() is the ESP packet, starting at the SPI (UDP/4500,
	// RFC 3948 §2.1; RFC 5555 §5.2.2).
	DecapESP Decap = iota
	// DecapIP: b.Bytes() is the inner IP packet of an RFC 5555 §4.1 UDP
	// tunnel (UDP/4191), e.g. `IPv6(HoA -> HA) / ESP / MH BU` (RFC 5555
	// §4.2, §5.2.1). The caller hands it to IPsec as an IP packet.
	DecapIP

	// Drops. b is unchanged.

	// DecapTruncated: an IPv4 or UDP header or length field does not fit.
	DecapTruncated
	// DecapNotIPv4: the version is not 4.
	DecapNotIPv4
	// DecapBadChecksum: the IPv4 header checksum is wrong (RFC 791 §3.1).
	DecapBadChecksum
	// DecapFragment: an IPv4 fragment; reassembly happens before this.
	DecapFragment
	// DecapNotUDP: the protocol is not UDP.
	DecapNotUDP
	// DecapPort: the destination port is neither 4500 nor 4191.
	DecapPort
	// DecapKeepalive: an RFC 3948 §2.3 NAT-keepalive (one byte 0xFF);
	// ignore it (SHOULD).
	DecapKeepalive
	// DecapNonESPMarker: RFC 3948 §2.2 non-ESP marker (SPI 0): an IKE
	// message, for the IKE daemon, not the dataplane.
	DecapNonESPMarker
	// DecapShortESP: a UDP/4500 payload under 8 bytes that is not the
	// keepalive: too short for an SPI and sequence number (RFC 4303 §2).
	DecapShortESP
	// DecapBadInner: the UDP/4191 payload is not an IPv4/IPv6 packet by
	// its version nibble (RFC 5555 §4.1; RFC 5845 TLV headers are not
	// used).
	DecapBadInner
)

var decapNames = [...]string{
	DecapESP:          "esp",
	DecapIP:           "ip",
	DecapTruncated:    "truncated",
	DecapNotIPv4:      "not-ipv4",
	DecapBadChecksum:  "bad-ipv4-checksum",
	DecapFragment:     "fragment",
	DecapNotUDP:       "not-udp",
	DecapPort:         "port",
	DecapKeepalive:    "nat-keepalive",
	DecapNonESPMarker: "non-esp-marker",
	DecapShortESP:     "short-esp",
	DecapBadInner:     "bad-inner",
}

// String names d for counters and logs.
func (d Decap) String() string {
	if int(d) < len(decapNames) {
		return decapNames[d]
	}
	return "unknown"
}

// OK reports whether the packet goes on to IPsec (DecapESP or DecapIP).
func (d Decap) OK() bool { return d <= DecapIP }

// StripUDPEncap normalises an inbound UDP-encapsulated packet on the IPv4
// underlay: b.Bytes() is `IPv4 / UDP / ...`.
//
//   - dport 4500 (RFC 3948 §2.1): the payload is ESP; b becomes the ESP
//     packet (DecapESP). A payload of the single byte 0xFF is a
//     NAT-keepalive (§2.3), one starting with four zero bytes is an IKE
//     message behind the non-ESP marker (§2.2): both are reported, not
//     passed on.
//   - dport 4191 (RFC 5555 §4.1): the payload is an IP packet, told by its
//     version nibble; b becomes that packet (DecapIP).
//
// src is the outer IPv4 source address and UDP source port, which DR-4
// records per SPI (NATRecords) before IPsec sees the packet; it is
// unauthenticated (RFC 5555 §5).
//
// Trailing bytes past the IPv4 Total Length or UDP Length (link padding)
// are trimmed. The UDP checksum is not verified: RFC 3948 §2.1 lets it be
// zero and ESP integrity covers the payload; RFC 5555 tunnels carry IPsec-
// protected BUs or inner packets whose own checksums still hold.
// It never allocates and never panics on any input.
func StripUDPEncap(b *pkt.Buf) (src netip.AddrPort, d Decap) {
	p := b.Bytes()
	if len(p) < header.IPv4MinHeaderLen {
		return netip.AddrPort{}, DecapTruncated
	}
	if p[0]>>4 != header.IPv4Version {
		return netip.AddrPort{}, DecapNotIPv4
	}
	ip := header.IPv4(p)
	if !ip.IsValid() {
		return netip.AddrPort{}, DecapTruncated
	}
	if !ip.IsChecksumValid() {
		return netip.AddrPort{}, DecapBadChecksum
	}
	if ip.IsFragment() {
		return netip.AddrPort{}, DecapFragment
	}
	if ip.Protocol() != header.ProtoUDP {
		return netip.AddrPort{}, DecapNotUDP
	}
	hl := ip.HeaderLen()
	total := ip.TotalLen()
	u := header.UDP(p[hl:total])
	if !u.IsValid() || u.Length() < header.UDPHeaderLen || u.Length() > len(u) {
		return netip.AddrPort{}, DecapTruncated
	}
	payload := u[header.UDPHeaderLen:u.Length()]
	src = netip.AddrPortFrom(ip.Src(), u.SrcPort())

	switch u.DstPort() {
	case PortESPInUDP:
		switch {
		case len(payload) == 1 && payload[0] == 0xff:
			return src, DecapKeepalive
		case len(payload) >= 4 && payload[0]|payload[1]|payload[2]|payload[3] == 0:
			return src, DecapNonESPMarker
		case len(payload) < header.ESPHeaderLen:
			return src, DecapShortESP
		}
		b.SetBytes(b.Off()+hl+header.UDPHeaderLen, len(payload))
		return src, DecapESP
	case PortDSMIPv6:
		if len(payload) == 0 {
			return src, DecapBadInner
		}
		if v := payload[0] >> 4; v != 4 && v != 6 {
			return src, DecapBadInner
		}
		b.SetBytes(b.Off()+hl+header.UDPHeaderLen, len(payload))
		return src, DecapIP
	}
	return src, DecapPort
}

// RecordKey returns the clear-text ESP SPI and sequence number of a packet
// StripUDPEncap passed on (p = b.Bytes(), d its verdict): the key under
// which DR-4 records the outer source in NATRecords before IPsec runs.
// For DecapESP the ESP header starts p; for DecapIP it follows the inner
// IPv4 header or the inner IPv6 header and its extension headers (a BU in
// UDP/4191 is `IPv6(HoA -> HA) / ESP`, RFC 5555 §4.2, §5.2.1). ok is false
// when there is no ESP header, or SPI 0 (reserved, RFC 4303 §2.1). Never
// allocates.
func RecordKey(p []byte, d Decap) (spi, seq uint32, ok bool) {
	var e header.ESP
	switch d {
	case DecapESP:
		e = p
	case DecapIP:
		if len(p) == 0 {
			return 0, 0, false
		}
		switch p[0] >> 4 {
		case 4:
			ip := header.IPv4(p)
			if !ip.IsValid() || ip.Protocol() != header.ProtoESP || ip.IsFragment() {
				return 0, 0, false
			}
			e = p[ip.HeaderLen():ip.TotalLen()]
		case 6:
			ip := header.IPv6(p)
			if !ip.IsValid() {
				return 0, 0, false
			}
			ip = ip[:header.IPv6HeaderLen+ip.PayloadLen()]
			it := header.NewExtIter(ip)
			for {
				_, done, err := it.Next()
				if err != nil {
					return 0, 0, false
				}
				if done {
					break
				}
			}
			if it.UpperProto() != header.ProtoESP {
				return 0, 0, false
			}
			e = header.ESP(ip[it.UpperOffset():])
		default:
			return 0, 0, false
		}
	default:
		return 0, 0, false
	}
	if !e.IsValid() || e.SPI() == 0 {
		return 0, 0, false
	}
	return e.SPI(), e.Seq(), true
}
