package main

// `mipsec check -c FILE`: everything `mipsec run` would refuse, without
// running: the TOML, every field, the key files, the SAD and SPD built in
// memory and the sequence-number records in the state directory. Errors
// exit 1; warnings (manual keys on a counter-mode algorithm with a state
// directory that will not survive a reboot, a policy list without a final
// catch-all DISCARD) exit 0.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/internal/netcfg"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
)

// DefaultConfigPath is the configuration `run` and `check` read without -c.
const DefaultConfigPath = "/etc/mipsec/mipsec.toml"

// Filesystem magic numbers (statfs(2) f_type) of RAM-backed filesystems.
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// stateProbe looks at this machine: the state directory and the
// forwarding sysctls; tests replace it.
type stateProbe struct {
	// statfs returns the filesystem type (statfs(2) f_type) of path.
	statfs func(path string) (int64, error)
	// writable returns nil if the daemon may create files in path.
	writable func(path string) error
	// forwarding reports whether the kernel forwards a's address family.
	forwarding func(a netip.Addr) bool
}

var hostProbe = stateProbe{
	statfs: func(path string) (int64, error) {
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			return 0, err
		}
		return int64(st.Type), nil
	},
	writable:   func(path string) error { return unix.Access(path, unix.W_OK) },
	forwarding: netcfg.Forwarding,
}

func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths configPaths
	fs.Var(&paths, "c", "configuration `file` (default "+DefaultConfigPath+"); twice: check both and that they mirror each other")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mipsec check [-c FILE]\n       mipsec check A.toml B.toml  (or -c A.toml -c B.toml)\n\nValidate a configuration without running it. Given two, validate each and\ncheck that they mirror each other: the same SPIs, keys and algorithms,\nlocal and remote swapped.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	return checkFiles(paths, fs.Args(), stdout, stderr, hostProbe, fs.Usage)
}

// checkConfig validates the file at path, printing every error (exit 1) or
// OK and the warnings (exit 0).
func checkConfig(path string, stdout, stderr io.Writer, probe stateProbe) int {
	cfg, err := config.Load(path)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, e := range ce {
				fmt.Fprintln(stderr, e.Error())
			}
			fmt.Fprintf(stderr, "%s: %d error%s\n", path, len(ce), plural(len(ce)))
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return 1
	}
	if errs := checkStateRecords(cfg); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "%s: %d error%s\n", path, len(errs), plural(len(errs)))
		return 1
	}
	for _, w := range append(configWarnings(cfg, probe), forwardingWarnings(cfg, probe)...) {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	if cfg.Underlay.FWMark != 0 {
		// Handled: said once, not as a warning.
		for _, n := range routeLoopWarnings(cfg) {
			fmt.Fprintln(stdout, "note: "+n)
		}
	}
	role := ""
	if cfg.Role != node.RoleGateway {
		role = node.RoleName(cfg.Role) + ", "
	}
	conns := ""
	if n := len(cfg.IKE.Connections); n > 0 {
		conns = fmt.Sprintf(", %d IKE connection%s", n, plural(n))
	}
	fmt.Fprintf(stdout, "%s: OK (%s%d SA%s, %d polic%s, %d peer%s%s)\n", path, role, len(cfg.SAs), plural(len(cfg.SAs)),
		len(cfg.Policies), map[bool]string{true: "y", false: "ies"}[len(cfg.Policies) == 1], len(cfg.Peers), plural(len(cfg.Peers)), conns)
	return 0
}

