package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mipsec/mipsec/internal/testenv"
)

// The NAT topology: A (198.51.100.1) behind a masquerading router N
// (198.51.100.254 inside, 203.0.113.2 outside), B (203.0.113.1) outside.
var (
	natInside  = netip.MustParsePrefix("198.51.100.254/24")
	natOutside = netip.MustParsePrefix("203.0.113.2/24")
	publicB    = netip.MustParsePrefix("203.0.113.1/24")
)

// natRule is the masquerade rule of N's postrouting chain, with a fixed
// source port so the test knows (and changes) the mapping.
func natRule(port int) string {
	return fmt.Sprintf(`oifname "wan" meta l4proto udp masquerade to :%d`, port)
}

// nft runs nft in ns with script on stdin.
func nft(t *testing.T, ns, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s\n%s", ns, err, out, script)
	}
}

// setupNAT builds A - N - B and returns N's namespace through *natNS.
func setupNAT(natNS *string) func(t *testing.T, nsA, nsB string) {
	return func(t *testing.T, nsA, nsB string) {
		testenv.NeedCommand(t, "nft")
		nsN := newNetns(t)
		*natNS = nsN
		veth(t, nsA, nsN, "ul0", ulA4, netip.Prefix{}, netip.Prefix{}, netip.Prefix{})
		run(t, "ip", "-n", nsN, "link", "set", "ul0", "name", "lan")
		run(t, "ip", "-n", nsN, "addr", "add", natInside.String(), "dev", "lan")
		veth(t, nsN, nsB, "wan", natOutside, netip.Prefix{}, publicB, netip.Prefix{})
		run(t, "ip", "-n", nsB, "link", "set", "wan", "name", "ul0")
		// Only the outside network goes through N: nothing has a default route.
		run(t, "ip", "-n", nsA, "route", "add", "203.0.113.0/24", "via", natInside.Addr().String())
		if err := inNetns(nsN, func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
		nft(t, nsN, `table ip nat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		`+natRule(40001)+`
	}
}
`)
	}
}

// peerStatus is one row of `mipsec peers --json` (the fields used here).
type peerStatus struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Roams    uint64 `json:"roams"`
}

func peers(t *testing.T, g *gateway) []peerStatus {
	t.Helper()
	out, err := g.ctl("peers", "--json")
	if err != nil {
		t.Fatalf("mipsec peers --json: %v\n%s", err, out)
	}
	var ps []peerStatus
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		var wrapped struct {
			Peers []peerStatus `json:"peers"`
		}
		if err2 := json.Unmarshal([]byte(out), &wrapped); err2 != nil {
			t.Fatalf("mipsec peers --json: %v\n%s", err, out)
		}
		ps = wrapped.Peers
	}
	return ps
}

// TestNATRebinding: A sits behind an nftables masquerade; in the middle of
// a TCP transfer the NAT mapping changes (new source port, conntrack
// flushed). With roaming on, B follows A to the new port and the transfer
// completes with its bytes intact; with roaming off, it stalls.
func TestNATRebinding(t *testing.T) {
	for _, roaming := range []bool{true, false} {
		t.Run(fmt.Sprintf("roaming=%v", roaming), func(t *testing.T) {
			t.Parallel()
			var nsN string
			p := newPair(t, pairOptions{
				encap: "udp", roaming: roaming,
				outerA: ulA4.Addr(), outerB: publicB.Addr(),
				setup: setupNAT(&nsN),
				tweak: func(a, b *gwConfig) {
					// B sees A as the NAT's outside address and port.
					b.Remote = natOutside.Addr().String()
					b.Endpoint = netip.AddrPortFrom(natOutside.Addr(), 40001).String()
					b.RoamInterval = "100ms"
				},
			})
			capB := startCapture(t, p.B.ns, "ul0")
			mustPing(t, p.A.ns, siteA4.Addr(), siteB4.Addr(), 3)
			if ps := peers(t, p.B); len(ps) != 1 || !strings.HasSuffix(ps[0].Endpoint, ":40001") {
				t.Fatalf("B's peer before the change: %+v", ps)
			}

			const size = 32 << 20
			var changed atomic.Bool
			// The first 4 MiB may take a while on a loaded machine (-race);
			// without roaming the transfer gets 5 s after the change.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := tcpTransfer(ctx, p.B.ns, netip.AddrPortFrom(siteB4.Addr(), 5201), p.A.ns, siteA4.Addr(), payload(size),
				func(sent int) {
					if sent >= 4<<20 && !changed.Load() {
						changed.Store(true)
						// The mapping changes: new port, old state gone.
						nft(t, nsN, "flush chain ip nat post\nadd rule ip nat post "+natRule(40002)+"\n")
						if err := inNetns(nsN, func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) }); err != nil {
							t.Errorf("conntrack flush: %v", err)
						}
						if !roaming {
							time.AfterFunc(5*time.Second, cancel)
						}
					}
				})
			if !changed.Load() {
				t.Fatal("the mapping never changed")
			}
			if !roaming {
				if err == nil {
					t.Fatalf("with roaming off the transfer survived the NAT change (%v): B must keep sending to the old mapping", res)
				}
				t.Logf("roaming off: the transfer fails as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("transfer across the NAT change: %v", err)
			}
			t.Logf("TCP across the NAT change: %v", res)
			ps := peers(t, p.B)
			if len(ps) != 1 || !strings.HasSuffix(ps[0].Endpoint, ":40002") || ps[0].Roams == 0 {
				t.Errorf("B's peer after the change: %+v, want endpoint on port 40002 and a roam", ps)
			}
			mustPing(t, p.B.ns, siteB4.Addr(), siteA4.Addr(), 3)
			capB.check(t, true, size, true)
			// On B's wire, A's ESP came first from the old mapping, then
			// from the new one.
			src := capB.udpSources()
			if src["203.0.113.2:40001"] == 0 || src["203.0.113.2:40002"] == 0 {
				t.Errorf("ESP in UDP sources seen by B: %v, want both 203.0.113.2:40001 and :40002", src)
			}
			t.Logf("ESP in UDP sources seen by B: %v", src)
		})
	}
}
