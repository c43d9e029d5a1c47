package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
)

// metricsMobTarget is a fakeTarget with mobility metrics.
type metricsMobTarget struct {
	*fakeTarget
	m  node.MobilityMetrics
	ok bool
}

func (f *metricsMobTarget) MobilityMetrics() (node.MobilityMetrics, bool) { return f.m, f.ok }

func TestMetricsMobility(t *testing.T) {
	_, ft := startServer(t)
	ha := &metricsMobTarget{fakeTarget: ft, ok: true, m: node.MobilityMetrics{
		Role: node.RoleHA, Bindings: 3,
		BindingEvents: map[string]uint64{"added": 4, "removed": 1, "expired": 1},
		HA: mip6.HAStats{BUAccepted: 10, NATDetected: 2, BadCoA: 4, BAsSent: 15, RateLimited: 180,
			BURejected: map[string]uint64{"seq_out_of_window": 5}},
	}}
	mn := &metricsMobTarget{fakeTarget: ft, ok: true, m: node.MobilityMetrics{
		Role: node.RoleMN, LastHandover: 250 * time.Millisecond,
		Registered: true, NAT: true, NATDetected: 1,
		MN: mip6.MNCounters{BUsSent: 7, Handovers: 2, Keepalives: 3, BAsAccepted: 6, BAsRejected: 1, BURetransmits: 4, Expirations: 1},
	}}
	gw := &metricsMobTarget{fakeTarget: ft}
	for _, tt := range []struct {
		name      string
		src       metricsSource
		want, not []string
	}{
		{"ha", ha, []string{
			"mipsec_mip6_bindings 3", `mipsec_mip6_binding_events_total{event="added"} 4`, `mipsec_mip6_binding_events_total{event="expired"} 1`,
			"mipsec_mip6_bu_accepted_total 10", `mipsec_mip6_bu_rejected_total{reason="seq_out_of_window"} 5`,
			`mipsec_mip6_ba_total{result="sent"} 15`, "mipsec_mip6_nat_detected_total 2", "mipsec_mip6_bu_bad_coa_total 4",
			`mipsec_mip6_signaling_dropped_total{reason="rate_limited"} 180`, `mipsec_mip6_signaling_dropped_total{reason="queue_full"} 0`,
		}, []string{"mipsec_mip6_handovers_total", "mipsec_mip6_registered", "mipsec_mip6_mn_total"}},
		{"mn", mn, []string{
			"mipsec_mip6_bu_sent_total 7", "mipsec_mip6_handovers_total 2", "mipsec_mip6_last_handover_seconds 0.25",
			"mipsec_mip6_nat_keepalives_total 3", "mipsec_mip6_registered 1", "mipsec_mip6_nat 1",
			`mipsec_mip6_ba_total{result="accepted"} 6`, "mipsec_mip6_nat_detected_total 1",
			`mipsec_mip6_mn_total{counter="bu_retransmits"} 4`, `mipsec_mip6_mn_total{counter="expirations"} 1`, `mipsec_mip6_mn_total{counter="bu_give_ups"} 0`,
		}, []string{"mipsec_mip6_bindings ", "mipsec_mip6_bu_accepted_total", "mipsec_mip6_bu_bad_coa_total", "mipsec_mip6_signaling_dropped_total"}},
		{"gateway", gw, nil, []string{"mipsec_mip6_"}},
	} {
		h, err := newMetricsHandler(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		body := scrape(t, srv.URL)
		srv.Close()
		wantContains(t, tt.name, body, tt.want...)
		for _, n := range tt.not {
			if strings.Contains(body, n) {
				t.Errorf("%s: has %q", tt.name, n)
			}
		}
		if !strings.Contains(body, "mipsec_sa_packets_total") {
			t.Errorf("%s: the other metrics are gone", tt.name)
		}
	}
}
