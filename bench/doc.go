// Package bench holds mipsec's benchmarks and the side-by-side comparison
// harness. The per-stage benchmarks of the ESP engine live next to their
// code (esp, sad, spd) and run with `make bench`.
//
// Nothing imports bench.
package bench
