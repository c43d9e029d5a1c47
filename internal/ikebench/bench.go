//go:build linux

package ikebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/internal/benchlab"
	"github.com/mipsec/mipsec/internal/charontest"
	"github.com/mipsec/mipsec/internal/netlab"
)

// Responders Run knows.
const (
	Mipsec       = "mipsec"        // `mipsec run` (node, TUN, SAD/SPD, state dir)
	Charon       = "charon"        // strongSwan's charon, kernel-libipsec
	MipsecInproc = "mipsec-inproc" // an ike.Daemon in this process, no-op kernel
)

// The lab's documentation addresses (RFC 5737): the veth 192.0.2.0/24,
// the initiators' sites 198.51.100.K/32 (one each), the responder's site
// 203.0.113.0/24.
var (
	responderAddr = netip.MustParseAddr("192.0.2.1")
	loadAddr      = netip.MustParseAddr("192.0.2.2")
	firstSource   = netip.MustParseAddr("192.0.2.10")
)

const (
	linkPrefix   = 24
	respSite     = "203.0.113.0/24"
	respSiteAddr = "203.0.113.1/32" // on lo: charon routes into ipsec0 with it as source
	loadSites    = "198.51.100.0/24"
	respID       = "responder.bench"
	// MaxInitiators bounds Options.Initiators: one source address and one
	// site /32 each.
	MaxInitiators = 240
)

// Options choose what Run measures.
type Options struct {
	// Responders in the order each concurrency runs them (alternating):
	// Mipsec, Charon, MipsecInproc. Default: Mipsec, Charon.
	Responders []string
	// Concurrency is the list of closed-loop worker counts; default 1, 8, 32.
	Concurrency []int
	// Duration of each measured case (default 10 s) after Warmup (default
	// 1 s, not counted) against a freshly started responder.
	Duration, Warmup time.Duration
	// Initiators is the size of the initiator pool, each with its own
	// source address (default 200, at most MaxInitiators): consecutive
	// setups come from different addresses, as from road warriors, so
	// that ike's per-source IKE_SA_INIT limit (20/s, ike/daemon.go) does
	// not cap mipsec.
	Initiators int
	// MipsecBin is the mipsec binary for Mipsec (required for it).
	MipsecBin string
	// Dir holds configs, logs and the state dir (required).
	Dir string
	// StateDir is mipsec's state_dir (sequence-number reservations, which
	// are fsynced per outbound SA); default Dir/state.
	StateDir string
	// CPUProfile, if set, is where the MipsecInproc cases write a CPU
	// profile; the responder's goroutines carry the label
	// role=responder (go tool pprof -tagfocus role=responder).
	CPUProfile string
	// Log gets progress lines; nil: none.
	Log io.Writer
}

