package ike

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Keys are generated once per kind and index: RSA 2048 is slow.
var pkKeys = struct {
	sync.Mutex
	m map[string]crypto.Signer
}{m: map[string]crypto.Signer{}}

func pkKey(t testing.TB, kind string, i int) crypto.Signer {
	t.Helper()
	pkKeys.Lock()
	defer pkKeys.Unlock()
	name := fmt.Sprintf("%s/%d", kind, i)
	if k := pkKeys.m[name]; k != nil {
		return k
	}
	var k crypto.Signer
	var err error
	switch kind {
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	pkKeys.m[name] = k
	return k
}

// testCA is a certificate with its key, able to issue.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func mustCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	return n
}

func newTestCA(t testing.TB, name string, key crypto.Signer) testCA {
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{"mipsec test"}, CommonName: name},
		NotBefore: time.Now().Add(-365 * 24 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	return testCA{mustCert(t, tmpl, tmpl, key.Public(), key), key}
}

// sub issues an intermediate CA.
func (ca testCA) sub(t testing.TB, name string, key crypto.Signer) testCA {
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"mipsec test"}, CommonName: name},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	return testCA{mustCert(t, tmpl, ca.cert, key.Public(), ca.key), key}
}

// issue is an end entity certificate for key: CN name, dNSName name, valid
// for a day around now, digitalSignature; mod changes the template.
func (ca testCA) issue(t testing.TB, name string, key crypto.Signer, mod func(*x509.Certificate)) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{"mipsec test"}, CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	if mod != nil {
		mod(tmpl)
	}
	return mustCert(t, tmpl, ca.cert, key.Public(), ca.key)
}

// usePubkey sets both directions of c to certificates: ours chain and
// key, the peer's chaining to cas.
func usePubkey(chain []*x509.Certificate, key crypto.Signer, cas ...*x509.Certificate) func(*Connection) {
	return func(c *Connection) {
		c.Local = LocalAuth{Method: AuthPubkey, Certs: chain, Key: key}
		c.Remote = RemoteAuth{Method: AuthPubkey, CAs: cas}
	}
}

func both(fs ...func(*Connection)) func(*Connection) {
	return func(c *Connection) {
		for _, f := range fs {
			f(c)
		}
	}
}

