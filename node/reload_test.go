package node_test

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// The edits of gateway-a.toml that TestReloadLive reloads: a-to-b-v6
// gets a packet limit (the same keys: updated in place), b-to-a-v6 goes
// (and with it from the peer's in_spis), a-to-b-extra and its policy come.
var reloadEdits = append([]string{
	`name = "a-to-b-v6"`, `name = "a-to-b-v6"
lifetime = { hard = { packets = 1000000 } }`,
}, fixture.ReloadEdits...)

// TestReloadLive runs gateway-a.toml and gateway-b.toml back to back with
// a ping-pong flow on a-to-b-v4 while A reloads a config that updates,
// adds and removes other SAs, a policy and the peer: the flow loses
// nothing, B sees no replay, A's sequence numbers on it simply continue
// and its SA is the same object, through that reload and ten more back
// and forth. The updated SA keeps its sequence
// numbers (the same keys); a reload identical to what runs changes
// nothing.
func TestReloadLive(t *testing.T) {
	stateA := t.TempDir()
	cfgA := fixture.Config(t, "gateway-a.toml", stateA)
	cfgB := fixture.Config(t, "gateway-b.toml", t.TempDir())
	ua, ub := underlaytest.NewPair(fixture.EpA, fixture.EpB)
	tunA, tunB := tuntest.New(1, 64), tuntest.New(1, 64)
	b, err := newNode(cfgB, zaptest.NewLogger(t).Named("B"), opts{workers: 2, device: tunB, conn: ub})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := newNode(cfgA, zaptest.NewLogger(t).Named("A"), opts{workers: 2, device: tunA, conn: ua})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ua.Record(true)

	flowSA := a.SAD().Outbound(fixture.SPIAtoB)
	v6 := a.SAD().Outbound(0xb006)
	v6Before, v := fixture.SealSeq(v6, 0)
	if v != esp.OK {
		t.Fatal(v)
	}

	// The flow: one packet at a time, each delivered before the next.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent int
	var flowErr atomic.Pointer[string]
	fail := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		flowErr.Store(&s)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tunA.Outbound <- icmpEcho(hostA, hostB, 200, uint16(i))
			select {
			case p := <-tunB.Inbound:
				if got := binary.BigEndian.Uint16(p[header.IPv4MinHeaderLen+6:]); got != uint16(i) {
					fail("B delivered packet %d, want %d", got, uint16(i))
					return
				}
				sent++
			case <-time.After(5 * time.Second):
				fail("packet %d of the flow was lost", i)
				return
			}
		}
	}()
	waitSent := func(n int) {
		t.Helper()
		eventually(t, "the flow", func() bool {
			return b.Stats().Dataplane.DeliveredPackets >= uint64(n) || flowErr.Load() != nil
		})
	}
	waitSent(50)

	next := fixture.EditConfig(t, "gateway-a.toml", stateA, reloadEdits...)
	res, err := a.Reload(next.Config)
	if err != nil {
		t.Fatal(err)
	}
	// Back and forth a few times more while the flow runs.
	for i := range 10 {
		c := cfgA.Config
		if i%2 == 1 {
			c = next.Config
		}
		if r, err := a.Reload(c); err != nil || !r.Changed() {
			t.Fatalf("reload %d: %+v %v", i, r, err)
		}
	}
	delivered := b.Stats().Dataplane.DeliveredPackets
	waitSent(int(delivered) + 50)
	close(stop)
	wg.Wait()
	if e := flowErr.Load(); e != nil {
		t.Fatal(*e)
	}

	names := func(cs []node.SAChange) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.String())
		}
		return out
	}
	if got := names(res.Added); !slices.Equal(got, []string{"a-to-b-extra (out SA 0x0000b0ff)"}) {
		t.Errorf("added %v", got)
	}
	if got := names(res.Updated); !slices.Equal(got, []string{"a-to-b-v6 (out SA 0x0000b006)"}) {
		t.Errorf("updated %v", got)
	}
	if got := names(res.Deleted); !slices.Equal(got, []string{"b-to-a-v6 (in SA 0x0000a006)"}) {
		t.Errorf("deleted %v", got)
	}
	if !res.Policies || !res.Peers || len(res.NeedsRestart) != 0 {
		t.Errorf("result %+v", res)
	}
	if ps := a.Policies(sad.Outbound); len(ps) != 4 || ps[2].Name != "out-extra" {
		t.Errorf("outbound policies %v", ps)
	}
	if a.SAD().Inbound(0xa006) != nil || a.SAD().Outbound(0xb0ff) == nil {
		t.Error("the SAD is not the reloaded one")
	}
	if got := a.SAD().Outbound(0xb006); got == v6 || got.Lifetime().Hard.Packets != 1000000 {
		t.Errorf("a-to-b-v6 not updated: %+v", got.Lifetime())
	}
	if s, _ := fixture.SealSeq(a.SAD().Outbound(0xb006), 0); s != v6Before+1 {
		t.Errorf("a-to-b-v6 after its update (same keys): seq %d, want %d", s, v6Before+1)
	}

	// The flow's SA was not touched, its numbers run on, B took them all.
	if a.SAD().Outbound(fixture.SPIAtoB) != flowSA {
		t.Error("the flow's SA was replaced")
	}
	var seqs []uint32
	for _, m := range ua.Sent() {
		if binary.BigEndian.Uint32(m.Data) == fixture.SPIAtoB {
			seqs = append(seqs, binary.BigEndian.Uint32(m.Data[4:]))
		}
	}
	if len(seqs) != sent {
		t.Errorf("A sent %d packets on the flow's SA, the flow %d", len(seqs), sent)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("flow sequence numbers jump: %d then %d", seqs[i-1], seqs[i])
		}
	}
	eventually(t, "B to count the flow", func() bool { return b.Stats().Dataplane.DeliveredPackets >= uint64(sent) })
	for _, s := range b.Stats().SAs {
		if s.SPI == fixture.SPIAtoB && s.Dir == "in" {
			if s.Stats.Packets != uint64(sent) || s.Stats.Drops[esp.DropReplay] != 0 || s.Stats.Dropped() != 0 {
				t.Errorf("B's SA of the flow: %+v (flow %d packets)", s.Stats, sent)
			}
		}
	}
	if b.Stats().Dataplane.DeliveredPackets != uint64(sent) {
		t.Errorf("B delivered %d, the flow sent %d", b.Stats().Dataplane.DeliveredPackets, sent)
	}

	// The same configuration again: nothing to do.
	again := fixture.EditConfig(t, "gateway-a.toml", stateA, reloadEdits...)
	before := a.SAs()
	res, err = a.Reload(again.Config)
	if err != nil || res.Changed() || len(res.NeedsRestart) != 0 {
		t.Errorf("identical reload: %+v, %v", res, err)
	}
	if after := a.SAs(); !slices.Equal(before, after) {
		t.Error("an identical reload replaced SAs")
	}
}

