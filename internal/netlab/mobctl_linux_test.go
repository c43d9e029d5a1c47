package netlab

import (
	"net/netip"
	"testing"
	"time"
)

// The answers as cmd/mipsec/control_mobility.go writes them.
const (
	bindingListJSON = `[{"hoa":"2001:db8:1::100","hoa4":"192.0.2.100","coas":[{"bid":0,"addr":"203.0.113.10","primary":true,"nat":true,"endpoint":"198.51.100.2:4500"}],"seq":4711,"lifetime":"5m0s","lifetime_left":"4m59s","expires":"2026-11-22T20:00:00Z"}]`
	mnStatusJSON    = `{"state":"registered","home":false,"hoa":"2001:db8:1::100","ha":"2001:db8:1::1","coa":"2001:db8:2::100","registered_coa":"2001:db8:2::100","data":"raw 2001:db8:2::100","nat":false,"seq":12,"attempts":0,"handover_time":"123ms","last_handover":"2026-11-22T20:00:00Z","counters":{}}`
)

func TestParseBindings(t *testing.T) {
	bs, err := ParseBindings([]byte(bindingListJSON))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := FindBinding(bs, MobHoA)
	p, pok := b.Primary()
	if !ok || b.HoA4 != MobHoA4 || b.Seq != 4711 || !pok || p.Addr != MobCoA4.Addr() || !p.NAT ||
		p.Endpoint != netip.MustParseAddrPort("198.51.100.2:4500") {
		t.Errorf("ParseBindings = %+v", bs)
	}
	for _, in := range []string{`[]`, `null`, `{"bindings":[]}`} {
		if bs, err := ParseBindings([]byte(in)); err != nil || len(bs) != 0 {
			t.Errorf("ParseBindings(%s) = %v, %v; want none", in, bs, err)
		}
	}
	for _, bad := range []string{``, `{`, `[1]`, `[{"coas":[]}]`, `{"a":[],"b":[]}`} {
		if _, err := ParseBindings([]byte(bad)); err == nil {
			t.Errorf("ParseBindings(%q) succeeded", bad)
		}
	}
	// A flat binding (one CoA in the object itself) parses too.
	bs, err = ParseBindings([]byte(`{"bindings":[{"HoA":"2001:db8:1::100","CoA":"2001:db8:2::100","Seq":3}]}`))
	if err != nil || len(bs) != 1 || len(bs[0].CoAs) != 1 || bs[0].CoAs[0].Addr != MobCoA6.Addr() || bs[0].Seq != 3 {
		t.Errorf("flat binding: %+v, %v", bs, err)
	}
}

func TestParseMNStatus(t *testing.T) {
	s, err := ParseMNStatus([]byte(mnStatusJSON))
	if err != nil {
		t.Fatal(err)
	}
	if s.State != "registered" || s.CoA != MobCoA6.Addr() || s.RegisteredCoA != MobCoA6.Addr() || s.NAT || s.Seq != 12 ||
		s.Handover != 123*time.Millisecond {
		t.Errorf("ParseMNStatus = %+v", s)
	}
	for _, bad := range []string{``, `[]`, `{"coa":"2001:db8:2::100"}`} {
		if _, err := ParseMNStatus([]byte(bad)); err == nil {
			t.Errorf("ParseMNStatus(%q) succeeded", bad)
		}
	}
}
