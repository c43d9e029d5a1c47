package config

// The role of the node and the [mobility] section: a plain
// security gateway (the default), a Mobile IPv6 / DSMIPv6 home agent or a
// mobile node, in the unmodified-IPsec model of
// draft-laganier-mext-dsmipv6-ipsec-00. cmd/mipsec/examples/ha.toml and
// mn.toml are the annotated examples.
//
//	role = "gateway" | "ha" | "mn"      ["gateway"]
//	[mobility] (role = "ha" or "mn" only)
//	  ha_address     HA's IPv6 address (HAADDR, on the home link)  required
//	  ha_address_v4  HA's IPv4 address (HA_V4ADDR, RFC 5555)       optional
//	  home_prefix    the home link's IPv6 prefix                    required
//	  HA only:
//	  home_prefix_v4 the home link's IPv4 prefix                    optional
//	  home_link      interface of the home link (proxy ND / ARP)    optional
//	  max_lifetime   longest binding granted ["10m"; RFC 6275 §10.3.1]
//	  max_coas       care-of addresses per home address [4; RFC 5648]
//	  nat_refresh    Refresh Time sent in the NAT Detection option
//	                 ["110s"; RFC 5555 §4.2.2]
//	  bu_rate, bu_burst  Binding Updates per second and burst per home
//	                 address [10, 20]
//	  k_flag         with [[connection]]: the IKE SA moves with the MN's
//	                 care-of address (RFC 4877 §7.4) [true]; false: the MN
//	                 negotiates a new IKE SA after each move
//	  MN only:
//	  home_address   the MN's IPv6 home address (HoA)               required
//	  home_address_v4 the MN's IPv4 home address (RFC 5555)         optional
//	  lifetime       binding lifetime asked for ["5m"]
//	  interfaces     underlay interfaces watched for movement [all]
//	  nat_keepalive  NAT keepalive interval behind a NAT, or "off"
//	                 ["20s"; RFC 3948 §4]

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
)

// Defaults of the [mobility] section (zero in node.MobilityConfig means these).
const (
	DefaultMaxLifetime  = 10 * time.Minute
	DefaultMaxCoAs      = 4
	DefaultNATRefresh   = 110 * time.Second // RFC 5555 §4.2.2
	DefaultBURate       = 10.0
	DefaultBUBurst      = 20
	DefaultMNLifetime   = 5 * time.Minute
	DefaultNATKeepalive = 20 * time.Second // RFC 3948 §4
)

// maxBindingLifetime is the longest lifetime a BU or BA can carry: 16 bits
// in units of 4 seconds (RFC 6275 §6.1.7, §6.1.8).
const maxBindingLifetime = 0xffff * 4 * time.Second

