package header

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// naiveChecksum is RFC 1071 §4.1 without tricks.
func naiveChecksum(b []byte, initial uint32) uint16 {
	sum := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

func TestChecksumRFC1071(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		initial uint32
		want    uint16
	}{
		// RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to 2ddf0, folded ddf2,
		// so the checksum field is ~ddf2 = 220d.
		{"rfc1071-s3", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0, 0xddf2},
		// §2(B): byte order independence; the swapped input sums to
		// the swapped result.
		{"rfc1071-s2b-swapped", []byte{0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6}, 0, 0xf2dd},
		// Odd length: the last byte is padded with a zero on the right.
		{"odd", []byte{0x00, 0x01, 0xf2}, 0, 0xf201},
		{"one-byte", []byte{0xab}, 0, 0xab00},
		{"empty", nil, 0, 0},
		{"empty-initial-folded", nil, 0x2ddf0, 0xddf2},
		{"initial-max", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0xffffffff, 0xffff},
		{"all-ones", []byte{0xff, 0xff}, 0, 0xffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Checksum(tt.b, tt.initial); got != tt.want {
				t.Errorf("Checksum = %04x, want %04x", got, tt.want)
			}
		})
	}
	if c := ^Checksum(tests[0].b, 0); c != 0x220d {
		t.Errorf("checksum field = %04x, want 220d", c)
	}
}

func TestChecksumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1500)
	for i := range 2000 {
		n := r.IntN(len(buf))
		b := buf[:n]
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		initial := r.Uint32()
		if i%3 == 0 {
			initial = 0
		}
		got, want := Checksum(b, initial), naiveChecksum(b, initial)
		// Both are one's complement sums; 0x0000 and 0xffff are the same
		// value but only an all-zero sum can yield 0x0000.
		if got != want {
			t.Fatalf("len %d initial %#x: Checksum = %04x, naive %04x", n, initial, got, want)
		}
	}
}

func TestIPv4HeaderChecksumKnown(t *testing.T) {
	rfc := loadRFC7634(t)
	tests := []struct {
		name string
		hdr  string
		want uint16
	}{
		{"rfc7634-outer", rfc.OuterHeader, 0xde5b},
		{"rfc7634-inner", rfc.InnerPacket[:40], 0xe778},
		// The classic worked example (192.168.0.1 → 192.168.0.199, UDP).
		{"udp-example", "450000730000400040110000c0a80001c0a800c7", 0xb861},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := mustHex(t, tt.hdr)[:IPv4MinHeaderLen]
			// Pad to the total length so that the view is valid.
			h := IPv4(append(hdr, make([]byte, IPv4(hdr).TotalLen()-IPv4MinHeaderLen)...))
			if !h.IsValid() {
				t.Fatal("not valid")
			}
			h.SetChecksum(0)
			h.UpdateChecksum()
			if got := h.Checksum(); got != tt.want {
				t.Errorf("UpdateChecksum = %04x, want %04x", got, tt.want)
			}
			if !h.IsChecksumValid() {
				t.Error("IsChecksumValid = false after UpdateChecksum")
			}
			// Change the TTL incrementally (RFC 1624) and compare with a
			// full recompute.
			old := binary.BigEndian.Uint16(h[8:])
			h.SetTTL(h.TTL() - 1)
			c := ChecksumUpdate(h.Checksum(), old, binary.BigEndian.Uint16(h[8:]))
			h.UpdateChecksum()
			if c != h.Checksum() {
				t.Errorf("ChecksumUpdate after TTL-- = %04x, full %04x", c, h.Checksum())
			}
		})
	}
}

func TestIPv4HeaderChecksumPublished(t *testing.T) {
	rfc := loadRFC7634(t)
	for name, s := range map[string]string{"outer": rfc.FullPacket, "inner": rfc.InnerPacket} {
		h := IPv4(mustHex(t, s))
		if !h.IsValid() || !h.IsChecksumValid() {
			t.Errorf("%s: valid %v checksum valid %v", name, h.IsValid(), h.IsChecksumValid())
		}
		want := h.Checksum()
		h.UpdateChecksum()
		if h.Checksum() != want {
			t.Errorf("%s: UpdateChecksum = %04x, packet has %04x", name, h.Checksum(), want)
		}
	}
}

func TestChecksumUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		b := make([]byte, 20)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		b[10], b[11] = 0, 0
		old := ^Checksum(b, 0)
		i := 2 * r.IntN(10)
		if i == 10 {
			continue
		}
		w := uint16(r.Uint32())
		oldW := binary.BigEndian.Uint16(b[i:])
		binary.BigEndian.PutUint16(b[i:], w)
		want := ^Checksum(b, 0)
		if got := ChecksumUpdate(old, oldW, w); got != want {
			t.Fatalf("ChecksumUpdate(%04x, %04x, %04x) = %04x, full recompute %04x", old, oldW, w, got, want)
		}
	}
}

