package seqstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSA is a Counter with the same contract as esp.Outbound: Use hands out
// numbers only up to the bound.
type fakeSA struct {
	seq     atomic.Uint64
	reserve atomic.Uint64
	onSet   func(upTo uint64)
}

func (f *fakeSA) Seq() uint64 { return f.seq.Load() }
func (f *fakeSA) SetSeqReserve(upTo uint64) {
	if f.onSet != nil {
		f.onSet(upTo)
	}
	f.reserve.Store(upTo)
}

// use takes n numbers, as n Seal calls would, and returns how many it got.
func (f *fakeSA) use(n int) int {
	for i := range n {
		cur := f.seq.Load()
		if r := f.reserve.Load(); r != 0 && cur >= r {
			return i
		}
		f.seq.Store(cur + 1)
	}
	return n
}

func TestFingerprint(t *testing.T) {
	a := KeyFingerprint([]byte("0123456789abcdefSALT"), nil)
	if a != KeyFingerprint([]byte("0123456789abcdefSALT"), nil) {
		t.Fatal("not deterministic")
	}
	for _, o := range []Fingerprint{
		KeyFingerprint([]byte("0123456789abcdefSALU"), nil),
		KeyFingerprint([]byte("0123456789abcdef"), []byte("SALT")),
		LegacyFingerprint("aes128gcm16", []byte("0123456789abcdefSALT"), nil),
	} {
		if o == a {
			t.Errorf("fingerprint collision %v", o)
		}
	}
	// The legacy (version 1) fingerprint named the algorithm; the key's
	// own does not, so one AES key under GCM and GMAC shares its counter.
	if LegacyFingerprint("aes128gcm16", []byte("0123456789abcdefSALT"), nil) == LegacyFingerprint("aes128gmac", []byte("0123456789abcdefSALT"), nil) {
		t.Error("legacy fingerprints ignore the algorithm")
	}
	if strings.Contains(string(a[:]), "0123") {
		t.Error("fingerprint leaks key bytes")
	}
}

func TestSaveLoad(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "state"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(st.Dir())
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, %v; want 0700", fi.Mode(), err)
	}
	fp := KeyFingerprint(make([]byte, 20), nil)
	if r, res, err := st.Load(fp); r.Reserved != 0 || res != Fresh || err != nil {
		t.Fatalf("empty store: %d %v %v", r.Reserved, res, err)
	}
	if err := st.Save(Record{SPI: 0xa001, Key: fp, Reserved: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	if r, res, err := st.Load(fp); r.Reserved != 1<<40 || r.SPI != 0xa001 || res != Resumed || err != nil {
		t.Fatalf("Load = %+v %v %v", r, res, err)
	}
	other := KeyFingerprint(make([]byte, 21), nil)
	if r, res, err := st.Load(other); r.Reserved != 0 || res != Fresh || err != nil {
		t.Fatalf("other key: %d %v %v, want 0 fresh", r.Reserved, res, err)
	}
	b, _ := os.ReadFile(st.Path(fp))
	if strings.Contains(string(b), "\x00\x00\x00\x00") {
		t.Error("state file holds key bytes")
	}
	if m, _ := filepath.Glob(filepath.Join(st.Dir(), "*.tmp*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	// A file where the directory should be is refused by Open.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Open(f, Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open(file) = %v", err)
	}
}

func TestCorrupt(t *testing.T) {
	fp := KeyFingerprint(make([]byte, 20), nil)
	good := string(encode(Record{SPI: 0xa001, Key: fp, Reserved: 4096}))
	for _, tt := range []struct{ name, content string }{
		{"empty", ""},
		{"truncated", good[:len(good)/2]},
		{"digit flipped", strings.Replace(good, "4096", "4097", 1)},
		{"no checksum", strings.Split(good, "sum ")[0]},
		{"garbage", "\x00\x01\x02 hello"},
		{"other key", string(encode(Record{SPI: 0xa001, Key: KeyFingerprint(make([]byte, 16), nil), Reserved: 4096}))},
		{"version 1 body", string(encodeV1(Record{SPI: 0xa001, Key: fp, Reserved: 4096}))},
		{"bad format with good sum", func() string {
			// A well-formed checksum over a body of the wrong shape.
			return string(encodeRaw("mipsec seqstore v2\nkey 00\nreserved 9\n"))
		}()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := Open(t.TempDir(), Options{})
			if err := os.WriteFile(st.Path(fp), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r, _, err := st.Load(fp)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load = %d, %v; want ErrCorrupt", r.Reserved, err)
			}
			if !strings.Contains(err.Error(), st.Path(fp)) || !strings.Contains(err.Error(), "refus") && tt.name != "other key" {
				t.Errorf("error does not name the file or the consequence: %v", err)
			}
			// The Reserver refuses too: no silent reset to 0.
			rs := NewReserver(st, ReserverOptions{})
			if _, _, err := rs.Prepare(0xa001, fp, MaxSeq(false)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Prepare: %v, want ErrCorrupt", err)
			}
		})
	}
	// A corrupt version 1 file of the key is refused as well.
	st, _ := Open(t.TempDir(), Options{})
	lfp := LegacyFingerprint("aes128gcm16", make([]byte, 20), nil)
	os.WriteFile(filepath.Join(st.Dir(), fmt.Sprintf("out-0000a001-%s.seq", lfp)), []byte("mipsec seqstore v1\ngarbage"), 0o600)
	if _, _, err := st.Load(fp, lfp); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt v1 file: %v", err)
	}
}

