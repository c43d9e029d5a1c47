package e2e

// Two `mipsec run` daemons keyed by IKEv2 against each other in the
// scenarios the charon interop tests of ike_test.go run (TestIKEDPD,
// TestIKENAT, TestIKEMipsecRekey): liveness checks and a crashed peer, a
// NAT and a NAT rebinding during a TCP transfer, and rekeys started by
// either side under load.

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/netlab"
)

// liveSame fails t unless M's IKE SA m and C's c are one SA: the same IKE
// SPIs, initiator on exactly one side, one child each with the ESP SPIs
// crossed (M's inbound is C's outbound).
func liveSame(t *testing.T, m, c control.IKESAInfo) {
	t.Helper()
	if m.SPIi == 0 || m.SPIi != c.SPIi || m.SPIr != c.SPIr || m.Initiator == c.Initiator {
		t.Errorf("IKE SAs: M %v/%v initiator %v, C %v/%v initiator %v", m.SPIi, m.SPIr, m.Initiator, c.SPIi, c.SPIr, c.Initiator)
	}
	if len(m.Children) != 1 || len(c.Children) != 1 {
		t.Errorf("children: M %+v, C %+v; want one each", m.Children, c.Children)
		return
	}
	if mc, cc := m.Children[0], c.Children[0]; mc.SPIIn == 0 || mc.SPIIn != cc.SPIOut || mc.SPIOut != cc.SPIIn {
		t.Errorf("ESP SPIs: M in %v out %v, C in %v out %v", mc.SPIIn, mc.SPIOut, cc.SPIIn, cc.SPIOut)
	}
}

// liveSettled waits until g lists exactly one IKE SA of name, established
// with one installed child.
func liveSettled(t *testing.T, g *gateway, name string, timeout time.Duration) control.IKESAInfo {
	t.Helper()
	return waitMipsec(t, g, timeout, "settled on one IKE SA", func(sas []control.IKESAInfo) bool {
		_, ok := established(sas, name)
		return ok && len(sas) == 1
	})[0]
}

// liveLogLines are the lines of g's log that contain every one of subs.
func liveLogLines(g *gateway, subs ...string) []string {
	var out []string
	for _, ln := range strings.Split(g.Log.String(), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(ln, s)
		}
		if ok {
			out = append(out, ln)
		}
	}
	return out
}

// liveRebind changes N's masquerade to source port port and flushes N's
// conntrack table, so that the inside host's next packet gets a new
// mapping (TestIKENAT's rebinding; no t: it runs beside a transfer).
func liveRebind(nsN string, port int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsN, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("flush chain ip nat post\nadd rule ip nat post " + ikeNATRule(port) + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v\n%s", nsN, err, out)
	}
	return inNetns(nsN, func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) })
}

