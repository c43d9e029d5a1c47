package benchlab

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Bar is one bar group entry: a value with its min/max whiskers. Min == Max
// draws no whisker.
type Bar struct{ Value, Min, Max float64 }

// BarSeries is one system (one colour) across the groups;
// len(Bars) == len(groups).
type BarSeries struct {
	Name string
	Bars []Bar
}

// XY is one point of a curve.
type XY struct{ X, Y float64 }

// Curve is one named line of a line chart.
type Curve struct {
	Name   string
	Points []XY
}

// ErrChart is wrapped by every error the chart writers return for input they
// cannot draw (no data, mismatched lengths, NaN, ±Inf, non-positive values on
// a log axis).
var ErrChart = errors.New("benchlab: cannot draw chart")

// palette: Okabe–Ito, then Tol muted (colour-blind friendly).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000", "#882255", "#44AA99", "#999933", "#AA4499"}

// Chart geometry, in SVG user units.
const (
	chartW      = 900
	chartH      = 480
	marginL     = 80
	marginR     = 180 // legend
	marginT     = 50
	marginB     = 70
	plotW       = chartW - marginL - marginR
	plotH       = chartH - marginT - marginB
	legendX     = chartW - marginR + 15
	legendY     = marginT + 10
	legendStepY = 20
)

// CheckSVG returns an error unless b is well-formed XML whose root element
// is svg in the SVG namespace, as WriteBarChart and WriteLineChart write it.
func CheckSVG(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	var root *xml.Name
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("benchlab: SVG: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == nil {
			root = &se.Name
		}
	}
	if root == nil || root.Local != "svg" || root.Space != svgNamespace {
		return fmt.Errorf("benchlab: SVG: root element %v, want svg in %s", root, svgNamespace)
	}
	return nil
}

const svgNamespace = "http://www.w3.org/2000/svg"

func chartErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrChart, fmt.Sprintf(format, a...))
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// xmlEscape escapes s for text and attribute content.
func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		default:
			// XML 1.0 forbids most control characters even as references.
			if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
				b.WriteRune('\uFFFD')
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// num formats a coordinate compactly.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// label formats a tick value for people.
func label(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1e6 || a < 1e-3:
		return strconv.FormatFloat(v, 'g', 3, 64)
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) (ticks []float64, tlo, thi float64) {
	if hi <= lo {
		hi = lo + 1
	}
	step := niceNum((hi-lo)/float64(n-1), true)
	tlo = math.Floor(lo/step) * step
	thi = math.Ceil(hi/step) * step
	for v := tlo; v <= thi+step/2; v += step {
		// Avoid -0 and accumulated error in labels.
		t := math.Round(v/step) * step
		if t == 0 {
			t = 0
		}
		ticks = append(ticks, t)
	}
	return ticks, tlo, thi
}

func niceNum(x float64, round bool) float64 {
	e := math.Floor(math.Log10(x))
	f := x / math.Pow(10, e)
	var nf float64
	switch {
	case round && f < 1.5, !round && f <= 1:
		nf = 1
	case round && f < 3, !round && f <= 2:
		nf = 2
	case round && f < 7, !round && f <= 5:
		nf = 5
	default:
		nf = 10
	}
	return nf * math.Pow(10, e)
}

// axis maps data values to a pixel range.
type axis struct {
	log    bool
	lo, hi float64 // in data units (log10 units when log)
	ticks  []float64
}

func newAxis(lo, hi float64, log bool) axis {
	if log {
		llo, lhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if lhi <= llo {
			lhi = llo + 1
		}
		var ticks []float64
		for e := llo; e <= lhi; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
		return axis{log: true, lo: llo, hi: lhi, ticks: ticks}
	}
	if lo == hi {
		lo, hi = lo-1, hi+1
		if lo < 0 && hi > 0 && lo+1 == 0 {
			lo = 0
		}
	}
	ticks, tlo, thi := niceTicks(lo, hi, 6)
	return axis{lo: tlo, hi: thi, ticks: ticks}
}

// frac returns where v lies on the axis, 0 to 1.
func (a axis) frac(v float64) float64 {
	if a.log {
		v = math.Log10(v)
	}
	return (v - a.lo) / (a.hi - a.lo)
}

