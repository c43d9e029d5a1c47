package header

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestIPv4View(t *testing.T) {
	rfc := loadRFC7634(t)
	h := IPv4(mustHex(t, rfc.FullPacket))
	if !h.IsValid() {
		t.Fatal("not valid")
	}
	want := IPv4Fields{TotalLen: 140, ID: 0x2345, TTL: 64, Protocol: ProtoESP,
		Src: netip.MustParseAddr("203.0.113.153"), Dst: netip.MustParseAddr("203.0.113.5"), Options: []byte{}}
	if diff := cmp.Diff(want, h.Fields(), addrCmp); diff != "" {
		t.Errorf("Fields (-want +got):\n%s", diff)
	}
	if h.HeaderLen() != 20 || len(h.Payload()) != 120 || h.IsFragment() || h.Checksum() != 0xde5b {
		t.Errorf("HeaderLen %d payload %d fragment %v checksum %04x", h.HeaderLen(), len(h.Payload()), h.IsFragment(), h.Checksum())
	}
	f := h.Fields()
	out := make([]byte, 20)
	IPv4(out).Encode(&f)
	if !bytes.Equal(out, h[:20]) {
		t.Errorf("Encode(Fields) = %x, want %x", out, h[:20])
	}

	// Options, fragment fields and setters.
	opts := []byte{0x94, 4, 0, 0} // Router Alert
	f = IPv4Fields{TOS: 0xb8, TotalLen: 60, ID: 7, Flags: IPv4FlagMF, FragmentOffset: 1480, TTL: 3,
		Protocol: ProtoUDP, Src: v4Src, Dst: v4Dst, Options: opts}
	b := IPv4(make([]byte, 60))
	b.Encode(&f)
	if !b.IsValid() || !b.IsChecksumValid() || b.HeaderLen() != 24 || !b.IsFragment() || b.FragmentOffset() != 1480 || b.Flags() != IPv4FlagMF {
		t.Fatalf("encoded %x", b[:24])
	}
	if diff := cmp.Diff(f, b.Fields(), addrCmp); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	b.SetTOS(1)
	b.SetTTL(2)
	b.SetID(3)
	b.SetProtocol(ProtoTCP)
	b.SetSrc(v4Dst)
	b.SetDst(v4Src)
	b.SetTotalLen(40)
	b.UpdateChecksum()
	if b.TOS() != 1 || b.TTL() != 2 || b.ID() != 3 || b.Protocol() != ProtoTCP || b.Src() != v4Dst || b.Dst() != v4Src ||
		b.TotalLen() != 40 || !b.IsChecksumValid() || len(b.Payload()) != 16 {
		t.Errorf("setters: %x", b)
	}
	for _, bad := range []int{3, 41} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Encode with %d option bytes did not panic", bad)
				}
			}()
			IPv4(make([]byte, 80)).Encode(&IPv4Fields{Src: v4Src, Dst: v4Dst, Options: make([]byte, bad)})
		}()
	}
}

func TestIPv6View(t *testing.T) {
	vec := loadBUVectors(t)
	h := IPv6(mustHex(t, vec.Cases[0].FullPacket))
	if !h.IsValid() {
		t.Fatal("not valid")
	}
	want := IPv6Fields{PayloadLen: 0x54, NextHeader: ProtoDestOpts, HopLimit: 64, Src: coa, Dst: ha}
	if diff := cmp.Diff(want, h.Fields(), addrCmp); diff != "" {
		t.Errorf("Fields (-want +got):\n%s", diff)
	}
	if len(h.Payload()) != 0x54 {
		t.Errorf("Payload len %d", len(h.Payload()))
	}
	f := IPv6Fields{TrafficClass: 0xb9, FlowLabel: 0xabcde, PayloadLen: 0, NextHeader: ProtoNoNext, HopLimit: 255, Src: hoa, Dst: cn}
	b := IPv6(make([]byte, 40))
	b.Encode(&f)
	if diff := cmp.Diff(f, b.Fields(), addrCmp); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	b.SetTrafficClass(0x12)
	b.SetHopLimit(1)
	b.SetNextHeader(ProtoTCP)
	b.SetSrc(coa)
	b.SetDst(ha)
	if b.TrafficClass() != 0x12 || b.FlowLabel() != 0xabcde || b.HopLimit() != 1 || b.NextHeader() != ProtoTCP || b.Src() != coa || b.Dst() != ha {
		t.Errorf("setters: %x", b)
	}
	for name, bad := range map[string][]byte{
		"39-bytes":     make([]byte, 39),
		"version-4":    append([]byte{0x45}, make([]byte, 39)...),
		"payload-long": append([]byte{0x60, 0, 0, 0, 0, 1}, make([]byte, 34)...),
	} {
		if IPv6(bad).IsValid() {
			t.Errorf("%s: IsValid = true", name)
		}
	}
}

func TestViewAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	v4 := IPv4(ip4(ProtoUDP, udp(1, 2)))
	v6 := IPv6(ip6(ProtoDestOpts, cat(haoOpts(ProtoUDP, hoa), udp(1, 2))))
	var sink int
	var a netip.Addr
	n := testing.AllocsPerRun(100, func() {
		if v4.IsValid() {
			a = v4.Src()
			a = v4.Dst()
			sink += v4.HeaderLen() + v4.TotalLen() + len(v4.Payload()) + int(v4.Protocol()) + v4.FragmentOffset()
			v4.SetTTL(v4.TTL())
			v4.SetSrc(a)
			v4.UpdateChecksum()
		}
		if v6.IsValid() {
			a = v6.Src()
			a = v6.Dst()
			sink += v6.PayloadLen() + len(v6.Payload()) + int(v6.NextHeader())
			v6.SetSrc(a)
			it := NewExtIter(v6)
			for {
				h, done, err := it.Next()
				if done || err != nil {
					break
				}
				sink += len(h.Bytes(v6))
			}
		}
		if n, ok := InnerLen(v6); ok {
			sink += n
		}
		u := UDP(v4.Payload())
		if u.IsValid() {
			sink += int(u.SrcPort()) + int(u.DstPort())
		}
	})
	if n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
	_ = sink
}

// TestInnerLenIHL: an IPv4 header with IHL below 5 is no header (RFC 791
// §3.1): InnerLen refuses it, exactly where IPv4.IsValid does.
func TestInnerLenIHL(t *testing.T) {
	p := make([]byte, 40)
	p[3] = 40 // Total Length
	for ihl := range 8 {
		p[0] = IPv4Version<<4 | byte(ihl)
		n, ok := InnerLen(p)
		if want := ihl >= 5; ok != want || IPv4(p).IsValid() != want || (ok && n != 40) {
			t.Errorf("IHL %d: InnerLen = %d %v, IsValid %v; want ok %v", ihl, n, ok, IPv4(p).IsValid(), want)
		}
	}
}
