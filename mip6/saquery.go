package mip6

import (
	"net/netip"

	"github.com/mipsec/mipsec/internal/header"
)

// SAQuerier is all the mobility layer may ask of the SAD: the
// "DSMIPv6-IPsec API" of draft-laganier-mext-dsmipv6-ipsec-00. mip6
// declares it and *sad.DB satisfies it, so mip6 never imports the engine
// and never touches SA state (ARCHITECTURE.md; the IPsec module stays
// unmodified).
type SAQuerier interface {
	// OutboundSPIFor returns the SPI of the outbound SA that protects a
	// packet with these selector fields (home-address form).
	OutboundSPIFor(f *header.Flow) (spi uint32, ok bool)
	// HomeAddressOf returns the home address the selectors of the
	// inbound SA spi are bound to (RFC 4877 §4.2).
	HomeAddressOf(spi uint32) (hoa netip.Addr, ok bool)
}

// BUSPI returns the SPI of the outbound SA that protects Binding Updates
// from hoa to ha: SA1 of RFC 4877 §6 (transport mode, MH type BU). The MN's
// tunnel layer sends packets with this SPI from the new care-of address
// and everything else from the registered one (DR-3).
func BUSPI(q SAQuerier, hoa, ha netip.Addr) (uint32, bool) {
	return q.OutboundSPIFor(&header.Flow{Src: hoa, Dst: ha, Proto: header.ProtoMobility, TypeCode: uint16(MHTypeBU) << 8})
}

// BAckSPI is BUSPI for the HA's Binding Acknowledgements to hoa (SA2, RFC
// 4877 §6): the HA sends them to the care-of address the BU came from,
// also when the BU was rejected (RFC 5555 §5.1, DR-4).
func BAckSPI(q SAQuerier, ha, hoa netip.Addr) (uint32, bool) {
	return q.OutboundSPIFor(&header.Flow{Src: ha, Dst: hoa, Proto: header.ProtoMobility, TypeCode: uint16(MHTypeBA) << 8})
}
