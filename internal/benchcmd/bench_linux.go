package benchcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mipsec/mipsec/internal/benchlab"
)

// benchE2E runs the side-by-side benchmark in network namespaces
// (benchlab.Run), prints the table and writes the result files.
func benchE2E(ctx context.Context, f *benchFlags, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "mipsec bench: %v\n", err)
		return 1
	}
	f.systems = dropMissing(f.systems, f.named, map[string]func() error{benchlab.StrongswanLibipsec: benchlab.StrongswanMissing}, stdout)
	if len(f.systems) == 0 {
		return fail(errors.New("no system left to run"))
	}
	cfg := benchlab.Config{
		Mipsec: f.mipsec, WireguardGo: f.wgGo, Systems: f.systems, Rounds: f.rounds, Duration: f.duration,
		Pings: f.pings, UDPSize: f.udpSize, UDPBitrate: f.udpBitrate, TunnelMTU: f.mtu, Port: f.port,
		Command:  strings.TrimSpace("mipsec bench " + strings.Join(os.Args[min(2, len(os.Args)):], " ")),
		Progress: stdout,
	}
	if cfg.Mipsec == "" {
		exe, err := os.Executable()
		if err != nil {
			return fail(err)
		}
		cfg.Mipsec = exe
	}
	for _, s := range f.systems {
		if s.ID == benchlab.WireguardGo && cfg.WireguardGo == "" {
			p, cleanup, err := benchFindWireguardGo(cfg.Mipsec, stdout)
			if err != nil {
				return fail(err)
			}
			defer cleanup()
			cfg.WireguardGo = p
		}
	}
	if err := benchlab.Check(cfg); err != nil {
		return fail(err)
	}
	rep, err := benchlab.Run(ctx, cfg)
	if ctx.Err() != nil {
		// A partial run must not overwrite the results of a complete one.
		fmt.Fprintf(stderr, "mipsec bench: interrupted (%v); everything removed, no results written\n", err)
		return 130
	}
	if rep != nil {
		fmt.Fprintln(stdout)
		rep.WriteTable(stdout)
		paths, werr := rep.WriteFiles(f.out)
		for _, p := range paths {
			fmt.Fprintf(stdout, "wrote %s\n", p)
		}
		if werr != nil && err == nil {
			err = werr
		}
		if err == nil && rep.Errors() > 0 {
			err = fmt.Errorf("%d test(s) failed (see above)", rep.Errors())
		}
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// benchFindWireguardGo returns a wireguard-go binary: next to mipsec (make
// bench-e2e builds bin/wireguard-go), on PATH, or built now from the
// golang.zx2c4.com/wireguard module mipsec depends on (go on PATH, run
// inside the mipsec repository) into a temporary directory that cleanup
// removes.
func benchFindWireguardGo(mipsec string, stdout io.Writer) (path string, cleanup func(), err error) {
	nop := func() {}
	if p := filepath.Join(filepath.Dir(mipsec), "wireguard-go"); benchIsExec(p) {
		return p, nop, nil
	}
	if p, err := exec.LookPath("wireguard-go"); err == nil {
		return p, nop, nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", nop, errors.New("no wireguard-go binary: pass --wireguard-go, or run inside the mipsec repository with go on PATH (go build -o bin/wireguard-go golang.zx2c4.com/wireguard)")
	}
	dir, err := os.MkdirTemp("", "mipsec-bench-wg-")
	if err != nil {
		return "", nop, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	p := filepath.Join(dir, "wireguard-go")
	fmt.Fprintf(stdout, "==> building wireguard-go: go build -o %s golang.zx2c4.com/wireguard\n", p)
	if out, err := exec.Command(goTool, "build", "-o", p, "golang.zx2c4.com/wireguard").CombinedOutput(); err != nil {
		cleanup()
		return "", nop, fmt.Errorf("building wireguard-go (pass --wireguard-go, or run inside the mipsec repository): %v\n%s", err, out)
	}
	return p, cleanup, nil
}

func benchIsExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
