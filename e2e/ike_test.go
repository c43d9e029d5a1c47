package e2e

// The IKEv2 daemon (package ike, hosted by node) end to end: a real
// `mipsec run` keyed by IKE against strongSwan's charon
// (internal/charontest, ESP in charon's userspace through kernel-libipsec)
// and against a second mipsec, in namespaces joined by a veth.
//
//	ns M (mipsec)                                         ns C (charon or mipsec)
//	198.51.100.1/24 on the TUN   ul0 192.0.2.1 ==== 192.0.2.2 ul0   203.0.113.1/32 on lo
//	                                 2001:db8::1     2001:db8::2    (libipsec: ipsec0, table 220)

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/charontest"
	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

// Addresses of the IKE topology (documentation prefixes only).
var (
	ikeOuterM4 = netip.MustParsePrefix("192.0.2.1/24")
	ikeOuterC4 = netip.MustParsePrefix("192.0.2.2/24")
	ikeOuterM6 = netip.MustParsePrefix("2001:db8::1/64")
	ikeOuterC6 = netip.MustParsePrefix("2001:db8::2/64")
	// ikeSiteM is mipsec's inner address (on its TUN), ikeSiteC charon's
	// (a /32 on lo: libipsec routes the remote selectors with it as source).
	ikeSiteM = netip.MustParsePrefix("198.51.100.1/24")
	ikeSiteC = netip.MustParsePrefix("203.0.113.1/24")
	ikeNetM  = "198.51.100.0/24"
	ikeNetC  = "203.0.113.0/24"
)

// Identities and the pre-shared key of the IKE tests.
const (
	ikeIDM     = "mipsec.example.org"
	ikeIDC     = "charon.example.org"
	ikeConnM   = "charon" // mipsec's connection name
	ikeConnC   = "mipsec" // charon's connection name
	ikeChild   = "net"    // the child's name on both sides
	ikePSK     = "e2e ike pre-shared key 0123456789 abcdef"
	ikeWrongPK = "e2e ike WRONG pre-shared key 0123456789"
)

// ikeGWConfig fills e2e/testdata/ike-gateway.toml.tmpl.
type ikeGWConfig struct {
	StateDir, Socket, TUN string
	Site                  string // the TUN's address
	Local, Remote         string // outer addresses
	CookieThreshold       int
	Retransmit            string
	Retransmits           int
	Name                  string
	Proposals             []string
	ESPProposals          []string
	Encap                 bool
	DPDDelay              string
	LocalID, RemoteID     string
	PSKFile               string
	Child                 string
	LocalTS, RemoteTS     string
	StartAction           string
	IKERekeyTime          string // the connection's rekey_time
	RekeyTime, LifeTime   string // the child's
}

var ikeTemplate = template.Must(template.ParseFiles("testdata/ike-gateway.toml.tmpl"))

// ikeOptions choose the variant of an ikeLab.
type ikeOptions struct {
	outer6      bool
	ikeProposal string // default aes128gcm16-prfsha256-curve25519
	espProposal string // default aes128gcm16
	// mipsecEncap sets the mipsec connection's encap (force ESP in UDP).
	mipsecEncap bool
	// startAction of mipsec's child: "start" (initiator) or "none".
	startAction string
	dpdDelay    string // mipsec's dpd_delay, default "0"
	retransmit  string // [ike] retransmit, default "500ms"
	retransmits int    // [ike] retransmits, default 3
	// mipsecPSK, if set, is mipsec's key instead of ikePSK.
	mipsecPSK string
	// charonDPD is charon's dpd_delay (0: off).
	charonDPD time.Duration
	// charonSettings are strongswan.conf keys under "charon".
	charonSettings map[string]string
}

// ikeLab is a mipsec daemon in namespace nsM facing a peer in nsC.
type ikeLab struct {
	t          *testing.T
	o          ikeOptions
	nsM, nsC   string
	outerM     netip.Addr
	outerC     netip.Addr
	dir        string
	gw         *gateway
	charon     *charontest.Charon
	charonConn charontest.Conn
	// nat: a NAT router between the two (newIKENATLab); the NAT checks of
	// checkMatch are then the test's.
	nat bool
}

func (o *ikeOptions) defaults() {
	if o.ikeProposal == "" {
		o.ikeProposal = "aes128gcm16-prfsha256-curve25519"
	}
	if o.espProposal == "" {
		o.espProposal = "aes128gcm16"
	}
	if o.startAction == "" {
		o.startAction = "start"
	}
	if o.dpdDelay == "" {
		o.dpdDelay = "0"
	}
	if o.retransmit == "" {
		o.retransmit = "500ms"
	}
	if o.retransmits == 0 {
		o.retransmits = 3
	}
	if o.mipsecPSK == "" {
		o.mipsecPSK = ikePSK
	}
}

// newIKELab creates the two namespaces and the veth; it starts nothing.
// The tests that use it need charon (charontest.Need).
func newIKELab(t *testing.T, o ikeOptions) *ikeLab {
	t.Helper()
	charontest.Need(t)
	return newIKEPairLab(t, o)
}

// newIKEPairLab is newIKELab for two mipsec daemons (no charon needed):
// start the one in nsC with l.startMipsec("C", l.nsC, l.peerConfig()).
func newIKEPairLab(t *testing.T, o ikeOptions) *ikeLab {
	t.Helper()
	needEnv(t)
	o.defaults()
	l := &ikeLab{t: t, o: o, nsM: newNetns(t), nsC: newNetns(t), dir: t.TempDir()}
	veth(t, l.nsM, l.nsC, "ul0", ikeOuterM4, ikeOuterM6, ikeOuterC4, ikeOuterC6)
	l.outerM, l.outerC = ikeOuterM4.Addr(), ikeOuterC4.Addr()
	if o.outer6 {
		l.outerM, l.outerC = ikeOuterM6.Addr(), ikeOuterC6.Addr()
	}
	return l
}

