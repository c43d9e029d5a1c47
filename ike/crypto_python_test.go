package ike

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// pythonIKE is an independent implementation, in Python's hmac/hashlib and
// the cryptography package, of RFC 7296 §2.13 prf+, §2.14 SKEYSEED and
// SK_*, §2.17 KEYMAT, §2.18 the rekey SKEYSEED, and the SK payload of
// §3.14 / RFC 5282 / RFC 7634. It reads a JSON request on stdin and
// prints a JSON answer.
const pythonIKE = `
import sys, json, hmac, hashlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

H = {5: hashlib.sha256, 6: hashlib.sha384, 7: hashlib.sha512}
IH = {12: (hashlib.sha256, 16), 13: (hashlib.sha384, 24), 14: (hashlib.sha512, 32)}
x = bytes.fromhex

def prf(a, k, d):
    return hmac.new(k, d, H[a]).digest()

def prfplus(a, k, s, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(a, k, t + s + bytes([i]))
        out += t
        i += 1
    return out[:n]

def sk_open(c, msg, off):
    hdr = off + 4
    if c["encr"] == 12:
        h, icv = IH[c["integ"]]
        body, tag = msg[:-icv], msg[-icv:]
        assert hmac.compare_digest(hmac.new(x(c["ak"]), body, h).digest()[:icv], tag)
        iv, ct = msg[hdr:hdr+16], msg[hdr+16:-icv]
        d = Cipher(algorithms.AES(x(c["ek"])), modes.CBC(iv)).decryptor()
        pt = d.update(ct) + d.finalize()
    else:
        ek = x(c["ek"]); key, salt = ek[:-4], ek[-4:]
        iv, aad = msg[hdr:hdr+8], msg[:hdr]
        if c["encr"] == 28:
            pt = ChaCha20Poly1305(key).decrypt(salt + iv, msg[hdr+8:], aad)
        else:
            icv = {18: 8, 19: 12, 20: 16}[c["encr"]]
            ct, tag = msg[hdr+8:-icv], msg[-icv:]
            d = Cipher(algorithms.AES(key), modes.GCM(salt + iv, tag, min_tag_length=icv)).decryptor()
            d.authenticate_additional_data(aad)
            pt = d.update(ct) + d.finalize()
    return pt[:len(pt) - 1 - pt[-1]]

def sk_seal(c, prefix, inner, iv):
    off = len(prefix) - 4
    if c["encr"] == 12:
        h, icv = IH[c["integ"]]
        pad = (16 - (len(inner) + 1) % 16) % 16
    else:
        icv = {18: 8, 19: 12, 20: 16, 28: 16}[c["encr"]]
        pad = 3  # any padding is allowed; the receiver must accept it
    pt = inner + bytes(range(1, pad + 1)) + bytes([pad])
    total = len(prefix) + len(iv) + len(pt) + icv
    m = bytearray(prefix)
    m[24:28] = total.to_bytes(4, "big")
    m[off+2:off+4] = (total - off).to_bytes(2, "big")
    m = bytes(m)
    if c["encr"] == 12:
        e = Cipher(algorithms.AES(x(c["ek"])), modes.CBC(iv)).encryptor()
        body = m + iv + e.update(pt) + e.finalize()
        return body + hmac.new(x(c["ak"]), body, h).digest()[:icv]
    ek = x(c["ek"]); key, salt = ek[:-4], ek[-4:]
    if c["encr"] == 28:
        return m + iv + ChaCha20Poly1305(key).encrypt(salt + iv, pt, m)
    e = Cipher(algorithms.AES(key), modes.GCM(salt + iv)).encryptor()
    e.authenticate_additional_data(m)
    ct = e.update(pt) + e.finalize()
    return m + iv + ct + e.tag[:icv]

req = json.load(sys.stdin)
res = {"kdf": [], "sk": []}
for c in req["kdf"]:
    a = c["prf"]; ni, nr, gir = x(c["ni"]), x(c["nr"]), x(c["gir"])
    seed = prf(a, ni + nr, gir)
    km = prfplus(a, seed, ni + nr + x(c["spii"]) + x(c["spir"]), c["n"])
    pl = H[a]().digest_size
    skd = km[:pl]
    ni2, nr2, gir2 = x(c["ni2"]), x(c["nr2"]), x(c["gir2"])
    child = prfplus(a, skd, ni + nr, c["childn"])
    pfs = prfplus(a, skd, gir2 + ni2 + nr2, c["childn"])
    rekey = prf(a, skd, gir2 + ni2 + nr2)
    res["kdf"].append({"skeyseed": seed.hex(), "keymat": km.hex(), "child": child.hex(),
                       "pfs": pfs.hex(), "rekey": rekey.hex()})
for c in req["sk"]:
    inner = sk_open(c, x(c["msg"]), 28)
    sealed = sk_seal(c, x(c["prefix"]), x(c["inner"]), x(c["iv"]))
    res["sk"].append({"inner": inner.hex(), "sealed": sealed.hex()})
json.dump(res, sys.stdout)
`

