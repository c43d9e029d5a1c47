package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
)

// TestStatsHA: the home agent's counters, BadCoA among them, reach
// `mipsec stats` and its --json; a gateway's answer has no "ha".
func TestStatsHA(t *testing.T) {
	_, ft := startServer(t)
	ha := &metricsMobTarget{fakeTarget: ft, ok: true, m: node.MobilityMetrics{
		Role: node.RoleHA, Bindings: 2,
		HA: mip6.HAStats{BUAccepted: 9, BadCoA: 3, NATDetected: 1, BAsSent: 12, BAsFailed: 1, RateLimited: 180,
			BURejected: map[string]uint64{"invalid-care-of-address": 3}},
	}}
	s, err := control.Listen(filepath.Join(shortTempDir(t), "ha.sock"), ha, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	out := mustCLI(t, s, "stats")
	wantContains(t, "stats", out, "ha: bindings 2, BUs accepted 9, bad care-of address 3; BAs sent 12, failed 1; NAT 1",
		"ha rejected: invalid-care-of-address=3", "ha dropped before processing: rate_limited=180 queue_full=0 too_big=0")
	var st control.StatsInfo
	if err := json.Unmarshal([]byte(mustCLI(t, s, "stats", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.HA == nil || st.HA.BadCoA != 3 || st.HA.RateLimited != 180 || st.HA.BURejected["invalid-care-of-address"] != 3 || st.HA.BAsSent != 12 || st.HA.Bindings != 2 {
		t.Errorf("stats --json ha: %+v", st.HA)
	}

	gw, _ := startServer(t)
	var gst control.StatsInfo
	if err := json.Unmarshal([]byte(mustCLI(t, gw, "stats", "--json")), &gst); err != nil {
		t.Fatal(err)
	}
	if gst.HA != nil {
		t.Errorf("gateway stats have an ha part: %+v", gst.HA)
	}
}
