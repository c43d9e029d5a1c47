package main

// The Prometheus endpoint of `mipsec run --metrics ADDR`. A custom Collector
// reads the counters the SAD and the dataplane already keep, at scrape time:
// nothing is added to the packet path.
//
//	mipsec_sa_packets_total{dir,spi,name}        packets sealed / delivered
//	mipsec_sa_bytes_total{dir,spi,name}          their plaintext bytes
//	mipsec_sa_drops_total{dir,spi,name,reason}   drops by verdict (non-zero only)
//	mipsec_sa_seq{dir,spi,name}                  last sequence number sent / highest accepted
//	mipsec_spd_drops_total{dir,reason}           no_match, unparsable, unprotected, no_sa
//	mipsec_policy_hits_total{dir,policy}         per-policy hits
//	mipsec_dataplane_drops_total{reason}         dataplane drops outside any SA
//	mipsec_dataplane_total{counter}              other dataplane counters
//	mipsec_peer_endpoint_changes_total{peer}     roaming moves of a peer's endpoint
//	mipsec_underlay_total{counter}               the underlay's own counters (keepalives,
//	                                             malformed, rx_ip_malformed, tx_packet_socket,
//	                                             tx_packet_socket_fallback, ...)
//
// With role = "ha" or "mn" (mobility.go):
//
//	mipsec_mip6_bindings                         HA: bindings in the cache
//	mipsec_mip6_binding_events_total{event}      HA: added, updated, removed, expired
//	mipsec_mip6_bu_accepted_total                HA: Binding Updates accepted
//	mipsec_mip6_bu_rejected_total{reason}        HA: rejected or dropped, by reason
//	mipsec_mip6_bu_bad_coa_total                 HA: BUs refused for their care-of address
//	mipsec_mip6_signaling_received_total         HA: signaling messages taken from IPsec
//	mipsec_mip6_signaling_dropped_total{reason}  HA: dropped before processing: rate_limited,
//	                                             queue_full, too_big
//	mipsec_mip6_mps_answered_total               HA: Mobile Prefix Solicitations answered
//	mipsec_mip6_home_link_errors_total           HA: failed proxy ND / route changes
//	mipsec_mip6_dr1_failed_total                 HA: data to a bound home address whose CoA
//	                                             cannot be reached (dropped)
//	mipsec_mip6_mn_total{counter}                MN: every mip6.MNCounters counter by its JSON
//	                                             name (bu_retransmits, bu_give_ups, expirations, ...)
//	mipsec_mip6_bu_sent_total                    MN: Binding Updates sent
//	mipsec_mip6_ba_total{result}                 HA: sent, failed; MN: accepted, rejected, ignored
//	mipsec_mip6_nat_detected_total               HA: BUs through a NAT; MN: registrations behind one
//	mipsec_mip6_handovers_total                  MN: registrations of a new care-of address
//	mipsec_mip6_last_handover_seconds            MN: move to accepted BA, last handover
//	mipsec_mip6_nat_keepalives_total             MN: NAT keepalives sent
//	mipsec_mip6_registered, mipsec_mip6_nat      MN: 1 when registered / behind a NAT
//
// With [[connection]] tables (the IKE daemon, control.IKEOf):
//
//	mipsec_ike_sas                               IKE SAs up
//	mipsec_ike_child_sas                         child SAs up
//	mipsec_ike_half_open                         half-open IKE SAs (responder, RFC 7296 §2.6)
//	mipsec_ike_exchanges_total{type}             completed exchanges: IKE_SA_INIT, IKE_AUTH,
//	                                             CREATE_CHILD_SA, INFORMATIONAL
//	mipsec_ike_failures_total{reason}            refused or failed messages and exchanges
//	mipsec_ike_rekeys_total                      IKE and child SA rekeys completed
//	mipsec_ike_retransmits_total                 requests retransmitted
//	mipsec_ike_cookies_sent_total                COOKIE answers (RFC 7296 §2.6)
//
// SA drop series appear when the first drop of that reason is counted, which
// keeps a scrape of many SAs small.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// metricsSource is what the collector reads; control.Target satisfies it.
type metricsSource interface {
	SAD() *sad.DB
	SPD() *spd.DB
	DataplaneStats() dataplane.Stats
	Peers() []dataplane.PeerStatus
}