const testPython = "/usr/bin/python3"

// needPython skips (or fails in CI) without Debian's python3 and its
// cryptography package.
func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(testPython); err != nil {
		testenv.SkipOrFail(t, "needs %s: %v", testPython, err)
	}
	if err := exec.Command(testPython, "-c", "import cryptography").Run(); err != nil {
		testenv.SkipOrFail(t, "needs the python3 cryptography package (python3-cryptography): %v", err)
	}
}

func runPython(t *testing.T, req any, res any) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testPython, "-c", pythonIKE)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.Bytes())
	}
	if err := json.Unmarshal(out, res); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
}

type pyKDFCase struct {
	PRF    PRFAlg `json:"prf"`
	Ni     string `json:"ni"`
	Nr     string `json:"nr"`
	Gir    string `json:"gir"`
	SPIi   string `json:"spii"`
	SPIr   string `json:"spir"`
	N      int    `json:"n"`
	Ni2    string `json:"ni2"`
	Nr2    string `json:"nr2"`
	Gir2   string `json:"gir2"`
	ChildN int    `json:"childn"`

	suite            SKSuite
	ni, nr, ni2, nr2 []byte
	gir, gir2        []byte
	spii, spir       uint64
}

// TestKeysPython checks SKEYSEED, the seven SK_* keys, Child SA KEYMAT
// with and without PFS and the rekey SKEYSEED against Python's hmac.
func TestKeysPython(t *testing.T) {
	needPython(t)
	var cases []pyKDFCase
	// One real key exchange result per PRF, nonces of different lengths.
	for i, tc := range []struct {
		prf   PRFAlg
		suite SKSuite
		g     DHGroup
		nlen  int
	}{
		{PRFHMACSHA2_256, SKSuite{Encr: EncrAESGCM16, KeyBits: 128}, DHCurve25519, 32},
		{PRFHMACSHA2_384, SKSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA2_384_192}, DHECP384, 48},
		{PRFHMACSHA2_512, SKSuite{Encr: EncrChaCha20Poly1305}, DHMODP2048, 64},
		{PRFHMACSHA2_256, SKSuite{Encr: EncrAESCBC, KeyBits: 128, Integ: IntegHMACSHA2_512_256}, DHECP256, 17},
	} {
		a, err := NewKeyExchange(tc.g, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewKeyExchange(tc.g, nil)
		gir, err := a.SharedSecret(b.PublicValue())
		if err != nil {
			t.Fatal(err)
		}
		c := pyKDFCase{PRF: tc.prf, suite: tc.suite, gir: gir,
			ni: testKey(byte(i), max(tc.nlen, 32)), nr: testKey(byte(i+50), tc.nlen+7),
			ni2: testKey(byte(i+90), 40), nr2: testKey(byte(i+130), 33), gir2: testKey(byte(i+170), 256),
			spii: 0x0123456789abcdef + uint64(i), spir: 0xfedcba9876543210 - uint64(i)}
		c.Ni, c.Nr, c.Gir = hex.EncodeToString(c.ni), hex.EncodeToString(c.nr), hex.EncodeToString(gir)
		c.Ni2, c.Nr2, c.Gir2 = hex.EncodeToString(c.ni2), hex.EncodeToString(c.nr2), hex.EncodeToString(c.gir2)
		c.SPIi = hex.EncodeToString(be64(c.spii))
		c.SPIr = hex.EncodeToString(be64(c.spir))
		c.N = 3*tc.prf.Size() + 2*tc.suite.IntegKeyLen() + 2*tc.suite.EncKeyLen()
		c.ChildN = 2 * 36 // two aes256gcm16 keys; the PFS case splits it 20+16
		cases = append(cases, c)
	}
	var res struct {
		KDF []struct {
			SKEYSEED string `json:"skeyseed"`
			Keymat   string `json:"keymat"`
			Child    string `json:"child"`
			PFS      string `json:"pfs"`
			Rekey    string `json:"rekey"`
		} `json:"kdf"`
	}
	runPython(t, map[string]any{"kdf": cases, "sk": []any{}}, &res)
	if len(res.KDF) != len(cases) {
		t.Fatalf("python answered %d cases", len(res.KDF))
	}
	for i, c := range cases {
		r := res.KDF[i]
		seed, err := SKEYSEED(c.PRF, c.ni, c.nr, c.gir)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, c.PRF.String()+" SKEYSEED", seed, r.SKEYSEED)
		k, err := DeriveIKEKeys(c.PRF, c.suite, seed, c.ni, c.nr, c.spii, c.spir)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, c.PRF.String()+" SK_d|SK_ai|SK_ar|SK_ei|SK_er|SK_pi|SK_pr",
			bytes.Join([][]byte{k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr}, nil), r.Keymat)
		if len(k.SKd) != c.PRF.Size() || len(k.SKpi) != c.PRF.Size() || len(k.SKei) != c.suite.EncKeyLen() || len(k.SKai) != c.suite.IntegKeyLen() {
			t.Errorf("%v: key lengths %d %d %d %d", c.suite, len(k.SKd), len(k.SKpi), len(k.SKei), len(k.SKai))
		}
		ck, err := DeriveChildKeys(c.PRF, k.SKd, nil, c.ni, c.nr, 36, 0)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "KEYMAT", bytes.Join([][]byte{ck.EncrIR, ck.IntegIR, ck.EncrRI, ck.IntegRI}, nil), r.Child)
		pk, err := DeriveChildKeys(c.PRF, k.SKd, c.gir2, c.ni2, c.nr2, 20, 16)
		if err != nil {
			t.Fatal(err)
		}
		// Encryption before integrity, initiator to responder first (§2.17).
		want, _ := hex.DecodeString(r.PFS)
		if !bytes.Equal(pk.EncrIR, want[:20]) || !bytes.Equal(pk.IntegIR, want[20:36]) ||
			!bytes.Equal(pk.EncrRI, want[36:56]) || !bytes.Equal(pk.IntegRI, want[56:72]) {
			t.Errorf("PFS KEYMAT split differs from python's %s", r.PFS)
		}
		rk, err := RekeySKEYSEED(c.PRF, k.SKd, c.gir2, c.ni2, c.nr2)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "rekey SKEYSEED", rk, r.Rekey)
	}
}

