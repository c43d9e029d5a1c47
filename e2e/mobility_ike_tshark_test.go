package e2e

// TestMobilityIKETshark: the HA's exported keys (`mipsec sa list
// --wireshark` for the IKE-made child SAs, `mipsec ike list --wireshark`
// for the IKE SA) let tshark decode every IKE message and every
// ESP-protected Binding Update and Acknowledgement of an IKE-keyed mobile
// node (RFC 4877 §7) on the HA's transit link.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

// tsharkIKE is one IKE message tshark decoded (the lists: every
// occurrence, in order).
type tsharkIKE struct {
	frame, exch, mid, ispi, rspi string
	response                     bool
	payloads, idTypes, ids       []string
	tsProto, tsStart, tsEnd      []string
	notify                       []string
	dport, nonESP, decrypted     string
	src                          string // ip.src or ipv6.src
}

// tsharkTrue is a boolean or FT_NONE field tshark printed as present/set.
func tsharkTrue(s string) bool { return s == "1" || s == "True" }

// TestMobilityIKETshark runs the IKE-keyed MN (mn-ike.toml, with the K
// flag) A (IPv6) -> B (IPv4 behind the NAT) -> A, rekeying its MPD child
// on B so that IKE also runs there (UDP 4500 with the non-ESP marker,
// RFC 3948 §2.2, from the NAT), and decodes the HA's transit capture with
// tshark and the HA's keys:
//   - IKE: every message in UDP 500 or 4500 is IKE; IKE_SA_INIT, then
//     IKE_AUTH, CREATE_CHILD_SA and INFORMATIONAL decrypted, each request
//     with its response: IKE_AUTH's IDi is the home address as
//     ID_IPV6_ADDR (RFC 4877 §7.3), its selectors MH (protocol 135) with
//     the BU and BA types in the port fields (RFC 4301 §4.4.1.1); the
//     CREATE_CHILD_SAs bring up the MPD (ICMPv6 146/147), HoTi/HoT (MH 1/3)
//     and payload children (RFC 4877 §7.2);
//   - every BU and BA on the wire (the capture's own classifier: ESP behind
//     a Home Address option, a type 2 Routing header or in UDP 4191)
//     decrypts to Mobile IPv6 of the right type (checkTsharkMIP6), on the
//     SAs of the IKE-made "bu" child, with the K flag (RFC 4877 §7.4).
func TestMobilityIKETshark(t *testing.T) {
	testenv.NeedCommand(t, "tshark")
	l := newMobIKELab(t, mobOptions{pcap: true})
	l.waitRegistered(mobCoA6, 20*time.Second)
	for i, to := range []netlab.Access{netlab.AccessB, netlab.AccessA} {
		if _, err := l.MoveTo(context.Background(), to); err != nil {
			t.Fatal(err)
		}
		l.waitRegistered(to.CoA(), 20*time.Second)
		if to == netlab.AccessB {
			waitIKEEndpoint(t, l.ha, true, netlab.MobNATAddr, fmt.Sprintf("move %d to B: the HA's IKE SA follows the BU with K", i+1))
			waitIKEEndpoint(t, l.mn, false, mobCoA4, fmt.Sprintf("move %d to B: the MN's IKE SA follows the BA with K", i+1))
			if out, err := l.mn.ctl("ike", "rekey", mobIKEConn, "mpd"); err != nil {
				t.Fatalf("mipsec ike rekey %s mpd: %v\n%s", mobIKEConn, err, out)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	l.capA.Close()
	l.capB.Close()
	l.capT.Close()

	sa := mobIKESA(t, l.ha)
	var bu control.IKEChildInfo
	for _, ch := range sa.Children {
		if ch.Name == "bu" {
			bu = ch
		}
	}
	if bu.SPIIn == 0 || bu.SPIOut == 0 {
		t.Fatalf("HA: no bu child in %+v", sa.Children)
	}
	ikeLines, err := l.ha.ctl("ike", "list", "--wireshark")
	if err != nil {
		t.Fatalf("mipsec ike list --wireshark: %v", err)
	}
	recs := strings.Split(strings.TrimSpace(ikeLines), "\n")
	spiI, spiR := fmt.Sprintf("%016x", uint64(sa.SPIi)), fmt.Sprintf("%016x", uint64(sa.SPIr))
	if len(recs) != 1 || !strings.HasPrefix(recs[0], spiI+","+spiR+",") {
		t.Fatalf("HA: ike list --wireshark: %q, want one line for %v/%v", ikeLines, sa.SPIi, sa.SPIr)
	}
	uat := []string{"-o", "uat:ikev2_decryption_table:" + recs[0]}

	t.Run("ike", func(t *testing.T) {
		out, espSA := l.tshark(t, append(slices.Clone(uat),
			"-d", "udp.port==4191,ipv6", // RFC 5555 §4.1: IPv6 in UDP 4191
			"-Y", "udp.port==500 || udp.port==4500",
			"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
			"-e", "frame.number", "-e", "isakmp.exchangetype", "-e", "isakmp.messageid", "-e", "isakmp.flag_r",
			"-e", "isakmp.ispi", "-e", "isakmp.rspi", "-e", "isakmp.typepayload",
			"-e", "isakmp.id.type", "-e", "isakmp.id.data.ipv6_addr",
			"-e", "isakmp.ts.protoid", "-e", "isakmp.ts.start_port", "-e", "isakmp.ts.end_port",
			"-e", "isakmp.notify.msgtype", "-e", "udp.dstport", "-e", "udpencap.non_esp_marker",
			"-e", "isakmp.enc.decrypted", "-e", "ip.src", "-e", "ipv6.src",
			"-e", "esp.spi", "-e", "udpencap.nat_keepalive")...)
		// The export includes the IKE-made child SAs (RFC 4877 §7.2).
		for _, ch := range sa.Children {
			for _, spi := range []control.SPI{ch.SPIIn, ch.SPIOut} {
				if !strings.Contains(espSA, `"`+spi.String()+`"`) {
					t.Errorf("HA: sa list --wireshark has no line for child %s's SA %v:\n%s", ch.Name, spi, espSA)
				}
			}
		}
		list := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		var msgs []tsharkIKE
		for _, ln := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if ln == "" {
				continue
			}
			f := append(strings.Split(ln, "\t"), make([]string, 20)...)[:20]
			if f[1] == "" {
				if f[18] == "" && f[19] == "" {
					t.Errorf("frame %s in UDP %s: neither IKE nor ESP nor a NAT keepalive to tshark: %q", f[0], f[13], ln)
				}
				continue
			}
			src := f[16]
			if src == "" {
				src = f[17]
			}
			msgs = append(msgs, tsharkIKE{frame: f[0], exch: f[1], mid: f[2], response: tsharkTrue(f[3]), ispi: f[4], rspi: f[5],
				payloads: list(f[6]), idTypes: list(f[7]), ids: list(f[8]), tsProto: list(f[9]), tsStart: list(f[10]), tsEnd: list(f[11]),
				notify: list(f[12]), dport: f[13], nonESP: f[14], decrypted: f[15], src: src})
		}
		if t.Failed() || len(msgs) == 0 {
			t.Fatalf("tshark:\n%s", out)
		}

		// Every message of the one IKE SA, each request answered, the
		// message IDs 0, 1, ... in order (RFC 7296 §2.2).
		type pair struct{ req, resp int }
		byMID := map[string]*pair{}
		var mids []string
		for _, m := range msgs {
			p := byMID[m.mid]
			if p == nil {
				p = &pair{}
				byMID[m.mid] = p
				mids = append(mids, m.mid)
			}
			if m.response {
				p.resp++
			} else {
				p.req++
			}
			wantR := spiR
			if m.exch == "34" && !m.response {
				wantR = strings.Repeat("0", 16)
			}
			if m.ispi != spiI || m.rspi != wantR {
				t.Errorf("frame %s: IKE SPIs %s/%s, want %s/%s (the HA's only IKE SA)", m.frame, m.ispi, m.rspi, spiI, wantR)
			}
			// Everything but IKE_SA_INIT travels in the SK payload
			// (RFC 7296 §3.14); decrypted, its payloads follow it.
			if m.exch != "34" && (!tsharkTrue(m.decrypted) || len(m.payloads) < 2 || m.payloads[0] != "46") {
				t.Errorf("frame %s: exchange %s MID %s not decrypted: payloads %v, decrypted %q", m.frame, m.exch, m.mid, m.payloads, m.decrypted)
			}
		}
		for i, mid := range mids {
			if want := fmt.Sprintf("0x%08x", i); mid != want {
				t.Errorf("IKE message IDs %v: #%d is %s, want %s", mids, i, mid, want)
				break
			}
			if p := byMID[mid]; p.req == 0 || p.resp == 0 {
				t.Errorf("MID %s: %d requests, %d responses; want both", mid, p.req, p.resp)
			}
		}

		var auth, ccsA, ccsB, infoB int
		children := map[string]bool{} // "proto/start port" of the CREATE_CHILD_SAs' selectors from A
		for _, m := range msgs {
			onB := strings.Contains(m.src, ".")
			switch {
			case onB && (m.dport != "4500" || !tsharkTrue(m.nonESP) || (m.src != netlab.MobNATAddr.String() && m.src != netlab.MobHAV4.String())):
				t.Errorf("frame %s: IKE from %s to UDP %s, non-ESP marker %q; on B want UDP 4500 with the marker (RFC 3948 §2.2) from the NAT %v or the HA %v",
					m.frame, m.src, m.dport, m.nonESP, netlab.MobNATAddr, netlab.MobHAV4)
			case !onB && (m.dport != "500" || (m.src != mobCoA6.String() && m.src != netlab.MobHAAddr.String())):
				t.Errorf("frame %s: IKE from %s to UDP %s; on A want UDP 500 between %v and %v", m.frame, m.src, m.dport, mobCoA6, netlab.MobHAAddr)
			}
			switch m.exch {
			case "34": // IKE_SA_INIT
				if onB || !slices.Contains(m.payloads, "33") || !slices.Contains(m.payloads, "34") || !slices.Contains(m.payloads, "40") {
					t.Errorf("frame %s: IKE_SA_INIT with payloads %v (on B %v); want SA, KE, Nonce from A", m.frame, m.payloads, onB)
				}
			case "35": // IKE_AUTH
				auth++
				wantIDs := []string{mobHoA.String(), netlab.MobHAAddr.String()} // IDi, IDr
				if m.response {
					wantIDs = wantIDs[1:]
				}
				if !slices.Equal(m.ids, wantIDs) || slices.ContainsFunc(m.idTypes, func(s string) bool { return s != "5" }) {
					t.Errorf("frame %s: IKE_AUTH (response %v) with IDs %v of types %v; want %v, ID_IPV6_ADDR (5) (RFC 4877 §7.3)",
						m.frame, m.response, m.ids, m.idTypes, wantIDs)
				}
				// The BU/BA child: TSi the home address's BUs (MH type 5
				// in the port's high byte), TSr the HA's BAs (type 6).
				if !slices.Equal(m.tsProto, []string{"135", "135"}) || !slices.Equal(m.tsStart, []string{"1280", "1536"}) || !slices.Equal(m.tsEnd, []string{"1535", "1791"}) {
					t.Errorf("frame %s: IKE_AUTH selectors protocol %v ports %v-%v; want MH (135) types 5 and 6 (ports 1280-1535, 1536-1791)",
						m.frame, m.tsProto, m.tsStart, m.tsEnd)
				}
			case "36": // CREATE_CHILD_SA
				for _, p := range []string{"33", "40", "44", "45"} {
					if !slices.Contains(m.payloads, p) {
						t.Errorf("frame %s: CREATE_CHILD_SA without payload %s: %v", m.frame, p, m.payloads)
					}
				}
				if onB {
					ccsB++
					if !m.response && !slices.Contains(m.notify, "16393") {
						t.Errorf("frame %s: CREATE_CHILD_SA on B without REKEY_SA: notify %v", m.frame, m.notify)
					}
					continue
				}
				ccsA++
				for i := range min(len(m.tsProto), len(m.tsStart)) {
					children[m.tsProto[i]+"/"+m.tsStart[i]] = true
				}
			case "37": // INFORMATIONAL
				if onB {
					infoB++
					if !slices.Contains(m.payloads, "42") {
						t.Errorf("frame %s: INFORMATIONAL on B without the Delete of the old MPD child: %v", m.frame, m.payloads)
					}
				}
			}
		}
		// ICMPv6 146/147, MH 1/3 in the high byte; the payload child any.
		for _, c := range []string{"58/37376", "58/37632", "135/256", "135/768", "0/0"} {
			if !children[c] {
				t.Errorf("CREATE_CHILD_SAs from A: no selector %s (protocol/start port) in %v", c, children)
			}
		}
		if auth != 2 || ccsA != 6 || ccsB != 2 || infoB != 2 {
			t.Errorf("tshark decoded %d IKE_AUTH, %d CREATE_CHILD_SA from A, %d CREATE_CHILD_SA and %d INFORMATIONAL on B; want 2, 6, 2, 2", auth, ccsA, ccsB, infoB)
		}
		if t.Failed() {
			t.Logf("tshark:\n%s", out)
		}
		t.Logf("tshark: %d IKE messages (MIDs %s..%s) decoded: %d IKE_AUTH, %d CREATE_CHILD_SA from A, %d CREATE_CHILD_SA + %d INFORMATIONAL on B in UDP 4500",
			len(msgs), mids[0], mids[len(mids)-1], auth, ccsA, ccsB, infoB)
	})

	t.Run("mip6", func(t *testing.T) {
		msgs := checkTsharkMIP6(t, l, uat...)
		// The capture's classifier: every BU and BA on the wire.
		sig := map[string]uint32{}
		for _, p := range l.capT.Stats().ESP {
			if p.Signaling() {
				sig[fmt.Sprint(p.Frame)] = p.SPI
			}
		}
		var bus, bas int
		for _, m := range msgs {
			spi, ok := sig[m.frame]
			delete(sig, m.frame)
			want, k := bu.SPIIn, m.kBU
			if m.mhType == "6" {
				want, k = bu.SPIOut, m.kBA
			}
			switch {
			case m.mhType != "5" && m.mhType != "6":
				t.Errorf("frame %s: MH type %s, want only BUs (5) and BAs (6)", m.frame, m.mhType)
				continue
			case !ok || control.SPI(spi) != want:
				t.Errorf("frame %s: MH type %s in ESP SPI 0x%08x (signaling form %v); want the bu child's %v", m.frame, m.mhType, spi, ok, want)
			case !tsharkTrue(k):
				t.Errorf("frame %s: MH type %s without the K flag (%q; RFC 4877 §7.4)", m.frame, m.mhType, k)
			}
			if m.mhType == "5" {
				bus++
			} else {
				bas++
			}
		}
		for fr, spi := range sig {
			t.Errorf("frame %s: ESP SPI 0x%08x in a signaling form that tshark did not decode as Mobile IPv6", fr, spi)
		}
		if bus < 3 || bas < 3 {
			t.Errorf("tshark decoded %d BUs and %d BAs; want one each at least per registration (A, B, A)", bus, bas)
		}
		t.Logf("tshark: %d BUs and %d BAs, every one in the capture, all with K, on the bu child's SAs %v/%v", bus, bas, bu.SPIIn, bu.SPIOut)
	})
}