// mobility validates role and [mobility]; it runs after the SAs, policies
// and peers so it can check that the SAs RFC 4877 §6 needs are there.
func (v *validator) mobility(rc *rawConfig, cfg *File) {
	switch r := strings.ToLower(strings.TrimSpace(rc.Role)); r {
	case "", node.RoleGateway:
		cfg.Role = node.RoleGateway
	case node.RoleHA, "home-agent", "home_agent":
		cfg.Role = node.RoleHA
	case node.RoleMN, "mobile-node", "mobile_node":
		cfg.Role = node.RoleMN
	default:
		v.errf("role", "%q is not a role; want \"gateway\" (default), \"ha\" (home agent) or \"mn\" (mobile node)", rc.Role)
		return
	}
	m := rc.Mobility
	if cfg.Role == node.RoleGateway {
		if m != nil {
			v.errf("mobility", "a [mobility] section needs role = \"ha\" or \"mn\"; a gateway has none")
		}
		return
	}
	if m == nil {
		v.errf("role", "%q needs a [mobility] section (see cmd/mipsec/examples/%s.toml); it is missing", rc.Role, cfg.Role)
		return
	}
	mc := &cfg.Mobility
	ha := cfg.Role == node.RoleHA
	other := func(field string, set bool) {
		if !set {
			return
		}
		if ha {
			v.errf("mobility."+field, "is for role = \"mn\"; a home agent has none: remove it")
		} else {
			v.errf("mobility."+field, "is for role = \"ha\"; a mobile node has none: remove it")
		}
	}
	// Both roles.
	mc.HAAddress = v.mobAddr("mobility.ha_address", m.HAAddress, true, false, "the home agent's IPv6 address (HAADDR), e.g. \"2001:db8:1::1\"")
	mc.HAAddressV4 = v.mobAddr("mobility.ha_address_v4", m.HAAddressV4, false, true, "the home agent's IPv4 address (HA_V4ADDR, RFC 5555), e.g. \"198.51.100.1\"")
	mc.HomePrefix = v.mobPrefix("mobility.home_prefix", m.HomePrefix, true, false, "the home link's IPv6 prefix, e.g. \"2001:db8:1::/64\"")
	if mc.HAAddress.IsValid() && mc.HomePrefix.IsValid() && !mc.HomePrefix.Contains(mc.HAAddress) {
		v.errf("mobility.ha_address", "%s is not in home_prefix %s; the home agent's address is on the home link (RFC 6275 §10.1)", mc.HAAddress, mc.HomePrefix)
	}
	if m.KFlag != nil {
		mc.NoKFlag = !*m.KFlag
	}
	if ha {
		other("home_address", m.HomeAddress != "")
		other("home_address_v4", m.HomeAddressV4 != "")
		other("lifetime", m.Lifetime != "")
		other("interfaces", m.Interfaces != nil)
		other("nat_keepalive", m.NATKeepalive != "")
		v.haMobility(m, cfg)
	} else {
		other("home_prefix_v4", m.HomePrefixV4 != "")
		other("home_link", m.HomeLink != "")
		other("max_lifetime", m.MaxLifetime != "")
		other("max_coas", m.MaxCoAs != nil)
		other("nat_refresh", m.NATRefresh != "")
		other("bu_rate", m.BURate != nil)
		other("bu_burst", m.BUBurst != nil)
		v.mnMobility(m, cfg)
	}
	// DR-9: only accepted Binding Updates move a mobile node's endpoint.
	for i, p := range rc.Peers {
		if p.Roaming {
			v.errf(indexPath("peer", i)+".roaming", "must be false with role = %q: only accepted Binding Updates move a mobile node's endpoint (DR-9, RFC 4877 §4.3)", cfg.Role)
		}
	}
	// The HA and the MN send Binding Updates / data from IPv4 care-of
	// addresses ESP-in-UDP (RFC 5555 §4.1) and from IPv6 ones as raw ESP.
	if mc.HAAddressV4.IsValid() && !(cfg.Underlay.Raw && cfg.Underlay.UDP) {
		v.errf("underlay.encap", "must be \"both\" with mobility.ha_address_v4: IPv6 care-of addresses use raw ESP, IPv4 ones behind a NAT ESP in UDP (RFC 5555 §4.1)")
	}
	if len(rc.Connections) == 0 || len(cfg.SAs) > 0 {
		// IKE-keyed (no [[sa]] at all): ike's check (ikeMobilityChildren).
		v.mobilitySAs(cfg)
	}
}

