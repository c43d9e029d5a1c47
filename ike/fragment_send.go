package ike

import (
	"errors"
	"net/netip"
)

// Sending IKE fragments (RFC 7383 §2.5). Where both sides announced
// IKEV2_FRAGMENTATION_SUPPORTED, a protected message (IKE_AUTH and every
// later SK message; never IKE_SA_INIT, §2.5.3) that would not fit one
// fragment-sized datagram goes out as SKF payloads instead of one SK
// payload: each fragment is a complete IKE message with the same header
// (and message ID), its own Length, Fragment Number and Total Fragments,
// and is encrypted and integrity-protected on its own with the IKE SA's
// keys. Fragment 1 names the first inner payload, the others none. All
// fragments together are the message: a request is retransmitted, and a
// response cached and resent, as the whole set (§2.6.1).

// DefaultFragmentSize is the largest IP datagram that carries one of our
// protected IKE messages or fragments when Config.FragmentSize is 0: 1280
// octets, the IPv6 minimum MTU that RFC 7383 §2.5.1 suggests for IPv6 and
// strongSwan's charon.fragment_size default for both families (§2.5.1
// suggests 576 for IPv4; 1280 is what the deployed peers use).
const DefaultFragmentSize = 1280

// minFragmentSize is the smallest Config.FragmentSize honoured, the IPv4
// minimum datagram every host accepts (RFC 791); smaller values are
// raised to it.
const minFragmentSize = 576

// What lies between the IP datagram's first octet and the IKE message.
// The non-ESP marker (RFC 3948 §2.2) is counted whatever the port, so
// that a message keeps its size after the float to 4500.
const (
	ipv4HeaderLen   = 20
	ipv6HeaderLen   = 40
	udpHeaderLen    = 8
	nonESPMarkerLen = 4
)

// ikeSizeLimit is the largest IKE message we send whole, or as one
// fragment, to remote: the fragment size less the IP header of remote's
// family, UDP and the non-ESP marker. With the default, 1228 octets over
// IPv6 and 1248 over IPv4.
func (d *Daemon) ikeSizeLimit(remote netip.AddrPort) int {
	size := d.cfg.FragmentSize
	if size == 0 {
		size = DefaultFragmentSize
	}
	size = max(size, minFragmentSize)
	ip := ipv6HeaderLen
	if remote.Addr().Unmap().Is4() {
		ip = ipv4HeaderLen
	}
	return size - ip - udpHeaderLen - nonESPMarkerLen
}

var errTooManyFragments = errors.New("ike: message needs more IKE fragments than allowed")

// sealFragments seals inner, the clear inner payloads whose first is
// first, as SKF fragments of hdr (the IKE header's fields; its payloads
// are replaced), each at most limit octets (RFC 7383 §2.5).
func sealFragments(out *SKCipher, hdr Message, first PayloadType, inner []byte, limit int) ([][]byte, error) {
	over := HeaderLen + skfHeaderLen
	// The largest share of inner that one fragment holds: from the size
	// without padding, step down past CBC padding to where it fits.
	chunk := limit - over - out.IVLen() - 1 - out.ICVLen()
	for chunk > 0 && over+out.BodyLen(chunk) > limit {
		chunk--
	}
	if chunk <= 0 {
		return nil, errors.New("ike: fragment size leaves no room for data")
	}
	total := (len(inner) + chunk - 1) / chunk
	if total > maxFragments {
		// Our own reassembly's bound; a peer's is likely no larger.
		return nil, errTooManyFragments
	}
	frags := make([][]byte, 0, total)
	for i := 0; i < total; i++ {
		f := &EncryptedFragment{Number: uint16(i + 1), Total: uint16(total)}
		if i == 0 {
			f.NextPayload = first
		}
		hdr.Payloads = []Payload{f}
		prefix, err := hdr.Append(nil)
		if err != nil {
			return nil, err
		}
		b, err := out.SealFragment(nil, prefix, inner[i*chunk:min((i+1)*chunk, len(inner))])
		if err != nil {
			return nil, err
		}
		frags = append(frags, b)
	}
	return frags, nil
}

// sendAll sends the datagrams of one message: one, or its fragments in
// order.
func (d *Daemon) sendAll(msg [][]byte, local, remote netip.AddrPort) {
	for _, b := range msg {
		d.sendTo(b, local, remote)
	}
}
