package sad

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// testKey is an AES-128-GCM key || salt (RFC 4106 §8.1).
var testKey = []byte("0123456789abcdefSALT")

// params returns AES-128-GCM tunnel-mode parameters, ha <-> hoa.
func params(spi uint32) esp.Params {
	return esp.Params{
		SPI:       spi,
		Algorithm: esp.AES128GCM16,
		EncKey:    testKey,
		Mode:      esp.Tunnel,
		TunnelSrc: ha,
		TunnelDst: hoa,
	}
}

// anySel matches everything.
var anySel = []Selector{{}}

func cfg(dir Direction, spi uint32, sels ...Selector) Config {
	if len(sels) == 0 {
		sels = anySel
	}
	return Config{Name: fmt.Sprintf("sa-%#x", spi), Dir: dir, Params: params(spi), Selectors: sels}
}

func mustAdd(t testing.TB, db *DB, c Config) *SA {
	t.Helper()
	s, err := db.Add(c)
	if err != nil {
		t.Fatalf("Add(%v %#x): %v", c.Dir, c.Params.SPI, err)
	}
	return s
}

func TestAddErrors(t *testing.T) {
	v6 := SingleAddr(hoa)
	v4 := SingleAddr(v4a)
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   error  // errors.Is target; nil means any non-nil error
		substr string // in the message
	}{
		{"direction 0", func(c *Config) { c.Dir = 0 }, ErrInvalidConfig, "direction"},
		{"direction 9", func(c *Config) { c.Dir = 9 }, ErrInvalidConfig, "direction"},
		{"SPI 0", func(c *Config) { c.Params.SPI = 0 }, ErrInvalidConfig, "SPI 0"},
		{"no selectors", func(c *Config) { c.Selectors = nil }, ErrInvalidConfig, "no selectors"},
		{"empty selector slice", func(c *Config) { c.Selectors = []Selector{} }, ErrInvalidConfig, "no selectors"},
		{"range start without end", func(c *Config) { c.Selectors = []Selector{{Local: AddrRange{From: hoa}}} }, ErrInvalidConfig, "without an end"},
		{"range end without start", func(c *Config) { c.Selectors = []Selector{{Remote: AddrRange{To: hoa}}} }, ErrInvalidConfig, "without a start"},
		{"empty range", func(c *Config) { c.Selectors = []Selector{{Local: AddrRange{From: ha.Next(), To: ha}}} }, ErrInvalidConfig, "empty range"},
		{"invalid prefix", func(c *Config) { c.Selectors = []Selector{{Local: PrefixRange(netip.Prefix{})}} }, ErrInvalidConfig, "empty range"},
		{"mixed range", func(c *Config) { c.Selectors = []Selector{{Local: AddrRange{From: v4a, To: hoa}}} }, ErrInvalidConfig, "mixed"},
		{"mixed selector", func(c *Config) { c.Selectors = []Selector{{Local: v6, Remote: v4}} }, ErrInvalidConfig, "mixed"},
		{"zone", func(c *Config) { c.Selectors = []Selector{{Local: SingleAddr(hoa.WithZone("eth0"))}} }, ErrInvalidConfig, "zone"},
		{"empty port range", func(c *Config) { c.Selectors = []Selector{{Proto: header.ProtoUDP, LocalPort: PortsRange(9, 8)}} }, ErrInvalidConfig, "empty range"},
		{"bad port match kind", func(c *Config) { c.Selectors = []Selector{{RemotePort: Ports{Match: 7}}} }, ErrInvalidConfig, "match kind"},
		{"soft bytes > hard", func(c *Config) { c.Lifetime = Lifetime{Soft: Limits{Bytes: 2}, Hard: Limits{Bytes: 1}} }, ErrInvalidConfig, "soft bytes"},
		{"soft packets > hard", func(c *Config) { c.Lifetime = Lifetime{Soft: Limits{Packets: 2}, Hard: Limits{Packets: 1}} }, ErrInvalidConfig, "soft packets"},
		{"soft time > hard", func(c *Config) {
			c.Lifetime = Lifetime{Soft: Limits{Time: time.Hour}, Hard: Limits{Time: time.Minute}}
		}, ErrInvalidConfig, "soft time"},
		{"negative time", func(c *Config) { c.Lifetime.Soft.Time = -1 }, ErrInvalidConfig, "negative"},
		{"esp: bad key length", func(c *Config) { c.Params.EncKey = testKey[:5] }, nil, "sad: in SA"},
		{"esp: no algorithm", func(c *Config) { c.Params.Algorithm = esp.AlgInvalid }, nil, "sad: in SA"},
		{"esp: no mode", func(c *Config) { c.Params.Mode = 0 }, nil, "sad: in SA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := New(Options{})
			c := cfg(Inbound, 0x1234)
			tt.mutate(&c)
			s, err := db.Add(c)
			if err == nil {
				t.Fatalf("Add succeeded: SA %#x", s.SPI())
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if tt.want == nil && errors.Is(err, ErrInvalidConfig) {
				t.Errorf("esp error %v reported as ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("err = %q, want it to mention %q", err, tt.substr)
			}
			if db.Len() != 0 {
				t.Errorf("Len = %d after a failed Add", db.Len())
			}
		})
	}
}

