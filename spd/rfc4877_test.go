package spd

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
)

// The RFC 4877 §6 policy model (§6.1-§6.4), as one host-wide SPD per node
// (DR-2; ARCHITECTURE.md, the unmodified-IPsec rules): signalling entries
// first, the HoA payload entry last, IKE BYPASS in front and a final
// DISCARD.

// MH and ICMPv6 types (RFC 6275 §6.1, §6.5).
const (
	mhHoTI = 1
	mhHoT  = 3
	mhBU   = 5
	mhBAck = 6
	icmMPS = 146
	icmMPA = 147
)

// SPIs of SA1-SA8 of RFC 4877 §6, plus the DSMIPv6 IPv4 payload SAs
// (RFC 5555 §5.2).
const (
	spiSA1 = 0x101 + iota
	spiSA2
	spiSA3
	spiSA4
	spiSA5
	spiSA6
	spiSA7
	spiSA8
	spiV4Out // MN -> HA, IPv4 HoA payload
	spiV4In  // HA -> MN, IPv4 HoA payload
	spiGone  // a PROTECT policy whose SA the SAD does not have
)

var (
	hoa   = netip.MustParseAddr("2001:db8:1::100")
	hoa4  = netip.MustParseAddr("192.0.2.100")
	haA   = netip.MustParseAddr("2001:db8:1::1")
	ha4   = netip.MustParseAddr("192.0.2.1")
	coa   = netip.MustParseAddr("2001:db8:77::5")
	coa4  = netip.MustParseAddr("198.51.100.7")
	cn    = netip.MustParseAddr("2001:db8:99::9")
	cn4   = netip.MustParseAddr("203.0.113.9")
	haB   = netip.MustParseAddr("2001:db8:2::1") // another home agent
	other = netip.MustParseAddr("2001:db8:1::200")
)

// ikeBypass lets IKE (UDP 500, 4500) and the DSMIPv6 UDP/4191 outer
// packets through in both directions (DR-2; ARCHITECTURE.md, the
// unmodified-IPsec rules): one entry, three selector sets (RFC 4301
// §4.4.1.2).
func ikeBypass(dir sad.Direction) Policy {
	return Policy{Name: "ike-" + dir.String(), Dir: dir, Action: Bypass, Selectors: []sad.Selector{
		{Proto: header.ProtoUDP, LocalPort: sad.Port(500), RemotePort: sad.Port(500)},
		{Proto: header.ProtoUDP, LocalPort: sad.Port(4500), RemotePort: sad.Port(4500)},
		{Proto: header.ProtoUDP, RemotePort: sad.Port(4191)},
	}}
}

func discardAll(dir sad.Direction) Policy {
	return Policy{Name: "discard-" + dir.String(), Dir: dir, Action: Discard, Selectors: []sad.Selector{{}}}
}

// mnPolicies is the MN's SPD (the mobile node SPD-S of RFC 4877 §6.1-§6.4).
func mnPolicies() []Policy {
	var ps []Policy
	for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
		spi := func(out, in uint32) uint32 {
			if d == sad.Outbound {
				return out
			}
			return in
		}
		ps = append(ps,
			ikeBypass(d),
			// 1: BU/BAck, transport, HoA <-> HA.
			Policy{Name: "bu-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiSA1, spiSA2), Selectors: []sad.Selector{{
				Local: sad.SingleAddr(hoa), Remote: sad.SingleAddr(haA), Proto: header.ProtoMobility,
				LocalPort: sad.MHType(mhBU), RemotePort: sad.MHType(mhBAck)}}},
			// 2: HoTI/HoT, tunnel, HoA <-> any.
			Policy{Name: "hoti-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiSA3, spiSA4), Selectors: []sad.Selector{{
				Local: sad.SingleAddr(hoa), Proto: header.ProtoMobility,
				LocalPort: sad.MHType(mhHoTI), RemotePort: sad.MHType(mhHoT)}}},
			// 3: MPS/MPA, transport, HoA <-> HA.
			Policy{Name: "mps-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiSA5, spiSA6), Selectors: []sad.Selector{{
				Local: sad.SingleAddr(hoa), Remote: sad.SingleAddr(haA), Proto: header.ProtoICMPv6,
				LocalPort: sad.ICMPType(icmMPS), RemotePort: sad.ICMPType(icmMPA)}}},
			// 4: the host-wide payload entry keyed on the HoA (DR-2).
			Policy{Name: "payload-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiSA7, spiSA8), Selectors: []sad.Selector{{
				Local: sad.SingleAddr(hoa)}}},
			// DSMIPv6 IPv4 HoA payload (RFC 5555 §5.2).
			Policy{Name: "payload4-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiV4Out, spiV4In), Selectors: []sad.Selector{{
				Local: sad.SingleAddr(hoa4)}}},
			discardAll(d),
		)
	}
	return ps
}

