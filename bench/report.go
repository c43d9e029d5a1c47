package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mipsec/mipsec/internal/benchlab"
)

// Machine describes where a report was measured.
type Machine struct {
	// CPU is the model name from /proc/cpuinfo ("" where unknown).
	CPU string `json:"cpu"`
	// Cores is runtime.NumCPU(); GOMAXPROCS its setting when measured.
	Cores      int `json:"cores"`
	GOMAXPROCS int `json:"gomaxprocs"`
	// GoVersion is runtime.Version().
	GoVersion string `json:"go_version"`
	// Kernel is the kernel release (/proc/sys/kernel/osrelease).
	Kernel string `json:"kernel"`
	OS     string `json:"os"`
	Arch   string `json:"arch"`
}

// CurrentMachine describes this machine.
func CurrentMachine() Machine {
	m := Machine{
		Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}

// TargetCheck is one of the targets, checked against a result.
type TargetCheck struct {
	// Name says what is compared ("pipeline aes128gcm16 1400 B, 1 core:
	// ratio to raw seal+open").
	Name string `json:"name"`
	// Value is the measured figure, Want the target (Value >= Want).
	Value float64 `json:"value"`
	Want  float64 `json:"want"`
	Met   bool    `json:"met"`
}

// PipelineTargets checks PipelineTarget on every 1400-byte, one-core
// result.
func PipelineTargets(rs []PipelineResult) []TargetCheck {
	var ts []TargetCheck
	for _, r := range rs {
		if r.Case != "1400" || r.Cores != 1 {
			continue
		}
		ts = append(ts, TargetCheck{
			Name:  fmt.Sprintf("pipeline %s 1400 B, 1 core: ratio to raw seal+open", r.Algorithm),
			Value: r.Ratio, Want: PipelineTarget, Met: r.Ratio >= PipelineTarget,
		})
	}
	return ts
}

// Report is the in-process benchmark's result: what WriteReport writes.
type Report struct {
	Machine Machine `json:"machine"`
	// Time is when the run started (UTC).
	Time time.Time `json:"time"`
	// Command is the command line that produced the report, for the
	// README.
	Command  string           `json:"command,omitempty"`
	Pipeline []PipelineResult `json:"pipeline,omitempty"`
	Scaling  *Scaling         `json:"scaling,omitempty"`
	Targets  []TargetCheck    `json:"targets,omitempty"`
}

// Files WriteReport writes in its directory. PipelineChartFile has one
// %d, the core count.
const (
	ReportJSONFile     = "inprocess.json"
	ReportTextFile     = "inprocess.txt"
	PipelineChartFile  = "pipeline-%dcores.svg"
	PipelineRatioChart = "pipeline-ratio.svg"
	ScalingChartFile   = "scaling.svg"
)

// ReadReport reads a report WriteReport wrote (its JSON file).
func ReadReport(path string) (Report, error) {
	var r Report
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("bench: %s: %w", path, err)
	}
	return r, nil
}

