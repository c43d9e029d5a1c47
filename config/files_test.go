package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// minimalWith is testdata/minimal.toml with edit applied, written to dir.
func minimalWith(t *testing.T, dir string, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile("../testdata/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(file, []byte(edit(string(data))), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func setStateDir(dir string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, `state_dir = "/var/lib/mipsec/test"`, `state_dir = "`+dir+`"`, 1)
	}
}

func setSocket(path string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, "\n[tun]", "\n[control]\nsocket = \""+path+"\"\n\n[tun]", 1)
	}
}

// loadErrors loads file and returns its errors as text ("" when it loads).
func loadErrors(t *testing.T, file string) string {
	t.Helper()
	_, err := Load(file)
	if err == nil {
		return ""
	}
	var ce Errors
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("not Errors: %v", err)
	}
	return err.Error()
}

func TestStateDirOnDisk(t *testing.T) {
	tmp := t.TempDir()
	plain := filepath.Join(tmp, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, dir, want string
	}{
		{"existing directory", tmp, ""},
		{"missing: run creates it", filepath.Join(tmp, "a", "b"), ""},
		{"a file", plain, "c.toml:3: state_dir: " + plain + " is a regular file, not a directory; want the directory for the sequence-number state, such as /var/lib/mipsec"},
		{"under a file", plain + "/x/y", "c.toml:3: state_dir: " + plain + " is a regular file, not a directory, so " + plain + "/x/y cannot be created"},
		{"a named pipe", filepath.Join(tmp, "fifo"), "state_dir: " + filepath.Join(tmp, "fifo") + " is a named pipe, not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasSuffix(tt.dir, "fifo") {
				if err := syscall.Mkfifo(tt.dir, 0o600); err != nil {
					t.Skip(err)
				}
			}
			got := loadErrors(t, minimalWith(t, t.TempDir(), setStateDir(tt.dir)))
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestControlSocketOnDisk(t *testing.T) {
	tmp := t.TempDir()
	plain := filepath.Join(tmp, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A live socket is no problem for the file (a running daemon's, or a
	// stale one the daemon removes).
	live := filepath.Join(tmp, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The longest path a socket can have, and one byte more.
	at := func(n int) string { return "/tmp/" + strings.Repeat("s", n-len("/tmp/")) }
	for _, tt := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(tmp, "new", "m.sock"), ""},
		{"a socket", live, ""},
		{"107 bytes", at(107), ""},
		{"108 bytes", at(108), "c.toml:6: control.socket: " + at(108) + " is 108 bytes long; a unix socket path is at most 107 bytes (sun_path holds 108, its NUL included): choose a shorter path"},
		{"a directory", tmp, "c.toml:6: control.socket: " + tmp + " is a directory, not a socket; name the socket inside it, such as " + tmp + "/mipsec.sock"},
		{"a regular file", plain, "control.socket: " + plain + " is a regular file, not a socket, and is never replaced; remove it or choose another path"},
		{"under a file", plain + "/m.sock", "control.socket: " + plain + " is a regular file, not a directory, so the socket " + plain + "/m.sock cannot be created"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := loadErrors(t, minimalWith(t, t.TempDir(), setSocket(tt.path)))
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if p := SocketProblem(tt.path); (p == "") != (tt.want == "") || tt.want != "" && !strings.HasSuffix(tt.want, p) {
				t.Errorf("SocketProblem(%q) = %q", tt.path, p)
			}
		})
	}
	// A socket path that does not fit sun_path really cannot be bound.
	if _, err := net.Listen("unix", at(108)); err == nil {
		t.Errorf("bound a %d-byte socket path", 108)
	}
}

// keyConfig is testdata/bad/keyfile-perms.toml (enc_key_file = "gcm.key")
// in dir.
func keyConfig(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile("../testdata/bad/keyfile-perms.toml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestKeyFileSize(t *testing.T) {
	key := "00010203 04050607 08090a0b 0c0d0e0f 10111213\n"
	for _, tt := range []struct {
		name string
		make func(t *testing.T, path string)
		want string // "" accepted
	}{
		{"exactly the limit", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(key+strings.Repeat(" ", MaxKeyFileSize-len(key))), 0o600)
		}, ""},
		{"one byte over", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(key+strings.Repeat(" ", MaxKeyFileSize-len(key)+1)), 0o600)
		}, "gcm.key is 1025 bytes; a key file holds one key in hex, as `openssl rand -hex 20` writes, at most 1024 bytes"},
		{"200 MB", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			f.Truncate(200 << 20) // sparse: no disk space
			f.Close()
		}, "gcm.key is 209715200 bytes"},
		{"a named pipe", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skip(err)
			}
		}, "gcm.key is a named pipe, not a regular file"},
		{"a directory", func(t *testing.T, path string) { os.Mkdir(path, 0o700) }, "gcm.key is a directory, not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := keyConfig(t, dir)
			tt.make(t, filepath.Join(dir, "gcm.key"))
			done := make(chan string, 1)
			go func() { done <- loadErrors(t, file) }()
			var got string
			select {
			case got = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Load blocked on the key file")
			}
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if tt.want != "" && !strings.Contains(got, "c.toml:") {
				t.Errorf("no file:line: %q", got)
			}
		})
	}
}

