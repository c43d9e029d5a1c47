package esp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// marker is a distinctive plaintext; after a drop that followed decryption
// it must not be found anywhere in the Buf.
var marker = []byte("MIPSEC-PLAINTEXT-MARKER-7f3a9c")

func markedUDP4() []byte {
	return ipv4(header.IPv4Fields{TTL: 64, Protocol: header.ProtoUDP, Src: v4a, Dst: v4b}, nil,
		append(udp(0, 1), bytes.Repeat(marker, 3)...))
}

func markedMobile6() []byte {
	return ipv6(0, v6a, v6b, []ext{destOptsHAO(hoa)}, header.ProtoUDP, append(udp(0, 1), bytes.Repeat(marker, 3)...))
}

// TestTamper flips every byte of the ESP packet after the SPI (sequence
// number, IV, ciphertext, padding, trailer, ICV): each copy must be
// dropped with DropICV, leave no plaintext in the Buf, and not move the
// replay window, so that the original still opens afterwards. A flipped
// SPI is DropNoSA.
func TestTamper(t *testing.T) {
	for _, alg := range allAlgorithms {
		for _, tc := range []struct {
			name  string
			mode  Mode
			outer int
			plain []byte
		}{
			{"tunnel4", Tunnel, 4, markedUDP4()},
			{"transport6-hao", Transport, 0, markedMobile6()},
		} {
			for _, esn := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%s/esn=%v", alg, tc.name, esn), func(t *testing.T) {
					p := testParams(alg, tc.mode, tc.outer, esn)
					p.InitialSeq = 1000
					o, in := newPair(t, p)
					wire := sealed(t, o, tc.plain)
					espOff := espOffsetOf(wire)
					for i := espOff; i < len(wire); i++ {
						bad := bytes.Clone(wire)
						bad[i] ^= 0x80
						want := DropICV
						if i < espOff+4 {
							want = DropNoSA
						}
						b, _, v := open(in, bad, espOff)
						if v != want {
							t.Fatalf("byte %d (ESP+%d) flipped: %v, want %v", i, i-espOff, v, want)
						}
						if alg.Encrypts() && bytes.Contains(b.B[:], marker) {
							t.Fatalf("byte %d flipped: plaintext left in the Buf after %v", i, v)
						}
					}
					if got := in.ReplayHighest(); got != 1000 {
						t.Fatalf("window moved to %d by forged packets", got)
					}
					if b, _, v := open(in, wire, espOff); v != OK || !bytes.Equal(b.Bytes(), tc.plain) {
						t.Fatalf("original after the forgeries: %v", v)
					}
				})
			}
		}
	}
}

func TestReplay(t *testing.T) {
	p := testParams(AES128GCM16, Tunnel, 4, false)
	p.ReplayWindow = 64
	o, in := newPair(t, p)
	var wires [][]byte
	for i := range 100 {
		wires = append(wires, sealed(t, o, ipv4UDP(i)))
	}
	mustOpen := func(i int, want Verdict) {
		t.Helper()
		if _, _, v := open(in, wires[i], 20); v != want {
			t.Fatalf("packet seq %d: %v, want %v", i+1, v, want)
		}
	}
	mustOpen(50, OK)
	mustOpen(50, DropReplay) // duplicate
	mustOpen(10, OK)         // 51-11 = 40 < 64: inside the window
	mustOpen(10, DropReplay)
	mustOpen(99, OK)         // T = 100
	mustOpen(35, DropReplay) // seq 36: T-36 = 64 >= W, left of the window
	mustOpen(36, OK)         // seq 37: 63 < W
	mustOpen(99, DropReplay)
	mustOpen(98, OK)
}

func TestReplayTooOld(t *testing.T) {
	p := testParams(NULLSHA256, Transport, 0, false)
	p.ReplayWindow = 32
	o, in := newPair(t, p)
	plain := ipv6UDP(5)
	var wires [][]byte
	for range 40 {
		wires = append(wires, sealed(t, o, plain))
	}
	if _, _, v := open(in, wires[39], 40); v != OK { // T = 40
		t.Fatal(v)
	}
	// seq 9: 40-9 = 31 < 32 inside; seq 8: 32 >= W, too old (RFC 4303 §3.4.3).
	if _, _, v := open(in, wires[8], 40); v != OK {
		t.Errorf("seq 9: %v, want OK", v)
	}
	if _, _, v := open(in, wires[7], 40); v != DropReplay {
		t.Errorf("seq 8: %v, want DropReplay", v)
	}
}

