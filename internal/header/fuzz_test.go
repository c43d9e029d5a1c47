package header

import (
	"bytes"
	"net/netip"
	"testing"
)

// Fuzz targets. Each asserts invariants of the output, not only "no
// panic" (STYLE.md §8). Seed corpora: testdata/fuzz/<Name>/, plus the
// ParseFlow table rows.

func FuzzParseFlow(f *testing.F) {
	for _, tt := range flowCases(f) {
		f.Add(tt.pkt)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var fl Flow
		ok := ParseFlow(pkt, &fl)
		ref, _, refOK := refParseFlow(pkt)
		if ok != refOK || fl != ref {
			t.Fatalf("ParseFlow = %v %+v, reference model %v %+v", ok, fl, refOK, ref)
		}
		if !ok {
			if fl != (Flow{}) {
				t.Fatalf("rejected packet left flow %+v", fl)
			}
			return
		}
		checkFlowInvariants(t, pkt, fl)
		// The header's length fields bound the parse: bytes after the
		// packet change nothing.
		n, lok := InnerLen(pkt)
		if !lok {
			t.Fatalf("ParseFlow accepted a packet InnerLen rejects")
		}
		var g Flow
		longer := append(append([]byte(nil), pkt[:n]...), 0x1e, 0xc9, 0x10, 6, 0)
		if !ParseFlow(pkt[:n], &g) || g != fl || !ParseFlow(longer, &g) || g != fl {
			t.Fatalf("trailing bytes changed the flow: %+v vs %+v", g, fl)
		}
	})
}

func FuzzOptIter(f *testing.F) {
	f.Add(haoOpts(ProtoMobility, hoa))
	f.Add(rawOpts(ProtoUDP, 0, 0x1e, 1, 0xaa))
	f.Add([]byte{59, 0, 1, 5, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, hdr []byte) {
		it := NewOptIter(hdr)
		next := 2 // offset where the next option must start
		var haos int
		var first netip.Addr
		malformed := false
		for steps := 0; ; steps++ {
			if steps > len(hdr) {
				t.Fatalf("no end after %d steps over %d bytes", steps, len(hdr))
			}
			o, done, err := it.Next()
			if done {
				if next < len(hdr) || len(hdr) >= 2 && next != len(hdr) {
					t.Fatalf("done at %d of %d", next, len(hdr))
				}
				break
			}
			if err != nil {
				if err != ErrMalformed || next >= len(hdr) {
					t.Fatalf("err %v at %d of %d", err, next, len(hdr))
				}
				if _, done, err := it.Next(); !done || err != nil {
					t.Fatal("Next after an error is not done")
				}
				malformed = true
				break
			}
			if o.Offset != next || o.Len() < 1 || o.Offset+o.Len() > len(hdr) {
				t.Fatalf("option %+v at %d, expected at %d, header %d bytes", o, o.Offset, next, len(hdr))
			}
			if hdr[o.Offset] != o.Type || o.Type != OptPad1 && (int(hdr[o.Offset+1]) != len(o.Data) ||
				!bytes.Equal(hdr[o.Offset+2:o.Offset+o.Len()], o.Data)) {
				t.Fatalf("option %+v does not match its bytes", o)
			}
			if o.Type == OptHomeAddress {
				a, ok := o.HomeAddress()
				if !ok || len(o.Data) != HomeAddressOptLen || a.As16() != [16]byte(o.Data) {
					t.Fatalf("HAO %+v", o)
				}
				if haos == 0 {
					first = a
				}
				haos++
			}
			next += o.Len()
		}
		// ParseFlow's scanner agrees with the iterator.
		off, n, ok := scanHAO(hdr)
		if ok == malformed || ok && (n != haos || n > 0 && netip.AddrFrom16([16]byte(hdr[off:])) != first) {
			t.Fatalf("scanHAO = %d %d %v; iterator: %d HAOs, first %v, malformed %v", off, n, ok, haos, first, malformed)
		}
		// FindHomeAddress, bounded by the length field, finds the first
		// HAO of a well-formed header whose length field covers it all.
		if len(hdr) >= 2 && (int(hdr[1])+1)*8 == len(hdr) && haos > 0 {
			if a, ok := FindHomeAddress(hdr); !ok || a != first {
				t.Fatalf("FindHomeAddress = %v %v, iterator found %v", a, ok, first)
			}
		}
		if d := DestOpts(hdr); d.IsValid() {
			it := d.Options()
			for range d.Len() + 1 {
				o, done, err := it.Next()
				if done || err != nil {
					break
				}
				if o.Offset+o.Len() > d.Len() {
					t.Fatalf("option %+v past the header length %d", o, d.Len())
				}
			}
		}
	})
}

