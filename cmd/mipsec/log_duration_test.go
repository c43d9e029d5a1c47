package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestLoggerDurations (issue "Safety and reliability" §6): durations are
// written as durations ("1m30s"), not nanoseconds, in both formats; the
// home agent and mobile node log lifetimes and handover times with
// zap.Duration.
func TestLoggerDurations(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(&b, zapcore.InfoLevel, "json")
	log.Info("binding added", zap.Duration("lifetime", 90*time.Second), zap.Duration("handover", 1500*time.Microsecond))
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(b.Bytes()), &m); err != nil {
		t.Fatalf("%q: %v", b.String(), err)
	}
	if m["lifetime"] != "1m30s" || m["handover"] != "1.5ms" {
		t.Errorf("json: lifetime %v, handover %v; want \"1m30s\", \"1.5ms\"", m["lifetime"], m["handover"])
	}
	b.Reset()
	log = newLogger(&b, zapcore.InfoLevel, "console")
	log.Info("binding added", zap.Duration("lifetime", 90*time.Second))
	if s := b.String(); !strings.Contains(s, `"lifetime": "1m30s"`) || strings.Contains(s, "90000000000") {
		t.Errorf("console: %q", s)
	}
}
