//go:build !race

package esp

// replayRaceEnabled is true when the race detector is on; the allocation
// tests skip then (sync.Pool drops Puts and the detector allocates).
const replayRaceEnabled = false
