package config

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// The addresses configured in testdata/ha.toml and mn.toml.
var (
	topoHoA  = netip.MustParseAddr("2001:db8:1::100")
	topoHoA4 = netip.MustParseAddr("192.0.2.100")
	topoHA   = netip.MustParseAddr("2001:db8:1::1")
	topoHA4  = netip.MustParseAddr("198.51.100.1")
	topoCN   = netip.MustParseAddr("2001:db8:1::10")
	topoCN4  = netip.MustParseAddr("192.0.2.10")
)

func loadExample(t *testing.T, name string) *File {
	t.Helper()
	cfg, err := Load(filepath.Join("..", "testdata", name+".toml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestExampleMobilityConfigs(t *testing.T) {
	ha := loadExample(t, "ha")
	if ha.Role != node.RoleHA {
		t.Errorf("ha.toml role %q", ha.Role)
	}
	wantHA := node.MobilityConfig{
		HAAddress: topoHA, HAAddressV4: topoHA4,
		HomePrefix: netip.MustParsePrefix("2001:db8:1::/64"), HomePrefixV4: netip.MustParsePrefix("192.0.2.0/24"),
		HomeLink: "ha-home", MaxLifetime: 10 * time.Minute, MaxCoAs: 4, NATRefresh: 110 * time.Second, BURate: 10, BUBurst: 20,
	}
	cmpAddr := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	cmpPrefix := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	if diff := cmp.Diff(wantHA, ha.Mobility, cmpAddr, cmpPrefix); diff != "" {
		t.Errorf("ha.toml [mobility] (-want +got):\n%s", diff)
	}
	if ha.Underlay.Local6 != topoHA || ha.Underlay.Local4 != topoHA4 || !ha.Underlay.Raw || !ha.Underlay.UDP || len(ha.Peers) != 0 {
		t.Errorf("ha.toml underlay %+v peers %v", ha.Underlay, ha.Peers)
	}
	mn := loadExample(t, "mn")
	if mn.Role != node.RoleMN {
		t.Errorf("mn.toml role %q", mn.Role)
	}
	wantMN := node.MobilityConfig{
		HAAddress: topoHA, HAAddressV4: topoHA4, HomePrefix: netip.MustParsePrefix("2001:db8:1::/64"),
		HomeAddress: topoHoA, HomeAddressV4: topoHoA4, Lifetime: 5 * time.Minute,
		Interfaces: []string{"mn-v6", "mn-v4"}, NATKeepalive: 20 * time.Second,
	}
	if diff := cmp.Diff(wantMN, mn.Mobility, cmpAddr, cmpPrefix); diff != "" {
		t.Errorf("mn.toml [mobility] (-want +got):\n%s", diff)
	}
	if mn.Underlay.Local4.IsValid() || mn.Underlay.Local6.IsValid() || !mn.Underlay.Raw || !mn.Underlay.UDP || len(mn.Peers) != 0 {
		t.Errorf("mn.toml underlay %+v peers %v", mn.Underlay, mn.Peers)
	}
	if !slices.Contains(mn.TUN.Addresses, netip.PrefixFrom(topoHoA, 128)) || !slices.Contains(mn.TUN.Addresses, netip.PrefixFrom(topoHoA4, 32)) {
		t.Errorf("mn.toml TUN addresses %v: want the home addresses", mn.TUN.Addresses)
	}

	// The SPD order of testdata/ha.toml and mn.toml, the same on both sides.
	names := func(cfg *File, d sad.Direction) []string {
		var out []string
		for _, p := range cfg.Policies {
			if p.Dir == d {
				out = append(out, p.Name)
			}
		}
		return out
	}
	for _, cfg := range []*File{ha, mn} {
		for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
			w := "in"
			if d == sad.Outbound {
				w = "out"
			}
			want := []string{w + "-bu-back", w + "-mps-mpa", w + "-hoti-hot", w + "-data", w + "-data-v4", w + "-bypass-ike-dsmip", w + "-default"}
			if got := names(cfg, d); !slices.Equal(got, want) {
				t.Errorf("%s %v policies %v, want %v", cfg.Role, d, got, want)
			}
		}
	}
}

// TestExampleMobilityPairMatches: every SA of the HA is the MN's with the
// other direction, the same SPI, algorithm, keys and tunnel template (HA <->
// HoA, DR-8), so the two examples talk to each other.
func TestExampleMobilityPairMatches(t *testing.T) {
	ha, mn := loadExample(t, "ha"), loadExample(t, "mn")
	if len(ha.SAs) != 10 || len(mn.SAs) != 10 {
		t.Fatalf("%d and %d SAs; want SA1-SA8 and the IPv4 pair (10)", len(ha.SAs), len(mn.SAs))
	}
	for _, a := range ha.SAs {
		i := slices.IndexFunc(mn.SAs, func(b node.SAConfig) bool { return b.Params.SPI == a.Params.SPI })
		if i < 0 {
			t.Errorf("HA SA %#x has no MN mirror", a.Params.SPI)
			continue
		}
		b := mn.SAs[i]
		pa, pb := a.Params, b.Params
		if a.Dir == b.Dir || pa.Mode != pb.Mode || pa.Algorithm != pb.Algorithm || !bytes.Equal(pa.EncKey, pb.EncKey) ||
			!bytes.Equal(pa.AuthKey, pb.AuthKey) || pa.TunnelSrc != pb.TunnelSrc || pa.TunnelDst != pb.TunnelDst || a.Name != b.Name {
			t.Errorf("SPI %#x: HA and MN disagree:\n%+v\n%+v", pa.SPI, a, b)
		}
		if pa.Mode == esp.Tunnel {
			// The template is HA <-> HoA (DR-1, DR-8).
			ends := []netip.Addr{pa.TunnelSrc, pa.TunnelDst}
			if !slices.Contains(ends, topoHA) || !slices.Contains(ends, topoHoA) {
				t.Errorf("SPI %#x: tunnel %v, want HA <-> HoA", pa.SPI, ends)
			}
		}
	}
	// Keys are all different (no SA shares a key with another).
	seen := map[string]uint32{}
	for _, s := range ha.SAs {
		k := string(s.Params.EncKey)
		if prev, dup := seen[k]; dup {
			t.Errorf("SAs %#x and %#x share a key", prev, s.Params.SPI)
		}
		seen[k] = s.Params.SPI
	}
}

// TestExampleMobilitySADSPD asks the SAD and the SPD built from the
// examples what the mobility layer and the packet path will: the BU and
// BAck SPIs (DR-3, DR-4), the home address of the BU SA (DR-7), and which
// SA protects each kind of traffic, in SPD order.
func TestExampleMobilitySADSPD(t *testing.T) {
	build := func(cfg *File) (*sad.DB, *spd.DB) {
		db := testSAD(t, cfg)
		pdb := spd.New(db)
		if err := pdb.Replace(cfg.Policies); err != nil {
			t.Fatal(err)
		}
		return db, pdb
	}
	hdb, hspd := build(loadExample(t, "ha"))
	mdb, mspd := build(loadExample(t, "mn"))
	if spi, ok := mdb.OutboundSPIFor(mhFlow(topoHoA, topoHA, header.MHTypeBU)); !ok || spi != 0xa001 {
		t.Errorf("MN BU SPI %#x %v, want SA1 0xa001", spi, ok)
	}
	if spi, ok := hdb.OutboundSPIFor(mhFlow(topoHA, topoHoA, header.MHTypeBA)); !ok || spi != 0xb002 {
		t.Errorf("HA BAck SPI %#x %v, want SA2 0xb002", spi, ok)
	}
	if hoa, ok := hdb.HomeAddressOf(0xa001); !ok || hoa != topoHoA {
		t.Errorf("HA: home address of SA1 %v %v, want %v", hoa, ok, topoHoA)
	}
	tcp := func(src, dst netip.Addr) *header.Flow {
		return &header.Flow{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 5001}
	}
	icmp6 := func(src, dst netip.Addr, typ uint8) *header.Flow {
		return &header.Flow{Src: src, Dst: dst, Proto: header.ProtoICMPv6, TypeCode: uint16(typ) << 8}
	}
	udp := func(src, dst netip.Addr, port uint16) *header.Flow {
		return &header.Flow{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: port, DstPort: port}
	}
	for _, tt := range []struct {
		name   string
		db     *spd.DB
		f      *header.Flow
		action spd.Action
		spi    uint32
	}{
		{"MN BU", mspd, mhFlow(topoHoA, topoHA, header.MHTypeBU), spd.Protect, 0xa001},
		{"MN MPS", mspd, icmp6(topoHoA, topoHA, 146), spd.Protect, 0xa005},
		{"MN HoTI", mspd, mhFlow(topoHoA, topoCN, header.MHTypeHoTI), spd.Protect, 0xa003},
		{"MN TCP to CN", mspd, tcp(topoHoA, topoCN), spd.Protect, 0xa007},
		{"MN TCP to CN over IPv4", mspd, tcp(topoHoA4, topoCN4), spd.Protect, 0xa009},
		{"MN other source", mspd, tcp(netip.MustParseAddr("2001:db8:2::100"), topoCN), spd.Discard, 0},
		{"HA BAck", hspd, mhFlow(topoHA, topoHoA, header.MHTypeBA), spd.Protect, 0xb002},
		{"HA MPA", hspd, icmp6(topoHA, topoHoA, 147), spd.Protect, 0xb006},
		{"HA HoT", hspd, mhFlow(topoCN, topoHoA, header.MHTypeHoT), spd.Protect, 0xb004},
		{"HA CN to HoA", hspd, tcp(topoCN, topoHoA), spd.Protect, 0xb008},
		{"HA CN to HoA4", hspd, tcp(topoCN4, topoHoA4), spd.Protect, 0xb00a},
		{"HA IKE", hspd, udp(topoHA, netip.MustParseAddr("2001:db8:2::100"), 500), spd.Bypass, 0},
		{"HA DSMIPv6", hspd, udp(topoHA4, netip.MustParseAddr("203.0.113.10"), 4191), spd.Bypass, 0},
		{"HA other", hspd, tcp(topoCN, netip.MustParseAddr("2001:db8:1::200")), spd.Discard, 0},
	} {
		d := tt.db.LookupFlow(sad.Outbound, tt.f)
		if d.Action != tt.action || d.SPI != tt.spi {
			t.Errorf("%s: %v spi %#x, want %v spi %#x", tt.name, d.Action, d.SPI, tt.action, tt.spi)
		}
	}
}

// TestMobilityDefaults: a minimal [mobility] gets the documented defaults,
// a gateway stays a gateway, and numbers may be written as integers.
func TestMobilityDefaults(t *testing.T) {
	gw, err := Load("../testdata/gateway-a.toml")
	if err != nil {
		t.Fatal(err)
	}
	if gw.Role != node.RoleGateway || !cmp.Equal(gw.Mobility, node.MobilityConfig{}, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })) {
		t.Errorf("gateway: role %q mobility %+v", gw.Role, gw.Mobility)
	}
	ha := loadExample(t, "ha")
	src, _ := os.ReadFile("../testdata/ha.toml")
	s := string(src)
	for _, k := range []string{"max_lifetime", "max_coas", "nat_refresh", "bu_burst", "home_link"} {
		i := strings.Index(s, "\n"+k+" = ")
		j := strings.Index(s[i+1:], "\n")
		s = s[:i+1] + s[i+1+j+1:]
	}
	s = strings.Replace(s, "bu_rate = 10.0", "bu_rate = 3", 1)
	cfg, err := Parse("ha-min.toml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Mobility
	if m.MaxLifetime != DefaultMaxLifetime || m.MaxCoAs != DefaultMaxCoAs || m.NATRefresh != DefaultNATRefresh || m.BUBurst != DefaultBUBurst || m.BURate != 3 || m.HomeLink != "" {
		t.Errorf("defaults: %+v", m)
	}
	if ha.Mobility.BURate != 10 {
		t.Errorf("bu_rate %v", ha.Mobility.BURate)
	}
	mnSrc, _ := os.ReadFile("../testdata/mn.toml")
	ms := strings.Replace(string(mnSrc), `nat_keepalive = "20s"`, `nat_keepalive = "off"`, 1)
	ms = strings.Replace(ms, `lifetime = "5m" `, ``, 1)
	ms = strings.Replace(ms, `interfaces = ["mn-v6", "mn-v4"]`, ``, 1)
	mcfg, err := Parse("mn-min.toml", []byte(ms))
	if err != nil {
		t.Fatal(err)
	}
	if mcfg.Mobility.NATKeepalive >= 0 || mcfg.Mobility.Lifetime != DefaultMNLifetime || mcfg.Mobility.Interfaces != nil {
		t.Errorf("mn defaults: %+v", mcfg.Mobility)
	}
}