type svgWriter struct {
	w   *bufio.Writer
	err error
}

func (s *svgWriter) printf(format string, a ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format, a...)
	}
}

func (s *svgWriter) start(title string) {
	s.printf(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	s.printf(`<svg xmlns="`+svgNamespace+`" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	s.printf("<title>%s</title>\n", xmlEscape(title))
	s.printf(`<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", chartW, chartH)
	s.printf(`<text x="%d" y="25" text-anchor="middle" font-size="16" font-weight="bold">%s</text>`+"\n",
		chartW/2, xmlEscape(title))
}

func (s *svgWriter) end() error {
	s.printf("</svg>\n")
	if s.err == nil {
		s.err = s.w.Flush()
	}
	return s.err
}

func (s *svgWriter) legend(names []string, line bool) {
	for i, n := range names {
		y := legendY + i*legendStepY
		c := palette[i%len(palette)]
		if line {
			s.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", legendX, y+6, legendX+18, y+6, c)
			s.printf(`<circle cx="%d" cy="%d" r="3" fill="%s"/>`+"\n", legendX+9, y+6, c)
		} else {
			s.printf(`<rect x="%d" y="%d" width="14" height="12" fill="%s"/>`+"\n", legendX, y, c)
		}
		s.printf(`<text x="%d" y="%d">%s</text>`+"\n", legendX+24, y+11, xmlEscape(n))
	}
}

// yAxis draws the horizontal grid lines, tick labels and the axis title.
func (s *svgWriter) yAxis(a axis, title string) {
	for _, t := range a.ticks {
		y := marginT + plotH - a.frac(t)*plotH
		s.printf(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#dddddd"/>`+"\n", marginL, num(y), marginL+plotW, num(y))
		s.printf(`<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", marginL-6, num(y+4), xmlEscape(label(t)))
	}
	s.printf(`<text x="18" y="%d" text-anchor="middle" transform="rotate(-90 18 %d)">%s</text>`+"\n",
		marginT+plotH/2, marginT+plotH/2, xmlEscape(title))
	s.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000000"/>`+"\n", marginL, marginT, marginL, marginT+plotH)
}

// WriteBarChart writes a grouped bar chart as SVG: one group per entry of
// groups along X, one bar per series in each group, whiskers from Min to Max.
// unit labels the Y axis. It returns an error wrapping ErrChart, and writes
// nothing, when there is nothing to draw, a series has the wrong number of
// bars, or a value is NaN or infinite.
func WriteBarChart(w io.Writer, title, unit string, groups []string, series []BarSeries) error {
	if len(groups) == 0 || len(series) == 0 {
		return chartErr("bar chart %q: no groups or no series", title)
	}
	lo, hi := 0.0, 0.0
	for _, sr := range series {
		if len(sr.Bars) != len(groups) {
			return chartErr("bar chart %q: series %q has %d bars for %d groups", title, sr.Name, len(sr.Bars), len(groups))
		}
		for i, b := range sr.Bars {
			if !finite(b.Value) || !finite(b.Min) || !finite(b.Max) {
				return chartErr("bar chart %q: series %q group %q: value %v [%v, %v] is not finite", title, sr.Name, groups[i], b.Value, b.Min, b.Max)
			}
			lo = min(lo, b.Value, b.Min, b.Max)
			hi = max(hi, b.Value, b.Min, b.Max)
		}
	}
	ya := newAxis(lo, hi, false)
	s := &svgWriter{w: bufio.NewWriter(w)}
	s.start(title)
	s.yAxis(ya, unit)
	groupW := float64(plotW) / float64(len(groups))
	barW := groupW * 0.8 / float64(len(series))
	yOf := func(v float64) float64 { return marginT + plotH - ya.frac(v)*plotH }
	y0 := yOf(0)
	for g, name := range groups {
		gx := marginL + float64(g)*groupW
		for i, sr := range series {
			b := sr.Bars[g]
			x := gx + groupW*0.1 + float64(i)*barW
			top, bot := yOf(b.Value), y0
			if top > bot {
				top, bot = bot, top
			}
			c := palette[i%len(palette)]
			s.printf(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s, %s: %s %s</title></rect>`+"\n",
				num(x+1), num(top), num(max(barW-2, 1)), num(bot-top), c,
				xmlEscape(sr.Name), xmlEscape(name), xmlEscape(label(b.Value)), xmlEscape(unit))
			if b.Min != b.Max {
				cx := x + barW/2
				y1, y2 := yOf(b.Min), yOf(b.Max)
				s.printf(`<path d="M%s %sV%sM%s %sH%sM%s %sH%s" stroke="#333333" fill="none"/>`+"\n",
					num(cx), num(y1), num(y2),
					num(cx-barW/5), num(y1), num(cx+barW/5),
					num(cx-barW/5), num(y2), num(cx+barW/5))
			}
		}
		s.printf(`<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num(gx+groupW/2), marginT+plotH+18, xmlEscape(name))
	}
	s.printf(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#000000"/>`+"\n", marginL, num(y0), marginL+plotW, num(y0))
	names := make([]string, len(series))
	for i, sr := range series {
		names[i] = sr.Name
	}
	s.legend(names, false)
	return s.end()
}

// WriteLineChart writes curves as an SVG line chart; logX/logY choose log10
// axes. It returns an error wrapping ErrChart, and writes nothing, when there
// is no curve, a curve has no points, a coordinate is NaN or infinite, or a
// coordinate on a log axis is not positive.
func WriteLineChart(w io.Writer, title, xLabel, yLabel string, logX, logY bool, curves []Curve) error {
	if len(curves) == 0 {
		return chartErr("line chart %q: no curves", title)
	}
	xlo, xhi := math.Inf(1), math.Inf(-1)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for _, c := range curves {
		if len(c.Points) == 0 {
			return chartErr("line chart %q: curve %q has no points", title, c.Name)
		}
		for _, p := range c.Points {
			if !finite(p.X) || !finite(p.Y) {
				return chartErr("line chart %q: curve %q: point (%v, %v) is not finite", title, c.Name, p.X, p.Y)
			}
			if logX && p.X <= 0 || logY && p.Y <= 0 {
				return chartErr("line chart %q: curve %q: point (%v, %v) is not positive on a log axis", title, c.Name, p.X, p.Y)
			}
			xlo, xhi = min(xlo, p.X), max(xhi, p.X)
			ylo, yhi = min(ylo, p.Y), max(yhi, p.Y)
		}
	}
	if !logY {
		ylo = min(ylo, 0) // linear Y starts at 0 so growth is honest
	}
	xa, ya := newAxis(xlo, xhi, logX), newAxis(ylo, yhi, logY)
	s := &svgWriter{w: bufio.NewWriter(w)}
	s.start(title)
	s.yAxis(ya, yLabel)
	for _, t := range xa.ticks {
		x := marginL + xa.frac(t)*plotW
		s.printf(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#dddddd"/>`+"\n", num(x), marginT, num(x), marginT+plotH)
		s.printf(`<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num(x), marginT+plotH+18, xmlEscape(label(t)))
	}
	s.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000000"/>`+"\n", marginL, marginT+plotH, marginL+plotW, marginT+plotH)
	s.printf(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", marginL+plotW/2, marginT+plotH+45, xmlEscape(xLabel))
	names := make([]string, len(curves))
	for i, c := range curves {
		names[i] = c.Name
		col := palette[i%len(palette)]
		var d strings.Builder
		for j, p := range c.Points {
			x := marginL + xa.frac(p.X)*plotW
			y := marginT + plotH - ya.frac(p.Y)*plotH
			if j == 0 {
				d.WriteString("M")
			} else {
				d.WriteString(" L")
			}
			d.WriteString(num(x) + " " + num(y))
		}
		s.printf(`<path d="%s" stroke="%s" stroke-width="2" fill="none"/>`+"\n", d.String(), col)
		for _, p := range c.Points {
			x := marginL + xa.frac(p.X)*plotW
			y := marginT + plotH - ya.frac(p.Y)*plotH
			s.printf(`<circle cx="%s" cy="%s" r="3" fill="%s"><title>%s: (%s, %s)</title></circle>`+"\n",
				num(x), num(y), col, xmlEscape(c.Name), xmlEscape(label(p.X)), xmlEscape(label(p.Y)))
		}
	}
	s.legend(names, true)
	return s.end()
}
