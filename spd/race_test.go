//go:build race

package spd

// raceEnabled: allocation tests skip under -race, which allocates on its
// own (STYLE.md §8, like wireguard-go's device/race_enabled_test.go).
const raceEnabled = true
