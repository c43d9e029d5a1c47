package benchlab

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mipsec/mipsec/internal/netlab"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.defaults()
	if len(c.Systems) != len(DefaultSystems()) || slices.ContainsFunc(c.Systems, func(s System) bool { return s.Optional }) || c.Rounds != 3 || c.Duration != 10*time.Second || c.Omit != time.Second ||
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
	if strings.Count(out, `algorithm = "chacha20poly1305"`) != 2 || !strings.Contains(out, "mtu = 1420") || !strings.Contains(out, `encap = "udp"`) ||
		!strings.Contains(out, "\npacket_socket = false\n") {
		t.Errorf("config:\n%s", out)
	}
}

// Every mipsec system renders valid TOML for both gateways, with
// [underlay] packet_socket true for mipsec-raw only (AF_PACKET send) and
// false for mipsec-raw-kernel and the UDP systems.
func TestGatewayTemplateSystems(t *testing.T) {
	want := map[string]struct {
		encap, alg   string
		packetSocket bool
	}{
		"mipsec-udp":        {"udp", "aes128gcm16", false},
		"mipsec-raw":        {"raw", "aes128gcm16", true},
		"mipsec-raw-kernel": {"raw", "aes128gcm16", false},
		"mipsec-chacha":     {"udp", "chacha20poly1305", false},
	}
	n := 0
	for _, sys := range Systems {
		spec, ok := mipsecSpecs[sys.ID]
		if strings.HasPrefix(sys.ID, "mipsec") != ok {
			t.Errorf("%s: mipsec system without a spec, or a spec for another system", sys.ID)
			continue
		}
		if !ok {
			continue
		}
		n++
		w, ok := want[sys.ID]
		if !ok {
			t.Errorf("%s: not covered by this test", sys.ID)
			continue
		}
		a, b := netlab.PairConfigs(t.TempDir(), spec.encap, netlab.UnderlayA4.Addr(), netlab.UnderlayB4.Addr(), netlab.PairKeys{
			AB4: randomHex(20), BA4: randomHex(20),
		})
		for _, g := range []netlab.GatewayConfig{a, b} {
			out, err := renderGateway(spec, g)
			if err != nil {
				t.Fatalf("%s: %v", sys.ID, err)
			}
			var doc struct {
				Underlay struct {
					Encap        string `toml:"encap"`
					PacketSocket any    `toml:"packet_socket"`
				} `toml:"underlay"`
				SA []struct {
					Algorithm string `toml:"algorithm"`
				} `toml:"sa"`
			}
			if err := toml.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("%s: rendered config is not TOML: %v\n%s", sys.ID, err, out)
			}
			if doc.Underlay.PacketSocket != w.packetSocket || doc.Underlay.Encap != w.encap || len(doc.SA) != 2 || doc.SA[0].Algorithm != w.alg {
				t.Errorf("%s: underlay %+v, SAs %+v; want encap %q, packet_socket %v (a boolean), algorithm %q",
					sys.ID, doc.Underlay, doc.SA, w.encap, w.packetSocket, w.alg)
			}
		}
	}
	if n != len(want) || len(mipsecSpecs) != len(want) {
		t.Errorf("%d mipsec systems, %d specs; want %d", n, len(mipsecSpecs), len(want))
	}
}

// newTunnel builds every mipsec system from its spec; an unknown ID is an
// error.
func TestNewTunnel(t *testing.T) {
	l := &lab{dir: t.TempDir()}
	for id, spec := range mipsecSpecs {
		tun, err := l.newTunnel(System{ID: id})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if m, ok := tun.(*mipsecTunnel); !ok || m.spec != spec {
			t.Errorf("%s: tunnel %#v, want spec %+v", id, tun, spec)
		}
	}
	if _, err := l.newTunnel(System{ID: "mipsec-gre"}); err == nil {
		t.Error("newTunnel(mipsec-gre) succeeded")
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
