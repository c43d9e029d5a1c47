package esp

// Outbound flow (RFC 4303 §3.3), all in place in one pkt.Buf:
//
//	1. plan:  parse the IP packet in b (nothing written yet): what stays in
//	          front of ESP (transport), the payload, Next Header, padding;
//	          check head- and tailroom and the IP length limits.
//	2. seq:   take the next sequence number (atomic CAS; never wraps).
//	3. build: trailer (padding 1,2,3,..., Pad Length, Next Header) into the
//	          tailroom; ESP header + IV into the headroom (tunnel), or move
//	          the IP header (only its bytes, never the payload) forward by
//	          the ESP header + IV size (transport).
//	4. crypto: sealESP encrypts in place and writes the ICV.
//	5. tunnel: the outer header from the SA's template, patched with the
//	          length, DSCP/ECN, DF, ID and checksum.
//
//	tunnel:    [outer IP][SPI seq][IV][inner IP packet][pad PL NH][ICV]
//	transport: [IP hdr, kept ext hdrs][SPI seq][IV][payload][pad PL NH][ICV]

import (
	"encoding/binary"
	"math"
	"net/netip"
	"sync/atomic"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// Outbound is the sending side of one SA (RFC 4303 §3.3). Seal, SealBatch
// and SealDummy are safe for concurrent use by several goroutines: the
// sequence number comes from an atomic counter and the cipher state is
// read-only or pooled.
type Outbound struct {
	// seq is the last sequence number handed out (RFC 4303 §3.3.3).
	seq atomic.Uint64
	// reserve is the highest sequence number the owner allows (0: no
	// limit besides maxSeq); see SetSeqReserve.
	reserve atomic.Uint64
	st      atomic.Pointer[cryptoState] // nil after Destroy
	maxSeq  uint64
	spi     uint32
	info    algInfo
	mode    Mode
	esn     bool
	df      DF
	tun     tunnelTemplate
	params  Params // normalized, keys removed
}

// NewOutbound validates p and builds the sending side of an SA.
//
// It rejects: SPI 0 (RFC 4303 §2.1); an unknown Algorithm; key lengths
// other than Algorithm.EncKeyLen and AuthKeyLen (RFC 4106 §8.1, RFC 4868
// §2.1.1, RFC 2404 §3); a Mode other than Transport or Tunnel; in tunnel
// mode, missing or unspecified endpoints or endpoints of different
// families; a ReplayWindow outside [MinReplayWindow, MaxReplayWindow];
// NoReplay with ESN; and InitialSeq beyond the sequence space. All errors
// wrap ErrInvalidParams.
//
// The first packet carries sequence number InitialSeq+1 (RFC 4303 §3.3.3;
// 0 for a new SA). NewOutbound keeps no copy of p.EncKey or p.AuthKey: the
// caller owns them and may zero them once it returns.
func NewOutbound(p Params) (*Outbound, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, err
	}
	st, err := newCryptoState(p.Algorithm, p.EncKey, p.AuthKey, true)
	if err != nil {
		return nil, err
	}
	o := &Outbound{
		maxSeq: maxSeq(p.ESN),
		spi:    p.SPI,
		info:   algs[p.Algorithm],
		mode:   p.Mode,
		esn:    p.ESN,
		df:     p.DF,
		params: p.withoutKeys(),
	}
	if p.Mode == Tunnel {
		o.tun = newTunnelTemplate(p.TunnelSrc, p.TunnelDst, p.HopLimit)
	}
	o.seq.Store(p.InitialSeq)
	o.reserve.Store(p.SeqReserve)
	o.st.Store(st)
	return o, nil
}

// SPI returns the SA's SPI.
func (o *Outbound) SPI() uint32 { return o.spi }

