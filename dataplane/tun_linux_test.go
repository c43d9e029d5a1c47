package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/internal/testns"
	"github.com/mipsec/mipsec/pkt"
)

// tunReader reads packets from dev until match accepts one or the timeout.
func tunReader(t *testing.T, dev tun.Device, timeout time.Duration, match func(p []byte) bool) []byte {
	t.Helper()
	found := make(chan []byte, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		n := dev.BatchSize()
		bufs := make([][]byte, n)
		for i := range bufs {
			bufs[i] = make([]byte, pkt.Headroom+pkt.MaxPacket)
		}
		sizes := make([]int, n)
		for {
			k, err := dev.Read(bufs, sizes, pkt.Headroom)
			if err != nil {
				if errors.Is(err, tun.ErrTooManySegments) {
					continue
				}
				return
			}
			for i := 0; i < k; i++ {
				p := bufs[i][pkt.Headroom : pkt.Headroom+sizes[i]]
				if match(p) {
					select {
					case found <- bytes.Clone(p):
					case <-stop:
					}
					return
				}
			}
		}
	}()
	select {
	case p := <-found:
		return p
	case <-time.After(timeout):
		t.Fatalf("no matching packet on the TUN within %v", timeout)
		return nil
	}
}

// TestTUN creates and configures a TUN inside a namespace, checks the link
// state netlink reports, sees a UDP datagram routed into it (IPv4 and IPv6),
// and writes an ICMP echo request into it whose reply comes back out.
func TestTUN(t *testing.T) {
	ns := testns.New(t)
	const name = "mtun0"
	addrs := []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}
	routes := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:2::/64")}
	var (
		dev tun.Device
		err error
	)
	ns.Do(t, func() {
		dev, err = CreateTUN(name, 1420)
		if err == nil {
			err = ConfigureTUN(name, addrs, routes, 1400)
		}
		if err == nil { // idempotent: addresses and routes already there
			err = ConfigureTUN(name, addrs, routes, 1400)
		}
	})
	if dev != nil {
		t.Cleanup(func() { dev.Close() })
	}
	if err != nil {
		t.Fatalf("CreateTUN/ConfigureTUN: %v", err)
	}

	// wireguard-go's TUN batches only with its virtio-net offloads on.
	t.Logf("TUN batch size %d (offloads %s)", dev.BatchSize(), map[bool]string{true: "on", false: "off"}[dev.BatchSize() > 1])
	link, err := ns.NL.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if a := link.Attrs(); a.MTU != 1400 || a.Flags&net.FlagUp == 0 {
		t.Errorf("link MTU %d flags %v, want 1400 and up", a.MTU, a.Flags)
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := ns.NL.RouteList(link, fam)
		if err != nil {
			t.Fatal(err)
		}
		want := routes[0]
		if fam == netlink.FAMILY_V6 {
			want = routes[1]
		}
		ok := false
		for _, r := range rs {
			if r.Dst != nil && r.Dst.String() == want.String() {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no route to %v via %s: %v", want, name, rs)
		}
	}

	// Routed into the TUN: UDP to the routes.
	for _, dst := range []netip.AddrPort{
		netip.MustParseAddrPort("203.0.113.9:9999"),
		netip.MustParseAddrPort("[2001:db8:2::9]:9999"),
	} {
		var c *net.UDPConn
		ns.Do(t, func() { c, err = net.ListenUDP("udp", nil) })
		if err != nil {
			t.Fatal(err)
		}
		payload := []byte("mipsec tun test " + dst.String())
		go func() {
			// Repeat until read: the first may wait for the link.
			for range 20 {
				if _, err := c.WriteToUDPAddrPort(payload, dst); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		p := tunReader(t, dev, 5*time.Second, func(p []byte) bool {
			var f header.Flow
			return header.ParseFlow(p, &f) && f.Dst == dst.Addr() && bytes.HasSuffix(p, payload)
		})
		c.Close()
		t.Logf("read %d bytes to %v from the TUN", len(p), dst)
	}

	// Written into the TUN: an ICMP echo request to the TUN's address; the
	// reply is routed back out through the TUN.
	req := icmpEcho(netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.51.100.1"), 0x4d49)
	buf := make([]byte, pkt.Headroom+len(req))
	copy(buf[pkt.Headroom:], req)
	go func() {
		for range 20 {
			if _, err := dev.Write([][]byte{buf}, pkt.Headroom); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	tunReader(t, dev, 5*time.Second, func(p []byte) bool {
		ip := header.IPv4(p)
		return ip.IsValid() && ip.Protocol() == unix.IPPROTO_ICMP && len(ip.Payload()) >= 8 &&
			ip.Payload()[0] == 0 && binary.BigEndian.Uint16(ip.Payload()[4:]) == 0x4d49 &&
			ip.Dst() == netip.MustParseAddr("203.0.113.9")
	})
}

// icmpEcho builds an IPv4 ICMP echo request.
func icmpEcho(src, dst netip.Addr, id uint16) []byte {
	icmp := []byte{8, 0, 0, 0, 0, 0, 0, 1, 'm', 'i', 'p', 's', 'e', 'c'}
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[2:], ^header.Checksum(icmp, 0))
	p := make([]byte, header.IPv4MinHeaderLen+len(icmp))
	header.IPv4(p).Encode(&header.IPv4Fields{
		TotalLen: uint16(len(p)), TTL: 64, Protocol: unix.IPPROTO_ICMP, Src: src, Dst: dst,
	})
	copy(p[header.IPv4MinHeaderLen:], icmp)
	return p
}

func TestCreateTUNConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		mtu  int
	}{{"", 1400}, {"a-very-long-name-0", 1400}, {"mtun1", 100}} {
		if _, err := CreateTUN(tt.name, tt.mtu); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("CreateTUN(%q, %d) = %v, want ErrInvalidConfig", tt.name, tt.mtu, err)
		}
	}
}
