package ike

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"net/netip"
)

// NAT detection (RFC 7296 §2.23).

// NATDetectionHash is the data of a NAT_DETECTION_SOURCE_IP or
// NAT_DETECTION_DESTINATION_IP notification: SHA-1(SPIi | SPIr | IP |
// Port), 20 bytes, with the SPIs as they appear in the header of the
// message that carries it (so SPIr is zero in the IKE_SA_INIT request and
// the responder's SPI in the response), the address in 4 bytes for IPv4
// (an IPv4-mapped IPv6 address counts as IPv4) or 16 for IPv6, and the
// port in network byte order.
func NATDetectionHash(spii, spir uint64, addr netip.AddrPort) []byte {
	var b [8 + 8 + 16 + 2]byte
	binary.BigEndian.PutUint64(b[0:], spii)
	binary.BigEndian.PutUint64(b[8:], spir)
	n := 16
	if a := addr.Addr().Unmap(); a.Is4() {
		a4 := a.As4()
		n += copy(b[n:], a4[:])
	} else {
		a16 := a.As16()
		n += copy(b[n:], a16[:])
	}
	binary.BigEndian.PutUint16(b[n:], addr.Port())
	h := sha1.Sum(b[:n+2])
	return h[:]
}

// NATDetectionNotifies returns the two notifications of a message sent
// from src to dst: NAT_DETECTION_SOURCE_IP with the hash of src and
// NAT_DETECTION_DESTINATION_IP with the hash of dst. spii and spir are the
// SPIs of the message's header (spir zero in an IKE_SA_INIT request). A
// sender that wants UDP encapsulation whatever the path (swanctl's
// encap = yes) may pass a src that is not its own (§2.23 allows it).
func NATDetectionNotifies(spii, spir uint64, src, dst netip.AddrPort) (srcN, dstN *Notify) {
	return &Notify{NotifyType: NAT_DETECTION_SOURCE_IP, Data: NATDetectionHash(spii, spir, src)},
		&Notify{NotifyType: NAT_DETECTION_DESTINATION_IP, Data: NATDetectionHash(spii, spir, dst)}
}

// CheckNAT evaluates the NAT detection notifications of a received
// message: srcHashes and dstHashes are the data of its
// NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP notifications
// (there may be several of each), spii and spir the SPIs of its header,
// src the address and port it came from (the peer, as we see it) and dst
// the one it came to (our local address).
//
//   - natSrc: the peer is behind a NAT. No source hash matches src: the
//     peer sent from an address other than the one we received from.
//   - natDst: we are behind a NAT. No destination hash matches dst: the
//     peer sent to an address other than the one we received on.
//
// Either is true when the peer sent no hash of that kind only if it sent
// the other kind (a peer that sends neither does not support NAT
// detection, and both are false). Either being true means floating to
// port 4500 and encapsulating ESP in UDP (RFC 3948); natDst also means we
// send the NAT keepalives.
func CheckNAT(spii, spir uint64, srcHashes, dstHashes [][]byte, src, dst netip.AddrPort) (natSrc, natDst bool) {
	if len(srcHashes) == 0 && len(dstHashes) == 0 {
		return false, false
	}
	return !anyHash(srcHashes, NATDetectionHash(spii, spir, src)),
		!anyHash(dstHashes, NATDetectionHash(spii, spir, dst))
}

func anyHash(hs [][]byte, want []byte) bool {
	for _, h := range hs {
		if subtle.ConstantTimeCompare(h, want) == 1 {
			return true
		}
	}
	return false
}
