package control

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/sad"
)

// TestDecodeStrictDuplicateKeys (issue "Safety and reliability" §5):
// encoding/json keeps the last of two equal keys silently; DecodeStrict
// refuses them at any depth and names the key and where it is.
func TestDecodeStrictDuplicateKeys(t *testing.T) {
	type sel struct {
		Local  string `json:"local"`
		Remote string `json:"remote"`
	}
	type args struct {
		Dir       string `json:"dir"`
		SPI       SPI    `json:"spi"`
		Selectors []sel  `json:"selectors"`
		Lifetime  struct {
			Soft struct {
				Bytes int `json:"bytes"`
			} `json:"soft"`
		} `json:"lifetime"`
	}
	type req struct {
		Cmd  string `json:"cmd"`
		Args args   `json:"args"`
	}
	for _, tt := range []struct {
		in, want string // want "": accepted
	}{
		{`{"cmd":"sa.del","args":{"dir":"in","spi":45057}}`, ""},
		{`{"cmd":"sa.del","args":{"dir":"in","selectors":[{"local":"a"},{"local":"b"}]}}`, ""}, // a key again in a sibling is fine
		{`{"cmd":"sa.del","cmd":"status"}`, `duplicate key "cmd"`},
		{`{"cmd":"sa.del","args":{"dir":"in","dir":"out","spi":45057}}`, `duplicate key "dir" in args`},
		{`{"cmd":"sa.del","args":{"selectors":[{"local":"a"},{"local":"b","local":"c"}]}}`, `duplicate key "local" in args.selectors[1]`},
		{`{"cmd":"x","args":{"lifetime":{"soft":{"bytes":1,"bytes":2}}}}`, `duplicate key "bytes" in args.lifetime.soft`},
		{`{"cmd":"sa.del","args":{"dir":"in","DIR":"out"}}`, `duplicate key "DIR" in args (the same key as "dir": keys match without regard to case)`},
		{`{"cmd":"sa.del","args":{"spi":1,"ſpi":2}}`, `duplicate key "ſpi" in args (the same key as "spi": keys match without regard to case)`}, // LATIN SMALL LETTER LONG S folds to s
		{`{"cmd":"sa.del","args":{"spi":1,"spi":1}}`, `duplicate key "spi" in args`},                                                            // even with the same value
		{`{"cmd":"x","args":{"d\u0069r":"in","dir":"out"}}`, `duplicate key "dir" in args`},                                                     // escapes are decoded first
		// Malformed JSON keeps the decoder's own words.
		{`{"cmd":"sa.del",}`, "invalid character '}' looking for beginning of object key string"},
		{`{"cmd":"sa.del"} {}`, "trailing data after the JSON object"},
		{`{"cmd":"sa.del","nope":1}`, `json: unknown field "nope"`},
	} {
		var r req
		err := DecodeStrict([]byte(tt.in), &r)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.in, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("%s:\n got  %v\n want %s", tt.in, err, tt.want)
		}
	}
	// Values of any type (json.RawMessage, any) are walked too.
	var raw struct {
		Cmd  string          `json:"cmd"`
		Args json.RawMessage `json:"args"`
	}
	if err := DecodeStrict([]byte(`{"cmd":"x","args":[{"a":1,"a":2}]}`), &raw); err == nil || err.Error() != `duplicate key "a" in args[0]` {
		t.Errorf("raw args: %v", err)
	}
	var anyv any
	if err := DecodeStrict([]byte(`[[{"k":1}],{"k":1,"k":2}]`), &anyv); err == nil || err.Error() != `duplicate key "k" in [1]` {
		t.Errorf("any: %v", err)
	}
}

// TestDecodeStrictDepth: nesting is bounded before it is decoded.
func TestDecodeStrictDepth(t *testing.T) {
	const MaxJSONDepth = 32
	var v any
	ok := strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth)
	if err := DecodeStrict([]byte(ok), &v); err != nil {
		t.Errorf("%d levels: %v", MaxJSONDepth, err)
	}
	deep := strings.Repeat(`{"a":`, MaxJSONDepth) + "1" + strings.Repeat("}", MaxJSONDepth)
	if err := DecodeStrict([]byte(deep), &v); err != nil {
		t.Errorf("%d levels of objects: %v", MaxJSONDepth, err)
	}
	tooDeep := strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1)
	if err := DecodeStrict([]byte(tooDeep), &v); err == nil || err.Error() != "JSON nested deeper than 32 levels" {
		t.Errorf("%d levels: %v", MaxJSONDepth+1, err)
	}
	// A request line of nothing but brackets is refused without recursing
	// through all of it.
	huge := strings.Repeat("[", MaxRequestLen)
	if err := DecodeStrict([]byte(huge), &v); err == nil {
		t.Error("64 KiB of [ accepted")
	}
}

// TestDuplicateKeysOverTheSocketPath: a request with a duplicate key does
// nothing. With the last key winning, this sa.del would delete the
// inbound SA 0xb001.
func TestDuplicateKeysOverTheSocketPath(t *testing.T) {
	ft := newDBTarget(t)
	s := &Server{t: ft, log: zap.NewNop()}
	s.capture = newCaptureHub(ft)
	_, resp, ok := s.handleLine([]byte(`{"cmd":"sa.del","args":{"dir":"out","dir":"in","spi":45057}}`))
	if ok || resp.OK || resp.Error != `malformed request: duplicate key "dir" in args` {
		t.Errorf("answer %+v, ok %v", resp, ok)
	}
	if ft.sad.Lookup(sad.Inbound, 0xb001) == nil {
		t.Error("the SA was deleted")
	}
	// decodeArgs alone (args that reach a handler some other way).
	var ref SARef
	if err := decodeArgs(json.RawMessage(`{"dir":"in","spi":1,"spi":2}`), &ref); err == nil || err.Error() != `malformed request: args: duplicate key "spi"` {
		t.Errorf("decodeArgs: %v", err)
	}
}

// TestListenMessages (§6): Listen's errors name the path and say what
// stands in the way in config.SocketProblem's words, never "control
// socket", which its caller (the daemon: "control socket: ...") adds.
func TestListenMessages(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	long := "/tmp/" + strings.Repeat("x", 110)
	for _, path := range []string{dir, long, plain, plain + "/s.sock"} {
		_, err := Listen(path, newDBTarget(t), nil)
		if err == nil {
			t.Fatalf("%s: listening", path)
		}
		if want := config.SocketProblem(path); err.Error() != want {
			t.Errorf("%s:\n got  %v\n want %s", path, err, want)
		}
		if strings.Contains(err.Error(), "control socket") {
			t.Errorf("%q names the control socket itself", err)
		}
	}
	// Another daemon answers: the path, then ErrDaemonRunning.
	sock := filepath.Join(dir, "d.sock")
	s, err := Listen(sock, newDBTarget(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Listen(sock, newDBTarget(t), nil)
	if !errors.Is(err, ErrDaemonRunning) || err.Error() != sock+": "+ErrDaemonRunning.Error() {
		t.Errorf("second Listen: %v", err)
	}
	// The directory cannot be created: the path is in the error.
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o500)
		_, err := Listen(filepath.Join(ro, "sub", "s.sock"), newDBTarget(t), nil)
		if err == nil || !strings.HasPrefix(err.Error(), "creating its directory: mkdir "+filepath.Join(ro, "sub")) {
			t.Errorf("unwritable parent: %v", err)
		}
	}
}
