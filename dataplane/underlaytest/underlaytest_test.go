package underlaytest

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
)

var (
	epA = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.1:4500"), Encap: endpoint.EncapUDP}
	epB = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.2:4500"), Encap: endpoint.EncapUDP}
	epC = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.3:4500"), Encap: endpoint.EncapUDP}
)

func TestPair(t *testing.T) {
	a, b := NewPair(epA, epB)
	fa, _ := a.Open()
	fb, _ := b.Open()
	if a.BatchSize() != 1 {
		t.Fatal("BatchSize")
	}
	buf := pkt.Get()
	defer pkt.Put(buf)
	bufs, eps := []*pkt.Buf{buf}, make([]endpoint.Endpoint, 1)
	send := func(u *Underlay, data string, to endpoint.Endpoint) {
		b := pkt.Get()
		defer pkt.Put(b)
		b.Set([]byte(data))
		if err := u.Send([]*pkt.Buf{b}, []endpoint.Endpoint{to}); err != nil {
			t.Fatal(err)
		}
	}
	a.Record(true)
	send(a, "hello", epB)
	if n, err := fb[0](bufs, eps); n != 1 || err != nil || string(buf.Bytes()) != "hello" || eps[0] != epA {
		t.Fatalf("got %d %v %q from %v", n, err, buf.Bytes(), eps[0])
	}
	if buf.Off() != pkt.Headroom {
		t.Errorf("packet at %d, want headroom", buf.Off())
	}
	send(a, "lost", epC)
	if b.Misrouted() != 1 {
		t.Errorf("misrouted %d", b.Misrouted())
	}
	// Duplicate and rewrite.
	a.SetFilter(func(m Msg) []Msg {
		m2 := m
		m2.Src = epC
		return []Msg{m, m2}
	})
	send(a, "dup", epB)
	for _, want := range []endpoint.Endpoint{epA, epC} {
		fb[0](bufs, eps)
		if string(buf.Bytes()) != "dup" || eps[0] != want {
			t.Errorf("got %q from %v, want from %v", buf.Bytes(), eps[0], want)
		}
	}
	if len(a.Sent()) != 3 {
		t.Errorf("recorded %d", len(a.Sent()))
	}
	// Roaming: B moves.
	b.SetLocal(epC)
	send(b, "moved", epA)
	fa[0](bufs, eps)
	if eps[0] != epC {
		t.Errorf("source %v, want %v", eps[0], epC)
	}
	if err := a.SendKeepalive(epB); err != nil || len(a.Keepalives()) != 1 {
		t.Errorf("keepalive: %v", err)
	}
	if err := a.SendKeepalive(endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.2:0")}); err == nil {
		t.Error("raw keepalive accepted")
	}
	if err := b.Inject(Msg{Data: []byte("inj"), Src: epA}); err != nil {
		t.Fatal(err)
	}
	fb[0](bufs, eps)
	if string(buf.Bytes()) != "inj" {
		t.Errorf("got %q", buf.Bytes())
	}
	a.Close()
	a.Close()
	if _, err := fa[0](bufs, eps); !errors.Is(err, net.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestEncapIP: EncapIP packets are delivered by destination address (the
// local endpoint's or SetAddrs), IPv4/UDP 4191 arrives as its inner packet
// from (source, port), IPv6 whole from (source, 0); raw ESP gets the outer
// header in front.
func TestEncapIP(t *testing.T) {
	a, b := NewPair(epA, epB)
	fb, _ := b.Open()
	ha6 := netip.MustParseAddr("2001:db8:1::1")
	b.SetAddrs(ha6)
	buf := pkt.Get()
	defer pkt.Put(buf)
	bufs, eps := []*pkt.Buf{buf}, make([]endpoint.Endpoint, 1)
	inner := make([]byte, 48)
	inner[0] = 0x60
	inner[7] = 64
	v4 := make([]byte, 28+len(inner))
	v4[0], v4[9] = 0x45, 17
	copy(v4[12:16], []byte{192, 0, 2, 1})
	copy(v4[16:20], []byte{192, 0, 2, 2})
	v4[20], v4[21] = 0x11, 0x94 // 4500
	v4[22], v4[23] = 0x10, 0x5f // 4191
	copy(v4[28:], inner)
	v6 := bytes.Clone(inner)
	copy(v6[8:24], netip.MustParseAddr("2001:db8:2::100").AsSlice())
	send := func(p []byte, to netip.Addr) {
		t.Helper()
		s := pkt.Get()
		defer pkt.Put(s)
		s.Set(p)
		if err := a.Send([]*pkt.Buf{s}, []endpoint.Endpoint{{Addr: netip.AddrPortFrom(to, 0), Encap: endpoint.EncapIP}}); err != nil {
			t.Fatal(err)
		}
	}
	send(v4, epB.Addr.Addr())
	if n, err := fb[0](bufs, eps); n != 1 || err != nil || !bytes.Equal(buf.Bytes(), inner) ||
		eps[0] != (endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.1:4500"), Encap: endpoint.EncapIP}) {
		t.Fatalf("v4/UDP 4191: % x from %v", buf.Bytes(), eps[0])
	}
	send(v6, ha6)
	if n, err := fb[0](bufs, eps); n != 1 || err != nil || !bytes.Equal(buf.Bytes(), v6) ||
		eps[0] != (endpoint.Endpoint{Addr: netip.MustParseAddrPort("[2001:db8:2::100]:0"), Encap: endpoint.EncapIP}) {
		t.Fatalf("v6: % x from %v", buf.Bytes(), eps[0])
	}
	send(v6, netip.MustParseAddr("2001:db8:9::9"))
	if b.Misrouted() != 1 {
		t.Errorf("misrouted %d, want 1", b.Misrouted())
	}
	// Raw ESP: the normalised outer header lies in front.
	a.SetLocal(endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.1:0")})
	b.SetLocal(endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.2:0")})
	s := pkt.Get()
	defer pkt.Put(s)
	s.Set([]byte{0, 0, 1, 0, 0, 0, 0, 1, 9, 9})
	if err := a.Send([]*pkt.Buf{s}, []endpoint.Endpoint{b.Local()}); err != nil {
		t.Fatal(err)
	}
	if n, err := fb[0](bufs, eps); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	h := buf.B[buf.Off()-20 : buf.Off()]
	if h[0] != 0x45 || h[9] != 50 || !bytes.Equal(h[12:16], []byte{192, 0, 2, 1}) || !bytes.Equal(h[16:20], []byte{192, 0, 2, 2}) || int(h[2])<<8|int(h[3]) != 30 {
		t.Errorf("outer header % x", h)
	}
}
