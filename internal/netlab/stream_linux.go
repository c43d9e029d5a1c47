package netlab

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Paced returns a reader that yields r's bytes at about rate bytes per
// second (in pieces every 10 ms) until stop is closed or r ends; then it
// returns io.EOF. It turns a Transfer into a stream that lasts as long as
// the caller wants (across handovers, say).
func Paced(r io.Reader, rate int, stop <-chan struct{}) io.Reader {
	return &paced{r: r, piece: max(rate/100, 1), stop: stop}
}

type paced struct {
	r     io.Reader
	piece int
	stop  <-chan struct{}
	next  time.Time
}

func (p *paced) Read(b []byte) (int, error) {
	select {
	case <-p.stop:
		return 0, io.EOF
	default:
	}
	if d := time.Until(p.next); d > 0 {
		select {
		case <-p.stop:
			return 0, io.EOF
		case <-time.After(d):
		}
	}
	p.next = time.Now().Add(10 * time.Millisecond)
	return p.r.Read(b[:min(len(b), p.piece)])
}

// UDPStream sends sequence-numbered UDP datagrams at a fixed interval from
// one namespace to another and records which arrive, and when: packet loss
// and the gap in arrivals across a handover.
type UDPStream struct {
	snd, rcv *net.UDPConn
	dst      netip.AddrPort
	interval time.Duration
	marker   []byte
	stop     chan struct{}
	wg       sync.WaitGroup

	mu     sync.Mutex
	sentAt []time.Time          // by sequence number
	recvAt map[uint64]time.Time // first arrival by sequence number
	dups   int
	errs   int // send errors (no route while a link is down, say)
}

// StartUDPStream listens on dst in srvNS and sends a datagram every
// interval from src (port 0) in cliNS to it: 8 bytes of sequence number
// (from 0) and marker (the plaintext pattern a capture looks for).
func StartUDPStream(srvNS string, dst netip.AddrPort, cliNS string, src netip.Addr, interval time.Duration, marker []byte) (*UDPStream, error) {
	s := &UDPStream{dst: dst, interval: interval, marker: marker, stop: make(chan struct{}), recvAt: map[uint64]time.Time{}}
	if err := InNetns(srvNS, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(dst))
		s.rcv = c
		return err
	}); err != nil {
		return nil, fmt.Errorf("UDP stream: listen on %v: %w", dst, err)
	}
	if err := InNetns(cliNS, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		s.snd = c
		return err
	}); err != nil {
		s.rcv.Close()
		return nil, fmt.Errorf("UDP stream: socket on %v: %w", src, err)
	}
	s.wg.Add(2)
	go s.receive()
	go s.send()
	return s, nil
}

func (s *UDPStream) send() {
	defer s.wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	b := make([]byte, 8+len(s.marker))
	copy(b[8:], s.marker)
	to := net.UDPAddrFromAddrPort(s.dst)
	for seq := uint64(0); ; seq++ {
		binary.BigEndian.PutUint64(b, seq)
		now := time.Now()
		_, err := s.snd.WriteToUDP(b, to)
		s.mu.Lock()
		s.sentAt = append(s.sentAt, now)
		if err != nil {
			s.errs++
		}
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *UDPStream) receive() {
	defer s.wg.Done()
	b := make([]byte, 2048)
	for {
		n, err := s.rcv.Read(b)
		if err != nil {
			return // closed by Stop
		}
		if n < 8 {
			continue
		}
		seq, now := binary.BigEndian.Uint64(b), time.Now()
		s.mu.Lock()
		if _, dup := s.recvAt[seq]; dup {
			s.dups++
		} else {
			s.recvAt[seq] = now
		}
		s.mu.Unlock()
	}
}

// Stop stops sending, waits linger for datagrams in flight, closes both
// sockets and returns what was sent and received.
func (s *UDPStream) Stop(linger time.Duration) StreamResult {
	close(s.stop)
	time.Sleep(linger)
	s.snd.Close()
	s.rcv.Close()
	s.wg.Wait()
	return s.Result()
}

// Result returns what was sent and received so far.
func (s *UDPStream) Result() StreamResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := StreamResult{SentAt: append([]time.Time(nil), s.sentAt...), RecvAt: make(map[uint64]time.Time, len(s.recvAt)),
		Duplicates: s.dups, SendErrors: s.errs}
	for k, v := range s.recvAt {
		r.RecvAt[k] = v
	}
	return r
}

// StreamResult is what a UDPStream sent and received.
type StreamResult struct {
	SentAt     []time.Time          // send time by sequence number
	RecvAt     map[uint64]time.Time // first arrival by sequence number
	Duplicates int                  // datagrams that arrived more than once
	SendErrors int                  // sends the local stack refused
}

// Lost counts the datagrams sent in [from, to) that never arrived (a zero
// to: until the end).
func (r StreamResult) Lost(from, to time.Time) (lost, sent int) {
	for seq, at := range r.SentAt {
		if at.Before(from) || !to.IsZero() && !at.Before(to) {
			continue
		}
		sent++
		if _, ok := r.RecvAt[uint64(seq)]; !ok {
			lost++
		}
	}
	return lost, sent
}

// FirstAfter returns the first arrival at or after t of a datagram sent at
// or after t (the first data over the new path after a handover that
// started at t), and whether there is one.
func (r StreamResult) FirstAfter(t time.Time) (time.Time, bool) {
	var first time.Time
	for seq, at := range r.SentAt {
		if at.Before(t) {
			continue
		}
		if got, ok := r.RecvAt[uint64(seq)]; ok && (first.IsZero() || got.Before(first)) {
			first = got
		}
	}
	return first, !first.IsZero()
}

// LongestGap returns the longest time between two consecutive arrivals in
// [from, to) (a zero to: until the end), and when it started.
func (r StreamResult) LongestGap(from, to time.Time) (gap time.Duration, at time.Time) {
	var ts []time.Time
	for _, t := range r.RecvAt {
		if !t.Before(from) && (to.IsZero() || t.Before(to)) {
			ts = append(ts, t)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d > gap {
			gap, at = d, ts[i-1]
		}
	}
	return gap, at
}
