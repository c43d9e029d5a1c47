package netlab

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"os"
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
	// DSMIP, HAO and RH2 are Frame's: the mobility signaling forms.
	DSMIP, HAO, RH2 bool
	Len             int       // frame length in bytes
	Time            time.Time // when the capture read it (zero from Add)
}

// Signaling reports whether p is ESP in a mobility signaling form (UDP
// 4191, Home Address option, type 2 Routing header): a BU or a BA.
func (p ESPPacket) Signaling() bool { return p.DSMIP || p.HAO || p.RH2 }

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
func (s *Stats) Add(f []byte, out bool, marker []byte) { s.AddAt(f, out, marker, time.Time{}) }

// AddAt is Add for a frame read at time at (kept in ESPPacket.Time).
func (s *Stats) AddAt(f []byte, out bool, marker []byte, at time.Time) {
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
		p := ESPPacket{SPI: fr.SPI, Seq: fr.Seq, UDP: fr.UDP, Out: out, Src: fr.Src, Frame: s.Frames,
			DSMIP: fr.DSMIP, HAO: fr.HAO, RH2: fr.RH2}
		if !at.IsZero() {
			p.Len, p.Time = len(f), at
		}
		s.ESP = append(s.ESP, p)
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

// Signaling counts the ESP packets in each mobility signaling form: in UDP
// 4191, behind a Home Address option, behind a type 2 Routing header.
func (s Stats) Signaling() (dsmip, hao, rh2 int) {
	for _, p := range s.ESP {
		switch {
		case p.DSMIP:
			dsmip++
		case p.HAO:
			hao++
		case p.RH2:
			rh2++
		}
	}
	return dsmip, hao, rh2
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
	sig := ""
	if d, h, r := s.Signaling(); d+h+r > 0 {
		sig = fmt.Sprintf("; signaling: %d in UDP 4191, %d with HAO, %d with RH2", d, h, r)
	}
	return fmt.Sprintf("%d frames: %d ESP, %d bytes (%d in UDP 4500%s; by SPI %s), %d NAT keepalives, %d ARP/ND/MLD, %d ICMP unreachable, other [%s], %d with plaintext",
		s.Frames, len(s.ESP), s.ESPBytes, s.ESPInUDP(), sig, strings.Join(spis, " "), s.Keepalives, s.Control, s.ICMPErrors, strings.Join(o, " "), s.Plaintext)
}

// CaptureOptions configure StartCaptureOpts.
type CaptureOptions struct {
	// Marker: frames that contain it count as Stats.Plaintext.
	Marker []byte
	// Keep, if not nil, picks frames to keep whole (Capture.Kept).
	Keep func(Frame) bool
	// Pcap, if not empty, is a file that receives every frame (pcap,
	// LINKTYPE_ETHERNET), for tshark.
	Pcap string
}

// KeptFrame is one frame a Capture kept (CaptureOptions.Keep).
type KeptFrame struct {
	Frame
	Data []byte
	Out  bool // sent by the capturing namespace
	Time time.Time
}

// Capture records every frame that crosses one interface (an AF_PACKET
// socket opened inside its namespace).
type Capture struct {
	fd        int
	marker    []byte
	keep      func(Frame) bool
	pcap      *os.File
	kept      []KeptFrame
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
	return StartCaptureOpts(ns, dev, CaptureOptions{Marker: marker})
}

// StartCaptureOpts captures every frame on dev in namespace ns until
// Close, as o says.
func StartCaptureOpts(ns, dev string, o CaptureOptions) (*Capture, error) {
	c := &Capture{marker: o.Marker, keep: o.Keep, stop: make(chan struct{}), done: make(chan struct{})}
	if o.Pcap != "" {
		f, err := os.Create(o.Pcap)
		if err != nil {
			return nil, err
		}
		// pcap global header: magic, version 2.4, no zone, no sigfigs,
		// snaplen 262144, LINKTYPE_ETHERNET.
		var h [24]byte
		binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
		binary.LittleEndian.PutUint16(h[4:], 2)
		binary.LittleEndian.PutUint16(h[6:], 4)
		binary.LittleEndian.PutUint32(h[16:], 256<<10)
		binary.LittleEndian.PutUint32(h[20:], 1)
		if _, err := f.Write(h[:]); err != nil {
			f.Close()
			return nil, err
		}
		c.pcap = f
	}
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
		if c.pcap != nil {
			c.pcap.Close()
		}
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
		now := time.Now()
		f := buf[:min(n, len(buf))]
		c.mu.Lock()
		c.s.AddAt(f, out, c.marker, now)
		if c.keep != nil {
			if fr := Classify(f); c.keep(fr) {
				c.kept = append(c.kept, KeptFrame{Frame: fr, Data: bytes.Clone(f), Out: out, Time: now})
			}
		}
		if c.pcap != nil {
			var h [16]byte
			us := now.UnixMicro()
			binary.LittleEndian.PutUint32(h[0:], uint32(us/1e6))
			binary.LittleEndian.PutUint32(h[4:], uint32(us%1e6))
			binary.LittleEndian.PutUint32(h[8:], uint32(len(f)))
			binary.LittleEndian.PutUint32(h[12:], uint32(n))
			c.pcap.Write(h[:])
			c.pcap.Write(f)
		}
		c.mu.Unlock()
	}
}

