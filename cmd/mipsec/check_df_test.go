package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
)

// TestDFWarnings: mipsec check names the df settings the wire cannot show
// (transport mode, IPv6 tunnel endpoints) and nothing else.
func TestDFWarnings(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	sa := func(path string, dir sad.Direction, mode esp.Mode, src, dst netip.Addr, df esp.DF) node.SAConfig {
		return node.SAConfig{Path: path, Config: sad.Config{Dir: dir, Params: esp.Params{
			SPI: 0x1000 + uint32(len(path)), Mode: mode, TunnelSrc: src, TunnelDst: dst, DF: df,
		}}}
	}
	cfg := &config.File{}
	cfg.Role = node.RoleHA
	cfg.SAs = []node.SAConfig{
		sa("sa[0]", sad.Outbound, esp.Tunnel, v4a, v4b, esp.DFClear),      // honoured
		sa("sa[1]", sad.Outbound, esp.Tunnel, v6a, v6b, esp.DFCopy),       // default
		sa("sa[22]", sad.Outbound, esp.Tunnel, v6a, v6b, esp.DFSet),       // no DF bit
		sa("sa[333]", sad.Outbound, esp.Transport, v4a, v4b, esp.DFClear), // transport
		sa("sa[4444]", sad.Inbound, esp.Transport, v4a, v4b, esp.DFClear), // inbound: no effect either way
	}
	ws := dfWarnings(cfg)
	if len(ws) != 2 {
		t.Fatalf("got %d warnings, want 2:\n%s", len(ws), strings.Join(ws, "\n"))
	}
	if !strings.HasPrefix(ws[0], "sa[22] ") || !strings.Contains(ws[0], "IPv6 header has no DF bit") || !strings.Contains(ws[0], "DF set (ARCHITECTURE.md DR-8)") {
		t.Errorf("IPv6 endpoints: %s", ws[0])
	}
	if !strings.HasPrefix(ws[1], "sa[333] ") || !strings.Contains(ws[1], "transport mode") {
		t.Errorf("transport: %s", ws[1])
	}
}
