package seqstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrCorrupt is wrapped by Load when a state file exists but cannot be
// trusted (bad format, checksum mismatch, wrong SPI). The caller must not
// start the SA with a counter from 0: with unchanged keys that could reuse
// IVs. Fix it by rekeying the SA (new keys, or a new SPI) or, when it is
// certain that no packet was ever sent with these keys, by removing the file.
var ErrCorrupt = errors.New("seqstore: corrupt state file")

// Fingerprint identifies an SA's keys without revealing them.
type Fingerprint [16]byte

// String returns the fingerprint in hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

const fpLabel = "mipsec seqstore v1 key fingerprint"

// KeyFingerprint returns HMAC-SHA-256(key = encKey || authKey, label ||
// algorithm || len(encKey) || len(authKey)), truncated to 128 bits. A new key,
// or the same bytes under another algorithm, gives another fingerprint.
func KeyFingerprint(algorithm string, encKey, authKey []byte) Fingerprint {
	key := make([]byte, 0, len(encKey)+len(authKey))
	key = append(key, encKey...)
	key = append(key, authKey...)
	m := hmac.New(sha256.New, key)
	clear(key)
	m.Write([]byte(fpLabel))
	m.Write([]byte{0})
	m.Write([]byte(algorithm))
	var n [4]byte
	binary.BigEndian.PutUint16(n[0:], uint16(len(encKey)))
	binary.BigEndian.PutUint16(n[2:], uint16(len(authKey)))
	m.Write(n[:])
	var f Fingerprint
	copy(f[:], m.Sum(nil))
	return f
}

// Record is one outbound SA's durable reservation.
type Record struct {
	SPI uint32
	Key Fingerprint
	// Reserved is R: no sequence number above it was ever used.
	Reserved uint64
}

// Options configure a Store.
type Options struct {
	// Sync, when set, replaces (*os.File).Sync for the temporary file and
	// the directory. Tests use it to observe the order of fsyncs.
	Sync func(f *os.File) error
}

// Store is a directory of reservation files, one per outbound SPI and key,
// named out-SSSSSSSS-FFFF....seq after the SPI and the key fingerprint in
// hex: a rekeyed SA gets a new file, and going back to an older key
// continues above that key's own mark. Its methods are safe for concurrent
// use on different SPIs; Reserver serialises writes per SPI.
type Store struct {
	dir  string
	sync func(*os.File) error
}

// Open opens (and creates, mode 0700) the state directory dir.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("seqstore: empty state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seqstore: state directory: %w", err)
	}
	s := &Store{dir: dir, sync: opts.Sync}
	if s.sync == nil {
		s.sync = (*os.File).Sync
	}
	return s, nil
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the state file of an SPI under the key fp.
func (s *Store) Path(spi uint32, fp Fingerprint) string {
	return filepath.Join(s.dir, fmt.Sprintf("out-%08x-%s.seq", spi, fp))
}

// others reports whether spi has records under other keys.
func (s *Store) others(spi uint32, fp Fingerprint) bool {
	m, _ := filepath.Glob(filepath.Join(s.dir, fmt.Sprintf("out-%08x-*.seq", spi)))
	for _, p := range m {
		if p != s.Path(spi, fp) {
			return true
		}
	}
	return false
}

// LoadResult says what Load found.
type LoadResult uint8

const (
	// Fresh: no record for this SPI; the counter starts at 0.
	Fresh LoadResult = iota
	// Resumed: a record with the same key fingerprint; continue above it.
	Resumed
	// KeyChanged: no record for this key, but records for this SPI under
	// other keys; the new key starts its counter at 0 (its IVs cannot
	// collide with the old key's).
	KeyChanged
)

func (r LoadResult) String() string {
	switch r {
	case Fresh:
		return "fresh"
	case Resumed:
		return "resumed"
	case KeyChanged:
		return "key_changed"
	}
	return "unknown"
}

