package ike

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func encrT(e EncrAlg, kb uint16) Transform {
	return Transform{Type: TransformENCR, ID: uint16(e), KeyLength: kb}
}
func integT(i IntegAlg) Transform { return Transform{Type: TransformINTEG, ID: uint16(i)} }
func prfT(p PRFAlg) Transform     { return Transform{Type: TransformPRF, ID: uint16(p)} }
func dhT(g DHGroup) Transform     { return Transform{Type: TransformDH, ID: uint16(g)} }
func esnT(id uint16) Transform    { return Transform{Type: TransformESN, ID: id} }

func TestParseIKEProposal(t *testing.T) {
	tests := []struct {
		in   string
		weak bool
		want []Transform
		out  string // FormatProposal; "" means in
	}{
		{in: "aes128gcm16-prfsha256-curve25519", want: []Transform{
			encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHCurve25519)}},
		{in: "aes256gcm16-aes128gcm12-prfsha384-prfsha256-ecp384-x25519", want: []Transform{
			encrT(EncrAESGCM16, 256), encrT(EncrAESGCM12, 128), prfT(PRFHMACSHA2_384), prfT(PRFHMACSHA2_256),
			dhT(DHECP384), dhT(DHCurve25519)}, out: "aes256gcm16-aes128gcm12-prfsha384-prfsha256-ecp384-curve25519"},
		{in: "chacha20poly1305-prfsha512-modp3072", want: []Transform{
			encrT(EncrChaCha20Poly1305, 0), prfT(PRFHMACSHA2_512), dhT(DHMODP3072)}},
		// No prf token: the integrity's hashes, in order.
		{in: "aes256-sha384-sha256-modp2048", want: []Transform{
			encrT(EncrAESCBC, 256), integT(IntegHMACSHA2_384_192), integT(IntegHMACSHA2_256_128),
			prfT(PRFHMACSHA2_384), prfT(PRFHMACSHA2_256), dhT(DHMODP2048)},
			out: "aes256-sha384-sha256-prfsha384-prfsha256-modp2048"},
		{in: "aes128-aes192-sha512-prfsha256-ecp256", want: []Transform{
			encrT(EncrAESCBC, 128), encrT(EncrAESCBC, 192), integT(IntegHMACSHA2_512_256),
			prfT(PRFHMACSHA2_256), dhT(DHECP256)}},
		// Case, spaces, duplicates.
		{in: " AES128GCM16-prfsha256-prfsha256-CURVE25519 ", want: []Transform{
			encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHCurve25519)}, out: "aes128gcm16-prfsha256-curve25519"},
		{in: "aes128gcm128-prfsha256-ecp256", want: []Transform{
			encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHECP256)}, out: "aes128gcm16-prfsha256-ecp256"},
	}
	for _, tt := range tests {
		p, err := ParseIKEProposal(tt.in, tt.weak)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if p.Protocol != ProtoIKE || p.Number != 1 || len(p.SPI) != 0 {
			t.Errorf("%q: header %+v", tt.in, p)
		}
		if !reflect.DeepEqual(p.Transforms, tt.want) {
			t.Errorf("%q: transforms\n got %+v\nwant %+v", tt.in, p.Transforms, tt.want)
		}
		out := tt.out
		if out == "" {
			out = tt.in
		}
		if got := FormatProposal(p); got != out {
			t.Errorf("%q: FormatProposal = %q, want %q", tt.in, got, out)
		}
		// The formatted form parses to the same proposal.
		if q, err := ParseIKEProposal(FormatProposal(p), tt.weak); err != nil || !reflect.DeepEqual(q, p) {
			t.Errorf("%q: reparse: %+v, %v", tt.in, q, err)
		}
	}
}

