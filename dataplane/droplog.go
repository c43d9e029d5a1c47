package dataplane

// Drop warnings: rate-limited log lines that say why packets are dropped,
// naming the SPI, the outer source and the reason (wg show and strongSwan's
// habit), for the drops an operator must be able to explain: unknown SPIs,
// ICV failures, replays, inbound packets outside their SA's selectors, and
// outbound packets an SPD DISCARD policy (or no policy) drops.
//
// The packet path never logs (doc.go, "Hot-path contract"). Each kind of
// warning has one slot, a sample of one dropped packet: a packet path that
// drops such a packet loads the slot's state (one atomic load, on the drop
// path only) and, when the slot is empty, claims it with a CompareAndSwap,
// copies a few words in (no allocation) and marks it full; that first
// sample also wakes the control goroutine with a non-blocking send on a
// one-slot channel. The control goroutine empties a full slot when that
// kind's interval (Config.DropLogInterval) has passed since its last line,
// logs it at Warn with the number of drops of that kind since the previous
// line (counters.warned, added once per batch like the drop counters), and
// otherwise waits on a timer for the time it may. So a flood writes one
// line per kind per interval, and between lines the packet path pays one
// atomic load per such drop (the slot is full until the next line).
// Link-local traffic (DropLinkLocal) is counted, never warned about.

