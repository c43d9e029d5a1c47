package e2e

// Addresses by configuration payload (RFC 7296 §2.19, §3.15; ike/cp.go)
// against strongSwan's charon: charon initiates with vips (a CP(CFG_REQUEST)
// with zero-length INTERNAL_IP4_ADDRESS / INTERNAL_IP6_ADDRESS attributes)
// and local_ts "dynamic" (its virtual IPs), mipsec answers from its pool.
// The ikeLab of e2e/ike_test.go, with IPv6 inner networks added to mipsec:
//
//	ns M (mipsec)                                     ns C (charon)
//	198.51.100.1/24, 2001:db8:5::1/64 on the TUN      the virtual IPs charon got,
//	local_ts  198.51.100.0/24, 2001:db8:5::/64        installed by charon itself
//	remote_ts 203.0.113.0/24, 2001:db8:9::/64
//	pool      203.0.113.64/28, 2001:db8:9::1000/124

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/charontest"
)

// The IPv6 inner networks and the pools (documentation prefixes only; the
// pools lie inside mipsec's remote_ts, which the leases narrow, and apart
// from charon's own 203.0.113.1).
var (
	cpSiteM6 = netip.MustParsePrefix("2001:db8:5::1/64")
	cpNetM6  = "2001:db8:5::/64"
	cpNetC6  = "2001:db8:9::/64"
	cpPool4  = netip.MustParsePrefix("203.0.113.64/28")
	cpPool6  = netip.MustParsePrefix("2001:db8:9::1000/124")
	// The first addresses the pools give out (ike/cp.go assign: the
	// lowest free one after the subnet address).
	cpVIP4 = netip.MustParseAddr("203.0.113.65")
	cpVIP6 = netip.MustParseAddr("2001:db8:9::1001")
)

