//go:build linux

package ikebench

// The initiator load: a pool of ike.Daemons in the load namespace, each
// with its own source address, UDP sockets on ports 500 and 4500 and a
// no-op kernel, driven by C closed-loop workers.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/netlab"
)

// nopKernel is an ike.Kernel that hands out SPIs and accepts every
// install: the initiators measure the responder, not a dataplane. The
// SPIs come from one counter for all initiators, so that no two
// initiators' SPIs (the responder's outbound SPIs) coincide: node's SAD
// refuses a second outbound SA with an SPI it holds, whoever chose it.
type nopKernel struct{}

var spiCounter atomic.Uint32

func (nopKernel) AllocSPI() (uint32, error) {
	for {
		if spi := spiCounter.Add(1); spi >= 0x100 { // RFC 4303 §2.1: 1..255 are reserved
			return spi, nil
		}
	}
}
func (nopKernel) ReleaseSPI(uint32)                      {}
func (nopKernel) AddInbound(*ike.ChildSA) error          { return nil }
func (nopKernel) AddOutbound(*ike.ChildSA) error         { return nil }
func (nopKernel) DelSA(bool, uint32) error               { return nil }
func (nopKernel) DelPolicies(string) error               { return nil }
func (nopKernel) SetEndpoint(string, ike.Endpoint) error { return nil }

// udpTransport is an ike.Transport on two sockets bound to one address:
// port 500, and port 4500 with the non-ESP marker (RFC 3948 §2.2).
type udpTransport struct {
	addr        netip.Addr
	c500, c4500 *net.UDPConn
}

var nonESPMarker = []byte{0, 0, 0, 0}

func (t *udpTransport) Send(msg []byte, local, remote netip.AddrPort) error {
	c := t.c500
	if local.Port() == 4500 {
		c = t.c4500
	}
	if local.Port() != 500 || remote.Port() != 500 {
		msg = append(append(make([]byte, 0, 4+len(msg)), nonESPMarker...), msg...)
	}
	_, err := c.WriteToUDPAddrPort(msg, remote)
	return err
}

// serve hands d what arrives on c (port is c's): on 4500 only datagrams
// behind the non-ESP marker are IKE; keepalives and ESP are dropped.
func (t *udpTransport) serve(c *net.UDPConn, port uint16, d *ike.Daemon) {
	buf := make([]byte, 65535)
	local := netip.AddrPortFrom(t.addr, port)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		b := buf[:n]
		if port == 4500 {
			if n < 4 || b[0]|b[1]|b[2]|b[3] != 0 {
				continue
			}
			b = b[4:]
		}
		d.Receive(b, local, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
	}
}

func (t *udpTransport) close() {
	if t.c500 != nil {
		t.c500.Close()
	}
	if t.c4500 != nil {
		t.c4500.Close()
	}
}

// initiator is one daemon of the pool.
type initiator struct {
	d  *ike.Daemon
	tr *udpTransport
}

// pool is the load generator's daemons; idle ones wait in free (FIFO, so
// consecutive setups come from different addresses).
type pool struct {
	all  []*initiator
	free chan *initiator
}

// loadConfig is what every initiator shares.
type loadConfig struct {
	ns        string       // the load namespace
	sources   []netip.Addr // one per initiator
	responder netip.Addr
	psk       []byte
	respID    string
	// ikeProposal and espProposal as swanctl writes them.
	ikeProposal, espProposal string
	// siteTS(i) is initiator i's local traffic selector; remoteTS the
	// responder's site.
	siteTS   func(i int) string
	remoteTS string
	// retransmit and retransmits of the initiators (RFC 7296 §2.1).
	retransmit  time.Duration
	retransmits int
}

