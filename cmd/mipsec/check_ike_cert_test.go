package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCertFiles makes a CA and the certificates of gw-a and gw-b
// (ECDSA P-256, subjectAltName DNS) as testdata/ike-gateway-a-cert.toml
// describes them, into dir: ca.crt, gw-a.crt, gw-a.key, gw-b.crt, gw-b.key
// (keys PKCS#8, mode 0600).
func writeCertFiles(t *testing.T, dir string) {
	t.Helper()
	write := func(name, typ string, der []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{"example"}, CommonName: "example CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.crt", "CERTIFICATE", caDER, 0o644)
	for i, gw := range []string{"gw-a", "gw-b"} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(2 + i)), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{"example"}, CommonName: gw + ".example.org"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			DNSNames: []string{gw + ".example.org"}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(gw+".crt", "CERTIFICATE", der, 0o644)
		write(gw+".key", "PRIVATE KEY", kder, 0o600)
	}
}

// ikeCertPair writes testdata/ike-gateway-a-cert.toml and -b-cert.toml
// into a temp dir with their certificate files there (writeCertFiles)
// and /etc/mipsec/ rewritten to it; it returns the two configs and dir.
func ikeCertPair(t *testing.T) (a, b, dir string) {
	t.Helper()
	dir = t.TempDir()
	writeCertFiles(t, dir)
	var out [2]string
	for i, name := range []string{"ike-gateway-a-cert.toml", "ike-gateway-b-cert.toml"} {
		f := withStateDir(t, "../../testdata/"+name, filepath.Join(dir, "state"))
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(data, []byte(`"/etc/mipsec/`)); n != 3 {
			t.Fatalf("%s names %d files under /etc/mipsec/, want 3 (cert, key, cacerts)", name, n)
		}
		data = bytes.ReplaceAll(data, []byte(`"/etc/mipsec/`), []byte(`"`+dir+"/"))
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out[i] = f
	}
	return out[0], out[1], dir
}

// TestCheckIKECert: the certificate example pair passes check, alone and
// as a pair, without warnings; a key that is not the certificate's, a
// group-readable key and a missing CA file are errors naming the field.
func TestCheckIKECert(t *testing.T) {
	a, b, dir := ikeCertPair(t)
	for _, f := range []string{a, b} {
		var out, errb bytes.Buffer
		if rc := checkConfig(f, &out, &errb, fakeProbe(ext4Magic, nil)); rc != 0 {
			t.Fatalf("%s: rc %d\n%s%s", f, rc, out.String(), errb.String())
		}
		if want := f + ": OK (0 SAs, 0 policies, 0 peers, 1 IKE connection)\n"; out.String() != want {
			t.Errorf("stdout %q, want %q", out.String(), want)
		}
		if errb.Len() != 0 {
			t.Errorf("warnings: %s", errb.String())
		}
	}
	var out, errb bytes.Buffer
	if rc := checkFiles([]string{a, b}, nil, &out, &errb, fakeProbe(ext4Magic, nil), func() {}); rc != 0 || !strings.Contains(out.String(), "OK: "+a+" and "+b+" mirror each other") {
		t.Errorf("pair: rc %d\n%s%s", rc, out.String(), errb.String())
	}

	// A's config with B's key: not the certificate's key.
	bad := func(t *testing.T, from, to string, chmod os.FileMode) (int, string) {
		t.Helper()
		data, err := os.ReadFile(a)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "a.toml")
		if err := os.WriteFile(f, bytes.Replace(data, []byte(from), []byte(to), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		if chmod != 0 {
			if err := os.Chmod(filepath.Join(dir, "gw-a.key"), chmod); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(filepath.Join(dir, "gw-a.key"), 0o600)
		}
		var out, errb bytes.Buffer
		rc := checkConfig(f, &out, &errb, fakeProbe(ext4Magic, nil))
		return rc, errb.String()
	}
	if rc, msg := bad(t, `/gw-a.key"`, `/gw-b.key"`, 0); rc != 1 || !strings.Contains(msg, "connection[0].local.key") || !strings.Contains(msg, "is not the private key of the certificate") {
		t.Errorf("B's key in A: rc %d: %s", rc, msg)
	}
	if rc, msg := bad(t, "x", "x", 0o640); rc != 1 || !strings.Contains(msg, "chmod 600 "+filepath.Join(dir, "gw-a.key")) || strings.Contains(msg, "PRIVATE KEY") {
		t.Errorf("group-readable key: rc %d: %s", rc, msg)
	}
	if rc, msg := bad(t, `/ca.crt"`, `/missing-ca.crt"`, 0); rc != 1 || !strings.Contains(msg, "connection[0].remote.cacerts[0]") {
		t.Errorf("missing CA file: rc %d: %s", rc, msg)
	}
}
