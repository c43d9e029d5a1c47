package mip6

import (
	"net/netip"
	"sync"
)

// DefaultNATRecords is the slot count NewNATRecords uses for n <= 0.
const DefaultNATRecords = 1024

// NATRecords is DR-4 (draft-laganier-mext-dsmipv6-ipsec-00; ARCHITECTURE.md,
// the unmodified-IPsec rules; RFC 5555 §4.2, §5.2.1): the HA's UDP
// decapsulator records the outer IPv4 source address and UDP source port
// of each packet under its clear-text ESP (SPI, sequence number) before
// IPsec sees it; once IPsec verified a BU and the binding code accepted
// it, Take fetches the record of exactly that packet, NATDetected compares
// it with the IPv4 CoA option, and the address and port go into the
// binding (CareOf.Endpoint) and drive the BA and DR-1.
//
// The table is direct-mapped: a fixed array of slots indexed by a hash of
// (SPI, seq), each holding at most one record. Memory is bounded by
// construction, records for SPIs nobody asks about are simply overwritten
// by later packets, and Record never allocates. A collision loses the
// older record: Take then reports false and the caller handles the BU as
// if it had no outer address (it is retransmitted, RFC 6275 §11.8). Each
// slot has its own mutex, so concurrent workers almost never contend.
//
// The recorded address is unauthenticated (RFC 5555 §5 man-in-the-middle
// caveat); keying by (SPI, seq) only ties it to the packet that IPsec then
// authenticated (DR-4). Only accepted BUs may use it (DR-9).
//
// The zero NATRecords is not usable; call NewNATRecords. Safe for
// concurrent use.
type NATRecords struct {
	mask  uint32
	slots []natSlot
}

type natSlot struct {
	mu   sync.Mutex
	used bool
	spi  uint32
	seq  uint32
	src  netip.AddrPort
}

// NewNATRecords returns a table of n slots, rounded up to a power of two
// (DefaultNATRecords when n <= 0, at most 1<<20).
func NewNATRecords(n int) *NATRecords {
	if n <= 0 {
		n = DefaultNATRecords
	}
	n = min(n, 1<<20)
	size := 1
	for size < n {
		size <<= 1
	}
	return &NATRecords{mask: uint32(size - 1), slots: make([]natSlot, size)}
}

// Cap is the number of slots: the most records the table holds.
func (t *NATRecords) Cap() int { return len(t.slots) }

func (t *NATRecords) slot(spi, seq uint32) *natSlot {
	h := spi*0x9e3779b1 ^ seq*0x85ebca6b
	h ^= h >> 16
	h *= 0x7feb352d
	h ^= h >> 15
	return &t.slots[h&t.mask]
}

// Record stores src, the outer source of the UDP-encapsulated ESP packet
// (spi, seq), replacing whatever the slot held. Per packet; allocation-free.
func (t *NATRecords) Record(spi, seq uint32, src netip.AddrPort) {
	s := t.slot(spi, seq)
	s.mu.Lock()
	s.used, s.spi, s.seq, s.src = true, spi, seq, src
	s.mu.Unlock()
}

// Take returns and removes the record of packet (spi, seq), if it is still
// there. Call it after IPsec verified that packet.
func (t *NATRecords) Take(spi, seq uint32) (netip.AddrPort, bool) {
	s := t.slot(spi, seq)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.used || s.spi != spi || s.seq != seq {
		return netip.AddrPort{}, false
	}
	src := s.src
	s.used, s.src = false, netip.AddrPort{}
	return src, true
}

// Len counts the records held (O(Cap); tests and metrics, not per packet).
func (t *NATRecords) Len() int {
	n := 0
	for i := range t.slots {
		s := &t.slots[i]
		s.mu.Lock()
		if s.used {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// NATDetected reports whether a NAT lies between the MN and the HA (RFC
// 5555 §4.2): the outer IPv4 source address the BU
// arrived from (rec, from Take) differs from the address in the BU's IPv4
// Care-of Address option. It is false when either is missing or not IPv4:
// without both there is nothing to compare. The port plays no part: only
// the address tells whether the MN's own V4CoA survived the path.
func NATDetected(rec netip.AddrPort, ipv4CoA netip.Addr) bool {
	a, c := rec.Addr().Unmap(), ipv4CoA.Unmap()
	if !a.Is4() || !c.Is4() {
		return false
	}
	return a != c
}