var (
	saLabels       = []string{"dir", "spi", "name"}
	descSAPackets  = prometheus.NewDesc("mipsec_sa_packets_total", "Packets sealed (out) or delivered (in) by the SA.", saLabels, nil)
	descSABytes    = prometheus.NewDesc("mipsec_sa_bytes_total", "Plaintext bytes sealed or delivered by the SA.", saLabels, nil)
	descSADrops    = prometheus.NewDesc("mipsec_sa_drops_total", "Packets the SA dropped, by reason.", append(append([]string{}, saLabels...), "reason"), nil)
	descSASeq      = prometheus.NewDesc("mipsec_sa_seq", "Last sequence number sent (out) or highest authenticated (in).", saLabels, nil)
	descSPDDrops   = prometheus.NewDesc("mipsec_spd_drops_total", "Packets the SPD discarded without a policy's own verdict, by reason.", []string{"dir", "reason"}, nil)
	descPolicyHits = prometheus.NewDesc("mipsec_policy_hits_total", "Packets that matched the policy.", []string{"dir", "policy"}, nil)
	descDPDrops    = prometheus.NewDesc("mipsec_dataplane_drops_total", "Packets the dataplane dropped outside any SA, by reason.", []string{"reason"}, nil)
	descDPCounters = prometheus.NewDesc("mipsec_dataplane_total", "Dataplane counters.", []string{"counter"}, nil)
	descUnderlay   = prometheus.NewDesc("mipsec_underlay_total", "Underlay counters: packets consumed or refused before the dataplane (underlay.Stats), and underlay sends.", []string{"counter"}, nil)
	descPeerMoves  = prometheus.NewDesc("mipsec_peer_endpoint_changes_total", "Times the peer's outer endpoint moved (roaming).", []string{"peer"}, nil)

	descBindings      = prometheus.NewDesc("mipsec_mip6_bindings", "Bindings in the home agent's cache.", nil, nil)
	descBindingEvents = prometheus.NewDesc("mipsec_mip6_binding_events_total", "Binding cache events of the home agent.", []string{"event"}, nil)
	descBUAccepted    = prometheus.NewDesc("mipsec_mip6_bu_accepted_total", "Binding Updates the home agent accepted.", nil, nil)
	descBURejected    = prometheus.NewDesc("mipsec_mip6_bu_rejected_total", "Binding Updates the home agent rejected or dropped, by reason.", []string{"reason"}, nil)
	descBUBadCoA      = prometheus.NewDesc("mipsec_mip6_bu_bad_coa_total", "Binding Updates the home agent refused for their care-of address (its own, a home address, not unicast).", nil, nil)
	descBUSent        = prometheus.NewDesc("mipsec_mip6_bu_sent_total", "Binding Updates the mobile node sent.", nil, nil)
	descBAs           = prometheus.NewDesc("mipsec_mip6_ba_total", "Binding Acknowledgements: sent/failed (home agent), accepted/rejected/ignored (mobile node).", []string{"result"}, nil)
	descNATDetected   = prometheus.NewDesc("mipsec_mip6_nat_detected_total", "Registrations through a NAT (RFC 5555 NAT detection).", nil, nil)
	descHandovers     = prometheus.NewDesc("mipsec_mip6_handovers_total", "Registrations of a new care-of address (mobile node).", nil, nil)
	descLastHandover  = prometheus.NewDesc("mipsec_mip6_last_handover_seconds", "Time from the last move to its accepted Binding Acknowledgement.", nil, nil)
	descKeepalives    = prometheus.NewDesc("mipsec_mip6_nat_keepalives_total", "NAT keepalives the mobile node sent.", nil, nil)
	descRegistered    = prometheus.NewDesc("mipsec_mip6_registered", "1 when the mobile node has an accepted registration away from home.", nil, nil)
	descNAT           = prometheus.NewDesc("mipsec_mip6_nat", "1 when the mobile node's registration is behind a NAT.", nil, nil)
	descSigReceived   = prometheus.NewDesc("mipsec_mip6_signaling_received_total", "Signaling messages (BUs, other Mobility Headers, Mobile Prefix Solicitations) the home agent took from IPsec, before rate limiting.", nil, nil)
	descSigDropped    = prometheus.NewDesc("mipsec_mip6_signaling_dropped_total", "Signaling messages the home agent dropped before processing: rate_limited (per home address), queue_full, too_big.", []string{"reason"}, nil)
	descMPSAnswered   = prometheus.NewDesc("mipsec_mip6_mps_answered_total", "Mobile Prefix Solicitations the home agent answered.", nil, nil)
	descHomeLinkErrs  = prometheus.NewDesc("mipsec_mip6_home_link_errors_total", "Failed home link changes (proxy ND / ARP, routes) of the home agent.", nil, nil)
	descDR1Failed     = prometheus.NewDesc("mipsec_mip6_dr1_failed_total", "Data packets to a bound home address dropped because the binding's care-of address cannot be reached (DR-1).", nil, nil)
	descMNCounters    = prometheus.NewDesc("mipsec_mip6_mn_total", "Mobile node counters, by the name `mipsec stats --json` gives them.", []string{"counter"}, nil)

	descIKESAs         = prometheus.NewDesc("mipsec_ike_sas", "IKE SAs of the IKE daemon.", nil, nil)
	descIKEChildSAs    = prometheus.NewDesc("mipsec_ike_child_sas", "Child SAs of the IKE daemon.", nil, nil)
	descIKEHalfOpen    = prometheus.NewDesc("mipsec_ike_half_open", "Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet done).", nil, nil)
	descIKEExchanges   = prometheus.NewDesc("mipsec_ike_exchanges_total", "Completed IKE exchanges, by exchange type.", []string{"type"}, nil)
	descIKEFailures    = prometheus.NewDesc("mipsec_ike_failures_total", "Refused or failed IKE messages and exchanges, by reason.", []string{"reason"}, nil)
	descIKERekeys      = prometheus.NewDesc("mipsec_ike_rekeys_total", "IKE and child SA rekeys completed.", nil, nil)
	descIKERetransmits = prometheus.NewDesc("mipsec_ike_retransmits_total", "IKE requests retransmitted.", nil, nil)
	descIKECookies     = prometheus.NewDesc("mipsec_ike_cookies_sent_total", "COOKIE notifications sent to initiators (RFC 7296 §2.6).", nil, nil)
	descIKEMOBIKE      = prometheus.NewDesc("mipsec_ike_mobike_updates_total", "IKE SAs moved by the initiator's UPDATE_SA_ADDRESSES (RFC 4555 §3.5).", nil, nil)
	descIKERelocations = prometheus.NewDesc("mipsec_ike_relocations_total", "IKE SAs moved with a mobile node on a Binding Update or Acknowledgement with the K flag (RFC 4877 §7.4).", nil, nil)
	descIKERenewals    = prometheus.NewDesc("mipsec_ike_renewals_total", "IKE SAs negotiated again from a mobile node's new care-of address, without the K flag (RFC 4877 §7.4).", nil, nil)
	descIKEESPMoves    = prometheus.NewDesc("mipsec_ike_esp_moves_total", "IKE SAs moved to where their peer's ESP came from: a NAT's new mapping (RFC 7296 §2.23).", nil, nil)
)