// SetSeqReserve limits the sequence numbers Seal may hand out to at most
// upTo; beyond it Seal returns DropSeqReserve. 0 removes the limit.
//
// It is how a daemon with static keys keeps IVs unique across restarts and
// crashes (RFC 4303 §3.3.3: with manual keys the sender's counter must
// survive reboots; RFC 8221 §3): it writes and fsyncs a reservation R to
// disk, then calls SetSeqReserve(R), and after a restart passes R as
// Params.InitialSeq. A number is used only once it is covered by a durable
// reservation. The check is one atomic load per packet.
func (o *Outbound) SetSeqReserve(upTo uint64) { o.reserve.Store(upTo) }

// Seq returns the last sequence number handed out (InitialSeq before the
// first packet). With ESN it is the full 64-bit value.
func (o *Outbound) Seq() uint64 { return o.seq.Load() }

// Params returns the SA's parameters, normalized (ReplayWindow resolved,
// tunnel addresses unmapped), with EncKey and AuthKey nil.
func (o *Outbound) Params() Params { return o.params }

// Overhead returns the most bytes Seal adds to a packet: in tunnel mode the
// outer header (20 or 40), then the ESP header (8), IV, the largest padding
// (3, or 15 for AES-CBC), Pad Length and Next Header (2) and the ICV
// (RFC 4303 §2; spec table "packet expansion sizes"). Use it for MTU and
// PMTU bookkeeping (RFC 4303 §3.2.3, RFC 4301 §8).
func (o *Outbound) Overhead() int {
	n := header.ESPHeaderLen + o.info.ivLen + (o.info.block - 1) + ESPTrailerLen + o.info.icvLen
	if o.mode == Tunnel {
		n += o.tun.hlen
	}
	return n
}

// Destroy ends the SA: afterwards Seal and SealDummy return DropExpired.
// Calls already running finish normally. Destroy zeroes the salt and drops
// every reference to key-derived state (AEAD, AES key schedules, the HMAC
// ipad/opad states, K_iv) so the garbage collector can reclaim it. It
// cannot wipe that state: Go's crypto packages keep expanded keys in
// unexported fields with no way to zero them, and pooled HMAC/CBC objects
// live until the pool is collected. NewOutbound keeps no copy of the raw
// keys, so there is nothing else to zero.
func (o *Outbound) Destroy() {
	if st := o.st.Swap(nil); st != nil {
		st.salt.Store(0)
	}
}

// Seal turns the IP packet b.Bytes() (IPv4 or IPv6, as read from a TUN
// device) into its ESP form, in place (RFC 4303 §3.3):
//
//   - Tunnel mode (§3.1.2): the result is an outer IPv4 or IPv6 header
//     (addresses from Params.TunnelSrc/Dst; protocol 50; TTL/Hop Limit
//     Params.HopLimit or 64; DSCP and ECN copied from the inner header, RFC
//     4301 §5.1.2.1; IPv4 DF per Params.DF; IPv4 ID = the low 16 bits of
//     the sequence number) followed by ESP carrying the whole packet (Next
//     Header 4 or 41). Inner fragments are carried as they are.
//   - Transport mode (§3.1.1): ESP is inserted after the IPv4 header (with
//     its options), or after the IPv6 Hop-by-Hop and Routing headers and
//     any Destination Options header that precedes a Routing header or
//     carries a Home Address option (RFC 6275 §6.3); a last Destination
//     Options header without one goes inside ESP. The header in front gets
//     Next Header 50, and the lengths (and IPv4 checksum) are fixed. Only
//     the header bytes move. Fragments are refused (§3.3.4): DropFragment.
//
// A packet whose IP length field is shorter than b is cut to that length.
// Seal needs 8 + IV bytes of headroom (plus 20 or 40 in tunnel mode) and
// padding + 2 + ICV bytes of tailroom; pkt.Headroom and pkt.Tailroom
// cover every suite. It returns OK, DropMalformed (not an IP packet),
// DropFragment, DropTooBig (no room, or the result exceeds 65535 bytes),
// DropSeqOverflow (the sequence space is exhausted; the SA never wraps,
// RFC 4303 §3.3.3, even with NoReplay), or DropExpired after Destroy. A
// packet is given a sequence number only when it is sealed. After a drop b
// may hold a partly built packet.
func (o *Outbound) Seal(b *pkt.Buf) Verdict { return o.seal(b, -1, 0, nil) }

