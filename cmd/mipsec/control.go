package main

// The control socket: a unix stream socket on which the daemon answers
// requests from the mipsec client subcommands (status, stats, sa, policy,
// capture).
//
// Protocol, one JSON object per line in each direction:
//
//	-> {"cmd":"sa.list"}
//	<- {"ok":true,"data":[...]}
//	-> {"cmd":"sa.del","args":{"dir":"in","spi":4097}}
//	<- {"ok":false,"error":"sa.del: sad: no such SA ..."}
//
// A connection may carry several requests, one after the other. A request
// line is at most maxRequestLen bytes and must arrive within requestTimeout
// of the previous answer (or of the connection): slow, huge or malformed
// requests get an error answer and the connection is closed, so no client
// can hold a server goroutine for long. "capture" is the one command that
// does not answer with a single line: after its {"ok":true,...} line the
// connection carries a pcap stream (pcapgo, LINKTYPE_RAW) until the count or
// duration is reached or either side closes.
//
// Security: the socket is created mode 0600 in a directory of mode 0750 and
// the daemon runs as root, so only root can connect; SO_PEERCRED is checked
// as well. Keys leave the daemon only through "sa.wireshark", which
// `mipsec sa list --wireshark` uses; "sa.list" never carries them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
	"github.com/mipsec/mipsec/underlay"
)

const (
	// maxRequestLen bounds one request line; an SA with many selectors
	// fits easily.
	maxRequestLen = 64 << 10
	// maxControlConns bounds concurrent connections; more are answered
	// with an error and closed.
	maxControlConns = 32
)

// Timeouts (variables so tests can shorten them).
var (
	// requestTimeout is how long the server waits for a whole request
	// line (slowloris guard) and how long an idle connection lives.
	requestTimeout = 5 * time.Second
	// writeTimeout bounds writing one answer to a client that does not read.
	writeTimeout = 10 * time.Second
)

// Errors of the control protocol. The server answers them as text; the
// client returns them wrapped.
var (
	errRequestTooLarge = errors.New("request too large")
	errBadRequest      = errors.New("malformed request")
	errUnknownCommand  = errors.New("unknown command")
	errDaemonRunning   = errors.New("another mipsec daemon answers on the control socket")
)

// controlTarget is what the control server and the metrics endpoint read and
// change; the daemon (cmd/mipsec daemon*.go) satisfies it, tests fake it.
//
// SAD and SPD are read directly (lists, counters). Every change goes through
// the target, which owns persistence (sequence number reservations) and the
// copy of the keys that SAKeys returns.
type controlTarget interface {
	// SAD and SPD are the live databases.
	SAD() *sad.DB
	SPD() *spd.DB
	// Status is a daemon-specific summary (config file, TUN name, uptime,
	// ...) merged into the "status" answer.
	Status() map[string]any
	// AddSA, UpdateSA (sad.DB.Replace semantics) and DelSA change the SAD.
	AddSA(cfg sad.Config) error
	UpdateSA(cfg sad.Config) error
	DelSA(dir sad.Direction, spi uint32) error
	// AddPolicy inserts p at index in its direction's list (-1 appends);
	// DelPolicy removes the named policy.
	AddPolicy(index int, p spd.Policy) error
	DelPolicy(name string) error
	// SAKeys returns copies of the SA's encryption and integrity keys.
	// Only "sa.wireshark" calls it.
	SAKeys(dir sad.Direction, spi uint32) (enc, auth []byte, ok bool)
	// Peers lists the tunnel peers and their current outer endpoints
	// (dataplane.Dataplane.Peers).
	Peers() []dataplane.PeerStatus
	// DataplaneStats returns the dataplane's counters
	// (dataplane.Dataplane.Stats).
	DataplaneStats() dataplane.Stats
	// SetCapture installs c as the dataplane's packet tap; nil removes it
	// (dataplane.Dataplane.SetCapture).
	SetCapture(c dataplane.Capture)
}

// peerInfo is one tunnel peer as "peers" reports it.
type peerInfo struct {
	Name string `json:"name"`
	// Endpoint is the current remote outer address (and UDP port).
	Endpoint string `json:"endpoint"`
	// Encap is "raw" (IP protocol 50) or "udp" (RFC 3948).
	Encap string `json:"encap"`
	// Roams counts endpoint changes by roaming; LastRoam is the latest.
	Roams          uint64    `json:"roams"`
	LastRoam       time.Time `json:"last_roam,omitzero"`
	KeepalivesSent uint64    `json:"keepalives_sent"`
}

