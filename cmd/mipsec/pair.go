package main

// `mipsec pair -o DIR`: a matching pair of gateway configs, DIR/gateway-a.toml
// and DIR/gateway-b.toml, laid out like testdata/gateway-*.toml, with fresh
// random keys (one per SA) and SPIs. What it writes passes `mipsec check`,
// each file and the two together, before it is written.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/esp"
)

// The documentation addresses of testdata/gateway-a.toml and gateway-b.toml
// (RFC 5737): pair's defaults.
const (
	defaultAAddr = "198.51.100.1"
	defaultBAddr = "203.0.113.1"
	defaultASite = "192.0.2.0/25"
	defaultBSite = "192.0.2.128/25"
)

// The file names pair writes.
const (
	pairFileA = "gateway-a.toml"
	pairFileB = "gateway-b.toml"
)

const pairUsage = `usage: mipsec pair -o DIR [--alg NAME] [--a-addr IP --b-addr IP]
                  [--a-site PREFIX --b-site PREFIX] [--state-dir DIR] [--esn] [--force]

Write a matching pair of gateway configs, DIR/gateway-a.toml and
DIR/gateway-b.toml: one tunnel between gateway A (outer address --a-addr,
protecting --a-site) and gateway B (--b-addr, --b-site), an SA each way with
a fresh random key (crypto/rand; one key per SA, never shared) and a fresh
random SPI, the peer, the policies and the TUN, commented like
testdata/gateway-a.toml. Both files are checked (each, and that they mirror
each other) before they are written, with mode 0600: they hold the keys.
Existing files are not replaced without --force.

The defaults are the documentation addresses of testdata/gateway-*.toml;
give your own. A site may be IPv6 over an IPv4 underlay (or the reverse),
but both sites, and both outer addresses, are one family.

Flags:
`

// pairSpec is what a pair is made of.
type pairSpec struct {
	Alg          esp.Algorithm
	AAddr, BAddr netip.Addr   // outer (underlay) addresses
	ASite, BSite netip.Prefix // the protected sites
	StateDir     string       // base: each gateway gets StateDir/gateway-a or -b
	ESN          bool
}

func pairCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	outDir := fs.String("o", "", "`directory` to write gateway-a.toml and gateway-b.toml into (required; created mode 0700 if missing)")
	algName := fs.String("alg", defaultPairAlg, "ESP `algorithm` of both SAs ("+strings.Join(esp.AlgorithmNames(), ", ")+")")
	aAddr := fs.String("a-addr", defaultAAddr, "gateway A's outer (underlay) `address`")
	bAddr := fs.String("b-addr", defaultBAddr, "gateway B's outer (underlay) `address`")
	aSite := fs.String("a-site", defaultASite, "the `prefix` behind gateway A")
	bSite := fs.String("b-site", defaultBSite, "the `prefix` behind gateway B")
	stateDir := fs.String("state-dir", config.DefaultStateDir, "absolute base `directory` of the sequence-number state on the gateways: A uses DIR/gateway-a, B DIR/gateway-b; it must be persistent storage")
	esn := fs.Bool("esn", false, "64-bit extended sequence numbers (RFC 4303 §2.2.1) on both SAs")
	force := fs.Bool("force", false, "replace existing files")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlagUsage(stdout, pairUsage, fs)
			return 0
		}
		printFlagUsage(stderr, pairUsage, fs)
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mipsec pair: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() != 0 {
		return usageErr("unexpected argument %q (the output directory is -o DIR)", fs.Arg(0))
	}
	if *outDir == "" {
		return usageErr("-o DIR is required: the directory to write %s and %s into", pairFileA, pairFileB)
	}
	spec, err := parsePairSpec(*algName, *aAddr, *bAddr, *aSite, *bSite, *stateDir, *esn)
	if err != nil {
		return usageErr("%v", err)
	}
	pathA, pathB := filepath.Join(*outDir, pairFileA), filepath.Join(*outDir, pairFileB)
	dataA, dataB, err := makePair(spec, pathA, pathB)
	if err != nil {
		fmt.Fprintf(stderr, "mipsec pair: %v\n", err)
		return 1
	}
	if err := writePair(*outDir, pathA, pathB, dataA, dataB, *force); err != nil {
		fmt.Fprintf(stderr, "mipsec pair: %v\n", err)
		return 1
	}
	sA, sB := pairSides(spec)
	for _, w := range []struct {
		path string
		s    pairSide
	}{{pathA, sA}, {pathB, sB}} {
		fmt.Fprintf(stdout, "wrote %s (gateway %s: %s, site %s, %s)\n", w.path, w.s.Letter, w.s.Addr, w.s.Site, spec.Alg)
	}
	if !spec.Alg.Encrypts() {
		fmt.Fprintf(stdout, "note: %s protects integrity only: the traffic is not encrypted\n", spec.Alg)
	}
	fmt.Fprintf(stdout, `
Both files hold the keys (mode 0600). Move %s to gateway B over a
secure channel only, and keep no copy of it where it does not run.
State (keep on persistent storage): %s on A, %s on B.

Next:
  mipsec check %s %s   # each file, and that they mirror each other
  mipsec check -c %s && mipsec run -c %s   # on gateway A, as root
  mipsec check -c %s && mipsec run -c %s   # on gateway B, as root
`, pairFileB, sA.StateDir, sB.StateDir, pathA, pathB, pathA, pathA, pairFileB, pairFileB)
	return 0
}