// TestNoReplay: without a window the same packet opens twice.
func TestNoReplay(t *testing.T) {
	p := testParams(AES128CBCSHA1, Tunnel, 6, false)
	p.NoReplay = true
	o, in := newPair(t, p)
	wire := sealed(t, o, ipv4UDP(3))
	for range 2 {
		if _, _, v := open(in, wire, 40); v != OK {
			t.Fatal(v)
		}
	}
	if in.ReplayHighest() != 0 {
		t.Error("ReplayHighest with NoReplay")
	}
}

// TestPadding: packets with a valid ICV but bad padding (RFC 4303 §2.4) are
// DropPadding, and the decrypted bytes are cleared.
func TestPadding(t *testing.T) {
	inner := ipv4(header.IPv4Fields{TTL: 1, Protocol: header.ProtoUDP, Src: v4a, Dst: v4b}, nil, append(udp(0, 0), marker...))
	for _, alg := range allAlgorithms {
		for _, mode := range []Mode{Tunnel, Transport} {
			t.Run(fmt.Sprintf("%v/%v", alg, mode), func(t *testing.T) {
				o, in := newPair(t, testParams(alg, mode, 4, false))
				nh := uint8(header.ProtoIPv4)
				if mode == Transport {
					nh = header.ProtoUDP
				}
				// pt must be a multiple of 16 for CBC: inner is 58 bytes.
				pad := minPad(alg, len(inner)) + alg.BlockSize() // more than minimal is legal
				good := trailer(inner, pad, nh)
				cases := []struct {
					name string
					pt   []byte
					want Verdict
				}{
					{"good", good, OK},
					{"wrong-byte", func() []byte { b := bytes.Clone(good); b[len(inner)+pad/2] ^= 0x10; return b }(), DropPadding},
					{"zero-bytes", func() []byte { b := bytes.Clone(good); clear(b[len(inner) : len(inner)+pad]); return b }(), DropPadding},
					{"padlen-too-long", func() []byte { b := bytes.Clone(good); b[len(b)-2] = byte(len(b) - 1); return b }(), DropPadding},
					{"padlen-255", func() []byte { b := bytes.Clone(good); b[len(b)-2] = 255; return b }(), DropPadding},
				}
				for i, c := range cases {
					var hdr []byte
					if mode == Transport {
						hdr = espHeader4()
					}
					wire, espOff := craft(t, o, hdr, uint64(i+1), c.pt)
					b, gotNH, v := open(in, wire, espOff)
					if v != c.want {
						t.Fatalf("%s: %v, want %v", c.name, v, c.want)
					}
					if v == OK {
						want := inner
						if mode == Transport {
							want = append(bytes.Clone(hdr), inner...)
							want[9] = nh
							fixLengths(want)
						}
						if !bytes.Equal(b.Bytes(), want) || gotNH != nh {
							t.Fatalf("%s: got %x nh %d", c.name, b.Bytes(), gotNH)
						}
						continue
					}
					if bytes.Contains(b.B[:], marker) && alg.Encrypts() {
						t.Fatalf("%s: plaintext left after %v", c.name, v)
					}
				}
			})
		}
	}
}

// TestDummy: Next Header 59 packets (RFC 4303 §2.6) take a sequence number,
// pass the integrity check, move the window and are then dropped.
func TestDummy(t *testing.T) {
	for _, alg := range allAlgorithms {
		for _, l := range []layout{layouts[0], layouts[2], layouts[5], layouts[9]} {
			t.Run(fmt.Sprintf("%v/%s", alg, l.name), func(t *testing.T) {
				o, in := newPair(t, testParams(alg, l.mode, l.outer, true))
				for _, n := range []int{0, 1, 77, 1000} {
					b := pkt.Get()
					b.Set(l.build(10))
					if v := o.SealDummy(b, n); v != OK {
						t.Fatalf("SealDummy(%d): %v", n, v)
					}
					w := b.Bytes()
					espOff := espOffsetOf(w)
					checkIPLengths(t, w)
					if l.mode == Transport && espOff != l.espOff {
						t.Fatalf("dummy ESP at %d, want %d", espOff, l.espOff)
					}
					if body := len(w) - espOff - 8 - alg.IVLen() - alg.ICVLen(); body != n+minPad(alg, n)+2 {
						t.Fatalf("dummy body %d for n=%d", body, n)
					}
					if _, v := in.Open(b, espOff); v != DropDummy {
						t.Fatalf("Open(dummy %d) = %v, want DropDummy", n, v)
					}
					if in.ReplayHighest() != o.Seq() {
						t.Fatalf("window %d, sender at %d: the dummy did not count", in.ReplayHighest(), o.Seq())
					}
					pkt.Put(b)
				}
				b := new(pkt.Buf)
				b.Set(l.build(10))
				if v := o.SealDummy(b, -1); v != DropMalformed {
					t.Errorf("SealDummy(-1) = %v", v)
				}
				if v := o.SealDummy(b, 70000); v != DropTooBig {
					t.Errorf("SealDummy(70000) = %v", v)
				}
			})
		}
	}
}

