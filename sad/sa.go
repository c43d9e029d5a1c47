package sad

import (
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// SA is one unidirectional security association, a SAD entry (RFC 4301
// §4.4.2): the ESP transform (esp.Outbound or esp.Inbound), the selectors
// the SA was created for, its lifetimes and its counters.
//
// All methods are safe for concurrent use. Seal, Open and their batch
// forms never allocate and return a verdict; every verdict other than
// esp.OK is counted in Stats().Drops.
//
// An SA dies when its hard lifetime is reached or it is deleted or
// replaced: from then on Seal and Open answer esp.DropExpired, its keys are
// destroyed once the packets already inside esp have left, and the DB no
// longer returns it. A dead SA's accessors and Stats keep working.
type SA struct {
	// The first two cache lines hold everything a packet touches, the
	// lookup included: the written counters and the read-only words next
	// to each other, since every packet writes the counters anyway (a
	// separate read-only line would be one more miss, not less sharing).

	// state counts the goroutines inside Seal or Open past the liveness
	// check (they may be using the esp transform), with deadBit set once
	// the SA is dead. state, pkts, bytes and trig* change; the words
	// from hardPkts to db are immutable after Add.
	state atomic.Int64
	pkts  atomic.Uint64
	bytes atomic.Uint64
	// Lifetime thresholds: the soft limits until the soft event fires,
	// then the hard ones (MaxUint64 for none).
	trigPkts, trigBytes atomic.Uint64
	hardPkts            uint64 // Hard.Packets, MaxUint64 for none
	hardBytes           uint64 // Hard.Bytes, MaxUint64 for none
	spi                 uint32
	dir                 Direction
	out                 *esp.Outbound
	in                  *esp.Inbound
	sels                []Selector
	db                  *DB

	// Immutable after Add, control plane.
	name    string
	params  esp.Params // normalized by esp, keys removed
	life    Lifetime
	created time.Time

	// Guarded by db.mu.
	linked     bool           // in the SPI index
	superseded bool           // Supersede: a rekey's new SA took its place
	wideIdx    int            // position in db.wide, or -1
	remoteKeys []netip.Addr   // db.remote buckets holding this SA
	timers     [2]*time.Timer // soft, hard

	// Guarded by db.events.mu.
	softFired, hardFired bool

	destroyOnce sync.Once
	keyFP       [32]byte // keyFingerprint of the keys, for Replace
	sharedESP   bool     // esp state handed to a successor (db.mu)
	// next is the SA that Replace swapped in for this one: a packet that
	// found this SA just before the swap goes there instead of dropping.
	next atomic.Pointer[SA]

	drops [esp.NumVerdicts]atomic.Uint64
}

const deadBit = math.MinInt64

// Stats is a snapshot of an SA's counters.
type Stats struct {
	// Packets and Bytes count the packets Seal sealed or Open delivered
	// (verdict esp.OK) and their plaintext bytes (see Limits.Bytes). A
	// packet being processed can be included a moment early.
	Packets, Bytes uint64
	// Drops counts packets by verdict: replay (esp.DropReplay), ICV
	// failures (esp.DropICV), padding errors (esp.DropPadding), dummy
	// packets (esp.DropDummy), selector mismatches (esp.DropSelector),
	// use after the hard lifetime (esp.DropExpired), and the rest.
	// Drops[esp.OK] is always 0.
	Drops [esp.NumVerdicts]uint64
}

// Dropped returns the sum of Drops.
func (st *Stats) Dropped() uint64 {
	var n uint64
	for _, d := range st.Drops {
		n += d
	}
	return n
}

// Stats returns a snapshot of the counters. Each counter is read
// atomically; the snapshot as a whole is not.
func (s *SA) Stats() Stats {
	var st Stats
	st.Packets = s.pkts.Load()
	st.Bytes = s.bytes.Load()
	for i := range s.drops {
		st.Drops[i] = s.drops[i].Load()
	}
	return st
}

// SPI returns the SA's SPI.
func (s *SA) SPI() uint32 { return s.spi }

// Dir returns the SA's direction.
func (s *SA) Dir() Direction { return s.dir }

// Name returns the SA's optional name.
func (s *SA) Name() string { return s.name }

// Mode returns the IPsec mode (RFC 4301 §4.4.2 "IPsec protocol mode").
func (s *SA) Mode() esp.Mode { return s.params.Mode }

// Params returns the SA's ESP parameters as esp normalized them
// (ReplayWindow resolved, tunnel addresses unmapped), without the keys:
// EncKey and AuthKey are nil.
func (s *SA) Params() esp.Params { return s.params }

// Lifetime returns the SA's lifetime limits.
func (s *SA) Lifetime() Lifetime { return s.life }

// Created returns the time the SA was added; time lifetimes run from it.
func (s *SA) Created() time.Time { return s.created }

// Selectors returns a copy of the selectors the SA was created for.
func (s *SA) Selectors() []Selector { return slices.Clone(s.sels) }

// Seq returns, for an outbound SA, the last sequence number handed out
// (persist it and pass it as esp.Params.InitialSeq to restart the SA
// without repeating sequence numbers, RFC 4303 §3.3.3); for an inbound
// SA, the highest authenticated sequence number (RFC 4303 §3.4.3), 0 with
// anti-replay off.
func (s *SA) Seq() uint64 {
	if s.out != nil {
		return s.out.Seq()
	}
	return s.in.ReplayHighest()
}

// SetSeqReserve bounds the sequence numbers an outbound SA may use (see
// esp.Outbound.SetSeqReserve): the owner persists a reservation, then
// raises the bound, so no number is used before it is durable. It does
// nothing on an inbound SA.
func (s *SA) SetSeqReserve(upTo uint64) {
	if s.out != nil {
		s.out.SetSeqReserve(upTo)
	}
}

// Expired reports whether the SA is dead: hard-expired, deleted or
// replaced.
func (s *SA) Expired() bool { return s.state.Load() < 0 }

func (s *SA) event(hard bool, r Reason) Event {
	return Event{SA: s, SPI: s.spi, Dir: s.dir, Name: s.name, Hard: hard, Reason: r}
}

// matches reports whether f matches any of the SA's selectors in the SA's
// direction.
func (s *SA) matches(f *header.Flow) bool {
	for i := range s.sels {
		if s.sels[i].Match(s.dir, f) {
			return true
		}
	}
	return false
}

// enter registers a goroutine about to use the esp transform; false means
// the SA is dead.
func (s *SA) enter() bool {
	if s.state.Add(1) < 0 {
		s.state.Add(-1)
		return false
	}
	return true
}

func (s *SA) leave() { s.state.Add(-1) }

// kill marks the SA dead and reports whether this call did it.
func (s *SA) kill() bool { return s.state.Or(deadBit)&deadBit == 0 }

// destroy kills the SA, stops its timers, waits for the goroutines inside
// esp to leave and zeroes the keys. Idempotent. Not on the packet path.
func (s *SA) destroy() {
	s.destroyOnce.Do(func() {
		s.kill()
		for _, t := range s.timers {
			if t != nil {
				t.Stop()
			}
		}
		s.drain()
		if !s.sharedESP {
			s.destroyESP()
		}
	})
}

func (s *SA) destroyESP() {
	if s.out != nil {
		s.out.Destroy()
	}
	if s.in != nil {
		s.in.Destroy()
	}
}

// drain waits until no goroutine is inside Seal or Open on a dead SA.
// Those take microseconds, and new ones are refused.
func (s *SA) drain() {
	for s.state.Load() != deadBit {
		runtime.Gosched()
	}
}

// expire ends the SA on reaching a hard limit: dead at once, then removed
// from the DB and destroyed by the event goroutine.
func (s *SA) expire(r Reason) {
	if s.kill() {
		s.db.events.fire(s, true, r)
	}
}

func (s *SA) drop(v esp.Verdict) esp.Verdict {
	s.drops[v].Add(1)
	return v
}

func (s *SA) dropN(v esp.Verdict, n int) {
	s.drops[v].Add(uint64(n))
}

// unaccount takes back a reservation of p packets and n bytes.
func (s *SA) unaccount(p, n uint64) {
	s.pkts.Add(-p)
	s.bytes.Add(-n)
}

// overHard reports whether the counters after a reservation, p and n, pass
// a hard limit, and which.
func (s *SA) overHard(p, n uint64) (bool, Reason) {
	if p > s.hardPkts {
		return true, ReasonPackets
	}
	return n > s.hardBytes, ReasonBytes
}

// limits runs when the counters p and n reached a threshold: the hard
// limits (the SA expires after this packet) or else the soft ones.
func (s *SA) limits(p, n uint64) {
	switch {
	case p >= s.hardPkts:
		s.expire(ReasonPackets)
	case n >= s.hardBytes:
		s.expire(ReasonBytes)
	case s.life.Soft.Packets != 0 && p >= s.life.Soft.Packets:
		s.db.events.fire(s, false, ReasonPackets)
	case s.life.Soft.Bytes != 0 && n >= s.life.Soft.Bytes:
		s.db.events.fire(s, false, ReasonBytes)
	}
}

// Seal protects the IP packet b.Bytes() with this outbound SA, in place
// (esp.Outbound.Seal; RFC 4303 §3.3). It returns esp.DropExpired once the
// SA is dead or when the packet would pass a hard lifetime limit (RFC 4301
// §4.4.2.1: the packet is not sent and the SA expires), and esp.DropNoSA
// on an inbound SA. Zero allocations.
func (s *SA) Seal(b *pkt.Buf) esp.Verdict { return s.sealSeq(b, nil) }

// sealSeq is Seal with the sequence number from blk (nil: the next one).
func (s *SA) sealSeq(b *pkt.Buf, blk *esp.SeqBlock) esp.Verdict {
	if s.out == nil {
		return s.drop(esp.DropNoSA)
	}
	if !s.enter() {
		if n := s.next.Load(); n != nil {
			return n.Seal(b) // the successor's numbers, not blk's
		}
		return s.drop(esp.DropExpired)
	}
	n := uint64(b.Len())
	p, by := s.pkts.Add(1), s.bytes.Add(n)
	if over, r := s.overHard(p, by); over {
		s.unaccount(1, n)
		s.leave()
		s.expire(r)
		return s.drop(esp.DropExpired)
	}
	v := s.out.SealSeq(b, blk)
	s.leave()
	if v != esp.OK {
		s.unaccount(1, n)
		return s.drop(v)
	}
	if p >= s.trigPkts.Load() || by >= s.trigBytes.Load() {
		s.limits(p, by)
	}
	return esp.OK
}

// sealChunk is the largest batch SealBatch hands to esp at once.
const sealChunk = 64

// SealBatch seals bufs[i] and stores its verdict in v[i], as Seal does;
// len(v) >= len(bufs). Packets are handed to esp.Outbound.SealBatch in
// chunks; a chunk that would pass a hard limit falls back to Seal one by
// one, so exactly the packets within the limit are sent.
func (s *SA) SealBatch(bufs []*pkt.Buf, v []esp.Verdict) { s.SealBatchSeq(bufs, v, nil) }

// ReserveSeq takes the SA's next n sequence numbers for SealBatchSeq
// (esp.Outbound.ReserveSeq): concurrent sealers reserve in the order their
// packets will leave, so the packets carry increasing numbers on the wire.
// An inbound SA returns an empty block.
func (s *SA) ReserveSeq(n int) esp.SeqBlock {
	if s.out == nil {
		return esp.SeqBlock{}
	}
	return s.out.ReserveSeq(n)
}

// SealBatchSeq is SealBatch with the sequence numbers taken from blk in
// order (esp.Outbound.SealBatchSeq); nil blk is SealBatch. When the SA was
// replaced meanwhile (Replace), its successor seals with numbers of its
// own.
func (s *SA) SealBatchSeq(bufs []*pkt.Buf, v []esp.Verdict, blk *esp.SeqBlock) {
	v = v[:len(bufs)]
	if len(bufs) == 1 { // no chunk state to set up
		v[0] = s.sealSeq(bufs[0], blk)
		return
	}
	for len(bufs) > 0 {
		n := min(len(bufs), sealChunk)
		s.sealChunk(bufs[:n], v[:n], blk)
		bufs, v = bufs[n:], v[n:]
	}
}

func (s *SA) sealChunk(bufs []*pkt.Buf, v []esp.Verdict, blk *esp.SeqBlock) {
	if s.out == nil {
		fill(v, esp.DropNoSA)
		s.dropN(esp.DropNoSA, len(bufs))
		return
	}
	if !s.enter() {
		if n := s.next.Load(); n != nil { // replaced meanwhile, as in Seal
			n.sealChunk(bufs, v, nil)
			return
		}
		fill(v, esp.DropExpired)
		s.dropN(esp.DropExpired, len(bufs))
		return
	}
	var lens [sealChunk]uint64
	var sum uint64
	for i, b := range bufs {
		lens[i] = uint64(b.Len())
		sum += lens[i]
	}
	np := uint64(len(bufs))
	p, by := s.pkts.Add(np), s.bytes.Add(sum)
	if over, _ := s.overHard(p, by); over {
		s.unaccount(np, sum)
		s.leave()
		for i, b := range bufs {
			v[i] = s.sealSeq(b, blk)
		}
		return
	}
	s.out.SealBatchSeq(bufs, v, blk)
	s.leave()
	for i := range bufs {
		if v[i] != esp.OK {
			s.unaccount(1, lens[i])
			s.drop(v[i])
			p--
			by -= lens[i]
		}
	}
	if p >= s.trigPkts.Load() || by >= s.trigBytes.Load() {
		s.limits(p, by)
	}
}

func fill(v []esp.Verdict, x esp.Verdict) {
	for i := range v {
		v[i] = x
	}
}

// Open checks and decrypts the ESP packet b.Bytes()[espOff:] with this
// inbound SA, in place (esp.Inbound.Open; RFC 4303 §3.4), then checks the
// decrypted packet against the SA's selectors (RFC 4301 §5.2 step 4): in
// tunnel mode the inner packet, in transport mode the rebuilt one, in
// home-address form (header.ParseFlow). A packet matching none of them is
// dropped with esp.DropSelector (esp.DropMalformed when it does not parse)
// and its plaintext is zeroed and cut to length 0, so nothing can be
// delivered by mistake. Dummy packets (RFC 4303 §2.6) come back as
// esp.DropDummy and are counted there.
//
// It returns esp.DropExpired once the SA is dead, or when the packet would
// pass a hard lifetime limit (the plaintext is then cleared too and the SA
// expires), and esp.DropNoSA on an outbound SA. Zero allocations.
func (s *SA) Open(b *pkt.Buf, espOff int) (nh uint8, v esp.Verdict) {
	if s.in == nil {
		return 0, s.drop(esp.DropNoSA)
	}
	if !s.enter() {
		if n := s.next.Load(); n != nil {
			return n.Open(b, espOff)
		}
		return 0, s.drop(esp.DropExpired)
	}
	// The guard is held until the packet is counted, so that nothing is
	// delivered after Delete returns.
	defer s.leave()
	nh, v = s.in.Open(b, espOff)
	if v != esp.OK {
		return nh, s.drop(v)
	}
	if v = s.check(b); v != esp.OK {
		return nh, s.drop(v)
	}
	n := uint64(b.Len())
	p, by := s.pkts.Add(1), s.bytes.Add(n)
	if over, r := s.overHard(p, by); over {
		s.unaccount(1, n)
		wipe(b)
		s.expire(r)
		return nh, s.drop(esp.DropExpired)
	}
	if p >= s.trigPkts.Load() || by >= s.trigBytes.Load() {
		s.limits(p, by)
	}
	return nh, esp.OK
}

// check is the RFC 4301 §5.2 step 4 selector check of a decrypted packet;
// on failure it wipes b.
func (s *SA) check(b *pkt.Buf) esp.Verdict {
	var f header.Flow
	if !header.ParseFlow(b.Bytes(), &f) {
		wipe(b)
		return esp.DropMalformed
	}
	if !s.matches(&f) {
		wipe(b)
		return esp.DropSelector
	}
	return esp.OK
}

// wipe zeroes the plaintext in b and leaves b empty.
func wipe(b *pkt.Buf) {
	clear(b.Bytes())
	b.SetBytes(b.Off(), 0)
}

// OpenBatch opens bufs[i] (ESP header at espOffs[i]) as Open does and
// stores the next header and verdict in nh[i] and v[i]; espOffs, nh and v
// are at least as long as bufs. The batch goes to esp.Inbound.OpenBatch in
// one call; the selector check and the lifetime accounting follow per
// packet, in order, so a batch that crosses a hard limit delivers exactly
// the packets within it.
func (s *SA) OpenBatch(bufs []*pkt.Buf, espOffs []int, nh []uint8, v []esp.Verdict) {
	v = v[:len(bufs)]
	nh = nh[:len(bufs)]
	switch len(bufs) {
	case 0:
		return
	case 1: // no batch state to set up
		nh[0], v[0] = s.Open(bufs[0], espOffs[0])
		return
	}
	if s.in == nil {
		fill(v, esp.DropNoSA)
		s.dropN(esp.DropNoSA, len(bufs))
		return
	}
	if !s.enter() {
		if n := s.next.Load(); n != nil { // replaced meanwhile, as in Open
			n.OpenBatch(bufs, espOffs, nh, v)
			return
		}
		fill(v, esp.DropExpired)
		s.dropN(esp.DropExpired, len(bufs))
		return
	}
	defer s.leave() // until counted, as in Open
	s.in.OpenBatch(bufs, espOffs, nh, v)
	s.account(bufs, v)
}

// OpenBegin, OpenAccept and OpenEnd are OpenBatch in three steps
// (esp.Inbound.OpenBegin, OpenAccept, OpenEnd), for a caller that opens
// batches concurrently: the crypto of each batch in parallel, the replay
// window updates in the order the batches arrived (so that its own
// parallelism never pushes a packet out of a small window), then the rest.
// os holds the packets' state between the steps.
//
// OpenBegin returns the SA that must take the other two steps: s, or its
// successor when s was replaced (Replace) meanwhile; nil when no packet is
// left for them (every v[i] is set and counted). Between OpenBegin and
// OpenEnd the SA's guard is held, as in Open: OpenEnd must follow, and
// Delete waits for it.
func (s *SA) OpenBegin(bufs []*pkt.Buf, espOffs []int, v []esp.Verdict, os []esp.Opened) *SA {
	v = v[:len(bufs)]
	if len(bufs) == 0 {
		return nil
	}
	if s.in == nil {
		fill(v, esp.DropNoSA)
		s.dropN(esp.DropNoSA, len(bufs))
		return nil
	}
	if !s.enter() {
		if n := s.next.Load(); n != nil {
			return n.OpenBegin(bufs, espOffs, v, os)
		}
		fill(v, esp.DropExpired)
		s.dropN(esp.DropExpired, len(bufs))
		return nil
	}
	if !s.in.OpenBegin(bufs, espOffs, v, os) {
		for _, x := range v {
			s.drop(x)
		}
		s.leave()
		return nil
	}
	return s
}

// OpenAccept is the second step (see OpenBegin), on the SA OpenBegin
// returned.
func (s *SA) OpenAccept(os []esp.Opened) { s.in.OpenAccept(os) }

// OpenEnd is the last step (see OpenBegin), on the SA OpenBegin returned:
// the trailers, the selector check and the counting, as OpenBatch; it
// releases the guard.
func (s *SA) OpenEnd(bufs []*pkt.Buf, espOffs []int, nh []uint8, v []esp.Verdict, os []esp.Opened) {
	defer s.leave()
	s.in.OpenEnd(bufs, espOffs, nh, v, os)
	s.account(bufs, v[:len(bufs)])
}

// account is OpenBatch's per-packet tail once esp is done: the selector
// check (RFC 4301 §5.2 step 4), the verdict counters and the lifetime
// accounting, in order, so that a batch that crosses a hard limit delivers
// exactly the packets within it. The guard is held.
func (s *SA) account(bufs []*pkt.Buf, v []esp.Verdict) {
	var np, sum uint64
	for i, b := range bufs {
		if v[i] == esp.OK {
			v[i] = s.check(b)
		}
		if v[i] != esp.OK {
			s.drop(v[i])
			continue
		}
		np++
		sum += uint64(b.Len())
	}
	if np == 0 {
		return
	}
	p, by := s.pkts.Add(np), s.bytes.Add(sum)
	if over, r := s.overHard(p, by); over {
		// Walk our reservation (p-np, p] in order and refuse the
		// packets beyond the limit.
		p0, b0 := p-np, by-sum
		for i, b := range bufs {
			if v[i] != esp.OK {
				continue
			}
			n := uint64(b.Len())
			p0++
			b0 += n
			if p0 > s.hardPkts || b0 > s.hardBytes {
				p0--
				b0 -= n
				s.unaccount(1, n)
				wipe(b)
				v[i] = s.drop(esp.DropExpired)
			}
		}
		s.expire(r)
		return
	}
	if p >= s.trigPkts.Load() || by >= s.trigBytes.Load() {
		s.limits(p, by)
	}
}