// SealBatch seals every bufs[i] and stores its verdict in v[i]. len(v)
// must be at least len(bufs).
func (o *Outbound) SealBatch(bufs []*pkt.Buf, v []Verdict) {
	o.SealBatchSeq(bufs, v, nil)
}

// SeqBlock is a block of sequence numbers taken in advance with
// ReserveSeq, handed out in order by SealBatchSeq. The zero value is empty.
type SeqBlock struct{ next, n uint64 } // next, next+1, ... n of them

// Len returns how many sequence numbers are left in the block.
func (k SeqBlock) Len() int { return int(k.n) }

// take returns the block's next number, or 0 when it is empty.
func (k *SeqBlock) take() uint64 {
	if k == nil || k.n == 0 {
		return 0
	}
	s := k.next
	k.next++ // past 2^64-1 only when n was 1: never read again
	k.n--
	return s
}

// ReserveSeq takes the next n sequence numbers at once, for SealBatchSeq.
// Callers that seal concurrently reserve in the order their packets will
// leave, so that the packets carry increasing sequence numbers on the wire
// even though they are sealed out of order: a receiver's anti-replay
// window (RFC 4303 §3.4.3; Linux and strongSwan default to 32 packets)
// then sees no reordering. The block is shorter than n, or empty, when the
// sequence space (DropSeqOverflow) or the owner's reservation
// (SetSeqReserve, DropSeqReserve) ends first.
func (o *Outbound) ReserveSeq(n int) SeqBlock {
	if n <= 0 {
		return SeqBlock{}
	}
	for {
		cur := o.seq.Load()
		lim := o.maxSeq
		if r := o.reserve.Load(); r != 0 && r < lim {
			lim = r
		}
		if cur >= lim {
			return SeqBlock{}
		}
		k := min(uint64(n), lim-cur) // no overflow at 2^64-1 (ESN)
		if o.seq.CompareAndSwap(cur, cur+k) {
			return SeqBlock{next: cur + 1, n: k}
		}
	}
}

// SealBatchSeq is SealBatch with the sequence numbers taken from blk, in
// order, as long as it lasts (then as Seal takes them). A packet that is
// not sealed (DropMalformed, DropTooBig, ...) leaves its number unused: a
// gap, which receivers accept (RFC 4303 §3.4.3 only requires that numbers
// are not repeated). A nil blk is SealBatch.
func (o *Outbound) SealBatchSeq(bufs []*pkt.Buf, v []Verdict, blk *SeqBlock) {
	v = v[:len(bufs)]
	for i, b := range bufs {
		v[i] = o.seal(b, -1, blk.take(), nil)
	}
}

// SealSeq is Seal with the sequence number taken from blk (see
// SealBatchSeq); a nil or empty blk is Seal.
func (o *Outbound) SealSeq(b *pkt.Buf, blk *SeqBlock) Verdict {
	return o.seal(b, -1, blk.take(), nil)
}

// SealDummy builds and seals a dummy packet (RFC 4303 §2.6): Next Header
// 59 and n payload bytes. Dummy packets take a sequence number like any
// other (§3.3.3) and the receiver drops them after the integrity check
// (§3.4.4.1 step 4; Open returns DropDummy). In tunnel mode b is reset and
// filled; in transport mode b.Bytes() must be an IP packet whose headers
// (those Seal would keep in front of ESP) the dummy is sent with, and what
// follows them is replaced. The payload bytes are zero: encrypted they are
// indistinguishable from data; with AES-GMAC and NULL they travel in
// clear, as everything does with those suites.
func (o *Outbound) SealDummy(b *pkt.Buf, n int) Verdict {
	if n < 0 {
		return DropMalformed
	}
	return o.seal(b, n, 0, nil)
}

// sealPlan is what Seal learns from the packet before it writes anything.
type sealPlan struct {
	keep  int   // transport: header bytes that stay in front of ESP
	nhOff int   // transport: offset of the Next Header byte that becomes 50
	nh    uint8 // the ESP trailer's Next Header
	tos   uint8 // tunnel: inner DSCP + ECN
	df    bool  // tunnel: inner IPv4 DF
	v6    bool  // transport: IPv6
	body  int   // payload bytes (after keep)
	pad   int   // padding bytes
}

