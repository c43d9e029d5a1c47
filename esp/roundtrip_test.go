package esp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// layout is one packet shape: mode, outer family, the packet builder, and
// where ESP must land in transport mode.
type layout struct {
	name   string
	mode   Mode
	outer  int                // tunnel: outer family
	build  func(n int) []byte // n: UDP payload bytes
	espOff int                // transport: expected ESP offset
	nh     uint8              // expected ESP Next Header
}

var ipv4Options = []byte{1, 1, 1, 0} // NOP, NOP, NOP, EOL: a 24-byte header

var layouts = []layout{
	{"tunnel/4in4", Tunnel, 4, ipv4UDP, 0, header.ProtoIPv4},
	{"tunnel/6in6", Tunnel, 6, ipv6UDP, 0, header.ProtoIPv6},
	{"tunnel/4in6", Tunnel, 6, ipv4UDP, 0, header.ProtoIPv4},
	{"tunnel/6in4", Tunnel, 4, ipv6UDP, 0, header.ProtoIPv6},
	{"tunnel/6in6-mobile", Tunnel, 6, ipv6Mobile, 0, header.ProtoIPv6},
	{"transport/v4", Transport, 0, ipv4UDP, 20, header.ProtoUDP},
	{"transport/v4-options", Transport, 0, func(n int) []byte {
		return ipv4(header.IPv4Fields{TTL: 9, Protocol: header.ProtoUDP, Src: v4a, Dst: v4b}, ipv4Options, udp(n, 1))
	}, 24, header.ProtoUDP},
	{"transport/v6", Transport, 0, ipv6UDP, 40, header.ProtoUDP},
	// HbH, DO (before RH: stays), RH2, DO with HAO (stays), DO (inside ESP).
	{"transport/v6-hbh-do-rh2-hao-do", Transport, 0, ipv6Mobile, 104, header.ProtoDestOpts},
	// A HAO-only chain as an MN sends a BU (RFC 6275 §6.3).
	{"transport/v6-hao", Transport, 0, func(n int) []byte {
		return ipv6(0, v6a, v6b, []ext{destOptsHAO(hoa)}, header.ProtoMobility, udp(n, 2))
	}, 64, header.ProtoMobility},
	// A last Destination Options header without a HAO goes inside ESP.
	{"transport/v6-final-do", Transport, 0, func(n int) []byte {
		return ipv6(0, v6a, v6b, []ext{hopByHop(), destOpts()}, header.ProtoUDP, udp(n, 2))
	}, 48, header.ProtoDestOpts},
}

var roundTripSizes = []int{0, 1, 2, 3, 5, 13, 100, 1400}

// TestRoundTrip seals and opens packets for every algorithm × layout ×
// ESN, checking the wire form on the way: outer header fields, ESP
// placement, SPI and sequence number, padding alignment, confidentiality.
func TestRoundTrip(t *testing.T) {
	for _, alg := range allAlgorithms {
		for _, l := range layouts {
			for _, esn := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%s/esn=%v", alg, l.name, esn), func(t *testing.T) {
					p := testParams(alg, l.mode, l.outer, esn)
					if esn { // cross the 2^32 boundary
						p.InitialSeq = math.MaxUint32 - 3
					}
					o, in := newPair(t, p)
					for _, n := range roundTripSizes {
						plain := l.build(n)
						seq := o.Seq() + 1
						wire := sealed(t, o, plain)
						espOff := checkWire(t, p, l, plain, wire, seq)
						b, nh, v := open(in, wire, espOff)
						if v != OK || nh != l.nh {
							t.Fatalf("size %d: Open = %d, %v; want %d, OK", n, nh, v, l.nh)
						}
						if diff := cmp.Diff(plain, b.Bytes()); diff != "" {
							t.Fatalf("size %d: Open (-want +got):\n%s", n, diff)
						}
						if got := in.ReplayHighest(); got != seq {
							t.Errorf("window T = %#x, want %#x", got, seq)
						}
					}
				})
			}
		}
	}
}

