package dataplane

// Traps: an outbound PROTECT policy may name a trap SPI, one of the values
// 1..255 that RFC 4303 §2.1 reserves (no peer hands them out, and config
// refuses them for manual SAs), for which no SA exists: the caller (node,
// for an IKE child with start_action trap) asks for the SA to be
// negotiated when its traffic first shows up. Such a packet is dropped as
// DropAcquire and Config.OnAcquire is told, rate-limited per SPI on the
// coarse clock: one atomic load per packet, one CompareAndSwap per call,
// no allocation.

// MaxTrapSPI is the largest trap SPI (RFC 4303 §2.1: 1..255 are reserved).
const MaxTrapSPI = 255

// acquireEvery is the least number of coarse clock seconds between two
// OnAcquire calls for one SPI: 2, so that calls are at least a second
// apart whatever the clock's phase.
const acquireEvery = 2

// acquire tells OnAcquire about trap SPI spi, unless it was told less than
// acquireEvery clock seconds ago.
func (d *Dataplane) acquire(spi uint32) {
	if d.onAcquire == nil || spi > MaxTrapSPI {
		return
	}
	slot := &d.acqNext[spi]
	now := d.clock.Load()
	next := slot.Load()
	if now < next || !slot.CompareAndSwap(next, now+acquireEvery) {
		return
	}
	d.onAcquire(spi)
}
