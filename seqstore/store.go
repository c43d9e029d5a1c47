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
// trusted (bad format, checksum mismatch, wrong key). The caller must not
// start the SA with a counter from 0: with unchanged keys that could reuse
// IVs. Fix it by giving the SA a new key or, when it is certain that no
// packet was ever sent with this key, by removing the file.
var ErrCorrupt = errors.New("seqstore: corrupt state file")

// ErrKeyInUse is wrapped by Reserver.Prepare when the key is already
// reserved by an outbound SA under another SPI.
var ErrKeyInUse = errors.New("seqstore: key already in use")

// Fingerprint identifies a key without revealing it.
type Fingerprint [16]byte

// String returns the fingerprint in hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

const fpLabel = "mipsec seqstore v2 key fingerprint"

// KeyFingerprint returns HMAC-SHA-256(key = encKey || authKey, label ||
// len(encKey) || len(authKey)), truncated to 128 bits: a MAC under the key
// itself, so it cannot be computed, or checked against a guess, without
// the key. The algorithm and the SPI are deliberately not part of it: the
// reservation belongs to the key. The same AES key under aes128gcm16 and
// aes128gmac, or under a new SPI, makes the same nonces (RFC 4106 §3.1,
// RFC 4543 §3.1), so it must continue the same counter.
func KeyFingerprint(encKey, authKey []byte) Fingerprint {
	return fingerprint(fpLabel, "", encKey, authKey)
}

// LegacyFingerprint is the fingerprint of version 1 state files
// (out-<spi>-<fp>.seq), which named the algorithm. Load reads such files
// so that a key keeps its mark across the upgrade.
func LegacyFingerprint(algorithm string, encKey, authKey []byte) Fingerprint {
	return fingerprint("mipsec seqstore v1 key fingerprint", algorithm, encKey, authKey)
}

func fingerprint(label, algorithm string, encKey, authKey []byte) Fingerprint {
	key := make([]byte, 0, len(encKey)+len(authKey))
	key = append(key, encKey...)
	key = append(key, authKey...)
	m := hmac.New(sha256.New, key)
	clear(key)
	m.Write([]byte(label))
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

// Record is one key's durable reservation.
type Record struct {
	Key Fingerprint
	// SPI is the SPI the key was last reserved for (informational: the
	// record holds whatever SPI the key is used under).
	SPI uint32
	// Reserved is R: no sequence number above it was ever used with Key.
	Reserved uint64
}

// Options configure a Store.
type Options struct {
	// Sync, when set, replaces (*os.File).Sync for the temporary file and
	// the directory. Tests use it to observe the order of fsyncs.
	Sync func(f *os.File) error
}

// Store is a directory of reservation files, one per key, named
// key-<fingerprint>.seq. Its methods are safe for concurrent use on
// different keys; Reserver serialises writes per key.
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
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("seqstore: state directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("seqstore: state directory %s is not a directory", dir)
	}
	s := &Store{dir: dir, sync: opts.Sync}
	if s.sync == nil {
		s.sync = (*os.File).Sync
	}
	return s, nil
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the state file of the key fp.
func (s *Store) Path(fp Fingerprint) string {
	return filepath.Join(s.dir, "key-"+fp.String()+".seq")
}

// legacyPaths returns the version 1 files (one per SPI) of the legacy
// fingerprints.
func (s *Store) legacyPaths(legacy []Fingerprint) []string {
	var out []string
	for _, l := range legacy {
		m, _ := filepath.Glob(filepath.Join(s.dir, "out-????????-"+l.String()+".seq"))
		out = append(out, m...)
	}
	return out
}

// LoadResult says what Load found.
type LoadResult uint8

const (
	// Fresh: no record of this key; the counter starts at 0.
	Fresh LoadResult = iota
	// Resumed: the key has a record; continue above it, whatever SPI it
	// was used under.
	Resumed
)

func (r LoadResult) String() string {
	switch r {
	case Fresh:
		return "fresh"
	case Resumed:
		return "resumed"
	}
	return "unknown"
}

// Load returns the reservation persisted for the key fp (R with Resumed,
// 0 with Fresh), taking the highest of its record and of any version 1
// records of the legacy fingerprints. A file that exists but does not
// parse, fails its checksum or names another key is an error wrapping
// ErrCorrupt.
func (s *Store) Load(fp Fingerprint, legacy ...Fingerprint) (Record, LoadResult, error) {
	r, res, _, err := s.load(fp, legacy)
	return r, res, err
}

func (s *Store) load(fp Fingerprint, legacy []Fingerprint) (Record, LoadResult, []string, error) {
	out := Record{Key: fp}
	res := Fresh
	p := s.Path(fp)
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return out, Fresh, nil, fmt.Errorf("seqstore: %w", err)
	default:
		rec, err := decode(b, 2)
		if err != nil {
			return out, Fresh, nil, corrupt(p, err)
		}
		if rec.Key != fp {
			return out, Fresh, nil, fmt.Errorf("%s: %w: the record is for key %s, not %s", p, ErrCorrupt, rec.Key, fp)
		}
		out, res = rec, Resumed
	}
	old := s.legacyPaths(legacy)
	for _, lp := range old {
		b, err := os.ReadFile(lp)
		if err != nil {
			return out, Fresh, nil, fmt.Errorf("seqstore: %w", err)
		}
		rec, err := decode(b, 1)
		if err != nil {
			return out, Fresh, nil, corrupt(lp, err)
		}
		if filepath.Base(lp) != fmt.Sprintf("out-%08x-%s.seq", rec.SPI, rec.Key) {
			return out, Fresh, nil, fmt.Errorf("%s: %w: the record is for SPI %#08x key %s", lp, ErrCorrupt, rec.SPI, rec.Key)
		}
		if res == Fresh || rec.Reserved > out.Reserved {
			out.SPI, out.Reserved = rec.SPI, rec.Reserved
		}
		res = Resumed
	}
	return out, res, old, nil
}

