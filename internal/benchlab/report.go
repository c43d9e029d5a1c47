package benchlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// System is one system under test.
type System struct {
	ID    string `json:"id"`    // as --systems spells it
	Name  string `json:"name"`  // for tables
	Short string `json:"short"` // for chart legends (about 20 characters)
	// Optional systems run only when named (ParseSystems): they are not
	// in DefaultSystems.
	Optional bool `json:"optional,omitempty"`
}

// The systems, in the order each round runs them. mipsec-raw sends raw
// ESP through an AF_PACKET socket (underlay.packet_socket = true, the
// fastest path); the optional mipsec-raw-kernel is the same tunnel through
// the kernel's raw IP socket (packet_socket = false, the default of
// `mipsec run`). strongswan-libipsec is strongSwan's userspace ESP, the
// userspace IPsec one would otherwise pick: ESP in UDP only, as libipsec
// has no raw ESP.
var Systems = []System{
	{ID: "mipsec-udp", Name: "mipsec ESP-in-UDP aes128gcm16", Short: "mipsec udp aes128gcm"},
	{ID: "mipsec-raw", Name: "mipsec raw ESP aes128gcm16 (AF_PACKET send)", Short: "mipsec raw AF_PACKET"},
	{ID: "mipsec-raw-kernel", Name: "mipsec raw ESP aes128gcm16 (kernel raw socket)", Short: "mipsec raw kernel", Optional: true},
	{ID: "mipsec-chacha", Name: "mipsec ESP-in-UDP chacha20poly1305", Short: "mipsec udp chacha20"},
	{ID: WireguardGo, Name: "wireguard-go", Short: "wireguard-go"},
	{ID: StrongswanLibipsec, Name: "strongSwan charon kernel-libipsec aes128gcm16 (ESP-in-UDP)", Short: "strongSwan libipsec"},
	{ID: "veth", Name: "veth (ceiling, no tunnel)", Short: "veth (ceiling)"},
}

// WireguardGo is the ID of the reference system the ratios divide by.
const WireguardGo = "wireguard-go"

// StrongswanLibipsec is the ID of strongSwan's userspace IPsec: charon
// with kernel-libipsec in each namespace (strongswan_linux.go).
const StrongswanLibipsec = "strongswan-libipsec"

// DefaultSystems returns the systems a run without --systems runs: every
// system that is not Optional, in run order.
func DefaultSystems() []System {
	var out []System
	for _, s := range Systems {
		if !s.Optional {
			out = append(out, s)
		}
	}
	return out
}

// SystemByID returns the system with id.
func SystemByID(id string) (System, bool) {
	for _, s := range Systems {
		if s.ID == id {
			return s, true
		}
	}
	return System{}, false
}

// SystemIDs returns the IDs of every system in run order, the optional
// ones marked "(optional)", for usage and error messages.
func SystemIDs() string {
	ids := make([]string, len(Systems))
	for i, s := range Systems {
		ids[i] = s.ID
		if s.Optional {
			ids[i] += " (optional)"
		}
	}
	return strings.Join(ids, ", ")
}

// ParseSystems parses a comma-separated list of system IDs into the
// systems in run order. "default" (or an empty list) stands for
// DefaultSystems and "all" for every system, the optional ones included;
// both may be combined with IDs ("default,mipsec-raw-kernel"). An unknown
// ID, an empty item or an ID named twice is an error.
func ParseSystems(list string) ([]System, error) {
	if strings.TrimSpace(list) == "" {
		return DefaultSystems(), nil
	}
	want := map[string]bool{}
	named := map[string]bool{}
	for _, id := range strings.Split(list, ",") {
		id = strings.TrimSpace(id)
		switch id {
		case "default", "all":
			if named[id] {
				return nil, fmt.Errorf("%q named twice", id)
			}
			named[id] = true
			for _, s := range Systems {
				if id == "all" || !s.Optional {
					want[s.ID] = true
				}
			}
			continue
		}
		if _, ok := SystemByID(id); !ok {
			return nil, fmt.Errorf("unknown system %q (have %s; or default, all)", id, SystemIDs())
		}
		if named[id] {
			return nil, fmt.Errorf("system %q named twice", id)
		}
		named[id], want[id] = true, true
	}
	var out []System
	for _, s := range Systems {
		if want[s.ID] {
			out = append(out, s)
		}
	}
	return out, nil
}

