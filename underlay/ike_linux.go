package underlay

// IKE over the underlay's sockets (RFC 7296 §2.11, §2.23; RFC 3948 §2.2):
// IKE messages arrive on UDP 500 (Config.IKE500) and on the ESP-in-UDP
// port behind the four-byte non-ESP marker, and go to Config.IKE with the
// datagram's real destination (IP_PKTINFO / IPV6_PKTINFO on a wildcard
// socket). SendIKE sends one from port 500 or, with the marker, from the
// ESP-in-UDP port. Both are control-plane rate: SendIKE allocates.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nonESPMarkerLen is the length of the non-ESP marker, four zero bytes
// where ESP's SPI would be (RFC 3948 §2.2).
const nonESPMarkerLen = 4

// nonESP reports whether the UDP payload p starts with the non-ESP
// marker. A keepalive (one byte, §2.3) is too short to.
func nonESP(p []byte) bool {
	return len(p) >= nonESPMarkerLen && binary.BigEndian.Uint32(p) == 0
}

// handIKE gives msg, the IKE message of message i from src, to Config.IKE
// (counted in c), or drops it when there is none (RxNonESP).
func (r *receiver) handIKE(msg []byte, i int, src netip.AddrPort, c *rxCounts) {
	if r.ike == nil {
		c.nonESP++
		return
	}
	c.ike++
	local := netip.AddrPortFrom(r.dst(i), r.ikePort)
	r.ike(msg, local, src)
}

// SendIKE sends one IKE message from local to remote (ike.Transport.Send):
// from UDP port 500 through the IKE500 socket when local's port is 500
// (or 0 and remote's port is 500), else from the ESP-in-UDP port with the
// non-ESP marker in front (RFC 3948 §2.2). local's address, when valid and
// not a wildcard, is the source of a socket bound to a wildcard
// (IP_PKTINFO / IPV6_PKTINFO ipi_spec_dst, ip(7), ipv6(7)): an IKE
// responder answers from the address the request came to (RFC 7296 §2.11).
// The ESP-in-UDP IPv4 socket sets DF (route): a message longer than the
// path MTU fails with EMSGSIZE there; IKE fragmentation (RFC 7383) keeps
// messages below it.
func (u *Linux) SendIKE(msg []byte, local, remote netip.AddrPort) error {
	ss := u.set.Load()
	if ss == nil {
		return net.ErrClosed
	}
	dst := netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	if !dst.Addr().IsValid() || dst.Port() == 0 {
		return fmt.Errorf("%w: IKE to %v", ErrNoSocket, remote)
	}
	src := local.Addr().Unmap()
	if src.IsValid() && !src.IsUnspecified() && src.Is4() != dst.Addr().Is4() {
		return fmt.Errorf("underlay: IKE from %v to %v: address families differ", local, remote)
	}
	via500 := local.Port() == IKEPort || (local.Port() == 0 && dst.Port() == IKEPort)
	k := sockUDP4
	if via500 {
		k = sockIKE4
	}
	if !dst.Addr().Is4() {
		k++
	}
	s := ss.s[k]
	if s == nil {
		what := fmt.Sprintf("UDP %d (the ESP-in-UDP socket)", u.cfg.UDPPort)
		if via500 {
			what = "UDP 500 (IKE500)"
		}
		return fmt.Errorf("%w: IKE to %v: no %s socket of that family", ErrNoSocket, remote, what)
	}
	data := msg
	if !via500 {
		data = make([]byte, nonESPMarkerLen+len(msg))
		copy(data[nonESPMarkerLen:], msg)
	}
	var oob []byte
	if src.IsValid() && !src.IsUnspecified() && s.bound.IsUnspecified() {
		oob = pktinfoSource(src)
	}
	if _, _, err := s.pc.(*net.UDPConn).WriteMsgUDPAddrPort(data, oob, dst); err != nil {
		return normErr(err)
	}
	u.stats.TxIKE.Add(1)
	return nil
}

// pktinfoSource is the control message that makes src the source address
// of a datagram sent on a wildcard socket: IP_PKTINFO with ipi_spec_dst
// (ip(7)) or IPV6_PKTINFO with ipi6_addr (RFC 3542 §6.1).
func pktinfoSource(src netip.Addr) []byte {
	if src.Is4() {
		b := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		a := src.As4()
		copy(b[unix.CmsgLen(0)+4:], a[:]) // after ipi_ifindex
		return b
	}
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	a := src.As16()
	copy(b[unix.CmsgLen(0):], a[:])
	return b
}
