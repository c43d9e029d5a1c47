package control

// Packet capture for `mipsec capture`: the dataplane calls a
// dataplane.Capture at its two capture points (inner packets at the TUN, outer ESP
// packets at the underlay); the captureHub copies what its subscribers want
// and each "capture" connection streams its packets as a pcap file
// (LINKTYPE_RAW: every record is an IPv4 or IPv6 packet, so Wireshark decodes
// both families, and the outer ESP with the esp_sa table of
// `mipsec sa list --wireshark`).
//
// Cost: with no capture running the daemon removes the tap (SetCapture(nil)),
// so the packet path pays nothing. While one runs, each tapped packet is
// copied once (one allocation) and handed over without blocking; a
// subscriber that falls behind loses packets, counted and reported.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"go.uber.org/zap"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
)

// Capture selection bits.
const (
	capInner = 1 << iota
	capOuter
)

// snapLen is the largest record captured; longer packets are cut.
const snapLen = 65535

// captureQueue is the per-subscriber backlog in packets.
const captureQueue = 4096

type capturedPacket struct {
	ts   time.Time
	data []byte // a whole IP packet, owned by the receiver
}

type captureSub struct {
	mask    int
	ch      chan capturedPacket
	dropped atomic.Uint64
}

// captureHub fans tapped packets out to the running captures. It is the
// dataplane.Capture installed while at least one capture runs.
type captureHub struct {
	t Target

	mu   sync.Mutex
	subs atomic.Pointer[[]*captureSub] // copy-on-write, read per packet
}

func newCaptureHub(t Target) *captureHub { return &captureHub{t: t} }

func (h *captureHub) subscribe(mask int) *captureSub {
	s := &captureSub{mask: mask, ch: make(chan capturedPacket, captureQueue)}
	h.mu.Lock()
	defer h.mu.Unlock()
	var cur []*captureSub
	if p := h.subs.Load(); p != nil {
		cur = *p
	}
	next := append(append([]*captureSub(nil), cur...), s)
	h.subs.Store(&next)
	if len(cur) == 0 {
		h.t.SetCapture(h)
	}
	return s
}

func (h *captureHub) unsubscribe(s *captureSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.subs.Load()
	if p == nil {
		return
	}
	var next []*captureSub
	for _, x := range *p {
		if x != s {
			next = append(next, x)
		}
	}
	h.subs.Store(&next)
	if len(next) == 0 {
		h.t.SetCapture(nil)
	}
}

func (h *captureHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.subs.Load(); p != nil && len(*p) > 0 {
		h.t.SetCapture(nil)
	}
	h.subs.Store(nil)
}

// wants reports whether a running capture takes packets of this kind, so
// that nothing is copied or built for nobody.
func (h *captureHub) wants(mask int) bool {
	p := h.subs.Load()
	if p == nil {
		return false
	}
	for _, s := range *p {
		if s.mask&mask != 0 {
			return true
		}
	}
	return false
}

// deliver hands data (owned by the hub from now on) to every capture that
// takes this kind; a full queue loses the packet for that capture.
func (h *captureHub) deliver(mask int, data []byte) {
	p := h.subs.Load()
	if p == nil || data == nil {
		return
	}
	cp := capturedPacket{ts: time.Now(), data: data}
	for _, s := range *p {
		if s.mask&mask == 0 {
			continue
		}
		select {
		case s.ch <- cp:
		default:
			s.dropped.Add(1)
		}
	}
}

// Inner implements dataplane.Capture.
func (h *captureHub) Inner(p []byte, out bool) {
	if h.wants(capInner) {
		h.deliver(capInner, append([]byte(nil), p[:min(len(p), snapLen)]...))
	}
}

// Outer implements dataplane.Capture: it puts back the outer IP (and UDP)
// header the underlay removed, so the record is a packet Wireshark can
// decrypt.
func (h *captureHub) Outer(espb []byte, ep endpoint.Endpoint, out bool) {
	if h.wants(capOuter) {
		h.deliver(capOuter, h.outerPacket(espb, netip.AddrPort{}, ep.Addr, ep.Encap == endpoint.EncapUDP, out))
	}
}

// outerPacket rebuilds the packet the underlay sent or received. local is
// our address and port where known; else our address is the SA's tunnel
// address (the underlay does not report which local address a packet used).
func (h *captureHub) outerPacket(espb []byte, local, remote netip.AddrPort, udp, out bool) []byte {
	la := local.Addr()
	if !la.IsValid() && len(espb) >= 4 {
		// Our address from the SA: the tunnel source of an outbound SA,
		// the tunnel destination of an inbound one.
		spi := binary.BigEndian.Uint32(espb)
		dir := sad.Inbound
		if out {
			dir = sad.Outbound
		}
		if sa := h.t.SAD().Lookup(dir, spi); sa != nil {
			if pr := sa.Params(); pr.Mode == esp.Tunnel {
				la = pr.TunnelDst
				if out {
					la = pr.TunnelSrc
				}
			}
		}
	}
	ra := remote.Addr().Unmap()
	la = la.Unmap()
	if !la.IsValid() || la.Is4() != ra.Is4() {
		if ra.Is4() {
			la = netip.IPv4Unspecified()
		} else {
			la = netip.IPv6Unspecified()
		}
	}
	src, dst := la, ra
	sport, dport := local.Port(), remote.Port()
	if !out {
		src, dst = ra, la
		sport, dport = dport, sport
	}
	if sport == 0 {
		sport = 4500
	}
	if dport == 0 {
		dport = 4500
	}
	return buildOuter(espb, src, dst, sport, dport, udp)
}

