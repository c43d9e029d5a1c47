package control

import (
	"encoding/json"
	"net/netip"
	"testing"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// dbTarget is a Target over real databases and nothing else.
type dbTarget struct {
	sad *sad.DB
	spd *spd.DB
}

func newDBTarget(t *testing.T) *dbTarget {
	db := sad.New(sad.Options{})
	t.Cleanup(db.Close)
	// One inbound CBC SA, so that deletes and lists have something.
	if _, err := db.Add(sad.Config{Dir: sad.Inbound, Params: esp.Params{SPI: 0xb001, Algorithm: esp.AES128CBCSHA256,
		EncKey: make([]byte, 16), AuthKey: make([]byte, 32), Mode: esp.Tunnel,
		TunnelSrc: netip.MustParseAddr("203.0.113.1"), TunnelDst: netip.MustParseAddr("198.51.100.1")},
		Selectors: []sad.Selector{{}}}); err != nil {
		t.Fatal(err)
	}
	return &dbTarget{sad: db, spd: spd.New(db)}
}

func (f *dbTarget) SAD() *sad.DB                { return f.sad }
func (f *dbTarget) SPD() *spd.DB                { return f.spd }
func (f *dbTarget) Status() StatusInfo          { return StatusInfo{Version: "test"} }
func (f *dbTarget) AddSA(c sad.Config) error    { _, err := f.sad.Add(c); return err }
func (f *dbTarget) UpdateSA(c sad.Config) error { _, _, err := f.sad.Replace(c); return err }
func (f *dbTarget) DelSA(dir sad.Direction, spi uint32) error {
	_, err := f.sad.Delete(dir, spi)
	return err
}
func (f *dbTarget) DelPolicy(name string) error                         { return f.spd.Delete(name) }
func (f *dbTarget) SAKeys(sad.Direction, uint32) ([]byte, []byte, bool) { return nil, nil, false }
func (f *dbTarget) Peers() []dataplane.PeerStatus                       { return nil }
func (f *dbTarget) DataplaneStats() dataplane.Stats                     { return dataplane.Stats{} }
func (f *dbTarget) SetCapture(dataplane.Capture)                        {}
func (f *dbTarget) AddPolicy(index int, p spd.Policy) error {
	if index < 0 {
		return f.spd.Append(p)
	}
	return f.spd.Insert(index, p)
}

// FuzzControlLine runs arbitrary request lines through the parser and the
// command handlers: every line gets exactly one of an OK answer or an error
// text, and never a panic. Changes are allowed (a valid sa.add may add an
// SA); the database must stay consistent.
func FuzzControlLine(f *testing.F) {
	for _, seed := range []string{
		`{"cmd":"status"}`, `{"cmd":"sa.list"}`, `{"cmd":"stats"}`, `{"cmd":"peers"}`,
		`{"cmd":"sa.del","args":{"dir":"in","spi":45057}}`,
		`{"cmd":"sa.add","args":{"dir":"out","spi":4097,"algorithm":"aes128gcm16","enc_key":"1111111111111111111111111111111111111111","local":"192.0.2.1","remote":"192.0.2.2","selectors":[{"local":"10.0.0.0/8","proto":"tcp","local_port":"1-2"}]}}`,
		`{"cmd":"policy.add","args":{"name":"p","dir":"out","action":"discard","selectors":[{"remote":"10.0.0.1-10.0.0.9"}],"index":0}}`,
		`{"cmd":"policy.del","args":{"name":"protect"}}`,
		`{"cmd":"sa.wireshark"}`, `{"cmd":"capture"}`, `null`, `[]`, `{"cmd":1}`, "\xff",
		`{"cmd":"ike.list"}`, `{"cmd":"ike.wireshark"}`,
		`{"cmd":"ike.initiate","args":{"name":"site-b","child":"net","timeout":"1ms"}}`,
		`{"cmd":"ike.terminate","args":{"name":"site-b"}}`,
		`{"cmd":"ike.rekey","args":{"name":"site-b","child":""}}`,
		"{\"cmd\":\"ike.initiate\",\"args\":{\"name\":\"s\xffb\"}}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ft := newDBTarget(t)
		// With an IKE daemon (ike_test.go's fake), so that the ike
		// commands run past their argument checks.
		it := &ikeTarget{dbTarget: ft, d: &fakeIKE{sas: goldenSAs(), known: map[string][]string{"site-b": {"net"}},
			keys: []ike.WiresharkKey{{SPIi: 1, SPIr: 2, SKei: []byte{1}, SKer: []byte{2}, EncrName: "e", IntegName: "i"}}}}
		s := &Server{t: it, log: zap.NewNop()}
		s.capture = newCaptureHub(it)
		req, resp, ok := s.handleLine(line)
		if ok && req.Cmd == "capture" {
			return
		}
		if resp.OK == (resp.Error != "") {
			t.Fatalf("answer %+v: want exactly one of ok and error", resp)
		}
		if !ok && resp.OK {
			t.Fatal("unparsable line answered ok")
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("answer does not marshal: %v", err)
		}
		for _, sa := range ft.sad.List() {
			if sa.SPI() == 0 {
				t.Fatal("SA with SPI 0")
			}
		}
	})
}