// mobilityMetricsSource is the optional part of a metricsSource with a
// mobility layer (the daemon).
type mobilityMetricsSource interface {
	MobilityMetrics() (node.MobilityMetrics, bool)
}

// mipsecCollector is a prometheus.Collector over a metricsSource.
type mipsecCollector struct{ src metricsSource }

func (c mipsecCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSAPackets, descSABytes, descSADrops, descSASeq, descSPDDrops, descPolicyHits, descDPDrops, descDPCounters, descUnderlay, descPeerMoves,
		descBindings, descBindingEvents, descBUAccepted, descBURejected, descBUBadCoA, descBUSent, descBAs, descNATDetected, descHandovers, descLastHandover, descKeepalives, descRegistered, descNAT,
		descSigReceived, descSigDropped, descMPSAnswered, descHomeLinkErrs, descDR1Failed, descMNCounters,
		descIKESAs, descIKEChildSAs, descIKEHalfOpen, descIKEExchanges, descIKEFailures, descIKERekeys, descIKERetransmits, descIKECookies, descIKEESPMoves, descIKEMOBIKE, descIKERelocations, descIKERenewals} {
		ch <- d
	}
}

func (c mipsecCollector) Collect(ch chan<- prometheus.Metric) {
	counter := prometheus.CounterValue
	for _, sa := range c.src.SAD().List() {
		st := sa.Stats()
		l := []string{sa.Dir().String(), fmt.Sprintf("0x%08x", sa.SPI()), sa.Name()}
		ch <- prometheus.MustNewConstMetric(descSAPackets, counter, float64(st.Packets), l...)
		ch <- prometheus.MustNewConstMetric(descSABytes, counter, float64(st.Bytes), l...)
		ch <- prometheus.MustNewConstMetric(descSASeq, prometheus.GaugeValue, float64(sa.Seq()), l...)
		collectSADrops(ch, l, &st)
	}
	if db := c.src.SPD(); db != nil {
		for _, d := range []sad.Direction{sad.Outbound, sad.Inbound} {
			st := db.Stats(d)
			dir := d.String()
			for _, r := range []struct {
				name string
				n    uint64
			}{{"no_match", st.NoMatch}, {"unparsable", st.Unparsable}, {"unprotected", st.Unprotected}, {"no_sa", st.NoSA}} {
				ch <- prometheus.MustNewConstMetric(descSPDDrops, counter, float64(r.n), dir, r.name)
			}
			seen := map[string]bool{}
			for i, p := range st.Policies {
				name := p.Name
				if name == "" {
					name = "#" + strconv.Itoa(i)
				}
				if seen[name] {
					continue
				}
				seen[name] = true
				ch <- prometheus.MustNewConstMetric(descPolicyHits, counter, float64(p.Hits), dir, name)
			}
		}
	}
	ds := c.src.DataplaneStats()
	for r, n := range ds.Drops {
		ch <- prometheus.MustNewConstMetric(descDPDrops, counter, float64(n), dataplane.DropReason(r).String())
	}
	for _, k := range []struct {
		name string
		n    uint64
	}{
		{"out_packets", ds.OutPackets}, {"out_bytes", ds.OutBytes}, {"sent_packets", ds.SentPackets}, {"sent_bytes", ds.SentBytes},
		{"in_packets", ds.InPackets}, {"in_bytes", ds.InBytes}, {"delivered_packets", ds.DeliveredPackets}, {"delivered_bytes", ds.DeliveredBytes},
		{"keepalives", ds.Keepalives}, {"roams", ds.Roams}, {"injected", ds.Injected}, {"consumed", ds.Consumed},
	} {
		ch <- prometheus.MustNewConstMetric(descDPCounters, counter, float64(k.n), k.name)
	}
	if us, ok := c.src.(control.UnderlayCounterSource); ok {
		for _, k := range us.UnderlayCounters() {
			ch <- prometheus.MustNewConstMetric(descUnderlay, counter, float64(k.Value), k.Name)
		}
	}
	seen := map[string]bool{}
	for _, p := range c.src.Peers() {
		if seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		ch <- prometheus.MustNewConstMetric(descPeerMoves, counter, float64(p.Roams), p.Name)
	}
	if ms, ok := c.src.(mobilityMetricsSource); ok {
		if m, ok := ms.MobilityMetrics(); ok {
			collectMobility(ch, m)
		}
	}
	if d := control.IKEOf(c.src); d != nil {
		collectIKE(ch, d.Stats())
	}
}

