package dataplane

import (
	"net/netip"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
)

// Routing loops (DropLoop). When a TUN route covers an address the
// underlay sends to (a peer's endpoint, the home agent) and the underlay's
// packets are not kept out of the TUN (node: underlay.fwmark and the
// policy routes of internal/netcfg/policyroute_linux.go), the kernel
// routes our own ESP into the TUN; read back, the SPD would seal it again,
// and again: millions of packets a minute and no log line. The packets
// the SPD would seal are checked for that, cheaply:
//
//  1. the packet's own protocol is ESP (IP protocol 50, RFC 4303), or UDP
//     from or to port 4500 (RFC 3948), 4191 (RFC 5555 §4.1) or the
//     underlay's port (Config.UDPPort): two byte compares for every other
//     packet (IPv6: after at most two Hop-by-Hop, Destination Options or
//     Routing headers, which is how the mobility layer's own packets look);
//  2. and its destination is where this SA's packets go: the endpoint of
//     the peer owning the SA's SPI, the SA's tunnel remote, or one of
//     Config.UnderlayRemotes (the home agent, for the mobility layer that
//     picks the outer form).
//
// Such a packet is dropped as DropLoop and warned about (kindLoop, rate
// limited like every drop warning), never sealed. Only the destination is
// compared: a nested tunnel of a host behind us (its own IKE and ESP to a
// third address, through our SA) is legitimate and passes; only ESP to the
// very address our SA sends to is taken for a loop. No allocation, no lock.

// encapProto reports whether the IP packet p is ESP or UDP to or from one
// of the ESP-in-UDP / DSMIPv6 ports, and returns its destination.
func (d *Dataplane) encapProto(p []byte) (netip.Addr, bool) {
	if len(p) == 0 {
		return netip.Addr{}, false
	}
	var proto uint8
	var off int
	switch p[0] >> 4 {
	case 4:
		if len(p) < header.IPv4MinHeaderLen {
			return netip.Addr{}, false
		}
		proto, off = p[9], int(p[0]&0xf)*4
		if proto == header.ProtoUDP && (p[6]&0x1f != 0 || p[7] != 0) {
			return netip.Addr{}, false // a non-first fragment has no ports
		}
	case 6:
		if len(p) < header.IPv6HeaderLen {
			return netip.Addr{}, false
		}
		proto, off = p[6], header.IPv6HeaderLen
		for range 2 {
			if proto != header.ProtoHopByHop && proto != header.ProtoDestOpts && proto != header.ProtoRouting {
				break
			}
			if len(p) < off+2 {
				return netip.Addr{}, false
			}
			proto, off = p[off], off+(int(p[off+1])+1)*8
		}
	default:
		return netip.Addr{}, false
	}
	switch proto {
	case header.ProtoESP:
	case header.ProtoUDP:
		if len(p) < off+4 {
			return netip.Addr{}, false
		}
		sp, dp := uint16(p[off])<<8|uint16(p[off+1]), uint16(p[off+2])<<8|uint16(p[off+3])
		if !d.encapPort(sp) && !d.encapPort(dp) {
			return netip.Addr{}, false
		}
	default:
		return netip.Addr{}, false
	}
	dst, _ := outerDst(p)
	return dst, true
}

func (d *Dataplane) encapPort(port uint16) bool {
	return port == endpoint.UDPEncapPort || port == endpoint.DSMIPv6Port || port == d.udpPort && port != 0
}

// looped reports whether buf, which the SPD would seal with sa (policy SPI
// spi), is our own ESP back from the TUN (see above).
func (d *Dataplane) looped(buf []byte, sa *sad.SA, spi uint32, peers *peerTable) bool {
	dst, ok := d.encapProto(buf)
	if !ok {
		return false
	}
	dst = dst.Unmap()
	if pr := peers.out[spi]; pr != nil {
		if ep := pr.st.ep.Load(); ep != nil && ep.Addr.Addr().Unmap() == dst {
			return true
		}
	}
	for _, a := range d.remotes {
		if a == dst {
			return true
		}
	}
	// Params copies the SA's parameters (no allocation); only ESP-looking
	// packets get here.
	if p := sa.Params(); p.Mode == esp.Tunnel && p.TunnelDst.Unmap() == dst {
		return true
	}
	return false
}
