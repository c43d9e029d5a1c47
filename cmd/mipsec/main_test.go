package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/esp"
)

func TestDemo(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"demo", "--engine", "-packets", "200", "-size", "512"}, &out, &errb); rc != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", rc, out.String(), errb.String())
	}
	s := out.String()
	for _, want := range []string{
		"identical to A's",
		"the same packet again (replay)               -> replay",
		"a new packet with one byte flipped           -> icv",
		"the same new packet, unmodified              -> ok",
		"unknown SPI                                  -> no_sa",
		"cut short                                    -> malformed",
		"A sends from outside its site (SPD)          -> policy",
		"packets=2 replay=1 icv=1",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q\n%s", want, s)
		}
	}
	// Every algorithm appears in the throughput table with all packets delivered.
	for _, alg := range []string{"aes128gcm16", "chacha20poly1305", "aes128gmac", "aes256-sha256", "aes128-sha1", "null-sha256"} {
		if !strings.Contains(s, alg) {
			t.Errorf("throughput table lacks %s", alg)
		}
	}
	if n := len(esp.AlgorithmNames()); strings.Count(s, "packets=200 drops=0") != n {
		t.Errorf("want %d algorithms (esp.AlgorithmNames) with packets=200 drops=0\n%s", n, s)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"demo", "--engine", "-size", "10"},
		{"demo", "--engine", "-algs", "rot13"},
	} {
		var out, errb bytes.Buffer
		if rc := run(args, &out, &errb); rc != 2 {
			t.Errorf("run(%q) = %d, want 2", args, rc)
		}
		if errb.Len() == 0 {
			t.Errorf("run(%q) printed no error", args)
		}
	}
}

func TestAlgorithms(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"algorithms"}, &out, &errb); rc != 0 {
		t.Fatal(rc)
	}
	if !strings.Contains(out.String(), "aes128gcm16") || !strings.Contains(out.String(), "RFC 8221") {
		t.Errorf("algorithms output:\n%s", out.String())
	}
}
