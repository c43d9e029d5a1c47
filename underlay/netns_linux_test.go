package underlay

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/internal/testenv"
)

// Test network namespaces: each test makes its own, named
// "mipsec-t-<pid>-<n>", joined by veth pairs with documentation addresses
// only, and deletes them in t.Cleanup. Nothing is routed to the host.

var nsSeq atomic.Int32

// testNS is one named network namespace.
type testNS struct {
	name string
	h    netns.NsHandle
	nl   *netlink.Handle
}

// newTestNS creates a namespace with lo up.
func newTestNS(t testing.TB) *testNS {
	t.Helper()
	testenv.NeedRoot(t)
	name := fmt.Sprintf("mipsec-t-%d-%d", os.Getpid(), nsSeq.Add(1))
	var (
		h   netns.NsHandle
		err error
	)
	withLockedThread(t, func(orig netns.NsHandle) {
		h, err = netns.NewNamed(name) // moves this thread into it
		if rerr := netns.Set(orig); rerr != nil {
			panic(fmt.Sprintf("cannot return to the original netns: %v", rerr))
		}
	})
	if err != nil {
		testenv.SkipOrFail(t, "create netns %s: %v", name, err)
	}
	ns := &testNS{name: name, h: h}
	t.Cleanup(func() {
		if ns.nl != nil {
			ns.nl.Close()
		}
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	ns.nl, err = netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	lo, err := ns.nl.LinkByName("lo")
	if err != nil {
		t.Fatalf("%s: lo: %v", name, err)
	}
	if err := ns.nl.LinkSetUp(lo); err != nil {
		t.Fatalf("%s: lo up: %v", name, err)
	}
	return ns
}

// withLockedThread runs f on a locked OS thread; orig is the thread's
// network namespace before f. The thread is unlocked only if it is back in
// orig afterwards (otherwise the runtime retires it).
func withLockedThread(t testing.TB, f func(orig netns.NsHandle)) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns.Get: %v", err)
	}
	defer orig.Close()
	defer func() {
		cur, err := netns.Get()
		if err == nil && cur.Equal(orig) {
			runtime.UnlockOSThread()
		}
		if err == nil {
			cur.Close()
		}
	}()
	f(orig)
}

// do runs f on a thread inside ns: sockets and TUN devices f creates stay
// in ns; goroutines f starts do not run in ns.
func (ns *testNS) do(t testing.TB, f func()) {
	t.Helper()
	withLockedThread(t, func(orig netns.NsHandle) {
		if err := netns.Set(ns.h); err != nil {
			t.Fatalf("enter %s: %v", ns.name, err)
		}
		defer func() {
			if err := netns.Set(orig); err != nil {
				panic(fmt.Sprintf("cannot leave %s: %v", ns.name, err))
			}
		}()
		f()
	})
}

// addAddr adds p to link (IPv6 without DAD, so it is usable at once).
func (ns *testNS) addAddr(t testing.TB, link netlink.Link, p netip.Prefix) {
	t.Helper()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := ns.nl.AddrAdd(link, a); err != nil {
		t.Fatalf("%s: add %v: %v", ns.name, p, err)
	}
}

// vethPair is two namespaces joined by a veth: a has 192.0.2.1/24 and
// 2001:db8::1/64, b has .2 and ::2.
type vethPair struct {
	a, b         *testNS
	a4, b4       netip.Addr
	a6, b6       netip.Addr
	linkA, linkB netlink.Link
}

func newVethPair(t testing.TB) *vethPair {
	t.Helper()
	p := &vethPair{
		a: newTestNS(t), b: newTestNS(t),
		a4: netip.MustParseAddr("192.0.2.1"), b4: netip.MustParseAddr("192.0.2.2"),
		a6: netip.MustParseAddr("2001:db8::1"), b6: netip.MustParseAddr("2001:db8::2"),
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "mva"},
		PeerName:      "mvb",
		PeerNamespace: netlink.NsFd(int(p.b.h)),
	}
	if err := p.a.nl.LinkAdd(veth); err != nil {
		testenv.SkipOrFail(t, "veth: %v", err)
	}
	var err error
	if p.linkA, err = p.a.nl.LinkByName("mva"); err != nil {
		t.Fatal(err)
	}
	if p.linkB, err = p.b.nl.LinkByName("mvb"); err != nil {
		t.Fatal(err)
	}
	p.a.addAddr(t, p.linkA, netip.PrefixFrom(p.a4, 24))
	p.a.addAddr(t, p.linkA, netip.PrefixFrom(p.a6, 64))
	p.b.addAddr(t, p.linkB, netip.PrefixFrom(p.b4, 24))
	p.b.addAddr(t, p.linkB, netip.PrefixFrom(p.b6, 64))
	if err := p.a.nl.LinkSetUp(p.linkA); err != nil {
		t.Fatal(err)
	}
	if err := p.b.nl.LinkSetUp(p.linkB); err != nil {
		t.Fatal(err)
	}
	return p
}
