package e2e

// IKEv2 with certificates (auth = "pubkey", RFC 7296 §2.15, §3.6, §3.7;
// RFC 7427 signatures) against charon, on the topology of ike_test.go:
// one CA per key type made by internal/charontest's pki helper, mipsec
// as gw-a.example.org in nsM, charon as gw-b.example.org in nsC.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/charontest"
	"github.com/mipsec/mipsec/internal/netlab"
)

// Identities of the certificate tests: FQDNs in the certificates'
// subjectAltNames, and the subject DNs.
const (
	ikeCertIDM      = "gw-a.example.org"
	ikeCertIDC      = "gw-b.example.org"
	ikeCertIntruder = "intruder.example.org"
	ikeCertDNPrefix = "C=CH, O=mipsec test, CN="
)

// ikeCertGWConfig fills e2e/testdata/ike-gateway-cert.toml.tmpl: the PSK
// template's fields (PSKFile unused) and the certificate files. An empty
// LocalID leaves id out, so the certificate's subject DN is mipsec's.
type ikeCertGWConfig struct {
	ikeGWConfig
	Cert, Key string
	CACerts   []string
}

var ikeCertTemplate = template.Must(template.ParseFiles("testdata/ike-gateway-cert.toml.tmpl"))

// ikeCertPKI is one CA and the certificates of both ends (and of an
// intruder), all of one key type.
type ikeCertPKI struct {
	ca          *charontest.CA
	m, c, intru *charontest.Cert
}

func newIKECertPKI(t *testing.T, kt charontest.KeyType, caName string) *ikeCertPKI {
	t.Helper()
	ca, err := charontest.NewCA(filepath.Join(t.TempDir(), caName), kt, ikeCertDNPrefix+caName)
	if err != nil {
		t.Fatal(err)
	}
	p := &ikeCertPKI{ca: ca}
	for _, x := range []struct {
		c  **charontest.Cert
		id string
	}{{&p.m, ikeCertIDM}, {&p.c, ikeCertIDC}, {&p.intru, ikeCertIntruder}} {
		name, _, _ := strings.Cut(x.id, ".")
		if *x.c, err = ca.Issue(name, kt, ikeCertDNPrefix+x.id, x.id); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// ikeCertEnds are the identities as configured: mipsec's local one (""
// for its certificate's DN), the one it wants of charon, and charon's
// two; want* are the identities both should list.
type ikeCertEnds struct {
	mLocal, mRemote string
	cLocal, cRemote string
	wantM, wantC    string
}

func fqdnEnds() ikeCertEnds {
	return ikeCertEnds{ikeCertIDM, ikeCertIDC, ikeCertIDC, ikeCertIDM, ikeCertIDM, ikeCertIDC}
}

func dnEnds() ikeCertEnds {
	m, c := ikeCertDNPrefix+ikeCertIDM, ikeCertDNPrefix+ikeCertIDC
	return ikeCertEnds{"", c, c, m, m, c}
}

// startCharonCert is startCharon with certificates: charon proves
// cLocal with cert (its key loaded into charon's store) and checks
// cRemote against the trust anchors cas. tweak edits the connection.
func (l *ikeLab) startCharonCert(cert *charontest.Cert, cas []string, e ikeCertEnds, tweak ...func(*charontest.Conn)) {
	l.t.Helper()
	l.startCharon("none", append([]func(*charontest.Conn){func(c *charontest.Conn) {
		c.Local = charontest.Auth{Auth: "pubkey", ID: e.cLocal, Certs: []string{cert.CertPath}}
		c.Remote = charontest.Auth{Auth: "pubkey", ID: e.cRemote, CACerts: cas}
	}}, tweak...)...)
	if err := l.charon.LoadKey(cert.KeyPath); err != nil {
		l.t.Fatal(err)
	}
}

// startMipsecCert writes mipsec's certificate config (cert, key, the
// trust anchors cas) and runs it in nsM.
func (l *ikeLab) startMipsecCert(cert *charontest.Cert, cas []string, e ikeCertEnds) *gateway {
	l.t.Helper()
	cfg := ikeCertGWConfig{ikeGWConfig: l.mipsecConfig("M"), Cert: cert.CertPath, Key: cert.KeyPath, CACerts: cas}
	cfg.LocalID, cfg.RemoteID = e.mLocal, e.mRemote
	var b bytes.Buffer
	if err := ikeCertTemplate.Execute(&b, cfg); err != nil {
		l.t.Fatal(err)
	}
	path := filepath.Join(l.dir, "M-cert.toml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		l.t.Fatal(err)
	}
	g := newGatewayFile(l.t, "M", l.nsM, path, gwConfig{Socket: cfg.Socket})
	g.start()
	return g
}

// checkCertMatch: mipsec's m and charon's c are one SA (SPIs, the
// initiator, the child) with the certificates' identities on both.
func (l *ikeLab) checkCertMatch(m control.IKESAInfo, c charontest.IKESA, mipsecInitiated bool, e ikeCertEnds) {
	t := l.t
	t.Helper()
	if uint64(m.SPIi) == 0 || uint64(m.SPIi) != c.InitiatorSPI || uint64(m.SPIr) != c.ResponderSPI {
		t.Errorf("IKE SPIs: mipsec %v/%v, charon %016x/%016x", m.SPIi, m.SPIr, c.InitiatorSPI, c.ResponderSPI)
	}
	if m.Initiator != mipsecInitiated || c.Initiator == mipsecInitiated {
		t.Errorf("initiator: mipsec %v, charon %v; want mipsec %v", m.Initiator, c.Initiator, mipsecInitiated)
	}
	if m.LocalID != e.wantM || m.RemoteID != e.wantC || c.LocalID != e.wantC || c.RemoteID != e.wantM {
		t.Errorf("identities: mipsec %q -> %q, charon %q -> %q; want %q <-> %q", m.LocalID, m.RemoteID, c.LocalID, c.RemoteID, e.wantM, e.wantC)
	}
	l.checkChild(m, c)
}

// ikeAuthSizes describes the IKE_AUTH messages captured on the veth:
// who sent them, the IKE length, IP fragments, IKE fragments (SKF).
func ikeAuthSizes(kept []netlab.KeptFrame) []string {
	var out []string
	for _, k := range kept {
		f := k.Data
		if len(f) < 14+20 || f[12] != 0x08 || f[13] != 0x00 {
			continue
		}
		ip := f[14:]
		ihl := int(ip[0]&0x0f) * 4
		frag := binary.BigEndian.Uint16(ip[6:8])
		if ip[9] != 17 || len(ip) < ihl+8 || frag&0x1fff != 0 { // later fragments carry no header
			continue
		}
		udp := ip[ihl:]
		sport, dport := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:])
		d := udp[8:]
		if sport == 4500 || dport == 4500 {
			if len(d) < 4 || binary.BigEndian.Uint32(d) != 0 {
				continue // ESP
			}
			d = d[4:]
		}
		if len(d) < 28 || d[18] != 35 { // IKE_AUTH
			continue
		}
		kind := "request"
		if d[19]&0x20 != 0 {
			kind = "response"
		}
		ipFrag := ""
		if frag&0x2000 != 0 {
			ipFrag = ", IP-fragmented"
		}
		if d[16] == 53 {
			ipFrag += ", IKE fragment (SKF)"
		}
		from := fmt.Sprintf("%d.%d.%d.%d", ip[12], ip[13], ip[14], ip[15])
		out = append(out, fmt.Sprintf("%s from %s: IKE %d bytes, IP %d%s", kind, from, binary.BigEndian.Uint32(d[24:]), binary.BigEndian.Uint16(ip[2:4]), ipFrag))
	}
	return out
}