func peerInfoOf(p dataplane.PeerStatus) peerInfo {
	return peerInfo{
		Name: p.Name, Endpoint: p.Endpoint.Addr.String(), Encap: p.Endpoint.Encap.String(),
		Roams: p.Roams, LastRoam: p.LastRoam, KeepalivesSent: p.KeepalivesSent,
	}
}

// dataplaneStats is the dataplane's own counters (outside any SA) in the
// "stats" answer: drops by reason, non-zero ones only.
type dataplaneStats struct {
	OutPackets       uint64            `json:"out_packets"`
	OutBytes         uint64            `json:"out_bytes"`
	SentPackets      uint64            `json:"sent_packets"`
	SentBytes        uint64            `json:"sent_bytes"`
	InPackets        uint64            `json:"in_packets"`
	InBytes          uint64            `json:"in_bytes"`
	DeliveredPackets uint64            `json:"delivered_packets"`
	DeliveredBytes   uint64            `json:"delivered_bytes"`
	Keepalives       uint64            `json:"keepalives"`
	Roams            uint64            `json:"roams"`
	Drops            map[string]uint64 `json:"drops,omitempty"`
}

func dataplaneStatsOf(st dataplane.Stats) dataplaneStats {
	out := dataplaneStats{
		OutPackets: st.OutPackets, OutBytes: st.OutBytes, SentPackets: st.SentPackets, SentBytes: st.SentBytes,
		InPackets: st.InPackets, InBytes: st.InBytes, DeliveredPackets: st.DeliveredPackets, DeliveredBytes: st.DeliveredBytes,
		Keepalives: st.Keepalives, Roams: st.Roams,
	}
	for r, n := range st.Drops {
		if n != 0 {
			if out.Drops == nil {
				out.Drops = map[string]uint64{}
			}
			out.Drops[dataplane.DropReason(r).String()] = n
		}
	}
	return out
}

// request is one client request line.
type request struct {
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
}

// response is one server answer line.
type response struct {
	OK    bool   `json:"ok"`
	Data  any    `json:"data,omitempty"`
	Error string `json:"error,omitempty"`
}

// controlServer serves the control socket.
type controlServer struct {
	t    controlTarget
	log  *zap.Logger
	ln   net.Listener
	path string

	capture *captureHub

	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// listenControl creates the control socket at path and starts serving it.
// It creates the directory (0750) if needed, refuses to start when another
// daemon answers on path, removes a stale socket, and makes the socket 0600.
func listenControl(path string, t controlTarget, log *zap.Logger) (*controlServer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if path == "" {
		path = config.DefaultControlSocket
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket: %s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: %w", path, errDaemonRunning)
		}
		// Nobody listens: a stale socket from a daemon that died.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket: removing stale %s: %w", path, err)
		}
		log.Info("removed stale control socket", zap.String("path", path))
	}
	// The socket is made 0600 right after bind. (Not through the umask: it
	// is process-wide, and other goroutines create files and directories.)
	// In the window between, connecting needs write permission on the
	// socket, which the usual umask (022) does not give others, and
	// peerAllowed checks every connection anyway.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &controlServer{
		t: t, log: log, ln: ln, path: path,
		capture: newCaptureHub(t),
		sem:     make(chan struct{}, maxControlConns),
		ctx:     ctx, cancel: cancel,
		conns: map[net.Conn]struct{}{},
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Path returns the socket's path.
func (s *controlServer) Path() string { return s.path }

// Close stops accepting, ends every connection (captures included), waits
// for the handlers and removes the socket.
func (s *controlServer) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.capture.close()
	return err
}

func (s *controlServer) acceptLoop() {
	defer s.wg.Done()
	var tempDelay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, bounded.
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			s.log.Warn("control socket accept", zap.Error(err))
			time.Sleep(tempDelay)
			continue
		}
		tempDelay = 0
		select {
		case s.sem <- struct{}{}:
		default:
			c.SetWriteDeadline(time.Now().Add(time.Second))
			writeResponse(c, response{Error: "too many control connections"})
			c.Close()
			continue
		}
		// Close cancels s.ctx before it sweeps s.conns under s.mu, so a
		// connection accepted while Close runs is either swept or refused
		// here; it can never be left waiting out its read deadline.
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			<-s.sem
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(c)
		}()
	}
}

