package underlay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/testenv"
	"github.com/mipsec/mipsec/internal/testns"
	"github.com/mipsec/mipsec/pkt"
)

// openUnderlay makes and opens an underlay inside ns.
func openUnderlay(t testing.TB, ns *testns.NS, cfg Config) (*Linux, []ReceiveFunc) {
	t.Helper()
	u, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var fns []ReceiveFunc
	ns.Do(t, func() { fns, err = u.Open() })
	if err != nil {
		t.Fatalf("Open in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { u.Close() })
	return u, fns
}

// fakeESP returns a packet of n bytes with SPI spi and sequence seq and a
// recognisable body.
func fakeESP(spi, seq uint32, n int) []byte {
	p := make([]byte, n)
	binary.BigEndian.PutUint32(p, spi)
	binary.BigEndian.PutUint32(p[4:], seq)
	for i := 8; i < n; i++ {
		p[i] = byte(int(seq) + i)
	}
	return p
}

// bufsOf copies packets into fresh Bufs.
func bufsOf(pkts [][]byte) []*pkt.Buf {
	bufs := make([]*pkt.Buf, len(pkts))
	for i, p := range pkts {
		bufs[i] = pkt.Get()
		bufs[i].Set(p)
	}
	return bufs
}

type received struct {
	p  []byte
	ep endpoint.Endpoint
}

// recvN reads until n packets arrived or timeout (then it closes u to stop
// the reader). It returns what arrived.
func recvN(t testing.TB, u *Linux, fn ReceiveFunc, n int, timeout time.Duration) []received {
	t.Helper()
	type result struct {
		got []received
		err error
	}
	done := make(chan result, 1)
	go func() {
		batch := u.BatchSize()
		bufs := make([]*pkt.Buf, batch)
		for i := range bufs {
			bufs[i] = pkt.Get()
		}
		eps := make([]endpoint.Endpoint, batch)
		var got []received
		for len(got) < n {
			k, err := fn(bufs, eps)
			if err != nil {
				done <- result{got, err}
				return
			}
			for i := 0; i < k; i++ {
				got = append(got, received{bytes.Clone(bufs[i].Bytes()), eps[i]})
				if bufs[i].HeadroomLen() < pkt.Headroom {
					done <- result{got, fmt.Errorf("packet %d: headroom %d < %d", i, bufs[i].HeadroomLen(), pkt.Headroom)}
					return
				}
			}
		}
		done <- result{got, nil}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Errorf("receive: %v (after %d packets)", r.err, len(r.got))
		}
		return r.got
	case <-time.After(timeout):
		u.Close()
		r := <-done
		t.Errorf("receive: timeout after %v: %d of %d packets", timeout, len(r.got), n)
		return r.got
	}
}

// testSizes are the packet sizes of a test batch: a GSO-friendly run of
// equal sizes, a shorter tail, then mixed sizes.
func testSizes() []int {
	var s []int
	for range 40 {
		s = append(s, 1400)
	}
	s = append(s, 1000)
	for i := range 30 {
		s = append(s, 8+(i*97)%1300)
	}
	for range 20 {
		s = append(s, 300)
	}
	return s
}

func TestUnderlayTransfer(t *testing.T) {
	p := testns.NewVethPair(t)
	type tc struct {
		name        string
		encap       endpoint.Encap
		v6          bool
		offloadsOff bool
	}
	var tcs []tc
	for _, e := range []endpoint.Encap{endpoint.EncapRaw, endpoint.EncapUDP} {
		for _, v6 := range []bool{false, true} {
			tcs = append(tcs, tc{fmt.Sprintf("%v/v6=%v", e, v6), e, v6, false})
			if e == endpoint.EncapUDP {
				tcs = append(tcs, tc{fmt.Sprintf("%v/v6=%v/nooffload", e, v6), e, v6, true})
			}
		}
	}
	for _, tt := range tcs {
		t.Run(tt.name, func(t *testing.T) {
			cfgA := Config{IPv4: p.A4, IPv6: p.A6, DisableGSO: tt.offloadsOff, DisableGRO: tt.offloadsOff}
			cfgB := Config{IPv4: netip.IPv4Unspecified(), IPv6: netip.IPv6Unspecified(), DisableGSO: tt.offloadsOff, DisableGRO: tt.offloadsOff}
			ua, _ := openUnderlay(t, p.A, cfgA)
			ub, fns := openUnderlay(t, p.B, cfgB)
			if len(fns) != 4 {
				t.Fatalf("Open returned %d ReceiveFuncs, want 4", len(fns))
			}
			// Open order: raw4, raw6, udp4, udp6.
			idx := 0
			if tt.encap == endpoint.EncapUDP {
				idx = 2
			}
			src, dst := p.A4, p.B4
			if tt.v6 {
				idx++
				src, dst = p.A6, p.B6
			}
			var port uint16
			if tt.encap == endpoint.EncapUDP {
				port = endpoint.UDPEncapPort
			}
			gso, gro := ua.Offloads(tt.v6)
			t.Logf("sender GSO=%v, receiver GRO=%v", gso, func() bool { _, g := ub.Offloads(tt.v6); return g }())
			if tt.offloadsOff && (gso || gro) {
				t.Errorf("offloads on although disabled")
			}

			var pkts [][]byte
			for i, n := range testSizes() {
				pkts = append(pkts, fakeESP(0x1000+uint32(i%3), uint32(i+1), n))
			}
			bufs := bufsOf(pkts)
			eps := make([]endpoint.Endpoint, len(bufs))
			for i := range eps {
				eps[i] = endpoint.Endpoint{Addr: netip.AddrPortFrom(dst, port), Encap: tt.encap}
			}
			if err := ua.Send(bufs, eps); err != nil {
				t.Fatalf("Send: %v", err)
			}
			for i, b := range bufs {
				if !bytes.Equal(b.Bytes(), pkts[i]) {
					t.Fatalf("Send changed packet %d", i)
				}
				pkt.Put(b)
			}
			got := recvN(t, ub, fns[idx], len(pkts), 5*time.Second)
			if len(got) != len(pkts) {
				t.Fatalf("received %d packets, want %d", len(got), len(pkts))
			}
			// Same socket, same path: order is kept, but compare by
			// sequence number so a reorder reads clearly.
			sort.Slice(got, func(i, j int) bool {
				return binary.BigEndian.Uint32(got[i].p[4:]) < binary.BigEndian.Uint32(got[j].p[4:])
			})
			wantEP := endpoint.Endpoint{Addr: netip.AddrPortFrom(src, port), Encap: tt.encap}
			for i, r := range got {
				if !bytes.Equal(r.p, pkts[i]) {
					t.Errorf("packet %d: got %d bytes %x..., want %d bytes %x...", i, len(r.p), r.p[:min(12, len(r.p))], len(pkts[i]), pkts[i][:12])
				}
				if r.ep != wantEP {
					t.Errorf("packet %d: endpoint %v, want %v", i, r.ep, wantEP)
				}
			}
			st := ub.Stats()
			t.Logf("receiver: %d coalesced (GRO) datagrams", st.RxCoalesced.Load())
			if n := st.RxMalformed.Load() + st.RxFragments.Load(); n != 0 {
				t.Errorf("receiver dropped %d packets as malformed/fragments", n)
			}
		})
	}
}

// TestUnderlayRFC3948Demux: keepalives and non-ESP-marker (IKE) datagrams
// are counted and never returned (RFC 3948 §2.2, §2.3), as are datagrams too
// short for ESP.
func TestUnderlayRFC3948Demux(t *testing.T) {
	p := testns.NewVethPair(t)
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			src, dst := p.A4, p.B4
			if v6 {
				src, dst = p.A6, p.B6
			}
			ua, _ := openUnderlay(t, p.A, Config{IPv4: p.A4, IPv6: p.A6, Mode: ModeUDP})
			ub, fns := openUnderlay(t, p.B, Config{IPv4: p.B4, IPv6: p.B6, Mode: ModeUDP})
			fn := fns[0]
			if v6 {
				fn = fns[1]
			}
			ep := endpoint.Endpoint{Addr: netip.AddrPortFrom(dst, endpoint.UDPEncapPort), Encap: endpoint.EncapUDP}
			if err := ua.SendKeepalive(ep); err != nil {
				t.Fatalf("SendKeepalive: %v", err)
			}
			ike := append([]byte{0, 0, 0, 0}, []byte("IKE_SA_INIT........................")...)
			send := [][]byte{ike, {0x01, 0x02, 0x03}, {0xFE}, fakeESP(7, 1, 100)}
			if err := ua.Send(bufsOf(send), []endpoint.Endpoint{ep, ep, ep, ep}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if err := ua.SendKeepalive(ep); err != nil {
				t.Fatalf("SendKeepalive: %v", err)
			}
			if err := ua.Send(bufsOf([][]byte{fakeESP(7, 2, 60)}), []endpoint.Endpoint{ep}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := recvN(t, ub, fn, 2, 5*time.Second)
			if len(got) != 2 {
				t.Fatalf("got %d packets, want 2", len(got))
			}
			want := endpoint.Endpoint{Addr: netip.AddrPortFrom(src, endpoint.UDPEncapPort), Encap: endpoint.EncapUDP}
			for i, seq := range []uint32{1, 2} {
				if s := binary.BigEndian.Uint32(got[i].p[4:]); s != seq || got[i].ep != want {
					t.Errorf("packet %d: seq %d from %v, want seq %d from %v", i, s, got[i].ep, seq, want)
				}
			}
			st := ub.Stats()
			if k, n, m := st.RxKeepalives.Load(), st.RxNonESP.Load(), st.RxMalformed.Load(); k != 2 || n != 1 || m != 2 {
				t.Errorf("receiver counted %d keepalives, %d non-ESP, %d malformed; want 2, 1, 2", k, n, m)
			}
			if k := ua.Stats().TxKeepalives.Load(); k != 2 {
				t.Errorf("sender counted %d keepalives, want 2", k)
			}
			if err := ua.SendKeepalive(endpoint.Endpoint{Addr: netip.AddrPortFrom(dst, 0), Encap: endpoint.EncapRaw}); !errors.Is(err, ErrNoSocket) {
				t.Errorf("SendKeepalive(raw) = %v, want ErrNoSocket", err)
			}
		})
	}
}

