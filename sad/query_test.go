package sad

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
)

// SPIs of SA1-SA8 of RFC 4877 §6, chosen so that the payload SAs
// (SA7, SA8) have the lowest SPIs: a lowest-SPI-first rule would then pick
// them for BUs.
const (
	spiA = 0x1001 + iota // SA1: BU, HoA -> HA, transport
	spiB                 // SA2: BAck, HA -> HoA, transport
	spiC                 // SA3: HoTI, HoA -> any, tunnel
	spiD                 // SA4: HoT, any -> HoA, tunnel
	spiE                 // SA5: MPS
	spiF                 // SA6: MPA
	spiG = 0x101         // SA7: payload, HoA -> any
	spiH = 0x102         // SA8: payload, any -> HoA
)

type saDef struct {
	dir  Direction
	spi  uint32
	mode esp.Mode
	sel  Selector
}

// mnSAD is the MN's SAD of RFC 4877 §6 with the selectors written from
// the MN's side (local = HoA).
func mnSAD(hoa, ha netip.Addr) []saDef {
	mhT := func(local, remote Ports) Selector {
		return Selector{Local: SingleAddr(hoa), Remote: SingleAddr(ha), Proto: header.ProtoMobility, LocalPort: local, RemotePort: remote}
	}
	return []saDef{
		{Outbound, spiA, esp.Transport, mhT(MHType(mhBU), Ports{})},
		{Inbound, spiB, esp.Transport, mhT(Ports{}, MHType(mhBAck))},
		{Outbound, spiC, esp.Tunnel, Selector{Local: SingleAddr(hoa), Proto: header.ProtoMobility, LocalPort: MHType(mhHoTI)}},
		{Inbound, spiD, esp.Tunnel, Selector{Local: SingleAddr(hoa), Proto: header.ProtoMobility, RemotePort: MHType(mhHoT)}},
		{Outbound, spiE, esp.Transport, Selector{Local: SingleAddr(hoa), Remote: SingleAddr(ha), Proto: header.ProtoICMPv6, LocalPort: ICMPType(mps)}},
		{Inbound, spiF, esp.Transport, Selector{Local: SingleAddr(hoa), Remote: SingleAddr(ha), Proto: header.ProtoICMPv6, RemotePort: ICMPType(mpa)}},
		{Outbound, spiG, esp.Tunnel, Selector{Local: SingleAddr(hoa)}},
		{Inbound, spiH, esp.Tunnel, Selector{Local: SingleAddr(hoa)}},
	}
}

// haSAD mirrors mnSAD: directions and local/remote swapped.
func haSAD(hoa, ha netip.Addr) []saDef {
	defs := mnSAD(hoa, ha)
	for i := range defs {
		d := &defs[i]
		d.dir = 3 - d.dir
		d.sel.Local, d.sel.Remote = d.sel.Remote, d.sel.Local
		d.sel.LocalPort, d.sel.RemotePort = d.sel.RemotePort, d.sel.LocalPort
	}
	return defs
}

func load(t testing.TB, db *DB, defs []saDef, spiOffset uint32) {
	t.Helper()
	for _, d := range defs {
		p := params(d.spi + spiOffset)
		p.Mode = d.mode
		mustAdd(t, db, Config{Dir: d.dir, Params: p, Selectors: []Selector{d.sel}})
	}
}

func TestQueryMN(t *testing.T) {
	db := New(Options{})
	load(t, db, mnSAD(hoa, ha), 0)
	tests := []struct {
		name string
		f    *header.Flow
		spi  uint32
		ok   bool
	}{
		// DR-3: the BU SA's SPI, though SA7 (lower SPI) matches too.
		{"BU", flow(ip6(hoa, ha, mh(mhBU))), spiA, true},
		{"BU in home-address form from a CoA", flow(ip6HAO(coa, hoa, ha, mh(mhBU))), spiA, true},
		{"HoTI to a CN", flow(ip6(hoa, cn, mh(mhHoTI))), spiC, true},
		{"MPS", flow(ip6(hoa, ha, icmp6(mps, 0))), spiE, true},
		{"payload to a CN", flow(ip6(hoa, cn, tcp(1, 2))), spiG, true},
		{"payload to the HA", flow(ip6(hoa, ha, udp(1, 2, 0))), spiG, true},
		{"BAck is never sent by the MN: payload SA", flow(ip6(hoa, ha, mh(mhBAck))), spiG, true},
		{"not from the HoA", flow(ip6(coa, ha, mh(mhBU))), 0, false},
		{"nil flow", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spi, ok := db.OutboundSPIFor(tt.f)
			if spi != tt.spi || ok != tt.ok {
				t.Errorf("OutboundSPIFor = %#x, %v; want %#x, %v", spi, ok, tt.spi, tt.ok)
			}
		})
	}
	// On the MN the inbound SAs' remote is the HA (or any).
	if a, ok := db.HomeAddressOf(spiB); !ok || a != ha {
		t.Errorf("HomeAddressOf(SA2) = %v, %v", a, ok)
	}
	if _, ok := db.HomeAddressOf(spiH); ok {
		t.Error("HomeAddressOf(SA8) names an address: its remote is ANY")
	}
	if _, ok := db.HomeAddressOf(spiA); ok {
		t.Error("HomeAddressOf found an outbound SPI")
	}
}

