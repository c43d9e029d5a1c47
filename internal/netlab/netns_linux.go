package netlab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// IP runs the ip command (iproute2); the error carries its output.
func IP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// NetnsName returns prefix-PID-suffix, the name RemoveStale recognises.
func NetnsName(prefix, suffix string) string {
	return fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), suffix)
}

// RemoveStale deletes the namespaces named prefix-PID-* (see NetnsName)
// whose PID no longer runs: those of earlier runs that were killed before
// they could clean up. Namespaces of this process are left alone.
func RemoveStale(prefix string) {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if pid, ok := staleOwner(prefix, e.Name()); !ok || pid == os.Getpid() {
			continue
		} else if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// staleOwner parses prefix-PID-REST (REST not empty) and returns PID.
func staleOwner(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return 0, false
	}
	num, tail, ok := strings.Cut(rest, "-")
	if !ok || tail == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(num)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// AddNetns creates namespace name with its loopback up and duplicate
// address detection off (addresses work at once). On error nothing is
// left: a namespace it created is deleted again.
func AddNetns(ctx context.Context, name string) error {
	if err := IP(ctx, "netns", "add", name); err != nil {
		return err
	}
	err := IP(ctx, "-n", name, "link", "set", "lo", "up")
	if err == nil {
		err = InNetns(name, func() error {
			for _, f := range []string{"all", "default"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/accept_dad", []byte("0"), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("netns %s: %w", name, err)
		}
	}
	if err != nil {
		DelNetns(name)
		return err
	}
	return nil
}

// DelNetns deletes namespace name; the error carries ip's output.
func DelNetns(name string) error {
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %v %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// InNetns runs fn on an OS thread that has entered namespace ns. Sockets
// that fn opens stay in ns and can be used from any goroutine afterwards.
// The thread is never unlocked: it exits with the goroutine, so no other
// goroutine ever runs in ns by accident.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Link is one end of a veth: device Dev in namespace NS with addresses V4
// and V6 (an invalid prefix is left out).
type Link struct {
	NS, Dev string
	V4, V6  netip.Prefix
}

var vethCounter atomic.Int64

// Veth joins a.NS and b.NS with a veth whose ends are a.Dev and b.Dev,
// adds the addresses (IPv6 without DAD) and sets both ends up.
func Veth(ctx context.Context, a, b Link) error {
	tmp := fmt.Sprintf("nl%d-%d", os.Getpid()%100000, vethCounter.Add(1))
	if err := IP(ctx, "link", "add", tmp, "netns", a.NS, "type", "veth", "peer", "name", b.Dev, "netns", b.NS); err != nil {
		return err
	}
	if err := IP(ctx, "-n", a.NS, "link", "set", tmp, "name", a.Dev); err != nil {
		return err
	}
	for _, l := range []Link{a, b} {
		if l.V4.IsValid() {
			if err := IP(ctx, "-n", l.NS, "addr", "add", l.V4.String(), "dev", l.Dev); err != nil {
				return err
			}
		}
		if l.V6.IsValid() {
			if err := IP(ctx, "-n", l.NS, "addr", "add", l.V6.String(), "dev", l.Dev, "nodad"); err != nil {
				return err
			}
		}
		if err := IP(ctx, "-n", l.NS, "link", "set", l.Dev, "up"); err != nil {
			return err
		}
	}
	return nil
}
