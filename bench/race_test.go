//go:build race

package bench

// raceEnabled: sync.Pool drops Puts under -race, so allocation tests skip.
const raceEnabled = true
