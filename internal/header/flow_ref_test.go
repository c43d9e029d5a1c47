package header

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// refParseFlow is a slow, independently written model of ParseFlow used by
// the table tests and FuzzParseFlow: every index is checked by hand, no
// views or iterators. It also returns the offset of the next-layer header
// (-1 when there is none, e.g. a non-initial fragment).
func refParseFlow(pkt []byte) (f Flow, l4off int, ok bool) {
	u16 := func(i int) uint16 { return uint16(pkt[i])<<8 | uint16(pkt[i+1]) }
	if len(pkt) < 1 {
		return Flow{}, -1, false
	}
	var end int
	var icmpProto uint8
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return Flow{}, -1, false
		}
		hl := int(pkt[0]&15) * 4
		end = int(u16(2))
		if hl < 20 || end < hl || end > len(pkt) {
			return Flow{}, -1, false
		}
		f.Src = netip.AddrFrom4([4]byte{pkt[12], pkt[13], pkt[14], pkt[15]})
		f.Dst = netip.AddrFrom4([4]byte{pkt[16], pkt[17], pkt[18], pkt[19]})
		f.Proto = pkt[9]
		fo := u16(6)
		if fo&0x3fff != 0 {
			f.Fragment = true
			if fo&0x1fff != 0 {
				f.Opaque = true
				return f, -1, true
			}
		}
		l4off, icmpProto = hl, 1
	case 6:
		if len(pkt) < 40 {
			return Flow{}, -1, false
		}
		end = 40 + int(u16(4))
		if end > len(pkt) {
			return Flow{}, -1, false
		}
		var a [16]byte
		copy(a[:], pkt[8:24])
		f.Src = netip.AddrFrom16(a)
		copy(a[:], pkt[24:40])
		f.Dst = netip.AddrFrom16(a)
		nh, off := pkt[6], 40
		seenHAO, seenRH2 := false, false
		for nh == 0 || nh == 43 || nh == 44 || nh == 60 {
			if off+8 > end {
				return Flow{}, -1, false
			}
			l := 8
			if nh != 44 {
				l = (int(pkt[off+1]) + 1) * 8
			}
			if off+l > end {
				return Flow{}, -1, false
			}
			switch nh {
			case 60:
				for i := off + 2; i < off+l; {
					if pkt[i] == 0 {
						i++
						continue
					}
					if i+2 > off+l {
						return Flow{}, -1, false
					}
					ol := int(pkt[i+1])
					if i+2+ol > off+l {
						return Flow{}, -1, false
					}
					if pkt[i] == 201 {
						if ol != 16 || seenHAO {
							return Flow{}, -1, false
						}
						seenHAO = true
						copy(a[:], pkt[i+2:i+18])
						f.Src = netip.AddrFrom16(a)
					}
					i += 2 + ol
				}
			case 43:
				if pkt[off+2] == 2 {
					if seenRH2 || pkt[off+1] != 2 || pkt[off+3] > 1 {
						return Flow{}, -1, false
					}
					seenRH2 = true
					if pkt[off+3] == 1 {
						copy(a[:], pkt[off+8:off+24])
						f.Dst = netip.AddrFrom16(a)
					}
				}
			case 44:
				v := u16(off + 2)
				if v&0xfff9 != 0 {
					f.Fragment = true
					if v>>3 != 0 {
						f.Proto = pkt[off]
						f.Opaque = true
						return f, -1, true
					}
				}
			}
			nh = pkt[off]
			off += l
		}
		f.Proto = nh
		l4off, icmpProto = off, 58
	default:
		return Flow{}, -1, false
	}
	n := end - l4off
	switch {
	case f.Proto == 6 || f.Proto == 17 || f.Proto == 132:
		if n < 4 {
			f.Opaque = true
		} else {
			f.SrcPort, f.DstPort = u16(l4off), u16(l4off+2)
		}
	case f.Proto == icmpProto:
		if n < 2 {
			f.Opaque = true
		} else {
			f.TypeCode = u16(l4off)
		}
	case f.Proto == 135 && icmpProto == 58:
		if n < 3 {
			f.Opaque = true
		} else {
			f.TypeCode = uint16(pkt[l4off+2]) << 8
		}
	}
	return f, l4off, true
}