// parsePairSpec reads pair's flags.
func parsePairSpec(algName, aAddr, bAddr, aSite, bSite, stateDir string, esn bool) (pairSpec, error) {
	var s pairSpec
	var err error
	if s.Alg, err = esp.ParseAlgorithm(algName); err != nil {
		return s, fmt.Errorf("--alg: %q is not an algorithm; want one of %s", algName, strings.Join(esp.AlgorithmNames(), ", "))
	}
	addr := func(flag, v string) (netip.Addr, error) {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return a, fmt.Errorf("--%s: %q is not an IP address", flag, v)
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			return a, fmt.Errorf("--%s: %s cannot be a gateway's outer address", flag, a)
		}
		return a, nil
	}
	site := func(flag, v string) (netip.Prefix, error) {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return p, fmt.Errorf("--%s: %q is not a prefix, e.g. %q", flag, v, defaultASite)
		}
		if p != p.Masked() {
			return p, fmt.Errorf("--%s: %s has host bits set; want %s", flag, p, p.Masked())
		}
		return p, nil
	}
	if s.AAddr, err = addr("a-addr", aAddr); err != nil {
		return s, err
	}
	if s.BAddr, err = addr("b-addr", bAddr); err != nil {
		return s, err
	}
	if s.ASite, err = site("a-site", aSite); err != nil {
		return s, err
	}
	if s.BSite, err = site("b-site", bSite); err != nil {
		return s, err
	}
	switch {
	case s.AAddr == s.BAddr:
		return s, fmt.Errorf("--a-addr and --b-addr are both %s; the two gateways need their own outer addresses", s.AAddr)
	case s.AAddr.Is4() != s.BAddr.Is4():
		return s, fmt.Errorf("--a-addr %s and --b-addr %s: the outer addresses of one tunnel are one family", s.AAddr, s.BAddr)
	case s.ASite.Addr().Is4() != s.BSite.Addr().Is4():
		return s, fmt.Errorf("--a-site %s and --b-site %s: the sites of one SA are one family (RFC 4301 §4.4.1.1)", s.ASite, s.BSite)
	case s.ASite.Overlaps(s.BSite):
		return s, fmt.Errorf("--a-site %s and --b-site %s overlap; each gateway protects its own prefix", s.ASite, s.BSite)
	}
	if !filepath.IsAbs(stateDir) {
		return s, fmt.Errorf("--state-dir: %q is relative; want an absolute directory on the gateways, such as %s", stateDir, config.DefaultStateDir)
	}
	s.StateDir = filepath.Clean(stateDir)
	s.ESN = esn
	return s, nil
}

// pairSide is one gateway of a pair, from its own side.
type pairSide struct {
	Letter, Name     string // "A", "gateway-a"
	PeerLetter, Peer string
	File, PeerFile   string
	Addr, PeerAddr   netip.Addr
	Site, PeerSite   netip.Prefix
	StateDir         string
	// Out is the SA it seals with (the peer opens with it), In the one
	// it opens with.
	Out, In pairSA
}