import (
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// dropKind is what a drop warning is about.
type dropKind uint8

const (
	kindUnknownSPI dropKind = iota // DropUnknownSPI
	kindICV                        // esp.DropICV (DropOpen)
	kindReplay                     // esp.DropReplay (DropOpen)
	kindSelector                   // esp.DropSelector (DropOpen)
	kindDiscard                    // DropPolicyDiscard
	kindLoop                       // DropLoop
	numDropKinds
	noKind = numDropKinds
)

// dropKindInfo is a kind's reason (the log field) and message.
var dropKindInfo = [numDropKinds]struct{ reason, msg string }{
	kindUnknownSPI: {"unknown_spi", "ESP packet dropped: no inbound SA has its SPI"},
	kindICV:        {"icv", "ESP packet dropped: authentication failed (ICV): forged, corrupted or sealed with another key"},
	kindReplay:     {"replay", "ESP packet dropped: replayed or left of the anti-replay window"},
	kindSelector:   {"selector", "ESP packet dropped: its inner packet is outside the SA's selectors"},
	kindDiscard:    {"policy_discard", "outbound packet dropped: the SPD discards it"},
	kindLoop: {"loop", "outbound packet dropped: it is our own ESP routed back into the TUN (a routing loop): a TUN route covers " +
		"the address the underlay sends to; keep underlay.fwmark on (policy routing around the TUN) or route that address via the underlay link"},
}

// verdictKind is the warning kind of an inbound ESP verdict, noKind for
// those not warned about (dummy packets, expired SAs, ...).
func verdictKind(v esp.Verdict) dropKind {
	switch v {
	case esp.DropICV:
		return kindICV
	case esp.DropReplay:
		return kindReplay
	case esp.DropSelector:
		return kindSelector
	}
	return noKind
}

// DefaultDropLogInterval is Config.DropLogInterval's default.
const DefaultDropLogInterval = time.Second

// dropSample is one dropped packet as its warning names it. Inbound: spi,
// seq (the ESP header's), src (the outer source) and peer (the peer the
// SA's SPI belongs to, nil: none). Outbound: the inner flow (the SA's
// selectors' view of a packet whose plaintext sad wiped is gone, so
// inbound selector drops name the SA only).
type dropSample struct {
	spi, seq uint32
	src      endpoint.Endpoint
	peer     *peer
	flow     header.Flow
	hasFlow  bool
}

// Slot states.
const (
	slotEmpty uint32 = iota
	slotBusy         // a packet path is writing the sample
	slotFull         // the control goroutine may take it
)

// dropSlot is one kind's sample, handed from the packet path to the
// control goroutine (see above).
type dropSlot struct {
	state atomic.Uint32
	s     dropSample
}

// dropLog is the control goroutine's state for the warnings.
type dropLog struct {
	next [numDropKinds]time.Time // a kind's next line is due then
	last [numDropKinds]uint64    // counters.warned already reported
}

// claimSample returns the sample slot of kind k for the caller to fill and
// then publishSample, or nil when the slot is taken (a sample is waiting
// for its line) or warnings are off. It is for the drop path: one atomic
// load when the slot is full, no allocation, no lock.
func (d *Dataplane) claimSample(k dropKind) *dropSample {
	if d.dropEvery <= 0 {
		return nil
	}
	sl := &d.slots[k]
	if sl.state.Load() != slotEmpty || !sl.state.CompareAndSwap(slotEmpty, slotBusy) {
		return nil
	}
	return &sl.s
}

// publishSample hands the sample claimed for k to the control goroutine
// (at most once per interval per kind: the slot stays full until then).
func (d *Dataplane) publishSample(k dropKind) {
	d.slots[k].state.Store(slotFull)
	select {
	case d.dropKick <- struct{}{}:
	default:
	}
}

// sampleESP samples an inbound ESP packet dropped for kind k.
func (d *Dataplane) sampleESP(k dropKind, spi, seq uint32, src endpoint.Endpoint, p *peer) {
	if s := d.claimSample(k); s != nil {
		*s = dropSample{spi: spi, seq: seq, src: src, peer: p}
		d.publishSample(k)
	}
}

// sampleDiscard samples an outbound packet the SPD discarded.
func (d *Dataplane) sampleDiscard(buf *pkt.Buf) { d.sampleOut(kindDiscard, buf) }

// sampleOut samples an outbound packet dropped for kind k (its flow).
func (d *Dataplane) sampleOut(k dropKind, buf *pkt.Buf) {
	if s := d.claimSample(k); s != nil {
		*s = dropSample{}
		s.hasFlow = header.ParseFlow(buf.Bytes(), &s.flow)
		d.publishSample(k)
	}
}

// logDrops writes the warnings that are due at now and arms due for the
// earliest one that is not yet. It runs on the control goroutine.
func (d *Dataplane) logDrops(now time.Time, due *time.Timer) {
	var next time.Time
	for k := range numDropKinds {
		sl := &d.slots[k]
		if sl.state.Load() != slotFull {
			continue
		}
		if at := d.dl.next[k]; now.Before(at) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		s := sl.s
		sl.state.Store(slotEmpty)
		// Drops of this kind since the last line, the sample included;
		// the packet path adds to the counter after it samples, so the
		// counter may not show the sample yet: then it goes into the
		// next line's count.
		n := int64(d.c.warned[k].Load()) - int64(d.dl.last[k])
		n = max(n, 1)
		d.dl.last[k] += uint64(n)
		d.dl.next[k] = now.Add(d.dropEvery)
		d.warnDrop(k, &s, n-1)
	}
	if !next.IsZero() {
		due.Reset(next.Sub(now))
	}
}

// warnDrop logs one warning: the sample and how many more drops of its
// kind there were since the previous line.
func (d *Dataplane) warnDrop(k dropKind, s *dropSample, more int64) {
	info := dropKindInfo[k]
	fs := make([]zap.Field, 0, 10)
	fs = append(fs, zap.String("reason", info.reason))
	if k == kindDiscard || k == kindLoop {
		if s.hasFlow {
			f := &s.flow
			fs = append(fs, zap.Stringer("src", f.Src), zap.Stringer("dst", f.Dst), zap.Uint8("proto", f.Proto))
			switch {
			case f.Opaque:
			case f.Proto == header.ProtoTCP || f.Proto == header.ProtoUDP || f.Proto == header.ProtoSCTP:
				fs = append(fs, zap.Uint16("sport", f.SrcPort), zap.Uint16("dport", f.DstPort))
			case f.Proto == header.ProtoICMP || f.Proto == header.ProtoICMPv6:
				fs = append(fs, zap.Uint8("icmp_type", uint8(f.TypeCode>>8)), zap.Uint8("icmp_code", uint8(f.TypeCode)))
			case f.Proto == header.ProtoMobility:
				fs = append(fs, zap.Uint8("mh_type", uint8(f.TypeCode>>8)))
			}
		}
	} else {
		fs = append(fs, zap.String("spi", fmt.Sprintf("0x%08x", s.spi)), zap.Stringer("src", s.src), zap.Uint32("seq", s.seq))
		if s.peer != nil {
			fs = append(fs, zap.String("peer", s.peer.name))
		}
	}
	fs = append(fs, zap.Int64("more", more), zap.Duration("interval", d.dropEvery))
	d.log.Warn(info.msg, fs...)
}

// linkLocal reports whether the IP packet p is link-scoped (DropLinkLocal):
// IPv6 from or to fe80::/10 or to a multicast group of interface- or
// link-local scope (ff01::/16, ff02::/16 and their flagged forms, RFC 4291
// §2.7); IPv4 from or to 169.254.0.0/16, or to 224.0.0.0/24 or
// 255.255.255.255. It runs only for packets the SPD discards.
func linkLocal(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	switch p[0] >> 4 {
	case 6:
		if len(p) < header.IPv6HeaderLen {
			return false
		}
		src, dst := p[8:24], p[24:40]
		ll := func(a []byte) bool { return a[0] == 0xfe && a[1]&0xc0 == 0x80 }
		mcastLink := dst[0] == 0xff && dst[1]&0x0f <= 2
		return ll(src) || ll(dst) || mcastLink
	case 4:
		if len(p) < header.IPv4MinHeaderLen {
			return false
		}
		src, dst := p[12:16], p[16:20]
		ll := func(a []byte) bool { return a[0] == 169 && a[1] == 254 }
		local := dst[0] == 224 && dst[1] == 0 && dst[2] == 0
		bcast := dst[0] == 255 && dst[1] == 255 && dst[2] == 255 && dst[3] == 255
		return ll(src) || ll(dst) || local || bcast
	}
	return false
}
