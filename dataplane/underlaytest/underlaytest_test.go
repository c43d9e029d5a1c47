package underlaytest

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/pkt"
)

var (
	epA = dataplane.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.1:4500"), Encap: dataplane.EncapUDP}
	epB = dataplane.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.2:4500"), Encap: dataplane.EncapUDP}
	epC = dataplane.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.3:4500"), Encap: dataplane.EncapUDP}
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
	bufs, eps := []*pkt.Buf{buf}, make([]dataplane.Endpoint, 1)
	send := func(u *Underlay, data string, to dataplane.Endpoint) {
		b := pkt.Get()
		defer pkt.Put(b)
		b.Set([]byte(data))
		if err := u.Send([]*pkt.Buf{b}, []dataplane.Endpoint{to}); err != nil {
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
	for _, want := range []dataplane.Endpoint{epA, epC} {
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
	if err := a.SendKeepalive(dataplane.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.2:0")}); err == nil {
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
