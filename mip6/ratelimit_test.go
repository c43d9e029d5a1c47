package mip6

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mipsec/mipsec/endpoint"
)

func TestTokenBuckets(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := newTokenBuckets(2, 3, func() time.Time { return now })
	a, b := netip.MustParseAddr("2001:db8::a"), netip.MustParseAddr("2001:db8::b")
	for i := range 3 {
		if !tb.allow(a) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if tb.allow(a) {
		t.Fatal("4th token in the same instant")
	}
	if !tb.allow(b) {
		t.Fatal("b shares a's bucket")
	}
	now = now.Add(500 * time.Millisecond) // rate 2/s: one token
	if !tb.allow(a) || tb.allow(a) {
		t.Fatal("refill after 0.5 s is not one token")
	}
	now = now.Add(time.Hour) // capped at the burst
	n := 0
	for tb.allow(a) {
		n++
	}
	if n != 3 {
		t.Fatalf("%d tokens after an hour, want the burst 3", n)
	}
	now = now.Add(-time.Minute) // a clock going back gives nothing
	if tb.allow(a) {
		t.Fatal("token from a clock step back")
	}
}

func TestTokenBucketsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := newTokenBuckets(1, 1, func() time.Time { return now })
	for i := range maxBuckets + 10 {
		tb.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := tb.len(); n > maxBuckets {
		t.Fatalf("%d buckets, bound %d", n, maxBuckets)
	}
	// Refilled buckets are pruned first.
	now = now.Add(time.Minute)
	tb.allow(netip.MustParseAddr("2001:db8::1"))
	if n := tb.len(); n > maxBuckets {
		t.Fatalf("%d buckets after prune", n)
	}
}

func TestSigQueue(t *testing.T) {
	q := newSigQueue(2)
	if !q.put([]byte{1, 2, 3}, 1, 2, endpoint.Endpoint{Encap: endpoint.EncapUDP}) || !q.put([]byte{4}, 5, 6, endpoint.Endpoint{}) {
		t.Fatal("put into an empty queue failed")
	}
	if q.put([]byte{7}, 0, 0, endpoint.Endpoint{}) {
		t.Fatal("put into a full queue succeeded")
	}
	if q.put(make([]byte, sigMaxPacket+1), 0, 0, endpoint.Endpoint{}) {
		t.Fatal("oversized put succeeded")
	}
	it := <-q.full
	if string(it.bytes()) != "\x01\x02\x03" || it.spi != 1 || it.seq != 2 || it.src.Encap != endpoint.EncapUDP {
		t.Fatalf("item %v", it.bytes())
	}
	q.release(it)
	if !q.put([]byte{8}, 0, 0, endpoint.Endpoint{}) {
		t.Fatal("released item not reused")
	}
	if testing.AllocsPerRun(100, func() {
		if q.put([]byte{9}, 0, 0, endpoint.Endpoint{}) {
			q.release(<-q.full)
		}
	}) != 0 && !raceEnabled {
		t.Error("put allocates")
	}
}
