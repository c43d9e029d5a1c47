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
	"os"
	"path/filepath"
	"time"
)

// ndMakeCerts writes ca.pem, and for each gateway x (a, b) gateway-x.pem
// and gateway-x.key (PKCS#8, mode 0600), into dir.
func ndMakeCerts(dir string) (*ndCerts, error) {
	now := time.Now()
	serial := func() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) }
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
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
	c := &ndCerts{CA: filepath.Join(dir, "ca.pem")}
	if err := ndWritePEM(c.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return nil, err
	}
	for _, g := range []struct {
		name, id   string
		cert, keyf *string
	}{{"a", ndIDA, &c.CertA, &c.KeyA}, {"b", ndIDB, &c.CertB, &c.KeyB}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		sn, err := serial()
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: sn,
			Subject:      pkix.Name{Organization: []string{"mipsec demo"}, CommonName: g.id},
			DNSNames:     []string{g.id},
			NotBefore:    now.Add(-time.Minute),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, err
		}
		pk, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		*g.cert = filepath.Join(dir, "gateway-"+g.name+".pem")
		*g.keyf = filepath.Join(dir, "gateway-"+g.name+".key")
		if err := ndWritePEM(*g.cert, "CERTIFICATE", der, 0o644); err != nil {
			return nil, err
		}
		if err := ndWritePEM(*g.keyf, "PRIVATE KEY", pk, 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
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
