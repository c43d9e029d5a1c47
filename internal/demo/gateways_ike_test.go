//go:build linux

package demo

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/netlab"
)

// TestGatewayIKEPubkeyConfigs: the --pubkey configs pass config's
// validation with the demo's certificates: each gateway's leaf, whose
// dNSName is its identity, chains to the CA the other trusts, and the
// private key is mode 0600.
func TestGatewayIKEPubkeyConfigs(t *testing.T) {
	dir := t.TempDir()
	certs, err := ndMakeCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ndMakeCerts(dir); err == nil {
		t.Error("a second ndMakeCerts overwrote the files")
	}
	for _, k := range []string{certs.KeyA, certs.KeyB} {
		if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", k, fi, err)
		}
	}
	a, b := ndIKEConfigs(dir, "raw", netlab.UnderlayA4.Addr(), netlab.UnderlayB4.Addr(), "pubkey", "", certs)
	for _, g := range []struct {
		name, id string
		cfg      ndIKEConfig
	}{{"A", ndIDA, a}, {"B", ndIDB, b}} {
		path, err := ndWriteIKEConfig(dir, g.name, g.cfg)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), "psk") {
			t.Errorf("gateway %s: a pubkey config names a PSK:\n%s", g.name, data)
		}
		f, err := config.Load(path)
		if err != nil {
			t.Fatalf("gateway %s: %v\n%s", g.name, err, data)
		}
		c := f.IKE.Connections[0]
		if c.Local.Method != ike.AuthPubkey || c.Remote.Method != ike.AuthPubkey || len(c.Local.Certs) != 1 || len(c.Remote.CAs) != 1 || c.Local.Key == nil {
			t.Fatalf("gateway %s: local %v %d certs, remote %v %d CAs", g.name, c.Local.Method, len(c.Local.Certs), c.Remote.Method, len(c.Remote.CAs))
		}
		leaf := c.Local.Certs[0]
		pool := x509.NewCertPool()
		pool.AddCert(c.Remote.CAs[0])
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: g.id, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("gateway %s: the leaf does not verify for %s: %v", g.name, g.id, err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "gw-x.example.org", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			t.Errorf("gateway %s: the leaf verifies for another name", g.name)
		}
		if !c.Local.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
			t.Errorf("gateway %s: the key is not the leaf's", g.name)
		}
	}
}

// TestGatewayIKEConfigs: the demo's IKEv2 configs pass config's validation as
// written (the PSK file's mode and owner included), with one connection
// each, A starting the child and B waiting, the same 32-byte key on both,
// and encap forced only for -encap udp.
func TestGatewayIKEConfigs(t *testing.T) {
	for _, encap := range []string{"raw", "udp"} {
		t.Run(encap, func(t *testing.T) {
			dir := t.TempDir()
			psk, err := ndWritePSK(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(psk); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("PSK file: %v, %v; want mode 0600", fi, err)
			}
			if _, err := ndWritePSK(dir); err == nil {
				t.Error("a second ndWritePSK overwrote the key file")
			}
			a, b := ndIKEConfigs(dir, encap, netlab.UnderlayA4.Addr(), netlab.UnderlayB4.Addr(), "psk", psk, nil)
			var keys [][]byte
			for _, g := range []struct {
				name, conn string
				cfg        ndIKEConfig
				start      ike.StartAction
			}{{"A", "gateway-b", a, ike.StartStart}, {"B", "gateway-a", b, ike.StartNone}} {
				path, err := ndWriteIKEConfig(dir, g.name, g.cfg)
				if err != nil {
					t.Fatal(err)
				}
				f, err := config.Load(path)
				if err != nil {
					data, _ := os.ReadFile(path)
					t.Fatalf("gateway %s: %v\n%s", g.name, err, data)
				}
				if len(f.Warnings) > 0 {
					t.Errorf("gateway %s: warnings %v", g.name, f.Warnings)
				}
				cs := f.IKE.Connections
				if len(cs) != 1 || cs[0].Name != g.conn || len(cs[0].Children) != 1 {
					t.Fatalf("gateway %s: connections %+v", g.name, cs)
				}
				c := cs[0]
				if c.Encap != (encap == "udp") || c.Children[0].Name != ndChild || c.Children[0].Start != g.start {
					t.Errorf("gateway %s: encap %v, child %q start %v", g.name, c.Encap, c.Children[0].Name, c.Children[0].Start)
				}
				if len(c.Children[0].LocalTS) != 2 || len(c.Children[0].RemoteTS) != 2 {
					t.Errorf("gateway %s: child TS %v <-> %v, want IPv4 and IPv6 each", g.name, c.Children[0].LocalTS, c.Children[0].RemoteTS)
				}
				if c.Local.Method != ike.AuthPSK || len(c.Local.PSK) != 32 || !bytes.Equal(c.Local.PSK, c.Remote.PSK) {
					t.Errorf("gateway %s: auth %v, %d-byte PSK", g.name, c.Local.Method, len(c.Local.PSK))
				}
				keys = append(keys, c.Local.PSK)
			}
			if !bytes.Equal(keys[0], keys[1]) {
				t.Error("the gateways read different keys")
			}
			data, _ := os.ReadFile(psk)
			if k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(string(data)), "0s")); err != nil || !bytes.Equal(k, keys[0]) {
				t.Errorf("the PSK file does not hold the key the config read: %v", err)
			}
		})
	}
}

