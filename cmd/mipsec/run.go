package main

// `mipsec run -c FILE`: the daemon in the foreground. It logs through zap
// (console or JSON, per [log]), reloads FILE on SIGHUP (reload.go), stops
// on SIGINT or SIGTERM (closing the control socket and the dataplane, then
// recording the exact sequence numbers) and exits 0; configuration errors
// exit 1 before anything starts.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/config"
)

func runDaemon(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", DefaultConfigPath, "configuration `file`")
	metrics := fs.String("metrics", "", "serve Prometheus metrics on `addr` (host:port, e.g. 127.0.0.1:9150); off when empty")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mipsec run [-c FILE] [--metrics ADDR]\n\nRun the daemon in the foreground (as root: it creates a TUN device and raw sockets):\na security gateway, or with role = \"ha\" / \"mn\" a Mobile IPv6 home agent / mobile node.\n\nSIGHUP reloads FILE and applies the difference live: new SAs are added, removed\nones deleted, changed ones replaced (the same keys continue their sequence\nnumbers), unchanged ones keep running; the policy and peer lists are replaced\nif they differ. A file with errors changes nothing (the errors are logged).\nrole, state_dir, [tun], [underlay], [mobility], [control] and [log] changes\nneed a restart (logged as warnings). SIGINT and SIGTERM stop it cleanly.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	// SIGHUP from now on reloads instead of killing the daemon; one that
	// comes during the start is applied once it runs.
	hup, stopHUP := reloadSignals()
	defer stopHUP()
	cfg, err := config.Load(*path)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, e := range ce {
				fmt.Fprintln(stderr, e.Error())
			}
			fmt.Fprintf(stderr, "%s: %d error%s; nothing started\n", *path, len(ce), plural(len(ce)))
		} else {
			fmt.Fprintf(stderr, "mipsec run: %v\n", err)
		}
		return 1
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	defer log.Sync()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serveReload(ctx, cfg, log, daemonOptions{metricsAddr: *metrics}, hup)
}

// serve runs the daemon until ctx ends: the part of `run` that tests drive
// with fake devices.
func serve(ctx context.Context, cfg *config.File, log *zap.Logger, opts daemonOptions) int {
	return serveReload(ctx, cfg, log, opts, nil)
}

// serveReload is serve that reloads cfg.Path whenever reload delivers
// (SIGHUP; nil: never).
func serveReload(ctx context.Context, cfg *config.File, log *zap.Logger, opts daemonOptions, reload <-chan os.Signal) int {
	log.Info("mipsec starting", zap.String("version", version()), zap.String("config", cfg.Path))
	for _, w := range configWarnings(cfg, hostProbe) {
		log.Warn(w)
	}
	d, err := newDaemon(cfg, log, opts)
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	if err := d.Start(); err != nil {
		log.Error("cannot start", zap.Error(err))
		d.Close()
		return 1
	}
	if opts.metricsAddr != "" {
		stopMetrics, err := serveMetrics(opts.metricsAddr, d)
		if err != nil {
			log.Error("cannot start", zap.Error(err))
			d.Close()
			return 1
		}
		defer stopMetrics()
		log.Info("metrics", zap.String("addr", opts.metricsAddr))
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-reload:
			d.reloadConfig(cfg.Path)
		}
	}
	log.Info("shutting down", zap.NamedError("reason", context.Cause(ctx)))
	if err := d.Close(); err != nil {
		log.Error("shutdown", zap.Error(err))
		return 1
	}
	return 0
}
