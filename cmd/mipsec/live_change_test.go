package main

// Issue 3: "`mipsec sa list|add|del|update` and `mipsec policy
// list|add|del`: changes are atomic, with no packet loss on unrelated SAs".
//
// Gateways A and B (testdata/gateway-a.toml, gateway-b.toml) run back to
// back over the in-memory TUN and underlay, each with its control socket.
// A steady stream of IPv4 site packets flows A -> B on SPI 0xb001 while the
// test drives `mipsec sa ...` and `mipsec policy ...` through the sockets,
// as a user would: an unrelated SA and its policies come and go, are rekeyed
// and refreshed, policies are inserted before and after the flow's own, and
// the flow's SAs themselves are updated with the same keys (sad.DB.Replace
// hands the esp state over). Every packet must arrive exactly once, in
// order, with nothing dropped anywhere. A negative control deletes the
// flow's SA mid-stream and checks that the same accounting sees the loss.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/seqstore"
)

const (
	spiSide = 0x0000b0e1 // the unrelated SA, A -> B
	// priorSeals is how many packets A sealed in an earlier life: the
	// flow's SA starts above them (InitialSeq > 0), as after any restart.
	priorSeals = 3
)

var (
	sideSrc = netip.MustParseAddr("10.1.0.5") // behind A
	sideDst = netip.MustParseAddr("10.2.0.5") // behind B
)

// flowPacket is packet i of the flow: an ICMP echo HostA -> HostB whose
// payload carries i, so that the receiver can check every byte.
func flowPacket(i int) []byte {
	p := fixture.ICMPEcho(fixture.HostA, fixture.HostB, 120, uint16(i))
	icmp := p[header.IPv4MinHeaderLen:]
	binary.BigEndian.PutUint32(icmp[8:], uint32(i))
	icmp[2], icmp[3] = 0, 0
	c := ^header.Checksum(icmp, 0)
	icmp[2], icmp[3] = byte(c>>8), byte(c)
	return p
}

// liveRig is A and B with their sockets, the flow's sender and receiver.
type liveRig struct {
	t            *testing.T
	prior        int // packets A sealed on 0xb001 in its earlier life
	a, b         *daemon
	cfgA, cfgB   *config.File
	sockA, sockB string
	tunA, tunB   *tuntest.TUN
	ua           *underlaytest.Underlay
	dir          string

	stop      chan struct{} // closed: the sender stops
	stopOnce  sync.Once
	sendDone  chan struct{}
	quit      chan struct{} // closed at the end of the test: the receiver stops
	sent      atomic.Int64  // flow packets handed to A's TUN
	recv      atomic.Int64  // the flow packet the receiver expects next
	delivered atomic.Int64  // flow packets B delivered
	sideSent  atomic.Int64
	side      chan []byte // unrelated packets B delivered

	mu      sync.Mutex
	badRecv []string // out of order, duplicated, corrupt
}

