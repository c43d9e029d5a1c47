package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/sad"
)

// rewrite writes orig with the edits (pairs of old and new text, each old
// text present once) to file.
func rewrite(t *testing.T, file, orig string, edits ...string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(fixture.Edit(t, orig, edits...)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Edits of gateway-a.toml. goodEdits remove b-to-a-v6 (and its SPI from
// the peer), add a-to-b-extra with a policy, and change the TUN's MTU,
// which needs a restart; badEdits give a second SA the key of a-to-b-v4
// and point a policy at an SPI that is not there.
var (
	goodEdits = slices.Concat(fixture.ReloadEdits, []string{"mtu = 1400", "mtu = 1380"})
	badEdits  = []string{
		"# --- Policies", `[[sa]]
name = "same-key"
spi = 0x0000b0fe
dir = "out"
local = "198.51.100.1"
remote = "203.0.113.1"
algorithm = "aes128gcm16"
enc_key = "0x4a0b1c2d3e4f5061728394a5b6c7d8e9f0011223"
selectors = [{ local = "192.0.2.0/25", remote = "10.9.0.0/16" }]

# --- Policies`,
		"spi = 0x0000b006\nselectors", "spi = 0x0000dead\nselectors",
	}
)

// messages returns the messages of the entries at level and above.
func messages(logs *observer.ObservedLogs, level zapcore.Level) []string {
	var out []string
	for _, e := range logs.All() {
		if e.Level >= level {
			out = append(out, e.Message)
		}
	}
	return out
}

func hasMessage(logs *observer.ObservedLogs, level zapcore.Level, prefix string) bool {
	return slices.ContainsFunc(messages(logs, level), func(m string) bool { return strings.HasPrefix(m, prefix) })
}

// TestServeSIGHUP runs the daemon loop over fake devices and sends the
// test process SIGHUP (the channel `run` uses): a file with errors is
// logged, error by error, and changes nothing; a good one is applied and
// each change logged, the MTU change as needing a restart; SIGHUP does not
// stop the daemon, cancelling (SIGTERM) still does, cleanly.
func TestServeSIGHUP(t *testing.T) {
	file := withStateDir(t, "../../testdata/gateway-a.toml", t.TempDir())
	origB, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	orig := string(origB)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	hup, stopHUP := reloadSignals()
	defer stopHUP()
	ua, _ := underlaytest.NewPair(epA, epB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- serveReload(ctx, cfg, zap.New(core), daemonOptions{noControl: true, device: tuntest.New(1, 8), conn: ua}, hup)
	}()
	eventually(t, "the daemon to run", func() bool { return hasMessage(logs, zapcore.InfoLevel, "mipsec running") })

	sighup := func(wait string) {
		t.Helper()
		logs.TakeAll()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the reload", func() bool { return hasMessage(logs, zapcore.InfoLevel, wait) })
	}

	// A bad file: every error logged with its line, nothing applied.
	rewrite(t, file, orig, badEdits...)
	sighup("configuration not reloaded")
	errs := messages(logs, zapcore.ErrorLevel)
	var lines int
	for _, m := range errs {
		if strings.HasPrefix(m, "reload: "+file+":") {
			lines++
		}
	}
	if lines < 2 || !strings.Contains(strings.Join(errs, "\n"), "same nonces") || !strings.Contains(strings.Join(errs, "\n"), "0x0000dead") {
		t.Errorf("the errors of the bad file are not all logged:\n%s", strings.Join(errs, "\n"))
	}
	for _, m := range messages(logs, zapcore.DebugLevel) {
		if strings.HasPrefix(m, "sa ") || strings.HasPrefix(m, "reload: added") || strings.HasPrefix(m, "reload: deleted") {
			t.Errorf("a bad file changed something: %s", m)
		}
	}

	// A good one.
	rewrite(t, file, orig, goodEdits...)
	sighup("configuration reloaded")
	all := messages(logs, zapcore.DebugLevel)
	for _, want := range []string{
		"reload: added a-to-b-extra (out SA 0x0000b0ff)",
		"reload: deleted b-to-a-v6 (in SA 0x0000a006)",
		"reload: policies replaced",
		"reload: peers replaced",
		"reload: not applied, needs a restart: tun.mtu: 1400 -> 1380",
	} {
		if !slices.Contains(all, want) {
			t.Errorf("no %q in the log:\n%s", want, strings.Join(all, "\n"))
		}
	}
	if slices.ContainsFunc(all, func(m string) bool { return strings.HasPrefix(m, "reload: updated") }) {
		t.Errorf("an unchanged SA was updated:\n%s", strings.Join(all, "\n"))
	}

	// The same file again: nothing to do.
	sighup("configuration reloaded: no change")

	cancel()
	select {
	case rc := <-done:
		if rc != 0 {
			t.Errorf("serve = %d", rc)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestDaemonReloadConfig: reloadConfig on a running daemon leaves the SAD
// alone for a bad file and applies a good one; the SA both keep goes on
// with its sequence numbers.
func TestDaemonReloadConfig(t *testing.T) {
	file := withStateDir(t, "../../testdata/gateway-a.toml", t.TempDir())
	origB, _ := os.ReadFile(file)
	orig := string(origB)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ua, _ := underlaytest.NewPair(epA, epB)
	core, logs := observer.New(zapcore.DebugLevel)
	d, err := newDaemon(cfg, zap.New(core), daemonOptions{noControl: true, device: tuntest.New(1, 8), conn: ua})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	keep := d.SAD().Outbound(fixture.SPIAtoB)
	first, _ := fixture.SealSeq(keep, 0)
	sas := d.SAs()

	rewrite(t, file, orig, badEdits...)
	if d.reloadConfig(file) {
		t.Error("a bad file reloaded")
	}
	if !slices.Equal(sas, d.SAs()) || len(d.Policies(sad.Outbound)) != 3 {
		t.Error("a bad file changed the SAD or SPD")
	}
	// A missing file is an error too.
	if d.reloadConfig(file + ".missing") {
		t.Error("a missing file reloaded")
	}
	if !hasMessage(logs, zapcore.ErrorLevel, "configuration not reloaded; nothing changed") {
		t.Error("the missing file is not logged")
	}

	rewrite(t, file, orig, goodEdits...)
	if !d.reloadConfig(file) {
		t.Fatal("the good file did not reload")
	}
	if d.SAD().Inbound(0xa006) != nil || d.SAD().Outbound(0xb0ff) == nil || len(d.Policies(sad.Outbound)) != 4 {
		t.Error("the good file is not what runs")
	}
	if d.SAD().Outbound(fixture.SPIAtoB) != keep {
		t.Error("an unchanged SA was replaced")
	}
	if got, _ := fixture.SealSeq(keep, 0); got != first+1 {
		t.Errorf("the unchanged SA: seq %d, want %d", got, first+1)
	}
}
