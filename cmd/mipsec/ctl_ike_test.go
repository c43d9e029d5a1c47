package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/ike"
)

// cliIKE is a control.IKEDaemon with one connection, site-b, whose
// children are net and dmz.
type cliIKE struct {
	mu    sync.Mutex
	sas   []ike.SAStatus
	stats ike.Stats
	keys  []ike.WiresharkKey
	calls []string
	block chan struct{}
	next  uint32
}

func (f *cliIKE) act(call, conn, child string, change func()) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if conn != "site-b" || (child != "" && child != "net" && child != "dmz") {
		return fmt.Errorf("%w: %s/%s", ike.ErrUnknownConnection, conn, child)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	change()
	return nil
}

func (f *cliIKE) id() uint32 { f.next++; return f.next }

func (f *cliIKE) Initiate(conn, child string) error {
	return f.act("initiate "+conn+" "+child, conn, child, func() {
		sa := ike.SAStatus{Name: conn, ID: f.id(), State: "established", Initiator: true}
		for _, c := range []string{"net", "dmz"} {
			if child == "" || child == c {
				sa.Children = append(sa.Children, ike.ChildStatus{Name: c, ID: f.id(), State: "installed"})
			}
		}
		f.sas = []ike.SAStatus{sa}
	})
}

func (f *cliIKE) Terminate(conn string) error {
	return f.act("terminate "+conn, conn, "", func() { f.sas = nil })
}

func (f *cliIKE) Rekey(conn, child string) error {
	return f.act("rekey "+conn+" "+child, conn, child, func() {
		for i := range f.sas {
			if child == "" {
				f.sas[i].ID = f.id()
			}
			for j := range f.sas[i].Children {
				if f.sas[i].Children[j].Name == child {
					f.sas[i].Children[j].ID = f.id()
				}
			}
		}
	})
}

func (f *cliIKE) List() []ike.SAStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ike.SAStatus(nil), f.sas...)
}
func (f *cliIKE) Stats() ike.Stats { return f.stats }
func (f *cliIKE) WiresharkKeys() []ike.WiresharkKey {
	return append([]ike.WiresharkKey(nil), f.keys...)
}

// ikeFakeTarget is a fakeTarget with an IKE daemon (nil: without IKE).
type ikeFakeTarget struct {
	*fakeTarget
	d *cliIKE
}

func (t *ikeFakeTarget) IKEDaemon() control.IKEDaemon {
	if t.d == nil {
		return nil
	}
	return t.d
}

func startIKEServer(t *testing.T, d *cliIKE) string {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "run", "mipsec.sock")
	s, err := control.Listen(path, &ikeFakeTarget{fakeTarget: newFakeTarget(t), d: d}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return path
}

// ikeCLI runs `mipsec ARGS... --socket PATH`.
func ikeCLI(path string, args ...string) (string, string, int) {
	return runCLI(append(args, "--socket", path)...)
}

