package control

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/testenv"
	"github.com/mipsec/mipsec/sad"
)

// fakeIKE is an IKEDaemon with a fixed list that Initiate, Terminate and
// Rekey change as a daemon would.
type fakeIKE struct {
	mu     sync.Mutex
	sas    []ike.SAStatus
	stats  ike.Stats
	keys   []ike.WiresharkKey
	calls  []string
	err    error         // returned by Initiate, Terminate and Rekey
	block  chan struct{} // non-nil: they wait for it
	panics bool          // they panic
	nextID uint32
	known  map[string][]string // connection -> children
}

func (f *fakeIKE) do(call string, conn, child string, change func()) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	block, err := f.block, f.err
	f.mu.Unlock()
	if f.panics {
		panic("daemon bug")
	}
	if block != nil {
		<-block
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	children, ok := f.known[conn]
	if !ok {
		return ike.ErrUnknownConnection
	}
	if child != "" && !strings.Contains(" "+strings.Join(children, " ")+" ", " "+child+" ") {
		return fmt.Errorf("%w: %s has no child %q", ike.ErrUnknownConnection, conn, child)
	}
	change()
	return nil
}

func (f *fakeIKE) id() uint32 { f.nextID++; return f.nextID }

func (f *fakeIKE) Initiate(conn, child string) error {
	return f.do("initiate "+conn+" "+child, conn, child, func() {
		sa := ike.SAStatus{Name: conn, ID: f.id(), State: "established", Initiator: true}
		for _, c := range f.known[conn] {
			if child == "" || c == child {
				sa.Children = append(sa.Children, ike.ChildStatus{Name: c, ID: f.id(), State: "installed"})
			}
		}
		f.sas = append(f.sas, sa)
	})
}

func (f *fakeIKE) Terminate(conn string) error {
	return f.do("terminate "+conn, conn, "", func() {
		var keep []ike.SAStatus
		for _, sa := range f.sas {
			if sa.Name != conn {
				keep = append(keep, sa)
			}
		}
		f.sas = keep
	})
}

