package benchlab

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which Linux fixes at 100 for user space on every architecture Go
// supports (sysconf(_SC_CLK_TCK)).
const ClockTicks = 100

// ErrProcStat wraps every malformed /proc/PID/stat line.
var ErrProcStat = errors.New("malformed /proc/PID/stat line")

// ParseProcStat returns utime+stime, in clock ticks, from a /proc/PID/stat
// line (proc(5): fields 14 and 15; the command name in field 2 is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')').
func ParseProcStat(line string) (ticks uint64, err error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 || strings.IndexByte(line, '(') < 0 || strings.IndexByte(line, '(') > i {
		return 0, fmt.Errorf("%w: no (comm)", ErrProcStat)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: %d fields after the command name, want at least 13", ErrProcStat, len(f))
	}
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%w: utime/stime: %v", ErrProcStat, err)
	}
	if utime+stime < utime {
		return 0, fmt.Errorf("%w: utime+stime overflows", ErrProcStat)
	}
	return utime + stime, nil
}

// TicksDuration converts clock ticks to a duration.
func TicksDuration(ticks uint64) time.Duration {
	return time.Duration(ticks) * (time.Second / ClockTicks)
}

// ProcCPU returns the CPU time (user+system, all threads) process pid has
// used so far, from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := ParseProcStat(string(b))
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return TicksDuration(t), nil
}

// ProcsCPU is ProcCPU summed over pids.
func ProcsCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, p := range pids {
		t, err := ProcCPU(p)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// CPUPerGB returns CPU seconds per 10^9 bytes received, and false when
// nothing was received.
func CPUPerGB(cpu time.Duration, bytes int64) (float64, bool) {
	if bytes <= 0 || cpu < 0 {
		return 0, false
	}
	return cpu.Seconds() / (float64(bytes) / 1e9), true
}

// ParseLoadAvg returns the 1, 5 and 15 minute load averages from the
// contents of /proc/loadavg (proc(5)).
func ParseLoadAvg(s string) ([3]float64, error) {
	var l [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return l, fmt.Errorf("malformed /proc/loadavg %q", s)
	}
	for i := range l {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || v < 0 || v != v {
			return [3]float64{}, fmt.Errorf("malformed /proc/loadavg %q", s)
		}
		l[i] = v
	}
	return l, nil
}
