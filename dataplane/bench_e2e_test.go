package dataplane_test

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/pkt"
)

// BenchmarkDataplane runs the whole pipeline with its goroutines (reader,
// Workers workers, writer) between a TUN that produces packets as fast as
// it is read and an underlay that discards them (out), or between an
// underlay that produces sealed packets and a TUN that discards them (in,
// anti-replay off so the same packets can be replayed). It measures the
// goroutine handoffs and the parallel crypto: pkts/s for all cores.
func BenchmarkDataplane(b *testing.B) {
	for _, alg := range []esp.Algorithm{esp.AES128GCM16, esp.ChaCha20Poly1305} {
		for _, size := range []int{64, 1400} {
			for _, batch := range []int{1, 32, 128} {
				name := fmt.Sprintf("%v/%d/batch%d", alg, size, batch)
				b.Run("out/"+name, func(b *testing.B) { benchE2E(b, alg, size, batch, true) })
				b.Run("in/"+name, func(b *testing.B) { benchE2E(b, alg, size, batch, false) })
			}
		}
	}
}

func benchE2E(b *testing.B, alg esp.Algorithm, size, batch int, out bool) {
	o := pairOpts{alg: alg, noReplay: true}
	sadA, spdA := newDBs(b, o, spiAB4, spiAB6, spiBA4, spiBA6, gwA4, gwA6, gwB4, gwB6, siteA4, siteA6, siteB4, siteB6)
	inner := udpPacket(hostA4, hostB4, 1, size)

	total := int64(b.N) * int64(batch)
	done := make(chan struct{})
	var count atomic.Int64
	sinkFn := func(n int) {
		if count.Add(int64(n)) >= total {
			select {
			case <-done:
			default:
				close(done)
			}
		}
	}
	gt := &genTUN{batch: batch, closed: make(chan struct{}), sink: sinkFn}
	gu := &genUnderlay{batch: batch, closed: make(chan struct{}), sink: sinkFn}
	if out {
		gt.pkt = inner
		gt.left.Store(total)
	} else {
		// B's view: the packets A sealed arrive on spiAB4.
		sadB, _ := newDBs(b, o, spiBA4, spiBA6, spiAB4, spiAB6, gwB4, gwB6, gwA4, gwA6, siteB4, siteB6, siteA4, siteA6)
		buf := pkt.Get()
		buf.Set(inner)
		if v := sadA.Outbound(spiAB4).Seal(buf); v != esp.OK {
			b.Fatal(v)
		}
		_, off, _ := esp.Locate(buf.Bytes())
		gu.pkt = append([]byte(nil), buf.Bytes()[off:]...)
		pkt.Put(buf)
		gu.left.Store(total)
		sadA = sadB
		_, spdA = newDBs(b, o, spiBA4, spiBA6, spiAB4, spiAB6, gwB4, gwB6, gwA4, gwA6, siteB4, siteB6, siteA4, siteA6)
	}
	d, err := dataplane.New(dataplane.Config{TUN: gt, Underlay: gu, SAD: sadA, SPD: spdA,
		Peers: []dataplane.PeerConfig{{Name: "B", Endpoint: epB, OutSPIs: []uint32{spiAB4}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(size * batch))
	b.ResetTimer()
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	d.Close()
	if s := d.Stats(); s.Dropped() != 0 {
		b.Fatalf("drops %v", s.Drops)
	}
	reportPPS(b, batch)
}

// genTUN returns copies of pkt from Read until left runs out, then blocks;
// Write discards (counting through sink).
type genTUN struct {
	pkt    []byte
	batch  int
	left   atomic.Int64
	closed chan struct{}
	once   sync.Once
	sink   func(int)
}

func (t *genTUN) File() *os.File { return nil }
func (t *genTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := min(len(bufs), t.batch)
	if t.pkt == nil || t.left.Add(-int64(n)) < 0 {
		<-t.closed
		return 0, os.ErrClosed
	}
	for i := range n {
		sizes[i] = copy(bufs[i][offset:], t.pkt)
	}
	return n, nil
}
func (t *genTUN) Write(bufs [][]byte, offset int) (int, error) {
	t.sink(len(bufs))
	return len(bufs), nil
}
func (t *genTUN) MTU() (int, error)        { return 1500, nil }
func (t *genTUN) Name() (string, error)    { return "gen", nil }
func (t *genTUN) Events() <-chan tun.Event { return nil }
func (t *genTUN) BatchSize() int           { return t.batch }
func (t *genTUN) Close() error             { t.once.Do(func() { close(t.closed) }); return nil }

// genUnderlay receives copies of pkt until left runs out, then blocks;
// Send discards (counting through sink).
type genUnderlay struct {
	pkt    []byte
	batch  int
	left   atomic.Int64
	closed chan struct{}
	once   sync.Once
	sink   func(int)
}

func (u *genUnderlay) Open() ([]dataplane.ReceiveFunc, error) {
	return []dataplane.ReceiveFunc{u.receive}, nil
}
func (u *genUnderlay) receive(bufs []*pkt.Buf, eps []endpoint.Endpoint) (int, error) {
	n := min(len(bufs), u.batch)
	if u.pkt == nil || u.left.Add(-int64(n)) < 0 {
		<-u.closed
		return 0, net.ErrClosed
	}
	for i := range n {
		bufs[i].Reset()
		bufs[i].Set(u.pkt)
		eps[i] = epA
	}
	return n, nil
}
func (u *genUnderlay) Send(bufs []*pkt.Buf, eps []endpoint.Endpoint) error {
	u.sink(len(bufs))
	return nil
}
func (u *genUnderlay) SendKeepalive(endpoint.Endpoint) error { return nil }
func (u *genUnderlay) BatchSize() int                        { return u.batch }
func (u *genUnderlay) Close() error                          { u.once.Do(func() { close(u.closed) }); return nil }
