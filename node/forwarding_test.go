package node_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
)

// TestHAWarnsForwardingOff: a home agent whose kernel does not forward the
// family of a home prefix says so once, at start, in one warning naming
// the prefix and the sysctl to set; with both families forwarded, or with
// an injected TUN and no Forwarding seam (no kernel in between), it says
// nothing.
func TestHAWarnsForwardingOff(t *testing.T) {
	for _, tt := range []struct {
		name       string
		forwarding func(netip.Addr) bool // nil: node's default
		want       []string              // in the one warning; nil: none
		notWant    string
	}{
		{"IPv6 off", func(a netip.Addr) bool { return a.Is4() },
			[]string{"net.ipv6.conf.all.forwarding=1", "2001:db8:1::/64"}, "ip_forward"},
		{"both off", func(netip.Addr) bool { return false },
			[]string{"sysctl -w net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1", "192.0.2.0/24", "restart mipsec"}, ""},
		{"both on", func(netip.Addr) bool { return true }, nil, ""},
		{"injected TUN", nil, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			cfg := fixture.Config(t, "ha.toml", t.TempDir())
			ul, _ := underlaytest.NewPair(endpoint.Endpoint{Addr: netip.AddrPortFrom(fixture.HA, 0)},
				endpoint.Endpoint{Addr: netip.MustParseAddrPort("[2001:db8:2::100]:0")})
			o := opts{device: tuntest.New(1, 8), conn: ul}
			o.host.HomeLink = func(node.MobilityConfig, string) (mip6.HomeLink, func() error, error) {
				return nil, func() error { return nil }, nil
			}
			o.host.Forwarding = tt.forwarding
			n, err := newNode(cfg, zap.New(core), o)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, e := range logs.All() {
				if strings.Contains(e.Message, "forwarding") {
					lines = append(lines, e.Message+" "+strings.Join(fieldStrings(e.Context), " "))
				}
			}
			switch {
			case tt.want == nil && len(lines) != 0:
				t.Errorf("warned: %q", lines)
			case tt.want != nil && len(lines) != 1:
				t.Fatalf("%d forwarding warnings, want 1: %q", len(lines), lines)
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("warning lacks %q: %s", w, lines[0])
				}
			}
			if tt.notWant != "" && len(lines) > 0 && strings.Contains(lines[0], tt.notWant) {
				t.Errorf("warning names %q: %s", tt.notWant, lines[0])
			}
		})
	}
}

// fieldStrings writes zap fields as key=value.
func fieldStrings(fs []zapcore.Field) []string {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fs {
		f.AddTo(enc)
	}
	var out []string
	for k, v := range enc.Fields {
		out = append(out, fmt.Sprint(k, "=", v))
	}
	return out
}
