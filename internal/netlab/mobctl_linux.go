package netlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Ctl runs `bin ARGS... --socket SOCKET` (a mipsec control client) and
// returns its standard output; the error carries its standard error.
func Ctl(ctx context.Context, bin, socket string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "MIPSEC_SOCKET="+socket)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		err = fmt.Errorf("mipsec %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
	} else if err != nil {
		err = fmt.Errorf("mipsec %s: %w", strings.Join(args, " "), err)
	}
	return out, err
}

// CoAInfo is one care-of address of a binding as `mipsec binding list
// --json` shows it.
type CoAInfo struct {
	BID      int
	Addr     netip.Addr
	NAT      bool
	Endpoint netip.AddrPort // the NAT's mapping (UDP), or invalid
	Primary  bool
}

// BindingInfo is one binding of `mipsec binding list --json`.
type BindingInfo struct {
	HoA, HoA4 netip.Addr
	Seq       int
	CoAs      []CoAInfo
	Raw       map[string]any // the whole JSON object
}

// Primary returns the primary care-of address (the only one when there is
// one), and whether there is one.
func (b BindingInfo) Primary() (CoAInfo, bool) {
	for _, c := range b.CoAs {
		if c.Primary || len(b.CoAs) == 1 {
			return c, true
		}
	}
	return CoAInfo{}, false
}

// MNInfo is what `mipsec mn status --json` says.
type MNInfo struct {
	State         string
	CoA           netip.Addr // the current care-of address (last move)
	RegisteredCoA netip.Addr // where data goes (the last accepted BA)
	NAT           bool
	Seq           int
	Handover      time.Duration // last handover time, 0 if none
	Raw           map[string]any
}

// The control socket's JSON answers are read by key with case and
// underscores ignored ("registered_coa" = "RegisteredCoA"), so that both a
// snake_case answer and a marshalled Go struct parse.
func normKey(k string) string { return strings.ToLower(strings.ReplaceAll(k, "_", "")) }

func field(m map[string]any, names ...string) (any, bool) {
	for _, n := range names {
		for k, v := range m {
			if normKey(k) == normKey(n) {
				return v, true
			}
		}
	}
	return nil, false
}

func fieldString(m map[string]any, names ...string) string {
	v, _ := field(m, names...)
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

func fieldAddr(m map[string]any, names ...string) netip.Addr {
	s := fieldString(m, names...)
	if a, err := netip.ParseAddr(s); err == nil {
		return a
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}

func fieldBool(m map[string]any, names ...string) bool {
	v, _ := field(m, names...)
	b, _ := v.(bool)
	return b
}

func fieldInt(m map[string]any, names ...string) int {
	v, _ := field(m, names...)
	switch v := v.(type) {
	case float64:
		return int(v)
	case string:
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

// fieldDuration reads a duration: a Go duration string ("1.2s") or a
// number of nanoseconds (a marshalled time.Duration); names ending in
// _ms are milliseconds.
func fieldDuration(m map[string]any, names ...string) time.Duration {
	for _, n := range names {
		v, ok := field(m, n)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case string:
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		case float64:
			if strings.HasSuffix(n, "_ms") {
				return time.Duration(v * float64(time.Millisecond))
			}
			return time.Duration(v)
		}
	}
	return 0
}

// unwrapList finds the list in a JSON answer: the answer itself, or the
// value of its only (or named) array field.
func unwrapList(out []byte, name string) ([]any, error) {
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("not JSON: %w: %.200q", err, out)
	}
	switch v := v.(type) {
	case []any:
		return v, nil
	case nil:
		return nil, nil
	case map[string]any:
		if l, ok := field(v, name); ok {
			if l == nil {
				return nil, nil
			}
			if a, ok := l.([]any); ok {
				return a, nil
			}
		}
		var found []any
		n := 0
		for _, f := range v {
			if a, ok := f.([]any); ok {
				found = a
				n++
			}
		}
		if n == 1 {
			return found, nil
		}
	}
	return nil, fmt.Errorf("no list of %s in %.300s", name, out)
}

// ParseBindings reads the output of `mipsec binding list --json`.
func ParseBindings(out []byte) ([]BindingInfo, error) {
	list, err := unwrapList(out, "bindings")
	if err != nil {
		return nil, fmt.Errorf("binding list: %w", err)
	}
	var bs []BindingInfo
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("binding list: entry %v is not an object", e)
		}
		b := BindingInfo{
			HoA:  fieldAddr(m, "hoa", "home_address"),
			HoA4: fieldAddr(m, "hoa4", "home_address_v4"),
			Seq:  fieldInt(m, "seq", "sequence"),
			Raw:  m,
		}
		if !b.HoA.IsValid() {
			return nil, fmt.Errorf("binding list: entry without a home address: %v", m)
		}
		coas, _ := field(m, "coas", "care_of_addresses")
		if l, ok := coas.([]any); ok {
			for _, c := range l {
				cm, ok := c.(map[string]any)
				if !ok {
					continue
				}
				b.CoAs = append(b.CoAs, coaOf(cm))
			}
		} else if c := coaOf(m); c.Addr.IsValid() {
			b.CoAs = []CoAInfo{c}
		}
		bs = append(bs, b)
	}
	return bs, nil
}

func coaOf(m map[string]any) CoAInfo {
	c := CoAInfo{
		BID:     fieldInt(m, "bid"),
		Addr:    fieldAddr(m, "addr", "address", "coa", "care_of"),
		NAT:     fieldBool(m, "nat"),
		Primary: fieldBool(m, "primary"),
	}
	if ep, err := netip.ParseAddrPort(fieldString(m, "endpoint", "udp_endpoint", "nat_endpoint")); err == nil {
		c.Endpoint = ep
	}
	return c
}

// FindBinding returns the binding of hoa in bs.
func FindBinding(bs []BindingInfo, hoa netip.Addr) (BindingInfo, bool) {
	for _, b := range bs {
		if b.HoA == hoa {
			return b, true
		}
	}
	return BindingInfo{}, false
}

// ParseMNStatus reads the output of `mipsec mn status --json`.
func ParseMNStatus(out []byte) (MNInfo, error) {
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		return MNInfo{}, fmt.Errorf("mn status: not a JSON object: %w: %.200q", err, out)
	}
	if inner, ok := field(m, "mn", "status"); ok {
		if im, ok := inner.(map[string]any); ok {
			m = im
		}
	}
	s := MNInfo{
		State:         fieldString(m, "state"),
		CoA:           fieldAddr(m, "coa", "care_of", "current_coa"),
		RegisteredCoA: fieldAddr(m, "registered_coa", "registered"),
		NAT:           fieldBool(m, "nat"),
		Seq:           fieldInt(m, "seq"),
		Handover:      fieldDuration(m, "handover_time", "handover", "last_handover", "handover_ms"),
		Raw:           m,
	}
	if s.State == "" {
		return s, errors.New("mn status: no state in the answer")
	}
	return s, nil
}
