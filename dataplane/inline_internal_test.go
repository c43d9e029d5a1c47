package dataplane

import (
	"errors"
	"testing"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/pkt"
)

// TestInlineDecision: a reader processes a batch itself only when nothing
// of its path is in flight; then always in solo mode, else up to inlineMax
// packets.
func TestInlineDecision(t *testing.T) {
	for _, tc := range []struct {
		solo    bool
		pending int64
		n       int
		want    bool
	}{
		{false, 0, 1, true},
		{false, 0, inlineMax, true},
		{false, 0, inlineMax + 1, false},
		{false, 0, 128, false},
		{false, 1, 1, false},
		{true, 0, 128, true},
		{true, 0, 1, true},
		{true, 3, 1, false},
		{true, 1, 128, false},
	} {
		d := &Dataplane{solo: tc.solo}
		p := &path{}
		p.pending.Store(tc.pending)
		if got := d.inline(p, tc.n); got != tc.want {
			t.Errorf("solo %v, pending %d, %d packets: inline = %v, want %v", tc.solo, tc.pending, tc.n, got, tc.want)
		}
	}
}

// TestReceiveResetsBuffers: every call of the ReceiveFunc gets all buffers
// reset, also those the previous call filled or, failing, scribbled on,
// although receiveFrom only resets what may have moved.
func TestReceiveResetsBuffers(t *testing.T) {
	b := newBatch(dirIn, 8)
	defer b.release()
	calls := 0
	check := func(bufs []*pkt.Buf) {
		t.Helper()
		for i, buf := range bufs {
			if buf.Off() != pkt.Headroom || buf.Len() != 0 {
				t.Errorf("call %d: buffer %d at %d, %d bytes: not reset", calls, i, buf.Off(), buf.Len())
			}
		}
	}
	scribble := errors.New("scribbled")
	for _, step := range []struct {
		n   int   // packets returned
		mod int   // buffers moved off reset (the first mod)
		err error // returned
	}{
		{3, 3, nil},
		{1, 1, nil},
		{0, 8, scribble}, // a failed call that touched everything
		{8, 8, nil},
		{2, 2, nil},
		{0, 0, nil},
		{0, 5, nil}, // nothing returned but buffers moved
	} {
		n, err := b.receiveFrom(func(bufs []*pkt.Buf, eps []endpoint.Endpoint) (int, error) {
			check(bufs)
			for _, buf := range bufs[:step.mod] {
				buf.Set([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
				buf.TrimFront(4)
			}
			return step.n, step.err
		})
		calls++
		if n != step.n || err != step.err {
			t.Fatalf("call %d: receiveFrom = %d, %v", calls, n, err)
		}
		// What the packet path may do to the returned packets.
		for _, buf := range b.bufs[:n] {
			buf.SetBytes(pkt.Headroom-20, 40)
		}
	}
	_, _ = b.receiveFrom(func(bufs []*pkt.Buf, eps []endpoint.Endpoint) (int, error) {
		check(bufs)
		return 0, nil
	})
}