func TestAddValidLifetimes(t *testing.T) {
	for _, lt := range []Lifetime{
		{},
		{Soft: Limits{Bytes: 5}}, // soft only
		{Hard: Limits{Packets: 5}},
		{Soft: Limits{Packets: 5, Bytes: 9, Time: time.Second}, Hard: Limits{Packets: 5, Bytes: 9, Time: time.Second}}, // equal
		{Soft: Limits{Bytes: 100}, Hard: Limits{Packets: 1}},                                                           // different kinds
	} {
		db := New(Options{})
		c := cfg(Outbound, 7)
		c.Lifetime = lt
		if _, err := db.Add(c); err != nil {
			t.Errorf("Add with %+v: %v", lt, err)
		}
		db.Close()
	}
}

func TestDuplicateAndDirections(t *testing.T) {
	db := New(Options{})
	in := mustAdd(t, db, cfg(Inbound, 0x100))
	// An outbound SA may have the same SPI: the peer chose it.
	out := mustAdd(t, db, cfg(Outbound, 0x100))
	if _, err := db.Add(cfg(Inbound, 0x100)); !errors.Is(err, ErrDuplicateSPI) {
		t.Errorf("duplicate inbound: err = %v", err)
	}
	if _, err := db.Add(cfg(Outbound, 0x100)); !errors.Is(err, ErrDuplicateSPI) {
		t.Errorf("duplicate outbound: err = %v", err)
	}
	if db.Inbound(0x100) != in || db.Outbound(0x100) != out {
		t.Error("lookups do not keep the directions apart")
	}
	if db.Lookup(Inbound, 0x100) != in || db.Lookup(Outbound, 0x100) != out || db.Lookup(0, 0x100) != nil {
		t.Error("Lookup")
	}
	if db.Inbound(0x101) != nil || db.Inbound(0) != nil || db.Outbound(0) != nil {
		t.Error("lookup of an absent SPI found something")
	}
	if db.Len() != 2 {
		t.Errorf("Len = %d", db.Len())
	}
	if in.Dir() != Inbound || out.Dir() != Outbound || in.SPI() != 0x100 || in.Name() != "sa-0x100" {
		t.Error("accessors")
	}
}

func TestParamsWithoutKeys(t *testing.T) {
	db := New(Options{})
	c := cfg(Outbound, 0x200)
	c.Params.ESN = true
	c.Params.ReplayWindow = 64
	s := mustAdd(t, db, c)
	p := s.Params()
	if p.EncKey != nil || p.AuthKey != nil {
		t.Error("Params() exposes the keys")
	}
	want := c.Params
	want.EncKey = nil
	if p.SPI != want.SPI || p.ESN != want.ESN || p.Mode != want.Mode || p.TunnelDst != want.TunnelDst || p.ReplayWindow != 64 || p.Algorithm != want.Algorithm {
		t.Errorf("Params() = %+v, want %+v", p, want)
	}
	if s.Mode() != esp.Tunnel {
		t.Errorf("Mode = %v", s.Mode())
	}
	if !slices.Equal(testKey, []byte("0123456789abcdefSALT")) {
		t.Error("the caller's key slice was modified")
	}
}