// TestUnderlayRawIPv4Header: a raw IPv4 socket returns the IP header; the
// underlay strips it using the IHL, options included.
func TestUnderlayRawIPv4Header(t *testing.T) {
	var c rxCounts
	esp := fakeESP(9, 3, 40)
	hdr := []byte{0x46, 0, 0, 0, 0, 0, 0, 0, 64, 50, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 1, 1, 1, 0} // IHL 6: one NOP NOP NOP EOL option word
	p := append(append([]byte{}, hdr...), esp...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	off, n, ok := classify(sockRaw4, p, &c)
	if !ok || off != 24 || !bytes.Equal(p[off:off+n], esp) {
		t.Fatalf("classify = %d, %d, %v; want 24, %d, true", off, n, ok, len(esp))
	}
	frag := bytes.Clone(p)
	frag[6] = 0x20 // MF
	if _, _, ok := classify(sockRaw4, frag, &c); ok || c.fragment != 1 {
		t.Errorf("fragment accepted (ok=%v, fragments=%d)", ok, c.fragment)
	}
	if _, _, ok := classify(sockRaw4, p[:22], &c); ok {
		t.Errorf("truncated header accepted")
	}
	spi0 := bytes.Clone(p)
	copy(spi0[24:28], []byte{0, 0, 0, 0})
	if _, _, ok := classify(sockRaw4, spi0, &c); ok {
		t.Errorf("SPI 0 accepted")
	}
}

// TestUnderlayCloseUnblocks: Close makes blocked ReceiveFuncs return
// net.ErrClosed, twice is fine, and Send afterwards fails with it too.
func TestUnderlayCloseUnblocks(t *testing.T) {
	ns := testns.New(t)
	u, fns := openUnderlay(t, ns, Config{IPv4: netip.MustParseAddr("127.0.0.1"), IPv6: netip.IPv6Loopback()})
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() {
			bufs := []*pkt.Buf{pkt.Get(), pkt.Get()}
			_, err := fn(bufs, make([]endpoint.Endpoint, 2))
			errs <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range fns {
		select {
		case err := <-errs:
			if err != net.ErrClosed {
				t.Errorf("receive after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock a receiver")
		}
	}
	if err := u.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ep := endpoint.Endpoint{Addr: netip.MustParseAddrPort("127.0.0.1:4500"), Encap: endpoint.EncapUDP}
	if err := u.Send(bufsOf([][]byte{fakeESP(1, 1, 20)}), []endpoint.Endpoint{ep}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close = %v, want net.ErrClosed", err)
	}
	if err := u.SendKeepalive(ep); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SendKeepalive after Close = %v, want net.ErrClosed", err)
	}
	// Open again after Close.
	var err error
	ns.Do(t, func() { fns, err = u.Open() })
	if err != nil || len(fns) != 4 {
		t.Fatalf("reopen: %d funcs, %v", len(fns), err)
	}
	if _, err := u.Open(); !errors.Is(err, ErrAlreadyOpen) {
		t.Errorf("Open twice = %v, want ErrAlreadyOpen", err)
	}
}

func TestNewConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"empty", Config{}, false},
		{"v4 in IPv6", Config{IPv6: netip.MustParseAddr("192.0.2.1")}, false},
		{"v6 in IPv4", Config{IPv4: netip.MustParseAddr("2001:db8::1")}, false},
		{"bad mode", Config{IPv4: netip.IPv4Unspecified(), Mode: 8}, false},
		{"negative batch", Config{IPv4: netip.IPv4Unspecified(), BatchSize: -1}, false},
		{"defaults", Config{IPv4: netip.IPv4Unspecified()}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("error %v does not wrap ErrInvalidConfig", err)
				}
				return
			}
			if u.BatchSize() != DefaultBatchSize || u.cfg.UDPPort != endpoint.UDPEncapPort || u.cfg.Mode != ModeBoth {
				t.Errorf("defaults: batch %d port %d mode %d", u.BatchSize(), u.cfg.UDPPort, u.cfg.Mode)
			}
		})
	}
}

