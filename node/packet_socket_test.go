package node_test

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/underlay"
)

// TestConfigPacketSocket: [underlay] packet_socket is a boolean, false by
// default, refused with encap = "udp" (no raw ESP to send) and refused in
// the config's words, with its line, when written with another type.
func TestConfigPacketSocket(t *testing.T) {
	for _, tt := range []struct {
		name, keys string
		want       bool
		mode       underlay.Mode
		errLine    int    // offset from the first added key's line
		errMsg     string // "" = valid
	}{
		{name: "absent", keys: "", want: false, mode: underlay.ModeRaw},
		{name: "false", keys: "packet_socket = false", want: false, mode: underlay.ModeRaw},
		{name: "true", keys: "packet_socket = true", want: true, mode: underlay.ModeRaw},
		{name: "true, raw", keys: "encap = \"raw\"\npacket_socket = true", want: true, mode: underlay.ModeRaw},
		{name: "true, both", keys: "encap = \"both\"\npacket_socket = true", want: true, mode: underlay.ModeBoth},
		{name: "false, udp", keys: "encap = \"udp\"\npacket_socket = false", want: false, mode: underlay.ModeUDP},
		{name: "true, udp", keys: "encap = \"udp\"\npacket_socket = true", errLine: 1,
			errMsg: `true, but underlay.encap = "udp" sends no raw ESP: the AF_PACKET path carries only raw ESP (IP protocol 50); set underlay.encap = "raw" or "both"`},
		{name: "true, UDP", keys: "encap = \"UDP\"\npacket_socket = true", errLine: 1, errMsg: `underlay.encap = "UDP" sends no raw ESP`},
		{name: "string", keys: `packet_socket = "true"`, errMsg: `"true" is a string; want true or false (unquoted)`},
		{name: "integer", keys: "packet_socket = 1", errMsg: "1 is not a boolean; want true or false"},
		{name: "float", keys: "packet_socket = 0.0", errMsg: "0 is not a boolean; want true or false"},
		{name: "array", keys: "packet_socket = [true]", errMsg: "[true] is not a boolean; want true or false"},
		{name: "table", keys: "packet_socket = { on = true }", errMsg: "is not a boolean; want true or false"},
		{name: "date", keys: "packet_socket = 2026-01-01", errMsg: "is not a boolean; want true or false"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, line := fixture.WithUnderlayKeys(t, tt.keys)
			cfg, err := config.Parse("/etc/mipsec/p.toml", []byte(src))
			if tt.errMsg != "" {
				ce, ok := err.(config.Errors)
				if !ok {
					t.Fatalf("Parse = %v, want config.Errors", err)
				}
				if len(ce) != 1 {
					t.Errorf("%d errors, want 1:\n%v", len(ce), err)
				}
				e := ce[0]
				if e.Path != "underlay.packet_socket" || !strings.Contains(e.Msg, tt.errMsg) || e.Line != line+tt.errLine {
					t.Errorf("got %q (path %q, line %d), want underlay.packet_socket at line %d containing %q",
						e.Error(), e.Path, e.Line, line+tt.errLine, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Underlay.PacketSocket != tt.want {
				t.Errorf("Underlay.PacketSocket = %v, want %v", cfg.Underlay.PacketSocket, tt.want)
			}
			uc := node.UnderlayConfigOf(&cfg.Config)
			if uc.PacketSocket != tt.want || uc.Mode != tt.mode {
				t.Errorf("underlay.Config PacketSocket %v mode %v, want %v %v", uc.PacketSocket, uc.Mode, tt.want, tt.mode)
			}
		})
	}
	// A misspelt key is an unknown field, not a silent default.
	src, line := fixture.WithUnderlayKeys(t, "packet_sockets = true")
	_, err := config.Parse("p.toml", []byte(src))
	if ce, ok := err.(config.Errors); !ok || len(ce) != 1 || ce[0].Path != "underlay.packet_sockets" || ce[0].Line != line ||
		!strings.Contains(ce[0].Msg, "unknown field") {
		t.Errorf("packet_sockets: %v", err)
	}
}

// TestUnderlayConfigRoles: packet_socket reaches underlay.Config
// for every role, next to what each role opens.
func TestUnderlayConfigRoles(t *testing.T) {
	for _, tt := range []struct {
		name, file, after string
		extHeaders        bool
	}{
		{"gateway", "../testdata/gateway-a.toml", "keepalive = \"20s\"", false},
		{"ha", "../testdata/ha.toml", "encap = \"both\"", true},
		{"mn", "../testdata/mn.toml", "encap = \"both\"", true},
	} {
		for _, on := range []bool{false, true} {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			s := string(data)
			if on {
				i := strings.Index(s, "\n[underlay]\n")
				j := strings.Index(s[i:], "\n"+tt.after)
				if i < 0 || j < 0 {
					t.Fatalf("%s: no [underlay] with %s", tt.file, tt.after)
				}
				k := i + j + 1 + strings.Index(s[i+j+1:], "\n")
				s = s[:k] + "\npacket_socket = true" + s[k:]
			}
			// Key files are relative to the config: keep its directory.
			cfg, err := config.Parse(tt.file, []byte(s))
			if err != nil {
				t.Fatalf("%s packet_socket=%v: %v", tt.name, on, err)
			}
			uc := node.UnderlayConfigOf(&cfg.Config)
			if uc.PacketSocket != on || uc.ExtHeaders != tt.extHeaders || !uc.IPv4.IsValid() || !uc.IPv6.IsValid() && tt.name != "gateway" {
				t.Errorf("%s packet_socket=%v: %+v", tt.name, on, uc)
			}
		}
	}
}

// TestLogUnderlayOpen: the AF_PACKET path is announced once, at Info,
// naming what it bypasses; without it nothing is said.
func TestLogUnderlayOpen(t *testing.T) {
	for _, on := range []bool{false, true} {
		core, logs := observer.New(zapcore.InfoLevel)
		cfg := &node.Config{Underlay: node.UnderlayConfig{Raw: true, PacketSocket: on}}
		node.LogUnderlayOpen(zap.New(core), cfg, node.UnderlayConfigOf(cfg))
		var open, bypass int
		for _, e := range logs.All() {
			switch {
			case e.Message == "underlay open":
				open++
				if got := e.ContextMap()["packet_socket"]; got != on {
					t.Errorf("underlay open: packet_socket = %v, want %v", got, on)
				}
			case strings.Contains(e.Message, "AF_PACKET"):
				bypass++
				if e.Level != zapcore.InfoLevel {
					t.Errorf("level %v, want info", e.Level)
				}
				for _, want := range []string{"netfilter OUTPUT and POSTROUTING", "egress qdisc", "fragmentation"} {
					if !strings.Contains(e.Message, want) {
						t.Errorf("message %q lacks %q", e.Message, want)
					}
				}
			}
		}
		if want := map[bool]int{false: 0, true: 1}[on]; open != 1 || bypass != want {
			t.Errorf("packet_socket=%v: %d open, %d AF_PACKET lines; want 1 and %d", on, open, bypass, want)
		}
	}
}