// openIKEAuth decrypts the captured IKE_AUTH request and response with A's
// (the initiator's) keys.
func openIKEAuth(t *testing.T, n *network, a *peer, proposal string) (req, resp []Payload) {
	t.Helper()
	wk := a.d.WiresharkKeys()
	if len(wk) != 1 {
		t.Fatalf("wireshark keys: %d", len(wk))
	}
	suite, err := IKESuiteOf(ikeProps(t, proposal)[0])
	if err != nil {
		t.Fatal(err)
	}
	k := &IKEKeys{SKei: wk[0].SKei, SKer: wk[0].SKer, SKai: wk[0].SKai, SKar: wk[0].SKar}
	_, fromI, err := NewSKCiphers(suite.SK, k, false)
	if err != nil {
		t.Fatal(err)
	}
	_, fromR, err := NewSKCiphers(suite.SK, k, true)
	if err != nil {
		t.Fatal(err)
	}
	open := func(c *SKCipher, p []packet) []Payload {
		if len(p) == 0 {
			t.Fatal("no IKE_AUTH captured")
		}
		m, err := Decode(p[0].b)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := m.Payloads[len(m.Payloads)-1].(*Encrypted)
		if !ok {
			t.Fatalf("IKE_AUTH without SK: %v", m.Payloads)
		}
		plain, err := c.Open(nil, p[0].b, len(p[0].b)-GenericHeaderLen-len(e.Data))
		if err != nil {
			t.Fatal(err)
		}
		ps, err := DecodePayloads(e.NextPayload, plain)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	return open(fromI, captured(n, a.addr, IKE_AUTH, false)), open(fromR, captured(n, addrB, IKE_AUTH, true))
}

func authOf(t *testing.T, ps []Payload) (*Auth, []*Cert, []*CertReq) {
	t.Helper()
	var a *Auth
	var certs []*Cert
	var reqs []*CertReq
	for _, p := range ps {
		switch p := p.(type) {
		case *Auth:
			a = p
		case *Cert:
			certs = append(certs, p)
		case *CertReq:
			reqs = append(reqs, p)
		}
	}
	if a == nil {
		t.Fatal("no AUTH payload")
	}
	return a, certs, reqs
}

// RFC 7427 Appendix A encodings (A.1 sha256WithRSAEncryption, A.3
// ecdsa-with-SHA256/384/512) and RFC 8420 §2 (Ed25519).
var appendixA = map[string]string{
	"rsa":     "300d06092a864886f70d01010b0500",
	"p256":    "300a06082a8648ce3d040302",
	"p384":    "300a06082a8648ce3d040303",
	"p521":    "300a06082a8648ce3d040304",
	"ed25519": "300506032b6570",
}

var classicMethod = map[string]AuthMethod{"rsa": AuthRSASignature, "p256": AuthECDSA256, "p384": AuthECDSA384, "p521": AuthECDSA521}

// TestPubkeyEstablish: two daemons with certificates of each key type
// (CA of the same type) come up, with method 14 where SIGNATURE_HASH_
// ALGORITHMS was exchanged and the classic method where A left it out.
// On the wire: the leaf in CERT, CERTREQ with the CA's SPKI hash in
// B's IKE_SA_INIT response and A's IKE_AUTH request, IDs the subject DNs.
func TestPubkeyEstablish(t *testing.T) {
	const prop = "aes128gcm16-prfsha256-curve25519"
	for _, kind := range []string{"rsa", "p256", "p384", "p521", "ed25519"} {
		for _, classic := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/classic=%v", kind, classic), func(t *testing.T) {
				ca := newTestCA(t, "CA "+kind, pkKey(t, kind, 0))
				ka, kb := pkKey(t, kind, 1), pkKey(t, kind, 2)
				ca2 := ca.cert
				certA, certB := ca.issue(t, "a.example", ka, nil), ca.issue(t, "b.example", kb, nil)
				n, a, b := newPair(t, pairOpts{
					a: both(usePubkey([]*x509.Certificate{certA}, ka, ca2), func(c *Connection) { c.noSigHash = classic }),
					b: usePubkey([]*x509.Certificate{certB}, kb, ca2),
				})
				err := a.d.Initiate("ab", "net")
				if kind == "ed25519" && classic {
					// Ed25519 has no classic method (RFC 8420 §2).
					if err == nil {
						t.Fatal("Ed25519 without SIGNATURE_HASH_ALGORITHMS came up")
					}
					// A never sends IKE_AUTH; B's half-open SA times out.
					eventually(t, "no state", func() bool { return len(a.d.List()) == 0 && a.k.empty() && b.k.empty() })
					if a.d.Stats().Failures["auth_failed"] != 1 || len(captured(n, addrA, IKE_AUTH, false)) != 0 {
						t.Fatalf("A: %v", a.d.Stats().Failures)
					}
					return
				}
				if err != nil {
					t.Fatalf("Initiate: %v", err)
				}
				eventually(t, "B's child", func() bool { _, out, _ := b.k.state(); return len(out) == 1 })
				checkPair(t, a, b)
				la, lb := a.d.List(), b.d.List()
				if la[0].RemoteID != IdentityFromCert(certB).String() || lb[0].RemoteID != IdentityFromCert(certA).String() {
					t.Fatalf("remote ids %q / %q", la[0].RemoteID, lb[0].RemoteID)
				}
				want := sha1.Sum(ca.cert.RawSubjectPublicKeyInfo)
				initResp, err := Decode(captured(n, addrB, IKE_SA_INIT, true)[0].b)
				if err != nil {
					t.Fatal(err)
				}
				var initReq []Payload
				for _, p := range initResp.Payloads {
					if r, ok := p.(*CertReq); ok {
						initReq = append(initReq, r)
					}
				}
				if len(initReq) != 1 || !bytes.Equal(initReq[0].(*CertReq).Data, want[:]) || initReq[0].(*CertReq).Encoding != CertX509Signature {
					t.Fatalf("IKE_SA_INIT response CERTREQ %v", initReq)
				}
				req, resp := openIKEAuth(t, n, a, prop)
				for i, ps := range [][]Payload{req, resp} {
					auth, certs, reqs := authOf(t, ps)
					leaf := []*x509.Certificate{certA, certB}[i]
					if len(certs) != 1 || certs[0].Encoding != CertX509Signature || !bytes.Equal(certs[0].Data, leaf.Raw) {
						t.Fatalf("message %d: CERT payloads %v", i, certs)
					}
					if i == 0 && (len(reqs) != 1 || !bytes.Equal(reqs[0].Data, want[:])) {
						t.Fatalf("IKE_AUTH request CERTREQ %v", reqs)
					}
					for _, p := range ps {
						if id, ok := p.(*ID); ok && id.Initiator == (i == 0) {
							if id.IDType != ID_DER_ASN1_DN || !bytes.Equal(id.Data, leaf.RawSubject) {
								t.Fatalf("message %d: ID %v %x", i, id.IDType, id.Data)
							}
						}
					}
					if classic {
						if auth.Method != classicMethod[kind] {
							t.Fatalf("message %d: method %d, want %d", i, auth.Method, classicMethod[kind])
						}
						continue
					}
					ai, _ := hex.DecodeString(appendixA[kind])
					if auth.Method != AuthDigitalSignature || len(auth.Data) < 1+len(ai) || int(auth.Data[0]) != len(ai) || !bytes.Equal(auth.Data[1:1+len(ai)], ai) {
						t.Fatalf("message %d: method %d data %x, want 14 with %x", i, auth.Method, auth.Data[:min(len(auth.Data), 40)], ai)
					}
				}
			})
		}
	}
}

