package ike

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		in   string
		typ  IDType
		data string // hex, or the text for string types
		out  string // String(); "" means in
	}{
		{in: "192.0.2.1", typ: ID_IPV4_ADDR, data: "c0000201"},
		{in: "::ffff:192.0.2.1", typ: ID_IPV4_ADDR, data: "c0000201", out: "192.0.2.1"},
		{in: "2001:db8::1", typ: ID_IPV6_ADDR, data: "20010db8000000000000000000000001"},
		{in: "2001:DB8::1", typ: ID_IPV6_ADDR, data: "20010db8000000000000000000000001", out: "2001:db8::1"},
		{in: "moon.strongswan.org", typ: ID_FQDN, data: "moon.strongswan.org"},
		{in: "@moon.strongswan.org", typ: ID_FQDN, data: "moon.strongswan.org", out: "moon.strongswan.org"},
		{in: "@moon", typ: ID_FQDN, data: "moon", out: "moon"},
		{in: "@192.0.2.1", typ: ID_FQDN, data: "192.0.2.1"},
		{in: "@a@b", typ: ID_FQDN, data: "a@b"},
		{in: "carol@strongswan.org", typ: ID_RFC822_ADDR, data: "carol@strongswan.org"},
		{in: "@@carol", typ: ID_RFC822_ADDR, data: "carol"},
		{in: "@@carol@strongswan.org", typ: ID_RFC822_ADDR, data: "carol@strongswan.org", out: "carol@strongswan.org"},
		{in: "@#0123abcd", typ: ID_KEY_ID, data: "0123abcd"},
		{in: "@#01:23:AB:cd", typ: ID_KEY_ID, data: "0123abcd", out: "@#0123abcd"},
		{in: "%null", typ: ID_NULL},
		{in: "%any", out: "%any"},
		{in: "", out: "%any"},
		{in: "  %ANY ", out: "%any"},
		{in: "C=CH, O=strongSwan, CN=moon.strongswan.org", typ: ID_DER_ASN1_DN},
		{in: "C=CH,O=strongSwan,OU=Research\\, Development,CN=moon", typ: ID_DER_ASN1_DN,
			out: "C=CH, O=strongSwan, OU=Research\\, Development, CN=moon"},
		{in: "cn=carol, emailAddress=carol@strongswan.org, serialNumber=0002, DC=org", typ: ID_DER_ASN1_DN,
			out: "CN=carol, E=carol@strongswan.org, SN=0002, DC=org"},
	}
	for _, tt := range tests {
		id, err := ParseIdentity(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if id.Type != tt.typ {
			t.Errorf("%q: type %d, want %d", tt.in, id.Type, tt.typ)
		}
		if tt.typ != ID_DER_ASN1_DN {
			want := []byte(tt.data)
			if b, err := hex.DecodeString(tt.data); err == nil && (tt.typ == ID_IPV4_ADDR || tt.typ == ID_IPV6_ADDR || tt.typ == ID_KEY_ID) {
				want = b
			}
			if !bytes.Equal(id.Data, want) {
				t.Errorf("%q: data %q, want %q", tt.in, id.Data, want)
			}
		}
		out := tt.out
		if out == "" {
			out = tt.in
		}
		if got := id.String(); got != out {
			t.Errorf("%q: String = %q, want %q", tt.in, got, out)
		}
		// The canonical form parses back to the same identity.
		again, err := ParseIdentity(id.String())
		if err != nil || !again.Equal(id) || again.Type != id.Type || !bytes.Equal(again.Data, id.Data) {
			t.Errorf("%q: reparse of %q: %v %v", tt.in, id.String(), again, err)
		}
		if id.IsZero() != (tt.typ == 0) {
			t.Errorf("%q: IsZero %v", tt.in, id.IsZero())
		}
	}
}

