package benchlab

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	for _, tt := range []struct {
		line string
		want uint64
	}{
		// A real line (proc(5)): utime 1234, stime 567.
		{"4242 (mipsec) S 1 4242 4242 0 -1 4194560 2203 0 0 0 1234 567 0 0 20 0 9 0 12345 1300000000 5000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n", 1801},
		// The command name may hold spaces and parentheses.
		{"77 (a) b) (c d) R 1 77 77 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 0 0", 30},
		{"1 (x) S 0 0 0 0 0 0 0 0 0 0 0 0 0", 0},
	} {
		got, err := ParseProcStat(tt.line)
		if err != nil || got != tt.want {
			t.Errorf("ParseProcStat(%q) = %d, %v; want %d", tt.line, got, err, tt.want)
		}
	}
	for _, bad := range []string{
		"",
		"4242",
		"4242 mipsec S 1 2 3 4 5 6 7 8 9 10 11 12",
		"4242 )mipsec( S 1 2 3 4 5 6 7 8 9 10 11 12",
		"4242 (mipsec) S 1 2 3 4 5 6 7 8 9 10",
		"4242 (mipsec) S 1 2 3 4 5 6 7 8 9 10 x 12",
		"4242 (mipsec) S 1 2 3 4 5 6 7 8 9 10 11 -12",
		"4242 (mipsec) S 1 2 3 4 5 6 7 8 9 10 18446744073709551615 1",
		"4242 (mipsec) S 1 2 3 4 5 6 7 8 9 10 99999999999999999999 1",
	} {
		if got, err := ParseProcStat(bad); !errors.Is(err, ErrProcStat) {
			t.Errorf("ParseProcStat(%q) = %d, %v; want ErrProcStat", bad, got, err)
		}
	}
}

func TestTicksDuration(t *testing.T) {
	if got := TicksDuration(250); got != 2500*time.Millisecond {
		t.Errorf("TicksDuration(250) = %v", got)
	}
}

// ProcCPU sees this process's CPU time grow while it burns some.
func TestProcCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/PID/stat is Linux's")
	}
	before, err := ProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
		x++
	}
	after, err := ProcsCPU([]int{os.Getpid(), os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if after < 2*before || after/2-before < 10*time.Millisecond {
		t.Errorf("CPU time %v then %v (x2) after 100 ms of spinning (%d)", before, after, x)
	}
	if _, err := ProcCPU(-1); err == nil {
		t.Error("ProcCPU(-1) succeeded")
	}
}

func TestCPUPerGB(t *testing.T) {
	if v, ok := CPUPerGB(3*time.Second, 2e9); !ok || v != 1.5 {
		t.Errorf("CPUPerGB(3s, 2 GB) = %v, %v; want 1.5", v, ok)
	}
	for _, b := range []int64{0, -1} {
		if v, ok := CPUPerGB(time.Second, b); ok {
			t.Errorf("CPUPerGB(1s, %d) = %v, want undefined", b, v)
		}
	}
	if v, ok := CPUPerGB(-time.Second, 1e9); ok {
		t.Errorf("CPUPerGB(-1s, 1 GB) = %v, want undefined", v)
	}
}

func TestParseLoadAvg(t *testing.T) {
	l, err := ParseLoadAvg("0.45 0.75 1.42 2/345 6789\n")
	if err != nil || l != [3]float64{0.45, 0.75, 1.42} {
		t.Errorf("got %v, %v", l, err)
	}
	for _, bad := range []string{"", "1 2", "a b c", "1 -2 3", "NaN 1 1"} {
		if l, err := ParseLoadAvg(bad); err == nil {
			t.Errorf("ParseLoadAvg(%q) = %v, want an error", bad, l)
		}
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add("4242 (mipsec) S 1 4242 4242 0 -1 4194560 2203 0 0 0 1234 567 0 0 20 0 9 0 12345")
	f.Add("77 (a) b) (c d) R 1 77 77 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 0 0")
	f.Fuzz(func(t *testing.T, line string) {
		ParseProcStat(line) // must not panic
	})
}
