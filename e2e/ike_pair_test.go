package e2e

// mipsec ↔ mipsec: the IKEv2 scenarios that ike_test.go and
// ike_cert_test.go run against charon, between two `mipsec run` daemons
// (M in nsM, C in nsC, on the topology of ike_test.go, raw ESP, no NAT):
//
//   - the proposal matrix, each side initiating, IPv4 and IPv6 outer
//     addresses (RFC 7296 §1.2, §2.7, §3.3): both list one SA, the same
//     IKE SPIs, crossed ESP SPIs, the same suite, initiator on one side;
//   - extended sequence numbers (RFC 4303 §2.2.1, RFC 7296 §3.3.2) agreed,
//     and one side's esn against the other's noesn: NO_PROPOSAL_CHOSEN for
//     the child, the IKE SA up without it (§1.2, §2.21.2);
//   - Delete from either side (INFORMATIONAL, §1.4.1) and shutdown;
//   - a wrong pre-shared key, each side initiating (§2.15, §2.21.2);
//   - certificates (§3.6, §3.7, RFC 7427), RSA and ECDSA, and refused
//     identities (§2.15, §3.5).
//
// The helpers are prefixed pair; the lab is ike_test.go's
// (newIKEPairLab, mipsecConfig, peerConfig).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/charontest"
	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

// pairSlots bounds the pairs of this file that run at once.
var pairSlots = make(chan struct{}, 4)

// pairParallel marks t parallel and waits for a slot, freed at its end.
func pairParallel(t *testing.T) {
	t.Helper()
	t.Parallel()
	pairSlots <- struct{}{}
	t.Cleanup(func() { <-pairSlots })
}

// pairDuo is an ikeLab with a mipsec on both ends: m (connection
// ikeConnM) and c (connection ikeConnC), and the identities each should
// list for itself.
type pairDuo struct {
	*ikeLab
	m, c       *gateway
	idM, idC   string
	mInitiates bool
	started    time.Time
}

// pairWritePSK writes key into a new file of l's directory.
func pairWritePSK(l *ikeLab, name, key string) string {
	l.t.Helper()
	path := filepath.Join(l.dir, name)
	if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return path
}

// pairStart makes the lab and starts both daemons, C first (so that M's
// first IKE_SA_INIT finds it); tweakM and tweakC, if set, edit the
// configs. C's key is always ikePSK (peerConfig would give it o.mipsecPSK
// as well). mInitiates: M's start_action is "start", else "none".
func pairStart(t *testing.T, o ikeOptions, mInitiates bool, tweakM, tweakC func(*ikeGWConfig)) *pairDuo {
	t.Helper()
	o.startAction = "none"
	if mInitiates {
		o.startAction = "start"
	}
	l := newIKEPairLab(t, o)
	d := &pairDuo{ikeLab: l, idM: ikeIDM, idC: ikeIDC, mInitiates: mInitiates}
	cfgC := l.peerConfig()
	cfgC.PSKFile = pairWritePSK(l, "C-right.psk", ikePSK)
	if tweakC != nil {
		tweakC(&cfgC)
	}
	cfgM := l.mipsecConfig("M")
	if tweakM != nil {
		tweakM(&cfgM)
	}
	d.c = l.startMipsec("C", l.nsC, cfgC)
	d.started = time.Now()
	d.m = l.startMipsec("M", l.nsM, cfgM)
	return d
}

// initiateC brings the SA up from C with `mipsec ike initiate`, which
// waits for the exchange: its output and error.
func (d *pairDuo) initiateC() (string, error) {
	return d.c.ctl("ike", "initiate", ikeConnC, "--timeout", "10s")
}

