package ike

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/internal/testenv"
)

// The interop proof for the codec: Wireshark's isakmp dissector, which we
// did not write, reads what Append wrote. The messages go into a pcap as
// IPv4/IPv6 UDP datagrams (LINKTYPE_RAW), on port 500 and on port 4500
// behind the non-ESP marker (RFC 3948 §2.2), and tshark's fields must say
// what we meant: SPIs, exchange types, flags, payload chains, proposals and
// transforms, notify types, selectors, configuration attributes, fragments.

// codecPcapPacket is one datagram of the capture.
type codecPcapPacket struct {
	src, dst netip.Addr
	port     uint16 // source and destination port
	ike      []byte // the IKE message; port 4500 gets the marker in front
}

// codecPcap writes a pcap (LINKTYPE_RAW, zero timestamps) of the packets.
func codecPcap(pkts []codecPcapPacket) []byte {
	le := binary.LittleEndian
	f := le.AppendUint32(nil, 0xa1b2c3d4)
	f = le.AppendUint16(f, 2)
	f = le.AppendUint16(f, 4)
	f = le.AppendUint32(f, 0) // thiszone
	f = le.AppendUint32(f, 0) // sigfigs
	f = le.AppendUint32(f, 65535)
	f = le.AppendUint32(f, 101) // LINKTYPE_RAW
	for _, p := range pkts {
		udp := binary.BigEndian.AppendUint16(nil, p.port)
		udp = binary.BigEndian.AppendUint16(udp, p.port)
		payload := p.ike
		if p.port == 4500 {
			payload = append(make([]byte, NonESPMarkerLen), payload...)
		}
		udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(payload)))
		udp = append(udp, 0, 0, 0, 0) // checksum 0: none (IPv4), patched below for IPv6
		udp = append(udp[:8], payload...)
		var ip []byte
		if p.src.Is4() {
			ip = []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0}
			binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
			s, d := p.src.As4(), p.dst.As4()
			ip = append(append(ip, s[:]...), d[:]...)
			binary.BigEndian.PutUint16(ip[10:], ^onesSum(ip, 0))
		} else {
			ip = []byte{0x60, 0, 0, 0, 0, 0, 17, 64}
			binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
			s, d := p.src.As16(), p.dst.As16()
			ip = append(append(ip, s[:]...), d[:]...)
			// RFC 8200 §8.1: the UDP checksum is mandatory over IPv6.
			pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, 17)
			c := ^onesSum(udp, uint32(onesSum(pseudo, 0)))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(udp[6:], c)
		}
		pkt := append(ip, udp...)
		f = le.AppendUint32(f, 0)
		f = le.AppendUint32(f, 0)
		f = le.AppendUint32(f, uint32(len(pkt)))
		f = le.AppendUint32(f, uint32(len(pkt)))
		f = append(f, pkt...)
	}
	return f
}

// onesSum is the folded ones' complement sum (RFC 1071).
func onesSum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// codecTsharkFields are the fields the test reads, one column each.
var codecTsharkFields = []string{
	"frame.number", "udp.dstport", "isakmp.ispi", "isakmp.rspi", "isakmp.exchangetype",
	"isakmp.flags", "isakmp.messageid", "isakmp.length", "isakmp.nextpayload", "isakmp.typepayload",
	"isakmp.prop.number", "isakmp.prop.protoid", "isakmp.spi", "isakmp.tf.type",
	"isakmp.tf.id.encr", "isakmp.tf.id.prf", "isakmp.tf.id.integ", "isakmp.tf.id.dh",
	"isakmp.tf.id.esn", "isakmp.ike2.attr.key_length", "isakmp.key_exchange.dh_group",
	"isakmp.notify.msgtype", "isakmp.nonce", "isakmp.vid_bytes",
	"isakmp.id.type", "isakmp.auth.method", "isakmp.cert.encoding",
	"isakmp.ts.number", "isakmp.ts.type", "isakmp.ts.protoid", "isakmp.ts.start_port", "isakmp.ts.end_port",
	"isakmp.ts.start_ipv4", "isakmp.ts.end_ipv4", "isakmp.ts.start_ipv6", "isakmp.ts.end_ipv6",
	"isakmp.delete.protoid", "isakmp.spinum", "isakmp.delete.spi",
	"isakmp.cfg.type", "isakmp.cfg.attr.type", "isakmp.cfg.attr.internal_ip6_address",
	"isakmp.cfg.attr.internal_ip6_address.prefix",
	"isakmp.frag.number", "isakmp.frag.total", "x509af.serialNumber", "_ws.malformed", "_ws.expert.severity",
}

