package esp

// Replay is an anti-replay window (RFC 4303 §3.4.3 and App. A) kept as an
// RFC 6479 ring of 64-bit blocks. See replay_impl.go.