// TestUnderlayAllocs: a steady-state Send of a full batch and the receives
// that collect it allocate nothing, raw and UDP, with and without offloads.
func TestUnderlayAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	ns := testns.New(t)
	a4, b4 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for _, tt := range []struct {
		name  string
		mode  Mode
		encap endpoint.Encap
		off   bool
	}{
		{"raw", ModeRaw, endpoint.EncapRaw, false},
		{"udp", ModeUDP, endpoint.EncapUDP, false},
		{"udp-nooffload", ModeUDP, endpoint.EncapUDP, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{IPv4: a4, Mode: tt.mode, DisableGSO: tt.off, DisableGRO: tt.off}
			ua, _ := openUnderlay(t, ns, cfg)
			cfg.IPv4 = b4
			ub, fns := openUnderlay(t, ns, cfg)
			var port uint16
			if tt.encap == endpoint.EncapUDP {
				port = endpoint.UDPEncapPort
			}
			batch := ua.BatchSize()
			var pkts [][]byte
			for i := range batch {
				pkts = append(pkts, fakeESP(5, uint32(i+1), 1400))
			}
			sbufs := bufsOf(pkts)
			eps := make([]endpoint.Endpoint, batch)
			for i := range eps {
				eps[i] = endpoint.Endpoint{Addr: netip.AddrPortFrom(b4, port), Encap: tt.encap}
			}
			rbufs := bufsOf(make([][]byte, batch))
			reps := make([]endpoint.Endpoint, batch)
			watchdog := time.AfterFunc(time.Minute, func() { ub.Close() })
			defer watchdog.Stop()
			allocs := testing.AllocsPerRun(50, func() {
				if err := ua.Send(sbufs, eps); err != nil {
					t.Fatal(err)
				}
				for got := 0; got < batch; {
					n, err := fns[0](rbufs, reps)
					if err != nil {
						t.Fatalf("receive: %v", err)
					}
					got += n
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocs per batch of %d sent and received, want 0", allocs, batch)
			}
		})
	}
}

