package control

// Wire forms of SAs and policies on the control socket (JSON) and in
// `mipsec sa add -f FILE` snippets (TOML or JSON), and their conversion to
// sad.Config and spd.Policy. Errors name the field.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// SASpec is one SA as sa.add and sa.update take it.
type SASpec struct {
	Name         string         `json:"name,omitempty" toml:"name"`
	Dir          string         `json:"dir" toml:"dir"`
	SPI          uint32         `json:"spi" toml:"spi"`
	Mode         string         `json:"mode,omitempty" toml:"mode"`
	Algorithm    string         `json:"algorithm" toml:"algorithm"`
	EncKey       string         `json:"enc_key,omitempty" toml:"enc_key"`
	AuthKey      string         `json:"auth_key,omitempty" toml:"auth_key"`
	TunnelSrc    string         `json:"tunnel_src,omitempty" toml:"tunnel_src"`
	TunnelDst    string         `json:"tunnel_dst,omitempty" toml:"tunnel_dst"`
	ESN          bool           `json:"esn,omitempty" toml:"esn"`
	ReplayWindow int            `json:"replay_window,omitempty" toml:"replay_window"`
	NoReplay     bool           `json:"no_replay,omitempty" toml:"no_replay"`
	HopLimit     uint8          `json:"hop_limit,omitempty" toml:"hop_limit"`
	DF           string         `json:"df,omitempty" toml:"df"` // copy (default), set, clear
	Selectors    []SelectorSpec `json:"selectors,omitempty" toml:"selectors"`
	Lifetime     *LifetimeSpec  `json:"lifetime,omitempty" toml:"lifetime"`
}

// SelectorSpec is one selector set: addresses as "any", an address, a
// prefix or "from-to"; proto as a number or a name; ports as "any",
// "opaque", "80" or "1000-2000".
type SelectorSpec struct {
	Local      string `json:"local,omitempty" toml:"local"`
	Remote     string `json:"remote,omitempty" toml:"remote"`
	Proto      string `json:"proto,omitempty" toml:"proto"`
	LocalPort  string `json:"local_port,omitempty" toml:"local_port"`
	RemotePort string `json:"remote_port,omitempty" toml:"remote_port"`
}

type LifetimeSpec struct {
	SoftBytes   uint64 `json:"soft_bytes,omitempty" toml:"soft_bytes"`
	HardBytes   uint64 `json:"hard_bytes,omitempty" toml:"hard_bytes"`
	SoftPackets uint64 `json:"soft_packets,omitempty" toml:"soft_packets"`
	HardPackets uint64 `json:"hard_packets,omitempty" toml:"hard_packets"`
	SoftTime    string `json:"soft_time,omitempty" toml:"soft_time"`
	HardTime    string `json:"hard_time,omitempty" toml:"hard_time"`
}

// PolicySpec is one policy as policy.add takes it.
type PolicySpec struct {
	Name      string         `json:"name" toml:"name"`
	Dir       string         `json:"dir" toml:"dir"`
	Action    string         `json:"action" toml:"action"`
	SPI       uint32         `json:"spi,omitempty" toml:"spi"`
	Selectors []SelectorSpec `json:"selectors" toml:"selectors"`
	// Index is the position to insert at; absent appends.
	Index *int `json:"index,omitempty" toml:"index"`
}

// SAInfo is one SA in the sa.list answer: everything but the keys.
type SAInfo struct {
	Name         string    `json:"name,omitempty"`
	Dir          string    `json:"dir"`
	SPI          uint32    `json:"spi"`
	Mode         string    `json:"mode"`
	Algorithm    string    `json:"algorithm"`
	TunnelSrc    string    `json:"tunnel_src,omitempty"`
	TunnelDst    string    `json:"tunnel_dst,omitempty"`
	ESN          bool      `json:"esn,omitempty"`
	ReplayWindow int       `json:"replay_window,omitempty"`
	Seq          uint64    `json:"seq"`
	Created      time.Time `json:"created"`
	Selectors    []string  `json:"selectors"`
	Stats        SAStats   `json:"stats"`
}

// PolicyInfo is one policy in the policy.list answer.
type PolicyInfo struct {
	Index     int      `json:"index"`
	Name      string   `json:"name,omitempty"`
	Dir       string   `json:"dir"`
	Action    string   `json:"action"`
	SPI       uint32   `json:"spi,omitempty"`
	Selectors []string `json:"selectors"`
	Hits      uint64   `json:"hits"`
}

