// Package bench holds mipsec's benchmarks and the side-by-side comparison
// harness, as a library that `mipsec bench` drives. The per-stage
// benchmarks of the ESP engine live next to their code (esp, sad, spd,
// mip6, dataplane) and run with `make bench`.
//
// What is where:
//
//   - pipeline.go, fakes.go, raw.go: RunPipeline, the in-process pipeline
//     (no root): two real dataplanes back to back between a generating fake
//     TUN, a fake underlay and a counting fake TUN, per algorithm and packet
//     size and for TUN super-packets, next to the raw AEAD seal+open
//     ceiling measured in the same run.
//   - scaling.go: RunScaling, lookup cost as the SPD, the SAD and the
//     binding cache grow.
//   - report.go: Report, WriteReport (JSON, text tables, SVG charts in
//     bench/results/, drawn with internal/benchlab's chart writers),
//     CurrentMachine.
//
// bench may import every mipsec package; only cmd imports bench.
package bench