// encodeRaw appends a valid checksum line to an arbitrary body.
func encodeRaw(body string) []byte {
	sum := sha256.Sum256([]byte(body))
	return []byte(body + "sum " + hex.EncodeToString(sum[:8]) + "\n")
}

// TestRestart is the crash model: an SA uses numbers, the process dies
// without Flush, and the next Prepare starts above every number used.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	fp := KeyFingerprint([]byte("k1-and-salt-20-bytes"), nil)
	var used uint64
	for run := range 5 {
		st, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rs := NewReserver(st, ReserverOptions{InitialChunk: 1000, MinChunk: 1000, MaxChunk: 1000})
		initial, res, err := rs.Prepare(0xa001, fp, MaxSeq(false))
		if err != nil {
			t.Fatal(err)
		}
		if want := Fresh; run == 0 && res != want || run > 0 && res != Resumed {
			t.Errorf("run %d: %v", run, res)
		}
		if run > 0 && initial < used {
			t.Fatalf("run %d: InitialSeq %d below a number already used (%d)", run, initial, used)
		}
		sa := &fakeSA{}
		sa.seq.Store(initial)
		if err := rs.Attach(0xa001, sa); err != nil {
			t.Fatal(err)
		}
		// Send 2500 packets, ticking as the goroutine would.
		for sent := 0; sent < 2500; {
			n := sa.use(100)
			sent += n
			rs.Tick()
			if n == 0 {
				t.Fatalf("run %d: SA stuck at %d with reserve %d", run, sa.Seq(), sa.reserve.Load())
			}
		}
		used = sa.Seq()
		// crash: no Flush, no Close.
	}
	// A clean stop records the exact number.
	st, _ := Open(dir, Options{})
	rs := NewReserver(st, ReserverOptions{})
	initial, _, err := rs.Prepare(0xa001, fp, MaxSeq(false))
	if err != nil || initial <= used {
		t.Fatalf("after crashes: %d, %v; want > %d", initial, err, used)
	}
	sa := &fakeSA{}
	sa.seq.Store(initial)
	rs.Attach(0xa001, sa)
	sa.use(10)
	if err := rs.Flush(); err != nil {
		t.Fatal(err)
	}
	rs2 := NewReserver(st, ReserverOptions{})
	if got, _, _ := rs2.Prepare(0xa001, fp, MaxSeq(false)); got != initial+10 {
		t.Errorf("after a clean stop: InitialSeq %d, want exactly %d", got, initial+10)
	}
	// A new key under the same SPI starts from 0.
	fp2 := KeyFingerprint([]byte("k2-and-salt-20-bytes"), nil)
	if got, res, err := rs2.Prepare(0xa001, fp2, MaxSeq(false)); got != 0 || res != Fresh || err != nil {
		t.Errorf("new key: %d %v %v; want 0 fresh", got, res, err)
	}
	// Going back to the first key continues above its own mark (here the
	// reservation rs2 made for it, since rs2 was not flushed).
	if got, res, err := rs2.Prepare(0xa001, fp, MaxSeq(false)); got < initial+10 || res != Resumed || err != nil {
		t.Errorf("old key again: %d %v %v; want >= %d resumed", got, res, err, initial+10)
	}
}