func TestCodecTshark(t *testing.T) {
	tshark := testenv.NeedCommand(t, "tshark")
	a4, b4 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")
	a6, b6 := netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:2::1")

	init := sampleInit()
	auth := sampleAuth(t)
	// The inner payloads once more, in the clear, so the dissector shows
	// our encoding of each of them (it cannot look into an SK payload
	// without keys).
	clear := &Message{SPIi: sampleSPIi, SPIr: sampleSPIr, Exchange: INFORMATIONAL, Flags: FlagResponse, MessageID: 9, Payloads: sampleInner()}
	frag := &Message{SPIi: sampleSPIi, SPIr: sampleSPIr, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1,
		Payloads: []Payload{&EncryptedFragment{NextPayload: PayloadIDi, Number: 1, Total: 3, Data: pattern(64, 7)}}}
	pcap := codecPcap([]codecPcapPacket{
		{a4, b4, 500, mustAppend(t, init)},
		{a4, b4, 4500, mustAppend(t, auth)},
		{b6, a6, 4500, mustAppend(t, clear)},
		{a6, b6, 500, mustAppend(t, frag)},
	})
	path := filepath.Join(t.TempDir(), "ike.pcap")
	if p := os.Getenv("IKE_CODEC_PCAP"); p != "" {
		path = p
	}
	if err := os.WriteFile(path, pcap, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-r", path, "-n", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,",
		// The port-500 dissector would take an unknown port 4500 datagram
		// without the marker; make sure the marker path is the one used.
		"-d", "udp.port==500,isakmp"}
	for _, f := range codecTsharkFields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tshark, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	var rows []map[string]string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		cols := strings.Split(l, "|")
		if len(cols) != len(codecTsharkFields) {
			continue // tshark's own notices (e.g. about running as root)
		}
		r := map[string]string{}
		for i, f := range codecTsharkFields {
			r[f] = cols[i]
		}
		rows = append(rows, r)
	}
	if len(rows) != 4 {
		t.Fatalf("tshark printed %d packets, want 4:\n%s\n%s", len(rows), stdout.String(), stderr.String())
	}
	if testing.Verbose() || t.Failed() {
		defer func() {
			for _, r := range rows {
				t.Logf("%v", r)
			}
		}()
	}

	spii, spir := fmt.Sprintf("%016x", uint64(sampleSPIi)), fmt.Sprintf("%016x", uint64(sampleSPIr))
	check := func(pkt int, field, want string) {
		t.Helper()
		if got := rows[pkt-1][field]; got != want {
			t.Errorf("packet %d %s = %q, want %q", pkt, field, got, want)
		}
	}
	// isakmp.typepayload lists the proposal and transform substructures
	// too (their Last Substruc values, 0, 2 and 3); payload types are 33 up.
	chain := func(pkt int, want string) {
		t.Helper()
		var types []string
		for _, v := range strings.Split(rows[pkt-1]["isakmp.typepayload"], ",") {
			if n, err := strconv.Atoi(v); err == nil && n >= int(PayloadSA) {
				types = append(types, v)
			}
		}
		if got := strings.Join(types, ","); got != want {
			t.Errorf("packet %d payload chain %s, want %s", pkt, got, want)
		}
	}
	for i, r := range rows {
		// Expert severities: 0x400000 note, 0x600000 warning, 0x800000 error.
		if r["_ws.malformed"] != "" || strings.Contains(r["_ws.expert.severity"], "6291456") || strings.Contains(r["_ws.expert.severity"], "8388608") {
			t.Errorf("packet %d: tshark reports it malformed or warns: %v", i+1, r)
		}
	}

	// 1: IKE_SA_INIT request on UDP 500.
	check(1, "udp.dstport", "500")
	check(1, "isakmp.ispi", spii)
	check(1, "isakmp.rspi", "0000000000000000")
	check(1, "isakmp.exchangetype", "34")
	check(1, "isakmp.flags", "0x08")
	check(1, "isakmp.messageid", "0x00000000")
	check(1, "isakmp.length", fmt.Sprint(len(mustAppend(t, init))))
	chain(1, "33,34,40,41,41,41,41,43")
	check(1, "isakmp.prop.number", "1,2,3")
	check(1, "isakmp.prop.protoid", "1,1,1")
	check(1, "isakmp.tf.type", "1,1,2,2,4,4,1,3,2,4,1,2,4")
	check(1, "isakmp.tf.id.encr", "20,20,12,28")
	check(1, "isakmp.tf.id.prf", "5,7,5,6")
	check(1, "isakmp.tf.id.integ", "12")
	check(1, "isakmp.tf.id.dh", "31,19,14,31")
	check(1, "isakmp.ike2.attr.key_length", "256,128,128")
	check(1, "isakmp.key_exchange.dh_group", "31")
	check(1, "isakmp.notify.msgtype", "16388,16389,16430,16431")
	check(1, "isakmp.nonce", fmt.Sprintf("%x", pattern(32, 0x80)))
	check(1, "isakmp.vid_bytes", fmt.Sprintf("%x", "mipsec test vendor"))

	// 2: IKE_AUTH on UDP 4500 behind the non-ESP marker; the SK payload
	// (46) names IDi (35) as its first inner payload.
	check(2, "udp.dstport", "4500")
	check(2, "isakmp.ispi", spii)
	check(2, "isakmp.rspi", spir)
	check(2, "isakmp.exchangetype", "35")
	check(2, "isakmp.messageid", "0x00000001")
	chain(2, "46")
	check(2, "isakmp.nextpayload", "46,35")
	check(2, "isakmp.length", fmt.Sprint(len(mustAppend(t, auth))))

	// 3: the inner payloads in the clear, over IPv6.
	check(3, "isakmp.exchangetype", "37")
	check(3, "isakmp.flags", "0x20")
	chain(3, "35,37,38,36,39,47,41,41,41,33,44,45,42,42,41,48")
	check(3, "x509af.serialNumber", "12d687") // 1234567
	check(3, "isakmp.id.type", "2,5")
	check(3, "isakmp.cert.encoding", "4")
	check(3, "isakmp.auth.method", "2")
	check(3, "isakmp.cfg.type", "1")
	check(3, "isakmp.cfg.attr.type", "8,8,1,10")
	check(3, "isakmp.cfg.attr.internal_ip6_address", "2001:db8:a::5")
	check(3, "isakmp.cfg.attr.internal_ip6_address.prefix", "64")
	check(3, "isakmp.notify.msgtype", "16391,16384,16396,16393")
	check(3, "isakmp.prop.protoid", "3,3")
	check(3, "isakmp.spi", "c001cafe,c001cafe,01020304")
	check(3, "isakmp.tf.id.encr", "20,12")
	check(3, "isakmp.tf.id.esn", "1,0,0")
	check(3, "isakmp.ike2.attr.key_length", "128,256")
	check(3, "isakmp.ts.number", "2,2")
	check(3, "isakmp.ts.type", "7,8,8,10")
	check(3, "isakmp.ts.protoid", "0,135,6")
	check(3, "isakmp.ts.start_port", "0,1280,443")
	check(3, "isakmp.ts.end_port", "65535,1535,443")
	check(3, "isakmp.ts.start_ipv4", "192.0.2.0")
	check(3, "isakmp.ts.end_ipv4", "192.0.2.127")
	check(3, "isakmp.ts.start_ipv6", "2001:db8:a::5,2001:db8:b::")
	check(3, "isakmp.ts.end_ipv6", "2001:db8:a::5,2001:db8:b::ffff")
	check(3, "isakmp.delete.protoid", "3,1")
	check(3, "isakmp.spinum", "2,0")
	check(3, "isakmp.delete.spi", "c001cafe,12345678")

	// 4: an SKF fragment (RFC 7383 §2.5).
	chain(4, "53")
	check(4, "isakmp.nextpayload", "53,35")
	check(4, "isakmp.frag.number", "1")
	check(4, "isakmp.frag.total", "3")
}