func TestParseProposalErrors(t *testing.T) {
	tests := []struct {
		in      string
		esp     bool
		weak    bool
		wantErr string
	}{
		{in: "", wantErr: "empty"},
		{in: "   ", wantErr: "empty"},
		{in: "default", wantErr: "DefaultIKEProposals"},
		{in: "default", esp: true, wantErr: "DefaultESPProposals"},
		{in: "aes128gcm16-curve25519", wantErr: "add prfsha256"},
		{in: "aes128gcm16-prfsha256", wantErr: "no key exchange"},
		{in: "aes128-sha256", wantErr: "no key exchange"},
		{in: "aes128-prfsha256-curve25519", wantErr: "no integrity"},
		{in: "prfsha256-sha256-curve25519", wantErr: "no encryption"},
		{in: "aes128gcm16-sha256-prfsha256-curve25519", wantErr: "takes no integrity"},
		{in: "aes128gcm16-aes128-sha256-curve25519", wantErr: "two proposals"},
		{in: "aes128--sha256-curve25519", wantErr: "empty token"},
		{in: "aes128-sha256-curve25519-", wantErr: "empty token"},
		{in: "aes128-sha256-bogus", wantErr: "unknown algorithm"},
		{in: "\x00\xff", wantErr: "unknown algorithm"},
		{in: strings.Repeat("aes128-", 200) + "sha256-ecp256", wantErr: "more than"},
		{in: "3des-sha256-modp2048", wantErr: "weak"},
		{in: "3des-sha256-modp2048", weak: true, wantErr: "not implemented"},
		{in: "aes128-md5-modp2048", wantErr: "weak"},
		{in: "aes128-sha1-modp2048", wantErr: "weak"},
		{in: "aes128-sha1-modp2048", weak: true, wantErr: "not available for IKE"},
		{in: "aes128-sha256-modp1024", wantErr: "weak"},
		{in: "aes128-sha256-modp1024", weak: true, wantErr: "not implemented"},
		{in: "aes128-sha256-modp768", weak: true, wantErr: "not implemented"},
		{in: "aes128-sha256-prfsha1-modp2048", wantErr: "weak"},
		{in: "aes128-sha256-prfsha1-modp2048", weak: true, wantErr: "not implemented"},
		{in: "aes128-sha256-ecp521", wantErr: "not implemented"},
		{in: "aes128ctr-sha256-ecp256", wantErr: "not implemented"},
		{in: "aes128gmac-prfsha256-ecp256", wantErr: "not available for IKE"},
		{in: "null-sha256-ecp256", weak: true, wantErr: "not available for IKE"},
		{in: "aes128-sha256-ecp256-esn", wantErr: "not available for IKE"},
		// ESP.
		{in: "aes128gcm16-prfsha256", esp: true, wantErr: "not available for ESP"},
		{in: "aes128gcm12", esp: true, wantErr: "not available for ESP"},
		{in: "aes192", esp: true, wantErr: "not available for ESP"},
		{in: "aes128-sha384", esp: true, wantErr: "not available for ESP"},
		{in: "aes128", esp: true, wantErr: "no integrity"},
		{in: "aes128gcm16-sha256", esp: true, wantErr: "takes no integrity"},
		{in: "aes128gmac-sha256", esp: true, wantErr: "takes no integrity"},
		{in: "aes128gcm16-aes128-sha256", esp: true, wantErr: "two proposals"},
		{in: "null-sha256", esp: true, wantErr: "weak"},
		{in: "aes128-sha1", esp: true, wantErr: "weak"},
		{in: "3des-sha256", esp: true, weak: true, wantErr: "not implemented"},
		{in: "esn", esp: true, wantErr: "no encryption"},
		{in: "aes128-sha256-modp1024", esp: true, wantErr: "weak"},
	}
	for _, tt := range tests {
		var err error
		if tt.esp {
			_, err = ParseESPProposal(tt.in, tt.weak)
		} else {
			_, err = ParseIKEProposal(tt.in, tt.weak)
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("esp=%v weak=%v %q: error %v, want one containing %q", tt.esp, tt.weak, tt.in, err, tt.wantErr)
		}
	}
}

