package header

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOptIter(t *testing.T) {
	hao := append([]byte{OptHomeAddress, 16}, hoa.AsSlice()...)
	type opt struct {
		Type   uint8
		Offset int
		Data   []byte
	}
	tests := []struct {
		name string
		hdr  []byte
		want []opt
		err  error // error after want
	}{
		{"empty-body", []byte{59, 0}, nil, nil},
		{"pad1-x6", []byte{59, 0, 0, 0, 0, 0, 0, 0}, []opt{{0, 2, nil}, {0, 3, nil}, {0, 4, nil}, {0, 5, nil}, {0, 6, nil}, {0, 7, nil}}, nil},
		{"padn-4", []byte{59, 0, 1, 4, 0, 0, 0, 0}, []opt{{1, 2, []byte{0, 0, 0, 0}}}, nil},
		{"hao-8n+6", haoOpts(59, hoa), []opt{{1, 2, []byte{0, 0}}, {OptHomeAddress, 6, hoa.AsSlice()}}, nil},
		{"unknown-then-pad1", []byte{59, 0, 0x1e, 3, 1, 2, 3, 0}, []opt{{0x1e, 2, []byte{1, 2, 3}}, {0, 7, nil}}, nil},
		{"zero-length-option", []byte{59, 0, 0x1e, 0, 1, 4, 0, 0, 0, 0}, []opt{{0x1e, 2, []byte{}}, {1, 4, []byte{0, 0, 0, 0}}}, nil},
		{"hostile/length-overruns", []byte{59, 0, 1, 5, 0, 0, 0, 0}, nil, ErrMalformed},
		{"hostile/type-in-last-byte", []byte{59, 0, 0, 0, 0, 0, 0, 1}, []opt{{0, 2, nil}, {0, 3, nil}, {0, 4, nil}, {0, 5, nil}, {0, 6, nil}}, ErrMalformed},
		{"hostile/hao-len-15", append([]byte{59, 2, 1, 2, 0, 0, OptHomeAddress, 15}, make([]byte, 16)...), []opt{{1, 2, []byte{0, 0}}}, ErrMalformed},
		{"hostile/hao-len-17", append(append([]byte{59, 2, 1, 1, 0, OptHomeAddress, 17}, hoa.AsSlice()...), 0), []opt{{1, 2, []byte{0}}}, ErrMalformed},
		{"hostile/hao-cut", append([]byte{59, 2, 1, 2, 0, 0}, hao[:10]...), []opt{{1, 2, []byte{0, 0}}}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := NewOptIter(tt.hdr)
			var got []opt
			var err error
			for range len(tt.hdr) + 1 {
				o, done, e := it.Next()
				if done {
					break
				}
				if e != nil {
					err = e
					break
				}
				got = append(got, opt(o))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			if err != tt.err {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
			if _, done, e := it.Next(); !done || e != nil {
				t.Errorf("Next after the end = done %v, err %v; want done", done, e)
			}
		})
	}
}

func TestFindHomeAddress(t *testing.T) {
	vec := loadBUVectors(t)
	pkt := mustHex(t, vec.Cases[0].FullPacket)
	tests := []struct {
		name string
		hdr  []byte
		want netip.Addr
	}{
		{"encoded", haoOpts(ProtoMobility, hoa), hoa},
		{"derived-vector", pkt[IPv6HeaderLen : IPv6HeaderLen+24], hoa},
		{"after-unknown-option", rawOpts(59, append([]byte{0x1e, 2, 9, 9, OptHomeAddress, 16}, cn.AsSlice()...)...), cn},
		{"trailing-bytes-beyond-header-ignored", append(rawOpts(59, 1, 0), haoOpts(59, hoa)[2:]...), netip.Addr{}},
		{"no-hao", rawOpts(59, 5, 2, 0, 0), netip.Addr{}},
		{"empty", nil, netip.Addr{}},
		{"one-byte", []byte{59}, netip.Addr{}},
		{"cut-hao", haoOpts(59, hoa)[:20], netip.Addr{}},
		{"hao-len-15", func() []byte { b := haoOpts(59, hoa); b[7] = 15; return b }(), netip.Addr{}},
		{"malformed-before-hao", append([]byte{59, 2, 1, 9, 0, 0}, haoOpts(59, hoa)[6:]...), netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FindHomeAddress(tt.hdr)
			if got != tt.want || ok != tt.want.IsValid() {
				t.Errorf("FindHomeAddress = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

func TestDestOptsEncodeHAO(t *testing.T) {
	// The derived vector's Destination Options header: ESP next, Hdr Ext
	// Len 2, PadN(2), HAO at offset 6 (8n+6), address at offset 8.
	vec := loadBUVectors(t)
	pkt := mustHex(t, vec.Cases[0].FullPacket)
	want := pkt[IPv6HeaderLen : IPv6HeaderLen+HAODestOptsLen]
	got := make([]byte, HAODestOptsLen+4)
	if n := DestOpts(got).EncodeHAO(ProtoESP, netip.MustParseAddr(vec.Addresses.HomeAddress)); n != HAODestOptsLen {
		t.Fatalf("EncodeHAO = %d, want %d", n, HAODestOptsLen)
	}
	if !bytes.Equal(got[:HAODestOptsLen], want) {
		t.Fatalf("EncodeHAO = %x, vector %x", got[:HAODestOptsLen], want)
	}
	d := DestOpts(got[:HAODestOptsLen])
	if !d.IsValid() || d.Len() != HAODestOptsLen || d.NextHeader() != ProtoESP {
		t.Fatalf("view: valid %v len %d next %d", d.IsValid(), d.Len(), d.NextHeader())
	}
	if a, ok := d.HomeAddress(); !ok || a != hoa {
		t.Fatalf("HomeAddress = %v, %v", a, ok)
	}
	it := d.Options()
	_, _, _ = it.Next() // PadN
	o, _, err := it.Next()
	if err != nil || o.Type != OptHomeAddress || o.Offset%8 != 6 || (o.Offset+2)%8 != 0 {
		t.Fatalf("HAO at offset %d (want 8n+6), err %v", o.Offset, err)
	}
	if HAODestOptsAddrOffset != o.Offset+2 {
		t.Fatalf("HAODestOptsAddrOffset = %d, option data at %d", HAODestOptsAddrOffset, o.Offset+2)
	}
	d.SetNextHeader(ProtoMobility)
	if d.NextHeader() != ProtoMobility {
		t.Fatal("SetNextHeader")
	}
	for _, bad := range [][]byte{nil, got[:7], got[:16], {59, 1, 0, 0, 0, 0, 0, 0}} {
		if DestOpts(bad).IsValid() {
			t.Errorf("DestOpts(%x).IsValid() = true", bad)
		}
	}
}

func TestRoutingType2(t *testing.T) {
	b := make([]byte, RoutingType2Len)
	if n := RoutingType2(b).Encode(ProtoMobility, hoa); n != RoutingType2Len {
		t.Fatalf("Encode = %d", n)
	}
	want := append([]byte{ProtoMobility, 2, 2, 1, 0, 0, 0, 0}, hoa.AsSlice()...)
	if !bytes.Equal(b, want) {
		t.Fatalf("Encode = %x, want %x (RFC 6275 §6.4.1)", b, want)
	}
	r := RoutingType2(b)
	if !r.IsValid() || r.NextHeader() != ProtoMobility || r.SegmentsLeft() != 1 || r.HomeAddress() != hoa {
		t.Fatalf("view: %v %d %d %v", r.IsValid(), r.NextHeader(), r.SegmentsLeft(), r.HomeAddress())
	}
	r.SetSegmentsLeft(0)
	r.SetNextHeader(ProtoTCP)
	if !r.IsValid() || r.SegmentsLeft() != 0 || r.NextHeader() != ProtoTCP {
		t.Fatal("segments left 0 must stay valid")
	}
	mut := func(i int, v byte) []byte { c := append([]byte(nil), want...); c[i] = v; return c }
	for name, bad := range map[string][]byte{
		"short":      want[:23],
		"len-4":      mut(1, 4),
		"type-0":     mut(2, 0),
		"seg-left-2": mut(3, 2),
		"empty":      nil,
	} {
		if RoutingType2(bad).IsValid() {
			t.Errorf("%s: IsValid = true", name)
		}
	}
}

func TestOptionAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	hdr := haoOpts(ProtoMobility, hoa)
	rh := rh2(ProtoMobility, hoa)
	var sink netip.Addr
	n := testing.AllocsPerRun(100, func() {
		sink, _ = FindHomeAddress(hdr)
		it := DestOpts(hdr).Options()
		for {
			_, done, err := it.Next()
			if done || err != nil {
				break
			}
		}
		DestOpts(hdr).EncodeHAO(ProtoMobility, sink)
		if RoutingType2(rh).IsValid() {
			sink = RoutingType2(rh).HomeAddress()
		}
	})
	if n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}