func TestQueryHA(t *testing.T) {
	db := New(Options{})
	// Three MNs on one HA, SPIs apart.
	hoas := []netip.Addr{hoa, hoa.Next(), netip.MustParseAddr("2001:db8:1::200")}
	for i, h := range hoas {
		load(t, db, haSAD(h, ha), uint32(i)<<16)
	}
	for i, h := range hoas {
		off := uint32(i) << 16
		// DR-4: the HoA an inbound BU SPI is bound to.
		for _, spi := range []uint32{spiA, spiC, spiE, spiG} {
			if a, ok := db.HomeAddressOf(spi + off); !ok || a != h {
				t.Errorf("HomeAddressOf(%#x) = %v, %v; want %v", spi+off, a, ok, h)
			}
		}
		sels, ok := db.SelectorsOf(Inbound, spiA+off)
		if !ok || len(sels) != 1 || sels[0].Proto != header.ProtoMobility || sels[0].RemotePort != MHType(mhBU) {
			t.Errorf("SelectorsOf(SA1) = %v, %v", sels, ok)
		}
		// The BA goes out on SA2 of that MN.
		if spi, ok := db.OutboundSPIFor(flow(ip6(ha, h, mh(mhBAck)))); !ok || spi != spiB+off {
			t.Errorf("BA SPI for %v = %#x, %v", h, spi, ok)
		}
		if spi, ok := db.OutboundSPIFor(flow(ip6(cn, h, tcp(80, 4000)))); !ok || spi != spiH+off {
			t.Errorf("payload SPI for %v = %#x, %v", h, spi, ok)
		}
		if spi, ok := db.OutboundSPIFor(flow(ip6(cn, h, mh(mhHoT)))); !ok || spi != spiD+off {
			t.Errorf("HoT SPI for %v = %#x, %v", h, spi, ok)
		}
	}
	if _, ok := db.OutboundSPIFor(flow(ip6(ha, other, mh(mhBAck)))); ok {
		t.Error("an SPI for an unknown HoA")
	}
	if _, ok := db.HomeAddressOf(0xdead); ok {
		t.Error("HomeAddressOf of an unknown SPI")
	}
	// Deleting an MN's SAs removes them from the answers.
	if _, err := db.Delete(Outbound, spiB+1<<16); err != nil {
		t.Fatal(err)
	}
	if spi, ok := db.OutboundSPIFor(flow(ip6(ha, hoas[1], mh(mhBAck)))); !ok || spi != spiH+1<<16 {
		t.Errorf("after deleting SA2: %#x, %v (want the payload SA)", spi, ok)
	}
}

func TestHomeAddressOf(t *testing.T) {
	tests := []struct {
		name string
		sels []Selector
		want netip.Addr
	}{
		{"single", []Selector{{Remote: SingleAddr(hoa)}}, hoa},
		{"two selectors, same HoA", []Selector{{Remote: SingleAddr(hoa), Proto: header.ProtoMobility}, {Remote: SingleAddr(hoa)}}, hoa},
		{"IPv4 HoA", []Selector{{Remote: SingleAddr(v4a)}}, v4a},
		{"two HoAs", []Selector{{Remote: SingleAddr(hoa)}, {Remote: SingleAddr(hoa.Next())}}, netip.Addr{}},
		{"range", []Selector{{Remote: AddrRange{From: hoa, To: hoa.Next()}}}, netip.Addr{}},
		{"prefix", []Selector{{Remote: PrefixRange(netip.MustParsePrefix("2001:db8::/64"))}}, netip.Addr{}},
		{"/128 prefix", []Selector{{Remote: PrefixRange(netip.PrefixFrom(hoa, 128))}}, hoa},
		{"ANY", []Selector{{Local: SingleAddr(ha)}}, netip.Addr{}},
		{"one ANY of two", []Selector{{Remote: SingleAddr(hoa)}, {}}, netip.Addr{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := New(Options{})
			spi := uint32(0x500 + i)
			mustAdd(t, db, cfg(Inbound, spi, tt.sels...))
			mustAdd(t, db, cfg(Outbound, spi, tt.sels...))
			a, ok := db.HomeAddressOf(spi)
			if a != tt.want || ok != tt.want.IsValid() {
				t.Errorf("HomeAddressOf = %v, %v; want %v", a, ok, tt.want)
			}
		})
	}
}