// TestPubkeyIntermediate: A sends its leaf and an intermediate CA, B
// trusts only the root.
func TestPubkeyIntermediate(t *testing.T) {
	root := newTestCA(t, "Root", pkKey(t, "p384", 0))
	inter := root.sub(t, "Intermediate", pkKey(t, "p256", 0))
	ka, kb := pkKey(t, "p256", 1), pkKey(t, "rsa", 1)
	certA := inter.issue(t, "a.example", ka, nil)
	certB := root.issue(t, "b.example", kb, nil)
	_, a, b := newPair(t, pairOpts{
		a: usePubkey([]*x509.Certificate{certA, inter.cert}, ka, root.cert),
		b: usePubkey([]*x509.Certificate{certB}, kb, root.cert),
	})
	up(t, a, b)
}

// TestPubkeyIdentities: IDs other than the DN are matched against the
// certificate's subjectAltNames: ID_FQDN a dNSName, ID_IPV4_ADDR an
// iPAddress, ID_RFC822_ADDR an rfc822Name; and Remote.ID applies.
func TestPubkeyIdentities(t *testing.T) {
	ca := newTestCA(t, "CA", pkKey(t, "p256", 0))
	ka, kb := pkKey(t, "p256", 1), pkKey(t, "p256", 2)
	certA := ca.issue(t, "a.example", ka, func(c *x509.Certificate) { c.EmailAddresses = []string{"carol@a.example"} })
	certB := ca.issue(t, "b.example", kb, func(c *x509.Certificate) { c.IPAddresses = []net.IP{addrB.AsSlice()} })
	for _, idA := range []string{"@a.example", "carol@a.example"} {
		t.Run(idA, func(t *testing.T) {
			ida, _ := ParseIdentity(idA)
			_, a, b := newPair(t, pairOpts{
				a: both(usePubkey([]*x509.Certificate{certA}, ka, ca.cert), func(c *Connection) {
					c.Local.ID = ida
					c.Remote.ID = IdentityFromAddr(addrB)
				}),
				b: both(usePubkey([]*x509.Certificate{certB}, kb, ca.cert), func(c *Connection) {
					c.Local.ID = IdentityFromAddr(addrB)
					c.Remote.ID = ida
				}),
			})
			up(t, a, b)
			if got := b.d.List()[0].RemoteID; got != ida.String() {
				t.Fatalf("B sees %q", got)
			}
		})
	}
}

// TestPubkeyMixed: A proves itself with a certificate and B with a
// shared key, and the reverse.
func TestPubkeyMixed(t *testing.T) {
	ca := newTestCA(t, "CA", pkKey(t, "ed25519", 0))
	ka := pkKey(t, "ed25519", 1)
	certA := ca.issue(t, "a.example", ka, nil)
	for _, aSigns := range []bool{true, false} {
		t.Run(fmt.Sprintf("a-signs=%v", aSigns), func(t *testing.T) {
			signer := func(c *Connection) {
				c.Local = LocalAuth{Method: AuthPubkey, Certs: []*x509.Certificate{certA}, Key: ka}
			}
			verifier := func(c *Connection) { c.Remote = RemoteAuth{Method: AuthPubkey, CAs: []*x509.Certificate{ca.cert}} }
			o := pairOpts{a: signer, b: verifier}
			if !aSigns {
				// B signs with A's certificate: the test is about the
				// methods, not the names.
				o = pairOpts{a: verifier, b: signer}
			}
			_, a, b := newPair(t, o)
			up(t, a, b)
		})
	}
}

// flipSigner forges: its signatures have one byte flipped.
type flipSigner struct{ crypto.Signer }

func (f flipSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	s, err := f.Signer.Sign(r, d, o)
	if err == nil {
		s[len(s)/2] ^= 0x01
	}
	return s, err
}

