package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/netlab"
)

// ikeMsg is one IKE message in UDP 4500 (behind the four zero bytes of
// the non-ESP marker, RFC 3948 §2.2) that a capture kept.
type ikeMsg struct {
	out      bool // sent by the capturing namespace
	src, dst netip.AddrPort
	udp      []byte // the UDP payload, the marker included
}

// IKE header fields (RFC 7296 §3.1), offsets after the non-ESP marker.
func (m ikeMsg) exchange() byte  { return m.udp[4+18] }
func (m ikeMsg) flags() byte     { return m.udp[4+19] }
func (m ikeMsg) msgID() uint32   { return binary.BigEndian.Uint32(m.udp[4+20:]) }
func (m ikeMsg) initiator() bool { return m.flags()&0x08 != 0 }
func (m ikeMsg) response() bool  { return m.flags()&0x20 != 0 }

func (m ikeMsg) String() string {
	kind := "request"
	if m.response() {
		kind = "response"
	}
	return fmt.Sprintf("%v -> %v: exchange %d %s %d (flags 0x%02x), %d bytes", m.src, m.dst, m.exchange(), kind, m.msgID(), m.flags(), len(m.udp))
}

// ikeMsgs picks the IKE messages in UDP 4500 out of kept IPv4 frames.
func ikeMsgs(kept []netlab.KeptFrame) []ikeMsg {
	var ms []ikeMsg
	for _, k := range kept {
		f := k.Data
		if len(f) < 14+20+8 || f[12] != 0x08 || f[13] != 0x00 {
			continue
		}
		ip := f[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		sport, dport := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:])
		d := udp[8:]
		if sport != 4500 && dport != 4500 || len(d) < 4+28 || binary.BigEndian.Uint32(d) != 0 {
			continue
		}
		ms = append(ms, ikeMsg{
			out: k.Out,
			src: netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), sport),
			dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), dport),
			udp: bytes.Clone(d),
		})
	}
	return ms
}