// BenchmarkUDPUnderlay sends and receives batches of 128 × 1400-byte ESP
// packets over loopback in a namespace (one goroutine: Send, then receive
// until the batch is in), with and without GSO/GRO.
func BenchmarkUDPUnderlay(b *testing.B) {
	ns := testns.New(b)
	b.Run("gso+gro", func(b *testing.B) { benchUnderlay(b, ns, ModeUDP, false) })
	b.Run("nooffload", func(b *testing.B) { benchUnderlay(b, ns, ModeUDP, true) })
}

// BenchmarkRawUnderlay is BenchmarkUDPUnderlay for raw ESP (IP protocol 50).
func BenchmarkRawUnderlay(b *testing.B) {
	benchUnderlay(b, testns.New(b), ModeRaw, true)
}

// BenchmarkRawUnderlay6 is BenchmarkRawUnderlay over IPv6 loopback, the
// receiver bound to a specific address ("addr") or to :: ("any": the
// destination then comes from IPV6_PKTINFO, one control message per
// packet).
func BenchmarkRawUnderlay6(b *testing.B) {
	ns := testns.New(b)
	b.Run("addr", func(b *testing.B) { benchUnderlay6(b, ns, netip.IPv6Loopback()) })
	b.Run("any", func(b *testing.B) { benchUnderlay6(b, ns, netip.IPv6Unspecified()) })
}

