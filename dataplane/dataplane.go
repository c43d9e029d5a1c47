package dataplane

// Goroutines and locking
//
//	TUN reader ──batch──> work ──> workers (Workers of them, both directions)
//	     │  (or, see below, seal and send on the reader itself)
//	     │                              │ seal / open in place, unlock batch
//	     └──batch (read order)──> outbound writer: lock batch (waits for the
//	                                  worker), Underlay.Send, batch back to free
//
//	per ReceiveFunc: reader ──batch──> work ──> workers
//	     └──batch (read order)──> inbound writer: lock batch, TUN.Write
//
// A batch (one TUN read, one ReceiveFunc call) is the unit of work. Its mutex
// is locked by the reader before it is queued and unlocked by the worker that
// processed it; the writer of its path takes batches in read order and locks
// each, so packets leave in the order they were read (per path, hence per SA)
// while the crypto of different batches runs on all cores: wireguard-go's
// per-peer queues with element locks.
//
// Those hand-offs (free batch, work queue, writer: several goroutine
// switches and channel operations per batch) cost more than the crypto of a
// small batch, and on one core nothing runs in parallel anyway. So a reader
// processes a batch itself and writes it directly, keeping the batch for its
// next read, when nothing of its path is in flight (path.pending is 0: the
// writer has written every batch queued before, so the read order holds) and
// the batch has at most inlineMax packets, or always with one worker or one
// core (Dataplane.solo). Larger batches on several cores still go to the
// workers, overlapping the crypto with the next read.
//
// Each path owns a fixed set of batches (the free channel): its buffers
// (pkt.Buf, one per slot) and slices are allocated once, in Start, and
// circulate, so the steady state allocates nothing. The set's size bounds the
// packets in flight per path to maxInFlight.
//
// Sequence numbers and the replay window: the workers seal and open a
// path's batches concurrently, but the one step of each batch that must
// follow the read order goes through the path's turnstile (seqTurn), one
// batch at a time, while the crypto runs in parallel. Outbound that step is
// the reservation of the batch's sequence numbers (sad.SA.ReserveSeq),
// after its policy step and before its crypto: every SA's packets leave
// with increasing numbers, as wireguard-go's nonces do, and a peer's
// anti-replay window (RFC 4303 §3.4.3; 32 packets by default in Linux XFRM
// and strongSwan) sees them in order. Inbound it is the window update
// (sad.SA.OpenAccept), between the batch's crypto (OpenBegin) and the rest
// (OpenEnd), as wireguard-go checks its replay filter in its sequential
// receiver: the receiver's own parallelism never pushes a packet out of a
// small window. A batch the reader processes itself needs no turn (nothing
// else of its path is in flight). (Before, numbers were taken at seal time
// and windows updated as batches finished: a batch read first and sealed
// last left ahead of batches numbered hundreds lower, and with a 32-packet
// window a third of the packets were refused as replays.)
//
// Shared state follows STYLE.md §5: the peer table and the capture are
// immutable snapshots behind atomic.Pointer, peer endpoints are atomic
// pointers, counters are atomics.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// maxInFlight bounds the packets in flight per path (see above): their
// memory (a pkt.Buf holds 64 KiB, so 32 MiB a path) and the queueing delay.
// The order of sequence numbers and window updates does not depend on it.
const maxInFlight = 512

// tunWriteOffset is the offset of the inner packet in each slice handed to
// TUN.Write: room for the virtio-net header a Linux TUN with offloads writes
// in front (pkt.VirtioNetHdrLen), rounded up like wireguard-go's
// MessageTransportOffsetContent.
const tunWriteOffset = 16

// tunReadLimit is how far a TUN read may fill a Buf: the tailroom stays free
// for the ESP trailer and ICV.
const tunReadLimit = pkt.Headroom + pkt.MaxPacket

