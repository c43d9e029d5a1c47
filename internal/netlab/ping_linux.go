package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// Pinger sends ICMP echo requests from a raw socket opened in a namespace.
type Pinger struct {
	conn     *net.IPConn
	src, dst netip.Addr
	id       uint16
	data     []byte
}

// NewPinger opens an ICMP (ICMPv6 when dst is IPv6) socket bound to src
// in namespace ns for echo requests to dst that carry data.
func NewPinger(ns string, src, dst netip.Addr, data []byte) (*Pinger, error) {
	network := "ip4:icmp"
	if dst.Is6() {
		network = "ip6:ipv6-icmp"
	}
	p := &Pinger{src: src, dst: dst, id: uint16(rand.IntN(0xffff)), data: data}
	err := InNetns(ns, func() error {
		c, err := net.ListenPacket(network, src.String())
		if err != nil {
			return err
		}
		p.conn = c.(*net.IPConn)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Close closes the socket.
func (p *Pinger) Close() error { return p.conn.Close() }

// echoRequest returns an echo request message (the kernel computes the
// ICMPv6 checksum; the ICMPv4 one is computed here).
func echoRequest(v6 bool, id, seq uint16, data []byte) []byte {
	b := make([]byte, 8+len(data))
	b[0] = 8 // ICMPv4 echo request
	if v6 {
		b[0] = 128
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], data)
	if !v6 {
		binary.BigEndian.PutUint16(b[2:], inetChecksum(b))
	}
	return b
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// isEchoReply reports whether m (an ICMP message without IP header) is the
// echo reply with id and seq.
func isEchoReply(v6 bool, m []byte, id, seq uint16) bool {
	want := byte(0) // ICMPv4 echo reply
	if v6 {
		want = 129
	}
	return len(m) >= 8 && m[0] == want && m[1] == 0 &&
		binary.BigEndian.Uint16(m[4:]) == id && binary.BigEndian.Uint16(m[6:]) == seq
}

// Echo sends echo request seq up to tries times, waiting up to wait for
// the reply from dst each time, and returns the round-trip time of the
// answered one, or 0 when none was answered. Errors are the socket's and
// ctx's.
func (p *Pinger) Echo(ctx context.Context, seq, tries int, wait time.Duration) (time.Duration, error) {
	v6 := p.dst.Is6()
	buf := make([]byte, 1500)
	for try := 0; try < tries; try++ {
		if err := context.Cause(ctx); err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := p.conn.WriteTo(echoRequest(v6, p.id, uint16(seq), p.data), &net.IPAddr{IP: p.dst.AsSlice()}); err != nil {
			return 0, err
		}
		p.conn.SetReadDeadline(start.Add(wait))
		for {
			n, from, err := p.conn.ReadFromIP(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // try again
				}
				return 0, err
			}
			if a, _ := netip.AddrFromSlice(from.IP); a.Unmap() != p.dst {
				continue
			}
			if isEchoReply(v6, buf[:n], p.id, uint16(seq)) {
				return max(time.Since(start), time.Nanosecond), nil
			}
		}
	}
	return 0, nil
}
