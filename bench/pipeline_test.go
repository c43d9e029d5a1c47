package bench

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
)

func TestRunPipeline(t *testing.T) {
	start := time.Now()
	var progress bytes.Buffer
	rs, err := RunPipeline(context.Background(), PipelineOptions{
		Algorithms: []string{"aes128gcm16", "chacha20poly1305"},
		Sizes:      []int{64, 1400},
		Cores:      []int{1, 2},
		Duration:   40 * time.Millisecond,
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v", el)
	}
	// 2 algorithms x (2 sizes + super) x 2 core counts.
	if len(rs) != 12 {
		t.Fatalf("%d results, want 12", len(rs))
	}
	for _, r := range rs {
		t.Logf("%+v", r)
		if r.PPS <= 0 || r.Gbps <= 0 || r.CeilingPPS <= 0 || r.Ratio <= 0 || r.Packets == 0 {
			t.Errorf("%s %s %d cores: not positive: %+v", r.Algorithm, r.Case, r.Cores, r)
		}
		// The pipeline cannot beat bare crypto (the machine is noisy and
		// the ceiling is measured at another moment: a wide margin). A
		// 20 ms ceiling can be starved on a loaded machine (one seen at
		// 1/13 of its rate): above the margin, measure it again for longer
		// and judge by the best of those.
		if r.Ratio > 5 {
			ceil := recheckCeiling(t, r)
			if ratio := r.PPS / ceil; ratio > 5 {
				t.Errorf("%s %s: ratio %.2f (%.2f against a %.0f pkt/s ceiling measured again) above the ceiling",
					r.Algorithm, r.Case, r.Ratio, ratio, ceil)
			}
		}
		wantBytes := float64(r.Packets) * float64(r.Size)
		if r.Case != SuperCase && float64(r.Bytes) != wantBytes {
			t.Errorf("%s %s: %d bytes for %d packets", r.Algorithm, r.Case, r.Bytes, r.Packets)
		}
	}
	if got := strings.Count(progress.String(), "\n"); got != 12 {
		t.Errorf("%d progress lines, want 12:\n%s", got, progress.String())
	}
}

// recheckCeiling measures r's raw ceiling again, best of three 100 ms runs
// on r.Cores goroutines (the super-packet case at its segment size).
func recheckCeiling(t *testing.T, r PipelineResult) float64 {
	t.Helper()
	alg, err := esp.ParseAlgorithm(r.Algorithm)
	if err != nil {
		t.Fatal(err)
	}
	var best float64
	for range 3 {
		pps, err := rawCeiling(alg, r.Size, r.Cores, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		best = max(best, pps)
	}
	return best
}

func TestRunPipelineBadOptions(t *testing.T) {
	for name, o := range map[string]PipelineOptions{
		"algorithm": {Algorithms: []string{"rot13"}},
		"small":     {Sizes: []int{27}},
		"large":     {Sizes: []int{MaxPacketSize + 1}},
		"cores":     {Cores: []int{0}},
		"batch":     {TUNBatch: -1},
	} {
		if _, err := RunPipeline(context.Background(), o, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRunPipelineCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs, err := RunPipeline(ctx, PipelineOptions{Algorithms: []string{"aes128gcm16"}}, nil)
	if err == nil || len(rs) != 0 {
		t.Errorf("canceled: %d results, %v", len(rs), err)
	}
}

func TestSuperSegments(t *testing.T) {
	segs := superSegments()
	total := 0
	for i, s := range segs {
		if len(s) > superSegment || (i < len(segs)-1 && len(s) != superSegment) {
			t.Errorf("segment %d: %d bytes", i, len(s))
		}
		total += len(s) - 40
	}
	if total != superBytes-40 {
		t.Errorf("%d payload bytes, want %d", total, superBytes-40)
	}
}

// TestGeneratedPackets checks the generated packets: valid IPv4 headers with a
// correct checksum (RFC 791 §3.1), hostA to hostB, the total length of the
// packet, and the transport protocol asked for.
func TestGeneratedPackets(t *testing.T) {
	check := func(name string, p []byte, proto uint8) {
		t.Helper()
		h := header.IPv4(p)
		if !h.IsValid() || !h.IsChecksumValid() || h.TotalLen() != len(p) ||
			h.Src() != hostA || h.Dst() != hostB || h.Protocol() != proto ||
			h.Flags() != header.IPv4FlagDF || h.TTL() != 64 {
			t.Errorf("%s: bad IPv4 header % x", name, p[:min(len(p), 20)])
		}
	}
	for _, n := range []int{MinPacketSize, 64, 1400, MaxPacketSize} {
		check("udp "+strconv.Itoa(n), udpPacket(n, 7), header.ProtoUDP)
	}
	for i, s := range superSegments() {
		check("segment "+strconv.Itoa(i), s, header.ProtoTCP)
	}
}
