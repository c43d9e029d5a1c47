package main

import (
	"fmt"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
)

// dfWarnings says where an outbound SA's df = "set" or "clear" cannot be
// what the wire shows: only an IPv4 outer header has a DF bit, and only a
// tunnel-mode SA with IPv4 endpoints builds one (RFC 4301 §8.1; esp.DF,
// config/doc.go "DF").
func dfWarnings(cfg *config.File) []string {
	var out []string
	for _, s := range cfg.SAs {
		p := s.Params
		if p.DF == esp.DFCopy || s.Dir == sad.Inbound {
			continue
		}
		rule := "set"
		if p.DF == esp.DFClear {
			rule = "clear"
		}
		name := node.SAName(s.Dir, p.SPI)
		switch {
		case p.Mode == esp.Transport:
			out = append(out, fmt.Sprintf("%s (%s): df = %q has no effect in transport mode: the packet keeps its own header (an IPv4 one its own DF bit)", s.Path, name, rule))
		case p.TunnelSrc.Is6():
			w := fmt.Sprintf("%s (%s): df = %q has no effect: the tunnel endpoints are IPv6, and an IPv6 header has no DF bit", s.Path, name, rule)
			if cfg.Role == node.RoleHA || cfg.Role == node.RoleMN {
				w += "; sent to an IPv4 care-of address its packets get an IPv4 header with DF set (ARCHITECTURE.md DR-8)"
			}
			out = append(out, w)
		}
	}
	return out
}
