package node

// IKE-made SAs of a home agent or mobile node (RFC 4877 §7): the IKE SA
// runs between the care-of address and the home agent, but every Child SA
// is bound to the home address (RFC 4877 §4.4, §7.2), exactly as the
// manual SA1..SA8 are: a tunnel-mode child's outer addresses are HoA ↔ HA
// whatever the IKE SA's addresses are, and the mobility layer rewrites the
// outer header on the wire (draft-laganier-mext-dsmipv6-ipsec-00, DR-1,
// DR-8). The mobility layer also chooses every outbound endpoint, so the
// IKE peers of a mobility node are no dataplane peers (allPeers) and never
// roam on ESP: the binding follows the mobile node, moved by authenticated
// Binding Updates only, and ESP for a home address without a binding goes
// where it would with manual SAs, never to another node's care-of address.
//
//	MN: tunnel HoA (Mobility.HomeAddress) -> HA (Mobility.HAAddress)
//	HA: tunnel HA -> the mobile node's HoA: the IPv6 address its PAD entry
//	    names (ike.ChildSA.Authorized), else the single IPv6 address of
//	    the child's remote selectors, else its ID_IPV6_ADDR identity
//
// The K flag (RFC 4877 §7.4, RFC 6275 §9.5.1, §11.7.1): the MN sets it in
// its BUs when IKE keys it (mip6.MNConfig.KeyManagement); the HA answers
// with K when an IKE SA serves the home address (ike.Daemon.Serves) and,
// once the BU is accepted, moves that IKE SA to where the BU came from
// (mip6.HAConfig.MoveIKE -> ike.Daemon.Relocate); the MN moves its own on
// the BA with K (MNEvent.KeyMgmt -> relocateMN). Only authenticated
// signaling moves an IKE SA: a BU that IPsec opened and the HA accepted,
// a BA that IPsec opened.

import (
	"errors"
	"fmt"
	"net/netip"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/mip6"
)

// ikeTunnel returns the outer addresses of c's tunnel in the outbound
// direction (local first) where the node's role binds them to the home
// address; invalid ones for a gateway (the IKE SA's addresses apply).
func (n *Node) ikeTunnel(c *ike.ChildSA) (local, remote netip.Addr, err error) {
	mc := n.cfg.Mobility
	switch n.cfg.Role {
	case RoleMN:
		return mc.HomeAddress, mc.HAAddress, nil
	case RoleHA:
		hoa, found := childHomeAddress(c)
		if !found {
			return netip.Addr{}, netip.Addr{}, fmt.Errorf("node: child %s of %s: no IPv6 home address in its PAD entry, its remote selectors or its identity (RFC 4877 §7.3)",
				c.Name, c.RemoteID)
		}
		return mc.HAAddress, hoa, nil
	}
	return netip.Addr{}, netip.Addr{}, nil
}

// childHomeAddress is the home address a home agent binds c's tunnel to
// (the order of the file comment).
func childHomeAddress(c *ike.ChildSA) (netip.Addr, bool) {
	for _, p := range c.Authorized {
		if a := p.Addr().Unmap(); a.Is6() && p.IsSingleIP() {
			return a, true
		}
	}
	for _, ts := range c.RemoteTS {
		if a := ts.Start.Unmap(); a.Is6() && ts.Start == ts.End {
			return a, true
		}
	}
	if c.RemoteID.Type == ike.ID_IPV6_ADDR && len(c.RemoteID.Data) == 16 {
		return netip.AddrFrom16([16]byte(c.RemoteID.Data)), true
	}
	return netip.Addr{}, false
}

// mobilityRole: the node is a home agent or a mobile node, whose mobility
// layer chooses the endpoints (no IKE peer roams on ESP).
func (n *Node) mobilityRole() bool { return n.cfg.Role == RoleHA || n.cfg.Role == RoleMN }

// renewIKE is the mobile node's move without the K flag (RFC 4877 §7.4: a
// new IKE SA from the new care-of address): every connection whose IKE SA
// is not already at coa is renewed from there (ike.Daemon.Renew).
func (m *mobility) renewIKE(coa netip.Addr) {
	if !coa.IsValid() || coa == m.cfg.Mobility.HomeAddress {
		return
	}
	for _, c := range m.cfg.IKE.Connections {
		if err := m.ike.Renew(c.Name, coa); err != nil && !errors.Is(err, ike.ErrNotRunning) {
			m.log.Warn("IKE SA not renewed from the new care-of address", zap.String("conn", c.Name), zap.Stringer("coa", coa), zap.Error(err))
		}
	}
}

// initiateFrom points the MN's connections' next initiation at coa
// (ike.Daemon.InitiateFrom): a mobile node that starts, or is still
// without an IKE SA, on an IPv4-only link behind a NAT runs IKE to the
// HA's IPv4 address from there.
func (m *mobility) initiateFrom(coa netip.Addr) {
	for _, c := range m.cfg.IKE.Connections {
		if err := m.ike.InitiateFrom(c.Name, coa); err != nil && !errors.Is(err, ike.ErrNotRunning) {
			m.log.Warn("IKE: cannot initiate from the care-of address", zap.String("conn", c.Name), zap.Stringer("coa", coa), zap.Error(err))
		}
	}
}

// ikeServes is mip6.HAConfig.KeyManagement: an IKE SA serves hoa.
func (m *mobility) ikeServes(hoa netip.Addr) bool {
	return m.ike != nil && m.ike.Serves(hoa)
}

// moveIKE is mip6.HAConfig.MoveIKE: the IKE SA of hoa follows an accepted
// BU with the K flag.
func (m *mobility) moveIKE(hoa netip.Addr, local, remote netip.AddrPort) {
	if m.ike == nil {
		return
	}
	if err := m.ike.Relocate(hoa, local, remote); err != nil {
		m.log.Warn("IKE SA not moved with the mobile node (K flag)", zap.Stringer("hoa", hoa), zap.Stringer("to", remote), zap.Error(err))
	}
}

// relocateMN moves the mobile node's IKE SA to coa after a BA with the K
// flag: from an IPv4 care-of address IKE runs in UDP 4500 to the home
// agent's IPv4 address (RFC 5555 §4.1, RFC 7296 §2.23), from an IPv6 one
// to its IPv6 address, each on the port the IKE SA already uses.
func (m *mobility) relocateMN(coa netip.Addr) {
	mc := m.cfg.Mobility
	if m.ike == nil || !coa.IsValid() || coa == mc.HomeAddress {
		return
	}
	local, remote := netip.AddrPortFrom(coa, 0), netip.AddrPortFrom(mc.HAAddress, 0)
	if coa.Is4() {
		local, remote = netip.AddrPortFrom(coa, mip6.PortESPInUDP), netip.AddrPortFrom(mc.HAAddressV4, mip6.PortESPInUDP)
	}
	err := m.ike.Relocate(mc.HomeAddress, local, remote)
	if err != nil && !errors.Is(err, ike.ErrNotRunning) {
		m.log.Warn("IKE SA not moved to the care-of address (K flag)", zap.Stringer("coa", coa), zap.Error(err))
	}
}
