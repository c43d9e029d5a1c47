package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// CallTimeout bounds one Call: dial, request and answer.
const CallTimeout = 30 * time.Second

const (
	dialTimeout = 2 * time.Second
	// maxResponseLen bounds one answer line (a large SAD listed as JSON).
	maxResponseLen = 256 << 20
)

// Client talks to the daemon whose control socket is at Path.
type Client struct {
	Path string
	// Err, when set, is what every call returns: the caller could not
	// tell which socket to use.
	Err error
	// Timeout bounds one Call; 0: CallTimeout. A command that waits in
	// the daemon (ike.initiate's timeout) needs more than the wait.
	Timeout time.Duration
}

// Dial connects to the socket.
func (c Client) Dial() (net.Conn, error) {
	if c.Err != nil {
		return nil, c.Err
	}
	conn, err := net.DialTimeout("unix", c.Path, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is `mipsec run` running, and are you root?)", c.Path, err)
	}
	return conn, nil
}

// Call sends one request and decodes the answer's data into out (unless
// out is nil). An {"ok":false} answer is returned as an error.
func (c Client) Call(cmd string, args, out any) error {
	conn, err := c.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = CallTimeout
	}
	conn.SetDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(conn)
	if err := SendRequest(conn, cmd, args); err != nil {
		return err
	}
	data, err := ReadResponse(br)
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: bad answer from the daemon: %w", cmd, err)
		}
	}
	return nil
}

// SendRequest writes one request line.
func SendRequest(w io.Writer, cmd string, args any) error {
	req := map[string]any{"cmd": cmd}
	if args != nil {
		req["args"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadResponse reads one answer line and returns its data, or its error.
func ReadResponse(br *bufio.Reader) (json.RawMessage, error) {
	line, err := readLine(br, maxResponseLen)
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return nil, fmt.Errorf("control socket: reading the answer: %w", err)
	}
	var resp struct {
		OK    bool            `json:"ok"`
		Data  json.RawMessage `json:"data"`
		Error string          `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("control socket: bad answer: %w", err)
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "request failed"
		}
		return nil, errors.New(resp.Error)
	}
	return resp.Data, nil
}
