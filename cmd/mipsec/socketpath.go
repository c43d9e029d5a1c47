package main

// Which control socket a client (`mipsec status`, `sa list`, ...) talks
// to: the one the daemon of a configuration file listens on, so that
// `mipsec status -c gw.toml` finds the daemon that `mipsec run -c gw.toml`
// started.

import (
	"errors"
	"fmt"
	"os"

	"github.com/pelletier/go-toml/v2"

	"github.com/mipsec/mipsec/config"
)

// resolveSocket returns the control socket path: socketFlag (--socket)
// when it is set; else the [control] socket of the configuration file
// configFlag (-c) when that is set; else $MIPSEC_SOCKET; else
// config.DefaultControlSocket. The flags are "" when not given.
//
// A file with errors elsewhere (a key file the client may not read, a
// field this version refuses) still gives its socket when its TOML
// parses; when it does not, or its [control] socket is itself wrong, or
// the file cannot be read, the error names the file.
func resolveSocket(socketFlag, configFlag string) (string, error) {
	switch {
	case socketFlag != "":
		return socketFlag, nil
	case configFlag != "":
		return configSocket(configFlag)
	}
	if s := os.Getenv("MIPSEC_SOCKET"); s != "" {
		return s, nil
	}
	return config.DefaultControlSocket, nil
}

// configSocket is the control socket of the configuration file path.
func configSocket(path string) (string, error) {
	cfg, err := config.Load(path)
	if err == nil {
		return cfg.ControlSocket, nil
	}
	var ce config.Errors
	if !errors.As(err, &ce) {
		// Not there, not readable: the error names the file.
		return "", fmt.Errorf("no control socket from -c: %w", err)
	}
	for _, e := range ce {
		if e.Path == "control.socket" {
			return "", fmt.Errorf("no control socket from -c: %w", e) // file:line: control.socket: ...
		}
	}
	// Errors elsewhere: the [control] section alone, if the TOML parses.
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		return "", fmt.Errorf("no control socket from -c: %w", rerr)
	}
	var raw struct {
		Control struct {
			Socket string `toml:"socket"`
		} `toml:"control"`
	}
	if terr := toml.Unmarshal(data, &raw); terr != nil {
		return "", fmt.Errorf("no control socket from -c: %v: the file does not parse (mipsec check -c %s lists every error); fix it or give --socket PATH", ce[0], path)
	}
	if raw.Control.Socket == "" {
		return config.DefaultControlSocket, nil
	}
	return raw.Control.Socket, nil
}