// TestTFC: TFC padding after the inner packet (RFC 4303 §2.7) is stripped
// using the inner length.
func TestTFC(t *testing.T) {
	for _, alg := range allAlgorithms {
		o, in := newPair(t, testParams(alg, Tunnel, 6, false))
		for i, inner := range [][]byte{ipv4UDP(33), ipv6UDP(33), ipv6Mobile(0)} {
			payload := append(bytes.Clone(inner), bytes.Repeat([]byte{0xee}, 37+i)...)
			nh := uint8(header.ProtoIPv4)
			if inner[0]>>4 == 6 {
				nh = header.ProtoIPv6
			}
			wire, _ := craft(t, o, ipv6(0, tun6s, tun6d, nil, header.ProtoESP, nil), uint64(i+1), trailer(payload, minPad(alg, len(payload)), nh))
			b, _, v := open(in, wire, 40)
			if v != OK || !bytes.Equal(b.Bytes(), inner) {
				t.Errorf("%v case %d: %v, got %d bytes want %d", alg, i, v, b.Len(), len(inner))
			}
		}
	}
}

// TestTunnelInnerMalformed: the decrypted tunnel payload must be an IP
// packet of the version Next Header names, no longer than the payload.
func TestTunnelInnerMalformed(t *testing.T) {
	v4, v6 := ipv4UDP(20), ipv6UDP(20)
	shortLen := bytes.Clone(v4)
	binary.BigEndian.PutUint16(shortLen[2:], 19) // total length < IHL*4
	longLen := bytes.Clone(v4)
	binary.BigEndian.PutUint16(longLen[2:], uint16(len(v4)+1))
	badIHL := bytes.Clone(v4)
	badIHL[0] = 0x44
	long6 := bytes.Clone(v6)
	binary.BigEndian.PutUint16(long6[4:], uint16(len(v6)))
	for _, tt := range []struct {
		name  string
		inner []byte
		nh    uint8
	}{
		{"v6-as-4", v6, header.ProtoIPv4},
		{"v4-as-41", v4, header.ProtoIPv6},
		{"udp", v4, header.ProtoUDP},
		{"total-short", shortLen, header.ProtoIPv4},
		{"total-long", longLen, header.ProtoIPv4},
		{"ihl-4", badIHL, header.ProtoIPv4},
		{"v6-payload-long", long6, header.ProtoIPv6},
		{"truncated-v4", v4[:19], header.ProtoIPv4},
		{"truncated-v6", v6[:39], header.ProtoIPv6},
		{"empty", nil, header.ProtoIPv4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, alg := range []Algorithm{AES128GCM16, AES128CBCSHA256} {
				o, in := newPair(t, testParams(alg, Tunnel, 4, false))
				wire, _ := craft(t, o, espHeader4(), 1, trailer(tt.inner, minPad(alg, len(tt.inner)), tt.nh))
				if _, _, v := open(in, wire, 20); v != DropMalformed {
					t.Errorf("%v: %v, want DropMalformed", alg, v)
				}
			}
		})
	}
}

// TestSeqExhaustion: the counter stops at 2^32-1 (2^64-1 with ESN) and
// never wraps (RFC 4303 §3.3.3), with NoReplay too.
func TestSeqExhaustion(t *testing.T) {
	for _, tt := range []struct {
		name     string
		esn      bool
		noReplay bool
		initial  uint64
		ok       int
	}{
		{"32bit", false, false, math.MaxUint32 - 3, 3},
		{"32bit-noreplay", false, true, math.MaxUint32 - 1, 1},
		{"esn", true, false, math.MaxUint64 - 2, 2},
		{"esn-exhausted-at-start", true, false, math.MaxUint64, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testParams(AES128GMAC, Tunnel, 4, tt.esn)
			p.InitialSeq, p.NoReplay = tt.initial, tt.noReplay
			o, _ := newPair(t, p)
			b := pkt.Get()
			defer pkt.Put(b)
			for i := range tt.ok + 3 {
				b.Set(ipv4UDP(1))
				want := OK
				if i >= tt.ok {
					want = DropSeqOverflow
				}
				if v := o.Seal(b); v != want {
					t.Fatalf("packet %d: %v, want %v", i, v, want)
				}
				if i >= tt.ok {
					if v := o.SealDummy(b, 1); v != DropSeqOverflow {
						t.Fatalf("dummy after exhaustion: %v", v)
					}
				}
			}
			if got := o.Seq(); got != maxSeq(tt.esn) {
				t.Fatalf("Seq = %#x, want %#x", got, maxSeq(tt.esn))
			}
		})
	}
}