// ndUDPFrame builds an Ethernet frame of UDP sport -> dport with body,
// over IPv4 or IPv6.
func ndUDPFrame(v6 bool, sport, dport uint16, body []byte) []byte {
	udp := binary.BigEndian.AppendUint16(nil, sport)
	udp = binary.BigEndian.AppendUint16(udp, dport)
	udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(body)))
	udp = append(udp, 0, 0)
	udp = append(udp, body...)
	f := make([]byte, 12, 14+40+len(udp))
	if v6 {
		f = append(f, 0x86, 0xdd)
		ip := make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, 17, 64
		binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
		f = append(f, ip...)
	} else {
		f = append(f, 0x08, 0x00)
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		f = append(f, ip...)
	}
	return append(f, udp...)
}

// TestGatewayIKEFrame: IKE on UDP 500, and on 4500 behind the non-ESP marker,
// over IPv4 and IPv6, is IKE; ESP in UDP, other UDP, truncated and
// malformed frames are not.
func TestGatewayIKEFrame(t *testing.T) {
	ikeMsg := make([]byte, 28+40)
	ikeMsg[17] = 0x20 // version 2.0
	espInUDP := append([]byte{0, 0, 0x12, 0x34}, ikeMsg...)
	marked := append([]byte{0, 0, 0, 0}, ikeMsg...)
	for _, v6 := range []bool{false, true} {
		for _, tt := range []struct {
			name         string
			sport, dport uint16
			body         []byte
			want         bool
		}{
			{"IKE 500", 500, 500, ikeMsg, true},
			{"IKE to 500 from a NAT's port", 31337, 500, ikeMsg, true},
			{"IKE 4500 with marker", 4500, 4500, marked, true},
			{"ESP in UDP 4500", 4500, 4500, espInUDP, false},
			{"keepalive", 4500, 4500, []byte{0xff}, false},
			{"short on 500", 500, 500, ikeMsg[:27], false},
			{"marker, short message", 4500, 4500, marked[:4+27], false},
			{"DNS", 53, 53, ikeMsg, false},
		} {
			f := ndUDPFrame(v6, tt.sport, tt.dport, tt.body)
			if got := ndIKEFrame(f); got != tt.want {
				t.Errorf("v6=%v %s: %v, want %v", v6, tt.name, got, tt.want)
			}
			// Every truncation is safe, and no shorter frame is IKE
			// without its full header.
			for n := range len(f) {
				if ndIKEFrame(f[:n]) && n < len(f)-len(tt.body)+28 {
					t.Errorf("v6=%v %s: %d-byte prefix is IKE", v6, tt.name, n)
				}
			}
		}
	}
	// An IPv4 fragment, TCP and a non-IP frame are not IKE.
	frag := ndUDPFrame(false, 500, 500, ikeMsg)
	binary.BigEndian.PutUint16(frag[14+6:], 0x0010)
	tcp := ndUDPFrame(false, 500, 500, ikeMsg)
	tcp[14+9] = 6
	arp := ndUDPFrame(false, 500, 500, ikeMsg)
	arp[12], arp[13] = 0x08, 0x06
	badIHL := ndUDPFrame(false, 500, 500, ikeMsg)
	badIHL[14] = 0x4f // 60-byte header: past the UDP header
	for name, f := range map[string][]byte{"fragment": frag, "tcp": tcp, "arp": arp, "ihl 15": badIHL} {
		if ndIKEFrame(f) {
			t.Errorf("%s is IKE", name)
		}
	}
}

// TestGatewayIKESplit: the IKE messages of a capture leave Other, the rest
// stays; ICMP errors stay too.
func TestGatewayIKESplit(t *testing.T) {
	ikeMsg := make([]byte, 40)
	var s netlab.Stats
	var kept []netlab.KeptFrame
	for _, f := range [][]byte{
		ndUDPFrame(false, 500, 500, ikeMsg),
		ndUDPFrame(true, 500, 500, ikeMsg),
		ndUDPFrame(false, 4500, 4500, append([]byte{0, 0, 0, 0}, ikeMsg...)),
		ndUDPFrame(false, 53, 53, ikeMsg),
	} {
		s.Add(f, true, nil)
		if fr := netlab.Classify(f); ndKeepOther(fr) {
			kept = append(kept, netlab.KeptFrame{Frame: fr, Data: f})
		}
	}
	s.ICMPErrors = 1
	n, other := ndSplitIKE(s, kept)
	if n != 3 {
		t.Errorf("%d IKE messages, want 3", n)
	}
	total := 0
	for _, c := range other {
		total += c
	}
	if total != 2 || other["ICMP error"] != 1 {
		t.Errorf("other %v, want the DNS frame and the ICMP error", other)
	}
}

