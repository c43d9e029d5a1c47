package benchcmd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseBenchFlags(t *testing.T) {
	var errb bytes.Buffer
	f, _, ok := parseBenchFlags([]string{"--rounds", "5", "--duration", "3s", "--systems", "wireguard-go,mipsec-raw", "--out", "/x"}, &errb)
	if !ok {
		t.Fatal(errb.String())
	}
	if f.rounds != 5 || f.duration != 3*time.Second || f.out != "/x" || len(f.systems) != 2 ||
		f.systems[0].ID != "mipsec-raw" || f.systems[1].ID != "wireguard-go" || !f.set["duration"] || f.set["pings"] {
		t.Errorf("got %+v", f)
	}
	f, _, ok = parseBenchFlags(nil, &errb)
	if !ok || f.rounds != 3 || f.duration != 10*time.Second || len(f.systems) != 6 || f.udpSize != 1400 || f.mtu != 1420 {
		t.Errorf("defaults: %+v", f)
	}
	// mipsec-raw-kernel (raw ESP through the kernel's raw socket) runs
	// only when asked for.
	for _, tt := range []struct {
		systems string
		want    string
	}{
		{"default", "mipsec-udp,mipsec-raw,mipsec-chacha,wireguard-go,strongswan-libipsec,veth"},
		{"mipsec-raw-kernel,mipsec-raw", "mipsec-raw,mipsec-raw-kernel"},
		{"default,mipsec-raw-kernel", "mipsec-udp,mipsec-raw,mipsec-raw-kernel,mipsec-chacha,wireguard-go,strongswan-libipsec,veth"},
		{"all", "mipsec-udp,mipsec-raw,mipsec-raw-kernel,mipsec-chacha,wireguard-go,strongswan-libipsec,veth"},
	} {
		f, _, ok := parseBenchFlags([]string{"--systems", tt.systems}, &errb)
		if !ok {
			t.Fatalf("--systems %s: %s", tt.systems, errb.String())
		}
		var ids []string
		for _, s := range f.systems {
			ids = append(ids, s.ID)
		}
		if got := strings.Join(ids, ","); got != tt.want {
			t.Errorf("--systems %s: %s, want %s", tt.systems, got, tt.want)
		}
	}
	for _, s := range f.systems {
		if s.ID == "mipsec-raw-kernel" {
			t.Error("mipsec-raw-kernel is in the default set")
		}
	}
}

// strongswan-libipsec is in the default set but skipped with a note when
// strongSwan is missing, unless --systems names it.
func TestDropMissing(t *testing.T) {
	missing := map[string]func() error{"strongswan-libipsec": func() error { return errors.New("needs /usr/lib/ipsec/charon") }}
	for _, tt := range []struct {
		systems, want string
		note          bool
	}{
		{"default", "mipsec-udp,mipsec-raw,mipsec-chacha,wireguard-go,veth", true},
		{"all", "mipsec-udp,mipsec-raw,mipsec-raw-kernel,mipsec-chacha,wireguard-go,veth", true},
		{"strongswan-libipsec,veth", "strongswan-libipsec,veth", false},
		{"default,strongswan-libipsec", "mipsec-udp,mipsec-raw,mipsec-chacha,wireguard-go,strongswan-libipsec,veth", false},
		{"mipsec-raw", "mipsec-raw", false},
	} {
		var errb, note bytes.Buffer
		f, _, ok := parseBenchFlags([]string{"--systems", tt.systems}, &errb)
		if !ok {
			t.Fatalf("--systems %s: %s", tt.systems, errb.String())
		}
		var ids []string
		for _, s := range dropMissing(f.systems, f.named, missing, &note) {
			ids = append(ids, s.ID)
		}
		if got := strings.Join(ids, ","); got != tt.want {
			t.Errorf("--systems %s: %s, want %s", tt.systems, got, tt.want)
		}
		if got := strings.Contains(note.String(), "skipping strongswan-libipsec: needs /usr/lib/ipsec/charon"); got != tt.note {
			t.Errorf("--systems %s: note %q, want one: %v", tt.systems, note.String(), tt.note)
		}
	}
	// Available: nothing dropped, no note.
	var note bytes.Buffer
	f, _, _ := parseBenchFlags(nil, &note)
	if got := dropMissing(f.systems, f.named, map[string]func() error{"strongswan-libipsec": func() error { return nil }}, &note); len(got) != 6 || note.Len() != 0 {
		t.Errorf("available: %d systems, note %q", len(got), note.String())
	}
}
