package demo

// The IKEv2 side of the mobility demo (its default; --manual keeps the
// manual keys): the MN's IKE SA and children as `mipsec ike list` shows
// them on both daemons, and after each move the IKE SA's addresses, which
// follow the MN by the K flag (RFC 4877 §7.4) without an IKE exchange.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/netlab"
)

// mdPSKPath is the PSK file the IKE examples name.
const mdPSKPath = "/etc/mipsec/ha-mn.psk"

// mdPubkeyConfig turns an IKE example (PSK) into its certificate form:
// the local side proves its identity with cert and key, and the peer's
// certificate must chain to ca (RFC 7296 §2.15, RFC 7427).
func mdPubkeyConfig(cfg, cert, key, ca string) string {
	cfg = strings.Replace(cfg, `auth = "psk"`, `auth = "pubkey"`, 1)
	cfg = strings.Replace(cfg, `psk_file = "`+mdPSKPath+`"`, fmt.Sprintf("cert = %q\n  key = %q", cert, key), 1)
	return strings.Replace(cfg, "[connection.remote]\n", fmt.Sprintf("[connection.remote]\n  auth = \"pubkey\"\n  cacerts = [%q]\n", ca), 1)
}

// mdIKEConn is the MN's connection to its home agent (examples/mn-ike.toml).
const mdIKEConn = "home-agent"

// mdIKEChildren are the children the MN brings up (RFC 4877 §7.2).
var mdIKEChildren = []string{"bu", "mpd", "hoti", "payload"}

// mdIKESA is the one established IKE SA of the daemon at sock, with every
// child of mdIKEChildren installed; else why not.
func (d *mobDemo) mdIKESA(ctx context.Context, sock string) (*control.IKESAInfo, string) {
	sas, err := ndIKEList(ctx, d.bin, sock, sock)
	if err != nil {
		return nil, err.Error()
	}
	var up []*control.IKESAInfo
	for i := range sas {
		if sas[i].State == "established" {
			up = append(up, &sas[i])
		}
	}
	if len(up) != 1 {
		return nil, fmt.Sprintf("%d established IKE SAs, want 1", len(up))
	}
	have := map[string]bool{}
	for _, c := range up[0].Children {
		have[c.Name] = have[c.Name] || c.State == "installed"
	}
	for _, name := range mdIKEChildren {
		if !have[name] {
			return nil, fmt.Sprintf("child %s not installed yet", name)
		}
	}
	return up[0], ""
}

// bothIKESAs waits (10 s at most) until the MN and the HA each have their
// IKE SA with every child and check finds nothing wrong with them ("").
func (d *mobDemo) bothIKESAs(ctx context.Context, check func(mn, ha *control.IKESAInfo) string) (mn, ha *control.IKESAInfo, err error) {
	err = netlab.Poll(ctx, 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		var why string
		if mn, why = d.mdIKESA(ctx, d.mnSock); mn == nil {
			return false, "MN: " + why
		}
		if ha, why = d.mdIKESA(ctx, d.haSock); ha == nil {
			return false, "HA: " + why
		}
		why = check(mn, ha)
		return why == "", why
	})
	return mn, ha, err
}

// ikeReport waits for the IKE SA on both daemons and prints it; children
// also lists the children with their selectors and SPIs.
func (d *mobDemo) ikeReport(ctx context.Context, what string, children bool) error {
	d.step("%s (mipsec ike list)", what)
	mn, ha, err := d.bothIKESAs(ctx, func(mn, ha *control.IKESAInfo) string { return "" })
	if err != nil {
		return err
	}
	d.info("IKE SA %016x_i %016x_r %s: MN %s ('%s') <-> HA %s ('%s'), for the home address %s",
		uint64(mn.SPIi), uint64(mn.SPIr), mn.Suite, mn.Local, mn.LocalID, mn.Remote, mn.RemoteID, ha.HomeAddress)
	if !children {
		return nil
	}
	for _, c := range mn.Children {
		d.info("  child %-8s %-9s %s -> %s, SPIs in 0x%08x out 0x%08x", c.Name, c.Mode,
			strings.Join(c.LocalTS, ","), strings.Join(c.RemoteTS, ","), uint32(c.SPIIn), uint32(c.SPIOut))
	}
	d.info("every child is bound to the home address: none changes when the MN moves (RFC 4877 §7.2)")
	return nil
}

// ikeFollows waits until both ends of the IKE SA are at the MN's new
// place, to, and prints them: the HA's peer is the new care-of address
// (behind the NAT: the NAT's address and port), the MN's own address the
// new care-of address.
func (d *mobDemo) ikeFollows(ctx context.Context, to netlab.Access) error {
	want := to.CoA()
	if to == netlab.AccessB {
		want = netlab.MobNATAddr
	}
	mn, ha, err := d.bothIKESAs(ctx, func(mn, ha *control.IKESAInfo) string {
		l, _ := netip.ParseAddrPort(mn.Local)
		r, _ := netip.ParseAddrPort(ha.Remote)
		if l.Addr().Unmap() != to.CoA() || r.Addr().Unmap() != want {
			return fmt.Sprintf("IKE SA: MN local %s, HA remote %s; want %v and %v", mn.Local, ha.Remote, to.CoA(), want)
		}
		return ""
	})
	if err != nil {
		return fmt.Errorf("the IKE SA did not follow the MN (K flag): %w", err)
	}
	d.info("IKE SA followed the move (K flag, no IKE exchange): MN %s <-> HA %s, HA sees the MN at %s", mn.Local, mn.Remote, ha.Remote)
	return nil
}