// Metric is one figure the benchmark reports per system.
type Metric struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Unit           string `json:"unit"`
	HigherIsBetter bool   `json:"higher_is_better"`
}

// The tests one round runs per system (TestRun.Test).
const (
	TestPing = "ping"
	TestTCP1 = "tcp1"
	TestTCP4 = "tcp4"
	TestUDP  = "udp"
)

// The metrics, in report order. The IDs of the throughput metrics are the
// tests' (TestTCP1, TestTCP4, TestUDP).
var Metrics = []Metric{
	{TestTCP1, "TCP, 1 stream", "Gbit/s", true},
	{TestTCP4, "TCP, 4 streams", "Gbit/s", true},
	{TestUDP, "UDP goodput, 1400-byte packets", "Gbit/s", true},
	{"udp_loss", "UDP loss at full rate", "%", false},
	{"rtt", "ping RTT, idle (median of the round)", "ms", false},
	{"cpu", "tunnel CPU per GB received, TCP tests (both ends)", "s/GB", false},
}

// TestRun is one test of one system in one round.
type TestRun struct {
	Round  int    `json:"round"` // from 1
	System string `json:"system"`
	Test   string `json:"test"` // TestPing, TestTCP1, ...
	// Error is why the test produced no figure (empty when it did).
	Error string       `json:"error,omitempty"`
	Iperf *IperfResult `json:"iperf,omitempty"`
	// CPUSeconds is the user+system time of the tunnel processes of both
	// ends during the iperf3 run (absent for the veth).
	CPUSeconds *float64 `json:"cpu_seconds,omitempty"`
	// RTTms are the ping round-trip times in milliseconds; Lost counts the
	// echo requests without a reply.
	RTTms []float64 `json:"rtt_ms,omitempty"`
	Lost  int       `json:"lost,omitempty"`
}

// Figure is one metric of one system over the rounds.
type Figure struct {
	Summary
	// Ratio is Median divided by wireguard-go's median (absent when either
	// is missing or wireguard-go was not run).
	Ratio *float64 `json:"ratio_to_wireguard_go,omitempty"`
}

// SystemResult holds the figures of one system, by metric ID.
type SystemResult struct {
	System
	Figures map[string]Figure `json:"figures"`
}

// Host describes the machine and the tools of a run.
type Host struct {
	Kernel      string     `json:"kernel"`
	CPUs        int        `json:"cpus"`
	GoVersion   string     `json:"go_version"`
	Mipsec      string     `json:"mipsec"`
	WireguardGo string     `json:"wireguard_go,omitempty"`
	Strongswan  string     `json:"strongswan,omitempty"`
	Iperf3      string     `json:"iperf3"`
	LoadBefore  [3]float64 `json:"loadavg_before"` // /proc/loadavg 1, 5, 15 min
	LoadAfter   [3]float64 `json:"loadavg_after"`
}

// Settings are the parameters of a run.
type Settings struct {
	Systems  []string `json:"systems"`
	Rounds   int      `json:"rounds"`
	Duration string   `json:"duration"` // per iperf3 test
	Omit     string   `json:"omit"`     // iperf3 -O, before each TCP test
	Pings    int      `json:"pings"`
	// UDPSize is the size of the inner UDP packets (IP header included).
	UDPSize    int    `json:"udp_packet_bytes"`
	UDPBitrate string `json:"udp_bitrate"` // iperf3 -b; "0" is unlimited
	TunnelMTU  int    `json:"tunnel_mtu"`
	VethMTU    int    `json:"veth_mtu"`
}