// pairSA is one direction's SA: its SPI (chosen by its receiver) and keys.
type pairSA struct {
	Name      string // "a-to-b"
	SPI       uint32
	Enc, Auth []byte
}

// pairSides describes both gateways of spec, without SPIs and keys.
func pairSides(spec pairSpec) (a, b pairSide) {
	a = pairSide{Letter: "A", Name: "gateway-a", PeerLetter: "B", Peer: "gateway-b", File: pairFileA, PeerFile: pairFileB,
		Addr: spec.AAddr, PeerAddr: spec.BAddr, Site: spec.ASite, PeerSite: spec.BSite,
		StateDir: filepath.Join(spec.StateDir, "gateway-a")}
	b = pairSide{Letter: "B", Name: "gateway-b", PeerLetter: "A", Peer: "gateway-a", File: pairFileB, PeerFile: pairFileA,
		Addr: spec.BAddr, PeerAddr: spec.AAddr, Site: spec.BSite, PeerSite: spec.ASite,
		StateDir: filepath.Join(spec.StateDir, "gateway-b")}
	return a, b
}

// makePair draws the SPIs and keys and renders both files; each must pass
// config.Parse (as pathA and pathB) and the two must mirror each other.
func makePair(spec pairSpec, pathA, pathB string) (dataA, dataB []byte, err error) {
	a, b := pairSides(spec)
	ab := pairSA{Name: "a-to-b"}
	ba := pairSA{Name: "b-to-a"}
	ab.SPI = randomSPI()
	for ba.SPI = randomSPI(); ba.SPI == ab.SPI; ba.SPI = randomSPI() {
	}
	ab.Enc, ab.Auth = newKeys(spec.Alg)
	ba.Enc, ba.Auth = newKeys(spec.Alg)
	// 16 random bytes or more never repeat, but check rather than trust.
	if len(ab.Enc) > 0 && bytes.Equal(ab.Enc, ba.Enc) || len(ab.Auth) > 0 && bytes.Equal(ab.Auth, ba.Auth) {
		return nil, nil, errors.New("the random source gave the same key twice; not writing anything")
	}
	a.Out, a.In = ab, ba
	b.Out, b.In = ba, ab
	dataA, dataB = renderGateway(spec, a), renderGateway(spec, b)
	cfgA, err := config.Parse(pathA, dataA)
	if err != nil {
		return nil, nil, fmt.Errorf("internal error: the generated %s does not validate:\n%v", pathA, err)
	}
	cfgB, err := config.Parse(pathB, dataB)
	if err != nil {
		return nil, nil, fmt.Errorf("internal error: the generated %s does not validate:\n%v", pathB, err)
	}
	if _, problems := crossCheck(cfgA, cfgB); len(problems) > 0 {
		return nil, nil, fmt.Errorf("internal error: the generated files do not mirror each other:\n%s", strings.Join(problems, "\n"))
	}
	return dataA, dataB, nil
}

// randomSPI draws an SPI from crypto/rand outside the IANA-reserved
// 0..255 (RFC 4303 §2.1).
func randomSPI() uint32 {
	for {
		if spi := binary.BigEndian.Uint32(randomBytes(4)); spi >= 0x100 {
			return spi
		}
	}
}

// tunAddress is the gateway's own address on its TUN: the first host of
// its site, as in testdata/gateway-a.toml (the site itself for a /32 or
// /128).
func tunAddress(site netip.Prefix) netip.Prefix {
	a := site.Addr().Next()
	if !a.IsValid() || !site.Contains(a) {
		a = site.Addr()
	}
	return netip.PrefixFrom(a, site.Bits())
}