func (v *validator) haMobility(m *rawMobility, cfg *File) {
	mc := &cfg.Mobility
	mc.HomePrefixV4 = v.mobPrefix("mobility.home_prefix_v4", m.HomePrefixV4, false, true, "the home link's IPv4 prefix, e.g. \"192.0.2.0/24\"")
	if m.HomeLink != "" {
		if !isIfName(m.HomeLink) {
			v.errf("mobility.home_link", "%q is not a Linux interface name (at most %d characters, no '/', ':' or spaces)", m.HomeLink, maxIfName)
		} else if m.HomeLink == cfg.TUN.Name {
			v.errf("mobility.home_link", "%q is the TUN; want the interface of the home link (the HA answers there for the home addresses, RFC 6275 §10.4.1)", m.HomeLink)
		} else {
			mc.HomeLink = m.HomeLink
		}
	}
	mc.MaxLifetime = v.bindingLifetime("mobility.max_lifetime", m.MaxLifetime, DefaultMaxLifetime, "§6.1.8")
	mc.MaxCoAs = DefaultMaxCoAs
	if m.MaxCoAs != nil {
		if *m.MaxCoAs < 1 || *m.MaxCoAs > 1024 {
			v.errf("mobility.max_coas", "%d is out of range; want 1..1024 care-of addresses per home address (RFC 5648)", *m.MaxCoAs)
		} else {
			mc.MaxCoAs = int(*m.MaxCoAs)
		}
	}
	mc.NATRefresh = DefaultNATRefresh
	if m.NATRefresh != "" {
		if d, ok := v.duration("mobility.nat_refresh", m.NATRefresh, false); ok {
			if d < time.Second || d > 0xffffffff*time.Second {
				v.errf("mobility.nat_refresh", "%s is out of range; want 1s or more, whole seconds (RFC 5555 §4.2.2)", d)
			} else {
				mc.NATRefresh = d.Truncate(time.Second)
			}
		}
	}
	mc.BURate = DefaultBURate
	if m.BURate != nil {
		if r := *m.BURate; !(r > 0 && r <= 1e6) {
			v.errf("mobility.bu_rate", "%v is out of range; want Binding Updates per second per home address, > 0 (e.g. 10)", r)
		} else {
			mc.BURate = r
		}
	}
	mc.BUBurst = DefaultBUBurst
	if m.BUBurst != nil {
		if *m.BUBurst < 1 || *m.BUBurst > 1e6 {
			v.errf("mobility.bu_burst", "%d is out of range; want 1..1000000 Binding Updates", *m.BUBurst)
		} else {
			mc.BUBurst = int(*m.BUBurst)
		}
	}
	// The HA's sockets must be bound where the MNs send.
	u := cfg.Underlay
	if mc.HAAddressV4.IsValid() && u.Local6.IsValid() && !u.Local4.IsValid() {
		v.errf("underlay.local", "has no IPv4 address, but mobility.ha_address_v4 is set: add %q (DSMIPv6 listens on UDP 4191 there, RFC 5555 §4.1)", mc.HAAddressV4.String())
	}
	if u.Local4.IsValid() && !u.Local6.IsValid() {
		v.errf("underlay.local", "has no IPv6 address: add mobility.ha_address %q (Binding Updates from IPv6 care-of addresses arrive there, RFC 6275 §10.3.1)", mc.HAAddress.String())
	}
	if mc.HAAddress.IsValid() && u.Local6.IsValid() && u.Local6 != mc.HAAddress {
		v.errf("underlay.local", "%s is not mobility.ha_address %s: the mobile nodes send to the home agent's address, so the underlay must listen there", u.Local6, mc.HAAddress)
	}
	if mc.HAAddressV4.IsValid() && u.Local4.IsValid() && u.Local4 != mc.HAAddressV4 {
		v.errf("underlay.local", "%s is not mobility.ha_address_v4 %s: the mobile nodes send to the home agent's IPv4 address, so the underlay must listen there", u.Local4, mc.HAAddressV4)
	}
}

func (v *validator) mnMobility(m *rawMobility, cfg *File) {
	mc := &cfg.Mobility
	mc.HomeAddress = v.mobAddr("mobility.home_address", m.HomeAddress, true, false, "the mobile node's IPv6 home address, e.g. \"2001:db8:1::100\"")
	mc.HomeAddressV4 = v.mobAddr("mobility.home_address_v4", m.HomeAddressV4, false, true, "the mobile node's IPv4 home address (RFC 5555), e.g. \"192.0.2.100\"")
	if a := mc.HomeAddress; a.IsValid() {
		switch {
		case mc.HomePrefix.IsValid() && !mc.HomePrefix.Contains(a):
			v.errf("mobility.home_address", "%s is not in home_prefix %s (RFC 6275 §2: a home address is on the home link)", a, mc.HomePrefix)
		case a == mc.HAAddress:
			v.errf("mobility.home_address", "%s is the home agent's address; want the mobile node's own", a)
		case a.IsLinkLocalUnicast():
			v.errf("mobility.home_address", "%s is link-local; a home address is global (RFC 6275 §2)", a)
		}
	}
	if a := mc.HomeAddressV4; a.IsValid() && a == mc.HAAddressV4 {
		v.errf("mobility.home_address_v4", "%s is the home agent's IPv4 address; want the mobile node's own", a)
	}
	mc.Lifetime = v.bindingLifetime("mobility.lifetime", m.Lifetime, DefaultMNLifetime, "§6.1.7")
	for i, name := range m.Interfaces {
		p := indexPath("mobility.interfaces", i)
		switch {
		case !isIfName(name):
			v.errf(p, "%q is not a Linux interface name (at most %d characters, no '/', ':' or spaces)", name, maxIfName)
		case name == cfg.TUN.Name:
			v.errf(p, "%q is the TUN; want the underlay (access) interfaces whose addresses become care-of addresses", name)
		case slices.Contains(mc.Interfaces, name):
			v.errf(p, "%q is listed twice", name)
		default:
			mc.Interfaces = append(mc.Interfaces, name)
		}
	}
	mc.NATKeepalive = DefaultNATKeepalive
	if m.NATKeepalive != "" {
		if d, ok := v.duration("mobility.nat_keepalive", m.NATKeepalive, true); ok {
			mc.NATKeepalive = d
		}
	}
	// Care-of addresses come and go: the sockets listen on all addresses.
	if u := cfg.Underlay; u.Local4.IsValid() || u.Local6.IsValid() {
		v.errf("underlay.local", "must be empty with role = \"mn\": the care-of addresses change as the mobile node moves, so the underlay listens on all of them")
	}
}

