package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// DefaultSizes are the inner packet sizes RunPipeline measures by default.
var DefaultSizes = []int{64, 512, 1400}

// Packet size limits for PipelineOptions.Sizes: an IPv4 + UDP header, and a
// jumbo frame.
const (
	MinPacketSize = 28
	MaxPacketSize = 9000
)

// SuperCase is the name of the TUN super-packet case in PipelineResult.Case.
const SuperCase = "super"

// The TUN super-packet case: what dataplane gets from a Linux TUN with the
// virtio-net offloads on (dataplane.CreateTUN) when the kernel hands it one
// 64 KiB TCP segment (TSO): wireguard-go's tun splits it into MSS-sized
// packets and returns them all from one Read, up to its batch of 128.
const (
	superBytes   = 65535 // the super-packet: IPv4 + TCP + payload
	superSegment = 1400  // the TUN MTU: each segment's size
	superBatch   = 128   // wireguard-go conn.IdealBatchSize, the TUN's BatchSize
)

// PipelineTarget is the target: on one core the pipeline moves
// 1400-byte packets at this fraction of the raw seal+open ceiling or more.
const PipelineTarget = 0.70

// PipelineOptions select what RunPipeline measures. The zero value measures
// every esp algorithm, DefaultSizes and the super-packet case, on one core
// and on all cores, for one second each.
type PipelineOptions struct {
	// Algorithms are esp proposal names (esp.ParseAlgorithm); empty means
	// every algorithm esp has (esp.AlgorithmNames).
	Algorithms []string
	// Sizes are inner packet sizes in bytes, MinPacketSize..MaxPacketSize;
	// empty means DefaultSizes.
	Sizes []int
	// NoSuper leaves out the TUN super-packet case.
	NoSuper bool
	// Cores are the GOMAXPROCS values to measure with (each dataplane runs
	// that many workers); empty means 1 and runtime.NumCPU(). RunPipeline
	// sets GOMAXPROCS for the process while it runs and restores it.
	Cores []int
	// Duration is how long each case is measured; 0 means 1 s. The raw
	// ceiling is measured for half as long, the warm-up lasts a fifth.
	Duration time.Duration
	// TUNBatch is how many packets one read of the fake TUN returns in the
	// sized cases: 0 or 1 is a TUN without offloads, one packet per read
	// (one read system call each). The super-packet case always reads the
	// segments of one super-packet at a time.
	TUNBatch int
}

// PipelineResult is one measured case.
type PipelineResult struct {
	// Algorithm is the esp proposal name.
	Algorithm string `json:"algorithm"`
	// Case is the inner packet size in decimal ("64", "1400") or SuperCase.
	Case string `json:"case"`
	// Size is the inner packet size; for SuperCase the segment size.
	Size int `json:"size"`
	// PerRead is how many packets one TUN read returned.
	PerRead int `json:"per_read"`
	// Cores is GOMAXPROCS during the case, and the workers of each
	// dataplane.
	Cores int `json:"cores"`
	// Packets and Bytes are the inner packets and bytes delivered to the
	// far TUN during Seconds.
	Packets uint64  `json:"packets"`
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// PPS and Gbps are the delivered rate: packets/s, and inner Gbit/s.
	PPS  float64 `json:"pps"`
	Gbps float64 `json:"gbps"`
	// CeilingPPS and CeilingGbps are the raw seal+open rate of the same
	// algorithm and packet size on the same number of cores, measured in
	// slices interleaved with the case's (see runCase and rawOp).
	CeilingPPS  float64 `json:"ceiling_pps"`
	CeilingGbps float64 `json:"ceiling_gbps"`
	// Ratio is PPS / CeilingPPS.
	Ratio float64 `json:"ratio"`
	// AllocsPerPacket is the heap allocations in the whole process during
	// the measurement divided by Packets (0 in steady state).
	AllocsPerPacket float64 `json:"allocs_per_packet"`
}

// pipeCase is one case to run.
type pipeCase struct {
	alg     esp.Algorithm
	name    string
	size    int
	pkts    [][]byte
	perRead int
	// window is the SA's anti-replay window (esp.Params.ReplayWindow); 0
	// is esp's default. Tests set the smallest (32) to show that the
	// dataplanes' parallelism reorders nothing a peer would refuse.
	window int
}