// TestPubkeyRefused: what must not authenticate does not, on either
// side: the verifier counts auth_failed, logs the reason once, and
// nothing is installed or kept on either side.
func TestPubkeyRefused(t *testing.T) {
	ca := newTestCA(t, "CA", pkKey(t, "p256", 0))
	other := newTestCA(t, "Other CA", pkKey(t, "p256", 3))
	ka, kb := pkKey(t, "p256", 1), pkKey(t, "p256", 2)
	certA, certB := ca.issue(t, "a.example", ka, nil), ca.issue(t, "b.example", kb, nil)
	good := func(c *Connection) {}
	big := make([]string, 900)
	for i := range big {
		big[i] = fmt.Sprintf("host%04d.a-rather-long-name.example", i)
	}
	for _, tc := range []struct {
		name     string
		a, b     func(*Connection)
		bRefuses bool // else A refuses B
		why      string
	}{
		{"identity not in the certificate", func(c *Connection) { c.Local.ID, _ = ParseIdentity("@c.example") }, good, true, "identity not in the certificate"},
		{"not the identity wanted", good, func(c *Connection) { c.Remote.ID, _ = ParseIdentity("CN=someone else") }, true, "want"},
		{"unknown CA", func(c *Connection) { c.Local.Certs = []*x509.Certificate{other.issue(t, "a.example", ka, nil)} }, good, true, "unknown CA"},
		{"expired", func(c *Connection) {
			c.Local.Certs = []*x509.Certificate{ca.issue(t, "a.example", ka, func(x *x509.Certificate) {
				x.NotBefore, x.NotAfter = time.Now().Add(-72*time.Hour), time.Now().Add(-24*time.Hour)
			})}
		}, good, true, "expired"},
		{"no digitalSignature", func(c *Connection) {
			c.Local.Certs = []*x509.Certificate{ca.issue(t, "a.example", ka, func(x *x509.Certificate) { x.KeyUsage = x509.KeyUsageKeyEncipherment })}
		}, good, true, "certificate not for signatures"},
		{"forged initiator", func(c *Connection) { c.Local.Key = flipSigner{ka} }, good, true, "bad signature"},
		{"forged classic", func(c *Connection) { c.Local.Key = flipSigner{ka}; c.noSigHash = true }, good, true, "bad signature"},
		{"forged responder", good, func(c *Connection) { c.Local.Key = flipSigner{kb} }, false, "bad signature"},
		{"psk instead", func(c *Connection) { c.Local = LocalAuth{Method: AuthPSK, PSK: []byte("x")} }, good, true, "wrong auth method"},
		{"too many certificates", func(c *Connection) {
			c.Local.Certs = append([]*x509.Certificate{certA}, certB, certB, certB, certB, certB, certB, certB, certB)
		}, good, true, "too many certificates"},
		{"certificate too large", func(c *Connection) {
			c.Local.Certs = []*x509.Certificate{ca.issue(t, "a.example", ka, func(x *x509.Certificate) { x.DNSNames = append(x.DNSNames, big...) })}
		}, good, true, "certificate too large"},
		{"responder unknown CA", good, func(c *Connection) { c.Local.Certs = []*x509.Certificate{other.issue(t, "b.example", kb, nil)} }, false, "unknown CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			withLog := func(c *Config) { c.Logger = zap.New(core) }
			o := pairOpts{
				a: both(usePubkey([]*x509.Certificate{certA}, ka, ca.cert), tc.a),
				b: both(usePubkey([]*x509.Certificate{certB}, kb, ca.cert), tc.b),
			}
			if tc.bRefuses {
				o.cfgB = withLog
			} else {
				o.cfgA = withLog
			}
			_, a, b := newPair(t, o)
			if err := a.d.Initiate("ab", "net"); err == nil {
				t.Fatal("Initiate succeeded")
			}
			verifier := a
			if tc.bRefuses {
				verifier = b
			}
			waitStats(t, verifier, "auth_failed", func(s Stats) bool { return s.Failures["auth_failed"] == 1 })
			eventually(t, "no state", func() bool {
				return len(a.d.List()) == 0 && len(b.d.List()) == 0 && a.k.empty() && b.k.empty()
			})
			// A refusing B comes after B installed its side (§1.2); B
			// removes it on A's AUTHENTICATION_FAILED.
			if a.k.count("in ") != 0 || a.k.count("out ") != 0 || (tc.bRefuses && (b.k.count("in ") != 0 || b.k.count("alloc") != 0)) {
				t.Fatalf("installed: A %v B %v", a.k.calls, b.k.calls)
			}
			var lines []string
			for _, e := range logs.All() {
				for _, f := range e.Context {
					if f.Key == "error" {
						lines = append(lines, e.Message+": "+fmt.Sprint(f.Interface))
					}
				}
			}
			found := 0
			for _, l := range lines {
				if strings.Contains(l, tc.why) {
					found++
				}
			}
			if found != 1 {
				t.Fatalf("log lines naming %q: %d in %q", tc.why, found, lines)
			}
		})
	}
}

// TestPubkeyClock: the daemon's clock, not the wall clock, decides
// whether a certificate is valid.
func TestPubkeyClock(t *testing.T) {
	ca := newTestCA(t, "CA", pkKey(t, "p256", 0))
	ka, kb := pkKey(t, "p256", 1), pkKey(t, "p256", 2)
	certA := ca.issue(t, "a.example", ka, func(x *x509.Certificate) {
		x.NotBefore, x.NotAfter = time.Now().Add(-72*time.Hour), time.Now().Add(-24*time.Hour)
	})
	certB := ca.issue(t, "b.example", kb, nil)
	_, a, b := newPair(t, pairOpts{
		a:    usePubkey([]*x509.Certificate{certA}, ka, ca.cert),
		b:    usePubkey([]*x509.Certificate{certB}, kb, ca.cert),
		cfgB: func(c *Config) { c.Now = func() time.Time { return time.Now().Add(-48 * time.Hour) } },
	})
	up(t, a, b)
}

