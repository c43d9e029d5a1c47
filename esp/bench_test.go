package esp

// Benchmarks: Seal and Open per algorithm and size (tunnel mode, IPv4 in
// IPv4), the bare primitives they are built on ("raw"), and the ratio of
// the two measured side by side in one benchmark.
//
//	go test -run x -bench . -benchtime 200ms ./esp
//
// What is measured:
//   - Seal: restore the 20-byte inner header the previous iteration
//     encrypted, then Seal (sequence number, trailer, ESP header, crypto,
//     outer header). Raw: cipher.AEAD.Seal in place on the same number of
//     plaintext bytes (payload + padding + 2), nonce and AAD prepared.
//   - Open: copy the sealed packet into the Buf (a receive would put it
//     there), then Open with the anti-replay window on: every packet has a
//     new sequence number; batches of 64 are sealed with the timer stopped.
//     Raw: the same copy, then cipher.AEAD.Open in place.
//   - For AES-GMAC, AES-CBC + HMAC and NULL + HMAC, "raw" is the same
//     primitives called directly without ESP: GCM with the packet as AAD,
//     CryptBlocks + HMAC (verify + CryptBlocks on open), HMAC alone.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
	"golang.org/x/crypto/chacha20poly1305"
)

var benchSizes = []int{64, 512, 1400, 8192}

// benchPacket is an IPv4/UDP packet of n bytes in total.
func benchPacket(n int) []byte {
	return ipv4(header.IPv4Fields{TOS: 0, TTL: 64, Protocol: header.ProtoUDP, Src: v4a, Dst: v4b}, nil,
		udp(n-header.IPv4MinHeaderLen-header.UDPHeaderLen, 1))
}

func benchParams(alg Algorithm) Params {
	return testParams(alg, Tunnel, 4, false)
}

// sealOp returns one Seal of an n-byte packet, repeatable.
func sealOp(tb testing.TB, alg Algorithm, n int) func() {
	o, err := NewOutbound(benchParams(alg))
	if err != nil {
		tb.Fatal(err)
	}
	plain := benchPacket(n)
	b := new(pkt.Buf)
	return func() {
		b.SetBytes(pkt.Headroom, n)
		copy(b.B[pkt.Headroom:], plain[:header.IPv4MinHeaderLen])
		if v := o.Seal(b); v != OK {
			tb.Fatal(v)
		}
	}
}

// opener opens n-byte packets with the window on, resealing a batch of
// fresh ones when refill says so.
type opener struct {
	tb    testing.TB
	o     *Outbound
	in    *Inbound
	plain []byte
	slab  [][]byte // sealed packets, fresh sequence numbers
	next  int
	b     *pkt.Buf
	seal  *pkt.Buf
}

const openBatch = 64

func newOpener(tb testing.TB, alg Algorithm, n int) *opener {
	p := benchParams(alg)
	p.ReplayWindow = MaxReplayWindow
	o, in := newPair(tb, p)
	op := &opener{tb: tb, o: o, in: in, plain: benchPacket(n), b: new(pkt.Buf), seal: new(pkt.Buf)}
	for range openBatch {
		op.slab = append(op.slab, make([]byte, 0, n+o.Overhead()))
	}
	op.refill()
	return op
}

// refill seals a batch of packets (untimed by the callers).
func (op *opener) refill() {
	for i := range op.slab {
		op.seal.Set(op.plain)
		if v := op.o.Seal(op.seal); v != OK {
			op.tb.Fatal(v)
		}
		op.slab[i] = append(op.slab[i][:0], op.seal.Bytes()...)
	}
	op.next = 0
}

func (op *opener) empty() bool { return op.next == len(op.slab) }

func (op *opener) open() {
	w := op.slab[op.next]
	op.next++
	op.b.SetBytes(pkt.Headroom, len(w))
	copy(op.b.B[pkt.Headroom:], w)
	if _, v := op.in.Open(op.b, header.IPv4MinHeaderLen); v != OK {
		op.tb.Fatal(v)
	}
}