func SAInfoOf(sa *sad.SA) SAInfo {
	p := sa.Params()
	in := SAInfo{
		Name: sa.Name(), Dir: sa.Dir().String(), SPI: sa.SPI(), Mode: strings.ToLower(p.Mode.String()),
		Algorithm: p.Algorithm.String(), ESN: p.ESN, Seq: sa.Seq(), Created: sa.Created(),
		Stats: saStatsOf(sa),
	}
	if sa.Dir() == sad.Inbound && !p.NoReplay {
		in.ReplayWindow = p.ReplayWindow
	}
	if p.Mode == esp.Tunnel {
		in.TunnelSrc, in.TunnelDst = p.TunnelSrc.String(), p.TunnelDst.String()
	}
	for _, s := range sa.Selectors() {
		in.Selectors = append(in.Selectors, config.FormatSelector(s))
	}
	return in
}

func policyInfoOf(i int, p spd.Policy, hits uint64) PolicyInfo {
	in := PolicyInfo{Index: i, Name: p.Name, Dir: p.Dir.String(), Action: p.Action.String(), SPI: p.SPI, Hits: hits}
	for _, s := range p.Selectors {
		in.Selectors = append(in.Selectors, config.FormatSelector(s))
	}
	return in
}

// config converts the spec to a sad.Config, field by field.
func (s *SASpec) Config() (sad.Config, error) {
	var cfg sad.Config
	var err error
	cfg.Name = s.Name
	if cfg.Dir, err = ParseDir(s.Dir); err != nil {
		return cfg, err
	}
	if s.SPI == 0 {
		return cfg, errors.New("spi: required, non-zero (RFC 4303 §2.1)")
	}
	p := esp.Params{SPI: s.SPI, ESN: s.ESN, ReplayWindow: s.ReplayWindow, NoReplay: s.NoReplay, HopLimit: s.HopLimit}
	if p.Mode, err = esp.ParseMode(s.Mode); err != nil {
		return cfg, fmt.Errorf("mode: %w", err)
	}
	if p.DF, err = esp.ParseDF(s.DF); err != nil {
		return cfg, fmt.Errorf("df: %w", err)
	}
	if p.Algorithm, err = esp.ParseAlgorithm(s.Algorithm); err != nil {
		return cfg, fmt.Errorf("algorithm: %w", err)
	}
	if p.EncKey, err = config.DecodeHexKey(s.EncKey); err != nil {
		return cfg, fmt.Errorf("enc_key: %w", err)
	}
	if p.AuthKey, err = config.DecodeHexKey(s.AuthKey); err != nil {
		return cfg, fmt.Errorf("auth_key: %w", err)
	}
	if p.Mode == esp.Tunnel {
		if p.TunnelSrc, err = netip.ParseAddr(s.TunnelSrc); err != nil {
			return cfg, fmt.Errorf("tunnel_src: %w", err)
		}
		if p.TunnelDst, err = netip.ParseAddr(s.TunnelDst); err != nil {
			return cfg, fmt.Errorf("tunnel_dst: %w", err)
		}
	}
	cfg.Params = p
	if cfg.Selectors, err = parseSelectors(s.Selectors); err != nil {
		return cfg, err
	}
	if len(cfg.Selectors) == 0 {
		return cfg, errors.New("selectors: at least one is required")
	}
	if l := s.Lifetime; l != nil {
		cfg.Lifetime.Soft = sad.Limits{Bytes: l.SoftBytes, Packets: l.SoftPackets}
		cfg.Lifetime.Hard = sad.Limits{Bytes: l.HardBytes, Packets: l.HardPackets}
		if cfg.Lifetime.Soft.Time, err = parseOptDuration(l.SoftTime); err != nil {
			return cfg, fmt.Errorf("lifetime.soft_time: %w", err)
		}
		if cfg.Lifetime.Hard.Time, err = parseOptDuration(l.HardTime); err != nil {
			return cfg, fmt.Errorf("lifetime.hard_time: %w", err)
		}
	}
	return cfg, nil
}

// SpecFromConfig is the inverse of SASpec.config: the wire form of an SA
// that the client parsed from a config snippet.
func SpecFromConfig(c sad.Config) SASpec {
	p := c.Params
	s := SASpec{
		Name: c.Name, Dir: c.Dir.String(), SPI: p.SPI, Mode: strings.ToLower(p.Mode.String()), Algorithm: p.Algorithm.String(),
		EncKey: hex.EncodeToString(p.EncKey), AuthKey: hex.EncodeToString(p.AuthKey),
		ESN: p.ESN, ReplayWindow: p.ReplayWindow, NoReplay: p.NoReplay, HopLimit: p.HopLimit,
	}
	switch p.DF {
	case esp.DFSet:
		s.DF = "set"
	case esp.DFClear:
		s.DF = "clear"
	}
	if p.Mode == esp.Tunnel {
		s.TunnelSrc, s.TunnelDst = p.TunnelSrc.String(), p.TunnelDst.String()
	}
	s.Selectors = selectorSpecs(c.Selectors)
	if l := c.Lifetime; !l.Soft.IsZero() || !l.Hard.IsZero() {
		s.Lifetime = &LifetimeSpec{SoftBytes: l.Soft.Bytes, HardBytes: l.Hard.Bytes, SoftPackets: l.Soft.Packets, HardPackets: l.Hard.Packets}
		if l.Soft.Time > 0 {
			s.Lifetime.SoftTime = l.Soft.Time.String()
		}
		if l.Hard.Time > 0 {
			s.Lifetime.HardTime = l.Hard.Time.String()
		}
	}
	return s
}

