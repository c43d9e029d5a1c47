package dataplane_test

import (
	"testing"
)

// BenchmarkPingPong measures the round trip of one packet at a time, A to
// B and a reply back, between two started dataplanes over tuntest and
// underlaytest: the latency an idle tunnel adds (ping), goroutine hand-offs
// and wake-ups included. ns/op is the round trip time.
func BenchmarkPingPong(b *testing.B) {
	for _, workers := range []int{0, 1} {
		name := "workers=GOMAXPROCS"
		if workers == 1 {
			name = "workers=1"
		}
		b.Run(name, func(b *testing.B) {
			a, bb := newPair(b, pairOpts{workers: workers, tunBatch: 1})
			ping := udpPacket(hostA4, hostB4, 0, 64)
			pong := udpPacket(hostB4, hostA4, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				a.tun.Outbound <- ping
				<-bb.tun.Inbound
				bb.tun.Outbound <- pong
				<-a.tun.Inbound
			}
		})
	}
}