// up waits for the SA on both sides and checks that it is one SA:
// the same IKE SPIs and suite, containing the configured IKE proposal,
// ESP SPIs crossed, the same ESP suite, containing esp, the initiator on
// exactly one side, the identities, the selectors, raw ESP (no NAT,
// §2.23), and each side's two ESP SAs installed.
func (d *pairDuo) up(esp string) (m, c control.IKESAInfo) {
	t := d.t
	t.Helper()
	first, second, firstName, secondName := d.m, d.c, ikeConnM, ikeConnC
	if !d.mInitiates {
		first, second, firstName, secondName = d.c, d.m, ikeConnC, ikeConnM
	}
	a := waitMipsecSA(t, first, firstName, 10*time.Second)
	b := waitMipsecSA(t, second, secondName, 5*time.Second)
	m, c = a, b
	if !d.mInitiates {
		m, c = b, a
	}
	t.Logf("SA up %v after the start: M %s %v/%v, child %s in %v out %v", time.Since(d.started).Round(time.Millisecond),
		m.Suite, m.SPIi, m.SPIr, m.Children[0].Suite, m.Children[0].SPIIn, m.Children[0].SPIOut)
	if m.SPIi == 0 || m.SPIr == 0 || m.SPIi != c.SPIi || m.SPIr != c.SPIr {
		t.Errorf("IKE SPIs: M %v/%v, C %v/%v", m.SPIi, m.SPIr, c.SPIi, c.SPIr)
	}
	if m.Initiator != d.mInitiates || c.Initiator == d.mInitiates {
		t.Errorf("initiator: M %v, C %v; want M %v", m.Initiator, c.Initiator, d.mInitiates)
	}
	if m.Suite != c.Suite || !suiteHas(m.Suite, d.o.ikeProposal) {
		t.Errorf("IKE suites: M %q, C %q; want both with %s", m.Suite, c.Suite, d.o.ikeProposal)
	}
	if m.LocalID != d.idM || m.RemoteID != d.idC || c.LocalID != d.idC || c.RemoteID != d.idM {
		t.Errorf("identities: M %q -> %q, C %q -> %q; want %q <-> %q", m.LocalID, m.RemoteID, c.LocalID, c.RemoteID, d.idM, d.idC)
	}
	if m.Encap || c.Encap || m.NATLocal || m.NATRemote || c.NATLocal || c.NATRemote {
		t.Errorf("NAT/encap without a NAT: M %+v, C %+v", m, c)
	}
	if want := netip.AddrPortFrom(d.outerC, 500).String(); m.Remote != want {
		t.Errorf("M's peer %s, want %s", m.Remote, want)
	}
	mc, cc := m.Children[0], c.Children[0]
	if mc.SPIIn == 0 || mc.SPIOut == 0 || mc.SPIIn != cc.SPIOut || mc.SPIOut != cc.SPIIn {
		t.Errorf("ESP SPIs: M in %v out %v, C in %v out %v", mc.SPIIn, mc.SPIOut, cc.SPIIn, cc.SPIOut)
	}
	if mc.Suite != cc.Suite || !suiteHas(mc.Suite, esp) || mc.Mode != "tunnel" || cc.Mode != "tunnel" {
		t.Errorf("children: M %q %s, C %q %s; want %s, tunnel", mc.Suite, mc.Mode, cc.Suite, cc.Mode, esp)
	}
	if mc.Name != ikeChild || cc.Name != ikeChild ||
		strings.Join(mc.LocalTS, ",") != ikeNetM || strings.Join(mc.RemoteTS, ",") != ikeNetC ||
		strings.Join(cc.LocalTS, ",") != ikeNetC || strings.Join(cc.RemoteTS, ",") != ikeNetM {
		t.Errorf("TS: M %s %v === %v, C %s %v === %v", mc.Name, mc.LocalTS, mc.RemoteTS, cc.Name, cc.LocalTS, cc.RemoteTS)
	}
	for name, g := range map[string]*gateway{"M": d.m, "C": d.c} {
		if sas, pols := ipsecTables(t, g); sas != 2 || pols < 2 {
			t.Errorf("%s with the child up: %d ESP SAs, %d policies; want 2 and the child's", name, sas, pols)
		}
		if st := ikeStats(t, g); st.IKESAs != 1 || st.ChildSAs != 1 || st.HalfOpen != 0 || st.Failures["auth_failed"] != 0 || st.Failures["no_proposal"] != 0 {
			t.Errorf("%s stats with the SA up: %+v", name, st)
		}
	}
	return m, c
}

