package ike

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// TestDaemonTshark: tshark dissects the four messages two daemons
// exchanged and, with the keys WiresharkKeys gives, decrypts both
// IKE_AUTH messages and finds their ICVs correct: an independent reading
// of our wire format and of the exported keys.
func TestDaemonTshark(t *testing.T) {
	tshark := testenv.NeedCommand(t, "tshark")
	for _, suite := range []string{"aes128gcm16-prfsha256-curve25519", "aes256-sha384-prfsha384-ecp384"} {
		t.Run(suite, func(t *testing.T) {
			set := func(c *Connection) { c.Proposals = ikeProps(t, suite) }
			n, a, b := newPair(t, pairOpts{a: set, b: set})
			up(t, a, b)
			keys := a.d.WiresharkKeys()
			if len(keys) != 1 {
				t.Fatalf("%d keys", len(keys))
			}
			k := keys[0]
			pcap := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
			ps := n.packets()
			if len(ps) != 4 {
				t.Fatalf("%d packets", len(ps))
			}
			for i, p := range ps {
				pcap = appendPcapUDP(pcap, uint32(i+1), p.src.Addr().As4(), p.dst.Addr().As4(), p.b)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, "daemon.pcap")
			if err := os.WriteFile(file, pcap, 0o644); err != nil {
				t.Fatal(err)
			}
			h := hex.EncodeToString
			uat := fmt.Sprintf(`uat:ikev2_decryption_table:%016x,%016x,%s,%s,"%s",%s,%s,"%s"`,
				k.SPIi, k.SPIr, h(k.SKei), h(k.SKer), k.EncrName, h(k.SKai), h(k.SKar), k.IntegName)
			run := func(args ...string) string {
				cmd := exec.Command(tshark, append([]string{"-n", "-r", file, "-o", uat}, args...)...)
				cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("tshark: %v\n%s", err, out)
				}
				return string(out)
			}
			out := run("-T", "fields", "-E", "separator=;", "-e", "isakmp.exchangetype", "-e", "isakmp.typepayload", "-e", "isakmp.notify.msgtype")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			want := []struct{ ex, payloads string }{
				{"34", "33,34,40,41,41,41"},    // SA, KE, Ni, NAT-D ×2, SIGNATURE_HASH_ALGORITHMS
				{"34", "33,34,40,41,41,41"},    // SA, KE, Nr, NAT-D ×2, SIGNATURE_HASH_ALGORITHMS
				{"35", "46,35,41,39,33,44,45"}, // SK{IDi, N(INITIAL_CONTACT), AUTH, SA, TSi, TSr}
				{"35", "46,36,39,33,44,45"},    // SK{IDr, AUTH, SA, TSi, TSr}
			}
			if len(lines) != len(want) {
				t.Fatalf("tshark printed %d lines:\n%s", len(lines), out)
			}
			for i, l := range lines {
				f := strings.Split(l, ";")
				// Proposals (2) and transforms (3) are listed as payloads too.
				var types []string
				for _, p := range strings.Split(f[1], ",") {
					if p != "2" && p != "3" {
						types = append(types, p)
					}
				}
				if f[0] != want[i].ex || strings.Join(types, ",") != want[i].payloads {
					t.Errorf("frame %d: exchange %s payloads %s, want %s %s", i+1, f[0], f[1], want[i].ex, want[i].payloads)
				}
			}
			if !strings.Contains(lines[2], "16384") {
				t.Errorf("IKE_AUTH request without INITIAL_CONTACT: %s", lines[2])
			}
			verbose := run("-V")
			if strings.Contains(verbose, "Malformed") || strings.Contains(verbose, "Expert Info (Warning") {
				t.Errorf("tshark complains:\n%s", verbose)
			}
			if c := strings.Count(verbose, "[correct]"); c < 2 {
				t.Errorf("tshark found %d correct ICVs, want 2", c)
			}
		})
	}
}