// TestMobilityHostile: values that must not pass, each at its field.
func TestMobilityHostile(t *testing.T) {
	base, _ := os.ReadFile("../testdata/mn.toml")
	for _, tt := range []struct{ from, to, path, msg string }{
		{`home_address = "2001:db8:1::100"`, `home_address = "192.0.2.100"`, "mobility.home_address", "is IPv4; want"},
		{`home_address = "2001:db8:1::100"`, `home_address = "2001:db8:1::1"`, "mobility.home_address", "is the home agent's address"},
		{`home_address = "2001:db8:1::100"`, `home_address = "ff02::1"`, "mobility.home_address", "not a unicast address"},
		{`home_address = "2001:db8:1::100"`, `home_address = "fe80::1%eth0"`, "mobility.home_address", "is not an IP address"},
		{`home_address_v4 = "192.0.2.100"`, `home_address_v4 = "198.51.100.1"`, "mobility.home_address_v4", "is the home agent's IPv4 address"},
		{`home_prefix = "2001:db8:1::/64"`, `home_prefix = "2001:db8:1::1/64"`, "mobility.home_prefix", "has host bits set"},
		{`ha_address_v4 = "198.51.100.1"`, `ha_address_v4 = "2001:db8::1"`, "mobility.ha_address_v4", "is IPv6; want"},
		{`lifetime = "5m"`, `lifetime = "1s"`, "mobility.lifetime", "out of range"},
		{`lifetime = "5m"`, `lifetime = "-5m"`, "mobility.lifetime", "not a positive duration"},
		{`interfaces = ["mn-v6", "mn-v4"]`, `interfaces = ["mn-v6", "mn-v6"]`, "mobility.interfaces[1]", "listed twice"},
		{`interfaces = ["mn-v6", "mn-v4"]`, `interfaces = ["mipsec0"]`, "mobility.interfaces[0]", "is the TUN"},
		{`interfaces = ["mn-v6", "mn-v4"]`, `interfaces = ["a/b"]`, "mobility.interfaces[0]", "not a Linux interface name"},
		{`nat_keepalive = "20s"`, `nat_keepalive = "often"`, "mobility.nat_keepalive", "not a positive duration"},
		{`nat_keepalive = "20s"`, `nat_keepalive = "20s"` + "\nmax_coas = 2", "mobility.max_coas", `is for role = "ha"`},
		{"\nrole = \"mn\"", "\nrole = \"gateway\"", "mobility", `needs role = "ha" or "mn"`},
		{`[mobility]`, "[mobility]\nfoo = 1", "mobility.foo", "unknown field"},
	} {
		s := strings.Replace(string(base), tt.from, tt.to, 1)
		if s == string(base) {
			t.Fatalf("%q not in mn.toml", tt.from)
		}
		_, err := Parse("mn.toml", []byte(s))
		if err == nil || !strings.Contains(err.Error(), tt.path+": ") || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s -> %s: %v; want %s: ...%s", tt.from, tt.to, err, tt.path, tt.msg)
		}
	}
	hbase, _ := os.ReadFile("../testdata/ha.toml")
	for _, tt := range []struct{ from, to, path, msg string }{
		{`max_coas = 4`, `max_coas = 0`, "mobility.max_coas", "out of range"},
		{`bu_rate = 10.0`, `bu_rate = -1.0`, "mobility.bu_rate", "out of range"},
		{`bu_rate = 10.0`, `bu_rate = nan`, "mobility.bu_rate", "out of range"},
		{`bu_burst = 20`, `bu_burst = 0`, "mobility.bu_burst", "out of range"},
		{`nat_refresh = "110s"`, `nat_refresh = "10ms"`, "mobility.nat_refresh", "out of range"},
		{`home_link = "ha-home"`, `home_link = "mipsec0"`, "mobility.home_link", "is the TUN"},
		{`home_link = "ha-home"`, `home_link = "this-name-is-too-long"`, "mobility.home_link", "not a Linux interface name"},
		{`home_link = "ha-home"`, `home_link = "ha-home"` + "\nlifetime = \"5m\"", "mobility.lifetime", `is for role = "mn"`},
		{`local = ["198.51.100.1", "2001:db8:1::1"]`, `local = ["198.51.100.1", "2001:db8:ff::1"]`, "underlay.local", "is not mobility.ha_address"},
		{`local = ["198.51.100.1", "2001:db8:1::1"]`, `local = ["198.51.100.9", "2001:db8:1::1"]`, "underlay.local", "is not mobility.ha_address_v4"},
		{`local = ["198.51.100.1", "2001:db8:1::1"]`, `local = ["2001:db8:1::1"]`, "underlay.local", "has no IPv4 address"},
		{`local = ["198.51.100.1", "2001:db8:1::1"]`, `local = ["198.51.100.1"]`, "underlay.local", "has no IPv6 address"},
		{`home_prefix_v4 = "192.0.2.0/24"`, `home_prefix_v4 = "2001:db8::/32"`, "mobility.home_prefix_v4", "is IPv6"},
		{`remote = "2001:db8:1::100", proto = "mh", mh_type = 5`, `remote = "2001:db8:9::100", proto = "mh", mh_type = 5`, "sa[0]", "not in mobility.home_prefix"},
	} {
		s := strings.Replace(string(hbase), tt.from, tt.to, 1)
		if s == string(hbase) {
			t.Fatalf("%q not in ha.toml", tt.from)
		}
		_, err := Parse("ha.toml", []byte(s))
		if err == nil || !strings.Contains(err.Error(), tt.path+": ") || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s -> %s: %v; want %s: ...%s", tt.from, tt.to, err, tt.path, tt.msg)
		}
	}
}