// startA starts gateway-a.toml alone over fake devices.
func startA(t *testing.T) (*node.Node, *config.File) {
	t.Helper()
	cfg := fixture.Config(t, "gateway-a.toml", t.TempDir())
	ua, _ := underlaytest.NewPair(fixture.EpA, fixture.EpB)
	n, err := newNode(cfg, zaptest.NewLogger(t), opts{device: tuntest.New(1, 8), conn: ua})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, cfg
}

// cloneConfig copies the lists of c that the tests edit.
func cloneConfig(c node.Config) node.Config {
	c.SAs = slices.Clone(c.SAs)
	c.Policies = slices.Clone(c.Policies)
	c.Peers = slices.Clone(c.Peers)
	return c
}

func indexOfSA(c node.Config, dir sad.Direction, spi uint32) int {
	return slices.IndexFunc(c.SAs, func(s node.SAConfig) bool { return s.Dir == dir && s.Params.SPI == spi })
}

// TestReloadRefused: a reload that fails validation changes nothing, even
// where other parts of it were fine: the SAs are the same objects, the
// policies and peers the same, the sequence numbers continue.
func TestReloadRefused(t *testing.T) {
	n, cfg := startA(t)
	base := cfg.Config
	// Every bad config also deletes b-to-a-v6 and changes a policy: it
	// must not happen.
	withOther := func(c node.Config) node.Config {
		c.SAs = slices.DeleteFunc(c.SAs, func(s node.SAConfig) bool { return s.Name == "b-to-a-v6" })
		i := slices.IndexFunc(c.Policies, func(p spd.Policy) bool { return p.Name == "in-v6" })
		c.Policies = slices.Delete(c.Policies, i, i+1)
		return c
	}
	v4 := base.SAs[indexOfSA(base, sad.Outbound, fixture.SPIAtoB)]
	cases := []struct {
		name, want string
		edit       func(c *node.Config)
	}{
		{"key shared", "same nonces", func(c *node.Config) {
			s := v4
			s.Name, s.Path, s.Params.SPI = "copy", "sa[9]", 0xb0f0
			c.SAs = append(c.SAs, s)
		}},
		{"policy names a missing SPI", "not an outbound SA", func(c *node.Config) {
			c.Policies[0].SPI = 0xdead
		}},
		{"policy names a deleted SPI", "not an outbound SA", func(c *node.Config) {
			c.SAs = slices.DeleteFunc(c.SAs, func(s node.SAConfig) bool { return s.Params.SPI == 0xb006 })
		}},
		{"duplicate SPI", "duplicate SPI", func(c *node.Config) {
			s := c.SAs[indexOfSA(*c, sad.Inbound, 0xa001)]
			c.SAs = append(c.SAs, s)
		}},
		{"SA without selectors", "selectors", func(c *node.Config) {
			i := indexOfSA(*c, sad.Outbound, 0xb006)
			c.SAs[i].Selectors = nil
		}},
		{"bad policy", "duplicate policy name", func(c *node.Config) {
			c.Policies = append(c.Policies, c.Policies[0])
		}},
		{"bad peers", "duplicate peer name", func(c *node.Config) {
			c.Peers = append(c.Peers, c.Peers[0])
		}},
	}
	seq, _ := fixture.SealSeq(n.SAD().Outbound(fixture.SPIAtoB), 0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := withOther(cloneConfig(base))
			tc.edit(&c)
			sas, out, in := n.SAs(), n.Policies(sad.Outbound), n.Policies(sad.Inbound)
			res, err := n.Reload(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Reload = %v, want an error saying %q", err, tc.want)
			}
			if res.Changed() {
				t.Errorf("a refused reload reports changes: %+v", res)
			}
			if !slices.Equal(sas, n.SAs()) {
				t.Error("the SAs changed")
			}
			if !slices.EqualFunc(out, n.Policies(sad.Outbound), policyEqual) || !slices.EqualFunc(in, n.Policies(sad.Inbound), policyEqual) {
				t.Error("the policies changed")
			}
			if len(n.Peers()) != 1 {
				t.Errorf("peers %v", n.Peers())
			}
			seq++
			if got, _ := fixture.SealSeq(n.SAD().Outbound(fixture.SPIAtoB), 0); got != seq {
				t.Errorf("seq %d after the refused reload, want %d", got, seq)
			}
		})
	}
	// And what runs still reloads as nothing.
	if res, err := n.Reload(base); err != nil || res.Changed() {
		t.Errorf("reload of the running config: %+v %v", res, err)
	}
}

