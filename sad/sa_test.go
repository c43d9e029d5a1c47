package sad

import (
	"bytes"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// pair adds an outbound SA with sendSels and an inbound SA with recvSels
// that share the SPI and the keys: one end of the wire and the other, in
// one DB (directions are separate namespaces).
func pair(t testing.TB, db *DB, spi uint32, mode esp.Mode, sendSels, recvSels []Selector) (out, in *SA) {
	t.Helper()
	p := params(spi)
	p.Mode = mode
	out = mustAdd(t, db, Config{Name: "out", Dir: Outbound, Params: p, Selectors: sendSels})
	in = mustAdd(t, db, Config{Name: "in", Dir: Inbound, Params: p, Selectors: recvSels})
	return out, in
}

func newBuf(p []byte) *pkt.Buf {
	b := new(pkt.Buf)
	b.Reset()
	b.Set(p)
	return b
}

// espOffset is where the ESP header starts in what Seal produced: after
// the IPv4 header, or after the IPv6 header and the extension headers
// (here a Destination Options header with a HAO) in front of ESP.
func espOffset(p []byte) int {
	if p[0]>>4 == 4 {
		return header.IPv4(p).HeaderLen()
	}
	nh, off := p[6], header.IPv6HeaderLen
	for nh != header.ProtoESP {
		nh, off = p[off], off+(int(p[off+1])+1)*8
	}
	return off
}

// sealOpen seals p with out and opens the result with in.
func sealOpen(t testing.TB, out, in *SA, p []byte) (*pkt.Buf, esp.Verdict) {
	t.Helper()
	b := newBuf(p)
	if v := out.Seal(b); v != esp.OK {
		t.Fatalf("Seal = %v", v)
	}
	_, v := in.Open(b, espOffset(b.Bytes()))
	return b, v
}

func TestSealOpenTunnel(t *testing.T) {
	db := New(Options{})
	out, in := pair(t, db, 0x1000, esp.Tunnel, anySel, []Selector{{Local: SingleAddr(hoa)}})
	inner := ip6(cn, hoa, udp(1000, 2000, 100))
	b, v := sealOpen(t, out, in, inner)
	if v != esp.OK {
		t.Fatalf("Open = %v", v)
	}
	if !bytes.Equal(b.Bytes(), inner) {
		t.Fatal("Open did not give back the inner packet")
	}
	if out.Seq() != 1 || in.Seq() != 1 {
		t.Errorf("Seq = %d / %d, want 1 / 1", out.Seq(), in.Seq())
	}
	for _, s := range []*SA{out, in} {
		st := s.Stats()
		if st.Packets != 1 || st.Bytes != uint64(len(inner)) || st.Dropped() != 0 {
			t.Errorf("%v stats = %+v", s.Dir(), st)
		}
	}
}

// TestSelectorCheckAfterDecryption: RFC 4301 §5.2 step 4. The sender's
// SA is broader than the receiver's, so the sender seals packets that the
// receiver must drop after decryption, with nothing left to deliver.
func TestSelectorCheckAfterDecryption(t *testing.T) {
	// The HA's inbound tunnel SA from one MN (SA7 on the HA: remote =
	// HoA, local = any) and its inbound BU SA (SA1: transport, MH BU).
	tunnelSels := []Selector{{Remote: SingleAddr(hoa)}}
	buSels := []Selector{{Local: SingleAddr(ha), Remote: SingleAddr(hoa), Proto: header.ProtoMobility, RemotePort: MHType(mhBU)}}
	udpSels := []Selector{{Local: SingleAddr(ha), Remote: SingleAddr(hoa), Proto: header.ProtoUDP, RemotePort: Port(4191)}}
	v4Sels := []Selector{{Local: PrefixRange(netip.MustParsePrefix("192.0.2.0/24")), Remote: SingleAddr(v4b)}}
	tests := []struct {
		name string
		mode esp.Mode
		recv []Selector
		pkt  []byte
		want esp.Verdict
	}{
		{"tunnel: from the HoA", esp.Tunnel, tunnelSels, ip6(hoa, cn, tcp(4000, 80)), esp.OK},
		{"tunnel: spoofed inner source", esp.Tunnel, tunnelSels, ip6(other, cn, tcp(4000, 80)), esp.DropSelector},
		{"tunnel: another MN's HoA", esp.Tunnel, tunnelSels, ip6(hoa.Next(), cn, tcp(4000, 80)), esp.DropSelector},
		{"tunnel: IPv4 inner on an IPv6 SA", esp.Tunnel, tunnelSels, ip4(v4a, v4b, udp(1, 2, 3)), esp.DropSelector},
		{"tunnel: IPv4 inner in range", esp.Tunnel, v4Sels, ip4(v4b, netip.MustParseAddr("192.0.2.99"), udp(1, 2, 3)), esp.OK},
		{"tunnel: IPv4 inner out of range", esp.Tunnel, v4Sels, ip4(v4b, netip.MustParseAddr("192.0.3.1"), udp(1, 2, 3)), esp.DropSelector},
		{"transport: BU", esp.Transport, buSels, ip6(hoa, ha, mh(mhBU)), esp.OK},
		{"transport: BU via HAO", esp.Transport, buSels, ip6HAO(coa, hoa, ha, mh(mhBU)), esp.OK},
		{"transport: HoTI on the BU SA", esp.Transport, buSels, ip6(hoa, ha, mh(mhHoTI)), esp.DropSelector},
		{"transport: BU from another HoA", esp.Transport, buSels, ip6(other, ha, mh(mhBU)), esp.DropSelector},
		{"transport: BU from a CoA without HAO", esp.Transport, buSels, ip6(coa, ha, mh(mhBU)), esp.DropSelector},
		{"transport: UDP port", esp.Transport, udpSels, ip6(hoa, ha, udp(4191, 4191, 20)), esp.OK},
		{"transport: UDP other port", esp.Transport, udpSels, ip6(hoa, ha, udp(53, 4191, 20)), esp.DropSelector},
		{"transport: TCP on a UDP SA", esp.Transport, udpSels, ip6(hoa, ha, tcp(4191, 4191)), esp.DropSelector},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := New(Options{})
			out, in := pair(t, db, 0x2000+uint32(i), tt.mode, anySel, tt.recv)
			b, v := sealOpen(t, out, in, tt.pkt)
			if v != tt.want {
				t.Fatalf("Open = %v, want %v", v, tt.want)
			}
			st := in.Stats()
			if tt.want == esp.OK {
				if st.Packets != 1 || st.Dropped() != 0 {
					t.Errorf("stats = %+v", st)
				}
				return
			}
			if b.Len() != 0 {
				t.Errorf("a dropped packet still holds %d bytes", b.Len())
			}
			if bytes.Contains(b.B[:], tt.pkt) {
				t.Error("the plaintext is still in the buffer")
			}
			if st.Packets != 0 || st.Drops[tt.want] != 1 || st.Dropped() != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestOpenDrops(t *testing.T) {
	db := New(Options{})
	out, in := pair(t, db, 0x3000, esp.Tunnel, anySel, anySel)
	inner := ip6(cn, hoa, udp(1, 2, 64))

	// Replay.
	b := newBuf(inner)
	out.Seal(b)
	sealed := bytes.Clone(b.Bytes())
	if _, v := in.Open(b, 40); v != esp.OK {
		t.Fatalf("first Open = %v", v)
	}
	b = newBuf(sealed)
	if _, v := in.Open(b, 40); v != esp.DropReplay {
		t.Fatalf("replayed Open = %v", v)
	}
	// ICV.
	b = newBuf(inner)
	out.Seal(b)
	b.Bytes()[len(b.Bytes())-1] ^= 1
	if _, v := in.Open(b, 40); v != esp.DropICV {
		t.Fatalf("corrupt Open = %v", v)
	}
	// Dummy (RFC 4303 §2.6).
	b = newBuf(nil)
	if v := out.out.SealDummy(b, 32); v != esp.OK {
		t.Fatalf("SealDummy = %v", v)
	}
	if _, v := in.Open(b, 40); v != esp.DropDummy {
		t.Fatalf("dummy Open = %v", v)
	}
	// Truncated.
	b = newBuf(sealed[:30])
	if _, v := in.Open(b, 40); v != esp.DropMalformed {
		t.Fatalf("truncated Open = %v", v)
	}
	// Wrong direction.
	if _, v := out.Open(newBuf(sealed), 40); v != esp.DropNoSA {
		t.Errorf("Open on an outbound SA = %v", v)
	}
	if v := in.Seal(newBuf(inner)); v != esp.DropNoSA {
		t.Errorf("Seal on an inbound SA = %v", v)
	}
	st := in.Stats()
	want := Stats{Packets: 1, Bytes: uint64(len(inner))}
	want.Drops[esp.DropReplay] = 1
	want.Drops[esp.DropICV] = 1
	want.Drops[esp.DropDummy] = 1
	want.Drops[esp.DropMalformed] = 1
	want.Drops[esp.DropNoSA] = 1 // the Seal on it
	if st != want {
		t.Errorf("inbound stats\n got %+v\nwant %+v", st, want)
	}
	if st := out.Stats(); st.Packets != 2 || st.Drops[esp.DropNoSA] != 1 {
		t.Errorf("outbound stats = %+v", st)
	}
	// A malformed packet to Seal is counted and not a packet.
	if v := out.Seal(newBuf([]byte{0x60, 1, 2})); v != esp.DropMalformed {
		t.Errorf("Seal of garbage = %v", v)
	}
	if st := out.Stats(); st.Packets != 2 || st.Bytes != 2*uint64(len(inner)) || st.Drops[esp.DropMalformed] != 1 {
		t.Errorf("outbound stats after a failed Seal = %+v", st)
	}
}

func TestBatch(t *testing.T) {
	db := New(Options{})
	out, in := pair(t, db, 0x4000, esp.Tunnel, anySel, []Selector{{Remote: SingleAddr(cn)}})
	const n = 200 // more than one SealBatch chunk
	bufs := make([]*pkt.Buf, n)
	inner := make([][]byte, n)
	for i := range bufs {
		src := cn
		if i%10 == 9 {
			src = other // fails the receiver's selector check
		}
		inner[i] = ip6(src, hoa, udp(uint16(i), 9, i))
		bufs[i] = newBuf(inner[i])
	}
	v := make([]esp.Verdict, n)
	out.SealBatch(bufs, v)
	for i := range v {
		if v[i] != esp.OK {
			t.Fatalf("SealBatch v[%d] = %v", i, v[i])
		}
	}
	offs := make([]int, n)
	for i := range offs {
		offs[i] = 40
	}
	nh := make([]uint8, n)
	in.OpenBatch(bufs, offs, nh, v)
	var ok, sel int
	var okBytes uint64
	for i := range v {
		switch v[i] {
		case esp.OK:
			ok++
			okBytes += uint64(len(inner[i]))
			if !bytes.Equal(bufs[i].Bytes(), inner[i]) || nh[i] != header.ProtoIPv6 {
				t.Errorf("packet %d: wrong plaintext or next header %d", i, nh[i])
			}
		case esp.DropSelector:
			sel++
			if bufs[i].Len() != 0 {
				t.Errorf("packet %d dropped but not cleared", i)
			}
		default:
			t.Errorf("v[%d] = %v", i, v[i])
		}
	}
	if ok != 180 || sel != 20 {
		t.Errorf("ok %d, selector drops %d", ok, sel)
	}
	if st := in.Stats(); st.Packets != 180 || st.Bytes != okBytes || st.Drops[esp.DropSelector] != 20 {
		t.Errorf("inbound stats = %+v", st)
	}
	if st := out.Stats(); st.Packets != n {
		t.Errorf("outbound stats = %+v", st)
	}
	out.SealBatch(nil, nil)
	in.OpenBatch(nil, nil, nil, nil)
}

// TestDeleteWhileSealing: after Delete returns, no packet is sealed or
// delivered with the SA any more. Run with -race.
func TestDeleteWhileSealing(t *testing.T) {
	db := New(Options{})
	out, in := pair(t, db, 0x5000, esp.Tunnel, anySel, anySel)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var after atomic.Int64 // OK verdicts seen after Delete returned
	var deleted atomic.Bool
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := new(pkt.Buf)
			for !stop.Load() {
				b.Reset()
				b.Set(ip6(cn, hoa, udp(1, 2, 40)))
				wasDeleted := deleted.Load()
				if v := out.Seal(b); v == esp.OK && wasDeleted {
					after.Add(1)
				}
				if _, v := in.Open(b, 40); v == esp.OK && wasDeleted {
					after.Add(1)
				}
			}
		}()
	}
	for out.Stats().Packets < 100 {
		runtime.Gosched() // let the workers run
	}
	if _, err := db.Delete(Outbound, 0x5000); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Delete(Inbound, 0x5000); err != nil {
		t.Fatal(err)
	}
	deleted.Store(true)
	n := out.Stats().Packets
	for out.Stats().Drops[esp.DropExpired] < 100 {
		runtime.Gosched()
	}
	stop.Store(true)
	wg.Wait()
	if after.Load() != 0 {
		t.Errorf("%d packets passed after Delete returned", after.Load())
	}
	if out.Stats().Packets != n {
		t.Errorf("packets sealed after Delete: %d -> %d", n, out.Stats().Packets)
	}
}

func TestSAAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts under -race")
	}
	db := New(Options{})
	out, in := pair(t, db, 0x6000, esp.Tunnel, anySel, []Selector{{Local: SingleAddr(hoa)}})
	inner := ip6(cn, hoa, udp(1, 2, 1000))
	b := new(pkt.Buf)
	bufs := []*pkt.Buf{b}
	v := []esp.Verdict{0}
	offs := []int{40}
	nh := []uint8{0}
	n := testing.AllocsPerRun(200, func() {
		b.Reset()
		b.Set(inner)
		if out.Seal(b) != esp.OK {
			panic("seal")
		}
		if _, v := in.Open(b, 40); v != esp.OK {
			panic("open")
		}
		b.Reset()
		b.Set(inner)
		out.SealBatch(bufs, v)
		in.OpenBatch(bufs, offs, nh, v)
		if v[0] != esp.OK {
			panic("batch")
		}
		if db.Inbound(0x6000) != in {
			panic("lookup")
		}
	})
	if n != 0 {
		t.Errorf("Seal+Open+lookup: %v allocs per packet", n)
	}
	// The selector drop path too.
	bad := ip6(cn, other, udp(1, 2, 1000)) // not to the HoA
	n = testing.AllocsPerRun(200, func() {
		b.Reset()
		b.Set(bad)
		out.Seal(b)
		if _, v := in.Open(b, 40); v != esp.DropSelector {
			panic("selector")
		}
	})
	if n != 0 {
		t.Errorf("selector drop path: %v allocs per packet", n)
	}
}