// forwardingWarnings: a home agent forwards the traffic of bound home
// addresses between the home link and the TUN, so each home prefix whose
// family this machine does not forward is a warning (not an error: check
// may run elsewhere). `mipsec run` says the same at start (node), so this
// is not among configWarnings, which run logs too.
func forwardingWarnings(cfg *config.File, probe stateProbe) []string {
	if cfg.Role != node.RoleHA {
		return nil
	}
	var out []string
	for _, p := range []struct {
		key    string
		prefix netip.Prefix
	}{{"mobility.home_prefix", cfg.Mobility.HomePrefix}, {"mobility.home_prefix_v4", cfg.Mobility.HomePrefixV4}} {
		if !p.prefix.IsValid() || probe.forwarding(p.prefix.Addr()) {
			continue
		}
		sysctl := netcfg.ForwardingSysctl(p.prefix.Addr())
		out = append(out, fmt.Sprintf("%s %s: forwarding of its family is off on this machine (%s = 0), and the home agent "+
			"forwards its home addresses' traffic between the home link and the TUN: on the home agent, run `sysctl -w %s=1` "+
			"before `mipsec run` (a warning only: check may run on another machine than the home agent)", p.key, p.prefix, sysctl, sysctl))
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// checkStateRecords reads the sequence-number record of every outbound SA
// that has one: a corrupt record stops `mipsec run`, so it is an error here.
// The state directory is not created.
func checkStateRecords(cfg *config.File) []string {
	if fi, err := os.Stat(cfg.StateDir); err != nil || !fi.IsDir() {
		return nil
	}
	st, err := seqstore.Open(cfg.StateDir, seqstore.Options{})
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, s := range cfg.SAs {
		if s.Dir != sad.Outbound {
			continue
		}
		rec, _, err := st.Load(node.KeyFingerprint(s.Params), node.LegacyFingerprints(s.Params)...)
		r := rec.Reserved
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: %v", s.Path, err))
		case r > seqstore.MaxSeq(s.Params.ESN):
			out = append(out, fmt.Sprintf("%s: the state record says %d sequence numbers were reserved, beyond the 32-bit space: was esn turned off? rekey the SA", s.Path, r))
		case r == seqstore.MaxSeq(s.Params.ESN):
			out = append(out, fmt.Sprintf("%s: the sequence space of this key is used up (RFC 4303 §3.3.3), under whatever SPI; give the SA a new key", s.Path))
		}
	}
	return out
}

// configWarnings lists what is legal but risky.
func configWarnings(cfg *config.File, probe stateProbe) []string {
	var out []string
	for _, w := range cfg.Warnings { // found while reading: file:line and path
		out = append(out, w.Error())
	}
	if sas := cfg.CounterModeSAs(); len(sas) > 0 {
		w, missing := stateDirProblem(cfg.StateDir, probe)
		if missing != "" {
			out = append(out, fmt.Sprintf("state_dir %s does not exist yet; mipsec run creates it (mode 0700) under %s", cfg.StateDir, missing))
		}
		if w != "" {
			out = append(out, fmt.Sprintf(`state_dir %s %s, and %s use%s a counter-mode algorithm with manual keys.
  AES-GCM, AES-GMAC and ChaCha20-Poly1305 use the ESP sequence number as their
  IV, so with static keys the counter must never restart (RFC 8221 §3, RFC 4106
  §3.1, RFC 4303 §3.3.3). mipsec keeps a reserved high-water mark of each
  outbound counter in state_dir; if that state is lost while the keys stay the
  same, the next start reuses IVs under the same key, which reveals the XOR of
  plaintexts and lets an attacker forge packets. Put state_dir on persistent
  storage, or use an AES-CBC+HMAC algorithm (aes128-sha256), or change the keys
  whenever the state is lost.`, cfg.StateDir, w, strings.Join(sas, ", "), pluralVerb(len(sas))))
		}
	}
	out = append(out, tunnelWarnings(cfg)...)
	out = append(out, dfWarnings(cfg)...)
	if cfg.Underlay.FWMark == 0 {
		out = append(out, routeLoopWarnings(cfg)...)
	}
	for _, sa := range cfg.SAs {
		if h := sa.Lifetime.Hard; !h.IsZero() {
			out = append(out, fmt.Sprintf("%s (%s): a hard lifetime (%s) removes the SA when reached, and nothing rekeys manual SAs: its traffic then stops until a new SA replaces it (RFC 4301 §4.4.2.1)",
				sa.Path, node.SAName(sa.Dir, sa.Params.SPI), limitsString(h)))
		}
	}
	if w := packetSocketWarning(cfg); w != "" {
		out = append(out, w)
	}
	if len(cfg.Policies) == 0 && len(cfg.IKE.Connections) == 0 {
		out = append(out, "no [[policy]]: every packet is discarded (RFC 4301 §5)")
	} else {
		for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
			var last *int
			for i, p := range cfg.Policies {
				if p.Dir == d {
					last = &i
				}
			}
			if last != nil && !config.IsCatchAllDiscard(cfg.Policies[*last]) {
				out = append(out, fmt.Sprintf("the %s policies do not end with a catch-all discard (selectors = [{}]); unmatched traffic is discarded anyway (RFC 4301 §5), but saying so keeps the list explicit", d))
			}
		}
	}
	return out
}