// checkFlowInvariants checks what must hold for any packet ParseFlow
// accepts, without trusting refParseFlow for the address rules.
func checkFlowInvariants(t testing.TB, pkt []byte, f Flow) {
	t.Helper()
	if !f.Src.IsValid() || !f.Dst.IsValid() {
		t.Fatalf("invalid address in %+v", f)
	}
	switch pkt[0] >> 4 {
	case 4:
		if !f.Src.Is4() || !f.Dst.Is4() {
			t.Fatalf("IPv4 packet, non-IPv4 addresses %v %v", f.Src, f.Dst)
		}
		h := IPv4(pkt)
		if f.Src != h.Src() || f.Dst != h.Dst() {
			t.Fatalf("IPv4 addresses %v %v, header has %v %v", f.Src, f.Dst, h.Src(), h.Dst())
		}
		if f.Proto != h.Protocol() {
			t.Fatalf("IPv4 proto %d, header has %d", f.Proto, h.Protocol())
		}
	case 6:
		if !f.Src.Is6() || !f.Dst.Is6() {
			t.Fatalf("IPv6 packet, non-IPv6 addresses %v %v", f.Src, f.Dst)
		}
		h := IPv6(pkt)
		body := pkt[IPv6HeaderLen : IPv6HeaderLen+h.PayloadLen()]
		if f.Src != h.Src() {
			// Only a Home Address option (type 201, length 16) holding
			// f.Src may change the source.
			a := f.Src.As16()
			if !bytes.Contains(body, append([]byte{OptHomeAddress, HomeAddressOptLen}, a[:]...)) {
				t.Fatalf("Src %v differs from header %v without a HAO holding it", f.Src, h.Src())
			}
		}
		if f.Dst != h.Dst() {
			// Only a type 2 Routing header (len 2, type 2, SL 1) holding
			// f.Dst may change the destination.
			a := f.Dst.As16()
			found := false
			for i := 0; i+RoutingType2Len <= len(body); i++ {
				if body[i+1] == 2 && body[i+2] == 2 && body[i+3] == 1 && bytes.Equal(body[i+8:i+24], a[:]) {
					found = true
					break
				}
			}
			if !found {
				t.Fatalf("Dst %v differs from header %v without a type 2 RH holding it", f.Dst, h.Dst())
			}
		}
	default:
		t.Fatalf("accepted version %d", pkt[0]>>4)
	}
	// On IPv6 the extension headers are skipped (IPv4 has none: its
	// protocol field is reported as is).
	if pkt[0]>>4 == 6 && IsExtensionHeader(f.Proto) && !(f.Fragment && f.Opaque) {
		t.Fatalf("Proto %d is an extension header in %+v", f.Proto, f)
	}
	if f.Opaque && (f.SrcPort|f.DstPort|f.TypeCode) != 0 {
		t.Fatalf("Opaque flow with ports/type %+v", f)
	}
	if f.Opaque && !f.Fragment && f.Proto != ProtoTCP && f.Proto != ProtoUDP && f.Proto != ProtoSCTP &&
		f.Proto != ProtoICMP && f.Proto != ProtoICMPv6 && f.Proto != ProtoMobility {
		t.Fatalf("Opaque for proto %d, which has no port fields: %+v", f.Proto, f)
	}
	if !f.Opaque && (f.Proto == ProtoTCP || f.Proto == ProtoUDP) {
		if _, off, _ := refParseFlow(pkt); off < 0 || f.SrcPort != binary.BigEndian.Uint16(pkt[off:]) ||
			f.DstPort != binary.BigEndian.Uint16(pkt[off+2:]) {
			t.Fatalf("ports %d→%d do not match L4 offset %d", f.SrcPort, f.DstPort, off)
		}
	}
}
