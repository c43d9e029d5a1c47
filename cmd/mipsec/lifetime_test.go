package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCheckHardLifetime: `mipsec check` warns that a hard lifetime ends a
// manual SA's traffic (nothing rekeys it), naming the SA and the limit;
// the example pair, which sets none, gets no such warning.
func TestCheckHardLifetime(t *testing.T) {
	var out, errb bytes.Buffer
	f := withStateDir(t, "../../testdata/minimal.toml", t.TempDir())
	checkConfig(f, &out, &errb, fakeProbe(ext4Magic, nil))
	if !strings.Contains(errb.String(), "a hard lifetime (2000000 bytes) removes the SA") || !strings.Contains(errb.String(), "sa[0]") {
		t.Errorf("no hard-lifetime warning:\n%s", errb.String())
	}
	for _, name := range []string{"gateway-a", "gateway-b"} {
		out.Reset()
		errb.Reset()
		checkConfig(withStateDir(t, "../../testdata/"+name+".toml", t.TempDir()), &out, &errb, fakeProbe(ext4Magic, nil))
		if strings.Contains(errb.String(), "hard lifetime") {
			t.Errorf("%s: %s", name, errb.String())
		}
	}
}
