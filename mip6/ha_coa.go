package mip6

import (
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The care-of addresses the home agent refuses (RFC 6275 §9.5.1, §10.3.1;
// RFC 5555 §4.5 for an IPv4 CoA). A binding to any of them would send the
// home address's traffic somewhere it must not go: to the home agent
// itself, into another binding's tunnel (or around in the home agent's
// own), or to a group, a link or nowhere. Such a BU is answered with
// status 174 "Invalid Care-of Address" (RFC 6275 §6.1.8; RFC 5555 §3.2,
// §4.5 define no status of their own for a bad IPv4 CoA, so the IPv6 one
// is used for both), no binding changes, and HAStats.BadCoA counts it.
//
// A BU whose care-of address is its own home address is not refused: it
// de-registers (RFC 6275 §9.5.1, §10.3.2). Nothing is bound by a
// de-registration, so its care-of address is not checked either.

// coaRefusal says why the home agent refuses c as a care-of address for
// the binding of home address hoa ("" when it does not). hoa4 is the IPv4
// home address the BU asks for (invalid: none). c == hoa is the caller's
// business (a de-registration, or RFC 5648 §5.6's home interface).
// Signaling goroutine only: it reads the binding cache.
func (ha *HomeAgent) coaRefusal(c, hoa, hoa4 netip.Addr) string {
	if !c.IsValid() {
		return ""
	}
	if why := coaScope(c); why != "" {
		return why
	}
	c = c.Unmap()
	if ha.isOwnAddress(c) {
		return "an address of the home agent"
	}
	if c.Is4() {
		if c == hoa4 {
			return "the IPv4 home address the BU registers"
		}
		if b, ok := ha.cache.LookupV4(c); ok {
			return "the IPv4 home address of " + b.HoA.String()
		}
		return ""
	}
	if c == hoa {
		return ""
	}
	if _, ok := ha.cache.Lookup(c); ok {
		return "the home address of another binding"
	}
	return ""
}

// keepsCoA reports whether the binding reg leaves behind would hold care-of
// address a: one reg registers, or, without Replace, one of the current
// binding's that reg's BIDs do not replace (RFC 5648 §5.3).
func (ha *HomeAgent) keepsCoA(reg Registration, a netip.Addr) bool {
	for _, c := range reg.CoAs {
		if c.Addr.Unmap() == a {
			return true
		}
	}
	old, ok := ha.cache.Lookup(reg.HoA)
	if !ok || reg.Replace {
		return false
	}
	for _, c := range old.CoAs {
		if _, replaced := findBID(reg.CoAs, c.BID); !replaced && c.Addr == a {
			return true
		}
	}
	return false
}

// coaScope refuses addresses that are not unicast and global enough to
// tunnel to (RFC 6275 §9.5.1: a care-of address is a unicast routable
// address): unspecified, multicast, loopback, link-local (IPv6 fe80::/10,
// IPv4 169.254/16, RFC 3927), anything with a zone, and for IPv4 also
// 0/8 ("this network", RFC 1122 §3.2.1.3) and 240/4, which holds the
// limited broadcast 255.255.255.255 (RFC 1122 §3.2.1.3; reserved, RFC
// 1112 §4).
func coaScope(c netip.Addr) string {
	if c.Zone() != "" {
		return "a scoped address"
	}
	c = c.Unmap()
	switch {
	case c.IsUnspecified():
		return "unspecified"
	case c.IsMulticast():
		return "multicast"
	case c.IsLoopback():
		return "loopback"
	case c.IsLinkLocalUnicast():
		return "link-local"
	case c.Is4():
		switch b := c.As4(); {
		case b == [4]byte{255, 255, 255, 255}:
			return "the limited broadcast address"
		case b[0] == 0:
			return "in 0.0.0.0/8 (this network)"
		case b[0] >= 240:
			return "in 240.0.0.0/4 (reserved)"
		}
	}
	return ""
}

// isOwnAddress reports whether a is one of the home agent's own addresses:
// HAConfig.Address, AddressV4 or LocalAddrs.
func (ha *HomeAgent) isOwnAddress(a netip.Addr) bool {
	for _, o := range ha.own {
		if o == a {
			return true
		}
	}
	return false
}

// ownAddresses is the home agent's own addresses from cfg, unmapped,
// without zones and duplicates.
func ownAddresses(cfg *HAConfig) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		if !a.IsValid() {
			return
		}
		a = a.Unmap().WithZone("")
		for _, o := range out {
			if o == a {
				return
			}
		}
		out = append(out, a)
	}
	add(cfg.Address)
	add(cfg.AddressV4)
	for _, a := range cfg.LocalAddrs {
		add(a)
	}
	return out
}

// Rejection logging is rate-limited per reason: signaling is rate-limited
// per home address (Deliver), but the number of home addresses, and so
// the rate of rejected messages, is not the operator's to choose.
const (
	rejLogBurst    = 5
	rejLogInterval = time.Second
)

// logLimiter is a token bucket per rejection reason for the warning that
// reject logs: rejLogBurst at once, then one per rejLogInterval. What it
// holds back is counted and reported with the next line of that reason
// ("suppressed"). The counters are never limited.
type logLimiter struct {
	mu sync.Mutex
	b  [numReasons]logBucket
}

type logBucket struct {
	bucket
	suppressed uint64
	started    bool
}

// allow takes a token for reason r at now; when it returns true,
// suppressed is how many lines of r were held back since the last one.
func (l *logLimiter) allow(r haReason, now time.Time) (ok bool, suppressed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &l.b[r]
	if !b.started {
		b.started, b.tokens, b.last = true, rejLogBurst, now
	}
	if !b.take(now, float64(time.Second)/float64(rejLogInterval), rejLogBurst) {
		b.suppressed++
		return false, 0
	}
	s := b.suppressed
	b.suppressed = 0
	return true, s
}

// addrPortField logs ap under key, or nothing when ap is not valid (a
// packet with no outer endpoint, no NAT endpoint): zap would write
// "invalid AddrPort".
func addrPortField(key string, ap netip.AddrPort) zap.Field {
	if !ap.IsValid() {
		return zap.Skip()
	}
	return zap.Stringer(key, ap)
}