// buildOuter wraps payload (ESP from the SPI on) in an IPv4 or IPv6 header,
// and a UDP header when udp is set (RFC 3948 §2.1), with valid lengths and
// checksums. It returns nil when the result would not fit a packet.
func buildOuter(payload []byte, src, dst netip.Addr, sport, dport uint16, udp bool) []byte {
	l4 := 0
	proto := uint8(50)
	if udp {
		l4, proto = 8, 17
	}
	hl := 20
	if !src.Is4() {
		hl = 40
	}
	total := hl + l4 + len(payload)
	if total > 65535 || (!src.Is4() && total-hl > 65535) {
		return nil
	}
	b := make([]byte, total)
	copy(b[hl+l4:], payload)
	if src.Is4() {
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:], uint16(total))
		b[8] = 64
		b[9] = proto
		s4, d4 := src.As4(), dst.As4()
		copy(b[12:16], s4[:])
		copy(b[16:20], d4[:])
		binary.BigEndian.PutUint16(b[10:], ^csumFold(csumAdd(0, b[:20])))
	} else {
		b[0] = 0x60
		binary.BigEndian.PutUint16(b[4:], uint16(total-hl))
		b[6] = proto
		b[7] = 64
		s16, d16 := src.As16(), dst.As16()
		copy(b[8:24], s16[:])
		copy(b[24:40], d16[:])
	}
	if udp {
		u := b[hl:]
		binary.BigEndian.PutUint16(u[0:], sport)
		binary.BigEndian.PutUint16(u[2:], dport)
		binary.BigEndian.PutUint16(u[4:], uint16(l4+len(payload)))
		// The checksum over the pseudo-header (RFC 768, RFC 8200 §8.1);
		// RFC 3948 §2.1 allows 0 over IPv4, but a valid one keeps
		// Wireshark quiet.
		var sum uint32
		if src.Is4() {
			sum = csumAdd(sum, b[12:20])
		} else {
			sum = csumAdd(sum, b[8:40])
		}
		sum += uint32(proto) + uint32(l4+len(payload))
		sum = csumAdd(sum, u)
		c := ^csumFold(sum)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(u[6:], c)
	}
	return b
}

func csumAdd(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func csumFold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// CaptureArgs are the "capture" command's arguments.
type CaptureArgs struct {
	Inner bool `json:"inner,omitempty"`
	Outer bool `json:"outer,omitempty"`
	// Count stops after this many packets; 0 is unlimited.
	Count int `json:"count,omitempty"`
	// Duration stops after this long ("30s"); empty is unlimited.
	Duration string `json:"duration,omitempty"`
}

// CaptureStart is the data of the "capture" command's OK line; the pcap
// stream follows it.
type CaptureStart struct {
	LinkType int `json:"linktype"`
	SnapLen  int `json:"snaplen"`
}

// serveCapture runs one capture on c: it answers the request line, then
// writes a pcap stream until the count or duration is reached, the client
// closes or the server stops. It ends the connection.
func (s *Server) serveCapture(c net.Conn, r io.Reader, raw json.RawMessage) {
	var a CaptureArgs
	if err := decodeArgs(raw, &a); err != nil {
		s.answer(c, Response{Error: "capture: " + err.Error()})
		return
	}
	mask := 0
	if a.Inner {
		mask |= capInner
	}
	if a.Outer {
		mask |= capOuter
	}
	if mask == 0 {
		mask = capInner | capOuter
	}
	if a.Count < 0 {
		s.answer(c, Response{Error: "capture: count must not be negative"})
		return
	}
	d, err := parseOptDuration(a.Duration)
	if err != nil {
		s.answer(c, Response{Error: "capture: duration: " + err.Error()})
		return
	}
	if !s.answer(c, Response{OK: true, Data: CaptureStart{LinkType: int(layers.LinkTypeRaw), SnapLen: snapLen}}) {
		return
	}
	sub := s.capture.subscribe(mask)
	defer s.capture.unsubscribe(sub)

	// The client sends nothing more; a read returning means it closed.
	gone := make(chan struct{})
	go func() {
		c.SetReadDeadline(time.Time{})
		io.Copy(io.Discard, r)
		close(gone)
	}()
	var stop <-chan time.Time
	if d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		stop = tm.C
	}
	w := pcapgo.NewWriterNanos(c)
	c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	if err := w.WriteFileHeader(snapLen, layers.LinkTypeRaw); err != nil {
		return
	}
	n := 0
	for a.Count == 0 || n < a.Count {
		select {
		case p := <-sub.ch:
			c.SetWriteDeadline(time.Now().Add(WriteTimeout))
			ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: len(p.data)}
			if err := w.WritePacket(ci, p.data); err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.log.Debug("capture write", zap.Error(err))
				}
				return
			}
			n++
		case <-stop:
			return
		case <-gone:
			return
		case <-s.ctx.Done():
			return
		}
	}
	if dr := sub.dropped.Load(); dr > 0 {
		s.log.Info("capture lost packets", zap.Uint64("dropped", dr))
	}
}

// CaptureStream reads a capture's pcap stream from r and writes it to w as
// a pcap file, stopping after count packets (0: no limit). It returns the
// number of packets written.
func CaptureStream(r io.Reader, w io.Writer, count int) (int, error) {
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("capture stream: %w", err)
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(pr.Snaplen(), pr.LinkType()); err != nil {
		return 0, err
	}
	n := 0
	for count == 0 || n < count {
		data, ci, err := pr.ReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				return n, nil
			}
			return n, err
		}
		if err := pw.WritePacket(ci, data); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Capturing reports whether a capture is running.
func (s *Server) Capturing() bool { return s.capture.wants(capInner | capOuter) }

// parseOptDuration reads an optional non-negative duration ("" is 0).
func parseOptDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	return d, err
}
