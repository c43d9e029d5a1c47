package e2e

// TestWireshark: a capture made with `mipsec capture --outer` decrypts in
// tshark with the SA table that `mipsec sa list --wireshark` prints, as
// cmd/mipsec/wireshark.go promises.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/testenv"
)

// TestWireshark pings through the tunnel (inner IPv4 on the AES-GCM SAs,
// inner IPv6 on the AES-CBC+HMAC-SHA-256 SAs) while `mipsec capture
// --outer` records gateway A, then runs tshark on the pcap with the esp_sa
// table of `mipsec sa list --wireshark` as its only Wireshark configuration:
// every ESP packet, sealed (A's outbound SAs) and received (A's inbound
// ones), must decrypt to the ICMP echo it carried, with a good ICV. Raw ESP
// and ESP in UDP 4500 over an IPv4 underlay, raw ESP over IPv6.
func TestWireshark(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    pairOptions
	}{
		{"raw/v4", pairOptions{}},
		{"udp/v4", pairOptions{encap: "udp"}},
		{"raw/v6", pairOptions{outer6: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testWireshark(t, tt.o)
		})
	}
}

// wsPacket is one record of the pcap as tshark dissected it.
type wsPacket struct {
	frame       int
	spi         uint32
	icmp, icmp6 string // echo types of the decrypted inner packet
	icvGood     string
	udp         bool
}

// wsCaptureCount is the number of outer packets the capture takes: each
// round of pings below makes four.
const wsCaptureCount = 16

func testWireshark(t *testing.T, o pairOptions) {
	needEnv(t)
	tshark := testenv.NeedCommand(t, "tshark")
	p := newPair(t, o)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "outer.pcap")

	// The capture stops by itself after wsCaptureCount packets; the pings
	// go on until it has them (it may miss the first ones: the command
	// does not say when the daemon has subscribed it).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	capCmd := exec.CommandContext(ctx, mipsecBin, "capture", "-w", pcap, "--outer",
		"-c", strconv.Itoa(wsCaptureCount), "--duration", "15s")
	capCmd.Env = append(os.Environ(), "MIPSEC_SOCKET="+p.A.cfg.Socket)
	var capOut syncBuffer
	capCmd.Stdout, capCmd.Stderr = &capOut, &capOut
	if err := startKilledWithUs(capCmd); err != nil {
		t.Fatal(err)
	}
	capDone := make(chan error, 1)
	go func() { capDone <- capCmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-capDone
	})
	var capErr error
	rounds := 0
pinging:
	for {
		mustPing(t, p.A.ns, siteA4.Addr(), siteB4.Addr(), 1)
		mustPing(t, p.A.ns, siteA6.Addr(), siteB6.Addr(), 1)
		rounds++
		select {
		case capErr = <-capDone:
			capDone <- capErr // for the cleanup
			break pinging
		case <-time.After(20 * time.Millisecond):
		}
	}
	if capErr != nil {
		t.Fatalf("mipsec capture: %v\n%s", capErr, capOut.String())
	}
	t.Logf("%d rounds of pings; %s", rounds, strings.TrimSpace(capOut.String()))

	// The SA table, as the only file of a fresh Wireshark configuration.
	lines, err := p.A.ctl("sa", "list", "--wireshark")
	if err != nil {
		t.Fatalf("mipsec sa list --wireshark: %v", err)
	}
	home := filepath.Join(dir, "home")
	conf := filepath.Join(home, ".config", "wireshark")
	if err := os.MkdirAll(conf, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "esp_sa"), []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}

	tsharkRun := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		full := append([]string{"-n", "-r", pcap,
			"-o", "esp.enable_encryption_decode:TRUE",
			"-o", "esp.enable_authentication_check:TRUE"}, args...)
		cmd := exec.CommandContext(ctx, tshark, full...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %s: %v\n%s", strings.Join(full, " "), err, stderr.String())
		}
		// tshark reports a table it cannot load on stderr and goes on
		// (exit code 0) without it.
		if strings.Contains(stderr.String(), "Error loading table") {
			t.Fatalf("tshark rejects the esp_sa lines: %s", stderr.String())
		}
		return string(out)
	}
	out := tsharkRun("-T", "fields", "-E", "separator=/t", "-E", "occurrence=f",
		"-e", "frame.number", "-e", "esp.spi", "-e", "icmp.type", "-e", "icmpv6.type",
		"-e", "esp.icv_good", "-e", "udp.dstport")

	var pkts []wsPacket
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 6 {
			t.Fatalf("tshark: unexpected line %q in:\n%s", l, out)
		}
		var w wsPacket
		w.frame, _ = strconv.Atoi(f[0])
		spi, err := strconv.ParseUint(f[1], 0, 32)
		if err != nil {
			t.Errorf("tshark: frame %s has no ESP SPI (%q)", f[0], l)
			continue
		}
		w.spi = uint32(spi)
		w.icmp, w.icmp6, w.icvGood, w.udp = f[2], f[3], f[4], f[5] != ""
		pkts = append(pkts, w)
	}
	if len(pkts) != wsCaptureCount {
		t.Errorf("tshark read %d ESP packets, the capture wrote %d", len(pkts), wsCaptureCount)
	}

	// What A sends on each SPI and what it receives: echo requests out,
	// replies in; ICMP type 8/0 on the IPv4 (AES-GCM) SAs, ICMPv6 128/129
	// on the IPv6 (AES-CBC+HMAC-SHA-256) ones.
	want := map[uint32]struct{ icmp, icmp6 string }{
		spiAB4: {"8", ""}, spiBA4: {"0", ""},
		spiAB6: {"", "128"}, spiBA6: {"", "129"},
	}
	seen := map[uint32]int{}
	for _, w := range pkts {
		exp, ok := want[w.spi]
		switch {
		case !ok:
			t.Errorf("frame %d: unknown SPI 0x%08x", w.frame, w.spi)
		case w.icmp != exp.icmp || w.icmp6 != exp.icmp6:
			t.Errorf("frame %d (SPI 0x%08x): tshark decoded icmp.type %q icmpv6.type %q, want %q %q: not decrypted",
				w.frame, w.spi, w.icmp, w.icmp6, exp.icmp, exp.icmp6)
		case w.icvGood != "1" && w.icvGood != "True":
			t.Errorf("frame %d (SPI 0x%08x): esp.icv_good = %q, want true", w.frame, w.spi, w.icvGood)
		case w.udp != (o.encap == "udp"):
			t.Errorf("frame %d (SPI 0x%08x): in UDP = %v, want %v", w.frame, w.spi, w.udp, o.encap == "udp")
		default:
			seen[w.spi]++
		}
	}
	var spis []uint32
	for spi := range want {
		spis = append(spis, spi)
	}
	sort.Slice(spis, func(i, j int) bool { return spis[i] < spis[j] })
	var summary []string
	for _, spi := range spis {
		summary = append(summary, fmt.Sprintf("0x%08x:%d", spi, seen[spi]))
		if seen[spi] == 0 {
			t.Errorf("SPI 0x%08x: no packet decrypted", spi)
		}
	}
	t.Logf("decrypted by SPI: %s", strings.Join(summary, " "))
	if t.Failed() {
		t.Logf("esp_sa:\n%s", lines)
		t.Logf("tshark fields:\n%s", out)
		t.Logf("tshark -V:\n%s", tsharkRun("-V"))
	}
}