// TestDurableBeforeUse checks the order: every bound the SA gets is already
// on disk (the file says so at the moment SetSeqReserve is called), after the
// temp file's fsync, the rename and the directory's fsync.
func TestDurableBeforeUse(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var events []string
	opts := Options{Sync: func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			events = append(events, "fsync-dir")
		} else {
			events = append(events, "fsync-file")
		}
		return f.Sync()
	}}
	st, _ := Open(dir, opts)
	fp := KeyFingerprint(make([]byte, 36), nil)
	rs := NewReserver(st, ReserverOptions{InitialChunk: 64, MinChunk: 64, MaxChunk: 64})
	sa := &fakeSA{}
	sa.onSet = func(upTo uint64) {
		onDisk, _, err := st.Load(fp)
		if err != nil || onDisk.Reserved < upTo {
			t.Errorf("SetSeqReserve(%d) while the disk holds %d (%v)", upTo, onDisk, err)
		}
		mu.Lock()
		events = append(events, fmt.Sprintf("bound %d", upTo))
		mu.Unlock()
	}
	if _, _, err := rs.Prepare(0xc001, fp, MaxSeq(true)); err != nil {
		t.Fatal(err)
	}
	rs.Attach(0xc001, sa)
	for range 10 {
		sa.use(40)
		rs.Tick()
	}
	if sa.Seq() != 400 {
		t.Fatalf("seq %d, want 400", sa.Seq())
	}
	// Each bound is preceded by fsync-file, fsync-dir.
	bounds := 0
	for i, e := range events {
		if !strings.HasPrefix(e, "bound") {
			continue
		}
		bounds++
		if i < 2 || events[i-2] != "fsync-file" || events[i-1] != "fsync-dir" {
			t.Errorf("event %d %q not preceded by fsync-file, fsync-dir: %q", i, e, events)
		}
	}
	if bounds < 5 {
		t.Errorf("only %d extensions: %q", bounds, events)
	}
}

// TestFsyncFails: a reservation that cannot be made durable is not used.
func TestFsyncFails(t *testing.T) {
	fail := atomic.Bool{}
	st, _ := Open(t.TempDir(), Options{Sync: func(f *os.File) error {
		if fail.Load() {
			return errors.New("EIO")
		}
		return nil
	}})
	var errs atomic.Int32
	rs := NewReserver(st, ReserverOptions{InitialChunk: 100, MinChunk: 100, MaxChunk: 100,
		OnError: func(uint32, error) { errs.Add(1) }})
	fp := KeyFingerprint(make([]byte, 20), nil)
	fail.Store(true)
	if _, _, err := rs.Prepare(1, fp, MaxSeq(false)); err == nil {
		t.Fatal("Prepare succeeded without fsync")
	}
	fail.Store(false)
	rs.Prepare(1, fp, MaxSeq(false))
	sa := &fakeSA{}
	rs.Attach(1, sa)
	fail.Store(true)
	sa.use(80)
	rs.Tick()
	if n := sa.use(1000); sa.Seq() != 100 || n != 20 {
		t.Errorf("SA went past the durable bound: seq %d", sa.Seq())
	}
	if errs.Load() == 0 {
		t.Error("OnError not called")
	}
	fail.Store(false)
	rs.Tick()
	if sa.use(10) != 10 {
		t.Error("no recovery after the disk came back")
	}
}

func TestExhausted(t *testing.T) {
	st, _ := Open(t.TempDir(), Options{})
	fp := KeyFingerprint(make([]byte, 20), nil)
	st.Save(Record{SPI: 7, Key: fp, Reserved: MaxSeq(false) - 10})
	rs := NewReserver(st, ReserverOptions{})
	initial, _, err := rs.Prepare(7, fp, MaxSeq(false))
	if err != nil || initial != MaxSeq(false)-10 {
		t.Fatal(initial, err)
	}
	if r, _ := rs.Reserved(7); r != MaxSeq(false) {
		t.Errorf("reserved %d, want the end of the space", r)
	}
	// An ESN record read as a 32-bit SA is corrupt, not silently capped.
	fp8 := KeyFingerprint(make([]byte, 36), nil)
	st.Save(Record{SPI: 8, Key: fp8, Reserved: 1 << 40})
	if _, _, err := rs.Prepare(8, fp8, MaxSeq(false)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("got %v", err)
	}
}

