package bench

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRunScaling(t *testing.T) {
	var progress bytes.Buffer
	s, err := RunScaling(context.Background(), ScalingOptions{
		MaxPolicies: 1000, MaxSAs: 1000, MaxBindings: 500, Duration: 5 * time.Millisecond,
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		CurveSPD:      {10, 100, 1000},
		CurveSAD:      {1, 10, 100, 1000},
		CurveBindings: {1, 10, 100, 500},
	}
	if len(s.Curves) != 3 {
		t.Fatalf("%d curves", len(s.Curves))
	}
	for _, c := range s.Curves {
		ns := want[c.Name]
		if len(c.Points) != len(ns) {
			t.Errorf("%s: %d points, want %v", c.Name, len(c.Points), ns)
			continue
		}
		for i, p := range c.Points {
			if p.N != ns[i] || !(p.NsPerOp > 0) || p.Ops == 0 {
				t.Errorf("%s point %d: %+v", c.Name, i, p)
			}
			// A lookup in memory takes well under 100 µs even here.
			if p.NsPerOp > 1e5 {
				t.Errorf("%s at %d: %.0f ns/op", c.Name, p.N, p.NsPerOp)
			}
		}
	}
	if got := strings.Count(progress.String(), "\n"); got != 11 {
		t.Errorf("%d progress lines:\n%s", got, progress.String())
	}
}

func TestRunScalingOptions(t *testing.T) {
	s, err := RunScaling(context.Background(), ScalingOptions{MaxPolicies: -1, MaxSAs: -1, MaxBindings: 3, Duration: time.Millisecond}, nil)
	if err != nil || len(s.Curves) != 1 || s.Curves[0].Name != CurveBindings || len(s.Curves[0].Points) != 2 {
		t.Errorf("bindings only: %+v, %v", s, err)
	}
	if _, err := RunScaling(context.Background(), ScalingOptions{MaxPolicies: 9, MaxSAs: -1, MaxBindings: -1}, nil); err == nil {
		t.Error("9 policies accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunScaling(ctx, ScalingOptions{MaxPolicies: 100, MaxSAs: -1, MaxBindings: -1}, nil); err == nil {
		t.Error("canceled: no error")
	}
}

func TestDecades(t *testing.T) {
	for _, tc := range []struct {
		from, max int
		want      string
	}{
		{1, 1, "[1]"}, {1, 1000, "[1 10 100 1000]"}, {10, 100000, "[10 100 1000 10000 100000]"}, {1, 50, "[1 10 50]"},
	} {
		if got := fmtInts(decades(tc.from, tc.max)); got != tc.want {
			t.Errorf("decades(%d, %d) = %s, want %s", tc.from, tc.max, got, tc.want)
		}
	}
}

func fmtInts(v []int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, n := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(n))
	}
	b.WriteByte(']')
	return b.String()
}
