package sad

// The query API of the mobility layer (draft-laganier-mext-dsmipv6-ipsec-00;
// ARCHITECTURE.md, the unmodified-IPsec rules). The IPsec engine stays
// unmodified: mip6 never changes an SA, it only asks the SAD which SPI
// protects a kind of packet and which address an SPI's selectors name, and
// matches SPIs in clear-text ESP headers against the answers. mip6 declares
// the interface it needs (an SAQuerier) and *DB satisfies it:
//
//   - MN, DR-3 (send the BU from the new CoA): the BU SA's SPI is
//     OutboundSPIFor(&header.Flow{Src: HoA, Dst: HA, Proto: MH,
//     TypeCode: BU<<8}) (SA1 of RFC 4877 §6, selector MH type BU). ESP
//     packets leaving with that SPI are BUs, whatever their payload.
//   - HA, DR-4 (NAT detection): for an arriving UDP-encapsulated ESP packet
//     with SPI x, HomeAddressOf(x) says which HoA the inbound BU SA pins
//     (its selectors name remote = HoA, RFC 4877 §4.2), and SelectorsOf
//     (Inbound, x) whether it is a BU SA (MH, remote type BU). After
//     decryption the BU's IPv4 CoA option is compared with the outer
//     address recorded for that SPI.
//   - HA, DR-4 (BA back through the NAT): the BA SA's SPI is
//     OutboundSPIFor(&header.Flow{Src: HA, Dst: HoA, Proto: MH,
//     TypeCode: BAck<<8}).
//   - DR-7: the HA accepts a BU only from the SA whose selectors pin that
//     HoA; the selector check in SA.Open enforces it (RFC 4301 §5.2).
//
// These calls are control-plane: OutboundSPIFor takes the DB's mutex and
// scans the outbound SAs whose selectors pin the packet's destination plus
// those with a wider remote selector; SelectorsOf and HomeAddressOf are
// lock-free SPI lookups that copy the selectors.

import (
	"net/netip"
	"slices"

	"github.com/mipsec/mipsec/internal/header"
)

// OutboundSPIFor returns the SPI of the live outbound SA that protects a
// packet with the selector fields f (home-address form, header.Flow), and
// false when no outbound SA has a selector matching f in direction
// Outbound (Selector.Match).
//
// SAs overlap where SPD entries do: on an MN, SA7 (HoA -> any, any
// protocol; RFC 4877 §6.4) matches a BU as well as SA1
// does. The SPD settles that by its order, which the SAD does not have, so
// among matching SAs the most specific one wins, then the lowest SPI. A
// selector is more specific when, compared in this order, it names a
// protocol (not ANY), names more port or type values (not ANY), names a
// single remote address (over a range, over ANY), names a single local
// address (over a range, over ANY); among equally specific ones an SA a
// rekey superseded (Supersede) loses. The answer depends on the SAs only,
// never on the order they were added in.
func (db *DB) OutboundSPIFor(f *header.Flow) (spi uint32, ok bool) {
	if f == nil {
		return 0, false
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	var best *SA
	var bestRank int
	consider := func(s *SA) {
		if s.Expired() {
			return
		}
		rank := -1
		for i := range s.sels {
			if sel := &s.sels[i]; sel.Match(Outbound, f) {
				rank = max(rank, specificity(sel))
			}
		}
		if rank < 0 {
			return
		}
		// Among equally specific SAs the one a rekey put in place of
		// another (Supersede) wins: it is the one the SPD now uses.
		if best == nil || rank > bestRank || rank == bestRank && (best.superseded && !s.superseded ||
			best.superseded == s.superseded && s.spi < best.spi) {
			best, bestRank = s, rank
		}
	}
	for _, s := range db.remote[f.Dst] {
		consider(s)
	}
	for _, s := range db.wide {
		consider(s)
	}
	if best == nil {
		return 0, false
	}
	return best.spi, true
}

// Supersede marks the outbound SA spi as replaced by a rekey (RFC 7296
// §2.8): it goes on sealing whatever still finds it until it is deleted,
// but OutboundSPIFor prefers any equally specific SA over it, so that the
// query names the SA the SPD already points at. It reports whether the SA
// exists.
func (db *DB) Supersede(spi uint32) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	s := live(db.out.get(spi))
	if s == nil {
		return false
	}
	s.superseded = true
	return true
}