func FuzzIPv4(f *testing.F) {
	f.Add(ip4(ProtoTCP, tcp(1, 2)))
	f.Add(ip4(ProtoUDP, udp(1, 2), func(f *IPv4Fields) { f.Options = []byte{1, 1, 1, 0}; f.FragmentOffset = 8 }))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := IPv4(b)
		if !h.IsValid() {
			return
		}
		// Every accessor is in bounds.
		hl, tl := h.HeaderLen(), h.TotalLen()
		_, _, _, _, _, _ = h.TOS(), h.ID(), h.TTL(), h.Protocol(), h.Checksum(), h.IsFragment()
		if !h.Src().Is4() || !h.Dst().Is4() || len(h.Payload()) != tl-hl || h.FragmentOffset()%8 != 0 || h.Flags()&^0xe000 != 0 {
			t.Fatalf("accessors: %x", b)
		}
		if n, ok := InnerLen(b); !ok || n != tl {
			t.Fatalf("InnerLen = %d %v, TotalLen %d", n, ok, tl)
		}
		// Fields → Encode → Fields, and the bytes match apart from the
		// checksum, which Encode computes.
		fl := h.Fields()
		out := make([]byte, tl)
		IPv4(out).Encode(&fl)
		copy(out[hl:], h.Payload())
		if !bytes.Equal(out[:10], b[:10]) || !bytes.Equal(out[12:tl], b[12:tl]) {
			t.Fatalf("Encode(Fields) = %x, want %x", out[:hl], b[:hl])
		}
		o := IPv4(out)
		if !o.IsValid() || !o.IsChecksumValid() {
			t.Fatal("re-encoded header not valid")
		}
		if o.Fields().Src != fl.Src || o.Fields().FragmentOffset != fl.FragmentOffset || !bytes.Equal(o.Fields().Options, fl.Options) {
			t.Fatal("Fields round trip")
		}
		// The template path gives the same checksum as a full recompute.
		tmpl := append([]byte(nil), out[:hl]...)
		p := IPv4(tmpl).PartialChecksum()
		IPv4(tmpl).EncodePartial(p, tl, fl.ID)
		if !bytes.Equal(tmpl, out[:hl]) {
			t.Fatalf("EncodePartial = %x, Encode %x", tmpl, out[:hl])
		}
	})
}

