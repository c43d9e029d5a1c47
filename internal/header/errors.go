package header

import "errors"

// Sentinels for the control plane and tests. The data path uses the
// boolean forms (IsValid) and never builds errors per packet.
var (
	ErrTruncated = errors.New("header: truncated")
	ErrMalformed = errors.New("header: malformed")
)
