package benchlab

import (
	"math"
	"slices"
)

// Summary is one figure of one system over the rounds.
type Summary struct {
	N      int     `json:"n"` // valid samples
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Samples in round order.
	Samples []float64 `json:"samples"`
}

// Summarize returns the median, minimum and maximum of samples, skipping
// NaN and infinite values (a round that could not measure). With no valid
// sample N is 0 and the other figures are 0.
func Summarize(samples []float64) Summary {
	var v []float64
	for _, x := range samples {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	s := Summary{N: len(v), Samples: v}
	if len(v) == 0 {
		return s
	}
	sorted := slices.Clone(v)
	slices.Sort(sorted)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.Median = Median(sorted)
	return s
}

// Median returns the median of sorted values (the mean of the middle two
// for an even count) and NaN for none.
func Median(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return sorted[n/2]
	default:
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
}

// Ratio returns a/b and whether it is defined: b must be positive and
// both finite (a figure missing on either side has no ratio).
func Ratio(a, b float64) (float64, bool) {
	if b <= 0 || math.IsNaN(a) || math.IsInf(a, 0) || math.IsInf(b, 0) || math.IsNaN(b) {
		return 0, false
	}
	return a / b, true
}
