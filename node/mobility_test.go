package node_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/internal/netcfg"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
)

// fakeHomeLink records the HomeLink calls of the HA.
type fakeHomeLink struct {
	mu      sync.Mutex
	live    map[netip.Addr]bool
	adds    int
	removes int
	closed  bool
}

func (f *fakeHomeLink) Add(a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[a] = true
	f.adds++
	return nil
}

func (f *fakeHomeLink) Remove(a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, a)
	f.removes++
	return nil
}

func (f *fakeHomeLink) has(a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[a]
}

// fakeWatcher hands the MN a list of addresses, like netcfg.AddrWatcher.
type fakeWatcher struct {
	mu     sync.Mutex
	fn     func([]netip.Addr)
	closed bool
}

func (w *fakeWatcher) report(addrs ...netip.Addr) {
	w.mu.Lock()
	fn := w.fn
	w.mu.Unlock()
	fn(addrs)
}

func (w *fakeWatcher) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return nil
}

// udp6 builds an IPv6/UDP packet (checksum left zero: nothing here checks
// it) with payload n bytes of id.
func udp6(src, dst netip.Addr, n int, id byte) []byte {
	p := make([]byte, header.IPv6HeaderLen+8+n)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(8+n))
	p[6] = header.ProtoUDP
	p[7] = 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	u := p[header.IPv6HeaderLen:]
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], 5001)
	binary.BigEndian.PutUint16(u[4:], uint16(8+n))
	for i := range n {
		u[8+i] = id
	}
	return p
}

// testSAD is a SAD holding cfg's SAs, closed when t ends.
func testSAD(t *testing.T, cfg *config.File) *sad.DB {
	t.Helper()
	db := sad.New(sad.Options{})
	t.Cleanup(db.Close)
	for _, s := range cfg.SAs {
		if _, err := db.Add(s.Config); err != nil {
			t.Fatalf("%s: %v", s.Path, err)
		}
	}
	return db
}

