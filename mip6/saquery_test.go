package mip6_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/sad"
)

// *sad.DB is the SAQuerier the daemon hands to mip6 (a test-only import:
// the deps test keeps sad out of mip6 itself).
var _ mip6.SAQuerier = (*sad.DB)(nil)

// TestSAQuerierRFC4877 builds the SAs of RFC 4877 §6 for one MN, as the MN
// and as the HA hold them, and asks the questions the tunnel layer asks:
// which SPI carries BUs (DR-3) and BAcks, and which home address an
// inbound SPI belongs to (DR-4, DR-7).
func TestSAQuerierRFC4877(t *testing.T) {
	hoa := netip.MustParseAddr("2001:db8:1::100")
	ha := netip.MustParseAddr("2001:db8:1::1")
	key := bytes.Repeat([]byte{7}, 32)
	p := func(spi uint32, mode esp.Mode, src, dst netip.Addr) esp.Params {
		return esp.Params{SPI: spi, Algorithm: esp.NULLSHA256, AuthKey: key, Mode: mode, TunnelSrc: src, TunnelDst: dst}
	}
	hoaR, haR := sad.SingleAddr(hoa), sad.SingleAddr(ha)
	const sa1, sa2, sa7, sa8 = 0x1001, 0x1002, 0x1007, 0x1008
	add := func(db *sad.DB, dir sad.Direction, params esp.Params, sel sad.Selector) {
		t.Helper()
		if _, err := db.Add(sad.Config{Dir: dir, Params: params, Selectors: []sad.Selector{sel}}); err != nil {
			t.Fatal(err)
		}
	}

	// The MN: SA1 out (BU), SA2 in (BAck), SA7 out / SA8 in (payload, tunnel).
	mn := sad.New(sad.Options{})
	defer mn.Close()
	add(mn, sad.Outbound, p(sa1, esp.Transport, hoa, ha), sad.Selector{Local: hoaR, Remote: haR, Proto: header.ProtoMobility, LocalPort: sad.MHType(mip6.MHTypeBU)})
	add(mn, sad.Inbound, p(sa2, esp.Transport, ha, hoa), sad.Selector{Local: hoaR, Remote: haR, Proto: header.ProtoMobility, RemotePort: sad.MHType(mip6.MHTypeBA)})
	add(mn, sad.Outbound, p(sa7, esp.Tunnel, hoa, ha), sad.Selector{Local: hoaR})
	add(mn, sad.Inbound, p(sa8, esp.Tunnel, ha, hoa), sad.Selector{Local: hoaR})

	if spi, ok := mip6.BUSPI(mn, hoa, ha); !ok || spi != sa1 {
		t.Errorf("MN BUSPI = %#x %v, want SA1 %#x (SA7 also matches a BU but is less specific)", spi, ok, sa1)
	}
	if _, ok := mip6.BUSPI(mn, netip.MustParseAddr("2001:db8:1::200"), ha); ok {
		t.Error("BUSPI for a home address with no SA1 found one")
	}

	// The HA: the mirror.
	haDB := sad.New(sad.Options{})
	defer haDB.Close()
	add(haDB, sad.Inbound, p(sa1, esp.Transport, hoa, ha), sad.Selector{Local: haR, Remote: hoaR, Proto: header.ProtoMobility, RemotePort: sad.MHType(mip6.MHTypeBU)})
	add(haDB, sad.Outbound, p(sa2, esp.Transport, ha, hoa), sad.Selector{Local: haR, Remote: hoaR, Proto: header.ProtoMobility, LocalPort: sad.MHType(mip6.MHTypeBA)})
	add(haDB, sad.Inbound, p(sa7, esp.Tunnel, hoa, ha), sad.Selector{Remote: hoaR})
	add(haDB, sad.Outbound, p(sa8, esp.Tunnel, ha, hoa), sad.Selector{Remote: hoaR})

	if spi, ok := mip6.BAckSPI(haDB, ha, hoa); !ok || spi != sa2 {
		t.Errorf("HA BAckSPI = %#x %v, want SA2 %#x", spi, ok, sa2)
	}
	for _, spi := range []uint32{sa1, sa7} {
		if got, ok := haDB.HomeAddressOf(spi); !ok || got != hoa {
			t.Errorf("HA HomeAddressOf(%#x) = %v %v, want %v", spi, got, ok, hoa)
		}
	}
	if _, ok := haDB.HomeAddressOf(0x9999); ok {
		t.Error("HomeAddressOf an unknown SPI answered")
	}
}
