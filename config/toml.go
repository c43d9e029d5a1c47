package config

// The TOML side of the configuration: the raw structs go-toml decodes into
// (strictly: an unknown key is an error) and the index of key paths to line
// numbers that lets every validation error point at its line.

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// rawConfig is the file as written. Optional numbers are pointers so that
// "absent" and "0" differ; SPIs, protocols and ports are `any` because they
// may be written as a number or a string ("0xa001", "tcp", "1000-2000").
type rawConfig struct {
	Role     string        `toml:"role"`
	Mobility *rawMobility  `toml:"mobility"`
	Log      rawLog        `toml:"log"`
	StateDir *string       `toml:"state_dir"`
	Control  rawControl    `toml:"control"`
	TUN      rawTUN        `toml:"tun"`
	Underlay rawUnderlay   `toml:"underlay"`
	Peers    []rawPeer     `toml:"peer"`
	SAs      []SATable     `toml:"sa"`
	Policies []PolicyTable `toml:"policy"`
	// IKE and Connections are the IKEv2 daemon's (ike.go).
	IKE         *rawIKE         `toml:"ike"`
	Connections []rawConnection `toml:"connection"`
}

// rawMobility is the [mobility] section (role = "ha" or "mn"): the home
// agent's keys and the mobile node's keys; each role refuses the other's.
type rawMobility struct {
	// Both roles.
	HAAddress   string `toml:"ha_address"`
	HAAddressV4 string `toml:"ha_address_v4"`
	HomePrefix  string `toml:"home_prefix"`
	// Home agent.
	HomePrefixV4 string   `toml:"home_prefix_v4"`
	HomeLink     string   `toml:"home_link"`
	MaxLifetime  string   `toml:"max_lifetime"`
	MaxCoAs      *int64   `toml:"max_coas"`
	NATRefresh   string   `toml:"nat_refresh"`
	BURate       *float64 `toml:"bu_rate"`
	BUBurst      *int64   `toml:"bu_burst"`
	KFlag        *bool    `toml:"k_flag"`
	// Mobile node.
	HomeAddress   string   `toml:"home_address"`
	HomeAddressV4 string   `toml:"home_address_v4"`
	Lifetime      string   `toml:"lifetime"`
	Interfaces    []string `toml:"interfaces"`
	NATKeepalive  string   `toml:"nat_keepalive"`
}

type rawLog struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

type rawControl struct {
	Socket string `toml:"socket"`
}

type rawTUN struct {
	Name      string   `toml:"name"`
	MTU       *int64   `toml:"mtu"`
	Addresses []string `toml:"addresses"`
	Routes    []string `toml:"routes"`
}

type rawUnderlay struct {
	Local     []string `toml:"local"`
	Encap     string   `toml:"encap"`
	UDPPort   *int64   `toml:"udp_port"`
	Keepalive string   `toml:"keepalive"`
	// PacketSocket is `any` so that a value of the wrong type gets an
	// error in the config's words, not go-toml's.
	PacketSocket any `toml:"packet_socket"`
	// FWMark: an integer, "0x..." or "off".
	FWMark     any    `toml:"fwmark"`
	RouteTable *int64 `toml:"route_table"`
}

type rawPeer struct {
	Name         string `toml:"name"`
	Endpoint     string `toml:"endpoint"`
	Encap        string `toml:"encap"`
	Roaming      bool   `toml:"roaming"`
	RoamInterval string `toml:"roam_interval"`
	Keepalive    string `toml:"keepalive"`
	OutSPIs      []any  `toml:"out_spis"`
	InSPIs       []any  `toml:"in_spis"`
}

