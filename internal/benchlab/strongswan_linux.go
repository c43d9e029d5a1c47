package benchlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mipsec/mipsec/internal/netlab"
)

// Paths of Debian's strongSwan packages (strongswan-charon,
// strongswan-swanctl, and libcharon-extra-plugins for the userspace ESP),
// the same that internal/charontest uses.
const (
	charonPath   = "/usr/lib/ipsec/charon"
	swanctlPath  = "/usr/sbin/swanctl"
	libipsecPath = "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so"
)

// swanMTU is the MTU kernel-libipsec gives ipsec0 (strongSwan 5.9).
const swanMTU = 1400

// swanPlugins is charon's load list: the crypto of
// aes128gcm16-prfsha256-curve25519 (openssl before gcm/aes, so that
// AES-GCM is OpenSSL's; kdf holds prf+ since strongSwan 5.9.6), then
// kernel-libipsec before kernel-netlink: the first kernel-ipsec backend
// wins, so ESP runs in charon's userspace on the TUN ipsec0 and
// kernel-netlink only does addresses and routes.
var swanPlugins = []string{
	"random", "nonce", "drbg", "kdf", "openssl", "aes", "sha1", "sha2", "hmac", "gcm", "curve25519",
	"kernel-libipsec", "kernel-netlink", "socket-default", "vici",
}

// StrongswanMissing returns nil when strongswan-libipsec can run (charon,
// its kernel-libipsec plugin, swanctl, nsenter and unshare are
// installed), else what is missing.
func StrongswanMissing() error {
	var errs []error
	for _, p := range []string{charonPath, libipsecPath, swanctlPath} {
		if _, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("needs %s (Debian: apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins)", p))
		}
	}
	for _, c := range []string{"nsenter", "unshare"} {
		if _, err := exec.LookPath(c); err != nil {
			errs = append(errs, fmt.Errorf("needs %s (Debian: apt-get install util-linux)", c))
		}
	}
	return errors.Join(errs...)
}

// swanEnd is one side of a swanTunnel.
type swanEnd struct {
	name, ns, dir string
	under, site   netip.Addr
	proc          *netlab.Process
	log           netlab.SyncBuffer
	siteAdded     bool
}

func (e *swanEnd) socket() string { return filepath.Join(e.dir, "vici") }

