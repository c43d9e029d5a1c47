package demo

// The --pubkey variant of the gateway demo: a throwaway CA and one
// certificate per gateway (ECDSA P-256), made with crypto/x509 in the
// demo's directory, so that the gateways authenticate IKE_AUTH with
// signatures (RFC 7296 §2.15, RFC 7427) instead of the pre-shared key.
// Each certificate names the gateway's identity as a dNSName, which is
// what the peer's ID_FQDN is checked against (RFC 4945 §3.1).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// ndMakeCerts writes ca.pem, and for each gateway x (a, b) gateway-x.pem
// and gateway-x.key (PKCS#8, mode 0600), into dir.
func ndMakeCerts(dir string) (*ndCerts, error) {
	ca, err := newDemoCA(dir)
	if err != nil {
		return nil, err
	}
	c := &ndCerts{CA: ca.path}
	for _, g := range []struct {
		name, id   string
		cert, keyf *string
	}{{"a", ndIDA, &c.CertA, &c.KeyA}, {"b", ndIDB, &c.CertB, &c.KeyB}} {
		if *g.cert, *g.keyf, err = ca.issue("gateway-"+g.name, g.id, []string{g.id}, nil); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// demoCA is a throwaway CA (ECDSA P-256, valid one day) whose
// certificate is ca.pem in its directory.
type demoCA struct {
	dir, path string
	cert      *x509.Certificate
	key       *ecdsa.PrivateKey
}

func demoSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newDemoCA makes the CA and writes dir/ca.pem.
func newDemoCA(dir string) (*demoCA, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := demoSerial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"mipsec demo"}, CommonName: "mipsec demo CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	c := &demoCA{dir: dir, path: filepath.Join(dir, "ca.pem"), cert: ca, key: caKey}
	if err := ndWritePEM(c.path, "CERTIFICATE", caDER, 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// issue writes dir/name.pem, a certificate for subject cn with the
// dNSName and iPAddress subjectAltNames given (RFC 4945 §3.1: what an
// ID_FQDN or ID_IPV6_ADDR identity is checked against), and dir/name.key,
// its private key (PKCS#8, mode 0600).
func (ca *demoCA) issue(name, cn string, dns []string, ips []netip.Addr) (cert, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	sn, err := demoSerial()
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{Organization: []string{"mipsec demo"}, CommonName: cn},
		DNSNames:     dns,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	for _, a := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return "", "", err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	cert, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	if err := ndWritePEM(cert, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", err
	}
	if err := ndWritePEM(keyFile, "PRIVATE KEY", pk, 0o600); err != nil {
		return "", "", err
	}
	return cert, keyFile, nil
}

// ndWritePEM writes one PEM block to a new file of mode perm.
func ndWritePEM(path, typ string, der []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	err = pem.Encode(f, &pem.Block{Type: typ, Bytes: der})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