func newLiveRig(t *testing.T, prior int) *liveRig {
	t.Helper()
	r := &liveRig{t: t, prior: prior, dir: shortTempDir(t), stop: make(chan struct{}), sendDone: make(chan struct{}),
		quit: make(chan struct{}), side: make(chan []byte, 16)}
	// Registered first, so it runs after the daemons are closed.
	t.Cleanup(func() { close(r.quit) })
	r.cfgA = fixture.Config(t, "gateway-a.toml", t.TempDir())
	r.cfgB = fixture.Config(t, "gateway-b.toml", t.TempDir())
	r.sockA, r.sockB = filepath.Join(r.dir, "a.sock"), filepath.Join(r.dir, "b.sock")
	r.cfgA.ControlSocket, r.cfgB.ControlSocket = r.sockA, r.sockB

	// A's earlier life: a few packets sealed, a clean stop. The flow's SA
	// now starts at InitialSeq = prior.
	prev, err := newDaemon(r.cfgA, zaptest.NewLogger(t).Named("A0"), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range prior {
		if _, v := fixture.SealSeq(prev.SAD().Outbound(fixture.SPIAtoB), i); v != esp.OK {
			t.Fatalf("earlier life: %v", v)
		}
	}
	if err := prev.Close(); err != nil {
		t.Fatal(err)
	}

	ua, ub := underlaytest.NewPair(epA, epB)
	r.ua = ua
	r.tunA, r.tunB = tuntest.New(4, 256), tuntest.New(4, 256)
	// Smaller reservation chunks than the defaults: the reservations are
	// extended (and the bound moved) while the flow runs, with room for
	// a slow fsync.
	res := seqstore.ReserverOptions{InitialChunk: 1 << 14, MinChunk: 1 << 14, Interval: 5 * time.Millisecond}
	r.b, err = newDaemon(r.cfgB, zaptest.NewLogger(t).Named("B"), daemonOptions{workers: 2, device: r.tunB, conn: ub, reserver: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.b.Close() })
	r.a, err = newDaemon(r.cfgA, zaptest.NewLogger(t).Named("A"), daemonOptions{workers: 2, device: r.tunA, conn: ua, reserver: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.a.Close() })
	if got := r.a.SAD().Outbound(fixture.SPIAtoB).Params().InitialSeq; got != uint64(prior) {
		t.Fatalf("A's flow SA starts at %d, want %d", got, prior)
	}
	ua.Record(true)
	return r
}

// start runs the sender (a steady pace: a few packets, a short pause) and
// the receiver, which checks each packet against the one it expects next.
func (r *liveRig) start() {
	r.t.Cleanup(r.stopSender)
	go func() {
		for {
			var p []byte
			select {
			case p = <-r.tunB.Inbound:
			case <-r.quit:
				return
			}
			if len(p) >= header.IPv4MinHeaderLen && bytes.Equal(p[12:16], sideSrc.AsSlice()) {
				select {
				case r.side <- p:
				case <-r.quit:
					return
				}
				continue
			}
			r.delivered.Add(1)
			want := int(r.recv.Load())
			if !bytes.Equal(p, flowPacket(want)) {
				got := -1
				if len(p) == 120 {
					got = int(binary.BigEndian.Uint32(p[header.IPv4MinHeaderLen+8:]))
				}
				r.mu.Lock()
				if len(r.badRecv) < 20 {
					r.badRecv = append(r.badRecv, fmt.Sprintf("B delivered packet %d (len %d) where %d was due", got, len(p), want))
				}
				r.mu.Unlock()
				if got < want {
					continue // a duplicate or garbage: keep waiting for want
				}
				// A gap: count on from the one that came.
				r.recv.Store(int64(got))
			}
			r.recv.Add(1)
		}
	}()
	go func() {
		defer close(r.sendDone)
		for i := 0; ; i++ {
			select {
			case <-r.stop:
				return
			case r.tunA.Outbound <- flowPacket(i):
				r.sent.Add(1)
			}
			if i%4 == 3 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
}

// progress waits until B has delivered n more flow packets, so that the
// flow really runs between two changes.
func (r *liveRig) progress(n int64) {
	r.t.Helper()
	want := r.recv.Load() + n
	deadline := time.Now().Add(5 * time.Second)
	for r.recv.Load() < want {
		if time.Now().After(deadline) {
			r.t.Fatalf("the flow stalled at %d packets (sent %d)\nA %+v\nB %+v", r.recv.Load(), r.sent.Load(), r.a.Stats(), r.b.Stats())
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func (r *liveRig) stopSender() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.sendDone
}

// finish stops the sender and waits until the pipeline is empty: A read
// everything, B received all A sent and the receiver took all B delivered.
func (r *liveRig) finish() {
	r.t.Helper()
	r.stopSender()
	total := uint64(r.sent.Load() + r.sideSent.Load())
	deadline := time.Now().Add(5 * time.Second)
	for {
		as, bs := r.a.DataplaneStats(), r.b.DataplaneStats()
		if as.OutPackets == total && bs.InPackets == as.SentPackets && uint64(r.delivered.Load()+r.sideSent.Load()) >= bs.DeliveredPackets {
			break
		}
		if time.Now().After(deadline) {
			r.t.Logf("pipeline did not drain: total %d, A %+v, B %+v, recv %d", total, as, bs, r.recv.Load())
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // the last TUN write reaches the receiver
}

// problems lists every sign of loss, reordering or drops on the flow.
func (r *liveRig) problems() []string {
	var out []string
	r.mu.Lock()
	out = append(out, r.badRecv...)
	r.mu.Unlock()
	if s, d := r.sent.Load(), r.delivered.Load(); s != d || r.recv.Load() != s {
		out = append(out, fmt.Sprintf("sent %d flow packets, B delivered %d (the last one checked in order: %d)", s, d, r.recv.Load()-1))
	}
	for _, g := range []struct {
		name string
		sock string
	}{{"A", r.sockA}, {"B", r.sockB}} {
		var st control.StatsInfo
		if err := json.Unmarshal([]byte(mustRun(r.t, "stats", "--json", "--socket", g.sock)), &st); err != nil {
			r.t.Fatal(err)
		}
		if len(st.Dataplane.Drops) != 0 {
			out = append(out, fmt.Sprintf("%s dataplane drops: %v", g.name, st.Dataplane.Drops))
		}
		for _, s := range st.SAs {
			if len(s.Drops) != 0 {
				out = append(out, fmt.Sprintf("%s SA %s %#08x drops: %v", g.name, s.Dir, s.SPI, s.Drops))
			}
		}
		for _, s := range st.SPD {
			if s.NoMatch+s.NoSA+s.Unparsable+s.Unprotected != 0 {
				out = append(out, fmt.Sprintf("%s SPD %s: %+v", g.name, s.Dir, s))
			}
		}
	}
	// Every flow packet left A on 0xb001 with its own sequence number, all
	// of them on from the earlier life without a gap or a repeat: no packet
	// took another SA or policy, and every same-key update continued the
	// counter. (The workers seal batches in parallel, so the numbers need
	// not leave in order; the inner packets do.)
	var seqs []uint32
	for _, m := range r.ua.Sent() {
		switch spi := binary.BigEndian.Uint32(m.Data); spi {
		case fixture.SPIAtoB:
			seqs = append(seqs, binary.BigEndian.Uint32(m.Data[4:]))
		case spiSide:
		default:
			out = append(out, fmt.Sprintf("A sent SPI %#08x", spi))
		}
	}
	if int64(len(seqs)) != r.sent.Load() {
		out = append(out, fmt.Sprintf("A sent %d packets on 0xb001, the flow had %d", len(seqs), r.sent.Load()))
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if want := uint32(r.prior + 1 + i); s != want {
			out = append(out, fmt.Sprintf("0xb001 sequence numbers: %d where %d was due", s, want))
			break
		}
	}
	return out
}

// mustRun runs the mipsec command line and returns its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var o, e bytes.Buffer
	if rc := run(args, &o, &e); rc != 0 {
		t.Fatalf("mipsec %s: exit %d: %s%s", strings.Join(args, " "), rc, o.String(), e.String())
	}
	return o.String()
}

// ctl runs `mipsec ARGS --socket sock` and lets the flow move on.
func (r *liveRig) ctl(sock string, args ...string) string {
	r.t.Helper()
	out := mustRun(r.t, append(args, "--socket", sock)...)
	r.progress(2)
	return out
}

// sendSide sends one packet over the unrelated SA and waits for B to
// deliver it: the new SA and policy are live on both sides.
func (r *liveRig) sendSide(i int) {
	r.t.Helper()
	p := fixture.ICMPEcho(sideSrc, sideDst, 100, uint16(i))
	r.sideSent.Add(1)
	r.tunA.Outbound <- p
	select {
	case got := <-r.side:
		if !bytes.Equal(got, p) {
			r.t.Fatalf("unrelated packet %d: B delivered %x", i, got)
		}
	case <-time.After(5 * time.Second):
		r.t.Fatalf("unrelated packet %d not delivered\nA %+v\nB %+v", i, r.a.Stats(), r.b.Stats())
	}
}

func policyNames(t *testing.T, sock, dir string) []string {
	t.Helper()
	var ps []control.PolicyInfo
	if err := json.Unmarshal([]byte(mustRun(t, "policy", "list", "--json", "--dir", dir, "--socket", sock)), &ps); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names
}

// sideSA is the flags of the unrelated SA on A (out) or B (in).
func sideSA(dir, key string) []string {
	local, remote := "10.1.0.0/16", "10.2.0.0/16"
	if dir == "in" { // B's view: local is behind B
		local, remote = remote, local
	}
	return []string{"--name", "side", "--dir", dir, "--spi", fmt.Sprint(spiSide), "--alg", "aes128gcm16", "--enc-key", key,
		"--src", "198.51.100.1", "--dst", "203.0.113.1", "--local", local, "--remote", remote}
}

// checkEnd reports the flow's problems and checks that the policy lists
// and SAs are back to the configured ones.
func (r *liveRig) checkEnd(pols map[string][]string) {
	t := r.t
	t.Helper()
	r.finish()
	for _, p := range r.problems() {
		t.Error(p)
	}
	t.Logf("%d flow packets", r.sent.Load())
	for k, want := range pols {
		sock, dir, _ := strings.Cut(k, " ")
		if got := policyNames(t, sock, dir); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s %s policies %v, want %v", sock, dir, got, want)
		}
	}
	if n := len(r.a.SAs()) + len(r.b.SAs()); n != 8 {
		t.Errorf("%d SAs left, want 8", n)
	}
}

func (r *liveRig) policyLists() map[string][]string {
	m := map[string][]string{}
	for _, sock := range []string{r.sockA, r.sockB} {
		for _, dir := range []string{"out", "in"} {
			m[sock+" "+dir] = policyNames(r.t, sock, dir)
		}
	}
	return m
}

// TestLiveChangesNoLoss: while the flow runs on 0xb001, an unrelated SA
// pair and policies are added, rekeyed, refreshed and deleted through the
// control sockets, policies go in before and after the flow's own, and
// then the unrelated SA and the policies are hammered back to back. The
// flow loses, reorders and drops nothing.
func TestLiveChangesNoLoss(t *testing.T) {
	r := newLiveRig(t, priorSeals)
	pols := r.policyLists()
	r.start()
	r.progress(20)
	const rounds, hammer = 10, 150
	for round := range rounds {
		key1 := fmt.Sprintf("%040x", 0x1000+round)
		key2 := fmt.Sprintf("%040x", 0x2000+round)
		// An unrelated SA pair and its policies, in front of the flow's.
		r.ctl(r.sockB, append([]string{"sa", "add"}, sideSA("in", key1)...)...)
		r.ctl(r.sockA, append([]string{"sa", "add"}, sideSA("out", key1)...)...)
		r.ctl(r.sockA, "policy", "add", "--name", "side-out", "--dir", "out", "--action", "protect", "--spi", fmt.Sprint(spiSide),
			"--local", "10.1.0.0/16", "--remote", "10.2.0.0/16", "--index", "0")
		r.ctl(r.sockB, "policy", "add", "--name", "side-in", "--dir", "in", "--action", "protect",
			"--local", "10.2.0.0/16", "--remote", "10.1.0.0/16", "--index", "0")
		r.sendSide(3 * round)
		// Policies between the flow's and the catch-all, and after it.
		r.ctl(r.sockA, "policy", "add", "--name", "mid", "--dir", "out", "--action", "bypass", "--local", "10.9.0.0/16", "--index", "2")
		r.ctl(r.sockA, "policy", "add", "--name", "tail", "--dir", "out", "--action", "discard", "--remote", "10.8.0.0/16")
		r.ctl(r.sockA, "policy", "add", "--name", "in-pre", "--dir", "in", "--action", "bypass", "--proto", "udp", "--rport", "500", "--index", "0")
		r.ctl(r.sockB, "policy", "add", "--name", "out-pre", "--dir", "out", "--action", "discard", "--remote", "10.7.0.0/16", "--index", "0")
		// Listing while everything flows.
		r.ctl(r.sockA, "sa", "list")
		r.ctl(r.sockB, "sa", "list", "--json")
		r.ctl(r.sockA, "policy", "list")
		// Rekey the unrelated SA (B first: A's next packet needs the new key).
		r.ctl(r.sockB, append([]string{"sa", "update"}, sideSA("in", key2)...)...)
		r.ctl(r.sockA, append([]string{"sa", "update"}, sideSA("out", key2)...)...)
		r.sendSide(3*round + 1)
		// Same keys: a refresh.
		r.ctl(r.sockA, append([]string{"sa", "update"}, sideSA("out", key2)...)...)
		r.ctl(r.sockB, append([]string{"sa", "update"}, sideSA("in", key2)...)...)
		r.sendSide(3*round + 2)
		// Tear down in another order than built.
		r.ctl(r.sockA, "policy", "del", "mid")
		r.ctl(r.sockA, "policy", "del", "side-out")
		r.ctl(r.sockA, "sa", "del", "out", fmt.Sprint(spiSide))
		r.ctl(r.sockB, "sa", "del", "--dir", "in", "--spi", fmt.Sprint(spiSide))
		r.ctl(r.sockB, "policy", "del", "side-in")
		r.ctl(r.sockB, "policy", "del", "out-pre")
		r.ctl(r.sockA, "policy", "del", "in-pre")
		r.ctl(r.sockA, "policy", "del", "tail")
	}
	// Hammer, on both gateways at once: the unrelated SA updated with new
	// and the same keys, added and deleted, policies inserted before and
	// after the flow's and deleted, back to back.
	var wg sync.WaitGroup
	for _, g := range []struct{ sock, dir, pdir string }{{r.sockA, "out", "out"}, {r.sockB, "in", "out"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := func(args ...string) bool {
				var o, e bytes.Buffer
				if rc := run(append(args, "--socket", g.sock), &o, &e); rc != 0 {
					t.Errorf("mipsec %s: %s", strings.Join(args, " "), e.String())
					return false
				}
				return true
			}
			for i := range hammer {
				key := fmt.Sprintf("%040x", 0x3000+i/2) // each key twice: new, then the same
				verb := "update"
				if i%10 == 0 {
					verb = "add"
				}
				ok := cmd(append([]string{"sa", verb}, sideSA(g.dir, key)...)...) &&
					cmd("policy", "add", "--name", "h-"+g.dir, "--dir", g.pdir, "--action", "discard", "--remote", "10.6.0.0/16", "--index", fmt.Sprint(i%3))
				if ok && i%10 == 9 {
					ok = cmd("sa", "del", g.dir, fmt.Sprint(spiSide))
				}
				if !ok || !cmd("policy", "del", "h-"+g.dir) {
					return
				}
			}
		}()
	}
	wg.Wait()
	r.checkEnd(pols)
	if r.sent.Load() < 1000 {
		t.Errorf("only %d flow packets: the flow did not overlap the changes", r.sent.Load())
	}
}

// TestLiveChangesNegativeControl deletes the flow's SA mid-stream: the same
// accounting must see the loss (A's dataplane counts no_sa drops, B
// delivers fewer packets than were sent).
func TestLiveChangesNegativeControl(t *testing.T) {
	r := newLiveRig(t, priorSeals)
	r.start()
	r.progress(50)
	mustRun(t, "sa", "del", "out", fmt.Sprint(fixture.SPIAtoB), "--socket", r.sockA)
	deadline := time.Now().Add(5 * time.Second)
	for r.a.DataplaneStats().Drops[dataplane.DropNoSA] < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("no drops after deleting the flow's SA: %+v", r.a.DataplaneStats())
		}
		time.Sleep(time.Millisecond)
	}
	r.finish()
	ps := r.problems()
	var loss, drops bool
	for _, p := range ps {
		loss = loss || strings.Contains(p, "B delivered")
		drops = drops || strings.Contains(p, "A dataplane drops") && strings.Contains(p, "no_sa")
	}
	if !loss || !drops {
		t.Errorf("deleting the flow's SA mid-stream: loss %v, drops %v; problems:\n%s", loss, drops, strings.Join(ps, "\n"))
	}
}
