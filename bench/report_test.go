package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/benchlab"
)

func sampleReport() Report {
	return Report{
		Machine: CurrentMachine(),
		Time:    time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC),
		Command: "mipsec bench --in-process",
		Pipeline: []PipelineResult{
			{Algorithm: "aes128gcm16", Case: "1400", Size: 1400, PerRead: 1, Cores: 1, Packets: 1000, Bytes: 1400000, Seconds: 0.01,
				PPS: 1e5, Gbps: 1.12, CeilingPPS: 1.25e5, CeilingGbps: 1.4, Ratio: 0.8},
			{Algorithm: "aes128gcm16", Case: SuperCase, Size: 1400, PerRead: 49, Cores: 2, Packets: 1000, Bytes: 1400000, Seconds: 0.01,
				PPS: 1e5, Gbps: 1.12, CeilingPPS: 2e5, CeilingGbps: 2.2, Ratio: 0.5},
			{Algorithm: "chacha20poly1305", Case: "1400", Size: 1400, PerRead: 1, Cores: 1, Packets: 500, Bytes: 700000, Seconds: 0.01,
				PPS: 5e4, Gbps: 0.56, CeilingPPS: 1e5, CeilingGbps: 1.12, Ratio: 0.5},
		},
		Scaling: &Scaling{Curves: []ScaleCurve{
			{Name: CurveSPD, Unit: "policies", What: "x", Points: []ScalePoint{{10, 60, 100}, {100000, 150, 100}}},
			{Name: CurveSAD, Unit: "SAs", What: "y", Points: []ScalePoint{{1, 4, 100}, {1000000, 111, 100}}},
		}},
	}
}

func TestReportRoundTrip(t *testing.T) {
	r := sampleReport()
	r.Targets = PipelineTargets(r.Pipeline)
	if len(r.Targets) != 2 || !r.Targets[0].Met || r.Targets[1].Met || r.Targets[0].Want != PipelineTarget {
		t.Errorf("targets %+v", r.Targets)
	}
	dir := filepath.Join(t.TempDir(), "results")
	if err := WriteReport(dir, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(filepath.Join(dir, ReportJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
	for _, f := range []string{"pipeline-1cores.svg", "pipeline-2cores.svg", PipelineRatioChart, ScalingChartFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := benchlab.CheckSVG(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	txt, err := os.ReadFile(filepath.Join(dir, ReportTextFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"aes128gcm16", "TUN super-packet", "1,000,000", "27.75x", "NOT met", "mipsec bench --in-process"} {
		if !strings.Contains(string(txt), want) {
			t.Errorf("text lacks %q:\n%s", want, txt)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 6 {
		t.Errorf("%d files in %s, want 6 (no temporaries)", len(ents), dir)
	}
}

func TestReportPartial(t *testing.T) {
	dir := t.TempDir()
	if err := WriteReport(dir, Report{Machine: CurrentMachine()}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d files for an empty report, want 2 (JSON, text)", len(ents))
	}
	// A result no chart can draw fails, but the other files are written.
	r := sampleReport()
	r.Scaling.Curves[0].Points[0].N = 0 // 0 on the log X axis
	err := WriteReport(dir, r)
	if err == nil || !strings.Contains(err.Error(), ScalingChartFile) {
		t.Errorf("undrawable scaling: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ReportJSONFile)); err != nil {
		t.Error(err)
	}
	if _, err := ReadReport(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file read")
	}
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o644)
	if _, err := ReadReport(filepath.Join(dir, "bad.json")); err == nil {
		t.Error("bad JSON read")
	}
}

func TestCurrentMachine(t *testing.T) {
	m := CurrentMachine()
	if m.Cores < 1 || m.GoVersion == "" || m.OS == "" {
		t.Errorf("%+v", m)
	}
	var b bytes.Buffer
	if err := WriteTables(&b, Report{Machine: m}); err != nil || !strings.Contains(b.String(), "machine:") {
		t.Errorf("%v %q", err, b.String())
	}
}

func TestGroupDigits(t *testing.T) {
	for n, want := range map[int]string{0: "0", 10: "10", 999: "999", 1000: "1,000", 100000: "100,000", 1000000: "1,000,000", -1234: "-1,234"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}