func policyEqual(a, b spd.Policy) bool {
	return a.Name == b.Name && a.Dir == b.Dir && a.Action == b.Action && a.SPI == b.SPI && slices.Equal(a.Selectors, b.Selectors)
}

// TestReloadKeyMoves: a key that moves to a new SPI is deleted from the
// old one first, and continues right after the numbers it used there;
// keys that swap between two SAs are applied (one deleted and added, the
// other updated) and each continues above what it used.
func TestReloadKeyMoves(t *testing.T) {
	n, cfg := startA(t)
	c := cloneConfig(cfg.Config)
	i := indexOfSA(c, sad.Outbound, fixture.SPIAtoB)
	var last uint32
	for range 5 {
		last, _ = fixture.SealSeq(n.SAD().Outbound(fixture.SPIAtoB), 0)
	}
	c.SAs[i].Params.SPI = 0xb0f1
	c.SAs[i].Name = "moved"
	pi := slices.IndexFunc(c.Policies, func(p spd.Policy) bool { return p.SPI == fixture.SPIAtoB })
	c.Policies[pi].SPI = 0xb0f1
	res, err := n.Reload(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 1 || res.Deleted[0].SPI != fixture.SPIAtoB || len(res.Added) != 1 || res.Added[0].SPI != 0xb0f1 || !res.Policies {
		t.Fatalf("result %+v", res)
	}
	if n.SAD().Outbound(fixture.SPIAtoB) != nil {
		t.Fatal("the old SPI is still there")
	}
	if got, _ := fixture.SealSeq(n.SAD().Outbound(0xb0f1), 0); got != last+1 {
		t.Errorf("the moved key starts at %d, want %d", got, last+1)
	}

	// A second gcm SA with its own key, then the two swap keys.
	k3 := node.SAConfig{Config: c.SAs[i].Config, Path: "sa[9]"}
	k3.Name, k3.Params.SPI = "third", 0xb0f2
	k3.Params.EncKey = slices.Clone(k3.Params.EncKey)
	k3.Params.EncKey[0] ^= 0xff
	c.SAs = append(c.SAs, k3)
	if res, err := n.Reload(c); err != nil || len(res.Added) != 1 || len(res.Updated)+len(res.Deleted) != 0 || res.Policies {
		t.Fatalf("adding the third SA: %+v %v", res, err)
	}
	seqK1, _ := fixture.SealSeq(n.SAD().Outbound(0xb0f1), 0)
	var seqK3 uint32
	for range 3 {
		seqK3, _ = fixture.SealSeq(n.SAD().Outbound(0xb0f2), 0)
	}
	j := len(c.SAs) - 1
	c = cloneConfig(c)
	c.SAs[i].Params.EncKey, c.SAs[j].Params.EncKey = c.SAs[j].Params.EncKey, c.SAs[i].Params.EncKey
	res, err = n.Reload(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Updated) != 2 || len(res.Added)+len(res.Deleted) != 0 || res.Policies {
		t.Fatalf("swap: %+v", res)
	}
	if got, _ := fixture.SealSeq(n.SAD().Outbound(0xb0f2), 0); got != seqK1+1 {
		t.Errorf("key 1 on its new SPI: seq %d, want %d", got, seqK1+1)
	}
	// Key 3 left 0xb0f2 through UpdateSA, which keeps its durable mark
	// rather than its exact number: above, not necessarily next.
	if got, _ := fixture.SealSeq(n.SAD().Outbound(0xb0f1), 0); got <= seqK3 {
		t.Errorf("key 3 on its new SPI: seq %d, not above %d", got, seqK3)
	}
	for _, spi := range []uint32{0xb0f1, 0xb0f2} {
		enc, _, _ := n.SAKeys(sad.Outbound, spi)
		want := c.SAs[indexOfSA(c, sad.Outbound, spi)].Params.EncKey
		if string(enc) != string(want) {
			t.Errorf("SPI %#x has the wrong key", spi)
		}
	}
}

// TestReloadNeedsRestart: what Reload does not apply is reported and left
// as it runs.
func TestReloadNeedsRestart(t *testing.T) {
	n, cfg := startA(t)
	c := cloneConfig(cfg.Config)
	c.TUN.MTU = 1380
	c.StateDir = "/elsewhere"
	c.Underlay.UDPPort = 4501
	c.Role = node.RoleGateway
	res, err := n.Reload(c)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"state_dir: " + cfg.StateDir + " -> /elsewhere", "tun.mtu: 1400 -> 1380", "underlay.udp_port: 4500 -> 4501"}
	if res.Changed() || !slices.Equal(res.NeedsRestart, want) {
		t.Errorf("result %+v, want NeedsRestart %q", res, want)
	}
	if n.Status().StateDir != cfg.StateDir {
		t.Error("state_dir changed")
	}
	// Before Start there is nothing to reload.
	m, err := newNode(fixture.Config(t, "gateway-a.toml", t.TempDir()), zaptest.NewLogger(t), opts{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Reload(c); err == nil {
		t.Error("Reload before Start succeeded")
	}
}