// TestSeqExhaustionConcurrent: sealers racing at the end of the space get
// exactly the remaining numbers, each once, and the counter stays at max.
func TestSeqExhaustionConcurrent(t *testing.T) {
	for _, esn := range []bool{false, true} {
		p := testParams(AES128GCM16, Transport, 0, esn)
		const left = 500
		p.InitialSeq = maxSeq(esn) - left
		o, _ := newPair(t, p)
		var mu sync.Mutex
		seen := map[uint32]bool{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				b := pkt.Get()
				defer pkt.Put(b)
				for range 200 {
					b.Set(ipv4UDP(1))
					if o.Seal(b) != OK {
						continue
					}
					seq := binary.BigEndian.Uint32(b.Bytes()[24:])
					mu.Lock()
					if seen[seq] {
						t.Errorf("seq %#x twice", seq)
					}
					seen[seq] = true
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != left || o.Seq() != maxSeq(esn) {
			t.Errorf("esn=%v: %d packets sealed, Seq %#x; want %d, %#x", esn, len(seen), o.Seq(), left, maxSeq(esn))
		}
	}
}

// TestInitialSeq: the first packet carries InitialSeq+1.
func TestInitialSeq(t *testing.T) {
	for _, alg := range allAlgorithms {
		p := testParams(alg, Tunnel, 4, true)
		p.InitialSeq = 0x1_2345_6789
		o, in := newPair(t, p)
		w := sealed(t, o, ipv4UDP(9))
		if got := binary.BigEndian.Uint32(w[24:]); got != 0x2345_678a {
			t.Errorf("%v: wire seq %#x", alg, got)
		}
		if o.Seq() != 0x1_2345_678a {
			t.Errorf("%v: Seq %#x", alg, o.Seq())
		}
		if _, _, v := open(in, w, 20); v != OK || in.ReplayHighest() != 0x1_2345_678a {
			t.Errorf("%v: Open %v, T %#x", alg, v, in.ReplayHighest())
		}
	}
}

// TestESNHighBits: the high half is never sent but is in the ICV/AAD; a
// packet sealed at 2^32+5 opens only when the receiver infers Th = 1.
func TestESNHighBits(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(alg.String(), func(t *testing.T) {
			p := testParams(alg, Tunnel, 4, true)
			p.InitialSeq = 1<<32 + 4
			o, err := NewOutbound(p)
			if err != nil {
				t.Fatal(err)
			}
			plain := ipv4UDP(50)
			wire := sealed(t, o, plain)
			if got := binary.BigEndian.Uint32(wire[24:]); got != 5 {
				t.Fatalf("wire seq %#x, want 5", got)
			}
			// A sender at 5 without ESN puts the same low half on the wire.
			q := p
			q.ESN, q.InitialSeq = false, 4
			o32, in32 := newPair(t, q)
			wire32 := sealed(t, o32, plain)
			if alg == NULLSHA256 {
				// Deterministic suite: identical up to the ICV, which
				// covers the (unsent) high half.
				n := len(wire) - alg.ICVLen()
				if !bytes.Equal(wire[20:n], wire32[20:n]) || bytes.Equal(wire[n:], wire32[n:]) {
					t.Fatalf("ESN vs 32-bit:\n%x\n%x", wire, wire32)
				}
			}
			for _, tt := range []struct {
				name    string
				esn     bool
				initial uint64
				want    Verdict
			}{
				{"Th=1", true, 1<<32 + 4, OK},
				{"Th=0", true, 0, DropICV},
				{"Th=2", true, 2<<32 + 4, DropICV},
				{"no-esn", false, 4, DropICV},
			} {
				q := p
				q.ESN, q.InitialSeq = tt.esn, tt.initial
				in, err := NewInbound(q)
				if err != nil {
					t.Fatal(err)
				}
				b, _, v := open(in, wire, 20)
				if v != tt.want {
					t.Errorf("%s: %v, want %v", tt.name, v, tt.want)
				}
				if v == OK && !bytes.Equal(b.Bytes(), plain) {
					t.Errorf("%s: wrong plaintext", tt.name)
				}
			}
			if _, _, v := open(in32, wire32, 20); v != OK {
				t.Errorf("32-bit pair: %v", v)
			}
		})
	}
}

func TestDestroy(t *testing.T) {
	for _, alg := range allAlgorithms {
		o, in := newPair(t, testParams(alg, Tunnel, 4, false))
		wire := sealed(t, o, ipv4UDP(1))
		seq := o.Seq()
		o.Destroy()
		o.Destroy() // idempotent
		in.Destroy()
		b := pkt.Get()
		b.Set(ipv4UDP(1))
		if v := o.Seal(b); v != DropExpired {
			t.Errorf("%v: Seal after Destroy: %v", alg, v)
		}
		if v := o.SealDummy(b, 1); v != DropExpired {
			t.Errorf("%v: SealDummy after Destroy: %v", alg, v)
		}
		if o.Seq() != seq {
			t.Errorf("%v: Destroyed SA used a sequence number", alg)
		}
		if _, _, v := open(in, wire, 20); v != DropExpired {
			t.Errorf("%v: Open after Destroy: %v", alg, v)
		}
		pkt.Put(b)
	}
}

// TestFragments: transport mode never seals fragments; tunnel mode carries
// them; an ESP packet in a fragment is dropped (RFC 4303 §3.3.4, §3.4.1).
func TestFragments(t *testing.T) {
	v4 := func(flagsOffset uint16) []byte { // the whole flags/fragment offset word
		p := ipv4(header.IPv4Fields{TTL: 64, Protocol: header.ProtoUDP, Src: v4a, Dst: v4b}, nil, udp(30, 1))
		binary.BigEndian.PutUint16(p[6:], flagsOffset)
		header.IPv4(p).UpdateChecksum()
		return p
	}
	v6frag := ipv6(0, v6a, v6b, []ext{hopByHop(), fragment(0, true)}, header.ProtoUDP, udp(30, 1))
	v6last := ipv6(0, v6a, v6b, []ext{fragment(8, false)}, header.ProtoUDP, udp(30, 1))
	for _, tt := range []struct {
		name  string
		mode  Mode
		plain []byte
		want  Verdict
	}{
		{"transport/v4-MF", Transport, v4(header.IPv4FlagMF), DropFragment},
		{"transport/v4-offset", Transport, v4(5), DropFragment},
		{"transport/v4-DF", Transport, v4(header.IPv4FlagDF), OK},
		{"transport/v6-first", Transport, v6frag, DropFragment},
		{"transport/v6-last", Transport, v6last, DropFragment},
		{"tunnel/v4-MF", Tunnel, v4(header.IPv4FlagMF), OK},
		{"tunnel/v6-frag", Tunnel, v6frag, OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, in := newPair(t, testParams(AES128GCM16, tt.mode, 4, false))
			b := pkt.Get()
			defer pkt.Put(b)
			b.Set(tt.plain)
			seq := o.Seq()
			if v := o.Seal(b); v != tt.want {
				t.Fatalf("Seal: %v, want %v", v, tt.want)
			}
			if tt.want != OK {
				if o.Seq() != seq {
					t.Error("a refused packet used a sequence number")
				}
				return
			}
			if _, v := in.Open(b, espOffsetOf(b.Bytes())); v != OK || !bytes.Equal(b.Bytes(), tt.plain) {
				t.Errorf("Open: %v", v)
			}
		})
	}

	// Inbound: the ESP packet arrives in a fragment.
	for _, tt := range []struct {
		name string
		mode Mode
		mut  func(w []byte) []byte
	}{
		{"v4-MF", Tunnel, func(w []byte) []byte { w[6] |= 0x20; header.IPv4(w).UpdateChecksum(); return w }},
		{"v4-offset", Transport, func(w []byte) []byte { w[7] = 1; header.IPv4(w).UpdateChecksum(); return w }},
	} {
		t.Run("inbound/"+tt.name, func(t *testing.T) {
			o, in := newPair(t, testParams(NULLSHA256, tt.mode, 4, false))
			w := tt.mut(sealed(t, o, ipv4UDP(10)))
			if _, _, v := open(in, w, 20); v != DropFragment {
				t.Errorf("%v, want DropFragment", v)
			}
		})
	}
	t.Run("inbound/v6-fragment-header", func(t *testing.T) {
		o, in := newPair(t, testParams(NULLSHA256, Tunnel, 6, false))
		w := sealed(t, o, ipv4UDP(10))
		// Insert a Fragment header between the IPv6 header and ESP.
		f := fragment(0, true).b
		f[0] = header.ProtoESP
		w2 := append(append(append([]byte(nil), w[:40]...), f...), w[40:]...)
		w2[6] = header.ProtoFragment
		fixLengths(w2)
		if _, _, v := open(in, w2, 48); v != DropFragment {
			t.Errorf("%v, want DropFragment", v)
		}
	})
}

