package config

import (
	"encoding/hex"
	"math"
	"strings"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// The one grammar: the control protocol sends SAs and policies as the
// config file's tables (in JSON, same names), and they are validated by
// the same code, with the same messages, as an [[sa]] or [[policy]] of a
// file (issue 11: no second parser with its own bugs).

// ParseSPI reads an SPI as the config file writes it: an integer or a
// hex string, never 0 or reserved (RFC 4303 §2.1).
func ParseSPI(x any) (uint32, error) { return parseSPIValue(x) }

// ParseSA validates t as an [[sa]] table named path in messages ("sa"
// for one SA). Key files (enc_key_file, auth_key_file) are refused: a
// daemon must not read files a client names; the client reads them
// (ParseSnippet does, relative to its file) and sends the keys.
func ParseSA(path string, t *SATable) (sad.Config, error) {
	v := &validator{declared: map[[2]uint32]bool{}}
	if t.EncKeyFile != "" {
		v.errf(path+".enc_key_file", "key files are read by the client, not the daemon; send enc_key")
	}
	if t.AuthKeyFile != "" {
		v.errf(path+".auth_key_file", "key files are read by the client, not the daemon; send auth_key")
	}
	c, _ := v.sa(path, t)
	if err := v.result(); err != nil {
		return sad.Config{}, err
	}
	return c, nil
}

// ParsePolicy validates t as a [[policy]] table named path. hasSA says
// whether an SA of that direction and SPI exists, for a protect policy's
// spi (nil: none does).
func ParsePolicy(path string, t *PolicyTable, hasSA func(sad.Direction, uint32) bool) (spd.Policy, error) {
	v := &validator{declared: map[[2]uint32]bool{}}
	if t.SPI != nil && hasSA != nil {
		if spi, err := parseSPIValue(t.SPI); err == nil {
			for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
				if hasSA(d, spi) {
					v.declared[[2]uint32{uint32(d), spi}] = true
				}
			}
		}
	}
	// v.policies numbers its tables; name this one path instead.
	var f File
	v.policies([]PolicyTable{*t}, &f)
	for i := range v.errs {
		v.errs[i].Path = path + strings.TrimPrefix(v.errs[i].Path, "policy[0]")
	}
	if err := v.result(); err != nil {
		return spd.Policy{}, err
	}
	return f.Policies[0], nil
}

// SATableOf is the table of c, keys in hex: what ParseSA turns back into c.
func SATableOf(c sad.Config) SATable {
	p := c.Params
	t := SATable{
		Name: c.Name, SPI: int64(p.SPI), Dir: dirWord(c.Dir), Mode: strings.ToLower(p.Mode.String()),
		Algorithm: p.Algorithm.String(), ESN: p.ESN, NoReplay: p.NoReplay,
	}
	if len(p.EncKey) > 0 {
		t.EncKey = "0x" + hex.EncodeToString(p.EncKey)
	}
	if len(p.AuthKey) > 0 {
		t.AuthKey = "0x" + hex.EncodeToString(p.AuthKey)
	}
	if p.Mode == esp.Tunnel {
		t.Local, t.Remote = p.TunnelSrc.String(), p.TunnelDst.String()
		if c.Dir == sad.Inbound {
			t.Local, t.Remote = t.Remote, t.Local
		}
	}
	if p.ReplayWindow != 0 && c.Dir == sad.Inbound {
		w := int64(p.ReplayWindow)
		t.ReplayWindow = &w
	}
	if p.HopLimit != 0 {
		h := int64(p.HopLimit)
		t.HopLimit = &h
	}
	switch p.DF {
	case esp.DFSet:
		t.DF = "set"
	case esp.DFClear:
		t.DF = "clear"
	}
	t.Lifetime = LifetimeTable{Soft: limitsTable(c.Lifetime.Soft), Hard: limitsTable(c.Lifetime.Hard)}
	t.Selectors = selectorTables(c.Selectors)
	return t
}

// PolicyTableOf is the table of p: what ParsePolicy turns back into p.
func PolicyTableOf(p spd.Policy) PolicyTable {
	t := PolicyTable{Name: p.Name, Dir: dirWord(p.Dir), Action: strings.ToLower(p.Action.String()),
		Selectors: selectorTables(p.Selectors)}
	if p.Action == spd.Protect && p.SPI != 0 {
		t.SPI = int64(p.SPI)
	}
	return t
}

func limitsTable(l sad.Limits) LimitsTable {
	var t LimitsTable
	if l.Bytes != 0 {
		b := int64(min(l.Bytes, math.MaxInt64))
		t.Bytes = &b
	}
	if l.Packets != 0 {
		n := int64(min(l.Packets, math.MaxInt64))
		t.Packets = &n
	}
	if l.Time > 0 {
		t.Time = l.Time.String()
	}
	return t
}

func selectorTables(sels []sad.Selector) []SelectorTable {
	out := make([]SelectorTable, 0, len(sels))
	for _, x := range sels {
		t := SelectorTable{Local: FormatAddrRange(x.Local), Remote: FormatAddrRange(x.Remote)}
		if x.Proto != sad.ProtoAny {
			t.Proto = FormatProto(x.Proto)
		}
		if x.LocalPort.Match != sad.PortAny {
			t.LocalPort = FormatPorts(x.LocalPort)
		}
		if x.RemotePort.Match != sad.PortAny {
			t.RemotePort = FormatPorts(x.RemotePort)
		}
		t.setTypes(x)
		out = append(out, t)
	}
	return out
}

// integral turns a JSON number (float64) with an integer value into the
// int64 TOML gives, so both decoders feed the validator alike.
func integral(x any) any {
	if f, ok := x.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f)
	}
	return x
}

// setTypes writes ICMP type/code and MH type selectors, which RFC 4301
// §4.4.1.1 packs into the port fields, in the config's own keys.
func (t *SelectorTable) setTypes(x sad.Selector) {
	icmp := x.Proto == header.ProtoICMP || x.Proto == header.ProtoICMPv6
	mh := x.Proto == header.ProtoMobility
	if !icmp && !mh {
		return
	}
	t.LocalPort, t.RemotePort = nil, nil
	side := func(p sad.Ports, typ, code, mhType **int64) {
		if p.Match != sad.PortInRange {
			return
		}
		ty := int64(p.Lo >> 8)
		if mh {
			*mhType = &ty
			return
		}
		*typ = &ty
		if p.Lo == p.Hi {
			c := int64(p.Lo & 0xff)
			*code = &c
		}
	}
	side(x.LocalPort, &t.LocalICMPType, &t.LocalICMPCode, &t.LocalMHType)
	side(x.RemotePort, &t.RemoteICMPType, &t.RemoteICMPCode, &t.RemoteMHType)
}
