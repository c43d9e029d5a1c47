package underlay

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgReader is recvmmsg(2) without allocations. x/net's ipv4/ipv6
// PacketConn.ReadBatch is the same system call, but it builds a net.Addr
// (and its net.IP) for every message it returns: two allocations per
// packet. Here the source addresses land in preallocated sockaddr buffers
// and are read into netip values. The send side keeps x/net's WriteBatch,
// which does not allocate.
//
// The message headers point at their iovec, name and control buffers once,
// at construction: the kernel never writes those pointers (nor the iovecs,
// which it copies in). What it writes back for a message it received is
// msg_len, msg_namelen, msg_controllen and msg_flags (net/socket.c
// ___sys_recvmsg, do_recvmmsg), so read restores only those, and only in the
// headers the previous call may have used: a call that returned one packet
// costs one header, not the whole batch.
//
// An mmsgReader belongs to one ReceiveFunc (one goroutine at a time).
type mmsgReader struct {
	rc     syscall.RawConn
	hs     []mmsghdr
	iovs   []unix.Iovec
	names  [][unix.SizeofSockaddrInet6]byte
	oob    []byte // oobLen bytes per message
	oobLen int
	// dirty: hs[:dirty] may differ from their initial state (the kernel
	// or a caller wrote them since); hs[dirty:] are as newMmsgReader left
	// them.
	dirty int

	// The call in flight, for readFn (bound once: no closure per call).
	want   int
	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool

	// One-entry cache of the last IPv6 scope ID's zone name.
	zoneID uint32
	zone   string
}

// mmsghdr is struct mmsghdr; Go pads it like C (64 bytes on 64-bit).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

func newMmsgReader(c net.PacketConn, n, oobLen int) (*mmsgReader, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("underlay: %T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &mmsgReader{
		rc:     rc,
		hs:     make([]mmsghdr, n),
		iovs:   make([]unix.Iovec, n),
		names:  make([][unix.SizeofSockaddrInet6]byte, n),
		oob:    make([]byte, n*oobLen),
		oobLen: oobLen,
	}
	r.readFn = r.recvmmsg
	for i := range r.hs {
		h := &r.hs[i].hdr
		h.Name = &r.names[i][0]
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		if oobLen > 0 {
			h.Control = &r.oob[i*oobLen]
		}
	}
	r.dirty = n
	r.restore()
	return r, nil
}

// restore resets the fields of hs[:dirty] that recvmmsg writes back.
func (r *mmsgReader) restore() {
	for i := range r.hs[:r.dirty] {
		m := &r.hs[i]
		m.hdr.Namelen = unix.SizeofSockaddrInet6
		if r.oobLen > 0 {
			m.hdr.SetControllen(r.oobLen)
		}
		m.hdr.Flags = 0
		m.len = 0
	}
	r.dirty = 0
}

// setBuf points message i at b (non-empty).
func (r *mmsgReader) setBuf(i int, b []byte) {
	r.iovs[i].Base = &b[0]
	r.iovs[i].SetLen(len(b))
}

// read receives up to n messages (n <= len(hs)) into the buffers set with
// setBuf; it blocks (in the netpoller) until at least one is there.
func (r *mmsgReader) read(n int) (int, error) {
	r.restore()
	// Until the call returns, any of the n headers may be written; after
	// it, only those of the messages received, and (conservatively) the
	// one after them.
	r.dirty = n
	r.want = n
	if err := r.rc.Read(r.readFn); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", r.errno)
	}
	r.dirty = min(r.n+1, n)
	return r.n, nil
}

func (r *mmsgReader) recvmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hs[0])), uintptr(r.want), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for readability
		}
		r.n, r.errno = int(n), e
		if e != 0 {
			r.n = 0
		}
		return true
	}
}

// size returns message i's datagram length.
func (r *mmsgReader) size(i int) int { return int(r.hs[i].len) }

// truncated reports whether message i did not fit its buffer.
func (r *mmsgReader) truncated(i int) bool { return r.hs[i].hdr.Flags&unix.MSG_TRUNC != 0 }

// control returns message i's control messages.
func (r *mmsgReader) control(i int) []byte {
	n := int(r.hs[i].hdr.Controllen)
	return r.oob[i*r.oobLen : i*r.oobLen+min(n, r.oobLen)]
}

// source returns message i's source address (port 0 for raw sockets).
func (r *mmsgReader) source(i int) netip.AddrPort {
	b := &r.names[i]
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		ip := netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		if id := binary.NativeEndian.Uint32(b[24:28]); id != 0 && ip.Is6() {
			ip = ip.WithZone(r.zoneName(id))
		}
		return netip.AddrPortFrom(ip, port)
	}
	return netip.AddrPort{}
}

// zoneName names an IPv6 scope ID (control plane speed: it changes rarely,
// so one cached entry avoids the lookup per packet).
func (r *mmsgReader) zoneName(id uint32) string {
	if id != r.zoneID || r.zone == "" {
		r.zoneID = id
		if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
			r.zone = ifi.Name
		} else {
			r.zone = strconv.FormatUint(uint64(id), 10)
		}
	}
	return r.zone
}