// bindingLifetime reads a binding lifetime (def when s is empty or
// wrong): 4s..maxBindingLifetime, what a BU (RFC 6275 §6.1.7) or BA
// (§6.1.8) can carry; section names the message's section for the error.
func (v *validator) bindingLifetime(path, s string, def time.Duration, section string) time.Duration {
	if s == "" {
		return def
	}
	d, ok := v.duration(path, s, false)
	if !ok {
		return def
	}
	if d > maxBindingLifetime || d < 4*time.Second {
		v.errf(path, "%s is out of range; want 4s..%s (16 bits of 4-second units, RFC 6275 %s)", d, maxBindingLifetime, section)
		return def
	}
	return d
}

// mobAddr reads a unicast address of one family (v4 or v6); required
// says whether an empty value is an error.
func (v *validator) mobAddr(path, s string, required, v4 bool, what string) netip.Addr {
	if s == "" {
		if required {
			v.errf(path, "missing; want %s", what)
		}
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		v.errf(path, "%q is not an IP address; want %s", s, what)
		return netip.Addr{}
	}
	a = a.Unmap()
	switch {
	case a.Is4() != v4:
		v.errf(path, "%s is %s; want %s", a, family(a), what)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		v.errf(path, "%s is not a unicast address; want %s", a, what)
	default:
		return a
	}
	return netip.Addr{}
}

func (v *validator) mobPrefix(path, s string, required, v4 bool, what string) netip.Prefix {
	if s == "" {
		if required {
			v.errf(path, "missing; want %s", what)
		}
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		v.errf(path, "%q is not a prefix; want %s", s, what)
	case p.Addr().Is4() != v4:
		v.errf(path, "%s is %s; want %s", p, family(p.Addr()), what)
	case p != p.Masked():
		v.errf(path, "%q has host bits set; want %s", s, p.Masked())
	default:
		return p
	}
	return netip.Prefix{}
}