func FuzzIPv6(f *testing.F) {
	f.Add(ip6(ProtoDestOpts, cat(haoOpts(ProtoMobility, hoa), mhBU())))
	f.Add(ip6(ProtoRouting, cat(rh2(ProtoFragment, hoa), frag6(ProtoTCP, 0, true), tcp(1, 2))))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := IPv6(b)
		if !h.IsValid() {
			return
		}
		_, _, _, _ = h.TrafficClass(), h.FlowLabel(), h.NextHeader(), h.HopLimit()
		if !h.Src().Is6() || !h.Dst().Is6() || len(h.Payload()) != h.PayloadLen() {
			t.Fatalf("accessors: %x", b)
		}
		if n, ok := InnerLen(b); !ok || n != IPv6HeaderLen+h.PayloadLen() {
			t.Fatalf("InnerLen = %d %v", n, ok)
		}
		fl := h.Fields()
		out := make([]byte, IPv6HeaderLen)
		IPv6(out).Encode(&fl)
		if !bytes.Equal(out, b[:IPv6HeaderLen]) {
			t.Fatalf("Encode(Fields) = %x, want %x", out, b[:IPv6HeaderLen])
		}
		// The extension header walk stays inside the payload, each header
		// starts where the previous one ended, and it ends.
		it := NewExtIter(h)
		end, off := IPv6HeaderLen+h.PayloadLen(), IPv6HeaderLen
		for range end {
			e, done, err := it.Next()
			if err != nil {
				break
			}
			if done {
				if it.UpperOffset() != off || IsExtensionHeader(it.UpperProto()) {
					t.Fatalf("stopped at %d proto %d, expected offset %d", it.UpperOffset(), it.UpperProto(), off)
				}
				break
			}
			if e.Offset != off || e.Len < 8 || e.Len%8 != 0 || e.Offset+e.Len > end || e.Next != b[e.Offset] {
				t.Fatalf("header %+v, expected at %d, end %d", e, off, end)
			}
			if e.Proto == ProtoRouting && RoutingType2(e.Bytes(b)).IsValid() {
				r := RoutingType2(e.Bytes(b))
				if r.HomeAddress().As16() != [16]byte(b[e.Offset+8:e.Offset+24]) || r.SegmentsLeft() > 1 {
					t.Fatalf("RoutingType2 %x", e.Bytes(b))
				}
			}
			if e.Proto == ProtoDestOpts && !DestOpts(e.Bytes(b)).IsValid() {
				t.Fatalf("DestOpts view rejects a header the walk accepted: %x", e.Bytes(b))
			}
			off += e.Len
		}
	})
}

func FuzzMH(f *testing.F) {
	f.Add(mhBU(), []byte{0, 1, 2})
	f.Add(mhType(MHTypeBA), []byte(nil))
	f.Fuzz(func(t *testing.T, b []byte, data []byte) {
		// Decode → encode → decode.
		if mh := MH(b); mh.IsValid() {
			fl := mh.Fields()
			if mh.Len()%8 != 0 || mh.Len() < MHMinLen || len(fl.Data) != mh.Len()-MHMessageDataOffset {
				t.Fatalf("Len %d data %d", mh.Len(), len(fl.Data))
			}
			out := make([]byte, MHEncodedLen(len(fl.Data)))
			if n := MH(out).Encode(&fl); n != mh.Len() || !bytes.Equal(out, b[:n]) {
				t.Fatalf("Encode(Fields) = %x, want %x", out, b[:mh.Len()])
			}
			if g := MH(out).Fields(); g.Type != fl.Type || g.Checksum != fl.Checksum || g.PayloadProto != fl.PayloadProto ||
				g.Reserved != fl.Reserved || !bytes.Equal(g.Data, fl.Data) {
				t.Fatal("Fields round trip")
			}
			MH(out).UpdateChecksum(hoa, ha)
			if !MH(out).VerifyChecksum(hoa, ha) {
				t.Fatal("checksum does not verify")
			}
		}
		// Encode → decode → encode for any message data that fits.
		if len(data) > 2042 {
			return
		}
		fl := MHFields{PayloadProto: ProtoNoNext, Type: uint8(len(data)), Checksum: uint16(len(b)), Data: data}
		out := make([]byte, MHEncodedLen(len(data)))
		n := MH(out).Encode(&fl)
		mh := MH(out)
		if n != len(out) || !mh.IsValid() || mh.Len() != n || !bytes.Equal(mh.MessageData()[:len(data)], data) {
			t.Fatalf("Encode(%x) = %x", data, out)
		}
		// The padding is one Pad1 or PadN mobility option of zeros.
		switch pad := mh.MessageData()[len(data):]; len(pad) {
		case 0:
		case 1:
			if pad[0] != MobOptPad1 {
				t.Fatalf("pad %x", pad)
			}
		default:
			if pad[0] != MobOptPadN || int(pad[1]) != len(pad)-2 || bytes.Count(pad[2:], []byte{0}) != len(pad)-2 {
				t.Fatalf("pad %x", pad)
			}
		}
		g := mh.Fields()
		again := make([]byte, n)
		if MH(again).Encode(&g) != n || !bytes.Equal(again, out) {
			t.Fatalf("re-encode %x, want %x", again, out)
		}
	})
}
