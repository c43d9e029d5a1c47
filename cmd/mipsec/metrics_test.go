package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func TestMetrics(t *testing.T) {
	_, ft := startServer(t)
	junk := make([]byte, 72)
	copy(junk, []byte{0, 0, 0xb0, 0x01, 0, 0, 0, 1})
	_, v := ft.sad.Lookup(sad.Inbound, 0xb001).Open(newPacketBuf(t, junk), 0)
	if v == esp.OK {
		t.Fatal("junk opened")
	}
	ft.ul.RxIPMalformed.Add(4)
	h, err := newMetricsHandler(ft)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := scrape(t, srv.URL)
	wantContains(t, "metrics", body,
		`mipsec_sa_packets_total{dir="out",name="a-to-b",spi="0x0000a001"} 0`,
		`mipsec_sa_bytes_total{dir="in",name="b-to-a",spi="0x0000b001"} 0`,
		`mipsec_sa_drops_total{dir="in",name="b-to-a",reason="`+v.String()+`",spi="0x0000b001"} 1`,
		`mipsec_dataplane_drops_total{reason="unknown_spi"} 5`,
		`mipsec_dataplane_drops_total{reason="tun_read"} 0`,
		`mipsec_dataplane_total{counter="sent_packets"} 9`,
		`mipsec_spd_drops_total{dir="out",reason="no_match"} 0`,
		`mipsec_policy_hits_total{dir="out",policy="protect"} 0`,
		`mipsec_peer_endpoint_changes_total{peer="gw-b"} 3`,
		`mipsec_underlay_total{counter="rx_ip_malformed"} 4`,
		`mipsec_underlay_total{counter="rx_malformed"} 0`,
		`go_goroutines`,
	)

	// Counters are read at scrape time.
	sa := ft.sad.Lookup(sad.Outbound, 0xa001)
	sealedESP(t, sa, udp4(tunA, tunB, 10))
	if body := scrape(t, srv.URL); !strings.Contains(body, `mipsec_sa_packets_total{dir="out",name="a-to-b",spi="0x0000a001"} 1`) {
		t.Errorf("packet not counted at the next scrape:\n%s", body)
	}
}

func TestServeMetrics(t *testing.T) {
	_, ft := startServer(t)
	if _, err := serveMetrics("256.0.0.1:99999", ft); err == nil {
		t.Error("bad address accepted")
	}
	// Port 0: find the address through a listener we can't see, so use a
	// fixed loopback port picked by a throwaway listener.
	ln := httptest.NewUnstartedServer(nil).Listener
	addr := ln.Addr().String()
	ln.Close()
	stop, err := serveMetrics(addr, ft)
	if err != nil {
		t.Fatal(err)
	}
	body := scrape(t, "http://"+addr+"/metrics")
	if !strings.Contains(body, "mipsec_sa_packets_total") {
		t.Errorf("no SA metrics:\n%s", body)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("still serving after stop")
	}
}
