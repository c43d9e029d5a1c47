//go:build !race

package esp

// raceEnabled is true under -race, where sync.Pool drops Puts at random and
// the detector allocates: the allocation tests skip then.
const raceEnabled = false