func TestIPv4EncodePartial(t *testing.T) {
	tmpl := make([]byte, 24)
	IPv4(tmpl).Encode(&IPv4Fields{TOS: 0x10, Flags: IPv4FlagDF, TTL: 64, Protocol: ProtoESP,
		Src: v4Src, Dst: v4Dst, Options: []byte{1, 1, 1, 0}})
	partial := IPv4(tmpl).PartialChecksum()
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		h := IPv4(append([]byte(nil), tmpl...))
		n, id := 24+r.IntN(65512), uint16(r.Uint32())
		h.EncodePartial(partial, n, id)
		want := append([]byte(nil), h...)
		IPv4(want).UpdateChecksum()
		if h.TotalLen() != n || h.ID() != id || h.Checksum() != IPv4(want).Checksum() {
			t.Fatalf("EncodePartial(%d, %#x): len %d id %#x checksum %04x, want %04x",
				n, id, h.TotalLen(), h.ID(), h.Checksum(), IPv4(want).Checksum())
		}
	}
	if !raceEnabled {
		h := IPv4(append([]byte(nil), tmpl...))
		if n := testing.AllocsPerRun(100, func() { h.EncodePartial(partial, 1400, 7) }); n != 0 {
			t.Errorf("EncodePartial: %v allocs", n)
		}
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	tests := []struct {
		name     string
		proto    uint8
		src, dst netip.Addr
		length   int
		pseudo   []byte
	}{
		{"v4-udp", ProtoUDP, v4Src, v4Dst, 1234,
			[]byte{192, 0, 2, 1, 198, 51, 100, 2, 0, ProtoUDP, 0x04, 0xd2}},
		{"v6-mh", ProtoMobility, hoa, ha, 32, cat(hoa.AsSlice(), ha.AsSlice(), []byte{0, 0, 0, 32, 0, 0, 0, ProtoMobility})},
		{"v6-jumbo-length", ProtoTCP, coa, cn, 0x12345, cat(coa.AsSlice(), cn.AsSlice(), []byte{0, 1, 0x23, 0x45, 0, 0, 0, ProtoTCP})},
		{"mixed-families-use-v6-form", ProtoUDP, v4Src, cn, 8,
			cat(netip.AddrFrom16(v4Src.As16()).AsSlice(), cn.AsSlice(), []byte{0, 0, 0, 8, 0, 0, 0, ProtoUDP})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PseudoHeaderChecksum(tt.proto, tt.src, tt.dst, tt.length)
			if want := uint32(naiveChecksum(tt.pseudo, 0)); got != want {
				t.Errorf("PseudoHeaderChecksum = %04x, want %04x", got, want)
			}
		})
	}
}

func TestUDPChecksum(t *testing.T) {
	for _, a := range [][2]netip.Addr{{v4Src, v4Dst}, {coa, ha}} {
		u := udp(4500, 4500)
		u = append(u, []byte("hello, world")...)
		UDP(u).SetLength(len(u))
		UDP(u).SetChecksum(0xabcd) // ignored by UDPChecksum
		UDP(u).SetChecksum(UDPChecksum(a[0], a[1], u))
		if got := Checksum(u, PseudoHeaderChecksum(ProtoUDP, a[0], a[1], len(u))); got != 0xffff {
			t.Errorf("%v→%v: sum with checksum = %04x, want ffff", a[0], a[1], got)
		}
	}
	// A datagram whose checksum computes to 0 is sent as ffff (RFC 768).
	u := make([]byte, 8)
	UDP(u).SetLength(8)
	s := ^Checksum(u, PseudoHeaderChecksum(ProtoUDP, v4Src, v4Dst, 8))
	binary.BigEndian.PutUint16(u[0:], s) // source port makes the sum ffff
	if got := UDPChecksum(v4Src, v4Dst, u); got != 0xffff {
		t.Errorf("zero checksum sent as %04x, want ffff", got)
	}
}

func TestMHChecksumVector(t *testing.T) {
	vec := loadBUVectors(t)
	home := netip.MustParseAddr(vec.Addresses.HomeAddress)
	agent := netip.MustParseAddr(vec.Addresses.HomeAgent)
	careOf := netip.MustParseAddr(vec.Addresses.CareOf)
	for _, c := range vec.Cases {
		t.Run(c.Name, func(t *testing.T) {
			mh := MH(mustHex(t, c.MobilityHeader))
			want := binary.BigEndian.Uint16(mustHex(t, c.MHChecksum))
			if !mh.IsValid() || mh.Len() != len(mh) {
				t.Fatalf("MH not valid: len field %d, bytes %d", mh.Len(), len(mh))
			}
			if got := MHChecksum(home, agent, mh); got != want {
				t.Errorf("MHChecksum(HoA, HA) = %04x, want %04x", got, want)
			}
			if !mh.VerifyChecksum(home, agent) {
				t.Error("VerifyChecksum(HoA, HA) = false")
			}
			// RFC 6275 §6.1.1: the pseudo-header uses the HoA, not the CoA
			// in the IPv6 source.
			if mh.VerifyChecksum(careOf, agent) {
				t.Error("VerifyChecksum(CoA, HA) = true")
			}
			mh.SetChecksum(0)
			mh.UpdateChecksum(home, agent)
			if mh.Checksum() != want {
				t.Errorf("UpdateChecksum = %04x, want %04x", mh.Checksum(), want)
			}
			// The same MH in the full packet, found through the
			// extension headers and the ESP NULL payload (8 bytes SPI+seq).
			pkt := mustHex(t, c.FullPacket)
			var f Flow
			if !ParseFlow(pkt, &f) || f.Src != home || f.Dst != agent || f.Proto != ProtoESP {
				t.Fatalf("ParseFlow(full packet) = %+v", f)
			}
			it := NewExtIter(IPv6(pkt))
			for {
				_, done, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				if done {
					break
				}
			}
			inner := MH(pkt[it.UpperOffset()+ESPHeaderLen:])
			if !inner.IsValid() || !inner.VerifyChecksum(f.Src, f.Dst) {
				t.Errorf("MH in the full packet does not verify against the flow's HoA/HA")
			}
		})
	}
}