// TestVerifyPeerCertsBounds: hostile CERT payloads are refused with
// their reason, without panics.
func TestVerifyPeerCertsBounds(t *testing.T) {
	ca := newTestCA(t, "CA", pkKey(t, "p256", 0))
	leaf := ca.issue(t, "a.example", pkKey(t, "p256", 1), nil)
	cert := func(b []byte) *Cert { return &Cert{Encoding: CertX509Signature, Data: b} }
	many := make([]*Cert, maxPeerCerts+1)
	for i := range many {
		many[i] = cert(leaf.Raw)
	}
	for _, tc := range []struct {
		name string
		ps   []*Cert
		why  string
	}{
		{"none", nil, "no certificate"},
		{"other encodings only", []*Cert{{Encoding: CertHashURLX509, Data: []byte("http://x")}}, "no certificate"},
		{"too many", many, "too many certificates"},
		{"too large", []*Cert{cert(make([]byte, maxPeerCertSize+1))}, "certificate too large"},
		{"garbage", []*Cert{cert([]byte{0x30, 0x82, 0xff, 0xff, 1})}, "malformed certificate"},
		{"empty", []*Cert{cert(nil)}, "malformed certificate"},
		{"truncated", []*Cert{cert(leaf.Raw[:len(leaf.Raw)-1])}, "malformed certificate"},
		{"self-signed CA of its own", []*Cert{cert(newTestCA(t, "Evil", pkKey(t, "p256", 3)).cert.Raw)}, "unknown CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyPeerCerts(tc.ps, []*x509.Certificate{ca.cert}, time.Now())
			var af *authFailure
			if !errors.As(err, &af) || af.why != tc.why {
				t.Fatalf("err %v, want %q", err, tc.why)
			}
		})
	}
	if got, err := verifyPeerCerts(append([]*Cert{{Encoding: CertHashURLX509}}, cert(leaf.Raw)), []*x509.Certificate{ca.cert}, time.Now()); err != nil || !got.Equal(leaf) {
		t.Fatalf("leaf after a hash-and-URL payload: %v", err)
	}
}

// TestCertHasIdentity covers the ID types against a certificate.
func TestCertHasIdentity(t *testing.T) {
	ca := newTestCA(t, "CA", pkKey(t, "p256", 0))
	leaf := ca.issue(t, "moon.example", pkKey(t, "p256", 1), func(x *x509.Certificate) {
		x.EmailAddresses = []string{"moon@example.org"}
		x.IPAddresses = []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}
	})
	for s, ok := range map[string]bool{
		"C=CH, O=mipsec test, CN=moon.example": true, "C=CH, O=mipsec test, CN=sun.example": false,
		"CN=moon.example": false, "moon.example": true, "MOON.example": true, "sun.example": false,
		"moon@example.org": true, "sun@example.org": false, "192.0.2.7": true, "192.0.2.8": false,
		"2001:db8::7": true, "2001:db8::8": false, "@#0102": false, "%null": false,
	} {
		id, err := ParseIdentity(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := certHasIdentity(leaf, id); (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", s, err, ok)
		}
	}
	// An ID_IPV4_ADDR with the wrong length is not an address.
	if certHasIdentity(leaf, Identity{Type: ID_IPV4_ADDR, Data: netip.MustParseAddr("2001:db8::7").AsSlice()}) == nil {
		t.Error("16-byte ID_IPV4_ADDR matched")
	}
}

// TestAlgorithmIdentifiers: our encodings parse back, PSS parameters are
// read, SHA-1 and unknown algorithms are refused, and hostile AUTH data
// does not panic.
func TestAlgorithmIdentifiers(t *testing.T) {
	for _, s := range []sigScheme{{kind: sigRSAPKCS1, hash: crypto.SHA256}, {kind: sigRSAPKCS1, hash: crypto.SHA512},
		{kind: sigRSAPSS, hash: crypto.SHA256, salt: 32}, {kind: sigRSAPSS, hash: crypto.SHA384, salt: 48},
		{kind: sigECDSA, hash: crypto.SHA384}, {kind: sigEd25519}} {
		der, err := s.algorithmIdentifier()
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseAlgorithmIdentifier(der)
		if err != nil || got != s {
			t.Fatalf("%+v: parsed back as %+v, %v", s, got, err)
		}
	}
	for name, h := range map[string]string{
		"sha1WithRSAEncryption": "300d06092a864886f70d0101050500",
		"ecdsa-with-SHA1":       "300906072a8648ce3d0401",
		"PSS default (SHA-1)":   "300d06092a864886f70d01010a3000",
		"md5WithRSAEncryption":  "300d06092a864886f70d0101040500",
		"Ed448":                 "300506032b6571",
		"ecdsa with params":     "300c06082a8648ce3d0403020500",
		"trailing":              "300506032b657000",
		"garbage":               "3005",
	} {
		der, _ := hex.DecodeString(h)
		if s, err := parseAlgorithmIdentifier(der); err == nil {
			t.Errorf("%s accepted as %+v", name, s)
		}
	}
	pub := pkKey(t, "p256", 1).Public()
	for _, d := range [][]byte{nil, {0}, {200, 1, 2}, {7, 0x30, 5, 6, 3, 0x2b, 0x65, 0x70}} {
		if err := verifyAuth(pub, &Auth{Method: AuthDigitalSignature, Data: d}, []byte("x")); err == nil {
			t.Errorf("AUTH data %x verified", d)
		}
	}
	for _, m := range []AuthMethod{AuthRSASignature, AuthECDSA256, AuthECDSA384, AuthECDSA521, AuthSharedKey, AuthDSSSignature} {
		if err := verifyAuth(pub, &Auth{Method: m, Data: make([]byte, 64)}, []byte("x")); err == nil {
			t.Errorf("method %d with zeros verified", m)
		}
	}
}