// Replace continues the sequence space: no nonce reuse on the sending
// side, no replay window reset on the receiving side.
func TestReplaceKeepsSequence(t *testing.T) {
	db := New(Options{})
	out, in := pair(t, db, 0x7000, esp.Tunnel, anySel, anySel)
	var sealed [][]byte
	for range 5 {
		b := newBuf(ip6(cn, hoa, udp(1, 2, 20)))
		out.Seal(b)
		sealed = append(sealed, bytes.Clone(b.Bytes()))
		if _, v := in.Open(b, 40); v != esp.OK {
			t.Fatal(v)
		}
	}
	out2, old, err := db.Replace(cfg(Outbound, 0x7000))
	if err != nil || old != out {
		t.Fatal(err)
	}
	in2, _, err := db.Replace(cfg(Inbound, 0x7000))
	if err != nil {
		t.Fatal(err)
	}
	if out2.Seq() != 5 || in2.Seq() != 5 {
		t.Fatalf("Seq after Replace = %d / %d, want 5 / 5", out2.Seq(), in2.Seq())
	}
	b := newBuf(ip6(cn, hoa, udp(1, 2, 20)))
	out2.Seal(b)
	if seq := header.ESP(b.Bytes()[40:]).Seq(); seq != 6 {
		t.Errorf("first packet after Replace has seq %d, want 6", seq)
	}
	if _, v := in2.Open(b, 40); v != esp.OK {
		t.Errorf("Open after Replace: %v", v)
	}
	if _, v := in2.Open(newBuf(sealed[2]), 40); v != esp.DropReplay {
		t.Errorf("replay of an old packet after Replace: %v", v)
	}
	// A higher InitialSeq is kept.
	c := cfg(Outbound, 0x7000)
	c.Params.InitialSeq = 1000
	out3, _, err := db.Replace(c)
	if err != nil || out3.Seq() != 1000 {
		t.Errorf("Replace with InitialSeq 1000: Seq %d, %v", out3.Seq(), err)
	}
	// Same keys, other transform parameters: the inbound window refuses
	// everything up to the old highest number.
	c = cfg(Inbound, 0x7000)
	c.Params.ReplayWindow = 64
	in3, _, err := db.Replace(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(6 + esp.DefaultReplayWindow); in3.Seq() != want {
		t.Errorf("inbound Seq after Replace with another window = %d, want %d", in3.Seq(), want)
	}
	for i, p := range sealed {
		if _, v := in3.Open(newBuf(p), 40); v != esp.DropReplay {
			t.Errorf("old packet %d after Replace: %v", i+1, v)
		}
	}
	// New keys: a fresh start.
	c = cfg(Outbound, 0x7000)
	c.Params.EncKey = []byte("another 16B key.SALT")
	out4, _, err := db.Replace(c)
	if err != nil || out4.Seq() != 0 {
		t.Errorf("Replace with new keys: Seq %d, %v", out4.Seq(), err)
	}
	// ESN cannot change with the same keys; a failed Replace leaves the
	// old SA working.
	c = cfg(Inbound, 0x7000)
	c.Params.ESN = true
	if _, _, err := db.Replace(c); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Replace switching ESN: %v", err)
	}
	if db.Inbound(0x7000) != in3 || in3.Expired() {
		t.Error("a failed Replace changed the SA")
	}
	if db.Outbound(0x7000) != out4 || out4.Seal(newBuf(ip6(cn, hoa, udp(1, 2, 20)))) != esp.OK {
		t.Error("the SA does not work after a failed Replace")
	}
}