func benchUnderlay6(b *testing.B, ns *testns.NS, bind netip.Addr) {
	benchUnderlayCfg(b, ns, Config{IPv6: netip.IPv6Loopback(), Mode: ModeRaw},
		Config{IPv6: bind, Mode: ModeRaw}, netip.IPv6Loopback())
}

func benchUnderlay(b *testing.B, ns *testns.NS, mode Mode, off bool) {
	a4, b4 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	benchUnderlayCfg(b, ns, Config{IPv4: a4, Mode: mode, DisableGSO: off, DisableGRO: off},
		Config{IPv4: b4, Mode: mode, DisableGSO: off, DisableGRO: off}, b4)
}

func benchUnderlayCfg(b *testing.B, ns *testns.NS, cfgA, cfgB Config, b4 netip.Addr) {
	benchUnderlayPair(b, ns, ns, cfgA, cfgB, b4)
}

// benchUnderlayPair is benchUnderlayCfg with the sender opened in nsA and
// the receiver in nsB.
func benchUnderlayPair(b *testing.B, nsA, nsB *testns.NS, cfgA, cfgB Config, b4 netip.Addr) {
	const size = 1400
	mode := cfgA.Mode
	ua, _ := openUnderlay(b, nsA, cfgA)
	ub, fns := openUnderlay(b, nsB, cfgB)
	encap, port := endpoint.EncapRaw, uint16(0)
	if mode == ModeUDP {
		encap, port = endpoint.EncapUDP, endpoint.UDPEncapPort
		gso, _ := ua.Offloads(false)
		_, gro := ub.Offloads(false)
		b.Logf("GSO=%v GRO=%v", gso, gro)
	}
	batch := ua.BatchSize()
	var pkts [][]byte
	for i := range batch {
		pkts = append(pkts, fakeESP(5, uint32(i+1), size))
	}
	sbufs := bufsOf(pkts)
	eps := make([]endpoint.Endpoint, batch)
	for i := range eps {
		eps[i] = endpoint.Endpoint{Addr: netip.AddrPortFrom(b4, port), Encap: encap}
	}
	rbufs := bufsOf(make([][]byte, batch))
	reps := make([]endpoint.Endpoint, batch)
	// A lost datagram would block the receive: the watchdog closes the
	// receiver, which fails the benchmark.
	watchdog := time.AfterFunc(time.Hour, func() { ub.Close() })
	defer watchdog.Stop()
	b.ReportAllocs()
	b.SetBytes(int64(batch * size))
	for b.Loop() {
		watchdog.Reset(10 * time.Second)
		if err := ua.Send(sbufs, eps); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < batch; {
			n, err := fns[0](rbufs, reps)
			if err != nil {
				b.Fatalf("receive: %v (got %d of %d)", err, got, batch)
			}
			got += n
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pkts/s")
}

// TestUnderlayGSOFallback: where the kernel refuses a GSO send, the packets
// still go out one by one. EMSGSIZE: a segment larger than the path MTU (it is
// fragmented instead). EIO: the device has no TX checksum offload, and GSO
// is then turned off for the socket (as wireguard-go does); kernels since
// 6.11 checksum in software instead, and then GSO simply keeps working.
func TestUnderlayGSOFallback(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, p *testns.VethPair)
		retry bool // expect a GSORetries
		// tooBig: the packets exceed the path MTU. Without a header in
		// front saying otherwise they have DF set (frontDF), so the
		// kernel refuses them (EMSGSIZE) instead of fragmenting.
		tooBig bool
	}{
		{"mtu", func(t *testing.T, p *testns.VethPair) {
			for _, x := range []struct {
				ns   *testns.NS
				link netlink.Link
			}{{p.A, p.LinkA}, {p.B, p.LinkB}} {
				if err := x.ns.NL.LinkSetMTU(x.link, 1280); err != nil {
					t.Fatal(err)
				}
			}
		}, true, true},
		{"no-tx-csum", func(t *testing.T, p *testns.VethPair) {
			p.A.Do(t, func() { setTxChecksum(t, "mva", false) })
		}, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testns.NewVethPair(t)
			tt.setup(t, p)
			ua, _ := openUnderlay(t, p.A, Config{IPv4: p.A4, Mode: ModeUDP})
			ub, fns := openUnderlay(t, p.B, Config{IPv4: p.B4, Mode: ModeUDP})
			if gso, _ := ua.Offloads(false); !gso {
				testenv.SkipOrFail(t, "kernel without UDP GSO")
			}
			var pkts [][]byte
			for i := range 64 {
				pkts = append(pkts, fakeESP(3, uint32(i+1), 1400))
			}
			eps := make([]endpoint.Endpoint, len(pkts))
			for i := range eps {
				eps[i] = endpoint.Endpoint{Addr: netip.AddrPortFrom(p.B4, endpoint.UDPEncapPort), Encap: endpoint.EncapUDP}
			}
			// Twice: the second Send must not need a retry.
			for round := range 2 {
				err := ua.Send(bufsOf(pkts), eps)
				if tt.tooBig {
					if !errors.Is(err, unix.EMSGSIZE) {
						t.Fatalf("round %d: Send of DF packets beyond the MTU: %v, want EMSGSIZE", round, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				got := recvN(t, ub, fns[0], len(pkts), 5*time.Second)
				if len(got) != len(pkts) {
					t.Fatalf("round %d: received %d of %d", round, len(got), len(pkts))
				}
				for i, r := range got {
					if !bytes.Equal(r.p, pkts[i]) {
						t.Errorf("round %d: packet %d differs", round, i)
					}
				}
			}
			gso, _ := ua.Offloads(false)
			st := ua.Stats()
			t.Logf("GSO on = %v, GSORetries = %d, GSODisabled = %d", gso, st.GSORetries.Load(), st.GSODisabled.Load())
			if r := st.GSORetries.Load(); tt.retry && (r == 0 || r > 2) {
				t.Errorf("%d GSO retries, want 1 or 2 (first Send only)", r)
			}
			if gso != (st.GSODisabled.Load() == 0) {
				t.Errorf("GSO on = %v but GSODisabled = %d", gso, st.GSODisabled.Load())
			}
		})
	}
}

// setTxChecksum turns a device's TX checksum offload on or off (ethtool -K
// dev tx off) in the calling thread's namespace (legacy ETHTOOL_STXCSUM).
func setTxChecksum(t *testing.T, dev string, on bool) {
	t.Helper()
	const ethtoolSTXCSUM = 0x17
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	val := struct{ cmd, data uint32 }{ethtoolSTXCSUM, 0}
	if on {
		val.data = 1
	}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [24 - unsafe.Sizeof(uintptr(0))]byte
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&val)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		testenv.SkipOrFail(t, "ethtool tx checksum %s: %v", dev, e)
	}
}

