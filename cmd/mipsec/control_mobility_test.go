package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
)

// fakeMobTarget is a fakeTarget with a mobility layer: an HA (bindings) or
// an MN (status, moves), or neither.
type fakeMobTarget struct {
	*fakeTarget
	role string

	mu       sync.Mutex
	bindings []mip6.BindingStatus
	status   mip6.MNStatus
	moves    []netip.Addr
	moveErr  error
}

func (f *fakeMobTarget) Bindings() ([]mip6.BindingStatus, error) {
	if f.role != node.RoleHA {
		return nil, fmt.Errorf("%w: it is a %s", node.ErrNotHA, node.RoleName(f.role))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mip6.BindingStatus(nil), f.bindings...), nil
}

func (f *fakeMobTarget) MNStatus() (mip6.MNStatus, error) {
	if f.role != node.RoleMN {
		return mip6.MNStatus{}, fmt.Errorf("%w: it is a %s", node.ErrNotMN, node.RoleName(f.role))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, nil
}

func (f *fakeMobTarget) MNMove(coa netip.Addr) error {
	if f.role != node.RoleMN {
		return fmt.Errorf("%w: it is a %s", node.ErrNotMN, node.RoleName(f.role))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.moveErr != nil {
		return f.moveErr
	}
	f.moves = append(f.moves, coa)
	return nil
}

func startMobServer(t *testing.T, role string) (string, *fakeMobTarget) {
	t.Helper()
	ft := &fakeMobTarget{fakeTarget: newFakeTarget(t), role: role}
	path := filepath.Join(shortTempDir(t), "run", "mipsec.sock")
	s, err := control.Listen(path, ft, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return path, ft
}

func runCLI(args ...string) (string, string, int) {
	var o, e bytes.Buffer
	rc := run(args, &o, &e)
	return o.String(), e.String(), rc
}

func TestControlBindingList(t *testing.T) {
	path, ft := startMobServer(t, node.RoleHA)
	now := time.Now()
	nat := netip.MustParseAddrPort("198.51.100.2:61000")
	ft.bindings = []mip6.BindingStatus{
		{HoA: netip.MustParseAddr("2001:db8:1::200"), CoAs: []mip6.CareOf{{BID: 0, Addr: netip.MustParseAddr("2001:db8:2::200"), Primary: true}},
			Seq: 3, Lifetime: 5 * time.Minute, Expires: now.Add(2 * time.Minute)},
		{HoA: fixture.HoA, HoA4: fixture.HoA4, Seq: 42, Lifetime: 4 * time.Minute, Expires: now.Add(-time.Second), LastBU: now,
			CoAs: []mip6.CareOf{
				{BID: 1, Addr: netip.MustParseAddr("203.0.113.10"), NAT: true, Endpoint: nat, Primary: true},
				{BID: 2, Addr: netip.MustParseAddr("2001:db8:2::100")},
			}},
	}
	out, errs, rc := runCLI("binding", "list", "--socket", path)
	if rc != 0 {
		t.Fatalf("binding list = %d: %s", rc, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "HOA") {
		t.Fatalf("table:\n%s", out)
	}
	// Sorted by HoA: ::100 first, with its two CoAs.
	for _, want := range [][]string{
		{"2001:db8:1::100", "192.0.2.100", "203.0.113.10", "yes", "198.51.100.2:61000 (NAT)", "42", "0s of 4m0s"},
		{"2001:db8:2::100", "2"},
		{"2001:db8:1::200", "2001:db8:2::200", "yes", "3", "of 5m0s"},
	} {
		found := false
		for _, l := range lines[1:] {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			found = found || ok
		}
		if !found {
			t.Errorf("no line with %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(lines[1], "2001:db8:1::100") {
		t.Errorf("not sorted by home address:\n%s", out)
	}
	out, _, rc = runCLI("binding", "list", "--json", "--socket", path)
	var bs []control.BindingInfo
	if rc != 0 || json.Unmarshal([]byte(out), &bs) != nil || len(bs) != 2 {
		t.Fatalf("--json: %d %s", rc, out)
	}
	b := bs[0]
	if b.HoA != "2001:db8:1::100" || b.HoA4 != "192.0.2.100" || b.Seq != 42 || b.LifetimeLeft != "0s" || len(b.CoAs) != 2 ||
		b.CoAs[0] != (control.CareOfInfo{BID: 1, Addr: "203.0.113.10", Primary: true, NAT: true, Endpoint: "198.51.100.2:61000"}) ||
		b.CoAs[1] != (control.CareOfInfo{BID: 2, Addr: "2001:db8:2::100"}) {
		t.Errorf("json binding %+v", b)
	}
	if l := bs[1].LifetimeLeft; l != "1m59s" && l != "2m0s" {
		t.Errorf("lifetime left %q", l)
	}
	// Empty cache.
	ft.mu.Lock()
	ft.bindings = nil
	ft.mu.Unlock()
	if out, _, rc := runCLI("binding", "list", "--socket", path); rc != 0 || !strings.Contains(out, "no bindings") {
		t.Errorf("empty: %d %q", rc, out)
	}
	// The MN commands on an HA.
	if _, e, rc := runCLI("mn", "status", "--socket", path); rc != 1 || !strings.Contains(e, "not a mobile node") || !strings.Contains(e, "it is a home agent") {
		t.Errorf("mn status on an HA: %d %q", rc, e)
	}
	if _, e, rc := runCLI("mn", "move", "2001:db8:2::100", "--socket", path); rc != 1 || !strings.Contains(e, "not a mobile node") {
		t.Errorf("mn move on an HA: %d %q", rc, e)
	}
	// Bad usage.
	for _, args := range [][]string{{"binding"}, {"binding", "flush"}, {"binding", "list", "extra", "--socket", path}} {
		if _, _, rc := runCLI(args...); rc != 2 {
			t.Errorf("%v = %d, want 2", args, rc)
		}
	}
	if _, _, rc := runCLI("binding", "list", "--json", "--socket", filepath.Join(t.TempDir(), "none.sock")); rc != 1 {
		t.Error("no daemon: want exit 1")
	}
}

func TestControlMN(t *testing.T) {
	path, ft := startMobServer(t, node.RoleMN)
	coa := netip.MustParseAddr("203.0.113.10")
	now := time.Now()
	ft.status = mip6.MNStatus{
		State: mip6.BULState(0), HoA: fixture.HoA, HoA4: fixture.HoA4, HA: fixture.HA, HAV4: fixture.HA4,
		CoA: coa, RegisteredCoA: coa, NAT: true, Keepalive: 20 * time.Second, Seq: 7, BUSPI: 0xa001,
		Data:    endpoint.Endpoint{Addr: netip.MustParseAddrPort("198.51.100.1:4500"), Encap: endpoint.EncapUDP},
		Expires: now.Add(time.Minute), HaveBA: true, LastBAStatus: mip6.BAStatus(0),
		LastHandover: now, HandoverDuration: 123 * time.Millisecond,
		Counters: mip6.MNCounters{BUsSent: 4, BAsAccepted: 3, Handovers: 2, Keepalives: 9},
	}
	out, errs, rc := runCLI("mn", "status", "--socket", path)
	if rc != 0 {
		t.Fatalf("mn status = %d: %s", rc, errs)
	}
	for _, want := range []string{
		"2001:db8:1::100, 192.0.2.100", "2001:db8:1::1, 198.51.100.1", "care-of address      203.0.113.10",
		"registered care-of   203.0.113.10", "udp 198.51.100.1:4500", "yes (ESP in UDP 4500)", "keepalive            20s",
		"(took 123ms)", "BUs sent 4, BAs accepted 3", "handovers 2", "seq 7",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("mn status lacks %q:\n%s", want, out)
		}
	}
	out, _, rc = runCLI("mn", "status", "--json", "--socket", path)
	var si control.MNStatusInfo
	if rc != 0 || json.Unmarshal([]byte(out), &si) != nil {
		t.Fatalf("--json: %d %s", rc, out)
	}
	if si.CoA != "203.0.113.10" || !si.NAT || si.BUSPI != 0xa001 || si.HandoverTime != "123ms" || si.Keepalive != "20s" ||
		si.Counters.BUsSent != 4 || si.LastHandover.IsZero() || si.Data != "udp 198.51.100.1:4500" {
		t.Errorf("json status %+v", si)
	}

	// Moves: validated by the client and by the server.
	if out, e, rc := runCLI("mn", "move", "2001:db8:2::100", "--socket", path); rc != 0 || !strings.Contains(out, "2001:db8:2::100") {
		t.Fatalf("mn move = %d %q %q", rc, out, e)
	}
	if _, _, rc := runCLI("mn", "move", "--socket", path, "[203.0.113.10]"); rc != 0 {
		t.Errorf("mn move [v4] = %d", rc)
	}
	if len(ft.moves) != 2 || ft.moves[0] != netip.MustParseAddr("2001:db8:2::100") || ft.moves[1] != coa {
		t.Errorf("moves %v", ft.moves)
	}
	for _, bad := range []string{"nowhere", "2001:db8::1%eth0", ""} {
		if _, e, rc := runCLI("mn", "move", bad, "--socket", path); rc != 1 || !strings.Contains(e, "not an IP address") {
			t.Errorf("mn move %q = %d %q", bad, rc, e)
		}
	}
	ft.moveErr = errors.New("mip6: 255.255.255.255 is not a usable care-of address")
	if _, e, rc := runCLI("mn", "move", "255.255.255.255", "--socket", path); rc != 1 || !strings.Contains(e, "not a usable care-of address") {
		t.Errorf("refused move: %d %q", rc, e)
	}
	if len(ft.moves) != 2 {
		t.Errorf("a refused move was recorded: %v", ft.moves)
	}
	for _, args := range [][]string{{"mn"}, {"mn", "teleport"}, {"mn", "move", "--socket", path}, {"mn", "move", "a", "b", "--socket", path}} {
		if _, _, rc := runCLI(args...); rc != 2 {
			t.Errorf("%v = %d, want 2", args, rc)
		}
	}
	// Raw protocol: malformed args are refused by the server too.
	for _, req := range []string{
		`{"cmd":"mn.move","args":{"coa":"x"}}`,
		`{"cmd":"mn.move","args":{"coa":"2001:db8::1","force":true}}`,
		`{"cmd":"mn.move"}`,
		`{"cmd":"mn.status","args":{"verbose":1}}`,
		`{"cmd":"binding.list","args":[]}`,
	} {
		resp := rawCall(t, path, req)
		if resp.OK || resp.Error == "" {
			t.Errorf("%s answered %+v", req, resp)
		}
	}
	// The HA command on an MN.
	if _, e, rc := runCLI("binding", "list", "--socket", path); rc != 1 || !strings.Contains(e, "not a home agent") || !strings.Contains(e, "it is a mobile node") {
		t.Errorf("binding list on an MN: %d %q", rc, e)
	}
}

// TestControlMobilityOnGateway: a target without a mobility layer answers
// every mobility command with an error that says so.
func TestControlMobilityOnGateway(t *testing.T) {
	s, _ := startServer(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"binding", "list", "--socket", s.Path()}, "not a home agent"},
		{[]string{"mn", "status", "--socket", s.Path()}, "not a mobile node"},
		{[]string{"mn", "move", "2001:db8:2::100", "--socket", s.Path()}, "not a mobile node"},
	} {
		if _, e, rc := runCLI(c.args...); rc != 1 || !strings.Contains(e, c.want) {
			t.Errorf("%v = %d %q", c.args, rc, e)
		}
	}
}

// rawCall sends one request line and decodes the answer.
func rawCall(t *testing.T, path, line string) control.Response {
	t.Helper()
	var raw json.RawMessage
	var req control.Request
	if err := json.Unmarshal([]byte(line), &req); err != nil {
		t.Fatal(err)
	}
	var args any
	if len(req.Args) > 0 {
		args = req.Args
	}
	err := (control.Client{Path: path}).Call(req.Cmd, args, &raw)
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	return control.Response{OK: true, Data: raw}
}