// haPolicies is the HA's mirror SPD: Local and Remote swapped, and the
// type selectors with them (RFC 4301 §4.4.1.3).
func haPolicies() []Policy {
	var ps []Policy
	for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
		spi := func(out, in uint32) uint32 {
			if d == sad.Outbound {
				return out
			}
			return in
		}
		ps = append(ps,
			ikeBypass(d),
			Policy{Name: "bu-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiSA2, spiSA1), Selectors: []sad.Selector{{
				Local: sad.SingleAddr(haA), Remote: sad.SingleAddr(hoa), Proto: header.ProtoMobility,
				LocalPort: sad.MHType(mhBAck), RemotePort: sad.MHType(mhBU)}}},
			Policy{Name: "hoti-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiSA4, spiSA3), Selectors: []sad.Selector{{
				Remote: sad.SingleAddr(hoa), Proto: header.ProtoMobility,
				LocalPort: sad.MHType(mhHoT), RemotePort: sad.MHType(mhHoTI)}}},
			Policy{Name: "mps-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiSA6, spiSA5), Selectors: []sad.Selector{{
				Local: sad.SingleAddr(haA), Remote: sad.SingleAddr(hoa), Proto: header.ProtoICMPv6,
				LocalPort: sad.ICMPType(icmMPA), RemotePort: sad.ICMPType(icmMPS)}}},
			Policy{Name: "payload-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiSA8, spiSA7), Selectors: []sad.Selector{{
				Remote: sad.SingleAddr(hoa)}}},
			Policy{Name: "payload4-" + d.String(), Dir: d, Action: Protect, SPI: spi(spiGone, spiV4Out), Selectors: []sad.Selector{{
				Remote: sad.SingleAddr(hoa4)}}},
			discardAll(d),
		)
	}
	return ps
}

// Positions in each direction's list.
const (
	idxIKE = iota
	idxBU
	idxHoTI
	idxMPS
	idxPayload
	idxPayload4
	idxDiscard
)

// fakeSAD is a SALookup over a map.
type fakeSAD map[uint32]*sad.SA

func (m fakeSAD) Outbound(spi uint32) *sad.SA { return m[spi] }

func newFakeSAD() fakeSAD {
	m := fakeSAD{}
	for spi := uint32(spiSA1); spi <= spiV4In; spi++ {
		m[spi] = new(sad.SA)
	}
	return m
}

// Packet builders (STYLE.md §8: plain bytes, a hook per layer).

// ext6 is one IPv6 extension header to put in front of the payload.
type ext6 struct {
	proto uint8
	body  []byte // everything after the Next Header byte
}

// hao is a Destination Options header with a Home Address option at the
// 8n+6 alignment RFC 6275 §6.3 asks for: PadN(2) then the option.
func hao(a netip.Addr) ext6 {
	b := []byte{2, header.OptPadN, 2, 0, 0, header.OptHomeAddress, header.HomeAddressOptLen}
	a16 := a.As16()
	return ext6{header.ProtoDestOpts, append(b, a16[:]...)}
}

// rh2 is a type 2 Routing header carrying a (RFC 6275 §6.4).
func rh2(a netip.Addr) ext6 {
	b := []byte{2, header.RoutingTypeMIP6, 1, 0, 0, 0, 0}
	a16 := a.As16()
	return ext6{header.ProtoRouting, append(b, a16[:]...)}
}

// frag6 is a Fragment header at offset off (bytes), more fragments m.
func frag6(off int, m bool) ext6 {
	fo := uint16(off)
	if m {
		fo |= 1
	}
	return ext6{header.ProtoFragment, []byte{0, byte(fo >> 8), byte(fo), 0, 0, 0, 1}}
}

func ipv6(src, dst netip.Addr, exts []ext6, proto uint8, l4 []byte) []byte {
	var payload []byte
	next := proto
	for i := len(exts) - 1; i >= 0; i-- {
		h := append([]byte{next}, exts[i].body...)
		payload = append(h, payload...)
		next = exts[i].proto
	}
	payload = append(payload, l4...)
	p := make([]byte, header.IPv6HeaderLen+len(payload))
	p[0] = 6 << 4
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6] = next
	p[7] = 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[header.IPv6HeaderLen:], payload)
	return p
}