func TestParseESPProposal(t *testing.T) {
	tests := []struct {
		in   string
		weak bool
		want []Transform
		out  string
	}{
		{in: "aes128gcm16", want: []Transform{encrT(EncrAESGCM16, 128), esnT(ESN_NONE)}},
		{in: "aes128gcm16-noesn", want: []Transform{encrT(EncrAESGCM16, 128), esnT(ESN_NONE)}, out: "aes128gcm16"},
		{in: "aes128gcm16-esn", want: []Transform{encrT(EncrAESGCM16, 128), esnT(ESN_ON)}},
		{in: "aes256gcm16-esn-noesn", want: []Transform{encrT(EncrAESGCM16, 256), esnT(ESN_ON), esnT(ESN_NONE)}},
		{in: "aes192gcm16", want: []Transform{encrT(EncrAESGCM16, 192), esnT(ESN_NONE)}},
		{in: "chacha20poly1305-curve25519", want: []Transform{encrT(EncrChaCha20Poly1305, 0), dhT(DHCurve25519), esnT(ESN_NONE)}},
		{in: "aes256gmac", want: []Transform{encrT(EncrNullAuthAESGMAC, 256), esnT(ESN_NONE)}},
		{in: "aes128-aes256-sha256-ecp256", want: []Transform{
			encrT(EncrAESCBC, 128), encrT(EncrAESCBC, 256), integT(IntegHMACSHA2_256_128), dhT(DHECP256), esnT(ESN_NONE)}},
		{in: "null-sha256", weak: true, want: []Transform{encrT(EncrNull, 0), integT(IntegHMACSHA2_256_128), esnT(ESN_NONE)}},
		{in: "aes128-sha256-sha1", weak: true, want: []Transform{
			encrT(EncrAESCBC, 128), integT(IntegHMACSHA2_256_128), integT(IntegHMACSHA1_96), esnT(ESN_NONE)}},
	}
	for _, tt := range tests {
		p, err := ParseESPProposal(tt.in, tt.weak)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if p.Protocol != ProtoESP {
			t.Errorf("%q: protocol %v", tt.in, p.Protocol)
		}
		if !reflect.DeepEqual(p.Transforms, tt.want) {
			t.Errorf("%q: transforms\n got %+v\nwant %+v", tt.in, p.Transforms, tt.want)
		}
		out := tt.out
		if out == "" {
			out = tt.in
		}
		if got := FormatProposal(p); got != out {
			t.Errorf("%q: FormatProposal = %q, want %q", tt.in, got, out)
		}
	}
}

func TestParseProposalsDefault(t *testing.T) {
	for _, tc := range []struct {
		list []string
		n    int
	}{{nil, 2}, {[]string{"default"}, 2}, {[]string{"aes128gcm16-prfsha256-ecp256", "default"}, 3}} {
		ps, err := ParseIKEProposals(tc.list, false)
		if err != nil || len(ps) != tc.n {
			t.Fatalf("%q: %d proposals, %v", tc.list, len(ps), err)
		}
		for i, p := range ps {
			if p.Number != uint8(i+1) {
				t.Errorf("%q: proposal %d numbered %d", tc.list, i, p.Number)
			}
			if _, err := SelectProposal([]Proposal{p}, []Proposal{p}); err != nil {
				t.Errorf("%q: %v", tc.list, err)
			}
		}
	}
	if _, err := ParseIKEProposals([]string{"default", "aes128"}, false); err == nil {
		t.Error("a bad proposal after default was accepted")
	}
	if _, err := ParseIKEProposals(make([]string, 0), false); err != nil {
		t.Error(err)
	}
	many := make([]string, MaxProposals+1)
	for i := range many {
		many[i] = "aes128gcm16-prfsha256-ecp256"
	}
	if _, err := ParseIKEProposals(many, false); err == nil {
		t.Error("more than MaxProposals accepted")
	}
	for _, p := range DefaultIKEProposals() {
		s := chosenOf(t, p)
		if _, err := IKESuiteOf(s); err != nil {
			t.Errorf("default %s: %v", FormatProposal(p), err)
		}
	}
	ps, err := ParseESPProposals([]string{"default", "aes128gcm16-esn"}, false)
	if err != nil || len(ps) != 3 || ps[2].Number != 3 {
		t.Fatalf("%v, %v", ps, err)
	}
	for _, p := range DefaultESPProposals() {
		if _, err := ESPSuiteOf(chosenOf(t, p)); err != nil {
			t.Errorf("default %s: %v", FormatProposal(p), err)
		}
	}
}