func TestSelectorsAreCopied(t *testing.T) {
	db := New(Options{})
	sels := []Selector{{Local: SingleAddr(hoa), Remote: SingleAddr(ha)}}
	s := mustAdd(t, db, cfg(Inbound, 0x300, sels...))
	sels[0].Local = AnyAddr
	got := s.Selectors()
	if got[0].Local != SingleAddr(hoa) {
		t.Fatal("the SA shares the caller's selector slice")
	}
	got[0].Remote = AnyAddr
	if s.Selectors()[0].Remote != SingleAddr(ha) {
		t.Fatal("Selectors() returns the SA's own slice")
	}
	q, ok := db.SelectorsOf(Inbound, 0x300)
	if !ok || len(q) != 1 || q[0].Remote != SingleAddr(ha) {
		t.Fatalf("SelectorsOf = %v, %v", q, ok)
	}
	q[0].Remote = AnyAddr
	if s.sels[0].Remote != SingleAddr(ha) {
		t.Fatal("SelectorsOf returns the SA's own slice")
	}
	if _, ok := db.SelectorsOf(Outbound, 0x300); ok {
		t.Error("SelectorsOf found the SPI in the wrong direction")
	}
}

func TestDelete(t *testing.T) {
	db := New(Options{})
	a := mustAdd(t, db, cfg(Outbound, 0x10))
	b := mustAdd(t, db, cfg(Outbound, 0x11))
	a.drops[esp.DropReplay].Add(3) // something to keep
	got, err := db.Delete(Outbound, 0x10)
	if err != nil || got != a {
		t.Fatalf("Delete = %p, %v; want %p", got, err, a)
	}
	if !a.Expired() {
		t.Error("deleted SA not expired")
	}
	if db.Outbound(0x10) != nil {
		t.Error("deleted SA still found")
	}
	if db.Outbound(0x11) != b || b.Expired() {
		t.Error("Delete disturbed another SA")
	}
	var buf pkt.Buf
	buf.Reset()
	buf.Set(ip6(hoa, cn, udp(1, 2, 30)))
	if v := a.Seal(&buf); v != esp.DropExpired {
		t.Errorf("Seal on a deleted SA = %v", v)
	}
	st := a.Stats()
	if st.Drops[esp.DropReplay] != 3 || st.Drops[esp.DropExpired] != 1 {
		t.Errorf("stats of the deleted SA: %+v", st)
	}
	if _, err := db.Delete(Outbound, 0x10); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := db.Delete(Inbound, 0x11); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete in the wrong direction: %v", err)
	}
	if _, err := db.Delete(0, 0x11); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete with direction 0: %v", err)
	}
	if db.Len() != 1 {
		t.Errorf("Len = %d", db.Len())
	}
	// The SPI can be used again.
	mustAdd(t, db, cfg(Outbound, 0x10))
}