// TestIKEListCLI: `mipsec ike list` prints the daemon's SAs as swanctl
// does, --json the answer, --wireshark the key lines after a warning.
func TestIKEListCLI(t *testing.T) {
	now := time.Now()
	d := &cliIKE{sas: []ike.SAStatus{{
		Name: "site-b", ID: 3, State: "established", Initiator: true, SPIi: 0x1a2b3c4d5e6f7081, SPIr: 0x8a9b0c1d2e3f4051,
		Local: netip.MustParseAddrPort("192.0.2.1:4500"), Remote: netip.MustParseAddrPort("192.0.2.2:4500"),
		LocalID: "gw-a.example.org", RemoteID: "gw-b.example.org", NATRemote: true, Encap: true,
		Suite: "aes256gcm16/prfsha384/ecp384", Established: now.Add(-5*time.Minute - 30*time.Second), RekeyAt: now.Add(3*time.Hour + 59*time.Minute + 30*time.Second),
		Children: []ike.ChildStatus{{
			Name: "net", ID: 4, State: "installed", Mode: ike.ModeTunnel, Suite: "aes256gcm16", InSPI: 0xc1d2e3f4, OutSPI: 0xc5d6e7f8,
			LocalTS:   []ike.TrafficSelector{{Start: netip.MustParseAddr("10.1.0.0"), End: netip.MustParseAddr("10.1.255.255"), EndPort: 0xffff}},
			RemoteTS:  []ike.TrafficSelector{{Start: netip.MustParseAddr("10.2.0.0"), End: netip.MustParseAddr("10.2.255.255"), EndPort: 0xffff}},
			Installed: now.Add(-5*time.Minute - 30*time.Second), RekeyAt: now.Add(59*time.Minute + 30*time.Second), ExpireAt: now.Add(65*time.Minute + 30*time.Second),
		}},
	}}}
	d.keys = []ike.WiresharkKey{{SPIi: 0x1a2b3c4d5e6f7081, SPIr: 0x8a9b0c1d2e3f4051, SKei: []byte{0x11, 0x22}, SKer: []byte{0x33, 0x44},
		EncrName: "AES-GCM-256 with 16 octet ICV [RFC5282]", IntegName: "NONE [RFC4306]"}}
	path := startIKEServer(t, d)

	out, errs, rc := ikeCLI(path, "ike", "list")
	want := `site-b: #3, ESTABLISHED, IKEv2, 1a2b3c4d5e6f7081_i* 8a9b0c1d2e3f4051_r
  local  'gw-a.example.org' @ 192.0.2.1[4500]
  remote 'gw-b.example.org' @ 192.0.2.2[4500] [NAT]
  aes256gcm16/prfsha384/ecp384
  established 5m ago, rekeying in 3h59m
  net: #4, INSTALLED, TUNNEL, ESP in UDP SPIs: c1d2e3f4_i c5d6e7f8_o
    aes256gcm16, installed 5m ago, rekeying in 59m, expires in 65m
    local  10.1.0.0/16
    remote 10.2.0.0/16
`
	if rc != 0 || out != want || errs != "" {
		t.Errorf("ike list: exit %d, stderr %q\n%s\nwant:\n%s", rc, errs, out, want)
	}
	if out2, _, _ := ikeCLI(path, "ike", "ls"); out2 != out {
		t.Errorf("ike ls differs:\n%s", out2)
	}
	if strings.Contains(out, "1122") {
		t.Error("ike list shows keys")
	}

	out, _, rc = ikeCLI(path, "ike", "list", "--json")
	var sas []map[string]any
	if rc != 0 || json.Unmarshal([]byte(out), &sas) != nil || len(sas) != 1 {
		t.Fatalf("ike list --json: %d\n%s", rc, out)
	}
	children, _ := sas[0]["children"].([]any)
	if sas[0]["spi_i"] != "0x1a2b3c4d5e6f7081" || sas[0]["nat_remote"] != true || len(children) != 1 ||
		children[0].(map[string]any)["spi_out"] != "0xc5d6e7f8" || strings.Contains(out, "sk_e") {
		t.Errorf("ike list --json:\n%s", out)
	}

	out, errs, rc = ikeCLI(path, "ike", "list", "--wireshark")
	if rc != 0 || out != `1a2b3c4d5e6f7081,8a9b0c1d2e3f4051,1122,3344,"AES-GCM-256 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"`+"\n" {
		t.Errorf("ike list --wireshark: %d\n%s", rc, out)
	}
	if errs != ikeSecretWarning+"\n" || !strings.Contains(errs, "secret keys") {
		t.Errorf("ike list --wireshark: stderr %q", errs)
	}

	for _, args := range [][]string{{"ike", "list", "--json", "--wireshark"}, {"ike", "list", "extra"}, {"ike", "list", "--frob"}} {
		if _, errs, rc := ikeCLI(path, args...); rc != 2 || !strings.Contains(errs, "usage: mipsec ike list") {
			t.Errorf("%v: exit %d, want 2 with usage\n%s", args, rc, errs)
		}
	}

	d.mu.Lock()
	d.sas = nil
	d.mu.Unlock()
	if out, _, rc := ikeCLI(path, "ike", "list"); rc != 0 || out != "no IKE SAs\n" {
		t.Errorf("ike list, none: %d %q", rc, out)
	}
}