// seal implements Seal (dummy < 0) and SealDummy (dummy = payload bytes).
// seq == 0 takes the next sequence number; tests pass seq and explicitIV to
// reproduce known-answer vectors (explicitIV nil derives the IV as usual).
func (o *Outbound) seal(b *pkt.Buf, dummy int, seq uint64, explicitIV []byte) Verdict {
	st := o.st.Load()
	if st == nil {
		return DropExpired
	}
	var pl sealPlan
	if v := o.plan(b, &pl, dummy); v != OK {
		return v
	}
	if seq == 0 {
		var ok bool
		if seq, ok = o.nextSeq(); !ok {
			if o.seq.Load() >= o.maxSeq {
				return DropSeqOverflow
			}
			return DropSeqReserve
		}
	}

	// Trailer (RFC 4303 §2.4-2.6): padding 1, 2, 3, ..., Pad Length,
	// Next Header, then room for the ICV.
	t := b.Append(pl.pad + ESPTrailerLen + o.info.icvLen)
	for i := range pl.pad {
		t[i] = byte(i + 1)
	}
	t[pl.pad] = byte(pl.pad)
	t[pl.pad+1] = pl.nh

	hl := header.ESPHeaderLen + o.info.ivLen
	if o.mode == Tunnel {
		b.Prepend(hl)
		if v := st.sealESP(b.B[:], b.Off(), b.End(), o.spi, seq, o.esn, explicitIV); v != OK {
			return v
		}
		total := b.Len() + o.tun.hlen
		o.tun.write(b.Prepend(o.tun.hlen), total, pl.tos, o.outerDF(&pl), uint16(seq))
		return OK
	}

	// Transport: move the kept headers forward, ESP goes between them and
	// the payload.
	old := b.Off()
	b.Prepend(hl)
	off := b.Off()
	copy(b.B[off:off+pl.keep], b.B[old:old+pl.keep])
	h := b.B[off : off+pl.keep]
	h[pl.nhOff] = header.ProtoESP
	if pl.v6 {
		header.IPv6(h).SetPayloadLen(b.Len() - header.IPv6HeaderLen)
	} else {
		ip := header.IPv4(h)
		ip.SetTotalLen(b.Len())
		ip.UpdateChecksum()
	}
	return st.sealESP(b.B[:], off+pl.keep, b.End(), o.spi, seq, o.esn, explicitIV)
}

// nextSeq hands out the next sequence number, or false once maxSeq has
// been used. The CAS loop makes exhaustion final even with concurrent
// sealers: the counter never passes maxSeq, so the 64-bit ESN counter
// cannot wrap to 0 either (RFC 4303 §3.3.3).
func (o *Outbound) nextSeq() (uint64, bool) {
	for {
		cur := o.seq.Load()
		if cur >= o.maxSeq {
			return 0, false
		}
		if r := o.reserve.Load(); r != 0 && cur >= r {
			return 0, false
		}
		if o.seq.CompareAndSwap(cur, cur+1) {
			return cur + 1, true
		}
	}
}

// outerDF decides the outer IPv4 DF bit (RFC 4301 §8.1).
func (o *Outbound) outerDF(pl *sealPlan) bool {
	switch o.df {
	case DFSet:
		return true
	case DFClear:
		return false
	}
	return pl.df
}

// padLen returns the minimal padding for a payload of n bytes (RFC 4303
// §2.4): Pad Length and Next Header end on a 4-byte boundary counted from
// the start of the IV; for AES-CBC payload ‖ padding ‖ 2 fills whole
// 16-byte blocks, the IV excluded (RFC 3602 §2.4), which with a 16-byte IV
// also gives the 4-byte alignment.
func (o *Outbound) padLen(n int) int {
	if o.info.block == 16 {
		return (-(n + ESPTrailerLen)) & 15
	}
	return (-(o.info.ivLen + n + ESPTrailerLen)) & 3
}