func be64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
	return b
}

func eq(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if hex.EncodeToString(got) != want {
		t.Errorf("%s:\n got  %x\n want %s", what, got, want)
	}
}

// TestSKPython: Python opens what Seal made and seals what Open must
// accept, for every suite including ChaCha20-Poly1305 (which tshark 4.0
// cannot decrypt), with padding Seal never sends.
func TestSKPython(t *testing.T) {
	needPython(t)
	type skCase struct {
		Encr   EncrAlg  `json:"encr"`
		Integ  IntegAlg `json:"integ"`
		EK     string   `json:"ek"`
		AK     string   `json:"ak"`
		Msg    string   `json:"msg"`
		Prefix string   `json:"prefix"`
		Inner  string   `json:"inner"`
		IV     string   `json:"iv"`
	}
	var cases []skCase
	var rxs []*SKCipher
	inner := testInner()
	for i, tc := range skSuites {
		tx, rx, ek, ak := testSKPair(t, tc.suite, byte(20+i))
		msg, err := tx.Seal(nil, testPrefix(uint64(i), 7, 0x08, 35, 2), inner)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, skCase{Encr: tc.suite.Encr, Integ: tc.suite.Integ,
			EK: hex.EncodeToString(ek), AK: hex.EncodeToString(ak), Msg: hex.EncodeToString(msg),
			Prefix: hex.EncodeToString(testPrefix(uint64(i), 7, 0x20, 35, 9)),
			Inner:  hex.EncodeToString(inner[:len(inner)-3]), IV: hex.EncodeToString(testKey(byte(i), tx.IVLen()))})
		rxs = append(rxs, rx)
	}
	var res struct {
		SK []struct{ Inner, Sealed string } `json:"sk"`
	}
	runPython(t, map[string]any{"kdf": []any{}, "sk": cases}, &res)
	if len(res.SK) != len(cases) {
		t.Fatalf("python answered %d cases", len(res.SK))
	}
	for i, tc := range skSuites {
		eq(t, tc.name+": python's Open of our Seal", inner, res.SK[i].Inner)
		sealed, _ := hex.DecodeString(res.SK[i].Sealed)
		got, err := rxs[i].Open(nil, sealed, 28)
		if err != nil {
			t.Errorf("%s: Open of python's Seal: %v", tc.name, err)
			continue
		}
		eq(t, tc.name+": our Open of python's Seal", got, cases[i].Inner)
	}
}