// peerAllowed checks the connecting process's credentials: root or the
// daemon's own user. The 0600 socket already enforces this; the check
// covers a socket whose mode was changed behind our back.
func peerAllowed(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d may not use the control socket", cred.Uid)
	}
	return nil
}

func (s *controlServer) serveConn(c net.Conn) {
	if err := peerAllowed(c); err != nil {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeResponse(c, response{Error: err.Error()})
		return
	}
	br := bufio.NewReaderSize(c, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(requestTimeout))
		line, err := readLine(br, maxRequestLen)
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return
			}
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				err = fmt.Errorf("%w: no complete request within %v", errBadRequest, requestTimeout)
			case errors.Is(err, net.ErrClosed):
				return
			case errors.Is(err, io.EOF):
				err = fmt.Errorf("%w: request not terminated by a newline", errBadRequest)
			}
			s.answer(c, response{Error: err.Error()})
			return
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		req, resp, ok := s.handleLine(line)
		if ok && req.Cmd == "capture" {
			s.serveCapture(c, br, req.Args)
			return
		}
		if !s.answer(c, resp) || !ok {
			// A request that does not parse ends the connection: the
			// client is not speaking this protocol.
			return
		}
	}
}

// handleLine parses and runs one request line. ok is false when the line is
// not a request at all (resp is then the error to send before closing).
// A capture request is parsed but not run: the caller streams it.
func (s *controlServer) handleLine(line []byte) (req request, resp response, ok bool) {
	if err := decodeStrict(line, &req); err != nil {
		return req, response{Error: fmt.Sprintf("%v: %v", errBadRequest, err)}, false
	}
	if req.Cmd == "capture" {
		return req, response{}, true
	}
	return req, s.handle(req), true
}

// answer writes resp with a write deadline; false means the connection is
// unusable.
func (s *controlServer) answer(c net.Conn, resp response) bool {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	return writeResponse(c, resp) == nil
}

func writeResponse(w io.Writer, resp response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(response{Error: "internal error: " + err.Error()})
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readLine reads up to and including '\n', refusing lines longer than max
// without buffering them.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, fmt.Errorf("%w (limit %d bytes)", errRequestTooLarge, max)
		}
		line = append(line, frag...)
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// decodeArgs decodes a request's args; absent args decode as {}.
func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := decodeStrict(raw, v); err != nil {
		return fmt.Errorf("%w: args: %v", errBadRequest, err)
	}
	return nil
}

// handle runs one request. Handlers never panic on client input, but a
// panic in the daemon's code must not take the daemon down with it either.
func (s *controlServer) handle(req request) (resp response) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control command panicked", zap.String("cmd", req.Cmd), zap.Any("panic", r))
			resp = response{Error: fmt.Sprintf("%s: internal error", req.Cmd)}
		}
	}()
	h, ok := controlCommands[req.Cmd]
	if !ok {
		return response{Error: fmt.Sprintf("%v %q (known: %s)", errUnknownCommand, req.Cmd, commandList())}
	}
	data, err := h(s, req.Args)
	if err != nil {
		return response{Error: req.Cmd + ": " + err.Error()}
	}
	return response{OK: true, Data: data}
}

type commandFunc func(s *controlServer, args json.RawMessage) (any, error)

var controlCommands map[string]commandFunc

func init() {
	controlCommands = map[string]commandFunc{
		"status":       (*controlServer).cmdStatus,
		"stats":        (*controlServer).cmdStats,
		"sa.list":      (*controlServer).cmdSAList,
		"sa.add":       (*controlServer).cmdSAAdd,
		"sa.update":    (*controlServer).cmdSAUpdate,
		"sa.del":       (*controlServer).cmdSADel,
		"sa.wireshark": (*controlServer).cmdSAWireshark,
		"policy.list":  (*controlServer).cmdPolicyList,
		"policy.add":   (*controlServer).cmdPolicyAdd,
		"policy.del":   (*controlServer).cmdPolicyDel,
		"peers":        (*controlServer).cmdPeers,
		// "capture" is run by serveConn: it takes over the connection.
	}
}

