package esp

// TEMPORARY: signatures of the esp API so other packages compile while the
// implementation is written. The esp implementer replaces this file.

import "github.com/mipsec/mipsec/internal/pkt"

// Outbound is the sending side of one SA. Safe for concurrent use: sequence
// numbers come from an atomic counter.
type Outbound struct{ p Params }

// NewOutbound validates p and builds the sender.
func NewOutbound(p Params) (*Outbound, error) { return &Outbound{p: p}, nil }

// SPI returns the SA's SPI.
func (o *Outbound) SPI() uint32 { return o.p.SPI }

// Seq returns the last sequence number handed out.
func (o *Outbound) Seq() uint64 { return 0 }

// Seal turns the IP packet b.Bytes() into its ESP form in place.
func (o *Outbound) Seal(b *pkt.Buf) Verdict { return DropMalformed }

// SealBatch seals bufs[i] and stores each verdict in v[i]; len(v) >= len(bufs).
func (o *Outbound) SealBatch(bufs []*pkt.Buf, v []Verdict) {
	for i, b := range bufs {
		v[i] = o.Seal(b)
	}
}

// Destroy zeroes key material; afterwards Seal returns DropExpired.
func (o *Outbound) Destroy() {}

// Inbound is the receiving side of one SA. Safe for concurrent use.
type Inbound struct{ p Params }

// NewInbound validates p and builds the receiver.
func NewInbound(p Params) (*Inbound, error) { return &Inbound{p: p}, nil }

// SPI returns the SA's SPI.
func (in *Inbound) SPI() uint32 { return in.p.SPI }

// Open checks and decrypts the ESP packet b.Bytes()[espOff:] in place.
func (in *Inbound) Open(b *pkt.Buf, espOff int) (nextHeader uint8, v Verdict) {
	return 0, DropMalformed
}

// Destroy zeroes key material; afterwards Open returns DropExpired.
func (in *Inbound) Destroy() {}