// raw is the bare-primitive baseline for alg on an n-byte inner packet.
type raw struct {
	seal, open func()
}

func newRaw(tb testing.TB, alg Algorithm, n int) raw {
	p := benchParams(alg)
	info := algs[alg]
	body := n + (&Outbound{info: info}).padLen(n) + ESPTrailerLen // bytes encrypted per packet
	buf := make([]byte, 64+body+info.icvLen+64)
	pt := buf[64 : 64+body]
	nonce := make([]byte, nonceLen)
	aad := make([]byte, 8)
	ct := make([]byte, body+info.icvLen)
	var aead cipher.AEAD
	switch alg {
	case AES128GCM16, AES256GCM16, AES128GMAC, AES256GMAC:
		blk, err := aes.NewCipher(p.EncKey[:len(p.EncKey)-saltLen])
		if err != nil {
			tb.Fatal(err)
		}
		aead, _ = cipher.NewGCM(blk)
	case ChaCha20Poly1305:
		aead, _ = chacha20poly1305.New(p.EncKey[:chacha20poly1305.KeySize])
	}
	switch {
	case alg.AEAD() && alg.Encrypts():
		aead.Seal(ct[:0], nonce, pt, aad)
		return raw{
			seal: func() { aead.Seal(pt[:0], nonce, pt, aad) },
			open: func() {
				copy(buf[64:], ct)
				if _, err := aead.Open(pt[:0], nonce, buf[64:64+len(ct)], aad); err != nil {
					tb.Fatal(err)
				}
			},
		}
	case alg.AEAD(): // GMAC: all of it is AAD
		tag := buf[64+body : 64+body : 64+body+16]
		aead.Seal(tag, nonce, nil, buf[64-16:64+body])
		return raw{
			seal: func() { aead.Seal(tag, nonce, nil, buf[64-16:64+body]) },
			open: func() {
				copy(buf[64:], pt) // keep the copy cost of the others
				if _, err := aead.Open(nil, nonce, buf[64+body:64+body+16], buf[64-16:64+body]); err != nil {
					tb.Fatal(err)
				}
			},
		}
	}
	newHash := sha256.New
	if alg == AES128CBCSHA1 || alg == AES256CBCSHA1 {
		newHash = sha1.New
	}
	mac := hmac.New(newHash, p.AuthKey)
	sum := make([]byte, 0, 32)
	macOf := func(b []byte) []byte {
		mac.Reset()
		mac.Write(b)
		return mac.Sum(sum[:0])
	}
	region := buf[64-8-info.ivLen : 64+body] // SPI..NH as the ICV covers it
	if alg == NULLSHA256 {
		want := append([]byte(nil), macOf(region)[:info.icvLen]...)
		return raw{
			seal: func() { copy(buf[64+body:], macOf(region)[:info.icvLen]) },
			open: func() {
				copy(buf[64:], ct[:body])
				if !hmac.Equal(macOf(region)[:info.icvLen], want) {
					tb.Fatal("mac")
				}
			},
		}
	}
	blk, err := aes.NewCipher(p.EncKey)
	if err != nil {
		tb.Fatal(err)
	}
	iv := make([]byte, 16)
	enc := cipher.NewCBCEncrypter(blk, iv).(cbcMode)
	dec := cipher.NewCBCDecrypter(blk, iv).(cbcMode)
	enc.CryptBlocks(ct[:body], pt)
	copy(pt, ct[:body])
	want := append([]byte(nil), macOf(region)[:info.icvLen]...)
	return raw{
		seal: func() {
			enc.SetIV(iv)
			enc.CryptBlocks(pt, pt)
			copy(buf[64+body:], macOf(region)[:info.icvLen])
		},
		open: func() {
			copy(buf[64:], ct[:body])
			if !hmac.Equal(macOf(region)[:info.icvLen], want) {
				tb.Fatal("mac")
			}
			dec.SetIV(iv)
			dec.CryptBlocks(pt, pt)
		},
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, alg := range allAlgorithms {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", alg, n), func(b *testing.B) {
				seal := sealOp(b, alg, n)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					seal()
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, alg := range allAlgorithms {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", alg, n), func(b *testing.B) {
				op := newOpener(b, alg, n)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					if op.empty() {
						b.StopTimer()
						op.refill()
						b.StartTimer()
					}
					op.open()
				}
			})
		}
	}
}