func (o *PipelineOptions) cases() ([]pipeCase, []int, error) {
	names := o.Algorithms
	if len(names) == 0 {
		names = esp.AlgorithmNames()
	}
	var algs []esp.Algorithm
	for _, n := range names {
		a, err := esp.ParseAlgorithm(n)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: %w", err)
		}
		algs = append(algs, a)
	}
	sizes := o.Sizes
	if len(sizes) == 0 {
		sizes = DefaultSizes
	}
	for _, s := range sizes {
		if s < MinPacketSize || s > MaxPacketSize {
			return nil, nil, fmt.Errorf("bench: packet size %d (%d to %d)", s, MinPacketSize, MaxPacketSize)
		}
	}
	cores := o.Cores
	if len(cores) == 0 {
		cores = []int{1, runtime.NumCPU()}
	}
	cores = slices.Compact(slices.Clone(cores))
	for _, c := range cores {
		if c < 1 || c > 1024 {
			return nil, nil, fmt.Errorf("bench: core count %d", c)
		}
	}
	if o.TUNBatch < 0 || o.TUNBatch > 1024 {
		return nil, nil, fmt.Errorf("bench: TUN batch %d (0 to 1024)", o.TUNBatch)
	}
	perRead := max(1, o.TUNBatch)
	var cs []pipeCase
	for _, a := range algs {
		for _, s := range sizes {
			cs = append(cs, pipeCase{alg: a, name: strconv.Itoa(s), size: s, pkts: [][]byte{udpPacket(s, 0)}, perRead: perRead})
		}
		if !o.NoSuper {
			segs := superSegments()
			cs = append(cs, pipeCase{alg: a, name: SuperCase, size: superSegment, pkts: segs, perRead: len(segs)})
		}
	}
	return cs, cores, nil
}

// Addresses of the pipeline: A protects siteA, B siteB (documentation and
// private prefixes only).
var (
	gwA    = netip.MustParseAddr("198.51.100.1")
	gwB    = netip.MustParseAddr("203.0.113.1")
	hostA  = netip.MustParseAddr("10.1.0.1")
	hostB  = netip.MustParseAddr("10.2.0.1")
	siteA  = netip.MustParsePrefix("10.1.0.0/16")
	siteB  = netip.MustParsePrefix("10.2.0.0/16")
	epA    = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.1:4500"), Encap: endpoint.EncapUDP}
	epB    = endpoint.Endpoint{Addr: netip.MustParseAddrPort("192.0.2.2:4500"), Encap: endpoint.EncapUDP}
	pipSPI = uint32(0x0b0e0001)
)

// ipv4 builds the IPv4 header, with its checksum, of an n-byte packet
// from hostA to hostB carrying proto.
func ipv4(p []byte, n int, proto byte) {
	header.IPv4(p).Encode(&header.IPv4Fields{
		TotalLen: uint16(n), ID: 1, Flags: header.IPv4FlagDF, TTL: 64,
		Protocol: proto, Src: hostA, Dst: hostB,
	})
}

// udpPacket is an n-byte IPv4/UDP packet from hostA to hostB (UDP checksum
// 0: nothing on the path checks it).
func udpPacket(n int, seq uint64) []byte {
	p := make([]byte, n)
	ipv4(p, n, header.ProtoUDP)
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], 5201)
	binary.BigEndian.PutUint16(p[24:], uint16(n-20))
	for i := 28; i < n; i++ {
		p[i] = byte(i + int(seq))
	}
	return p
}

// superSegments returns the IPv4/TCP segments of one superBytes TSO packet
// cut at superSegment bytes, as the TUN's Read returns them.
func superSegments() [][]byte {
	const hdr = 40
	mss := superSegment - hdr
	var segs [][]byte
	seq := uint32(1)
	for left := superBytes - hdr; left > 0; {
		n := min(left, mss)
		p := make([]byte, hdr+n)
		ipv4(p, len(p), header.ProtoTCP)
		binary.BigEndian.PutUint16(p[20:], 40000)
		binary.BigEndian.PutUint16(p[22:], 5201)
		binary.BigEndian.PutUint32(p[24:], seq)
		p[32] = 5 << 4 // data offset
		p[33] = 0x10   // ACK
		for i := hdr; i < len(p); i++ {
			p[i] = byte(i)
		}
		segs = append(segs, p)
		seq += uint32(n)
		left -= n
	}
	return segs
}