// TestGatewayIKEEstablished: only an established IKE SA of the connection with
// the child installed counts.
func TestGatewayIKEEstablished(t *testing.T) {
	child := func(state string) control.IKEChildInfo {
		return control.IKEChildInfo{Name: ndChild, ID: 2, State: state}
	}
	for _, tt := range []struct {
		name string
		sas  []control.IKESAInfo
		want string // "" if established
	}{
		{"none", nil, "no IKE SA gateway-b yet"},
		{"other connection", []control.IKESAInfo{{Name: "x", State: "established", Children: []control.IKEChildInfo{child("installed")}}}, "no IKE SA gateway-b yet"},
		{"connecting", []control.IKESAInfo{{Name: "gateway-b", ID: 1, State: "connecting"}}, "is connecting"},
		{"child installing", []control.IKESAInfo{{Name: "gateway-b", ID: 1, State: "established", Children: []control.IKEChildInfo{child("installing")}}}, "no installed child"},
		{"up", []control.IKESAInfo{{Name: "gateway-b", ID: 1, State: "established", Children: []control.IKEChildInfo{child("installed")}}}, ""},
	} {
		sa, c, why := ndEstablished(tt.sas, "gateway-b")
		if tt.want == "" {
			if sa == nil || c == nil || c.ID != 2 {
				t.Errorf("%s: not established: %s", tt.name, why)
			}
			continue
		}
		if sa != nil || !strings.Contains(why, tt.want) {
			t.Errorf("%s: %v %q, want %q", tt.name, sa, why, tt.want)
		}
	}
}

// TestGatewayIKEWaitTimeout: gateways that never list the IKE SA make
// ndWaitIKE fail after its timeout, naming what is missing on each side
// and quoting the end of both logs. The "mipsec" is a script that answers
// `ike list --json` with an empty list (A) or a half-open SA (B).
func TestGatewayIKEWaitTimeout(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mipsec")
	script := `#!/bin/sh
case "$MIPSEC_SOCKET" in
*a.sock) echo '[]' ;;
*) echo '[{"name":"gateway-a","id":7,"state":"connecting","children":[]}]' ;;
esac
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	a := &netlab.Gateway{Name: "A", Config: netlab.GatewayConfig{Socket: filepath.Join(dir, "a.sock")}}
	b := &netlab.Gateway{Name: "B", Config: netlab.GatewayConfig{Socket: filepath.Join(dir, "b.sock")}}
	for i := range 30 {
		a.Log.Write([]byte("a line " + strings.Repeat("x", i) + "\n"))
	}
	a.Log.Write([]byte("ike: IKE_SA_INIT to 198.51.100.2 timed out\n"))
	b.Log.Write([]byte("ike: AUTHENTICATION_FAILED from gw-a.example.org\n"))
	start := time.Now()
	_, _, err := ndWaitIKE(context.Background(), bin, a, b, 500*time.Millisecond)
	if err == nil {
		t.Fatal("ndWaitIKE succeeded without an IKE SA")
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 10*time.Second {
		t.Errorf("gave up after %v, want about 500ms", d)
	}
	msg := err.Error()
	for _, want := range []string{
		"gateway A: no IKE SA gateway-b yet",
		"gateway B: IKE SA gateway-a #7 is connecting",
		"last lines of gateway A's log",
		"IKE_SA_INIT to 198.51.100.2 timed out",
		"AUTHENTICATION_FAILED from gw-a.example.org",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "a line \n") || strings.Count(msg, "a line") != 14 {
		t.Errorf("A's tail is not its last 15 lines:\n%s", msg)
	}
}

// TestGatewayIKESPIsOnWire: ESP with an SPI that is not the child's fails.
func TestGatewayIKESPIsOnWire(t *testing.T) {
	c := control.IKEChildInfo{SPIIn: 0xc0ffee01, SPIOut: 0xc0ffee02}
	esp := func(spi uint32) netlab.ESPPacket { return netlab.ESPPacket{SPI: spi} }
	if err := ndSPIsOnWire(netlab.Stats{ESP: []netlab.ESPPacket{esp(0xc0ffee01), esp(0xc0ffee02)}}, c); err != nil {
		t.Error(err)
	}
	if err := ndSPIsOnWire(netlab.Stats{ESP: []netlab.ESPPacket{esp(0xc0ffee01), esp(0xb001)}}, c); err == nil || !strings.Contains(err.Error(), "0x0000b001") {
		t.Errorf("a foreign SPI: %v", err)
	}
	if err := ndSPIsOnWire(netlab.Stats{}, c); err == nil {
		t.Error("no ESP at all passed")
	}
}
