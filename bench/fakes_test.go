package bench

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
)

func wireBufs(t *testing.T, payloads ...[]byte) []*pkt.Buf {
	t.Helper()
	bufs := make([]*pkt.Buf, len(payloads))
	for i, p := range payloads {
		bufs[i] = pkt.Get()
		bufs[i].Set(p)
		t.Cleanup(func() { pkt.Put(bufs[i]) })
	}
	return bufs
}

// TestWire checks the fake wire: packets arrive in order, copied, with the
// receiver's source; what was queued by several Sends comes out of one
// receive (recvmmsg); an oversized packet is dropped and counted; a full
// wire blocks Send until the receiver frees room; Close releases a blocked
// Send and a blocked receive with net.ErrClosed.
func TestWire(t *testing.T) {
	w := newWire(4, 8)
	r := &receiver{w: w, src: epA}
	fns, err := r.Open()
	if err != nil || len(fns) != 1 {
		t.Fatal(fns, err)
	}
	recv := fns[0]
	s := sender{w}
	eps := []endpoint.Endpoint{epB, epB, epB, epB}
	a, big, b := []byte("aaaa"), []byte("123456789"), []byte("bb")
	in := wireBufs(t, a, big, b)
	if err := s.Send(in, eps); err != nil {
		t.Fatal(err)
	}
	in[0].Bytes()[0] = 'x' // the wire copied
	if err := s.Send(in[2:], eps); err != nil {
		t.Fatal(err)
	}
	if n := w.dropped.Load(); n != 1 {
		t.Errorf("dropped %d, want 1", n)
	}
	out := wireBufs(t, nil, nil, nil, nil)
	outEps := make([]endpoint.Endpoint, 4)
	n, err := recv(out, outEps)
	if err != nil || n != 3 {
		t.Fatalf("receive: %d, %v; want 3 packets", n, err)
	}
	for i, want := range [][]byte{a, b, b} {
		if !bytes.Equal(out[i].Bytes(), want) || outEps[i] != epA {
			t.Errorf("packet %d: %q from %v, want %q from %v", i, out[i].Bytes(), outEps[i], want, epA)
		}
	}

	// Fill the wire (4 slots): the fifth packet waits for the receiver.
	five := wireBufs(t, a, a, a, a, b)
	sent := make(chan error, 1)
	go func() { sent <- s.Send(five, append(eps, epB)) }()
	select {
	case err := <-sent:
		t.Fatalf("Send on a full wire returned %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if n, err := recv(out[:1], outEps); n != 1 || err != nil {
		t.Fatalf("receive: %d, %v", n, err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send after room: %v", err)
	}
	if n, err := recv(out, outEps); n != 4 || err != nil || !bytes.Equal(out[3].Bytes(), b) {
		t.Fatalf("receive: %d, %v, last %q", n, err, out[3].Bytes())
	}

	// Close releases a Send waiting on a full wire...
	if err := s.Send(five[:4], eps); err != nil {
		t.Fatal(err)
	}
	go func() { sent <- s.Send(five[4:], eps) }()
	time.Sleep(10 * time.Millisecond)
	r.Close()
	select {
	case err := <-sent:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Send after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a blocked Send")
	}
	// ... and a receive waiting on an empty one.
	w2 := newWire(4, 8)
	got := make(chan error, 1)
	go func() { _, err := w2.receive(out, outEps, epA); got <- err }()
	time.Sleep(10 * time.Millisecond)
	sender{w2}.Close()
	select {
	case err := <-got:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked receive after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a blocked receive")
	}
	if _, err := recv(out, outEps); !errors.Is(err, net.ErrClosed) {
		t.Errorf("receive after Close: %v", err)
	}
	if err := s.Send(in[:1], eps); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

// TestGenTUN checks the generator: Read waits for begin, returns perRead
// copies, and fails with os.ErrClosed after Close, also when it was
// waiting.
func TestGenTUN(t *testing.T) {
	g := newGenTUN([][]byte{[]byte("p1"), []byte("p22")}, 3)
	bufs := [][]byte{make([]byte, 8), make([]byte, 8), make([]byte, 8), make([]byte, 8)}
	sizes := make([]int, 4)
	done := make(chan error, 1)
	go func() { _, err := g.Read(bufs, sizes, 2); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("Read before begin returned %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	g.begin()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n, err := g.Read(bufs, sizes, 2)
	// The first read took p1 p22 p1; this one p22 p1 p22.
	if err != nil || n != 3 || sizes[0] != 3 || string(bufs[0][2:5]) != "p22" || string(bufs[1][2:4]) != "p1" {
		t.Errorf("Read: %d, %v, sizes %v, %q", n, err, sizes, bufs)
	}
	g.Close()
	if _, err := g.Read(bufs, sizes, 2); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	g2 := newGenTUN([][]byte{[]byte("p")}, 1)
	go func() { _, err := g2.Read(bufs, sizes, 0); done <- err }()
	time.Sleep(5 * time.Millisecond)
	g2.Close()
	g2.begin() // after Close: Read stays closed
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Errorf("waiting Read after Close: %v", err)
	}
	if _, err := g2.Read(bufs, sizes, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close and begin: %v", err)
	}
}

// TestPipeCloseNoLeak checks that closing a running pipe ends every
// goroutine it started.
func TestPipeCloseNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, c := range benchCases(t, "aes128gcm16") {
		if c.name != "1400" {
			continue
		}
		p, err := newPipe(c, 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		p.gen.begin()
		for p.sink.packets.Load() < 1000 {
			time.Sleep(time.Millisecond)
		}
		if err := p.check(); err != nil {
			t.Error(err)
		}
		p.close() // drops what is in flight (DropClosing)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after close, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSinkTUN checks that the sink counts what it is given and flags every
// packet that is not an IPv4 packet of exactly its total length.
func TestSinkTUN(t *testing.T) {
	good := udpPacket(64, 0)
	v6 := slices.Clone(good)
	v6[0] = 0x60
	long := append(slices.Clone(good), 0) // total length 64, 65 bytes
	shortIHL := slices.Clone(good)
	shortIHL[0] = 0x44 // IHL 16 bytes (RFC 791 §3.1: at least 20)
	const off = 16
	var bufs [][]byte
	for _, p := range [][]byte{good, good[:19], v6, long, good[:40], shortIHL, good} {
		bufs = append(bufs, append(make([]byte, off), p...))
	}
	s := newSinkTUN(7)
	if n, err := s.Write(bufs, off); n != len(bufs) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if got := s.bad.Load(); got != 5 {
		t.Errorf("%d bad packets, want 5", got)
	}
	if got := s.packets.Load(); got != 7 {
		t.Errorf("%d packets, want 7", got)
	}
	if got, want := s.bytes.Load(), uint64(64+19+64+65+40+64+64); got != want {
		t.Errorf("%d bytes, want %d", got, want)
	}
	select {
	case <-s.reached:
	default:
		t.Error("target of 7 packets reached but not signalled")
	}
}

// TestGenTUNPause: a paused generator's Read blocks and reports how many
// packets it produced; resume lets it go on; Close ends a paused Read.
func TestGenTUNPause(t *testing.T) {
	g := newGenTUN([][]byte{[]byte("p1")}, 2)
	bufs := [][]byte{make([]byte, 8), make([]byte, 8)}
	sizes := make([]int, 2)
	g.begin()
	for range 3 {
		if n, err := g.Read(bufs, sizes, 0); n != 2 || err != nil {
			t.Fatalf("Read: %d, %v", n, err)
		}
	}
	g.pause()
	done := make(chan error, 1)
	go func() { _, err := g.Read(bufs, sizes, 0); done <- err }()
	if n, ok := g.waitParked(context.Background()); !ok || n != 6 {
		t.Fatalf("waitParked: %d, %v; want 6 packets", n, ok)
	}
	select {
	case err := <-done:
		t.Fatalf("Read while paused returned %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	g.resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	g.pause()
	go func() { _, err := g.Read(bufs, sizes, 0); done <- err }()
	if n, ok := g.waitParked(context.Background()); !ok || n != 8 {
		t.Fatalf("second pause: %d, %v; want 8 packets", n, ok)
	}
	g.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Errorf("paused Read after Close: %v", err)
	}
}
