package node_test

import (
	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/seqstore"
)

// The fixtures shared with cmd/mipsec's tests (internal/fixture) under the
// names the IKE tests use.
var (
	hostA, hostB = fixture.HostA, fixture.HostB
	icmpEcho     = fixture.ICMPEcho
	eventually   = fixture.Eventually
)

// opts are the node.Config seams the tests set.
type opts struct {
	device   tun.Device
	conn     dataplane.Underlay
	store    seqstore.Options
	reserver seqstore.ReserverOptions
	workers  int
	host     node.Host
}

// newNode builds the node of cfg with o's seams.
func newNode(cfg *config.File, log *zap.Logger, o opts) (*node.Node, error) {
	c := cfg.Config
	c.Logger = log
	c.Device, c.Conn = o.device, o.conn
	c.SeqStore, c.Reservations = o.store, o.reserver
	c.Workers = o.workers
	c.Host = o.host
	return node.New(c)
}
