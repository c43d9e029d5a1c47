package underlay

import (
	"bytes"
	"encoding/binary"
	"github.com/mipsec/mipsec/internal/testns"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
)

// socketpairConn returns both ends of an AF_UNIX datagram socketpair as
// PacketConns (no root needed).
func socketpairConn(t *testing.T) (a, b net.PacketConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	conn := func(fd int) net.PacketConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FilePacketConn(f)
		if err != nil {
			t.Fatalf("FilePacketConn: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// checkHeadersPristine fails unless every message header of r is as
// newMmsgReader built it, once read's restore has run.
func checkHeadersPristine(t *testing.T, r *mmsgReader, step string) {
	t.Helper()
	r.restore()
	for i := range r.hs {
		m := &r.hs[i]
		h := &m.hdr
		if h.Name != &r.names[i][0] || h.Namelen != unix.SizeofSockaddrInet6 || h.Iov != &r.iovs[i] || h.Iovlen != 1 {
			t.Errorf("%s: header %d: name %p/%d, iov %p/%d", step, i, h.Name, h.Namelen, h.Iov, h.Iovlen)
		}
		if r.oobLen > 0 && (h.Control != &r.oob[i*r.oobLen] || int(h.Controllen) != r.oobLen) {
			t.Errorf("%s: header %d: control %p/%d, want %d bytes", step, i, h.Control, h.Controllen, r.oobLen)
		}
		if h.Flags != 0 || m.len != 0 {
			t.Errorf("%s: header %d: flags %#x, len %d left over", step, i, h.Flags, m.len)
		}
	}
}

// TestMmsgReaderRestoresUsedHeaders: read restores only the headers the
// previous call used, and that is enough: a short read that truncated its
// one message, then a full read, returns whole, untruncated messages with
// the right lengths; after every call (an error included) each header is
// back to its initial state before the next.
func TestMmsgReaderRestoresUsedHeaders(t *testing.T) {
	const n, bufLen = 8, 100
	a, b := socketpairConn(t)
	r, err := newMmsgReader(b, n, 32)
	if err != nil {
		t.Fatal(err)
	}
	checkHeadersPristine(t, r, "new")
	var bufs [n][bufLen]byte
	for i := range bufs {
		r.setBuf(i, bufs[i][:])
	}
	send := func(p []byte) {
		t.Helper()
		if _, err := a.(*net.UnixConn).Write(p); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	msg := func(seq, size int) []byte {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(seq*31 + i)
		}
		return p
	}

	// A short read: one datagram, too long for its buffer.
	send(msg(0, 2*bufLen))
	got, err := r.read(n)
	if err != nil || got != 1 {
		t.Fatalf("short read = %d, %v; want 1", got, err)
	}
	if !r.truncated(0) || r.size(0) != bufLen {
		t.Fatalf("short read: truncated %v, size %d; want true, %d", r.truncated(0), r.size(0), bufLen)
	}
	if r.dirty > 2 {
		t.Errorf("after a 1-message read %d headers marked used, want at most 2", r.dirty)
	}
	checkHeadersPristine(t, r, "after short read")

	// A full read: every slot, the truncated one included, must come back
	// clean, with its own length.
	for i := range n {
		send(msg(i+1, 10+i))
	}
	got, err = r.read(n)
	if err != nil || got != n {
		t.Fatalf("full read = %d, %v; want %d", got, err, n)
	}
	for i := range n {
		if r.truncated(i) {
			t.Errorf("message %d: truncated flag left over", i)
		}
		if r.size(i) != 10+i || !bytes.Equal(bufs[i][:r.size(i)], msg(i+1, 10+i)) {
			t.Errorf("message %d: %d bytes %x, want %x", i, r.size(i), bufs[i][:r.size(i)], msg(i+1, 10+i))
		}
	}
	checkHeadersPristine(t, r, "after full read")

	// A shorter batch, then an error: everything that may have been
	// written is restored.
	send(msg(20, 5))
	if got, err = r.read(3); err != nil || got != 1 || r.size(0) != 5 {
		t.Fatalf("read(3) = %d, %v, size %d; want 1 message of 5 bytes", got, err, r.size(0))
	}
	r.hs[5].hdr.Flags = unix.MSG_TRUNC // as a stray kernel write would
	r.dirty = n
	checkHeadersPristine(t, r, "after partial read")
	b.Close()
	if _, err := r.read(n); err == nil {
		t.Fatal("read on a closed socket succeeded")
	}
	checkHeadersPristine(t, r, "after error")
}

// TestUnderlayShortThenFullRead: a receive that returned one packet, then
// a full batch, returns every packet whole, at its place, in Bufs the
// caller handed in that call, although the caller replaced, swapped and
// scribbled on Bufs in between (as the dataplane does), and although the
// receiver only re-points the messages whose Buf changed. For raw ESP over
// IPv4 and IPv6 (normalised header in front) and ESP in UDP with and
// without GRO.
func TestUnderlayShortThenFullRead(t *testing.T) {
	ns := testns.New(t)
	a4, b4 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	a6 := netip.IPv6Loopback()
	for _, tc := range []struct {
		name       string
		cfgA, cfgB Config
		dst        netip.AddrPort
		encap      endpoint.Encap
	}{
		{"raw4", Config{IPv4: a4, Mode: ModeRaw}, Config{IPv4: b4, Mode: ModeRaw},
			netip.AddrPortFrom(b4, 0), endpoint.EncapRaw},
		{"raw6", Config{IPv6: a6, Mode: ModeRaw}, Config{IPv6: netip.IPv6Unspecified(), Mode: ModeRaw},
			netip.AddrPortFrom(a6, 0), endpoint.EncapRaw},
		{"udp", Config{IPv4: a4, Mode: ModeUDP, DisableGSO: true, DisableGRO: true},
			Config{IPv4: b4, Mode: ModeUDP, DisableGSO: true, DisableGRO: true},
			netip.AddrPortFrom(b4, endpoint.UDPEncapPort), endpoint.EncapUDP},
		{"udp+gro", Config{IPv4: a4, Mode: ModeUDP}, Config{IPv4: b4, Mode: ModeUDP},
			netip.AddrPortFrom(b4, endpoint.UDPEncapPort), endpoint.EncapUDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ua, _ := openUnderlay(t, ns, tc.cfgA)
			ub, fns := openUnderlay(t, ns, tc.cfgB)
			batch := ub.BatchSize()
			bufs := make([]*pkt.Buf, batch)
			for i := range bufs {
				bufs[i] = new(pkt.Buf)
			}
			reps := make([]endpoint.Endpoint, batch)
			watchdog := time.AfterFunc(10*time.Second, func() { ub.Close() })
			defer watchdog.Stop()
			seq := uint32(0)
			// round sends k packets and receives them all.
			round := func(k int) {
				t.Helper()
				var pkts [][]byte
				for i := range k {
					seq++
					pkts = append(pkts, fakeESP(0x700, seq, 16+(i*211)%1385))
				}
				eps := make([]endpoint.Endpoint, k)
				for i := range eps {
					eps[i] = endpoint.Endpoint{Addr: tc.dst, Encap: tc.encap}
				}
				if err := ua.Send(bufsOf(pkts), eps); err != nil {
					t.Fatalf("Send: %v", err)
				}
				for got := 0; got < k; {
					handed := make(map[*pkt.Buf]bool, len(bufs))
					for _, b := range bufs {
						handed[b] = true
					}
					n, err := fns[0](bufs, reps)
					if err != nil {
						t.Fatalf("receive after %d of %d: %v", got, k, err)
					}
					for i, b := range bufs[:n] {
						if !handed[b] {
							t.Fatalf("packet %d returned in a Buf not handed in", got+i)
						}
						delete(handed, b) // no Buf twice
						want := pkts[got+i]
						if !bytes.Equal(b.Bytes(), want) {
							t.Fatalf("packet %d (seq %d): %d bytes %x..., want %d bytes %x...",
								got+i, seq-uint32(k-got-i)+1, b.Len(), b.Bytes()[:min(12, b.Len())], len(want), want[:12])
						}
						if b.Off() < pkt.Headroom {
							t.Fatalf("packet %d at offset %d, before pkt.Headroom", got+i, b.Off())
						}
						if tc.encap == endpoint.EncapRaw {
							h := b.B[:b.Off()]
							if ip := h[len(h)-20:]; tc.name == "raw4" && (ip[0] != 0x45 || int(binary.BigEndian.Uint16(ip[2:])) != 20+b.Len()) {
								t.Fatalf("packet %d: no normalised IPv4 header in front", got+i)
							}
							if tc.name == "raw6" && h[len(h)-40]>>4 != 6 {
								t.Fatalf("packet %d: no normalised IPv6 header in front", got+i)
							}
						}
						if reps[i].Encap != tc.encap {
							t.Fatalf("packet %d: endpoint %v", got+i, reps[i])
						}
					}
					got += n
				}
			}
			// scramble does what a caller may do between calls: hand the
			// returned Buf on and put a fresh one in its place, swap
			// two, and leave junk offsets in others.
			scramble := func() {
				bufs[0] = new(pkt.Buf)
				bufs[0].Set([]byte{0xde, 0xad})
				bufs[0].TrimFront(1)
				bufs[3], bufs[batch-1] = bufs[batch-1], bufs[3]
				bufs[1].SetBytes(0, 3)
				bufs[batch/2].SetBytes(pkt.Size-1, 1)
			}
			round(1)
			scramble()
			round(batch)
			round(1)
			// Rotate: every message's Buf changes.
			bufs = append(bufs[1:], bufs[0])
			round(batch)
			round(3)
			scramble()
			round(batch)
			if st := ub.Stats(); st.RxMalformed.Load() != 0 {
				t.Errorf("%d packets dropped as malformed", st.RxMalformed.Load())
			}
		})
	}
}

// BenchmarkUnderlayReceiveOne is the short-read case: one 1400-byte packet
// sent, then received with a whole batch of Bufs (what a reader does on a
// lightly loaded link, and what the underlay pays per call besides the
// system calls).
func BenchmarkUnderlayReceiveOne(b *testing.B) {
	ns := testns.New(b)
	a4, b4 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for _, tc := range []struct {
		name  string
		mode  Mode
		encap endpoint.Encap
		port  uint16
	}{{"raw", ModeRaw, endpoint.EncapRaw, 0}, {"udp", ModeUDP, endpoint.EncapUDP, endpoint.UDPEncapPort}} {
		b.Run(tc.name, func(b *testing.B) {
			ua, _ := openUnderlay(b, ns, Config{IPv4: a4, Mode: tc.mode, DisableGSO: true, DisableGRO: true})
			ub, fns := openUnderlay(b, ns, Config{IPv4: b4, Mode: tc.mode, DisableGSO: true, DisableGRO: true})
			sbufs := bufsOf([][]byte{fakeESP(5, 1, 1400)})
			eps := []endpoint.Endpoint{{Addr: netip.AddrPortFrom(b4, tc.port), Encap: tc.encap}}
			rbufs := bufsOf(make([][]byte, ub.BatchSize()))
			reps := make([]endpoint.Endpoint, len(rbufs))
			watchdog := time.AfterFunc(time.Hour, func() { ub.Close() })
			defer watchdog.Stop()
			b.ReportAllocs()
			for b.Loop() {
				watchdog.Reset(10 * time.Second)
				if err := ua.Send(sbufs, eps); err != nil {
					b.Fatal(err)
				}
				if n, err := fns[0](rbufs, reps); err != nil || n != 1 {
					b.Fatalf("receive = %d, %v", n, err)
				}
			}
		})
	}
}