// plan fills pl for the packet in b (dummy < 0) or for a dummy packet of
// dummy bytes, and checks room and size limits. It writes to b only to cut
// it to its IP length and, for a dummy, to build the payload.
func (o *Outbound) plan(b *pkt.Buf, pl *sealPlan, dummy int) Verdict {
	if dummy >= 0 && o.mode == Tunnel {
		if dummy > pkt.Size-pkt.Headroom {
			return DropTooBig
		}
		b.Reset()
		clear(b.Append(dummy))
		pl.nh, pl.body = header.ProtoNoNext, dummy
		return o.checkRoom(b, pl)
	}
	p := b.Bytes()
	if len(p) == 0 {
		return DropMalformed
	}
	switch p[0] >> 4 {
	case header.IPv4Version:
		ip := header.IPv4(p)
		if !ip.IsValid() {
			return DropMalformed
		}
		if tl := ip.TotalLen(); tl < len(p) {
			b.TrimBack(len(p) - tl)
			p = p[:tl]
		}
		if o.mode == Tunnel {
			pl.nh, pl.tos, pl.df, pl.body = header.ProtoIPv4, ip.TOS(), ip.Flags()&header.IPv4FlagDF != 0, len(p)
			break
		}
		if ip.IsFragment() {
			return DropFragment
		}
		pl.keep, pl.nhOff, pl.nh = ip.HeaderLen(), 9, ip.Protocol()
		pl.body = len(p) - pl.keep
	case header.IPv6Version:
		ip := header.IPv6(p)
		if !ip.IsValid() {
			return DropMalformed
		}
		n := header.IPv6HeaderLen + ip.PayloadLen()
		if ip.PayloadLen() == 0 && len(p) > n {
			return DropMalformed // a jumbogram (RFC 2675); not supported
		}
		if n < len(p) {
			b.TrimBack(len(p) - n)
			p = p[:n]
		}
		if o.mode == Tunnel {
			pl.nh, pl.tos, pl.body = header.ProtoIPv6, ip.TrafficClass(), len(p)
			break
		}
		if v := splitIPv6(p, pl); v != OK {
			return v
		}
		pl.v6 = true
	default:
		return DropMalformed
	}
	if dummy >= 0 { // transport dummy: keep the headers, replace the rest
		if dummy > pkt.Size-b.Off()-pl.keep {
			return DropTooBig
		}
		b.SetBytes(b.Off(), pl.keep)
		clear(b.Append(dummy))
		pl.nh, pl.body = header.ProtoNoNext, dummy
	}
	return o.checkRoom(b, pl)
}

// checkRoom sets pl.pad and checks head- and tailroom and the IP length
// fields' limit (DropTooBig).
func (o *Outbound) checkRoom(b *pkt.Buf, pl *sealPlan) Verdict {
	pl.pad = o.padLen(pl.body)
	front := header.ESPHeaderLen + o.info.ivLen
	back := pl.pad + ESPTrailerLen + o.info.icvLen
	total := b.Len() + front + back // transport: the new IP packet
	v6 := pl.v6
	if o.mode == Tunnel {
		front += o.tun.hlen
		total += o.tun.hlen
		v6 = o.tun.v6
	}
	if b.HeadroomLen() < front || b.TailroomLen() < back {
		return DropTooBig
	}
	if v6 {
		total -= header.IPv6HeaderLen // the payload length field
	}
	if total > math.MaxUint16 {
		return DropTooBig
	}
	return OK
}