// checkWire checks the sealed packet and returns its ESP offset.
func checkWire(t *testing.T, p Params, l layout, plain, wire []byte, seq uint64) int {
	t.Helper()
	alg := p.Algorithm
	espOff := espOffsetOf(wire)
	if espOff < 0 {
		t.Fatalf("no ESP header in %x", wire)
	}
	if l.mode == Transport && espOff != l.espOff {
		t.Fatalf("ESP at %d, want %d", espOff, l.espOff)
	}
	esp := wire[espOff:]
	if got := binary.BigEndian.Uint32(esp); got != p.SPI {
		t.Errorf("SPI %#x, want %#x", got, p.SPI)
	}
	if got := binary.BigEndian.Uint32(esp[4:]); got != uint32(seq) {
		t.Errorf("seq %#x, want %#x (low half of %#x)", got, uint32(seq), seq)
	}
	// IV of the counter-mode suites is the 64-bit sequence number.
	if alg.CounterMode() {
		if got := binary.BigEndian.Uint64(esp[8:]); got != seq {
			t.Errorf("IV %#x, want %#x", got, seq)
		}
	}
	payload := plain[l.espOff:] // tunnel: all of it
	body := len(esp) - 8 - alg.IVLen() - alg.ICVLen()
	if want := len(payload) + minPad(alg, len(payload)) + 2; body != want {
		t.Errorf("ESP body %d bytes, want %d (minimal padding)", body, want)
	}
	if (8+alg.IVLen()+body)%4 != 0 || body%alg.BlockSize() != 0 {
		t.Errorf("ESP body %d not aligned (RFC 4303 §2.4)", body)
	}
	inClear := bytes.Contains(esp, payload)
	if len(payload) >= 16 && inClear == alg.Encrypts() {
		t.Errorf("payload in clear = %v for %v", inClear, alg)
	}
	checkIPLengths(t, wire)

	if l.mode == Transport {
		// The headers in front are the original ones but for the one
		// Next Header and the lengths.
		want := append([]byte(nil), plain[:espOff]...)
		got := append([]byte(nil), wire[:espOff]...)
		if wire[0]>>4 == 4 {
			for _, q := range [][]byte{want, got} {
				q[2], q[3], q[9], q[10], q[11] = 0, 0, 0, 0, 0
			}
		} else {
			for _, q := range [][]byte{want, got} {
				q[4], q[5] = 0, 0
			}
			nhOff := 6
			for off := 40; off < espOff; off += (int(wire[off+1]) + 1) * 8 {
				nhOff = off
			}
			want[nhOff], got[nhOff] = 0, 0
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("headers in front of ESP (-want +got):\n%s", diff)
		}
		return espOff
	}

	// Tunnel: outer header from the template, DSCP/ECN from the inner.
	innerTOS := plain[1]
	if plain[0]>>4 == 6 {
		innerTOS = header.IPv6(plain).TrafficClass()
	}
	if l.outer == 4 {
		ip := header.IPv4(wire)
		if ip.Src() != p.TunnelSrc || ip.Dst() != p.TunnelDst || ip.TTL() != 64 || ip.TOS() != innerTOS ||
			ip.ID() != uint16(seq) || espOff != 20 {
			t.Errorf("outer IPv4 %x: want %v->%v TTL 64 TOS %#x ID %#x", wire[:20], p.TunnelSrc, p.TunnelDst, innerTOS, uint16(seq))
		}
		wantDF := plain[0]>>4 == 4 && header.IPv4(plain).Flags()&header.IPv4FlagDF != 0
		if got := ip.Flags()&header.IPv4FlagDF != 0; got != wantDF {
			t.Errorf("outer DF %v, want %v (DFCopy)", got, wantDF)
		}
	} else {
		ip := header.IPv6(wire)
		if ip.Src() != p.TunnelSrc || ip.Dst() != p.TunnelDst || ip.HopLimit() != 64 ||
			ip.TrafficClass() != innerTOS || ip.FlowLabel() != 0 || espOff != 40 {
			t.Errorf("outer IPv6 %x: want %v->%v hop 64 TC %#x", wire[:40], p.TunnelSrc, p.TunnelDst, innerTOS)
		}
	}
	return espOff
}

