package netcfg

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/internal/netlab"
	"github.com/mipsec/mipsec/internal/testenv"
)

var (
	ppA = netip.MustParseAddr("2001:db8:5::1") // sender (and capture)
	ppB = netip.MustParseAddr("2001:db8:5::2") // the kernel that answers
)

// ppPacket builds IPv6 (ppA -> ppB) / ext, ext's first header being nh.
func ppPacket(nh byte, ext []byte) []byte {
	p := make([]byte, 40+len(ext))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(ext)))
	p[6], p[7] = nh, 64
	a, b := ppA.As16(), ppB.As16()
	copy(p[8:24], a[:])
	copy(p[24:40], b[:])
	copy(p[40:], ext)
	return p
}

// ppHAO is a Destination Options header (Next Header 59) with a Home
// Address option (type 201, length 16, at offset 8n+6: RFC 6275 §6.3)
// behind a PadN.
func ppHAO() []byte {
	h := []byte{59, 2, 1, 2, 0, 0, 201, 16}
	hoa := netip.MustParseAddr("2001:db8:1::100").As16()
	return append(h, hoa[:]...)
}

// ppRH is a Routing header (Next Header 59) of type typ, Segments Left 1,
// with one address (type 2's layout, RFC 6275 §6.4).
func ppRH(typ byte) []byte {
	h := []byte{59, 2, typ, 1, 0, 0, 0, 0}
	a := netip.MustParseAddr("2001:db8:1::100").As16()
	return append(h, a[:]...)
}

// ppHopByHop is a Hop-by-Hop Options header with an unknown option whose
// top bits are 10 (RFC 8200 §4.2: discard and send code 2 in any case).
func ppHopByHop() []byte {
	return []byte{59, 0, 0x9e, 4, 0, 0, 0, 0}
}

// ppLab is two namespaces on a veth: a sends hand-built IPv6 packets to b
// through a header-included raw socket and reads every ICMPv6 message b
// sends back on a raw ICMPv6 socket.
type ppLab struct {
	a, b     string
	send, rx int
}

