//go:build !race

package mip6

const raceEnabled = false