func checkIPLengths(t *testing.T, p []byte) {
	t.Helper()
	if p[0]>>4 == 4 {
		if header.IPv4(p).TotalLen() != len(p) || !ipv4ChecksumOK(p) {
			t.Errorf("IPv4 total length %d (packet %d) or checksum wrong", header.IPv4(p).TotalLen(), len(p))
		}
		return
	}
	if header.IPv6(p).PayloadLen() != len(p)-40 {
		t.Errorf("IPv6 payload length %d, packet %d", header.IPv6(p).PayloadLen(), len(p))
	}
}

// TestOuterHeaderOptions covers HopLimit and the three DF settings.
func TestOuterHeaderOptions(t *testing.T) {
	for _, tt := range []struct {
		name  string
		df    DF
		inner []byte
		want  bool
	}{
		{"copy-set", DFCopy, ipv4UDP(10), true},
		{"copy-v6", DFCopy, ipv6UDP(10), false},
		{"set", DFSet, ipv6UDP(10), true},
		{"clear", DFClear, ipv4UDP(10), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testParams(AES128GCM16, Tunnel, 4, false)
			p.DF, p.HopLimit = tt.df, 17
			o, _ := newPair(t, p)
			w := sealed(t, o, tt.inner)
			ip := header.IPv4(w)
			if got := ip.Flags()&header.IPv4FlagDF != 0; got != tt.want || ip.TTL() != 17 || !ipv4ChecksumOK(w) {
				t.Errorf("DF %v TTL %d checksum ok %v; want DF %v TTL 17", got, ip.TTL(), ipv4ChecksumOK(w), tt.want)
			}
		})
	}
}

// TestSealReturnsSameBuffer: sealing and opening are in place; the payload
// never moves (STYLE.md §3: &out[payload] == &pt[0]).
func TestSealReturnsSameBuffer(t *testing.T) {
	for _, alg := range allAlgorithms {
		for _, l := range []layout{layouts[0], layouts[3], layouts[5], layouts[8]} {
			t.Run(fmt.Sprintf("%v/%s", alg, l.name), func(t *testing.T) {
				o, in := newPair(t, testParams(alg, l.mode, l.outer, false))
				plain := l.build(200)
				b := pkt.Get()
				defer pkt.Put(b)
				b.Set(plain)
				payloadAddr := unsafe.Pointer(&b.Bytes()[l.espOff]) // tunnel: the inner packet
				if v := o.Seal(b); v != OK {
					t.Fatal(v)
				}
				out := b.Bytes()
				espOff := espOffsetOf(out)
				if got := unsafe.Pointer(&out[espOff+8+alg.IVLen()]); got != payloadAddr {
					t.Fatalf("sealed payload at %p, plaintext was at %p", got, payloadAddr)
				}
				if _, v := in.Open(b, espOff); v != OK {
					t.Fatal(v)
				}
				if got := unsafe.Pointer(&b.Bytes()[l.espOff]); got != payloadAddr {
					t.Fatalf("opened payload at %p, want %p", got, payloadAddr)
				}
				if !bytes.Equal(b.Bytes(), plain) {
					t.Fatal("round trip differs")
				}
			})
		}
	}
}

