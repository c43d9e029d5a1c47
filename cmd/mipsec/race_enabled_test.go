//go:build race

package main

// raceEnabled: allocation counts are meaningless under -race.
const raceEnabled = true