func commandList() string {
	return "status, stats, sa.list, sa.add, sa.update, sa.del, sa.wireshark, policy.list, policy.add, policy.del, peers, capture, binding.list, mn.status, mn.move"
}

type noArgs struct{}

// statusInfo is the "status" answer.
type statusInfo struct {
	Version     string         `json:"version"`
	PID         int            `json:"pid"`
	SAsOut      int            `json:"sas_out"`
	SAsIn       int            `json:"sas_in"`
	PoliciesOut int            `json:"policies_out"`
	PoliciesIn  int            `json:"policies_in"`
	Peers       int            `json:"peers"`
	Daemon      map[string]any `json:"daemon,omitempty"`
}

func (s *controlServer) cmdStatus(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	st := statusInfo{Version: version(), PID: os.Getpid(), Daemon: s.t.Status()}
	for _, sa := range s.t.SAD().List() {
		if sa.Dir() == sad.Outbound {
			st.SAsOut++
		} else {
			st.SAsIn++
		}
	}
	st.PoliciesOut = s.t.SPD().Len(sad.Outbound)
	st.PoliciesIn = s.t.SPD().Len(sad.Inbound)
	st.Peers = len(s.t.Peers())
	return st, nil
}

// statsInfo is the "stats" answer.
type statsInfo struct {
	SAs       []saStats      `json:"sas"`
	SPD       []spdStats     `json:"spd"`
	Dataplane dataplaneStats `json:"dataplane"`
	// Underlay are the underlay's own counters by name
	// (underlay.Stats: keepalives, non-ESP, malformed and
	// refused UDP 4191 / extension-header packets, ...), absent when the
	// target has none.
	Underlay map[string]uint64 `json:"underlay,omitempty"`
}

// underlayCounterSource is the optional part of a controlTarget (and a
// metricsSource) whose underlay keeps its own counters (the daemon).
type underlayCounterSource interface {
	UnderlayCounters() []underlay.Counter
}

// underlayCountersOf returns t's underlay counters by name, nil if none.
func underlayCountersOf(t any) map[string]uint64 {
	us, ok := t.(underlayCounterSource)
	if !ok {
		return nil
	}
	cs := us.UnderlayCounters()
	if len(cs) == 0 {
		return nil
	}
	m := make(map[string]uint64, len(cs))
	for _, c := range cs {
		m[c.Name] = c.Value
	}
	return m
}

type saStats struct {
	Name    string            `json:"name,omitempty"`
	Dir     string            `json:"dir"`
	SPI     uint32            `json:"spi"`
	Packets uint64            `json:"packets"`
	Bytes   uint64            `json:"bytes"`
	Seq     uint64            `json:"seq"`
	Drops   map[string]uint64 `json:"drops,omitempty"`
}

type spdStats struct {
	Dir         string            `json:"dir"`
	NoMatch     uint64            `json:"no_match"`
	Unparsable  uint64            `json:"unparsable"`
	Unprotected uint64            `json:"unprotected"`
	NoSA        uint64            `json:"no_sa"`
	Hits        []spd.PolicyStats `json:"hits,omitempty"`
}

func (s *controlServer) cmdStats(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	out := statsInfo{SAs: []saStats{}, Dataplane: dataplaneStatsOf(s.t.DataplaneStats()), Underlay: underlayCountersOf(s.t)}
	for _, sa := range s.t.SAD().List() {
		out.SAs = append(out.SAs, saStatsOf(sa))
	}
	for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
		st := s.t.SPD().Stats(d)
		out.SPD = append(out.SPD, spdStats{Dir: d.String(), NoMatch: st.NoMatch, Unparsable: st.Unparsable, Unprotected: st.Unprotected, NoSA: st.NoSA, Hits: st.Policies})
	}
	return out, nil
}

func saStatsOf(sa *sad.SA) saStats {
	st := sa.Stats()
	out := saStats{Name: sa.Name(), Dir: sa.Dir().String(), SPI: sa.SPI(), Packets: st.Packets, Bytes: st.Bytes, Seq: sa.Seq()}
	for v, n := range st.Drops {
		if n != 0 {
			if out.Drops == nil {
				out.Drops = map[string]uint64{}
			}
			out.Drops[verdictName(v)] = n
		}
	}
	return out
}

func (s *controlServer) cmdSAList(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	out := []saInfo{}
	for _, sa := range s.t.SAD().List() {
		out = append(out, saInfoOf(sa))
	}
	return out, nil
}

