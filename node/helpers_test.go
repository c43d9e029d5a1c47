package node_test

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/pkt"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
)

// The sites of testdata/gateway-a.toml and gateway-b.toml.
var (
	hostA = netip.MustParseAddr("192.0.2.10")
	hostB = netip.MustParseAddr("192.0.2.200")
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

// withStateDir copies the config file src with state_dir set to stateDir.
func withStateDir(t *testing.T, src, stateDir string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "\nstate_dir = ")
	if i < 0 {
		t.Fatalf("%s has no state_dir", src)
	}
	j := strings.Index(s[i+1:], "\n")
	s = s[:i+1] + `state_dir = "` + stateDir + `"` + s[i+1+j:]
	file := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// gatewayConfig loads testdata/NAME with its state in stateDir.
func gatewayConfig(t *testing.T, name, stateDir string) *config.File {
	t.Helper()
	cfg, err := config.Load(withStateDir(t, "../testdata/"+name, stateDir))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// icmpEcho builds an IPv4 ICMP echo request of total length n.
func icmpEcho(src, dst netip.Addr, n int, seq uint16) []byte {
	p := make([]byte, n)
	header.IPv4(p).Encode(&header.IPv4Fields{TotalLen: uint16(n), TTL: 64, Protocol: header.ProtoICMP, Src: src, Dst: dst, Flags: header.IPv4FlagDF})
	icmp := p[header.IPv4MinHeaderLen:]
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[6:], seq)
	c := ^header.Checksum(icmp, 0)
	binary.BigEndian.PutUint16(icmp[2:], c)
	return p
}

// sealSeq seals one packet with sa and returns the ESP sequence number it
// carries, or the verdict.
func sealSeq(sa *sad.SA, i int) (uint32, esp.Verdict) {
	b := pkt.Get()
	defer pkt.Put(b)
	b.Set(icmpEcho(hostA, hostB, 100, uint16(i)))
	if v := sa.Seal(b); v != esp.OK {
		return 0, v
	}
	e := b.Bytes()[header.IPv4MinHeaderLen:]
	return binary.BigEndian.Uint32(e[4:8]), esp.OK
}

// The addresses of testdata/ha.toml and mn.toml.
var (
	topoHoA = netip.MustParseAddr("2001:db8:1::100")
	topoHA  = netip.MustParseAddr("2001:db8:1::1")
	topoHA4 = netip.MustParseAddr("198.51.100.1")
	topoCN  = netip.MustParseAddr("2001:db8:1::10")
)