// pipe is one running pair of dataplanes.
type pipe struct {
	a, b   *dataplane.Dataplane
	gen    *genTUN
	sink   *sinkTUN
	w      *wire
	closed bool
	// closers run after both dataplanes are closed (the SADs).
	closers []func()
	// sadA and sadB are the dataplanes' SADs (check reads the SAs'
	// verdict counters).
	sadA, sadB *sad.DB
}

func key(n int, seed byte) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// newPipe builds the two dataplanes for c with workers each, not started.
// limit > 0 makes the generator stop after limit packets (rounded up to
// whole reads) and the sink signal when it has them all.
func newPipe(c pipeCase, workers int, limit uint64) (*pipe, error) {
	params := esp.Params{
		SPI: pipSPI, Algorithm: c.alg,
		EncKey: key(c.alg.EncKeyLen(), 0x11), AuthKey: key(c.alg.AuthKeyLen(), 0x22),
		Mode: esp.Tunnel, TunnelSrc: gwA, TunnelDst: gwB, ReplayWindow: c.window,
	}
	selA := sad.Selector{Local: sad.PrefixRange(siteA), Remote: sad.PrefixRange(siteB)}
	selB := sad.Selector{Local: sad.PrefixRange(siteB), Remote: sad.PrefixRange(siteA)}
	sadA, sadB := sad.New(sad.Options{}), sad.New(sad.Options{})
	fail := func(err error) (*pipe, error) {
		sadA.Close()
		sadB.Close()
		return nil, err
	}
	if _, err := sadA.Add(sad.Config{Name: "bench-out", Dir: sad.Outbound, Params: params, Selectors: []sad.Selector{selA}}); err != nil {
		return fail(fmt.Errorf("bench: outbound SA: %w", err))
	}
	if _, err := sadB.Add(sad.Config{Name: "bench-in", Dir: sad.Inbound, Params: params, Selectors: []sad.Selector{selB}}); err != nil {
		return fail(fmt.Errorf("bench: inbound SA: %w", err))
	}
	spdA, spdB := spd.New(sadA), spd.New(sadB)
	if err := spdA.Replace([]spd.Policy{
		{Name: "protect", Dir: sad.Outbound, Action: spd.Protect, SPI: pipSPI, Selectors: []sad.Selector{selA}},
		{Name: "discard", Dir: sad.Outbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
	}); err != nil {
		return fail(fmt.Errorf("bench: SPD: %w", err))
	}
	// B's inbound SPD as a config has it (RFC 4301 §4.4.1): the dataplane
	// counts the ESP it delivers against it, a cost every gateway pays.
	if err := spdB.Replace([]spd.Policy{
		{Name: "protect-in", Dir: sad.Inbound, Action: spd.Protect, Selectors: []sad.Selector{selB}},
		{Name: "discard-in", Dir: sad.Inbound, Action: spd.Discard, Selectors: []sad.Selector{{}}},
	}); err != nil {
		return fail(fmt.Errorf("bench: SPD: %w", err))
	}
	maxLen := 0
	for _, p := range c.pkts {
		maxLen = max(maxLen, len(p))
	}
	p := &pipe{
		gen: newGenTUN(c.pkts, c.perRead),
		w:   newWire(wireSlots, maxLen+256),
	}
	if limit > 0 {
		reads := (limit + uint64(c.perRead) - 1) / uint64(c.perRead)
		p.gen.limited = true
		p.gen.left.Store(int64(reads) * int64(c.perRead))
		p.sink = newSinkTUN(reads * uint64(c.perRead))
	} else {
		p.sink = newSinkTUN(0)
	}
	var err error
	p.a, err = dataplane.New(dataplane.Config{
		TUN: p.gen, Underlay: sender{p.w}, SAD: sadA, SPD: spdA, Workers: workers,
		Peers: []dataplane.PeerConfig{{Name: "B", Endpoint: epB, OutSPIs: []uint32{pipSPI}, Keepalive: -1}},
	})
	if err != nil {
		return fail(fmt.Errorf("bench: dataplane A: %w", err))
	}
	p.b, err = dataplane.New(dataplane.Config{
		TUN: p.sink, Underlay: &receiver{w: p.w, src: epA}, SAD: sadB, SPD: spdB, Workers: workers,
		Peers: []dataplane.PeerConfig{{Name: "A", Endpoint: epA, InSPIs: []uint32{pipSPI}, Keepalive: -1}},
	})
	if err != nil {
		return fail(fmt.Errorf("bench: dataplane B: %w", err))
	}
	// The SADs outlive the dataplanes: close them with the pipe.
	p.closers = []func(){sadA.Close, sadB.Close}
	p.sadA, p.sadB = sadA, sadB
	if err := p.a.Start(); err != nil {
		p.close()
		return nil, fmt.Errorf("bench: start A: %w", err)
	}
	if err := p.b.Start(); err != nil {
		p.close()
		return nil, fmt.Errorf("bench: start B: %w", err)
	}
	return p, nil
}

// check returns an error when a packet was dropped or arrived damaged.
func (p *pipe) check() error {
	sa, sb := p.a.Stats(), p.b.Stats()
	var errs []error
	if n := sa.Dropped(); n != 0 {
		errs = append(errs, fmt.Errorf("dataplane A dropped %d packets: %v", n, sa.Drops))
	}
	if n := sb.Dropped(); n != 0 {
		errs = append(errs, fmt.Errorf("dataplane B dropped %d packets: %v", n, sb.Drops))
	}
	for _, st := range []struct {
		name string
		sa   *sad.SA
	}{{"A's outbound SA", p.sadA.Lookup(sad.Outbound, pipSPI)}, {"B's inbound SA", p.sadB.Inbound(pipSPI)}} {
		if st.sa == nil {
			continue
		}
		s := st.sa.Stats()
		for v, n := range s.Drops {
			if n != 0 {
				errs = append(errs, fmt.Errorf("%s: %d packets %v", st.name, n, esp.Verdict(v)))
			}
		}
	}
	if n := p.w.dropped.Load(); n != 0 {
		errs = append(errs, fmt.Errorf("wire dropped %d oversized packets", n))
	}
	if n := p.sink.bad.Load(); n != 0 {
		errs = append(errs, fmt.Errorf("%d damaged packets delivered", n))
	}
	if len(errs) != 0 {
		return fmt.Errorf("bench: pipeline: %w", errors.Join(errs...))
	}
	return nil
}

func (p *pipe) close() {
	if p.closed {
		return
	}
	p.closed = true
	p.a.Close()
	p.b.Close()
	for _, f := range p.closers {
		f()
	}
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RunPipeline measures the in-process pipeline (no root, no devices): for
// each algorithm, case and core count it runs two dataplanes back to back,
// a fake TUN feeding dataplane A (SPD, seal), a fake underlay carrying the
// ESP packets to dataplane B (SA lookup, anti-replay, open, selector check)
// and a fake TUN counting what B delivers, and measures the delivered rate
// next to the raw seal+open ceiling of the same algorithm and size on the
// same cores. So one core does both ends' work, as the ceiling does both
// the seal and the open.
//
// It sets GOMAXPROCS while it runs (restored on return): run nothing else
// in the process meanwhile. It writes one line per case to progress (nil
// for none). It stops early, returning what it has with ctx's error, when
// ctx is done.
func RunPipeline(ctx context.Context, o PipelineOptions, progress io.Writer) ([]PipelineResult, error) {
	cases, cores, err := o.cases()
	if err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	d := o.Duration
	if d <= 0 {
		d = time.Second
	}
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	var out []PipelineResult
	for _, n := range cores {
		runtime.GOMAXPROCS(n)
		for _, c := range cases {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			r, err := runCase(ctx, c, n, d)
			if err != nil {
				return out, err
			}
			fmt.Fprintf(progress, "pipeline %-17s %5s B %2d core(s): %8.3f Mpps %7.2f Gb/s; raw ceiling %8.3f Mpps; ratio %.2f\n",
				r.Algorithm, r.Case, r.Cores, r.PPS/1e6, r.Gbps, r.CeilingPPS/1e6, r.Ratio)
			out = append(out, r)
		}
	}
	return out, nil
}

func runCase(ctx context.Context, c pipeCase, cores int, d time.Duration) (PipelineResult, error) {
	r := PipelineResult{Algorithm: c.alg.String(), Case: c.name, Size: c.size, PerRead: c.perRead, Cores: cores}
	// The ceiling: the same mix of packet sizes as the case (the super-
	// packet's segments are not all the same length): the time per packet
	// is the mix's weighted mean.
	lens := map[int]int{}
	var avgLen float64
	for _, p := range c.pkts {
		lens[len(p)]++
		avgLen += float64(len(p))
	}
	avgLen /= float64(len(c.pkts))
	ceilOps := map[int]float64{} // per size: packets and seconds, summed
	ceilSec := map[int]float64{}

	p, err := newPipe(c, cores, 0)
	if err != nil {
		return r, err
	}
	defer p.close()
	p.gen.begin()
	if err := sleepCtx(ctx, max(d/5, 10*time.Millisecond)); err != nil { // warm-up
		return r, err
	}
	// The ceiling and the pipeline take turns in caseSlices slices, the
	// pipeline paused (and drained) while the ceiling runs: a shared or
	// throttled machine that changes speed over the seconds of a case
	// slows both alike, and the ratio stays put.
	var mallocs uint64
	for range caseSlices {
		if err := p.pauseDrain(ctx); err != nil {
			return r, err
		}
		for n := range lens {
			dt := max(d/2/caseSlices/time.Duration(len(lens)), time.Millisecond)
			pps, err := rawCeiling(c.alg, n, cores, dt)
			if err != nil {
				return r, err
			}
			ceilOps[n] += pps * dt.Seconds()
			ceilSec[n] += dt.Seconds()
		}
		p.gen.resume()
		if err := sleepCtx(ctx, max(d/50, time.Millisecond)); err != nil { // refill
			return r, err
		}
		var m0, m1 runtime.MemStats
		timer := time.NewTimer(d / caseSlices) // before m0: the timer allocates
		runtime.ReadMemStats(&m0)
		n0, b0, t0 := p.sink.packets.Load(), p.sink.bytes.Load(), time.Now()
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return r, ctx.Err()
		}
		n1, b1, t1 := p.sink.packets.Load(), p.sink.bytes.Load(), time.Now()
		runtime.ReadMemStats(&m1)
		r.Packets, r.Bytes, r.Seconds = r.Packets+n1-n0, r.Bytes+b1-b0, r.Seconds+t1.Sub(t0).Seconds()
		mallocs += m1.Mallocs - m0.Mallocs
	}
	if err := p.check(); err != nil {
		return r, fmt.Errorf("%v %s B: %w", c.alg, c.name, err)
	}
	var perPkt float64 // seconds per packet on all cores together
	for n, count := range lens {
		perPkt += float64(count) / float64(len(c.pkts)) / (ceilOps[n] / ceilSec[n])
	}
	r.CeilingPPS = 1 / perPkt
	r.CeilingGbps = r.CeilingPPS * avgLen * 8 / 1e9
	if r.Packets == 0 {
		return r, fmt.Errorf("bench: pipeline %v %s B: no packet delivered in %v", c.alg, c.name, d)
	}
	r.PPS = float64(r.Packets) / r.Seconds
	r.Gbps = float64(r.Bytes) * 8 / r.Seconds / 1e9
	r.Ratio = r.PPS / r.CeilingPPS
	r.AllocsPerPacket = float64(mallocs) / float64(r.Packets)
	return r, nil
}

// caseSlices is how many turns the ceiling and the pipeline take in
// runCase.
const caseSlices = 5

// pauseDrain pauses the generator and waits until every packet it produced
// is delivered or dropped.
func (p *pipe) pauseDrain(ctx context.Context) error {
	p.gen.pause()
	produced, ok := p.gen.waitParked(ctx)
	if !ok {
		if err := ctx.Err(); err != nil {
			return err
		}
		return errors.New("bench: pipeline: the generator closed while pausing")
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.sink.packets.Load()+p.a.Stats().Dropped()+p.b.Stats().Dropped()+p.w.dropped.Load() < produced {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: pipeline: %d of %d packets out after 10 s (%v)", p.sink.packets.Load(), produced, p.check())
		}
		if err := sleepCtx(ctx, 100*time.Microsecond); err != nil {
			return err
		}
	}
	return nil
}
