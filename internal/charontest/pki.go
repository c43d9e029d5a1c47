//go:build linux

package charontest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KeyType is a key algorithm of strongSwan's pki --gen.
type KeyType string

// The key types the helpers generate.
const (
	RSA     KeyType = "rsa"     // 2048 bits
	ECDSA   KeyType = "ecdsa"   // P-256
	Ed25519 KeyType = "ed25519" // RFC 8420
)

// pkiConf keeps pki to the plugins it needs (its default load list also
// tries the TPM plugin, which complains without a TPM).
const pkiConf = `pki {
  load = random drbg nonce openssl aes sha1 sha2 hmac gmp pem pkcs1 pkcs8 x509 pubkey curve25519 constraints
}
`

// CA is a certificate authority made by NewCA: its self-signed
// certificate and key are files in Dir, and Issue signs end-entity
// certificates with them.
type CA struct {
	Dir      string
	Type     KeyType
	DN       string
	CertPath string // PEM
	KeyPath  string // PEM
}

// Cert is an end-entity certificate and its key, files in the CA's Dir.
type Cert struct {
	Name     string // file name stem
	DN       string
	SANs     []string
	Type     KeyType
	CertPath string // PEM
	KeyPath  string // PEM
}

// NewCA generates a key of type kt and a self-signed CA certificate with
// subject dn (e.g. "C=CH, O=mipsec test, CN=Test CA") into dir as ca.crt
// and ca.key (pki --gen, pki --self --ca).
func NewCA(dir string, kt KeyType, dn string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "pki.conf")
	if err := os.WriteFile(conf, []byte(pkiConf), 0o600); err != nil {
		return nil, err
	}
	ca := &CA{Dir: dir, Type: kt, DN: dn, CertPath: filepath.Join(dir, "ca.crt"), KeyPath: filepath.Join(dir, "ca.key")}
	if err := genKey(conf, kt, ca.KeyPath); err != nil {
		return nil, err
	}
	if err := runPKI(conf, ca.CertPath, "--self", "--ca", "--lifetime", "30",
		"--in", ca.KeyPath, "--type", "priv", "--dn", dn, "--outform", "pem"); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issue generates a key of type kt and a certificate signed by ca for it,
// with subject dn and the subjectAltNames sans (addresses, FQDNs or
// emails, as pki --san takes them), into name.crt and name.key.
func (ca *CA) Issue(name string, kt KeyType, dn string, sans ...string) (*Cert, error) {
	if name == "" || name == "ca" || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("charontest: certificate name %q", name)
	}
	conf := filepath.Join(ca.Dir, "pki.conf")
	c := &Cert{Name: name, DN: dn, SANs: sans, Type: kt,
		CertPath: filepath.Join(ca.Dir, name+".crt"), KeyPath: filepath.Join(ca.Dir, name+".key")}
	if err := genKey(conf, kt, c.KeyPath); err != nil {
		return nil, err
	}
	args := []string{"--issue", "--lifetime", "30", "--cacert", ca.CertPath, "--cakey", ca.KeyPath,
		"--in", c.KeyPath, "--type", "priv", "--dn", dn, "--outform", "pem"}
	for _, s := range sans {
		args = append(args, "--san", s)
	}
	if err := runPKI(conf, c.CertPath, args...); err != nil {
		return nil, err
	}
	return c, nil
}

func genKey(conf string, kt KeyType, out string) error {
	args := []string{"--gen", "--type", string(kt), "--outform", "pem"}
	switch kt {
	case RSA:
		args = append(args, "--size", "2048")
	case ECDSA:
		args = append(args, "--size", "256")
	case Ed25519:
	default:
		return fmt.Errorf("charontest: key type %q", kt)
	}
	return runPKI(conf, out, args...)
}

// runPKI runs pki with args and writes its standard output to out (0600).
func runPKI(conf, out string, args ...string) error {
	cmd := exec.Command(PKIPath, args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("charontest: pki %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	if stdout.Len() == 0 {
		return fmt.Errorf("charontest: pki %s: no output", strings.Join(args, " "))
	}
	return os.WriteFile(out, stdout.Bytes(), 0o600)
}

// WritePSK writes secret to dir/name (0600), for configurations that read
// a pre-shared key from a file, and returns the path.
func WritePSK(dir, name string, secret []byte) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("charontest: WritePSK: empty secret")
	}
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("charontest: WritePSK: file name %q", name)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, secret, 0o600); err != nil {
		return "", err
	}
	return p, nil
}
