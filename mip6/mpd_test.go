package mip6

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	mpdHA  = netip.MustParseAddr("2001:db8:1::1")
	mpdHoA = netip.MustParseAddr("2001:db8:1::100")
)

func TestMPSRoundTrip(t *testing.T) {
	b := AppendMPS([]byte{0xaa}, &MobilePrefixSolicitation{ID: 0x1234}, mpdHoA, mpdHA)
	want := []byte{0xaa, 146, 0, 0, 0, 0x12, 0x34, 0, 0}
	if len(b) != 9 || b[1] != want[1] || b[5] != 0x12 || b[6] != 0x34 || b[7] != 0 || b[8] != 0 {
		t.Fatalf("MPS % x", b)
	}
	m, err := ParseMPS(b[1:], mpdHoA, mpdHA)
	if err != nil || m.ID != 0x1234 {
		t.Fatalf("%+v %v", m, err)
	}
	// The checksum covers the addresses (home-address form).
	if _, err := ParseMPS(b[1:], netip.MustParseAddr("2001:db8:2::100"), mpdHA); !errors.Is(err, ErrMPD) {
		t.Error("checksum from the care-of address accepted")
	}
}

func TestMPARoundTrip(t *testing.T) {
	m := &MobilePrefixAdvertisement{ID: 7, M: true, Prefixes: []PrefixInfo{
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), OnLink: true, Autonomous: true, ValidLifetime: 86400, PreferredLifetime: 3600},
		{Prefix: netip.MustParsePrefix("2001:db8:1::1/64"), RouterAddr: true, ValidLifetime: 0xffffffff},
	}}
	b, err := AppendMPA(nil, m, mpdHA, mpdHoA)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 8+2*32 || b[0] != 147 || b[6] != 0x80 || b[8] != 3 || b[9] != 4 || b[10] != 64 || b[11] != 0xc0 || b[43] != 0x20 {
		t.Fatalf("MPA % x", b)
	}
	got, err := ParseMPA(b, mpdHA, mpdHoA)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(m, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	// Unknown options are skipped.
	u := append(slices.Clone(b[:8]), 25, 1, 0, 0, 0, 0, 0, 0)
	u = append(u, b[8:40]...)
	setICMPv6Checksum(u, mpdHA, mpdHoA)
	if got, err := ParseMPA(u, mpdHA, mpdHoA); err != nil || len(got.Prefixes) != 1 {
		t.Errorf("unknown option: %+v %v", got, err)
	}
	if _, err := AppendMPA(nil, &MobilePrefixAdvertisement{Prefixes: []PrefixInfo{{Prefix: netip.MustParsePrefix("192.0.2.0/24")}}}, mpdHA, mpdHoA); !errors.Is(err, ErrMPD) {
		t.Error("IPv4 prefix encoded")
	}
	if _, err := AppendMPA(nil, &MobilePrefixAdvertisement{Prefixes: make([]PrefixInfo, 65)}, mpdHA, mpdHoA); !errors.Is(err, ErrMPD) {
		t.Error("65 prefixes encoded")
	}
}

func TestMPDHostile(t *testing.T) {
	good, _ := AppendMPA(nil, &MobilePrefixAdvertisement{ID: 1, Prefixes: []PrefixInfo{{Prefix: netip.MustParsePrefix("2001:db8:1::/64")}}}, mpdHA, mpdHoA)
	fix := func(b []byte) []byte { setICMPv6Checksum(b, mpdHA, mpdHoA); return b }
	cases := map[string][]byte{
		"short":        good[:7],
		"type":         fix(append([]byte{146}, good[1:]...)),
		"code":         fix(append([]byte{147, 1}, good[2:]...)),
		"zero length":  fix(append(slices.Clone(good[:8]), 3, 0, 0, 0, 0, 0, 0, 0)),
		"past end":     fix(append(slices.Clone(good[:8]), 3, 5, 0, 0, 0, 0, 0, 0)),
		"odd byte":     fix(append(slices.Clone(good), 1)),
		"pi length 3":  fix(append(slices.Clone(good[:8]), append([]byte{3, 3}, make([]byte, 22)...)...)),
		"prefix > 128": fix(func() []byte { b := slices.Clone(good); b[10] = 129; return b }()),
		"checksum":     func() []byte { b := slices.Clone(good); b[20] ^= 1; return b }(),
	}
	for name, b := range cases {
		if m, err := ParseMPA(b, mpdHA, mpdHoA); !errors.Is(err, ErrMPD) {
			t.Errorf("%s: %+v %v", name, m, err)
		}
	}
	mps := AppendMPS(nil, &MobilePrefixSolicitation{}, mpdHoA, mpdHA)
	for name, b := range map[string][]byte{"short": mps[:7], "type": append([]byte{147}, mps[1:]...), "checksum": append(slices.Clone(mps[:7]), mps[7]^1)} {
		if _, err := ParseMPS(b, mpdHoA, mpdHA); !errors.Is(err, ErrMPD) {
			t.Errorf("MPS %s accepted", name)
		}
	}
}

func FuzzParseMPD(f *testing.F) {
	good, _ := AppendMPA(nil, &MobilePrefixAdvertisement{ID: 1, Prefixes: []PrefixInfo{{Prefix: netip.MustParsePrefix("2001:db8:1::/64")}}}, mpdHA, mpdHoA)
	f.Add(good)
	f.Add(AppendMPS(nil, &MobilePrefixSolicitation{ID: 9}, mpdHA, mpdHoA))
	f.Add([]byte{147, 0, 0, 0, 0, 0, 0, 0, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 4 { // give the fuzzer valid checksums
			setICMPv6Checksum(b, mpdHA, mpdHoA)
		}
		if m, err := ParseMPA(b, mpdHA, mpdHoA); err == nil {
			re, err := AppendMPA(nil, m, mpdHA, mpdHoA)
			if err != nil {
				t.Fatalf("decoded MPA does not re-encode: %v", err)
			}
			m2, err := ParseMPA(re, mpdHA, mpdHoA)
			if err != nil || m2.ID != m.ID || len(m2.Prefixes) != len(m.Prefixes) {
				t.Fatalf("re-encoded MPA: %+v %v", m2, err)
			}
		} else if !errors.Is(err, ErrMPD) {
			t.Fatalf("error %v does not wrap ErrMPD", err)
		}
		if m, err := ParseMPS(b, mpdHA, mpdHoA); err == nil {
			if re := AppendMPS(nil, m, mpdHA, mpdHoA); re[4] != b[4] || re[5] != b[5] {
				t.Fatal("MPS identifier lost")
			}
		}
	})
}