func ipv4(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	p := make([]byte, header.IPv4MinHeaderLen+len(l4))
	header.IPv4(p).Encode(&header.IPv4Fields{TotalLen: uint16(len(p)), TTL: 64, Protocol: proto, Src: src, Dst: dst})
	copy(p[header.IPv4MinHeaderLen:], l4)
	return p
}

// mh is a Mobility Header of type t, 16 bytes (RFC 6275 §6.1.1).
func mh(t uint8) []byte {
	return []byte{header.ProtoNoNext, 1, t, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
}

func icmp(t, c uint8) []byte { return []byte{t, c, 0, 0, 0, 0, 0, 0} }

func ports(sport, dport uint16, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	return b
}

func tcp(sport, dport uint16) []byte { return ports(sport, dport, 20) }
func udp(sport, dport uint16) []byte { return ports(sport, dport, 8) }

func TestRFC4877(t *testing.T) {
	sas := newFakeSAD()
	mnDB, haDB := New(sas), New(sas)
	if err := mnDB.Replace(mnPolicies()); err != nil {
		t.Fatal(err)
	}
	if err := haDB.Replace(haPolicies()); err != nil {
		t.Fatal(err)
	}
	out, in := sad.Outbound, sad.Inbound
	protect := func(idx int, spi uint32) Decision {
		return Decision{Action: Protect, SPI: spi, SA: sas[spi], Index: idx}
	}
	bypass := func(idx int) Decision { return Decision{Action: Bypass, Index: idx} }
	unprotected := func(idx int) Decision { return Decision{Action: Discard, Index: idx, Reason: ReasonUnprotected} }
	discard := Decision{Action: Discard, Index: idxDiscard}

	tests := []struct {
		name string
		db   *DB
		dir  sad.Direction
		pkt  []byte
		want Decision
	}{
		// MN, outbound (RFC 4877 §5.1, MN column OUT).
		{"MN BU HoA->HA", mnDB, out, ipv6(hoa, haA, nil, header.ProtoMobility, mh(mhBU)), protect(idxBU, spiSA1)},
		{"MN BU from CoA, HoA in HAO", mnDB, out, ipv6(coa, haA, []ext6{hao(hoa)}, header.ProtoMobility, mh(mhBU)), protect(idxBU, spiSA1)},
		{"MN BU to another HA falls to payload", mnDB, out, ipv6(hoa, haB, nil, header.ProtoMobility, mh(mhBU)), protect(idxPayload, spiSA7)},
		{"MN BU from CoA without HAO", mnDB, out, ipv6(coa, haA, nil, header.ProtoMobility, mh(mhBU)), discard},
		{"MN BAck type outbound is not BU", mnDB, out, ipv6(hoa, haA, nil, header.ProtoMobility, mh(mhBAck)), protect(idxPayload, spiSA7)},
		{"MN HoTI", mnDB, out, ipv6(hoa, cn, nil, header.ProtoMobility, mh(mhHoTI)), protect(idxHoTI, spiSA3)},
		{"MN HoTI via HAO", mnDB, out, ipv6(coa, cn, []ext6{hao(hoa)}, header.ProtoMobility, mh(mhHoTI)), protect(idxHoTI, spiSA3)},
		{"MN MPS", mnDB, out, ipv6(hoa, haA, nil, header.ProtoICMPv6, icmp(icmMPS, 0)), protect(idxMPS, spiSA5)},
		{"MN MPS via HAO", mnDB, out, ipv6(coa, haA, []ext6{hao(hoa)}, header.ProtoICMPv6, icmp(icmMPS, 0)), protect(idxMPS, spiSA5)},
		{"MN echo to HA is payload", mnDB, out, ipv6(hoa, haA, nil, header.ProtoICMPv6, icmp(128, 0)), protect(idxPayload, spiSA7)},
		{"MN TCP payload", mnDB, out, ipv6(hoa, cn, nil, header.ProtoTCP, tcp(40000, 443)), protect(idxPayload, spiSA7)},
		{"MN payload via HAO", mnDB, out, ipv6(coa, cn, []ext6{hao(hoa)}, header.ProtoUDP, udp(5000, 53)), protect(idxPayload, spiSA7)},
		{"MN non-initial fragment", mnDB, out, ipv6(hoa, cn, []ext6{frag6(1280, true)}, header.ProtoTCP, tcp(1, 2)), protect(idxPayload, spiSA7)},
		{"MN IPv4 HoA payload", mnDB, out, ipv4(hoa4, cn4, header.ProtoTCP, tcp(40000, 80)), protect(idxPayload4, spiV4Out)},
		{"MN IKE from CoA", mnDB, out, ipv6(coa, haA, nil, header.ProtoUDP, udp(500, 500)), bypass(idxIKE)},
		{"MN IKE NAT-T over IPv4", mnDB, out, ipv4(coa4, ha4, header.ProtoUDP, udp(4500, 4500)), bypass(idxIKE)},
		{"MN DSMIPv6 UDP 4191", mnDB, out, ipv4(coa4, ha4, header.ProtoUDP, udp(4191, 4191)), bypass(idxIKE)},
		{"MN TCP from CoA", mnDB, out, ipv6(coa, cn, nil, header.ProtoTCP, tcp(1, 2)), discard},
		{"MN other host", mnDB, out, ipv6(other, cn, nil, header.ProtoTCP, tcp(1, 2)), discard},
		// MN, inbound cleartext: what should have come under ESP is dropped.
		{"MN cleartext BAck", mnDB, in, ipv6(haA, hoa, nil, header.ProtoMobility, mh(mhBAck)), unprotected(idxBU)},
		{"MN cleartext BAck via RH2", mnDB, in, ipv6(haA, coa, []ext6{rh2(hoa)}, header.ProtoMobility, mh(mhBAck)), unprotected(idxBU)},
		{"MN cleartext HoT", mnDB, in, ipv6(cn, hoa, nil, header.ProtoMobility, mh(mhHoT)), unprotected(idxHoTI)},
		{"MN cleartext MPA", mnDB, in, ipv6(haA, hoa, nil, header.ProtoICMPv6, icmp(icmMPA, 0)), unprotected(idxMPS)},
		{"MN cleartext payload", mnDB, in, ipv6(cn, hoa, nil, header.ProtoTCP, tcp(443, 40000)), unprotected(idxPayload)},
		{"MN IKE in", mnDB, in, ipv6(haA, coa, nil, header.ProtoUDP, udp(500, 500)), bypass(idxIKE)},
		{"MN stray TCP to CoA", mnDB, in, ipv6(cn, coa, nil, header.ProtoTCP, tcp(443, 40000)), discard},

		// HA, outbound (HA column OUT).
		{"HA BAck", haDB, out, ipv6(haA, hoa, nil, header.ProtoMobility, mh(mhBAck)), protect(idxBU, spiSA2)},
		{"HA BAck via RH2", haDB, out, ipv6(haA, coa, []ext6{rh2(hoa)}, header.ProtoMobility, mh(mhBAck)), protect(idxBU, spiSA2)},
		{"HA HoT", haDB, out, ipv6(cn, hoa, nil, header.ProtoMobility, mh(mhHoT)), protect(idxHoTI, spiSA4)},
		{"HA MPA", haDB, out, ipv6(haA, hoa, nil, header.ProtoICMPv6, icmp(icmMPA, 0)), protect(idxMPS, spiSA6)},
		{"HA payload to HoA", haDB, out, ipv6(cn, hoa, nil, header.ProtoTCP, tcp(443, 40000)), protect(idxPayload, spiSA8)},
		{"HA IPv4 payload, SA missing", haDB, out, ipv4(cn4, hoa4, header.ProtoUDP, udp(53, 5353)),
			Decision{Action: Protect, SPI: spiGone, Index: idxPayload4, Reason: ReasonNoSA}},
		{"HA IKE", haDB, out, ipv6(haA, coa, nil, header.ProtoUDP, udp(500, 500)), bypass(idxIKE)},
		{"HA to unknown", haDB, out, ipv6(haA, cn, nil, header.ProtoTCP, tcp(1, 2)), discard},
		// HA, inbound cleartext.
		{"HA cleartext BU with HAO", haDB, in, ipv6(coa, haA, []ext6{hao(hoa)}, header.ProtoMobility, mh(mhBU)), unprotected(idxBU)},
		{"HA cleartext HoTI", haDB, in, ipv6(hoa, cn, nil, header.ProtoMobility, mh(mhHoTI)), unprotected(idxHoTI)},
		{"HA cleartext MPS", haDB, in, ipv6(hoa, haA, nil, header.ProtoICMPv6, icmp(icmMPS, 0)), unprotected(idxMPS)},
		{"HA IKE NAT-T in", haDB, in, ipv4(coa4, ha4, header.ProtoUDP, udp(4500, 4500)), bypass(idxIKE)},
		{"HA stray", haDB, in, ipv6(cn, haA, nil, header.ProtoTCP, tcp(1, 2)), discard},

		// Unparsable packets.
		{"empty", mnDB, out, nil, Decision{Action: Discard, Index: -1, Reason: ReasonUnparsable}},
		{"truncated IPv6", mnDB, out, ipv6(hoa, cn, nil, header.ProtoTCP, tcp(1, 2))[:30], Decision{Action: Discard, Index: -1, Reason: ReasonUnparsable}},
		{"two HAOs", haDB, in, ipv6(coa, haA, []ext6{hao(hoa), hao(hoa)}, header.ProtoMobility, mh(mhBU)), Decision{Action: Discard, Index: -1, Reason: ReasonUnparsable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.db.Lookup(tt.dir, tt.pkt); got != tt.want {
				t.Errorf("Lookup(%v) = %+v, want %+v", tt.dir, got, tt.want)
			}
			// The same through the indexed path.
			var f header.Flow
			if !header.ParseFlow(tt.pkt, &f) {
				return
			}
			idx := newTestDB(indexConfig{linearMax: 0, budgetFactor: 4, budgetSlack: 256, maxLevels: 3}, sas)
			if err := idx.Replace(append(tt.db.List(sad.Outbound), tt.db.List(sad.Inbound)...)); err != nil {
				t.Fatal(err)
			}
			if got := idx.LookupFlow(tt.dir, &f); got != tt.want {
				t.Errorf("indexed LookupFlow(%v) = %+v, want %+v", tt.dir, got, tt.want)
			}
		})
	}
}

// TestStats checks the per-policy hit counters and the drop counters, and
// that hit counters follow their policy through Insert and Delete.
func TestStats(t *testing.T) {
	sas := newFakeSAD()
	db := New(sas)
	if err := db.Replace(haPolicies()); err != nil {
		t.Fatal(err)
	}
	ba := ipv6(haA, hoa, nil, header.ProtoMobility, mh(mhBAck))
	for range 3 {
		db.Lookup(sad.Outbound, ba)
	}
	db.Lookup(sad.Outbound, ipv4(cn4, hoa4, header.ProtoUDP, udp(53, 5353))) // NoSA
	db.Lookup(sad.Inbound, ipv6(coa, haA, []ext6{hao(hoa)}, header.ProtoMobility, mh(mhBU)))
	db.Lookup(sad.Inbound, []byte{0x60})
	// Without a catch-all, a miss counts as NoMatch.
	if err := db.Delete("discard-out"); err != nil {
		t.Fatal(err)
	}
	db.Lookup(sad.Outbound, ipv6(haA, cn, nil, header.ProtoTCP, tcp(1, 2)))
	// Moving the BU policy down one keeps its counter.
	if err := db.Insert(idxBU, Policy{Name: "first", Dir: sad.Outbound, Action: Bypass,
		Selectors: []sad.Selector{{Proto: 99}}}); err != nil {
		t.Fatal(err)
	}
	out := db.Stats(sad.Outbound)
	if got := out.Policies[idxBU+1]; got.Name != "bu-out" || got.Hits != 3 {
		t.Errorf("bu-out stats = %+v, want 3 hits", got)
	}
	if out.Policies[idxBU].Hits != 0 {
		t.Errorf("new policy has %d hits", out.Policies[idxBU].Hits)
	}
	if out.NoSA != 1 || out.NoMatch != 1 || out.Unprotected != 0 || out.Unparsable != 0 {
		t.Errorf("outbound counters %+v", out)
	}
	inb := db.Stats(sad.Inbound)
	if inb.Unprotected != 1 || inb.Unparsable != 1 || inb.NoMatch != 0 || inb.Policies[idxBU].Hits != 1 {
		t.Errorf("inbound counters %+v", inb)
	}
	// Replace keeps the counters of policies it keeps by name.
	if err := db.Replace(haPolicies()); err != nil {
		t.Fatal(err)
	}
	if got := db.Stats(sad.Outbound).Policies[idxBU]; got.Hits != 3 {
		t.Errorf("after Replace: %+v", got)
	}
}