// TestSealHostile: what Seal refuses.
func TestSealHostile(t *testing.T) {
	good4, good6 := ipv4UDP(10), ipv6UDP(10)
	mut := func(p []byte, f func([]byte)) []byte { p = bytes.Clone(p); f(p); return p }
	for _, tt := range []struct {
		name  string
		mode  Mode
		plain []byte
		head  int // headroom to leave (0 = pkt.Headroom)
		want  Verdict
	}{
		{"empty", Tunnel, nil, 0, DropMalformed},
		{"version-5", Tunnel, mut(good4, func(p []byte) { p[0] = 0x55 }), 0, DropMalformed},
		{"v4-short", Tunnel, good4[:19], 0, DropMalformed},
		{"v4-total-long", Tunnel, mut(good4, func(p []byte) { p[3]++ }), 0, DropMalformed},
		{"v4-ihl-60-short", Transport, mut(good4, func(p []byte) { p[0] = 0x4f }), 0, DropMalformed},
		{"v6-short", Tunnel, good6[:39], 0, DropMalformed},
		{"v6-payload-long", Transport, mut(good6, func(p []byte) { p[5]++ }), 0, DropMalformed},
		{"v6-jumbo", Tunnel, mut(good6, func(p []byte) { p[4], p[5] = 0, 0 }), 0, DropMalformed},
		{"v6-ext-truncated", Transport, ipv6(0, v6a, v6b, []ext{{header.ProtoDestOpts, []byte{0, 9, 1, 0, 0, 0, 0, 0}}}, header.ProtoUDP, nil), 0, DropMalformed},
		{"v6-hao-overrun", Transport, ipv6(0, v6a, v6b, []ext{{header.ProtoDestOpts, []byte{0, 0, 1, 9, 0, 0, 0, 0}}}, header.ProtoUDP, nil), 0, DropMalformed},
		{"no-headroom-tunnel", Tunnel, good4, 40, DropTooBig},
		{"no-headroom-transport", Transport, good4, 15, DropTooBig},
		{"too-big-tunnel", Tunnel, ipv4(header.IPv4Fields{TTL: 1, Protocol: 17, Src: v4a, Dst: v4b}, nil, make([]byte, 65535-20-10)), 0, DropTooBig},
		{"too-big-transport-v6", Transport, ipv6(0, v6a, v6b, nil, 17, make([]byte, 65535-10)), 0, DropTooBig},
		{"trailing-bytes-cut", Tunnel, append(bytes.Clone(good4), 1, 2, 3), 0, OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, in := newPair(t, testParams(AES128CBCSHA256, tt.mode, 4, false))
			b := new(pkt.Buf)
			head := pkt.Headroom
			if tt.head != 0 {
				head = tt.head
			}
			b.SetBytes(head, len(tt.plain))
			copy(b.Bytes(), tt.plain)
			seq := o.Seq()
			if v := o.Seal(b); v != tt.want {
				t.Fatalf("Seal: %v, want %v", v, tt.want)
			}
			if tt.want != OK {
				if o.Seq() != seq {
					t.Error("a refused packet used a sequence number")
				}
				return
			}
			if _, v := in.Open(b, espOffsetOf(b.Bytes())); v != OK || !bytes.Equal(b.Bytes(), good4) {
				t.Errorf("Open: %v %x", v, b.Bytes())
			}
		})
	}
}