// collectIKE writes the IKE daemon's series: every key of the exchange
// and failure maps (a fixed set, zeros included).
func collectIKE(ch chan<- prometheus.Metric, st ike.Stats) {
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	ch <- prometheus.MustNewConstMetric(descIKESAs, gauge, float64(st.IKESAs))
	ch <- prometheus.MustNewConstMetric(descIKEChildSAs, gauge, float64(st.ChildSAs))
	ch <- prometheus.MustNewConstMetric(descIKEHalfOpen, gauge, float64(st.HalfOpen))
	for typ, n := range st.Exchanges {
		ch <- prometheus.MustNewConstMetric(descIKEExchanges, counter, float64(n), typ)
	}
	for r, n := range st.Failures {
		ch <- prometheus.MustNewConstMetric(descIKEFailures, counter, float64(n), r)
	}
	ch <- prometheus.MustNewConstMetric(descIKERekeys, counter, float64(st.Rekeys))
	ch <- prometheus.MustNewConstMetric(descIKERetransmits, counter, float64(st.Retransmits))
	ch <- prometheus.MustNewConstMetric(descIKECookies, counter, float64(st.CookiesSent))
	ch <- prometheus.MustNewConstMetric(descIKEESPMoves, counter, float64(st.ESPMoves))
	ch <- prometheus.MustNewConstMetric(descIKEMOBIKE, counter, float64(st.MOBIKEUpdates))
	ch <- prometheus.MustNewConstMetric(descIKERelocations, counter, float64(st.Relocations))
	ch <- prometheus.MustNewConstMetric(descIKERenewals, counter, float64(st.Renewals))
}

