package netlab

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestSetTOML(t *testing.T) {
	const in = `# example
state_dir = "/var/lib/mipsec"
role = "mn"

[control]
socket = "/run/mipsec/mipsec.sock"

[mn]
  lifetime = "10m"   # comment
home_address = "2001:db8:1::100"

[[sa]]
name = "sa1"
spi = 0x101
`
	got, err := SetTOML(in, map[string]string{
		"state_dir":      `"/tmp/x"`,
		"control.socket": `"/tmp/x.sock"`,
		"mn.lifetime":    `"4s"`,
		"mn.new_key":     `true`,
		"log_level":      `"debug"`,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"state_dir = \"/tmp/x\"\nrole = \"mn\"\nlog_level = \"debug\"\n\n[control]",
		"[control]\nsocket = \"/tmp/x.sock\"\n",
		"  lifetime = \"4s\"\nhome_address = \"2001:db8:1::100\"\nnew_key = true\n\n[[sa]]",
		"spi = 0x101\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("SetTOML result lacks %q:\n%s", want, got)
		}
	}
	if _, err := SetTOML(in, map[string]string{"sa.spi": "1"}); err == nil || !strings.Contains(err.Error(), "array of tables") {
		t.Errorf("key in [[sa]]: err = %v", err)
	}
	if _, err := SetTOML(in, map[string]string{"ha.lifetime": "1"}); err == nil || !strings.Contains(err.Error(), "no table [ha]") {
		t.Errorf("missing table: err = %v", err)
	}
}

func TestStreamResult(t *testing.T) {
	t0 := time.Unix(100, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	r := StreamResult{
		SentAt: []time.Time{ms(0), ms(10), ms(20), ms(30), ms(40), ms(50)},
		// 2 and 3 lost (the handover at 15 ms), 4 arrives late.
		RecvAt: map[uint64]time.Time{0: ms(1), 1: ms(11), 4: ms(300), 5: ms(51)},
	}
	if lost, sent := r.Lost(ms(15), time.Time{}); lost != 2 || sent != 4 {
		t.Errorf("Lost = %d of %d, want 2 of 4", lost, sent)
	}
	if lost, sent := r.Lost(ms(0), ms(20)); lost != 0 || sent != 2 {
		t.Errorf("Lost before = %d of %d, want 0 of 2", lost, sent)
	}
	if first, ok := r.FirstAfter(ms(15)); !ok || !first.Equal(ms(51)) {
		t.Errorf("FirstAfter = %v %v, want %v", first, ok, ms(51))
	}
	if _, ok := r.FirstAfter(ms(60)); ok {
		t.Error("FirstAfter past the end found something")
	}
	if gap, at := r.LongestGap(ms(0), time.Time{}); gap != 249*time.Millisecond || !at.Equal(ms(51)) {
		t.Errorf("LongestGap = %v at %v, want 249ms at 51ms", gap, at)
	}
}

func TestPaced(t *testing.T) {
	stop := make(chan struct{})
	r := Paced(strings.NewReader(strings.Repeat("x", 1<<20)), 100_000, stop) // 1000 bytes per 10 ms
	start := time.Now()
	n, _ := io.ReadFull(r, make([]byte, 5000))
	if n != 5000 || time.Since(start) < 30*time.Millisecond {
		t.Errorf("5000 bytes at 100 kB/s in %v (%d bytes)", time.Since(start), n)
	}
	close(stop)
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("after stop: %d, %v; want EOF", n, err)
	}
}
