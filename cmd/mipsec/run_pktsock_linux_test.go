//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mipsec/mipsec/control"
)

// TestRunPacketSocket runs the real binary as gateways A and B of the
// example configs with [underlay] packet_socket = true in two network
// namespaces joined by a veth (root only): A announces the AF_PACKET path
// at startup, every packet crosses the tunnel, and A's underlay counters
// show raw ESP sent through the AF_PACKET socket (the first packets, before
// the neighbour is resolved, through the raw socket) and no send errors.
func TestRunPacketSocket(t *testing.T) {
	l := newGatewayLab(t, "p", func(name, s string) string {
		if !strings.Contains(s, "\n[underlay]\n") {
			t.Fatalf("%s has no [underlay]", name)
		}
		return strings.Replace(s, "\n[underlay]\n", "\n[underlay]\npacket_socket = true\n", 1)
	})
	b := l.start(l.nsB, l.cfgB, l.sockB, "b.log")
	a := l.start(l.nsA, l.cfgA, l.sockA, "a.log")
	l.sendUDP(3) // resolves the neighbour
	l.inboundAtB(3)
	l.sendUDP(20)
	l.inboundAtB(23)

	var st control.StatsInfo
	if err := (control.Client{Path: l.sockA}).Call("stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	ps, fb, errs := st.Underlay["tx_packet_socket"], st.Underlay["tx_packet_socket_fallback"], st.Underlay["tx_packet_socket_errors"]
	t.Logf("A's underlay: tx_packet_socket %d, tx_packet_socket_fallback %d, tx_packet_socket_errors %d", ps, fb, errs)
	if ps == 0 || ps+fb < 23 || errs != 0 {
		t.Errorf("A's underlay: tx_packet_socket %d, tx_packet_socket_fallback %d, tx_packet_socket_errors %d; want AF_PACKET sends, 23 raw ESP packets in all, no errors (%v)",
			ps, fb, errs, st.Underlay)
	}

	l.stop(a, b)
	logA, _ := os.ReadFile(filepath.Join(l.dir, "a.log"))
	if n := strings.Count(string(logA), "raw ESP leaves through an AF_PACKET socket"); n != 1 {
		t.Errorf("a.log announces the AF_PACKET path %d times, want once", n)
	}
}
