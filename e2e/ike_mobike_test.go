package e2e

import (
	"context"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
)

// TestIKEMOBIKE: charon (the initiator, mobike = yes) changes its address
// in the middle of a TCP transfer from mipsec's side: 192.0.2.3 is added,
// 192.0.2.2 removed. charon sends UPDATE_SA_ADDRESSES from the new
// address (RFC 4555 §3.5); mipsec, the responder, moves the IKE SA and
// its child there at once, with the same SPIs, and the transfer completes
// intact; mipsec's stall is reported. Both announce MOBIKE_SUPPORTED in
// IKE_AUTH (§3.3), and charon accepts mipsec's answer (NAT detection of
// the new path, its COOKIE2 echoed).
func TestIKEMOBIKE(t *testing.T) {
	t.Parallel() // mostly waiting
	l := newIKELab(t, ikeOptions{startAction: "none"})
	l.startCharon("none")
	l.gw = l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	if err := l.charon.Initiate(ikeChild, ikeConnC, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	m := waitMipsecSA(t, l.gw, ikeConnM, 5*time.Second)
	l.checkMatch(m, l.waitCharonSA(2*time.Second), false)
	moved := netip.MustParseAddr("192.0.2.3")
	var done bool
	var w stallWatch
	progress := w.wrap(func(sent int) {
		if !done && sent >= 1<<20 {
			done = true
			// The new address stays when the old (primary) one goes.
			run(t, "ip", "netns", "exec", l.nsC, "sysctl", "-qw", "net.ipv4.conf.ul0.promote_secondaries=1")
			run(t, "ip", "-n", l.nsC, "addr", "add", moved.String()+"/24", "dev", "ul0")
			run(t, "ip", "-n", l.nsC, "addr", "del", ikeOuterC4.String(), "dev", "ul0")
		}
		time.Sleep(10 * time.Millisecond)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := tcpTransfer(ctx, l.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), l.nsM, ikeSiteM.Addr(), payload(4<<20), progress)
	if err != nil {
		t.Fatalf("TCP across charon's move: %v", err)
	}
	t.Logf("TCP across charon's move to %v: %v; longest stall %v at %d KiB", moved, res, w.max.Round(time.Millisecond), w.at>>10)
	sas := waitMipsec(t, l.gw, 10*time.Second, "moved to "+moved.String(), func(sas []control.IKESAInfo) bool {
		sa, ok := established(sas, ikeConnM)
		return ok && strings.HasPrefix(sa.Remote, moved.String()+":")
	})
	now, _ := established(sas, ikeConnM)
	// The same IKE SA; charon (kernel-libipsec cannot change an
	// installed SA's addresses) then rekeys the child, which mipsec
	// answers like any rekey.
	if now.SPIi != m.SPIi || now.SPIr != m.SPIr {
		t.Errorf("after the move: %+v, before %+v (want the same IKE SA)", now, m)
	}
	if st := ikeStats(t, l.gw); st.MOBIKEUpdates < 1 {
		t.Errorf("mipsec counted %d MOBIKE updates", st.MOBIKEUpdates)
	}
	c := l.waitCharonSA(2 * time.Second)
	if c.Local.Addr() != moved || c.InitiatorSPI != uint64(m.SPIi) {
		t.Errorf("charon after the move: %v -> %v, SPI %016x", c.Local, c.Remote, c.InitiatorSPI)
	}
	// charon saw our MOBIKE_SUPPORTED, and took our answer to its update
	// (the NAT detection and its COOKIE2 echoed, §3.5).
	b, err := os.ReadFile(l.charon.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if !strings.Contains(log, "peer supports MOBIKE") || !regexp.MustCompile(`parsed INFORMATIONAL response \d+ \[ N\(NATD_S_IP\) N\(NATD_D_IP\) N\(COOKIE2\) \]`).MatchString(log) {
		t.Errorf("charon's log lacks the MOBIKE negotiation or our answer to UPDATE_SA_ADDRESSES")
	}
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)
}
