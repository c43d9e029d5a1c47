// Package tuntest is an in-memory tun.Device for tests and benchmarks (like
// wireguard-go tun/tuntest), with a configurable batch size so that the
// dataplane's batching runs at 1 and at N.
package tuntest

import (
	"os"
	"sync"

	"golang.zx2c4.com/wireguard/tun"
)

// DefaultMTU is what MTU reports.
const DefaultMTU = 1420

// TUN is a tun.Device backed by channels. Packets sent on Outbound are what
// the dataplane reads (the host sending into the tunnel); packets the
// dataplane writes arrive on Inbound as copies. Close is idempotent.
type TUN struct {
	// Outbound carries packets to the reader of the device.
	Outbound chan []byte
	// Inbound receives copies of the packets written to the device.
	Inbound chan []byte

	batch  int
	events chan tun.Event
	closed chan struct{}
	once   sync.Once
}

var _ tun.Device = (*TUN)(nil)

// New returns a TUN whose Read returns up to batch packets (batch < 1 means
// 1) and whose channels hold up to buffer packets.
func New(batch, buffer int) *TUN {
	t := &TUN{
		Outbound: make(chan []byte, buffer),
		Inbound:  make(chan []byte, buffer),
		batch:    max(1, batch),
		events:   make(chan tun.Event, 1),
		closed:   make(chan struct{}),
	}
	t.events <- tun.EventUp
	return t
}

// File returns nil.
func (t *TUN) File() *os.File { return nil }

// Read blocks for one packet from Outbound, then takes whatever else is
// queued, up to BatchSize and len(bufs). After Close it returns os.ErrClosed.
func (t *TUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	limit := min(len(bufs), t.batch)
	select {
	case <-t.closed:
		return 0, os.ErrClosed
	case p := <-t.Outbound:
		sizes[0] = copy(bufs[0][offset:], p)
	}
	n := 1
	for n < limit {
		select {
		case p := <-t.Outbound:
			sizes[n] = copy(bufs[n][offset:], p)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// Write copies bufs[i][offset:] to Inbound. After Close it returns
// os.ErrClosed.
func (t *TUN) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		p := append([]byte(nil), b[offset:]...)
		select {
		case <-t.closed:
			return i, os.ErrClosed
		case t.Inbound <- p:
		}
	}
	return len(bufs), nil
}

// MTU returns DefaultMTU.
func (t *TUN) MTU() (int, error) { return DefaultMTU, nil }

// Name returns "tuntest".
func (t *TUN) Name() (string, error) { return "tuntest", nil }

// Events returns the event channel (EventUp, closed by Close).
func (t *TUN) Events() <-chan tun.Event { return t.events }

// BatchSize returns the batch given to New.
func (t *TUN) BatchSize() int { return t.batch }

// Close stops Read and Write and closes the event channel.
func (t *TUN) Close() error {
	t.once.Do(func() {
		close(t.closed)
		close(t.events)
	})
	return nil
}
