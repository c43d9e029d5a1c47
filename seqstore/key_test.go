package seqstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyAcrossSPIs: the reservation belongs to the key, so the same key
// under a new SPI (after a crash, after a clean stop, after Release)
// continues above every number it was used with.
func TestKeyAcrossSPIs(t *testing.T) {
	dir := t.TempDir()
	k := KeyFingerprint([]byte("the-one-key-and-salt"), nil)
	opts := ReserverOptions{InitialChunk: 1000, MinChunk: 1000, MaxChunk: 1000}
	start := func(spi uint32) (*Reserver, *fakeSA, uint64) {
		t.Helper()
		st, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rs := NewReserver(st, opts)
		initial, _, err := rs.Prepare(spi, k, MaxSeq(false))
		if err != nil {
			t.Fatal(err)
		}
		sa := &fakeSA{}
		sa.seq.Store(initial)
		if err := rs.Attach(spi, sa); err != nil {
			t.Fatal(err)
		}
		return rs, sa, initial
	}
	rs, sa, _ := start(0xa001)
	sa.use(700)
	// crash (no Flush), then the config names the key under a new SPI
	_, sa2, initial := start(0xa002)
	if initial < 700 {
		t.Fatalf("key under a new SPI after a crash starts at %d, below the 700 used", initial)
	}
	sa2.use(5)
	used := sa2.Seq()
	_ = rs
	// a clean stop under a third SPI records the exact number
	rs3, sa3, initial := start(0xa003)
	if initial < used {
		t.Fatalf("third SPI starts at %d, below %d", initial, used)
	}
	sa3.use(3)
	if err := rs3.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, _, got := start(0xa001); got != initial+3 {
		t.Errorf("back to the first SPI after a clean stop: %d, want %d", got, initial+3)
	}
	b, err := os.ReadFile(filepath.Join(dir, "key-"+k.String()+".seq"))
	if err != nil || !strings.Contains(string(b), "spi 0000a001") {
		t.Errorf("record %q, %v: want the last SPI named", b, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.seq")); len(m) != 1 {
		t.Errorf("one key, want one file: %v", m)
	}
}

// TestKeyInUse: one key serves one outbound SA at a time.
func TestKeyInUse(t *testing.T) {
	st, _ := Open(t.TempDir(), Options{})
	rs := NewReserver(st, ReserverOptions{InitialChunk: 100, MinChunk: 100, MaxChunk: 100})
	k1 := KeyFingerprint([]byte("key-one-and-the-salt"), nil)
	k2 := KeyFingerprint([]byte("key-two-and-the-salt"), nil)
	if _, _, err := rs.Prepare(1, k1, MaxSeq(false)); err != nil {
		t.Fatal(err)
	}
	// prepared, not attached: already taken
	if _, _, err := rs.Prepare(2, k1, MaxSeq(false)); !errors.Is(err, ErrKeyInUse) || !strings.Contains(err.Error(), "0x00000001") {
		t.Fatalf("second SPI while prepared: %v", err)
	}
	sa1 := &fakeSA{}
	rs.Attach(1, sa1)
	_, _, err := rs.Prepare(2, k1, MaxSeq(false))
	if !errors.Is(err, ErrKeyInUse) {
		t.Fatalf("second SPI while attached: %v", err)
	}
	for _, want := range []string{"0x00000001", "0x00000002", "nonces", "RFC 4106"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// the same SPI asking for the key it already has is refused too
	if _, _, err := rs.Prepare(1, k1, MaxSeq(false)); !errors.Is(err, ErrKeyInUse) {
		t.Errorf("same SPI, same key: %v", err)
	}
	// the refused Prepares changed nothing
	if fp, _ := rs.Fingerprint(1); fp != k1 {
		t.Error("SPI 1 lost its key")
	}
	if _, ok := rs.Fingerprint(2); ok {
		t.Error("SPI 2 got an entry")
	}
	sa1.use(60)
	// SPI 1 moves to k2 (sa update with new keys): k1 is free again and
	// continues above what SPI 1 used.
	if _, _, err := rs.Prepare(1, k2, MaxSeq(false)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rs.Prepare(2, k1, MaxSeq(false)); !errors.Is(err, ErrKeyInUse) {
		t.Errorf("k1 free before the rekeyed SA attached: %v", err)
	}
	rs.Attach(1, &fakeSA{})
	initial, res, err := rs.Prepare(2, k1, MaxSeq(false))
	if err != nil || res != Resumed || initial < 60 {
		t.Fatalf("k1 under SPI 2 after SPI 1 rekeyed: %d %v %v; want >= 60 resumed", initial, res, err)
	}
	rs.Attach(2, &fakeSA{})
	// Release frees a key too.
	if _, _, err := rs.Prepare(3, k2, MaxSeq(false)); !errors.Is(err, ErrKeyInUse) {
		t.Errorf("k2 while SPI 1 holds it: %v", err)
	}
	rs.Release(1, nil)
	if _, _, err := rs.Prepare(3, k2, MaxSeq(false)); err != nil {
		t.Errorf("k2 after Release: %v", err)
	}
	// Abort frees a prepared key.
	rs.Abort(3)
	if _, _, err := rs.Prepare(4, k2, MaxSeq(false)); err != nil {
		t.Errorf("k2 after Abort: %v", err)
	}
}

// TestLegacyFiles: version 1 records (one per SPI) of the key are read,
// the highest wins, and they are replaced by the key's record.
func TestLegacyFiles(t *testing.T) {
	st, _ := Open(t.TempDir(), Options{})
	key := []byte("legacy-key-and-salt!")
	lfp := LegacyFingerprint("aes128gcm16", key, nil)
	other := LegacyFingerprint("aes128gcm16", []byte("another-key-and-salt"), nil)
	write := func(spi uint32, fp Fingerprint, r uint64) string {
		p := filepath.Join(st.Dir(), fmt.Sprintf("out-%08x-%s.seq", spi, fp))
		if err := os.WriteFile(p, encodeV1(Record{SPI: spi, Key: fp, Reserved: r}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write(0xa001, lfp, 5000)
	b := write(0xa002, lfp, 7000)
	c := write(0xa003, other, 9000)
	rs := NewReserver(st, ReserverOptions{InitialChunk: 100})
	initial, res, err := rs.Prepare(0xb001, KeyFingerprint(key, nil), MaxSeq(false), lfp)
	if err != nil || res != Resumed || initial != 7000 {
		t.Fatalf("Prepare = %d %v %v; want 7000 resumed", initial, res, err)
	}
	for _, p := range []string{a, b} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s kept after its record was replaced", p)
		}
	}
	if _, err := os.Stat(c); err != nil {
		t.Errorf("another key's file was touched: %v", err)
	}
	if r, _, _ := st.Load(KeyFingerprint(key, nil)); r.Reserved != 7100 || r.SPI != 0xb001 {
		t.Errorf("new record %+v, want 7100 under 0xb001", r)
	}
}

// TestNoRepeatModel drives a Reserver through random SPI changes, rekeys,
// deletes, crashes and clean stops with three keys, and checks that no
// (key, sequence number) pair is ever used twice.
func TestNoRepeatModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			dir := t.TempDir()
			keys := []Fingerprint{
				KeyFingerprint([]byte("model-key-1-and-salt"), nil),
				KeyFingerprint([]byte("model-key-2-and-salt"), nil),
				KeyFingerprint([]byte("model-key-3-and-salt"), nil),
			}
			used := map[Fingerprint]map[uint64]bool{}
			type live struct {
				fp Fingerprint
				sa *fakeSA
			}
			var rs *Reserver
			sas := map[uint32]*live{}
			boot := func() {
				st, err := Open(dir, Options{})
				if err != nil {
					t.Fatal(err)
				}
				rs = NewReserver(st, ReserverOptions{InitialChunk: 64, MinChunk: 64, MaxChunk: 64})
				sas = map[uint32]*live{}
			}
			boot()
			for step := range 400 {
				spi := uint32(1 + rng.IntN(4))
				fp := keys[rng.IntN(len(keys))]
				switch op := rng.IntN(10); {
				case op < 3: // sa add, or sa update with (possibly) another key
					initial, _, err := rs.Prepare(spi, fp, MaxSeq(false))
					if err != nil {
						if !errors.Is(err, ErrKeyInUse) {
							t.Fatal(err)
						}
						held := false
						for _, l := range sas {
							held = held || l.fp == fp
						}
						if !held {
							t.Fatalf("step %d: refused %v for SPI %d though no SA holds the key", step, err, spi)
						}
						continue
					}
					sa := &fakeSA{}
					sa.seq.Store(initial)
					rs.Attach(spi, sa)
					sas[spi] = &live{fp, sa}
				case op < 7: // traffic
					l := sas[spi]
					if l == nil {
						continue
					}
					before := l.sa.Seq()
					l.sa.use(1 + rng.IntN(50))
					if used[l.fp] == nil {
						used[l.fp] = map[uint64]bool{}
					}
					for n := before + 1; n <= l.sa.Seq(); n++ {
						if used[l.fp][n] {
							t.Fatalf("step %d: key %d used sequence number %d twice", step, l.fp[0], n)
						}
						used[l.fp][n] = true
					}
					rs.Tick()
				case op < 8: // sa del
					if sas[spi] != nil {
						rs.Release(spi, nil)
						delete(sas, spi)
					}
				case op < 9: // crash
					boot()
				default: // clean stop
					if err := rs.Flush(); err != nil {
						t.Fatal(err)
					}
					boot()
				}
			}
		})
	}
}