// WriteReport writes r to dir (created if missing): ReportJSONFile,
// ReportTextFile (WriteTables), one PipelineChartFile per core count (Gb/s
// per case and algorithm), PipelineRatioChart (ratio to the raw ceiling) and
// ScalingChartFile (ns/op against entries, log X). Charts of parts r does
// not have are not written. Each file is written to a temporary name and
// renamed.
func WriteReport(dir string, r Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	files := map[string]func(io.Writer) error{
		ReportJSONFile: func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		},
		ReportTextFile: func(w io.Writer) error { return WriteTables(w, r) },
	}
	if len(r.Pipeline) > 0 {
		for _, cores := range pipelineCores(r.Pipeline) {
			groups, series := pipelineBars(r.Pipeline, cores, func(p PipelineResult) float64 { return p.Gbps })
			title := fmt.Sprintf("In-process pipeline, %d core(s): inner Gb/s (TUN → seal → underlay → open → TUN)", cores)
			files[fmt.Sprintf(PipelineChartFile, cores)] = func(w io.Writer) error {
				return benchlab.WriteBarChart(w, title, "Gb/s", groups, series)
			}
		}
		groups, series := pipelineRatioBars(r.Pipeline)
		files[PipelineRatioChart] = func(w io.Writer) error {
			return benchlab.WriteBarChart(w, "In-process pipeline: ratio to the raw seal+open ceiling", "ratio", groups, series)
		}
	}
	if r.Scaling != nil && len(r.Scaling.Curves) > 0 {
		var curves []benchlab.Curve
		for _, c := range r.Scaling.Curves {
			cv := benchlab.Curve{Name: c.Name + " (" + c.Unit + ")"}
			for _, p := range c.Points {
				cv.Points = append(cv.Points, benchlab.XY{X: float64(p.N), Y: p.NsPerOp})
			}
			curves = append(curves, cv)
		}
		files[ScalingChartFile] = func(w io.Writer) error {
			return benchlab.WriteLineChart(w, "Lookup cost as the tables grow", "entries (policies, SAs, bindings)", "ns per lookup", true, false, curves)
		}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := writeFileAtomic(filepath.Join(dir, name), files[name]); err != nil {
			errs = append(errs, fmt.Errorf("bench: %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func writeFileAtomic(path string, f func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := f(&buf); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func pipelineCores(rs []PipelineResult) []int {
	var cs []int
	for _, r := range rs {
		if !slices.Contains(cs, r.Cores) {
			cs = append(cs, r.Cores)
		}
	}
	slices.Sort(cs)
	return cs
}

// orderedKeys returns the distinct keys of rs in first-seen order.
func orderedKeys(rs []PipelineResult, key func(PipelineResult) string) []string {
	var ks []string
	for _, r := range rs {
		if k := key(r); !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	return ks
}

func caseLabel(c string) string {
	if c == SuperCase {
		return "TUN super-packet"
	}
	return c + " B"
}

// pipelineBars: groups are the cases, series the algorithms, for one core
// count. Missing combinations are 0.
func pipelineBars(rs []PipelineResult, cores int, val func(PipelineResult) float64) ([]string, []benchlab.BarSeries) {
	cases := orderedKeys(rs, func(r PipelineResult) string { return r.Case })
	algs := orderedKeys(rs, func(r PipelineResult) string { return r.Algorithm })
	groups := make([]string, len(cases))
	for i, c := range cases {
		groups[i] = caseLabel(c)
	}
	var series []benchlab.BarSeries
	for _, a := range algs {
		s := benchlab.BarSeries{Name: a, Bars: make([]benchlab.Bar, len(cases))}
		for _, r := range rs {
			if r.Algorithm == a && r.Cores == cores {
				v := val(r)
				s.Bars[slices.Index(cases, r.Case)] = benchlab.Bar{Value: v, Min: v, Max: v}
			}
		}
		series = append(series, s)
	}
	return groups, series
}

// pipelineRatioBars: groups are the cases, series algorithm × cores.
func pipelineRatioBars(rs []PipelineResult) ([]string, []benchlab.BarSeries) {
	cases := orderedKeys(rs, func(r PipelineResult) string { return r.Case })
	keys := orderedKeys(rs, func(r PipelineResult) string { return fmt.Sprintf("%s, %d core(s)", r.Algorithm, r.Cores) })
	groups := make([]string, len(cases))
	for i, c := range cases {
		groups[i] = caseLabel(c)
	}
	series := make([]benchlab.BarSeries, len(keys))
	for i, k := range keys {
		series[i] = benchlab.BarSeries{Name: k, Bars: make([]benchlab.Bar, len(cases))}
	}
	for _, r := range rs {
		i := slices.Index(keys, fmt.Sprintf("%s, %d core(s)", r.Algorithm, r.Cores))
		series[i].Bars[slices.Index(cases, r.Case)] = benchlab.Bar{Value: r.Ratio, Min: r.Ratio, Max: r.Ratio}
	}
	return groups, series
}

// WriteTables writes r as text tables: the machine, the pipeline results,
// the targets and the scaling curves.
func WriteTables(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	m := r.Machine
	fmt.Fprintf(bw, "machine: %s, %d cores (GOMAXPROCS %d), %s, kernel %s, %s/%s\n",
		orUnknown(m.CPU), m.Cores, m.GOMAXPROCS, m.GoVersion, orUnknown(m.Kernel), m.OS, m.Arch)
	if !r.Time.IsZero() {
		fmt.Fprintf(bw, "time: %s\n", r.Time.UTC().Format(time.RFC3339))
	}
	if r.Command != "" {
		fmt.Fprintf(bw, "command: %s\n", r.Command)
	}
	if len(r.Pipeline) > 0 {
		fmt.Fprintf(bw, "\nIn-process pipeline (fake TUN -> SPD, seal -> fake underlay -> SA, replay, open -> fake TUN)\n\n")
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "algorithm\tcase\tcores\tpkts/read\tMpps\tGb/s\traw Mpps\traw Gb/s\tratio\tallocs/pkt\t\n")
		for _, p := range r.Pipeline {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%.2f\t%.3f\t%.2f\t%.2f\t%.4f\t\n",
				p.Algorithm, caseLabel(p.Case), p.Cores, p.PerRead, p.PPS/1e6, p.Gbps, p.CeilingPPS/1e6, p.CeilingGbps, p.Ratio, p.AllocsPerPacket)
		}
		tw.Flush()
	}
	if len(r.Targets) > 0 {
		fmt.Fprintf(bw, "\nTargets\n\n")
		for _, t := range r.Targets {
			verdict := "met"
			if !t.Met {
				verdict = "NOT met"
			}
			fmt.Fprintf(bw, "  %s: %.2f (target >= %.2f): %s\n", t.Name, t.Value, t.Want, verdict)
		}
	}
	if r.Scaling != nil {
		for _, c := range r.Scaling.Curves {
			fmt.Fprintf(bw, "\n%s: %s\n\n", c.Name, c.What)
			tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "%s\tns/op\tvs first\t\n", c.Unit)
			for _, p := range c.Points {
				rel := 0.0
				if c.Points[0].NsPerOp > 0 {
					rel = p.NsPerOp / c.Points[0].NsPerOp
				}
				fmt.Fprintf(tw, "%s\t%.1f\t%.2fx\t\n", groupDigits(p.N), p.NsPerOp, rel)
			}
			tw.Flush()
		}
	}
	return bw.Flush()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// groupDigits writes n with thousands separators: 1,000,000.
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
