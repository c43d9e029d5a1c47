package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/internal/fixture"
)

// gatewayA writes testdata/gateway-a.toml into dir with its state in a
// fresh directory and edit applied to the text; it returns the file.
func gatewayA(t *testing.T, dir string, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(withStateDir(t, "../../testdata/gateway-a.toml", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	s := edit(string(data))
	file := filepath.Join(dir, "gateway-a.toml")
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// replaceOnce replaces old, which must be in s, once.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q not in the config", old)
	}
	return strings.Replace(s, old, new, 1)
}

// errorLines are the lines of a command's stderr without its summary
// ("FILE: 1 error", "...; nothing started").
func errorLines(stderr, file string) []string {
	var out []string
	for l := range strings.SplitSeq(strings.TrimSpace(stderr), "\n") {
		if strings.HasPrefix(l, file+": ") && strings.Contains(l, " error") && (strings.HasSuffix(l, " error") || strings.HasSuffix(l, " errors") || strings.HasSuffix(l, "nothing started")) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// TestCheckSaysWhatRunSays (issue "Safety and reliability" §5): for what
// `check` used to pass and `run` refused only later (a state_dir that is a
// file, a control socket path that is a directory or too long, a key file
// or a configuration file of any size, duplicate keys, invisible
// characters), check (checkConfig), run (the `run` command, which loads
// the file as a reload does) and config.Load all refuse, with the same
// file:line messages, and run starts nothing.
func TestCheckSaysWhatRunSays(t *testing.T) {
	plainFile := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plainFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := "/tmp/" + strings.Repeat("d", 120) + "/mipsec.sock"
	const socketLine = `socket = "/run/mipsec/gateway-a.sock"`
	const encKeyLine = `enc_key = "0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223"`
	for _, tt := range []struct {
		name string
		file func(t *testing.T, dir string) string
		want string // in the first message
		// maxAlloc bounds what check allocates (0: not measured).
		maxAlloc uint64
	}{
		{name: "state_dir is a file", want: "state_dir: " + plainFile + " is a regular file, not a directory",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string { return fixture.SetStateDir(t, s, plainFile) })
			}},
		{name: "state_dir is /etc/passwd", want: "state_dir: /etc/passwd is a regular file, not a directory",
			file: func(t *testing.T, dir string) string {
				if fi, err := os.Stat("/etc/passwd"); err != nil || !fi.Mode().IsRegular() {
					t.Skip("no /etc/passwd")
				}
				return gatewayA(t, dir, func(s string) string { return fixture.SetStateDir(t, s, "/etc/passwd") })
			}},
		{name: "state_dir under a file", want: "state_dir: " + plainFile + " is a regular file, not a directory, so " + plainFile + "/state cannot be created",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string { return fixture.SetStateDir(t, s, plainFile+"/state") })
			}},
		{name: "control socket is a directory", want: "control.socket: " + "DIR is a directory, not a socket; name the socket inside it, such as DIR/mipsec.sock",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string { return replaceOnce(t, s, socketLine, `socket = "`+dir+`"`) })
			}},
		{name: "control socket too long", want: "control.socket: " + long + " is 137 bytes long; a unix socket path is at most 107 bytes (sun_path holds 108, its NUL included)",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string { return replaceOnce(t, s, socketLine, `socket = "`+long+`"`) })
			}},
		{name: "control socket under a file", want: "control.socket: " + plainFile + " is a regular file, not a directory, so the socket " + plainFile + "/s.sock cannot be created",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string { return replaceOnce(t, s, socketLine, `socket = "`+plainFile+`/s.sock"`) })
			}},
		{name: "200 MB key file", maxAlloc: 32 << 20,
			want: "sa[0].enc_key_file: DIR/big.key is 209715200 bytes; a key file holds one key in hex, as `openssl rand -hex 20` writes, at most 1024 bytes",
			file: func(t *testing.T, dir string) string {
				sparse(t, filepath.Join(dir, "big.key"), 200<<20)
				return gatewayA(t, dir, func(s string) string { return replaceOnce(t, s, encKeyLine, `enc_key_file = "big.key"`) })
			}},
		{name: "200 MB config file", maxAlloc: 32 << 20,
			want: "DIR/gateway-a.toml: the file is 209715200 bytes; a configuration file is at most 4 MiB (4194304 bytes)",
			file: func(t *testing.T, dir string) string {
				f := gatewayA(t, dir, func(s string) string { return s })
				sparse(t, f, 200<<20)
				return f
			}},
		{name: "duplicate key", want: "gateway-a.toml:25: state_dir: key state_dir is already defined",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string {
					return replaceOnce(t, s, "\n[log]", "\nstate_dir = \"/var/lib/mipsec/other\"\n\n[log]")
				})
			}},
		{name: "byte order mark", want: "gateway-a.toml:1: a UTF-8 byte order mark (EF BB BF) starts the file; save it without one",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string { return "\uFEFF" + s })
			}},
		{name: "NUL byte", want: "gateway-a.toml:30: a NUL byte at column 1",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string { return replaceOnce(t, s, "\n"+socketLine, "\n\x00"+socketLine) })
			}},
		{name: "zero width space", want: "gateway-a.toml:33: U+200B ZERO WIDTH SPACE at column 12, an invisible character; delete it",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string { return replaceOnce(t, s, `name = "mipsec-a"`, "name = \"mip\u200bsec-a\"") })
			}},
		{name: "auth_key on a combined-mode algorithm",
			want: "gateway-a.toml:66: sa[0].auth_key: aes128gcm16 takes no auth_key: it is combined mode, where the enc_key also protects integrity; remove it",
			file: func(t *testing.T, dir string) string {
				return gatewayA(t, dir, func(s string) string {
					return replaceOnce(t, s, encKeyLine, encKeyLine+"\nauth_key = \"000102030405060708090a0b0c0d0e0f\"")
				})
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := tt.file(t, dir)
			want := strings.ReplaceAll(tt.want, "DIR", dir)

			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			var out, checkErr bytes.Buffer
			rc := checkConfig(file, &out, &checkErr, fakeProbe(ext4Magic, nil))
			runtime.ReadMemStats(&ms1)
			if rc != 1 {
				t.Fatalf("check: rc %d, want 1\nstdout: %s\nstderr: %s", rc, out.String(), checkErr.String())
			}
			if tt.maxAlloc != 0 && ms1.TotalAlloc-ms0.TotalAlloc > tt.maxAlloc {
				t.Errorf("check allocated %d MiB, want under %d MiB", (ms1.TotalAlloc-ms0.TotalAlloc)>>20, tt.maxAlloc>>20)
			}
			checked := errorLines(checkErr.String(), file)
			if len(checked) == 0 || !strings.Contains(checked[0], want) {
				t.Fatalf("check says:\n%s\nwant %q", checkErr.String(), want)
			}

			var runErr bytes.Buffer
			if rc := run([]string{"run", "-c", file}, &out, &runErr); rc != 1 {
				t.Fatalf("run: rc %d, want 1\n%s", rc, runErr.String())
			}
			if !strings.Contains(runErr.String(), "nothing started") {
				t.Errorf("run did not fail at load:\n%s", runErr.String())
			}
			if got := errorLines(runErr.String(), file); !slices.Equal(got, checked) {
				t.Errorf("run says:\n%s\ncheck says:\n%s", strings.Join(got, "\n"), strings.Join(checked, "\n"))
			}

			// The loader a reload uses: the same errors.
			_, err := config.Load(file)
			if err == nil {
				t.Fatal("config.Load accepted the file")
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, checked) {
				t.Errorf("config.Load says:\n%v\ncheck says:\n%s", err, strings.Join(checked, "\n"))
			}
		})
	}
}

// TestServeRefusesWhatCheckRefuses: a configuration the loader refuses
// for its control socket would, loaded by other means, also stop the
// daemon at start with the same words (control.Listen uses
// config.SocketProblem), and says "control socket" once.
func TestServeRefusesWhatCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	cfg := fixture.Config(t, "gateway-a.toml", t.TempDir())
	cfg.ControlSocket = dir // a directory
	ua, _ := underlaytest.NewPair(epA, epB)
	d, err := newDaemon(cfg, zaptest.NewLogger(t), daemonOptions{device: tuntest.New(1, 8), conn: ua})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.Start()
	want := "control socket: " + config.SocketProblem(dir)
	if err == nil || err.Error() != want {
		t.Fatalf("Start: %v, want %q", err, want)
	}
	if strings.Count(err.Error(), "control socket") != 1 {
		t.Errorf("%q says control socket more than once", err)
	}
}

// sparse makes path a file of size bytes that takes no disk space.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}