// TestParseIdentityDN checks the DER against crypto/x509/pkix's own
// encoding of the same name.
func TestParseIdentityDN(t *testing.T) {
	id, err := ParseIdentity("C=CH, O=strongSwan, CN=moon.strongswan.org")
	if err != nil {
		t.Fatal(err)
	}
	want, err := asn1.Marshal(pkix.Name{Country: []string{"CH"}, Organization: []string{"strongSwan"}, CommonName: "moon.strongswan.org"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id.Data, want) {
		t.Errorf("DER %x\nwant %x", id.Data, want)
	}
	// The same name with UTF8String values (as some CAs write it) is Equal.
	utf8, _ := asn1.Marshal(pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "CH"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("strongSwan")}}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("moon.strongswan.org")}}},
	})
	other := Identity{Type: ID_DER_ASN1_DN, Data: utf8}
	if bytes.Equal(utf8, id.Data) || !id.Equal(other) || !other.Equal(id) {
		t.Errorf("DN with other string types: equal %v", id.Equal(other))
	}
	for _, s := range []string{"C=CH, O=strongSwan, CN=sun.strongswan.org", "O=strongSwan, C=CH, CN=moon.strongswan.org", "C=CH, O=strongSwan"} {
		if o, _ := ParseIdentity(s); id.Equal(o) {
			t.Errorf("%q equals %v", s, id)
		}
	}
	// Undecodable DER: compared and printed as bytes.
	junk := Identity{Type: ID_DER_ASN1_DN, Data: []byte{0x30, 0x03, 0x01}}
	if !junk.Equal(Identity{Type: ID_DER_ASN1_DN, Data: []byte{0x30, 0x03, 0x01}}) || junk.Equal(id) || junk.String() != "%type(9):#300301" {
		t.Errorf("junk DN: %q", junk.String())
	}
}

func TestParseIdentityErrors(t *testing.T) {
	for _, in := range []string{
		"@", "@@", "@#", "@#xyz", "@#0", "%bogus", "fe80::1%eth0", "carol@", "two words", "a,b", "a\\b",
		"C=CH, X=y", "C=, CN=moon", "=CH", "C=CH,", "CN=moon\\", "line\nbreak", "\x00", "a\tb",
		strings.Repeat("a", 2000),
	} {
		if id, err := ParseIdentity(in); err == nil {
			t.Errorf("%q: accepted as %v %q", in, id.Type, id.String())
		}
	}
}

func TestIdentityEqualMatches(t *testing.T) {
	p := func(s string) Identity {
		id, err := ParseIdentity(s)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if !p("Moon.StrongSwan.org").Equal(p("moon.strongswan.org")) || !p("Carol@StrongSwan.org").Equal(p("carol@strongswan.org")) {
		t.Error("FQDN / RFC 822 compared with case")
	}
	if p("@#abcd").Equal(p("@#ABCE")) || p("192.0.2.1").Equal(p("192.0.2.2")) || p("moon").Equal(p("@@moon")) {
		t.Error("different identities equal")
	}
	if !p("%any").Matches(p("moon")) || !p("%any").Matches(Identity{}) || !p("moon").Matches(p("MOON")) || p("moon").Matches(p("sun")) || p("moon").Matches(Identity{}) {
		t.Error("Matches")
	}
	if p("192.0.2.1").Equal(IdentityFromAddr(netip.MustParseAddr("::ffff:192.0.2.2"))) || !p("192.0.2.1").Equal(IdentityFromAddr(netip.MustParseAddr("::ffff:192.0.2.1"))) {
		t.Error("IdentityFromAddr")
	}
	if !IdentityFromAddr(netip.Addr{}).IsZero() {
		t.Error("invalid address gives an identity")
	}
	for _, id := range []Identity{{Type: ID_IPV4_ADDR, Data: []byte{1, 2}}, {Type: ID_IPV6_ADDR, Data: []byte{1, 2, 3, 4}}, {Type: ID_DER_ASN1_GN, Data: []byte{0xa0}}, {Type: 200}, {Type: ID_KEY_ID}, {Type: ID_NULL, Data: []byte{1}}} {
		s := id.String()
		if !strings.HasPrefix(s, "%type(") {
			t.Errorf("%v %x: String %q", id.Type, id.Data, s)
		}
	}
}

func TestIdentityPayload(t *testing.T) {
	id, _ := ParseIdentity("moon.strongswan.org")
	p := IdentityPayload(id, false)
	if !p.Initiator || p.Type() != PayloadIDi || p.IDType != ID_FQDN || string(p.Data) != "moon.strongswan.org" {
		t.Errorf("IDi: %+v", p)
	}
	r := IdentityPayload(id, true)
	if r.Initiator || r.Type() != PayloadIDr {
		t.Errorf("IDr: %+v", r)
	}
	p.Data[0] = 'x'
	if id.Data[0] != 'm' {
		t.Error("payload shares the identity's bytes")
	}
	// Through the codec and back.
	body, _ := r.appendBody(nil)
	dec, err := decodeBody(PayloadIDr, body, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := IdentityOf(dec.(*ID))
	body[5] = 'X'
	if !got.Equal(id) || got.String() != "moon.strongswan.org" {
		t.Errorf("decoded %v", got)
	}
	if !IdentityOf(nil).IsZero() {
		t.Error("IdentityOf(nil)")
	}
}
