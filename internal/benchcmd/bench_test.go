package benchcmd

import (
	"bytes"
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
	if !ok || f.rounds != 3 || f.duration != 10*time.Second || len(f.systems) != 5 || f.udpSize != 1400 || f.mtu != 1420 {
		t.Errorf("defaults: %+v", f)
	}
	// mipsec-raw-kernel (raw ESP through the kernel's raw socket) runs
	// only when asked for.
	for _, tt := range []struct {
		systems string
		want    string
	}{
		{"default", "mipsec-udp,mipsec-raw,mipsec-chacha,wireguard-go,veth"},
		{"mipsec-raw-kernel,mipsec-raw", "mipsec-raw,mipsec-raw-kernel"},
		{"default,mipsec-raw-kernel", "mipsec-udp,mipsec-raw,mipsec-raw-kernel,mipsec-chacha,wireguard-go,veth"},
		{"all", "mipsec-udp,mipsec-raw,mipsec-raw-kernel,mipsec-chacha,wireguard-go,veth"},
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
