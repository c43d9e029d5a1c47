package main

import (
	"bytes"
	"strings"
	"testing"
)

// Bad flags are usage errors (exit 2) that name the flag, before anything
// needs root or starts.
func TestBenchFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--rounds", "0"}, "--rounds 0"},
		{[]string{"--duration", "500ms"}, "--duration 500ms"},
		{[]string{"--duration", "-1s", "--inprocess"}, "--duration -1s"},
		{[]string{"--systems", "ipsec"}, `unknown system "ipsec"`},
		{[]string{"--systems", "veth,veth"}, "named twice"},
		{[]string{"--systems", "mipsec-raw-kernl"}, `unknown system "mipsec-raw-kernl" (have mipsec-udp, mipsec-raw, mipsec-raw-kernel (optional),`},
		{[]string{"--pings", "0"}, "--pings 0"},
		{[]string{"--udp-size", "1500"}, "--udp-size 1500"},
		{[]string{"--udp-size", "20"}, "--udp-size 20"},
		{[]string{"--mtu", "1500"}, "--mtu 1500"},
		{[]string{"--port", "70000"}, "--port 70000"},
		{[]string{"--udp-bitrate", "-5"}, "--udp-bitrate"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--cores", "2"}, "apply to --inprocess only"},
		{[]string{"--inprocess", "--cores", "0"}, `--cores "0"`},
		{[]string{"--inprocess", "--cores", "1,x"}, `"x" is not a core count`},
		{[]string{"--inprocess", "--cores", "2,2"}, "2 named twice"},
		{[]string{"--inprocess", "--algorithms", "aes128gcm"}, `"aes128gcm" is not an algorithm (have `},
		{[]string{"--inprocess", "--algorithms", "aes128gcm16,aes128gcm16"}, "named twice"},
	} {
		var out, errb bytes.Buffer
		if rc := run(append([]string{"bench"}, tt.args...), &out, &errb); rc != 2 {
			t.Errorf("bench %v: exit %d, want 2\n%s", tt.args, rc, errb.String())
		}
		if !strings.Contains(errb.String(), tt.want) {
			t.Errorf("bench %v: stderr lacks %q:\n%s", tt.args, tt.want, errb.String())
		}
	}
}

func TestBenchHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"bench", "-h"}, &out, &errb); rc != 0 {
		t.Fatalf("bench -h: exit %d", rc)
	}
	for _, want := range []string{"wireguard-go", "-rounds", "-systems", "-inprocess", "e2e.json",
		"packet_socket = true", "mipsec-raw-kernel (optional)", `(default "default")`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("bench -h lacks %q:\n%s", want, errb.String())
		}
	}
}