// TestReplaceWhileSealing: workers seal through the lookup while the SA is
// replaced over and over with the same keys, alternately with the same and
// with other parameters. No sequence number (so no AES-GCM nonce) is ever
// used twice. Run with -race.
func TestReplaceWhileSealing(t *testing.T) {
	db := New(Options{})
	mustAdd(t, db, cfg(Outbound, 0x8000))
	var stop atomic.Bool
	var wg sync.WaitGroup
	seqs := make([][]uint32, 3)
	for w := range seqs {
		wg.Go(func() {
			b := new(pkt.Buf)
			for !stop.Load() {
				s := db.Outbound(0x8000)
				if s == nil {
					continue // between stop and swap
				}
				b.Reset()
				b.Set(ip6(cn, hoa, udp(1, 2, 20)))
				if s.Seal(b) == esp.OK {
					seqs[w] = append(seqs[w], header.ESP(b.Bytes()[40:]).Seq())
				}
			}
		})
	}
	for i := range 200 {
		c := cfg(Outbound, 0x8000)
		c.Params.HopLimit = 64 + uint8(i/2%2) // 64, 64, 65, 65, ...: other Params, then the same
		if _, _, err := db.Replace(c); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
	}
	stop.Store(true)
	wg.Wait()
	seen := map[uint32]bool{}
	n := 0
	for _, w := range seqs {
		for _, q := range w {
			if seen[q] {
				t.Fatalf("sequence number %d used twice", q)
			}
			seen[q] = true
			n++
		}
	}
	t.Logf("%d packets over 200 replacements", n)
}

