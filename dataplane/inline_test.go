package dataplane_test

import (
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/pkt"
)

// scriptSizes are the batch sizes the scripted TUN and underlay return, in
// turn: small batches (the reader processes them itself when nothing is in
// flight) mixed with batches larger than the inline limit (queued to the
// workers), so that both paths interleave within one SA's packets.
var scriptSizes = []int{1, 20, 2, 9, 64, 3, 1, 1, 40, 8, 33, 5}

// scriptTUN is a tun.Device whose Read returns exactly the next of
// scriptSizes packets from pkts (waiting for them), and whose Write passes
// copies to out.
type scriptTUN struct {
	pkts   chan []byte
	out    chan []byte
	next   int
	closed chan struct{}
	once   sync.Once
}

func newScriptTUN() *scriptTUN {
	return &scriptTUN{pkts: make(chan []byte, 8192), out: make(chan []byte, 8192), closed: make(chan struct{})}
}

func (t *scriptTUN) File() *os.File { return nil }

func (t *scriptTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	want := min(len(bufs), scriptSizes[t.next%len(scriptSizes)])
	t.next++
	for i := range want {
		select {
		case p := <-t.pkts:
			sizes[i] = copy(bufs[i][offset:], p)
		case <-t.closed:
			return 0, os.ErrClosed
		}
	}
	return want, nil
}

func (t *scriptTUN) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		select {
		case t.out <- append([]byte(nil), b[offset:]...):
		case <-t.closed:
			return i, os.ErrClosed
		}
	}
	return len(bufs), nil
}

func (t *scriptTUN) MTU() (int, error)        { return 1500, nil }
func (t *scriptTUN) Name() (string, error)    { return "script", nil }
func (t *scriptTUN) Events() <-chan tun.Event { return nil }
func (t *scriptTUN) BatchSize() int           { return 64 }
func (t *scriptTUN) Close() error             { t.once.Do(func() { close(t.closed) }); return nil }

// scriptUnderlay carries ESP packets one way: Send queues copies on wire;
// when recv is set, its one ReceiveFunc returns exactly the next of
// scriptSizes packets from wire (waiting for them), all from src, else it
// blocks until Close.
type scriptUnderlay struct {
	wire   chan []byte
	recv   bool
	src    endpoint.Endpoint
	next   int
	closed chan struct{}
	once   sync.Once
}

func (u *scriptUnderlay) Open() ([]dataplane.ReceiveFunc, error) {
	return []dataplane.ReceiveFunc{u.receive}, nil
}

func (u *scriptUnderlay) receive(bufs []*pkt.Buf, eps []endpoint.Endpoint) (int, error) {
	if !u.recv {
		<-u.closed
		return 0, net.ErrClosed
	}
	want := min(len(bufs), scriptSizes[(u.next+5)%len(scriptSizes)])
	u.next++
	for i := range want {
		select {
		case p := <-u.wire:
			bufs[i].Reset()
			bufs[i].Set(p)
			eps[i] = u.src
		case <-u.closed:
			return 0, net.ErrClosed
		}
	}
	return want, nil
}

func (u *scriptUnderlay) Send(bufs []*pkt.Buf, eps []endpoint.Endpoint) error {
	for _, b := range bufs {
		select {
		case u.wire <- append([]byte(nil), b.Bytes()...):
		case <-u.closed:
			return net.ErrClosed
		}
	}
	return nil
}

func (u *scriptUnderlay) SendKeepalive(endpoint.Endpoint) error { return nil }
func (u *scriptUnderlay) BatchSize() int                        { return 64 }
func (u *scriptUnderlay) Close() error                          { u.once.Do(func() { close(u.closed) }); return nil }

// TestOrderMixedBatches sends two SAs' packets through batches that the
// readers process themselves and batches that go to the workers, mixed,
// on both ends, and checks that every packet arrives, in order per SA, with
// no drop (no replay-window miss either): the inline path must wait for
// what is in flight. With one worker every batch is processed inline.
func TestOrderMixedBatches(t *testing.T) {
	// Several cores, so that the worker path is taken (with GOMAXPROCS 1
	// the readers process every batch themselves).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(4, runtime.GOMAXPROCS(0))))
	for _, workers := range []int{1, 4} {
		t.Run("workers"+itoa(workers), func(t *testing.T) {
			leakCheck(t)
			o := pairOpts{alg: esp.AES128GCM16}
			sadA, spdA := newDBs(t, o, spiAB4, spiAB6, spiBA4, spiBA6, gwA4, gwA6, gwB4, gwB6, siteA4, siteA6, siteB4, siteB6)
			sadB, spdB := newDBs(t, o, spiBA4, spiBA6, spiAB4, spiAB6, gwB4, gwB6, gwA4, gwA6, siteB4, siteB6, siteA4, siteA6)
			tunA, tunB := newScriptTUN(), newScriptTUN()
			wire := make(chan []byte, 8192)
			ulA := &scriptUnderlay{wire: wire, closed: make(chan struct{})}
			ulB := &scriptUnderlay{wire: wire, recv: true, src: epA, closed: make(chan struct{})}
			a, err := dataplane.New(dataplane.Config{
				TUN: tunA, Underlay: ulA, SAD: sadA, SPD: spdA, Workers: workers,
				Peers: []dataplane.PeerConfig{{Name: "B", Endpoint: epB, OutSPIs: []uint32{spiAB4, spiAB6}, Keepalive: -1}},
			})
			if err != nil {
				t.Fatal(err)
			}
			b, err := dataplane.New(dataplane.Config{
				TUN: tunB, Underlay: ulB, SAD: sadB, SPD: spdB, Workers: workers,
				Peers: []dataplane.PeerConfig{{Name: "A", Endpoint: epA, InSPIs: []uint32{spiAB4, spiAB6}, Keepalive: -1}},
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []*dataplane.Dataplane{a, b} {
				if err := d.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := d.Close(); err != nil {
						t.Error(err)
					}
				})
			}
			// 2n is a multiple of the sum of scriptSizes (187): the
			// last reads are complete.
			const n = 187 * 8
			go func() {
				for i := range n {
					for _, p := range [][]byte{udpPacket(hostA4, hostB4, uint64(i), 200), udpPacket(hostA6, hostB6, uint64(i), 200)} {
						select {
						case tunA.pkts <- p:
						case <-tunA.closed:
							return
						}
					}
				}
			}()
			var seqs familySeqs
			for range 2 * n {
				var p []byte
				select {
				case p = <-tunB.out:
				case <-time.After(10 * time.Second):
					t.Fatalf("timeout: got %d IPv4 and %d IPv6 packets of %d each; A %+v; B %+v",
						seqs.v4, seqs.v6, n, a.Stats().Drops, b.Stats().Drops)
				}
				seqs.check(t, p)
			}
			// Each side adds its counters after its write returns.
			waitFor(t, "counters", func() bool { return b.Stats().DeliveredPackets == 2*n && a.Stats().SentPackets == 2*n })
			sa, sb := a.Stats(), b.Stats()
			if sa.Dropped() != 0 || sb.Dropped() != 0 {
				t.Errorf("drops: A %v, B %v", sa.Drops, sb.Drops)
			}
			if sa.SentPackets != 2*n || sb.InPackets != 2*n {
				t.Errorf("A sent %d, B received %d; want %d", sa.SentPackets, sb.InPackets, 2*n)
			}
		})
	}
}