// newPool opens the sockets in lc.ns and starts one daemon per source.
func newPool(lc loadConfig) (*pool, error) {
	props, err := ike.ParseIKEProposals([]string{lc.ikeProposal}, false)
	if err != nil {
		return nil, err
	}
	esp, err := ike.ParseESPProposals([]string{lc.espProposal}, false)
	if err != nil {
		return nil, err
	}
	respID, err := ike.ParseIdentity(lc.respID)
	if err != nil {
		return nil, err
	}
	rts, err := ike.ParseTS(lc.remoteTS)
	if err != nil {
		return nil, err
	}
	p := &pool{free: make(chan *initiator, len(lc.sources))}
	for i, src := range lc.sources {
		tr := &udpTransport{addr: src}
		err := netlab.InNetns(lc.ns, func() error {
			var err error
			if tr.c500, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 500))); err != nil {
				return err
			}
			tr.c4500, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 4500)))
			return err
		})
		if err != nil {
			tr.close()
			p.close()
			return nil, fmt.Errorf("ikebench: sockets of %v: %w", src, err)
		}
		id, err := ike.ParseIdentity(fmt.Sprintf("load-%d@bench", i))
		if err != nil {
			return nil, err
		}
		lts, err := ike.ParseTS(lc.siteTS(i))
		if err != nil {
			return nil, err
		}
		conn := ike.Connection{
			Name:        connName,
			LocalAddrs:  []netip.Addr{src},
			RemoteAddrs: []netip.Prefix{netip.PrefixFrom(lc.responder, lc.responder.BitLen())},
			Proposals:   props,
			Encap:       true, // charon's libipsec speaks ESP in UDP only: both responders float to 4500
			KeyingTries: 1,    // a failed setup is an error, not a retry
			Local:       ike.LocalAuth{Method: ike.AuthPSK, ID: id, PSK: lc.psk},
			Remote:      ike.RemoteAuth{Method: ike.AuthPSK, ID: respID, PSK: lc.psk},
			Children: []ike.Child{{
				Name: childName, LocalTS: []ike.TrafficSelector{lts}, RemoteTS: []ike.TrafficSelector{rts},
				Proposals: esp, Mode: ike.ModeTunnel, Start: ike.StartNone,
			}},
		}
		d, err := ike.New(ike.Config{
			Connections: []ike.Connection{conn}, Kernel: nopKernel{}, Transport: tr,
			Retransmit: lc.retransmit, Retransmits: lc.retransmits,
		})
		if err == nil {
			err = d.Start()
		}
		if err != nil {
			tr.close()
			p.close()
			return nil, err
		}
		go tr.serve(tr.c500, 500, d)
		go tr.serve(tr.c4500, 4500, d)
		in := &initiator{d: d, tr: tr}
		p.all = append(p.all, in)
		p.free <- in
	}
	return p, nil
}

func (p *pool) close() {
	for _, in := range p.all {
		in.d.Close()
		in.tr.close()
	}
}

// retransmits sums the initiators' retransmissions (lost or late
// answers).
func (p *pool) retransmits() uint64 {
	var n uint64
	for _, in := range p.all {
		n += in.d.Stats().Retransmits
	}
	return n
}

// Names of the initiators' connection and child.
const (
	connName  = "bench"
	childName = "site"
)

// sample is what one closed-loop run collects.
type sample struct {
	setups, teardowns []time.Duration // latencies of the successes
	failures          int             // setups that failed (Initiate's error)
	errs              []string        // the first maxErrs of their errors
	teardownErrs      int
	elapsed           time.Duration
}

// maxErrs bounds the setup errors kept for the report.
const maxErrs = 5

// closedLoop runs c workers for d: each takes an idle initiator, sets up
// its IKE SA and child (timed: Initiate returns once IKE_AUTH is done),
// tears it down (Terminate waits for the Delete's answer; timed
// separately) and puts it back. Workers start no setup after d; elapsed
// runs until the last one has finished.
func (p *pool) closedLoop(ctx context.Context, c int, d time.Duration) sample {
	var (
		mu sync.Mutex
		s  sample
		wg sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var su, td []time.Duration
			var errs []error
			tdErrs := 0
			for time.Now().Before(end) && ctx.Err() == nil {
				var in *initiator
				select {
				case in = <-p.free:
				case <-ctx.Done():
				}
				if in == nil {
					break
				}
				t0 := time.Now()
				err := in.d.Initiate(connName, childName)
				t1 := time.Now()
				if err != nil {
					errs = append(errs, err)
				} else {
					su = append(su, t1.Sub(t0))
				}
				if terr := in.d.Terminate(connName); terr != nil {
					tdErrs++
				} else if err == nil {
					td = append(td, time.Since(t1))
				}
				p.free <- in
			}
			mu.Lock()
			s.setups = append(s.setups, su...)
			s.teardowns = append(s.teardowns, td...)
			s.teardownErrs += tdErrs
			s.failures += len(errs)
			for _, e := range errs {
				if len(s.errs) < maxErrs {
					s.errs = append(s.errs, e.Error())
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	s.elapsed = time.Since(start)
	return s
}

// Latency holds percentiles of one set of durations, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentiles returns the nearest-rank percentiles of ds (which it
// sorts); zero for none.
func percentiles(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(p float64) float64 {
		k := int(p*float64(len(ds)) + 0.999999999) // ceil(p·n), rank 1..n
		k = min(max(k, 1), len(ds))
		return ms(ds[k-1])
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