// specificity ranks a selector for OutboundSPIFor: higher is narrower.
func specificity(s *Selector) int { return s.Specificity() }

// Specificity ranks s among overlapping selectors, higher for narrower:
// one that names a protocol, then port or type values, then a single
// remote address (over a range, over ANY), then a single local address.
// OutboundSPIFor picks the most specific SA with it; an SPD whose entries
// come from a key manager can order them with it (RFC 4301 §4.4.1: the
// SPD is ordered, and a narrower entry must come before a wider one that
// would shadow it).
func (s *Selector) Specificity() int {
	rank := 0
	if s.Proto != ProtoAny {
		rank += 1000
	}
	if s.LocalPort.Match != PortAny {
		rank += 100
	}
	if s.RemotePort.Match != PortAny {
		rank += 100
	}
	return rank + 10*addrClass(s.Remote) + addrClass(s.Local)
}

// addrClass is 2 for a single address, 1 for a wider range, 0 for ANY.
func addrClass(r AddrRange) int {
	switch {
	case r.IsAny():
		return 0
	case r.From == r.To:
		return 2
	}
	return 1
}

// SelectorsOf returns a copy of the selectors of the live SA with this
// direction and SPI (RFC 4301 §4.4.2), or false.
func (db *DB) SelectorsOf(dir Direction, spi uint32) ([]Selector, bool) {
	s := db.Lookup(dir, spi)
	if s == nil {
		return nil, false
	}
	return slices.Clone(s.sels), true
}

// HomeAddressOf returns the single remote address that all selectors of
// the live inbound SA spi name: on a home agent, the home address that an
// MN's SAs are bound to (RFC 4877 §4.2: SA1's selectors pin remote = HoA,
// an AddrRange with From == To). ok is false when there is no such SA or
// its selectors do not all name the same single remote address.
func (db *DB) HomeAddressOf(spi uint32) (netip.Addr, bool) {
	s := db.Inbound(spi)
	if s == nil {
		return netip.Addr{}, false
	}
	return singleRemote(s.sels)
}

// singleRemote returns the one remote address every selector pins.
func singleRemote(sels []Selector) (netip.Addr, bool) {
	var a netip.Addr
	for i := range sels {
		r := sels[i].Remote
		if !r.From.IsValid() || r.From != r.To {
			return netip.Addr{}, false
		}
		if a.IsValid() && a != r.From {
			return netip.Addr{}, false
		}
		a = r.From
	}
	return a, a.IsValid()
}

// linkRemote adds an outbound SA to the OutboundSPIFor index: under each
// single remote address its selectors pin, or to db.wide when one of them
// does not pin one. With db.mu held.
func (db *DB) linkRemote(s *SA) {
	if s.dir != Outbound {
		return
	}
	var keys []netip.Addr
	for i := range s.sels {
		r := s.sels[i].Remote
		if !r.From.IsValid() || r.From != r.To {
			s.wideIdx = len(db.wide)
			db.wide = append(db.wide, s)
			return
		}
		if !slices.Contains(keys, r.From) {
			keys = append(keys, r.From)
		}
	}
	s.remoteKeys = keys
	for _, k := range keys {
		db.remote[k] = append(db.remote[k], s)
	}
}

// unlinkRemote undoes linkRemote. With db.mu held.
func (db *DB) unlinkRemote(s *SA) {
	if i := s.wideIdx; i >= 0 {
		last := len(db.wide) - 1
		db.wide[i] = db.wide[last]
		db.wide[i].wideIdx = i
		db.wide[last] = nil
		db.wide = db.wide[:last]
		s.wideIdx = -1
	}
	for _, k := range s.remoteKeys {
		b := db.remote[k]
		if j := slices.Index(b, s); j >= 0 {
			b[j] = b[len(b)-1]
			b[len(b)-1] = nil
			b = b[:len(b)-1]
		}
		if len(b) == 0 {
			delete(db.remote, k)
		} else {
			db.remote[k] = b
		}
	}
	s.remoteKeys = nil
}