func newPPLab(t *testing.T) *ppLab {
	t.Helper()
	testenv.NeedCommand(t, "nft")
	l := &ppLab{a: newNS(t, "ppa"), b: newNS(t, "ppb")}
	ctx := context.Background()
	for _, c := range [][]string{
		{"-n", l.a, "link", "add", "pa", "type", "veth", "peer", "name", "pb", "netns", l.b},
		{"-n", l.a, "addr", "add", ppA.String() + "/64", "dev", "pa", "nodad"},
		{"-n", l.b, "addr", "add", ppB.String() + "/64", "dev", "pb", "nodad"},
		{"-n", l.a, "link", "set", "pa", "up"},
		{"-n", l.b, "link", "set", "pb", "up"},
	} {
		if err := netlab.IP(ctx, c...); err != nil {
			t.Fatal(err)
		}
	}
	// No ICMPv6 error rate limit in b: every packet gets its answer.
	inNS(t, l.b, func() error { return setSysctl("net/ipv6/icmp/ratelimit", "0") })
	inNS(t, l.a, func() error {
		var err error
		if l.send, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return err
		}
		l.rx, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		return err
	})
	t.Cleanup(func() {
		unix.Close(l.send)
		unix.Close(l.rx)
	})
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(l.rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	// Wait for the link (neighbour discovery, carrier), so no probe is
	// held in a neighbour queue and answered late.
	pg, err := netlab.NewPinger(l.a, ppA, ppB, []byte("mipsec"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pg.Echo(ctx, 1, 20, 250*time.Millisecond)
	pg.Close()
	if err != nil {
		t.Fatalf("%v not reachable: %v", ppB, err)
	}
	l.drain()
	return l
}

func (l *ppLab) drain() {
	buf := make([]byte, 2048)
	for {
		if _, _, err := unix.Recvfrom(l.rx, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// paramProblem is a Parameter Problem a received.
type paramProblem struct {
	code    byte
	pointer uint32
	quoted  []byte
}

// probe sends p to b and returns the Parameter Problems that came back
// within wait (other ICMPv6 messages are skipped).
func (l *ppLab) probe(t *testing.T, p []byte, wait time.Duration) []paramProblem {
	t.Helper()
	l.drain()
	sa := &unix.SockaddrInet6{Addr: ppB.As16()}
	if err := unix.Sendto(l.send, p, 0, sa); err != nil {
		t.Fatalf("send: %v", err)
	}
	var out []paramProblem
	buf := make([]byte, 2048)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(l.rx, buf, 0)
		if err != nil {
			continue // timeout: keep waiting until the deadline
		}
		// RFC 4443 §3.4: type 4, code, checksum, pointer, invoking packet.
		if s6, ok := from.(*unix.SockaddrInet6); !ok || netip.AddrFrom16(s6.Addr) != ppB || n < 8+40 || buf[0] != 4 {
			continue
		}
		out = append(out, paramProblem{code: buf[1], pointer: binary.BigEndian.Uint32(buf[4:]), quoted: append([]byte(nil), buf[8:n]...)})
	}
	return out
}

// TestSuppressMIP6ParamProblems: a kernel without Mobile IPv6 answers a
// Home Address option with Parameter Problem code 2 and a type 2 Routing
// header with code 0 (pointer 42); with the table those two answers are
// dropped and nothing else is (an unknown Hop-by-Hop option, a type 0
// Routing header still get theirs); undo restores the kernel's answers.
func TestSuppressMIP6ParamProblems(t *testing.T) {
	l := newPPLab(t)
	hao, rh2 := ppPacket(60, ppHAO()), ppPacket(43, ppRH(2))
	hbh, rh0 := ppPacket(0, ppHopByHop()), ppPacket(43, ppRH(0))
	const wait = 400 * time.Millisecond
	want := func(step string, p []byte, code byte, pointer uint32) {
		t.Helper()
		got := l.probe(t, p, wait)
		if len(got) != 1 {
			t.Errorf("%s: %d Parameter Problems, want 1", step, len(got))
			return
		}
		if g := got[0]; g.code != code || g.pointer != pointer || len(g.quoted) < len(p) || string(g.quoted[:len(p)]) != string(p) {
			t.Errorf("%s: code %d pointer %d quoted % x, want code %d pointer %d quoting the packet", step, g.code, g.pointer, g.quoted, code, pointer)
		}
	}
	none := func(step string, p []byte) {
		t.Helper()
		if got := l.probe(t, p, wait); len(got) != 0 {
			t.Errorf("%s: %d Parameter Problems (code %d), want none", step, len(got), got[0].code)
		}
	}

	// Without the table: the kernel's answers (what the filter relies on:
	// the pointer is the option type at 40+6, the routing type at 42).
	want("HAO, no table", hao, 2, 46)
	want("RH2, no table", rh2, 0, 42)
	want("HBH, no table", hbh, 2, 42)
	want("RH0, no table", rh0, 0, 42)

	var undo func() error
	for range 2 { // idempotent: replaced, not doubled
		inNS(t, l.b, func() error {
			var err error
			undo, err = SuppressMIP6ParamProblems()
			return err
		})
	}
	out, err := exec.Command("ip", "netns", "exec", l.b, "nft", "list", "table", "inet", MIP6FilterTable).CombinedOutput()
	if err != nil {
		t.Fatalf("table not in the namespace: %v %s", err, out)
	}
	if n := strings.Count(string(out), "drop"); n != 2 {
		t.Errorf("table has %d drop rules, want 2:\n%s", n, out)
	}
	t.Cleanup(func() { inNS(t, l.b, RemoveMIP6ParamProblemFilter) })
	none("HAO, table", hao)
	none("RH2, table", rh2)
	want("HBH, table (not ours: kept)", hbh, 2, 42)
	want("RH0, table (not ours: kept)", rh0, 0, 42)
	out, _ = exec.Command("ip", "netns", "exec", l.b, "nft", "list", "table", "inet", MIP6FilterTable).CombinedOutput()
	if n := strings.Count(string(out), "counter packets 1 "); n != 2 {
		t.Errorf("each rule should have dropped exactly one packet:\n%s", out)
	}
	// The host namespace is untouched.
	if out, _ := exec.Command("nft", "list", "table", "inet", MIP6FilterTable).CombinedOutput(); !strings.Contains(string(out), "No such file") && strings.Contains(string(out), "chain output") {
		t.Errorf("table installed outside the namespace:\n%s", out)
	}

	for range 2 { // undo is idempotent
		inNS(t, l.b, undo)
	}
	want("HAO, after undo", hao, 2, 46)
	want("RH2, after undo", rh2, 0, 42)
}

// TestSuppressMIP6ParamProblemsNoNft: without nft the error says so.
func TestSuppressMIP6ParamProblemsNoNft(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	undo, err := SuppressMIP6ParamProblems()
	if !errors.Is(err, ErrNoNft) || undo != nil {
		t.Errorf("without nft: undo %v, err %v; want ErrNoNft", undo != nil, err)
	}
	if err := RemoveMIP6ParamProblemFilter(); !errors.Is(err, ErrNoNft) {
		t.Errorf("remove without nft: %v", err)
	}
}