// TestSetSeqReserve: an outbound SA refuses to seal beyond the durable
// reservation and counts the refusals; raising it lets traffic continue.
func TestSetSeqReserve(t *testing.T) {
	db := New(Options{})
	defer db.Close()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	out, _ := pair(t, db, 0x300, esp.Tunnel, []Selector{{}}, []Selector{{}})
	out.SetSeqReserve(2)
	p := ip4(a, b, udp(1, 2, 10))
	for i, want := range []esp.Verdict{esp.OK, esp.OK, esp.DropSeqReserve} {
		if v := out.Seal(newBuf(p)); v != want {
			t.Fatalf("packet %d: %v, want %v", i, v, want)
		}
	}
	if got := out.Stats().Drops[esp.DropSeqReserve]; got != 1 {
		t.Fatalf("seq_reserve drops = %d, want 1", got)
	}
	out.SetSeqReserve(3)
	if v := out.Seal(newBuf(p)); v != esp.OK || out.Seq() != 3 {
		t.Fatalf("after raising: %v, seq %d", v, out.Seq())
	}
}

// TestReplaceForwardsInFlight: a packet path that looked the SA up just
// before Replace swapped it (it still holds the old *SA) is served by the
// successor, not dropped; Delete, by contrast, forwards nowhere.
func TestReplaceForwardsInFlight(t *testing.T) {
	db := New(Options{})
	defer db.Close()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	out, in := pair(t, db, 0x400, esp.Tunnel, []Selector{{}}, []Selector{{}})
	p := ip4(a, b, udp(1, 2, 10))

	for _, cfg := range []Config{
		{Name: "out2", Dir: Outbound, Params: params(0x400), Selectors: []Selector{{}}},
		{Name: "in2", Dir: Inbound, Params: params(0x400), Selectors: []Selector{{}}},
	} {
		cfg.Params.Mode = esp.Tunnel
		if _, _, err := db.Replace(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if !out.Expired() || !in.Expired() {
		t.Fatal("replaced SAs still live")
	}
	// The stale handles still work, through their successors.
	buf := newBuf(p)
	if v := out.Seal(buf); v != esp.OK {
		t.Fatalf("Seal on the replaced outbound SA: %v", v)
	}
	if _, v := in.Open(buf, espOffset(buf.Bytes())); v != esp.OK || !bytes.Equal(buf.Bytes(), p) {
		t.Fatalf("Open on the replaced inbound SA: %v", v)
	}
	if got := db.Outbound(0x400).Stats().Packets; got != 1 {
		t.Fatalf("successor counted %d packets, want 1", got)
	}
	// So do the batch calls (the dataplane seals and opens runs of one
	// SA's packets with them).
	bufs := []*pkt.Buf{newBuf(p), newBuf(p), newBuf(p)}
	v := make([]esp.Verdict, len(bufs))
	out.SealBatch(bufs, v)
	offs := make([]int, len(bufs))
	for i, b := range bufs {
		if v[i] != esp.OK {
			t.Fatalf("SealBatch on the replaced outbound SA: packet %d %v", i, v[i])
		}
		offs[i] = espOffset(b.Bytes())
	}
	in.OpenBatch(bufs, offs, make([]uint8, len(bufs)), v)
	for i, b := range bufs {
		if v[i] != esp.OK || !bytes.Equal(b.Bytes(), p) {
			t.Fatalf("OpenBatch on the replaced inbound SA: packet %d %v", i, v[i])
		}
	}
	if got := db.Outbound(0x400).Stats().Packets; got != 4 {
		t.Fatalf("successor counted %d packets, want 4", got)
	}
	// After Delete there is no successor: the stale handle drops.
	if _, err := db.Delete(Outbound, 0x400); err != nil {
		t.Fatal(err)
	}
	if v := out.Seal(newBuf(p)); v != esp.DropExpired {
		t.Fatalf("Seal after Delete: %v, want expired", v)
	}
	out.SealBatch(bufs[:2], v)
	if v[0] != esp.DropExpired || v[1] != esp.DropExpired {
		t.Fatalf("SealBatch after Delete: %v, want expired", v[:2])
	}
}

// TestOpenSteps: OpenBegin, OpenAccept and OpenEnd give OpenBatch's
// verdicts and counters; OpenBegin returns nil (all counted) when nothing
// passes; the guard is held from OpenBegin to OpenEnd, so Delete waits.
func TestOpenSteps(t *testing.T) {
	db := New(Options{})
	out, in := pair(t, db, 0x4100, esp.Tunnel, anySel, anySel)
	const n = 5
	bufs := make([]*pkt.Buf, n)
	for i := range bufs {
		bufs[i] = newBuf(ip6(cn, hoa, udp(uint16(i), 9, 20+i)))
	}
	v := make([]esp.Verdict, n)
	out.SealBatch(bufs, v)
	wires := make([][]byte, n)
	for i, b := range bufs {
		wires[i] = bytes.Clone(b.Bytes())
	}
	offs := []int{40, 40, 40, 40, 40}
	nh := make([]uint8, n)
	os := make([]esp.Opened, n)
	bufs[2].Bytes()[len(bufs[2].Bytes())-1] ^= 1 // forged ICV
	end := in.OpenBegin(bufs, offs, v, os)
	if end != in {
		t.Fatalf("OpenBegin returned %p, want the SA", end)
	}
	deleted := make(chan struct{})
	go func() {
		if _, err := db.Delete(Inbound, 0x4100); err != nil {
			t.Error(err)
		}
		close(deleted)
	}()
	select {
	case <-deleted:
		t.Fatal("Delete returned while the guard was held (between OpenBegin and OpenEnd)")
	case <-time.After(50 * time.Millisecond):
	}
	end.OpenAccept(os)
	end.OpenEnd(bufs, offs, nh, v, os)
	select {
	case <-deleted:
	case <-time.After(5 * time.Second):
		t.Fatal("Delete did not return after OpenEnd")
	}
	want := []esp.Verdict{esp.OK, esp.OK, esp.DropICV, esp.OK, esp.OK}
	if !slices.Equal(v, want) {
		t.Fatalf("verdicts %v, want %v", v, want)
	}
	if st := in.Stats(); st.Packets != 4 || st.Drops[esp.DropICV] != 1 {
		t.Fatalf("stats %+v", st)
	}

	// A dead SA, and a batch of which nothing passes: nil, all counted.
	if in.OpenBegin(bufs[:1], offs, v, os) != nil || v[0] != esp.DropExpired {
		t.Fatalf("dead SA: %v", v[0])
	}
	db2 := New(Options{})
	_, in2 := pair(t, db2, 0x4200, esp.Tunnel, anySel, anySel)
	for i := range 2 {
		bufs[i] = newBuf(wires[i]) // sealed for SPI 0x4100: wrong SPI here
	}
	if in2.OpenBegin(bufs[:2], offs, v, os) != nil {
		t.Fatal("OpenBegin with nothing passing returned an SA")
	}
	if st := in2.Stats(); st.Dropped() != 2 || v[0] == esp.OK || v[1] == esp.OK {
		t.Fatalf("refusals not counted: %+v %v", st, v[:2])
	}
	if in2.OpenBegin(nil, nil, nil, nil) != nil || out.OpenBegin(bufs[:1], offs, v, os) != nil || v[0] != esp.DropNoSA {
		t.Fatal("empty batch or outbound SA")
	}
}