// Dataplane moves packets between a TUN device and an underlay through the
// SPD, the SAD and esp. All methods are safe for concurrent use.
type Dataplane struct {
	tun      tun.Device
	underlay Underlay
	sadb     *sad.DB
	spdb     *spd.DB
	hooks    Hooks
	workers  int
	// solo: one worker or one core (set by Start): the readers process
	// every batch themselves (see inline).
	solo bool
	log  *zap.Logger

	peers   atomic.Pointer[peerTable]
	capture atomic.Pointer[captureBox]
	c       counters

	mu      sync.Mutex // serialises Start, Close and SetPeers
	started bool
	closed  atomic.Bool
	done    chan struct{}
	kick    chan struct{} // wakes the keepalive goroutine after SetPeers
	roamCh  chan roamEvent
	// onPeerEndpoint is Config.OnPeerEndpoint.
	onPeerEndpoint func(peer string, from, to endpoint.Endpoint)

	// clock is the current unix second, advanced by the control
	// goroutine: the packet path's coarse time (PeerStatus.LastReceived).
	clock atomic.Int64
	// Drop warnings (droplog.go): the interval (<= 0: off), the sample
	// slots the packet path fills, the channel that wakes the control
	// goroutine, and its state.
	dropEvery time.Duration
	slots     [numDropKinds]dropSlot
	dropKick  chan struct{}
	dl        dropLog
	// inPol is the copy of the inbound policies that inbound hits are
	// counted against (inpolicy.go); nil: none.
	inPol atomic.Pointer[inPolicies]
	// onAcquire is Config.OnAcquire; acqNext[spi] the clock second from
	// which spi's next call is due (acquire.go).
	onAcquire func(spi uint32)
	acqNext   [MaxTrapSPI + 1]atomic.Int64
	// remotes and udpPort are Config.UnderlayRemotes (unmapped) and
	// Config.UDPPort, for the loop check (loop.go).
	remotes []netip.Addr
	udpPort uint16

	work     chan *batch
	readers  sync.WaitGroup // TUN reader, receive readers
	others   sync.WaitGroup // workers, writers, control goroutines
	allBatch []*batch
}

type captureBox struct{ c Capture }

// New validates cfg and returns a Dataplane that is not yet running.
func New(cfg Config) (*Dataplane, error) {
	switch {
	case cfg.TUN == nil:
		return nil, fmt.Errorf("%w: no TUN device", ErrInvalidConfig)
	case cfg.Underlay == nil:
		return nil, fmt.Errorf("%w: no underlay", ErrInvalidConfig)
	case cfg.SAD == nil:
		return nil, fmt.Errorf("%w: no SAD", ErrInvalidConfig)
	case cfg.SPD == nil:
		return nil, fmt.Errorf("%w: no SPD", ErrInvalidConfig)
	case cfg.Workers < 0:
		return nil, fmt.Errorf("%w: negative worker count %d", ErrInvalidConfig, cfg.Workers)
	}
	t, err := buildPeers(cfg.Peers, nil)
	if err != nil {
		return nil, err
	}
	d := &Dataplane{
		tun:      cfg.TUN,
		underlay: cfg.Underlay,
		sadb:     cfg.SAD,
		spdb:     cfg.SPD,
		hooks:    cfg.Hooks,
		workers:  cfg.Workers,
		log:      cfg.Logger,
		done:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
		roamCh:   make(chan roamEvent, 64),
		dropKick: make(chan struct{}, 1),

		onPeerEndpoint: cfg.OnPeerEndpoint,
		onAcquire:      cfg.OnAcquire,
		dropEvery:      cfg.DropLogInterval,
		udpPort:        cfg.UDPPort,
	}
	for _, a := range cfg.UnderlayRemotes {
		if a.IsValid() {
			d.remotes = append(d.remotes, a.Unmap())
		}
	}
	if d.dropEvery == 0 {
		d.dropEvery = DefaultDropLogInterval
	}
	d.clock.Store(time.Now().Unix())
	if d.workers == 0 {
		d.workers = runtime.GOMAXPROCS(0)
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	d.peers.Store(t)
	return d, nil
}

// Start opens the underlay and starts the goroutines. It fails after Close
// or when called twice.
func (d *Dataplane) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return ErrClosed
	}
	if d.started {
		return ErrStarted
	}
	fns, err := d.underlay.Open()
	if err != nil {
		return fmt.Errorf("dataplane: opening the underlay: %w", err)
	}
	d.started = true
	d.clock.Store(time.Now().Unix())
	d.refreshInPolicies()

	d.solo = d.workers == 1 || runtime.GOMAXPROCS(0) == 1
	d.work = make(chan *batch, 2*d.workers)
	for range d.workers {
		d.others.Go(d.worker)
	}

	outSize := max(1, d.tun.BatchSize())
	out := d.newPath(dirOut, outSize)
	d.readers.Go(func() { d.readTUN(out) })
	d.others.Go(func() { d.writer(out) })

	inSize := max(1, d.underlay.BatchSize())
	for _, fn := range fns {
		in := d.newPath(dirIn, inSize)
		d.readers.Go(func() { d.receive(fn, in) })
		d.others.Go(func() { d.writer(in) })
	}

	d.others.Go(d.control)
	d.others.Go(d.keepalives)
	d.others.Go(d.tunEvents)
	d.log.Info("dataplane started",
		zap.Int("workers", d.workers), zap.Int("tun_batch", outSize),
		zap.Int("underlay_batch", inSize), zap.Int("receivers", len(fns)))
	return nil
}

