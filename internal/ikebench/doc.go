// Package ikebench is the IKEv2 setup benchmark of issue 12: how many
// IKE SAs with one Child SA per second (IKE_SA_INIT + IKE_AUTH, RFC 7296
// §1.2, PSK, aes128gcm16-prfsha256-curve25519, ESP aes128gcm16) a
// responder completes, mipsec's `mipsec run` against strongSwan's charon
// (internal/charontest, kernel-libipsec) under the same initiator load in
// the same run, with setup latency percentiles and failures.
//
// Run builds two network namespaces joined by a veth (192.0.2.0/24,
// RFC 5737): the responder under test in R, started afresh for every
// case, and in L the load, a pool of ike.Daemon initiators in this
// process (load.go), each with its own source address, UDP sockets on
// 500 and 4500, a no-op ike.Kernel and identity load-N@bench. C workers
// (closed loop) take the next idle initiator, time Initiate (it returns
// once IKE_AUTH installed the child), Terminate it (timed apart: the
// Delete and its answer, RFC 7296 §1.4.1) and put it back. Every
// concurrency runs each responder in turn, so they alternate within the
// run. The figures: setups/s of the whole cycle, failed setups,
// setup latency p50/p90/p99/max, the Delete's p50, the responder's CPU
// per setup (/proc/PID/stat), the initiators' retransmissions and the
// load average; Report.WriteText prints them as a table and WriteFiles
// writes ike.json and ike.txt.
//
// MipsecInproc runs the responder's ike.Daemon in this process instead
// (no node: no TUN, SAD, SPD or state dir), with its goroutines labelled
// for a CPU profile (Options.CPUProfile), since `mipsec run` has no
// profiling flag.
//
// `make bench-ike` runs the full benchmark (bench_test.go's
// TestIKEBench, build tag ikebench); the smoke test runs a few setups
// against each responder. Both need root and charon (charontest.Need;
// skipped outside CI, failed in CI). Only tests import this package.
package ikebench
