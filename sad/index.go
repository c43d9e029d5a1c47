package sad

// The SPI index: one oatable.Table from SPI to *SA per direction (RFC 4301
// §4.1: an inbound SA is found by SPI alone). get is the packet path:
// lock-free and allocation-free; every other method runs under the DB's
// mutex. A reader still on a table that a rebuild replaced sees a slightly
// stale snapshot, which the SA's own dead flag makes harmless (a deleted SA
// answers DropExpired).
//
// The hash is keyed with a random per-table seed, so neither sequential
// SPIs nor SPIs chosen by a peer (RFC 4303 §2.1: the receiver picks the
// SPI, so our outbound SPIs come from the peer) pile up in one probe chain.

import "github.com/mipsec/mipsec/internal/oatable"

func spiHash(spi uint32, seed uint64) uint64 { return oatable.Mix64(uint64(spi) ^ seed) }

// index maps SPIs to SAs. get is safe for concurrent use with everything;
// all other methods must be called with the owning DB's mu held.
type index struct {
	t    oatable.Table[uint32, SA]
	live int // SAs in the table: t.Len(), for the DB's Len and List
}

func (x *index) init() {
	x.t.Init(spiHash)
	x.live = 0
}

// get returns the SA stored for spi, or nil. Lock-free, allocation-free.
func (x *index) get(spi uint32) *SA { return x.t.Get(spi) }

// find returns the SA stored for spi, or nil, and a handle to pass to
// replaceAt or removeAt when the SA is not nil.
func (x *index) find(spi uint32) (int, *SA) { return int(spi), x.t.Get(spi) }

// insert adds s, whose SPI must not be in the table (check with find).
func (x *index) insert(s *SA) {
	if x.t.Put(s.spi, s) != nil {
		panic("sad: index insert of an SPI already present")
	}
	x.live = x.t.Len()
}

// replaceAt stores s in place of the SA that find returned for s's SPI
// with handle i.
func (x *index) replaceAt(i int, s *SA) {
	if uint32(i) != s.spi || x.t.Put(s.spi, s) == nil {
		panic("sad: index replace of an SPI not present")
	}
}

// removeAt deletes the SA that find returned with handle i.
func (x *index) removeAt(i int) {
	x.t.Delete(uint32(i))
	x.live = x.t.Len()
}

// each calls f for every SA in the table, in slot order.
func (x *index) each(f func(*SA)) {
	for _, s := range x.t.All() {
		f(s)
	}
}

// reset empties the index.
func (x *index) reset() {
	x.t.Reset()
	x.live = 0
}
