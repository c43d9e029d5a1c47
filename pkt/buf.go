package pkt

import (
	"fmt"
	"sync"
)

// Worst-case sizes of what is prepended in front of a packet read from a
// TUN device (STYLE.md §3):
//
//	virtio-net header (TUN offloads)          10
//	IPv4 outer (DSMIPv6 IPv4 CoA)             20
//	UDP (RFC 3948 port 4500 / RFC 5555 4191)   8
//	IPv6 outer                                40
//	Destination Options with a HAO (RFC 6275) 24
//	ESP header (SPI + sequence number)         8
//	IV (AES-CBC, the largest)                 16
//	                                         ---
//	                                         126  -> Headroom = 128
//
// and behind it:
//
//	padding (AES-CBC block, at most)          15
//	Pad Length + Next Header                   2
//	ICV (the largest: 16)                     16
//	                                         ---
//	                                          33  -> Tailroom = 64
//
// buf_test.go fails when a constant here no longer covers its sum.
const (
	VirtioNetHdrLen = 10
	Headroom        = 128
	Tailroom        = 64
	// MaxPacket is the largest IP packet a Buf holds (the IPv4/IPv6 length
	// fields' maximum without jumbograms).
	MaxPacket = 65535
	// Size is the length of a Buf's backing array.
	Size = Headroom + MaxPacket + Tailroom
)

// Buf is one packet in a fixed array. The packet is B[Off():End()];
// everything before Off is headroom, everything after End is tailroom.
//
//	+-----------+---------------------------+-----------+
//	| headroom  |  packet = Bytes()         | tailroom  |
//	+-----------+---------------------------+-----------+
//	0          off                         end        Size
//
// A Buf has one owner at a time; handing it to another goroutine hands over
// ownership. The zero Buf is empty with off = end = 0: call Reset first.
type Buf struct {
	B        [Size]byte
	off, end int
}

// Reset empties b and puts the start at Headroom.
func (b *Buf) Reset() { b.off, b.end = Headroom, Headroom }

// Bytes returns the packet. Its capacity ends at the end of the array so
// that in-place AEAD sealing may grow into the tailroom.
func (b *Buf) Bytes() []byte { return b.B[b.off:b.end] }

// Off returns the offset of the packet's first byte in B.
func (b *Buf) Off() int { return b.off }

// End returns the offset just past the packet's last byte in B.
func (b *Buf) End() int { return b.end }

// Len returns the packet length.
func (b *Buf) Len() int { return b.end - b.off }

// HeadroomLen returns the number of bytes free in front of the packet.
func (b *Buf) HeadroomLen() int { return b.off }

// TailroomLen returns the number of bytes free behind the packet.
func (b *Buf) TailroomLen() int { return Size - b.end }

// SetBytes sets the packet to B[off:off+n]. It panics with the numbers when
// the range does not fit: that is a broken invariant, not bad input.
func (b *Buf) SetBytes(off, n int) {
	if off < 0 || n < 0 || off+n > Size {
		panic(fmt.Sprintf("pkt: SetBytes(%d, %d) outside [0, %d]", off, n, Size))
	}
	b.off, b.end = off, off+n
}

// Set copies p into b at Headroom and returns the packet. For tests and the
// control plane; the data path reads straight into B.
func (b *Buf) Set(p []byte) []byte {
	b.SetBytes(Headroom, len(p))
	copy(b.B[b.off:b.end], p)
	return b.Bytes()
}

// Prepend grows the packet by n bytes at the front and returns them. The
// result's capacity is capped at n so a header writer cannot reach the
// payload (gVisor prependable). It panics when the headroom is too small.
func (b *Buf) Prepend(n int) []byte {
	if n < 0 || n > b.off {
		panic(fmt.Sprintf("pkt: Prepend(%d) with headroom %d", n, b.off))
	}
	b.off -= n
	return b.B[b.off : b.off+n : b.off+n]
}

// Append grows the packet by n bytes at the back and returns them. It panics
// when the tailroom is too small.
func (b *Buf) Append(n int) []byte {
	if n < 0 || n > Size-b.end {
		panic(fmt.Sprintf("pkt: Append(%d) with tailroom %d", n, Size-b.end))
	}
	b.end += n
	return b.B[b.end-n : b.end : b.end]
}

// TrimFront removes n bytes from the front of the packet.
func (b *Buf) TrimFront(n int) {
	if n < 0 || n > b.end-b.off {
		panic(fmt.Sprintf("pkt: TrimFront(%d) of %d bytes", n, b.end-b.off))
	}
	b.off += n
}

// TrimBack removes n bytes from the back of the packet.
func (b *Buf) TrimBack(n int) {
	if n < 0 || n > b.end-b.off {
		panic(fmt.Sprintf("pkt: TrimBack(%d) of %d bytes", n, b.end-b.off))
	}
	b.end -= n
}

// Pool hands out Bufs. Pointers go into sync.Pool, never slices (a slice in
// a sync.Pool allocates its header on every Put; staticcheck SA6002).
var pool = sync.Pool{New: func() any { return new(Buf) }}

// Get returns an empty Buf with its start at Headroom.
func Get() *Buf {
	b := pool.Get().(*Buf)
	b.Reset()
	return b
}

// Put returns b to the pool. The caller must not touch b afterwards.
func Put(b *Buf) {
	if b == nil {
		return
	}
	pool.Put(b)
}
