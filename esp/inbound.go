package esp

// Inbound flow (RFC 4303 §3.4; RFC 4301 §5.2), in place in one pkt.Buf:
//
//	1. outer header: a fragment is dropped (§3.4.1); the header chain must
//	   end in ESP at espOff.
//	2. ESP lengths, SPI.
//	3. replay Check before any crypto (§3.4.3); for ESN it infers seq_hi
//	   (App. A2.2).
//	4. openESP: verify-then-decrypt (separate algorithms) or AEAD open,
//	   with the inferred 64-bit sequence number (§3.4.4).
//	5. replay Accept, only now that the packet is authentic (§3.4.3).
//	6. trailer: padding bytes 1,2,3,... (§2.4, §3.4.4.1), Next Header 59 is
//	   a dummy (§2.6).
//	7. tunnel: the inner packet is checked and cut to its own length (TFC
//	   padding, §2.7); transport: the IP header moves back over the ESP
//	   header and IV and gets the Next Header and new lengths.
//
// Whenever a drop follows decryption, the decrypted region is cleared.

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// Inbound is the receiving side of one SA (RFC 4303 §3.4). Open and
// OpenBatch are safe for concurrent use by several goroutines: the replay
// window serializes only its own update (see Replay), and the cipher state
// is read-only or pooled. An Inbound must not be copied.
type Inbound struct {
	st       atomic.Pointer[cryptoState] // nil after Destroy
	replay   Replay
	spi      uint32
	info     algInfo
	mode     Mode
	esn      bool
	noReplay bool
	params   Params // normalized, keys removed
}

// NewInbound validates p as NewOutbound does (all errors wrap
// ErrInvalidParams) and builds the receiving side of an SA with an
// anti-replay window of p.ReplayWindow packets (RFC 4303 §3.4.3), unless
// p.NoReplay. A non-zero p.InitialSeq positions the window as if that
// sequence number had been received: a receiver restarted from persisted
// state, or one whose peer starts at InitialSeq+1 (the same Params build
// both ends), accepts only later packets, and under ESN infers the high
// half from there (RFC 4303 App. A2.2). NewInbound keeps no copy of the
// raw keys.
func NewInbound(p Params) (*Inbound, error) {
	p, err := p.normalize()
	if err != nil {
		return nil, err
	}
	st, err := newCryptoState(p.Algorithm, p.EncKey, p.AuthKey, false)
	if err != nil {
		return nil, err
	}
	in := &Inbound{
		spi:      p.SPI,
		info:     algs[p.Algorithm],
		mode:     p.Mode,
		esn:      p.ESN,
		noReplay: p.NoReplay,
		params:   p.withoutKeys(),
	}
	if !p.NoReplay {
		if err := in.replay.Init(p.ReplayWindow, p.ESN); err != nil {
			return nil, err
		}
		if p.InitialSeq != 0 {
			in.replay.Accept(p.InitialSeq)
		}
	}
	in.st.Store(st)
	return in, nil
}

// SPI returns the SA's SPI.
func (in *Inbound) SPI() uint32 { return in.spi }

// Params returns the SA's parameters, normalized, with EncKey and AuthKey
// nil.
func (in *Inbound) Params() Params { return in.params }

// ReplayHighest returns T, the highest authenticated sequence number
// (RFC 4303 §3.4.3), 0 before the first packet or with NoReplay.
func (in *Inbound) ReplayHighest() uint64 {
	if in.noReplay {
		return 0
	}
	return in.replay.Highest()
}

// Destroy ends the SA: afterwards Open returns DropExpired. Calls already
// running finish normally. As with Outbound.Destroy, the salt is zeroed
// and every reference to key-derived state is dropped; Go's cipher key
// schedules and HMAC states cannot be wiped.
func (in *Inbound) Destroy() {
	if st := in.st.Swap(nil); st != nil {
		st.salt.Store(0)
	}
}

