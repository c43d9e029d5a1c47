package benchlab

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseSystems(t *testing.T) {
	ids := func(ss []System) string {
		var out []string
		for _, x := range ss {
			out = append(out, x.ID)
		}
		return strings.Join(out, ",")
	}
	const defaults = "mipsec-udp,mipsec-raw,mipsec-chacha,wireguard-go,strongswan-libipsec,veth"
	for _, tt := range []struct{ list, want string }{
		{"", defaults},
		{"default", defaults},
		{" default ", defaults},
		{"all", "mipsec-udp,mipsec-raw,mipsec-raw-kernel,mipsec-chacha,wireguard-go,strongswan-libipsec,veth"},
		// Run order is fixed, whatever the order given.
		{"veth, strongswan-libipsec, mipsec-raw,wireguard-go", "mipsec-raw,wireguard-go,strongswan-libipsec,veth"},
		// The optional system runs only when named.
		{"mipsec-raw-kernel,mipsec-raw", "mipsec-raw,mipsec-raw-kernel"},
		{"default,mipsec-raw-kernel", "mipsec-udp,mipsec-raw,mipsec-raw-kernel,mipsec-chacha,wireguard-go,strongswan-libipsec,veth"},
		{"mipsec-raw,default", defaults},
		{"all,veth", "mipsec-udp,mipsec-raw,mipsec-raw-kernel,mipsec-chacha,wireguard-go,strongswan-libipsec,veth"},
	} {
		s, err := ParseSystems(tt.list)
		if err != nil || ids(s) != tt.want {
			t.Errorf("ParseSystems(%q) = %s, %v; want %s", tt.list, ids(s), err, tt.want)
		}
	}
	if d := DefaultSystems(); len(d) != len(Systems)-1 || slices.ContainsFunc(d, func(s System) bool { return s.Optional }) {
		t.Errorf("DefaultSystems() = %v", d)
	}
	for _, bad := range []string{"ipsec", "veth,veth", "veth,", ",", "mipsec-raw-kernel,mipsec-raw-kernel", "mipsec-raw-kernl",
		"default,default", "all,all", "default;veth", "\x00"} {
		if s, err := ParseSystems(bad); err == nil {
			t.Errorf("ParseSystems(%q) = %v, want an error", bad, s)
		}
	}
	// The error lists every system, the optional one marked.
	_, err := ParseSystems("ipsec")
	if err == nil || !strings.Contains(err.Error(), "mipsec-raw-kernel (optional)") || !strings.Contains(err.Error(), "or default, all") {
		t.Errorf("unknown system: %v", err)
	}
}

// The raw ESP systems say which send path they measure in every place a
// system is named: table, JSON and chart legend.
func TestSystemNames(t *testing.T) {
	raw, _ := SystemByID("mipsec-raw")
	kernel, ok := SystemByID("mipsec-raw-kernel")
	if !ok || !kernel.Optional || raw.Optional {
		t.Fatalf("mipsec-raw %+v, mipsec-raw-kernel %+v", raw, kernel)
	}
	if !strings.Contains(raw.Name, "AF_PACKET") || !strings.Contains(raw.Short, "AF_PACKET") ||
		!strings.Contains(kernel.Name, "kernel") || !strings.Contains(kernel.Short, "kernel") {
		t.Errorf("names do not say the send path: %+v, %+v", raw, kernel)
	}
	seen := map[string]bool{}
	for _, s := range Systems {
		if len(s.Short) > 20 {
			t.Errorf("%s: legend %q is longer than 20 characters", s.ID, s.Short)
		}
		if seen[s.Name] || seen[s.Short] {
			t.Errorf("%s: name %q or legend %q is not unique", s.ID, s.Name, s.Short)
		}
		seen[s.Name], seen[s.Short] = true, true
	}
	r := &Report{Schema: 1, Settings: Settings{Systems: []string{"mipsec-raw", "mipsec-raw-kernel"}, Rounds: 1, Duration: "10s"}}
	r.Runs = []TestRun{
		{Round: 1, System: "mipsec-raw", Test: TestTCP1, Iperf: tcp(2e9, 2e9)},
		{Round: 1, System: "mipsec-raw-kernel", Test: TestTCP1, Iperf: tcp(1e9, 1e9)},
	}
	r.Summarize()
	var table, js, chart bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteChart(&chart, Charts()[0]); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{raw.Name, kernel.Name} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
		if !strings.Contains(js.String(), `"name": "`+want+`"`) {
			t.Errorf("JSON lacks %q:\n%s", want, js.String())
		}
	}
	if !strings.Contains(js.String(), `"optional": true`) || strings.Count(js.String(), `"optional"`) != 1 {
		t.Errorf("JSON: want optional only on mipsec-raw-kernel:\n%s", js.String())
	}
	for _, want := range []string{raw.Short, kernel.Short} {
		if !strings.Contains(chart.String(), ">"+want+"<") {
			t.Errorf("chart legend lacks %q", want)
		}
	}
}