// TestOpenHostile: malformed and misdirected input to Open.
func TestOpenHostile(t *testing.T) {
	type tcase struct {
		name   string
		mode   Mode
		alg    Algorithm
		outer  int
		mut    func(w []byte) []byte
		espOff int // -100: use the real offset
		want   Verdict
	}
	same := -100
	cut := func(n int) func([]byte) []byte { return func(w []byte) []byte { return w[:n] } }
	set := func(i int, c byte) func([]byte) []byte {
		return func(w []byte) []byte { w[i] = c; return w }
	}
	fix := func(f func([]byte) []byte) func([]byte) []byte {
		return func(w []byte) []byte { w = f(w); fixLengths(w); return w }
	}
	for _, tt := range []tcase{
		{"empty", Tunnel, AES128GCM16, 4, cut(0), 0, DropMalformed},
		{"neg-offset", Tunnel, AES128GCM16, 4, nil, -1, DropMalformed},
		{"offset-past-end", Tunnel, AES128GCM16, 4, cut(30), 31, DropMalformed},
		{"transport-offset-0", Transport, AES128GCM16, 0, nil, 0, DropMode},
		{"esp-header-only", Tunnel, AES128GCM16, 4, fix(cut(28)), same, DropMalformed},
		{"esp-no-trailer", Tunnel, AES128GCM16, 4, fix(cut(20 + 8 + 8 + 16 + 1)), same, DropMalformed},
		{"cbc-partial-block", Tunnel, AES256CBCSHA256, 4, fix(func(w []byte) []byte { return w[:len(w)-1] }), same, DropMalformed},
		{"truncated-icv", Tunnel, NULLSHA256, 4, fix(func(w []byte) []byte { return w[:len(w)-1] }), same, DropICV},
		{"wrong-spi", Tunnel, ChaCha20Poly1305, 4, set(23, 0x35), same, DropNoSA},
		{"seq-0", Tunnel, AES128GCM16, 4, func(w []byte) []byte { clear(w[24:28]); return w }, same, DropReplay},
		{"outer-version-5", Tunnel, AES128GCM16, 4, set(0, 0x55), same, DropMalformed},
		{"outer-v4-proto-17", Tunnel, AES128GCM16, 4, set(9, 17), same, DropMalformed},
		{"outer-v4-ihl-mismatch", Tunnel, AES128GCM16, 4, nil, 24, DropMalformed},
		{"outer-v4-offset-short", Tunnel, AES128GCM16, 4, nil, 12, DropMalformed},
		{"transport-v4-len-mismatch", Transport, AES128GCM16, 0, set(3, 1), same, DropMalformed},
		{"transport-v6-len-mismatch", Transport, AES128GCM16, 6, set(5, 1), same, DropMalformed},
		{"outer-v6-offset-short", Tunnel, AES128GCM16, 6, nil, 39, DropMalformed},
		{"outer-v6-nh-udp", Tunnel, AES128GCM16, 6, set(6, 17), same, DropMalformed},
		{"outer-v6-chain-overrun", Transport, AES128GCM16, 6, set(41, 7), same, DropMalformed},
		{"outer-v6-wrong-offset", Transport, AES128GCM16, 6, nil, 40, DropMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testParams(tt.alg, tt.mode, tt.outer, false)
			o, in := newPair(t, p)
			plain := ipv4UDP(40)
			if tt.outer == 6 {
				plain = markedMobile6()
			}
			w := sealed(t, o, plain)
			real := espOffsetOf(w)
			if tt.mut != nil {
				w = tt.mut(w)
			}
			off := tt.espOff
			if off == same {
				off = real
			}
			if _, _, v := open(in, w, off); v != tt.want {
				t.Fatalf("Open: %v, want %v", v, tt.want)
			}
		})
	}
}