func corrupt(p string, err error) error {
	return fmt.Errorf("%s: %w: %v; refusing to restart this key's sequence numbers from 0 (give the SA a new key, or remove the file only if no packet was ever sent with this key)", p, ErrCorrupt, err)
}

// Save makes r durable: it writes a temporary file, fsyncs it, renames it
// over the SA's file and fsyncs the directory. When Save returns nil the
// reservation survives a crash or power loss.
func (s *Store) Save(r Record) error {
	p := s.Path(r.Key)
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

// encode writes the text form (version 2):
//
//	mipsec seqstore v2
//	key <32 hex digits>
//	spi 0000a001
//	reserved <decimal>
//	sum <16 hex digits: SHA-256 of the lines above, truncated>
func encode(r Record) []byte {
	body := fmt.Sprintf("mipsec seqstore v2\nkey %s\nspi %08x\nreserved %d\n", r.Key, r.SPI, r.Reserved)
	return seal(body)
}

// encodeV1 writes version 1 (spi before key), which Load still reads.
func encodeV1(r Record) []byte {
	return seal(fmt.Sprintf("mipsec seqstore v1\nspi %08x\nkey %s\nreserved %d\n", r.SPI, r.Key, r.Reserved))
}

func seal(body string) []byte {
	sum := sha256.Sum256([]byte(body))
	return []byte(body + "sum " + hex.EncodeToString(sum[:8]) + "\n")
}

// decode parses version 1 or 2 (the one asked for).
func decode(b []byte, version int) (Record, error) {
	var r Record
	if len(b) == 0 {
		return r, errors.New("empty file")
	}
	i := bytes.LastIndex(b, []byte("sum "))
	if i < 0 || (i > 0 && b[i-1] != '\n') {
		return r, errors.New("no checksum line")
	}
	body, sumLine := b[:i], strings.TrimSuffix(string(b[i+4:]), "\n")
	want := sha256.Sum256(body)
	if sumLine != hex.EncodeToString(want[:8]) {
		return r, errors.New("checksum mismatch")
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	names := []string{"key", "spi", "reserved"}
	if version == 1 {
		names = []string{"spi", "key", "reserved"}
	}
	if len(lines) != 4 || lines[0] != fmt.Sprintf("mipsec seqstore v%d", version) {
		return r, errors.New("unknown format")
	}
	for j, name := range names {
		v, ok := strings.CutPrefix(lines[j+1], name+" ")
		if !ok {
			return r, fmt.Errorf("line %q: want %q", lines[j+1], name)
		}
		switch name {
		case "spi":
			spi, err := strconv.ParseUint(v, 16, 32)
			if err != nil {
				return r, fmt.Errorf("spi: %v", err)
			}
			r.SPI = uint32(spi)
		case "key":
			k, err := hex.DecodeString(v)
			if err != nil || len(k) != len(r.Key) {
				return r, fmt.Errorf("key fingerprint %q", v)
			}
			copy(r.Key[:], k)
		case "reserved":
			res, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("reserved: %v", err)
			}
			r.Reserved = res
		}
	}
	return r, nil
}
