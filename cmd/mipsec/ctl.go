package main

// The client subcommands that talk to a running daemon over the control
// socket (control.go has the protocol): status, stats, peers, sa, policy,
// capture; ctl_mobility.go and ctl_ike.go have the others.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/sad"
)

// ctlFlags is a FlagSet with the flags every client has. --socket defaults
// to $MIPSEC_SOCKET, else config.DefaultControlSocket.
func ctlFlags(name string, stderr io.Writer) (*flag.FlagSet, *ctlSocket) {
	fs := flag.NewFlagSet("mipsec "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(fs, name)
	s := &ctlSocket{}
	s.sock = fs.String("socket", "", "control socket `path` (default: the [control] socket of -c FILE, else $MIPSEC_SOCKET, else "+config.DefaultControlSocket+")")
	s.cfg = fs.String("config", "", "use the control socket of configuration `file` (what `mipsec run -c FILE` listens on)")
	if name != "capture" { // capture's -c is its packet count
		fs.StringVar(s.cfg, "c", "", "same as --config")
	}
	return fs, s
}

// ctlSocket is a client's choice of control socket (resolveSocket).
type ctlSocket struct{ sock, cfg *string }

// client is the control client for the flags given.
func (s *ctlSocket) client() control.Client {
	path, err := resolveSocket(*s.sock, *s.cfg)
	return control.Client{Path: path, Err: err}
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// ctlFail prints err and returns the exit status for it.
func ctlFail(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "mipsec %s: %v\n", name, err)
	return 1
}

func printJSON(w io.Writer, raw any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(raw); err != nil {
		return 1
	}
	return 0
}

// ctlStatus is `mipsec status`.
func ctlStatus(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the daemon's JSON answer")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var st control.StatusInfo
	var raw json.RawMessage
	if err := sock.client().Call("status", nil, &raw); err != nil {
		return ctlFail(stderr, "status", err)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return ctlFail(stderr, "status", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "daemon\trunning (pid %d, %s)\n", st.PID, st.Version)
	for _, f := range [][2]string{{"role", st.Role}, {"config", st.Config}, {"control", st.Control},
		{"tun", st.TUN}, {"state_dir", st.StateDir}} {
		if f[1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", f[0], f[1])
		}
	}
	if !st.Started.IsZero() {
		fmt.Fprintf(tw, "up\t%s (since %s)\n", st.Uptime, st.Started.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "SAs\t%d out, %d in\n", st.SAsOut, st.SAsIn)
	fmt.Fprintf(tw, "policies\t%d out, %d in\n", st.PoliciesOut, st.PoliciesIn)
	fmt.Fprintf(tw, "peers\t%d\n", st.Peers)
	if r := st.Runtime; r != nil {
		fmt.Fprintf(tw, "runtime\t%d goroutines, heap %.1f MiB live, %.1f MiB mapped, %d fds\n",
			r.Goroutines, float64(r.HeapLiveBytes)/(1<<20), float64(r.TotalBytes-r.HeapReleasedBytes)/(1<<20), r.FDs)
	}
	tw.Flush()
	return 0
}

// ctlStats is `mipsec stats`.
func ctlStats(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("stats", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var raw json.RawMessage
	if err := sock.client().Call("stats", nil, &raw); err != nil {
		return ctlFail(stderr, "stats", err)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var st control.StatsInfo
	if err := json.Unmarshal(raw, &st); err != nil {
		return ctlFail(stderr, "stats", err)
	}
	writeStats(stdout, &st)
	return 0
}

func writeStats(w io.Writer, st *control.StatsInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIR\tSPI\tNAME\tPACKETS\tBYTES\tSEQ\tDROPS")
	for _, s := range st.SAs {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%d\t%d\t%s\n", s.Dir, s.SPI, orDash(s.Name), s.Packets, s.Bytes, s.Seq, formatCounts(s.Drops))
	}
	tw.Flush()
	dp := st.Dataplane
	fmt.Fprintf(w, "\ndataplane: out %d pkts / %d B read, %d sent; in %d received, %d delivered; keepalives %d, roams %d; injected %d, consumed %d\n",
		dp.OutPackets, dp.OutBytes, dp.SentPackets, dp.InPackets, dp.DeliveredPackets, dp.Keepalives, dp.Roams, dp.Injected, dp.Consumed)
	fmt.Fprintf(w, "dataplane drops: %s\n", formatCounts(dp.Drops))
	if st.Underlay != nil {
		fmt.Fprintf(w, "underlay: %s\n", formatCounts(st.Underlay))
	}
	for _, s := range st.SPD {
		fmt.Fprintf(w, "spd %s: no_match %d, unparsable %d, unprotected %d, no_sa %d\n", s.Dir, s.NoMatch, s.Unparsable, s.Unprotected, s.NoSA)
	}
	if ha := st.HA; ha != nil {
		fmt.Fprintf(w, "ha: bindings %d, BUs accepted %d, bad care-of address %d; BAs sent %d, failed %d; NAT %d, home link errors %d; signaling received %d, MPS answered %d, DR-1 failed %d\n",
			ha.Bindings, ha.BUAccepted, ha.BadCoA, ha.BAsSent, ha.BAsFailed, ha.NATDetected, ha.HomeLinkErrors, ha.Received, ha.MPSAnswered, ha.DR1Failed)
		fmt.Fprintf(w, "ha dropped before processing: rate_limited=%d queue_full=%d too_big=%d\n", ha.RateLimited, ha.QueueFull, ha.TooBig)
		fmt.Fprintf(w, "ha rejected: %s\n", formatCounts(ha.BURejected))
	}
	if st.MN != nil {
		fmt.Fprintf(w, "mn: %s\n", formatAllCounts(mnCounterList(*st.MN)))
	}
	if st.IKE != nil {
		writeIKEStats(w, st.IKE)
	}
}

// formatAllCounts prints "a=1 b=0" in the order given, zeros included.
func formatAllCounts(cs []namedCount) string {
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", c.name, c.n)
	}
	return b.String()
}

// namedCount is one counter and its snake_case name.
type namedCount struct {
	name string
	n    uint64
}

// mnCounterList is every field of c under its JSON name, in field order:
// a counter added to mip6.MNCounters shows in `mipsec stats` and in the
// metrics without a change here.
func mnCounterList(c mip6.MNCounters) []namedCount {
	v := reflect.ValueOf(c)
	out := make([]namedCount, 0, v.NumField())
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || f.Type.Kind() != reflect.Uint64 {
			continue
		}
		out = append(out, namedCount{name, v.Field(i).Uint()})
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatCounts prints "icv=3 replay=1" sorted by name, or "-".
func formatCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// ctlPeers is `mipsec peers`.
func ctlPeers(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("peers", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var raw json.RawMessage
	if err := sock.client().Call("peers", nil, &raw); err != nil {
		return ctlFail(stderr, "peers", err)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var ps []control.PeerInfo
	if err := json.Unmarshal(raw, &ps); err != nil {
		return ctlFail(stderr, "peers", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENDPOINT\tENCAP\tLAST HEARD\tROAMS\tLAST ROAM\tKEEPALIVES")
	now := time.Now()
	for _, p := range ps {
		last := "-"
		if !p.LastRoam.IsZero() {
			last = p.LastRoam.Format(time.RFC3339)
		}
		// wg show's "latest handshake": the last authenticated packet.
		heard := "never"
		if !p.LastReceived.IsZero() {
			heard = max(0, now.Sub(p.LastReceived)).Truncate(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\n", p.Name, p.Endpoint, p.Encap, heard, p.Roams, last, p.KeepalivesSent)
	}
	tw.Flush()
	return 0
}

// ctlSA is `mipsec sa list|add|update|del`.

func ctlSAList(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("sa list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	ws := fs.Bool("wireshark", false, "print the SAs, keys included, as lines of Wireshark's esp_sa file (~/.config/wireshark/esp_sa)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	c := sock.client()
	if *ws {
		var sas []control.WiresharkSA
		if err := c.Call("sa.wireshark", nil, &sas); err != nil {
			return ctlFail(stderr, "sa list", err)
		}
		control.WriteWireshark(stdout, stderr, sas)
		return 0
	}
	var raw json.RawMessage
	if err := c.Call("sa.list", nil, &raw); err != nil {
		return ctlFail(stderr, "sa list", err)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var sas []control.SAInfo
	if err := json.Unmarshal(raw, &sas); err != nil {
		return ctlFail(stderr, "sa list", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIR\tSPI\tNAME\tMODE\tALGORITHM\tTUNNEL\tSEQ\tPACKETS\tBYTES\tDROPS\tSELECTORS")
	for _, s := range sas {
		tunnel := "-"
		if s.Local != "" {
			tunnel = s.Local + " -> " + s.Remote
			if s.Dir == "in" {
				tunnel = s.Remote + " -> " + s.Local
			}
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", s.Dir, s.SPI, orDash(s.Name), s.Mode, s.Algorithm, tunnel,
			s.Seq, s.Stats.Packets, s.Stats.Bytes, formatCounts(s.Stats.Drops), strings.Join(s.Selectors, "; "))
	}
	tw.Flush()
	return 0
}

// spiFlag parses SPIs in decimal or 0x hex.
type spiFlag uint32

func (f *spiFlag) String() string { return fmt.Sprintf("0x%08x", uint32(*f)) }
func (f *spiFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return fmt.Errorf("SPI %q: decimal or 0x hex, 32 bits", s)
	}
	*f = spiFlag(v)
	return nil
}

// selectorFlags are the flags of one selector set.
type selectorFlags struct {
	local, remote, proto, lport, rport *string
}

func addSelectorFlags(fs *flag.FlagSet) selectorFlags {
	return selectorFlags{
		local:  fs.String("local", "any", "selector: local (protected) `addresses`: any, an address, a prefix or from-to"),
		remote: fs.String("remote", "any", "selector: remote `addresses`"),
		proto:  fs.String("proto", "any", "selector: `protocol` number or name (tcp, udp, icmp, ipv6-icmp, mh)"),
		lport:  fs.String("lport", "any", "selector: local `port`s: any, opaque, 80, 1000-2000"),
		rport:  fs.String("rport", "any", "selector: remote `port`s"),
	}
}

func (f selectorFlags) table() control.SelectorSpec {
	t := control.SelectorSpec{Local: *f.local, Remote: *f.remote}
	if *f.proto != "any" {
		t.Proto = *f.proto
	}
	if *f.lport != "any" {
		t.LocalPort = *f.lport
	}
	if *f.rport != "any" {
		t.RemotePort = *f.rport
	}
	return t
}

func (f selectorFlags) set(visited map[string]bool) bool {
	return visited["local"] || visited["remote"] || visited["proto"] || visited["lport"] || visited["rport"]
}

// flagNames turns the key paths of an SA or policy error ("sa.local: ...")
// into the flags that set them ("--src: ..."): the user typed flags.
func flagNames(msg string, what string, dir string) string {
	src, dst := "--src", "--dst"
	if dir == "in" {
		src, dst = dst, src // inbound: local is the destination
	}
	for _, r := range [][2]string{
		{".selectors[0].local_port:", "--lport:"}, {".selectors[0].remote_port:", "--rport:"},
		{".selectors[0].local:", "--local:"}, {".selectors[0].remote:", "--remote:"},
		{".selectors[0].proto:", "--proto:"}, {".selectors[0]:", "selector:"}, {".selectors:", "selector:"},
		{".local:", src + ":"}, {".remote:", dst + ":"}, {".enc_key:", "--enc-key:"}, {".auth_key:", "--auth-key:"},
		{".algorithm:", "--alg:"}, {".replay_window:", "--replay-window:"}, {".spi:", "--spi:"}, {".dir:", "--dir:"},
		{".mode:", "--mode:"}, {".esn:", "--esn:"}, {".no_replay:", "--no-replay:"}, {".action:", "--action:"}, {".name:", "--name:"},
	} {
		msg = strings.ReplaceAll(msg, what+r[0], r[1])
	}
	return msg
}

// ctlSAChange is `mipsec sa add` and `mipsec sa update`. Update starts
// from the SA as the daemon has it (sa.get) and changes only the flags
// given; without --enc-key / --auth-key the SA keeps its keys.
func ctlSAChange(what string, args []string, stdout, stderr io.Writer) int {
	name := "sa " + what
	fs, sock := ctlFlags(name, stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mipsec %s [flags] | -f FILE\n\n", name)
		if what == "add" {
			fmt.Fprintln(stderr, "Add an SA to the running daemon. Its key must not be the key of another SA (counter-mode")
			fmt.Fprintln(stderr, "suites never share a key; an outbound key serves one SA), and an outbound key continues")
			fmt.Fprintln(stderr, "above every sequence number it used before.")
		} else {
			fmt.Fprintln(stderr, "Replace an SA of the running daemon (--dir and --spi name it). Only the flags given")
			fmt.Fprintln(stderr, "change; without --enc-key / --auth-key the SA keeps its keys and its sequence numbers.")
		}
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	file := fs.String("f", "", "read the SA(s) from `FILE`: [[sa]] tables as in the config file, or a JSON object or array")
	var spi spiFlag
	saName := fs.String("name", "", "SA name")
	dir := fs.String("dir", "", "direction: in or out")
	fs.Var(&spi, "spi", "SPI (decimal or 0x hex)")
	mode := fs.String("mode", "tunnel", "tunnel or transport")
	alg := fs.String("alg", "", "algorithm ("+strings.Join(esp.AlgorithmNames(), ", ")+")")
	encKey := fs.String("enc-key", "", "encryption key in hex (AEAD: key||salt)")
	authKey := fs.String("auth-key", "", "integrity key in hex")
	src := fs.String("src", "", "tunnel mode: outer source address (the sender)")
	dst := fs.String("dst", "", "tunnel mode: outer destination address")
	esn := fs.Bool("esn", false, "extended sequence numbers")
	window := fs.Int("replay-window", 0, "inbound anti-replay window in packets (default 1024)")
	sel := addSelectorFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mipsec %s: unexpected arguments %q\n", name, fs.Args())
		return 2
	}
	visited := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { visited[f.Name] = true })
	c := sock.client()
	var specs []control.SASpec
	if *file != "" {
		var err error
		if specs, err = loadSASpecs(*file); err != nil {
			return ctlFail(stderr, name, err)
		}
	} else {
		var t control.SASpec
		if what == "update" {
			if !visited["dir"] || !visited["spi"] {
				fmt.Fprintf(stderr, "mipsec %s: --dir and --spi name the SA to update\n", name)
				return 2
			}
			if err := c.Call("sa.get", control.SARef{Dir: *dir, SPI: control.SPI(spi)}, &t); err != nil {
				return ctlFail(stderr, name, err)
			}
		}
		if what == "add" || visited["name"] {
			t.Name = *saName
		}
		t.Dir, t.SPI = *dir, int64(spi)
		if what == "add" || visited["mode"] {
			t.Mode = *mode
		}
		if what == "add" || visited["alg"] {
			t.Algorithm = *alg
		}
		if what == "add" || visited["enc-key"] || visited["auth-key"] {
			t.EncKey, t.AuthKey = *encKey, *authKey
		}
		// local is our outer address: the source of an outbound SA, the
		// destination of an inbound one.
		localFlag, remoteFlag := "src", "dst"
		if *dir == "in" {
			localFlag, remoteFlag = "dst", "src"
		}
		flagVal := map[string]*string{"src": src, "dst": dst}
		if what == "add" || visited[localFlag] {
			t.Local = *flagVal[localFlag]
		}
		if what == "add" || visited[remoteFlag] {
			t.Remote = *flagVal[remoteFlag]
		}
		if what == "add" || visited["esn"] {
			t.ESN = *esn
		}
		if visited["replay-window"] {
			w := int64(*window)
			t.ReplayWindow = &w
		}
		if what == "add" || sel.set(visited) {
			t.Selectors = []control.SelectorSpec{sel.table()}
		}
		// Validate here, for messages that name the flags, before dialing
		// (an update's keys are the daemon's: it validates those).
		if what == "add" {
			if _, err := config.ParseSA("sa", &t); err != nil {
				fmt.Fprintf(stderr, "mipsec %s: %s\n", name, flagNames(err.Error(), "sa", *dir))
				return 2
			}
		}
		specs = []control.SASpec{t}
	}
	for _, s := range specs {
		var ref control.SARef
		if err := c.Call("sa."+what, s, &ref); err != nil {
			msg := err.Error()
			if *file == "" {
				msg = flagNames(msg, "sa", *dir)
			}
			return ctlFail(stderr, name, fmt.Errorf("SA %s %v: %s", s.Dir, s.SPI, msg))
		}
		fmt.Fprintf(stdout, "sa %s %s %v: ok\n", what, ref.Dir, ref.SPI)
	}
	return 0
}

// loadSASpecs reads SAs from a file: TOML [[sa]] tables exactly as in the
// config file (validated by the config's own code, with its field-by-field,
// line-numbered errors; key files are read here, relative to the file), or
// JSON in the control protocol's form (an object or an array).
func loadSASpecs(path string) ([]control.SASpec, error) {
	data, err := readInput(path)
	if err != nil {
		return nil, err
	}
	if isJSON(data) {
		var specs []control.SASpec
		trim := bytes.TrimSpace(data)
		if trim[0] == '[' {
			err = control.DecodeStrict(trim, &specs)
		} else {
			var s control.SASpec
			err = control.DecodeStrict(trim, &s)
			specs = []control.SASpec{s}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for i := range specs {
			if _, err := config.ParseSA(fmt.Sprintf("[%d]", i), &specs[i]); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
		return specs, nil
	}
	sas, _, err := config.ParseSnippet(path, data)
	if err != nil {
		return nil, err
	}
	if len(sas) == 0 {
		return nil, fmt.Errorf("%s: no [[sa]] table in it", path)
	}
	specs := make([]control.SASpec, 0, len(sas))
	for _, c := range sas {
		specs = append(specs, control.SpecFromConfig(c))
	}
	return specs, nil
}

// isJSON tells a JSON snippet ({...} or [...]) from TOML ([[sa]] or keys).
func isJSON(data []byte) bool {
	t := bytes.TrimSpace(data)
	return len(t) > 0 && (t[0] == '{' || (t[0] == '[' && !bytes.HasPrefix(t, []byte("[["))))
}

func readInput(path string) ([]byte, error) { return config.ReadInput(path) }

func ctlSADel(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("sa del", stderr)
	dir := fs.String("dir", "", "direction: in or out")
	var spi spiFlag
	fs.Var(&spi, "spi", "SPI (decimal or 0x hex)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	// Also accept `mipsec sa del in 0x1001`.
	if len(rest) == 2 && *dir == "" && spi == 0 {
		*dir = rest[0]
		if err := spi.Set(rest[1]); err != nil {
			fmt.Fprintf(stderr, "mipsec sa del: %v\n", err)
			return 2
		}
	} else if len(rest) != 0 {
		fmt.Fprintf(stderr, "mipsec sa del: unexpected arguments %q\n", rest)
		return 2
	}
	if _, err := control.ParseDir(*dir); err != nil || spi == 0 {
		fmt.Fprintln(stderr, "usage: mipsec sa del --dir in|out --spi SPI   (or: mipsec sa del in|out SPI)")
		return 2
	}
	if err := sock.client().Call("sa.del", control.SARef{Dir: *dir, SPI: control.SPI(spi)}, nil); err != nil {
		return ctlFail(stderr, "sa del", err)
	}
	fmt.Fprintf(stdout, "sa del %s 0x%08x: ok\n", *dir, uint32(spi))
	return 0
}

// ctlPolicy is `mipsec policy list|add|del`.

func ctlPolicyList(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("policy list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	dir := fs.String("dir", "", "only this direction (in or out)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var raw json.RawMessage
	if err := sock.client().Call("policy.list", control.DirArgs{Dir: *dir}, &raw); err != nil {
		return ctlFail(stderr, "policy list", err)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var ps []control.PolicyInfo
	if err := json.Unmarshal(raw, &ps); err != nil {
		return ctlFail(stderr, "policy list", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIR\t#\tNAME\tACTION\tSPI\tHITS\tSELECTORS")
	for _, p := range ps {
		spi := "-"
		if p.SPI != 0 {
			spi = p.SPI.String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", p.Dir, p.Index, orDash(p.Name), p.Action, spi, p.Hits, strings.Join(p.Selectors, "; "))
	}
	tw.Flush()
	return 0
}

func ctlPolicyAdd(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("policy add", stderr)
	file := fs.String("f", "", "read the policy from `FILE`: one [[policy]] table as in the config file, or a JSON object")
	var spec control.PolicySpec
	var spi spiFlag
	fs.StringVar(&spec.Name, "name", "", "policy name (unique)")
	fs.StringVar(&spec.Dir, "dir", "", "direction: in or out")
	fs.StringVar(&spec.Action, "action", "", "protect, bypass or discard")
	fs.Var(&spi, "spi", "outbound PROTECT: the SA's SPI")
	index := fs.Int("index", -1, "insert at this position of the direction's list (-1: append)")
	sel := addSelectorFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *file != "" {
		data, err := readInput(*file)
		if err != nil {
			return ctlFail(stderr, "policy add", err)
		}
		spec = control.PolicySpec{}
		if isJSON(data) {
			if err := control.DecodeStrict(bytes.TrimSpace(data), &spec); err != nil {
				return ctlFail(stderr, "policy add", fmt.Errorf("%s: %w", *file, err))
			}
		} else {
			_, ps, err := config.ParseSnippet(*file, data)
			if err != nil {
				return ctlFail(stderr, "policy add", err)
			}
			if len(ps) != 1 {
				return ctlFail(stderr, "policy add", fmt.Errorf("%s: want exactly one [[policy]] table, found %d", *file, len(ps)))
			}
			spec = control.SpecFromPolicy(ps[0])
		}
	} else {
		if spi != 0 {
			spec.SPI = int64(spi)
		}
		spec.Selectors = []control.SelectorSpec{sel.table()}
	}
	if *index >= 0 && spec.Index == nil {
		spec.Index = index
	}
	// The SAs are the daemon's: it checks that a protect policy's SA
	// exists; everything else is checked here, in the flags' names.
	if _, err := config.ParsePolicy("policy", &spec.PolicyTable, func(sad.Direction, uint32) bool { return true }); err != nil {
		fmt.Fprintf(stderr, "mipsec policy add: %s\n", flagNames(err.Error(), "policy", spec.Dir))
		return 2
	}
	if err := sock.client().Call("policy.add", spec, nil); err != nil {
		return ctlFail(stderr, "policy add", err)
	}
	fmt.Fprintf(stdout, "policy add %s: ok\n", spec.Name)
	return 0
}

func ctlPolicyDel(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("policy del", stderr)
	name := fs.String("name", "", "policy name")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if *name == "" && len(rest) == 1 {
		*name = rest[0]
	} else if len(rest) != 0 {
		*name = ""
	}
	if *name == "" {
		fmt.Fprintln(stderr, "usage: mipsec policy del NAME")
		return 2
	}
	if err := sock.client().Call("policy.del", control.NameArgs{Name: *name}, nil); err != nil {
		return ctlFail(stderr, "policy del", err)
	}
	fmt.Fprintf(stdout, "policy del %s: ok\n", *name)
	return 0
}

// ctlCapture is `mipsec capture -w FILE.pcap`.
func ctlCapture(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("capture", stderr)
	file := fs.String("w", "", "write the pcap to `FILE` (\"-\": stdout)")
	inner := fs.Bool("inner", false, "capture cleartext packets at the TUN")
	outer := fs.Bool("outer", false, "capture ESP packets at the underlay")
	both := fs.Bool("both", false, "capture both (the default)")
	count := fs.Int("c", 0, "stop after `COUNT` packets (0: no limit)")
	dur := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *file == "" || fs.NArg() > 0 || *count < 0 || *dur < 0 {
		fmt.Fprintln(stderr, "usage: mipsec capture -w FILE.pcap [--inner|--outer|--both] [-c COUNT] [--duration D]")
		return 2
	}
	if *both {
		*inner, *outer = true, true
	}
	ca := control.CaptureArgs{Inner: *inner, Outer: *outer, Count: *count}
	if *dur > 0 {
		ca.Duration = dur.String()
	}
	var w io.Writer = stdout
	if *file != "-" {
		f, err := os.OpenFile(*file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return ctlFail(stderr, "capture", err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()

	conn, err := sock.client().Dial()
	if err != nil {
		return ctlFail(stderr, "capture", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(control.CallTimeout))
	br := bufio.NewReader(conn)
	if err := control.SendRequest(conn, "capture", ca); err != nil {
		return ctlFail(stderr, "capture", err)
	}
	if _, err := control.ReadResponse(br); err != nil {
		return ctlFail(stderr, "capture", err)
	}
	conn.SetDeadline(time.Time{})
	// Ctrl-C ends the capture cleanly: closing the connection ends the
	// stream, and the file keeps every whole packet received.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sig:
			conn.Close()
		case <-done:
		}
	}()
	n, err := control.CaptureStream(br, bw, *count)
	if err != nil {
		return ctlFail(stderr, "capture", err)
	}
	if err := bw.Flush(); err != nil {
		return ctlFail(stderr, "capture", err)
	}
	if *file != "-" {
		fmt.Fprintf(stderr, "mipsec capture: %d packets written to %s\n", n, *file)
	}
	return 0
}
