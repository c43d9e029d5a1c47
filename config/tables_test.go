package config

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/sad"
)

// TestTablesRoundTrip: every SA and policy of the example configs, written
// as a table (SATableOf, PolicyTableOf), sent as JSON and parsed again
// (ParseSA, ParsePolicy) is what the file gave: one grammar both ways.
func TestTablesRoundTrip(t *testing.T) {
	for _, name := range []string{"gateway-a", "gateway-b", "ha", "mn", "minimal"} {
		cfg, err := Load("../testdata/" + name + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		has := func(d sad.Direction, spi uint32) bool {
			for _, s := range cfg.SAs {
				if s.Dir == d && s.Params.SPI == spi {
					return true
				}
			}
			return false
		}
		for _, s := range cfg.SAs {
			tab := SATableOf(s.Config)
			var back SATable
			jsonTrip(t, tab, &back)
			got, err := ParseSA("sa", &back)
			if err != nil {
				t.Errorf("%s %s: %v\n%+v", name, s.Path, err, back)
				continue
			}
			if !reflect.DeepEqual(got, s.Config) {
				t.Errorf("%s %s: round trip\n got %+v\nwant %+v", name, s.Path, got, s.Config)
			}
		}
		for i, p := range cfg.Policies {
			tab := PolicyTableOf(p)
			var back PolicyTable
			jsonTrip(t, tab, &back)
			got, err := ParsePolicy("policy", &back, has)
			if err != nil {
				t.Errorf("%s policy[%d]: %v", name, i, err)
				continue
			}
			if !reflect.DeepEqual(got, p) {
				t.Errorf("%s policy[%d]: round trip\n got %+v\nwant %+v", name, i, got, p)
			}
		}
	}
}

func jsonTrip(t *testing.T, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// TestParseSARefuses: the control path gets the config's checks, with the
// config's words: reserved SPIs, key sizes, key files, missing SAs.
func TestParseSARefuses(t *testing.T) {
	good := func() SATable {
		return SATable{SPI: int64(0x1001), Dir: "out", Algorithm: "aes128gcm16", Local: "198.51.100.1", Remote: "203.0.113.1",
			EncKey: "0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223", Selectors: []SelectorTable{{Local: "192.0.2.0/25", Remote: "192.0.2.128/25"}}}
	}
	if _, err := ParseSA("sa", ptr(good())); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*SATable)
		want string
	}{
		{"reserved SPI", func(s *SATable) { s.SPI = float64(200) }, "sa.spi: 200 is reserved by IANA"},
		{"short key", func(s *SATable) { s.EncKey = "0x00" }, "sa.enc_key"},
		{"key file", func(s *SATable) { s.EncKey, s.EncKeyFile = "", "/etc/shadow" }, "key files are read by the client"},
		{"bad outer", func(s *SATable) { s.Local = "foo" }, "sa.local"},
		{"replay window out", func(s *SATable) { w := int64(64); s.ReplayWindow = &w }, "only an inbound SA"},
	} {
		s := good()
		tc.mod(&s)
		if _, err := ParseSA("sa", &s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	p := PolicyTable{Name: "p", Dir: "out", Action: "protect", SPI: "0x9999", Selectors: []SelectorTable{{}}}
	if _, err := ParsePolicy("policy", &p, func(sad.Direction, uint32) bool { return false }); err == nil || !strings.Contains(err.Error(), "policy.spi: 0x00009999 names no out SA") {
		t.Errorf("protect policy for a missing SA: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
