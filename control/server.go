package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
	"github.com/mipsec/mipsec/underlay"
)

const (
	// MaxRequestLen bounds one request line; an SA with many selectors
	// fits easily.
	MaxRequestLen = 64 << 10
	// MaxConns bounds concurrent connections; more are answered
	// with an error and closed.
	MaxConns = 32
)

// Timeouts (variables so tests can shorten them).
var (
	// RequestTimeout is how long the server waits for a whole request
	// line (slowloris guard) and how long an idle connection lives.
	RequestTimeout = 5 * time.Second
	// WriteTimeout bounds writing one answer to a client that does not read.
	WriteTimeout = 10 * time.Second
)

// Errors of the control protocol. The server answers them as text; the
// client returns them wrapped.
var (
	ErrRequestTooLarge = errors.New("request too large")
	ErrBadRequest      = errors.New("malformed request")
	ErrUnknownCommand  = errors.New("unknown command")
	ErrDaemonRunning   = errors.New("another mipsec daemon answers on the control socket")
)

// Target is what the control server and the metrics endpoint read and
// change; the daemon (cmd/mipsec daemon*.go) satisfies it, tests fake it.
//
// SAD and SPD are read directly (lists, counters). Every change goes through
// the target, which owns persistence (sequence number reservations) and the
// copy of the keys that SAKeys returns.
type Target interface {
	// SAD and SPD are the live databases.
	SAD() *sad.DB
	SPD() *spd.DB
	// Status is the daemon's part of the "status" answer: version,
	// config file, control socket, role, TUN, state directory, start
	// time. The server adds the process, the counts and the uptime.
	Status() StatusInfo
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

// PeerInfo is one tunnel peer as "peers" reports it.
type PeerInfo struct {
	Name string `json:"name"`
	// Endpoint is the current remote outer address (and UDP port).
	Endpoint string `json:"endpoint"`
	// Encap is "raw" (IP protocol 50) or "udp" (RFC 3948).
	Encap string `json:"encap"`
	// Roams counts endpoint changes by roaming; LastRoam is the latest.
	Roams          uint64    `json:"roams"`
	LastRoam       time.Time `json:"last_roam,omitzero"`
	KeepalivesSent uint64    `json:"keepalives_sent"`
	// LastReceived is when an authenticated packet last came from the
	// peer (to the second; absent: never), wg show's "latest handshake".
	LastReceived time.Time `json:"last_received,omitzero"`
}

func peerInfoOf(p dataplane.PeerStatus) PeerInfo {
	return PeerInfo{
		Name: p.Name, Endpoint: p.Endpoint.Addr.String(), Encap: p.Endpoint.Encap.String(),
		Roams: p.Roams, LastRoam: p.LastRoam, KeepalivesSent: p.KeepalivesSent,
		LastReceived: p.LastReceived,
	}
}

// DataplaneStats is the dataplane's own counters (outside any SA) in the
// "stats" answer: drops by reason, non-zero ones only.
type DataplaneStats struct {
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
	Injected         uint64            `json:"injected"`
	Consumed         uint64            `json:"consumed"`
	Drops            map[string]uint64 `json:"drops,omitempty"`
}

func dataplaneStatsOf(st dataplane.Stats) DataplaneStats {
	out := DataplaneStats{
		OutPackets: st.OutPackets, OutBytes: st.OutBytes, SentPackets: st.SentPackets, SentBytes: st.SentBytes,
		InPackets: st.InPackets, InBytes: st.InBytes, DeliveredPackets: st.DeliveredPackets, DeliveredBytes: st.DeliveredBytes,
		Keepalives: st.Keepalives, Roams: st.Roams, Injected: st.Injected, Consumed: st.Consumed,
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

// Request is one client request line.
type Request struct {
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is one server answer line.
type Response struct {
	OK    bool   `json:"ok"`
	Data  any    `json:"data,omitempty"`
	Error string `json:"error,omitempty"`
}

// Server serves the control socket.
type Server struct {
	t    Target
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

// Listen creates the control socket at path and starts serving it.
// It creates the directory (0750) if needed, refuses to start when another
// daemon answers on path, removes a stale socket, and makes the socket 0600.
// What stands in the way on disk is refused as config.SocketProblem says,
// the words `mipsec check` prints for control.socket. The errors name the
// path, not "control socket": the caller says what the socket is for.
func Listen(path string, t Target, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if path == "" {
		path = config.DefaultControlSocket
	}
	if p := config.SocketProblem(path); p != "" {
		return nil, errors.New(p)
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating its directory: %w", err)
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating its directory: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrDaemonRunning)
		}
		// Nobody listens: a stale socket from a daemon that died.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket: %w", err)
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
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		t: t, log: log, ln: ln, path: path,
		capture: newCaptureHub(t),
		sem:     make(chan struct{}, MaxConns),
		ctx:     ctx, cancel: cancel,
		conns: map[net.Conn]struct{}{},
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops accepting, ends every connection (captures included), waits
// for the handlers and removes the socket.
func (s *Server) Close() error {
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

func (s *Server) acceptLoop() {
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
			writeResponse(c, Response{Error: "too many control connections"})
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

func (s *Server) serveConn(c net.Conn) {
	if err := peerAllowed(c); err != nil {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeResponse(c, Response{Error: err.Error()})
		return
	}
	br := bufio.NewReaderSize(c, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(RequestTimeout))
		line, err := readLine(br, MaxRequestLen)
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return
			}
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				err = fmt.Errorf("%w: no complete request within %v", ErrBadRequest, RequestTimeout)
			case errors.Is(err, net.ErrClosed):
				return
			case errors.Is(err, io.EOF):
				err = fmt.Errorf("%w: request not terminated by a newline", ErrBadRequest)
			}
			s.answer(c, Response{Error: err.Error()})
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
func (s *Server) handleLine(line []byte) (req Request, resp Response, ok bool) {
	// JSON is UTF-8 (RFC 8259 §8.1); encoding/json would turn invalid
	// bytes in strings into U+FFFD silently.
	if !utf8.Valid(line) {
		return req, Response{Error: fmt.Sprintf("%v: not valid UTF-8", ErrBadRequest)}, false
	}
	if err := DecodeStrict(line, &req); err != nil {
		return req, Response{Error: fmt.Sprintf("%v: %v", ErrBadRequest, err)}, false
	}
	if req.Cmd == "capture" {
		return req, Response{}, true
	}
	return req, s.handle(req), true
}

// answer writes resp with a write deadline; false means the connection is
// unusable.
func (s *Server) answer(c net.Conn, resp Response) bool {
	c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	return writeResponse(c, resp) == nil
}

func writeResponse(w io.Writer, resp Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "internal error: " + err.Error()})
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
			return nil, fmt.Errorf("%w (limit %d bytes)", ErrRequestTooLarge, max)
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

// DecodeStrict decodes exactly one JSON value into v, refusing unknown
// fields, trailing data, objects and arrays nested more than 32 deep (an
// SA with selectors needs 5) and duplicate object keys at any depth
// (encoding/json would keep the last one silently; keys that differ only
// in case count as duplicates, since it matches field names without
// regard to case). The error names the key and where it is.
func DecodeStrict(b []byte, v any) error {
	const maxDepth = 32
	// First a walk over the tokens for what the decoder lets through.
	// Syntax errors are left to the decoder, which words them as always.
	tokens := json.NewDecoder(bytes.NewReader(b))
	tokens.UseNumber()
	var walk func(path string, depth int) error
	walk = func(path string, depth int) error {
		tok, err := tokens.Token()
		if err != nil {
			return err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		if depth >= maxDepth {
			return fmt.Errorf("JSON nested deeper than %d levels", maxDepth)
		}
		switch d {
		case '{':
			seen := map[string]string{}
			for tokens.More() {
				kt, err := tokens.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				// Folded as encoding/json folds a name to match a field.
				fold := strings.ToUpper(strings.ToLower(k))
				if prev, dup := seen[fold]; dup {
					where := ""
					if path != "" {
						where = " in " + path
					}
					if prev != k {
						return fmt.Errorf("duplicate key %q%s (the same key as %q: keys match without regard to case)", k, where, prev)
					}
					return fmt.Errorf("duplicate key %q%s", k, where)
				}
				seen[fold] = k
				p := k
				if path != "" {
					p = path + "." + k
				}
				if err := walk(p, depth+1); err != nil {
					return err
				}
			}
		case '[':
			for i := 0; tokens.More(); i++ {
				if err := walk(fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
					return err
				}
			}
		}
		_, err = tokens.Token() // the closing delimiter
		return err
	}
	var se *json.SyntaxError
	if err := walk("", 0); err != nil && !errors.As(err, &se) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
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
	if err := DecodeStrict(raw, v); err != nil {
		return fmt.Errorf("%w: args: %v", ErrBadRequest, err)
	}
	return nil
}

// handle runs one request. Handlers never panic on client input, but a
// panic in the daemon's code must not take the daemon down with it either.
func (s *Server) handle(req Request) (resp Response) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control command panicked", zap.String("cmd", req.Cmd), zap.Any("panic", r))
			resp = Response{Error: fmt.Sprintf("%s: internal error", req.Cmd)}
		}
	}()
	m, ok := methods[req.Cmd]
	if !ok || m.run == nil {
		return Response{Error: fmt.Sprintf("%v %q (known: %s)", ErrUnknownCommand, req.Cmd, commandList())}
	}
	data, err := m.run(s, req.Args)
	if err != nil {
		return Response{Error: req.Cmd + ": " + err.Error()}
	}
	return Response{OK: true, Data: data}
}

type commandFunc func(s *Server, args json.RawMessage) (any, error)

type method struct {
	summary string
	run     commandFunc
}

// Method is one control method as Methods lists it.
type Method struct {
	Name    string
	Summary string
}

// methods is the registry: adding a control method is one entry here (or
// in the file of its group) and its handler. "capture" has no handler:
// serveConn hands it the connection.
var methods = map[string]method{
	"status":       {"the daemon: version, config, role, TUN, uptime, counts", (*Server).cmdStatus},
	"stats":        {"per-SA counters, dataplane and underlay counters, drops by reason", (*Server).cmdStats},
	"sa.list":      {"the SAs (never their keys)", (*Server).cmdSAList},
	"sa.add":       {"add an SA (args: an SA spec)", (*Server).cmdSAAdd},
	"sa.update":    {"replace an SA (args: an SA spec)", (*Server).cmdSAUpdate},
	"sa.del":       {"delete an SA (args: dir, spi)", (*Server).cmdSADel},
	"sa.get":       {"one SA as sa.update takes it, without its keys (args: dir, spi)", (*Server).cmdSAGet},
	"sa.wireshark": {"the SAs with their keys, for Wireshark's esp_sa table", (*Server).cmdSAWireshark},
	"policy.list":  {"the policies in order, with hits (args: dir)", (*Server).cmdPolicyList},
	"policy.add":   {"insert or append a policy (args: index, policy spec)", (*Server).cmdPolicyAdd},
	"policy.del":   {"delete a policy (args: name)", (*Server).cmdPolicyDel},
	"peers":        {"the peers and their current endpoints", (*Server).cmdPeers},
	"capture":      {"a pcap stream of inner and/or outer packets (args: what, count, duration)", nil},
}

// Methods lists the control methods, sorted by name.
func Methods() []Method {
	out := make([]Method, 0, len(methods))
	for name, m := range methods {
		out = append(out, Method{Name: name, Summary: m.summary})
	}
	slices.SortFunc(out, func(a, b Method) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func commandList() string {
	var names []string
	for _, m := range Methods() {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}

type noArgs struct{}

// StatusInfo is the "status" answer; each field once.
type StatusInfo struct {
	Version  string    `json:"version"`
	PID      int       `json:"pid"`
	Config   string    `json:"config,omitempty"`
	Control  string    `json:"control,omitempty"`
	Role     string    `json:"role,omitempty"`
	TUN      string    `json:"tun,omitempty"`
	StateDir string    `json:"state_dir,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	// Uptime is whole seconds since Started, as a duration ("1h2m3s").
	Uptime      string `json:"uptime,omitempty"`
	SAsOut      int    `json:"sas_out"`
	SAsIn       int    `json:"sas_in"`
	PoliciesOut int    `json:"policies_out"`
	PoliciesIn  int    `json:"policies_in"`
	Peers       int    `json:"peers"`
	// Runtime: goroutines, heap and file descriptors of the daemon
	// (runtime.go).
	Runtime *RuntimeInfo `json:"runtime,omitempty"`
}

func (s *Server) cmdStatus(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	st := s.t.Status()
	st.PID = os.Getpid()
	if !st.Started.IsZero() {
		st.Uptime = time.Since(st.Started).Truncate(time.Second).String()
	}
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
	st.Runtime = readRuntime()
	return st, nil
}

// StatsInfo is the "stats" answer.
type StatsInfo struct {
	SAs       []SAStats      `json:"sas"`
	SPD       []SPDStats     `json:"spd"`
	Dataplane DataplaneStats `json:"dataplane"`
	// Underlay are the underlay's own counters by name
	// (underlay.Stats: keepalives, non-ESP, malformed and
	// refused UDP 4191 / extension-header packets, ...), absent when the
	// target has none.
	Underlay map[string]uint64 `json:"underlay,omitempty"`
	// HA are the home agent's signaling counters, absent for other
	// roles.
	HA *HAStatsInfo `json:"ha,omitempty"`
	// MN are the mobile node's counters (as in "mn.status"), absent for
	// other roles.
	MN *mip6.MNCounters `json:"mn,omitempty"`
	// IKE are the IKE daemon's counters (ike.go), absent without IKE
	// connections.
	IKE *IKEStatsInfo `json:"ike,omitempty"`
}

// UnderlayCounterSource is the optional part of a Target (and a
// metricsSource) whose underlay keeps its own counters (the daemon).
type UnderlayCounterSource interface {
	UnderlayCounters() []underlay.Counter
}

// underlayCountersOf returns t's underlay counters by name, nil if none.
func underlayCountersOf(t any) map[string]uint64 {
	us, ok := t.(UnderlayCounterSource)
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

type SAStats struct {
	Name    string            `json:"name,omitempty"`
	Dir     string            `json:"dir"`
	SPI     SPI               `json:"spi"`
	Packets uint64            `json:"packets"`
	Bytes   uint64            `json:"bytes"`
	Seq     uint64            `json:"seq"`
	Drops   map[string]uint64 `json:"drops,omitempty"`
}

type SPDStats struct {
	Dir         string            `json:"dir"`
	NoMatch     uint64            `json:"no_match"`
	Unparsable  uint64            `json:"unparsable"`
	Unprotected uint64            `json:"unprotected"`
	NoSA        uint64            `json:"no_sa"`
	Hits        []spd.PolicyStats `json:"hits,omitempty"`
}

func (s *Server) cmdStats(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	ds := s.t.DataplaneStats()
	out := StatsInfo{SAs: []SAStats{}, Dataplane: dataplaneStatsOf(ds), Underlay: underlayCountersOf(s.t)}
	out.HA, out.MN = mobilityStatsOf(s.t)
	out.IKE = ikeStatsOf(s.t)
	for _, sa := range s.t.SAD().List() {
		out.SAs = append(out.SAs, saStatsOf(sa))
	}
	for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
		st := s.t.SPD().Stats(d)
		if d == sad.Inbound {
			// ESP never goes through the inbound SPD (its hits count
			// cleartext): the dataplane counts what the inbound
			// policies let in, in the same order (its copy of the list
			// can be a second behind a change, hence the name check).
			for i, h := range ds.InboundPolicyHits {
				if i < len(st.Policies) && st.Policies[i].Name == h.Name {
					st.Policies[i].Hits += h.Hits
				}
			}
		}
		out.SPD = append(out.SPD, SPDStats{Dir: d.String(), NoMatch: st.NoMatch, Unparsable: st.Unparsable, Unprotected: st.Unprotected, NoSA: st.NoSA, Hits: st.Policies})
	}
	return out, nil
}

func saStatsOf(sa *sad.SA) SAStats {
	st := sa.Stats()
	return SAStats{Name: sa.Name(), Dir: sa.Dir().String(), SPI: SPI(sa.SPI()), Packets: st.Packets, Bytes: st.Bytes, Seq: sa.Seq(), Drops: SADrops(&st)}
}

// SADrops are an SA's non-zero drop counters by verdict name
// (VerdictName), nil when there are none: the "drops" of the "stats"
// answer, and the reasons of cmd/mipsec's mipsec_sa_drops_total.
func SADrops(st *sad.Stats) map[string]uint64 {
	var out map[string]uint64
	for v, n := range st.Drops {
		if n != 0 {
			if out == nil {
				out = map[string]uint64{}
			}
			out[VerdictName(v)] = n
		}
	}
	return out
}

func (s *Server) cmdSAList(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	out := []SAInfo{}
	for _, sa := range s.t.SAD().List() {
		out = append(out, SAInfoOf(sa))
	}
	return out, nil
}

func (s *Server) cmdSAAdd(args json.RawMessage) (any, error) {
	spec, err := saArgs(args)
	if err != nil {
		return nil, err
	}
	cfg, err := config.ParseSA("sa", &spec)
	if err != nil {
		return nil, err
	}
	if err := s.t.AddSA(cfg); err != nil {
		return nil, err
	}
	return SARef{Dir: cfg.Dir.String(), SPI: SPI(cfg.Params.SPI)}, nil
}

// cmdSAUpdate replaces an SA; absent keys keep the SA's keys, so a client
// may change settings without sending key material again.
func (s *Server) cmdSAUpdate(args json.RawMessage) (any, error) {
	spec, err := saArgs(args)
	if err != nil {
		return nil, err
	}
	if spec.EncKey == "" && spec.AuthKey == "" && spec.EncKeyFile == "" && spec.AuthKeyFile == "" {
		dir, derr := sad.ParseDirection(spec.Dir)
		spi, serr := config.ParseSPI(spec.SPI)
		if derr == nil && serr == nil {
			if cur := s.t.SAD().Lookup(dir, spi); cur != nil && spec.Algorithm != "" {
				// A key is never carried over to another transform: the
				// same bytes under two algorithms (AES-GCM and AES-CBC,
				// say) is a key reuse RFC 8221 §4 rules out, and the
				// lengths rarely fit.
				if a, err := esp.ParseAlgorithm(spec.Algorithm); err == nil && a != cur.Params().Algorithm {
					return nil, fmt.Errorf("sa update: changing the algorithm from %v to %v needs new keys (enc_key, and auth_key where %v takes one)",
						cur.Params().Algorithm, a, a)
				}
			}
			if enc, auth, ok := s.t.SAKeys(dir, spi); ok {
				spec.EncKey, spec.AuthKey = hexKey(enc), hexKey(auth)
				defer clear(enc)
				defer clear(auth)
			}
		}
	}
	cfg, err := config.ParseSA("sa", &spec)
	if err != nil {
		return nil, err
	}
	if err := s.t.UpdateSA(cfg); err != nil {
		return nil, err
	}
	return SARef{Dir: cfg.Dir.String(), SPI: SPI(cfg.Params.SPI)}, nil
}

func hexKey(k []byte) string {
	if len(k) == 0 {
		return ""
	}
	return "0x" + hex.EncodeToString(k)
}

// cmdSAGet answers one SA as an SASpec without its keys: what a client
// changes and sends back with sa.update.
func (s *Server) cmdSAGet(args json.RawMessage) (any, error) {
	var ref SARef
	if err := decodeArgs(args, &ref); err != nil {
		return nil, err
	}
	dir, err := ParseDir(ref.Dir)
	if err != nil {
		return nil, err
	}
	sa := s.t.SAD().Lookup(dir, uint32(ref.SPI))
	if sa == nil {
		return nil, fmt.Errorf("%w: %v SA %v", sad.ErrNotFound, dir, ref.SPI)
	}
	return config.SATableOf(sad.Config{Name: sa.Name(), Dir: sa.Dir(), Params: sa.Params(),
		Lifetime: sa.Lifetime(), Selectors: sa.Selectors()}), nil
}

func saArgs(args json.RawMessage) (SASpec, error) {
	var spec SASpec
	if len(args) == 0 {
		return spec, fmt.Errorf("%w: args: an SA is required", ErrBadRequest)
	}
	err := decodeArgs(args, &spec)
	return spec, err
}

// SARef names an SA: sa.del's and sa.get's arguments, and what sa.add
// and sa.update answer.
type SARef struct {
	Dir string `json:"dir"`
	SPI SPI    `json:"spi"`
}

func (s *Server) cmdSADel(args json.RawMessage) (any, error) {
	var ref SARef
	if err := decodeArgs(args, &ref); err != nil {
		return nil, err
	}
	dir, err := ParseDir(ref.Dir)
	if err != nil {
		return nil, err
	}
	if ref.SPI == 0 {
		return nil, fmt.Errorf("%w: args: spi is required and non-zero", ErrBadRequest)
	}
	if err := s.t.DelSA(dir, uint32(ref.SPI)); err != nil {
		return nil, err
	}
	return SARef{Dir: dir.String(), SPI: ref.SPI}, nil
}

func (s *Server) cmdSAWireshark(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	out := []WiresharkSA{}
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

type DirArgs struct {
	Dir string `json:"dir,omitempty"`
}

func (s *Server) cmdPolicyList(args json.RawMessage) (any, error) {
	var a DirArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	dirs := []sad.Direction{sad.Outbound, sad.Inbound}
	if a.Dir != "" {
		d, err := ParseDir(a.Dir)
		if err != nil {
			return nil, err
		}
		dirs = []sad.Direction{d}
	}
	out := []PolicyInfo{}
	for _, d := range dirs {
		st := s.t.SPD().Stats(d)
		if d == sad.Inbound { // as in cmdStats
			for i, h := range s.t.DataplaneStats().InboundPolicyHits {
				if i < len(st.Policies) && st.Policies[i].Name == h.Name {
					st.Policies[i].Hits += h.Hits
				}
			}
		}
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

func (s *Server) cmdPolicyAdd(args json.RawMessage) (any, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: args: a policy is required", ErrBadRequest)
	}
	var spec PolicySpec
	if err := decodeArgs(args, &spec); err != nil {
		return nil, err
	}
	p, err := config.ParsePolicy("policy", &spec.PolicyTable, func(d sad.Direction, spi uint32) bool {
		return s.t.SAD().Lookup(d, spi) != nil
	})
	if err != nil {
		return nil, err
	}
	idx := -1
	if spec.Index != nil {
		idx = *spec.Index
		if idx < 0 {
			return nil, fmt.Errorf("%w: args: index %d is negative", ErrBadRequest, idx)
		}
	}
	if err := s.t.AddPolicy(idx, p); err != nil {
		return nil, err
	}
	return map[string]any{"name": p.Name, "dir": p.Dir.String()}, nil
}

type NameArgs struct {
	Name string `json:"name"`
}

func (s *Server) cmdPolicyDel(args json.RawMessage) (any, error) {
	var a NameArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Name == "" {
		return nil, fmt.Errorf("%w: args: name is required", ErrBadRequest)
	}
	if err := s.t.DelPolicy(a.Name); err != nil {
		return nil, err
	}
	return map[string]any{"name": a.Name}, nil
}

func (s *Server) cmdPeers(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	out := []PeerInfo{}
	for _, p := range s.t.Peers() {
		out = append(out, peerInfoOf(p))
	}
	return out, nil
}
