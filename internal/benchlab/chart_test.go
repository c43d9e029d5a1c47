package benchlab

import (
	"bytes"
	"encoding/xml"
	"errors"
	"math"
	"strings"
	"testing"
)

// parseSVG checks b with CheckSVG and returns every text node and the
// element counts.
func parseSVG(t *testing.T, b []byte) (texts []string, elems map[string]int) {
	t.Helper()
	if err := CheckSVG(b); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	elems = map[string]int{}
	for {
		tok, err := d.Token()
		if err != nil { // io.EOF: CheckSVG read the same document
			break
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			elems[tk.Name.Local]++
		case xml.CharData:
			if s := strings.TrimSpace(string(tk)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	return texts, elems
}

func contains(ss []string, want string) bool {
	for _, s := range ss {
		if s == want {
			return true
		}
	}
	return false
}

func TestWriteBarChart(t *testing.T) {
	hostile := `<b>&"x'` + "\x01\x00]]>\uffff"
	groups := []string{"TCP 1 stream", "TCP 4 streams", hostile}
	series := []BarSeries{
		{Name: "mipsec udp", Bars: []Bar{{1.9, 1.8, 2.0}, {2.5, 2.4, 2.6}, {3, 3, 3}}},
		{Name: "wireguard-go", Bars: []Bar{{1.84, 1.7, 1.9}, {2.2, 2.1, 2.3}, {0, 0, 0}}},
		{Name: "a & b < c", Bars: []Bar{{13.5, 13, 14}, {13, 12, 14}, {1, 0.5, 1.5}}},
	}
	var buf bytes.Buffer
	if err := WriteBarChart(&buf, "Throughput <Gb/s>", "Gb/s", groups, series); err != nil {
		t.Fatal(err)
	}
	texts, elems := parseSVG(t, buf.Bytes())
	for _, want := range []string{"Throughput <Gb/s>", "TCP 1 stream", "mipsec udp", "a & b < c", "Gb/s"} {
		if !contains(texts, want) {
			t.Errorf("text %q missing from %q", want, texts)
		}
	}
	// One rect per bar, plus the background and one legend swatch per series.
	if want := 9 + 1 + 3; elems["rect"] != want {
		t.Errorf("%d rects, want %d", elems["rect"], want)
	}
	// Whiskers only where Min != Max: 2 + 2 + 3.
	if elems["path"] != 7 {
		t.Errorf("%d whiskers, want 7", elems["path"])
	}
	// The hostile label survives, control characters replaced.
	if want := `<b>&"x'` + "\ufffd\ufffd]]>\ufffd"; !contains(texts, want) {
		t.Errorf("hostile label %q missing from %q", want, texts)
	}
	// Bars must lie within the plot.
	if strings.Contains(buf.String(), `height="-`) || strings.Contains(buf.String(), "NaN") {
		t.Errorf("bad geometry:\n%s", buf.String())
	}
}

func TestWriteBarChartNegative(t *testing.T) {
	var buf bytes.Buffer
	err := WriteBarChart(&buf, "delta", "%", []string{"a", "b"}, []BarSeries{{Name: "x", Bars: []Bar{{-5, -6, -4}, {10, 9, 11}}}})
	if err != nil {
		t.Fatal(err)
	}
	parseSVG(t, buf.Bytes())
	if strings.Contains(buf.String(), `height="-`) {
		t.Errorf("negative height:\n%s", buf.String())
	}
}

func TestWriteBarChartBadInput(t *testing.T) {
	ok := []BarSeries{{Name: "a", Bars: []Bar{{1, 1, 1}}}}
	for name, tc := range map[string]struct {
		groups []string
		series []BarSeries
	}{
		"no groups":   {nil, ok},
		"no series":   {[]string{"g"}, nil},
		"short":       {[]string{"g", "h"}, ok},
		"long":        {nil, []BarSeries{{Name: "a", Bars: []Bar{{1, 1, 1}}}}},
		"NaN value":   {[]string{"g"}, []BarSeries{{Name: "a", Bars: []Bar{{math.NaN(), 1, 1}}}}},
		"Inf max":     {[]string{"g"}, []BarSeries{{Name: "a", Bars: []Bar{{1, 1, math.Inf(1)}}}}},
		"-Inf min":    {[]string{"g"}, []BarSeries{{Name: "a", Bars: []Bar{{1, math.Inf(-1), 1}}}}},
		"empty bars":  {[]string{"g"}, []BarSeries{{Name: "a"}}},
		"2nd has NaN": {[]string{"g"}, append(ok, BarSeries{Name: "b", Bars: []Bar{{1, math.NaN(), 1}}})},
	} {
		var buf bytes.Buffer
		err := WriteBarChart(&buf, "t", "u", tc.groups, tc.series)
		if !errors.Is(err, ErrChart) {
			t.Errorf("%s: err %v, want ErrChart", name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes on error", name, buf.Len())
		}
	}
}

func TestWriteLineChart(t *testing.T) {
	curves := []Curve{
		{Name: "SPD <policies>", Points: []XY{{10, 60}, {100, 62}, {1000, 66}, {10000, 90}, {100000, 150}}},
		{Name: "SAD", Points: []XY{{1, 4}, {1000, 5.8}, {1e6, 111}}},
	}
	for _, logs := range [][2]bool{{true, false}, {true, true}, {false, false}, {false, true}} {
		var buf bytes.Buffer
		if err := WriteLineChart(&buf, "Lookup & scaling", "entries", "ns/op", logs[0], logs[1], curves); err != nil {
			t.Fatal(err)
		}
		texts, elems := parseSVG(t, buf.Bytes())
		for _, want := range []string{"Lookup & scaling", "entries", "ns/op", "SPD <policies>", "SAD"} {
			if !contains(texts, want) {
				t.Errorf("log %v: text %q missing", logs, want)
			}
		}
		if elems["path"] != 2 {
			t.Errorf("log %v: %d paths, want 2", logs, elems["path"])
		}
		// 8 points + 2 legend markers.
		if elems["circle"] != 10 {
			t.Errorf("log %v: %d circles, want 10", logs, elems["circle"])
		}
		if logs[0] {
			// Decade ticks from 1 to 1e6.
			for _, want := range []string{"1", "10", "1000", "1e+06"} {
				if !contains(texts, want) {
					t.Errorf("log X: tick %q missing from %q", want, texts)
				}
			}
		}
		if strings.Contains(buf.String(), "NaN") || strings.Contains(buf.String(), "Inf") {
			t.Errorf("log %v: NaN/Inf in output", logs)
		}
	}
	// A single point, and a flat curve, still draw.
	var buf bytes.Buffer
	if err := WriteLineChart(&buf, "one", "x", "y", true, true, []Curve{{Name: "p", Points: []XY{{5, 5}}}}); err != nil {
		t.Fatal(err)
	}
	parseSVG(t, buf.Bytes())
	buf.Reset()
	if err := WriteLineChart(&buf, "flat", "x", "y", false, false, []Curve{{Name: "p", Points: []XY{{1, 3}, {2, 3}}}}); err != nil {
		t.Fatal(err)
	}
	parseSVG(t, buf.Bytes())
	if strings.Contains(buf.String(), "NaN") {
		t.Error("NaN in flat chart")
	}
}

func TestWriteLineChartBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		logX, logY bool
		curves     []Curve
	}{
		"no curves":   {false, false, nil},
		"no points":   {false, false, []Curve{{Name: "a"}}},
		"NaN":         {false, false, []Curve{{Name: "a", Points: []XY{{1, math.NaN()}}}}},
		"Inf":         {false, false, []Curve{{Name: "a", Points: []XY{{math.Inf(1), 1}}}}},
		"zero logX":   {true, false, []Curve{{Name: "a", Points: []XY{{0, 1}}}}},
		"neg logY":    {false, true, []Curve{{Name: "a", Points: []XY{{1, -1}}}}},
		"2nd no data": {false, false, []Curve{{Name: "a", Points: []XY{{1, 1}}}, {Name: "b"}}},
	} {
		var buf bytes.Buffer
		err := WriteLineChart(&buf, "t", "x", "y", tc.logX, tc.logY, tc.curves)
		if !errors.Is(err, ErrChart) {
			t.Errorf("%s: err %v, want ErrChart", name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes on error", name, buf.Len())
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestChartWriteError(t *testing.T) {
	err := WriteBarChart(failWriter{}, "t", "u", []string{"g"}, []BarSeries{{Name: "a", Bars: []Bar{{1, 0, 2}}}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("bar: %v", err)
	}
	err = WriteLineChart(failWriter{}, "t", "x", "y", false, false, []Curve{{Name: "a", Points: []XY{{1, 1}}}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("line: %v", err)
	}
}