func TestParamsValidation(t *testing.T) {
	good := testParams(AES128CBCSHA256, Tunnel, 4, false)
	mut := func(f func(*Params)) Params { p := good; f(&p); return p }
	for _, tt := range []struct {
		name string
		p    Params
		ok   bool
	}{
		{"good", good, true},
		{"good-transport-no-addrs", mut(func(p *Params) { p.Mode, p.TunnelSrc, p.TunnelDst = Transport, netip.Addr{}, netip.Addr{} }), true},
		{"mapped-v4", mut(func(p *Params) { p.TunnelSrc = netip.AddrFrom16(tun4s.As16()) }), true},
		{"window-32", mut(func(p *Params) { p.ReplayWindow = 32 }), true},
		{"window-8192", mut(func(p *Params) { p.ReplayWindow = MaxReplayWindow }), true},
		{"noreplay", mut(func(p *Params) { p.NoReplay = true }), true},
		{"esn-initial-2^40", mut(func(p *Params) { p.ESN, p.InitialSeq = true, 1<<40 }), true},
		{"spi-0", mut(func(p *Params) { p.SPI = 0 }), false},
		{"alg-0", mut(func(p *Params) { p.Algorithm = AlgInvalid }), false},
		{"alg-99", mut(func(p *Params) { p.Algorithm = 99 }), false},
		{"enc-key-short", mut(func(p *Params) { p.EncKey = p.EncKey[:15] }), false},
		{"enc-key-long", mut(func(p *Params) { p.EncKey = append(bytes.Clone(p.EncKey), 0) }), false},
		{"auth-key-short", mut(func(p *Params) { p.AuthKey = p.AuthKey[:20] }), false},
		{"aead-with-auth-key", mut(func(p *Params) { p.Algorithm, p.EncKey = AES128GCM16, key(20, 1) }), false},
		{"mode-0", mut(func(p *Params) { p.Mode = 0 }), false},
		{"tunnel-no-dst", mut(func(p *Params) { p.TunnelDst = netip.Addr{} }), false},
		{"tunnel-mixed", mut(func(p *Params) { p.TunnelDst = tun6d }), false},
		{"tunnel-unspecified", mut(func(p *Params) { p.TunnelSrc = netip.IPv4Unspecified() }), false},
		{"df-9", mut(func(p *Params) { p.DF = 9 }), false},
		{"window-31", mut(func(p *Params) { p.ReplayWindow = 31 }), false},
		{"window-too-big", mut(func(p *Params) { p.ReplayWindow = MaxReplayWindow + 1 }), false},
		{"window-negative", mut(func(p *Params) { p.ReplayWindow = -1 }), false},
		{"noreplay-esn", mut(func(p *Params) { p.NoReplay, p.ESN = true, true }), false},
		{"initial-beyond-32bit", mut(func(p *Params) { p.InitialSeq = 1 << 32 }), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, errO := NewOutbound(tt.p)
			in, errI := NewInbound(tt.p)
			for _, err := range []error{errO, errI} {
				if (err == nil) != tt.ok {
					t.Fatalf("err = %v, want ok=%v", err, tt.ok)
				}
				if err != nil && !errors.Is(err, ErrInvalidParams) {
					t.Fatalf("%v does not wrap ErrInvalidParams", err)
				}
			}
			if !tt.ok {
				return
			}
			for _, q := range []Params{o.Params(), in.Params()} {
				if q.EncKey != nil || q.AuthKey != nil {
					t.Error("Params() exposes keys")
				}
				if q.ReplayWindow == 0 || (q.Mode == Tunnel && !q.TunnelSrc.Is4()) {
					t.Errorf("Params() not normalized: %+v", q)
				}
			}
			if o.SPI() != tt.p.SPI || in.SPI() != tt.p.SPI {
				t.Error("SPI()")
			}
		})
	}
}