// Load returns the reservation persisted for spi under the key fp: R with
// Resumed, or 0 with Fresh or KeyChanged. A file that exists but does not
// parse, fails its checksum or names another SPI or key is an error
// wrapping ErrCorrupt.
func (s *Store) Load(spi uint32, fp Fingerprint) (uint64, LoadResult, error) {
	p := s.Path(spi, fp)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		if s.others(spi, fp) {
			return 0, KeyChanged, nil
		}
		return 0, Fresh, nil
	}
	if err != nil {
		return 0, Fresh, fmt.Errorf("seqstore: %w", err)
	}
	rec, err := decode(b)
	if err != nil {
		return 0, Fresh, fmt.Errorf("%s: %w: %v; refusing to restart SPI %#08x from sequence number 0 with possibly unchanged keys (rekey the SA, or remove the file only if no packet was ever sent with these keys)", p, ErrCorrupt, err, spi)
	}
	if rec.SPI != spi || rec.Key != fp {
		return 0, Fresh, fmt.Errorf("%s: %w: the record is for SPI %#08x key %s, not SPI %#08x key %s", p, ErrCorrupt, rec.SPI, rec.Key, spi, fp)
	}
	return rec.Reserved, Resumed, nil
}

// Save makes r durable: it writes a temporary file, fsyncs it, renames it
// over the SA's file and fsyncs the directory. When Save returns nil the
// reservation survives a crash or power loss.
func (s *Store) Save(r Record) error {
	p := s.Path(r.SPI, r.Key)
	f, err := os.CreateTemp(s.dir, filepath.Base(p)+".tmp*")
	if err != nil {
		return fmt.Errorf("seqstore: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(encode(r)); err != nil {
		return fmt.Errorf("seqstore: write %s: %w", tmp, err)
	}
	if err := s.sync(f); err != nil {
		return fmt.Errorf("seqstore: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("seqstore: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("seqstore: %w", err)
	}
	ok = true
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("seqstore: %w", err)
	}
	defer d.Close()
	if err := s.sync(d); err != nil {
		return fmt.Errorf("seqstore: fsync %s: %w", s.dir, err)
	}
	return nil
}

const magic = "mipsec seqstore v1"

// encode writes the text form:
//
//	mipsec seqstore v1
//	spi 0000a001
//	key <32 hex digits>
//	reserved <decimal>
//	sum <16 hex digits: SHA-256 of the lines above, truncated>
func encode(r Record) []byte {
	body := fmt.Sprintf("%s\nspi %08x\nkey %s\nreserved %d\n", magic, r.SPI, r.Key, r.Reserved)
	sum := sha256.Sum256([]byte(body))
	return []byte(body + "sum " + hex.EncodeToString(sum[:8]) + "\n")
}

func decode(b []byte) (Record, error) {
	var r Record
	i := bytes.LastIndex(b, []byte("sum "))
	if len(b) == 0 {
		return r, errors.New("empty file")
	}
	if i < 0 || (i > 0 && b[i-1] != '\n') {
		return r, errors.New("no checksum line")
	}
	body, sumLine := b[:i], strings.TrimSuffix(string(b[i+4:]), "\n")
	want := sha256.Sum256(body)
	if sumLine != hex.EncodeToString(want[:8]) {
		return r, errors.New("checksum mismatch")
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != 4 || lines[0] != magic {
		return r, errors.New("unknown format")
	}
	field := func(line, name string) (string, error) {
		v, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			return "", fmt.Errorf("line %q: want %q", line, name)
		}
		return v, nil
	}
	v, err := field(lines[1], "spi")
	if err != nil {
		return r, err
	}
	spi, err := strconv.ParseUint(v, 16, 32)
	if err != nil {
		return r, fmt.Errorf("spi: %v", err)
	}
	if v, err = field(lines[2], "key"); err != nil {
		return r, err
	}
	k, err := hex.DecodeString(v)
	if err != nil || len(k) != len(r.Key) {
		return r, fmt.Errorf("key fingerprint %q", v)
	}
	if v, err = field(lines[3], "reserved"); err != nil {
		return r, err
	}
	res, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return r, fmt.Errorf("reserved: %v", err)
	}
	r.SPI = uint32(spi)
	copy(r.Key[:], k)
	r.Reserved = res
	return r, nil
}
