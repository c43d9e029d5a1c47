package main

// What `mipsec run` runs: a node (package node) and, around it, the
// control socket; metrics are served beside it (run.go).

import (
	"fmt"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/seqstore"
)

// daemonOptions are the daemon's seams for tests.
type daemonOptions struct {
	// device and conn replace the Linux TUN and underlay (node.Config).
	device tun.Device
	conn   dataplane.Underlay
	// store and reserver configure the sequence-number reservations.
	store    seqstore.Options
	reserver seqstore.ReserverOptions
	// noControl skips the control socket.
	noControl bool
	// metricsAddr, when set, serves Prometheus metrics there (run --metrics).
	metricsAddr string
	// workers is node.Config.Workers.
	workers int
	// host replaces the kernel side of the HA / MN (tests).
	host node.Host
}

// daemon is a node with its control socket.
type daemon struct {
	*node.Node
	cfg  *config.File
	log  *zap.Logger
	opts daemonOptions
	// ControlPath is where the control socket listens (config
	// control.socket, default config.DefaultControlSocket).
	ControlPath string
	ctl         *control.Server
}

func newDaemon(cfg *config.File, log *zap.Logger, opts daemonOptions) (*daemon, error) {
	nc := cfg.Config
	nc.Logger = log
	nc.Device, nc.Conn = opts.device, opts.conn
	nc.Host = opts.host
	nc.Workers = opts.workers
	nc.SeqStore, nc.Reservations = opts.store, opts.reserver
	n, err := node.New(nc)
	if err != nil {
		return nil, err
	}
	return &daemon{Node: n, cfg: cfg, log: log, opts: opts, ControlPath: cfg.ControlSocket}, nil
}

// Start starts the node, then the control socket.
func (d *daemon) Start() error {
	if err := d.Node.Start(); err != nil {
		return err
	}
	if !d.opts.noControl {
		ctl, err := control.Listen(d.ControlPath, d, d.log.Named("control"))
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		d.ctl = ctl
	}
	d.log.Info("mipsec running", zap.String("config", d.cfg.Path), zap.String("control", d.ControlPath))
	return nil
}

// Close closes the control socket, then the node.
func (d *daemon) Close() error {
	if d.ctl != nil {
		d.ctl.Close()
		d.ctl = nil
	}
	err := d.Node.Close()
	d.log.Info("mipsec stopped", zap.Error(err))
	return err
}

// Status is the daemon's part of the "status" answer.
func (d *daemon) Status() control.StatusInfo {
	ns := d.Node.Status()
	return control.StatusInfo{Version: version(), Config: d.cfg.Path, Control: d.ControlPath,
		Role: ns.Role, TUN: ns.TUN, StateDir: ns.StateDir, Started: ns.Started}
}

var (
	_ control.Target         = (*daemon)(nil)
	_ control.MobilityTarget = (*daemon)(nil)
)
