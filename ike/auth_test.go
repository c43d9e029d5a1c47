package ike

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os/exec"
	"testing"
)

func TestSignedOctets(t *testing.T) {
	msg, nonce, skp := []byte("first message"), bytes.Repeat([]byte{0x4e}, 32), bytes.Repeat([]byte{0x70}, 32)
	id := &ID{Initiator: true, IDType: ID_FQDN, Data: []byte("moon.strongswan.org")}
	got, err := SignedOctets(PRFHMACSHA2_256, msg, nonce, skp, id)
	if err != nil {
		t.Fatal(err)
	}
	// RestOfIDPayload is what the codec writes after the generic header.
	body, err := id.appendBody(nil)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := PRFHMACSHA2_256.Compute(skp, body)
	want := append(append(append([]byte{}, msg...), nonce...), mac...)
	if !bytes.Equal(got, want) {
		t.Errorf("got %x\nwant %x", got, want)
	}
	// The ID type is covered, not only the data.
	other, _ := SignedOctets(PRFHMACSHA2_256, msg, nonce, skp, &ID{IDType: ID_KEY_ID, Data: id.Data})
	if bytes.Equal(other, got) {
		t.Error("ID type not covered")
	}
	for _, bad := range []struct {
		prf             PRFAlg
		msg, nonce, skp []byte
		id              *ID
	}{
		{PRFHMACSHA2_256, msg, nonce, skp, nil},
		{PRFHMACSHA2_256, nil, nonce, skp, id},
		{PRFHMACSHA2_256, msg, nil, skp, id},
		{PRFHMACSHA2_256, msg, nonce, nil, id},
		{PRFHMACSHA1, msg, nonce, skp, id},
	} {
		if _, err := SignedOctets(bad.prf, bad.msg, bad.nonce, bad.skp, bad.id); err == nil {
			t.Errorf("accepted %v %q %x %x %v", bad.prf, bad.msg, bad.nonce, bad.skp, bad.id)
		}
	}
}

func TestPSKAuth(t *testing.T) {
	signed := []byte("signed octets")
	psk := []byte("secret")
	a, err := PSKAuthData(PRFHMACSHA2_256, psk, signed)
	if err != nil || len(a) != 32 {
		t.Fatalf("%x, %v", a, err)
	}
	if !VerifyPSKAuth(PRFHMACSHA2_256, psk, signed, a) {
		t.Error("own AUTH refused")
	}
	for _, bad := range []struct {
		psk, signed, got []byte
	}{
		{[]byte("Secret"), signed, a},
		{psk, []byte("signed octetz"), a},
		{psk, signed, a[:31]},
		{psk, signed, append(bytes.Clone(a), 0)},
		{psk, signed, nil},
		{nil, signed, a},
	} {
		if VerifyPSKAuth(PRFHMACSHA2_256, bad.psk, bad.signed, bad.got) {
			t.Errorf("accepted psk %q signed %q auth %x", bad.psk, bad.signed, bad.got)
		}
	}
	if _, err := PSKAuthData(PRFHMACSHA2_256, nil, signed); err == nil {
		t.Error("empty PSK accepted")
	}
	if _, err := PSKAuthData(PRFAES128XCBC, psk, signed); err == nil || VerifyPSKAuth(PRFAES128XCBC, psk, signed, a) {
		t.Error("unimplemented PRF accepted")
	}
}

// pythonAuth computes RFC 7296 §2.15 (shared key AUTH over the signed
// octets) and §2.23 (NAT detection hash) with Python's hmac and hashlib.
const pythonAuth = `
import sys, json, hmac, hashlib
H = {5: hashlib.sha256, 6: hashlib.sha384, 7: hashlib.sha512}
x = bytes.fromhex
r = json.load(sys.stdin)
out = []
for c in r:
    h = H[c["prf"]]
    rest = bytes([c["idtype"], 0, 0, 0]) + x(c["id"])
    signed = x(c["msg"]) + x(c["nonce"]) + hmac.new(x(c["skp"]), rest, h).digest()
    k = hmac.new(x(c["psk"]), b"Key Pad for IKEv2", h).digest()
    natd = hashlib.sha1(x(c["spis"]) + x(c["addr"]) + int(c["port"]).to_bytes(2, "big")).digest()
    out.append({"signed": signed.hex(), "auth": hmac.new(k, signed, h).digest().hex(), "natd": natd.hex()})
json.dump(out, sys.stdout)
`

func TestAuthPython(t *testing.T) {
	needPython(t)
	type pyCase struct {
		PRF    PRFAlg `json:"prf"`
		IDType IDType `json:"idtype"`
		ID     string `json:"id"`
		Msg    string `json:"msg"`
		Nonce  string `json:"nonce"`
		SKp    string `json:"skp"`
		PSK    string `json:"psk"`
		SPIs   string `json:"spis"`
		Addr   string `json:"addr"`
		Port   int    `json:"port"`
	}
	cases := []pyCase{
		{PRFHMACSHA2_256, ID_FQDN, hex.EncodeToString([]byte("moon.strongswan.org")),
			"64ec235aa5c8cb7b0000000000000000212022080000000000000030", hex.EncodeToString(bytes.Repeat([]byte{0xab}, 32)),
			hex.EncodeToString(bytes.Repeat([]byte{0x11}, 32)), hex.EncodeToString([]byte("This is a strong password")),
			"64ec235aa5c8cb7b0000000000000000", "c0000201", 500},
		{PRFHMACSHA2_384, ID_IPV6_ADDR, "20010db8000000000000000000000001",
			"00", hex.EncodeToString(bytes.Repeat([]byte{0xcd}, 48)),
			hex.EncodeToString(bytes.Repeat([]byte{0x22}, 48)), "00ff",
			"0102030405060708090a0b0c0d0e0f10", "20010db8000000000000000000000002", 4500},
		{PRFHMACSHA2_512, ID_KEY_ID, "",
			hex.EncodeToString(bytes.Repeat([]byte{1}, 1000)), hex.EncodeToString(bytes.Repeat([]byte{0xef}, 256)),
			hex.EncodeToString(bytes.Repeat([]byte{0x33}, 64)), hex.EncodeToString(bytes.Repeat([]byte{7}, 200)),
			"ffffffffffffffffffffffffffffffff", "00000000", 0},
	}
	in, _ := json.Marshal(cases)
	cmd := exec.Command(testPython, "-c", pythonAuth)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var res []struct{ Signed, Auth, NATD string }
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("python output %s: %v", out, err)
	}
	for i, c := range cases {
		dec := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
		signed, err := SignedOctets(c.PRF, dec(c.Msg), dec(c.Nonce), dec(c.SKp), &ID{IDType: c.IDType, Data: dec(c.ID)})
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "signed octets", signed, res[i].Signed)
		auth, err := PSKAuthData(c.PRF, dec(c.PSK), signed)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "PSK AUTH", auth, res[i].Auth)
		if !VerifyPSKAuth(c.PRF, dec(c.PSK), signed, dec(res[i].Auth)) {
			t.Errorf("case %d: Python's AUTH refused", i)
		}
		spis := dec(c.SPIs)
		ap := addrPortOf(t, dec(c.Addr), uint16(c.Port))
		eq(t, "NAT detection hash", NATDetectionHash(be64u(spis[:8]), be64u(spis[8:]), ap), res[i].NATD)
	}
}

func be64u(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func addrPortOf(t *testing.T, a []byte, port uint16) netip.AddrPort {
	t.Helper()
	addr, ok := netip.AddrFromSlice(a)
	if !ok {
		t.Fatalf("address %x", a)
	}
	return netip.AddrPortFrom(addr, port)
}