// Close stops the capture; it is safe to call more than once.
func (c *Capture) Close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		unix.Close(c.fd)
		if c.pcap != nil {
			c.pcap.Close()
		}
	})
}

// Kept returns the frames kept so far (CaptureOptions.Keep), oldest first.
func (c *Capture) Kept() []KeptFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.kept)
}

// Stats returns a copy of what the capture has seen so far.
func (c *Capture) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.clone()
}

// SendFrame sends frame, a whole Ethernet frame (one a Capture kept, say),
// out of dev in namespace ns as it is (AF_PACKET): a replay of a packet
// exactly as it crossed the link.
func SendFrame(ns, dev string, frame []byte) error {
	return InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if len(frame) < 14 {
			return fmt.Errorf("SendFrame: %d-byte frame", len(frame))
		}
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(binary.BigEndian.Uint16(frame[12:14])), Halen: 6}
		copy(sa.Addr[:], frame[:6])
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			return fmt.Errorf("SendFrame on %s in %s: %w", dev, ns, err)
		}
		return nil
	})
}

// SendIP sends p, a whole IPv4 or IPv6 packet (a Capture's frame without
// its 14-byte Ethernet header, say), from namespace ns as it is, with its
// own source address (a raw IPPROTO_RAW socket: the header is included);
// the kernel routes it by its destination.
func SendIP(ns string, p []byte) error {
	if len(p) < 20 {
		return fmt.Errorf("SendIP: %d-byte packet", len(p))
	}
	return InNetns(ns, func() error {
		var (
			fam int
			to  unix.Sockaddr
		)
		switch p[0] >> 4 {
		case 4:
			fam, to = unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte(p[16:20])}
		case 6:
			if len(p) < 40 {
				return fmt.Errorf("SendIP: %d-byte IPv6 packet", len(p))
			}
			fam, to = unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte(p[24:40])}
		default:
			return fmt.Errorf("SendIP: IP version %d", p[0]>>4)
		}
		fd, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Sendto(fd, p, 0, to); err != nil {
			return fmt.Errorf("SendIP in %s: %w", ns, err)
		}
		return nil
	})
}

// Handover is when the first packets of each kind crossed one access link
// after a handover began (Stats.HandoverAfter); a zero time: none did.
type Handover struct {
	BU, BA time.Time // signaling from and to the MN
	ToMN   time.Time // data ESP toward the MN
	FromMN time.Time // data ESP from the MN
}

// HandoverAfter finds, in a capture taken on the router's side of an
// access link (Out: toward the MN), the first BU, BA, data to the MN and
// data from it at or after t.
func (s Stats) HandoverAfter(t time.Time) Handover {
	var h Handover
	for _, p := range s.ESP {
		if p.Time.Before(t) {
			continue
		}
		var x *time.Time
		switch {
		case p.Signaling() && !p.Out:
			x = &h.BU
		case p.Signaling():
			x = &h.BA
		case p.Out:
			x = &h.ToMN
		default:
			x = &h.FromMN
		}
		if x.IsZero() {
			*x = p.Time
		}
	}
	return h
}