func f64(v float64) *float64 { return &v }

func tcp(bps float64, bytes int64) *IperfResult {
	return &IperfResult{Protocol: "TCP", Streams: 1, Seconds: 1, Bytes: bytes, BitsPerSecond: bps}
}

// testReport: wireguard-go and mipsec-raw over 3 rounds, with one failed
// test, and the veth without CPU figures.
func testReport() *Report {
	r := &Report{Schema: 1, Settings: Settings{Systems: []string{"mipsec-raw", WireguardGo, "veth"}, Rounds: 3, Duration: "10s"}}
	add := func(round int, sys, test string, res *IperfResult, cpu *float64, errText string) {
		r.Runs = append(r.Runs, TestRun{Round: round, System: sys, Test: test, Iperf: res, CPUSeconds: cpu, Error: errText})
	}
	for round, g := range []float64{2, 3, 1} { // mipsec-raw TCP1 Gbit/s
		add(round+1, "mipsec-raw", TestTCP1, tcp(g*1e9, int64(g*1e9)), f64(g), "") // 1 s/GB
		add(round+1, WireguardGo, TestTCP1, tcp(1e9, 1e9), f64(2), "")             // 2 s/GB
		add(round+1, "veth", TestTCP1, tcp(10e9, 10e9), nil, "")
	}
	// UDP: loss and goodput; a failed round contributes nothing.
	add(1, "mipsec-raw", TestUDP, &IperfResult{Protocol: "UDP", Bytes: 1e9, BitsPerSecond: 0.5e9, LostPercent: 10}, f64(8), "")
	add(2, "mipsec-raw", TestUDP, nil, nil, "iperf3: boom")
	add(1, WireguardGo, TestUDP, &IperfResult{Protocol: "UDP", Bytes: 1e9, BitsPerSecond: 0.25e9, LostPercent: 20}, f64(16), "")
	// Pings: the round's figure is the median RTT.
	r.Runs = append(r.Runs,
		TestRun{Round: 1, System: "mipsec-raw", Test: TestPing, RTTms: []float64{0.5, 0.1, 0.3}},
		TestRun{Round: 2, System: "mipsec-raw", Test: TestPing, RTTms: []float64{0.4, 0.2}},
		TestRun{Round: 1, System: WireguardGo, Test: TestPing, RTTms: []float64{0.6}},
		TestRun{Round: 7, System: WireguardGo, Test: TestPing, RTTms: []float64{99}}, // no such round
	)
	r.Summarize()
	return r
}

