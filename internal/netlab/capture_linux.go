package netlab

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ESPPacket is one ESP packet seen on the wire.
type ESPPacket struct {
	SPI, Seq uint32
	UDP      bool   // ESP in UDP (RFC 3948)
	Out      bool   // sent by the capturing namespace
	Src      string // source address
	Frame    int    // number of the frame in the capture (from 1)
}

// Stats is what a capture has seen.
type Stats struct {
	Frames     int
	ESP        []ESPPacket
	ESPBytes   int // bytes of the frames with ESP (UDP GSO sends several per frame)
	Keepalives int
	Control    int            // ARP, neighbour discovery, MLD
	ICMPErrors int            // ICMP errors (a NAT's port unreachable)
	Other      map[string]int // anything else, by description
	Plaintext  int            // frames that contain the marker
	UDPFrom    map[string]int // ESP in UDP by source address:port
}

// Add classifies frame f (out: sent by the capturing side) and counts it;
// frames containing marker (if not empty) count as Plaintext too.
func (s *Stats) Add(f []byte, out bool, marker []byte) {
	if s.Other == nil {
		s.Other = map[string]int{}
	}
	if s.UDPFrom == nil {
		s.UDPFrom = map[string]int{}
	}
	s.Frames++
	if len(marker) > 0 && bytes.Contains(f, marker) {
		s.Plaintext++
	}
	fr := Classify(f)
	switch fr.Kind {
	case ESP:
		s.ESP = append(s.ESP, ESPPacket{SPI: fr.SPI, Seq: fr.Seq, UDP: fr.UDP, Out: out, Src: fr.Src, Frame: s.Frames})
		s.ESPBytes += len(f)
		if fr.UDP {
			s.UDPFrom[net.JoinHostPort(fr.Src, fmt.Sprint(fr.SrcPort))]++
		}
	case Keepalive:
		s.Keepalives++
	case Control:
		s.Control++
	case ICMPError:
		s.ICMPErrors++
	default:
		s.Other[fr.Desc]++
	}
}

// clone returns a deep copy.
func (s Stats) clone() Stats {
	s.ESP = slices.Clone(s.ESP)
	s.Other = maps.Clone(s.Other)
	s.UDPFrom = maps.Clone(s.UDPFrom)
	return s
}

// ESPInUDP is how many ESP packets were in UDP.
func (s Stats) ESPInUDP() int {
	n := 0
	for _, p := range s.ESP {
		if p.UDP {
			n++
		}
	}
	return n
}

// SPIs counts the ESP packets by SPI.
func (s Stats) SPIs() map[uint32]int {
	m := map[uint32]int{}
	for _, p := range s.ESP {
		m[p.SPI]++
	}
	return m
}

// Summary describes the capture in one line.
func (s Stats) Summary() string {
	var spis []string
	for spi, n := range s.SPIs() {
		spis = append(spis, fmt.Sprintf("0x%08x:%d", spi, n))
	}
	sort.Strings(spis)
	var o []string
	for k, n := range s.Other {
		o = append(o, fmt.Sprintf("%s:%d", k, n))
	}
	sort.Strings(o)
	return fmt.Sprintf("%d frames: %d ESP, %d bytes (%d in UDP 4500; by SPI %s), %d NAT keepalives, %d ARP/ND/MLD, %d ICMP unreachable, other [%s], %d with plaintext",
		s.Frames, len(s.ESP), s.ESPBytes, s.ESPInUDP(), strings.Join(spis, " "), s.Keepalives, s.Control, s.ICMPErrors, strings.Join(o, " "), s.Plaintext)
}

// Capture records every frame that crosses one interface (an AF_PACKET
// socket opened inside its namespace).
type Capture struct {
	fd        int
	marker    []byte
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu sync.Mutex
	s  Stats
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// StartCapture captures every frame on dev in namespace ns until Close,
// counting those that contain marker as plaintext.
func StartCapture(ns, dev string, marker []byte) (*Capture, error) {
	c := &Capture{marker: marker, stop: make(chan struct{}), done: make(chan struct{})}
	c.s.Other, c.s.UDPFrom = map[string]int{}, map[string]int{}
	err := InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s in %s: %w", dev, ns, err)
	}
	go c.loop()
	return c, nil
}

func (c *Capture) loop() {
	defer close(c.done)
	buf := make([]byte, 256<<10)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			continue // SO_RCVTIMEO (EAGAIN) or EINTR
		}
		out := false
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			out = ll.Pkttype == unix.PACKET_OUTGOING
		}
		c.mu.Lock()
		c.s.Add(buf[:min(n, len(buf))], out, c.marker)
		c.mu.Unlock()
	}
}

// Close stops the capture; it is safe to call more than once.
func (c *Capture) Close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		unix.Close(c.fd)
	})
}

// Stats returns a copy of what the capture has seen so far.
func (c *Capture) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.clone()
}
