package node_test

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
)

// TestKeyShareRules holds the rules of keyuse.go on the daemon's live
// paths (what `mipsec sa add` and `sa update` call): a counter-mode key
// serves one SA of either direction, an outbound key of any suite one
// outbound SA, and a CBC key may be the key of an inbound SA too.
func TestKeyShareRules(t *testing.T) {
	cfg := fixture.Config(t, "gateway-a.toml", t.TempDir())
	d, err := newNode(cfg, zaptest.NewLogger(t), opts{reserver: seqstore.ReserverOptions{InitialChunk: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	byspi := map[uint32]sad.Config{}
	for _, s := range cfg.SAs {
		byspi[s.Params.SPI] = s.Config
	}
	gcmOut, gcmIn, cbcOut := byspi[0xb001], byspi[0xa001], byspi[0xb006]
	if !gcmOut.Params.Algorithm.CounterMode() || cbcOut.Params.Algorithm.CounterMode() || gcmIn.Dir != sad.Inbound {
		t.Fatalf("testdata/gateway-a.toml changed: %+v %+v %+v", gcmOut, gcmIn, cbcOut)
	}
	with := func(c sad.Config, dir sad.Direction, spi uint32, keyOf sad.Config) sad.Config {
		c.Dir, c.Params.SPI, c.Name = dir, spi, ""
		c.Params.Algorithm, c.Params.EncKey, c.Params.AuthKey = keyOf.Params.Algorithm, keyOf.Params.EncKey, keyOf.Params.AuthKey
		return c
	}
	for _, tc := range []struct {
		name string
		op   func() error
		want string // "" when allowed
	}{
		{"inbound SA with an outbound GCM key", func() error { return d.AddSA(with(gcmIn, sad.Inbound, 0xa0f1, gcmOut)) }, "same nonces"},
		{"outbound SA with an inbound GCM key", func() error { return d.AddSA(with(gcmOut, sad.Outbound, 0xb0f1, gcmIn)) }, "same nonces"},
		{"update an inbound SA to an outbound GCM key", func() error { return d.UpdateSA(with(gcmIn, sad.Inbound, 0xa001, gcmOut)) }, "same nonces"},
		{"second outbound SA with a CBC key", func() error { return d.AddSA(with(cbcOut, sad.Outbound, 0xb0f2, cbcOut)) }, "one SA at a time"},
		{"update an outbound SA to another outbound SA's CBC key", func() error { return d.UpdateSA(with(gcmOut, sad.Outbound, 0xb001, cbcOut)) }, "one SA at a time"},
		{"inbound SA with an outbound CBC key", func() error { return d.AddSA(with(gcmIn, sad.Inbound, 0xa0f3, cbcOut)) }, ""},
	} {
		err := tc.op()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	for _, spi := range []uint32{0xa0f1} {
		if d.SAD().Lookup(sad.Inbound, spi) != nil {
			t.Errorf("refused SA %#x is in the SAD", spi)
		}
	}
	if d.SAD().Outbound(0xb0f1) != nil || d.SAD().Outbound(0xb0f2) != nil {
		t.Error("a refused outbound SA is in the SAD")
	}
	// The refused updates changed nothing.
	holders := d.KeyHolders(node.KeyFingerprint(gcmIn.Params))
	if len(holders) != 1 || holders[0] != [2]uint32{uint32(sad.Inbound), 0xa001} {
		t.Errorf("a refused UpdateSA changed the inbound key: holders %v", holders)
	}
	if got, _ := fixture.SealSeq(d.SAD().Outbound(0xb001), 0); got != 1 {
		t.Errorf("after refused updates: seq %d, want 1", got)
	}
}

// TestKeyContinuesUnderNewSPI is the daemon-level model of the config and
// live paths: the key of 0xb001 is used, its SA deleted and the key added
// under 0xb0f0 (live), then the daemon crashes and comes back with the
// config naming 0xb001 again. Each SA's first sequence number (for GCM,
// its IV) is above every one the key used before.
func TestKeyContinuesUnderNewSPI(t *testing.T) {
	state := t.TempDir()
	cfg := fixture.Config(t, "gateway-a.toml", state)
	opts := opts{reserver: seqstore.ReserverOptions{InitialChunk: 100}}
	d, err := newNode(cfg, zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	var used uint32
	seal := func(spi uint32, n int) {
		t.Helper()
		sa := d.SAD().Outbound(spi)
		if sa == nil {
			t.Fatalf("no outbound SA %#x", spi)
		}
		for i := range n {
			seq, v := fixture.SealSeq(sa, i)
			if v == esp.DropSeqReserve {
				d.Res().Tick() // what the daemon's ticker does
				seq, v = fixture.SealSeq(sa, i)
			}
			if v != esp.OK || seq <= used {
				t.Fatalf("SA %#x sealed seq %d (%v) after the key used %d", spi, seq, v, used)
			}
			used = seq
		}
	}
	seal(0xb001, 150) // past the first chunk
	c := cfg.SAs[0].Params
	if err := d.DelSA(sad.Outbound, 0xb001); err != nil {
		t.Fatal(err)
	}
	nc := cfg.SAs[0].Config
	nc.Name, nc.Params.SPI = "moved", 0xb0f0
	if c.SPI != 0xb001 {
		t.Fatal("cfg.SAs[0] is not 0xb001")
	}
	if err := d.AddSA(nc); err != nil {
		t.Fatal(err)
	}
	seal(0xb0f0, 10)
	node.Crash(d)
	d, err = newNode(fixture.Config(t, "gateway-a.toml", state), zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	seal(0xb001, 10)
	// One state file, for the key: no per-SPI files.
	ents, _ := os.ReadDir(state)
	var files []string
	for _, e := range ents {
		files = append(files, e.Name())
	}
	if want := d.Store().Path(node.KeyFingerprint(c)); !contains(files, want) {
		t.Errorf("state dir %v lacks %s", files, want)
	}
}

func contains(names []string, path string) bool {
	for _, n := range names {
		if strings.HasSuffix(path, "/"+n) {
			return true
		}
	}
	return false
}

// TestConfigSharedKey: the config file is refused with the line of the
// second SA when two SAs share a key the daemon would refuse.
func TestConfigSharedKey(t *testing.T) {
	src, err := os.ReadFile("../testdata/gateway-a.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(src), `enc_key = "0x5b1c2d3e4f60718293a4b5c6d7e8f90a11223344"`,
		`enc_key = "0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223"`, 1)
	if s == string(src) {
		t.Fatal("testdata/gateway-a.toml changed")
	}
	_, err = config.Parse("gw.toml", []byte(s))
	if err == nil || !strings.Contains(err.Error(), "enc_key") || !strings.Contains(err.Error(), "the same key as sa[0]") ||
		!strings.Contains(err.Error(), "same nonces") || !strings.Contains(err.Error(), "gw.toml:") {
		t.Fatalf("shared GCM key: %v", err)
	}
	t.Log(err)
}
