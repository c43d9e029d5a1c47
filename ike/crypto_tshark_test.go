package ike

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/internal/testenv"
)

// tsharkSuites are the SK suites Wireshark 4.0's IKEv2 decryption knows
// (it has no ChaCha20-Poly1305 for IKE; TestSKPython covers that one),
// with the names its ikev2_decryption_table UAT uses.
var tsharkSuites = []struct {
	suite       SKSuite
	encr, integ string
}{
	{SKSuite{Encr: EncrAESGCM16, KeyBits: 128}, "AES-GCM-128 with 16 octet ICV [RFC5282]", "NONE [RFC4306]"},
	{SKSuite{Encr: EncrAESGCM16, KeyBits: 256}, "AES-GCM-256 with 16 octet ICV [RFC5282]", "NONE [RFC4306]"},
	{SKSuite{Encr: EncrAESGCM8, KeyBits: 128}, "AES-GCM-128 with 8 octet ICV [RFC5282]", "NONE [RFC4306]"},
	{SKSuite{Encr: EncrAESGCM12, KeyBits: 256}, "AES-GCM-256 with 12 octet ICV [RFC5282]", "NONE [RFC4306]"},
	{SKSuite{Encr: EncrAESCBC, KeyBits: 128, Integ: IntegHMACSHA2_256_128}, "AES-CBC-128 [RFC3602]", "HMAC_SHA2_256_128 [RFC4868]"},
	{SKSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA2_384_192}, "AES-CBC-256 [RFC3602]", "HMAC_SHA2_384_192 [RFC4868]"},
	{SKSuite{Encr: EncrAESCBC, KeyBits: 256, Integ: IntegHMACSHA2_512_256}, "AES-CBC-256 [RFC3602]", "HMAC_SHA2_512_256 [RFC4868]"},
}

// appendPcapUDP appends one Ethernet/IPv4/UDP frame (port 500 to 500) to a
// pcap file image.
func appendPcapUDP(f []byte, ts uint32, src, dst [4]byte, payload []byte) []byte {
	udpLen := 8 + len(payload)
	ipLen := 20 + udpLen
	frame := make([]byte, 0, 14+ipLen)
	frame = append(frame, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00)
	ip := []byte{0x45, 0, byte(ipLen >> 8), byte(ipLen), 0, 0, 0x40, 0, 64, 17, 0, 0}
	ip = append(append(ip, src[:]...), dst[:]...)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	frame = append(frame, ip...)
	frame = binary.BigEndian.AppendUint16(frame, 500)
	frame = binary.BigEndian.AppendUint16(frame, 500)
	frame = binary.BigEndian.AppendUint16(frame, uint16(udpLen))
	frame = append(frame, 0, 0) // no UDP checksum (IPv4)
	frame = append(frame, payload...)
	f = binary.LittleEndian.AppendUint32(f, ts)
	f = binary.LittleEndian.AppendUint32(f, 0)
	f = binary.LittleEndian.AppendUint32(f, uint32(len(frame)))
	f = binary.LittleEndian.AppendUint32(f, uint32(len(frame)))
	return append(f, frame...)
}

