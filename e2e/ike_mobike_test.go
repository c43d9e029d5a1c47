package e2e

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/charontest"
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
	res, w, _ := l.moveDuringTCP(t, l.nsC, ikeOuterC4.String(), moved, "charon's move")
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

// TestIKEMOBIKEInitiator is the reverse of TestIKEMOBIKE: mipsec, the
// initiator (mobike on, two children: 203.0.113.0/25 and its upper half),
// loses its address in the middle of a TCP transfer to charon: 192.0.2.5
// is added to its ul0, then 192.0.2.1, its local_addrs, removed. Its
// address watch (node/ike_mobike.go) sends UPDATE_SA_ADDRESSES from
// 192.0.2.5 (RFC 4555 §3.5); charon, the responder, follows with the
// IKE SA (its remote is the new address, same SPIs) and both children
// (kernel-libipsec cannot change an installed SA's addresses, so charon
// rekeys them there, and mipsec answers). The stream arrives intact, and
// its longest stall is reported and under 3 s; afterwards each child
// carries traffic both ways.
func TestIKEMOBIKEInitiator(t *testing.T) {
	t.Parallel() // mostly waiting
	const child2 = "net2"
	halves := []string{"203.0.113.0/25", "203.0.113.128/25"}
	upper := netip.MustParseAddr("203.0.113.129") // charon's address in the second child
	// mipsec initiates (start_action start).
	l := newIKELab(t, ikeOptions{})
	l.startCharon("none", func(c *charontest.Conn) {
		ch := c.Children[ikeChild]
		ch.LocalTS = halves[:1]
		c.Children[ikeChild] = ch
		ch.LocalTS = halves[1:]
		c.Children[child2] = ch
	})
	run(t, "ip", "-n", l.nsC, "addr", "add", upper.String()+"/32", "dev", "lo")
	l.gw = l.startMOBIKEInitiator(child2, halves)
	both := func(sas []control.IKESAInfo) (control.IKESAInfo, bool) {
		for _, sa := range sas {
			if sa.Name != ikeConnM || sa.State != "established" || len(sa.Children) != 2 {
				continue
			}
			if sa.Children[0].State == "installed" && sa.Children[1].State == "installed" {
				return sa, true
			}
		}
		return control.IKESAInfo{}, false
	}
	m, _ := both(waitMipsec(t, l.gw, 15*time.Second, "up with both children", func(sas []control.IKESAInfo) bool {
		_, ok := both(sas)
		return ok
	}))
	if !m.Initiator || !strings.HasPrefix(m.Local, ikeOuterM4.Addr().String()+":") {
		t.Fatalf("mipsec's IKE SA before the move: %+v", m)
	}
	charonBoth := func(want netip.Addr, timeout time.Duration) charontest.IKESA {
		t.Helper()
		var sas []charontest.IKESA
		var err error
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			sas, err = l.charon.ListSAs()
			if err == nil && len(sas) == 1 && sas[0].State == "ESTABLISHED" && sas[0].Remote.Addr() == want &&
				len(sas[0].Installed(ikeChild)) == 1 && len(sas[0].Installed(child2)) == 1 {
				return sas[0]
			}
		}
		t.Fatalf("charon: no IKE SA from %v with both children installed after %v: %+v, %v", want, timeout, sas, err)
		return charontest.IKESA{}
	}
	charonBoth(ikeOuterM4.Addr(), 5*time.Second)
	moved := netip.MustParseAddr("192.0.2.5")
	// The mirror of TestIKEMOBIKE's move, on mipsec's side.
	res, w, done := l.moveDuringTCP(t, l.nsM, ikeOuterM4.String(), moved, "mipsec's move")
	t.Logf("TCP across mipsec's move to %v: %v; longest stall %v at %d KiB", moved, res, w.max.Round(time.Millisecond), w.at>>10)
	if !done {
		t.Fatal("the transfer ended before the move")
	}
	if w.max >= 3*time.Second {
		t.Errorf("the TCP stream stalled for %v (at %d KiB) across mipsec's move, want < 3 s", w.max, w.at>>10)
	}
	sas := waitMipsec(t, l.gw, 10*time.Second, "moved to "+moved.String()+" with both children", func(sas []control.IKESAInfo) bool {
		sa, ok := both(sas)
		return ok && strings.HasPrefix(sa.Local, moved.String()+":")
	})
	now, _ := both(sas)
	if now.SPIi != m.SPIi || now.SPIr != m.SPIr {
		t.Errorf("after the move: %+v, before %+v (want the same IKE SA)", now, m)
	}
	if st := ikeStats(t, l.gw); st.MOBIKEUpdates < 1 {
		t.Errorf("mipsec counted %d MOBIKE updates", st.MOBIKEUpdates)
	}
	c := charonBoth(moved, 10*time.Second)
	if c.InitiatorSPI != uint64(m.SPIi) || c.ResponderSPI != uint64(m.SPIr) || c.Initiator {
		t.Errorf("charon after the move: %v -> %v, SPIs %016x %016x, initiator %v", c.Local, c.Remote, c.InitiatorSPI, c.ResponderSPI, c.Initiator)
	}
	if log := l.gw.Log.String(); !strings.Contains(log, "MOBIKE: moved") {
		t.Errorf("mipsec's log lacks the move of its address watch")
	}
	// charon took our update (from the new address, with its COOKIE2).
	b, err := os.ReadFile(l.charon.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`parsed INFORMATIONAL request \d+ \[ N\(UPD_SA_ADDR\) N\(NATD_S_IP\) N\(NATD_D_IP\) N\(COOKIE2\) \]`).Match(b) {
		t.Errorf("charon's log lacks our UPDATE_SA_ADDRESSES request")
	}
	// Each child carries traffic both ways from the new address.
	mustPing(t, l.nsM, ikeSiteM.Addr(), ikeSiteC.Addr(), 3)
	mustPing(t, l.nsC, ikeSiteC.Addr(), ikeSiteM.Addr(), 3)
	mustPing(t, l.nsM, ikeSiteM.Addr(), upper, 3)
	mustPing(t, l.nsC, upper, ikeSiteM.Addr(), 3)
	c = charonBoth(moved, time.Second)
	for _, name := range []string{ikeChild, child2} {
		if ch := c.Installed(name)[0]; ch.PacketsIn < 3 || ch.PacketsOut < 3 {
			t.Errorf("charon's child %s after the move: %d packets in, %d out", name, ch.PacketsIn, ch.PacketsOut)
		}
	}
}