// captureIKE keeps mipsec's side's non-ESP frames on ul0 (IKE, IP
// fragments) for ikeAuthSizes.
func (l *ikeLab) captureIKE() *netlab.Capture {
	l.t.Helper()
	cp, err := netlab.StartCaptureOpts(l.nsM, "ul0", netlab.CaptureOptions{Keep: func(f netlab.Frame) bool { return f.Kind == netlab.Other }})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(cp.Close)
	return cp
}

// TestIKECertInterop: mipsec and charon authenticate each other with
// certificates from one CA (RSA-2048 with PKCS#1 v1.5 or ECDSA P-256
// signatures, RFC 7427), each side initiating, with the subjectAltName
// FQDNs as identities and, in the dn cases, the subject DNs (mipsec's
// own DN by default, no local id). Both list the SA with the peer's
// identity; ping and 1 MiB of TCP each way go through.
func TestIKECertInterop(t *testing.T) {
	for _, tt := range []struct {
		name      string
		kt        charontest.KeyType
		ends      ikeCertEnds
		initiator string
	}{
		{"mipsec-initiates/rsa/fqdn", charontest.RSA, fqdnEnds(), "mipsec"},
		{"mipsec-initiates/ecdsa/fqdn", charontest.ECDSA, fqdnEnds(), "mipsec"},
		{"mipsec-initiates/ecdsa/dn", charontest.ECDSA, dnEnds(), "mipsec"},
		{"charon-initiates/rsa/fqdn", charontest.RSA, fqdnEnds(), "charon"},
		{"charon-initiates/ecdsa/fqdn", charontest.ECDSA, fqdnEnds(), "charon"},
		{"charon-initiates/rsa/dn", charontest.RSA, dnEnds(), "charon"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := ikeOptions{startAction: "none"}
			if tt.initiator == "mipsec" {
				o.startAction = "start"
			}
			l := newIKELab(t, o)
			p := newIKECertPKI(t, tt.kt, "CA "+string(tt.kt))
			cp := l.captureIKE()
			l.startCharonCert(p.c, []string{p.ca.CertPath}, tt.ends)
			l.gw = l.startMipsecCert(p.m, []string{p.ca.CertPath}, tt.ends)
			if tt.initiator == "charon" {
				if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			m := waitMipsecSA(t, l.gw, ikeConnM, 10*time.Second)
			c := l.waitCharonSA(5 * time.Second)
			time.Sleep(100 * time.Millisecond)
			for _, s := range ikeAuthSizes(cp.Kept()) {
				t.Logf("IKE_AUTH %s", s)
			}
			cp.Close()
			l.checkCertMatch(m, c, tt.initiator == "mipsec", tt.ends)
			// charon checked mipsec's signature with the certificate's key.
			log, _ := os.ReadFile(l.charon.LogPath())
			alg := map[charontest.KeyType]string{charontest.RSA: "RSA", charontest.ECDSA: "ECDSA"}[tt.kt]
			if !strings.Contains(string(log), "authentication of '"+tt.ends.wantM+"' with "+alg) {
				t.Errorf("charon's log has no %s authentication of %q", alg, tt.ends.wantM)
			}
			if st := ikeStats(t, l.gw); st.Failures["auth_failed"] != 0 {
				t.Errorf("mipsec counted auth failures: %v", st.Failures)
			}
			l.traffic(1 << 20)
		})
	}
}

