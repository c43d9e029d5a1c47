package main

// SIGHUP: `mipsec run` reads its configuration file again and applies the
// difference live (node.Node.Reload), like `swanctl --load-all`: new SAs
// added, removed ones deleted, changed ones replaced, the others left
// running; the policy and peer lists replaced when they differ. A file
// with errors changes nothing. What cannot change live (role, state_dir,
// [tun], [underlay], [mobility], [control], [log]) is logged as needing a
// restart, and the daemon goes on with what it runs.

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/mipsec/mipsec/config"
	"github.com/mipsec/mipsec/node"
)

// reloadSignals returns a channel that gets SIGHUP, and the function that
// stops it. A SIGHUP that comes while a reload runs is kept (one), so the
// file is read again after it.
func reloadSignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// reloadConfig reads path again and applies it to the running daemon,
// logging each change (one line each, so that the logger's sampling of
// repeated messages keeps them all) and each error. It reports whether
// the file was applied in full.
func (d *daemon) reloadConfig(path string) bool {
	log := d.log
	log.Info("reloading the configuration", zap.String("config", path))
	cfg, err := config.Load(path)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, e := range ce {
				log.Error("reload: " + e.Error())
			}
			log.Error(fmt.Sprintf("configuration not reloaded: %s has %d error%s; nothing changed", path, len(ce), plural(len(ce))))
		} else {
			log.Error("configuration not reloaded; nothing changed", zap.String("config", path), zap.Error(err))
		}
		return false
	}
	for _, w := range configWarnings(cfg, hostProbe) {
		log.Warn(w)
	}
	res, err := d.Node.Reload(cfg.Config)
	logSAChanges(log, "added", res.Added)
	logSAChanges(log, "updated", res.Updated)
	logSAChanges(log, "deleted", res.Deleted)
	if res.Policies {
		log.Info("reload: policies replaced", zap.Int("policies", len(cfg.Policies)))
	}
	if res.Peers {
		log.Info("reload: peers replaced", zap.Int("peers", len(cfg.Peers)))
	}
	if err != nil {
		if res.Changed() {
			log.Error("configuration partly reloaded: the changes above were made, the rest of the file was not applied", zap.Error(err))
		} else {
			log.Error("configuration not reloaded; nothing changed", zap.Error(err))
		}
		return false
	}
	restart := res.NeedsRestart
	if cfg.ControlSocket != d.cfg.ControlSocket {
		restart = append(restart, fmt.Sprintf("control.socket: %s -> %s", d.cfg.ControlSocket, cfg.ControlSocket))
	}
	if cfg.LogLevel != d.cfg.LogLevel {
		restart = append(restart, fmt.Sprintf("log.level: %s -> %s", d.cfg.LogLevel, cfg.LogLevel))
	}
	if cfg.LogFormat != d.cfg.LogFormat {
		restart = append(restart, fmt.Sprintf("log.format: %s -> %s", d.cfg.LogFormat, cfg.LogFormat))
	}
	for _, s := range restart {
		log.Warn("reload: not applied, needs a restart: " + s)
	}
	if !res.Changed() {
		log.Info("configuration reloaded: no change to apply", zap.String("config", path))
		return true
	}
	log.Info("configuration reloaded", zap.String("config", path),
		zap.Int("added", len(res.Added)), zap.Int("updated", len(res.Updated)), zap.Int("deleted", len(res.Deleted)),
		zap.Bool("policies", res.Policies), zap.Bool("peers", res.Peers))
	return true
}

func logSAChanges(log *zap.Logger, what string, cs []node.SAChange) {
	for _, c := range cs {
		log.Info(fmt.Sprintf("reload: %s %s", what, c),
			zap.String("sa", c.Name), zap.String("spi", fmt.Sprintf("%#08x", c.SPI)), zap.Stringer("dir", c.Dir))
	}
}