// algDescription names alg's transforms and key layout for a comment.
func algDescription(alg esp.Algorithm) string {
	switch alg {
	case esp.AES128GCM16:
		return "AES-128-GCM (RFC 4106): 16-byte key + 4-byte salt"
	case esp.AES192GCM16:
		return "AES-192-GCM (RFC 4106): 24-byte key + 4-byte salt"
	case esp.AES256GCM16:
		return "AES-256-GCM (RFC 4106): 32-byte key + 4-byte salt"
	case esp.ChaCha20Poly1305:
		return "ChaCha20-Poly1305 (RFC 7634): 32-byte key + 4-byte salt"
	case esp.AES128GMAC:
		return "AES-128-GMAC, integrity only (RFC 4543): 16-byte key + 4-byte salt"
	case esp.AES256GMAC:
		return "AES-256-GMAC, integrity only (RFC 4543): 32-byte key + 4-byte salt"
	case esp.AES128CBCSHA256:
		return "AES-128-CBC + HMAC-SHA-256-128 (RFC 3602, RFC 4868): 16-byte AES key, 32-byte HMAC key"
	case esp.AES256CBCSHA256:
		return "AES-256-CBC + HMAC-SHA-256-128 (RFC 3602, RFC 4868): 32-byte AES key, 32-byte HMAC key"
	case esp.AES128CBCSHA1:
		return "AES-128-CBC + HMAC-SHA1-96 (RFC 3602, RFC 2404): 16-byte AES key, 20-byte HMAC key"
	case esp.AES256CBCSHA1:
		return "AES-256-CBC + HMAC-SHA1-96 (RFC 3602, RFC 2404): 32-byte AES key, 20-byte HMAC key"
	case esp.NULLSHA256:
		return "NULL + HMAC-SHA-256-128, integrity only (RFC 2410, RFC 4868): 32-byte HMAC key"
	}
	return alg.String()
}