func pluralVerb(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

// stateDirProblem says why dir would not keep the reservations across a
// reboot, or "" when it will; missing is the existing ancestor under which
// run would create dir, "" when dir exists.
func stateDirProblem(dir string, probe stateProbe) (problem, missing string) {
	// The nearest existing directory decides the filesystem.
	at := dir
	missing = ""
	for {
		fi, err := os.Stat(at)
		if err == nil {
			if !fi.IsDir() {
				return "is not a directory", ""
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Sprintf("cannot be examined (%v)", err), ""
		}
		missing = at
		parent := filepath.Dir(at)
		if parent == at {
			break
		}
		at = parent
	}
	if missing != "" {
		missing = at
	}
	var probs []string
	if t, err := probe.statfs(at); err != nil {
		probs = append(probs, fmt.Sprintf("is on a filesystem that cannot be examined (%v)", err))
	} else if t == tmpfsMagic || t == ramfsMagic {
		name := "tmpfs"
		if t == ramfsMagic {
			name = "ramfs"
		}
		probs = append(probs, "is on "+name+" (memory: lost at every reboot)")
	}
	if err := probe.writable(at); err != nil {
		probs = append(probs, fmt.Sprintf("is not writable (%s: %v)", at, err))
	}
	return strings.Join(probs, " and "), missing
}

// tunnelWarnings compares the SAs' tunnel endpoints with the underlay and
// the peers: a mismatch works (the dataplane sends to the peer's endpoint
// from the underlay's socket) but usually means a copy-and-paste mistake.
func tunnelWarnings(cfg *config.File) []string {
	var out []string
	u := cfg.Underlay
	for _, s := range cfg.SAs {
		p := s.Params
		if p.Mode != esp.Tunnel {
			continue
		}
		local, remote := p.TunnelSrc, p.TunnelDst
		if s.Dir == sad.Inbound {
			local, remote = remote, local
		}
		if own := u.Local4; local.Is4() && own.IsValid() && own != local || local.Is6() && u.Local6.IsValid() && u.Local6 != local {
			out = append(out, fmt.Sprintf("%s: local tunnel address %s is not the underlay's (underlay.local)", s.Path, local))
		}
		for _, peer := range cfg.Peers {
			spis := peer.OutSPIs
			if s.Dir == sad.Inbound {
				spis = peer.InSPIs
			}
			if slices.Contains(spis, p.SPI) && peer.Endpoint.Addr.Addr() != remote && !peer.Roaming {
				out = append(out, fmt.Sprintf("%s: remote tunnel address %s is not the endpoint %s of its peer %q", s.Path, remote, peer.Endpoint.Addr.Addr(), peer.Name))
			}
		}
	}
	return out
}

// routeLoopWarnings says when a TUN route covers an address the underlay
// sends ESP or IKE to (a peer's endpoint, an outbound SA's tunnel remote,
// the home agent, an IKE connection's peer): without policy routing (underlay.fwmark = "off") the kernel
// routes our own ESP back into the TUN, a warning; with underlay.fwmark
// (the default) the daemon keeps it out (node.UnderlayConfig.FWMark), and
// check says so in a note.
func routeLoopWarnings(cfg *config.File) []string {
	type target struct {
		addr netip.Addr
		what string
	}
	var ts []target
	if cfg.Role == node.RoleMN {
		for _, a := range []netip.Addr{cfg.Mobility.HAAddress, cfg.Mobility.HAAddressV4} {
			if a.IsValid() {
				ts = append(ts, target{a.Unmap(), "the home agent (mobility.ha_address)"})
			}
		}
	}
	for _, p := range cfg.Peers {
		if a := p.Endpoint.Addr.Addr().Unmap(); a.IsValid() {
			ts = append(ts, target{a, fmt.Sprintf("the endpoint of peer %q", p.Name)})
		}
	}
	for _, c := range cfg.IKE.Connections {
		for _, p := range c.RemoteAddrs {
			if p.IsSingleIP() {
				ts = append(ts, target{p.Addr().Unmap(), fmt.Sprintf("the peer of IKE connection %q", c.Name)})
			}
		}
	}
	for _, s := range cfg.SAs {
		if s.Dir == sad.Outbound && s.Params.Mode == esp.Tunnel && s.Params.TunnelDst.IsValid() {
			ts = append(ts, target{s.Params.TunnelDst.Unmap(), "the tunnel remote of " + s.Path})
		}
	}
	var out []string
	seen := map[netip.Addr]bool{}
	for _, t := range ts {
		if seen[t.addr] {
			continue
		}
		for _, r := range cfg.TUN.Routes {
			if !r.Contains(t.addr) {
				continue
			}
			seen[t.addr] = true
			u := cfg.Underlay
			if u.FWMark != 0 {
				out = append(out, fmt.Sprintf("tun.routes: %s covers %s, %s: the underlay's ESP to it must not enter the TUN; "+
					"mipsec run marks the underlay sockets (underlay.fwmark = %#x) and puts the TUN routes into tables %d..%d behind "+
					"`ip rule not fwmark %#x` and `suppress_prefixlength` rules, so it leaves by the main table's route "+
					"(which must exist: a default route or one via the underlay link)",
					r, t.addr, t.what, u.FWMark, u.RouteTable, u.RouteTable+128, u.FWMark))
			} else {
				out = append(out, fmt.Sprintf("tun.routes: %s covers %s, %s, and underlay.fwmark = \"off\": the underlay's ESP to it "+
					"is routed back into the TUN and loops (the dataplane drops it, drop reason \"loop\"); remove underlay.fwmark = \"off\" "+
					"(policy routing around the TUN, as wg-quick does) or add a more specific route to %s via the underlay link",
					r, t.addr, t.what, t.addr))
			}
			break
		}
	}
	return out
}

// packetSocketWarning says when underlay.packet_socket is on but a gateway
// has no peer that uses raw ESP, the only traffic the AF_PACKET path
// carries ("" otherwise). The home agent and the mobile node have no
// [[peer]]: their raw ESP goes to care-of addresses.
func packetSocketWarning(cfg *config.File) string {
	if !cfg.Underlay.PacketSocket || cfg.Role != node.RoleGateway || len(cfg.Peers) == 0 {
		return ""
	}
	for _, p := range cfg.Peers {
		if p.Endpoint.Encap == endpoint.EncapRaw {
			return ""
		}
	}
	return `underlay.packet_socket = true, but every peer uses encap = "udp": the AF_PACKET path carries only raw ESP, so it sends nothing`
}

// limitsString writes lifetime limits as the config does ("1h", "2000000 bytes").
func limitsString(l sad.Limits) string {
	var parts []string
	if l.Time > 0 {
		parts = append(parts, l.Time.String())
	}
	if l.Bytes > 0 {
		parts = append(parts, fmt.Sprintf("%d bytes", l.Bytes))
	}
	if l.Packets > 0 {
		parts = append(parts, fmt.Sprintf("%d packets", l.Packets))
	}
	return strings.Join(parts, ", ")
}
