package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/internal/fixture"
)

// TestControlRealDaemon drives the real daemon (gateway-a.toml, in-memory
// TUN and underlay, gateway B on the other side) through the control
// socket: a capture while traffic flows holds the ESP packets and the inner
// ones, the esp_sa lines carry the configured keys, and stats count.
func TestControlRealDaemon(t *testing.T) {
	cfgA := fixture.Config(t, "gateway-a.toml", t.TempDir())
	cfgB := fixture.Config(t, "gateway-b.toml", t.TempDir())
	sock := filepath.Join(shortTempDir(t), "a.sock")
	cfgA.ControlSocket = sock
	ua, ub := underlaytest.NewPair(epA, epB)
	tunA, tunB := tuntest.New(1, 64), tuntest.New(1, 64)

	b, err := newDaemon(cfgB, zaptest.NewLogger(t).Named("B"), daemonOptions{noControl: true, workers: 2, device: tunB, conn: ub})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := newDaemon(cfgA, zaptest.NewLogger(t).Named("A"), daemonOptions{workers: 2, device: tunA, conn: ua})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	// Capture 4 packets: 2 pings, each seen inner (from the TUN) and outer.
	file := filepath.Join(t.TempDir(), "a.pcap")
	type result struct {
		rc       int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		var o, e bytes.Buffer
		rc := run([]string{"capture", "--socket", sock, "-w", file, "--both", "-c", "4", "--duration", "20s"}, &o, &e)
		done <- result{rc, o.String(), e.String()}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !a.ctl.Capturing() {
		if time.Now().After(deadline) {
			t.Fatal("capture never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 2 {
		tunA.Outbound <- fixture.ICMPEcho(fixture.HostA, fixture.HostB, 120, uint16(i))
		select {
		case <-tunB.Inbound:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d not delivered", i)
		}
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("capture did not end after 4 packets")
	}
	if r.rc != 0 {
		t.Fatalf("capture: exit %d: %s", r.rc, r.err)
	}
	_, ps := readPcap(t, file)
	var nESP, nICMP int
	for _, p := range ps {
		if e, ok := p.Layer(layers.LayerTypeIPSecESP).(*layers.IPSecESP); ok {
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if e.SPI != fixture.SPIAtoB || ip == nil || ip.SrcIP.String() != "198.51.100.1" || ip.DstIP.String() != "203.0.113.1" {
				t.Errorf("ESP packet:\n%s", p.Dump())
			}
			nESP++
		}
		if p.Layer(layers.LayerTypeICMPv4) != nil {
			nICMP++
		}
	}
	if nESP != 2 || nICMP != 2 {
		t.Errorf("pcap holds %d ESP and %d ICMP packets, want 2 and 2", nESP, nICMP)
	}

	var o, e bytes.Buffer
	if rc := run([]string{"sa", "list", "--wireshark", "--socket", sock}, &o, &e); rc != 0 {
		t.Fatalf("sa list --wireshark: %d %s", rc, e.String())
	}
	want := `"IPv4","198.51.100.1","203.0.113.1","0x0000b001","AES-GCM with 16 octet ICV [RFC4106]","0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223","NULL",""`
	if !strings.Contains(o.String(), want+"\n") {
		t.Errorf("esp_sa lines lack\n%s\ngot\n%s", want, o.String())
	}

	// A counts a sent packet after the underlay write returns.
	eventually(t, "A to count 2 sent packets", func() bool { return a.Stats().Dataplane.SentPackets >= 2 })
	o.Reset()
	if rc := run([]string{"stats", "--json", "--socket", sock}, &o, &e); rc != 0 {
		t.Fatalf("stats: %d %s", rc, e.String())
	}
	var st control.StatsInfo
	if err := json.Unmarshal(o.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range st.SAs {
		if s.SPI == fixture.SPIAtoB && s.Dir == "out" {
			found = s.Packets == 2
		}
	}
	if !found || st.Dataplane.SentPackets != 2 {
		t.Errorf("stats after 2 pings: %+v", st)
	}
}
