package control

import (
	"os"
	"runtime/metrics"
)

// RuntimeInfo is the daemon's Go runtime in the "status" answer: what a
// long run (make soak, e2e/soak_test.go) watches for growth next to the
// process's RSS. Read from runtime/metrics, which does not stop the world.
type RuntimeInfo struct {
	Goroutines uint64 `json:"goroutines"`
	// HeapLiveBytes: the heap the last GC marked live
	// (/gc/heap/live:bytes), the figure a leak makes grow.
	HeapLiveBytes uint64 `json:"heap_live_bytes"`
	// HeapObjectsBytes: live and not yet swept dead objects
	// (/memory/classes/heap/objects:bytes).
	HeapObjectsBytes uint64 `json:"heap_objects_bytes"`
	// HeapFreeBytes, HeapReleasedBytes: heap memory that is free and still
	// mapped (part of the RSS), and free and given back to the OS.
	HeapFreeBytes     uint64 `json:"heap_free_bytes"`
	HeapReleasedBytes uint64 `json:"heap_released_bytes"`
	// StackBytes: goroutine stacks; TotalBytes: all memory the runtime
	// has mapped (/memory/classes/total:bytes); the RSS is at most
	// TotalBytes - HeapReleasedBytes plus what is not the Go runtime's
	// (the binary's text and data, mmap'd rings).
	StackBytes uint64 `json:"stack_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
	GCCycles   uint64 `json:"gc_cycles"`
	// FDs: open file descriptors (/proc/self/fd); -1 if unreadable.
	FDs int `json:"fds"`
}

var runtimeMetrics = []string{
	"/sched/goroutines:goroutines",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/total:bytes",
	"/gc/cycles/total:gc-cycles",
}

// readRuntime samples the runtime of this process.
func readRuntime() *RuntimeInfo {
	s := make([]metrics.Sample, len(runtimeMetrics))
	for i, name := range runtimeMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	r := &RuntimeInfo{
		Goroutines: v(0), HeapLiveBytes: v(1), HeapObjectsBytes: v(2), HeapFreeBytes: v(3),
		HeapReleasedBytes: v(4), StackBytes: v(5), TotalBytes: v(6), GCCycles: v(7), FDs: -1,
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		r.FDs = len(fds) - 1 // the directory being read
	}
	return r
}