// TestSKTshark encrypts IKE_AUTH-shaped messages with keys from
// DeriveIKEKeys, writes them to a pcap and has tshark decrypt them with
// those keys in its ikev2_decryption_table: an independent implementation
// of RFC 5282 (AAD, salt, IV, truncated GCM tags) and of RFC 7296 §3.14
// with RFC 4868 (CBC, padding, the ICV over the whole message), and a
// check that the keys are taken out of KEYMAT in the order tshark
// expects them to be exported (SK_ei, SK_er, SK_ai, SK_ar).
func TestSKTshark(t *testing.T) {
	tshark := testenv.NeedCommand(t, "tshark")
	dir := t.TempDir()
	pcap := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
	var args []string
	ini, resp := [4]byte{192, 0, 2, 1}, [4]byte{192, 0, 2, 2}
	ni, nr := testKey(0x10, 32), testKey(0x20, 32)
	inner := testInner()
	var badFrames []byte // each suite's request with its ICV's last bit flipped
	for i, tc := range tsharkSuites {
		spii, spir := uint64(0x1000+i)<<32|0xa1a2a3a4, uint64(0x2000+i)<<32|0xb1b2b3b4
		skeyseed, err := SKEYSEED(PRFHMACSHA2_256, ni, nr, testKey(byte(i), 32))
		if err != nil {
			t.Fatal(err)
		}
		k, err := DeriveIKEKeys(PRFHMACSHA2_256, tc.suite, skeyseed, ni, nr, spii, spir)
		if err != nil {
			t.Fatal(err)
		}
		iOut, _, err := NewSKCiphers(tc.suite, k, true)
		if err != nil {
			t.Fatal(err)
		}
		rOut, _, err := NewSKCiphers(tc.suite, k, false)
		if err != nil {
			t.Fatal(err)
		}
		req, err := iOut.Seal(nil, testPrefix(spii, spir, 0x08, 35, 1), inner)
		if err != nil {
			t.Fatal(err)
		}
		res, err := rOut.Seal(nil, testPrefix(spii, spir, 0x20, 35, 1), inner)
		if err != nil {
			t.Fatal(err)
		}
		pcap = appendPcapUDP(pcap, uint32(2*i+1), ini, resp, req)
		pcap = appendPcapUDP(pcap, uint32(2*i+2), resp, ini, res)
		bad := append([]byte(nil), req...)
		bad[len(bad)-1] ^= 1
		badFrames = appendPcapUDP(badFrames, uint32(100+i), ini, resp, bad)
		h := hex.EncodeToString
		args = append(args, "-o", fmt.Sprintf(`uat:ikev2_decryption_table:%016x,%016x,%s,%s,"%s",%s,%s,"%s"`,
			spii, spir, h(k.SKei), h(k.SKer), tc.encr, h(k.SKai), h(k.SKar), tc.integ))
	}
	pcap = append(pcap, badFrames...)
	file := filepath.Join(dir, "ike.pcap")
	if d := os.Getenv("IKE_PCAP_DIR"); d != "" {
		file = filepath.Join(d, "ike.pcap")
	}
	if err := os.WriteFile(file, pcap, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("tshark -r %s %s", file, strings.Join(args, " "))
	good := fmt.Sprintf("frame.number <= %d", 2*len(tsharkSuites))
	keys := args
	args = append([]string{"-n", "-r", file, "-Y", good, "-T", "fields", "-E", "separator=;",
		"-e", "frame.number", "-e", "isakmp.typepayload", "-e", "isakmp.id.data.fqdn", "-e", "isakmp.notify.msgtype",
		"-e", "isakmp.enc.pad_length"}, args...)
	run := func(args []string) string {
		cmd := exec.Command(tshark, args...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run(args)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2*len(tsharkSuites) {
		t.Fatalf("tshark printed %d lines, want %d:\n%s", len(lines), 2*len(tsharkSuites), out)
	}
	for i, l := range lines {
		tc := tsharkSuites[i/2]
		f := strings.Split(l, ";")
		if len(f) < 5 {
			t.Fatalf("frame %d: %q", i+1, l)
		}
		// The outer SK payload, then the three inner payloads.
		if f[1] != "46,35,39,41" {
			t.Errorf("%s frame %d: payload types %q, want 46,35,39,41 (SK, IDi, AUTH, N)", tc.encr, i+1, f[1])
		}
		if got := f[2]; got != "initiator.example.org" {
			t.Errorf("%s frame %d: IDi %q", tc.encr, i+1, got)
		}
		if f[3] != "16384" {
			t.Errorf("%s frame %d: notify %q, want 16384 (INITIAL_CONTACT)", tc.encr, i+1, f[3])
		}
		t.Logf("%s / %s frame %d: %s", tc.encr, tc.integ, i+1, l)
	}

	// tshark checks the ICV too: "[correct]" for every good frame, not for
	// the frames whose ICV was changed.
	verbose := run(append([]string{"-n", "-r", file, "-V"}, keys...))
	frames := strings.Split(verbose, "\nFrame ")
	if len(frames) != 3*len(tsharkSuites) {
		t.Fatalf("tshark -V: %d frames, want %d", len(frames), 3*len(tsharkSuites))
	}
	for i, fr := range frames {
		tc := tsharkSuites[(i/2)%len(tsharkSuites)]
		correct := strings.Contains(fr, "Integrity Checksum Data: ") && strings.Contains(fr, "[correct]")
		if i < 2*len(tsharkSuites) && !correct {
			t.Errorf("%s frame %d: tshark did not find the ICV correct", tc.encr, i+1)
		}
		if i >= 2*len(tsharkSuites) && correct {
			t.Errorf("%s frame %d: tshark found a flipped ICV correct", tsharkSuites[i-2*len(tsharkSuites)].encr, i+1)
		}
	}
}
