package config

import (
	"regexp"
	"strings"
	"testing"
)

// TestDurationMessages (issue "Safety and reliability" §6): durations in
// messages are written as durations, never as nanoseconds.
func TestDurationMessages(t *testing.T) {
	file := minimalWith(t, t.TempDir(), func(s string) string {
		return strings.Replace(s, `lifetime = { soft = { bytes = 1000000 }, hard = { bytes = 2000000 } }`,
			`lifetime = { soft = { time = "2h" }, hard = { time = "90m" } }`, 1)
	})
	got := loadErrors(t, file)
	if !strings.Contains(got, "sa[0].lifetime.soft.time: 2h0m0s is above the hard limit 1h30m0s") {
		t.Errorf("%q", got)
	}
	if regexp.MustCompile(`[0-9]{10}`).MatchString(got[strings.Index(got, "sa[0]"):]) {
		t.Errorf("nanoseconds in %q", got)
	}
}