func TestAdaptiveChunk(t *testing.T) {
	now := time.Unix(0, 0)
	st, _ := Open(t.TempDir(), Options{})
	rs := NewReserver(st, ReserverOptions{InitialChunk: 1 << 20, Now: func() time.Time { return now }})
	fp := KeyFingerprint(make([]byte, 20), nil)
	rs.Prepare(1, fp, MaxSeq(true))
	sa := &fakeSA{}
	rs.Attach(1, sa)
	// 10 Mpps for a while.
	for range 20 {
		now = now.Add(50 * time.Millisecond)
		sa.seq.Add(500_000)
		if r := sa.reserve.Load(); sa.Seq() > r {
			sa.seq.Store(r)
		}
		rs.Tick()
	}
	r, _ := rs.Reserved(1)
	if got := r - sa.Seq(); got < 1<<24 {
		t.Errorf("busy SA: margin %d, want >= 2^24 (2 s at 10 Mpps)", got)
	}
	if c := rs.chunkFor(0); c != DefaultMinChunk {
		t.Errorf("idle chunk %d", c)
	}
	if c := rs.chunkFor(1e12); c != DefaultMaxChunk {
		t.Errorf("max chunk %d", c)
	}
}

func TestBackground(t *testing.T) {
	st, _ := Open(t.TempDir(), Options{})
	rs := NewReserver(st, ReserverOptions{InitialChunk: 100, MinChunk: 100, MaxChunk: 100, Interval: time.Millisecond})
	fp := KeyFingerprint(make([]byte, 20), nil)
	rs.Prepare(1, fp, MaxSeq(false))
	sa := &fakeSA{}
	rs.Attach(1, sa)
	rs.Start()
	defer rs.Close()
	deadline := time.Now().Add(5 * time.Second)
	for sa.Seq() < 1000 && time.Now().Before(deadline) {
		sa.use(10)
		time.Sleep(100 * time.Microsecond)
	}
	if sa.Seq() < 1000 {
		t.Fatalf("background extension too slow: seq %d", sa.Seq())
	}
	rs.Close()
	rs.Close()
}

// TestRekeyPending: a Prepare for a new key does not take the reservation
// away from the SA still attached under the SPI until Attach; Abort keeps
// the old one.
func TestRekeyPending(t *testing.T) {
	st, _ := Open(t.TempDir(), Options{})
	rs := NewReserver(st, ReserverOptions{InitialChunk: 100, MinChunk: 100, MaxChunk: 100})
	k1 := KeyFingerprint([]byte("key-one-and-the-salt"), nil)
	k2 := KeyFingerprint([]byte("key-two-and-the-salt"), nil)
	rs.Prepare(1, k1, MaxSeq(false))
	old := &fakeSA{}
	rs.Attach(1, old)
	if _, _, err := rs.Prepare(1, k2, MaxSeq(false)); err != nil {
		t.Fatal(err)
	}
	if fp, _ := rs.Fingerprint(1); fp != k1 {
		t.Error("Prepare replaced the attached entry")
	}
	old.use(90)
	rs.Tick()
	if n := old.use(100); n != 100 {
		t.Errorf("the old SA was not extended while a rekey was pending: %d", n)
	}
	rs.Abort(1)
	if fp, _ := rs.Fingerprint(1); fp != k1 {
		t.Error("Abort lost the attached entry")
	}
	// The aborted Prepare's reservation (100) was durable, so k2 now
	// starts above it: safe, since numbers up to 100 may count as used.
	if initial, _, _ := rs.Prepare(1, k2, MaxSeq(false)); initial != 100 {
		t.Errorf("k2 again: initial %d, want 100", initial)
	}
	nw := &fakeSA{}
	rs.Attach(1, nw)
	if fp, _ := rs.Fingerprint(1); fp != k2 || nw.reserve.Load() != 200 {
		t.Errorf("after Attach: %v, bound %d", fp, nw.reserve.Load())
	}
}
