package testns

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/internal/testenv"
)

var seq atomic.Int32

// NS is one named network namespace.
type NS struct {
	Name string
	H    netns.NsHandle
	NL   *netlink.Handle // netlink inside the namespace
}

// New creates a namespace with lo up; t.Cleanup deletes it.
func New(t testing.TB) *NS {
	t.Helper()
	testenv.NeedRoot(t)
	name := fmt.Sprintf("mipsec-t-%d-%d", os.Getpid(), seq.Add(1))
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
	ns := &NS{Name: name, H: h}
	t.Cleanup(func() {
		if ns.NL != nil {
			ns.NL.Close()
		}
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	ns.NL, err = netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	lo, err := ns.NL.LinkByName("lo")
	if err != nil {
		t.Fatalf("%s: lo: %v", name, err)
	}
	if err := ns.NL.LinkSetUp(lo); err != nil {
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

// Do runs f on a thread inside ns: sockets and TUN devices f creates stay
// in ns; goroutines f starts do not run in ns.
func (ns *NS) Do(t testing.TB, f func()) {
	t.Helper()
	withLockedThread(t, func(orig netns.NsHandle) {
		if err := netns.Set(ns.H); err != nil {
			t.Fatalf("enter %s: %v", ns.Name, err)
		}
		defer func() {
			if err := netns.Set(orig); err != nil {
				panic(fmt.Sprintf("cannot leave %s: %v", ns.Name, err))
			}
		}()
		f()
	})
}

// AddAddr adds p to link (IPv6 without DAD, so it is usable at once).
func (ns *NS) AddAddr(t testing.TB, link netlink.Link, p netip.Prefix) {
	t.Helper()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := ns.NL.AddrAdd(link, a); err != nil {
		t.Fatalf("%s: add %v: %v", ns.Name, p, err)
	}
}

// VethPair is two namespaces joined by a veth: A has 192.0.2.1/24 and
// 2001:db8::1/64 on LinkA ("mva"), B has .2 and ::2 on LinkB ("mvb").
type VethPair struct {
	A, B         *NS
	A4, B4       netip.Addr
	A6, B6       netip.Addr
	LinkA, LinkB netlink.Link
}

// NewVethPair makes the two namespaces and the veth between them, up.
func NewVethPair(t testing.TB) *VethPair {
	t.Helper()
	p := &VethPair{
		A: New(t), B: New(t),
		A4: netip.MustParseAddr("192.0.2.1"), B4: netip.MustParseAddr("192.0.2.2"),
		A6: netip.MustParseAddr("2001:db8::1"), B6: netip.MustParseAddr("2001:db8::2"),
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "mva"},
		PeerName:      "mvb",
		PeerNamespace: netlink.NsFd(int(p.B.H)),
	}
	if err := p.A.NL.LinkAdd(veth); err != nil {
		testenv.SkipOrFail(t, "veth: %v", err)
	}
	var err error
	if p.LinkA, err = p.A.NL.LinkByName("mva"); err != nil {
		t.Fatal(err)
	}
	if p.LinkB, err = p.B.NL.LinkByName("mvb"); err != nil {
		t.Fatal(err)
	}
	p.A.AddAddr(t, p.LinkA, netip.PrefixFrom(p.A4, 24))
	p.A.AddAddr(t, p.LinkA, netip.PrefixFrom(p.A6, 64))
	p.B.AddAddr(t, p.LinkB, netip.PrefixFrom(p.B4, 24))
	p.B.AddAddr(t, p.LinkB, netip.PrefixFrom(p.B6, 64))
	if err := p.A.NL.LinkSetUp(p.LinkA); err != nil {
		t.Fatal(err)
	}
	if err := p.B.NL.LinkSetUp(p.LinkB); err != nil {
		t.Fatal(err)
	}
	return p
}

// Settle waits until both sides have their IPv6 link-local address and
// neither has a tentative one (DAD): their address events would invalidate
// the cache in the middle of a test. A kernel that makes no link-local
// address (addr_gen_mode none) is waited for 3 s at most.
func (p *VethPair) Settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		ready := true
		for _, x := range []struct {
			ns   *NS
			link netlink.Link
		}{{p.A, p.LinkA}, {p.B, p.LinkB}} {
			as, err := x.ns.NL.AddrList(x.link, netlink.FAMILY_V6)
			if err != nil {
				t.Fatal(err)
			}
			ll := false
			for _, a := range as {
				ready = ready && a.Flags&unix.IFA_F_TENTATIVE == 0
				ll = ll || a.IP.IsLinkLocalUnicast()
			}
			ready = ready && ll
		}
		if ready {
			time.Sleep(20 * time.Millisecond) // the last events
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
