package node

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
	"github.com/mipsec/mipsec/underlay"
)

// What the external tests (package node_test, which may import config)
// see of the node's insides.

func (n *Node) Res() *seqstore.Reserver { return n.res }
func (n *Node) Store() *seqstore.Store  { return n.store }

// KeyHolders lists the SAs (dir, SPI) that hold the key of fp.
func (n *Node) KeyHolders(fp seqstore.Fingerprint) [][2]uint32 {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	var out [][2]uint32
	for _, h := range n.keyUse[fp] {
		out = append(out, [2]uint32{uint32(h.dir), h.spi})
	}
	return out
}

// Crash stops a node the way a crash or power loss would: nothing is
// flushed, only the goroutines are stopped so the test can go on.
func Crash(n *Node) {
	if n.dp != nil {
		n.dp.Close()
	}
	n.res.Close()
	n.sadb.Close()
}

// Mobility is the mobility layer for the tests.
type Mobility struct{ m *mobility }

func NewMobility(cfg *Config, db *sad.DB, log *zap.Logger) (*Mobility, error) {
	m, err := newMobility(cfg, db, log, Host{}, &events{log: log})
	if err != nil {
		return nil, err
	}
	return &Mobility{m}, nil
}

func (m *Mobility) Hooks() dataplane.Hooks      { return m.m.hooks() }
func (m *Mobility) AddrsChanged(a []netip.Addr) { m.m.addrsChanged(a) }
func (m *Mobility) Move(coa netip.Addr) error   { return m.m.Move(coa) }
func (m *Mobility) MN() *mip6.MobileNode        { return m.m.mn }
func (m *Mobility) Close() error                { return m.m.close() }

func UnderlayConfigOf(cfg *Config) underlay.Config                     { return underlayConfig(cfg) }
func LogUnderlayOpen(log *zap.Logger, cfg *Config, uc underlay.Config) { logUnderlayOpen(log, cfg, uc) }