// SATable is one SA in the config file's grammar: an [[sa]] table, and
// the same names in JSON for the control protocol's sa.add and sa.update
// (ParseSA). "local" and "remote" are our and the peer's outer addresses.
type SATable struct {
	Name         string          `toml:"name" json:"name,omitempty"`
	SPI          any             `toml:"spi" json:"spi,omitempty"`
	Dir          string          `toml:"dir" json:"dir,omitempty"`
	Mode         string          `toml:"mode" json:"mode,omitempty"`
	Local        string          `toml:"local" json:"local,omitempty"`
	Remote       string          `toml:"remote" json:"remote,omitempty"`
	Algorithm    string          `toml:"algorithm" json:"algorithm,omitempty"`
	EncKey       string          `toml:"enc_key" json:"enc_key,omitempty"`
	AuthKey      string          `toml:"auth_key" json:"auth_key,omitempty"`
	EncKeyFile   string          `toml:"enc_key_file" json:"enc_key_file,omitempty"`
	AuthKeyFile  string          `toml:"auth_key_file" json:"auth_key_file,omitempty"`
	ESN          bool            `toml:"esn" json:"esn,omitempty"`
	ReplayWindow *int64          `toml:"replay_window" json:"replay_window,omitempty"`
	NoReplay     bool            `toml:"no_replay" json:"no_replay,omitempty"`
	HopLimit     *int64          `toml:"hop_limit" json:"hop_limit,omitempty"`
	DF           string          `toml:"df" json:"df,omitempty"`
	Lifetime     LifetimeTable   `toml:"lifetime" json:"lifetime,omitempty"`
	Selectors    []SelectorTable `toml:"selectors" json:"selectors,omitempty"`
}

// LifetimeTable is an SA's lifetime = { soft = {...}, hard = {...} }
// (RFC 4301 §4.4.2.1).
type LifetimeTable struct {
	Soft LimitsTable `toml:"soft" json:"soft,omitempty"`
	Hard LimitsTable `toml:"hard" json:"hard,omitempty"`
}

// LimitsTable is one side of a lifetime; Time is a duration ("1h").
type LimitsTable struct {
	Bytes   *int64 `toml:"bytes" json:"bytes,omitempty"`
	Packets *int64 `toml:"packets" json:"packets,omitempty"`
	Time    string `toml:"time" json:"time,omitempty"`
}

// SelectorTable is one RFC 4301 §4.4.1.1 selector set. "local" is the
// protected side (the source of outbound packets, the destination of
// inbound ones).
type SelectorTable struct {
	Local      string `toml:"local" json:"local,omitempty"`
	Remote     string `toml:"remote" json:"remote,omitempty"`
	Proto      any    `toml:"proto" json:"proto,omitempty"`
	LocalPort  any    `toml:"local_port" json:"local_port,omitempty"`
	RemotePort any    `toml:"remote_port" json:"remote_port,omitempty"`
	// ICMP / ICMPv6 type and code, and Mobility Header type, for both
	// sides (icmp_type, icmp_code, mh_type) or per side (RFC 4301
	// §4.4.1.3: an outbound packet is checked against the local value, an
	// inbound one against the remote value).
	ICMPType       *int64 `toml:"icmp_type" json:"icmp_type,omitempty"`
	ICMPCode       *int64 `toml:"icmp_code" json:"icmp_code,omitempty"`
	LocalICMPType  *int64 `toml:"local_icmp_type" json:"local_icmp_type,omitempty"`
	LocalICMPCode  *int64 `toml:"local_icmp_code" json:"local_icmp_code,omitempty"`
	RemoteICMPType *int64 `toml:"remote_icmp_type" json:"remote_icmp_type,omitempty"`
	RemoteICMPCode *int64 `toml:"remote_icmp_code" json:"remote_icmp_code,omitempty"`
	MHType         *int64 `toml:"mh_type" json:"mh_type,omitempty"`
	LocalMHType    *int64 `toml:"local_mh_type" json:"local_mh_type,omitempty"`
	RemoteMHType   *int64 `toml:"remote_mh_type" json:"remote_mh_type,omitempty"`
}

// PolicyTable is one [[policy]] table, and policy.add's JSON (ParsePolicy).
type PolicyTable struct {
	Name      string          `toml:"name" json:"name,omitempty"`
	Dir       string          `toml:"dir" json:"dir,omitempty"`
	Action    string          `toml:"action" json:"action,omitempty"`
	SPI       any             `toml:"spi" json:"spi,omitempty"`
	Selectors []SelectorTable `toml:"selectors" json:"selectors,omitempty"`
}