// splitIPv6 finds where ESP goes in an IPv6 packet in transport mode (RFC
// 4303 §3.1.1; RFC 8200 §4.1 order): after Hop-by-Hop, Routing (type 2
// included) and every Destination Options header that precedes a Routing
// header or carries a Home Address option (RFC 6275 §6.3 puts the HAO in
// front of ESP); a Destination Options header after the last of those goes
// inside ESP. A Fragment header means a fragment: DropFragment (§3.3.4).
func splitIPv6(p []byte, pl *sealPlan) Verdict {
	keep, nhOff := header.IPv6HeaderLen, 6 // 6: the fixed header's Next Header
	it := header.NewExtIter(header.IPv6(p))
	for {
		h, done, err := it.Next()
		if err != nil {
			return DropMalformed
		}
		if done {
			break
		}
		switch h.Proto {
		case header.ProtoFragment:
			return DropFragment
		case header.ProtoDestOpts:
			hao, ok := hasHAO(h.Bytes(p))
			if !ok {
				return DropMalformed
			}
			if !hao {
				continue // stays in front only if a Routing header follows
			}
		}
		keep, nhOff = h.Offset+h.Len, h.Offset
	}
	pl.keep, pl.nhOff, pl.nh = keep, nhOff, p[nhOff]
	pl.body = len(p) - keep
	return OK
}

// optHomeAddress is the Home Address destination option (RFC 6275 §6.3).
const optHomeAddress = 201

// hasHAO walks the TLV options of a Destination Options header (RFC 8200
// §4.2) and reports whether one is a Home Address option; ok is false if
// an option overruns the header.
func hasHAO(opts []byte) (found, ok bool) {
	for i := 2; i < len(opts); {
		t := opts[i]
		if t == 0 { // Pad1
			i++
			continue
		}
		if i+2 > len(opts) {
			return false, false
		}
		n := i + 2 + int(opts[i+1])
		if n > len(opts) {
			return false, false
		}
		if t == optHomeAddress {
			return true, true
		}
		i = n
	}
	return false, true
}

// tunnelTemplate is an SA's outer header, built once (STYLE.md §2: per
// packet, copy and patch length and checksum).
type tunnelTemplate struct {
	v6   bool
	hlen int
	hdr  [header.IPv6HeaderLen]byte
	sum  uint32 // IPv4: one's complement sum of the constant words
}

// defaultHopLimit is the outer TTL / Hop Limit when Params.HopLimit is 0.
const defaultHopLimit = 64

func newTunnelTemplate(src, dst netip.Addr, hop uint8) tunnelTemplate {
	if hop == 0 {
		hop = defaultHopLimit
	}
	var t tunnelTemplate
	if src.Is4() {
		t.hlen = header.IPv4MinHeaderLen
		ip := header.IPv4(t.hdr[:t.hlen])
		ip.Encode(&header.IPv4Fields{TTL: hop, Protocol: header.ProtoESP, Src: src, Dst: dst})
		ip.SetChecksum(0)
		t.sum = uint32(header.Checksum(ip, 0))
		return t
	}
	t.v6, t.hlen = true, header.IPv6HeaderLen
	header.IPv6(t.hdr[:]).Encode(&header.IPv6Fields{NextHeader: header.ProtoESP, HopLimit: hop, Src: src, Dst: dst})
	return t
}

// write puts the outer header for a packet of total bytes into dst: DSCP
// and ECN tos copied from the inner header (RFC 4301 §5.1.2.1; ECN per
// RFC 6040 normal mode), IPv4 DF and ID, lengths and the IPv4 checksum
// (updated from the template's precomputed sum, RFC 1624).
func (t *tunnelTemplate) write(dst []byte, total int, tos uint8, df bool, id uint16) {
	copy(dst, t.hdr[:t.hlen])
	if t.v6 {
		dst[0] = header.IPv6Version<<4 | tos>>4
		dst[1] = tos << 4
		binary.BigEndian.PutUint16(dst[header.IPv6PayloadLenOffset:], uint16(total-header.IPv6HeaderLen))
		return
	}
	var flags uint16
	if df {
		flags = header.IPv4FlagDF
	}
	dst[1] = tos
	binary.BigEndian.PutUint16(dst[2:], uint16(total))
	binary.BigEndian.PutUint16(dst[4:], id)
	binary.BigEndian.PutUint16(dst[6:], flags)
	sum := t.sum + uint32(tos) + uint32(total) + uint32(id) + uint32(flags)
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(dst[10:], ^uint16(sum))
}
