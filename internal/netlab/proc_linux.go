package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// spawn carries cmd.Start calls to one locked OS thread that lives as long
// as the process. Pdeathsig fires when the thread that forked the child
// exits, and InNetns retires threads, so forking on an arbitrary thread
// could kill a child early; forking on this one kills the children only
// when this process dies (also when a test's -timeout panic skips
// cleanups, or the demo is killed).
var spawn = sync.OnceValue(func() chan func() {
	c := make(chan func())
	go func() {
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
})

// StartKilledWithUs starts cmd (Pdeathsig SIGKILL, added to whatever
// SysProcAttr it has) so that it is killed when this process dies.
func StartKilledWithUs(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	spawn() <- func() { errc <- cmd.Start() }
	return <-errc
}

// Process is a command started by Start and waited for in the background.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd with StartKilledWithUs and waits for it in the
// background; onExit, if not nil, gets Wait's result before Done closes.
func Start(cmd *exec.Cmd, onExit func(error)) (*Process, error) {
	if err := StartKilledWithUs(cmd); err != nil {
		return nil, err
	}
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if onExit != nil {
			onExit(err)
		}
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited (Cmd.ProcessState is set).
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends sig and waits for the process to exit; after grace it kills
// it (SIGKILL) and reports false.
func (p *Process) Stop(sig os.Signal, grace time.Duration) bool {
	if !p.Running() {
		return true
	}
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.Cmd.Process.Kill()
		<-p.done
		return false
	}
}

// Errors of WaitUntil.
var (
	ErrExited   = errors.New("exited")
	ErrNotReady = errors.New("not ready in time")
)

// WaitUntil polls ready every 50 ms until it is true (nil), the process
// exits (ErrExited), timeout passes (ErrNotReady) or ctx is done (its
// cause).
func (p *Process) WaitUntil(ctx context.Context, timeout time.Duration, ready func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.done:
			return ErrExited
		case <-deadline.C:
			return ErrNotReady
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// WriteGatewayConfig fills tmpl with cfg and writes it to
// dir/gateway-NAME.toml (name in lower case); it returns the path.
func WriteGatewayConfig(tmpl *template.Template, dir, name string, cfg GatewayConfig) (string, error) {
	var b strings.Builder
	if err := tmpl.Execute(&b, cfg); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "gateway-"+strings.ToLower(name)+".toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// Gateway is one `mipsec run` in a namespace; it can be stopped and
// started again with the same config.
type Gateway struct {
	Name, NS, ConfigPath string
	Config               GatewayConfig
	Log                  SyncBuffer
	// MarkRuns writes "=== start N" and "=== exit: ERR" into Log around
	// every run (for a gateway that restarts).
	MarkRuns bool

	runs int
	proc *Process
}

// Start runs `ip netns exec NS bin run -c ConfigPath` in its own process
// group (a Ctrl-C reaches only this process, which stops the gateways in
// order) and waits up to 15 s until ready(Log) is true.
func (g *Gateway) Start(ctx context.Context, bin string, ready func(log string) bool) error {
	if g.Running() {
		return fmt.Errorf("gateway %s already running", g.Name)
	}
	g.runs++
	if g.MarkRuns {
		fmt.Fprintf(&g.Log, "=== start %d\n", g.runs)
	}
	cmd := exec.Command("ip", "netns", "exec", g.NS, bin, "run", "-c", g.ConfigPath)
	cmd.Stdout, cmd.Stderr = &g.Log, &g.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := Start(cmd, func(err error) {
		if g.MarkRuns {
			fmt.Fprintf(&g.Log, "=== exit: %v\n", err)
		}
	})
	if err != nil {
		return err
	}
	g.proc = p
	switch err := p.WaitUntil(ctx, 15*time.Second, func() bool { return ready(g.Log.String()) }); {
	case errors.Is(err, ErrExited):
		return fmt.Errorf("gateway %s exited during start-up (%v)", g.Name, cmd.ProcessState)
	case errors.Is(err, ErrNotReady):
		return fmt.Errorf("gateway %s is not running after 15s", g.Name)
	default:
		return err
	}
}

// Runs is how many times Start has been called.
func (g *Gateway) Runs() int { return g.runs }

// Pid is the process ID of the current run (0 if none).
func (g *Gateway) Pid() int {
	if g.proc == nil {
		return 0
	}
	return g.proc.Cmd.Process.Pid
}

// Running reports whether the gateway runs.
func (g *Gateway) Running() bool { return g.proc != nil && g.proc.Running() }

// Stop sends sig and waits; after grace it sends SIGKILL and reports
// false. A gateway that does not run is left alone.
func (g *Gateway) Stop(sig os.Signal, grace time.Duration) bool {
	if g.proc == nil {
		return true
	}
	return g.proc.Stop(sig, grace)
}