// TestIKEActionsCLI: initiate, terminate and rekey say what happened,
// unknown names exit 1 with the daemon's error, wrong arguments 2 with the
// usage, and --timeout bounds the wait.
func TestIKEActionsCLI(t *testing.T) {
	d := &cliIKE{next: 2}
	path := startIKEServer(t, d)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ike", "initiate", "site-b", "net"}, "initiated site-b/net: IKE SA #3, child #4 installed\n"},
		{[]string{"ike", "rekey", "site-b", "net", "--timeout", "5s"}, "rekeyed site-b/net: child #4 replaced by #5, installed\n"},
		{[]string{"ike", "rekey", "--timeout=5s", "site-b"}, "rekeyed site-b: IKE SA #3 replaced by #6, established\n"},
		{[]string{"ike", "terminate", "site-b"}, "terminated site-b: IKE SA #6 deleted with child net #5\n"},
		{[]string{"ike", "up", "site-b"}, "initiated site-b: IKE SA #7 established, child net #8 installed, child dmz #9 installed\n"},
		{[]string{"ike", "down", "site-b"}, "terminated site-b: IKE SA #7 deleted with child net #8, dmz #9\n"},
		{[]string{"ike", "terminate", "site-b"}, "terminated site-b\n"},
	} {
		out, errs, rc := ikeCLI(path, tt.args...)
		if rc != 0 || out != tt.want {
			t.Errorf("%v: exit %d %q\n got  %q\n want %q", tt.args, rc, errs, out, tt.want)
		}
	}
	want := []string{"initiate site-b net", "rekey site-b net", "rekey site-b ", "terminate site-b", "initiate site-b ", "terminate site-b", "terminate site-b"}
	if strings.Join(d.calls, ";") != strings.Join(want, ";") {
		t.Errorf("daemon calls %q, want %q", d.calls, want)
	}

	// The daemon's errors: exit 1.
	for _, args := range [][]string{{"ike", "initiate", "nope"}, {"ike", "rekey", "site-b", "nope"}, {"ike", "terminate", "nope"}} {
		out, errs, rc := ikeCLI(path, args...)
		if rc != 1 || out != "" || !strings.Contains(errs, "no such connection") || !strings.HasPrefix(errs, "mipsec "+args[0]+" "+args[1]+": ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, rc, out, errs)
		}
	}
	// Argument errors: exit 2 before any request.
	n := len(d.calls)
	for _, args := range [][]string{
		{"ike", "initiate"}, {"ike", "initiate", "a", "b", "c"}, {"ike", "terminate", "site-b", "net"}, {"ike", "rekey"},
		{"ike", "initiate", "site-b", "--timeout", "0s"}, {"ike", "initiate", "site-b", "--timeout", "11m"},
		{"ike", "initiate", "site-b", "--timeout", "soon"},
	} {
		_, errs, rc := ikeCLI(path, args...)
		if rc != 2 || errs == "" {
			t.Errorf("%v: exit %d, want 2\n%s", args, rc, errs)
		}
	}
	if _, errs, _ := ikeCLI(path, "ike", "initiate"); errs != "usage: mipsec ike initiate NAME [CHILD] [--timeout D]\n" {
		t.Errorf("missing NAME: %q", errs)
	}
	if len(d.calls) != n {
		t.Errorf("argument errors reached the daemon: %q", d.calls[n:])
	}

	// A daemon that does not answer: the timeout's error, exit 1.
	d.mu.Lock()
	d.block = make(chan struct{})
	d.mu.Unlock()
	defer close(d.block)
	start := time.Now()
	_, errs, rc := ikeCLI(path, "ike", "initiate", "site-b", "--timeout", "300ms")
	if rc != 1 || !strings.Contains(errs, "timed out after 300ms") || time.Since(start) > 10*time.Second {
		t.Errorf("timeout: exit %d after %v: %q", rc, time.Since(start), errs)
	}
}

// TestIKENotConfiguredCLI: a daemon without IKE connections says so, and
// its stats have no IKE part.
func TestIKENotConfiguredCLI(t *testing.T) {
	path := startIKEServer(t, nil)
	for _, args := range [][]string{{"ike", "list"}, {"ike", "list", "--wireshark"}, {"ike", "initiate", "site-b"}, {"ike", "terminate", "x"}} {
		out, errs, rc := ikeCLI(path, args...)
		if rc != 1 || out != "" || !strings.Contains(errs, "no IKE connections configured ([[connection]] in the config)") || strings.Contains(errs, "WARNING") {
			t.Errorf("%v: exit %d %q %q", args, rc, out, errs)
		}
	}
	out, _, _ := ikeCLI(path, "stats", "--json")
	if strings.Contains(out, `"ike"`) {
		t.Errorf("stats --json has ike:\n%s", out)
	}
	if out, _, _ := ikeCLI(path, "stats"); strings.Contains(out, "\nike") {
		t.Errorf("stats has ike:\n%s", out)
	}
}