// pairSAList is `mipsec sa list --json` of g.
func pairSAList(t *testing.T, g *gateway) []control.SAInfo {
	t.Helper()
	out, err := g.ctl("sa", "list", "--json")
	if err != nil {
		t.Fatalf("mipsec sa list --json: %v", err)
	}
	var sas []control.SAInfo
	if err := json.Unmarshal([]byte(out), &sas); err != nil {
		t.Fatalf("mipsec sa list --json: %v:\n%s", err, out)
	}
	return sas
}

// carry pings both ways and sends size bytes over TCP from M's side to
// C's and a quarter of that back (SHA-256 checked); then each side's ESP
// SAs have carried packets both ways, with ESN as esn says (RFC 4303
// §2.2.1).
func (d *pairDuo) carry(size int, esn bool) {
	t := d.t
	t.Helper()
	mustPing(t, d.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
	mustPing(t, d.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := tcpTransfer(ctx, d.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), d.nsM, ikeSiteM.Addr(), payload(size), nil)
	if err != nil {
		t.Fatalf("TCP %v -> %v: %v", ikeSiteM.Addr(), ikeSiteC.Addr(), err)
	}
	t.Logf("TCP %v -> %v: %v", ikeSiteM.Addr(), ikeSiteC.Addr(), res)
	if res, err = tcpTransfer(ctx, d.nsM, netip.AddrPortFrom(ikeSiteM.Addr(), 5202), d.nsC, ikeSiteC.Addr(), payload(size/4), nil); err != nil {
		t.Fatalf("TCP %v -> %v: %v", ikeSiteC.Addr(), ikeSiteM.Addr(), err)
	}
	t.Logf("TCP %v -> %v: %v", ikeSiteC.Addr(), ikeSiteM.Addr(), res)
	for name, g := range map[string]*gateway{"M": d.m, "C": d.c} {
		sas := pairSAList(t, g)
		dirs := map[string]bool{}
		for _, sa := range sas {
			dirs[sa.Dir] = true
			// 3 pings and the TCP segments of at least size/4 bytes.
			if sa.Stats.Packets < uint64(3+size/4/1400) || sa.ESN != esn || sa.Mode != "tunnel" {
				t.Errorf("%s's ESP SA %s %v: %d packets, esn %v, mode %s; want traffic, esn %v, tunnel", name, sa.Dir, sa.SPI, sa.Stats.Packets, sa.ESN, sa.Mode, esn)
			}
		}
		if len(sas) != 2 || len(dirs) != 2 {
			t.Errorf("%s's ESP SAs: %+v, want one each way", name, sas)
		}
	}
}

// pairNoTraffic fails t if a ping gets through the tunnel either way.
func pairNoTraffic(t *testing.T, l *ikeLab) {
	t.Helper()
	for _, p := range []struct {
		ns       string
		src, dst netip.Addr
	}{{l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr()}, {l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr()}} {
		pg, err := netlab.NewPinger(p.ns, p.src, p.dst, []byte("mipsec e2e ping"))
		if err != nil {
			t.Fatal(err)
		}
		rtt, err := pg.Echo(context.Background(), 1, 1, 500*time.Millisecond)
		pg.Close()
		if err == nil && rtt > 0 {
			t.Errorf("ping %v -> %v answered with no SA", p.src, p.dst)
		}
	}
}

// gone waits until neither side lists an IKE SA and then checks that
// neither keeps an ESP SA, a policy or a counted SA, and that no ping
// gets through.
func (d *pairDuo) gone(timeout time.Duration) {
	t := d.t
	t.Helper()
	waitMipsecNoSA(t, d.m, timeout)
	waitMipsecNoSA(t, d.c, timeout)
	for name, g := range map[string]*gateway{"M": d.m, "C": d.c} {
		if sas, pols := ipsecTables(t, g); sas != 0 || pols != 0 {
			t.Errorf("%s: %d ESP SAs, %d policies left", name, sas, pols)
		}
		if st := ikeStats(t, g); st.IKESAs != 0 || st.ChildSAs != 0 || st.HalfOpen != 0 {
			t.Errorf("%s stats: %+v, want no SA", name, st)
		}
	}
	pairNoTraffic(t, d.ikeLab)
}

// pairLogLines are g's log lines that contain s.
func pairLogLines(g *gateway, s string) []string {
	var out []string
	for _, ln := range strings.Split(g.Log.String(), "\n") {
		if strings.Contains(ln, s) {
			out = append(out, ln)
		}
	}
	return out
}

// pairWaitFailures waits until g has counted n failures of reason.
func pairWaitFailures(t *testing.T, g *gateway, reason string, n uint64, timeout time.Duration) control.IKEStatsInfo {
	t.Helper()
	var st control.IKEStatsInfo
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st = ikeStats(t, g); st.Failures[reason] >= n {
			return st
		}
	}
	t.Fatalf("mipsec %s counted %d %s in %v, want %d: %+v", g.name, st.Failures[reason], reason, timeout, n, st)
	return st
}