// TestIKEPairDPD: TestIKEDPD with a second mipsec in charon's place. M
// checks liveness after dpd_delay 2s of silence (RFC 7296 §2.4) and C
// answers; C killed with SIGKILL sends no Delete, so M's check is
// retransmitted ([ike] retransmit 500 ms, doubled, 3 times), times out and
// takes the IKE SA down with its ESP SAs; once C runs again M's
// start_action = "start" brings a new IKE SA up that carries traffic.
func TestIKEPairDPD(t *testing.T) {
	t.Parallel() // mostly waiting
	l := newIKEPairLab(t, ikeOptions{dpdDelay: "2s", retransmit: "500ms", retransmits: 3})
	cfgC := l.peerConfig()
	cfgC.DPDDelay = "0" // only M checks liveness, as charon in TestIKEDPD
	c := l.startMipsec("C", l.nsC, cfgC)
	m := l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	first := waitMipsecSA(t, m, ikeConnM, 10*time.Second)
	liveSame(t, first, waitMipsecSA(t, c, ikeConnC, 5*time.Second))
	if !first.Initiator {
		t.Errorf("M (start_action start) is not the initiator: %+v", first)
	}
	l.traffic(0)
	beforeM, beforeC := ikeStats(t, m), ikeStats(t, c)

	// A live peer answers the checks: the SA survives two DPD periods,
	// each an INFORMATIONAL exchange M completed and C answered.
	time.Sleep(4500 * time.Millisecond)
	if sa, ok := established(mustIKEList(t, m), ikeConnM); !ok || sa.SPIi != first.SPIi {
		t.Fatalf("M after 4.5 s of DPD with a live peer: %+v", sa)
	}
	stM, stC := ikeStats(t, m), ikeStats(t, c)
	t.Logf("INFORMATIONAL exchanges in 4.5 s: M %d, C %d", stM.Exchanges["INFORMATIONAL"]-beforeM.Exchanges["INFORMATIONAL"],
		stC.Exchanges["INFORMATIONAL"]-beforeC.Exchanges["INFORMATIONAL"])
	if stM.Exchanges["INFORMATIONAL"] < beforeM.Exchanges["INFORMATIONAL"]+2 || stC.Exchanges["INFORMATIONAL"] < beforeC.Exchanges["INFORMATIONAL"]+2 {
		t.Errorf("fewer than 2 INFORMATIONAL (DPD) exchanges in 4.5 s with dpd_delay 2s: M %v -> %v, C %v -> %v",
			beforeM.Exchanges, stM.Exchanges, beforeC.Exchanges, stC.Exchanges)
	}
	if stM.Retransmits != beforeM.Retransmits || stM.Failures["timeout"] != beforeM.Failures["timeout"] {
		t.Errorf("M retransmitted or timed out with a live peer: %+v, before %+v", stM, beforeM)
	}

	killed := time.Now()
	c.stop(syscall.SIGKILL)
	// Silence of at most dpd_delay (2 s), then 0.5+1+2+4 s of
	// retransmissions: gone after 7.5 to 9.5 s.
	const lower, upper = 7 * time.Second, 15 * time.Second
	deadline := killed.Add(upper)
	for {
		sas := mustIKEList(t, m)
		if _, ok := established(sas, ikeConnM); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("M still lists the IKE SA %v after C was killed: %+v", upper, sas)
		}
		time.Sleep(100 * time.Millisecond)
	}
	gone := time.Since(killed)
	t.Logf("M tore the IKE SA down %v after C was killed", gone.Round(10*time.Millisecond))
	if gone < lower {
		t.Errorf("IKE SA gone %v after the kill: sooner than dpd_delay + retransmissions allow (%v)", gone, lower)
	}
	st := ikeStats(t, m)
	if st.Retransmits-beforeM.Retransmits < 3 || st.Failures["timeout"] <= beforeM.Failures["timeout"] {
		t.Errorf("M stats after the dead peer: retransmits %d (before %d), failures %v (before %v)", st.Retransmits, beforeM.Retransmits, st.Failures, beforeM.Failures)
	}
	if lines := liveLogLines(m, `"exchange timed out"`, `"INFORMATIONAL"`); len(lines) == 0 {
		t.Error("M did not log the timed-out INFORMATIONAL exchange")
	} else {
		t.Logf("M: %s", lines[0])
	}
	// The dead SA's ESP SAs and policies went with it (M may be trying
	// again, but installs nothing while C is away).
	if sas, pols := ipsecTables(t, m); sas != 0 || pols != 0 {
		t.Errorf("M: %d ESP SAs, %d policies after the IKE SA died", sas, pols)
	}
	if sas := mustIKEList(t, m); len(sas) > 1 || (len(sas) == 1 && (sas[0].State != "connecting" || sas[0].SPIi == first.SPIi)) {
		t.Errorf("M after the IKE SA died: %+v", sas)
	}

	c.start()
	restarted := time.Now()
	again := waitMipsec(t, m, 20*time.Second, "re-established", func(sas []control.IKESAInfo) bool {
		sa, ok := established(sas, ikeConnM)
		return ok && len(sas) == 1 && sa.SPIi != first.SPIi
	})[0]
	t.Logf("M re-established %v after C's restart", time.Since(restarted).Round(10*time.Millisecond))
	nc := waitMipsecSA(t, c, ikeConnC, 5*time.Second)
	liveSame(t, again, nc)
	if !again.Initiator || again.Children[0].SPIIn == first.Children[0].SPIIn {
		t.Errorf("the new IKE SA: %+v, the first %+v", again, first)
	}
	if sas, _ := ipsecTables(t, m); sas != 2 {
		t.Errorf("M: %d ESP SAs with the new child, want 2", sas)
	}
	l.traffic(1 << 20)
}

