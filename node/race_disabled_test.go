//go:build !race

package node_test

// raceEnabled: allocation counts are meaningless under -race.
const raceEnabled = false