// TestSignAuthChoice: method 14 when announced with a usable hash, the
// hash of the curve first; classic otherwise; Ed25519 needs Identity.
func TestSignAuthChoice(t *testing.T) {
	signed := []byte("signed octets")
	for _, tc := range []struct {
		kind      string
		announced bool
		hashes    []uint16
		method    AuthMethod
		ai        string
	}{
		{"rsa", true, []uint16{2, 3, 4}, AuthDigitalSignature, appendixA["rsa"]},
		{"rsa", true, []uint16{4}, AuthDigitalSignature, "300d06092a864886f70d01010d0500"},
		{"rsa", true, []uint16{1}, AuthRSASignature, ""},
		{"rsa", false, nil, AuthRSASignature, ""},
		{"p384", true, []uint16{2, 3, 4}, AuthDigitalSignature, appendixA["p384"]},
		{"p384", true, []uint16{2}, AuthDigitalSignature, appendixA["p256"]},
		{"p256", false, nil, AuthECDSA256, ""},
		{"p521", false, nil, AuthECDSA521, ""},
		{"ed25519", true, []uint16{5}, AuthDigitalSignature, appendixA["ed25519"]},
		{"ed25519", true, []uint16{2, 3, 4}, 0, ""},
		{"ed25519", false, nil, 0, ""},
	} {
		key := pkKey(t, tc.kind, 1)
		a, err := signAuth(key, signed, tc.announced, tc.hashes, rand.Reader)
		if tc.method == 0 {
			if err == nil {
				t.Errorf("%s %v: signed with method %d", tc.kind, tc.hashes, a.Method)
			}
			continue
		}
		if err != nil || a.Method != tc.method {
			t.Fatalf("%s %v: %v, method %v", tc.kind, tc.hashes, err, a)
		}
		if tc.ai != "" && hex.EncodeToString(a.Data[1:1+a.Data[0]]) != tc.ai {
			t.Errorf("%s %v: AlgorithmIdentifier %x, want %s", tc.kind, tc.hashes, a.Data[1:1+a.Data[0]], tc.ai)
		}
		if err := verifyAuth(key.Public(), a, signed); err != nil {
			t.Errorf("%s %v: own signature: %v", tc.kind, tc.hashes, err)
		}
		if verifyAuth(key.Public(), a, []byte("other octets")) == nil {
			t.Errorf("%s %v: verified over other octets", tc.kind, tc.hashes)
		}
		if verifyAuth(pkKey(t, tc.kind, 2).Public(), a, signed) == nil {
			t.Errorf("%s %v: verified with another key", tc.kind, tc.hashes)
		}
	}
}

