package node

import (
	"fmt"
	"net/netip"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/internal/netcfg"
	"github.com/mipsec/mipsec/underlay"
)

// openLinuxIO creates and configures the TUN device and opens the
// underlay sockets. With Underlay.FWMark the TUN's routes go into their
// own tables behind fwmark rules (netcfg.InstallPolicyRoutes), and the
// returned PolicyRoutes must be removed at Close; on error nothing stays.
// With IKE connections the underlay's IKE datagrams go to ike.
//
// Always, not only when a TUN route covers a peer or the home agent: a
// roaming peer, a care-of address or a peer added at run time can move
// into a TUN route at any time, and with the suppress_prefixlength rules
// the unmarked traffic is routed exactly as from the main table.
func openLinuxIO(cfg *Config, log *zap.Logger, ike func(msg []byte, local, remote netip.AddrPort)) (tun.Device, dataplane.Underlay, *netcfg.PolicyRoutes, error) {
	dev, err := dataplane.CreateTUN(cfg.TUN.Name, cfg.TUN.MTU)
	if err != nil {
		return nil, nil, nil, err
	}
	name := cfg.TUN.Name
	if n, err := dev.Name(); err == nil {
		name = n
	}
	mainRoutes := cfg.TUN.Routes
	if cfg.Underlay.FWMark != 0 {
		mainRoutes = nil
	}
	if err := dataplane.ConfigureTUN(name, cfg.TUN.Addresses, mainRoutes, cfg.TUN.MTU); err != nil {
		dev.Close()
		return nil, nil, nil, err
	}
	var pr *netcfg.PolicyRoutes
	if mark := cfg.Underlay.FWMark; mark != 0 {
		table := cfg.Underlay.RouteTable
		if table == 0 {
			table = DefaultRouteTable
		}
		pr, err = netcfg.InstallPolicyRoutes(netcfg.PolicyRoutesConfig{TUN: name, Routes: cfg.TUN.Routes,
			Mark: mark, Table: table, Priority: RulePriority})
		if err != nil {
			dev.Close()
			return nil, nil, nil, err
		}
		log.Info("policy routing: the TUN's routes in their own tables, the underlay's marked packets routed by the main table",
			zap.String("fwmark", fmt.Sprintf("%#x", mark)), zap.Uint32("table", table), zap.Int("rules", len(pr.Rules())))
	}
	log.Info("tun up", zap.String("tun", name), zap.Int("mtu", cfg.TUN.MTU),
		zap.Stringers("addresses", cfg.TUN.Addresses), zap.Stringers("routes", cfg.TUN.Routes))
	uc := underlayConfig(cfg)
	if len(cfg.IKE.Connections) > 0 && cfg.IKE.Transport == nil {
		uc.IKE = ike
	}
	ul, err := underlay.New(uc)
	if err != nil {
		dev.Close()
		if rerr := pr.Remove(); rerr != nil {
			log.Warn("policy routing cleanup", zap.Error(rerr))
		}
		return nil, nil, nil, err
	}
	logUnderlayOpen(log, cfg, uc)
	return dev, ul, pr, nil
}

// underlayConfig is the underlay.Config of cfg's [underlay]
// section and role: the sockets openLinuxIO opens.
func underlayConfig(cfg *Config) underlay.Config {
	uc := underlay.Config{IPv4: cfg.Underlay.Local4, IPv6: cfg.Underlay.Local6, UDPPort: cfg.Underlay.UDPPort,
		PacketSocket: cfg.Underlay.PacketSocket, Mark: cfg.Underlay.FWMark}
	switch {
	case cfg.Underlay.Raw && cfg.Underlay.UDP:
		uc.Mode = underlay.ModeBoth
	case cfg.Underlay.UDP:
		uc.Mode = underlay.ModeUDP
	default:
		uc.Mode = underlay.ModeRaw
	}
	if !uc.IPv4.IsValid() && !uc.IPv6.IsValid() {
		// No local address configured: listen on all of both families.
		uc.IPv4, uc.IPv6 = netip.IPv4Unspecified(), netip.IPv6Unspecified()
	}
	if len(cfg.IKE.Connections) > 0 && cfg.IKE.Transport == nil {
		// IKE floats to 4500 (RFC 7296 §2.23) on the ESP-in-UDP socket,
		// and starts on 500 unless every connection says otherwise.
		uc.Mode |= underlay.ModeUDP
		uc.IKE500 = ikeWants500(cfg.IKE.Connections)
	}
	switch cfg.Role {
	case RoleHA:
		// BUs from IPv4 care-of addresses come in UDP 4191 (RFC 5555
		// §4.1); from IPv6 ones with a Home Address option (RFC 6275
		// §6.3), which the kernel does not process.
		uc.DSMIPv6 = cfg.Mobility.HAAddressV4.IsValid()
		uc.ExtHeaders = true
	case RoleMN:
		// BAs to an IPv6 care-of address carry a type 2 Routing header
		// (RFC 6275 §6.4); to an IPv4 one they come from UDP port 4191
		// to our 4500, which the UDP socket classifies.
		uc.ExtHeaders = true
	}
	return uc
}

// logUnderlayOpen logs the open underlay uc; with packet_socket it says
// once that raw ESP bypasses the kernel's egress hooks.
func logUnderlayOpen(log *zap.Logger, cfg *Config, uc underlay.Config) {
	var addrs []netip.Addr
	for _, a := range []netip.Addr{uc.IPv4, uc.IPv6} {
		if a.IsValid() {
			addrs = append(addrs, a)
		}
	}
	log.Info("underlay open", zap.Stringers("local", addrs),
		zap.Bool("raw", cfg.Underlay.Raw), zap.Bool("udp", cfg.Underlay.UDP), zap.Uint16("udp_port", uc.UDPPort),
		zap.Bool("dsmipv6", uc.DSMIPv6), zap.Bool("ext_headers", uc.ExtHeaders), zap.Bool("packet_socket", uc.PacketSocket),
		zap.Bool("ike", uc.IKE != nil), zap.Bool("ike_500", uc.IKE500))
	if uc.PacketSocket {
		log.Info("underlay.packet_socket: raw ESP leaves through an AF_PACKET socket (PACKET_QDISC_BYPASS), " +
			"bypassing netfilter OUTPUT and POSTROUTING, the egress qdisc and kernel fragmentation; " +
			"packets whose next hop is unresolved or that exceed the link MTU still take the raw IP socket")
	}
}