// TestMobilityBackToBack runs examples/ha.toml and mn.toml over the
// in-memory TUN and underlay: the MN's watcher reports its IPv6 care-of
// address, the MN registers (BU on SA1 through Inject with a Home Address
// option, BA on SA2 back through the type 2 routing header), the HA installs
// the home link entries, data from a CN to the home address reaches the MN
// at its care-of address (DR-1), the control commands show it, and the
// MN's shutdown de-registers it.
func TestMobilityBackToBack(t *testing.T) {
	coa := netip.MustParseAddr("2001:db8:2::100")
	haCfg := fixture.Config(t, "ha.toml", t.TempDir())
	mnCfg := fixture.Config(t, "mn.toml", t.TempDir())
	uHA, uMN := underlaytest.NewPair(
		endpoint.Endpoint{Addr: netip.AddrPortFrom(fixture.HA, 0)},
		endpoint.Endpoint{Addr: netip.AddrPortFrom(coa, 0)})
	uHA.SetAddrs(fixture.HA4)
	tunHA, tunMN := tuntest.New(1, 64), tuntest.New(1, 64)

	hl := &fakeHomeLink{live: map[netip.Addr]bool{}}
	haOpts := opts{workers: 2, device: tunHA, conn: uHA}
	haOpts.host.HomeLink = func(mc node.MobilityConfig, tun string) (mip6.HomeLink, func() error, error) {
		return hl, func() error { hl.closed = true; return nil }, nil
	}
	// The HA installs the Parameter Problem filter at start and removes
	// it at close; the MN finds no nft and only warns.
	var ppInstalled, ppRemoved atomic.Int32
	haOpts.host.ParamProblems = func() (func() error, error) {
		ppInstalled.Add(1)
		return func() error { ppRemoved.Add(1); return nil }, nil
	}
	ha, err := newNode(haCfg, zaptest.NewLogger(t).Named("HA"), haOpts)
	if err != nil {
		t.Fatal(err)
	}
	haEvents, _ := ha.Subscribe(16)
	if err := ha.Start(); err != nil {
		t.Fatal(err)
	}
	defer ha.Close()

	w := &fakeWatcher{}
	mnOpts := opts{workers: 2, device: tunMN, conn: uMN}
	mnOpts.host.ParamProblems = func() (func() error, error) {
		return nil, fmt.Errorf("%w: test", netcfg.ErrNoNft)
	}
	mnOpts.host.WatchAddrs = func(mc node.MobilityConfig, tun string, fn func([]netip.Addr)) (io.Closer, error) {
		if tun != "mipsec0" && tun == "" {
			t.Errorf("watch: TUN %q", tun)
		}
		w.mu.Lock()
		w.fn = fn
		w.mu.Unlock()
		return w, nil
	}
	mn, err := newNode(mnCfg, zaptest.NewLogger(t).Named("MN"), mnOpts)
	if err != nil {
		t.Fatal(err)
	}
	mnEvents, _ := mn.Subscribe(16)
	if err := mn.Start(); err != nil {
		t.Fatal(err)
	}
	closedMN := false
	defer func() {
		if !closedMN {
			mn.Close()
		}
	}()

	// Movement detection: link-local and loopback are no CoA; the global
	// IPv6 address wins.
	w.report(netip.MustParseAddr("fe80::1"), coa)
	eventually(t, "the MN's registration", func() bool {
		st, err := mn.MNStatus()
		return err == nil && st.RegisteredCoA == coa
	})
	eventually(t, "the HA's binding", func() bool {
		bs, _ := ha.Bindings()
		return len(bs) == 1 && bs[0].HoA == fixture.HoA && len(bs[0].CoAs) > 0 && bs[0].CoAs[0].Addr == coa
	})
	eventually(t, "the home link entry", func() bool { return hl.has(fixture.HoA) })

	// DR-1: CN -> HoA leaves the HA to the CoA and reaches the MN's TUN.
	tunHA.Outbound <- udp6(fixture.CN, fixture.HoA, 100, 7)
	select {
	case p := <-tunMN.Inbound:
		if len(p) != header.IPv6HeaderLen+108 || p[len(p)-1] != 7 {
			t.Fatalf("MN got %x", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("CN -> HoA not delivered; HA %+v\nMN %+v", ha.Stats().Drops, mn.Stats().Drops)
	}
	// And back: HoA -> CN from the MN's TUN to the HA's.
	tunMN.Outbound <- udp6(fixture.HoA, fixture.CN, 50, 9)
	select {
	case p := <-tunHA.Inbound:
		if p[len(p)-1] != 9 {
			t.Fatalf("HA got %x", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("HoA -> CN not delivered; HA %+v\nMN %+v", ha.Stats().Drops, mn.Stats().Drops)
	}

	// The control commands see it.
	bs, err := ha.Bindings()
	if err != nil || len(bs) != 1 {
		t.Fatalf("Bindings = %v, %v", bs, err)
	}
	if b := bs[0]; b.HoA != fixture.HoA || len(b.CoAs) == 0 || !b.CoAs[0].Primary || b.CoAs[0].NAT {
		t.Errorf("binding %+v", b)
	}
	if st, _ := mn.MNStatus(); st.RegisteredCoA != coa || st.NAT {
		t.Errorf("mn status %+v", st)
	}
	// The events a key manager sees.
	select {
	case ev := <-haEvents:
		if b, ok := ev.(node.BindingChanged); !ok || b.Change != node.BindingAdded || b.HoA != fixture.HoA || b.CoA != coa {
			t.Errorf("HA's first event %#v, want the binding added", ev)
		}
	case <-time.After(5 * time.Second):
		t.Error("no HA event")
	}
	select {
	case ev := <-mnEvents:
		if r, ok := ev.(node.Registered); !ok || r.CoA != coa {
			t.Errorf("MN's first event %#v, want Registered", ev)
		}
	case <-time.After(5 * time.Second):
		t.Error("no MN event")
	}
	if _, err := mn.Bindings(); !errors.Is(err, node.ErrNotHA) {
		t.Errorf("MN Bindings = %v, want node.ErrNotHA", err)
	}
	if _, err := ha.MNStatus(); !errors.Is(err, node.ErrNotMN) {
		t.Errorf("HA MNStatus = %v, want node.ErrNotMN", err)
	}
	if err := ha.MNMove(coa); !errors.Is(err, node.ErrNotMN) {
		t.Errorf("HA MNMove = %v, want node.ErrNotMN", err)
	}
	if err := mn.MNMove(netip.MustParseAddr("ff02::1")); err == nil {
		t.Error("MNMove to a multicast address accepted")
	}
	// Metrics.
	hm, ok := ha.MobilityMetrics()
	if !ok || hm.Bindings != 1 || hm.HA.BUAccepted == 0 || hm.HA.BAsSent == 0 || hm.BindingEvents["added"] != 1 {
		t.Errorf("HA metrics %+v", hm)
	}
	mm, ok := mn.MobilityMetrics()
	if !ok || mm.MN.BUsSent == 0 || mm.MN.BAsAccepted == 0 || !mm.Registered || mm.NAT {
		t.Errorf("MN metrics %+v", mm)
	}

	// Shutdown de-registers (lifetime 0) before the dataplane closes; the
	// HA removes the binding and the home link entries.
	closedMN = true
	if err := mn.Close(); err != nil {
		t.Errorf("MN Close: %v", err)
	}
	if !w.closed {
		t.Error("the watcher was not closed")
	}
	eventually(t, "the de-registration", func() bool {
		bs, _ := ha.Bindings()
		return len(bs) == 0 && !hl.has(fixture.HoA)
	})
	if err := ha.Close(); err != nil {
		t.Errorf("HA Close: %v", err)
	}
	if !hl.closed {
		t.Error("the home link was not closed")
	}
	if i, r := ppInstalled.Load(), ppRemoved.Load(); i != 1 || r != 1 {
		t.Errorf("Parameter Problem filter installed %d times, removed %d; want 1 and 1", i, r)
	}
}

// TestMobilityHooksNoAlloc: the hooks the daemon hands the dataplane cost
// no allocation per packet (a data packet to an unbound home address on
// the HA, the MN's AfterSeal for a data SPI), and with nothing to do they
// leave the packet and the dataplane's endpoint as they were.
func TestMobilityHooksNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are counted without -race")
	}
	for _, name := range []string{"ha", "mn"} {
		cfg := fixture.Config(t, name+".toml", t.TempDir())
		db := testSAD(t, cfg)
		m, err := node.NewMobility(&cfg.Config, db, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		h := m.Hooks()
		sa := db.Lookup(sad.Outbound, 0xb008)
		if name == "mn" {
			sa = db.Lookup(sad.Outbound, 0xa007)
		}
		b := pkt.Get()
		data := udp6(fixture.HA, fixture.HoA, 64, 1)
		ep := endpoint.Endpoint{Addr: netip.AddrPortFrom(fixture.HoA, 0)}
		e := &endpoint.Endpoint{}
		kept := true
		n := testing.AllocsPerRun(100, func() {
			b.Set(data)
			*e = ep
			kept = h.AfterSeal(b, sa, e) && kept
			if h.BeforeLookup != nil {
				kept = h.BeforeLookup(b, ep) && kept
			}
		})
		if !kept || *e != ep || !bytes.Equal(b.Bytes(), data) {
			t.Errorf("%s: hooks with nothing to do: ok %v, endpoint %v (was %v), packet changed %v",
				name, kept, *e, ep, !bytes.Equal(b.Bytes(), data))
		}
		pkt.Put(b)
		if n != 0 {
			t.Errorf("%s: %v allocations per packet", name, n)
		}
		if h.Deliver == nil || h.AfterSeal == nil || (name == "ha") != (h.BeforeLookup != nil) {
			t.Errorf("%s: hooks %+v", name, h)
		}
		m.Close()
	}
	if _, err := node.NewMobility(&node.Config{Role: node.RoleGateway}, nil, zaptest.NewLogger(t)); err == nil {
		t.Error("newMobility for a gateway succeeded")
	}
}

// TestMobilityMovementDetection: the watcher's reports move the MN to the
// best address (IPv6 before IPv4, mip6.ChooseCoA), a forced `mn move`
// holds until its address disappears, and reports without a usable
// address move nothing.
func TestMobilityMovementDetection(t *testing.T) {
	cfg := fixture.Config(t, "mn.toml", t.TempDir())
	db := testSAD(t, cfg)
	m, err := node.NewMobility(&cfg.Config, db, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.MN().Start(); err != nil {
		t.Fatal(err)
	}
	v6, v4 := netip.MustParseAddr("2001:db8:2::100"), netip.MustParseAddr("203.0.113.10")
	coa := func() netip.Addr { return m.MN().Status().CoA }
	m.AddrsChanged([]netip.Addr{v4})
	if coa() != v4 {
		t.Fatalf("CoA %v, want %v", coa(), v4)
	}
	m.AddrsChanged([]netip.Addr{v4, v6})
	if coa() != v6 {
		t.Fatalf("CoA %v, want the IPv6 address %v", coa(), v6)
	}
	m.AddrsChanged([]netip.Addr{netip.MustParseAddr("fe80::1"), netip.MustParseAddr("169.254.1.1")})
	if coa() != v6 {
		t.Errorf("no usable address moved the MN to %v", coa())
	}
	if err := m.Move(v4); err != nil {
		t.Fatal(err)
	}
	m.AddrsChanged([]netip.Addr{v4, v6})
	if coa() != v4 {
		t.Errorf("the watcher overrode the forced CoA: %v", coa())
	}
	m.AddrsChanged([]netip.Addr{v6}) // the forced address is gone
	if coa() != v6 {
		t.Errorf("CoA %v after the forced address went away, want %v", coa(), v6)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("ff02::1"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("255.255.255.255")} {
		if err := m.Move(bad); err == nil {
			t.Errorf("Move(%v) accepted", bad)
		}
	}
	// Going home: only an address in the home prefix is left (ChooseCoA
	// ranks the home link last).
	m.AddrsChanged([]netip.Addr{netip.MustParseAddr("2001:db8:1::100")})
	if st := m.MN().Status(); !st.Home {
		t.Errorf("an address in the home prefix did not take the MN home: %+v", st)
	}
}