// Open checks and decrypts, in place, the ESP packet b.Bytes()[espOff:]
// (SPI first, running to the end of b.Bytes()), RFC 4303 §3.4.
// b.Bytes()[:espOff] is the IP header it arrived in: an IPv4 header (with
// options; protocol 50) or an IPv6 header and extension headers whose
// chain ends in Next Header 50 at espOff. espOff may be 0 (the underlay
// already removed the outer header) only in tunnel mode; in transport
// mode that is DropMode. In transport mode the header's length field must
// match b.Len().
//
// On OK, nextHeader is the ESP trailer's Next Header and
//
//   - tunnel mode: b.Bytes() is exactly the inner IPv4 (Next Header 4) or
//     IPv6 (41) packet, cut to its own length field, which drops TFC
//     padding (§2.7); any other Next Header or an inner packet that is not
//     a well-formed IP packet of that version is DropMalformed;
//   - transport mode: b.Bytes() is the IP packet rebuilt without ESP: the
//     header moved back over the ESP header and IV, the last Next Header
//     in front (IPv4 protocol) set to nextHeader, lengths and the IPv4
//     checksum fixed. Only header bytes move.
//
// Verdicts, in check order: DropExpired (after Destroy), DropMalformed,
// DropFragment (the outer header is a fragment, §3.4.1), DropMode,
// DropNoSA (the SPI is not this SA's), DropReplay (before any crypto,
// §3.4.3; or a concurrent Open accepted the same packet first), DropICV
// (§3.4.4; with ESN also a packet left of the window, which App. A2.2
// places in the next 2^32 subspace), DropPadding (§2.4), DropDummy (Next
// Header 59, §2.6). The
// window moves only for packets that pass the integrity check. When a
// drop follows decryption, the decrypted bytes are cleared; b's contents
// are otherwise unspecified after a drop. AES-GMAC with ESN borrows the 4
// bytes in front of the ESP header (IP header or headroom) and restores
// them; with none it returns DropTooBig.
func (in *Inbound) Open(b *pkt.Buf, espOff int) (nextHeader uint8, v Verdict) {
	var o opened
	if v = in.openCrypto(b, espOff, &o); v != OK {
		return 0, v
	}
	if !in.noReplay && !in.replay.Accept(o.seq) {
		clear(o.pt(b)) // lost the race to a concurrent Open of the same packet
		return 0, DropReplay
	}
	return in.finish(b, espOff, &o)
}

// opened is what openCrypto learned of a packet that passed the integrity
// check, for the replay window update and finish.
// Offsets are int32 (a Buf is smaller than 2^31), so that OpenBatch's
// per-chunk array of them stays small: Go zeroes it on every call.
type opened struct {
	seq      uint64 // the full sequence number (ESN: inferred)
	ptStart  int32  // first plaintext byte in b.B
	ptEnd    int32  // end of the plaintext (Pad Length, Next Header included)
	nhOff    int32  // transport: offset of the outer Next Header byte
	v6       bool   // transport: the outer header is IPv6
	accepted bool   // OpenBatch: passed the replay window update
}

// pt returns the decrypted bytes of b.
func (o *opened) pt(b *pkt.Buf) []byte { return b.B[o.ptStart:o.ptEnd] }

// openCrypto is Open up to the replay window update: the outer header and
// ESP lengths, the SPI, the replay pre-check (RFC 4303 §3.4.3, before any
// crypto) and the integrity check and decryption (§3.4.4) in place.
func (in *Inbound) openCrypto(b *pkt.Buf, espOff int, o *opened) Verdict {
	st := in.st.Load()
	if st == nil {
		return DropExpired
	}
	p := b.Bytes()
	if espOff < 0 || espOff > len(p) {
		return DropMalformed
	}
	if espOff == 0 {
		if in.mode != Tunnel {
			return DropMode
		}
	} else {
		nhOff, v6, v := outerHeader(p, espOff, in.mode == Transport)
		if v != OK {
			return v
		}
		o.nhOff, o.v6 = int32(nhOff), v6
	}

	// ESP lengths (RFC 4303 §2): header, IV, at least Pad Length and Next
	// Header, ICV; AES-CBC ciphertext is whole blocks (RFC 3602 §2.4).
	esp := p[espOff:]
	body := len(esp) - header.ESPHeaderLen - in.info.ivLen - in.info.icvLen
	if body < ESPTrailerLen || (in.info.block == 16 && body%16 != 0) {
		return DropMalformed
	}
	if header.ESP(esp).SPI() != in.spi {
		return DropNoSA
	}

	// Replay pre-check (RFC 4303 §3.4.3), before any crypto.
	seq := uint64(header.ESP(esp).Seq())
	if !in.noReplay {
		var ok bool
		if seq, ok = in.replay.Check(uint32(seq)); !ok {
			return DropReplay
		}
	}

	s, e := b.Off()+espOff, b.End()
	if v := st.openESP(b.B[:], s, e, seq, in.esn); v != OK {
		return v
	}
	o.seq = seq
	o.ptStart = int32(s + header.ESPHeaderLen + in.info.ivLen)
	o.ptEnd = int32(e - in.info.icvLen)
	return OK
}