// TestUnderlayGROSmallReads: a ReceiveFunc called with fewer bufs than a
// coalesced datagram carries keeps the rest for the next calls.
func TestUnderlayGROSmallReads(t *testing.T) {
	p := testns.NewVethPair(t)
	ua, _ := openUnderlay(t, p.A, Config{IPv4: p.A4, Mode: ModeUDP})
	ub, fns := openUnderlay(t, p.B, Config{IPv4: p.B4, Mode: ModeUDP})
	var pkts [][]byte
	for i := range 100 {
		pkts = append(pkts, fakeESP(3, uint32(i+1), 1200))
	}
	eps := make([]endpoint.Endpoint, len(pkts))
	for i := range eps {
		eps[i] = endpoint.Endpoint{Addr: netip.AddrPortFrom(p.B4, endpoint.UDPEncapPort), Encap: endpoint.EncapUDP}
	}
	if err := ua.Send(bufsOf(pkts), eps); err != nil {
		t.Fatalf("Send: %v", err)
	}
	bufs := bufsOf(make([][]byte, 3))
	reps := make([]endpoint.Endpoint, 3)
	var got [][]byte
	watchdog := time.AfterFunc(5*time.Second, func() { ub.Close() })
	defer watchdog.Stop()
	for len(got) < len(pkts) {
		n, err := fns[0](bufs, reps)
		if err != nil {
			t.Fatalf("receive after %d packets: %v", len(got), err)
		}
		for i := range n {
			got = append(got, bytes.Clone(bufs[i].Bytes()))
		}
	}
	for i := range pkts {
		if !bytes.Equal(got[i], pkts[i]) {
			t.Fatalf("packet %d differs", i)
		}
	}
	t.Logf("%d coalesced datagrams", ub.Stats().RxCoalesced.Load())
}

