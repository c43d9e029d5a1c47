package benchlab

import (
	"math"
	"slices"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{1, 2, 10}, 2},
		{[]float64{1, 2, 4, 10}, 3},
		{[]float64{-2, -1}, -1.5},
	} {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestSummarize(t *testing.T) {
	in := []float64{5, math.NaN(), 1, math.Inf(1), 3, 9}
	orig := slices.Clone(in)
	s := Summarize(in)
	if s.N != 4 || s.Median != 4 || s.Min != 1 || s.Max != 9 {
		t.Fatalf("Summarize(%v) = %+v, want n=4 median 4 min 1 max 9", in, s)
	}
	if !slices.Equal(s.Samples, []float64{5, 1, 3, 9}) {
		t.Errorf("samples %v, want the valid ones in round order", s.Samples)
	}
	if in[0] != orig[0] || in[2] != orig[2] {
		t.Errorf("Summarize changed its input: %v", in)
	}
	if s := Summarize([]float64{math.NaN()}); s.N != 0 || s.Median != 0 || s.Min != 0 || s.Max != 0 {
		t.Errorf("Summarize(NaN) = %+v, want all zero", s)
	}
	if s := Summarize(nil); s.N != 0 {
		t.Errorf("Summarize(nil) = %+v", s)
	}
}

func TestRatio(t *testing.T) {
	if q, ok := Ratio(3, 2); !ok || q != 1.5 {
		t.Errorf("Ratio(3, 2) = %v, %v", q, ok)
	}
	if q, ok := Ratio(0, 2); !ok || q != 0 {
		t.Errorf("Ratio(0, 2) = %v, %v", q, ok)
	}
	for _, c := range [][2]float64{{1, 0}, {1, -1}, {math.NaN(), 1}, {1, math.NaN()}, {math.Inf(1), 1}, {1, math.Inf(1)}} {
		if q, ok := Ratio(c[0], c[1]); ok {
			t.Errorf("Ratio(%v, %v) = %v, want undefined", c[0], c[1], q)
		}
	}
}