// startPoolMipsec starts mipsec in nsM as the responder of a connection
// with pool: the config of mipsecConfig("M") (start_action "none"), with
// the IPv6 inner networks added to the TUN, its routes and the child's
// selectors, and the pool.
func (l *ikeLab) startPoolMipsec(pool ...netip.Prefix) {
	t := l.t
	t.Helper()
	cfg := l.mipsecConfig("M")
	cfg.StartAction = "none"
	var b bytes.Buffer
	if err := ikeTemplate.Execute(&b, cfg); err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, p := range pool {
		ps = append(ps, fmt.Sprintf("%q", p.String()))
	}
	s := b.String()
	for _, r := range [][2]string{
		{`addresses = ["` + cfg.Site + `"]`, `addresses = ["` + cfg.Site + `", "` + cpSiteM6.String() + `"]`},
		{`routes = ["` + ikeNetC + `"]`, `routes = ["` + ikeNetC + `", "` + cpNetC6 + `"]`},
		{`local_ts = ["` + ikeNetM + `"]`, `local_ts = ["` + ikeNetM + `", "` + cpNetM6 + `"]`},
		{`remote_ts = ["` + ikeNetC + `"]`, `remote_ts = ["` + ikeNetC + `", "` + cpNetC6 + `"]`},
		{"\n  [connection.local]", "pool = [" + strings.Join(ps, ", ") + "]\n\n  [connection.local]"},
	} {
		if strings.Count(s, r[0]) != 1 {
			t.Fatalf("testdata/ike-gateway.toml.tmpl: %q appears %d times, want once", r[0], strings.Count(s, r[0]))
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	path := filepath.Join(l.dir, "M.toml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	l.gw = newGatewayFile(t, "M", l.nsM, path, gwConfig{Socket: cfg.Socket})
	l.gw.start()
}

// startVIPCharon starts charon with its connection asking for vips, its
// child's local_ts dynamic (charon narrows it to the virtual IPs) and
// remote_ts both of mipsec's inner networks.
func (l *ikeLab) startVIPCharon(vips ...string) {
	l.t.Helper()
	l.startCharon("none", func(c *charontest.Conn) {
		c.VIPs = vips
		ch := c.Children[ikeChild]
		ch.LocalTS = nil // dynamic
		ch.RemoteTS = []string{ikeNetM, cpNetM6}
		c.Children[ikeChild] = ch
	})
}

// charonVIPs are the local-vips of charon's IKE SA of its connection, read
// from swanctl --list-sas --raw (charontest.IKESA has no field for them).
func (l *ikeLab) charonVIPs() []string {
	l.t.Helper()
	out, err := l.charon.Swanctl("--list-sas", "--raw")
	if err != nil {
		l.t.Fatalf("%v\n%s", err, out)
	}
	m := regexp.MustCompile(`local-vips=\[([^\]]*)\]`).FindStringSubmatch(out)
	if m == nil {
		return nil
	}
	vips := strings.Fields(m[1])
	slices.Sort(vips)
	return vips
}

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestIKECharonVIP: charon asks for an IPv4 and an IPv6 virtual IP (RFC
// 7296 §2.19); mipsec's pool gives it the first address of each family,
// charon installs them and narrows its child's local selectors to them,
// mipsec narrows the child's remote selectors to them (§2.9), lists them as
// peer_vips, and pings from the virtual IPs go through the tunnel both
// ways.
func TestIKECharonVIP(t *testing.T) {
	l := newIKELab(t, ikeOptions{startAction: "none"})
	l.startVIPCharon("0.0.0.0", "::")
	l.startPoolMipsec(cpPool4, cpPool6)
	if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c := l.waitCharonSA(5 * time.Second)
	m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
	if uint64(m.SPIi) != c.InitiatorSPI || uint64(m.SPIr) != c.ResponderSPI || m.Initiator || !c.Initiator {
		t.Errorf("IKE SAs: mipsec %v/%v initiator %v, charon %016x/%016x initiator %v", m.SPIi, m.SPIr, m.Initiator, c.InitiatorSPI, c.ResponderSPI, c.Initiator)
	}
	want := []string{cpVIP4.String(), cpVIP6.String()}
	slices.Sort(want)
	wantTS := []string{netip.PrefixFrom(cpVIP4, 32).String(), netip.PrefixFrom(cpVIP6, 128).String()}
	slices.Sort(wantTS)

	// charon: the virtual IPs on its IKE SA, its child's local selectors,
	// installed in its namespace, logged.
	vips := l.charonVIPs()
	t.Logf("charon's local-vips: %v", vips)
	if !slices.Equal(vips, want) {
		t.Errorf("charon's local-vips %v, want %v", vips, want)
	}
	cc := c.Installed(ikeChild)[0]
	t.Logf("charon's child: %v === %v", cc.LocalTS, cc.RemoteTS)
	if got := sortedStrings(cc.LocalTS); !slices.Equal(got, wantTS) {
		t.Errorf("charon's child local-ts %v, want its virtual IPs %v", cc.LocalTS, wantTS)
	}
	if got, w := sortedStrings(cc.RemoteTS), sortedStrings([]string{ikeNetM, cpNetM6}); !slices.Equal(got, w) {
		t.Errorf("charon's child remote-ts %v, want %v", cc.RemoteTS, w)
	}
	addrs := run(t, "ip", "-n", l.nsC, "-o", "addr", "show")
	for _, a := range want {
		i := strings.Index(addrs, " "+a+"/")
		if i < 0 {
			t.Errorf("charon did not install its virtual IP %s in its namespace:\n%s", a, addrs)
			continue
		}
		ln := addrs[strings.LastIndex(addrs[:i], "\n")+1:]
		t.Logf("charon's namespace: %s", strings.Join(strings.Fields(ln[:strings.IndexByte(ln+"\n", '\n')]), " "))
	}
	log, err := os.ReadFile(l.charon.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range want {
		if !bytes.Contains(log, []byte("installing new virtual IP "+a)) {
			t.Errorf("charon's log has no \"installing new virtual IP %s\"", a)
		}
	}
	for _, ln := range strings.Split(string(log), "\n") {
		if strings.Contains(ln, "virtual IP") {
			t.Logf("charon: %s", ln)
		}
	}

	// mipsec: the lease on the IKE SA, the child's remote selectors.
	t.Logf("mipsec: peer_vips %v, child %v === %v", m.PeerVIPs, m.Children[0].LocalTS, m.Children[0].RemoteTS)
	if got := sortedStrings(m.PeerVIPs); !slices.Equal(got, want) || len(m.VIPs) != 0 {
		t.Errorf("mipsec's IKE SA: peer_vips %v (want %v), vips %v (want none)", m.PeerVIPs, want, m.VIPs)
	}
	mc := m.Children[0]
	if got := sortedStrings(mc.RemoteTS); !slices.Equal(got, wantTS) {
		t.Errorf("mipsec's child remote_ts %v, want the assigned addresses %v", mc.RemoteTS, wantTS)
	}
	if got, w := sortedStrings(mc.LocalTS), sortedStrings([]string{ikeNetM, cpNetM6}); !slices.Equal(got, w) {
		t.Errorf("mipsec's child local_ts %v, want %v", mc.LocalTS, w)
	}
	if mc.SPIIn == 0 || uint32(mc.SPIIn) != cc.SPIOut || uint32(mc.SPIOut) != cc.SPIIn {
		t.Errorf("ESP SPIs: mipsec in %v out %v, charon in %08x out %08x", mc.SPIIn, mc.SPIOut, cc.SPIIn, cc.SPIOut)
	}
	if st := ikeStats(t, l.gw); st.Failures["pool"] != 0 {
		t.Errorf("mipsec stats: failures %v", st.Failures)
	}

	// Traffic from the virtual IPs to mipsec's TUN addresses and back.
	mustPing(t, l.nsC, cpVIP4, ikeSiteM.Addr(), 3)
	mustPing(t, l.nsC, cpVIP6, cpSiteM6.Addr(), 3)
	mustPing(t, l.nsM, ikeSiteM.Addr(), cpVIP4, 3)
	mustPing(t, l.nsM, cpSiteM6.Addr(), cpVIP6, 3)
	after, err := l.charon.IKESA(ikeConnC)
	if err != nil {
		t.Fatal(err)
	}
	if ch := after.Installed(ikeChild); len(ch) != 1 || ch[0].PacketsIn < 12 || ch[0].PacketsOut < 12 {
		t.Errorf("charon's CHILD_SA counters after 12 pings: %+v", ch)
	}
	// charon's own inner address is not in the child: a source other
	// than the virtual IP is not carried.
	if n, _ := ping(l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 1); n != 0 {
		t.Errorf("ping %v -> %v (not from the virtual IP) answered", ikeSiteC.Addr(), ikeSiteM.Addr())
	}

	// The lease ends with the IKE SA (ike/cp.go releaseLease).
	if err := l.charon.Terminate(ikeConnC); err != nil {
		t.Fatal(err)
	}
	waitMipsecNoSA(t, l.gw, 5*time.Second)
	if !strings.Contains(l.gw.Log.String(), `"addresses back in the pool"`) {
		t.Error("mipsec did not log the addresses back in the pool")
	}
}

// TestIKECharonVIPRefused: charon asks for an IPv6 virtual IP and mipsec's
// pool has IPv4 addresses only: mipsec answers INTERNAL_ADDRESS_FAILURE
// without a child (RFC 7296 §3.15.4, §1.2) and counts failures["pool"];
// charon gets no CHILD_SA and mipsec installs no SA and no policy.
func TestIKECharonVIPRefused(t *testing.T) {
	l := newIKELab(t, ikeOptions{startAction: "none"})
	l.startVIPCharon("::")
	l.startPoolMipsec(cpPool4)
	err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second)
	t.Logf("charon's initiate: %v", err)
	if err == nil {
		t.Error("charon's initiate succeeded with no IPv6 address in mipsec's pool")
	}
	deadline := time.Now().Add(5 * time.Second)
	st := ikeStats(t, l.gw)
	for st.Failures["pool"] == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		st = ikeStats(t, l.gw)
	}
	if st.Failures["pool"] < 1 {
		t.Errorf("mipsec stats: failures %v, want pool >= 1", st.Failures)
	}
	if st.ChildSAs != 0 {
		t.Errorf("mipsec stats: %d child SAs", st.ChildSAs)
	}
	time.Sleep(time.Second) // charon's reaction to the notify is done
	sas, err := l.charon.ListSAs()
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range sas {
		if len(sa.Children) != 0 {
			t.Errorf("charon has a CHILD_SA without a virtual IP: %+v", sa)
		}
	}
	t.Logf("charon's IKE SAs after the refusal: %+v", sas)
	log, err := os.ReadFile(l.charon.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("INTERNAL_ADDRESS_FAILURE")) {
		t.Error("charon's log has no INTERNAL_ADDRESS_FAILURE")
	}
	for _, ln := range strings.Split(string(log), "\n") {
		if strings.Contains(ln, "INTERNAL_ADDRESS_FAILURE") || strings.Contains(ln, "virtual IP") || strings.Contains(ln, "CHILD_SA") {
			t.Logf("charon: %s", ln)
		}
	}
	if vips := l.charonVIPs(); len(vips) != 0 {
		t.Errorf("charon's local-vips %v, want none", vips)
	}
	// The IKE SA itself stays up on both sides, without a child (§1.2).
	msas, err := ikeList(l.gw)
	if err != nil {
		t.Fatal(err)
	}
	if len(msas) != 1 || len(sas) != 1 || msas[0].State != "established" || sas[0].State != "ESTABLISHED" ||
		uint64(msas[0].SPIi) != sas[0].InitiatorSPI || uint64(msas[0].SPIr) != sas[0].ResponderSPI {
		t.Errorf("IKE SAs after the refusal: mipsec %+v, charon %+v; want the same one established on both", msas, sas)
	}
	for _, sa := range msas {
		if len(sa.Children) != 0 || len(sa.PeerVIPs) != 0 {
			t.Errorf("mipsec's IKE SA after the refusal: children %+v, peer_vips %v", sa.Children, sa.PeerVIPs)
		}
	}
	if n, pols := ipsecTables(t, l.gw); n != 0 || pols != 0 {
		t.Errorf("mipsec after the refusal: %d SAs, %d policies", n, pols)
	}
	if !strings.Contains(l.gw.Log.String(), `"reason":"pool"`) {
		t.Error("mipsec did not log the pool refusal")
	}
}
