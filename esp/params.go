package esp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
)

// ErrInvalidParams is wrapped by every error NewOutbound and NewInbound
// return for Params they cannot build an SA from. The caller should fix the
// configuration (or reject the IKE proposal); retrying cannot help.
var ErrInvalidParams = errors.New("esp: invalid SA parameters")

// maxSeq is the last sequence number an SA may send: 2^32-1, or 2^64-1
// with ESN (RFC 4303 §3.3.3: the counter must not cycle).
func maxSeq(esn bool) uint64 {
	if esn {
		return math.MaxUint64
	}
	return math.MaxUint32
}

// normalize checks p and returns the copy the SA keeps: tunnel addresses
// unmapped (an IPv4-mapped IPv6 address names the IPv4 outer header),
// ReplayWindow resolved.
func (p Params) normalize() (Params, error) {
	bad := func(format string, args ...any) (Params, error) {
		return Params{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...)
	}
	if p.SPI == 0 {
		return bad("SPI 0 is reserved for local use and never sent (RFC 4303 §2.1)")
	}
	if !p.Algorithm.valid() {
		return bad("algorithm %v", p.Algorithm)
	}
	if n := p.Algorithm.EncKeyLen(); len(p.EncKey) != n {
		if n == 0 {
			return bad("%v takes no enc_key (NULL encryption, RFC 2410), got %d bytes", p.Algorithm, len(p.EncKey))
		}
		return bad("%v needs a %d-byte enc_key (incl. any salt), got %d", p.Algorithm, n, len(p.EncKey))
	}
	if n := p.Algorithm.AuthKeyLen(); len(p.AuthKey) != n {
		if n == 0 {
			return bad("%v takes no auth_key (combined mode: the enc_key also protects integrity), got %d bytes", p.Algorithm, len(p.AuthKey))
		}
		return bad("%v needs a %d-byte auth_key, got %d (RFC 4868 §2.1.1, RFC 2404 §3)", p.Algorithm, n, len(p.AuthKey))
	}
	switch p.Mode {
	case Transport:
		p.TunnelSrc, p.TunnelDst = netip.Addr{}, netip.Addr{}
	case Tunnel:
		src, dst := p.TunnelSrc.Unmap().WithZone(""), p.TunnelDst.Unmap().WithZone("")
		if !src.IsValid() || !dst.IsValid() {
			return bad("tunnel mode needs TunnelSrc and TunnelDst")
		}
		if src.Is4() != dst.Is4() {
			return bad("tunnel endpoints %v and %v are of different families", src, dst)
		}
		if src.IsUnspecified() || dst.IsUnspecified() {
			return bad("unspecified tunnel endpoint %v -> %v", src, dst)
		}
		p.TunnelSrc, p.TunnelDst = src, dst
	default:
		return bad("mode %v", p.Mode)
	}
	if p.DF > DFClear {
		return bad("DF %d", p.DF)
	}
	if p.ReplayWindow == 0 {
		p.ReplayWindow = DefaultReplayWindow
	}
	if p.ReplayWindow < MinReplayWindow || p.ReplayWindow > MaxReplayWindow {
		return bad("replay window %d outside [%d, %d] (RFC 4303 §3.4.3)", p.ReplayWindow, MinReplayWindow, MaxReplayWindow)
	}
	if p.NoReplay && p.ESN {
		// Without a window the receiver cannot infer seq_hi (RFC 4303
		// App. A2.2), and §3.3.3 says it SHOULD NOT negotiate ESN.
		return bad("ESN needs anti-replay (RFC 4303 §3.3.3)")
	}
	if p.InitialSeq > maxSeq(p.ESN) {
		return bad("InitialSeq %d beyond the 32-bit sequence space (no ESN)", p.InitialSeq)
	}
	return p, nil
}

// withoutKeys returns p with the key fields cleared, for the Params
// accessors. SeqReserve is cleared too: it is a starting bound that
// SetSeqReserve moves, not part of the transform.
func (p Params) withoutKeys() Params {
	p.EncKey, p.AuthKey = nil, nil
	p.SeqReserve = 0
	return p
}