// startMOBIKEInitiator starts the mipsec of nsM from mipsecConfig("M")
// with three changes: the underlay's sockets on the wildcard address (a
// socket bound to 192.0.2.1 cannot send from another one,
// underlay/ike_linux.go), its child narrowed to the first of halves, and
// a second child, name, for the second.
func (l *ikeLab) startMOBIKEInitiator(name string, halves []string) *gateway {
	t := l.t
	t.Helper()
	cfg := l.mipsecConfig("M")
	var b bytes.Buffer
	if err := ikeTemplate.Execute(&b, cfg); err != nil {
		t.Fatal(err)
	}
	toml := b.String()
	edit := func(old, new string) {
		if !strings.Contains(toml, old) {
			t.Fatalf("the rendered config lacks %q:\n%s", old, toml)
		}
		toml = strings.Replace(toml, old, new, 1)
	}
	edit("[underlay]\nlocal = [\""+cfg.Local+"\"]\n", "[underlay]\n")
	child := toml[strings.Index(toml, "  [[connection.child]]"):]
	ts := "remote_ts = [\"" + cfg.RemoteTS + "\"]"
	edit(ts, "remote_ts = [\""+halves[0]+"\"]")
	child = strings.Replace(child, ts, "remote_ts = [\""+halves[1]+"\"]", 1)
	child = strings.Replace(child, "name = \""+cfg.Child+"\"", "name = \""+name+"\"", 1)
	toml += "\n" + child
	path := filepath.Join(l.dir, "M.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := newGatewayFile(t, "M", l.nsM, path, gwConfig{Socket: cfg.Socket})
	g.start()
	return g
}

// moveDuringTCP runs a 4 MiB TCP transfer from charon's site to mipsec's
// and, at 1 MiB, moves namespace ns from the address old (with its prefix,
// as `ip addr` takes it) to moved/24 on ul0: the new (secondary) address
// stays when the old primary goes (promote_secondaries). It returns the
// transfer, its longest stall, and whether the move happened before the
// transfer ended; what names the move in a failure.
func (l *ikeLab) moveDuringTCP(t *testing.T, ns, old string, moved netip.Addr, what string) (transferResult, stallWatch, bool) {
	t.Helper()
	var done bool
	var w stallWatch
	progress := w.wrap(func(sent int) {
		if !done && sent >= 1<<20 {
			done = true
			run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.ul0.promote_secondaries=1")
			run(t, "ip", "-n", ns, "addr", "add", moved.String()+"/24", "dev", "ul0")
			run(t, "ip", "-n", ns, "addr", "del", old, "dev", "ul0")
		}
		time.Sleep(10 * time.Millisecond)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := tcpTransfer(ctx, l.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), l.nsM, ikeSiteM.Addr(), payload(4<<20), progress)
	if err != nil {
		t.Fatalf("TCP across %s: %v", what, err)
	}
	return res, w, done
}
