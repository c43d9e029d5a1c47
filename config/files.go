package config

// What the configuration names on disk, checked where `mipsec check`,
// `mipsec run` (Load), a reload (Load) and the control socket (Listen
// calls SocketProblem) all get the same answer: the size of the file and
// of its key files, the state directory and the control socket's path.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Size bounds of what the configuration reads.
const (
	// MaxFileSize bounds a configuration file: thousands of SAs fit.
	MaxFileSize = 4 << 20
	// MaxKeyFileSize bounds a key file. The longest key (36 bytes) is 72
	// hex digits; with "0x", colons, spaces and line ends it still fits
	// many times over.
	MaxKeyFileSize = 1 << 10
	// MaxSocketPath is the longest path a unix socket can be bound to on
	// Linux: sun_path holds 108 bytes, its terminating NUL included.
	MaxSocketPath = 107
)

// readBounded reads at most limit bytes of the file f; tooBig is true
// when there is more.
func readBounded(f *os.File, limit int64) (data []byte, tooBig bool, err error) {
	data, err = io.ReadAll(io.LimitReader(f, limit+1))
	if int64(len(data)) > limit {
		clear(data)
		return nil, true, err
	}
	return data, false, err
}

// fileTooBig is the error of a configuration file over MaxFileSize; size
// is its size, or -1 when only "more than the limit" is known.
func fileTooBig(file string, size int64) Errors {
	msg := fmt.Sprintf("the file is larger than %s, the most a configuration file may be", sizeWords(MaxFileSize))
	if size >= 0 {
		msg = fmt.Sprintf("the file is %d bytes; a configuration file is at most %s", size, sizeWords(MaxFileSize))
	}
	return Errors{{File: file, Msg: msg}}
}

// sizeWords writes n bytes as "4 MiB (4194304 bytes)", or "1024 bytes".
func sizeWords(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB (%d bytes)", n>>20, n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// fileKind names what kind of file m is, for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// nonDirectory finds what stops dir from being used or created as a
// directory: dir itself or its nearest existing ancestor when that is not
// a directory (at is then its path and kind what it is). at is "" when
// nothing on disk stands in the way, or when the path cannot be examined
// (permissions): that is left to the daemon, which runs as another user.
func nonDirectory(dir string) (at, kind string) {
	for p := dir; ; {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return "", ""
		case err == nil:
			return p, fileKind(fi.Mode())
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return "", ""
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", ""
		}
		p = parent
	}
}

// stateDirProblem says why `mipsec run` could not use dir as its state
// directory (it creates a missing one), "" when nothing stands in the way.
func stateDirProblem(dir string) string {
	at, kind := nonDirectory(dir)
	switch {
	case at == "":
		return ""
	case at == dir:
		return fmt.Sprintf("%s is %s, not a directory; want the directory for the sequence-number state, such as %s", dir, kind, DefaultStateDir)
	}
	return fmt.Sprintf("%s is %s, not a directory, so %s cannot be created; want the directory for the sequence-number state, such as %s", at, kind, dir, DefaultStateDir)
}

// SocketProblem says why a unix socket could not be bound at path, ""
// when nothing on disk stands in the way: a path longer than MaxSocketPath,
// a directory or another file that is not a socket at path (a daemon never
// replaces one), or a parent that is not a directory. A socket already at
// path is no problem here: it is stale, or a daemon answers on it, which
// the listener tells apart.
func SocketProblem(path string) string {
	if len(path) > MaxSocketPath {
		return fmt.Sprintf("%s is %d bytes long; a unix socket path is at most %d bytes (sun_path holds %d, its NUL included): choose a shorter path", path, len(path), MaxSocketPath, MaxSocketPath+1)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket == 0 {
		if fi.IsDir() {
			return fmt.Sprintf("%s is a directory, not a socket; name the socket inside it, such as %s", path, filepath.Join(path, "mipsec.sock"))
		}
		return fmt.Sprintf("%s is %s, not a socket, and is never replaced; remove it or choose another path", path, fileKind(fi.Mode()))
	}
	if at, kind := nonDirectory(filepath.Dir(path)); at != "" {
		return fmt.Sprintf("%s is %s, not a directory, so the socket %s cannot be created", at, kind, path)
	}
	return ""
}

// paths checks the state directory and the control socket on disk.
func (v *validator) paths(cfg *File) {
	if filepath.IsAbs(cfg.StateDir) {
		if p := stateDirProblem(cfg.StateDir); p != "" {
			v.errf("state_dir", "%s", p)
		}
	}
	if filepath.IsAbs(cfg.ControlSocket) {
		if p := SocketProblem(cfg.ControlSocket); p != "" {
			v.errf("control.socket", "%s", p)
		}
	}
}

// readKeyFileAt opens the key file p and checks it before reading a byte:
// a regular file that only its owner can read (mode 0600 or stricter),
// owned by root or us, at most MaxKeyFileSize bytes. The checks are made
// on the open file, so it cannot be swapped between check and read.
func (v *validator) readKeyFileAt(path, p string) ([]byte, error) {
	return v.readSecretFile(path, p, MaxKeyFileSize, "a key file holds one key in hex, as `openssl rand -hex 20` writes")
}

// readSecretFile is readKeyFileAt for any secret of at most limit bytes
// (a pre-shared key, a private key); want says what the file holds, for
// the message of one that is too large.
func (v *validator) readSecretFile(path, p string, limit int64, want string) ([]byte, error) {
	// O_NONBLOCK: opening a named pipe put in the key file's place must
	// not wait for a writer; it is refused below as not a regular file.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		v.errf(path, "%v", err)
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		v.errf(path, "%v", err)
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		v.errf(path, "%s is %s, not a regular file", p, fileKind(fi.Mode()))
		return nil, ErrInvalid
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		v.errf(path, "%s has mode %#o; a key file must be 0600 or stricter (chmod 600 %s)", p, perm, p)
		return nil, ErrInvalid
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		v.errf(path, "%s is owned by uid %d; a key file must belong to root or to the daemon's user (uid %d)", p, st.Uid, os.Geteuid())
		return nil, ErrInvalid
	}
	if fi.Size() > limit {
		v.errf(path, "%s is %d bytes; %s, at most %s", p, fi.Size(), want, sizeWords(limit))
		return nil, ErrInvalid
	}
	b, tooBig, err := readBounded(f, limit)
	switch {
	case err != nil:
		v.errf(path, "%v", err)
		return nil, err
	case tooBig:
		v.errf(path, "%s is larger than %s; %s", p, sizeWords(limit), want)
		return nil, ErrInvalid
	}
	return b, nil
}

// ReadInput reads a snippet or request file a client sends to the daemon
// (`mipsec sa add -f FILE`, TOML or JSON) with the configuration file's
// bounds and text checks: at most MaxFileSize, UTF-8 without a byte order
// mark, NUL or invisible characters, each named by line.
func ReadInput(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, tooBig, err := readBounded(f, MaxFileSize)
	if err != nil {
		return nil, err
	}
	if tooBig {
		return nil, fileTooBig(path, -1)
	}
	if errs := textProblems(data); len(errs) > 0 {
		return nil, errs.in(path)
	}
	return data, nil
}
