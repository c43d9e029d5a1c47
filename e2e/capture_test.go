package e2e

// A packet capture on the underlay (netlab.Capture) and the checks on it.

import (
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/netlab"
)

// espPacket is one ESP packet seen on the wire.
type espPacket = netlab.ESPPacket

// capture records what crosses one interface.
type capture struct{ *netlab.Capture }

// startCapture captures every frame on dev in ns until the test ends or
// c.Close is called.
func startCapture(t *testing.T, ns, dev string) *capture {
	t.Helper()
	c, err := netlab.StartCapture(ns, dev, marker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &capture{c}
}

// settle waits a moment for the frames in flight to be read.
func (c *capture) settle() { time.Sleep(300 * time.Millisecond) }

// snapshot returns a copy of the ESP packets seen so far.
func (c *capture) snapshot() []espPacket { return c.Stats().ESP }

// udpSources returns how many ESP-in-UDP packets came from each source
// address:port.
func (c *capture) udpSources() map[string]int { return c.Stats().UDPFrom }

// summary describes the capture in one line.
func (c *capture) summary() string { return c.Stats().Summary() }

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
	s := c.Stats()
	sum := s.Summary()
	if s.ICMPErrors > 0 && !allowICMPErrors {
		t.Errorf("capture: ICMP errors on the underlay: %s", sum)
	}
	if len(s.Other) > 0 {
		t.Errorf("capture: packets other than ESP crossed the underlay: %s", sum)
	}
	if s.Plaintext > 0 {
		t.Errorf("capture: %d frames carry the plaintext marker: %s", s.Plaintext, sum)
	}
	if s.ESPBytes < minBytes {
		t.Errorf("capture: %d bytes of ESP, want at least %d: %s", s.ESPBytes, minBytes, sum)
	}
	for _, p := range s.ESP {
		if p.UDP != udp {
			t.Errorf("capture: ESP packet (SPI 0x%08x) with udp=%v, want udp=%v: %s", p.SPI, p.UDP, udp, sum)
			break
		}
	}
	t.Logf("capture: %s", sum)
}
