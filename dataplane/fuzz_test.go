package dataplane_test

import (
	"bytes"
	"testing"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/pkt"
)

// FuzzInbound feeds arbitrary underlay packets to the inbound stage: it must
// not panic, and it may deliver only packets that A really sealed (no
// delivery without a valid ICV), each at most once, intact; every packet it
// does not deliver is counted as exactly one drop (Stats.Drops).
func FuzzInbound(f *testing.F) {
	a, b := stagePair(f, pairOpts{alg: esp.AES128GCM16})
	out := dataplane.NewBatch(true, 4)
	pkts := [][]byte{
		udpPacket(hostA4, hostB4, 1, 64),
		udpPacket(hostA6, hostB6, 2, 200),
		udpPacket(hostA4, hostB4, 3, 1400),
		udpPacket(hostA6, hostB6, 4, 40),
	}
	out.FillOut(pkts)
	a.d.SealBatch(out)
	bufs, _ := out.Sent()
	genuine := map[string][]byte{}
	for i, buf := range bufs {
		w := bytes.Clone(buf.Bytes())
		genuine[string(w)] = pkts[i]
		f.Add(w)
	}
	out.Release()
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0xa0, 0x04, 0, 0, 0, 9})
	delivered := map[string]bool{}
	in := dataplane.NewBatch(false, 1)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > pkt.MaxPacket {
			return
		}
		before := b.d.Stats().Drops
		in.FillIn([][]byte{data}, epA)
		b.d.OpenBatch(in)
		got := in.Delivered()
		after := b.d.Stats().Drops
		var drops uint64
		for r := range after {
			drops += after[r] - before[r]
		}
		if want := uint64(1 - len(got)); drops != want {
			t.Fatalf("%d delivered, %d drops counted (want %d): % x", len(got), drops, want, data)
		}
		if len(got) == 0 {
			return
		}
		inner, ok := genuine[string(data)]
		if !ok {
			t.Fatalf("delivered a packet A never sealed: % x", data)
		}
		if delivered[string(data)] {
			t.Fatalf("delivered twice: % x", data)
		}
		delivered[string(data)] = true
		if !bytes.Equal(got[0][dataplane.TUNWriteOffset:], inner) {
			t.Fatalf("delivered % x, want % x", got[0][dataplane.TUNWriteOffset:], inner)
		}
	})
}