// TestIKEPairNAT: TestIKENAT with a second mipsec in charon's place: a
// NAT router (nftables masquerade to source port 40001) between the two.
func TestIKEPairNAT(t *testing.T) {
	t.Parallel()
	// M behind the NAT: M finds its own address translated (NAT_DETECTION
	// hashes, RFC 7296 §2.23), floats to 4500 and sends ESP in UDP (RFC
	// 3948); C answers at the NAT's address and port.
	t.Run("mipsec-inside", func(t *testing.T) {
		t.Parallel()
		l, _ := newIKENATPairLab(t, ikeOptions{}, "mipsec")
		cfgC := l.peerConfig()
		cfgC.Remote = "%any" // C sees the NAT's address
		c := l.startMipsec("C", l.nsC, cfgC)
		m := l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
		sm := waitMipsecSA(t, m, ikeConnM, 10*time.Second)
		sc := waitMipsecSA(t, c, ikeConnC, 5*time.Second)
		liveSame(t, sm, sc)
		nat := netip.AddrPortFrom(ikeNATWan.Addr(), 40001).String()
		if !sm.NATLocal || sm.NATRemote || !sm.Encap || sm.Local != netip.AddrPortFrom(l.outerM, 4500).String() || sm.Remote != netip.AddrPortFrom(l.outerC, 4500).String() {
			t.Errorf("M: %s -> %s nat_local %v nat_remote %v encap %v; want %v:4500 -> %v:4500 behind a NAT, in UDP", sm.Local, sm.Remote, sm.NATLocal, sm.NATRemote, sm.Encap, l.outerM, l.outerC)
		}
		if sc.NATLocal || !sc.NATRemote || !sc.Encap || sc.Remote != nat || sc.Local != netip.AddrPortFrom(l.outerC, 4500).String() {
			t.Errorf("C: %s -> %s nat_local %v nat_remote %v encap %v; want the peer at %s behind a NAT, in UDP", sc.Local, sc.Remote, sc.NATLocal, sc.NATRemote, sc.Encap, nat)
		}
		capM := startCapture(t, l.nsM, "ul0")
		l.traffic(ikeTransferSize)
		// Nothing but ESP in UDP (no raw ESP, no IKE) while traffic flows.
		capM.check(t, true, ikeTransferSize, false)
	})
	// C behind the NAT, and the NAT's mapping changes in the middle of a
	// TCP transfer from C to M. C's ESP reaches M from the new port at
	// once, but M's ESP (the ACKs) goes to the old one, which leads
	// nowhere now, until an authenticated packet from the new port moves
	// M's IKE SA and its ESP there (RFC 7296 §2.23): C's next liveness
	// check (dpd_delay 1s), or C's ESP where the dataplane follows it
	// (ike.Daemon.ESPMoved). Nothing else moves it, the same IKE SA
	// carries on, and the transfer completes intact.
	t.Run("peer-inside-rebinding", func(t *testing.T) {
		t.Parallel()
		l, nsN := newIKENATPairLab(t, ikeOptions{startAction: "none"}, "charon")
		cfgM := l.mipsecConfig("M")
		cfgM.Remote = "%any" // M cannot reach C; it sees the NAT's address
		m := l.startMipsec("M", l.nsM, cfgM)
		cfgC := l.peerConfig()
		cfgC.StartAction, cfgC.DPDDelay = "start", "1s"
		c := l.startMipsec("C", l.nsC, cfgC)
		sm := waitMipsecSA(t, m, ikeConnM, 10*time.Second)
		sc := waitMipsecSA(t, c, ikeConnC, 5*time.Second)
		liveSame(t, sm, sc)
		oldPort := netip.AddrPortFrom(ikeNATWan.Addr(), 40001).String()
		newPort := netip.AddrPortFrom(ikeNATWan.Addr(), 40002).String()
		if sm.Initiator || sm.NATLocal || !sm.NATRemote || !sm.Encap || sm.Remote != oldPort {
			t.Errorf("M: %s -> %s initiator %v nat_local %v nat_remote %v encap %v; want the peer at %s behind a NAT", sm.Local, sm.Remote, sm.Initiator, sm.NATLocal, sm.NATRemote, sm.Encap, oldPort)
		}
		if !sc.NATLocal || !sc.Encap {
			t.Errorf("C: %s -> %s nat_local %v encap %v; want behind a NAT, in UDP", sc.Local, sc.Remote, sc.NATLocal, sc.Encap)
		}
		l.traffic(0)
		// The float to 4500 in IKE_AUTH was a move already.
		movesBefore := len(liveLogLines(m, `"IKE SA moved"`))

		// What crosses M's end of the wire to and from the new port.
		wan := ikeNATWan.Addr().String()
		cp, err := netlab.StartCaptureOpts(l.nsM, "ul0", netlab.CaptureOptions{Keep: func(f netlab.Frame) bool {
			return f.Src == wan || f.Src == l.outerM.String()
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cp.Close)

		// The sender is slowed (10 ms per 64 KiB) so that the transfer is
		// running when its progress callback, at 1 MiB, changes the
		// mapping (beside the transfer, so as not to stall it itself).
		var (
			once      sync.Once
			changedAt time.Time
			rebind    = make(chan error, 1)
		)
		progress := func(sent int) {
			if sent >= 1<<20 {
				once.Do(func() {
					changedAt = time.Now()
					go func() { rebind <- liveRebind(nsN, 40002) }()
				})
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Beside the transfer: when M's IKE SA shows C at the new port.
		moved := make(chan time.Time, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		go func() {
			for ctx.Err() == nil {
				if sas, err := ikeList(m); err == nil && len(sas) == 1 && sas[0].Remote == newPort {
					moved <- time.Now()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		var sw stallWatch
		const size = 6 << 20
		res, err := tcpTransfer(ctx, l.nsM, netip.AddrPortFrom(ikeSiteM.Addr(), 5201), l.nsC, ikeSiteC.Addr(), payload(size), sw.wrap(progress))
		if err != nil {
			t.Fatalf("TCP across the rebinding: %v", err)
		}
		if changedAt.IsZero() {
			t.Fatal("the transfer never reached 1 MiB")
		}
		if err := <-rebind; err != nil {
			t.Fatal(err)
		}
		var movedAt time.Time
		select {
		case movedAt = <-moved:
		case <-time.After(5 * time.Second):
			t.Fatalf("M does not follow C to %s: %+v", newPort, mustIKEList(t, m))
		}
		time.Sleep(100 * time.Millisecond)
		cp.Close()
		t.Logf("TCP across the rebinding: %v; M followed C %v after the mapping changed; longest stall %v (at %d KiB)",
			res, movedAt.Sub(changedAt).Round(time.Millisecond), sw.max.Round(time.Millisecond), sw.at>>10)

		// The move after the rebinding, logged once: by the IKE daemon on
		// C's first authenticated request from the new port (ike/sa.go
		// follow), or, where the dataplane follows a NAT's new mapping on
		// ESP that passed its ICV and replay checks (ike.Daemon.ESPMoved,
		// after RFC 3948 §2.2: IKE and ESP share the mapping), on C's ESP.
		ikeMoves := liveLogLines(m, `"IKE SA moved"`)
		espMoves := liveLogLines(m, `"IKE SA moved after its ESP`)
		byESP := len(espMoves) > 0
		moves := append(ikeMoves[movesBefore:], espMoves...)
		if len(moves) != 1 || !strings.Contains(moves[0], `"remote":"`+newPort+`"`) {
			t.Errorf("M logged %d moves after the rebinding, want one, to %s:\n%s", len(moves), newPort, strings.Join(moves, "\n"))
		}

		// On the wire: M sent nothing to the new port before the packet
		// from there that moved it: C's first IKE message (C's ESP came
		// from there before, as a rule: C sends every 10 ms, its check
		// once a second), or with the ESP move C's first ESP packet.
		var inESP, inIKE, out time.Time
		for _, k := range cp.Kept() {
			if d := ikeDatagram(k.Data, 40002, 4500); !k.Out && d != nil {
				switch {
				case len(d) > 4 && [4]byte(d[:4]) == [4]byte{} && inIKE.IsZero():
					inIKE = k.Time
				case len(d) > 8 && [4]byte(d[:4]) != [4]byte{} && inESP.IsZero():
					inESP = k.Time
				}
			}
			if d := ikeDatagram(k.Data, 4500, 40002); k.Out && d != nil && out.IsZero() {
				out = k.Time
			}
		}
		trigger, first := "IKE message", inIKE
		if byESP {
			trigger, first = "ESP packet", inESP
		}
		if first.IsZero() || out.IsZero() {
			t.Fatalf("capture: first from %s ESP %v, IKE %v; first to it %v", newPort, inESP, inIKE, out)
		}
		t.Logf("from the new port: ESP %v, IKE %v after the change; M moved on C's %s and sent its first datagram there %v after it",
			inESP.Sub(changedAt).Round(time.Millisecond), inIKE.Sub(changedAt).Round(time.Millisecond), trigger, out.Sub(first).Round(time.Millisecond))
		if out.Before(first) {
			t.Errorf("M sent to %s %v before C's first %s from there: it followed something else", newPort, first.Sub(out), trigger)
		}

		// The stall is the time the path is broken plus TCP's wait for its
		// next retransmission. With the ESP move the path is back with C's
		// next ESP packet (a retransmission of its data). With the IKE
		// move only, it is back when C's next liveness
		// check reaches M from the new port: within dpd_delay (1 s), or
		// retransmit (500 ms) later if the NAT dropped M's answer to a
		// check in flight, whose retransmission M answers but does not
		// follow, so one more dpd_delay: at most ~2.5 s. TCP's
		// retransmission timeout doubles from 200 ms (0.2, 0.6, 1.4, 3.0,
		// 6.2 s after the loss), so an outage of at most 3 s is over by
		// the retransmission at 6.2 s at the latest; the bound is that, and
		// 1 s for the queue to drain and a loaded host.
		const stallBound = 7 * time.Second
		if sw.max > stallBound {
			t.Errorf("the transfer stalled %v across the rebinding, want under %v", sw.max, stallBound)
		}
		if d := movedAt.Sub(changedAt); d > 3*time.Second {
			t.Errorf("M followed C %v after the mapping changed; C's checks (dpd_delay 1s) should move it within 3 s", d)
		}
		now, ok := established(mustIKEList(t, m), ikeConnM)
		if !ok || now.SPIi != sm.SPIi || now.SPIr != sm.SPIr || now.Remote != newPort ||
			now.Children[0].SPIIn != sm.Children[0].SPIIn || now.Children[0].SPIOut != sm.Children[0].SPIOut {
			t.Errorf("M after the rebinding: %+v; want the same IKE SA and child as %+v at %s", now, sm, newPort)
		}
		if st := ikeStats(t, m); st.Failures["integrity"] != 0 || st.IKESAs != 1 {
			t.Errorf("M stats after the rebinding: %+v", st)
		}
		if sc2, ok := established(mustIKEList(t, c), ikeConnC); !ok || sc2.SPIi != sm.SPIi || sc2.Children[0].SPIIn != sc.Children[0].SPIIn {
			t.Errorf("C after the rebinding: %+v, before %+v", sc2, sc)
		}
		l.traffic(1 << 20)
	})
}

// TestIKEPairRekeyTCP: TestIKEMipsecRekey with a second mipsec in
// charon's place, and rekeys started by each side during one TCP
// transfer: M rekeys the child (RFC 7296 §2.8), then the IKE SA (§2.18),
// then C the child and the IKE SA. Each make-before-break switch loses
// and replays nothing: the transfer arrives intact without a long stall,
// neither side counts a replay drop, and both settle on one IKE SA (C its
// initiator now) with one child and no ESP SA left of the old ones.
func TestIKEPairRekeyTCP(t *testing.T) {
	t.Parallel()
	l := newIKEPairLab(t, ikeOptions{})
	c := l.startMipsec("C", l.nsC, l.peerConfig())
	m := l.startMipsec("M", l.nsM, l.mipsecConfig("M"))
	first := waitMipsecSA(t, m, ikeConnM, 10*time.Second)
	liveSame(t, first, waitMipsecSA(t, c, ikeConnC, 5*time.Second))
	l.traffic(0)
	gws := map[string]*gateway{"M": m, "C": c}
	drops := map[string]uint64{}
	rekeys := map[string]uint64{}
	for name, g := range gws {
		drops[name], rekeys[name] = replayDrops(t, g), ikeStats(t, g).Rekeys
	}

	// The sender is slowed (15 ms per 64 KiB: 600 ms at least after the
	// last offset) so that the transfer spans the rekeys; each starts once
	// the transfer reached its offset and the one before it is done (one
	// exchange at a time, as a user would).
	steps := []struct {
		at   int
		side string
		args []string
	}{
		{1 << 20, "M", []string{"ike", "rekey", ikeConnM, ikeChild}},
		{5 << 19, "M", []string{"ike", "rekey", ikeConnM}},
		{4 << 20, "C", []string{"ike", "rekey", ikeConnC, ikeChild}},
		{11 << 19, "C", []string{"ike", "rekey", ikeConnC}},
	}
	type result struct {
		step int
		out  string
		err  error
		done time.Time
	}
	reached := make([]chan struct{}, len(steps))
	for i := range reached {
		reached[i] = make(chan struct{})
	}
	results := make(chan result, len(steps))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		for i, s := range steps {
			select {
			case <-reached[i]:
			case <-ctx.Done():
				return
			}
			out, err := gws[s.side].ctl(s.args...)
			results <- result{i, strings.TrimSpace(out), err, time.Now()}
		}
	}()
	next := 0
	progress := func(sent int) {
		for next < len(steps) && sent >= steps[next].at {
			close(reached[next])
			next++
		}
		time.Sleep(15 * time.Millisecond)
	}
	var sw stallWatch
	res, err := tcpTransfer(ctx, l.nsC, netip.AddrPortFrom(ikeSiteC.Addr(), 5201), l.nsM, ikeSiteM.Addr(), payload(8<<20), sw.wrap(progress))
	ended := time.Now()
	if err != nil {
		t.Fatalf("TCP across the rekeys: %v", err)
	}
	t.Logf("TCP across the rekeys: %v; longest stall %v (at %d KiB)", res, sw.max.Round(time.Millisecond), sw.at>>10)
	if next != len(steps) {
		t.Fatalf("the transfer reached %d of %d rekey offsets", next, len(steps))
	}
	for range steps {
		var r result
		select {
		case r = <-results:
		case <-time.After(15 * time.Second):
			t.Fatal("a rekey command did not return")
		}
		s := steps[r.step]
		if r.err != nil {
			t.Fatalf("%s: mipsec %s: %v", s.side, strings.Join(s.args, " "), r.err)
		}
		t.Logf("%s: mipsec %s: %s (%v before the transfer ended)", s.side, strings.Join(s.args, " "), r.out, ended.Sub(r.done).Round(time.Millisecond))
		if r.done.After(ended) {
			t.Errorf("%s: mipsec %s finished after the transfer: not under load", s.side, strings.Join(s.args, " "))
		}
	}
	if sw.max >= time.Second {
		t.Errorf("the transfer stalled %v (at %d KiB) across the rekeys, want under 1 s", sw.max, sw.at>>10)
	}
	for name, g := range gws {
		if n := replayDrops(t, g); n != drops[name] {
			t.Errorf("%s: %d replay drops across the rekeys (before %d, after %d)", name, n-drops[name], drops[name], n)
		}
		// Each side counts each rekey, the ones it started and the ones
		// it answered (ike/exchange_create.go).
		if st := ikeStats(t, g); st.Rekeys-rekeys[name] != uint64(len(steps)) {
			t.Errorf("%s counted %d rekeys, want %d (failures %v)", name, st.Rekeys-rekeys[name], len(steps), st.Failures)
		}
	}

	var ma, mc control.IKESAInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		ma, mc = liveSettled(t, m, ikeConnM, 10*time.Second), liveSettled(t, c, ikeConnC, 10*time.Second)
		ms, cs := 0, 0
		if ma.SPIi == mc.SPIi && ma.SPIr == mc.SPIr && ma.Children[0].SPIIn == mc.Children[0].SPIOut && ma.Children[0].SPIOut == mc.Children[0].SPIIn {
			ms, _ = ipsecTables(t, m)
			cs, _ = ipsecTables(t, c)
			if ms == 2 && cs == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two do not settle on one SA with 2 ESP SAs each: M %+v (%d ESP SAs), C %+v (%d ESP SAs)", ma, ms, mc, cs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	liveSame(t, ma, mc)
	// C started the last IKE SA rekey: it is the new SA's initiator
	// (§2.18), and both IKE SPIs and the child's are new.
	if ma.Initiator || !mc.Initiator || ma.SPIi == first.SPIi || ma.SPIr == first.SPIr ||
		ma.Children[0].SPIIn == first.Children[0].SPIIn || ma.Children[0].SPIOut == first.Children[0].SPIOut {
		t.Errorf("after the rekeys: M %+v, C %+v; before M %+v", ma, mc, first)
	}
	l.traffic(0)
}