// collectSADrops writes an SA's drop series (labels l), one per verdict
// with drops: the reasons of the "stats" answer (control.SADrops).
func collectSADrops(ch chan<- prometheus.Metric, l []string, st *sad.Stats) {
	for v, n := range control.SADrops(st) {
		ch <- prometheus.MustNewConstMetric(descSADrops, prometheus.CounterValue, float64(n), append(l, v)...)
	}
}

func collectMobility(ch chan<- prometheus.Metric, m node.MobilityMetrics) {
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	if m.Role == node.RoleHA {
		h := &m.HA
		ch <- prometheus.MustNewConstMetric(descBAs, counter, float64(h.BAsSent), "sent")
		ch <- prometheus.MustNewConstMetric(descBAs, counter, float64(h.BAsFailed), "failed")
		ch <- prometheus.MustNewConstMetric(descNATDetected, counter, float64(h.NATDetected))
		ch <- prometheus.MustNewConstMetric(descBindings, gauge, float64(m.Bindings))
		for e, n := range m.BindingEvents {
			ch <- prometheus.MustNewConstMetric(descBindingEvents, counter, float64(n), e)
		}
		ch <- prometheus.MustNewConstMetric(descBUAccepted, counter, float64(h.BUAccepted))
		for r, n := range h.BURejected {
			ch <- prometheus.MustNewConstMetric(descBURejected, counter, float64(n), r)
		}
		ch <- prometheus.MustNewConstMetric(descBUBadCoA, counter, float64(h.BadCoA))
		ch <- prometheus.MustNewConstMetric(descSigReceived, counter, float64(h.Received))
		ch <- prometheus.MustNewConstMetric(descSigDropped, counter, float64(h.RateLimited), "rate_limited")
		ch <- prometheus.MustNewConstMetric(descSigDropped, counter, float64(h.QueueFull), "queue_full")
		ch <- prometheus.MustNewConstMetric(descSigDropped, counter, float64(h.TooBig), "too_big")
		ch <- prometheus.MustNewConstMetric(descMPSAnswered, counter, float64(h.MPSAnswered))
		ch <- prometheus.MustNewConstMetric(descHomeLinkErrs, counter, float64(h.HomeLinkErrors))
		ch <- prometheus.MustNewConstMetric(descDR1Failed, counter, float64(h.DR1Failed))
		return
	}
	k := &m.MN
	ch <- prometheus.MustNewConstMetric(descBAs, counter, float64(k.BAsAccepted), "accepted")
	ch <- prometheus.MustNewConstMetric(descBAs, counter, float64(k.BAsRejected), "rejected")
	ch <- prometheus.MustNewConstMetric(descBAs, counter, float64(k.BAsIgnored), "ignored")
	ch <- prometheus.MustNewConstMetric(descNATDetected, counter, float64(m.NATDetected))
	ch <- prometheus.MustNewConstMetric(descBUSent, counter, float64(k.BUsSent))
	ch <- prometheus.MustNewConstMetric(descHandovers, counter, float64(k.Handovers))
	ch <- prometheus.MustNewConstMetric(descLastHandover, gauge, m.LastHandover.Seconds())
	ch <- prometheus.MustNewConstMetric(descKeepalives, counter, float64(k.Keepalives))
	ch <- prometheus.MustNewConstMetric(descRegistered, gauge, b(m.Registered))
	ch <- prometheus.MustNewConstMetric(descNAT, gauge, b(m.NAT))
	for _, c := range mnCounterList(m.MN) {
		ch <- prometheus.MustNewConstMetric(descMNCounters, counter, float64(c.n), c.name)
	}
}

// newMetricsHandler returns the /metrics handler for src, on a registry of
// its own (no global state) with the Go and process collectors.
func newMetricsHandler(src metricsSource) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(mipsecCollector{src}); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}

// serveMetrics serves the Prometheus endpoint on addr ("127.0.0.1:9500",
// ":9500") at /metrics. The listener is open when it returns, so a bad
// address fails here; stop shuts the server down, waiting up to a few
// seconds for scrapes in progress.
func serveMetrics(addr string, src metricsSource) (stop func(), err error) {
	h, err := newMetricsHandler(src)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "mipsec: metrics at /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener broke; stop still works
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}
