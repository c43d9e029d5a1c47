package node_test

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
	"github.com/mipsec/mipsec/spd"
)

// TestSeqRestart is the crash model of "Manual keys without IV reuse":
// build the daemon's SAD, seal, crash without a clean shutdown, rebuild:
// the first new sequence number is above every one used before. A clean
// stop then records the exact number, and a new key starts from 1.
func TestSeqRestart(t *testing.T) {
	state := t.TempDir()
	cfg := fixture.Config(t, "gateway-a.toml", state)
	opts := opts{reserver: seqstore.ReserverOptions{InitialChunk: 64, MinChunk: 64, MaxChunk: 64}}
	var used uint32
	for run := range 4 {
		d, err := newNode(cfg, zaptest.NewLogger(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		sa := d.SAD().Outbound(fixture.SPIAtoB)
		for i := range 150 {
			seq, v := fixture.SealSeq(sa, i)
			if v == esp.DropSeqReserve {
				d.Res().Tick() // what the background goroutine does
				seq, v = fixture.SealSeq(sa, i)
			}
			if v != esp.OK {
				t.Fatalf("run %d packet %d: %v", run, i, v)
			}
			if i == 0 && run > 0 && seq <= used {
				t.Fatalf("run %d: first sequence number %d after a crash, but %d was already used", run, seq, used)
			}
			used = max(used, seq)
			if i%20 == 0 {
				d.Res().Tick()
			}
		}
		node.Crash(d)
	}
	// A clean stop wastes nothing.
	d, err := newNode(cfg, zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := fixture.SealSeq(d.SAD().Outbound(fixture.SPIAtoB), 0)
	if first <= used {
		t.Fatalf("first %d <= used %d", first, used)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = newNode(cfg, zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := fixture.SealSeq(d.SAD().Outbound(fixture.SPIAtoB), 0); got != first+1 {
		t.Errorf("after a clean stop: %d, want exactly %d", got, first+1)
	}
	d.Close()
	// New keys under the same SPI: a fresh counter.
	cfg.SAs[0].Params.EncKey = append([]byte(nil), cfg.SAs[0].Params.EncKey...)
	cfg.SAs[0].Params.EncKey[0] ^= 0xff
	d, err = newNode(cfg, zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, _ := fixture.SealSeq(d.SAD().Outbound(fixture.SPIAtoB), 0); got != 1 {
		t.Errorf("new key: first sequence number %d, want 1", got)
	}
}

// TestSeqReservedBeforeUse: at every Seal, the number it used is already
// covered by the reservation on disk; and when the disk cannot take a new
// reservation, the SA stops at the old one (DropSeqReserve) instead of
// running ahead.
func TestSeqReservedBeforeUse(t *testing.T) {
	state := t.TempDir()
	cfg := fixture.Config(t, "gateway-a.toml", state)
	var failSync atomic.Bool
	opts := opts{
		store: seqstore.Options{Sync: func(f *os.File) error {
			if failSync.Load() {
				return errors.New("EIO")
			}
			return f.Sync()
		}},
		reserver: seqstore.ReserverOptions{InitialChunk: 64, MinChunk: 64, MaxChunk: 64},
	}
	d, err := newNode(cfg, zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sa := d.SAD().Outbound(fixture.SPIAtoB)
	p := cfg.SAs[0].Params
	fp := node.KeyFingerprint(p)
	onDisk := func() uint64 {
		r, res, err := d.Store().Load(fp)
		if err != nil || res != seqstore.Resumed {
			t.Fatalf("state: %v %v", res, err)
		}
		return r.Reserved
	}
	for i := range 300 {
		seq, v := fixture.SealSeq(sa, i)
		if v == esp.DropSeqReserve {
			d.Res().Tick()
			seq, v = fixture.SealSeq(sa, i)
		}
		if v != esp.OK {
			t.Fatalf("packet %d: %v", i, v)
		}
		if r := onDisk(); uint64(seq) > r {
			t.Fatalf("packet %d used seq %d, but the disk only reserves %d", i, seq, r)
		}
		if i%16 == 0 {
			d.Res().Tick()
		}
	}
	failSync.Store(true)
	r := onDisk()
	sent := 0
	for i := range 200 {
		d.Res().Tick()
		if _, v := fixture.SealSeq(sa, i); v == esp.OK {
			sent++
		} else if v != esp.DropSeqReserve {
			t.Fatalf("verdict %v", v)
		}
	}
	if sa.Seq() != r || sa.Stats().Drops[esp.DropSeqReserve] == 0 {
		t.Errorf("with fsync failing the SA reached %d (reserved on disk: %d), sent %d", sa.Seq(), r, sent)
	}
	failSync.Store(false)
	d.Res().Tick()
	if _, v := fixture.SealSeq(sa, 0); v != esp.OK {
		t.Errorf("after the disk recovered: %v", v)
	}
}

// TestSeqCorruptState: a corrupt record stops the daemon with an error that
// names the file, instead of starting the key from 0 again.
func TestSeqCorruptState(t *testing.T) {
	state := t.TempDir()
	cfg := fixture.Config(t, "gateway-a.toml", state)
	d, err := newNode(cfg, zaptest.NewLogger(t), opts{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	p := cfg.SAs[0].Params
	path := d.Store().Path(node.KeyFingerprint(p))
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 1
	os.WriteFile(path, b, 0o600)
	_, err = newNode(cfg, zaptest.NewLogger(t), opts{})
	if !errors.Is(err, seqstore.ErrCorrupt) {
		t.Fatalf("newDaemon = %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "sa[0]") {
		t.Errorf("error does not name the SA and the file: %v", err)
	}
}

// TestNodesBackToBack runs gateway-a.toml and gateway-b.toml over the
// in-memory TUN and underlay: traffic flows A -> B; then A crashes and
// restarts, and B, whose replay window remembers every number A used,
// still accepts A's packets: A continued above them.
func TestNodesBackToBack(t *testing.T) {
	cfgA := fixture.Config(t, "gateway-a.toml", t.TempDir())
	cfgB := fixture.Config(t, "gateway-b.toml", t.TempDir())
	ua, ub := underlaytest.NewPair(fixture.EpA, fixture.EpB)
	tunA, tunB := tuntest.New(1, 64), tuntest.New(1, 64)
	base := opts{workers: 2}

	optsB := base
	optsB.device, optsB.conn = tunB, ub
	b, err := newNode(cfgB, zaptest.NewLogger(t).Named("B"), optsB)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	send := func(a *node.Node, tunA *tuntest.TUN, ul *underlaytest.Underlay, from, n int) []uint32 {
		t.Helper()
		ul.Record(true)
		for i := range n {
			tunA.Outbound <- icmpEcho(hostA, hostB, 200, uint16(from+i))
			select {
			case p := <-tunB.Inbound:
				if len(p) != 200 || binary.BigEndian.Uint16(p[header.IPv4MinHeaderLen+6:]) != uint16(from+i) {
					t.Fatalf("B delivered %x", p)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("packet %d not delivered; A %+v\nB %+v", from+i, a.Stats(), b.Stats())
			}
		}
		var seqs []uint32
		for _, m := range ul.Sent() {
			if binary.BigEndian.Uint32(m.Data) == fixture.SPIAtoB {
				seqs = append(seqs, binary.BigEndian.Uint32(m.Data[4:]))
			}
		}
		return seqs
	}

	optsA := base
	optsA.device, optsA.conn = tunA, ua
	a, err := newNode(cfgA, zaptest.NewLogger(t).Named("A"), optsA)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	before := send(a, tunA, ua, 0, 5)
	if len(before) != 5 {
		t.Fatalf("A sent %v", before)
	}
	node.Crash(a)

	// The restarted A gets a new in-memory underlay whose packets reach
	// B's receiver.
	ua2, _ := underlaytest.NewPair(fixture.EpA, fixture.EpB)
	ua2.SetFilter(func(m underlaytest.Msg) []underlaytest.Msg { ub.Inject(m); return nil })
	tunA2 := tuntest.New(1, 64)
	optsA.device, optsA.conn = tunA2, ua2
	a2, err := newNode(cfgA, zaptest.NewLogger(t).Named("A2"), optsA)
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Start(); err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	after := send(a2, tunA2, ua2, 5, 5)
	for _, s := range after {
		for _, o := range before {
			if s <= o {
				t.Errorf("after the restart A sent seq %d, not above %d from before", s, o)
			}
		}
	}
	// B's worker adds to DeliveredPackets after its TUN write returns, so
	// the last packet can be read before it is counted.
	eventually(t, "B to count 10 delivered packets", func() bool { return b.Stats().Dataplane.DeliveredPackets >= 10 })
	st := b.Stats()
	for _, s := range st.SAs {
		if s.SPI == fixture.SPIAtoB && (s.Stats.Packets != 10 || s.Stats.Drops[esp.DropReplay] != 0) {
			t.Errorf("B's inbound SA: %+v", s.Stats)
		}
	}
	if st.Dataplane.DeliveredPackets != 10 {
		t.Errorf("B delivered %d", st.Dataplane.DeliveredPackets)
	}
	if a2.Status().TUN != "mipsec-a" || len(a2.Peers()) != 1 || a2.Peers()[0].Name != "gateway-b" {
		t.Errorf("status %v peers %v", a2.Status(), a2.Peers())
	}
}

// TestDaemonControlMethods exercises what the control socket calls.
func TestDaemonControlMethods(t *testing.T) {
	cfg := fixture.Config(t, "gateway-a.toml", t.TempDir())
	d, err := newNode(cfg, zaptest.NewLogger(t), opts{reserver: seqstore.ReserverOptions{InitialChunk: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := cfg.SAs[0].Config // a-to-b-v4, outbound aes128gcm16
	if err := d.AddSA(base); !errors.Is(err, sad.ErrDuplicateSPI) {
		t.Errorf("AddSA of an existing SPI: %v", err)
	}
	// A new outbound SA gets a reservation on disk and keys for SAKeys.
	c := base
	c.Name, c.Params.SPI = "extra", 0xb0ff
	// base's key under another SPI is refused while base lives (keyuse.go).
	if err := d.AddSA(c); err == nil || !strings.Contains(err.Error(), "same nonces") {
		t.Fatalf("AddSA with the key of a live SA: %v", err)
	}
	if d.SAD().Outbound(0xb0ff) != nil {
		t.Fatal("the refused SA was added")
	}
	c.Params.EncKey = append([]byte(nil), c.Params.EncKey...)
	c.Params.EncKey[0] ^= 0xff
	if err := d.AddSA(c); err != nil {
		t.Fatal(err)
	}
	if r, ok := d.Res().Reserved(0xb0ff); !ok || r != 1000 {
		t.Errorf("reservation %d %v", r, ok)
	}
	if enc, _, ok := d.SAKeys(sad.Outbound, 0xb0ff); !ok || string(enc) != string(c.Params.EncKey) {
		t.Errorf("SAKeys: %x %v", enc, ok)
	}
	sa := d.SAD().Outbound(0xb0ff)
	for i := range 10 {
		fixture.SealSeq(sa, i)
	}
	// Same keys: the counter continues through UpdateSA.
	c.Lifetime.Hard.Packets = 1 << 20
	if err := d.UpdateSA(c); err != nil {
		t.Fatal(err)
	}
	if got, _ := fixture.SealSeq(d.SAD().Outbound(0xb0ff), 0); got != 11 {
		t.Errorf("after UpdateSA with the same keys: seq %d, want 11", got)
	}
	// A failed update with new keys leaves the SA and its reservation alone.
	bad := c
	bad.Params.EncKey = make([]byte, 20)
	bad.Selectors = nil
	if err := d.UpdateSA(bad); err == nil {
		t.Fatal("UpdateSA without selectors succeeded")
	}
	if got, _ := fixture.SealSeq(d.SAD().Outbound(0xb0ff), 0); got != 12 {
		t.Errorf("after a failed UpdateSA: seq %d, want 12", got)
	}
	if fp, _ := d.Res().Fingerprint(0xb0ff); fp != node.KeyFingerprint(c.Params) {
		t.Error("a failed UpdateSA changed the reservation's key")
	}
	// New keys: a fresh counter.
	c.Params.EncKey = append([]byte(nil), c.Params.EncKey...)
	c.Params.EncKey[3] ^= 1
	if err := d.UpdateSA(c); err != nil {
		t.Fatal(err)
	}
	if got, _ := fixture.SealSeq(d.SAD().Outbound(0xb0ff), 0); got != 1 {
		t.Errorf("after UpdateSA with new keys: seq %d, want 1", got)
	}
	// Delete records the exact number; re-adding the same key continues.
	if err := d.DelSA(sad.Outbound, 0xb0ff); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := d.SAKeys(sad.Outbound, 0xb0ff); ok {
		t.Error("keys kept after DelSA")
	}
	if err := d.AddSA(c); err != nil {
		t.Fatal(err)
	}
	if got, _ := fixture.SealSeq(d.SAD().Outbound(0xb0ff), 0); got != 2 {
		t.Errorf("re-added: seq %d, want 2", got)
	}
	if err := d.DelSA(sad.Inbound, 0x12345); !errors.Is(err, sad.ErrNotFound) {
		t.Errorf("DelSA unknown: %v", err)
	}
	// Policies.
	p := spd.Policy{Name: "extra", Dir: sad.Outbound, Action: spd.Protect, SPI: 0xb0ff, Selectors: []sad.Selector{{Local: sad.SingleAddr(hostA)}}}
	if err := d.AddPolicy(0, p); err != nil {
		t.Fatal(err)
	}
	if ps := d.Policies(sad.Outbound); ps[0].Name != "extra" || len(ps) != 4 {
		t.Errorf("policies %v", ps)
	}
	if err := d.DelPolicy("extra"); err != nil {
		t.Fatal(err)
	}
	if err := d.DelPolicy("extra"); !errors.Is(err, spd.ErrNotFound) {
		t.Errorf("second DelPolicy: %v", err)
	}
	if n := len(d.SAs()); n != 5 {
		t.Errorf("%d SAs", n)
	}
	st := d.Stats()
	if len(st.SAs) != 5 || st.Drops["unknown_spi"] != 0 && st.Drops == nil {
		t.Errorf("stats %+v", st)
	}
}