// decodeTOML decodes data strictly into rc. Unknown keys are returned as
// config errors (all of them, with their lines) and decoding goes on; a
// syntax or type error stops it and is returned alone.
func decodeTOML(data []byte, rc *rawConfig) []Error {
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	err := d.Decode(rc)
	if err == nil {
		return nil
	}
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var out []Error
		for _, e := range sm.Errors {
			row, _ := e.Position()
			out = append(out, Error{Line: row, Path: strings.Join(e.Key(), "."),
				Msg: "unknown field (misspelt, or in the wrong section?)"})
		}
		return out
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		return []Error{{Line: row, Path: strings.Join(de.Key(), "."), Msg: msg}}
	}
	return []Error{{Msg: err.Error()}}
}

// tomlLines maps key paths as validation errors spell them ("tun.name",
// "sa[2].enc_key", "sa[0].selectors[1].local") to the line where they are
// written. Array-of-tables and array elements get their 0-based index.
func tomlLines(data []byte) map[string]int {
	lines := map[string]int{}
	// lineOf counts from the previous offset when it can: keys come in
	// file order, and counting from the start each time is quadratic in
	// a file of many tables.
	lastOff, lastLine := 0, 1
	lineOf := func(r unstable.Range) int {
		off := int(r.Offset)
		if off > len(data) {
			return 0
		}
		if off < lastOff {
			lastOff, lastLine = 0, 1
		}
		lastLine += bytes.Count(data[lastOff:off], []byte{'\n'})
		lastOff = off
		return lastLine
	}
	counts := map[string]int{} // array-of-tables path -> elements seen
	resolve := func(keys []string) string {
		cur := ""
		for _, k := range keys {
			cur = joinPath(cur, k)
			if n, ok := counts[cur]; ok {
				cur = fmt.Sprintf("%s[%d]", cur, n-1)
			}
		}
		return cur
	}
	var walk func(path string, n *unstable.Node)
	walk = func(path string, n *unstable.Node) {
		switch n.Kind {
		case unstable.Array:
			it := n.Children()
			for i := 0; it.Next(); i++ {
				c := it.Node()
				p := fmt.Sprintf("%s[%d]", path, i)
				if l := lineOf(c.Raw); c.Raw.Length > 0 {
					lines[p] = l
				}
				walk(p, c)
			}
		case unstable.InlineTable:
			it := n.Children()
			for it.Next() {
				kv := it.Node()
				if kv.Kind != unstable.KeyValue {
					continue
				}
				keys, first := keyOf(kv)
				p := path
				for _, k := range keys {
					p = joinPath(p, k)
				}
				lines[p] = lineOf(first)
				if _, ok := lines[path]; !ok {
					lines[path] = lineOf(first)
				}
				walk(p, kv.Value())
			}
		}
	}
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			keys, first := keyOf(e)
			prefix = resolve(keys)
			lines[prefix] = lineOf(first)
		case unstable.ArrayTable:
			keys, first := keyOf(e)
			base := joinPath(resolve(keys[:len(keys)-1]), keys[len(keys)-1])
			i := counts[base]
			counts[base] = i + 1
			prefix = fmt.Sprintf("%s[%d]", base, i)
			lines[prefix] = lineOf(first)
		case unstable.KeyValue:
			keys, first := keyOf(e)
			path := prefix
			for _, k := range keys {
				path = joinPath(path, k)
			}
			lines[path] = lineOf(first)
			walk(path, e.Value())
		}
	}
	return lines
}

// keyOf returns the (dotted) key of a KeyValue, Table or ArrayTable node and
// the range of its first part.
func keyOf(n *unstable.Node) ([]string, unstable.Range) {
	var keys []string
	var first unstable.Range
	it := n.Key()
	for it.Next() {
		k := it.Node()
		if len(keys) == 0 {
			first = k.Raw
		}
		keys = append(keys, string(k.Data))
	}
	return keys, first
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// indexPath is path[i].
func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }
