package benchlab

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.defaults()
	if len(c.Systems) != len(Systems) || c.Rounds != 3 || c.Duration != 10*time.Second || c.Omit != time.Second ||
		c.Pings != 20 || c.UDPSize != 1400 || c.UDPBitrate != "0" || c.TunnelMTU != 1420 || c.Port != 5201 || c.Progress == nil {
		t.Errorf("defaults: %+v", c)
	}
	// Short tests omit nothing; an explicit omit stays.
	c = Config{Duration: 2 * time.Second}
	c.defaults()
	if c.Omit != 0 {
		t.Errorf("omit %v for a 2s test, want 0", c.Omit)
	}
	c = Config{Duration: 2 * time.Second, Omit: 3 * time.Second}
	c.defaults()
	if c.Omit != 3*time.Second {
		t.Errorf("omit %v, want 3s kept", c.Omit)
	}
}

func TestSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		min  int
		want string
	}{
		{10 * time.Second, 1, "10"},
		{2400 * time.Millisecond, 1, "2"},
		{2600 * time.Millisecond, 1, "3"},
		{0, 1, "1"},
		{0, 0, "0"},
		{-time.Second, 0, "0"},
	} {
		if got := seconds(tt.d, tt.min); got != tt.want {
			t.Errorf("seconds(%v, %d) = %q, want %q", tt.d, tt.min, got, tt.want)
		}
	}
}

// Check names every missing binary before anything starts.
func TestCheckMissingBinaries(t *testing.T) {
	err := Check(Config{Systems: []System{{ID: "mipsec-raw"}, {ID: WireguardGo}}})
	if err == nil {
		t.Fatal("Check without binaries succeeded")
	}
	for _, want := range []string{"no wireguard-go binary", "no mipsec binary"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v lacks %q", err, want)
		}
	}
	// The veth needs neither.
	err = Check(Config{Systems: []System{{ID: "veth"}}})
	if err != nil && (strings.Contains(err.Error(), "wireguard-go") || strings.Contains(err.Error(), "mipsec binary")) {
		t.Errorf("Check(veth): %v", err)
	}
}

func TestLastLines(t *testing.T) {
	if got := lastLines("a\nb\nc\nd\n", 2); got != "c\nd" {
		t.Errorf("got %q", got)
	}
	if got := lastLines("a\nb", 5); got != "a\nb" {
		t.Errorf("got %q", got)
	}
}

// The gateway template renders a config naming the algorithm for both SAs.
func TestGatewayTemplate(t *testing.T) {
	var b strings.Builder
	cfg := gatewayConfig{Algorithm: "chacha20poly1305"}
	cfg.TUN, cfg.MTU, cfg.Encap, cfg.Out4, cfg.In4 = "mipsec-a", 1420, "udp", "0x0000b001", "0x0000a001"
	if err := gatewayTemplate.Execute(&b, cfg); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, `algorithm = "chacha20poly1305"`) != 2 || !strings.Contains(out, "mtu = 1420") || !strings.Contains(out, `encap = "udp"`) {
		t.Errorf("config:\n%s", out)
	}
}

func TestRoundETA(t *testing.T) {
	if got := roundETA(37*time.Second + 300*time.Millisecond); got != 37*time.Second {
		t.Errorf("roundETA(37.3s) = %v", got)
	}
	if got := roundETA(10*time.Minute + 20*time.Second); got != 10*time.Minute {
		t.Errorf("roundETA(10m20s) = %v", got)
	}
}
