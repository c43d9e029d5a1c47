package demo

// The IKEv2 keying of the two-gateway demo, its default (--manual keeps
// the manual keys of netdemo/gateway.toml.tmpl): a random pre-shared key
// in a file of mode 0600 in the demo's directory (or, with --pubkey,
// certificates: gateways_certs_linux.go), one [[connection]] per
// gateway from netdemo/ike-gateway.toml.tmpl, A initiating at start
// (start_action = "start") and B responding; the demo then waits until
// `mipsec ike list --json` on both shows the same IKE SA with its Child SA
// installed (RFC 7296 §1.2: IKE_SA_INIT and IKE_AUTH create both).

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/netlab"
	"golang.org/x/sys/unix"
)

//go:embed netdemo/ike-gateway.toml.tmpl
var ndIKEConfigTemplate string

var ndIKETemplate = template.Must(template.New("ike-gateway").Parse(ndIKEConfigTemplate))

// The identities the gateways prove (ID_FQDN, RFC 7296 §3.5) and the name
// of their one Child SA.
const (
	ndIDA, ndIDB = "gw-a.example.org", "gw-b.example.org"
	ndChild      = "sites"
)

// ndCerts are the PEM files of the --pubkey variant: a CA and a
// certificate and key per gateway (gateways_certs_linux.go).
type ndCerts struct {
	CA, CertA, KeyA, CertB, KeyB string
}

// ndIKEConfig fills netdemo/ike-gateway.toml.tmpl.
type ndIKEConfig struct {
	netlab.GatewayConfig
	ForceEncap                bool   // connection encap: ESP (and IKE) in UDP 4500
	Auth                      string // "psk" or "pubkey"
	LocalID, RemoteID         string
	PSKFile                   string
	CertFile, KeyFile, CAFile string
	StartAction               string
}

// ndIKEConfigs returns the configs of gateways A (the initiator) and B,
// sharing the pre-shared key in pskFile (auth "psk") or trusting the CA of
// certs (auth "pubkey").
func ndIKEConfigs(dir, encap string, outerA, outerB netip.Addr, auth, pskFile string, certs *ndCerts) (a, b ndIKEConfig) {
	ga, gb := netlab.PairConfigs(dir, encap, outerA, outerB, netlab.PairKeys{})
	a = ndIKEConfig{GatewayConfig: ga, ForceEncap: encap == "udp", Auth: auth, LocalID: ndIDA, RemoteID: ndIDB, PSKFile: pskFile, StartAction: "start"}
	b = ndIKEConfig{GatewayConfig: gb, ForceEncap: encap == "udp", Auth: auth, LocalID: ndIDB, RemoteID: ndIDA, PSKFile: pskFile, StartAction: "none"}
	if certs != nil {
		a.CertFile, a.KeyFile, a.CAFile = certs.CertA, certs.KeyA, certs.CA
		b.CertFile, b.KeyFile, b.CAFile = certs.CertB, certs.KeyB, certs.CA
	}
	return a, b
}

// ndWritePSK writes a fresh random 32-byte pre-shared key, base64 in
// swanctl's "0s" notation (config/doc.go), to a new file of mode 0600 in
// dir and returns its path.
func ndWritePSK(dir string) (string, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "gateway-a-b.psk")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = fmt.Fprintf(f, "0s%s\n", base64.StdEncoding.EncodeToString(k[:]))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return path, err
}

// ndWriteIKEConfig writes gateway name's config into dir.
func ndWriteIKEConfig(dir, name string, cfg ndIKEConfig) (string, error) {
	var b bytes.Buffer
	if err := ndIKETemplate.Execute(&b, cfg); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "ike-gateway-"+strings.ToLower(name)+".toml")
	return path, os.WriteFile(path, b.Bytes(), 0o600)
}

// ndIKEList is `mipsec ike list --json` of the daemon named name at the
// control socket sock.
func ndIKEList(ctx context.Context, bin, sock, name string) ([]control.IKESAInfo, error) {
	out, err := netlab.Ctl(ctx, bin, sock, "ike", "list", "--json")
	if err != nil {
		return nil, err
	}
	var sas []control.IKESAInfo
	if err := json.Unmarshal(out, &sas); err != nil {
		return nil, fmt.Errorf("mipsec ike list --json of %s: %w", name, err)
	}
	return sas, nil
}

// ndEstablished returns the connection's IKE SA from sas if it is
// established with the child installed, else a description of what it
// still lacks.
func ndEstablished(sas []control.IKESAInfo, conn string) (*control.IKESAInfo, *control.IKEChildInfo, string) {
	for i := range sas {
		sa := &sas[i]
		if sa.Name != conn {
			continue
		}
		if sa.State != "established" {
			return nil, nil, fmt.Sprintf("IKE SA %s #%d is %s", conn, sa.ID, sa.State)
		}
		for j := range sa.Children {
			if c := &sa.Children[j]; c.Name == ndChild && c.State == "installed" {
				return sa, c, ""
			}
		}
		return nil, nil, fmt.Sprintf("IKE SA %s #%d has no installed child %q", conn, sa.ID, ndChild)
	}
	return nil, nil, fmt.Sprintf("no IKE SA %s yet", conn)
}

// ndIKESA is one gateway's view of the demo's IKE SA.
type ndIKESA struct {
	SA    control.IKESAInfo
	Child control.IKEChildInfo
}

