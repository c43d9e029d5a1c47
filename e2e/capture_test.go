package e2e

// A packet capture on the underlay: an AF_PACKET socket opened inside a
// namespace, classifying every frame as it arrives.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// espPacket is one ESP packet seen on the wire.
type espPacket struct {
	spi, seq uint32
	udp      bool // ESP in UDP (RFC 3948)
	out      bool // sent by the capturing namespace
	src      string
	frame    int // index of the frame in the capture
}

// capture records what crosses one interface.
type capture struct {
	fd   int
	done chan struct{}
	stop chan struct{}

	mu        sync.Mutex
	frames    int
	esp       []espPacket
	keepalive int
	control   int            // ARP, neighbour discovery, MLD
	other     map[string]int // anything else, by description
	plaintext int            // frames that contain the marker
	espBytes  int            // ESP bytes (UDP GSO sends several per frame)
	icmpErrs  int            // ICMP errors (a NAT's port unreachable)
	udpFrom   map[string]int // ESP in UDP by source address and port
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// startCapture captures every frame on dev in ns until the test ends or
// c.close is called.
func startCapture(t *testing.T, ns, dev string) *capture {
	t.Helper()
	c := &capture{done: make(chan struct{}), stop: make(chan struct{}), other: map[string]int{}, udpFrom: map[string]int{}}
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		c.fd = fd
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", dev, ns, err)
	}
	go c.loop()
	t.Cleanup(c.close)
	return c
}

func (c *capture) loop() {
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
			continue // timeout (EAGAIN) or EINTR
		}
		out := false
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			out = ll.Pkttype == unix.PACKET_OUTGOING
		}
		c.add(buf[:min(n, len(buf))], out)
	}
}

// close stops the capture; it is safe to call more than once.
func (c *capture) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	unix.Close(c.fd)
}

// settle waits a moment for the frames in flight to be read.
func (c *capture) settle() { time.Sleep(300 * time.Millisecond) }

func (c *capture) add(f []byte, out bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames++
	if bytes.Contains(f, marker) {
		c.plaintext++
	}
	defer func() {
		if len(c.esp) > 0 && c.esp[len(c.esp)-1].frame == c.frames {
			c.espBytes += len(f)
		}
	}()
	if len(f) < 14 {
		c.other["runt frame"]++
		return
	}
	etype := binary.BigEndian.Uint16(f[12:14])
	ip := f[14:]
	var proto byte
	var l4 []byte
	var src string
	switch etype {
	case unix.ETH_P_ARP:
		c.control++
		return
	case unix.ETH_P_IP:
		if len(ip) < 20 {
			c.other["short IPv4"]++
			return
		}
		ihl := int(ip[0]&0xf) * 4
		proto, l4 = ip[9], ip[min(ihl, len(ip)):]
		src = net.IP(ip[12:16]).String()
		if off := binary.BigEndian.Uint16(ip[6:8]) & 0x1fff; off != 0 {
			c.other["IPv4 fragment"]++
			return
		}
	case unix.ETH_P_IPV6:
		if len(ip) < 40 {
			c.other["short IPv6"]++
			return
		}
		proto, l4 = ip[6], ip[40:]
		src = net.IP(ip[8:24]).String()
		if proto == 0 { // hop-by-hop: MLD reports
			c.control++
			return
		}
	default:
		c.other[fmt.Sprintf("ethertype 0x%04x", etype)]++
		return
	}
	switch {
	case proto == unix.IPPROTO_ESP && len(l4) >= 8:
		c.esp = append(c.esp, espPacket{spi: binary.BigEndian.Uint32(l4), seq: binary.BigEndian.Uint32(l4[4:]), out: out, src: src, frame: c.frames})
	case proto == unix.IPPROTO_UDP && len(l4) >= 8 &&
		(binary.BigEndian.Uint16(l4[0:2]) == 4500 || binary.BigEndian.Uint16(l4[2:4]) == 4500):
		// Port 4500 on at least one side (a NAT may change the other).
		body := l4[8:]
		switch {
		case len(body) == 1 && body[0] == 0xff:
			c.keepalive++
		case len(body) >= 8 && binary.BigEndian.Uint32(body) != 0:
			c.esp = append(c.esp, espPacket{spi: binary.BigEndian.Uint32(body), seq: binary.BigEndian.Uint32(body[4:]), udp: true, out: out, src: src, frame: c.frames})
			c.udpFrom[net.JoinHostPort(src, fmt.Sprint(binary.BigEndian.Uint16(l4[0:2])))]++
		default:
			c.other[fmt.Sprintf("UDP %d->%d, %d bytes", binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4]), len(body))]++
		}
	case proto == unix.IPPROTO_ICMPV6 && len(l4) > 0 && (l4[0] >= 133 && l4[0] <= 137 || l4[0] == 143):
		c.control++
	case proto == unix.IPPROTO_ICMP && len(l4) > 0 && l4[0] == 3, proto == unix.IPPROTO_ICMPV6 && len(l4) > 0 && l4[0] == 1:
		c.icmpErrs++
	default:
		c.other[fmt.Sprintf("IP protocol %d", proto)]++
	}
}