// pairLogTimes are the times of g's log lines with msg.
func pairLogTimes(t *testing.T, g *gateway, msg string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, ln := range pairLogLines(g, `"msg":"`+msg+`"`) {
		var rec struct {
			TS string `json:"ts"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(ln)), &rec); err != nil {
			t.Fatalf("log line %q: %v", ln, err)
		}
		ts, err := time.Parse(time.RFC3339Nano, rec.TS)
		if err != nil {
			t.Fatalf("log line %q: %v", ln, err)
		}
		out = append(out, ts)
	}
	return out
}

// stopRetries is `mipsec ike terminate` on M with no SA up: it ends the
// start_action = "start" retries (ike.Daemon.Terminate clears the retry).
func (d *pairDuo) stopRetries() {
	d.t.Helper()
	if out, err := d.m.ctl("ike", "terminate", ikeConnM); err != nil {
		d.t.Fatalf("M: mipsec ike terminate: %v\n%s", err, out)
	}
}

// TestIKEPairProposals: the proposal matrix of TestIKECharonResponder
// and TestIKECharonInitiator between two mipsecs, each IKE and each ESP
// proposal once for each initiator (M by start_action = "start", C by
// `mipsec ike initiate`), over IPv4 and IPv6 outer addresses; the SA
// matches on both sides and carries ping and 1 MiB of TCP.
func TestIKEPairProposals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		o    ikeOptions
	}{
		{"aes128gcm16-prfsha256-curve25519/aes128gcm16/v4", ikeOptions{}},
		{"aes256gcm16-prfsha384-ecp256/aes256gcm16/v6", ikeOptions{ikeProposal: "aes256gcm16-prfsha384-ecp256", espProposal: "aes256gcm16", outer6: true}},
		{"aes128-sha256-modp2048/chacha20poly1305/v4", ikeOptions{ikeProposal: "aes128-sha256-modp2048", espProposal: "chacha20poly1305"}},
		{"aes128gcm16-prfsha256-curve25519/aes128-sha256/v6", ikeOptions{espProposal: "aes128-sha256", outer6: true}},
	} {
		for _, initiator := range []string{"M", "C"} {
			t.Run(initiator+"-initiates/"+tt.name, func(t *testing.T) {
				pairParallel(t)
				d := pairStart(t, tt.o, initiator == "M", nil, nil)
				if initiator == "C" {
					time.Sleep(200 * time.Millisecond)
					if sas := mustIKEList(t, d.m); len(sas) != 0 {
						t.Fatalf("M with start_action none has IKE SAs before C's initiate: %+v", sas)
					}
					out, err := d.initiateC()
					if err != nil {
						t.Fatalf("C: mipsec ike initiate: %v\n%s", err, out)
					}
					if !strings.HasPrefix(out, "initiated "+ikeConnC+": IKE SA #") || !strings.Contains(out, "child "+ikeChild) {
						t.Errorf("C: mipsec ike initiate said %q", out)
					}
				}
				d.up(d.o.espProposal)
				d.carry(1<<20, false)
			})
		}
	}
}

// TestIKEPairESN: extended sequence numbers (RFC 4303 §2.2.1), the ESN
// transform of RFC 7296 §3.3.2. Both sides with "aes128gcm16-esn": the
// child's suite and both ESP SAs say esn, and traffic passes. One side
// with esn only and the other with no ESN only (ike/proposal.go: a
// proposal without an ESN token offers "no ESN" alone): no ESP proposal
// matches, the responder answers NO_PROPOSAL_CHOSEN in IKE_AUTH, both
// count no_proposal, and the IKE SA stays up without the child (§1.2,
// §2.21.2), with nothing installed and no traffic.
func TestIKEPairESN(t *testing.T) {
	t.Parallel()
	t.Run("both-esn", func(t *testing.T) {
		pairParallel(t)
		d := pairStart(t, ikeOptions{espProposal: "aes128gcm16-esn"}, true, nil, nil)
		m, c := d.up("aes128gcm16-esn")
		for _, x := range []control.IKESAInfo{m, c} {
			if x.Children[0].Suite != "aes128gcm16-esn" {
				t.Errorf("child suite %q, want aes128gcm16-esn", x.Children[0].Suite)
			}
		}
		d.carry(1<<20, true)
	})
	for _, tt := range []struct {
		name       string
		mInitiates bool
		espM, espC string
	}{
		{"M-initiates/esn-against-noesn", true, "aes128gcm16-esn", "aes128gcm16"},
		{"C-initiates/esn-against-noesn", false, "aes128gcm16", "aes128gcm16-esn"},
		{"M-initiates/noesn-against-esn", true, "aes128gcm16-noesn", "aes128gcm16-esn"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pairParallel(t)
			d := pairStart(t, ikeOptions{}, tt.mInitiates,
				func(c *ikeGWConfig) { c.ESPProposals = []string{tt.espM} },
				func(c *ikeGWConfig) { c.ESPProposals = []string{tt.espC} })
			initiator, responder, iName, rName := d.m, d.c, ikeConnM, ikeConnC
			if !tt.mInitiates {
				initiator, responder, iName, rName = d.c, d.m, ikeConnC, ikeConnM
				out, err := d.initiateC()
				if err == nil {
					t.Errorf("C: mipsec ike initiate with a child the responder refuses succeeded: %s", out)
				}
				t.Logf("C: mipsec ike initiate: %v %s", err, strings.TrimSpace(out))
			}
			pairWaitFailures(t, responder, "no_proposal", 1, 10*time.Second)
			pairWaitFailures(t, initiator, "no_proposal", 1, 5*time.Second)
			onlyIKE := func(sas []control.IKESAInfo) bool {
				return len(sas) == 1 && sas[0].State == "established" && len(sas[0].Children) == 0
			}
			a := waitMipsec(t, initiator, 5*time.Second, "one IKE SA without children", onlyIKE)[0]
			b := waitMipsec(t, responder, 5*time.Second, "one IKE SA without children", onlyIKE)[0]
			if a.Name != iName || b.Name != rName || a.SPIi != b.SPIi || a.SPIr != b.SPIr || !a.Initiator || b.Initiator {
				t.Errorf("IKE SAs: initiator %+v, responder %+v", a, b)
			}
			// No retry of the child comes in the meantime, and nothing is
			// installed.
			time.Sleep(time.Second)
			for name, g := range map[string]*gateway{"initiator": initiator, "responder": responder} {
				sas := mustIKEList(t, g)
				if !onlyIKE(sas) || sas[0].SPIi != a.SPIi {
					t.Errorf("%s 1 s later: %+v", name, sas)
				}
				if n, p := ipsecTables(t, g); n != 0 || p != 0 {
					t.Errorf("%s: %d ESP SAs, %d policies", name, n, p)
				}
				st := ikeStats(t, g)
				if st.Failures["no_proposal"] != 1 || st.ChildSAs != 0 || st.IKESAs != 1 {
					t.Errorf("%s stats: %+v, want one no_proposal, one IKE SA and no child", name, st)
				}
			}
			pairNoTraffic(t, d.ikeLab)
		})
	}
}

// TestIKEPairDelete: TestIKEDelete between two mipsecs. M terminates
// (`mipsec ike terminate`: INFORMATIONAL with a Delete of the IKE SA,
// RFC 7296 §1.4.1); C initiates again and terminates; M initiates again
// and is stopped with SIGTERM (node closes the daemon first, so its
// Delete goes out). After each, neither side keeps an IKE SA, an ESP SA
// or a policy, and no ping gets through; an administrative terminate does
// not bring start_action = "start" back. (`mipsec ike terminate` takes
// no CHILD: a child alone cannot be deleted from the CLI.)
func TestIKEPairDelete(t *testing.T) {
	pairParallel(t)
	d := pairStart(t, ikeOptions{}, true, nil, nil)
	m, _ := d.up(d.o.espProposal)
	d.carry(64<<10, false)

	out, err := d.m.ctl("ike", "terminate", ikeConnM)
	if err != nil {
		t.Fatalf("M: mipsec ike terminate: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("terminated %s: IKE SA #%d deleted with child %s", ikeConnM, m.ID, ikeChild); !strings.HasPrefix(out, want) {
		t.Errorf("M: mipsec ike terminate said %q, want %q...", out, want)
	}
	d.gone(3 * time.Second)
	time.Sleep(time.Second)
	if sas := mustIKEList(t, d.m); len(sas) != 0 {
		t.Errorf("M 1 s after terminate (start_action start): %+v", sas)
	}

	// Up again from C, and C deletes it.
	d.mInitiates = false
	if out, err := d.initiateC(); err != nil {
		t.Fatalf("C: mipsec ike initiate: %v\n%s", err, out)
	}
	d.up(d.o.espProposal)
	d.carry(64<<10, false)
	if out, err := d.c.ctl("ike", "terminate", ikeConnC); err != nil {
		t.Fatalf("C: mipsec ike terminate: %v\n%s", err, out)
	}
	d.gone(3 * time.Second)

	// Up again from M, by the CLI, and M shut down.
	d.mInitiates = true
	if out, err := d.m.ctl("ike", "initiate", ikeConnM, "--timeout", "10s"); err != nil {
		t.Fatalf("M: mipsec ike initiate: %v\n%s", err, out)
	}
	d.up(d.o.espProposal)
	d.m.stop(syscall.SIGTERM)
	waitMipsecNoSA(t, d.c, 3*time.Second)
	if n, p := ipsecTables(t, d.c); n != 0 || p != 0 {
		t.Errorf("C after M's shutdown: %d ESP SAs, %d policies", n, p)
	}
	if st := ikeStats(t, d.c); st.IKESAs != 0 || st.ChildSAs != 0 || st.Failures["timeout"] != 0 {
		t.Errorf("C stats after M's shutdown: %+v", st)
	}
}

// TestIKEPairWrongPSK: TestIKEWrongPSK between two mipsecs: M's key
// differs from C's. The responder refuses the initiator's AUTH with
// AUTHENTICATION_FAILED (RFC 7296 §2.21.2), both count auth_failed and
// log it, and nothing is left on either side. C initiates
// once (`mipsec ike initiate` fails); M, with start_action = "start",
// tries again after [ike] retransmit << 1 = 1 s (ike/daemon.go
// scheduleRetry), which fails the same way, until `mipsec ike terminate`
// ends the retries.
func TestIKEPairWrongPSK(t *testing.T) {
	t.Parallel()
	for _, initiator := range []string{"M", "C"} {
		t.Run(initiator+"-initiates", func(t *testing.T) {
			pairParallel(t)
			d := pairStart(t, ikeOptions{mipsecPSK: ikeWrongPK}, initiator == "M", nil, nil)
			ini, resp, want := d.m, d.c, uint64(2)
			if initiator == "C" {
				ini, resp, want = d.c, d.m, 1
				out, err := d.initiateC()
				if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
					t.Fatalf("C: mipsec ike initiate with the wrong key: %v %s, want AUTHENTICATION_FAILED", err, out)
				}
			}
			pairWaitFailures(t, ini, "auth_failed", want, 10*time.Second)
			if initiator == "M" {
				d.stopRetries()
				if ts := pairLogTimes(t, d.m, "initiating IKE SA"); len(ts) != 2 || ts[1].Sub(ts[0]) < 900*time.Millisecond {
					t.Errorf("M's attempts at %v, want 2, 1 s apart", ts)
				}
			}
			time.Sleep(200 * time.Millisecond)
			// The responder logs each refusal; the initiator a failed
			// setup once per reason in a row (ike/exchange_init.go
			// setupFailed).
			for _, x := range []struct {
				name  string
				g     *gateway
				lines int
			}{{"initiator", ini, 1}, {"responder", resp, int(want)}} {
				name, g := x.name, x.g
				st := ikeStats(t, g)
				if st.Failures["auth_failed"] != want {
					t.Errorf("%s counted %d auth_failed, want %d (%v)", name, st.Failures["auth_failed"], want, st.Failures)
				}
				if lines := pairLogLines(g, `"auth_failed"`); len(lines) != x.lines {
					t.Errorf("%s logged %d lines with auth_failed, want %d:\n%s", name, len(lines), x.lines, strings.Join(lines, "\n"))
				} else {
					t.Logf("%s: %s", name, lines[0])
				}
				if len(pairLogLines(g, `"msg":"IKE SA up"`)) != 0 {
					t.Errorf("%s brought an IKE SA up", name)
				}
			}
			d.gone(2 * time.Second)
			time.Sleep(500 * time.Millisecond)
			if n := ikeStats(t, ini).Failures["auth_failed"]; n != want {
				t.Errorf("initiator counted %d auth_failed after the terminate, want still %d", n, want)
			}
		})
	}
}

// pairCertEnd is one side's certificate configuration.
type pairCertEnd struct {
	cert              *charontest.Cert
	localID, remoteID string // localID "": the certificate's subject DN
	cas               []string
	wantLocal         string // the identity it should list for itself
}

// pairStartCert is pairStart with certificates (testdata/
// ike-gateway-cert.toml.tmpl) on both sides.
func pairStartCert(t *testing.T, o ikeOptions, mInitiates bool, em, ec pairCertEnd) *pairDuo {
	t.Helper()
	o.startAction = "none"
	if mInitiates {
		o.startAction = "start"
	}
	l := newIKEPairLab(t, o)
	d := &pairDuo{ikeLab: l, idM: em.wantLocal, idC: ec.wantLocal, mInitiates: mInitiates}
	start := func(name, ns string, base ikeGWConfig, e pairCertEnd) *gateway {
		cfg := ikeCertGWConfig{ikeGWConfig: base, Cert: e.cert.CertPath, Key: e.cert.KeyPath, CACerts: e.cas}
		cfg.LocalID, cfg.RemoteID = e.localID, e.remoteID
		var b bytes.Buffer
		if err := ikeCertTemplate.Execute(&b, cfg); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(l.dir, name+"-cert.toml")
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		g := newGatewayFile(t, name, ns, path, gwConfig{Socket: cfg.Socket})
		g.start()
		return g
	}
	d.c = start("C", l.nsC, l.peerConfig(), ec)
	d.started = time.Now()
	d.m = start("M", l.nsM, l.mipsecConfig("M"), em)
	return d
}

// pairNeedPKI skips t without strongSwan's pki, which makes the
// certificates (internal/charontest).
func pairNeedPKI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(charontest.PKIPath); err != nil {
		testenv.SkipOrFail(t, "needs strongSwan's pki (make deps): %v", err)
	}
}

// pairCertEnds are the two ends with the FQDNs of ike_cert_test.go (dn:
// no local id, the subject DNs), certificates from p.
func pairCertEnds(p *ikeCertPKI, dn bool) (em, ec pairCertEnd) {
	cas := []string{p.ca.CertPath}
	em = pairCertEnd{cert: p.m, localID: ikeCertIDM, remoteID: ikeCertIDC, cas: cas, wantLocal: ikeCertIDM}
	ec = pairCertEnd{cert: p.c, localID: ikeCertIDC, remoteID: ikeCertIDM, cas: cas, wantLocal: ikeCertIDC}
	if dn {
		em.localID, em.remoteID, em.wantLocal = "", ikeCertDNPrefix+ikeCertIDC, ikeCertDNPrefix+ikeCertIDM
		ec.localID, ec.remoteID, ec.wantLocal = "", ikeCertDNPrefix+ikeCertIDM, ikeCertDNPrefix+ikeCertIDC
	}
	return em, ec
}

// TestIKEPairCert: TestIKECertInterop between two mipsecs: both
// authenticate with certificates of one CA (RSA-2048 or ECDSA P-256,
// RFC 7427 signatures), each side initiating, with the FQDNs or the
// subject DNs as identities; both list the SA with the expected
// identities, and traffic passes.
func TestIKEPairCert(t *testing.T) {
	pairNeedPKI(t)
	t.Parallel()
	for _, tt := range []struct {
		name       string
		kt         charontest.KeyType
		dn         bool
		mInitiates bool
	}{
		{"M-initiates/rsa/fqdn", charontest.RSA, false, true},
		{"C-initiates/ecdsa/fqdn", charontest.ECDSA, false, false},
		{"M-initiates/ecdsa/dn", charontest.ECDSA, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pairParallel(t)
			p := newIKECertPKI(t, tt.kt, "CA "+string(tt.kt))
			em, ec := pairCertEnds(p, tt.dn)
			d := pairStartCert(t, ikeOptions{}, tt.mInitiates, em, ec)
			if !tt.mInitiates {
				if out, err := d.initiateC(); err != nil {
					t.Fatalf("C: mipsec ike initiate: %v\n%s", err, out)
				}
			}
			d.up(d.o.espProposal)
			d.carry(1<<20, false)
		})
	}
}

// TestIKEPairCertRefused: certificates from the trusted CA that do not
// prove the identity the other side wants (RFC 7296 §2.15, §3.5; RFC
// 4945 §3.1): C as intruder.example.org with that name's certificate,
// refused by M (which wants gw-b.example.org) as responder and as
// initiator; and C claiming gw-b.example.org with the intruder's
// certificate, whose subjectAltName does not name it, refused by M as
// initiator. M counts auth_failed once and logs why. As responder M
// answers AUTHENTICATION_FAILED and C's initiate fails with it, counted;
// as initiator M finds the responder's AUTH wrong after C has installed
// the SA, and its INFORMATIONAL with AUTHENTICATION_FAILED (§2.21.2)
// makes C take it down again. Nothing is left on either side.
func TestIKEPairCertRefused(t *testing.T) {
	pairNeedPKI(t)
	t.Parallel()
	for _, tt := range []struct {
		name       string
		mInitiates bool
		claim      string // C's local id
		log        string // in M's log
	}{
		{"intruder-id/C-initiates", false, ikeCertIntruder, "initiator is " + ikeCertIntruder},
		{"intruder-id/M-initiates", true, ikeCertIntruder, "responder is " + ikeCertIntruder},
		{"id-not-in-cert/M-initiates", true, ikeCertIDC, "identity not in the certificate: " + ikeCertIDC},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pairParallel(t)
			p := newIKECertPKI(t, charontest.ECDSA, "CA")
			em, ec := pairCertEnds(p, false)
			ec.cert, ec.localID = p.intru, tt.claim
			d := pairStartCert(t, ikeOptions{}, tt.mInitiates, em, ec)
			if !tt.mInitiates {
				out, err := d.initiateC()
				if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
					t.Fatalf("C: mipsec ike initiate as %s: %v %s, want AUTHENTICATION_FAILED", tt.claim, err, out)
				}
			}
			pairWaitFailures(t, d.m, "auth_failed", 1, 10*time.Second)
			if tt.mInitiates {
				d.stopRetries()
			}
			d.gone(2 * time.Second)
			if st := ikeStats(t, d.m); st.Failures["auth_failed"] != 1 {
				t.Errorf("M counted %d auth_failed, want 1 (%v)", st.Failures["auth_failed"], st.Failures)
			}
			if lines := pairLogLines(d.m, tt.log); len(lines) != 1 {
				t.Errorf("M logged %d lines with %q, want 1", len(lines), tt.log)
			} else {
				t.Logf("M: %s", lines[0])
			}
			st := ikeStats(t, d.c)
			up, down := pairLogLines(d.c, `"msg":"IKE SA up"`), pairLogLines(d.c, `"msg":"IKE SA down"`)
			if tt.mInitiates {
				// C, the responder, had it up until M's notice.
				if len(up) != 1 || len(down) != 1 || st.Exchanges["INFORMATIONAL"] == 0 {
					t.Errorf("C: %d IKE SA up, %d down, INFORMATIONAL %d; want 1, 1 and M's notice", len(up), len(down), st.Exchanges["INFORMATIONAL"])
				}
			} else if len(up) != 0 || st.Failures["auth_failed"] != 1 {
				t.Errorf("C: %d IKE SA up, auth_failed %d; want none up and 1", len(up), st.Failures["auth_failed"])
			}
		})
	}
}
