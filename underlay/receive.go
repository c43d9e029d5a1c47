package underlay

import (
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
)

// ReceiveFunc is the type of what Open returns: the same type as
// dataplane.ReceiveFunc, whose comment is the contract (both name this
// func type), so *Linux implements dataplane.Underlay without this package
// importing dataplane.
type ReceiveFunc = func(bufs []*pkt.Buf, eps []endpoint.Endpoint) (n int, err error)