// ndWaitIKE waits until both gateways list the same established IKE SA
// (the same SPI pair, A the initiator) with the child installed, its
// SPIs mirrored; after timeout the error says what was missing, with the
// tails of both gateways' logs.
func ndWaitIKE(ctx context.Context, bin string, a, b *netlab.Gateway, timeout time.Duration) (sa, sb ndIKESA, err error) {
	err = netlab.Poll(ctx, timeout, 200*time.Millisecond, func() (bool, string) {
		var why []string
		var got [2]*ndIKESA
		for i, g := range []*netlab.Gateway{a, b} {
			conn := "gateway-b"
			if g == b {
				conn = "gateway-a"
			}
			sas, err := ndIKEList(ctx, bin, g.Config.Socket, "gateway "+g.Name)
			if err != nil {
				why = append(why, fmt.Sprintf("gateway %s: %v", g.Name, err))
				continue
			}
			s, c, w := ndEstablished(sas, conn)
			if s == nil {
				why = append(why, fmt.Sprintf("gateway %s: %s", g.Name, w))
				continue
			}
			got[i] = &ndIKESA{SA: *s, Child: *c}
		}
		if len(why) > 0 {
			return false, strings.Join(why, "; ")
		}
		sa, sb = *got[0], *got[1]
		switch {
		case sa.SA.SPIi != sb.SA.SPIi || sa.SA.SPIr != sb.SA.SPIr:
			return false, fmt.Sprintf("the gateways list different IKE SAs: A %016x_i %016x_r, B %016x_i %016x_r",
				uint64(sa.SA.SPIi), uint64(sa.SA.SPIr), uint64(sb.SA.SPIi), uint64(sb.SA.SPIr))
		case !sa.SA.Initiator || sb.SA.Initiator:
			return false, "gateway A is not the initiator of the IKE SA"
		case sa.Child.SPIIn != sb.Child.SPIOut || sa.Child.SPIOut != sb.Child.SPIIn:
			return false, fmt.Sprintf("the child's SPIs do not mirror: A in %08x out %08x, B in %08x out %08x",
				uint32(sa.Child.SPIIn), uint32(sa.Child.SPIOut), uint32(sb.Child.SPIIn), uint32(sb.Child.SPIOut))
		}
		return true, ""
	})
	if err != nil {
		err = fmt.Errorf("no IKE SA between the gateways: %w\n--- last lines of gateway A's log\n%s--- last lines of gateway B's log\n%s",
			err, ndTail(a.Log.String(), 15), ndTail(b.Log.String(), 15))
	}
	return sa, sb, err
}

// ndTail is the last n lines of log, each ending in a line end.
func ndTail(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, "\n")
	if s == "" {
		return "(empty)\n"
	}
	return s + "\n"
}

// ndIKEFrame reports whether f, a frame netlab classified as Other, is an
// IKE message: UDP to or from port 500, or to or from port 4500 with the
// non-ESP marker (four zero bytes, RFC 3948 §2.2) in front of it.
func ndIKEFrame(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	ip := f[14:]
	var l4 []byte
	switch binary.BigEndian.Uint16(f[12:14]) {
	case unix.ETH_P_IP:
		if len(ip) < 20 || ip[9] != unix.IPPROTO_UDP || binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
			return false
		}
		l4 = ip[min(int(ip[0]&0xf)*4, len(ip)):]
	case unix.ETH_P_IPV6:
		if len(ip) < 40 || ip[6] != unix.IPPROTO_UDP {
			return false
		}
		l4 = ip[40:]
	default:
		return false
	}
	if len(l4) < 8 {
		return false
	}
	sport, dport := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	body := l4[8:]
	switch {
	case sport == 500 || dport == 500:
		return len(body) >= 28 // the IKE header (RFC 7296 §3.1)
	case sport == 4500 || dport == 4500:
		return len(body) >= 4+28 && binary.BigEndian.Uint32(body) == 0
	}
	return false
}

// ndKeepOther keeps the frames the capture cannot name (IKE among them).
func ndKeepOther(f netlab.Frame) bool { return f.Kind == netlab.Other }

// ndSplitIKE counts the IKE messages among the capture's kept frames and
// returns the capture's Other without them.
func ndSplitIKE(s netlab.Stats, kept []netlab.KeptFrame) (ike int, other map[string]int) {
	other = ndOther(s)
	for _, k := range kept {
		if !ndIKEFrame(k.Data) {
			continue
		}
		ike++
		if other[k.Desc]--; other[k.Desc] <= 0 {
			delete(other, k.Desc)
		}
	}
	return ike, other
}

// ndSPIsOnWire checks that the ESP the capture saw carried exactly the
// child's two SPIs.
func ndSPIsOnWire(s netlab.Stats, c control.IKEChildInfo) error {
	for spi := range s.SPIs() {
		if spi != uint32(c.SPIIn) && spi != uint32(c.SPIOut) {
			return fmt.Errorf("the capture shows ESP with SPI 0x%08x, not one of the child's (%08x, %08x)", spi, uint32(c.SPIIn), uint32(c.SPIOut))
		}
	}
	if len(s.SPIs()) == 0 {
		return errors.New("the capture shows no ESP")
	}
	return nil
}
