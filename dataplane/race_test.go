//go:build race

package dataplane_test

// raceEnabled: sync.Pool drops Puts under -race, so allocation tests skip.
const raceEnabled = true