func (s *controlServer) cmdSAAdd(args json.RawMessage) (any, error) {
	cfg, err := saArgs(args)
	if err != nil {
		return nil, err
	}
	if err := s.t.AddSA(cfg); err != nil {
		return nil, err
	}
	return map[string]any{"dir": cfg.Dir.String(), "spi": cfg.Params.SPI}, nil
}

func (s *controlServer) cmdSAUpdate(args json.RawMessage) (any, error) {
	cfg, err := saArgs(args)
	if err != nil {
		return nil, err
	}
	if err := s.t.UpdateSA(cfg); err != nil {
		return nil, err
	}
	return map[string]any{"dir": cfg.Dir.String(), "spi": cfg.Params.SPI}, nil
}

func saArgs(args json.RawMessage) (sad.Config, error) {
	if len(args) == 0 {
		return sad.Config{}, fmt.Errorf("%w: args: an SA is required", errBadRequest)
	}
	var spec saSpec
	if err := decodeArgs(args, &spec); err != nil {
		return sad.Config{}, err
	}
	return spec.config()
}

type saRef struct {
	Dir string `json:"dir"`
	SPI uint32 `json:"spi"`
}

func (s *controlServer) cmdSADel(args json.RawMessage) (any, error) {
	var ref saRef
	if err := decodeArgs(args, &ref); err != nil {
		return nil, err
	}
	dir, err := parseDir(ref.Dir)
	if err != nil {
		return nil, err
	}
	if ref.SPI == 0 {
		return nil, fmt.Errorf("%w: args: spi is required and non-zero", errBadRequest)
	}
	if err := s.t.DelSA(dir, ref.SPI); err != nil {
		return nil, err
	}
	return map[string]any{"dir": dir.String(), "spi": ref.SPI}, nil
}

func (s *controlServer) cmdSAWireshark(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	out := []wiresharkSA{}
	for _, sa := range s.t.SAD().List() {
		enc, auth, ok := s.t.SAKeys(sa.Dir(), sa.SPI())
		if !ok {
			continue
		}
		out = append(out, wiresharkSAOf(sa, enc, auth))
		clear(enc)
		clear(auth)
	}
	return out, nil
}

type dirArgs struct {
	Dir string `json:"dir,omitempty"`
}

func (s *controlServer) cmdPolicyList(args json.RawMessage) (any, error) {
	var a dirArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	dirs := []sad.Direction{sad.Outbound, sad.Inbound}
	if a.Dir != "" {
		d, err := parseDir(a.Dir)
		if err != nil {
			return nil, err
		}
		dirs = []sad.Direction{d}
	}
	out := []policyInfo{}
	for _, d := range dirs {
		st := s.t.SPD().Stats(d)
		for i, p := range s.t.SPD().List(d) {
			var hits uint64
			if i < len(st.Policies) {
				hits = st.Policies[i].Hits
			}
			out = append(out, policyInfoOf(i, p, hits))
		}
	}
	return out, nil
}

func (s *controlServer) cmdPolicyAdd(args json.RawMessage) (any, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: args: a policy is required", errBadRequest)
	}
	var spec policySpec
	if err := decodeArgs(args, &spec); err != nil {
		return nil, err
	}
	p, err := spec.policy()
	if err != nil {
		return nil, err
	}
	idx := -1
	if spec.Index != nil {
		idx = *spec.Index
		if idx < 0 {
			return nil, fmt.Errorf("%w: args: index %d is negative", errBadRequest, idx)
		}
	}
	if err := s.t.AddPolicy(idx, p); err != nil {
		return nil, err
	}
	return map[string]any{"name": p.Name, "dir": p.Dir.String()}, nil
}

type nameArgs struct {
	Name string `json:"name"`
}

func (s *controlServer) cmdPolicyDel(args json.RawMessage) (any, error) {
	var a nameArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Name == "" {
		return nil, fmt.Errorf("%w: args: name is required", errBadRequest)
	}
	if err := s.t.DelPolicy(a.Name); err != nil {
		return nil, err
	}
	return map[string]any{"name": a.Name}, nil
}

func (s *controlServer) cmdPeers(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	out := []peerInfo{}
	for _, p := range s.t.Peers() {
		out = append(out, peerInfoOf(p))
	}
	return out, nil
}
