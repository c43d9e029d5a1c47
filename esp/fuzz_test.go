package esp

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/pkt"
)

// fuzzSA is one SA FuzzOpen feeds: its Params and the packets it sealed,
// deterministically (fixed keys, sequence numbers and IVs), each with the
// result Open must give. Open may return OK only for the ESP bytes of one
// of these packets: anything else would be a forgery.
type fuzzSA struct {
	p     Params
	known map[string]fuzzPacket // key: the ESP bytes (SPI to ICV)
	wires [][]byte              // full packets, for the seed corpus
	offs  []int
}

type fuzzPacket struct {
	nh      uint8
	payload []byte // tunnel: the inner packet; transport: what follows the header
}

func fuzzSAs(t testing.TB) []*fuzzSA {
	specs := []struct {
		alg     Algorithm
		l       layout
		esn     bool
		initial uint64
	}{
		{AES128GCM16, layouts[0], false, 0},             // tunnel 4in4
		{ChaCha20Poly1305, layouts[1], true, 1<<32 - 2}, // tunnel 6in6, ESN across 2^32
		{AES256CBCSHA256, layouts[5], false, 77},        // transport v4
		{NULLSHA256, layouts[9], true, 5},               // transport v6 HAO
		{AES128GMAC, layouts[3], true, 3<<32 + 1<<31},   // tunnel 6in4
		{AES128CBCSHA1, layouts[8], false, 0},           // transport v6 mobile chain
		{AES256GCM16, layouts[6], false, 1<<32 - 4},     // transport v4 options, the last three seqs
	}
	var sas []*fuzzSA
	for i, s := range specs {
		p := testParams(s.alg, s.l.mode, s.l.outer, s.esn)
		p.SPI += uint32(i)
		p.InitialSeq = s.initial
		o, err := NewOutbound(p)
		if err != nil {
			t.Fatal(err)
		}
		sa := &fuzzSA{p: p, known: map[string]fuzzPacket{}}
		for k, n := range []int{0, 17, 300} {
			plain := s.l.build(n)
			b := new(pkt.Buf)
			b.Set(plain)
			iv := bytes.Repeat([]byte{byte(0x30 + k)}, s.alg.IVLen()) // fixed, so CBC is reproducible
			if s.alg.CounterMode() {
				iv = nil // the sequence number
			}
			if v := o.seal(b, -1, s.initial+uint64(k)+1, iv); v != OK {
				t.Fatal(v)
			}
			w := bytes.Clone(b.Bytes())
			off := espOffsetOf(w)
			sa.known[string(w[off:])] = fuzzPacket{s.l.nh, plain[s.l.espOff:]}
			sa.wires, sa.offs = append(sa.wires, w), append(sa.offs, off)
		}
		sas = append(sas, sa)
	}
	return sas
}

var genCorpus = flag.Bool("gen-fuzz-corpus", false, "rewrite testdata/fuzz/FuzzOpen seeds")

// FuzzOpen feeds arbitrary bytes and ESP offsets to Open. It must never
// panic, and OK must only ever come back for one of the packets the SA
// sealed (whatever the fuzzer does to the unprotected header in front),
// with exactly that packet's result; a second Open of the same bytes must
// then be a replay. No mutation of ESP bytes may be accepted.
func FuzzOpen(f *testing.F) {
	sas := fuzzSAs(f)
	for i, sa := range sas {
		for k, w := range sa.wires {
			f.Add(uint8(i), sa.offs[k], w)
			f.Add(uint8(i), sa.offs[k], w[:len(w)-1])
			bad := bytes.Clone(w)
			bad[len(bad)/2] ^= 4
			f.Add(uint8(i), sa.offs[k], bad)
		}
		f.Add(uint8(i), 0, sa.wires[0][sa.offs[0]:])
	}
	if *genCorpus {
		writeFuzzCorpus(f, sas)
	}
	b := new(pkt.Buf)
	f.Fuzz(func(t *testing.T, sel uint8, espOff int, data []byte) {
		if len(data) > pkt.MaxPacket {
			return
		}
		sa := sas[int(sel)%len(sas)]
		in, err := NewInbound(sa.p)
		if err != nil {
			t.Fatal(err)
		}
		b.Set(data)
		nh, v := in.Open(b, espOff)
		if v >= NumVerdicts {
			t.Fatalf("verdict %d", v)
		}
		if v != OK {
			return
		}
		want, ok := sa.known[string(data[espOff:])]
		if !ok {
			t.Fatalf("Open accepted ESP bytes the SA never sealed: %x", data[espOff:])
		}
		got := b.Bytes()
		if sa.p.Mode == Transport {
			if len(got) < espOff || got[0]>>4 != data[0]>>4 {
				t.Fatalf("transport result %x", got)
			}
			got = got[espOff:]
			checkLengths(t, b.Bytes())
		}
		if nh != want.nh || !bytes.Equal(got, want.payload) {
			t.Fatalf("Open = %d %x, want %d %x", nh, got, want.nh, want.payload)
		}
		b.Set(data)
		if _, v := in.Open(b, espOff); v != DropReplay {
			t.Fatalf("second Open of an accepted packet: %v", v)
		}
	})
}

func checkLengths(t *testing.T, p []byte) {
	t.Helper()
	if p[0]>>4 == 4 {
		if header.IPv4(p).TotalLen() != len(p) || !ipv4ChecksumOK(p) {
			t.Fatalf("IPv4 lengths/checksum of %x", p)
		}
	} else if header.IPv6(p).PayloadLen() != len(p)-header.IPv6HeaderLen {
		t.Fatalf("IPv6 payload length of %x", p)
	}
}

// writeFuzzCorpus writes the valid packets of every SA as seed files
// (go test -run FuzzOpen -gen-fuzz-corpus).
func writeFuzzCorpus(f *testing.F, sas []*fuzzSA) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	for i, sa := range sas {
		for k, w := range sa.wires {
			body := fmt.Sprintf("go test fuzz v1\nbyte(%s)\nint(%d)\n[]byte(%s)\n",
				strconv.QuoteRune(rune(i)), sa.offs[k], strconv.Quote(string(w)))
			name := fmt.Sprintf("valid-%s-%s-%d", sa.p.Algorithm, sa.p.Mode, k)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
}

// TestFuzzSeeds: the seed packets are valid, so FuzzOpen's OK branch is
// exercised by the corpus.
func TestFuzzSeeds(t *testing.T) {
	for _, sa := range fuzzSAs(t) {
		in, err := NewInbound(sa.p)
		if err != nil {
			t.Fatal(err)
		}
		for k, w := range sa.wires {
			if _, _, v := open(in, w, sa.offs[k]); v != OK {
				t.Errorf("%v/%v packet %d: %v", sa.p.Algorithm, sa.p.Mode, k, v)
			}
		}
	}
}