func TestReplace(t *testing.T) {
	db := New(Options{})
	old := mustAdd(t, db, cfg(Inbound, 0x20, Selector{Remote: SingleAddr(hoa)}))
	other := mustAdd(t, db, cfg(Inbound, 0x21))
	c := cfg(Inbound, 0x20, Selector{Remote: SingleAddr(cn)})
	c.Name = "rekeyed"
	s, o, err := db.Replace(c)
	if err != nil || o != old {
		t.Fatalf("Replace = %v, %v, %v", s, o, err)
	}
	if db.Inbound(0x20) != s || s.Name() != "rekeyed" {
		t.Error("new SA not found")
	}
	if !old.Expired() || s.Expired() {
		t.Error("old SA alive or new one dead")
	}
	if db.Inbound(0x21) != other || db.Len() != 2 {
		t.Error("Replace disturbed another SA")
	}
	if a, ok := db.HomeAddressOf(0x20); !ok || a != cn {
		t.Errorf("HomeAddressOf after Replace = %v, %v", a, ok)
	}
	if _, _, err := db.Replace(cfg(Inbound, 0x99)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Replace of a missing SA: %v", err)
	}
	if _, _, err := db.Replace(cfg(Outbound, 0x21)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Replace in the wrong direction: %v", err)
	}
	bad := cfg(Inbound, 0x21)
	bad.Selectors = nil
	if _, _, err := db.Replace(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Replace with a bad config: %v", err)
	}
	if db.Inbound(0x21) != other {
		t.Error("a failed Replace changed the DB")
	}
}

// A hard-expired SA whose event is not yet handled does not block its SPI.
func TestAddOverExpired(t *testing.T) {
	db := New(Options{})
	old := mustAdd(t, db, cfg(Outbound, 0x30, Selector{Remote: SingleAddr(ha)}))
	old.kill() // as expire does, before the event goroutine reaps it
	if db.Outbound(0x30) != nil {
		t.Fatal("dead SA still found")
	}
	s := mustAdd(t, db, cfg(Outbound, 0x30, Selector{Remote: SingleAddr(ha)}))
	if db.Outbound(0x30) != s || db.Len() != 1 {
		t.Fatal("new SA not in place of the dead one")
	}
	db.reap(old) // the late event must not remove the new SA
	if db.Outbound(0x30) != s || db.Len() != 1 {
		t.Fatal("reaping the old SA removed the new one")
	}
	if spi, ok := db.OutboundSPIFor(&header.Flow{Src: hoa, Dst: ha}); !ok || spi != 0x30 {
		t.Errorf("OutboundSPIFor = %#x, %v", spi, ok)
	}
	if len(db.remote[ha]) != 1 {
		t.Errorf("remote index holds %d SAs for %v", len(db.remote[ha]), ha)
	}
}