// certRefused checks a refused certificate: mipsec counted auth_failed,
// lists no IKE SA, installed no ESP SA or policy, and logged line (the
// refused identity or the reason); charon has no SA and nothing passes.
func (l *ikeLab) certRefused(line string) {
	t := l.t
	t.Helper()
	var st control.IKEStatsInfo
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st = ikeStats(t, l.gw); st.Failures["auth_failed"] > 0 {
			break
		}
	}
	if st.Failures["auth_failed"] == 0 {
		t.Fatalf("mipsec stats: no auth_failed: %+v", st)
	}
	time.Sleep(500 * time.Millisecond) // the refusal has reached charon
	if sas := mustIKEList(t, l.gw); len(sas) != 0 {
		for _, sa := range sas {
			if sa.State == "established" {
				t.Errorf("mipsec: IKE SAs %+v", sas)
				break
			}
		}
	}
	if sas, pols := ipsecTables(t, l.gw); sas != 0 || pols != 0 {
		t.Errorf("mipsec: %d SAs, %d policies", sas, pols)
	}
	var csas []charontest.IKESA
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if csas, err = l.charon.ListSAs(); err == nil && len(csas) == 0 {
			break
		}
	}
	if err != nil || len(csas) != 0 {
		t.Errorf("charon keeps SAs: %+v, %v", csas, err)
	}
	l.noTraffic()
	if !strings.Contains(l.gw.Log.String(), line) {
		t.Errorf("mipsec's log does not say %q", line)
	}
	t.Logf("mipsec failures: %v", st.Failures)
}

// TestIKECertWrongIdentity: charon initiates as intruder.example.org
// with a valid certificate of that name from the CA mipsec trusts; mipsec
// wants gw-b.example.org (remote.id) and refuses it (RFC 7296 §2.15).
func TestIKECertWrongIdentity(t *testing.T) {
	l := newIKELab(t, ikeOptions{startAction: "none"})
	p := newIKECertPKI(t, charontest.ECDSA, "CA")
	e := fqdnEnds()
	ce := e
	ce.cLocal = ikeCertIntruder
	l.startCharonCert(p.intru, []string{p.ca.CertPath}, ce)
	l.gw = l.startMipsecCert(p.m, []string{p.ca.CertPath}, e)
	if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err == nil {
		t.Fatal("charon's initiate as the wrong identity succeeded")
	}
	l.certRefused(ikeCertIntruder)
	if st := ikeStats(t, l.gw); st.Failures["auth_failed"] != 1 {
		t.Errorf("mipsec counted %d auth failures, want 1", st.Failures["auth_failed"])
	}
}