// finish is Open after the replay window update: the trailer (RFC 4303
// §2.4-2.6, §3.4.4.1 step 3) and the inner packet (tunnel) or the rebuilt
// one (transport).
func (in *Inbound) finish(b *pkt.Buf, espOff int, o *opened) (nextHeader uint8, v Verdict) {
	pt := o.pt(b)
	padLen := int(pt[len(pt)-2])
	nextHeader = pt[len(pt)-1]
	if padLen+ESPTrailerLen > len(pt) {
		clear(pt)
		return 0, DropPadding
	}
	payload := pt[:len(pt)-ESPTrailerLen-padLen]
	for i, c := range pt[len(payload) : len(pt)-ESPTrailerLen] {
		if c != byte(i+1) {
			clear(pt)
			return 0, DropPadding
		}
	}
	if nextHeader == header.ProtoNoNext {
		clear(pt)
		return 0, DropDummy
	}

	if in.mode == Tunnel {
		n, ok := innerLen(nextHeader, payload)
		if !ok {
			clear(pt)
			return 0, DropMalformed
		}
		b.SetBytes(int(o.ptStart), n)
		return nextHeader, OK
	}

	// Transport: the header moves back over SPI, seq and IV.
	off := b.Off() + header.ESPHeaderLen + in.info.ivLen
	copy(b.B[off:off+espOff], b.B[b.Off():b.Off()+espOff])
	b.SetBytes(off, espOff+len(payload))
	h := b.B[off : off+espOff]
	h[o.nhOff] = nextHeader
	if o.v6 {
		header.IPv6(h).SetPayloadLen(b.Len() - header.IPv6HeaderLen)
	} else {
		ip := header.IPv4(h)
		ip.SetTotalLen(b.Len())
		ip.UpdateChecksum()
	}
	return nextHeader, OK
}

// openChunk is the largest run OpenBatch takes through its three steps at
// once (its per-packet state lives on the stack).
const openChunk = 32

// OpenBatch opens every bufs[i] with ESP at espOffs[i], storing the Next
// Header in nh[i] and the verdict in v[i]. espOffs, nh and v must be at
// least as long as bufs. Verdicts are Open's. The packets pass the replay
// pre-check and the integrity check one by one, then update the replay
// window together under one lock, in order (RFC 4303 §3.4.3: only
// authenticated packets move it; a second copy of a number within the
// batch, or one the window has passed meanwhile, is DropReplay and its
// plaintext cleared), then each trailer is checked. Safe for concurrent
// use, as Open is.
func (in *Inbound) OpenBatch(bufs []*pkt.Buf, espOffs []int, nh []uint8, v []Verdict) {
	espOffs, nh, v = espOffs[:len(bufs)], nh[:len(bufs)], v[:len(bufs)]
	if len(bufs) == 1 { // no chunk state to set up
		nh[0], v[0] = in.Open(bufs[0], espOffs[0])
		return
	}
	for len(bufs) > 0 {
		n := min(len(bufs), openChunk)
		in.openChunk(bufs[:n], espOffs[:n], nh[:n], v[:n])
		bufs, espOffs, nh, v = bufs[n:], espOffs[n:], nh[n:], v[n:]
	}
}

func (in *Inbound) openChunk(bufs []*pkt.Buf, espOffs []int, nh []uint8, v []Verdict) {
	var os [openChunk]Opened
	if !in.OpenBegin(bufs, espOffs, v, os[:len(bufs)]) {
		clear(nh[:len(bufs)])
		return
	}
	in.OpenAccept(os[:len(bufs)])
	in.OpenEnd(bufs, espOffs, nh, v, os[:len(bufs)])
}

// Opened is one packet's state between the three steps of OpenBatch when a
// caller runs them itself (OpenBegin, OpenAccept, OpenEnd): a dataplane
// that opens batches concurrently runs the crypto of each batch in
// parallel and the replay window updates in the order the batches arrived,
// so that its own parallelism never pushes a packet out of the window
// (RFC 4303 §3.4.3: the receiver's window is about reordering in the
// network). The zero value is ready to use.
type Opened struct{ o opened }

// OpenBegin is OpenBatch's first step for bufs[i] (ESP at espOffs[i]): the
// checks, the replay pre-check and the integrity check and decryption in
// place, as Open does them; the window does not move. v[i] is the verdict
// so far and os[i] the state OpenAccept and OpenEnd need. It reports
// whether any packet passed.
func (in *Inbound) OpenBegin(bufs []*pkt.Buf, espOffs []int, v []Verdict, os []Opened) bool {
	espOffs, v, os = espOffs[:len(bufs)], v[:len(bufs)], os[:len(bufs)]
	some := false
	for i, b := range bufs {
		os[i].o.accepted = false
		if v[i] = in.openCrypto(b, espOffs[i], &os[i].o); v[i] == OK {
			os[i].o.accepted = true
			some = true
		}
	}
	return some
}

