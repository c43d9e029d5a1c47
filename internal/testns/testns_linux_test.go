package testns_test

import (
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mipsec/mipsec/internal/testns"
)

// TestVethPair: the two namespaces reach each other over the veth, a
// socket opened in Do lives in its namespace, and Cleanup deletes both.
func TestVethPair(t *testing.T) {
	var names []string
	t.Run("pair", func(t *testing.T) {
		p := testns.NewVethPair(t)
		names = []string{p.A.Name, p.B.Name}
		var c *net.UDPConn
		var err error
		p.B.Do(t, func() { c, err = net.ListenUDP("udp", &net.UDPAddr{IP: p.B4.AsSlice(), Port: 4242}) })
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var s *net.UDPConn
		p.A.Do(t, func() { s, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: p.B4.AsSlice(), Port: 4242}) })
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 8)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil || string(buf[:n]) != "hi" || !from.IP.Equal(p.A4.AsSlice()) {
			t.Fatalf("read %q from %v: %v", buf[:n], from, err)
		}
	})
	for _, n := range names {
		if h, err := netns.GetFromName(n); err == nil {
			h.Close()
			t.Errorf("namespace %s left behind", n)
		}
	}
}