func TestConfigFileSize(t *testing.T) {
	dir := t.TempDir()
	big := minimalWith(t, dir, func(s string) string { return s })
	if err := os.Truncate(big, 200<<20); err != nil { // sparse
		t.Fatal(err)
	}
	if got, want := loadErrors(t, big), big+": the file is 209715200 bytes; a configuration file is at most 4 MiB (4194304 bytes)"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Not a regular file: read no further than the limit.
	if _, err := os.Stat("/dev/zero"); err == nil {
		if got, want := loadErrors(t, "/dev/zero"), "/dev/zero: the file is larger than 4 MiB (4194304 bytes), the most a configuration file may be"; got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	}
	// Parse and ParseSnippet bound what they are handed as well.
	huge := make([]byte, MaxFileSize+1)
	if _, err := Parse("p.toml", huge); err == nil || err.Error() != "p.toml: the file is 4194305 bytes; a configuration file is at most 4 MiB (4194304 bytes)" {
		t.Errorf("Parse: %v", err)
	}
	if _, _, err := ParseSnippet("s.toml", huge); err == nil || !strings.Contains(err.Error(), "s.toml: the file is 4194305 bytes") {
		t.Errorf("ParseSnippet: %v", err)
	}
}

// TestTakesNoKey (issue "Safety and reliability" §6): a key an algorithm
// has no use for is named by its field, not as "a 0-byte key".
func TestTakesNoKey(t *testing.T) {
	sel := []SelectorTable{{}}
	for _, tt := range []struct {
		t    SATable
		want string
	}{
		{SATable{SPI: int64(0x1000), Dir: "out", Mode: "transport", Algorithm: "aes128gcm16",
			EncKey: "0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223", AuthKey: "00112233445566778899aabbccddeeff", Selectors: sel},
			"sa.auth_key: aes128gcm16 takes no auth_key: it is combined mode, where the enc_key also protects integrity; remove it"},
		{SATable{SPI: int64(0x1000), Dir: "out", Mode: "transport", Algorithm: "null-sha256",
			EncKey: "0x00112233", AuthKey: strings.Repeat("ab", 32), Selectors: sel},
			"sa.enc_key: null-sha256 takes no enc_key: it is NULL encryption (RFC 2410), which encrypts nothing; remove it"},
	} {
		_, err := ParseSA("sa", &tt.t)
		if err == nil || err.Error() != tt.want {
			t.Errorf("got  %v\nwant %s", err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "0-byte") {
			t.Errorf("%v", err)
		}
	}
	// In a file, a key file an algorithm takes no key from is not read.
	dir := t.TempDir()
	file := minimalWith(t, dir, func(s string) string {
		return strings.Replace(s, `enc_key = "000102030405060708090a0b0c0d0e0f10111213"`,
			`enc_key = "000102030405060708090a0b0c0d0e0f10111213"`+"\nauth_key_file = \"/nonexistent/auth.key\"", 1)
	})
	want := file + ":28: sa[0].auth_key_file: aes128gcm16 takes no auth_key: it is combined mode, where the enc_key also protects integrity; remove auth_key_file"
	if got := loadErrors(t, file); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestTOMLDuplicateKeys: the TOML decoder refuses a key or table written
// twice, at any depth, with the line of the second.
func TestTOMLDuplicateKeys(t *testing.T) {
	for _, tt := range []struct {
		name, edit, want string
	}{
		{"top level", "state_dir = \"/a\"\n", "c.toml:5: state_dir: key state_dir is already defined"},
		{"in a table", "[tun]\nname = \"x\"\n", "c.toml:8: tun: table tun already exists"},
		{"in an array table", "[[sa]]\nspi = 1\nspi = 2\n", "c.toml:7: spi: key spi is already defined"},
		{"in an inline table", "[[sa]]\nlifetime = { soft = { bytes = 1, bytes = 2 } }\n", "c.toml:6: lifetime: key bytes is already defined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := minimalWith(t, t.TempDir(), func(s string) string {
				return strings.Replace(s, "\n[tun]\n", "\n"+tt.edit+"\n[tun]\n", 1)
			})
			if got := loadErrors(t, file); !strings.Contains(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
