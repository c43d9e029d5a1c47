package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
)

// ikeBridge is an ike.Transport that hands every message to the peer
// daemon's ReceiveIKE, as the underlay's IKE sockets would.
type ikeBridge struct {
	self netip.Addr
	peer atomic.Pointer[daemon]
	tap  *ikeTap
}

// ikeTap records the messages of both bridges, as IPv4/UDP packets of a
// LINKTYPE_RAW pcap.
type ikeTap struct {
	mu   sync.Mutex
	pcap []byte
}

func (c *ikeTap) add(msg []byte, from, to netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pcap == nil {
		c.pcap = []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 101, 0, 0, 0}
	}
	n := 28 + len(msg)
	p := []byte{0x45, 0, byte(n >> 8), byte(n), 0, 0, 0x40, 0, 64, 17, 0, 0}
	p = append(p, from.Addr().AsSlice()...)
	p = append(p, to.Addr().AsSlice()...)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(p[i])<<8 | uint32(p[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	p = binary.BigEndian.AppendUint16(p, from.Port())
	p = binary.BigEndian.AppendUint16(p, to.Port())
	p = binary.BigEndian.AppendUint16(p, uint16(8+len(msg)))
	p = append(p, 0, 0)
	if from.Port() != 500 && to.Port() != 500 {
		p = append(p, 0, 0, 0, 0) // the non-ESP marker (RFC 3948 §2.2)
		binary.BigEndian.PutUint16(p[2:], uint16(n+4))
		binary.BigEndian.PutUint16(p[24:], uint16(12+len(msg)))
	}
	p = append(p, msg...)
	c.pcap = binary.LittleEndian.AppendUint32(c.pcap, uint32(len(c.pcap)))
	c.pcap = binary.LittleEndian.AppendUint32(c.pcap, 0)
	c.pcap = binary.LittleEndian.AppendUint32(c.pcap, uint32(len(p)))
	c.pcap = binary.LittleEndian.AppendUint32(c.pcap, uint32(len(p)))
	c.pcap = append(c.pcap, p...)
}

func (b *ikeBridge) Send(msg []byte, local, remote netip.AddrPort) error {
	p := b.peer.Load()
	if p == nil {
		return errors.New("no peer yet")
	}
	if !local.Addr().IsValid() {
		local = netip.AddrPortFrom(b.self, local.Port())
	}
	if b.tap != nil && local.Addr().Is4() && remote.Addr().Is4() {
		b.tap.add(msg, local, remote)
	}
	p.ReceiveIKE(msg, remote, local)
	return nil
}

// ikeGatewayConfig loads testdata/ike-gateway-X.toml with its state in a
// temporary directory, the pre-shared key in a temporary file and A's
// child waiting for `mipsec ike initiate`.
func ikeGatewayConfig(t *testing.T, name, psk string) *config.File {
	t.Helper()
	file := withStateDir(t, "../../testdata/"+name, t.TempDir())
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(data), `psk_file = "/etc/mipsec/gateway-a-b.psk"`, `psk_file = "`+psk+`"`)
	s = strings.ReplaceAll(s, `start_action = "start"`, `start_action = "none"`)
	// IPv4 selectors only: the SAD holds one address family per SA
	// (sad.ValidateSelectors, RFC 4301 §4.4.1.1), and node installs a
	// dual-stack child as one SA per direction, which sad refuses.
	s = regexp.MustCompile(`, "2001:db8:[ab]::/48"\]`).ReplaceAllString(s, "]")
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestIKERealDaemons drives two real daemons (testdata/ike-gateway-a and
// -b, in-memory TUN and underlay, IKE through a bridge) with the ike
// commands: A initiates, lists the IKE SA and its child as B lists them,
// prints their keys, counts the exchanges in stats and the metrics,
// rekeys the child and terminates.
func TestIKERealDaemons(t *testing.T) {
	psk := filepath.Join(t.TempDir(), "a-b.psk")
	if err := os.WriteFile(psk, []byte("0x"+strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgA, cfgB := ikeGatewayConfig(t, "ike-gateway-a.toml", psk), ikeGatewayConfig(t, "ike-gateway-b.toml", psk)
	dir := shortTempDir(t)
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	cfgA.ControlSocket, cfgB.ControlSocket = sockA, sockB
	tap := &ikeTap{}
	ba, bb := &ikeBridge{self: epA.Addr.Addr(), tap: tap}, &ikeBridge{self: epB.Addr.Addr(), tap: tap}
	cfgA.IKE.Transport, cfgB.IKE.Transport = ba, bb
	ua, ub := underlaytest.NewPair(epA, epB)
	b, err := newDaemon(cfgB, zaptest.NewLogger(t).Named("B"), daemonOptions{workers: 2, device: tuntest.New(1, 64), conn: ub})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newDaemon(cfgA, zaptest.NewLogger(t).Named("A"), daemonOptions{workers: 2, device: tuntest.New(1, 64), conn: ua})
	if err != nil {
		t.Fatal(err)
	}
	ba.peer.Store(b)
	bb.peer.Store(a)
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if control.IKEOf(a) == nil {
		t.Fatal("the daemon's node has no IKE daemon for control")
	}

	if out, _, rc := ikeCLI(sockA, "ike", "list"); rc != 0 || out != "no IKE SAs\n" {
		t.Errorf("before: %d %q", rc, out)
	}
	out, errs, rc := ikeCLI(sockA, "ike", "initiate", "gateway-b", "sites", "--timeout", "20s")
	if rc != 0 || !regexp.MustCompile(`^initiated gateway-b/sites: IKE SA #\d+, child #\d+ installed\n$`).MatchString(out) {
		t.Fatalf("ike initiate: exit %d\n%s%s", rc, out, errs)
	}
	t.Log(strings.TrimSpace(out))

	var la, lb []control.IKESAInfo
	for _, x := range []struct {
		sock string
		into *[]control.IKESAInfo
	}{{sockA, &la}, {sockB, &lb}} {
		out, errs, rc := ikeCLI(x.sock, "ike", "list", "--json")
		if rc != 0 || json.Unmarshal([]byte(out), x.into) != nil || len(*x.into) != 1 {
			t.Fatalf("ike list --json: %d\n%s%s", rc, out, errs)
		}
	}
	sa, peer := la[0], lb[0]
	if sa.Name != "gateway-b" || sa.State != "established" || !sa.Initiator || peer.Initiator || sa.SPIi != peer.SPIi || sa.SPIr != peer.SPIr ||
		sa.LocalID != "gw-a.example.org" || sa.RemoteID != "gw-b.example.org" || sa.Suite == "" || len(sa.Children) != 1 || len(peer.Children) != 1 {
		t.Fatalf("A's IKE SA %+v\nB's %+v", sa, peer)
	}
	ch, pch := sa.Children[0], peer.Children[0]
	if ch.Name != "sites" || ch.State != "installed" || ch.SPIIn != pch.SPIOut || ch.SPIOut != pch.SPIIn ||
		strings.Join(ch.LocalTS, " ") != "192.0.2.0/25" || strings.Join(ch.RemoteTS, " ") != "192.0.2.128/25" {
		t.Errorf("A's child %+v\nB's %+v", ch, pch)
	}
	out, _, _ = ikeCLI(sockA, "ike", "list")
	wantContains(t, "ike list", out, "gateway-b: #", ", ESTABLISHED, IKEv2, ", "_i* ", "  local  'gw-a.example.org' @ 198.51.100.1[500]",
		"  remote 'gw-b.example.org' @ 203.0.113.1[500]", "  sites: #", ", INSTALLED, TUNNEL, ESP SPIs: ", "    local  192.0.2.0/25\n", "    remote 192.0.2.128/25\n")

	// The keys: one line for the IKE SA, its SPIs those of the list.
	out, errs, rc = ikeCLI(sockA, "ike", "list", "--wireshark")
	line := regexp.MustCompile(`^([0-9a-f]{16}),([0-9a-f]{16}),[0-9a-f]+,[0-9a-f]+,"[^"]+",[0-9a-f]*,[0-9a-f]*,"[^"]+"\n$`).FindStringSubmatch(out)
	if rc != 0 || line == nil || "0x"+line[1] != sa.SPIi.String() || "0x"+line[2] != sa.SPIr.String() || !strings.Contains(errs, "secret keys") {
		t.Errorf("ike list --wireshark: %d\n%s%s", rc, out, errs)
	}

	// tshark decrypts the IKE_AUTH exchange of the capture with those
	// lines as its ikev2_decryption_table: both identities show.
	if tshark, err := exec.LookPath("tshark"); err == nil {
		home := t.TempDir()
		os.MkdirAll(filepath.Join(home, "wireshark"), 0o700)
		os.WriteFile(filepath.Join(home, "wireshark", "ikev2_decryption_table"), []byte(out), 0o600)
		tap.mu.Lock()
		os.WriteFile(filepath.Join(home, "ike.pcap"), tap.pcap, 0o600)
		tap.mu.Unlock()
		ids := func(home string) []string {
			cmd := exec.Command(tshark, "-n", "-r", filepath.Join(home, "ike.pcap"), "-Y", "isakmp.id.data.fqdn", "-T", "fields", "-e", "isakmp.id.data.fqdn")
			cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home)
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, got)
			}
			return strings.Fields(string(got))
		}
		// The request carries IDi (and IDr), the answer IDr.
		if got := ids(home); len(got) != 2 || !strings.HasPrefix(got[0], "gw-a.example.org") || got[1] != "gw-b.example.org" {
			t.Errorf("tshark with `ike list --wireshark`'s line: %q", got)
		}
		os.Remove(filepath.Join(home, "wireshark", "ikev2_decryption_table"))
		if got := ids(home); len(got) != 0 {
			t.Errorf("tshark decrypted without the keys: %q", got)
		}
	} else {
		t.Log("no tshark: the key lines are not checked against it")
	}

	// Counters: stats and the metrics.
	out, _, _ = ikeCLI(sockA, "stats", "--json")
	var st struct{ IKE *control.IKEStatsInfo }
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.IKE == nil || st.IKE.IKESAs != 1 || st.IKE.ChildSAs != 1 ||
		st.IKE.Exchanges["IKE_SA_INIT"] == 0 || st.IKE.Exchanges["IKE_AUTH"] == 0 {
		t.Errorf("stats --json ike: %v %+v", err, st.IKE)
	}
	ms := scrapeSeries(t, a)
	if !find(ms, "mipsec_ike_sas", 1) || !find(ms, "mipsec_ike_child_sas", 1) || !find(ms, "mipsec_ike_exchanges_total", st.IKE.Exchanges["IKE_AUTH"], `type="IKE_AUTH"`) {
		t.Errorf("metrics lack the IKE SA")
	}

	// Rekey the child: a new one replaces it, or, while the daemon has no
	// CREATE_CHILD_SA, its error with exit 1.
	out, errs, rc = ikeCLI(sockA, "ike", "rekey", "gateway-b", "sites")
	switch {
	case rc == 1 && out == "" && strings.Contains(errs, "not implemented"):
		t.Logf("ike rekey: %s", strings.TrimSpace(errs))
	case rc != 0 || !strings.HasPrefix(out, "rekeyed gateway-b/sites: child #"):
		t.Errorf("ike rekey: %d\n%s%s", rc, out, errs)
	default:
		t.Log(strings.TrimSpace(out))
		eventually(t, "the rekeyed child", func() bool {
			var l []control.IKESAInfo
			out, _, _ := ikeCLI(sockA, "ike", "list", "--json")
			json.Unmarshal([]byte(out), &l)
			return len(l) == 1 && len(l[0].Children) == 1 && l[0].Children[0].SPIIn != ch.SPIIn && l[0].Children[0].State == "installed"
		})
	}

	// Unknown names: exit 1.
	if _, errs, rc := ikeCLI(sockA, "ike", "initiate", "nope"); rc != 1 || !strings.Contains(errs, "no such connection") {
		t.Errorf("ike initiate nope: %d %q", rc, errs)
	}

	out, errs, rc = ikeCLI(sockA, "ike", "terminate", "gateway-b")
	if rc != 0 || !strings.HasPrefix(out, "terminated gateway-b: IKE SA #") {
		t.Errorf("ike terminate: %d\n%s%s", rc, out, errs)
	}
	t.Log(strings.TrimSpace(out))
	for _, sock := range []string{sockA, sockB} {
		eventually(t, "no IKE SAs", func() bool {
			out, _, _ := ikeCLI(sock, "ike", "list")
			return out == "no IKE SAs\n"
		})
	}
}
