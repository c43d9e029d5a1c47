package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/dataplane/tuntest"
	"github.com/mipsec/mipsec/dataplane/underlaytest"
	"github.com/mipsec/mipsec/internal/fixture"
)

// TestServe runs the daemon loop with fake devices until its context ends,
// as SIGTERM would end it, and checks the exit code and the recorded state.
func TestServe(t *testing.T) {
	state := t.TempDir()
	cfg := fixture.Config(t, "gateway-a.toml", state)
	ua, _ := underlaytest.NewPair(epA, epB)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- serve(ctx, cfg, zaptest.NewLogger(t), daemonOptions{noControl: true, device: tuntest.New(1, 8), conn: ua})
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case rc := <-done:
		if rc != 0 {
			t.Errorf("serve = %d", rc)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	// A clean stop left exact records: 0 used, so the next start is at 0.
	d, err := newDaemon(cfg, zaptest.NewLogger(t), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, _ := fixture.SealSeq(d.SAD().Outbound(fixture.SPIAtoB), 0); got != 1 {
		t.Errorf("first seq after a clean stop with no traffic: %d", got)
	}
	// A start failure is exit 1.
	if rc := serve(context.Background(), fixture.Config(t, "gateway-b.toml", t.TempDir()), zaptest.NewLogger(t), daemonOptions{noControl: true, device: tuntest.New(1, 8)}); rc != 1 {
		t.Errorf("serve with a failing open = %d", rc)
	}
}

// TestRunMetricsFlag: run --metrics serves the SA counters over HTTP while
// the daemon runs, and a port already in use is a start failure (exit 1).
func TestRunMetricsFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := fixture.Config(t, "gateway-a.toml", t.TempDir())
	ua, _ := underlaytest.NewPair(epA, epB)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- serve(ctx, cfg, zaptest.NewLogger(t), daemonOptions{noControl: true, metricsAddr: addr, device: tuntest.New(1, 8), conn: ua})
	}()
	var body string
	for i := 0; i < 100 && !strings.Contains(body, "mipsec_sa_packets"); i++ {
		time.Sleep(20 * time.Millisecond)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	if !strings.Contains(body, "mipsec_sa_packets") || !strings.Contains(body, fmt.Sprintf("%#08x", fixture.SPIAtoB)) {
		t.Errorf("metrics lack the per-SA series for %#08x:\n%.2000s", fixture.SPIAtoB, body)
	}

	// A second daemon cannot take the same metrics address.
	ub, _ := underlaytest.NewPair(epA, epB)
	if rc := serve(context.Background(), fixture.Config(t, "gateway-a.toml", t.TempDir()), zaptest.NewLogger(t),
		daemonOptions{noControl: true, metricsAddr: addr, device: tuntest.New(1, 8), conn: ub}); rc != 1 {
		t.Errorf("second daemon on a busy metrics address: exit %d, want 1", rc)
	}
	cancel()
	if rc := <-done; rc != 0 {
		t.Errorf("serve = %d", rc)
	}
}