// snapshot returns a copy of the ESP packets seen so far.
func (c *capture) snapshot() []espPacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]espPacket(nil), c.esp...)
}

// udpSources returns how many ESP-in-UDP packets came from each source
// address:port.
func (c *capture) udpSources() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for k, v := range c.udpFrom {
		m[k] = v
	}
	return m
}

// summary describes the capture in one line.
func (c *capture) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	udp := 0
	spis := map[uint32]int{}
	for _, p := range c.esp {
		if p.udp {
			udp++
		}
		spis[p.spi]++
	}
	var s []string
	for spi, n := range spis {
		s = append(s, fmt.Sprintf("0x%08x:%d", spi, n))
	}
	sort.Strings(s)
	var o []string
	for k, n := range c.other {
		o = append(o, fmt.Sprintf("%s:%d", k, n))
	}
	sort.Strings(o)
	return fmt.Sprintf("%d frames: %d ESP, %d bytes (%d in UDP 4500; by SPI %s), %d NAT keepalives, %d ARP/ND/MLD, %d ICMP unreachable, other [%s], %d with plaintext",
		c.frames, len(c.esp), c.espBytes, udp, strings.Join(s, " "), c.keepalive, c.control, c.icmpErrs, strings.Join(o, " "), c.plaintext)
}

// checkOnlyESP fails t unless everything but link-layer control was ESP
// (or ESP in UDP when udp) and nothing carried the plaintext marker.
func (c *capture) checkOnlyESP(t *testing.T, udp bool, minBytes int) {
	t.Helper()
	c.check(t, udp, minBytes, false)
}

// check is checkOnlyESP; allowICMPErrors lets ICMP destination unreachable
// pass (they quote only outer headers), as a NAT sends after a rebinding.
func (c *capture) check(t *testing.T, udp bool, minBytes int, allowICMPErrors bool) {
	t.Helper()
	c.settle()
	sum := c.summary()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.icmpErrs > 0 && !allowICMPErrors {
		t.Errorf("capture: ICMP errors on the underlay: %s", sum)
	}
	if len(c.other) > 0 {
		t.Errorf("capture: packets other than ESP crossed the underlay: %s", sum)
	}
	if c.plaintext > 0 {
		t.Errorf("capture: %d frames carry the plaintext marker: %s", c.plaintext, sum)
	}
	if c.espBytes < minBytes {
		t.Errorf("capture: %d bytes of ESP, want at least %d: %s", c.espBytes, minBytes, sum)
	}
	for _, p := range c.esp {
		if p.udp != udp {
			t.Errorf("capture: ESP packet (SPI 0x%08x) with udp=%v, want udp=%v: %s", p.spi, p.udp, udp, sum)
			break
		}
	}
	t.Logf("capture: %s", sum)
}