func (o *Options) defaults() error {
	if len(o.Responders) == 0 {
		o.Responders = []string{Mipsec, Charon}
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{1, 8, 32}
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Initiators == 0 {
		o.Initiators = 200
	}
	if o.Dir == "" {
		return errors.New("ikebench: Options.Dir is empty")
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(o.Dir, "state")
	}
	for _, c := range o.Concurrency {
		if c < 1 || c > o.Initiators {
			return fmt.Errorf("ikebench: concurrency %d: want 1..%d (Initiators)", c, o.Initiators)
		}
	}
	if o.Initiators < 1 || o.Initiators > MaxInitiators {
		return fmt.Errorf("ikebench: %d initiators: want 1..%d", o.Initiators, MaxInitiators)
	}
	for _, r := range o.Responders {
		switch r {
		case Mipsec:
			if o.MipsecBin == "" {
				return errors.New("ikebench: Options.MipsecBin is empty")
			}
		case Charon, MipsecInproc:
		default:
			return fmt.Errorf("ikebench: unknown responder %q", r)
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Case is one responder at one concurrency.
type Case struct {
	Responder   string `json:"responder"`
	Concurrency int    `json:"concurrency"`
	// Setups completed and Failures (Initiate's errors: refusals,
	// timeouts after the initiators' retransmissions); Errors holds the
	// first few.
	Setups   int      `json:"setups"`
	Failures int      `json:"failures"`
	Errors   []string `json:"errors,omitempty"`
	// TeardownFailures counts failed Terminates (not setups).
	TeardownFailures int `json:"teardown_failures"`
	// Rate is completed setups per second of the closed loop: setup and
	// teardown of each IKE SA, over ElapsedS (until the last worker
	// stopped).
	Rate     float64 `json:"setups_per_s"`
	ElapsedS float64 `json:"elapsed_s"`
	// Setup is Initiate's latency (IKE_SA_INIT + IKE_AUTH with the child
	// installed on both ends); Teardown is Terminate's (the Delete and
	// its answer), outside Setup.
	Setup    Latency `json:"setup_ms"`
	Teardown Latency `json:"teardown_ms"`
	// ResponderCPUS is the responder's CPU time (user+system) during the
	// measured part; CPUPerSetupMS that divided by Setups. Zero for
	// MipsecInproc (it shares this process).
	ResponderCPUS float64 `json:"responder_cpu_s"`
	CPUPerSetupMS float64 `json:"cpu_per_setup_ms"`
	// ResponderAuths are the IKE_AUTH exchanges the responder counted
	// during the measured part (its own Stats; -1 for charon), which
	// should equal Setups; ResponderRefusals its failure counters
	// (ike.Stats.Failures: cookies, rate limits, ...) that moved.
	ResponderAuths    int64             `json:"responder_ike_auths"`
	ResponderRefusals map[string]uint64 `json:"responder_refusals,omitempty"`
	// Retransmits are the initiators' retransmissions during the case.
	Retransmits uint64 `json:"initiator_retransmits"`
	// LoadAvg is /proc/loadavg's 1-minute figure after the case.
	LoadAvg float64 `json:"loadavg_1m"`
}

// Report is one run.
type Report struct {
	Started     time.Time  `json:"started"`
	IKEProposal string     `json:"ike_proposal"`
	ESPProposal string     `json:"esp_proposal"`
	DurationS   float64    `json:"duration_s"`
	WarmupS     float64    `json:"warmup_s"`
	Initiators  int        `json:"initiators"`
	CPUs        int        `json:"cpus"`
	LoadBefore  [3]float64 `json:"loadavg_before"`
	LoadAfter   [3]float64 `json:"loadavg_after"`
	Cases       []Case     `json:"cases"`
	Notes       []string   `json:"notes"`
}

// The proposals of both ends (issue 12).
const (
	ikeProposal = "aes128gcm16-prfsha256-curve25519"
	espProposal = "aes128gcm16"
)

// charonSettings are strongswan.conf keys for the charon responder, over
// charontest's: cookie_threshold as ike's DefaultCookieThreshold (charon's
// own is 30), the thread pool at charon's default (16).
var charonSettings = map[string]string{
	"cookie_threshold": fmt.Sprint(ike.DefaultCookieThreshold),
	"threads":          "16",
}

// charonQuiet silences charon's log as mipsec's runs at "warn": a log
// line per SA would cost either responder.
var charonQuiet = map[string]int{"default": -1, "ike": -1, "cfg": -1, "chd": -1, "knl": -1, "net": -1, "enc": -1, "mgr": -1, "job": -1, "lib": -1}

// Run builds the lab (two namespaces and a veth; the load in this
// process) and measures every responder at every concurrency, the
// responders alternating within each concurrency. t owns the namespaces
// and charon (charontest); the caller has checked root and charon.
func Run(t testing.TB, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	psk := []byte("ikebench-psk-0123456789-abcdef") // test key, >= 20 bytes (config warns below)
	rep := &Report{
		Started: time.Now().UTC(), IKEProposal: ikeProposal, ESPProposal: espProposal,
		DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(), Initiators: o.Initiators,
		CPUs: runtime.NumCPU(), LoadBefore: loadAvg(),
	}
	l, err := newLab(t, o.Initiators)
	if err != nil {
		return nil, err
	}
	p, err := newPool(loadConfig{
		ns: l.nsL, sources: l.sources, responder: responderAddr, psk: psk, respID: respID,
		ikeProposal: ikeProposal, espProposal: espProposal,
		siteTS:   func(i int) string { return fmt.Sprintf("198.51.100.%d/32", i+1) },
		remoteTS: respSite, retransmit: time.Second, retransmits: 3,
	})
	if err != nil {
		return nil, err
	}
	defer p.close()
	ctx := context.Background()
	n := 0
	for _, c := range o.Concurrency {
		for _, r := range o.Responders {
			n++
			fmt.Fprintf(o.Log, "ikebench: %s, %d concurrent, %v (+%v warm-up)\n", r, c, o.Duration, o.Warmup)
			resp, err := startResponder(t, l, r, o, psk, n)
			if err != nil {
				return rep, fmt.Errorf("ikebench: start %s: %w", r, err)
			}
			if o.Warmup > 0 {
				p.closedLoop(ctx, c, o.Warmup)
			}
			cpu0 := resp.cpu()
			st0, _ := resp.stats()
			rt0 := p.retransmits()
			var stopProf func()
			if r == MipsecInproc && o.CPUProfile != "" {
				stopProf, err = startProfile(o.CPUProfile, c)
				if err != nil {
					resp.stop()
					return rep, err
				}
			}
			s := p.closedLoop(ctx, c, o.Duration)
			if stopProf != nil {
				stopProf()
			}
			cpu := resp.cpu() - cpu0
			st1, stErr := resp.stats()
			rt := p.retransmits() - rt0
			resp.stop()
			cs := Case{
				Responder: r, Concurrency: c, Setups: len(s.setups), Failures: s.failures, Errors: s.errs,
				TeardownFailures: s.teardownErrs, ElapsedS: s.elapsed.Seconds(),
				Rate:  float64(len(s.setups)) / s.elapsed.Seconds(),
				Setup: percentiles(s.setups), Teardown: percentiles(s.teardowns),
				ResponderCPUS: cpu.Seconds(), Retransmits: rt, LoadAvg: loadAvg()[0],
			}
			cs.ResponderAuths = -1
			if stErr == nil && st1.Exchanges != nil {
				cs.ResponderAuths = int64(st1.Exchanges["IKE_AUTH"] - st0.Exchanges["IKE_AUTH"])
				for k, v := range st1.Failures {
					if d := v - st0.Failures[k]; d > 0 {
						if cs.ResponderRefusals == nil {
							cs.ResponderRefusals = map[string]uint64{}
						}
						cs.ResponderRefusals[k] = d
					}
				}
			} else if stErr != nil {
				fmt.Fprintf(o.Log, "ikebench:   %s stats: %v\n", r, stErr)
			}
			if cs.Setups > 0 {
				cs.CPUPerSetupMS = ms(cpu) / float64(cs.Setups)
			}
			rep.Cases = append(rep.Cases, cs)
			fmt.Fprintf(o.Log, "ikebench:   %.0f setups/s, %d failed, p50 %.2f ms, p99 %.2f ms\n", cs.Rate, cs.Failures, cs.Setup.P50, cs.Setup.P99)
		}
	}
	rep.LoadAfter = loadAvg()
	rep.Notes = notes(o)
	return rep, nil
}

func notes(o Options) []string {
	return []string{
		"closed loop: each worker sets up an IKE SA with one child (IKE_SA_INIT + IKE_AUTH, PSK, " + ikeProposal + ", ESP " + espProposal + "), then deletes it (INFORMATIONAL); setups/s counts the complete cycles, setup latency is Initiate alone, teardown latency Terminate alone",
		fmt.Sprintf("the load: %d ike.Daemon initiators in this process (namespace L, no-op kernel), each with its own source address and identity load-N@bench, taken in FIFO order so that consecutive setups come from different addresses (ike's per-source limit is 20 IKE_SA_INIT/s)", o.Initiators),
		"all initiators force UDP encapsulation (charon's libipsec speaks ESP in UDP only): IKE_AUTH and the Delete go over port 4500 on both responders",
		"the load and the responder share the machine's CPUs; nothing is pinned",
		"mipsec: `mipsec run` (TUN, SAD, SPD, state_dir " + o.StateDir + ", whose sequence-number reservation is fsynced per outbound SA), log level warn, ike defaults (cookie_threshold 32, 20 IKE_SA_INIT/s per source)",
		"charon: strongSwan 5.9 (charontest: kernel-libipsec, a route per child in table 220), log off, threads 16 (default), cookie_threshold 32 (default 30), vici event subscriptions of the harness",
		"responder CPU is /proc/PID/stat utime+stime over the measured part",
	}
}

// lab is the two namespaces: the load in L, the responder in R.
type lab struct {
	nsL, nsR string
	sources  []netip.Addr
}

var labCounter int

func newLab(t testing.TB, n int) (*lab, error) {
	netlab.RemoveStale("mipsec-ikeb")
	labCounter++
	l := &lab{nsL: netlab.NetnsName("mipsec-ikeb", fmt.Sprintf("%dl", labCounter)), nsR: netlab.NetnsName("mipsec-ikeb", fmt.Sprintf("%dr", labCounter))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ns := range []string{l.nsL, l.nsR} {
		if err := netlab.AddNetns(ctx, ns); err != nil {
			return nil, err
		}
		t.Cleanup(func() { netlab.DelNetns(ns) })
	}
	if err := netlab.Veth(ctx,
		netlab.Link{NS: l.nsL, Dev: "ul0", V4: netip.PrefixFrom(loadAddr, linkPrefix)},
		netlab.Link{NS: l.nsR, Dev: "ul0", V4: netip.PrefixFrom(responderAddr, linkPrefix)}); err != nil {
		return nil, err
	}
	var batch strings.Builder
	a := firstSource
	for range n {
		l.sources = append(l.sources, a)
		fmt.Fprintf(&batch, "addr add %s dev ul0\n", netip.PrefixFrom(a, linkPrefix))
		a = a.Next()
	}
	cmd := exec.CommandContext(ctx, "ip", "-n", l.nsL, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip -n %s -batch: %v %s", l.nsL, err, bytes.TrimSpace(out))
	}
	if err := netlab.IP(ctx, "-n", l.nsR, "addr", "add", respSiteAddr, "dev", "lo"); err != nil {
		return nil, err
	}
	return l, nil
}

// responder is one started responder.
type responder struct {
	cpu func() time.Duration
	// stats are the responder's IKE counters (zero Exchanges: none).
	stats func() (ike.Stats, error)
	stop  func()
}

func noStats() (ike.Stats, error) { return ike.Stats{}, nil }

// mipsecStats reads `mipsec stats --json` of the daemon behind sock.
func mipsecStats(bin, sock string) (ike.Stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "stats", "--json")
	cmd.Env = append(os.Environ(), "MIPSEC_SOCKET="+sock)
	out, err := cmd.Output()
	if err != nil {
		return ike.Stats{}, fmt.Errorf("mipsec stats --json: %w", err)
	}
	var st struct {
		IKE *struct {
			Exchanges map[string]uint64 `json:"exchanges"`
			Failures  map[string]uint64 `json:"failures"`
		} `json:"ike"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.IKE == nil {
		return ike.Stats{}, fmt.Errorf("mipsec stats --json: no ike part (%v)", err)
	}
	return ike.Stats{Exchanges: st.IKE.Exchanges, Failures: st.IKE.Failures}, nil
}

func startResponder(t testing.TB, l *lab, kind string, o Options, psk []byte, n int) (*responder, error) {
	dir := filepath.Join(o.Dir, fmt.Sprintf("%d-%s", n, kind))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	switch kind {
	case Mipsec:
		return startMipsec(l, o, dir, psk)
	case Charon:
		return startCharon(t, l, dir, psk)
	default:
		return startInproc(l, psk)
	}
}

var mipsecTmpl = template.Must(template.New("responder").Parse(`# internal/ikebench: the mipsec responder (config/doc.go)
state_dir = "{{.StateDir}}"

[log]
level = "warn"
format = "json"

[control]
socket = "{{.Socket}}"

[tun]
name = "ikeb0"
mtu = 1400
addresses = ["203.0.113.254/24"]
routes = ["` + loadSites + `"]

[underlay]
local = ["{{.Addr}}"]
encap = "both"

[[connection]]
name = "bench"
local_addrs = ["{{.Addr}}"]
remote_addrs = ["%any"]
proposals = ["` + ikeProposal + `"]

  [connection.local]
  auth = "psk"
  id = "` + respID + `"
  psk_file = "{{.PSKFile}}"

  [connection.remote]
  id = "%any"

  [[connection.child]]
  name = "site"
  local_ts = ["` + respSite + `"]
  remote_ts = ["` + loadSites + `"]
  esp_proposals = ["` + espProposal + `"]
  mode = "tunnel"
  start_action = "none"
`))

func startMipsec(l *lab, o Options, dir string, psk []byte) (*responder, error) {
	pskFile := filepath.Join(dir, "psk")
	if err := os.WriteFile(pskFile, psk, 0o600); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "mipsec.sock")
	var b bytes.Buffer
	if err := mipsecTmpl.Execute(&b, map[string]string{
		"StateDir": o.StateDir, "Socket": sock, "Addr": responderAddr.String(), "PSKFile": pskFile,
	}); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "mipsec.toml")
	if err := os.WriteFile(cfg, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	g := &netlab.Gateway{Name: "mipsec", NS: l.nsR, ConfigPath: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := g.Start(ctx, o.MipsecBin, func(string) bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	if err != nil {
		g.Stop(syscall.SIGKILL, time.Second)
		return nil, fmt.Errorf("%w\n%s", err, g.Log.String())
	}
	pid := g.Pid()
	return &responder{
		cpu:   func() time.Duration { d, _ := benchlab.ProcCPU(pid); return d },
		stats: func() (ike.Stats, error) { return mipsecStats(o.MipsecBin, sock) },
		stop: func() {
			g.Stop(syscall.SIGTERM, 5*time.Second)
			os.WriteFile(filepath.Join(dir, "mipsec.log"), []byte(g.Log.String()), 0o600)
		},
	}, nil
}

func startCharon(t testing.TB, l *lab, dir string, psk []byte) (*responder, error) {
	c, err := charontest.Start(t, charontest.Config{
		Namespace: l.nsR, Dir: dir, Name: "charon", LogLevels: charonQuiet, Settings: charonSettings,
	})
	if err != nil {
		return nil, err
	}
	if err := c.LoadShared([]string{respID, "%any"}, psk); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.LoadConn(charontest.Conn{
		Name: "bench", LocalAddrs: []string{responderAddr.String()}, RemoteAddrs: []string{"%any"},
		Proposals: []string{ikeProposal}, Encap: true,
		Local:  charontest.Auth{Auth: "psk", ID: respID},
		Remote: charontest.Auth{Auth: "psk", ID: "%any"},
		Children: map[string]charontest.Child{"site": {
			LocalTS: []string{respSite}, RemoteTS: []string{loadSites},
			ESPProposals: []string{espProposal}, Mode: "tunnel", StartAction: "none",
		}},
	}); err != nil {
		c.Stop()
		return nil, err
	}
	pid := c.Pid()
	return &responder{
		cpu:   func() time.Duration { d, _ := benchlab.ProcCPU(pid); return d },
		stats: noStats,
		stop:  c.Stop,
	}, nil
}

// startInproc starts the responder's ike.Daemon in this process (sockets
// in R, no-op kernel): the IKE work of `mipsec run` without node's SAD,
// SPD, TUN and state dir, for profiling. Its goroutines carry the pprof
// label role=responder.
func startInproc(l *lab, psk []byte) (*responder, error) {
	props, err := ike.ParseIKEProposals([]string{ikeProposal}, false)
	if err != nil {
		return nil, err
	}
	esp, err := ike.ParseESPProposals([]string{espProposal}, false)
	if err != nil {
		return nil, err
	}
	id, err := ike.ParseIdentity(respID)
	if err != nil {
		return nil, err
	}
	lts, err := ike.ParseTS(respSite)
	if err != nil {
		return nil, err
	}
	rts, err := ike.ParseTS(loadSites)
	if err != nil {
		return nil, err
	}
	tr := &udpTransport{addr: responderAddr}
	err = netlab.InNetns(l.nsR, func() error {
		var err error
		if tr.c500, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(responderAddr, 500))); err != nil {
			return err
		}
		tr.c4500, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(responderAddr, 4500)))
		return err
	})
	if err != nil {
		tr.close()
		return nil, err
	}
	d, err := ike.New(ike.Config{
		Connections: []ike.Connection{{
			Name: "bench", LocalAddrs: []netip.Addr{responderAddr}, RemoteAddrs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
			Proposals: props,
			Local:     ike.LocalAuth{Method: ike.AuthPSK, ID: id, PSK: psk},
			Remote:    ike.RemoteAuth{Method: ike.AuthPSK, PSK: psk},
			Children: []ike.Child{{
				Name: "site", LocalTS: []ike.TrafficSelector{lts}, RemoteTS: []ike.TrafficSelector{rts},
				Proposals: esp, Mode: ike.ModeTunnel,
			}},
		}},
		Kernel: nopKernel{}, Transport: tr,
	})
	if err != nil {
		tr.close()
		return nil, err
	}
	pprof.Do(context.Background(), pprof.Labels("role", "responder"), func(context.Context) {
		err = d.Start()
		if err == nil {
			go tr.serve(tr.c500, 500, d)
			go tr.serve(tr.c4500, 4500, d)
		}
	})
	if err != nil {
		tr.close()
		return nil, err
	}
	return &responder{
		cpu:   func() time.Duration { return 0 },
		stats: func() (ike.Stats, error) { return d.Stats(), nil },
		stop:  func() { d.Close(); tr.close() },
	}, nil
}

// startProfile starts a CPU profile into path (with -cC before the
// extension for each concurrency c); the returned func stops it.
func startProfile(path string, c int) (func(), error) {
	ext := filepath.Ext(path)
	f, err := os.Create(fmt.Sprintf("%s-c%d%s", strings.TrimSuffix(path, ext), c, ext))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func loadAvg() [3]float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return [3]float64{}
	}
	l, _ := benchlab.ParseLoadAvg(string(b))
	return l
}

// WriteText writes r as a table: per case the rate, failures, setup
// latency percentiles, teardown p50 and the responder's CPU per setup,
// then mipsec's rate over charon's per concurrency.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "IKEv2 setups per second (IKE_SA_INIT + IKE_AUTH, PSK, %s, one child %s), closed loop, %g s per case after %g s warm-up, %d initiators\n",
		r.IKEProposal, r.ESPProposal, r.DurationS, r.WarmupS, r.Initiators)
	fmt.Fprintf(w, "%d CPUs, load average %.2f %.2f %.2f before, %.2f %.2f %.2f after\n\n",
		r.CPUs, r.LoadBefore[0], r.LoadBefore[1], r.LoadBefore[2], r.LoadAfter[0], r.LoadAfter[1], r.LoadAfter[2])
	fmt.Fprintf(w, "%-14s %4s %9s %8s %6s %8s %8s %8s %8s %9s %9s %6s %6s\n",
		"responder", "C", "setups/s", "setups", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms", "del p50", "cpu ms/SA", "retx", "load")
	for _, c := range r.Cases {
		cpu := "-"
		if c.ResponderCPUS > 0 {
			cpu = fmt.Sprintf("%.3f", c.CPUPerSetupMS)
		}
		fmt.Fprintf(w, "%-14s %4d %9.1f %8d %6d %8.2f %8.2f %8.2f %8.2f %9.2f %9s %6d %6.2f\n",
			c.Responder, c.Concurrency, c.Rate, c.Setups, c.Failures, c.Setup.P50, c.Setup.P90, c.Setup.P99, c.Setup.Max,
			c.Teardown.P50, cpu, c.Retransmits, c.LoadAvg)
	}
	if rs := r.Ratios(); len(rs) > 0 {
		fmt.Fprintln(w)
		for _, x := range rs {
			fmt.Fprintf(w, "C=%d: mipsec/charon %.2fx setups/s (target >= 1.5x)\n", x.Concurrency, x.Ratio)
		}
	}
	for _, c := range r.Cases {
		if c.ResponderAuths >= 0 && c.ResponderAuths != int64(c.Setups) {
			fmt.Fprintf(w, "%s C=%d: the responder counted %d IKE_AUTH exchanges for %d setups\n", c.Responder, c.Concurrency, c.ResponderAuths, c.Setups)
		}
		if len(c.ResponderRefusals) > 0 {
			fmt.Fprintf(w, "%s C=%d: responder refusals %v\n", c.Responder, c.Concurrency, c.ResponderRefusals)
		}
		for _, e := range c.Errors {
			fmt.Fprintf(w, "%s C=%d error: %s\n", c.Responder, c.Concurrency, e)
		}
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// Ratio is mipsec's rate over charon's at one concurrency.
type Ratio struct {
	Concurrency int     `json:"concurrency"`
	Ratio       float64 `json:"mipsec_over_charon"`
}

// Ratios pairs the Mipsec and Charon cases of each concurrency.
func (r *Report) Ratios() []Ratio {
	var out []Ratio
	for _, m := range r.Cases {
		if m.Responder != Mipsec {
			continue
		}
		for _, c := range r.Cases {
			if c.Responder == Charon && c.Concurrency == m.Concurrency && c.Rate > 0 {
				out = append(out, Ratio{Concurrency: m.Concurrency, Ratio: m.Rate / c.Rate})
			}
		}
	}
	return out
}

// WriteFiles writes dir/ike.json and dir/ike.txt.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(struct {
		*Report
		Ratios []Ratio `json:"ratios"`
	}{r, r.Ratios()}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ike.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	var b bytes.Buffer
	r.WriteText(&b)
	return os.WriteFile(filepath.Join(dir, "ike.txt"), b.Bytes(), 0o644)
}
