package header

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMHVectorFields(t *testing.T) {
	vec := loadBUVectors(t)
	raw := mustHex(t, vec.Cases[0].MobilityHeader)
	mh := MH(raw)
	if !mh.IsValid() {
		t.Fatal("not valid")
	}
	want := MHFields{PayloadProto: ProtoNoNext, Type: MHTypeBU, Checksum: 0x6f7d, Data: raw[6:]}
	if diff := cmp.Diff(want, mh.Fields()); diff != "" {
		t.Errorf("Fields (-want +got):\n%s", diff)
	}
	if mh.HeaderLen() != 3 || mh.Len() != 32 || mh.Reserved() != 0 {
		t.Errorf("HeaderLen %d Len %d Reserved %d", mh.HeaderLen(), mh.Len(), mh.Reserved())
	}
	out := make([]byte, 40)
	f := mh.Fields()
	if n := MH(out).Encode(&f); n != 32 || !bytes.Equal(out[:n], raw) {
		t.Errorf("Encode(Fields) = %d %x, want %x", n, out[:n], raw)
	}
}

func TestMHEncode(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		wantLen int
		wantPad []byte // bytes after the data
	}{
		{"brr", []byte{0, 0}, 8, nil},
		{"one-byte-short-pad1", []byte{1}, 8, []byte{MobOptPad1}},
		{"empty-padn0", nil, 8, []byte{MobOptPadN, 0}},
		{"bu-fixed-part-padn2", []byte{0, 1, 0x80, 0, 0, 1}, 16, []byte{MobOptPadN, 2, 0, 0}},
		{"hoti", make([]byte, 10), 16, nil},
		{"seven-short", make([]byte, 3), 16, []byte{MobOptPadN, 5, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Repeat([]byte{0xee}, 64)
			f := MHFields{PayloadProto: ProtoNoNext, Type: MHTypeBU, Reserved: 0, Checksum: 0x1234, Data: tt.data}
			n := MH(b).Encode(&f)
			if n != tt.wantLen || n != MHEncodedLen(len(tt.data)) {
				t.Fatalf("Encode = %d, want %d", n, tt.wantLen)
			}
			if b[n] != 0xee {
				t.Fatal("Encode wrote past its length")
			}
			mh := MH(b[:n])
			if !mh.IsValid() || mh.Len() != n || mh.Type() != MHTypeBU || mh.PayloadProto() != ProtoNoNext || mh.Checksum() != 0x1234 {
				t.Fatalf("decoded %x", b[:n])
			}
			if got := mh.MessageData()[len(tt.data):]; !bytes.Equal(got, tt.wantPad) && len(got)+len(tt.wantPad) != 0 {
				t.Errorf("padding = %x, want %x", got, tt.wantPad)
			}
			mh.UpdateChecksum(hoa, ha)
			if !mh.VerifyChecksum(hoa, ha) || mh.VerifyChecksum(hoa, cn) {
				t.Error("checksum does not verify")
			}
			mh.SetType(MHTypeBA)
			mh.SetPayloadProto(ProtoTCP)
			if mh.Type() != MHTypeBA || mh.PayloadProto() != ProtoTCP {
				t.Error("setters")
			}
		})
	}
}

func TestMHEncodeTooLong(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a 2043-byte message")
		}
	}()
	b := make([]byte, 4096)
	MH(b).Encode(&MHFields{Data: make([]byte, 2043)})
}

func TestMHEncodeLongest(t *testing.T) {
	b := make([]byte, 2048)
	if n := MH(b).Encode(&MHFields{Data: make([]byte, 2042)}); n != 2048 || MH(b).HeaderLen() != 255 {
		t.Errorf("Encode = %d, HeaderLen %d", n, MH(b).HeaderLen())
	}
}

func TestMHIsValid(t *testing.T) {
	ok := mhBU()
	for name, tt := range map[string]struct {
		b    []byte
		want bool
	}{
		"bu":                  {ok, true},
		"bu-with-trailer":     {append(append([]byte(nil), ok...), 1, 2, 3), true},
		"empty":               {nil, false},
		"7-bytes":             {ok[:7], false},
		"cut":                 {ok[:15], false},
		"header-len-too-big":  {append([]byte{59, 2}, ok[2:]...), false},
		"header-len-255-cut":  {append([]byte{59, 255}, make([]byte, 100)...), false},
		"header-len-0-8bytes": {[]byte{59, 0, 0, 0, 0, 0, 0, 0}, true},
	} {
		if got := MH(tt.b).IsValid(); got != tt.want {
			t.Errorf("%s: IsValid = %v, want %v", name, got, tt.want)
		}
	}
}

func TestMHAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	b := mhBU()
	var sink uint16
	n := testing.AllocsPerRun(100, func() {
		mh := MH(b)
		if mh.IsValid() {
			sink += uint16(mh.Type()) + uint16(len(mh.MessageData()))
			mh.UpdateChecksum(hoa, ha)
			if !mh.VerifyChecksum(hoa, ha) {
				sink++
			}
		}
	})
	if n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}
