package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestLogger(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(&b, zapcore.InfoLevel, "json")
	log.Debug("hidden")
	log.Info("sa added", zap.String("spi", "0x0000b001"))
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(b.Bytes()), &m); err != nil {
		t.Fatalf("not one JSON line: %q: %v", b.String(), err)
	}
	if m["msg"] != "sa added" || m["spi"] != "0x0000b001" || m["level"] != "info" {
		t.Errorf("%v", m)
	}
	b.Reset()
	log = newLogger(&b, zapcore.DebugLevel, "console")
	log.Debug("shown", zap.Int("n", 1))
	if s := b.String(); !strings.Contains(s, "DEBUG\tshown\t{\"n\": 1}") {
		t.Errorf("console line %q", s)
	}
	// Repeated messages are sampled.
	b.Reset()
	for range 1000 {
		log.Warn("storm")
	}
	if n := strings.Count(b.String(), "storm"); n >= 1000 || n < 10 {
		t.Errorf("%d of 1000 identical warnings logged", n)
	}
}