func (f *fakeIKE) Rekey(conn, child string) error {
	return f.do("rekey "+conn+" "+child, conn, child, func() {
		for i := range f.sas {
			if f.sas[i].Name != conn {
				continue
			}
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

func (f *fakeIKE) List() []ike.SAStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ike.SAStatus(nil), f.sas...)
}

func (f *fakeIKE) Stats() ike.Stats { return f.stats }

func (f *fakeIKE) WiresharkKeys() []ike.WiresharkKey {
	var out []ike.WiresharkKey
	for _, k := range f.keys {
		c := k
		c.SKei, c.SKer = bytes.Clone(k.SKei), bytes.Clone(k.SKer)
		c.SKai, c.SKar = bytes.Clone(k.SKai), bytes.Clone(k.SKar)
		out = append(out, c)
	}
	return out
}

// ikeTarget is a dbTarget with an IKE daemon (nil: none).
type ikeTarget struct {
	*dbTarget
	d IKEDaemon
}

func (t *ikeTarget) IKEDaemon() IKEDaemon { return t.d }

// nodeLike has the node's method, returning no daemon.
type nodeLike struct{ *dbTarget }

func (nodeLike) IKE() *ike.Daemon { return nil }

var ikeNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// goldenSAs: an established initiator behind a NAT with one child, and a
// responder over IPv6 that is still connecting, with a transport-mode
// child whose selectors have protocols, ports and ranges.
func goldenSAs() []ike.SAStatus {
	ts := func(s string, proto uint8, lo, hi uint16) ike.TrafficSelector {
		r := sad.PrefixRange(netip.MustParsePrefix(s))
		return ike.TrafficSelector{Protocol: proto, StartPort: lo, EndPort: hi, Start: r.From, End: r.To}
	}
	return []ike.SAStatus{
		{
			Name: "site-b", ID: 3, State: "established", Initiator: true,
			SPIi: 0x1a2b3c4d5e6f7081, SPIr: 0x8a9b0c1d2e3f4051,
			Local: netip.MustParseAddrPort("192.0.2.1:4500"), Remote: netip.MustParseAddrPort("192.0.2.2:4500"),
			LocalID: "gw-a.example.org", RemoteID: "gw-b.example.org", NATLocal: true, Encap: true,
			Suite: "aes128gcm16/prfsha256/curve25519", Established: ikeNow.Add(-12 * time.Second), RekeyAt: ikeNow.Add(3*time.Hour + 59*time.Minute + 30*time.Second),
			Children: []ike.ChildStatus{{
				Name: "net", ID: 4, State: "installed", Mode: ike.ModeTunnel, Suite: "aes128gcm16/esn",
				InSPI: 0xc1d2e3f4, OutSPI: 0xc5d6e7f8,
				LocalTS: []ike.TrafficSelector{ts("10.1.0.0/16", 0, 0, 0xffff)}, RemoteTS: []ike.TrafficSelector{ts("10.2.0.0/16", 0, 0, 0xffff)},
				Installed: ikeNow.Add(-12 * time.Second), RekeyAt: ikeNow.Add(59 * time.Minute), ExpireAt: ikeNow.Add(65 * time.Minute),
			}},
		},
		{
			Name: "road", ID: 7, State: "connecting", SPIi: 0x0102030405060708,
			Local: netip.MustParseAddrPort("[2001:db8::1]:500"), Remote: netip.MustParseAddrPort("[2001:db8::99]:500"),
			Children: []ike.ChildStatus{{
				Name: "mh", ID: 8, State: "installing", Mode: ike.ModeTransport, InSPI: 0x1001,
				LocalTS: []ike.TrafficSelector{ts("2001:db8::1/128", 135, 0x0500, 0x05ff), ts("2001:db8::1/128", 6, 443, 443)},
				RemoteTS: []ike.TrafficSelector{
					{Protocol: 17, StartPort: 1000, EndPort: 2000, Start: netip.MustParseAddr("2001:db8::10"), End: netip.MustParseAddr("2001:db8::20")},
					{Protocol: 6, StartPort: 0xffff, EndPort: 0, Start: netip.MustParseAddr("2001:db8::99"), End: netip.MustParseAddr("2001:db8::99")},
				},
			}},
		},
	}
}

const goldenIKEText = `road: #7, CONNECTING, IKEv2, 0102030405060708_i 0000000000000000_r*
  local  2001:db8::1[500]
  remote 2001:db8::99[500]
  mh: #8, INSTALLING, TRANSPORT, ESP SPIs: 00001001_i 00000000_o
    local  2001:db8::1/128[mh/5] 2001:db8::1/128[tcp/443]
    remote 2001:db8::10-2001:db8::20[udp/1000-2000] 2001:db8::99/128[tcp/opaque]
site-b: #3, ESTABLISHED, IKEv2, 1a2b3c4d5e6f7081_i* 8a9b0c1d2e3f4051_r
  local  'gw-a.example.org' @ 192.0.2.1[4500] [NAT]
  remote 'gw-b.example.org' @ 192.0.2.2[4500]
  aes128gcm16/prfsha256/curve25519
  established 12s ago, rekeying in 3h59m
  net: #4, INSTALLED, TUNNEL, ESP in UDP SPIs: c1d2e3f4_i c5d6e7f8_o
    aes128gcm16/esn, installed 12s ago, rekeying in 59m, expires in 65m
    local  10.1.0.0/16
    remote 10.2.0.0/16
`

const goldenIKEJSON = `[
  {
    "name": "road",
    "id": 7,
    "state": "connecting",
    "initiator": false,
    "spi_i": "0x0102030405060708",
    "spi_r": "0x0000000000000000",
    "local": "[2001:db8::1]:500",
    "remote": "[2001:db8::99]:500",
    "nat_local": false,
    "nat_remote": false,
    "encap": false,
    "children": [
      {
        "name": "mh",
        "id": 8,
        "state": "installing",
        "mode": "transport",
        "spi_in": "0x00001001",
        "spi_out": "0x00000000",
        "local_ts": [
          "2001:db8::1/128[mh/5]",
          "2001:db8::1/128[tcp/443]"
        ],
        "remote_ts": [
          "2001:db8::10-2001:db8::20[udp/1000-2000]",
          "2001:db8::99/128[tcp/opaque]"
        ]
      }
    ]
  },
  {
    "name": "site-b",
    "id": 3,
    "state": "established",
    "initiator": true,
    "spi_i": "0x1a2b3c4d5e6f7081",
    "spi_r": "0x8a9b0c1d2e3f4051",
    "local": "192.0.2.1:4500",
    "remote": "192.0.2.2:4500",
    "local_id": "gw-a.example.org",
    "remote_id": "gw-b.example.org",
    "nat_local": true,
    "nat_remote": false,
    "encap": true,
    "suite": "aes128gcm16/prfsha256/curve25519",
    "established": "2025-03-04T05:05:55Z",
    "rekey_at": "2025-03-04T09:05:37Z",
    "children": [
      {
        "name": "net",
        "id": 4,
        "state": "installed",
        "mode": "tunnel",
        "suite": "aes128gcm16/esn",
        "spi_in": "0xc1d2e3f4",
        "spi_out": "0xc5d6e7f8",
        "local_ts": [
          "10.1.0.0/16"
        ],
        "remote_ts": [
          "10.2.0.0/16"
        ],
        "installed": "2025-03-04T05:05:55Z",
        "rekey_at": "2025-03-04T06:05:07Z",
        "expire_at": "2025-03-04T06:11:07Z"
      }
    ]
  }
]
`

func newIKEServer(t *testing.T, d IKEDaemon) *Server {
	t.Helper()
	ft := &ikeTarget{dbTarget: newDBTarget(t), d: d}
	s := &Server{t: ft, log: zap.NewNop()}
	s.capture = newCaptureHub(ft)
	return s
}

// call runs one request line through the server as serveConn does.
func call(t *testing.T, s *Server, line string) (json.RawMessage, string) {
	t.Helper()
	_, resp, _ := s.handleLine([]byte(line))
	b, err := json.Marshal(resp.Data)
	if err != nil {
		t.Fatal(err)
	}
	if resp.OK == (resp.Error != "") {
		t.Fatalf("%s: answer %+v", line, resp)
	}
	return b, resp.Error
}

// TestIKEListGolden: ike.list's answer for a fixed status, as JSON
// (sorted by name, snake_case keys, SPIs in hex, no keys) and as
// `mipsec ike list` prints it.
func TestIKEListGolden(t *testing.T) {
	f := &fakeIKE{sas: goldenSAs()}
	// Key material the list must never carry.
	f.keys = []ike.WiresharkKey{{SPIi: 1, SKei: []byte{0xde, 0xad, 0xbe, 0xef}}}
	s := newIKEServer(t, f)
	raw, errs := call(t, s, `{"cmd":"ike.list"}`)
	if errs != "" {
		t.Fatal(errs)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	if got := pretty.String() + "\n"; got != goldenIKEJSON {
		t.Errorf("ike.list JSON:\n%s\nwant:\n%s", got, goldenIKEJSON)
	}
	if bytes.Contains(raw, []byte("deadbeef")) || bytes.Contains(raw, []byte("sk_")) {
		t.Errorf("ike.list carries keys: %s", raw)
	}
	var sas []IKESAInfo
	if err := json.Unmarshal(raw, &sas); err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	WriteIKESAs(&text, sas, ikeNow)
	if text.String() != goldenIKEText {
		t.Errorf("text:\n%s\nwant:\n%s", text.String(), goldenIKEText)
	}
	// The JSON decodes back to the same wire form.
	again, _ := json.Marshal(sas)
	if !bytes.Equal(again, raw) {
		t.Errorf("round trip:\n%s\n%s", again, raw)
	}

	text.Reset()
	WriteIKESAs(&text, nil, ikeNow)
	if text.String() != "no IKE SAs\n" {
		t.Errorf("empty: %q", text.String())
	}
	raw, _ = call(t, newIKEServer(t, &fakeIKE{}), `{"cmd":"ike.list"}`)
	if string(raw) != "[]" {
		t.Errorf("empty list: %s, want []", raw)
	}
}

func TestIKEHumanDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"}, {0, "0s"}, {1500 * time.Millisecond, "1s"}, {119 * time.Second, "119s"},
		{2 * time.Minute, "2m"}, {65*time.Minute + 59*time.Second, "65m"}, {2 * time.Hour, "2h0m"},
		{3*time.Hour + 59*time.Minute + 59*time.Second, "3h59m"}, {49 * time.Hour, "49h0m"},
	} {
		if got := HumanDuration(tt.d); got != tt.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestIKEActions: initiate, terminate and rekey reach the daemon with the
// names given and answer the connection's IKE SA before and after; the
// daemon's errors are the answer's.
func TestIKEActions(t *testing.T) {
	f := &fakeIKE{known: map[string][]string{"site-b": {"net", "dmz"}}, nextID: 2}
	s := newIKEServer(t, f)
	raw, errs := call(t, s, `{"cmd":"ike.initiate","args":{"name":"site-b","child":"net"}}`)
	if errs != "" {
		t.Fatal(errs)
	}
	var a IKEActionInfo
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	if a.Action != "initiate" || a.Name != "site-b" || a.Child != "net" || a.Before != nil || a.After == nil ||
		a.After.ID != 3 || len(a.After.Children) != 1 || a.After.Children[0].ID != 4 || a.After.Children[0].State != "installed" {
		t.Errorf("initiate answer %s", raw)
	}
	raw, errs = call(t, s, `{"cmd":"ike.rekey","args":{"name":"site-b","child":"net","timeout":"5s"}}`)
	if errs != "" {
		t.Fatal(errs)
	}
	a = IKEActionInfo{}
	json.Unmarshal(raw, &a)
	if a.Before == nil || a.After == nil || a.Before.Children[0].ID != 4 || a.After.Children[0].ID != 5 {
		t.Errorf("rekey answer %s", raw)
	}
	raw, errs = call(t, s, `{"cmd":"ike.terminate","args":{"name":"site-b"}}`)
	if errs != "" {
		t.Fatal(errs)
	}
	a = IKEActionInfo{}
	json.Unmarshal(raw, &a)
	if a.Before == nil || a.Before.ID != 3 || a.After != nil {
		t.Errorf("terminate answer %s", raw)
	}
	if want := []string{"initiate site-b net", "rekey site-b net", "terminate site-b"}; strings.Join(f.calls, ";") != strings.Join(want, ";") {
		t.Errorf("calls %q, want %q", f.calls, want)
	}

	// Unknown names: the daemon's error, naming what was asked for.
	for line, want := range map[string]string{
		`{"cmd":"ike.initiate","args":{"name":"nope"}}`:               "ike.initiate: nope: no such connection",
		`{"cmd":"ike.rekey","args":{"name":"site-b","child":"nope"}}`: `ike.rekey: no such connection: site-b has no child "nope"`,
		`{"cmd":"ike.terminate","args":{"name":"nope"}}`:              "ike.terminate: nope: no such connection",
	} {
		if _, errs := call(t, s, line); errs != want {
			t.Errorf("%s:\n got  %q\n want %q", line, errs, want)
		}
	}
	// A panic in the daemon's call is an error answer, not a dead server.
	f.panics = true
	if _, errs := call(t, s, `{"cmd":"ike.rekey","args":{"name":"site-b"}}`); errs != "ike.rekey: internal error" {
		t.Errorf("panicking daemon: %q", errs)
	}
	f.panics = false
	f.err = errors.New("ike: site-b: AUTHENTICATION_FAILED")
	if _, errs := call(t, s, `{"cmd":"ike.initiate","args":{"name":"site-b"}}`); errs != "ike.initiate: ike: site-b: AUTHENTICATION_FAILED" {
		t.Errorf("daemon error: %q", errs)
	}
}

// TestIKETimeout: a daemon that does not answer is waited for as long as
// the request says, and the answer says so.
func TestIKETimeout(t *testing.T) {
	f := &fakeIKE{known: map[string][]string{"site-b": {"net"}}, block: make(chan struct{})}
	defer close(f.block)
	s := newIKEServer(t, f)
	start := time.Now()
	_, errs := call(t, s, `{"cmd":"ike.initiate","args":{"name":"site-b","timeout":"200ms"}}`)
	if el := time.Since(start); el < 200*time.Millisecond || el > 5*time.Second {
		t.Errorf("answered after %v", el)
	}
	if !strings.HasPrefix(errs, "ike.initiate: site-b: timed out after 200ms") {
		t.Errorf("answer %q", errs)
	}
}

// TestIKENoDaemon: without IKE connections every ike command says so,
// and stats have no ike part.
func TestIKENoDaemon(t *testing.T) {
	for _, target := range []Target{newDBTarget(t), &ikeTarget{dbTarget: newDBTarget(t)}, nodeLike{newDBTarget(t)}} {
		s := &Server{t: target, log: zap.NewNop()}
		for _, line := range []string{`{"cmd":"ike.list"}`, `{"cmd":"ike.wireshark"}`, `{"cmd":"ike.initiate","args":{"name":"a"}}`,
			`{"cmd":"ike.terminate","args":{"name":"a"}}`, `{"cmd":"ike.rekey","args":{"name":"a"}}`} {
			cmd := strings.Split(line, `"`)[3]
			if _, errs := call(t, s, line); errs != cmd+": "+ErrNoIKE.Error() {
				t.Errorf("%T %s: %q", target, line, errs)
			}
		}
		raw, _ := call(t, s, `{"cmd":"stats"}`)
		if bytes.Contains(raw, []byte(`"ike"`)) {
			t.Errorf("%T: stats has an ike part: %s", target, raw)
		}
	}
}

// TestIKEStats: the IKE counters are in the stats answer, every map key
// kept.
func TestIKEStats(t *testing.T) {
	f := &fakeIKE{stats: ike.Stats{IKESAs: 2, ChildSAs: 3, HalfOpen: 1,
		Exchanges: map[string]uint64{"IKE_SA_INIT": 4, "IKE_AUTH": 5}, Failures: map[string]uint64{"auth_failed": 6, "timeout": 0},
		Rekeys: 7, Retransmits: 8, CookiesSent: 9, ESPMoves: 10, MOBIKEUpdates: 11, Relocations: 12, Renewals: 13}}
	raw, errs := call(t, newIKEServer(t, f), `{"cmd":"stats"}`)
	if errs != "" {
		t.Fatal(errs)
	}
	var st struct {
		IKE json.RawMessage `json:"ike"`
	}
	json.Unmarshal(raw, &st)
	want := `{"ike_sas":2,"child_sas":3,"half_open":1,"exchanges":{"IKE_AUTH":5,"IKE_SA_INIT":4},"failures":{"auth_failed":6,"timeout":0},"rekeys":7,"retransmits":8,"cookies_sent":9,"esp_moves":10,"mobike_updates":11,"relocations":12,"renewals":13}`
	if string(st.IKE) != want {
		t.Errorf("stats ike:\n got  %s\n want %s", st.IKE, want)
	}
}

// TestIKEStrict: malformed ike requests are refused with the error the
// other commands give, before the daemon hears of them.
func TestIKEStrict(t *testing.T) {
	f := &fakeIKE{known: map[string][]string{"site-b": {"net"}}}
	s := newIKEServer(t, f)
	long := strings.Repeat("a", MaxIKENameLen+1)
	for _, tt := range []struct{ line, want string }{
		{`{"cmd":"ike.initiate"}`, "ike.initiate: malformed request: args: name is required"},
		{`{"cmd":"ike.initiate","args":{}}`, "ike.initiate: malformed request: args: name is required"},
		{`{"cmd":"ike.initiate","args":{"name":"site-b","nope":1}}`, `ike.initiate: malformed request: args: json: unknown field "nope"`},
		{`{"cmd":"ike.initiate","args":{"name":"site-b","name":"x"}}`, `malformed request: duplicate key "name" in args`},
		{`{"cmd":"ike.initiate","args":{"name":1}}`, "ike.initiate: malformed request: args: json: cannot unmarshal number into Go struct field IKEArgs.name of type string"},
		{`{"cmd":"ike.initiate","args":{"name":"` + long + `"}}`, "ike.initiate: malformed request: args: name is 129 bytes long; names are at most 128"},
		{`{"cmd":"ike.rekey","args":{"name":"site-b","child":"` + long + `"}}`, "ike.rekey: malformed request: args: child is 129 bytes long; names are at most 128"},
		{"{\"cmd\":\"ike.initiate\",\"args\":{\"name\":\"site\xff\"}}", "malformed request: not valid UTF-8"},
		{`{"cmd":"ike.initiate","args":{"name":"site\ufffd"}}`, `ike.initiate: malformed request: args: name "site\ufffd" is not valid UTF-8`},
		{`{"cmd":"ike.initiate","args":{"name":"a\u0000b"}}`, `ike.initiate: malformed request: args: name "a\x00b" holds the control or invisible character U+0000`},
		{`{"cmd":"ike.initiate","args":{"name":"site\u200bb"}}`, `ike.initiate: malformed request: args: name "site\u200bb" holds the control or invisible character U+200B`},
		{`{"cmd":"ike.terminate","args":{"name":"site-b","child":"net"}}`, "ike.terminate: malformed request: args: terminate takes no child (it deletes the IKE SA with all its children)"},
		{`{"cmd":"ike.initiate","args":{"name":"site-b","timeout":"forever"}}`, `ike.initiate: malformed request: args: timeout "forever": want a duration above 0 and at most 10m0s`},
		{`{"cmd":"ike.initiate","args":{"name":"site-b","timeout":"-1s"}}`, `ike.initiate: malformed request: args: timeout "-1s": want a duration above 0 and at most 10m0s`},
		{`{"cmd":"ike.initiate","args":{"name":"site-b","timeout":"11m"}}`, `ike.initiate: malformed request: args: timeout "11m": want a duration above 0 and at most 10m0s`},
		{`{"cmd":"ike.initiate","args":["site-b"]}`, "ike.initiate: malformed request: args: json: cannot unmarshal array into Go value of type control.IKEArgs"},
		{`{"cmd":"ike.list","args":{"wireshark":true}}`, `ike.list: malformed request: args: json: unknown field "wireshark"`},
		{`{"cmd":"ike.wireshark","args":{"x":1}}`, `ike.wireshark: malformed request: args: json: unknown field "x"`},
	} {
		_, errs := call(t, s, tt.line)
		if errs != tt.want {
			t.Errorf("%q:\n got  %q\n want %q", tt.line, errs, tt.want)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("the daemon was called: %q", f.calls)
	}
}

// TestIKEOverTheSocket: the commands through Listen and Client, the
// client's own timeout included.
func TestIKEOverTheSocket(t *testing.T) {
	f := &fakeIKE{sas: goldenSAs(), known: map[string][]string{"site-b": {"net"}}, nextID: 10}
	dir, err := os.MkdirTemp("", "mipsec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv, err := Listen(filepath.Join(dir, "s.sock"), &ikeTarget{dbTarget: newDBTarget(t), d: f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := Client{Path: srv.Path()}
	var sas []IKESAInfo
	if err := c.Call("ike.list", nil, &sas); err != nil || len(sas) != 2 || sas[1].SPIi != 0x1a2b3c4d5e6f7081 {
		t.Fatalf("ike.list: %v %+v", err, sas)
	}
	var a IKEActionInfo
	if err := c.Call("ike.initiate", IKEArgs{Name: "site-b", Child: "net"}, &a); err != nil || a.After == nil || a.After.ID != 11 {
		t.Errorf("ike.initiate: %v %+v", err, a)
	}
	f.mu.Lock()
	f.block = make(chan struct{})
	f.mu.Unlock()
	defer close(f.block)
	c.Timeout = 300 * time.Millisecond
	start := time.Now()
	err = c.Call("ike.initiate", IKEArgs{Name: "site-b", Timeout: "10s"}, nil)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("client timeout: %v after %v", err, time.Since(start))
	}
}

// TestIKEWiresharkLines: the ikev2_decryption_table line format of
// ike/crypto_tshark_test.go, keys only from ike.wireshark.
func TestIKEWiresharkLines(t *testing.T) {
	f := &fakeIKE{keys: []ike.WiresharkKey{
		{SPIi: 0x1a2b3c4d5e6f7081, SPIr: 0x8a9b0c1d2e3f4051, SKei: []byte{1, 2, 3}, SKer: []byte{4, 5, 6},
			EncrName: "AES-GCM-128 with 16 octet ICV [RFC5282]", IntegName: "NONE [RFC4306]"},
		{SPIi: 1, SPIr: 2, SKei: []byte{0xab}, SKer: []byte{0xcd}, EncrName: "AES-CBC-256 [RFC3602]",
			SKai: []byte{0xef}, SKar: []byte{0x01}, IntegName: "HMAC_SHA2_256_128 [RFC4868]"},
		{SPIi: 3, SPIr: 4, SKei: []byte{1}, SKer: []byte{2}, EncrName: `evil", "x`, IntegName: "NONE [RFC4306]"},
		{SPIi: 5, SPIr: 6, EncrName: "AES-CBC-256 [RFC3602]", IntegName: "NONE [RFC4306]"},
	}}
	s := newIKEServer(t, f)
	raw, errs := call(t, s, `{"cmd":"ike.wireshark"}`)
	if errs != "" {
		t.Fatal(errs)
	}
	var keys []IKEWiresharkKey
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	var out, notes bytes.Buffer
	WriteIKEWireshark(&out, &notes, keys)
	want := `1a2b3c4d5e6f7081,8a9b0c1d2e3f4051,010203,040506,"AES-GCM-128 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"
0000000000000001,0000000000000002,ab,cd,"AES-CBC-256 [RFC3602]",ef,01,"HMAC_SHA2_256_128 [RFC4868]"
`
	if out.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", out.String(), want)
	}
	if strings.Count(notes.String(), "left out") != 2 || !strings.Contains(notes.String(), "0000000000000003_i") || !strings.Contains(notes.String(), "0000000000000005_i") {
		t.Errorf("notes: %q", notes.String())
	}
	if _, ok := IKEWiresharkLine(IKEWiresharkKey{SKei: "zz", SKer: "00", Encryption: "x", Integrity: "y"}); ok {
		t.Error("a key that is not hex made a line")
	}
}

// ipv4UDP is an IPv4/UDP packet (port 500 to 500) carrying payload.
func ipv4UDP(src, dst [4]byte, payload []byte) []byte {
	n := 28 + len(payload)
	p := []byte{0x45, 0, byte(n >> 8), byte(n), 0, 0, 0x40, 0, 64, 17, 0, 0}
	p = append(append(p, src[:]...), dst[:]...)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(p[i])<<8 | uint32(p[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	p = binary.BigEndian.AppendUint16(p, 500)
	p = binary.BigEndian.AppendUint16(p, 500)
	p = binary.BigEndian.AppendUint16(p, uint16(8+len(payload)))
	p = append(p, 0, 0)
	return append(p, payload...)
}

// TestIKEWiresharkTshark: tshark decrypts an IKE_AUTH request sealed with
// ike's keys, given only the line `mipsec ike list --wireshark` prints for
// them, written to its ikev2_decryption_table file.
func TestIKEWiresharkTshark(t *testing.T) {
	tshark := testenv.NeedCommand(t, "tshark")
	dir := t.TempDir()
	suites := []struct {
		suite       ike.SKSuite
		encr, integ string
	}{
		{ike.SKSuite{Encr: ike.EncrAESGCM16, KeyBits: 256}, "AES-GCM-256 with 16 octet ICV [RFC5282]", "NONE [RFC4306]"},
		{ike.SKSuite{Encr: ike.EncrAESCBC, KeyBits: 128, Integ: ike.IntegHMACSHA2_256_128}, "AES-CBC-128 [RFC3602]", "HMAC_SHA2_256_128 [RFC4868]"},
	}
	fqdn := "initiator.example.org"
	// IDi (ID_FQDN), the only inner payload.
	inner := []byte{0, 0, 0, byte(8 + len(fqdn)), 2, 0, 0, 0}
	inner = append(inner, fqdn...)
	pcap := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 101, 0, 0, 0} // LINKTYPE_RAW
	f := &fakeIKE{}
	for i, tc := range suites {
		spii, spir := uint64(0x1111_0000+i), uint64(0x2222_0000+i)
		seed := bytes.Repeat([]byte{byte(i + 1)}, 32)
		ni, nr := bytes.Repeat([]byte{0x10}, 32), bytes.Repeat([]byte{0x20}, 32)
		skeyseed, err := ike.SKEYSEED(ike.PRFHMACSHA2_256, ni, nr, seed)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ike.DeriveIKEKeys(ike.PRFHMACSHA2_256, tc.suite, skeyseed, ni, nr, spii, spir)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := ike.NewSKCiphers(tc.suite, k, true)
		if err != nil {
			t.Fatal(err)
		}
		prefix := make([]byte, 32)
		binary.BigEndian.PutUint64(prefix[0:], spii)
		binary.BigEndian.PutUint64(prefix[8:], spir)
		prefix[16], prefix[17], prefix[18], prefix[19] = 46, 0x20, 35, 0x08 // SK, IKEv2, IKE_AUTH, initiator
		binary.BigEndian.PutUint32(prefix[20:], 1)
		prefix[28] = 35 // SK's first inner payload: IDi
		msg, err := out.Seal(nil, prefix, inner)
		if err != nil {
			t.Fatal(err)
		}
		pkt := ipv4UDP([4]byte{192, 0, 2, 1}, [4]byte{192, 0, 2, 2}, msg)
		pcap = binary.LittleEndian.AppendUint32(pcap, uint32(i+1))
		pcap = binary.LittleEndian.AppendUint32(pcap, 0)
		pcap = binary.LittleEndian.AppendUint32(pcap, uint32(len(pkt)))
		pcap = binary.LittleEndian.AppendUint32(pcap, uint32(len(pkt)))
		pcap = append(pcap, pkt...)
		f.keys = append(f.keys, ike.WiresharkKey{SPIi: spii, SPIr: spir, SKei: k.SKei, SKer: k.SKer, EncrName: tc.encr,
			SKai: k.SKai, SKar: k.SKar, IntegName: tc.integ})
	}
	raw, errs := call(t, newIKEServer(t, f), `{"cmd":"ike.wireshark"}`)
	if errs != "" {
		t.Fatal(errs)
	}
	var keys []IKEWiresharkKey
	json.Unmarshal(raw, &keys)
	var table, notes bytes.Buffer
	WriteIKEWireshark(&table, &notes, keys)
	if notes.Len() != 0 {
		t.Fatalf("notes: %s", notes.String())
	}
	if err := os.MkdirAll(filepath.Join(dir, "wireshark"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wireshark", "ikev2_decryption_table"), table.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "ike.pcap")
	if err := os.WriteFile(file, pcap, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		cmd := exec.Command(tshark, "-n", "-r", file, "-T", "fields", "-e", "frame.number", "-e", "isakmp.id.data.fqdn")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, got)
		}
		return string(got)
	}
	want := ""
	for i := range suites {
		want += fmt.Sprintf("%d\t%s\n", i+1, fqdn)
	}
	if got := run(); got != want {
		t.Errorf("tshark with the table\n%s\nprinted\n%s\nwant\n%s", table.String(), got, want)
	}
	// The same table with the first SK_ei's first byte changed decrypts
	// only the second message: tshark reads the keys from the lines.
	bad := table.Bytes()
	i := bytes.IndexByte(bad, ',') + 18
	if bad[i] == '0' {
		bad[i] = '1'
	} else {
		bad[i] = '0'
	}
	os.WriteFile(filepath.Join(dir, "wireshark", "ikev2_decryption_table"), bad, 0o600)
	if got, want := run(), "1\t\n2\t"+fqdn+"\n"; got != want {
		t.Errorf("tshark with a wrong key printed\n%s\nwant\n%s", got, want)
	}
}