// swanctl runs swanctl against e's charon.
func (e *swanEnd) swanctl(ctx context.Context, args ...string) ([]byte, error) {
	args = append(args[:1:1], append([]string{"--uri", "unix://" + e.socket()}, args[1:]...)...)
	cmd := exec.CommandContext(ctx, swanctlPath, args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(e.dir, "strongswan.conf"), "SWANCTL_DIR="+filepath.Join(e.dir, "swanctl"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("charon %s: swanctl %s: %v: %s", e.name, strings.Join(args, " "), err, lastLines(string(out), 10))
	}
	return out, nil
}

// swanTunnel is strongSwan's userspace IPsec: a charon in each namespace
// with kernel-libipsec, PSK, IKE aes128gcm16-prfsha256-curve25519 and ESP
// aes128gcm16 in UDP 4500 (libipsec sends and receives ESP in UDP only,
// so both ends force encapsulation, RFC 3948). The inner addresses are a
// /32 on lo; charon routes the remote one into ipsec0 in table 220 with
// the local one as source, so iperf3 -B and ping take the tunnel.
// benchlab starts charon itself, the way internal/charontest does, and
// drives it with swanctl: charontest takes a testing.TB and links the
// testing package, which benchlab (part of the binary) must not.
type swanTunnel struct {
	l    *lab
	dir  string
	ends [2]*swanEnd
}

// swanctlConf is the swanctl.conf of one end: the connection "bench" from
// local to remote with the child "net" between the site addresses, and
// the shared key (hex, 0x...) for both identities.
func swanctlConf(localUnder, remoteUnder, localSite, remoteSite netip.Addr, psk string) string {
	return fmt.Sprintf(`connections {
	bench {
		version = 2
		local_addrs = %[1]s
		remote_addrs = %[2]s
		proposals = aes128gcm16-prfsha256-curve25519
		encap = yes
		mobike = no
		local {
			auth = psk
			id = %[1]s
		}
		remote {
			auth = psk
			id = %[2]s
		}
		children {
			net {
				local_ts = %[3]s/32
				remote_ts = %[4]s/32
				esp_proposals = aes128gcm16
				mode = tunnel
				start_action = none
			}
		}
	}
}
secrets {
	ike-bench {
		id-1 = %[1]s
		id-2 = %[2]s
		secret = %[5]s
	}
}
`, localUnder, remoteUnder, localSite, remoteSite, psk)
}

// swanConf is the strongswan.conf of one end: the plugins, the vici
// socket and a quiet log on stderr.
func swanConf(socket string) string {
	return fmt.Sprintf(`charon {
	load = %s
	filelog {
		stderr {
			default = 0
			ike = 1
			knl = 1
			cfg = 1
			time_format = %%H:%%M:%%S
			flush_line = yes
		}
	}
	plugins {
		vici {
			socket = unix://%s
		}
	}
}
`, strings.Join(swanPlugins, " "), socket)
}

func (s *swanTunnel) start(ctx context.Context) error {
	psk := randomHex(32)
	nss := [2]string{s.l.nsA, s.l.nsB}
	under := [2]netip.Addr{netlab.UnderlayA4.Addr(), netlab.UnderlayB4.Addr()}
	sites := [2]netip.Addr{netlab.SiteA4.Addr(), netlab.SiteB4.Addr()}
	for i, side := range []string{"A", "B"} {
		j := 1 - i
		e := &swanEnd{name: side, ns: nss[i], dir: filepath.Join(s.dir, "charon-"+strings.ToLower(side)), under: under[i], site: sites[i]}
		s.ends[i] = e
		if err := os.MkdirAll(filepath.Join(e.dir, "swanctl"), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(e.dir, "strongswan.conf"), []byte(swanConf(e.socket())), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(e.dir, "swanctl", "swanctl.conf"), []byte(swanctlConf(under[i], under[j], sites[i], sites[j], psk)), 0o600); err != nil {
			return err
		}
		if err := netlab.IP(ctx, "-n", e.ns, "addr", "add", e.site.String()+"/32", "dev", "lo"); err != nil {
			return err
		}
		e.siteAdded = true
		// charon's pid file (/run/charon.pid) is compiled in: a mount
		// namespace with a tmpfs over /run for each. nsenter, unshare and
		// sh exec each other, so the pid is charon's.
		cmd := exec.Command("nsenter", "--net=/run/netns/"+e.ns,
			"unshare", "--mount", "--propagation", "private", "--",
			"/bin/sh", "-c", `mount -t tmpfs -o mode=0755 mipsec-bench /run && exec "$0"`, charonPath)
		cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(e.dir, "strongswan.conf"))
		cmd.Stdout, cmd.Stderr = &e.log, &e.log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		p, err := netlab.Start(cmd, nil)
		if err != nil {
			return fmt.Errorf("charon: %w", err)
		}
		e.proc = p
		if err := p.WaitUntil(ctx, 10*time.Second, func() bool { _, err := os.Stat(e.socket()); return err == nil }); err != nil {
			return fmt.Errorf("charon %s in %s: no vici socket %s: %w", side, e.ns, e.socket(), err)
		}
		if _, err := e.swanctl(ctx, "--load-all", "--noprompt"); err != nil {
			return err
		}
	}
	if _, err := s.ends[0].swanctl(ctx, "--initiate", "--child", "net", "--timeout", "10"); err != nil {
		return err
	}
	// libipsec reads packets from ipsec0 into buffers of the MTU it
	// gave the TUN (1400): a larger MTU would cut packets, so the
	// tunnel MTU can only go down.
	if mtu := s.l.cfg.TunnelMTU; mtu < swanMTU {
		for _, e := range s.ends {
			if err := netlab.IP(ctx, "-n", e.ns, "link", "set", "ipsec0", "mtu", strconv.Itoa(mtu)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *swanTunnel) addrs() (netip.Addr, netip.Addr) {
	return netlab.SiteA4.Addr(), netlab.SiteB4.Addr()
}

func (s *swanTunnel) pids() []int {
	var p []int
	for _, e := range s.ends {
		if e != nil && e.proc != nil && e.proc.Running() {
			p = append(p, e.proc.Cmd.Process.Pid)
		}
	}
	return p
}

// stop stops both charons (SIGTERM: they delete the SAs and their routes;
// ipsec0 goes with the process) and removes what they leave in the
// namespaces, which the next systems share: the site address on lo and
// the routing rule to table 220.
func (s *swanTunnel) stop() {
	for _, e := range s.ends {
		if e == nil {
			continue
		}
		if e.proc != nil {
			e.proc.Stop(syscall.SIGTERM, 5*time.Second)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if e.siteAdded {
			netlab.IP(ctx, "-n", e.ns, "addr", "del", e.site.String()+"/32", "dev", "lo")
		}
		for range 4 {
			if netlab.IP(ctx, "-n", e.ns, "rule", "del", "table", "220") != nil {
				break
			}
		}
		netlab.IP(ctx, "-n", e.ns, "route", "flush", "table", "220")
		cancel()
	}
}

func (s *swanTunnel) logs() string {
	var b strings.Builder
	for _, e := range s.ends {
		if e != nil {
			fmt.Fprintf(&b, "\n--- charon %s (%s):\n%s", e.name, e.dir, lastLines(e.log.String(), 20))
		}
	}
	return b.String()
}

// swanSA is what verify needs of one CHILD_SA in `swanctl --list-sas
// --raw`.
type swanSA struct {
	state, mode, encr, encap string
	keySize                  int
	bytesIn, bytesOut        int64
}

// swanField matches key=value in swanctl's raw output (values without
// spaces or braces).
var swanField = regexp.MustCompile(`([a-z0-9-]+)=([^ {}]*)`)

// parseSwanSAs reads the CHILD_SAs of `swanctl --list-sas --raw`: a
// "list-sa event {IKE {key=value ... child-sas {CHILD {key=value ...}}}}"
// line per IKE SA; every section after "child-sas {" with an spi-in is a
// CHILD_SA. Anything else is skipped.
func parseSwanSAs(out string) []swanSA {
	var sas []swanSA
	for line := range strings.SplitSeq(out, "\n") {
		_, rest, ok := strings.Cut(line, "child-sas {")
		if !ok {
			continue
		}
		for _, sec := range strings.Split(rest, "}") {
			_, body, ok := strings.Cut(sec, "{")
			if !ok {
				continue
			}
			kv := map[string]string{}
			for _, m := range swanField.FindAllStringSubmatch(body, -1) {
				kv[m[1]] = m[2]
			}
			if kv["spi-in"] == "" {
				continue
			}
			sa := swanSA{state: kv["state"], mode: kv["mode"], encr: kv["encr-alg"], encap: kv["encap"]}
			sa.keySize, _ = strconv.Atoi(kv["encr-keysize"])
			sa.bytesIn, _ = strconv.ParseInt(kv["bytes-in"], 10, 64)
			sa.bytesOut, _ = strconv.ParseInt(kv["bytes-out"], 10, 64)
			sas = append(sas, sa)
		}
	}
	return sas
}

// swanCarried checks that sas are what strongswan-libipsec says (at least
// one, every one INSTALLED, TUNNEL, AES_GCM_16 with 128-bit keys, in UDP)
// and returns their outbound (out) or inbound byte counters summed.
func swanCarried(sas []swanSA, out bool) (int64, error) {
	if len(sas) == 0 {
		return 0, errors.New("no CHILD_SA")
	}
	var n int64
	for _, sa := range sas {
		if sa.state != "INSTALLED" || sa.mode != "TUNNEL" || sa.encr != "AES_GCM_16" || sa.keySize != 128 || sa.encap != "yes" {
			return 0, fmt.Errorf("CHILD_SA %s %s %s-%d encap=%q, want INSTALLED TUNNEL AES_GCM_16-128 in UDP", sa.state, sa.mode, sa.encr, sa.keySize, sa.encap)
		}
		if out {
			n += sa.bytesOut
		} else {
			n += sa.bytesIn
		}
	}
	return n, nil
}

// verify checks that the tests went through the tunnel as labelled:
// swanCarried on both ends, and A's outbound and B's inbound byte
// counters (inner packets, so more than the payload iperf3 counts) at
// least the bytes iperf3 moved.
func (s *swanTunnel) verify(ctx context.Context, moved int64) error {
	var got [2]int64
	for i, e := range s.ends {
		out, err := e.swanctl(ctx, "--list-sas", "--raw")
		if err != nil {
			return err
		}
		if got[i], err = swanCarried(parseSwanSAs(string(out)), i == 0); err != nil {
			return fmt.Errorf("charon %s: %w", e.name, err)
		}
	}
	if got[0] < moved || got[1] < moved {
		return fmt.Errorf("the CHILD_SAs carried %d bytes out of A, %d into B, less than the %d bytes iperf3 moved: traffic went around the tunnel", got[0], got[1], moved)
	}
	return nil
}

// strongswanVersion is swanctl's version line ("strongSwan swanctl
// 5.9.8"), which it prints before it fails to reach a daemon.
func strongswanVersion() string {
	out, _ := exec.Command(swanctlPath, "--version").CombinedOutput()
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "strongSwan ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
