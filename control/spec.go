package control

// Wire forms of SAs and policies on the control socket (JSON) and in
// `mipsec sa add -f FILE` snippets (TOML or JSON), and their conversion to
// sad.Config and spd.Policy. Errors name the field.

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// SASpec is one SA as sa.add and sa.update take it: the config file's
// [[sa]] table in JSON, with the same names (local and remote are our and
// the peer's outer addresses), validated by config.ParseSA with the
// config's own messages. In sa.update, absent keys keep the SA's keys.
type SASpec = config.SATable

// SelectorSpec is one selector set of an SASpec or PolicySpec.
type SelectorSpec = config.SelectorTable

// LifetimeSpec is an SASpec's lifetime.
type LifetimeSpec = config.LifetimeTable

// PolicySpec is one policy as policy.add takes it: a [[policy]] table and
// where to insert it.
type PolicySpec struct {
	config.PolicyTable
	// Index is the position to insert at; absent appends.
	Index *int `json:"index,omitempty"`
}

// SPI is an SPI in answers: "0x0000b001" in JSON. Arguments take a
// number or such a string.
type SPI uint32

func (s SPI) String() string { return fmt.Sprintf("0x%08x", uint32(s)) }

// MarshalJSON writes the SPI in hex.
func (s SPI) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// UnmarshalJSON reads a number or a (hex or decimal) string.
func (s *SPI) UnmarshalJSON(b []byte) error {
	str := string(b)
	if len(str) >= 2 && str[0] == '"' {
		str = str[1 : len(str)-1]
	}
	v, err := strconv.ParseUint(str, 0, 32)
	if err != nil {
		return fmt.Errorf("%s is not an SPI; want a 32-bit number or \"0x0000a001\"", b)
	}
	*s = SPI(v)
	return nil
}

// SpecFromConfig is the wire form of c (config.SATableOf).
func SpecFromConfig(c sad.Config) SASpec { return config.SATableOf(c) }

// SpecFromPolicy is the wire form of p (config.PolicyTableOf).
func SpecFromPolicy(p spd.Policy) PolicySpec { return PolicySpec{PolicyTable: config.PolicyTableOf(p)} }

// LifetimeInfo is an SA's lifetime and what is left of it (RFC 4301
// §4.4.2.1): zero limits are none.
type LifetimeInfo struct {
	SoftBytes   uint64 `json:"soft_bytes,omitempty"`
	HardBytes   uint64 `json:"hard_bytes,omitempty"`
	SoftPackets uint64 `json:"soft_packets,omitempty"`
	HardPackets uint64 `json:"hard_packets,omitempty"`
	SoftTime    string `json:"soft_time,omitempty"`
	HardTime    string `json:"hard_time,omitempty"`
	// SoftIn and HardIn are the time left until the time limits ("0s"
	// once reached).
	SoftIn string `json:"soft_in,omitempty"`
	HardIn string `json:"hard_in,omitempty"`
}

func lifetimeInfoOf(sa *sad.SA, now time.Time) *LifetimeInfo {
	l := sa.Lifetime()
	if l.Soft.IsZero() && l.Hard.IsZero() {
		return nil
	}
	in := &LifetimeInfo{SoftBytes: l.Soft.Bytes, HardBytes: l.Hard.Bytes, SoftPackets: l.Soft.Packets, HardPackets: l.Hard.Packets}
	left := func(d time.Duration) string {
		return max(sa.Created().Add(d).Sub(now), 0).Truncate(time.Second).String()
	}
	if l.Soft.Time > 0 {
		in.SoftTime, in.SoftIn = l.Soft.Time.String(), left(l.Soft.Time)
	}
	if l.Hard.Time > 0 {
		in.HardTime, in.HardIn = l.Hard.Time.String(), left(l.Hard.Time)
	}
	return in
}

// SAInfo is one SA in the sa.list answer: everything but the keys.
type SAInfo struct {
	Name      string `json:"name,omitempty"`
	Dir       string `json:"dir"`
	SPI       SPI    `json:"spi"`
	Mode      string `json:"mode"`
	Algorithm string `json:"algorithm"`
	// Local and Remote are our and the peer's outer (tunnel) addresses,
	// as in the config file.
	Local        string        `json:"local,omitempty"`
	Remote       string        `json:"remote,omitempty"`
	ESN          bool          `json:"esn,omitempty"`
	ReplayWindow int           `json:"replay_window,omitempty"`
	Seq          uint64        `json:"seq"`
	Created      time.Time     `json:"created"`
	Selectors    []string      `json:"selectors"`
	Lifetime     *LifetimeInfo `json:"lifetime,omitempty"`
	Stats        SAStats       `json:"stats"`
}

// PolicyInfo is one policy in the policy.list answer.
type PolicyInfo struct {
	Index     int      `json:"index"`
	Name      string   `json:"name,omitempty"`
	Dir       string   `json:"dir"`
	Action    string   `json:"action"`
	SPI       SPI      `json:"spi,omitempty"`
	Selectors []string `json:"selectors"`
	Hits      uint64   `json:"hits"`
}

func SAInfoOf(sa *sad.SA) SAInfo {
	p := sa.Params()
	in := SAInfo{
		Name: sa.Name(), Dir: sa.Dir().String(), SPI: SPI(sa.SPI()), Mode: strings.ToLower(p.Mode.String()),
		Algorithm: p.Algorithm.String(), ESN: p.ESN, Seq: sa.Seq(), Created: sa.Created(),
		Lifetime: lifetimeInfoOf(sa, time.Now()), Stats: saStatsOf(sa),
	}
	if sa.Dir() == sad.Inbound && !p.NoReplay {
		in.ReplayWindow = p.ReplayWindow
	}
	if p.Mode == esp.Tunnel {
		in.Local, in.Remote = p.TunnelSrc.String(), p.TunnelDst.String()
		if sa.Dir() == sad.Inbound {
			in.Local, in.Remote = in.Remote, in.Local
		}
	}
	for _, s := range sa.Selectors() {
		in.Selectors = append(in.Selectors, config.FormatSelector(s))
	}
	return in
}

func policyInfoOf(i int, p spd.Policy, hits uint64) PolicyInfo {
	in := PolicyInfo{Index: i, Name: p.Name, Dir: p.Dir.String(), Action: p.Action.String(), SPI: SPI(p.SPI), Hits: hits}
	for _, s := range p.Selectors {
		in.Selectors = append(in.Selectors, config.FormatSelector(s))
	}
	return in
}

func ParseDir(s string) (sad.Direction, error) {
	d, err := sad.ParseDirection(s)
	if err != nil {
		return 0, fmt.Errorf("dir: %w", err)
	}
	return d, nil
}

// VerdictName is the stable snake_case name of a drop reason.
func VerdictName(v int) string {
	return esp.Verdict(v).String()
}