// chosenOf is what a responder with the same single proposal would answer.
func chosenOf(t *testing.T, p Proposal) Proposal {
	t.Helper()
	c, err := SelectProposal([]Proposal{p}, []Proposal{p})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustIKE(t *testing.T, s string) Proposal {
	t.Helper()
	p, err := ParseIKEProposal(s, false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustESP(t *testing.T, s string) Proposal {
	t.Helper()
	p, err := ParseESPProposal(s, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func numbered(n uint8, spi []byte, p Proposal) Proposal {
	p.Number, p.SPI = n, spi
	return p
}

func TestSelectProposal(t *testing.T) {
	spi := []byte{1, 2, 3, 4}
	tests := []struct {
		name   string
		ours   []Proposal
		theirs []Proposal
		want   string // FormatProposal of the choice, "" for no choice
		num    uint8
	}{
		{
			name:   "our preference order wins over theirs",
			ours:   []Proposal{mustIKE(t, "aes256gcm16-prfsha384-ecp384"), mustIKE(t, "aes128gcm16-prfsha256-curve25519")},
			theirs: []Proposal{numbered(1, nil, mustIKE(t, "aes128gcm16-prfsha256-curve25519")), numbered(2, nil, mustIKE(t, "aes256gcm16-prfsha384-ecp384"))},
			want:   "aes256gcm16-prfsha384-ecp384", num: 2,
		},
		{
			name:   "our transform order within a type",
			ours:   []Proposal{mustIKE(t, "aes256gcm16-aes128gcm16-prfsha512-prfsha256-ecp256-curve25519")},
			theirs: []Proposal{numbered(7, nil, mustIKE(t, "aes128gcm16-aes256gcm16-prfsha256-prfsha512-curve25519-ecp256"))},
			want:   "aes256gcm16-prfsha512-ecp256", num: 7,
		},
		{
			name:   "key lengths differ",
			ours:   []Proposal{mustIKE(t, "aes256-sha256-modp2048")},
			theirs: []Proposal{numbered(1, nil, mustIKE(t, "aes128-sha256-modp2048"))},
		},
		{
			name:   "no common group",
			ours:   []Proposal{mustIKE(t, "aes128gcm16-prfsha256-ecp256")},
			theirs: []Proposal{numbered(1, nil, mustIKE(t, "aes128gcm16-prfsha256-curve25519"))},
		},
		{
			name:   "protocol differs",
			ours:   []Proposal{mustESP(t, "aes128gcm16")},
			theirs: []Proposal{numbered(1, nil, mustIKE(t, "aes128gcm16-prfsha256-curve25519"))},
		},
		{
			name:   "ESN both offered, we want esn",
			ours:   []Proposal{mustESP(t, "aes128gcm16-esn")},
			theirs: []Proposal{numbered(1, spi, mustESP(t, "aes128gcm16-esn-noesn"))},
			want:   "aes128gcm16-esn", num: 1,
		},
		{
			name:   "ESN both on our side, they want noesn",
			ours:   []Proposal{mustESP(t, "aes128gcm16-esn-noesn")},
			theirs: []Proposal{numbered(1, spi, mustESP(t, "aes128gcm16"))},
			want:   "aes128gcm16", num: 1,
		},
		{
			name:   "ESN mismatch",
			ours:   []Proposal{mustESP(t, "aes128gcm16-esn")},
			theirs: []Proposal{numbered(1, spi, mustESP(t, "aes128gcm16-noesn"))},
		},
		{
			name:   "ESN absent in theirs means none",
			ours:   []Proposal{mustESP(t, "aes128gcm16")},
			theirs: []Proposal{{Number: 3, Protocol: ProtoESP, SPI: spi, Transforms: []Transform{encrT(EncrAESGCM16, 128)}}},
			want:   "aes128gcm16", num: 3,
		},
		{
			name:   "PFS: they offer DH, we have none",
			ours:   []Proposal{mustESP(t, "aes128gcm16")},
			theirs: []Proposal{numbered(1, spi, mustESP(t, "aes128gcm16-ecp256"))},
		},
		{
			name:   "PFS: we want DH, they offer none",
			ours:   []Proposal{mustESP(t, "aes128gcm16-ecp256")},
			theirs: []Proposal{numbered(1, spi, mustESP(t, "aes128gcm16"))},
		},
		{
			name: "PFS optional on their side (DH NONE offered)",
			ours: []Proposal{mustESP(t, "aes128gcm16")},
			theirs: []Proposal{{Number: 1, Protocol: ProtoESP, SPI: spi, Transforms: []Transform{
				encrT(EncrAESGCM16, 128), dhT(DHECP256), dhT(DHNone), esnT(ESN_NONE)}}},
			want: "aes128gcm16-none", num: 1,
		},
		{
			name: "INTEG NONE with an AEAD",
			ours: []Proposal{mustIKE(t, "aes128gcm16-prfsha256-ecp256")},
			theirs: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				encrT(EncrAESGCM16, 128), integT(IntegNone), prfT(PRFHMACSHA2_256), dhT(DHECP256)}}},
			want: "aes128gcm16-none-prfsha256-ecp256", num: 1,
		},
		{
			name: "unknown transform IDs and attributes are skipped",
			ours: []Proposal{mustIKE(t, "aes128gcm16-prfsha256-ecp256")},
			theirs: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: 1000, KeyLength: 128},
				{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 128, Attributes: []Attribute{{Type: 99, TV: true, Value: []byte{0, 1}}}},
				encrT(EncrAESGCM16, 128),
				prfT(999), prfT(PRFHMACSHA2_256), dhT(999), dhT(DHECP256)}}},
			want: "aes128gcm16-prfsha256-ecp256", num: 1,
		},
		{
			name: "only an attribute-laden transform: no match",
			ours: []Proposal{mustIKE(t, "aes128gcm16-prfsha256-ecp256")},
			theirs: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 128, Attributes: []Attribute{{Type: 99, Value: []byte{1}}}},
				prfT(PRFHMACSHA2_256), dhT(DHECP256)}}},
		},
		{
			name: "unknown transform type: that proposal is skipped, the next one taken",
			ours: []Proposal{mustIKE(t, "aes128gcm16-prfsha256-ecp256")},
			theirs: []Proposal{
				{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
					encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHECP256), {Type: 6, ID: 1}}},
				numbered(2, nil, mustIKE(t, "aes128gcm16-prfsha256-ecp256"))},
			want: "aes128gcm16-prfsha256-ecp256", num: 2,
		},
		{
			name: "they lack a PRF",
			ours: []Proposal{mustIKE(t, "aes128gcm16-prfsha256-ecp256")},
			theirs: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				encrT(EncrAESGCM16, 128), dhT(DHECP256)}}},
		},
		{name: "nothing offered", ours: []Proposal{mustIKE(t, "aes128gcm16-prfsha256-ecp256")}},
	}
	for _, tt := range tests {
		got, err := SelectProposal(tt.ours, tt.theirs)
		if tt.want == "" {
			if !errors.Is(err, ErrNoProposalChosen) {
				t.Errorf("%s: got %s, %v; want ErrNoProposalChosen", tt.name, FormatProposal(got), err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if f := FormatProposal(got); f != tt.want || got.Number != tt.num {
			t.Errorf("%s: got %d %q, want %d %q", tt.name, got.Number, f, tt.num, tt.want)
		}
		// One transform per type, and what we chose passes the initiator's check.
		seen := map[TransformType]bool{}
		for _, tr := range got.Transforms {
			if seen[tr.Type] {
				t.Errorf("%s: two %v transforms", tt.name, tr.Type)
			}
			seen[tr.Type] = true
		}
		if err := CheckChosen(tt.theirs, got); err != nil {
			t.Errorf("%s: CheckChosen of our own choice: %v", tt.name, err)
		}
	}
}

func TestSelectProposalCopiesSPI(t *testing.T) {
	spi := []byte{9, 9, 9, 9}
	got, err := SelectProposal([]Proposal{mustESP(t, "aes128gcm16")}, []Proposal{numbered(4, spi, mustESP(t, "aes128gcm16"))})
	if err != nil {
		t.Fatal(err)
	}
	spi[0] = 0
	if got.Number != 4 || string(got.SPI) != "\x09\x09\x09\x09" {
		t.Errorf("got number %d SPI %x", got.Number, got.SPI)
	}
}

func TestCheckChosen(t *testing.T) {
	spi := []byte{1, 2, 3, 4}
	offered := []Proposal{
		numbered(1, nil, mustIKE(t, "aes256gcm16-aes128gcm16-prfsha256-prfsha384-curve25519-ecp256")),
		numbered(2, nil, mustIKE(t, "aes128-sha256-modp2048")),
	}
	ok := []Proposal{
		{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_384), dhT(DHECP256)}},
		{Number: 2, Protocol: ProtoIKE, Transforms: []Transform{dhT(DHMODP2048), encrT(EncrAESCBC, 128), integT(IntegHMACSHA2_256_128), prfT(PRFHMACSHA2_256)}},
	}
	for _, c := range ok {
		if err := CheckChosen(offered, c); err != nil {
			t.Errorf("%s: %v", FormatProposal(c), err)
		}
	}
	bad := []struct {
		name string
		p    Proposal
	}{
		{"number not offered", Proposal{Number: 3, Protocol: ProtoIKE, Transforms: ok[0].Transforms}},
		{"protocol differs", Proposal{Number: 1, Protocol: ProtoESP, SPI: spi, Transforms: ok[0].Transforms}},
		{"two of a type", Proposal{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
			encrT(EncrAESGCM16, 128), encrT(EncrAESGCM16, 256), prfT(PRFHMACSHA2_384), dhT(DHECP256)}}},
		{"type missing", Proposal{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_384)}}},
		{"type not offered", Proposal{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
			encrT(EncrAESGCM16, 128), integT(IntegHMACSHA2_256_128), prfT(PRFHMACSHA2_384), dhT(DHECP256)}}},
		{"key length not offered", Proposal{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
			encrT(EncrAESGCM16, 192), prfT(PRFHMACSHA2_384), dhT(DHECP256)}}},
		{"transform from another proposal", Proposal{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
			encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_384), dhT(DHMODP2048)}}},
		{"attribute added", Proposal{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
			{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 128, Attributes: []Attribute{{Type: 5, TV: true, Value: []byte{0, 0}}}},
			prfT(PRFHMACSHA2_384), dhT(DHECP256)}}},
		{"unknown type", Proposal{Number: 1, Protocol: ProtoIKE, Transforms: append(ok[0].Transforms[:3:3], Transform{Type: 6, ID: 1})}},
	}
	for _, b := range bad {
		if err := CheckChosen(offered, b.p); err == nil {
			t.Errorf("%s: accepted", b.name)
		}
	}
	esp := []Proposal{numbered(1, spi, mustESP(t, "aes128gcm16-esn-noesn"))}
	if err := CheckChosen(esp, Proposal{Number: 1, Protocol: ProtoESP, SPI: spi, Transforms: []Transform{encrT(EncrAESGCM16, 128), esnT(ESN_ON)}}); err != nil {
		t.Error(err)
	}
	if err := CheckChosen(esp, Proposal{Number: 1, Protocol: ProtoESP, SPI: spi[:2], Transforms: []Transform{encrT(EncrAESGCM16, 128), esnT(ESN_ON)}}); err == nil {
		t.Error("2-byte ESP SPI accepted")
	}
	if err := CheckChosen(esp, Proposal{Number: 1, Protocol: ProtoESP, SPI: spi, Transforms: []Transform{encrT(EncrAESGCM16, 128), esnT(ESN_ON), esnT(ESN_NONE)}}); err == nil {
		t.Error("both ESN values in an answer accepted")
	}
}