// TestCheckPubkeyConfig: New refuses incomplete pubkey configurations.
func TestCheckPubkeyConfig(t *testing.T) {
	ca := newTestCA(t, "CA", pkKey(t, "p256", 0))
	ka := pkKey(t, "p256", 1)
	certA := ca.issue(t, "a.example", ka, nil)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Connection)
		want string
	}{
		{"no certs", func(c *Connection) { c.Local.Certs = nil }, "local auth pubkey: no certificate"},
		{"nil cert", func(c *Connection) { c.Local.Certs = []*x509.Certificate{certA, nil} }, "certificate 2 is nil"},
		{"no key", func(c *Connection) { c.Local.Key = nil }, "no private key"},
		{"other key", func(c *Connection) { c.Local.Key = pkKey(t, "p256", 2) }, "does not match"},
		{"weak rsa", func(c *Connection) { c.Local.Key = weak }, "1024 bits"},
		{"no CAs", func(c *Connection) { c.Remote.CAs = nil }, "remote auth pubkey: no CA certificates"},
		{"bad method", func(c *Connection) { c.Remote.Method = "eap" }, `"eap": want psk or pubkey`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := conn(t, "c1", addrA, addrB, true)
			usePubkey([]*x509.Certificate{certA}, ka, ca.cert)(&c)
			tc.mod(&c)
			_, err := New(Config{Connections: []Connection{c}, Kernel: newFakeKernel(0), Transport: &transport{n: newNetwork()}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
}

// pythonSig is an independent implementation of the signatures, in
// Python's cryptography package: it signs msg with each key in each
// scheme and verifies the signatures Go made.
const pythonSig = `
import sys, json
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, ec, utils
x = bytes.fromhex
req = json.load(sys.stdin)
msg = x(req["msg"])
keys = {k: serialization.load_der_private_key(x(v), None) for k, v in req["keys"].items()}
H = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
N = {"p256": 32, "p384": 48, "p521": 66}
def sign(kind, scheme):
    k = keys[kind]
    if scheme == "ed25519":
        return k.sign(msg)
    name, h = scheme.split("-")
    if name == "pkcs1":
        return k.sign(msg, padding.PKCS1v15(), H[h]())
    if name == "pss":
        return k.sign(msg, padding.PSS(padding.MGF1(H[h]()), 32), H[h]())
    der = k.sign(msg, ec.ECDSA(H[h]()))
    if name == "ecdsa":
        return der
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(N[kind], "big") + s.to_bytes(N[kind], "big")
def verify(kind, scheme, sig):
    p = keys[kind].public_key()
    try:
        if scheme == "ed25519":
            p.verify(sig, msg)
            return True
        name, h = scheme.split("-")
        if name == "pkcs1":
            p.verify(sig, msg, padding.PKCS1v15(), H[h]())
        elif name == "pss":
            p.verify(sig, msg, padding.PSS(padding.MGF1(H[h]()), padding.PSS.AUTO), H[h]())
        else:
            if name == "raw":
                n = N[kind]
                sig = utils.encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
            p.verify(sig, msg, ec.ECDSA(H[h]()))
        return True
    except Exception:
        return False
out = {"sigs": [sign(k, s).hex() for k, s in req["sign"]],
       "verified": [verify(k, s, x(sig)) for k, s, sig in req["verify"]]}
json.dump(out, sys.stdout)
`

// TestSignatureInterop: signatures made by Python's cryptography verify
// with verifyAuth (method 14 with RSA PKCS#1 v1.5, RSASSA-PSS, ECDSA and
// Ed25519; classic RSA and ECDSA), ours verify there, and an RFC 8032
// test vector checks Ed25519 in method 14.
func TestSignatureInterop(t *testing.T) {
	// RFC 8032 §7.1 TEST 1: the empty message.
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	kat, _ := hex.DecodeString("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
	edKey := ed25519.NewKeyFromSeed(seed)
	ai, _ := sigScheme{kind: sigEd25519}.algorithmIdentifier()
	if err := verifyAuth(edKey.Public(), &Auth{Method: AuthDigitalSignature, Data: append(append([]byte{byte(len(ai))}, ai...), kat...)}, []byte{}); err != nil {
		t.Fatalf("RFC 8032 test 1: %v", err)
	}
	if a, err := signAuth(edKey, []byte{}, true, []uint16{hashIdentity}, rand.Reader); err != nil || !bytes.Equal(a.Data[1+len(ai):], kat) {
		t.Fatalf("RFC 8032 test 1 signed: %v %x", err, a)
	}

	needPython(t)
	msg := bytes.Repeat([]byte("signed octets, RFC 7296 section 2.15 "), 7)
	keys := map[string]string{}
	for _, kind := range []string{"rsa", "p256", "p384", "p521", "ed25519"} {
		der, err := x509.MarshalPKCS8PrivateKey(pkKey(t, kind, 1))
		if err != nil {
			t.Fatal(err)
		}
		keys[kind] = hex.EncodeToString(der)
	}
	// What Python signs, and the AUTH method and scheme it stands for.
	type theirs struct {
		kind, scheme string
		method       AuthMethod
		s            sigScheme
	}
	cases := []theirs{
		{"rsa", "pkcs1-sha256", AuthDigitalSignature, sigScheme{kind: sigRSAPKCS1, hash: crypto.SHA256}},
		{"rsa", "pkcs1-sha512", AuthDigitalSignature, sigScheme{kind: sigRSAPKCS1, hash: crypto.SHA512}},
		{"rsa", "pss-sha256", AuthDigitalSignature, sigScheme{kind: sigRSAPSS, hash: crypto.SHA256, salt: 32}},
		{"rsa", "pkcs1-sha1", AuthRSASignature, sigScheme{}},
		{"p256", "ecdsa-sha256", AuthDigitalSignature, sigScheme{kind: sigECDSA, hash: crypto.SHA256}},
		{"p384", "ecdsa-sha384", AuthDigitalSignature, sigScheme{kind: sigECDSA, hash: crypto.SHA384}},
		{"p521", "ecdsa-sha512", AuthDigitalSignature, sigScheme{kind: sigECDSA, hash: crypto.SHA512}},
		{"p256", "raw-sha256", AuthECDSA256, sigScheme{}},
		{"p384", "raw-sha384", AuthECDSA384, sigScheme{}},
		{"p521", "raw-sha512", AuthECDSA521, sigScheme{}},
		{"ed25519", "ed25519", AuthDigitalSignature, sigScheme{kind: sigEd25519}},
	}
	var sign [][2]string
	for _, c := range cases {
		sign = append(sign, [2]string{c.kind, c.scheme})
	}
	// What Go signs, for Python to verify.
	type ours struct {
		kind      string
		announced bool
		hashes    []uint16
		scheme    string
	}
	mine := []ours{
		{"rsa", true, []uint16{2}, "pkcs1-sha256"}, {"rsa", false, nil, "pkcs1-sha1"},
		{"p256", true, []uint16{2, 3, 4}, "ecdsa-sha256"}, {"p384", true, []uint16{2, 3, 4}, "ecdsa-sha384"},
		{"p521", true, []uint16{2, 3, 4}, "ecdsa-sha512"}, {"p256", false, nil, "raw-sha256"},
		{"p384", false, nil, "raw-sha384"}, {"p521", false, nil, "raw-sha512"},
		{"ed25519", true, []uint16{5}, "ed25519"},
	}
	var verify [][3]string
	for _, m := range mine {
		a, err := signAuth(pkKey(t, m.kind, 1), msg, m.announced, m.hashes, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sig := a.Data
		if a.Method == AuthDigitalSignature {
			sig = a.Data[1+int(a.Data[0]):]
		}
		verify = append(verify, [3]string{m.kind, m.scheme, hex.EncodeToString(sig)})
	}
	// A forged one of ours must not verify there either.
	forged, _ := hex.DecodeString(verify[0][2])
	forged[10] ^= 1
	verify = append(verify, [3]string{verify[0][0], verify[0][1], hex.EncodeToString(forged)})

	in, _ := json.Marshal(map[string]any{"msg": hex.EncodeToString(msg), "keys": keys, "sign": sign, "verify": verify})
	cmd := exec.Command(testPython, "-c", pythonSig)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.Bytes())
	}
	var res struct {
		Sigs     []string `json:"sigs"`
		Verified []bool   `json:"verified"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Sigs) != len(cases) || len(res.Verified) != len(verify) {
		t.Fatalf("python answered %s (%v)", out, err)
	}
	for i, c := range cases {
		sig, _ := hex.DecodeString(res.Sigs[i])
		data := sig
		if c.method == AuthDigitalSignature {
			ai, err := c.s.algorithmIdentifier()
			if err != nil {
				t.Fatal(err)
			}
			data = append(append([]byte{byte(len(ai))}, ai...), sig...)
		}
		pub := pkKey(t, c.kind, 1).Public()
		if err := verifyAuth(pub, &Auth{Method: c.method, Data: data}, msg); err != nil {
			t.Errorf("python's %s/%s: %v", c.kind, c.scheme, err)
		}
		bad := bytes.Clone(data)
		bad[len(bad)-5] ^= 0x40
		if verifyAuth(pub, &Auth{Method: c.method, Data: bad}, msg) == nil {
			t.Errorf("python's %s/%s flipped verified", c.kind, c.scheme)
		}
	}
	for i, ok := range res.Verified {
		if want := i < len(mine); ok != want {
			t.Errorf("python verifying our %s/%s: %v, want %v", verify[i][0], verify[i][1], ok, want)
		}
	}
}

// TestAlgorithmIdentifiersOpenSSL: openssl reads our AlgorithmIdentifiers
// as the algorithms we mean.
func TestAlgorithmIdentifiersOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl")
	}
	for s, want := range map[sigScheme][]string{
		{kind: sigRSAPKCS1, hash: crypto.SHA256}:         {"sha256WithRSAEncryption", "NULL"},
		{kind: sigRSAPKCS1, hash: crypto.SHA384}:         {"sha384WithRSAEncryption"},
		{kind: sigRSAPSS, hash: crypto.SHA256, salt: 32}: {"rsassaPss", "sha256", "mgf1", ":20"},
		{kind: sigECDSA, hash: crypto.SHA256}:            {"ecdsa-with-SHA256"},
		{kind: sigECDSA, hash: crypto.SHA512}:            {"ecdsa-with-SHA512"},
		{kind: sigEd25519}:                               {"ED25519"},
	} {
		der, err := s.algorithmIdentifier()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(openssl, "asn1parse", "-inform", "DER", "-i")
		cmd.Stdin = bytes.NewReader(der)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl asn1parse %x: %v\n%s", der, err, out)
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%+v: openssl reads %s, missing %q", s, out, w)
			}
		}
	}
}
