// Package dataplane moves packets: TUN and underlay I/O behind two
// interfaces (the Linux underlay in package underlay, fakes in
// sub-packages), batching, workers, the pipeline that wires spd, sad and
// esp together, and the hooks where the mip6 mobility tunnel layer plugs in
// (after seal, before the outer header leaves; before SA lookup, when a
// packet arrives).
//
// # What is where
//
//   - api.go: the types callers see: Config, PeerConfig, the Underlay
//     interface (shaped like wireguard-go conn.Bind) and its ReceiveFunc,
//     Hooks, Capture, PeerStatus. Endpoints are endpoint.Endpoint.
//   - dataplane.go: New, Start, Close, Stats, Peers, SetPeers, SetCapture,
//     the control goroutines (roaming log, NAT keepalives, TUN events), and
//     the picture of the goroutines and how order is kept.
//   - pipeline.go: batches, readers, workers, writers, and the two worker
//     stages, sealBatch and openBatch.
//   - peers.go: the peer table (an immutable snapshot), roaming.
//   - stats.go: DropReason and the counters.
//   - droplog.go: the drop warnings (one sample slot per kind, drained and
//     logged at most once per Config.DropLogInterval by the control
//     goroutine) and what counts as link-local (DropLinkLocal).
//   - loop.go: routing loops: our own ESP (IP protocol 50, UDP 4500 /
//     4191) read back from the TUN, to the address its SA sends to, is
//     dropped as DropLoop and warned about instead of being sealed again.
//   - acquire.go: traps: a PROTECT policy naming a trap SPI (1..255)
//     without an SA drops as DropAcquire and tells Config.OnAcquire,
//     rate-limited, so that the SA gets negotiated on demand.
//   - inpolicy.go: the hits of the inbound PROTECT policies, which the
//     dataplane counts since ESP never goes through the inbound SPD.
//   - tun_linux.go: the real TUN (CreateTUN, ConfigureTUN). The Linux
//     sockets (raw ESP, UDP 4500, UDP 4191, the extension-header receivers,
//     AF_PACKET) are package underlay.
//   - tuntest, underlaytest: in-memory fakes for tests (BatchSize 1 for the
//     underlay, any for the TUN).
//
// # The pipeline
//
// Outbound: TUN batch read (at pkt.Headroom) → SPD (spd.DB.Lookup) →
// PROTECT: SA seal in place (sad.SA.Seal, tunnel or transport mode) →
// Hooks.AfterSeal → the IP header in front of ESP (the tunnel's outer
// header, or in transport mode the packet's own) is cut off (the kernel or
// the underlay builds its own) → Underlay.Send to the peer's current
// endpoint. The peer is the one whose OutSPIs hold the SA's SPI; an SA
// without a peer goes as raw ESP to the destination of that header. When
// AfterSeal sets the endpoint's Encap to EncapIP nothing is cut: the hook
// built the whole packet (a Home Address option, a type 2 Routing header,
// IPv4/UDP 4191) and the underlay sends it header-included. DISCARD and no
// match drop (DropPolicyDiscard), but link-scoped packets (the Router
// Solicitations, MLD reports and DAD probes the kernel sends on a fresh
// TUN, RFC 4861 §6.3.7) drop as DropLinkLocal: expected, never warned
// about. BYPASS drops too (DropPolicyBypass): a
// tunnel device has no cleartext path out, so bypassed traffic must be
// routed around the TUN. Dataplane.Inject runs one packet through the same
// steps (policy, seal, finishSeal) on the caller's goroutine: the
// mobility signaling. Consecutive packets of one SA are sealed together
// (sad.SA.SealBatch), and opened together inbound (sad.SA.OpenBatch); a
// batch the workers process beside others reserves its sequence numbers
// and updates the replay window in read order (see dataplane.go).
//
// Inbound: ReceiveFunc batch (ESP, SPI first; EncapIP: a whole IP packet)
// → Hooks.BeforeLookup → for EncapIP, esp.Locate finds ESP behind the
// header(s) (none: DropUnprotected) → SA by SPI alone (sad.DB.Inbound,
// RFC 4301 §4.1) → for a transport-mode SA on raw ESP, the packet is
// extended back over the normalised outer header the underlay left in the
// headroom → sad.SA.Open (anti-replay, ICV, decryption, the selector check
// of RFC 4301 §5.2 in home-address form) → roaming → tunnel mode: TUN batch
// write; transport mode: the Home Address option / type 2 Routing header
// are processed as a receiving IPv6 node does (RFC 6275 §9.3.1, §6.4:
// addresses exchanged, home-address form), then Hooks.Deliver, and the TUN
// when it declines. Transport-mode ESP in UDP 4500 is dropped
// (DropTransportMode).
//
// The dataplane holds no mobility state: bindings, care-of addresses and
// the choice of outer form live behind the hooks (mip6).
//
// Order: a batch is the unit of work; batches of every path go to one pool
// of Workers goroutines, and each path's writer takes its batches in read
// order, so packets leave in the order they were read: per SA, as long as an
// SA's packets arrive on one ReceiveFunc. The packets in flight per path are
// bounded (512) so that sequence numbers, which esp hands out when a packet
// is sealed, stay within the peer's anti-replay window even though batches
// are sealed and opened concurrently (see dataplane.go). A reader seals or
// opens a batch itself, and writes it, when nothing of its path is in
// flight and the batch is small (at most 8 packets), or always with one
// worker or GOMAXPROCS 1: no hand-off then, and order holds because every
// earlier batch of the path has been written.
//
// Roaming (PeerConfig.Roaming, off by default): the peer's endpoint follows
// the source of a packet on one of its InSPIs that passed the ICV and the
// replay check and is the SA's newest (its sequence number is the highest
// the SA accepted after Open), at most once per RoamInterval. Replayed,
// forged, failing and older packets never move it. It needs anti-replay
// (esp.Params.NoReplay off). Changes are logged at Info by a control
// goroutine.
//
// # Hot-path contract
//
// The worker stages, the readers and the writers do not allocate in steady
// state (alloc_test.go): each path owns a fixed set of batches whose pkt.Bufs
// and slices are allocated once in Start; lookups are lock-free (sad, spd,
// the peer table behind an atomic.Pointer with uint32 keys); counters are
// atomics added once per batch. Nothing on the packet path logs: drops are
// counted by DropReason (ESP verdicts in detail per SA in sad), and I/O
// errors go to Debug through a Check guard. The drops that explain
// themselves (unknown SPI, ICV, replay, selector, policy discard) leave a
// sample in a slot of their kind, claimed with one CompareAndSwap when it
// is empty (one atomic load on the drop path otherwise), which the control
// goroutine logs at Warn at most once per Config.DropLogInterval with the
// count since the previous line (droplog.go). A peer's last-heard time is
// a coarse clock second, stored when it changes (once a second per peer). Roaming allocates one Endpoint
// per change (at most one per RoamInterval per peer).
//
// dataplane may import everything below it (endpoint, esp, sad, spd, mip6,
// internal/*), zap, x/net, x/sys, netlink and wireguard/tun; never cmd,
// bench or underlay (the caller passes the underlay in, Config.Underlay).
package dataplane