func TestIKESuiteOf(t *testing.T) {
	s, err := IKESuiteOf(chosenOf(t, mustIKE(t, "aes256-sha384-modp3072")))
	want := IKESuite{SK: SKSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA2_384_192}, PRF: PRFHMACSHA2_384, DH: DHMODP3072}
	if err != nil || s != want {
		t.Errorf("got %+v, %v; want %+v", s, err, want)
	}
	s, err = IKESuiteOf(chosenOf(t, mustIKE(t, "chacha20poly1305-prfsha256-curve25519")))
	want = IKESuite{SK: SKSuite{Encr: EncrChaCha20Poly1305}, PRF: PRFHMACSHA2_256, DH: DHCurve25519}
	if err != nil || s != want {
		t.Errorf("got %+v, %v; want %+v", s, err, want)
	}
	bad := [][]Transform{
		{encrT(EncrAESGCM16, 128), encrT(EncrAESGCM16, 256), prfT(PRFHMACSHA2_256), dhT(DHECP256)},
		{encrT(EncrAESGCM16, 128), dhT(DHECP256)},
		{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256)},
		{prfT(PRFHMACSHA2_256), dhT(DHECP256)},
		{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA1), dhT(DHECP256)},
		{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHMODP1024)},
		{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHNone)},
		{encrT(EncrAESGCM16, 100), prfT(PRFHMACSHA2_256), dhT(DHECP256)},
		{encrT(EncrAESCBC, 128), prfT(PRFHMACSHA2_256), dhT(DHECP256)},
		{encrT(EncrAESGCM16, 128), integT(IntegHMACSHA2_256_128), prfT(PRFHMACSHA2_256), dhT(DHECP256)},
		{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHECP256), esnT(ESN_NONE)},
		{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHECP256), {Type: 9}},
		{encrT(Encr3DES, 0), integT(IntegHMACSHA2_256_128), prfT(PRFHMACSHA2_256), dhT(DHECP256)},
	}
	for _, ts := range bad {
		p := Proposal{Number: 1, Protocol: ProtoIKE, Transforms: ts}
		if s, err := IKESuiteOf(p); err == nil {
			t.Errorf("%s: accepted as %+v", FormatProposal(p), s)
		}
	}
	if _, err := IKESuiteOf(Proposal{Protocol: ProtoESP, Transforms: []Transform{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256), dhT(DHECP256)}}); err == nil {
		t.Error("ESP proposal accepted for IKE")
	}
}

