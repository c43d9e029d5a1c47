package header

// HomeAddressForm turns a decrypted IPv6 packet p, in place, into the form
// upper layers (the mobility signaling module) see. RFC 6275 §9.3.1: a
// receiver processes a Home Address option by exchanging its address with
// the Source Address.
// RFC 6275 §6.4 with RFC 8200 §4.4: a type 2 Routing header with Segments
// Left 1 is processed by exchanging its address with the Destination
// Address and decrementing Segments Left. Only the first of each is
// processed (sad.SA.Open's selector check, ParseFlow, already
// refused packets with more). IPv4 and malformed packets are left alone.
// It does not allocate.
func HomeAddressForm(p []byte) {
	ip := IPv6(p)
	if !ip.IsValid() {
		return
	}
	var hao, rh2 bool
	it := NewExtIter(ip)
	for {
		h, done, err := it.Next()
		if err != nil || done {
			return
		}
		hdr := h.Bytes(p)
		switch h.Proto {
		case ProtoDestOpts:
			if off, n, ok := scanHAO(hdr); ok && n > 0 && !hao {
				hao = true
				swap16(p[ipv6SrcOffset:], hdr[off:])
			}
		case ProtoRouting:
			rh := RoutingType2(hdr)
			if !rh2 && rh.IsValid() && rh.SegmentsLeft() == 1 {
				rh2 = true
				swap16(p[ipv6DstOffset:], hdr[8:])
				rh.SetSegmentsLeft(0)
			}
		}
	}
}

// swap16 exchanges two 16-byte addresses.
func swap16(a, b []byte) {
	var t [16]byte
	copy(t[:], a[:16])
	copy(a[:16], b[:16])
	copy(b[:16], t[:])
}