// TestUnderlayMarkAndNoSocket: SO_MARK is set on every socket (UDP 500
// included: IKE never enters the TUN), and a Send
// to an endpoint without a socket fails with ErrNoSocket without stopping
// the other packets.
func TestUnderlayMarkAndNoSocket(t *testing.T) {
	p := testns.NewVethPair(t)
	ua, _ := openUnderlay(t, p.A, Config{IPv4: p.A4, IPv6: p.A6, Mark: 0x4d49, DSMIPv6: true, ExtHeaders: true,
		IKE500: true, IKE: func([]byte, netip.AddrPort, netip.AddrPort) {}})
	n := 0
	for _, s := range ua.set.Load().s {
		if s == nil {
			continue
		}
		n++
		rc, err := s.pc.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var mark int
		var gerr error
		rc.Control(func(fd uintptr) { mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
		if gerr != nil || mark != 0x4d49 {
			t.Errorf("socket %d: SO_MARK = %#x, %v; want 0x4d49", s.kind, mark, gerr)
		}
	}
	if n != int(numSockKinds) {
		t.Errorf("%d sockets open, want all %d kinds", n, numSockKinds)
	}
	ub, fns := openUnderlay(t, p.B, Config{IPv4: p.B4, Mode: ModeUDP})
	good := endpoint.Endpoint{Addr: netip.AddrPortFrom(p.B4, endpoint.UDPEncapPort), Encap: endpoint.EncapUDP}
	eps := []endpoint.Endpoint{
		{Addr: netip.AddrPortFrom(p.B4, endpoint.UDPEncapPort), Encap: 7}, // unknown encapsulation
		good,
		{}, // no address
		good,
	}
	err := ua.Send(bufsOf([][]byte{fakeESP(1, 1, 20), fakeESP(1, 2, 20), fakeESP(1, 3, 20), fakeESP(1, 4, 20)}), eps)
	if !errors.Is(err, ErrNoSocket) {
		t.Errorf("Send = %v, want ErrNoSocket", err)
	}
	got := recvN(t, ub, fns[0], 2, 5*time.Second)
	if len(got) != 2 || binary.BigEndian.Uint32(got[0].p[4:]) != 2 || binary.BigEndian.Uint32(got[1].p[4:]) != 4 {
		t.Errorf("received %d packets, want seq 2 and 4", len(got))
	}
}

// TestUnderlayStatsCounters: Counters names every Stats field once,
// in order, with its value (a new field must be added there too).
func TestUnderlayStatsCounters(t *testing.T) {
	var s Stats
	typ := reflect.TypeFor[Stats]()
	v := reflect.ValueOf(&s).Elem()
	for i := range typ.NumField() {
		v.Field(i).Addr().Interface().(*atomic.Uint64).Store(uint64(100 + i))
	}
	cs := s.Counters()
	if len(cs) != typ.NumField() {
		t.Fatalf("Counters has %d entries, Stats %d fields", len(cs), typ.NumField())
	}
	seen := map[string]bool{}
	for i, c := range cs {
		if c.Value != uint64(100+i) {
			t.Errorf("%s = %d, want %d (field %s)", c.Name, c.Value, 100+i, typ.Field(i).Name)
		}
		if seen[c.Name] || c.Name == "" || strings.ToLower(c.Name) != c.Name {
			t.Errorf("bad or duplicate name %q", c.Name)
		}
		seen[c.Name] = true
		want := strings.ToLower(strings.ReplaceAll(typ.Field(i).Name, "_", ""))
		if got := strings.ReplaceAll(c.Name, "_", ""); got != want {
			t.Errorf("counter %q for field %s", c.Name, typ.Field(i).Name)
		}
	}
	if (*Stats)(nil).Counters() != nil {
		t.Error("nil stats: want nil")
	}
}
