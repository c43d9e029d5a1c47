package benchlab

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The fixtures are real iperf 3.12 -J output (loopback in a namespace).
func TestParseIperfFixtures(t *testing.T) {
	for _, tt := range []struct {
		file string
		want IperfResult
	}{
		{"iperf3-tcp1.json", IperfResult{Protocol: "TCP", Streams: 1, Seconds: 1.000427, Bytes: 1745879040,
			BitsPerSecond: 13961070942.707464, SentBytes: 1745879040}},
		{"iperf3-tcp4.json", IperfResult{Protocol: "TCP", Streams: 4, Seconds: 1.001185, Bytes: 2736665524,
			BitsPerSecond: 21867411309.598125, SentBytes: 2750808064, Retransmits: 9}},
		{"iperf3-udp.json", IperfResult{Protocol: "UDP", Streams: 1, Seconds: 1.00035, Bytes: 239330308,
			BitsPerSecond: 1913972573.59924, SentBytes: 281877400, Packets: 205450, LostPackets: 31011, LostPercent: 15.094183499634948}},
	} {
		got, err := ParseIperf(readFixture(t, tt.file))
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.file, got, tt.want)
		}
	}
}

func TestParseIperfReportedError(t *testing.T) {
	_, err := ParseIperf(readFixture(t, "iperf3-refused.json"))
	if !errors.Is(err, ErrIperf) || !strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("got %v, want ErrIperf with iperf3's message", err)
	}
}

// Older iperf3 builds give UDP only end.sum: the sender's bytes and the
// receiver's loss; goodput is the delivered share.
func TestParseIperfUDPSumOnly(t *testing.T) {
	in := `{"start":{"test_start":{"protocol":"UDP","num_streams":1}},
	  "end":{"sum":{"seconds":2,"bytes":1000000,"bits_per_second":4000000,"packets":1000,"lost_packets":250,"lost_percent":25}}}`
	got, err := ParseIperf([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got.Bytes != 750000 || got.BitsPerSecond != 3000000 || got.LostPackets != 250 || got.LostPercent != 25 || got.SentBytes != 1000000 {
		t.Fatalf("got %+v", got)
	}
}

func TestParseIperfMalformed(t *testing.T) {
	ok := `"start":{"test_start":{"protocol":"TCP","num_streams":1}}`
	for _, in := range []string{
		``,
		`null`,
		`[]`,
		`{`,
		`not json`,
		`{"start":{},"end":{}}`,
		`{` + ok + `}`,
		`{` + ok + `,"end":{}}`,
		`{` + ok + `,"end":{"sum_received":{"seconds":1,"bytes":10}}}`,
		`{` + ok + `,"end":{"sum_received":{"seconds":1,"bits_per_second":10}}}`,
		`{` + ok + `,"end":{"sum_received":{"seconds":1,"bytes":-10,"bits_per_second":10}}}`,
		`{` + ok + `,"end":{"sum_received":{"seconds":-1,"bytes":10,"bits_per_second":10}}}`,
		`{` + ok + `,"end":{"sum_received":{"seconds":1,"bytes":10,"bits_per_second":-10}}}`,
		`{` + ok + `,"end":{"sum_received":{"seconds":1,"bytes":"10","bits_per_second":10}}}`,
		`{` + ok + `,"end":{"sum_received":{"seconds":1,"bytes":10,"bits_per_second":1e400}}}`,
		`{"start":{"test_start":{"protocol":"SCTP"}},"end":{"sum_received":{"seconds":1,"bytes":10,"bits_per_second":80}}}`,
		`{"start":{"test_start":{"protocol":"UDP"}},"end":{"sum_received":{"seconds":1,"bytes":10,"bits_per_second":80,"packets":5,"lost_packets":6}}}`,
		`{"start":{"test_start":{"protocol":"UDP"}},"end":{"sum_received":{"seconds":1,"bytes":10,"bits_per_second":80,"packets":5,"lost_packets":-1}}}`,
		`{"start":{"test_start":{"protocol":"UDP"}},"end":{"sum":{"seconds":1,"bytes":10,"packets":0}}}`,
	} {
		r, err := ParseIperf([]byte(in))
		if err == nil {
			t.Errorf("ParseIperf(%q) = %+v, want an error", in, r)
			continue
		}
		if !errors.Is(err, ErrIperfJSON) {
			t.Errorf("ParseIperf(%q): %v does not wrap ErrIperfJSON", in, err)
		}
	}
}

func FuzzParseIperf(f *testing.F) {
	for _, n := range []string{"iperf3-tcp1.json", "iperf3-tcp4.json", "iperf3-udp.json", "iperf3-refused.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseIperf(b)
		if err != nil {
			return
		}
		if r.Bytes < 0 || r.Seconds < 0 || r.BitsPerSecond < 0 || r.LostPackets > r.Packets || r.Protocol != "TCP" && r.Protocol != "UDP" {
			t.Fatalf("accepted inconsistent result %+v", r)
		}
	})
}