// renderGateway writes gateway s's config file.
func renderGateway(spec pairSpec, s pairSide) []byte {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# mipsec gateway %s, written by `mipsec pair` with its peer %s.\n", s.Letter, s.PeerFile)
	p("# Site %s behind it, outer address %s.\n#\n", s.Site, s.Addr)
	// The picture has A on the left in both files.
	p("#   %s  [A] %s ==== ESP ==== %s [B]  %s\n#\n", spec.ASite, spec.AAddr, spec.BAddr, spec.BSite)
	p("# The two files mirror each other: the SA that %s seals with is the one\n", s.Letter)
	p("# %s opens with (same SPI, same key), and back; local and remote swap.\n", s.PeerLetter)
	p("# Check this file with `mipsec check -c %s`, both with\n", s.File)
	p("# `mipsec check %s %s` (each file, and that they still\n", pairFileA, pairFileB)
	p("# mirror each other). Run it on gateway %s with `mipsec run -c %s`\n", s.Letter, s.File)
	p("# (root: it creates the TUN).\n#\n")
	p("# THIS FILE HOLDS SECRET KEYS: keep it mode 0600, readable by root only,\n")
	p("# and copy it only over a secure channel. The keys are fresh random\n")
	p("# (crypto/rand), one per SA: never give one of them to another SA or file\n")
	p("# (two SAs with one counter-mode key reuse nonces; mipsec check refuses it).\n")
	p("# Every SPI is chosen by the receiver (RFC 4303 §2.1), here at random:\n")
	p("# %s receives under %s, %s under %s.\n", s.Letter, spiHex(s.In.SPI), s.PeerLetter, spiHex(s.Out.SPI))
	p("# To rekey, run `mipsec pair` again and replace both files;\n")
	p("# `mipsec genkey --alg %s` prints single keys.\n\n", spec.Alg)

	p("# The outbound sequence-number reservations live here (README, \"Manual\n")
	p("# keys without IV reuse\"): it must be on persistent storage, not tmpfs.\n")
	if spec.Alg.CounterMode() {
		p("# %s takes its IV from the sequence number: losing this directory\n", spec.Alg)
		p("# while these keys stay in use reuses IVs. Restore it with the keys, or rekey.\n")
	}
	p("state_dir = %q\n\n", s.StateDir)

	p("[log]\nlevel = \"info\"       # debug, info, warn, error\nformat = \"console\"   # console or json\n\n")
	p("[control]\nsocket = %q\n\n", "/run/mipsec/"+s.Name+".sock")

	p("[tun]\nname = %q\nmtu = %d\n", "mipsec-"+strings.ToLower(s.Letter), config.DefaultTUNMTU)
	p("%-34s # this gateway's own address in its site\n", fmt.Sprintf("addresses = [%q]", tunAddress(s.Site).String()))
	p("%-34s # the peer's site, through the tunnel\n\n", fmt.Sprintf("routes = [%q]", s.PeerSite.String()))

	p("[underlay]\nlocal = [%q]\n", s.Addr.String())
	p("encap = \"raw\"        # raw (IP protocol 50), udp (RFC 3948, port 4500) or both\n\n")

	p("[[peer]]\nname = %q\n", s.Peer)
	p("%-34s # \"ip\" for raw ESP, \"ip:port\" for UDP\n", fmt.Sprintf("endpoint = %q", s.PeerAddr.String()))
	p("encap = \"raw\"\nout_spis = [%s]\nin_spis = [%s]\n\n", spiHex(s.Out.SPI), spiHex(s.In.SPI))

	p("# --- %s <-> %s ---\n# %s\n", s.Site, s.PeerSite, algDescription(spec.Alg))
	sels := fmt.Sprintf("selectors = [{ local = %q, remote = %q }]\n", s.Site.String(), s.PeerSite.String())
	sa := func(sa pairSA, dir string) {
		p("\n[[sa]]\nname = %q\nspi = %s\ndir = %q\nmode = \"tunnel\"\n", sa.Name, spiHex(sa.SPI), dir)
		p("%-34s # our outer address\n", fmt.Sprintf("local = %q", s.Addr.String()))
		p("%-34s # the peer's\n", fmt.Sprintf("remote = %q", s.PeerAddr.String()))
		p("algorithm = %q\n", spec.Alg.String())
		if len(sa.Enc) > 0 {
			p("enc_key = %q\n", hexKey(sa.Enc))
		}
		if len(sa.Auth) > 0 {
			p("auth_key = %q\n", hexKey(sa.Auth))
		}
		if spec.ESN {
			p("esn = true                         # 64-bit sequence numbers (RFC 4303 §2.2.1): both sides\n")
		}
		if dir == "in" {
			p("replay_window = 1024\n")
		}
		p("%s", sels)
	}
	sa(s.Out, "out")
	sa(s.In, "in")

	p("\n# --- Policies, in order: first match wins (RFC 4301 §4.4.1) ---------------\n\n")
	p("[[policy]]\nname = \"out\"\ndir = \"out\"\naction = \"protect\"\nspi = %s\n%s\n", spiHex(s.Out.SPI), sels)
	p("[[policy]]\nname = \"out-default\"\ndir = \"out\"\naction = \"discard\"                 # RFC 4301 §5: what is not listed is dropped\nselectors = [{}]\n\n")
	p("# Inbound: cleartext that should have come under ESP is dropped.\n")
	p("[[policy]]\nname = \"in\"\ndir = \"in\"\naction = \"protect\"\n%s\n", sels)
	p("[[policy]]\nname = \"in-default\"\ndir = \"in\"\naction = \"discard\"\nselectors = [{}]\n")
	return []byte(b.String())
}

// spiHex writes an SPI as the testdata files do: 0x0000a001.
func spiHex(spi uint32) string { return fmt.Sprintf("0x%08x", spi) }

// writePair writes both files with mode 0600, or neither: an existing file
// is refused unless force, and a first file is removed again if the second
// cannot be written.
func writePair(dir, pathA, pathB string, dataA, dataB []byte, force bool) error {
	if !force {
		for _, p := range []string{pathA, pathB} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists; not replacing it (--force does, keys and all)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeKeyFile(pathA, dataA, force); err != nil {
		return err
	}
	if err := writeKeyFile(pathB, dataB, force); err != nil {
		if !force {
			os.Remove(pathA)
		}
		return err
	}
	return nil
}

// writeKeyFile writes data to path with mode 0600: a new file (O_EXCL), or
// with replace a temporary file renamed over path.
func writeKeyFile(path string, data []byte, replace bool) error {
	var f *os.File
	var err error
	if replace {
		f, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	} else {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && replace {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