// TestOverhead: Overhead bounds what Seal adds and is reached.
func TestOverhead(t *testing.T) {
	for _, alg := range allAlgorithms {
		for _, l := range layouts[:6] {
			o, _ := newPair(t, testParams(alg, l.mode, l.outer, false))
			max := 0
			for n := range 40 {
				plain := l.build(n)
				d := len(sealed(t, o, plain)) - len(plain)
				if d > o.Overhead() {
					t.Errorf("%v/%s size %d: Seal added %d > Overhead %d", alg, l.name, n, d, o.Overhead())
				}
				if want := alg.Overhead(len(plain) - l.espOff); l.mode == Transport && d != want {
					t.Errorf("%v/%s size %d: Seal added %d, Algorithm.Overhead says %d", alg, l.name, n, d, want)
				}
				max = maxInt(max, d)
			}
			if max != o.Overhead() {
				t.Errorf("%v/%s: most added %d, Overhead %d", alg, l.name, max, o.Overhead())
			}
		}
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func TestBatch(t *testing.T) {
	o, in := newPair(t, testParams(AES256GCM16, Tunnel, 6, true))
	var bufs []*pkt.Buf
	var plains [][]byte
	for i := range 32 {
		b := pkt.Get()
		defer pkt.Put(b)
		plain := ipv4UDP(i * 40)
		if i%3 == 0 {
			plain = ipv6UDP(i * 40)
		}
		if i == 7 {
			plain = []byte{0x55} // not an IP packet
		}
		b.Set(plain)
		bufs, plains = append(bufs, b), append(plains, plain)
	}
	v := make([]Verdict, len(bufs))
	o.SealBatch(bufs, v)
	offs := make([]int, len(bufs))
	for i := range bufs {
		if want := map[bool]Verdict{true: DropMalformed, false: OK}[i == 7]; v[i] != want {
			t.Fatalf("SealBatch[%d] = %v, want %v", i, v[i], want)
		}
		offs[i] = 40
	}
	bufs = append(bufs[:7], bufs[8:]...)
	plains = append(plains[:7], plains[8:]...)
	nh := make([]uint8, len(bufs))
	in.OpenBatch(bufs, offs, nh, v)
	for i, b := range bufs {
		if v[i] != OK || !bytes.Equal(b.Bytes(), plains[i]) {
			t.Errorf("OpenBatch[%d] = %v, bytes equal %v", i, v[i], bytes.Equal(b.Bytes(), plains[i]))
		}
	}
}

// TestOpenWithoutOuterHeader: tunnel mode accepts espOff 0.
func TestOpenWithoutOuterHeader(t *testing.T) {
	o, in := newPair(t, testParams(ChaCha20Poly1305, Tunnel, 6, false))
	plain := ipv6UDP(64)
	wire := sealed(t, o, plain)
	b, nh, v := open(in, wire[40:], 0)
	if v != OK || nh != header.ProtoIPv6 || !bytes.Equal(b.Bytes(), plain) {
		t.Fatalf("Open(espOff 0) = %d, %v", nh, v)
	}
}

// TestCBCIV: AES-CBC IVs are not the counter (RFC 3602 §3), differ per
// packet, and differ between two SA instances with the same keys (K_iv is
// random per instance), so a restarted manually keyed SA gets fresh IVs.
func TestCBCIV(t *testing.T) {
	for _, alg := range []Algorithm{AES128CBCSHA256, AES256CBCSHA1} {
		p := testParams(alg, Tunnel, 4, false)
		o1, _ := newPair(t, p)
		o2, _ := newPair(t, p)
		seen := map[string]bool{}
		for i := range 200 {
			w1, w2 := sealed(t, o1, ipv4UDP(i)), sealed(t, o2, ipv4UDP(i))
			iv1, iv2 := string(w1[28:44]), string(w2[28:44])
			if iv1 == iv2 {
				t.Fatalf("%v: two SA instances gave packet %d the same IV", alg, i+1)
			}
			var ctr [16]byte
			binary.BigEndian.PutUint64(ctr[:], uint64(i+1))
			if seen[iv1] || iv1 == string(ctr[:]) || iv1 == string(make([]byte, 16)) {
				t.Fatalf("%v: IV %x repeated or predictable", alg, iv1)
			}
			seen[iv1] = true
		}
	}
}