// Report is the result of a benchmark run: what was run, every test, and
// the summaries (Summarize fills Results from Runs).
type Report struct {
	Schema   int            `json:"schema"` // 1
	Command  string         `json:"command"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Host     Host           `json:"host"`
	Settings Settings       `json:"settings"`
	Metrics  []Metric       `json:"metrics"`
	Results  []SystemResult `json:"results"`
	Runs     []TestRun      `json:"runs"`
}

// Errors counts the runs that produced no figure.
func (r *Report) Errors() int {
	n := 0
	for _, run := range r.Runs {
		if run.Error != "" {
			n++
		}
	}
	return n
}

// roundValues returns, per round, the value of metric m for system sys
// (NaN where that round has none).
func (r *Report) roundValues(sys, m string) []float64 {
	vals := make([]float64, r.Settings.Rounds)
	for i := range vals {
		vals[i] = math.NaN()
	}
	cpu := make([]float64, len(vals))
	gb := make([]float64, len(vals))
	for _, run := range r.Runs {
		if run.System != sys || run.Error != "" || run.Round < 1 || run.Round > len(vals) {
			continue
		}
		i := run.Round - 1
		switch {
		case m == "rtt" && run.Test == TestPing && len(run.RTTms) > 0:
			s := slices.Clone(run.RTTms)
			slices.Sort(s)
			vals[i] = Median(s)
		case run.Iperf == nil:
		case m == run.Test:
			vals[i] = run.Iperf.BitsPerSecond / 1e9
		case m == "udp_loss" && run.Test == TestUDP:
			vals[i] = run.Iperf.LostPercent
		case m == "cpu" && run.CPUSeconds != nil && run.Iperf.Protocol == "TCP":
			cpu[i] += *run.CPUSeconds
			gb[i] += float64(run.Iperf.Bytes) / 1e9
		}
	}
	if m == "cpu" {
		for i := range vals {
			if gb[i] > 0 {
				vals[i] = cpu[i] / gb[i]
			}
		}
	}
	return vals
}

// Summarize computes Results from Runs: per system and metric the median,
// min and max over the rounds and the ratio to wireguard-go. CPU per GB
// of a round is the tunnel CPU of its TCP runs (1 and 4 streams) over the
// bytes they moved: the UDP run at full rate spends CPU on datagrams that
// are dropped, which says more about overload than about cost (its CPU
// time is in its TestRun).
func (r *Report) Summarize() {
	r.Metrics = slices.Clone(Metrics)
	r.Results = nil
	for _, id := range r.Settings.Systems {
		sys, ok := SystemByID(id)
		if !ok {
			sys = System{ID: id, Name: id, Short: id}
		}
		sr := SystemResult{System: sys, Figures: map[string]Figure{}}
		for _, m := range Metrics {
			sr.Figures[m.ID] = Figure{Summary: Summarize(r.roundValues(id, m.ID))}
		}
		r.Results = append(r.Results, sr)
	}
	var ref *SystemResult
	for i := range r.Results {
		if r.Results[i].ID == WireguardGo {
			ref = &r.Results[i]
		}
	}
	if ref == nil {
		return
	}
	for _, sr := range r.Results {
		for id, f := range sr.Figures {
			rf := ref.Figures[id]
			if f.N == 0 || rf.N == 0 {
				continue
			}
			if q, ok := Ratio(f.Median, rf.Median); ok {
				f.Ratio = &q
				sr.Figures[id] = f
			}
		}
	}
}

// fmtValue prints a figure with 3 significant digits.
func fmtValue(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// WriteTable writes the summaries as one table per metric: the median,
// min and max over the rounds and the ratio to wireguard-go.
func (r *Report) WriteTable(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "mipsec bench: medians of %d interleaved rounds, %s per iperf3 test (load average before %.2f, after %.2f; %d CPUs)\n",
		r.Settings.Rounds, r.Settings.Duration, r.Host.LoadBefore[0], r.Host.LoadAfter[0], r.Host.CPUs)
	for _, m := range r.Metrics {
		better := "lower is better"
		if m.HigherIsBetter {
			better = "higher is better"
		}
		fmt.Fprintf(&b, "\n%s (%s, %s)\n", m.Name, m.Unit, better)
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  system\tmedian\tmin\tmax\tvs wireguard-go\trounds")
		for _, sr := range r.Results {
			f := sr.Figures[m.ID]
			if f.N == 0 {
				fmt.Fprintf(tw, "  %s\t-\t-\t-\t-\t0\n", sr.Name)
				continue
			}
			ratio := "-"
			if f.Ratio != nil {
				ratio = fmt.Sprintf("%.2fx", *f.Ratio)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\n", sr.Name, fmtValue(f.Median), fmtValue(f.Min), fmtValue(f.Max), ratio, f.N)
		}
		tw.Flush()
	}
	if n := r.Errors(); n > 0 {
		fmt.Fprintf(&b, "\n%d test(s) failed:\n", n)
		for _, run := range r.Runs {
			if run.Error != "" {
				fmt.Fprintf(&b, "  round %d %s %s: %s\n", run.Round, run.System, run.Test, run.Error)
			}
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Chart is one SVG chart of a report.
type Chart struct {
	File    string   // file name, e2e-*.svg
	Title   string   // chart title
	Unit    string   // Y axis
	Metrics []string // metric IDs, one bar group each
}

// Charts lists the charts WriteFiles draws: the three throughputs side by
// side, then one chart per other metric.
func Charts() []Chart {
	cs := []Chart{{"e2e-throughput.svg", "Throughput through each tunnel (median, whiskers min-max)", "Gbit/s", []string{TestTCP1, TestTCP4, TestUDP}}}
	for _, m := range Metrics {
		cs = append(cs, Chart{"e2e-" + strings.ReplaceAll(m.ID, "_", "-") + ".svg", m.Name + " (median, whiskers min-max)", m.Unit, []string{m.ID}})
	}
	return cs
}

// WriteChart draws chart c: one bar group per metric, one bar per system
// that has a figure for any of them (a missing one is drawn as 0).
func (r *Report) WriteChart(w io.Writer, c Chart) error {
	groups := make([]string, len(c.Metrics))
	for i, id := range c.Metrics {
		groups[i] = id
		for _, m := range r.Metrics {
			if m.ID == id {
				groups[i] = m.Name
			}
		}
	}
	var series []BarSeries
	for _, sr := range r.Results {
		s := BarSeries{Name: sr.Short}
		has := false
		for _, id := range c.Metrics {
			f := sr.Figures[id]
			has = has || f.N > 0
			s.Bars = append(s.Bars, Bar{Value: f.Median, Min: f.Min, Max: f.Max}) // 0 if none
		}
		if has {
			series = append(series, s)
		}
	}
	return WriteBarChart(w, c.Title, c.Unit, groups, series)
}

// WriteFiles writes e2e.json, e2e.txt (the table) and the charts into dir
// (created if needed) and returns the paths written. A chart with no data
// (say, CPU when only the veth ran) is left out.
func (r *Report) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	write := func(name string, fill func(io.Writer) error) error {
		var b bytes.Buffer
		if err := fill(&b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	}
	if err := write("e2e.json", r.WriteJSON); err != nil {
		return paths, err
	}
	if err := write("e2e.txt", r.WriteTable); err != nil {
		return paths, err
	}
	for _, c := range Charts() {
		err := write(c.File, func(w io.Writer) error { return r.WriteChart(w, c) })
		if err != nil && !errors.Is(err, ErrChart) { // ErrChart: nothing to draw
			return paths, err
		}
	}
	return paths, nil
}