// TestIKEStatsCLI: `mipsec stats` and --json carry the IKE counters.
func TestIKEStatsCLI(t *testing.T) {
	d := &cliIKE{stats: ike.Stats{IKESAs: 2, ChildSAs: 3, HalfOpen: 1, Exchanges: map[string]uint64{"IKE_AUTH": 4, "IKE_SA_INIT": 5},
		Failures: map[string]uint64{"auth_failed": 6, "cookie": 0}, Rekeys: 7, Retransmits: 8, CookiesSent: 9, ESPMoves: 10, MOBIKEUpdates: 11, Relocations: 12, Renewals: 13}}
	path := startIKEServer(t, d)
	out, _, rc := ikeCLI(path, "stats")
	wantContains(t, "stats", out,
		"ike: ike_sas=2 child_sas=3 half_open=1 rekeys=7 retransmits=8 cookies_sent=9 esp_moves=10 mobike_updates=11 relocations=12 renewals=13\n",
		"ike exchanges: IKE_AUTH=4 IKE_SA_INIT=5\n", "ike failures: auth_failed=6 cookie=0\n")
	if rc != 0 {
		t.Errorf("stats: %d", rc)
	}
	out, _, _ = ikeCLI(path, "stats", "--json")
	var st struct {
		IKE *control.IKEStatsInfo `json:"ike"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.IKE == nil || st.IKE.CookiesSent != 9 || st.IKE.Failures["auth_failed"] != 6 {
		t.Errorf("stats --json: %v %+v", err, st.IKE)
	}
}

// TestIKEHelp: the ike group and its commands describe themselves.
func TestIKEHelp(t *testing.T) {
	out, _, rc := runCLI("help")
	wantContains(t, "help", out, "mipsec ike list [--json|--wireshark]", "mipsec ike initiate NAME [CHILD]", "mipsec ike terminate NAME", "mipsec ike rekey NAME [CHILD]")
	if rc != 0 {
		t.Errorf("help: %d", rc)
	}
	for _, args := range [][]string{{"ike", "-h"}, {"ike", "--help"}, {"help", "ike"}} {
		out, errs, rc := runCLI(args...)
		if rc != 0 || errs != "" {
			t.Errorf("%v: exit %d %q", args, rc, errs)
		}
		wantContains(t, strings.Join(args, " "), out, "usage: mipsec ike COMMAND", "[[connection]]", "mipsec ike list", "mipsec ike initiate", "mipsec ike terminate", "mipsec ike rekey", "swanctl")
	}
	_, errs, rc := runCLI("ike", "list", "-h")
	if rc != 0 {
		t.Errorf("ike list -h: %d", rc)
	}
	wantContains(t, "ike list -h", errs, "usage: mipsec ike list [--json|--wireshark]", "swanctl --list-sas", "-wireshark", "ikev2_decryption_table", "-json")
	_, errs, _ = runCLI("ike", "initiate", "-h")
	wantContains(t, "ike initiate -h", errs, "usage: mipsec ike initiate NAME [CHILD] [--timeout D]", "-timeout", "(default 30s)")
	// Not a group: the old answers.
	if _, errs, rc := runCLI("ike", "frob"); rc != 2 || !strings.Contains(errs, `unknown command "frob"`) {
		t.Errorf("ike frob: %d %q", rc, errs)
	}
}

// TestIKEJSONAnswerIsTheWireForm: ike list --json prints the daemon's
// answer as it came, so the wire form's decoding agrees with it.
func TestIKEJSONAnswerIsTheWireForm(t *testing.T) {
	d := &cliIKE{sas: []ike.SAStatus{{Name: "a", ID: 1, Children: []ike.ChildStatus{{Name: "c", LocalTS: []ike.TrafficSelector{
		{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.1"), Protocol: 6, StartPort: 22, EndPort: 22}}}}}}}
	path := startIKEServer(t, d)
	out, _, _ := ikeCLI(path, "ike", "list", "--json")
	var sas []control.IKESAInfo
	if err := json.Unmarshal([]byte(out), &sas); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	printJSON(&buf, sas)
	if buf.String() != out {
		t.Errorf("re-encoded:\n%s\nprinted:\n%s", buf.String(), out)
	}
	if sas[0].Children[0].LocalTS[0] != "10.0.0.1/32[tcp/22]" {
		t.Errorf("selector %q", sas[0].Children[0].LocalTS)
	}
}
