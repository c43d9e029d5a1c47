package node

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mipsec/mipsec/ike"
)

var (
	mkOld   = netip.MustParseAddr("192.0.2.1")
	mkSame  = netip.MustParseAddr("192.0.2.9")   // on ul0, as mkOld was
	mkOther = netip.MustParseAddr("192.0.2.3")   // on eth1 (sorts first)
	mkOld6  = netip.MustParseAddr("2001:db8::1") // the only IPv6 address
	mkPeer  = netip.MustParseAddrPort("192.0.2.2:4500")
	mkPeer6 = netip.MustParseAddrPort("[2001:db8::2]:500")
)

type moveCall struct {
	conn string
	to   netip.Addr
}

// fakeMOBIKE is a mobikeWatch on fake IKE SAs and interfaces; its moves
// go to a channel.
func fakeMOBIKE(t *testing.T, sas []ike.SAStatus, moveErr error) (*mobikeWatch, chan moveCall, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	moves := make(chan moveCall, 8)
	m := &mobikeWatch{
		log: zap.New(core), mobike: map[string]bool{"gw": true, "gw6": true, "resp": true},
		skip: []netip.Addr{netip.MustParseAddr("198.51.100.1")},
		list: func() []ike.SAStatus { return slices.Clone(sas) },
		move: func(conn string, to netip.Addr) error { moves <- moveCall{conn, to}; return moveErr },
		ifaces: func() map[netip.Addr]string {
			return map[netip.Addr]string{mkOld: "ul0", mkSame: "ul0", mkOther: "eth1", mkOld6: "ul0"}
		},
	}
	t.Cleanup(func() { m.stop(); m.wait() })
	return m, moves, logs
}

func noMove(t *testing.T, moves chan moveCall) {
	t.Helper()
	select {
	case c := <-moves:
		t.Fatalf("unexpected move %+v", c)
	case <-time.After(50 * time.Millisecond):
	}
}

func logged(logs *observer.ObservedLogs, level zapcore.Level, sub string) bool {
	for _, e := range logs.All() {
		if e.Level == level && strings.Contains(e.Message, sub) {
			return true
		}
	}
	return false
}

// TestMOBIKEWatch: a watcher report without an IKE SA's local address
// moves that IKE SA (RFC 4555 §3.5) to another address of its family,
// one on the old address's interface first; our responder SAs, SAs of
// connections with mobike off and SAs of a family with no address left
// stay; the first report and reports without a loss move nothing.
func TestMOBIKEWatch(t *testing.T) {
	sas := []ike.SAStatus{
		{Name: "gw", State: "established", Initiator: true, Local: netip.AddrPortFrom(mkOld, 4500), Remote: mkPeer},
		{Name: "resp", State: "established", Initiator: false, Local: netip.AddrPortFrom(mkOld, 4500), Remote: mkPeer},
		{Name: "off", State: "established", Initiator: true, Local: netip.AddrPortFrom(mkOld, 4500), Remote: mkPeer},
		{Name: "gw6", State: "established", Initiator: true, Local: netip.AddrPortFrom(mkOld6, 500), Remote: mkPeer6},
	}
	m, moves, logs := fakeMOBIKE(t, sas, nil)
	m.changed([]netip.Addr{mkOld, mkOld6}) // the first report
	m.changed([]netip.Addr{mkOther, mkOld, mkSame, mkOld6})
	noMove(t, moves)
	m.changed([]netip.Addr{mkOther, mkSame, netip.MustParseAddr("198.51.100.1")})
	select {
	case c := <-moves:
		if c.conn != "gw" || c.to != mkSame {
			t.Fatalf("moved %+v, want gw to %v (the same interface)", c, mkSame)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no move")
	}
	noMove(t, moves)
	m.wait()
	if !logged(logs, zapcore.InfoLevel, "MOBIKE: moved") {
		t.Error("no info line for the move")
	}
	if !logged(logs, zapcore.WarnLevel, "no other address of its family is left") {
		t.Error("no warning for the IPv6 IKE SA without an address left")
	}
	if !logged(logs, zapcore.InfoLevel, "only the initiator moves it") || !logged(logs, zapcore.InfoLevel, "mobike off") {
		t.Error("the responder's and mobike-off SAs are not logged")
	}
	// Without the interface known, the first address of the family.
	m2, moves2, _ := fakeMOBIKE(t, sas[:1], nil)
	m2.ifaces = nil
	m2.changed([]netip.Addr{mkOld})
	m2.changed([]netip.Addr{mkOther, mkSame})
	if c := <-moves2; c.to != mkOther {
		t.Fatalf("moved to %v, want %v", c.to, mkOther)
	}
}

// TestMOBIKEWatchRefuses: an underlay bound to an address of the family
// cannot send from another one, a failed move is a warning, and no move
// starts after stop.
func TestMOBIKEWatchRefuses(t *testing.T) {
	sas := []ike.SAStatus{{Name: "gw", State: "established", Initiator: true, Local: netip.AddrPortFrom(mkOld, 4500), Remote: mkPeer}}
	m, moves, logs := fakeMOBIKE(t, sas, nil)
	m.bound = []netip.Addr{mkOld}
	m.changed([]netip.Addr{mkOld})
	m.changed([]netip.Addr{mkSame})
	noMove(t, moves)
	if !logged(logs, zapcore.WarnLevel, "[underlay] local binds") {
		t.Error("no warning for the bound underlay")
	}

	m, moves, logs = fakeMOBIKE(t, sas, errors.New("ike: UPDATE_SA_ADDRESSES unanswered"))
	m.changed([]netip.Addr{mkOld})
	m.changed([]netip.Addr{mkSame})
	if c := <-moves; c.to != mkSame {
		t.Fatalf("moved to %v", c.to)
	}
	m.wait()
	if !logged(logs, zapcore.WarnLevel, "the move failed") {
		t.Error("no warning for the failed move")
	}

	m, moves, _ = fakeMOBIKE(t, sas, nil)
	m.changed([]netip.Addr{mkOld, mkSame})
	m.stop()
	m.changed([]netip.Addr{mkSame})
	noMove(t, moves)
}