func TestListAndClose(t *testing.T) {
	db := New(Options{})
	for _, spi := range []uint32{9, 3, 0xfffffffe, 5} {
		mustAdd(t, db, cfg(Inbound, spi))
		mustAdd(t, db, cfg(Outbound, spi+1))
	}
	var got []string
	for _, s := range db.List() {
		got = append(got, fmt.Sprintf("%v/%#x", s.Dir(), s.SPI()))
	}
	want := []string{"out/0x4", "out/0x6", "out/0xa", "out/0xffffffff", "in/0x3", "in/0x5", "in/0x9", "in/0xfffffffe"}
	if !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	all := db.List()
	db.Close()
	for _, s := range all {
		if !s.Expired() {
			t.Errorf("%v/%#x alive after Close", s.Dir(), s.SPI())
		}
	}
	if db.Len() != 0 || len(db.List()) != 0 || db.Inbound(9) != nil {
		t.Error("SAs left after Close")
	}
	if _, err := db.Add(cfg(Inbound, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	if _, _, err := db.Replace(cfg(Inbound, 9)); !errors.Is(err, ErrClosed) {
		t.Errorf("Replace after Close: %v", err)
	}
}

// TestDBConcurrent: packet-path readers while writers add, delete and
// replace. Run with -race.
func TestDBConcurrent(t *testing.T) {
	db := New(Options{})
	const stable = 32
	for spi := uint32(1); spi <= stable; spi++ {
		mustAdd(t, db, cfg(Inbound, spi))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for !stop.Load() {
				spi := 1 + r.Uint32N(stable)
				if s := db.Inbound(spi); s != nil && s.SPI() != spi {
					bad.Add(1)
				}
				spi = 100 + r.Uint32N(2000)
				if s := db.Inbound(spi); s != nil {
					if s.SPI() != spi {
						bad.Add(1)
					}
					_ = s.Stats()
				}
				_, _ = db.HomeAddressOf(spi)
			}
		}()
	}
	var wwg sync.WaitGroup
	for w := range 2 {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for range 3000 {
				spi := 100 + r.Uint32N(2000)
				switch r.IntN(3) {
				case 0:
					_, _ = db.Add(cfg(Inbound, spi, Selector{Remote: SingleAddr(hoa)}))
				case 1:
					_, _ = db.Delete(Inbound, spi)
				default:
					_, _, _ = db.Replace(cfg(Inbound, 1+r.Uint32N(stable)))
				}
			}
		}()
	}
	wwg.Wait()
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d lookups returned an SA with another SPI", bad.Load())
	}
	for spi := uint32(1); spi <= stable; spi++ {
		if db.Inbound(spi) == nil {
			t.Errorf("stable SA %d lost", spi)
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	db := New(Options{})
	for spi := uint32(1); spi <= 1000; spi++ {
		mustAdd(t, db, cfg(Inbound, spi*2654435761))
	}
	var sink *SA
	k := uint32(7)
	n := testing.AllocsPerRun(1000, func() {
		sink = db.Inbound(k * 2654435761)
		sink = db.Outbound(7)
	})
	_ = sink
	if n != 0 {
		t.Errorf("lookup allocates %v times", n)
	}
}

// TestManySAs adds a million SAs through the index the DB uses and checks
// that it stays fast (no O(n) work per insert). The SAs are built first,
// without esp state: their construction (and, on a VM, the page faults of
// half a gigabyte of SAs) is not what is measured.
func TestManySAs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	n := 1_000_000
	if raceEnabled {
		n = 100_000
	}
	db := New(Options{})
	sas := make([]SA, n)
	r := rand.New(rand.NewPCG(5, 5))
	for i := range sas {
		sas[i].spi = r.Uint32() | 1
		sas[i].dir = Inbound
		sas[i].wideIdx = -1
	}
	start := time.Now()
	db.mu.Lock()
	for i := range sas {
		s := &sas[i]
		if _, old := db.in.find(s.spi); old != nil {
			continue
		}
		db.in.insert(s)
		s.linked = true
	}
	db.mu.Unlock()
	el := time.Since(start)
	t.Logf("%d inserts in %v (%v each), %d slots", n, el, el/time.Duration(n), db.in.t.Slots())
	if !raceEnabled && el > 5*time.Second {
		t.Errorf("adding %d SAs took %v", n, el)
	}
	for i := range sas {
		if s := &sas[i]; s.linked && db.Inbound(s.spi) != s {
			t.Fatalf("SA %#x not found", s.spi)
		}
	}
}

// An IKEv2 Child SA may be negotiated for an IPv4 and an IPv6 traffic
// selector pair at once (RFC 7296 §2.9): the SA holds both sets and checks
// each packet against the set of its family; one set never mixes them.
func TestSelectorSetsOfBothFamilies(t *testing.T) {
	db := New(Options{})
	v4l, v4r := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")
	s := mustAdd(t, db, cfg(Inbound, 0x310,
		Selector{Local: SingleAddr(v4l), Remote: SingleAddr(v4r)},
		Selector{Local: SingleAddr(hoa), Remote: SingleAddr(ha)}))
	for _, c := range []struct {
		f    header.Flow
		want bool
	}{
		{header.Flow{Src: v4r, Dst: v4l}, true},
		{header.Flow{Src: ha, Dst: hoa}, true},
		{header.Flow{Src: v4l, Dst: v4r}, false},
		{header.Flow{Src: ha, Dst: ha}, false},
	} {
		if got := s.matches(&c.f); got != c.want {
			t.Errorf("%v -> %v: matches = %v, want %v", c.f.Src, c.f.Dst, got, c.want)
		}
	}
	if _, err := db.Add(cfg(Inbound, 0x311, Selector{Local: SingleAddr(v4l), Remote: SingleAddr(ha)})); err == nil {
		t.Error("a selector set with an IPv4 local and an IPv6 remote address was accepted")
	}
}