// TestGMACESNNeedsRoom: AES-GMAC with ESN borrows 4 bytes in front of the
// ESP header; with none it refuses instead of reading outside the Buf.
func TestGMACESNNeedsRoom(t *testing.T) {
	o, in := newPair(t, testParams(AES256GMAC, Tunnel, 4, true))
	w := sealed(t, o, ipv4UDP(8))
	b := new(pkt.Buf)
	b.SetBytes(0, len(w)-20)
	copy(b.Bytes(), w[20:])
	if _, v := in.Open(b, 0); v != DropTooBig {
		t.Errorf("Open with ESP at B[0]: %v, want DropTooBig", v)
	}
	b.SetBytes(4, len(w)-20)
	copy(b.Bytes(), w[20:])
	copy(b.B[:4], "abcd")
	if _, v := in.Open(b, 0); v != OK {
		t.Errorf("Open with ESP at B[4]: %v", v)
	}
	if string(b.B[:4]) != "abcd" {
		t.Errorf("borrowed bytes not restored: %q", b.B[:4])
	}
}

// TestSeqReserve: Seal never hands out a number beyond the durable
// reservation, refuses with DropSeqReserve (not DropSeqOverflow) at the
// limit, and continues once the reservation grows.
func TestSeqReserve(t *testing.T) {
	p := Params{SPI: 0x100, Algorithm: AES128GCM16, EncKey: make([]byte, 20), Mode: Tunnel,
		TunnelSrc: netip.MustParseAddr("192.0.2.1"), TunnelDst: netip.MustParseAddr("192.0.2.2"), InitialSeq: 10}
	o, err := NewOutbound(p)
	if err != nil {
		t.Fatal(err)
	}
	o.SetSeqReserve(12)
	inner := make([]byte, 40)
	header.IPv4(inner).Encode(&header.IPv4Fields{TotalLen: 40, TTL: 64, Protocol: header.ProtoUDP,
		Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("198.51.100.2")})
	b := pkt.Get()
	defer pkt.Put(b)
	for i, want := range []Verdict{OK, OK, DropSeqReserve, DropSeqReserve} {
		b.Set(inner)
		if v := o.Seal(b); v != want {
			t.Fatalf("packet %d: %v, want %v", i, v, want)
		}
	}
	if o.Seq() != 12 {
		t.Fatalf("Seq = %d after refusals, want 12", o.Seq())
	}
	o.SetSeqReserve(13)
	b.Set(inner)
	if v := o.Seal(b); v != OK || header.ESP(b.Bytes()[20:]).Seq() != 13 {
		t.Fatalf("after growing the reserve: %v seq %d", v, header.ESP(b.Bytes()[20:]).Seq())
	}
	o.SetSeqReserve(0)
	b.Set(inner)
	if v := o.Seal(b); v != OK {
		t.Fatalf("without a reserve: %v", v)
	}
}

// TestSeqReserveParam: Params.SeqReserve bounds the SA from its first packet.
func TestSeqReserveParam(t *testing.T) {
	p := Params{SPI: 0x101, Algorithm: AES128GCM16, EncKey: make([]byte, 20), Mode: Tunnel,
		TunnelSrc: netip.MustParseAddr("192.0.2.1"), TunnelDst: netip.MustParseAddr("192.0.2.2"), InitialSeq: 5, SeqReserve: 6}
	o, err := NewOutbound(p)
	if err != nil {
		t.Fatal(err)
	}
	inner := make([]byte, 40)
	header.IPv4(inner).Encode(&header.IPv4Fields{TotalLen: 40, TTL: 64, Protocol: header.ProtoUDP,
		Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("198.51.100.2")})
	b := pkt.Get()
	defer pkt.Put(b)
	for i, want := range []Verdict{OK, DropSeqReserve} {
		b.Set(inner)
		if v := o.Seal(b); v != want {
			t.Fatalf("packet %d: %v, want %v", i, v, want)
		}
	}
}
