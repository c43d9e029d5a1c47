package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/internal/fixture"
)

// TestCheckPacketSocket: `mipsec check` refuses packet_socket with
// encap = "udp" (file:line, exit 1) and warns when every peer of
// encap = "both" uses UDP, so the key would do nothing.
func TestCheckPacketSocket(t *testing.T) {
	dir := t.TempDir()
	write := func(name, keys string, peerEncap string) string {
		s, _ := fixture.WithUnderlayKeys(t, keys)
		if peerEncap != "" {
			s = strings.Replace(s, `endpoint = "203.0.113.1"`, `endpoint = "203.0.113.1"`+"\nencap = \""+peerEncap+"\"", 1)
		}
		s = strings.Replace(s, `state_dir = "/var/lib/mipsec/test"`, `state_dir = "`+dir+`"`, 1)
		p := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const unused = "underlay.packet_socket = true, but every peer uses encap = \"udp\""
	for _, tt := range []struct {
		name, keys, peerEncap string
		rc                    int
		stderr, notStderr     string
	}{
		{name: "udp-only", keys: "encap = \"udp\"\npacket_socket = true", rc: 1, stderr: ":12: underlay.packet_socket: true, but underlay.encap"},
		{name: "both, udp peer", keys: "encap = \"both\"\npacket_socket = true", peerEncap: "udp", rc: 0, stderr: "warning: " + unused},
		{name: "both, raw peer", keys: "encap = \"both\"\npacket_socket = true", peerEncap: "raw", rc: 0, notStderr: "packet_socket"},
		{name: "both, udp peer, off", keys: "encap = \"both\"", peerEncap: "udp", rc: 0, notStderr: "packet_socket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			p := write(strings.ReplaceAll(tt.name, " ", "-"), tt.keys, tt.peerEncap)
			if rc := checkConfig(p, &out, &errb, fakeProbe(ext4Magic, nil)); rc != tt.rc {
				t.Errorf("exit %d, want %d\n%s%s", rc, tt.rc, out.String(), errb.String())
			}
			if tt.stderr != "" && !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errb.String())
			}
			if tt.notStderr != "" && strings.Contains(errb.String(), tt.notStderr) {
				t.Errorf("stderr mentions %q:\n%s", tt.notStderr, errb.String())
			}
		})
	}
	// The home agent and the mobile node have no peers: no warning.
	for _, f := range []string{"examples/ha.toml", "examples/mn.toml"} {
		cfg, err := config.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Underlay.PacketSocket = true
		if w := packetSocketWarning(cfg); w != "" {
			t.Errorf("%s: %s", f, w)
		}
	}
}