// BenchmarkRawAEADSeal and BenchmarkRawAEADOpen: cipher.AEAD in place on
// the bytes Seal would encrypt, for the combined-mode suites.
func BenchmarkRawAEADSeal(b *testing.B) {
	for _, alg := range []Algorithm{AES128GCM16, AES256GCM16, ChaCha20Poly1305} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", alg, n), func(b *testing.B) {
				r := newRaw(b, alg, n)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					r.seal()
				}
			})
		}
	}
}

func BenchmarkRawAEADOpen(b *testing.B) {
	for _, alg := range []Algorithm{AES128GCM16, AES256GCM16, ChaCha20Poly1305} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", alg, n), func(b *testing.B) {
				r := newRaw(b, alg, n)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					r.open()
				}
			})
		}
	}
}

// vsRaw runs chunks of ours and of raw alternately, timing each side, and
// reports raw time / our time ("x-of-raw": 1 means no ESP overhead) and
// both throughputs. Alternating chunks cancels clock-speed drift.
func vsRaw(b *testing.B, n int, ours, baseline func(), before func()) {
	const chunk = 64
	var tOurs, tRaw time.Duration
	iters := 0
	for b.Loop() {
		if before != nil {
			before()
		}
		t0 := time.Now()
		for range chunk {
			ours()
		}
		t1 := time.Now()
		for range chunk {
			baseline()
		}
		tRaw += time.Since(t1)
		tOurs += t1.Sub(t0)
		iters++
	}
	pkts := float64(iters * chunk)
	b.ReportMetric(float64(tRaw)/float64(tOurs), "x-of-raw")
	b.ReportMetric(float64(n)*pkts/tOurs.Seconds()/1e6, "esp-MB/s")
	b.ReportMetric(float64(n)*pkts/tRaw.Seconds()/1e6, "raw-MB/s")
	b.ReportMetric(float64(tOurs.Nanoseconds())/pkts, "esp-ns/pkt")
	b.ReportMetric(0, "ns/op") // per op = 2*chunk packets; not meaningful
}

func BenchmarkSealVsRaw(b *testing.B) {
	for _, alg := range allAlgorithms {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", alg, n), func(b *testing.B) {
				vsRaw(b, n, sealOp(b, alg, n), newRaw(b, alg, n).seal, nil)
			})
		}
	}
}

func BenchmarkOpenVsRaw(b *testing.B) {
	for _, alg := range allAlgorithms {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", alg, n), func(b *testing.B) {
				op := newOpener(b, alg, n)
				vsRaw(b, n, op.open, newRaw(b, alg, n).open, op.refill) // refill: one batch = one chunk
			})
		}
	}
}

// BenchmarkSealBatch: SealBatch over 32 packets of 1400 bytes.
func BenchmarkSealBatch(b *testing.B) {
	o, err := NewOutbound(benchParams(AES128GCM16))
	if err != nil {
		b.Fatal(err)
	}
	plain := benchPacket(1400)
	bufs := make([]*pkt.Buf, 32)
	for i := range bufs {
		bufs[i] = new(pkt.Buf)
	}
	v := make([]Verdict, len(bufs))
	b.ReportAllocs()
	b.SetBytes(int64(len(bufs) * len(plain)))
	for b.Loop() {
		for _, x := range bufs {
			x.SetBytes(pkt.Headroom, len(plain))
			copy(x.B[pkt.Headroom:], plain[:header.IPv4MinHeaderLen])
		}
		o.SealBatch(bufs, v)
	}
}
