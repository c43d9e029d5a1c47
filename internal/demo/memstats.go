package demo

import "runtime"

type runtimeStats struct{ mallocs uint64 }

func (r *runtimeStats) read() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r.mallocs = m.Mallocs
}