// OpenAccept is OpenBatch's second step: the replay window update for the
// packets OpenBegin passed, in order, under one lock (RFC 4303 §3.4.3:
// only authenticated packets move it). A packet whose number is seen
// already (a second copy, in this batch or another) or that the window
// has passed meanwhile is marked refused. Callers that open batches
// concurrently call it in arrival order.
func (in *Inbound) OpenAccept(os []Opened) {
	if !in.noReplay {
		in.replay.acceptAll(os)
	}
}

// OpenEnd is OpenBatch's last step: a packet OpenAccept refused is
// DropReplay with its plaintext cleared; the others get their trailer
// checked and are rebuilt as Open does, with the Next Header in nh[i] and
// the verdict in v[i].
func (in *Inbound) OpenEnd(bufs []*pkt.Buf, espOffs []int, nh []uint8, v []Verdict, os []Opened) {
	espOffs, nh, v, os = espOffs[:len(bufs)], nh[:len(bufs)], v[:len(bufs)], os[:len(bufs)]
	for i, b := range bufs {
		nh[i] = 0
		if v[i] != OK {
			continue
		}
		if !os[i].o.accepted {
			clear(os[i].o.pt(b))
			v[i] = DropReplay
			continue
		}
		nh[i], v[i] = in.finish(b, espOffs[i], &os[i].o)
	}
}

// outerHeader checks the IP header p[:espOff] that an ESP packet arrived in
// and returns the offset of the byte that holds Next Header 50 (the IPv4
// protocol field, or the last IPv6 header's Next Header) and the family.
// A fragment is DropFragment (RFC 4303 §3.4.1: reassembly comes first).
// strictLen (transport mode, where the header is reused) also requires the
// IPv4 total length or the IPv6 payload length to match len(p).
func outerHeader(p []byte, espOff int, strictLen bool) (nhOff int, v6 bool, v Verdict) {
	switch p[0] >> 4 {
	case header.IPv4Version:
		if espOff < header.IPv4MinHeaderLen {
			return 0, false, DropMalformed
		}
		ip := header.IPv4(p)
		if ip.HeaderLen() != espOff {
			return 0, false, DropMalformed
		}
		if ip.IsFragment() {
			return 0, false, DropFragment
		}
		if ip.Protocol() != header.ProtoESP || (strictLen && ip.TotalLen() != len(p)) {
			return 0, false, DropMalformed
		}
		return 9, false, OK
	case header.IPv6Version:
		if espOff < header.IPv6HeaderLen {
			return 0, false, DropMalformed
		}
		ip := header.IPv6(p)
		if strictLen && header.IPv6HeaderLen+ip.PayloadLen() != len(p) {
			return 0, false, DropMalformed
		}
		nh, nhOff := ip.NextHeader(), 6
		for off := header.IPv6HeaderLen; off < espOff; {
			switch nh {
			case header.ProtoHopByHop, header.ProtoRouting, header.ProtoDestOpts:
			case header.ProtoFragment:
				return 0, true, DropFragment
			default:
				return 0, true, DropMalformed
			}
			if off+8 > espOff {
				return 0, true, DropMalformed
			}
			n := off + (int(p[off+1])+1)*8
			if n > espOff {
				return 0, true, DropMalformed
			}
			nh, nhOff, off = p[off], off, n
		}
		if nh != header.ProtoESP {
			return 0, true, DropMalformed
		}
		return nhOff, true, OK
	}
	return 0, false, DropMalformed
}

// innerLen checks the decrypted tunnel-mode payload p against Next Header
// nh (RFC 4303 §2.6: 4 = IPv4, 41 = IPv6) and returns the inner packet's
// length from its own header, so that TFC padding after it (§2.7) is
// dropped. IPv4 needs a version-4 header with IHL >= 5 and IHL*4 <= total
// length <= len(p); IPv6 a version-6 header with 40 + payload length <=
// len(p).
func innerLen(nh uint8, p []byte) (int, bool) {
	switch nh {
	case header.ProtoIPv4:
		if len(p) < header.IPv4MinHeaderLen || p[0]>>4 != header.IPv4Version {
			return 0, false
		}
		hl := int(p[0]&0x0f) * 4
		tl := int(binary.BigEndian.Uint16(p[2:]))
		if hl < header.IPv4MinHeaderLen || tl < hl || tl > len(p) {
			return 0, false
		}
		return tl, true
	case header.ProtoIPv6:
		if len(p) < header.IPv6HeaderLen || p[0]>>4 != header.IPv6Version {
			return 0, false
		}
		n := header.IPv6HeaderLen + int(binary.BigEndian.Uint16(p[header.IPv6PayloadLenOffset:]))
		if n > len(p) {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