// Close stops every goroutine, closes the TUN device and the underlay and
// returns their errors. Packets in flight are dropped (DropClosing). It is
// idempotent; later calls return nil.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Swap(true) {
		return nil
	}
	close(d.done)
	errT := d.tun.Close()
	errU := d.underlay.Close()
	if d.started {
		d.readers.Wait()
		close(d.work)
		d.others.Wait()
		for _, b := range d.allBatch {
			b.release()
		}
		d.allBatch = nil
		d.log.Info("dataplane stopped")
	}
	if errT != nil {
		errT = fmt.Errorf("dataplane: closing the TUN: %w", errT)
	}
	if errU != nil {
		errU = fmt.Errorf("dataplane: closing the underlay: %w", errU)
	}
	return errors.Join(errT, errU)
}

// Stats returns a snapshot of the counters.
func (d *Dataplane) Stats() Stats {
	s := d.c.snapshot()
	s.InboundPolicyHits = d.inboundHits()
	return s
}

// Peers returns the peers' status, in configuration order.
func (d *Dataplane) Peers() []PeerStatus {
	t := d.peers.Load()
	ps := make([]PeerStatus, len(t.list))
	for i, p := range t.list {
		ps[i] = p.status()
	}
	return ps
}

// SetPeers replaces the peer list atomically: a packet sees the old list or
// the new one. A peer whose name and configured Endpoint are unchanged keeps
// its current (possibly roamed) endpoint and counters; the other peers start
// from their configuration. On error nothing changes.
func (d *Dataplane) SetPeers(ps []PeerConfig) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := buildPeers(ps, d.peers.Load())
	if err != nil {
		return err
	}
	d.peers.Store(t)
	select {
	case d.kick <- struct{}{}:
	default:
	}
	d.log.Info("peers updated", zap.Int("peers", len(t.list)))
	return nil
}

// SetCapture starts (c non-nil) or stops (nil) packet capture. While it is
// off, the packet path pays one atomic load per batch.
func (d *Dataplane) SetCapture(c Capture) {
	if c == nil {
		d.capture.Store(nil)
		return
	}
	d.capture.Store(&captureBox{c})
}

// isClosedErr reports whether err means the device or socket is gone.
func isClosedErr(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed)
}

// maxConsecutiveErrors is how many I/O errors in a row a reader tolerates
// before giving up (wireguard-go's deathSpiral).
const maxConsecutiveErrors = 10

// control logs what the packet path signals (endpoint changes, drop
// samples: droplog.go), advances the coarse clock each second and, as
// often, rereads the inbound policies (inpolicy.go).
func (d *Dataplane) control() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	for {
		select {
		case <-d.done:
			return
		case now := <-tick.C:
			d.clock.Store(now.Unix())
			d.refreshInPolicies()
		case <-d.dropKick:
			d.logDrops(time.Now(), due)
		case <-due.C:
			d.logDrops(time.Now(), due)
		case ev := <-d.roamCh:
			d.log.Info("peer endpoint changed",
				zap.String("peer", ev.peer.name),
				zap.Stringer("from", ev.from), zap.Stringer("to", ev.to))
			if d.onPeerEndpoint != nil {
				d.onPeerEndpoint(ev.peer.name, ev.from, ev.to)
			}
		}
	}
}

// tunEvents drains the TUN's event channel (a Linux TUN blocks its netlink
// listener otherwise) until Close closes it.
func (d *Dataplane) tunEvents() {
	ch := d.tun.Events()
	if ch == nil {
		return
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if ev&tun.EventMTUUpdate != 0 {
				if mtu, err := d.tun.MTU(); err == nil {
					d.log.Info("TUN MTU changed", zap.Int("mtu", mtu))
				}
			}
		case <-d.done:
			return
		}
	}
}

// keepalives sends RFC 3948 §2.3 NAT keepalives to the UDP peers: one each
// Keepalive interval in which no packet went to the peer (RFC 3948 §4). A
// packet counts when it is sealed for the peer, so the gap between two
// packets to a peer is at most about twice the interval.
func (d *Dataplane) keepalives() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		for _, p := range d.peers.Load().list {
			if p.keepalive < 0 {
				continue
			}
			ep := *p.st.ep.Load()
			if ep.Encap != endpoint.EncapUDP {
				p.st.nextKeepalive = time.Time{}
				continue
			}
			if p.st.nextKeepalive.IsZero() {
				p.st.nextKeepalive = now.Add(p.keepalive)
			}
			if !now.Before(p.st.nextKeepalive) && !p.st.sent.Swap(false) {
				if err := d.underlay.SendKeepalive(ep); err != nil {
					if d.closed.Load() {
						return
					}
					d.log.Warn("NAT keepalive failed", zap.String("peer", p.name), zap.Error(err))
				} else {
					p.st.keepalives.Add(1)
					d.c.keepalives.Add(1)
				}
			}
			if !now.Before(p.st.nextKeepalive) {
				p.st.nextKeepalive = now.Add(p.keepalive)
			}
			if p.st.nextKeepalive.Before(next) {
				next = p.st.nextKeepalive
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-d.done:
			return
		case <-d.kick:
		case <-timer.C:
		}
	}
}