// TestOutboundSPIForModel checks the remote-address index behind
// OutboundSPIFor against a scan of all SAs, under random Add, Delete,
// Replace and hard expiry.
func TestOutboundSPIForModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	addrs := []netip.Addr{hoa, ha, cn, other, coa}
	randRange := func() AddrRange {
		switch r.IntN(4) {
		case 0:
			return AnyAddr
		case 1:
			a := addrs[r.IntN(len(addrs))]
			return AddrRange{From: a, To: a.Next().Next()}
		}
		return SingleAddr(addrs[r.IntN(len(addrs))])
	}
	randSel := func() Selector {
		s := Selector{Local: randRange(), Remote: randRange()}
		if r.IntN(2) == 0 {
			s.Proto = header.ProtoMobility
			s.LocalPort = MHType(uint8(r.IntN(3)) + mhHoTI)
		}
		return s
	}
	db := New(Options{})
	model := map[uint32]*SA{}
	check := func(f *header.Flow) {
		t.Helper()
		var best *SA
		bestRank := -1
		for _, s := range model {
			for i := range s.sels {
				if s.sels[i].Match(Outbound, f) {
					if rk := specificity(&s.sels[i]); best == nil || rk > bestRank || rk == bestRank && s.spi < best.spi {
						best, bestRank = s, rk
					}
				}
			}
		}
		spi, ok := db.OutboundSPIFor(f)
		if best == nil {
			if ok {
				t.Fatalf("OutboundSPIFor(%+v) = %#x, model: none", *f, spi)
			}
			return
		}
		if !ok || spi != best.spi {
			t.Fatalf("OutboundSPIFor(%+v) = %#x, %v; model %#x", *f, spi, ok, best.spi)
		}
	}
	for op := range 3000 {
		spi := 1 + r.Uint32N(60)
		n := 1 + r.IntN(3)
		sels := make([]Selector, n)
		for i := range sels {
			sels[i] = randSel()
		}
		switch r.IntN(5) {
		case 0, 1:
			if s, err := db.Add(cfg(Outbound, spi, sels...)); err == nil {
				model[spi] = s
			}
		case 2:
			if _, err := db.Delete(Outbound, spi); err == nil {
				delete(model, spi)
			}
		case 3:
			if s, _, err := db.Replace(cfg(Outbound, spi, sels...)); err == nil {
				model[spi] = s
			}
		case 4:
			if s := model[spi]; s != nil {
				s.kill() // hard-expired, not yet reaped
				delete(model, spi)
				if r.IntN(2) == 0 {
					db.reap(s)
				}
			}
		}
		for range 5 {
			src, dst := addrs[r.IntN(len(addrs))], addrs[r.IntN(len(addrs))]
			check(flow(ip6(src, dst, mh(uint8(r.IntN(4))+mhHoTI))))
			check(flow(ip6(src.Next(), dst.Next(), udp(1, 2, 3))))
		}
		if op%500 == 0 {
			// The index holds each live outbound SA exactly where it should.
			n := len(db.wide)
			for _, b := range db.remote {
				n += len(b)
			}
			if n < len(model) {
				t.Fatalf("op %d: remote index holds %d entries for %d SAs", op, n, len(model))
			}
		}
	}
}

// TestOutboundSPIForSuperseded: of two equally specific SAs the lower SPI
// wins until it is superseded by a rekey (Supersede); then the other does,
// whatever its SPI.
func TestOutboundSPIForSuperseded(t *testing.T) {
	db := New(Options{})
	defer db.Close()
	hoa, ha := netip.MustParseAddr("2001:db8:1::100"), netip.MustParseAddr("2001:db8:1::1")
	sel := Selector{Local: SingleAddr(ha), Remote: SingleAddr(hoa), Proto: header.ProtoMobility, LocalPort: MHType(6), RemotePort: MHType(5)}
	for _, spi := range []uint32{0x100, 0x300} {
		if _, err := db.Add(Config{Dir: Outbound, Params: esp.Params{SPI: spi, Algorithm: esp.AES128GCM16, EncKey: make([]byte, 20), Mode: esp.Transport},
			Selectors: []Selector{sel}}); err != nil {
			t.Fatal(err)
		}
	}
	f := &header.Flow{Src: ha, Dst: hoa, Proto: header.ProtoMobility, TypeCode: 6 << 8}
	if spi, ok := db.OutboundSPIFor(f); !ok || spi != 0x100 {
		t.Fatalf("before: %#x %v, want 0x100", spi, ok)
	}
	if !db.Supersede(0x100) || db.Supersede(0x999) {
		t.Fatal("Supersede: the SA exists, 0x999 does not")
	}
	if spi, ok := db.OutboundSPIFor(f); !ok || spi != 0x300 {
		t.Fatalf("after Supersede(0x100): %#x %v, want 0x300", spi, ok)
	}
	if _, err := db.Delete(Outbound, 0x300); err != nil {
		t.Fatal(err)
	}
	if spi, ok := db.OutboundSPIFor(f); !ok || spi != 0x100 {
		t.Fatalf("with only the superseded one left: %#x %v, want 0x100", spi, ok)
	}
}