// SpecFromPolicy is the inverse of PolicySpec.policy.
func SpecFromPolicy(p spd.Policy) PolicySpec {
	return PolicySpec{Name: p.Name, Dir: p.Dir.String(), Action: strings.ToLower(p.Action.String()), SPI: p.SPI, Selectors: selectorSpecs(p.Selectors)}
}

func selectorSpecs(sels []sad.Selector) []SelectorSpec {
	out := make([]SelectorSpec, 0, len(sels))
	for _, x := range sels {
		out = append(out, SelectorSpec{
			Local: config.FormatAddrRange(x.Local), Remote: config.FormatAddrRange(x.Remote), Proto: config.FormatProto(x.Proto),
			LocalPort: config.FormatPorts(x.LocalPort), RemotePort: config.FormatPorts(x.RemotePort),
		})
	}
	return out
}

func (s *PolicySpec) Policy() (spd.Policy, error) {
	var p spd.Policy
	var err error
	p.Name, p.SPI = s.Name, s.SPI
	if p.Dir, err = ParseDir(s.Dir); err != nil {
		return p, err
	}
	switch strings.ToLower(s.Action) {
	case "protect":
		p.Action = spd.Protect
	case "bypass":
		p.Action = spd.Bypass
	case "discard":
		p.Action = spd.Discard
	default:
		return p, fmt.Errorf("action: %q is not protect, bypass or discard", s.Action)
	}
	if p.Selectors, err = parseSelectors(s.Selectors); err != nil {
		return p, err
	}
	if len(p.Selectors) == 0 {
		return p, errors.New("selectors: at least one is required")
	}
	return p, nil
}

func parseOptDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	return d, err
}

func ParseDir(s string) (sad.Direction, error) {
	d, err := sad.ParseDirection(s)
	if err != nil {
		return 0, fmt.Errorf("dir: %w", err)
	}
	return d, nil
}

func parseSelectors(specs []SelectorSpec) ([]sad.Selector, error) {
	var out []sad.Selector
	for i, sp := range specs {
		sel, err := sp.selector()
		if err != nil {
			return nil, fmt.Errorf("selectors[%d]: %w", i, err)
		}
		out = append(out, sel)
	}
	if err := sad.ValidateSelectors(out, "selector"); err != nil {
		return nil, fmt.Errorf("selectors: %w", err)
	}
	return out, nil
}

func (sp SelectorSpec) selector() (sad.Selector, error) {
	var s sad.Selector
	var err error
	if s.Local, err = config.ParseAddrRange(sp.Local); err != nil {
		return s, fmt.Errorf("local: %w", err)
	}
	if s.Remote, err = config.ParseAddrRange(sp.Remote); err != nil {
		return s, fmt.Errorf("remote: %w", err)
	}
	if s.Proto, err = parseProto(sp.Proto); err != nil {
		return s, fmt.Errorf("proto: %w", err)
	}
	if s.LocalPort, err = specPorts(sp.LocalPort); err != nil {
		return s, fmt.Errorf("local_port: %w", err)
	}
	if s.RemotePort, err = specPorts(sp.RemotePort); err != nil {
		return s, fmt.Errorf("remote_port: %w", err)
	}
	return s, nil
}

func parseProto(s string) (uint8, error) {
	if s == "" {
		return sad.ProtoAny, nil
	}
	if p, ok := config.ProtocolNumbers[strings.ToLower(s)]; ok {
		return p, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not a protocol number or name", s)
	}
	return uint8(n), nil
}

// VerdictName is the stable snake_case name of a drop reason.
func VerdictName(v int) string {
	return esp.Verdict(v).String()
}

// specPorts reads a spec's port field with the config's rules; empty is ANY.
func specPorts(s string) (sad.Ports, error) {
	if strings.TrimSpace(s) == "" {
		return sad.Ports{}, nil
	}
	return config.ParsePorts(s)
}
