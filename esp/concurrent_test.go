package esp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mipsec/mipsec/pkt"
)

// TestConcurrentOpen: several goroutines open the packets of one SA at once,
// every packet delivered twice (on different goroutines) and in shuffled
// order. Each sequence number must be accepted exactly once, its duplicate
// rejected with DropReplay, and every accepted packet must be intact. Run
// it under -race.
func TestConcurrentOpen(t *testing.T) {
	for _, alg := range []Algorithm{AES128GCM16, ChaCha20Poly1305, AES256CBCSHA256, NULLSHA256, AES128GMAC} {
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/esn=%v", alg, esn), func(t *testing.T) {
				p := testParams(alg, Tunnel, 6, esn)
				p.ReplayWindow = MaxReplayWindow // all in flight fit
				if esn {
					p.InitialSeq = 1<<32 - 700 // straddle the boundary
				}
				o, in := newPair(t, p)
				const n = 1500
				plain := make([][]byte, n)
				wires := make([][]byte, n)
				for i := range n {
					plain[i] = ipv4UDP(i % 300)
					wires[i] = sealed(t, o, plain[i])
				}
				const workers = 8
				var next atomic.Int64
				okCount := make([]atomic.Int32, n)
				var dups atomic.Int32
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						b := pkt.Get()
						defer pkt.Put(b)
						for {
							k := next.Add(1) - 1
							if k >= 2*n {
								return
							}
							// Two deliveries of each packet, 7 apart
							// in a scrambled order.
							i := int((k/2*7919)%n+k%2*7) % n
							b.Set(wires[i])
							_, v := in.Open(b, 40)
							switch v {
							case OK:
								okCount[i].Add(1)
								if !bytes.Equal(b.Bytes(), plain[i]) {
									t.Errorf("packet %d: wrong plaintext", i)
								}
							case DropReplay:
								dups.Add(1)
							default:
								t.Errorf("packet %d: %v", i, v)
							}
						}
					})
				}
				wg.Wait()
				total := 0
				for i := range okCount {
					c := int(okCount[i].Load())
					total += c
					if c > 1 {
						t.Errorf("seq of packet %d accepted %d times", i, c)
					}
				}
				// Each packet is delivered twice: once OK, once a replay.
				if total != n || int(dups.Load()) != n {
					t.Errorf("%d accepted, %d replays; want %d and %d", total, dups.Load(), n, n)
				}
			})
		}
	}
}

// TestConcurrentSeal: concurrent sealers of one SA get distinct sequence
// numbers and IVs, and every packet opens.
func TestConcurrentSeal(t *testing.T) {
	for _, alg := range []Algorithm{AES256GCM16, AES128CBCSHA1} {
		// Opened below in map order: the window must hold them all (with
		// ESN a packet left of the window is read as one of the next 2^32
		// subspace and fails its ICV, RFC 4303 App. A2.2).
		p := testParams(alg, Transport, 0, true)
		p.ReplayWindow = MaxReplayWindow
		o, in := newPair(t, p)
		const workers, per = 8, 200
		var mu sync.Mutex
		seen := map[uint32][]byte{}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				b := pkt.Get()
				defer pkt.Put(b)
				for range per {
					b.Set(ipv4UDP(w))
					if v := o.Seal(b); v != OK {
						t.Errorf("Seal: %v", v)
						return
					}
					w := bytes.Clone(b.Bytes())
					mu.Lock()
					seq := binary.BigEndian.Uint32(w[24:])
					if seen[seq] != nil {
						t.Errorf("seq %d twice", seq)
					}
					seen[seq] = w
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		ivs := map[string]bool{}
		for _, w := range seen {
			iv := string(w[28 : 28+alg.IVLen()])
			if ivs[iv] {
				t.Errorf("%v: IV %x repeated", alg, iv)
			}
			ivs[iv] = true
			if _, _, v := open(in, w, 20); v != OK {
				t.Errorf("%v: Open: %v", alg, v)
			}
		}
		if len(seen) != workers*per || o.Seq() != workers*per {
			t.Errorf("%v: %d packets, Seq %d", alg, len(seen), o.Seq())
		}
	}
}

// TestConcurrentDestroy: Destroy while packets are being sealed and opened
// is safe; calls after it see DropExpired.
func TestConcurrentDestroy(t *testing.T) {
	o, in := newPair(t, testParams(AES128GCM16, Tunnel, 4, false))
	wires := make([][]byte, 400)
	for i := range wires {
		wires[i] = sealed(t, o, ipv4UDP(10))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			b := pkt.Get()
			defer pkt.Put(b)
			for i := w; i < len(wires); i += 4 {
				b.Set(ipv4UDP(10))
				if v := o.Seal(b); v != OK && v != DropExpired {
					t.Errorf("Seal: %v", v)
				}
				b.Set(wires[i])
				if _, v := in.Open(b, 20); v != OK && v != DropExpired {
					t.Errorf("Open: %v", v)
				}
			}
		})
	}
	o.Destroy()
	in.Destroy()
	wg.Wait()
	b := pkt.Get()
	defer pkt.Put(b)
	b.Set(ipv4UDP(10))
	if v := o.Seal(b); v != DropExpired {
		t.Errorf("Seal after Destroy: %v", v)
	}
}