func TestSummarizeReport(t *testing.T) {
	r := testReport()
	if r.Errors() != 1 {
		t.Errorf("Errors() = %d, want 1", r.Errors())
	}
	if len(r.Results) != 3 || r.Results[0].ID != "mipsec-raw" || r.Results[2].Name != "veth (ceiling, no tunnel)" {
		t.Fatalf("results %+v", r.Results)
	}
	get := func(i int, m string) Figure { return r.Results[i].Figures[m] }
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	f := get(0, TestTCP1)
	if f.N != 3 || !near(f.Median, 2) || !near(f.Min, 1) || !near(f.Max, 3) || f.Ratio == nil || !near(*f.Ratio, 2) {
		t.Errorf("mipsec-raw tcp1 %+v ratio %v", f, f.Ratio)
	}
	// CPU per GB counts the TCP runs only: round 1's UDP run (8 s for
	// 1 GB) is left out.
	f = get(0, "cpu")
	if f.N != 3 || !near(f.Samples[0], 1) || !near(f.Samples[1], 1) || !near(f.Median, 1) || !near(*f.Ratio, 0.5) {
		t.Errorf("mipsec-raw cpu %+v", f)
	}
	wg := get(1, "cpu")
	if !near(wg.Samples[0], 2) || !near(wg.Median, 2) || wg.Ratio == nil || *wg.Ratio != 1 {
		t.Errorf("wireguard-go cpu %+v", wg)
	}
	if f := get(2, "cpu"); f.N != 0 || f.Ratio != nil {
		t.Errorf("veth cpu %+v, want none", f)
	}
	if f := get(0, TestUDP); f.N != 1 || !near(f.Median, 0.5) || !near(*f.Ratio, 2) {
		t.Errorf("mipsec-raw udp %+v", f)
	}
	if f := get(0, "udp_loss"); f.N != 1 || f.Median != 10 || !near(*f.Ratio, 0.5) {
		t.Errorf("mipsec-raw udp_loss %+v", f)
	}
	if f := get(0, "rtt"); f.N != 2 || !near(f.Median, 0.3) || !near(f.Min, 0.3) || !near(f.Max, 0.3) || !near(*f.Ratio, 0.5) {
		t.Errorf("mipsec-raw rtt %+v", f)
	}
	if f := get(1, "rtt"); f.N != 1 || f.Median != 0.6 {
		t.Errorf("wireguard-go rtt %+v: the out-of-range round must not count", f)
	}
	if f := get(2, TestTCP4); f.N != 0 {
		t.Errorf("veth tcp4 %+v, want none", f)
	}
}

// Without wireguard-go in the run there are no ratios.
func TestSummarizeNoReference(t *testing.T) {
	r := &Report{Settings: Settings{Systems: []string{"veth"}, Rounds: 1},
		Runs: []TestRun{{Round: 1, System: "veth", Test: TestTCP1, Iperf: tcp(1e9, 1e9)}}}
	r.Summarize()
	if f := r.Results[0].Figures[TestTCP1]; f.N != 1 || f.Ratio != nil {
		t.Errorf("got %+v", f)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"TCP, 1 stream (Gbit/s, higher is better)",
		"ping RTT",
		"2.00x",
		"round 2 mipsec-raw udp: iperf3: boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// mipsec-raw's TCP line: median 2, min 1, max 3, ratio 2, 3 rounds.
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "mipsec raw ESP aes128gcm16 (AF_PACKET send) 2.00 1.00 3.00 2.00x 3") {
		t.Errorf("no mipsec-raw TCP 1 line:\n%s", out)
	}
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results")
	paths, err := testReport().WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, p := range paths {
		have[filepath.Base(p)] = true
	}
	for _, want := range []string{"e2e.json", "e2e.txt", "e2e-throughput.svg", "e2e-tcp1.svg", "e2e-cpu.svg", "e2e-rtt.svg"} {
		if !have[want] {
			t.Errorf("%s not written (wrote %v)", want, paths)
		}
	}
	// tcp4 has no data for any system: no chart.
	if have["e2e-tcp4.svg"] {
		t.Error("e2e-tcp4.svg written without data")
	}
	b, err := os.ReadFile(filepath.Join(dir, "e2e.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 3 || back.Results[0].Figures[TestTCP1].Median != 2 || len(back.Runs) != len(testReport().Runs) {
		t.Errorf("JSON round trip lost data: %+v", back.Results)
	}
	for _, p := range paths {
		if strings.HasSuffix(p, ".svg") {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckSVG(b); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	}
	// The throughput chart has every system with any throughput figure.
	b, err = os.ReadFile(filepath.Join(dir, "e2e-throughput.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mipsec raw AF_PACKET", "wireguard-go", "veth (ceiling)", "TCP, 4 streams"} {
		if !strings.Contains(string(b), name) {
			t.Errorf("throughput chart lacks %q", name)
		}
	}
}

// A directory that cannot be created is an error.
func TestWriteFilesError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := testReport().WriteFiles(filepath.Join(file, "sub")); err == nil {
		t.Error("WriteFiles into a path under a file succeeded")
	}
}
