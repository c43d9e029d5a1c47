package ike

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mipsec/mipsec/internal/testenv"
)

// strongswanVector is a message a real strongSwan sent, from testdata
// (each file says where it came from).
type strongswanVector struct {
	name string
	msg  []byte
}

func strongswanVectors(t testing.TB) []strongswanVector {
	t.Helper()
	files, err := filepath.Glob("testdata/strongswan-*.hex")
	if err != nil || len(files) == 0 {
		t.Fatalf("no strongSwan vectors in testdata: %v", err)
	}
	var vs []strongswanVector
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var h strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				h.WriteString(l)
			}
		}
		b, err := hex.DecodeString(h.String())
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vs = append(vs, strongswanVector{name: filepath.Base(f), msg: b})
	}
	return vs
}

// TestStrongswanIKESAInit decodes charon's IKE_SA_INIT request (see the
// vector file for its origin): the payloads charon's log lists, its two
// default proposals of 38 transforms each, and a re-encoding that is the
// same bytes. tshark dissects the same bytes as a third opinion on every
// transform.
func TestStrongswanIKESAInit(t *testing.T) {
	v := strongswanVectors(t)[0]
	m, err := Decode(v.msg)
	if err != nil {
		t.Fatalf("%s: %v", v.name, err)
	}
	if m.SPIi != 0x64ec235aa5c8cb7b || m.SPIr != 0 || m.Exchange != IKE_SA_INIT || m.Flags != FlagInitiator || m.MessageID != 0 {
		t.Errorf("header %x %x %v %#x %d", m.SPIi, m.SPIr, m.Exchange, m.Flags, m.MessageID)
	}
	// charon: [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(REDIR_SUP) ]
	var types []PayloadType
	var notifies []NotifyType
	for _, p := range m.Payloads {
		types = append(types, p.Type())
		if n, ok := p.(*Notify); ok {
			notifies = append(notifies, n.NotifyType)
		}
	}
	wantTypes := []PayloadType{PayloadSA, PayloadKE, PayloadNonce, PayloadNotify, PayloadNotify, PayloadNotify, PayloadNotify, PayloadNotify}
	wantNotifies := []NotifyType{NAT_DETECTION_SOURCE_IP, NAT_DETECTION_DESTINATION_IP, IKEV2_FRAGMENTATION_SUPPORTED, SIGNATURE_HASH_ALGORITHMS, REDIRECT_SUPPORTED}
	if d := cmp.Diff(wantTypes, types); d != "" {
		t.Errorf("payloads (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantNotifies, notifies); d != "" {
		t.Errorf("notifies (-want +got):\n%s", d)
	}
	sa := m.Payloads[0].(*SA)
	if len(sa.Proposals) != 2 || len(sa.Proposals[0].Transforms) != 38 || len(sa.Proposals[1].Transforms) != 38 {
		t.Fatalf("proposals: %+v", sa.Proposals)
	}
	if tr := sa.Proposals[0].Transforms[0]; !cmp.Equal(tr, Transform{Type: TransformENCR, ID: uint16(EncrAESCBC), KeyLength: 128}, codecCmp) {
		t.Errorf("first transform %+v, want ENCR_AES_CBC 128", tr)
	}
	if tr := sa.Proposals[1].Transforms[3]; !cmp.Equal(tr, Transform{Type: TransformENCR, ID: uint16(EncrAESGCM16), KeyLength: 128}, codecCmp) {
		t.Errorf("proposal 2 transform 4 %+v, want ENCR_AES_GCM_16 128", tr)
	}
	if ke := m.Payloads[1].(*KE); ke.Group != DHCurve25519 || len(ke.Data) != 32 {
		t.Errorf("KE group %d, %d bytes; want curve25519, 32", ke.Group, len(ke.Data))
	}
	if n := m.Payloads[2].(*Nonce); len(n.Data) != 32 {
		t.Errorf("nonce of %d bytes", len(n.Data))
	}
	if h := m.Payloads[6].(*Notify); !bytes.Equal(h.Data, []byte{0, 2, 0, 3, 0, 4, 0, 5}) {
		t.Errorf("SIGNATURE_HASH_ALGORITHMS %x, want SHA2-256/384/512 and Identity (RFC 7427 §4, RFC 8420)", h.Data)
	}
	again, err := m.Append(nil)
	if err != nil || !bytes.Equal(again, v.msg) {
		t.Errorf("re-encoding differs from charon's bytes (%v):\n%x\n%x", err, again, v.msg)
	}

	// The same transforms as tshark reads them.
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		testenv.SkipOrFail(t, "needs tshark for the cross-check: %v", err)
	}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	path := filepath.Join(t.TempDir(), "strongswan.pcap")
	if err := os.WriteFile(path, codecPcap([]codecPcapPacket{{a, b, 500, v.msg}}), 0o644); err != nil {
		t.Fatal(err)
	}
	fields := []string{"isakmp.tf.type", "isakmp.tf.id.encr", "isakmp.tf.id.integ", "isakmp.tf.id.prf", "isakmp.tf.id.dh", "isakmp.ike2.attr.key_length"}
	args := []string{"-r", path, "-n", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	want := make([][]string, len(fields))
	for _, p := range sa.Proposals {
		for _, tr := range p.Transforms {
			want[0] = append(want[0], strconv.Itoa(int(tr.Type)))
			col := map[TransformType]int{TransformENCR: 1, TransformINTEG: 2, TransformPRF: 3, TransformDH: 4}[tr.Type]
			want[col] = append(want[col], strconv.Itoa(int(tr.ID)))
			if tr.KeyLength != 0 {
				want[5] = append(want[5], strconv.Itoa(int(tr.KeyLength)))
			}
		}
	}
	got := strings.Split(strings.TrimSpace(string(out)), "|")
	if len(got) != len(fields) {
		t.Fatalf("tshark printed %q", out)
	}
	for i, f := range fields {
		if w := strings.Join(want[i], ","); got[i] != w {
			t.Errorf("tshark %s = %s\nour decode   %s", f, got[i], w)
		}
	}
}