func TestESPSuiteOf(t *testing.T) {
	tests := []struct {
		in         string
		want       ESPSuite
		enc, integ int
		name       string
	}{
		{"aes128gcm16", ESPSuite{Encr: EncrAESGCM16, KeyBits: 128}, 20, 0, "aes128gcm16"},
		{"aes256gcm16-esn-ecp256", ESPSuite{Encr: EncrAESGCM16, KeyBits: 256, ESN: true, DH: DHECP256}, 36, 0, "aes256gcm16"},
		{"aes192gcm16", ESPSuite{Encr: EncrAESGCM16, KeyBits: 192}, 28, 0, "aes192gcm16"},
		{"chacha20poly1305", ESPSuite{Encr: EncrChaCha20Poly1305}, 36, 0, "chacha20poly1305"},
		{"aes128gmac", ESPSuite{Encr: EncrNullAuthAESGMAC, KeyBits: 128}, 20, 0, "aes128gmac"},
		{"aes256gmac", ESPSuite{Encr: EncrNullAuthAESGMAC, KeyBits: 256}, 36, 0, "aes256gmac"},
		{"aes128-sha256", ESPSuite{Encr: EncrAESCBC, KeyBits: 128, Integ: IntegHMACSHA2_256_128}, 16, 32, "aes128-sha256"},
		{"aes256-sha256", ESPSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA2_256_128}, 32, 32, "aes256-sha256"},
		{"aes256-sha1", ESPSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA1_96}, 32, 20, "aes256-sha1"},
		{"null-sha256", ESPSuite{Encr: EncrNull, Integ: IntegHMACSHA2_256_128}, 0, 32, "null-sha256"},
	}
	for _, tt := range tests {
		s, err := ESPSuiteOf(chosenOf(t, mustESP(t, tt.in)))
		if err != nil || s != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.in, s, err, tt.want)
			continue
		}
		if e, i := s.KeyLens(); e != tt.enc || i != tt.integ {
			t.Errorf("%q: KeyLens %d, %d; want %d, %d", tt.in, e, i, tt.enc, tt.integ)
		}
		if n, ok := ESPAlgorithmName(s.Encr, s.KeyBits, s.Integ); !ok || n != tt.name {
			t.Errorf("%q: ESPAlgorithmName %q, %v", tt.in, n, ok)
		}
	}
	bad := [][]Transform{
		{integT(IntegHMACSHA2_256_128)},
		{encrT(EncrAESGCM16, 128), encrT(EncrAESGCM16, 256)},
		{encrT(EncrAESGCM16, 128), esnT(ESN_ON), esnT(ESN_NONE)},
		{encrT(EncrAESGCM16, 128), esnT(7)},
		{encrT(EncrAESGCM16, 128), integT(IntegHMACSHA2_256_128)},
		{encrT(EncrAESGCM12, 128)},
		{encrT(EncrAESCBC, 192), integT(IntegHMACSHA2_256_128)},
		{encrT(EncrAESCBC, 128), integT(IntegHMACSHA2_512_256)},
		{encrT(EncrAESCBC, 128)},
		{encrT(EncrNull, 0)},
		{encrT(EncrAESGCM16, 128), prfT(PRFHMACSHA2_256)},
		{encrT(EncrAESGCM16, 128), dhT(DHMODP1024)},
		{encrT(EncrAESGCM16, 128), {Type: 7, ID: 1}},
		{{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 128, Attributes: []Attribute{{Type: 3}}}},
	}
	for _, ts := range bad {
		p := Proposal{Number: 1, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: ts}
		if s, err := ESPSuiteOf(p); err == nil {
			t.Errorf("%s: accepted as %+v", FormatProposal(p), s)
		}
	}
}

func TestWithoutDH(t *testing.T) {
	in := []Proposal{mustESP(t, "aes128gcm16-ecp256-curve25519")}
	out := WithoutDH(in)
	if FormatProposal(out[0]) != "aes128gcm16" || FormatProposal(in[0]) != "aes128gcm16-ecp256-curve25519" {
		t.Errorf("got %q, input now %q", FormatProposal(out[0]), FormatProposal(in[0]))
	}
}

func TestFormatProposalUnknown(t *testing.T) {
	p := Proposal{Transforms: []Transform{{Type: 9, ID: 3}, encrT(999, 128), dhT(77), esnT(5), prfT(99), integT(98)}}
	if got, want := FormatProposal(p), "encr(999)_128-integ(98)-prf(99)-dh(77)-esn(5)-TRANSFORM(9)(3)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