// mipsecConfig is the config of the mipsec in nsM (name "M").
func (l *ikeLab) mipsecConfig(name string) ikeGWConfig {
	psk := filepath.Join(l.dir, name+".psk")
	if err := os.WriteFile(psk, []byte(l.o.mipsecPSK), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return ikeGWConfig{
		StateDir: filepath.Join(l.dir, "state-"+name), Socket: filepath.Join(l.dir, name+".sock"), TUN: "ike" + name,
		Site: ikeSiteM.String(), Local: l.outerM.String(), Remote: l.outerC.String(),
		CookieThreshold: 32, Retransmit: l.o.retransmit, Retransmits: l.o.retransmits,
		Name: ikeConnM, Proposals: []string{l.o.ikeProposal}, ESPProposals: []string{l.o.espProposal},
		Encap: l.o.mipsecEncap, DPDDelay: l.o.dpdDelay, LocalID: ikeIDM, RemoteID: ikeIDC, PSKFile: psk,
		Child: ikeChild, LocalTS: ikeNetM, RemoteTS: ikeNetC, StartAction: l.o.startAction,
		IKERekeyTime: "4h", RekeyTime: "1h", LifeTime: "66m",
	}
}

// peerConfig is the config of a mipsec in nsC (name "C") in charon's
// place: the mirror of mipsecConfig("M"), start_action "none".
func (l *ikeLab) peerConfig() ikeGWConfig {
	cfg := l.mipsecConfig("C")
	cfg.Site, cfg.Local, cfg.Remote = ikeSiteC.String(), l.outerC.String(), l.outerM.String()
	cfg.Name, cfg.LocalID, cfg.RemoteID = ikeConnC, ikeIDC, ikeIDM
	cfg.LocalTS, cfg.RemoteTS, cfg.StartAction = ikeNetC, ikeNetM, "none"
	return cfg
}

// stallWatch records the longest gap between the calls of a transfer's
// progress callback (one per 64 KiB written): a stall of the stream.
type stallWatch struct {
	last time.Time
	max  time.Duration
	at   int // bytes sent when the longest gap ended
}

// wrap returns a progress callback that times the gaps and then calls
// next (if set).
func (w *stallWatch) wrap(next func(sent int)) func(sent int) {
	return func(sent int) {
		now := time.Now()
		if !w.last.IsZero() && now.Sub(w.last) > w.max {
			w.max, w.at = now.Sub(w.last), sent
		}
		w.last = now
		if next != nil {
			next(sent)
		}
	}
}

// replayDrops is g's dataplane count of ESP packets refused as replays
// (RFC 4303 §3.4.3), over all SAs, the deleted ones included.
func replayDrops(t *testing.T, g *gateway) uint64 {
	t.Helper()
	n, _ := statCounter(stats(t, g), "dataplane.drops.replay")
	return n
}

// startMipsec writes cfg into l.dir and runs it in ns.
func (l *ikeLab) startMipsec(name, ns string, cfg ikeGWConfig) *gateway {
	l.t.Helper()
	var b bytes.Buffer
	if err := ikeTemplate.Execute(&b, cfg); err != nil {
		l.t.Fatal(err)
	}
	path := filepath.Join(l.dir, name+".toml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		l.t.Fatal(err)
	}
	g := newGatewayFile(l.t, name, ns, path, gwConfig{Socket: cfg.Socket})
	g.start()
	return g
}

// startCharon starts charon in nsC with charon's inner address on lo,
// the shared key of both identities and its end of the connection.
// tweak, if set, edits the connection before it is loaded.
func (l *ikeLab) startCharon(startAction string, tweak ...func(*charontest.Conn)) {
	l.t.Helper()
	run(l.t, "ip", "-n", l.nsC, "addr", "add", netip.PrefixFrom(ikeSiteC.Addr(), 32).String(), "dev", "lo")
	c, err := charontest.Start(l.t, charontest.Config{Namespace: l.nsC, Dir: filepath.Join(l.dir, "charon"), Name: "charon", Settings: l.o.charonSettings})
	if err != nil {
		l.t.Fatal(err)
	}
	l.charon = c
	if err := c.LoadShared([]string{ikeIDC, ikeIDM}, []byte(ikePSK)); err != nil {
		l.t.Fatal(err)
	}
	l.charonConn = charontest.Conn{
		Name:        ikeConnC,
		LocalAddrs:  []string{l.outerC.String()},
		RemoteAddrs: []string{l.charonRemote()},
		Proposals:   []string{l.o.ikeProposal},
		Encap:       true, // libipsec: ESP in UDP only
		DPDDelay:    l.o.charonDPD,
		Local:       charontest.Auth{Auth: "psk", ID: ikeIDC},
		Remote:      charontest.Auth{Auth: "psk", ID: ikeIDM},
		Children: map[string]charontest.Child{ikeChild: {
			LocalTS: []string{ikeNetC}, RemoteTS: []string{ikeNetM},
			ESPProposals: []string{l.o.espProposal}, Mode: "tunnel", StartAction: startAction,
		}},
	}
	for _, f := range tweak {
		f(&l.charonConn)
	}
	if err := c.LoadConn(l.charonConn); err != nil {
		l.t.Fatal(err)
	}
}

// ikeList is `mipsec ike list --json` of g.
func ikeList(g *gateway) ([]control.IKESAInfo, error) {
	out, err := g.ctl("ike", "list", "--json")
	if err != nil {
		return nil, err
	}
	var sas []control.IKESAInfo
	if err := json.Unmarshal([]byte(out), &sas); err != nil {
		return nil, fmt.Errorf("ike list --json: %v:\n%s", err, out)
	}
	return sas, nil
}

// ikeStats is the "ike" part of `mipsec stats --json` of g.
func ikeStats(t *testing.T, g *gateway) control.IKEStatsInfo {
	t.Helper()
	out, err := g.ctl("stats", "--json")
	if err != nil {
		t.Fatalf("mipsec stats --json: %v", err)
	}
	var st struct {
		IKE *control.IKEStatsInfo `json:"ike"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.IKE == nil {
		t.Fatalf("mipsec stats --json: no ike part (%v):\n%s", err, out)
	}
	return *st.IKE
}

// established returns the one established IKE SA of connection name in
// sas when it has one installed child (half-open ones, "connecting", are
// left out).
func established(sas []control.IKESAInfo, name string) (control.IKESAInfo, bool) {
	var found []control.IKESAInfo
	for _, sa := range sas {
		if sa.Name == name && sa.State == "established" {
			found = append(found, sa)
		}
	}
	if len(found) != 1 || len(found[0].Children) != 1 || found[0].Children[0].State != "installed" {
		return control.IKESAInfo{}, false
	}
	return found[0], true
}

// waitMipsecSA waits until g lists one established IKE SA of connection
// name with its child installed.
func waitMipsecSA(t *testing.T, g *gateway, name string, timeout time.Duration) control.IKESAInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []control.IKESAInfo
	var err error
	for time.Now().Before(deadline) {
		if last, err = ikeList(g); err == nil {
			if sa, ok := established(last, name); ok {
				return sa
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mipsec %s: no established IKE SA %s with an installed child after %v: %+v, %v", g.name, name, timeout, last, err)
	return control.IKESAInfo{}
}

// waitMipsecNoSA waits until g lists no IKE SA.
func waitMipsecNoSA(t *testing.T, g *gateway, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []control.IKESAInfo
	var err error
	for time.Now().Before(deadline) {
		if last, err = ikeList(g); err == nil && len(last) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mipsec %s: IKE SAs after %v: %+v, %v", g.name, timeout, last, err)
}

// waitCharonSA waits until charon has one established IKE SA of its
// connection with one installed child.
func (l *ikeLab) waitCharonSA(timeout time.Duration) charontest.IKESA {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var sas []charontest.IKESA
	var err error
	for time.Now().Before(deadline) {
		if sas, err = l.charon.ListSAs(); err == nil && len(sas) == 1 && sas[0].State == "ESTABLISHED" && len(sas[0].Installed(ikeChild)) == 1 {
			return sas[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("charon: no established IKE SA with an installed child after %v: %+v, %v", timeout, sas, err)
	return charontest.IKESA{}
}

// charonNames are charon's list-sas names of a proposal's algorithms.
type charonNames struct {
	encr    string
	keySize int
	integ   string // empty for AEAD
	prf     string // IKE only
	dh      string // IKE only
}

var charonAlgs = map[string]charonNames{
	"aes128gcm16-prfsha256-curve25519": {"AES_GCM_16", 128, "", "PRF_HMAC_SHA2_256", "CURVE_25519"},
	"aes256gcm16-prfsha384-ecp256":     {"AES_GCM_16", 256, "", "PRF_HMAC_SHA2_384", "ECP_256"},
	"aes128-sha256-modp2048":           {"AES_CBC", 128, "HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256", "MODP_2048"},
	"aes128gcm16":                      {encr: "AES_GCM_16", keySize: 128},
	"aes256gcm16":                      {encr: "AES_GCM_16", keySize: 256},
	"chacha20poly1305":                 {encr: "CHACHA20_POLY1305"}, // no Key Length attribute (RFC 7634 §2)
	"aes128-sha256":                    {encr: "AES_CBC", keySize: 128, integ: "HMAC_SHA2_256_128"},
}

// suiteHas reports whether mipsec's suite string names every algorithm
// of proposal (the suite may add the implied ones, such as the PRF).
func suiteHas(suite, proposal string) bool {
	have := strings.FieldsFunc(suite, func(r rune) bool { return r == '-' || r == '/' })
	for _, tok := range strings.Split(proposal, "-") {
		if !slices.Contains(have, tok) {
			return false
		}
	}
	return true
}

// checkMatch fails t unless mipsec's IKE SA m and charon's c are the same
// SA: the same IKE SPIs, ESP SPIs crossed (mipsec's in = charon's out),
// the configured algorithms, initiator on exactly one side.
func (l *ikeLab) checkMatch(m control.IKESAInfo, c charontest.IKESA, mipsecInitiated bool) {
	t := l.t
	t.Helper()
	if uint64(m.SPIi) == 0 || uint64(m.SPIi) != c.InitiatorSPI || uint64(m.SPIr) != c.ResponderSPI {
		t.Errorf("IKE SPIs: mipsec %v/%v, charon %016x/%016x", m.SPIi, m.SPIr, c.InitiatorSPI, c.ResponderSPI)
	}
	if m.Initiator != mipsecInitiated || c.Initiator == mipsecInitiated {
		t.Errorf("initiator: mipsec %v, charon %v; want mipsec %v", m.Initiator, c.Initiator, mipsecInitiated)
	}
	if m.LocalID != ikeIDM || m.RemoteID != ikeIDC || c.LocalID != ikeIDC || c.RemoteID != ikeIDM {
		t.Errorf("identities: mipsec %q -> %q, charon %q -> %q", m.LocalID, m.RemoteID, c.LocalID, c.RemoteID)
	}
	want := charonAlgs[l.o.ikeProposal]
	if c.Encr != want.encr || c.EncrKeySize != want.keySize || c.Integ != want.integ || c.PRF != want.prf || c.DH != want.dh {
		t.Errorf("charon's IKE SA: %s-%d %s %s %s, want %+v", c.Encr, c.EncrKeySize, c.Integ, c.PRF, c.DH, want)
	}
	if !suiteHas(m.Suite, l.o.ikeProposal) {
		t.Errorf("mipsec's IKE SA suite %q, want %s", m.Suite, l.o.ikeProposal)
	}
	if l.nat {
		l.checkChild(m, c)
		return
	}
	// charon's encap = yes fakes a NAT (RFC 7296 §2.23): both float to 4500.
	if !m.Encap || !c.NATAny || c.Local.Port() != 4500 || c.Remote.Port() != 4500 || c.Remote.Addr() != l.outerM {
		t.Errorf("NAT/ports: mipsec %s -> %s encap %v nat_local %v nat_remote %v; charon %v -> %v nat-any %v",
			m.Local, m.Remote, m.Encap, m.NATLocal, m.NATRemote, c.Local, c.Remote, c.NATAny)
	}
	// NAT detection: where mipsec does not fake its own hashes, charon
	// finds them right (no NAT in front of mipsec) and fakes its own, which
	// mipsec takes for a NAT in front of charon; with mipsec's encap, charon
	// sees mipsec "behind a NAT" and has no need to fake.
	if l.o.mipsecEncap {
		if !c.NATRemote || m.NATLocal {
			t.Errorf("with mipsec's encap: charon nat-remote %v (want true), mipsec nat_local %v", c.NATRemote, m.NATLocal)
		}
	} else if !c.NATFake || c.NATRemote || c.NATLocal || !m.NATRemote || m.NATLocal {
		t.Errorf("without mipsec's encap: charon nat-fake %v nat-remote %v nat-local %v (want true, false, false); mipsec nat_remote %v nat_local %v (want true, false)",
			c.NATFake, c.NATRemote, c.NATLocal, m.NATRemote, m.NATLocal)
	}
	l.checkChild(m, c)
}

// checkChild is checkMatch's part for the child.
func (l *ikeLab) checkChild(m control.IKESAInfo, c charontest.IKESA) {
	t := l.t
	t.Helper()
	mc, cc := m.Children[0], c.Installed(ikeChild)[0]
	if mc.SPIIn == 0 || uint32(mc.SPIIn) != cc.SPIOut || uint32(mc.SPIOut) != cc.SPIIn {
		t.Errorf("ESP SPIs: mipsec in %v out %v, charon in %08x out %08x", mc.SPIIn, mc.SPIOut, cc.SPIIn, cc.SPIOut)
	}
	we := charonAlgs[l.o.espProposal]
	if cc.Encr != we.encr || cc.EncrKeySize != we.keySize || cc.Integ != we.integ || !cc.Encap || cc.Mode != "TUNNEL" {
		t.Errorf("charon's CHILD_SA: %s-%d %s encap %v %s, want %+v in UDP, tunnel", cc.Encr, cc.EncrKeySize, cc.Integ, cc.Encap, cc.Mode, we)
	}
	if !suiteHas(mc.Suite, l.o.espProposal) || mc.Mode != "tunnel" {
		t.Errorf("mipsec's child: suite %q mode %s, want %s tunnel", mc.Suite, mc.Mode, l.o.espProposal)
	}
	if strings.Join(mc.LocalTS, ",") != ikeNetM || strings.Join(mc.RemoteTS, ",") != ikeNetC ||
		strings.Join(cc.LocalTS, ",") != ikeNetC || strings.Join(cc.RemoteTS, ",") != ikeNetM {
		t.Errorf("TS: mipsec %v === %v, charon %v === %v", mc.LocalTS, mc.RemoteTS, cc.LocalTS, cc.RemoteTS)
	}
}

// traffic pings both ways through the tunnel and sends size bytes over
// TCP from mipsec's side to charon's and a quarter of that back, checked
// by SHA-256.
func (l *ikeLab) traffic(size int) {
	t := l.t
	t.Helper()
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)
	if size == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := tcpTransfer(ctx, l.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), l.nsM, ikeSiteM.Addr(), payload(size), nil)
	if err != nil {
		t.Fatalf("TCP %v -> %v: %v", ikeSiteM.Addr(), ikeSiteC.Addr(), err)
	}
	t.Logf("TCP %v -> %v: %v", ikeSiteM.Addr(), ikeSiteC.Addr(), res)
	res, err = tcpTransfer(ctx, l.nsM, netip.AddrPortFrom(ikeSiteM.Addr(), 5202), l.nsC, ikeSiteC.Addr(), payload(size/4), nil)
	if err != nil {
		t.Fatalf("TCP %v -> %v: %v", ikeSiteC.Addr(), ikeSiteM.Addr(), err)
	}
	t.Logf("TCP %v -> %v: %v", ikeSiteC.Addr(), ikeSiteM.Addr(), res)
}

// noTraffic fails t if a ping from mipsec's side gets through.
func (l *ikeLab) noTraffic() {
	l.t.Helper()
	p, err := netlab.NewPinger(l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), []byte("mipsec e2e ping"))
	if err != nil {
		l.t.Fatal(err)
	}
	defer p.Close()
	if rtt, err := p.Echo(context.Background(), 1, 1, 500*time.Millisecond); err == nil && rtt > 0 {
		l.t.Errorf("ping %v -> %v answered with no SA", ikeSiteM.Addr(), ikeSiteC.Addr())
	}
}

const ikeTransferSize = 4 << 20

// TestIKECharonResponder: mipsec initiates (start_action = "start") to
// charon, over the proposal matrix (each IKE and each ESP proposal once);
// both list the same SA, and ping and TCP go through.
func TestIKECharonResponder(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    ikeOptions
	}{
		{"aes128gcm16-prfsha256-curve25519/aes128gcm16", ikeOptions{}},
		// mipsec forcing UDP itself as well (connection encap = true).
		{"aes256gcm16-prfsha384-ecp256/aes256gcm16/encap", ikeOptions{ikeProposal: "aes256gcm16-prfsha384-ecp256", espProposal: "aes256gcm16", mipsecEncap: true}},
		{"aes128-sha256-modp2048/chacha20poly1305", ikeOptions{ikeProposal: "aes128-sha256-modp2048", espProposal: "chacha20poly1305"}},
		{"aes128gcm16-prfsha256-curve25519/aes128-sha256/v6", ikeOptions{espProposal: "aes128-sha256", outer6: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newIKELab(t, tt.o)
			l.startCharon("none")
			l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
			m := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
			c := l.waitCharonSA(5 * time.Second)
			l.checkMatch(m, c, true)
			l.traffic(ikeTransferSize)
			after, err := l.charon.IKESA(ikeConnC)
			if err != nil {
				t.Fatal(err)
			}
			if ch := after.Installed(ikeChild); len(ch) != 1 || ch[0].PacketsIn < 6 || ch[0].PacketsOut < 6 {
				t.Errorf("charon's CHILD_SA counters after the traffic: %+v", ch)
			}
		})
	}
}

// TestIKECharonInitiator: charon initiates (vici initiate) to a mipsec
// responder (start_action = "none"), over IPv4 and IPv6 outer addresses;
// the same checks.
func TestIKECharonInitiator(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    ikeOptions
	}{
		{"v4/aes256gcm16-prfsha384-ecp256/aes128gcm16", ikeOptions{ikeProposal: "aes256gcm16-prfsha384-ecp256"}},
		{"v6/aes128-sha256-modp2048/chacha20poly1305", ikeOptions{outer6: true, ikeProposal: "aes128-sha256-modp2048", espProposal: "chacha20poly1305"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.startAction = "none"
			l := newIKELab(t, tt.o)
			l.startCharon("none")
			l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
			if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			c := l.waitCharonSA(5 * time.Second)
			m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
			l.checkMatch(m, c, false)
			l.traffic(ikeTransferSize)
		})
	}
}

// ipsecTables returns the numbers of SAs and policies g lists (`mipsec sa
// list --json`, `mipsec policy list --json`).
func ipsecTables(t *testing.T, g *gateway) (sas, policies int) {
	t.Helper()
	for _, x := range []struct {
		cmd string
		n   *int
	}{{"sa", &sas}, {"policy", &policies}} {
		out, err := g.ctl(x.cmd, "list", "--json")
		if err != nil {
			t.Fatalf("mipsec %s list --json: %v", x.cmd, err)
		}
		var list []json.RawMessage
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("mipsec %s list --json: %v:\n%s", x.cmd, err, out)
		}
		*x.n = len(list)
	}
	return sas, policies
}

// waitCharonDown reads ev until charon reports the child and the IKE SA
// down (child-updown and ike-updown with up = no).
func waitCharonDown(t *testing.T, ev <-chan charontest.Event, timeout time.Duration) {
	t.Helper()
	var child, sa bool
	deadline := time.Now().Add(timeout)
	for !child || !sa {
		_, err := charontest.WaitEvent(ev, time.Until(deadline), func(e charontest.Event) bool {
			switch {
			case e.Kind == charontest.ChildUpDown && !e.Up && e.Child.Name == ikeChild:
				child = true
			case e.Kind == charontest.IKEUpDown && !e.Up && e.IKE.Name == ikeConnC:
				sa = true
			default:
				return false
			}
			return true
		})
		if err != nil {
			t.Fatalf("charon: child down %v, IKE SA down %v: %v", child, sa, err)
		}
	}
}

// TestIKEDelete: an IKE SA deleted by either side (INFORMATIONAL with a
// Delete payload, RFC 7296 §1.4.1) is gone on both, with its ESP SAs and
// policies, and traffic stops.
func TestIKEDelete(t *testing.T) {
	t.Run("mipsec-terminate", func(t *testing.T) {
		l := newIKELab(t, ikeOptions{})
		l.startCharon("none")
		ev := l.charon.Events()
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
		l.waitCharonSA(5 * time.Second)
		l.traffic(0)
		if sas, pols := ipsecTables(t, l.gw); sas != 2 || pols < 2 {
			t.Errorf("with the child up: %d SAs, %d policies; want 2 SAs and the child's policies", sas, pols)
		}
		if out, err := l.gw.ctl("ike", "terminate", ikeConnM); err != nil {
			t.Fatalf("mipsec ike terminate: %v\n%s", err, out)
		}
		waitCharonDown(t, ev, 5*time.Second)
		if sas, err := l.charon.ListSAs(); err != nil || len(sas) != 0 {
			t.Errorf("charon after the Delete: %+v, %v", sas, err)
		}
		waitMipsecNoSA(t, l.gw, 2*time.Second)
		if sas, pols := ipsecTables(t, l.gw); sas != 0 || pols != 0 {
			t.Errorf("mipsec after terminate: %d SAs, %d policies left", sas, pols)
		}
		l.noTraffic()
		// An administrative terminate is not a failure: start_action =
		// "start" does not bring the SA back by itself.
		time.Sleep(time.Second)
		if sas, _ := ikeList(l.gw); len(sas) != 0 {
			t.Errorf("mipsec 1 s after terminate: %+v", sas)
		}
	})
	t.Run("mipsec-sigterm", func(t *testing.T) {
		// node closes the daemon first on shutdown, so its Delete goes
		// out (node/ike.go).
		l := newIKELab(t, ikeOptions{})
		l.startCharon("none")
		ev := l.charon.Events()
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
		l.waitCharonSA(5 * time.Second)
		l.gw.stop(syscall.SIGTERM)
		waitCharonDown(t, ev, 3*time.Second)
		if sas, err := l.charon.ListSAs(); err != nil || len(sas) != 0 {
			t.Errorf("charon after mipsec's shutdown: %+v, %v", sas, err)
		}
	})
	t.Run("charon-terminate", func(t *testing.T) {
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none")
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		l.traffic(0)
		if err := l.charon.Terminate(ikeConnC); err != nil {
			t.Fatal(err)
		}
		waitMipsecNoSA(t, l.gw, 5*time.Second)
		if sas, pols := ipsecTables(t, l.gw); sas != 0 || pols != 0 {
			t.Errorf("mipsec after charon's Delete: %d SAs, %d policies left", sas, pols)
		}
		st := ikeStats(t, l.gw)
		if st.IKESAs != 0 || st.ChildSAs != 0 {
			t.Errorf("mipsec stats after charon's Delete: %+v", st)
		}
		l.noTraffic()
	})
}

// TestIKEWrongPSK: with different pre-shared keys no SA comes up on
// either side, mipsec counts auth_failed and logs one line that says so.
func TestIKEWrongPSK(t *testing.T) {
	for _, tt := range []struct {
		name      string
		initiator string // who initiates
	}{{"mipsec-initiates", "mipsec"}, {"charon-initiates", "charon"}} {
		t.Run(tt.name, func(t *testing.T) {
			o := ikeOptions{mipsecPSK: ikeWrongPK, startAction: "none"}
			if tt.initiator == "mipsec" {
				o.startAction = "start"
			}
			l := newIKELab(t, o)
			l.startCharon("none")
			l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
			if tt.initiator == "charon" {
				if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err == nil {
					t.Fatal("charon's initiate with the wrong key succeeded")
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			var st control.IKEStatsInfo
			for time.Now().Before(deadline) {
				if st = ikeStats(t, l.gw); st.Failures["auth_failed"] > 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if st.Failures["auth_failed"] == 0 {
				t.Fatalf("mipsec stats: no auth_failed: %+v", st)
			}
			time.Sleep(time.Second) // any retry of mipsec's has happened
			if sas, err := ikeList(l.gw); err != nil || len(sas) != 0 {
				t.Errorf("mipsec: IKE SAs %+v, %v", sas, err)
			}
			if sas, pols := ipsecTables(t, l.gw); sas != 0 || pols != 0 {
				t.Errorf("mipsec: %d SAs, %d policies", sas, pols)
			}
			if sas, err := l.charon.ListSAs(); err != nil || len(sas) != 0 {
				t.Errorf("charon: %+v, %v", sas, err)
			}
			l.noTraffic()
			var lines []string
			for _, ln := range strings.Split(l.gw.Log.String(), "\n") {
				if strings.Contains(ln, `"auth_failed"`) {
					lines = append(lines, ln)
				}
			}
			if len(lines) != 1 {
				t.Errorf("mipsec logged %d lines with auth_failed, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
			} else {
				t.Logf("mipsec: %s", lines[0])
			}
		})
	}
}

// TestIKEDPD: mipsec checks liveness after dpd_delay of silence (RFC 7296
// §2.4); with charon killed (no Delete goes out) the check is
// retransmitted ([ike] retransmit 500 ms, doubled, 3 times) and then the
// IKE SA is torn down with its children; once charon is back, the
// start_action = "start" connection is established again and carries
// traffic.
func TestIKEDPD(t *testing.T) {
	t.Parallel() // mostly waiting
	l := newIKELab(t, ikeOptions{dpdDelay: "2s", retransmit: "500ms", retransmits: 3})
	l.startCharon("none")
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	first := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
	l.waitCharonSA(5 * time.Second)
	l.traffic(0)
	before := ikeStats(t, l.gw)

	// A live peer answers the checks: the SA survives two DPD periods.
	time.Sleep(4500 * time.Millisecond)
	if sa, ok := established(mustIKEList(t, l.gw), ikeConnM); !ok || sa.SPIi != first.SPIi {
		t.Fatalf("mipsec after 4.5 s of DPD with a live peer: %+v", sa)
	}
	if st := ikeStats(t, l.gw); st.Exchanges["INFORMATIONAL"] <= before.Exchanges["INFORMATIONAL"] {
		t.Errorf("no INFORMATIONAL (DPD) exchange in 4.5 s with dpd_delay 2s: before %v, after %v", before.Exchanges, st.Exchanges)
	}

	killed := time.Now()
	l.charon.Kill()
	// Silence of at most dpd_delay, then 0.5+1+2+4 s of retransmissions.
	const lower, upper = 7 * time.Second, 15 * time.Second
	deadline := killed.Add(upper)
	for {
		sas := mustIKEList(t, l.gw)
		if _, ok := established(sas, ikeConnM); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mipsec still lists the IKE SA %v after charon was killed: %+v", upper, sas)
		}
		time.Sleep(100 * time.Millisecond)
	}
	gone := time.Since(killed)
	t.Logf("mipsec tore the IKE SA down %v after charon was killed", gone.Round(10*time.Millisecond))
	if gone < lower {
		t.Errorf("IKE SA gone %v after the kill: sooner than dpd_delay + retransmissions allow (%v)", gone, lower)
	}
	st := ikeStats(t, l.gw)
	if st.Retransmits-before.Retransmits < 3 || st.Failures["timeout"] == 0 {
		t.Errorf("mipsec stats after the dead peer: retransmits %d (before %d), failures %v", st.Retransmits, before.Retransmits, st.Failures)
	}
	if !strings.Contains(l.gw.Log.String(), `"exchange timed out"`) {
		t.Error("mipsec did not log the timed-out exchange")
	}
	// The dead SA's ESP SAs went with it (a new attempt may be in
	// progress, but none is installed while charon is away).
	if sas, _ := ipsecTables(t, l.gw); sas != 0 {
		t.Errorf("mipsec: %d ESP SAs after the IKE SA died", sas)
	}

	if err := l.charon.Restart(); err != nil {
		t.Fatal(err)
	}
	again := waitMipsecSA(t, l.gw, ikeConnM, 20*time.Second)
	if again.SPIi == first.SPIi {
		t.Errorf("the IKE SA after the restart has the old SPI %v", again.SPIi)
	}
	c := l.waitCharonSA(5 * time.Second)
	l.checkMatch(again, c, true)
	l.traffic(1 << 20)
}

func mustIKEList(t *testing.T, g *gateway) []control.IKESAInfo {
	t.Helper()
	sas, err := ikeList(g)
	if err != nil {
		t.Fatalf("mipsec ike list: %v", err)
	}
	return sas
}

// TestIKEWireshark: a capture of the exchanges on the veth decrypts in
// tshark with the lines of `mipsec ike list --wireshark` as its
// ikev2_decryption_table: IKE_AUTH's IDi, IDr and AUTH appear, which
// travel only inside the SK payload (RFC 7296 §3.14); without the table
// they do not.
func TestIKEWireshark(t *testing.T) {
	for _, prop := range []string{"aes128gcm16-prfsha256-curve25519", "aes128-sha256-modp2048"} {
		t.Run(prop, func(t *testing.T) {
			tshark := testenv.NeedCommand(t, "tshark")
			l := newIKELab(t, ikeOptions{ikeProposal: prop})
			pcap := filepath.Join(l.dir, "ike.pcap")
			cp, err := netlab.StartCaptureOpts(l.nsM, "ul0", netlab.CaptureOptions{Marker: marker, Pcap: pcap})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cp.Close)
			l.startCharon("none")
			l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
			sa := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
			l.traffic(0)
			time.Sleep(300 * time.Millisecond)
			cp.Close()
			if n := cp.Stats().Plaintext; n != 0 {
				t.Errorf("%d frames on the veth carry the plaintext marker", n)
			}

			lines, err := l.gw.ctl("ike", "list", "--wireshark")
			if err != nil {
				t.Fatalf("mipsec ike list --wireshark: %v", err)
			}
			recs := strings.Split(strings.TrimSpace(lines), "\n")
			if len(recs) != 1 || !strings.HasPrefix(recs[0], fmt.Sprintf("%016x,%016x,", uint64(sa.SPIi), uint64(sa.SPIr))) {
				t.Fatalf("ike list --wireshark: %q, want one line for %v/%v", lines, sa.SPIi, sa.SPIr)
			}
			home := filepath.Join(l.dir, "home") // no Wireshark configuration but ours
			if err := os.MkdirAll(home, 0o700); err != nil {
				t.Fatal(err)
			}
			decode := func(table bool) [][]string {
				t.Helper()
				args := []string{"-n", "-r", pcap, "-Y", "isakmp"}
				if table {
					args = append(args, "-o", "uat:ikev2_decryption_table:"+recs[0])
				}
				args = append(args, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
					"-e", "isakmp.exchangetype", "-e", "isakmp.messageid", "-e", "isakmp.flag_r",
					"-e", "isakmp.id.data.fqdn", "-e", "isakmp.auth.method", "-e", "udp.dstport")
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, tshark, args...)
				cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil || strings.Contains(stderr.String(), "rror") {
					t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
				}
				var rows [][]string
				for _, ln := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
					if ln != "" {
						rows = append(rows, append(strings.Split(ln, "\t"), "", "", "", "", "", "")[:6])
					}
				}
				return rows
			}
			rows := decode(true)
			var auth [][]string
			for _, r := range rows {
				if r[0] == "35" { // IKE_AUTH
					auth = append(auth, r)
				}
			}
			if len(auth) != 2 {
				t.Fatalf("tshark: %d IKE_AUTH messages, want request and response: %q", len(auth), rows)
			}
			t.Logf("tshark, IKE_AUTH decrypted (exchange, message ID, response flag, IDs, auth method, port): %q", auth)
			for _, r := range auth {
				wantID, dir := ikeIDM, "request"
				if r[2] == "1" || r[2] == "True" {
					wantID, dir = ikeIDC, "response"
				}
				// The request carries IDi and IDr (RFC 7296 §2.15's
				// optional IDr), the response IDr; AUTH 2 is the shared
				// key MIC (§3.8).
				if !slices.Contains(strings.Split(r[3], ","), wantID) || r[4] != "2" || r[5] != "4500" {
					t.Errorf("IKE_AUTH %s decrypted as id %q, auth method %q, port %s; want %s, 2, 4500", dir, r[3], r[4], r[5], wantID)
				}
			}
			for _, r := range decode(false) {
				if r[3] != "" || r[4] != "" {
					t.Errorf("without the table tshark still shows id %q, auth %q: the payloads were not encrypted", r[3], r[4])
				}
			}
		})
	}
}

// TestIKEMipsecPair runs testdata/ike-gateway-a.toml and
// ike-gateway-b.toml as shipped (state_dir, the control socket and the
// PSK file moved to a temporary directory) as in TestExampleConfigs: A at
// 198.51.100.1 and B at 203.0.113.1 on one veth, A initiating. Both list
// the same IKE SA; ping and TCP go through; `mipsec ike terminate` on A
// removes it on both.
func TestIKEMipsecPair(t *testing.T) {
	needEnv(t)
	nsA, nsB := newNetns(t), newNetns(t)
	veth(t, nsA, nsB, "ul0", netip.MustParsePrefix("198.51.100.1/24"), netip.Prefix{}, netip.MustParsePrefix("203.0.113.1/24"), netip.Prefix{})
	run(t, "ip", "-n", nsA, "route", "add", "203.0.113.1/32", "dev", "ul0")
	run(t, "ip", "-n", nsB, "route", "add", "198.51.100.1/32", "dev", "ul0")
	dir := t.TempDir()
	psk := filepath.Join(dir, "gateway-a-b.psk")
	if err := os.WriteFile(psk, []byte("0s"+"bWlwc2VjIGUyZSBpa2UgZ2F0ZXdheSBwYWlyIHByZS1zaGFyZWQga2V5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gws := map[string]*gateway{}
	for _, side := range []struct{ name, ns string }{{"b", nsB}, {"a", nsA}} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "ike-gateway-"+side.name+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(dir, side.name+".sock")
		s := string(data)
		for _, r := range [][2]string{
			{`"/var/lib/mipsec/ike-gateway-` + side.name + `"`, `"` + filepath.Join(dir, "state-"+side.name) + `"`},
			{`"/run/mipsec/ike-gateway-` + side.name + `.sock"`, `"` + sock + `"`},
			{`"/etc/mipsec/gateway-a-b.psk"`, `"` + psk + `"`},
		} {
			if !strings.Contains(s, r[0]) {
				t.Fatalf("ike-gateway-%s.toml has no %s", side.name, r[0])
			}
			s = strings.ReplaceAll(s, r[0], r[1])
		}
		path := filepath.Join(dir, "ike-gateway-"+side.name+".toml")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		g := newGatewayFile(t, strings.ToUpper(side.name), side.ns, path, gwConfig{Socket: sock})
		g.start()
		gws[side.name] = g
	}
	a := waitMipsecSA(t, gws["a"], "gateway-b", 10*time.Second)
	b := waitMipsecSA(t, gws["b"], "gateway-a", 5*time.Second)
	if a.SPIi != b.SPIi || a.SPIr != b.SPIr || !a.Initiator || b.Initiator || a.Suite != b.Suite {
		t.Errorf("IKE SAs: A %v/%v initiator %v %s, B %v/%v initiator %v %s", a.SPIi, a.SPIr, a.Initiator, a.Suite, b.SPIi, b.SPIr, b.Initiator, b.Suite)
	}
	ca, cb := a.Children[0], b.Children[0]
	if ca.SPIIn != cb.SPIOut || ca.SPIOut != cb.SPIIn || ca.Suite != cb.Suite || a.LocalID != "gw-a.example.org" || a.RemoteID != "gw-b.example.org" {
		t.Errorf("children: A %+v (%s -> %s), B %+v", ca, a.LocalID, a.RemoteID, cb)
	}
	// Raw ESP (underlay.encap = "raw", no NAT): nothing floats to 4500.
	if a.Encap || b.Encap || a.NATLocal || a.NATRemote {
		t.Errorf("A: encap %v NAT %v/%v; B: encap %v", a.Encap, a.NATLocal, a.NATRemote, b.Encap)
	}
	capA := startCapture(t, nsA, "ul0")
	siteA, siteB := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.129")
	mustPing(t, nsA, siteA, siteB, 3)
	mustPing(t, nsB, siteB, siteA, 3)
	mustPing(t, nsA, netip.MustParseAddr("2001:db8:a::1"), netip.MustParseAddr("2001:db8:b::1"), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := tcpTransfer(ctx, nsB, netip.AddrPortFrom(siteB, 5201), nsA, siteA, payload(ikeTransferSize), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TCP %v -> %v: %v", siteA, siteB, res)
	capA.checkOnlyESP(t, false, ikeTransferSize)

	if out, err := gws["a"].ctl("ike", "terminate", "gateway-b"); err != nil {
		t.Fatalf("mipsec ike terminate: %v\n%s", err, out)
	}
	waitMipsecNoSA(t, gws["a"], 3*time.Second)
	waitMipsecNoSA(t, gws["b"], 3*time.Second)
	for name, g := range gws {
		if sas, pols := ipsecTables(t, g); sas != 0 || pols != 0 {
			t.Errorf("%s after terminate: %d SAs, %d policies", name, sas, pols)
		}
	}
	if n, _ := ping(nsA, siteA, siteB, 1); n != 0 {
		t.Error("ping through the tunnel after terminate")
	}
}

// waitMipsec waits until ok holds for g's IKE SAs.
func waitMipsec(t *testing.T, g *gateway, timeout time.Duration, what string, ok func([]control.IKESAInfo) bool) []control.IKESAInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []control.IKESAInfo
	var err error
	for time.Now().Before(deadline) {
		if last, err = ikeList(g); err == nil && ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mipsec %s: not %s after %v: %+v, %v", g.name, what, timeout, last, err)
	return nil
}

// TestIKECharonCases: more of RFC 7296 against charon: `mipsec ike
// initiate`, a child deleted alone, INITIAL_CONTACT after a crash,
// charon's liveness checks, narrowing, and refusals that leave nothing
// behind.
func TestIKECharonCases(t *testing.T) {
	t.Run("cli-initiate-child-delete", func(t *testing.T) {
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none")
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		time.Sleep(500 * time.Millisecond)
		if sas := mustIKEList(t, l.gw); len(sas) != 0 {
			t.Fatalf("start_action = none: IKE SAs before initiate: %+v", sas)
		}
		if out, err := l.gw.ctl("ike", "initiate", ikeConnM); err != nil {
			t.Fatalf("mipsec ike initiate: %v\n%s", err, out)
		}
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		l.checkMatch(m, l.waitCharonSA(5*time.Second), true)
		l.traffic(0)
		// Only the child (a Delete of the ESP SPI, §1.4.1): the IKE SA
		// stays.
		if err := l.charon.TerminateChild(ikeChild); err != nil {
			t.Fatal(err)
		}
		waitMipsec(t, l.gw, 5*time.Second, "one IKE SA without children", func(sas []control.IKESAInfo) bool {
			return len(sas) == 1 && sas[0].State == "established" && len(sas[0].Children) == 0 && sas[0].SPIi == m.SPIi
		})
		if sas, pols := ipsecTables(t, l.gw); sas != 0 || pols != 0 {
			t.Errorf("mipsec after the child's Delete: %d SAs, %d policies", sas, pols)
		}
		if c, err := l.charon.IKESA(ikeConnC); err != nil || c.State != "ESTABLISHED" || len(c.Children) != 0 {
			t.Errorf("charon after the child's Delete: %+v, %v", c, err)
		}
		l.noTraffic()
	})
	t.Run("initial-contact-after-crash", func(t *testing.T) {
		l := newIKELab(t, ikeOptions{})
		l.startCharon("none")
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		old := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
		l.waitCharonSA(5 * time.Second)
		// SIGKILL: no Delete; charon still has the old SA when mipsec
		// comes back with a new one and INITIAL_CONTACT (§2.4), which
		// makes charon drop the old one.
		l.gw.stop(syscall.SIGKILL)
		l.gw.start()
		m := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
		if m.SPIi == old.SPIi {
			t.Fatalf("the same IKE SPI %v after a restart", m.SPIi)
		}
		c := l.waitCharonSA(5 * time.Second) // exactly one IKE SA
		l.checkMatch(m, c, true)
		l.traffic(1 << 20)
	})
	t.Run("charon-dpd", func(t *testing.T) {
		l := newIKELab(t, ikeOptions{startAction: "none", charonDPD: time.Second})
		l.startCharon("none")
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		before := ikeStats(t, l.gw).Exchanges["INFORMATIONAL"]
		time.Sleep(3500 * time.Millisecond)
		after := ikeStats(t, l.gw).Exchanges["INFORMATIONAL"]
		if after < before+2 {
			t.Errorf("mipsec answered %d INFORMATIONAL requests in 3.5 s of charon's dpd_delay 1s, want at least 2", after-before)
		}
		if now, ok := established(mustIKEList(t, l.gw), ikeConnM); !ok || now.SPIi != m.SPIi {
			t.Errorf("mipsec after charon's liveness checks: %+v", now)
		}
		l.checkMatch(m, l.waitCharonSA(time.Second), false)
		l.traffic(0)
	})
	t.Run("narrowing", func(t *testing.T) {
		// charon asks for part of what mipsec allows: mipsec, the
		// responder, narrows to it (§2.9).
		const charonHalf = "203.0.113.0/25"
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none", func(c *charontest.Conn) {
			ch := c.Children[ikeChild]
			ch.LocalTS = []string{charonHalf}
			c.Children[ikeChild] = ch
		})
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		c := l.waitCharonSA(time.Second).Installed(ikeChild)[0]
		mc := m.Children[0]
		if strings.Join(mc.LocalTS, ",") != ikeNetM || strings.Join(mc.RemoteTS, ",") != charonHalf ||
			strings.Join(c.LocalTS, ",") != charonHalf || strings.Join(c.RemoteTS, ",") != ikeNetM {
			t.Errorf("TS: mipsec %v === %v, charon %v === %v; want %s === %s", mc.LocalTS, mc.RemoteTS, c.LocalTS, c.RemoteTS, ikeNetM, charonHalf)
		}
		l.traffic(0)
	})
	t.Run("ts-unacceptable", func(t *testing.T) {
		// Selectors that do not meet: no child, the IKE SA stays
		// (§2.9, TS_UNACCEPTABLE).
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none", func(c *charontest.Conn) {
			ch := c.Children[ikeChild]
			ch.LocalTS = []string{"203.0.113.128/25"}
			c.Children[ikeChild] = ch
		})
		cfg := l.mipsecConfig("M")
		cfg.RemoteTS = "203.0.113.0/25"
		l.gw = l.startMipsec("M", l.nsM, cfg)
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err == nil {
			t.Fatal("charon's initiate with disjoint selectors succeeded")
		}
		if st := ikeStats(t, l.gw); st.Failures["ts_unacceptable"] == 0 {
			t.Errorf("mipsec stats: no ts_unacceptable: %v", st.Failures)
		}
		sas := waitMipsec(t, l.gw, 2*time.Second, "one IKE SA without children", func(sas []control.IKESAInfo) bool {
			return len(sas) == 1 && sas[0].State == "established" && len(sas[0].Children) == 0
		})
		if c, err := l.charon.IKESA(ikeConnC); err != nil || c.State != "ESTABLISHED" || len(c.Children) != 0 || uint64(sas[0].SPIi) != c.InitiatorSPI {
			t.Errorf("charon: %+v, %v", c, err)
		}
		if n, p := ipsecTables(t, l.gw); n != 0 || p != 0 {
			t.Errorf("mipsec: %d SAs, %d policies", n, p)
		}
	})
	t.Run("invalid-ke-charon-retries", func(t *testing.T) {
		// charon's KE is MODP-2048, its first group; mipsec accepts only
		// Curve25519 and answers INVALID_KE_PAYLOAD (§1.2, §3.10.1);
		// charon tries again with Curve25519.
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none", func(c *charontest.Conn) { c.Proposals = []string{"aes128gcm16-prfsha256-modp2048-curve25519"} })
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		l.checkMatch(m, l.waitCharonSA(time.Second), false)
		if st := ikeStats(t, l.gw); st.Failures["invalid_ke"] != 1 {
			t.Errorf("mipsec: invalid_ke %d, want 1 (%v)", st.Failures["invalid_ke"], st.Failures)
		}
		l.traffic(0)
	})
	t.Run("invalid-ke-mipsec-retries", func(t *testing.T) {
		// mipsec's KE is ECP-256, its first group; charon accepts only
		// Curve25519: mipsec retries with it.
		l := newIKELab(t, ikeOptions{})
		l.startCharon("none")
		cfg := l.mipsecConfig("M")
		cfg.Proposals = []string{"aes128gcm16-prfsha256-ecp256-curve25519"}
		l.gw = l.startMipsec("M", l.nsM, cfg)
		m := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
		l.checkMatch(m, l.waitCharonSA(time.Second), true)
		if log, _ := os.ReadFile(l.charon.LogPath()); !strings.Contains(string(log), "N(INVAL_KE)") {
			t.Error("charon's log shows no INVALID_KE_PAYLOAD")
		}
		l.traffic(0)
	})
	t.Run("no-proposal-chosen", func(t *testing.T) {
		// charon offers only what mipsec's connection does not accept.
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none", func(c *charontest.Conn) { c.Proposals = []string{"aes256-sha512-modp3072"} })
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err == nil {
			t.Fatal("charon's initiate with a proposal mipsec lacks succeeded")
		}
		if st := ikeStats(t, l.gw); st.Failures["no_proposal"] == 0 || st.HalfOpen != 0 {
			t.Errorf("mipsec stats: %+v, want no_proposal and nothing half-open", st)
		}
		if sas := mustIKEList(t, l.gw); len(sas) != 0 {
			t.Errorf("mipsec: %+v", sas)
		}
		if sas, err := l.charon.ListSAs(); err != nil || len(sas) != 0 {
			t.Errorf("charon: %+v, %v", sas, err)
		}
	})
}

// TestIKECharonFragments: charon fragments its IKE_AUTH request
// (fragmentation = force, a small fragment_size): mipsec, which announced
// IKEV2_FRAGMENTATION_SUPPORTED, reassembles it (RFC 7383 §2.6).
func TestIKECharonFragments(t *testing.T) {
	l := newIKELab(t, ikeOptions{startAction: "none", charonSettings: map[string]string{"fragment_size": "300"}})
	l.startCharon("none", func(c *charontest.Conn) { c.Fragmentation = "force" })
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
	l.checkMatch(m, l.waitCharonSA(time.Second), false)
	log, err := os.ReadFile(l.charon.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "splitting IKE message") {
		t.Errorf("charon did not fragment its IKE_AUTH request (no \"splitting IKE message\" in %s)", l.charon.LogPath())
	}
	l.traffic(0)
}

// TestIKECharonRekey: charon rekeys the child, then the IKE SA. mipsec
// answers CREATE_CHILD_SA: the rekey replaces the child's SPIs (RFC 7296
// §2.8) or the IKE SA's (§2.18, the children move along); where mipsec
// refused it (NO_ADDITIONAL_SAS, before CREATE_CHILD_SA existed) charon
// reauthenticates instead ("peer seems to not support ... rekeying,
// starting reauthentication": a new IKE SA, §2.8.3), and mipsec's
// start_action = "start" must not race that with an SA of its own.
// Either way both sides end with one matching SA that carries traffic.
func TestIKECharonRekey(t *testing.T) {
	l := newIKELab(t, ikeOptions{})
	l.startCharon("none")
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	m := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
	l.waitCharonSA(5 * time.Second)
	initiator := true
	for _, kind := range []string{"child", "ike"} {
		before := ikeStats(t, l.gw).Exchanges["CREATE_CHILD_SA"]
		logBefore, _ := os.ReadFile(l.charon.LogPath())
		var err error
		if kind == "child" {
			err = l.charon.RekeyChild(ikeChild)
		} else {
			err = l.charon.RekeyIKE(ikeConnC)
		}
		if err != nil {
			t.Fatal(err)
		}
		old := m
		sas := waitMipsec(t, l.gw, 5*time.Second, "one SA with new SPIs", func(sas []control.IKESAInfo) bool {
			sa, ok := established(sas, ikeConnM)
			return ok && len(sas) == 1 && (sa.SPIi != old.SPIi || kind == "child" && sa.Children[0].SPIIn != old.Children[0].SPIIn)
		})
		m = sas[0]
		if n := ikeStats(t, l.gw).Exchanges["CREATE_CHILD_SA"] - before; n != 1 {
			t.Errorf("%s rekey: mipsec counted %d CREATE_CHILD_SA requests, want 1", kind, n)
		}
		logAll, _ := os.ReadFile(l.charon.LogPath())
		reauth := strings.Contains(string(logAll[len(logBefore):]), "starting reauthentication")
		t.Logf("%s rekey: reauthentication %v; now IKE %v/%v, child in %v out %v", kind, reauth, m.SPIi, m.SPIr, m.Children[0].SPIIn, m.Children[0].SPIOut)
		switch {
		case reauth:
			// charon initiated the new IKE SA.
			initiator = false
			if m.SPIi == old.SPIi || m.Initiator {
				t.Errorf("%s rekey refused: mipsec's SA %v initiator %v, want a new one from charon", kind, m.SPIi, m.Initiator)
			}
		case kind == "child":
			if m.SPIi != old.SPIi || m.Children[0].SPIOut == old.Children[0].SPIOut {
				t.Errorf("child rekey: IKE SA %v (was %v), child out %v (was %v)", m.SPIi, old.SPIi, m.Children[0].SPIOut, old.Children[0].SPIOut)
			}
		default:
			// §2.18: the rekeying side is the new IKE SA's initiator; the
			// child moves over unchanged.
			initiator = false
			if m.Children[0].SPIIn != old.Children[0].SPIIn || m.SPIr == old.SPIr {
				t.Errorf("IKE SA rekey: child in %v (was %v), SPIr %v (was %v)", m.Children[0].SPIIn, old.Children[0].SPIIn, m.SPIr, old.SPIr)
			}
		}
		l.checkMatch(m, l.waitCharonSA(2*time.Second), initiator)
		l.traffic(0)
		time.Sleep(500 * time.Millisecond) // no second SA from mipsec's side
		if sas := mustIKEList(t, l.gw); len(sas) != 1 || sas[0].SPIi != m.SPIi {
			t.Errorf("%s rekey: mipsec's IKE SAs afterwards: %+v", kind, sas)
		}
	}
	l.traffic(1 << 20)
}

// TestIKEMipsecRekey: mipsec rekeys (`mipsec ike rekey NAME [CHILD]`),
// during a TCP transfer: the child (new SPIs both ways, the old ones gone
// after the make-before-break switch, RFC 7296 §2.8), then the IKE SA
// (§2.18: new IKE SPIs with mipsec as initiator, the child unchanged),
// then the child again on the new IKE SA. charon reports each (child-rekey,
// ike-rekey), both sides agree afterwards, and the transfer's bytes arrive
// intact with no replay drop and no stall of a second (rekeyDuringTCP).
func TestIKEMipsecRekey(t *testing.T) {
	t.Parallel() // mostly waiting
	l := newIKELab(t, ikeOptions{})
	l.startCharon("none")
	ev := l.charon.Events()
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	m := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
	l.waitCharonSA(5 * time.Second)

	steps := []rekeyStep{
		{1 << 20, "mipsec ike rekey " + ikeConnM + " " + ikeChild, func() error { _, err := l.gw.ctl("ike", "rekey", ikeConnM, ikeChild); return err }},
		{3 << 20, "mipsec ike rekey " + ikeConnM, func() error { _, err := l.gw.ctl("ike", "rekey", ikeConnM); return err }},
		{5 << 20, "mipsec ike rekey " + ikeConnM + " " + ikeChild, func() error { _, err := l.gw.ctl("ike", "rekey", ikeConnM, ikeChild); return err }},
	}
	l.rekeyDuringTCP(steps)
	for _, e := range waitCharonRekeys(t, ev, 2, 1) {
		if e.OldIKE.InitiatorSPI != uint64(m.SPIi) || e.IKE.Initiator {
			t.Errorf("charon's ike-rekey %v: old SPI %016x (mipsec's was %v), charon initiator of the new one %v", e, e.OldIKE.InitiatorSPI, m.SPIi, e.IKE.Initiator)
		}
	}
	now := l.settleAfterRekeys(true)
	if now.SPIi == m.SPIi || !now.Initiator || now.Children[0].SPIIn == m.Children[0].SPIIn || now.Children[0].SPIOut == m.Children[0].SPIOut {
		t.Errorf("after the rekeys: %+v, before %+v", now, m)
	}
	if st := ikeStats(t, l.gw); st.Rekeys < 3 {
		t.Errorf("mipsec counted %d rekeys, want 3", st.Rekeys)
	}
	l.traffic(0)
}

// TestIKECharonRekeyTCP: charon rekeys during a TCP transfer from
// mipsec's side: the child, then the IKE SA (charon 5.9 rekeys it, RFC
// 7296 §2.18, or reauthenticates make-before-break), then the child on
// the new IKE SA. mipsec answers each, the stream neither stalls nor loses
// a packet to the replay check (rekeyDuringTCP), and both sides settle on
// one IKE SA with one child and two ESP SAs.
func TestIKECharonRekeyTCP(t *testing.T) {
	t.Parallel() // mostly waiting
	l := newIKELab(t, ikeOptions{})
	l.startCharon("none")
	ev := l.charon.Events()
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	m := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
	l.waitCharonSA(5 * time.Second)
	before := ikeStats(t, l.gw).Exchanges["CREATE_CHILD_SA"]
	l.rekeyDuringTCP([]rekeyStep{
		{1 << 20, "charon rekey child", func() error { return l.charon.RekeyChild(ikeChild) }},
		{3 << 20, "charon rekey IKE SA", func() error { return l.charon.RekeyIKE(ikeConnC) }},
		{5 << 20, "charon rekey child", func() error { return l.charon.RekeyChild(ikeChild) }},
	})
	waitCharonRekeys(t, ev, 2, 1)
	if n := ikeStats(t, l.gw).Exchanges["CREATE_CHILD_SA"] - before; n < 3 {
		t.Errorf("mipsec answered %d CREATE_CHILD_SA requests, want 3", n)
	}
	now := l.settleAfterRekeys(false)
	if now.SPIr == m.SPIr || now.Initiator || now.Children[0].SPIIn == m.Children[0].SPIIn {
		t.Errorf("after charon's rekeys: %+v, before %+v (want new SPIs, charon the initiator)", now, m)
	}
	l.traffic(0)
}

// TestIKETrap: a child with start_action = "trap" (swanctl's) against
// charon. mipsec starts no IKE SA by itself; the first packet for the
// child's selectors is dropped as "acquire" and brings the IKE SA and the
// child up (RFC 4301 §4.4.2.2: the SPD entry points at a missing SA, and
// the key manager is asked for one), after which the ping is answered and
// TCP flows. When charon deletes the child alone, the trap is back and the
// next packet brings the child up again with CREATE_CHILD_SA on the same
// IKE SA (RFC 7296 §1.3.1).
func TestIKETrap(t *testing.T) {
	t.Parallel() // mostly waiting
	l := newIKELab(t, ikeOptions{startAction: "trap"})
	l.startCharon("none")
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	acquires := func() uint64 {
		n, _ := statCounter(stats(t, l.gw), "dataplane.drops.acquire")
		return n
	}
	time.Sleep(1500 * time.Millisecond)
	if sas := mustIKEList(t, l.gw); len(sas) != 0 {
		t.Fatalf("a trap connection started by itself: %+v", sas)
	}
	if n := acquires(); n != 0 {
		t.Fatalf("%d acquire drops before any traffic", n)
	}
	// Each echo is retried after 1 s: the first is the one the trap takes.
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
	m := waitMipsecSA(t, l.gw, ikeConnM, 2*time.Second)
	if !m.Initiator {
		t.Errorf("the trapped child's IKE SA: mipsec not the initiator: %+v", m)
	}
	if n := acquires(); n == 0 {
		t.Error("no acquire drop counted for the packet that brought the SA up")
	}
	l.checkMatch(m, l.waitCharonSA(2*time.Second), true)
	l.traffic(1 << 20)

	// The child alone is deleted by charon: the IKE SA stays, the trap
	// returns, and the next packet brings a new child on the same IKE SA.
	before := acquires()
	if err := l.charon.TerminateChild(ikeChild); err != nil {
		t.Fatal(err)
	}
	waitMipsec(t, l.gw, 5*time.Second, "the child gone, the IKE SA kept", func(sas []control.IKESAInfo) bool {
		return len(sas) == 1 && sas[0].SPIi == m.SPIi && len(sas[0].Children) == 0
	})
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
	again := waitMipsecSA(t, l.gw, ikeConnM, 2*time.Second)
	if again.SPIi != m.SPIi || again.Children[0].SPIIn == m.Children[0].SPIIn {
		t.Errorf("after the child's delete: %+v, want a new child on IKE SA %v", again, m.SPIi)
	}
	if n := acquires(); n <= before {
		t.Errorf("acquire drops %d, %d before the child's delete: the trap did not take the packet", n, before)
	}
	l.traffic(1 << 20)
}

// waitCharonRekeys waits until charon has reported children child
// rekeys and ike IKE SA rekeys on ev; it returns the IKE SA rekeys.
func waitCharonRekeys(t *testing.T, ev <-chan charontest.Event, children, ikes int) []charontest.Event {
	t.Helper()
	var childRekeys int
	var ikeRekeys []charontest.Event
	for childRekeys < children || len(ikeRekeys) < ikes {
		e, err := charontest.WaitEvent(ev, 5*time.Second, func(e charontest.Event) bool {
			return e.Kind == charontest.ChildRekey || e.Kind == charontest.IKERekey
		})
		if err != nil {
			t.Fatalf("charon: %d child and %d IKE SA rekeys reported: %v", childRekeys, len(ikeRekeys), err)
		}
		if e.Kind == charontest.ChildRekey {
			childRekeys++
		} else {
			ikeRekeys = append(ikeRekeys, e)
		}
	}
	return ikeRekeys
}

// settleAfterRekeys waits until mipsec lists one IKE SA with one child
// and charon one child, checks that they are the same SA, and that mipsec
// keeps no more than the two ESP SAs of the child; it returns mipsec's SA.
func (l *ikeLab) settleAfterRekeys(mipsecInitiated bool) control.IKESAInfo {
	t := l.t
	t.Helper()
	now := waitMipsec(t, l.gw, 10*time.Second, "settled after the rekeys", func(sas []control.IKESAInfo) bool {
		_, ok := established(sas, ikeConnM)
		return ok && len(sas) == 1
	})[0]
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := l.charon.IKESA(ikeConnC)
		if err == nil && len(c.Children) == 1 {
			l.checkMatch(now, c, mipsecInitiated)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon still has the rekeyed children: %+v, %v", c, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if sas, _ := ipsecTables(t, l.gw); sas != 2 {
		t.Errorf("mipsec keeps %d ESP SAs after the rekeys, want 2", sas)
	}
	return now
}

// rekeyStep is a rekey that rekeyDuringTCP starts once at bytes of the
// transfer have been sent.
type rekeyStep struct {
	at   int
	what string
	do   func() error
}

// rekeyDuringTCP runs an 8 MiB TCP transfer from mipsec's side to
// charon's (or the mipsec in charon's place), slowed (10 ms per 64 KiB) so
// that it spans the steps, which its progress callback starts. It fails
// the test unless every step succeeds before the transfer ends, the bytes
// arrive intact (SHA-256), mipsec refuses no packet as a replay, and the
// stream never stalls for a second or more: make-before-break (RFC 7296
// §2.8; RFC 4303 §3.4.3: each SA has its own window) loses nothing.
func (l *ikeLab) rekeyDuringTCP(steps []rekeyStep) {
	t := l.t
	t.Helper()
	type result struct {
		what string
		err  error
		done time.Time
	}
	results := make(chan result, len(steps))
	next := 0
	var w stallWatch
	progress := w.wrap(func(sent int) {
		if next < len(steps) && sent >= steps[next].at {
			st := steps[next]
			next++
			go func() {
				err := st.do()
				results <- result{st.what, err, time.Now()}
			}()
		}
		time.Sleep(10 * time.Millisecond)
	})
	replays := replayDrops(t, l.gw)
	var charonLog int
	if l.charon != nil {
		b, _ := os.ReadFile(l.charon.LogPath())
		charonLog = len(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := tcpTransfer(ctx, l.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), l.nsM, ikeSiteM.Addr(), payload(8<<20), progress)
	if err != nil {
		t.Fatalf("TCP across the rekeys: %v", err)
	}
	ended := time.Now()
	t.Logf("TCP across the rekeys: %v; longest stall %v (at %d KiB)", res, w.max.Round(time.Millisecond), w.at>>10)
	if next != len(steps) {
		t.Fatalf("the transfer started %d of %d rekeys", next, len(steps))
	}
	for range steps {
		r := <-results
		if r.err != nil {
			t.Fatalf("%s: %v", r.what, r.err)
		}
		t.Logf("%s: done %v before the transfer ended", r.what, ended.Sub(r.done).Round(time.Millisecond))
		if r.done.After(ended) {
			t.Errorf("%s finished after the transfer: not under load", r.what)
		}
	}
	if w.max >= time.Second {
		t.Errorf("the TCP stream stalled for %v (at %d KiB) across the rekeys, want < 1 s", w.max, w.at>>10)
	}
	if n := replayDrops(t, l.gw) - replays; n != 0 {
		t.Errorf("mipsec refused %d packets as replays across the rekeys, want 0", n)
	}
	if l.charon != nil {
		// libipsec logs each packet its replay check refuses (ESP, level 1).
		b, _ := os.ReadFile(l.charon.LogPath())
		if n := strings.Count(string(b[charonLog:]), "ESP sequence number verification failed"); n != 0 {
			t.Errorf("charon refused %d packets as replays across the rekeys, want 0", n)
		}
	}
}

// dropIKE makes ns drop the IKE messages it sends from UDP port 4500 (the
// non-ESP marker, RFC 3948 §2.2: four zero bytes after the UDP header)
// until undo is called; dropped reports how many it dropped.
func dropIKE(t *testing.T, ns string) (dropped func() int, undo func()) {
	t.Helper()
	testenv.NeedCommand(t, "nft")
	nft(t, ns, `table inet e2edrop {
	chain out {
		type filter hook output priority 0;
		udp sport 4500 @th,64,32 0 counter drop
	}
}
`)
	dropped = func() int {
		out := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "inet", "e2edrop")
		var n int
		if i := strings.Index(out, "packets "); i >= 0 {
			fmt.Sscanf(out[i:], "packets %d", &n)
		}
		return n
	}
	done := false
	undo = func() {
		if !done {
			done = true
			run(t, "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "e2edrop")
		}
	}
	return dropped, undo
}

// waitDropped waits until dropped() reaches n.
func waitDropped(t *testing.T, dropped func() int, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for dropped() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d IKE messages dropped after %v, want %d", dropped(), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIKECharonLoss: lost IKE_AUTH responses. Charon retransmits its
// request and mipsec, the responder, resends its cached response rather
// than processing the request again (RFC 7296 §2.1); mipsec, the
// initiator, retransmits until charon's resent response arrives.
func TestIKECharonLoss(t *testing.T) {
	t.Run("mipsec-responds", func(t *testing.T) {
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none")
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		dropped, undo := dropIKE(t, l.nsM)
		if err := l.charon.Initiate(ikeChild, ikeConnC, 0); err != nil {
			t.Fatal(err)
		}
		// The response and the answer to charon's first retransmission
		// (after 1 s, charontest.DefaultSettings) are lost.
		waitDropped(t, dropped, 2, 5*time.Second)
		undo()
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		l.checkMatch(m, l.waitCharonSA(5*time.Second), false)
		st := ikeStats(t, l.gw)
		for k, v := range st.Failures {
			if v != 0 {
				t.Errorf("mipsec counted failure %s = %d for retransmitted requests", k, v)
			}
		}
		if st.Exchanges["IKE_AUTH"] != 1 || st.ChildSAs != 1 {
			t.Errorf("mipsec stats: %+v, want one IKE_AUTH and one child", st)
		}
		if sas, _ := ipsecTables(t, l.gw); sas != 2 {
			t.Errorf("mipsec: %d ESP SAs, want the one child's 2", sas)
		}
		l.traffic(0)
	})
	t.Run("mipsec-initiates", func(t *testing.T) {
		l := newIKELab(t, ikeOptions{})
		l.startCharon("none")
		dropped, undo := dropIKE(t, l.nsC)
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		waitDropped(t, dropped, 1, 5*time.Second)
		undo()
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		l.checkMatch(m, l.waitCharonSA(5*time.Second), true)
		if st := ikeStats(t, l.gw); st.Retransmits == 0 {
			t.Errorf("mipsec stats: no retransmission: %+v", st)
		}
		l.traffic(0)
	})
}

// TestIKECharonSelectors: charon's selectors as the initiator's TSi:
// two subnets, and a port (RFC 7296 §3.13.1); mipsec, the responder,
// narrows its wider remote_ts to them, installs them and forwards only
// what they allow.
func TestIKECharonSelectors(t *testing.T) {
	t.Run("two-subnets", func(t *testing.T) {
		halves := []string{"203.0.113.0/25", "203.0.113.128/25"}
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none", func(c *charontest.Conn) {
			ch := c.Children[ikeChild]
			ch.LocalTS = halves
			c.Children[ikeChild] = ch
		})
		second := netip.MustParseAddr("203.0.113.129")
		run(t, "ip", "-n", l.nsC, "addr", "add", second.String()+"/32", "dev", "lo")
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		mc := m.Children[0]
		if got := strings.Join(mc.RemoteTS, ","); got != strings.Join(halves, ",") || strings.Join(mc.LocalTS, ",") != ikeNetM {
			t.Errorf("mipsec's child: %v === %v, want %s === %v", mc.LocalTS, mc.RemoteTS, ikeNetM, halves)
		}
		l.traffic(0)
		mustPing(t, l.nsM, ikeSiteM.Addr(), second, 3)
		mustPing(t, l.nsC, second, ikeSiteM.Addr(), 3)
	})
	t.Run("tcp-port", func(t *testing.T) {
		const portTS = "203.0.113.0/24[tcp/5201]"
		l := newIKELab(t, ikeOptions{startAction: "none"})
		l.startCharon("none", func(c *charontest.Conn) {
			ch := c.Children[ikeChild]
			ch.LocalTS = []string{portTS}
			c.Children[ikeChild] = ch
		})
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		c := l.waitCharonSA(time.Second).Installed(ikeChild)[0]
		if mc := m.Children[0]; strings.Join(mc.RemoteTS, ",") != portTS || strings.Join(c.LocalTS, ",") != portTS {
			t.Errorf("TS: mipsec %v === %v, charon %v === %v; want the port %s", mc.LocalTS, mc.RemoteTS, c.LocalTS, c.RemoteTS, portTS)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := tcpTransfer(ctx, l.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), l.nsM, ikeSiteM.Addr(), payload(1<<20), nil)
		if err != nil {
			t.Fatalf("TCP to port 5201: %v", err)
		}
		t.Logf("TCP %v -> %v:5201: %v", ikeSiteM.Addr(), ikeSiteC.Addr(), res)
		l.noTraffic() // ICMP is outside the selectors
	})
}

// TestIKEWrongIdentity: charon proves an identity other than the one
// mipsec's connection names (remote.id), with the right key: mipsec, the
// responder, refuses it (RFC 7296 §2.15) and nothing comes up.
func TestIKEWrongIdentity(t *testing.T) {
	const intruder = "intruder.example.org"
	l := newIKELab(t, ikeOptions{startAction: "none"})
	l.startCharon("none", func(c *charontest.Conn) { c.Local.ID = intruder })
	if err := l.charon.LoadShared([]string{intruder, ikeIDM}, []byte(ikePSK)); err != nil {
		t.Fatal(err)
	}
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err == nil {
		t.Fatal("charon's initiate as the wrong identity succeeded")
	}
	if st := ikeStats(t, l.gw); st.Failures["auth_failed"] != 1 || st.IKESAs != 0 {
		t.Errorf("mipsec stats: %+v, want one auth_failed and no IKE SA", st)
	}
	if sas := mustIKEList(t, l.gw); len(sas) != 0 {
		t.Errorf("mipsec: %+v", sas)
	}
	if sas, pols := ipsecTables(t, l.gw); sas != 0 || pols != 0 {
		t.Errorf("mipsec: %d SAs, %d policies", sas, pols)
	}
	if sas, err := l.charon.ListSAs(); err != nil || len(sas) != 0 {
		t.Errorf("charon: %+v, %v", sas, err)
	}
	if !strings.Contains(l.gw.Log.String(), intruder) {
		t.Error("mipsec's log does not name the identity it refused")
	}
}

// charonRemote is charon's remote_addrs entry: mipsec's address, or
// %any when mipsec sits behind the NAT (charon sees the NAT's address).
func (l *ikeLab) charonRemote() string {
	if l.nat && l.outerM == ikeNATInside.Addr() {
		return "%any"
	}
	return l.outerM.String()
}

// The NAT topology of TestIKENAT: the inside host behind N's masquerade.
var (
	ikeNATInside  = netip.MustParsePrefix("192.0.2.1/25")
	ikeNATLan     = netip.MustParsePrefix("192.0.2.126/25")
	ikeNATWan     = netip.MustParsePrefix("192.0.2.129/25")
	ikeNATOutside = netip.MustParsePrefix("192.0.2.130/25")
)

// ikeNATRule is N's masquerade: every UDP flow leaves from port.
func ikeNATRule(port int) string {
	return fmt.Sprintf(`oifname "wan" meta l4proto udp masquerade to :%d`, port)
}

// newIKENATLab is newIKELab with a NAT router nsN between the two: the
// side named inside ("mipsec" or "charon") at 192.0.2.1 behind N's
// masquerade (192.0.2.126 | 192.0.2.129, every UDP flow from port 40001),
// the other at 192.0.2.130 outside, with no route back to the inside.
func newIKENATLab(t *testing.T, o ikeOptions, inside string) (*ikeLab, string) {
	t.Helper()
	charontest.Need(t)
	return newIKENATPairLab(t, o, inside)
}

// newIKENATPairLab is newIKENATLab without the need for charon (inside
// "charon" then means the peer in nsC).
func newIKENATPairLab(t *testing.T, o ikeOptions, inside string) (*ikeLab, string) {
	t.Helper()
	needEnv(t)
	testenv.NeedCommand(t, "nft")
	o.defaults()
	l := &ikeLab{t: t, o: o, nsM: newNetns(t), nsC: newNetns(t), dir: t.TempDir(), nat: true}
	nsN := newNetns(t)
	in, out := l.nsM, l.nsC
	l.outerM, l.outerC = ikeNATInside.Addr(), ikeNATOutside.Addr()
	if inside == "charon" {
		in, out = l.nsC, l.nsM
		l.outerM, l.outerC = ikeNATOutside.Addr(), ikeNATInside.Addr()
	}
	veth(t, in, nsN, "ul0", ikeNATInside, netip.Prefix{}, ikeNATLan, netip.Prefix{})
	run(t, "ip", "-n", nsN, "link", "set", "ul0", "name", "lan")
	veth(t, nsN, out, "wan", ikeNATWan, netip.Prefix{}, ikeNATOutside, netip.Prefix{})
	run(t, "ip", "-n", out, "link", "set", "wan", "name", "ul0")
	run(t, "ip", "-n", in, "route", "add", netip.PrefixFrom(ikeNATWan.Addr(), 25).Masked().String(), "via", ikeNATLan.Addr().String())
	if err := inNetns(nsN, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	nft(t, nsN, "table ip nat {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\t"+ikeNATRule(40001)+"\n\t}\n}\n")
	return l, nsN
}

// TestIKENAT: a real NAT (nftables masquerade, source port 40001) between
// mipsec and charon. Behind it, mipsec finds itself behind a NAT (RFC
// 7296 §2.23), floats to 4500 and sends ESP in UDP through it. With
// charon behind it, mipsec answers at the NAT's address and port, and
// when the mapping changes it follows charon's next authenticated request
// (a liveness check) to the new port, ESP included.
func TestIKENAT(t *testing.T) {
	t.Run("mipsec-inside", func(t *testing.T) {
		l, _ := newIKENATLab(t, ikeOptions{}, "mipsec")
		l.startCharon("none")
		l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		m := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
		c := l.waitCharonSA(5 * time.Second)
		l.checkMatch(m, c, true)
		nat := netip.AddrPortFrom(ikeNATWan.Addr(), 40001)
		if !m.NATLocal || !m.Encap || m.Local != netip.AddrPortFrom(l.outerM, 4500).String() || !c.NATRemote || c.Remote != nat {
			t.Errorf("NAT: mipsec %s -> %s nat_local %v nat_remote %v encap %v; charon %v -> %v nat-remote %v (want %v)",
				m.Local, m.Remote, m.NATLocal, m.NATRemote, m.Encap, c.Local, c.Remote, c.NATRemote, nat)
		}
		l.traffic(ikeTransferSize)
	})
	t.Run("charon-inside-rebinding", func(t *testing.T) {
		l, nsN := newIKENATLab(t, ikeOptions{startAction: "none", charonDPD: time.Second}, "charon")
		cfg := l.mipsecConfig("M")
		cfg.Remote = "%any"
		l.startCharon("none")
		l.gw = l.startMipsec("M", l.nsM, cfg)
		if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
		l.checkMatch(m, l.waitCharonSA(time.Second), false)
		if want := netip.AddrPortFrom(ikeNATWan.Addr(), 40001).String(); !m.NATRemote || m.NATLocal || m.Remote != want {
			t.Errorf("NAT: mipsec %s -> %s nat_local %v nat_remote %v, want the peer at %s", m.Local, m.Remote, m.NATLocal, m.NATRemote, want)
		}
		l.traffic(0)

		// New mappings in the middle of TCP transfers. To charon's side
		// first: charon's packets now leave N from port 40002, and mipsec's
		// ESP to 40001 is dropped there until charon sends again — its
		// liveness check after dpd_delay (1 s), as it hears nothing. The
		// stall is charon's silence (up to 2 dpd_delay: it checks for
		// inbound traffic each period), the check's round trip and TCP's
		// retransmission backoff (RTO 200 ms, doubled).
		l.rebindDuringTCP(nsN, 40002, false, 4*time.Second)
		// From charon's side: charon's ESP from port 40003 passes mipsec's
		// ICV and replay checks, and mipsec moves its ESP and the IKE SA
		// there at once (esp_moves; RFC 7296 §2.23), so that charon's data
		// is acknowledged without waiting for an IKE message.
		moves := ikeStats(t, l.gw).ESPMoves
		l.rebindDuringTCP(nsN, 40003, true, time.Second)
		if n := ikeStats(t, l.gw).ESPMoves - moves; n < 1 {
			t.Errorf("mipsec counted %d esp_moves after charon's ESP came from a new mapping, want 1", n)
		}
		want := netip.AddrPortFrom(ikeNATWan.Addr(), 40003).String()
		sas := waitMipsec(t, l.gw, 5*time.Second, "following charon to "+want, func(sas []control.IKESAInfo) bool {
			return len(sas) == 1 && sas[0].Remote == want
		})
		if sas[0].SPIi != m.SPIi {
			t.Errorf("a new IKE SA %v instead of the old one %v at the new port", sas[0].SPIi, m.SPIi)
		}
		// mipsec's ESP goes to the new port as well (it does not create
		// the mapping: only charon's packets do).
		mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
		l.traffic(1 << 20)
	})
}

// rebindDuringTCP changes the NAT's mapping (nftables in nsN: charon's
// packets now leave from port) when a 4 MiB TCP transfer is 1 MiB in, from
// mipsec's side to charon's or, with fromCharon, the other way, and fails
// the test unless the transfer completes intact with no stall over
// maxStall.
func (l *ikeLab) rebindDuringTCP(nsN string, port int, fromCharon bool, maxStall time.Duration) {
	t := l.t
	t.Helper()
	var rebound time.Time
	var w stallWatch
	progress := w.wrap(func(sent int) {
		if rebound.IsZero() && sent >= 1<<20 {
			nft(t, nsN, "flush chain ip nat post\nadd rule ip nat post "+ikeNATRule(port)+"\n")
			if err := inNetns(nsN, func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) }); err != nil {
				t.Error(err)
			}
			rebound = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srvNS, dst, cliNS, src := l.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), l.nsM, ikeSiteM.Addr()
	if fromCharon {
		srvNS, dst, cliNS, src = l.nsM, netip.AddrPortFrom(ikeSiteM.Addr(), 5202), l.nsC, ikeSiteC.Addr()
	}
	res, err := tcpTransfer(ctx, srvNS, dst, cliNS, src, payload(4<<20), progress)
	if err != nil {
		t.Fatalf("TCP %v -> %v across the new mapping (port %d): %v", src, dst, port, err)
	}
	t.Logf("TCP %v -> %v across the new mapping (port %d): %v; longest stall %v at %d KiB", src, dst, port, res, w.max.Round(time.Millisecond), w.at>>10)
	if rebound.IsZero() || w.max > maxStall {
		t.Errorf("mapping changed: %v; the stream stalled %v, want at most %v", !rebound.IsZero(), w.max, maxStall)
	}
}

// ikeDatagram is the UDP payload of an IPv4 frame f from port sport to
// port dport, or nil.
func ikeDatagram(f []byte, sport, dport uint16) []byte {
	if len(f) < 14+20+8 || f[12] != 0x08 || f[13] != 0x00 {
		return nil
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != 17 || len(ip) < ihl+8 {
		return nil
	}
	udp := ip[ihl:]
	if uint16(udp[0])<<8|uint16(udp[1]) != sport || uint16(udp[2])<<8|uint16(udp[3]) != dport {
		return nil
	}
	return udp[8:]
}

// sendUDP sends each datagram from a fresh socket in ns (a new source
// port each) to dst.
func sendUDP(t *testing.T, ns string, src netip.Addr, dst netip.AddrPort, dgs ...[]byte) {
	t.Helper()
	err := inNetns(ns, func() error {
		for _, d := range dgs {
			c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
			if err != nil {
				return err
			}
			_, err = c.Write(d)
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIKEHostile: a responder under attack from the network. Replayed
// IKE_SA_INIT requests (charon's own, with new SPIs, from new ports)
// beyond cookie_threshold are answered with a COOKIE and kept nowhere
// (RFC 7296 §2.6); garbage on UDP 500 and 4500 and a forged message on
// the established SA (its SPIs, a bogus SK payload, from another port)
// are counted and dropped: the SA neither changes nor moves (§2.23 floats
// only on checked requests). Then charon connects again while the
// replays are still half-open: mipsec asks it for a cookie, charon
// retries with it, and the new SA carries traffic.
func TestIKEHostile(t *testing.T) {
	l := newIKELab(t, ikeOptions{startAction: "none"})
	var inits [][]byte
	cp, err := netlab.StartCaptureOpts(l.nsM, "ul0", netlab.CaptureOptions{Marker: marker, Keep: func(f netlab.Frame) bool {
		return f.Kind == netlab.Other && f.Src == l.outerC.String()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	l.startCharon("none")
	cfg := l.mipsecConfig("M")
	const threshold = 2
	cfg.CookieThreshold = threshold
	l.gw = l.startMipsec("M", l.nsM, cfg)
	if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	for _, k := range cp.Kept() {
		if d := ikeDatagram(k.Data, 500, 500); len(d) > 28 && d[18] == 34 { // IKE_SA_INIT
			inits = append(inits, bytes.Clone(d))
		}
	}
	cp.Close()
	if len(inits) == 0 {
		t.Fatal("captured no IKE_SA_INIT request of charon's")
	}
	before := ikeStats(t, l.gw)

	// Replays with new initiator SPIs: threshold of them half-open, the
	// rest asked for a cookie.
	const replays = 6
	var dgs [][]byte
	for i := range replays {
		d := bytes.Clone(inits[0])
		copy(d[0:8], []byte{0xe2, 0xe0, 0, 0, 0, 0, 0, byte(i + 1)})
		dgs = append(dgs, d)
	}
	ike500 := netip.AddrPortFrom(l.outerM, 500)
	ike4500 := netip.AddrPortFrom(l.outerM, 4500)
	sendUDP(t, l.nsC, l.outerC, ike500, dgs...)
	// Garbage: too short, a length field past the datagram, a non-ESP
	// marker and noise, and a forged INFORMATIONAL on the SA's SPIs.
	hdr := func(spii, spir uint64, exch, flags byte, msgID, length uint32) []byte {
		b := make([]byte, 28)
		binary.BigEndian.PutUint64(b[0:], spii)
		binary.BigEndian.PutUint64(b[8:], spir)
		b[16], b[17], b[18], b[19] = 46, 0x20, exch, flags // next payload SK, version 2.0
		binary.BigEndian.PutUint32(b[20:], msgID)
		binary.BigEndian.PutUint32(b[24:], length)
		return b
	}
	// An INFORMATIONAL request from the initiator (charon) with the next
	// message ID (2, after IKE_SA_INIT and IKE_AUTH): it must fail the
	// integrity check and leave the window where it is, so that charon's
	// real request 2 (the Delete below) is taken.
	forged := hdr(uint64(m.SPIi), uint64(m.SPIr), 37, 0x08, 2, 28+4+64)
	forged = append(forged, 0, 0, 0, 4+64) // SK payload header: next none
	forged = append(forged, bytes.Repeat([]byte{0x5a}, 64)...)
	sendUDP(t, l.nsC, l.outerC, ike500, []byte{1, 2, 3}, hdr(1, 0, 34, 0x08, 0, 10000))
	sendUDP(t, l.nsC, l.outerC, ike4500, append([]byte{0, 0, 0, 0}, bytes.Repeat([]byte{0xa5}, 40)...),
		append([]byte{0, 0, 0, 0}, forged...))
	time.Sleep(500 * time.Millisecond)

	st := ikeStats(t, l.gw)
	t.Logf("mipsec after the attack: half-open %d, cookies sent %d, failures %v", st.HalfOpen, st.CookiesSent, st.Failures)
	if st.HalfOpen != threshold || st.CookiesSent-before.CookiesSent != replays-threshold {
		t.Errorf("half-open %d (want %d), cookies sent %d (want %d)", st.HalfOpen, threshold, st.CookiesSent-before.CookiesSent, replays-threshold)
	}
	if st.Failures["malformed"]-before.Failures["malformed"] < 2 {
		t.Errorf("malformed: %d more, want at least 2 (%v)", st.Failures["malformed"]-before.Failures["malformed"], st.Failures)
	}
	if st.Failures["integrity"]-before.Failures["integrity"] != 1 {
		t.Errorf("the forged message: integrity failures %d, want 1 (%v)", st.Failures["integrity"]-before.Failures["integrity"], st.Failures)
	}
	if !l.gw.Running() {
		t.Fatal("mipsec died")
	}
	list := mustIKEList(t, l.gw)
	if len(list) != 1+threshold {
		t.Errorf("mipsec lists %d IKE SAs, want the established one and %d half-open: %+v", len(list), threshold, list)
	}
	now, ok := established(list, ikeConnM)
	if !ok || now.SPIi != m.SPIi || now.Remote != m.Remote || now.Children[0].SPIIn != m.Children[0].SPIIn {
		t.Fatalf("mipsec's SA after the attack: %+v, was %+v", now, m)
	}
	l.traffic(0)

	// A new SA from charon while the replays are half-open: COOKIE, then
	// charon's retry with it (§2.6).
	if err := l.charon.Terminate(ikeConnC); err != nil {
		t.Fatal(err)
	}
	waitMipsec(t, l.gw, 3*time.Second, "without an established SA", func(sas []control.IKESAInfo) bool {
		for _, sa := range sas {
			if sa.State != "connecting" {
				return false
			}
		}
		return true
	})
	cookies := ikeStats(t, l.gw).CookiesSent
	if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m = waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
	l.checkMatch(m, l.waitCharonSA(time.Second), false)
	if n := ikeStats(t, l.gw).CookiesSent - cookies; n != 1 {
		t.Errorf("mipsec sent %d cookies to charon's new initiation, want 1", n)
	}
	if log, _ := os.ReadFile(l.charon.LogPath()); !strings.Contains(string(log), "N(COOKIE)") {
		t.Errorf("charon's log shows no COOKIE")
	}
	l.traffic(1 << 20)
}

// TestIKEMipsecRecovery: two mipsec daemons from
// testdata/ike-gateway.toml.tmpl (M initiating with dpd_delay 1s, C
// responding) over IPv6; C crashes (SIGKILL) and comes back without
// state. M's liveness check to the lost IKE SA goes unanswered (or is
// answered with an unprotected INVALID_IKE_SPI, which proves nothing,
// RFC 7296 §2.21.4), M gives up on it after its retransmissions and
// establishes a new SA, and traffic flows again.
func TestIKEMipsecRecovery(t *testing.T) {
	t.Parallel() // mostly waiting
	l := newIKEPairLab(t, ikeOptions{outer6: true, dpdDelay: "1s", retransmit: "250ms", retransmits: 3})
	m := l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	c := l.startMipsec("C", l.nsC, l.peerConfig())
	first := waitMipsecSA(t, m, ikeConnM, 10*time.Second)
	sc := waitMipsecSA(t, c, ikeConnC, 5*time.Second)
	if sc.SPIi != first.SPIi || sc.Initiator || sc.Children[0].SPIIn != first.Children[0].SPIOut || sc.Encap || first.Encap {
		t.Errorf("IKE SAs: M %+v, C %+v (want the same SPIs, no UDP without a NAT)", first, sc)
	}
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)

	c.stop(syscall.SIGKILL)
	c.start()
	crashed := time.Now()
	again := waitMipsec(t, m, 15*time.Second, "re-established", func(sas []control.IKESAInfo) bool {
		sa, ok := established(sas, ikeConnM)
		return ok && sa.SPIi != first.SPIi
	})
	t.Logf("M re-established %v after C's crash", time.Since(crashed).Round(10*time.Millisecond))
	nc := waitMipsecSA(t, c, ikeConnC, 5*time.Second)
	if na, _ := established(again, ikeConnM); nc.SPIi != na.SPIi || nc.Children[0].SPIIn != na.Children[0].SPIOut {
		t.Errorf("after the crash: M %+v, C %+v", na, nc)
	}
	if st := ikeStats(t, m); st.Failures["timeout"] == 0 {
		t.Errorf("M: no timed-out exchange counted: %v", st.Failures)
	}
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tcpTransfer(ctx, l.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), l.nsM, ikeSiteM.Addr(), payload(1<<20), nil); err != nil {
		t.Fatal(err)
	}
}

// pingFor pings from src to dst in ns every 100 ms for d and returns how
// many of the echoes went unanswered (each retried up to 3 times).
func pingFor(t *testing.T, ns string, src, dst netip.Addr, d time.Duration) (sent, lost int) {
	t.Helper()
	p, err := netlab.NewPinger(ns, src, dst, []byte("mipsec e2e rekey ping"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for end := time.Now().Add(d); time.Now().Before(end); sent++ {
		if rtt, err := p.Echo(context.Background(), sent+1, 3, 300*time.Millisecond); err != nil || rtt == 0 {
			lost++
		}
		time.Sleep(100 * time.Millisecond)
	}
	return sent, lost
}

// TestIKERekeyTimers: rekeys by lifetime (the child's rekey_time 2s,
// life_time 6s; the IKE SA's rekey_time 5s) for 9 s of pings, against
// charon and between two mipsec daemons with the same timers (so their
// rekeys collide, RFC 7296 §2.8.1): no ping is lost, the SPIs change, the
// old SAs go, and both sides agree at the end.
func TestIKERekeyTimers(t *testing.T) {
	const run = 9 * time.Second
	timers := func(c *ikeGWConfig) { c.RekeyTime, c.LifeTime, c.IKERekeyTime = "2s", "6s", "5s" }
	settle := func(t *testing.T, g *gateway, name string) control.IKESAInfo {
		t.Helper()
		return waitMipsec(t, g, 5*time.Second, "settled", func(sas []control.IKESAInfo) bool {
			_, ok := established(sas, name)
			return ok && len(sas) == 1
		})[0]
	}
	t.Parallel() // mostly waiting
	t.Run("charon", func(t *testing.T) {
		t.Parallel()
		l := newIKELab(t, ikeOptions{})
		l.startCharon("none")
		cfg := l.mipsecConfig("M")
		timers(&cfg)
		l.gw = l.startMipsec("M", l.nsM, cfg)
		first := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
		l.waitCharonSA(5 * time.Second)
		sent, lost := pingFor(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), run)
		st := ikeStats(t, l.gw)
		t.Logf("%d pings, %d lost; mipsec rekeys %d, failures %v", sent, lost, st.Rekeys, st.Failures)
		if lost > 0 {
			t.Errorf("%d of %d pings lost across the rekeys", lost, sent)
		}
		if st.Rekeys < 4 {
			t.Errorf("mipsec counted %d rekeys in %v, want at least 4 (children every 2 s, the IKE SA after 5 s)", st.Rekeys, run)
		}
		m := settle(t, l.gw, ikeConnM)
		if m.SPIi == first.SPIi || m.Children[0].SPIIn == first.Children[0].SPIIn {
			t.Errorf("SPIs unchanged after %v: %+v", run, m)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			// The rekeys go on (every 2 s); charon keeps rekeyed children,
			// DELETED, for 5 s.
			c, err := l.charon.IKESA(ikeConnC)
			if in := c.Installed(ikeChild); err == nil && len(in) == 1 && in[0].SPIIn == uint32(m.Children[0].SPIOut) && c.InitiatorSPI == uint64(m.SPIi) {
				l.checkMatch(m, c, m.Initiator)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("charon does not settle on mipsec's SA %+v: %+v, %v", m, c, err)
			}
			time.Sleep(200 * time.Millisecond)
			m = settle(t, l.gw, ikeConnM)
		}
		if sas, _ := ipsecTables(t, l.gw); sas > 4 {
			t.Errorf("mipsec keeps %d ESP SAs", sas)
		}
		l.traffic(1 << 20)
	})
	t.Run("mipsec-pair", func(t *testing.T) {
		t.Parallel()
		l := newIKEPairLab(t, ikeOptions{})
		cfgM := l.mipsecConfig("M")
		timers(&cfgM)
		a := l.startMipsec("M", l.nsM, cfgM)
		cfg := l.peerConfig()
		timers(&cfg)
		b := l.startMipsec("C", l.nsC, cfg)
		first := waitMipsecSA(t, a, ikeConnM, 10*time.Second)
		waitMipsecSA(t, b, ikeConnC, 5*time.Second)
		sent, lost := pingFor(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), run)
		sa, sb := ikeStats(t, a), ikeStats(t, b)
		collisions := strings.Count(a.Log.String(), "rekey collision") + strings.Count(b.Log.String(), "rekey collision")
		t.Logf("%d pings, %d lost; rekeys M %d C %d; %d collision log lines; failures M %v C %v", sent, lost, sa.Rekeys, sb.Rekeys, collisions, sa.Failures, sb.Failures)
		if lost > 0 {
			t.Errorf("%d of %d pings lost across the rekeys", lost, sent)
		}
		var ma, mb control.IKESAInfo
		deadline := time.Now().Add(10 * time.Second)
		for {
			ma, mb = settle(t, a, ikeConnM), settle(t, b, ikeConnC)
			if ma.SPIi == mb.SPIi && ma.SPIr == mb.SPIr && ma.Children[0].SPIIn == mb.Children[0].SPIOut && ma.Children[0].SPIOut == mb.Children[0].SPIIn {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the two do not settle on one SA: M %+v, C %+v", ma, mb)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if ma.SPIi == first.SPIi || ma.Children[0].SPIIn == first.Children[0].SPIIn {
			t.Errorf("SPIs unchanged after %v: %+v", run, ma)
		}
		for name, g := range map[string]*gateway{"M": a, "C": b} {
			if sas, _ := ipsecTables(t, g); sas > 4 {
				t.Errorf("%s keeps %d ESP SAs", name, sas)
			}
		}
		mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)
	})
}