// TestIKEMOBIKEHostile: replayed and forged UPDATE_SA_ADDRESSES (issue
// 13). As in TestIKEMOBIKE, charon (the initiator, mobike) moves from
// 192.0.2.2 to 192.0.2.3 and mipsec, the responder, follows on its
// UPDATE_SA_ADDRESSES (RFC 4555 §3.5; charon checks the new path with an
// empty INFORMATIONAL first), which a capture on mipsec's ul0 records;
// charon then rekeys its child there (kernel-libipsec cannot change an
// installed SA's addresses) and deletes the old one. An attacker on the
// link, 192.0.2.66 (an address no host owns, sent from raw), then:
//
//   - replays charon's UPDATE_SA_ADDRESSES byte for byte: an older
//     request than the last, outside the window (RFC 7296 §2.3), dropped
//     unanswered;
//   - replays charon's latest request: a retransmission (§2.1), answered
//     with the cached response, byte-identical, to where the replay came
//     from (§2.11), and nothing is processed again;
//   - forges an UPDATE_SA_ADDRESSES: charon's with the next message ID
//     and one bit of its ICV flipped (the raised ID alone breaks the ICV
//     as well: the IKE header is associated data, RFC 5282 §5.1): an
//     integrity failure (§2.21.1), dropped unanswered.
//
// None of them moves the IKE SA (RFC 4555 §3.5: only an authenticated new
// request does) or counts as a MOBIKE update; the child keeps carrying
// traffic, mipsec keeps answering its control socket, and the forgery
// leaves the message ID window where it was: charon's next request
// (a child rekey, with the forged message's ID) is taken.
func TestIKEMOBIKEHostile(t *testing.T) {
	t.Parallel() // mostly waiting
	l := newIKELab(t, ikeOptions{startAction: "none"})
	moved := netip.MustParseAddr("192.0.2.3")
	attacker := netip.MustParseAddr("192.0.2.66")
	ike4500 := netip.AddrPortFrom(l.outerM, 4500)
	cp, err := netlab.StartCaptureOpts(l.nsM, "ul0", netlab.CaptureOptions{Keep: func(f netlab.Frame) bool {
		return f.Kind == netlab.Other // IKE (not ESP) in UDP 4500 among them
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	l.startCharon("none")
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 1)

	// The move (TestIKEMOBIKE's, without the transfer): the new address
	// stays when the old (primary) one goes.
	run(t, "ip", "netns", "exec", l.nsC, "sysctl", "-qw", "net.ipv4.conf.ul0.promote_secondaries=1")
	run(t, "ip", "-n", l.nsC, "addr", "add", moved.String()+"/24", "dev", "ul0")
	run(t, "ip", "-n", l.nsC, "addr", "del", ikeOuterC4.String(), "dev", "ul0")
	waitMipsec(t, l.gw, 10*time.Second, "moved to "+moved.String(), func(sas []control.IKESAInfo) bool {
		sa, ok := established(sas, ikeConnM)
		return ok && strings.HasPrefix(sa.Remote, moved.String()+":")
	})
	// charon's rekey of the child after the move, and the Delete of the
	// old one: settled when no IKE message crossed for 2 s.
	var msgs []ikeMsg
	for deadline, n, since := time.Now().Add(15*time.Second), -1, time.Now(); ; time.Sleep(100 * time.Millisecond) {
		msgs = ikeMsgs(cp.Kept())
		if len(msgs) != n {
			n, since = len(msgs), time.Now()
		}
		if time.Since(since) >= 2*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("IKE still busy %v after the move: %d messages", 15*time.Second, len(msgs))
		}
	}
	after := waitMipsecSA(t, l.gw, ikeConnM, time.Second)
	if after.SPIi != m.SPIi || after.SPIr != m.SPIr || !strings.HasPrefix(after.Remote, moved.String()+":") {
		t.Fatalf("after the move: %+v, before %+v (want the same IKE SA at %v)", after, m, moved)
	}
	before := ikeStats(t, l.gw)
	if before.MOBIKEUpdates != 1 {
		t.Fatalf("mipsec counted %d MOBIKE updates after the move, want 1", before.MOBIKEUpdates)
	}

	// charon's UPDATE_SA_ADDRESSES: its log names the message ID (before
	// it, charon checks the new path with an empty INFORMATIONAL, RFC
	// 4555 §3.5's "additional checks"; after it come the child rekey and
	// the Delete of the old child).
	log, err := os.ReadFile(l.charon.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	sm := regexp.MustCompile(`generating INFORMATIONAL request (\d+) \[ N\(UPD_SA_ADDR\)`).FindSubmatch(log)
	if sm == nil {
		t.Fatal("charon's log shows no UPDATE_SA_ADDRESSES request")
	}
	updateID, err := strconv.ParseUint(string(sm[1]), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	// That request (an INFORMATIONAL from the initiator, from the new
	// address) and charon's latest, and mipsec's answers to them.
	var update, last, updateResp, lastResp *ikeMsg
	for i := range msgs {
		k := &msgs[i]
		t.Logf("captured: %v", k)
		if k.out || k.src.Addr() != moved || k.dst != ike4500 || !k.initiator() || k.response() {
			continue
		}
		if update == nil && k.exchange() == 37 && k.msgID() == uint32(updateID) {
			update = k
		}
		if last == nil || k.msgID() > last.msgID() {
			last = k
		}
	}
	if update == nil {
		t.Fatalf("captured no INFORMATIONAL request %d (charon's UPDATE_SA_ADDRESSES) from %v", updateID, moved)
	}
	for i := range msgs {
		k := &msgs[i]
		if !k.out || k.src != ike4500 || k.dst.Addr() != moved || k.initiator() || !k.response() {
			continue
		}
		switch k.msgID() {
		case update.msgID():
			updateResp = k
		case last.msgID():
			lastResp = k
		}
	}
	if updateResp == nil || lastResp == nil {
		t.Fatalf("mipsec's answers to charon's requests %d (the update) and %d (the latest) not captured", update.msgID(), last.msgID())
	}
	next := last.msgID() + 1 // the message ID mipsec expects next (§2.3)
	t.Logf("charon's UPDATE_SA_ADDRESSES: %v; its latest request: %v", update, last)
	if update == last {
		t.Fatalf("charon sent no request after its UPDATE_SA_ADDRESSES (the child rekey): %d", update.msgID())
	}

	// The attacker, on the link with charon: an address no host owns
	// (given to charon's ul0 it would be announced to mipsec in an
	// ADDITIONAL_IP4_ADDRESS update, RFC 4555 §3.6, and move charon's
	// message IDs on), its datagrams sent raw with that source. mipsec
	// reaches it at charon's MAC (a static neighbour), so that what it
	// sends there crosses the captured link (and charon's kernel, which
	// does not forward, drops it).
	var mac net.HardwareAddr
	if err := inNetns(l.nsC, func() error {
		ifi, err := net.InterfaceByName("ul0")
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", l.nsM, "neigh", "replace", attacker.String(), "lladdr", mac.String(), "dev", "ul0", "nud", "permanent")
	from := netip.AddrPortFrom(attacker, 40066)
	send := func(d []byte) {
		t.Helper()
		if err := netlab.SendIP(l.nsC, udp4Packet(from, ike4500, d)); err != nil {
			t.Fatal(err)
		}
	}
	toAttacker := func(from int) []ikeMsg {
		var r []ikeMsg
		for _, k := range ikeMsgs(cp.Kept())[from:] {
			if k.out && k.dst.Addr() == attacker {
				r = append(r, k)
			}
		}
		return r
	}
	toMoved := func(from int) int {
		n := 0
		for _, k := range ikeMsgs(cp.Kept())[from:] {
			if k.out && k.dst.Addr() == moved {
				n++
			}
		}
		return n
	}
	unmoved := func(what string) {
		t.Helper()
		if !l.gw.Running() {
			t.Fatalf("mipsec died after %s", what)
		}
		now, ok := established(mustIKEList(t, l.gw), ikeConnM)
		if !ok || now.SPIi != after.SPIi || now.SPIr != after.SPIr || now.Remote != after.Remote || now.Local != after.Local ||
			now.Children[0].SPIIn != after.Children[0].SPIIn || now.Children[0].SPIOut != after.Children[0].SPIOut {
			t.Fatalf("mipsec's IKE SA after %s: %+v, was %+v", what, now, after)
		}
		if st := ikeStats(t, l.gw); st.MOBIKEUpdates != before.MOBIKEUpdates {
			t.Errorf("after %s mipsec counted %d MOBIKE updates, want %d", what, st.MOBIKEUpdates, before.MOBIKEUpdates)
		}
	}
	// settle waits (5 s at most, on a loaded machine) until done reports
	// that mipsec has handled the datagram, then 300 ms more for anything
	// it might send after it.
	settle := func(done func() bool) {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !done(); {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// 1. charon's UPDATE_SA_ADDRESSES again, from the attacker: an old
	// message ID, dropped before its SK payload is even looked at.
	n0 := len(ikeMsgs(cp.Kept()))
	send(update.udp)
	settle(func() bool { return ikeStats(t, l.gw).Failures["message_id"] > before.Failures["message_id"] })
	st := ikeStats(t, l.gw)
	if d := st.Failures["message_id"] - before.Failures["message_id"]; d != 1 {
		t.Errorf("the replayed UPDATE_SA_ADDRESSES (message ID %d, next %d): %d more message_id failures, want 1 (%v)", update.msgID(), next, d, st.Failures)
	}
	if r := toAttacker(n0); len(r) != 0 {
		t.Errorf("mipsec answered the replayed UPDATE_SA_ADDRESSES: %v", r)
	}
	if n := toMoved(n0); n != 0 {
		t.Errorf("mipsec sent %d IKE messages to charon after the replayed UPDATE_SA_ADDRESSES", n)
	}
	unmoved("the replayed UPDATE_SA_ADDRESSES")
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)

	// 2. charon's latest request again, from the attacker: a
	// retransmission, answered from the cache (§2.1) to its sender.
	n1 := len(ikeMsgs(cp.Kept()))
	send(last.udp)
	settle(func() bool { return len(toAttacker(n1)) > 0 })
	r := toAttacker(n1)
	if len(r) != 1 || !bytes.Equal(r[0].udp, lastResp.udp) || r[0].src != ike4500 || r[0].dst != from {
		t.Errorf("the replayed request %d: mipsec sent %v to %v, want its cached response (%v) once", last.msgID(), r, attacker, lastResp)
	} else {
		t.Logf("the replayed request %d from %v: answered from the cache, to %v (the replay's source), not to %v", last.msgID(), attacker, r[0].dst, moved)
	}
	if n := toMoved(n1); n != 0 {
		t.Errorf("mipsec sent %d IKE messages to charon after the replayed request %d", n, last.msgID())
	}
	if st2 := ikeStats(t, l.gw); fmt.Sprint(st2.Exchanges) != fmt.Sprint(st.Exchanges) {
		t.Errorf("the replayed request %d was processed again: exchanges %v, were %v", last.msgID(), st2.Exchanges, st.Exchanges)
	}
	unmoved("the replayed latest request")
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)

	// 3. A forged UPDATE_SA_ADDRESSES: charon's with the next message ID
	// (no retransmission) and one bit of the ICV (the last 16 bytes of
	// the SK payload, AES-GCM-16, RFC 5282 §3) flipped.
	forged := bytes.Clone(update.udp)
	binary.BigEndian.PutUint32(forged[4+20:], next)
	if len(forged) < 4+28+4+16 || forged[4+16] != 46 {
		t.Fatalf("charon's UPDATE_SA_ADDRESSES has no SK payload first: % x", forged)
	}
	forged[len(forged)-5] ^= 0x01
	before = ikeStats(t, l.gw)
	n2 := len(ikeMsgs(cp.Kept()))
	send(forged)
	settle(func() bool { return ikeStats(t, l.gw).Failures["integrity"] > before.Failures["integrity"] })
	st = ikeStats(t, l.gw)
	t.Logf("mipsec after the forged UPDATE_SA_ADDRESSES (message ID %d): failures %v", next, st.Failures)
	if d := st.Failures["integrity"] - before.Failures["integrity"]; d != 1 {
		t.Errorf("the forged UPDATE_SA_ADDRESSES: %d more integrity failures, want 1 (%v)", d, st.Failures)
	}
	if r := toAttacker(n2); len(r) != 0 {
		t.Errorf("mipsec answered the forged UPDATE_SA_ADDRESSES: %v", r)
	}
	if n := toMoved(n2); n != 0 {
		t.Errorf("mipsec sent %d IKE messages to charon after the forged UPDATE_SA_ADDRESSES", n)
	}
	if _, err := l.gw.ctl("ike", "list"); err != nil {
		t.Fatalf("mipsec ike list after the forged UPDATE_SA_ADDRESSES: %v", err)
	}
	unmoved("the forged UPDATE_SA_ADDRESSES")
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)

	// The window did not move: charon's next request, a child rekey,
	// carries the forged message's ID and is taken.
	n3 := len(ikeMsgs(cp.Kept()))
	if out, err := l.charon.Swanctl("--rekey", "--child", ikeChild); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rekeyed := waitMipsec(t, l.gw, 10*time.Second, "the child rekeyed", func(sas []control.IKESAInfo) bool {
		sa, ok := established(sas, ikeConnM)
		return ok && sa.Children[0].SPIIn != after.Children[0].SPIIn
	})
	now, _ := established(rekeyed, ikeConnM)
	if now.SPIi != after.SPIi || now.Remote != after.Remote {
		t.Errorf("after charon's rekey: %+v, was %+v", now, after)
	}
	var taken bool
	for _, k := range ikeMsgs(cp.Kept())[n3:] {
		if k.out && k.dst.Addr() == moved && k.response() && k.msgID() == next && k.exchange() == 36 {
			taken = true
		}
	}
	if !taken {
		t.Errorf("no CREATE_CHILD_SA response %d (the forged message's ID) from mipsec to charon", next)
	}
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
}

// udp4Packet is an IPv4 packet carrying payload in UDP from src to dst,
// with its UDP checksum (RFC 768); the kernel fills in the IP header's
// checksum and ID (raw(7), IP_HDRINCL).
func udp4Packet(src, dst netip.AddrPort, payload []byte) []byte {
	p := make([]byte, 20+8+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17 // version 4, IHL 5; TTL; UDP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	// The checksum over the pseudo-header (addresses, protocol, UDP
	// length) and the datagram; 0 is sent as 0xffff.
	sum := uint32(17) + uint32(len(u))
	for _, b := range [][]byte{s[:], d[:], u} {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			sum += w
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return p
}
