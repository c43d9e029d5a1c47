package spd

import (
	"syscall"
	"time"
	"unsafe"
)

// threadCPU returns the CPU time of the calling OS thread (lock it with
// runtime.LockOSThread), from clock_gettime(CLOCK_THREAD_CPUTIME_ID).
// Benchmarks use it next to wall time so that a loaded machine, where the
// thread waits for a CPU, does not skew their ratios.
func threadCPU() (time.Duration, bool) {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	_, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