// TestIKECertUntrustedCA: charon's certificate (for the right identity)
// is from a CA that mipsec's remote.cacerts do not name: refused, with
// charon initiating and with charon responding (where mipsec, the
// initiator, tells charon with AUTHENTICATION_FAILED, §2.21.2). charon
// sends its certificate unasked (send_cert = always), since mipsec's
// CERTREQ names only its own CA.
func TestIKECertUntrustedCA(t *testing.T) {
	for _, initiator := range []string{"charon", "mipsec"} {
		t.Run(initiator+"-initiates", func(t *testing.T) {
			o := ikeOptions{startAction: "none"}
			if initiator == "mipsec" {
				o.startAction = "start"
			}
			l := newIKELab(t, o)
			trusted := newIKECertPKI(t, charontest.ECDSA, "CA")
			other := newIKECertPKI(t, charontest.ECDSA, "Other CA")
			e := fqdnEnds()
			// charon trusts both, so only mipsec refuses.
			l.startCharonCert(other.c, []string{trusted.ca.CertPath, other.ca.CertPath}, e,
				func(c *charontest.Conn) { c.SendCert = "always" })
			l.gw = l.startMipsecCert(trusted.m, []string{trusted.ca.CertPath}, e)
			if initiator == "charon" {
				if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err == nil {
					t.Fatal("charon's initiate with an untrusted certificate succeeded")
				}
			}
			l.certRefused(`"auth_failed"`)
			if log, _ := os.ReadFile(l.charon.LogPath()); initiator == "mipsec" && !strings.Contains(string(log), "N(AUTH_FAILED)") {
				t.Error("charon's log shows no N(AUTH_FAILED) from mipsec")
			}
		})
	}
}

// TestIKECertExamplePair runs testdata/ike-gateway-a-cert.toml and
// -b-cert.toml as shipped, as TestIKEMipsecPair runs the PSK pair, with
// certificates made by the pki helper at the paths under /etc/mipsec/
// moved to a temporary directory: A initiates, both list the SA with the
// other's FQDN, and ping goes through both ways.
func TestIKECertExamplePair(t *testing.T) {
	needEnv(t)
	charontest.Need(t) // pki
	nsA, nsB := newNetns(t), newNetns(t)
	veth(t, nsA, nsB, "ul0", netip.MustParsePrefix("198.51.100.1/24"), netip.Prefix{}, netip.MustParsePrefix("203.0.113.1/24"), netip.Prefix{})
	run(t, "ip", "-n", nsA, "route", "add", "203.0.113.1/32", "dev", "ul0")
	run(t, "ip", "-n", nsB, "route", "add", "198.51.100.1/32", "dev", "ul0")
	dir := t.TempDir()
	p := newIKECertPKI(t, charontest.ECDSA, "CA")
	gws := map[string]*gateway{}
	for _, side := range []struct{ name, ns string }{{"b", nsB}, {"a", nsA}} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "ike-gateway-"+side.name+"-cert.toml"))
		if err != nil {
			t.Fatal(err)
		}
		cert := map[string]*charontest.Cert{"a": p.m, "b": p.c}[side.name]
		sock := filepath.Join(dir, side.name+".sock")
		s := string(data)
		for _, r := range [][2]string{
			{`"/var/lib/mipsec/ike-gateway-` + side.name + `-cert"`, `"` + filepath.Join(dir, "state-"+side.name) + `"`},
			{`"/run/mipsec/ike-gateway-` + side.name + `-cert.sock"`, `"` + sock + `"`},
			{`"/etc/mipsec/gw-` + side.name + `.crt"`, `"` + cert.CertPath + `"`},
			{`"/etc/mipsec/gw-` + side.name + `.key"`, `"` + cert.KeyPath + `"`},
			{`"/etc/mipsec/ca.crt"`, `"` + p.ca.CertPath + `"`},
		} {
			if !strings.Contains(s, r[0]) {
				t.Fatalf("ike-gateway-%s-cert.toml has no %s", side.name, r[0])
			}
			s = strings.ReplaceAll(s, r[0], r[1])
		}
		path := filepath.Join(dir, "ike-gateway-"+side.name+"-cert.toml")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		g := newGatewayFile(t, strings.ToUpper(side.name), side.ns, path, gwConfig{Socket: sock})
		g.start()
		gws[side.name] = g
	}
	a := waitMipsecSA(t, gws["a"], "gateway-b", 10*time.Second)
	b := waitMipsecSA(t, gws["b"], "gateway-a", 5*time.Second)
	if a.SPIi != b.SPIi || a.SPIr != b.SPIr || !a.Initiator || b.Initiator ||
		a.LocalID != ikeCertIDM || a.RemoteID != ikeCertIDC || b.LocalID != ikeCertIDC || b.RemoteID != ikeCertIDM {
		t.Errorf("IKE SAs: A %v/%v initiator %v %s -> %s, B %v/%v initiator %v %s -> %s",
			a.SPIi, a.SPIr, a.Initiator, a.LocalID, a.RemoteID, b.SPIi, b.SPIr, b.Initiator, b.LocalID, b.RemoteID)
	}
	siteA, siteB := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.129")
	mustPing(t, nsA, siteA, siteB, 3)
	mustPing(t, nsB, siteB, siteA, 3)
	mustPing(t, nsA, netip.MustParseAddr("2001:db8:a::1"), netip.MustParseAddr("2001:db8:b::1"), 3)
}