// mobilitySAs checks that the SAD has the transport SAs RFC 4877 §6.1
// needs: on the MN SA1 (HoA -> HA, MH BU) out and SA2 (MH BAck) in; on the
// HA, for every inbound BU SA (DR-7: it names the home address), the BAck
// SA back to that home address.
func (v *validator) mobilitySAs(cfg *File) {
	mc := &cfg.Mobility
	if !mc.HAAddress.IsValid() || len(v.errs) > 0 {
		return // the addresses are wrong already: say that first
	}
	db := sad.New(sad.Options{})
	defer db.Close()
	for _, s := range cfg.SAs {
		db.Add(s.Config)
	}
	transport := func(dir sad.Direction, spi uint32) bool {
		sa := db.Lookup(dir, spi)
		return sa != nil && sa.Params().Mode == esp.Transport
	}
	if cfg.Role == node.RoleMN {
		hoa := mc.HomeAddress
		if !hoa.IsValid() {
			return
		}
		spi, ok := db.OutboundSPIFor(mhFlow(hoa, mc.HAAddress, header.MHTypeBU))
		switch {
		case !ok:
			v.errf("mobility.home_address", "no outbound SA protects Binding Updates from %s to %s; add SA1 of RFC 4877 §6.1 (dir = \"out\", mode = \"transport\", selectors = [{ local = %q, remote = %q, proto = \"mh\", mh_type = 5 }])", hoa, mc.HAAddress, hoa.String(), mc.HAAddress.String())
		case !transport(sad.Outbound, spi):
			v.errf("mobility.home_address", "the SA %#08x that protects Binding Updates is not transport mode; RFC 4877 §6.1 SA1 is ESP transport", spi)
		}
		if !inboundFor(db, hoa, mc.HAAddress, header.MHTypeBA) {
			v.errf("mobility.home_address", "no inbound transport SA takes Binding Acknowledgements from %s to %s; add SA2 of RFC 4877 §6.1 (dir = \"in\", mode = \"transport\", selectors = [{ local = %q, remote = %q, proto = \"mh\", mh_type = 6 }])", mc.HAAddress, hoa, hoa.String(), mc.HAAddress.String())
		}
		return
	}
	n := 0
	for _, sa := range db.List() {
		if sa.Dir() != sad.Inbound || sa.Params().Mode != esp.Transport {
			continue
		}
		hoa, ok := db.HomeAddressOf(sa.SPI())
		if !ok || !sadMatches(sa, sad.Inbound, hoa, mc.HAAddress, header.MHTypeBU) {
			continue
		}
		n++
		path := saPath(cfg, sad.Inbound, sa.SPI())
		if !mc.HomePrefix.Contains(hoa) {
			v.errf(path, "takes Binding Updates for %s, which is not in mobility.home_prefix %s", hoa, mc.HomePrefix)
		}
		if spi, ok := db.OutboundSPIFor(mhFlow(mc.HAAddress, hoa, header.MHTypeBA)); !ok {
			v.errf(path, "takes Binding Updates for %s, but no outbound SA protects Binding Acknowledgements to it; add SA2 of RFC 4877 §6.1 (dir = \"out\", mode = \"transport\", selectors = [{ local = %q, remote = %q, proto = \"mh\", mh_type = 6 }])", hoa, mc.HAAddress.String(), hoa.String())
		} else if !transport(sad.Outbound, spi) {
			v.errf(path, "the SA %#08x that protects Binding Acknowledgements to %s is not transport mode; RFC 4877 §6.1 SA2 is ESP transport", spi, hoa)
		}
	}
	if n == 0 {
		v.errf("mobility", "no inbound transport SA takes Binding Updates (proto = \"mh\", mh_type = 5) from a home address to %s; a home agent needs SA1 of RFC 4877 §6.1 for each mobile node", mc.HAAddress)
	}
}

// inboundFor reports whether an inbound transport SA takes MH messages of
// type t from src to dst.
func inboundFor(db *sad.DB, dst, src netip.Addr, t uint8) bool {
	for _, sa := range db.List() {
		if sa.Dir() == sad.Inbound && sa.Params().Mode == esp.Transport && sadMatches(sa, sad.Inbound, src, dst, t) {
			return true
		}
	}
	return false
}

func sadMatches(sa *sad.SA, dir sad.Direction, src, dst netip.Addr, t uint8) bool {
	f := mhFlow(src, dst, t)
	for _, s := range sa.Selectors() {
		if s.Match(dir, f) {
			return true
		}
	}
	return false
}

// mhFlow is the selector view of a Mobility Header message of type t (RFC
// 4301 §4.4.1.1: the MH type in the high byte of the port selector), as
// mip6.BUSPI asks the SAD for it.
func mhFlow(src, dst netip.Addr, t uint8) *header.Flow {
	return &header.Flow{Src: src, Dst: dst, Proto: header.ProtoMobility, TypeCode: uint16(t) << 8}
}

func saPath(cfg *File, dir sad.Direction, spi uint32) string {
	for _, s := range cfg.SAs {
		if s.Dir == dir && s.Params.SPI == spi {
			return s.Path
		}
	}
	return "mobility"
}

// roleName names the role for logs and messages.
