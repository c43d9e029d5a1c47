package netcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultDebounce is how long AddrWatcher waits after the last netlink
// event before it reports: a move brings one link down and another up in a
// burst of events, which should give one report.
const DefaultDebounce = 100 * time.Millisecond

// WatchConfig configures WatchAddrs.
type WatchConfig struct {
	// Interfaces are the interfaces whose addresses count; empty means
	// every interface but those in Exclude.
	Interfaces []string
	// Exclude is never watched (the TUN, whose addresses are the home
	// addresses).
	Exclude []string
	// Debounce is the quiet time before a report; 0 means DefaultDebounce.
	Debounce time.Duration
	// OnError gets netlink errors (subscription lost, listing failed);
	// nil drops them.
	OnError func(error)
}

// AddrWatcher reports the usable addresses of the watched interfaces
// whenever they change: an address added or removed, a link going up or
// down (RFC 6275 §11.5.1: movement detection from lower-layer events).
type AddrWatcher struct {
	cfg  WatchConfig
	fn   func([]netip.Addr)
	h    *netlink.Handle
	done chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	last []netip.Addr
	once sync.Once
}

// WatchAddrs subscribes to netlink address and link events in the current
// network namespace and calls fn with the sorted list of usable addresses:
// once at the start, then after each change (debounced), only when the
// list differs from the last one reported. fn runs on the watcher's
// goroutine, one call at a time.
//
// Usable means: a global unicast address (not loopback, link-local or
// multicast; IPv4 private addresses count: a NAT is what RFC 5555 is for),
// not tentative or failed duplicate address detection, on an interface
// that is up and has a carrier (operational state up or unknown).
func WatchAddrs(cfg WatchConfig, fn func([]netip.Addr)) (*AddrWatcher, error) {
	if fn == nil {
		return nil, errors.New("netcfg: watch: nil callback")
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netcfg: netlink: %w", err)
	}
	w := &AddrWatcher{cfg: cfg, fn: fn, h: h, done: make(chan struct{})}
	addrCh := make(chan netlink.AddrUpdate, 64)
	linkCh := make(chan netlink.LinkUpdate, 64)
	onErr := func(err error) {
		if cfg.OnError != nil {
			cfg.OnError(err)
		}
	}
	// Subscribe first, then list: no change falls between the two.
	if err := netlink.AddrSubscribeWithOptions(addrCh, w.done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		h.Close()
		return nil, fmt.Errorf("netcfg: subscribing to address events: %w", err)
	}
	if err := netlink.LinkSubscribeWithOptions(linkCh, w.done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		close(w.done)
		h.Close()
		return nil, fmt.Errorf("netcfg: subscribing to link events: %w", err)
	}
	addrs, err := w.Addrs()
	if err != nil {
		close(w.done)
		h.Close()
		return nil, err
	}
	w.wg.Add(1)
	go w.loop(addrCh, linkCh, addrs)
	return w, nil
}

// Close stops the watcher and waits for a report in progress.
func (w *AddrWatcher) Close() error {
	w.once.Do(func() {
		close(w.done)
		w.wg.Wait()
		w.h.Close()
	})
	return nil
}

func (w *AddrWatcher) loop(addrCh <-chan netlink.AddrUpdate, linkCh <-chan netlink.LinkUpdate, first []netip.Addr) {
	defer w.wg.Done()
	w.report(first)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-w.done:
			timer.Stop()
			return
		case _, ok := <-addrCh:
			if !ok {
				addrCh = nil
				w.lost("address")
				continue
			}
			timer.Reset(w.cfg.Debounce)
		case _, ok := <-linkCh:
			if !ok {
				linkCh = nil
				w.lost("link")
				continue
			}
			timer.Reset(w.cfg.Debounce)
		case <-timer.C:
			addrs, err := w.Addrs()
			if err != nil {
				if w.cfg.OnError != nil {
					w.cfg.OnError(err)
				}
				continue
			}
			w.report(addrs)
		}
	}
}

func (w *AddrWatcher) lost(what string) {
	select {
	case <-w.done:
		return
	default:
	}
	if w.cfg.OnError != nil {
		w.cfg.OnError(fmt.Errorf("netcfg: the %s event subscription ended; movement detection stops (mipsec mn move still works)", what))
	}
}

func (w *AddrWatcher) report(addrs []netip.Addr) {
	w.mu.Lock()
	same := w.last != nil && slices.Equal(w.last, addrs)
	if !same {
		w.last = addrs
	}
	w.mu.Unlock()
	if !same {
		w.fn(slices.Clone(addrs))
	}
}

// Last returns the list reported last.
func (w *AddrWatcher) Last() []netip.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.last)
}

// Addrs lists the usable addresses of the watched interfaces now, sorted.
func (w *AddrWatcher) Addrs() ([]netip.Addr, error) {
	links, err := w.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("netcfg: listing links: %w", err)
	}
	out := []netip.Addr{}
	for _, l := range links {
		a := l.Attrs()
		if !w.watched(a.Name) || !linkUsable(a) {
			continue
		}
		list, err := w.h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			if errors.Is(err, unix.ENODEV) {
				continue // gone meanwhile
			}
			return nil, fmt.Errorf("netcfg: listing the addresses of %s: %w", a.Name, err)
		}
		for _, ad := range list {
			if ip, ok := usableAddr(ad); ok && !slices.Contains(out, ip) {
				out = append(out, ip)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out, nil
}

func (w *AddrWatcher) watched(name string) bool {
	if slices.Contains(w.cfg.Exclude, name) {
		return false
	}
	return len(w.cfg.Interfaces) == 0 || slices.Contains(w.cfg.Interfaces, name)
}

func linkUsable(a *netlink.LinkAttrs) bool {
	if a.Flags&net.FlagUp == 0 || a.Flags&net.FlagLoopback != 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

func usableAddr(ad netlink.Addr) (netip.Addr, bool) {
	if ad.IPNet == nil {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ad.IP)
	if !ok {
		return netip.Addr{}, false
	}
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() && !ip.IsPrivate() {
		return netip.Addr{}, false
	}
	if ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
		return netip.Addr{}, false
	}
	return ip, true
}
