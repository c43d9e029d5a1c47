package dataplane_test

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/esp"
)

// TestTCPOverNetstack is issue 3's "test that needs no root": two
// dataplanes over underlaytest, each with a gVisor netstack as its TUN, move
// a TCP stream both ways (IPv4 and IPv6 inner) and check its bytes.
func TestTCPOverNetstack(t *testing.T) {
	size := 4 << 20
	if testing.Short() {
		size = 256 << 10
	}
	for _, alg := range []esp.Algorithm{esp.AES128GCM16, esp.ChaCha20Poly1305} {
		t.Run(alg.String(), func(t *testing.T) {
			o := pairOpts{alg: alg}
			leakCheck(t)
			ua, ub := underlaytest.NewPair(epA, epB)
			tunA, netA, err := netstack.CreateNetTUN([]netip.Addr{hostA4, hostA6}, nil, 1380)
			if err != nil {
				t.Fatal(err)
			}
			tunB, netB, err := netstack.CreateNetTUN([]netip.Addr{hostB4, hostB6}, nil, 1380)
			if err != nil {
				t.Fatal(err)
			}
			sadA, spdA := newDBs(t, o, spiAB4, spiAB6, spiBA4, spiBA6, gwA4, gwA6, gwB4, gwB6, siteA4, siteA6, siteB4, siteB6)
			sadB, spdB := newDBs(t, o, spiBA4, spiBA6, spiAB4, spiAB6, gwB4, gwB6, gwA4, gwA6, siteB4, siteB6, siteA4, siteA6)
			da, err := dataplane.New(dataplane.Config{TUN: tunA, Underlay: ua, SAD: sadA, SPD: spdA, Workers: 4,
				Logger: zaptest.NewLogger(t).Named("A"),
				Peers:  []dataplane.PeerConfig{{Name: "B", Endpoint: epB, OutSPIs: []uint32{spiAB4, spiAB6}}}})
			if err != nil {
				t.Fatal(err)
			}
			db, err := dataplane.New(dataplane.Config{TUN: tunB, Underlay: ub, SAD: sadB, SPD: spdB, Workers: 4,
				Logger: zaptest.NewLogger(t).Named("B"),
				Peers:  []dataplane.PeerConfig{{Name: "A", Endpoint: epA, OutSPIs: []uint32{spiBA4, spiBA6}}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []*dataplane.Dataplane{da, db} {
				if err := d.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { d.Close() })
			}

			for _, tc := range []struct {
				name   string
				server netip.Addr
			}{
				{"v4", hostB4},
				{"v6", hostB6},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ln, err := netB.ListenTCPAddrPort(netip.AddrPortFrom(tc.server, 8080))
					if err != nil {
						t.Fatal(err)
					}
					defer ln.Close()
					up := randBytes(size, 1)
					down := randBytes(size, 2)

					// Server: read everything, send `down`, report the hash.
					srvHash := make(chan [32]byte, 1)
					srvErr := make(chan error, 1)
					go func() {
						c, err := ln.Accept()
						if err != nil {
							srvErr <- err
							return
						}
						defer c.Close()
						werr := make(chan error, 1)
						go func() { _, err := c.Write(down); werr <- err }()
						h := sha256.New()
						if _, err := io.CopyN(h, c, int64(size)); err != nil {
							srvErr <- err
							return
						}
						if err := <-werr; err != nil {
							srvErr <- err
							return
						}
						srvHash <- [32]byte(h.Sum(nil))
					}()

					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					c, err := netA.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(tc.server, 8080))
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					start := time.Now()
					werr := make(chan error, 1)
					go func() { _, err := c.Write(up); werr <- err }()
					h := sha256.New()
					if _, err := io.CopyN(h, c, int64(size)); err != nil {
						t.Fatal(err)
					}
					if err := <-werr; err != nil {
						t.Fatal(err)
					}
					var got [32]byte
					select {
					case got = <-srvHash:
					case err := <-srvErr:
						t.Fatal(err)
					case <-ctx.Done():
						t.Fatal("timeout")
					}
					if got != sha256.Sum256(up) {
						t.Error("upstream bytes differ")
					}
					if [32]byte(h.Sum(nil)) != sha256.Sum256(down) {
						t.Error("downstream bytes differ")
					}
					t.Logf("%d bytes each way in %v", size, time.Since(start))
				})
			}
			for name, d := range map[string]*dataplane.Dataplane{"A": da, "B": db} {
				s := d.Stats()
				t.Logf("%s: out %d sent %d in %d delivered %d drops %v", name, s.OutPackets, s.SentPackets, s.InPackets, s.DeliveredPackets, s.Drops)
				if s.Drops[dataplane.DropOpen] != 0 || s.Drops[dataplane.DropUnknownSPI] != 0 {
					t.Errorf("%s: inbound drops %v", name, s.Drops)
				}
			}
		})
	}
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	p := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	return p
}
