package dataplane

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mipsec/mipsec/internal/testenv"
)

// Test network namespaces for the TUN test: each test makes its own, named
// "mipsec-t-<pid>-<n>", and deletes it in t.Cleanup. The underlay tests
// have the same helpers with veth pairs (underlay/netns_linux_test.go).

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
