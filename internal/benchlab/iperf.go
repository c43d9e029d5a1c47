package benchlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// IperfResult is what the benchmark takes from one iperf3 -J run (client
// side; iperf3 reports the receiver's figures to the client at the end).
type IperfResult struct {
	Protocol string  `json:"protocol"` // "TCP" or "UDP"
	Streams  int     `json:"streams"`  // parallel streams
	Seconds  float64 `json:"seconds"`  // measured duration at the receiver
	// Bytes is what the receiver got: TCP bytes, or UDP payload bytes
	// (goodput).
	Bytes int64 `json:"bytes"`
	// BitsPerSecond is the receiver's rate, Bytes*8/Seconds as iperf3
	// computes it.
	BitsPerSecond float64 `json:"bits_per_second"`
	SentBytes     int64   `json:"sent_bytes"`            // what the sender sent
	Retransmits   int64   `json:"retransmits,omitempty"` // TCP only
	// Packets, LostPackets and LostPercent are UDP only: datagrams sent,
	// datagrams that never arrived, and their percentage.
	Packets     int64   `json:"packets,omitempty"`
	LostPackets int64   `json:"lost_packets,omitempty"`
	LostPercent float64 `json:"lost_percent,omitempty"`
}

// Errors of ParseIperf.
var (
	// ErrIperf wraps the error iperf3 reported in its JSON ("error").
	ErrIperf = errors.New("iperf3 failed")
	// ErrIperfJSON wraps output that is not a complete iperf3 -J report.
	ErrIperfJSON = errors.New("not a usable iperf3 JSON report")
)

type iperfSum struct {
	Seconds       *float64 `json:"seconds"`
	Bytes         *int64   `json:"bytes"`
	BitsPerSecond *float64 `json:"bits_per_second"`
	Retransmits   int64    `json:"retransmits"`
	LostPackets   int64    `json:"lost_packets"`
	Packets       int64    `json:"packets"`
	LostPercent   float64  `json:"lost_percent"`
}

type iperfJSON struct {
	Start struct {
		TestStart struct {
			Protocol   string `json:"protocol"`
			NumStreams int    `json:"num_streams"`
		} `json:"test_start"`
	} `json:"start"`
	End struct {
		Sum         *iperfSum `json:"sum"`
		SumSent     *iperfSum `json:"sum_sent"`
		SumReceived *iperfSum `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// ParseIperf parses the output of `iperf3 -c ... -J` (iperf 3.7 or later).
// A report with an "error" member returns an error wrapping ErrIperf with
// iperf3's message; anything else that lacks the receiver's totals, or has
// negative or non-finite ones, returns an error wrapping ErrIperfJSON.
func ParseIperf(data []byte) (IperfResult, error) {
	var j iperfJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return IperfResult{}, fmt.Errorf("%w: %v", ErrIperfJSON, err)
	}
	if j.Error != "" {
		return IperfResult{}, fmt.Errorf("%w: %s", ErrIperf, j.Error)
	}
	r := IperfResult{Protocol: j.Start.TestStart.Protocol, Streams: j.Start.TestStart.NumStreams}
	if r.Protocol != "TCP" && r.Protocol != "UDP" {
		return IperfResult{}, fmt.Errorf("%w: protocol %q, want TCP or UDP", ErrIperfJSON, r.Protocol)
	}
	recv, sent := j.End.SumReceived, j.End.SumSent
	if r.Protocol == "UDP" && recv == nil && j.End.Sum != nil {
		// Before iperf 3.13 some builds give UDP only "sum": the sender's
		// bytes and the receiver's loss.
		s := *j.End.Sum
		if s.Bytes != nil && s.Packets > 0 {
			got := *s.Bytes * (s.Packets - s.LostPackets) / s.Packets
			recv = &iperfSum{Seconds: s.Seconds, Bytes: &got, LostPackets: s.LostPackets, Packets: s.Packets, LostPercent: s.LostPercent}
			if s.Seconds != nil && *s.Seconds > 0 {
				bps := float64(got) * 8 / *s.Seconds
				recv.BitsPerSecond = &bps
			}
		}
		sent = j.End.Sum
	}
	if recv == nil || recv.Seconds == nil || recv.Bytes == nil || recv.BitsPerSecond == nil {
		return IperfResult{}, fmt.Errorf("%w: no receiver totals (end.sum_received)", ErrIperfJSON)
	}
	r.Seconds, r.Bytes, r.BitsPerSecond = *recv.Seconds, *recv.Bytes, *recv.BitsPerSecond
	if sent != nil {
		if sent.Bytes != nil {
			r.SentBytes = *sent.Bytes
		}
		r.Retransmits = sent.Retransmits
	}
	if r.Protocol == "UDP" {
		r.Packets, r.LostPackets, r.LostPercent = recv.Packets, recv.LostPackets, recv.LostPercent
	}
	for _, v := range []float64{r.Seconds, r.BitsPerSecond, r.LostPercent} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return IperfResult{}, fmt.Errorf("%w: value %v out of range", ErrIperfJSON, v)
		}
	}
	if r.Bytes < 0 || r.SentBytes < 0 || r.Retransmits < 0 || r.Packets < 0 || r.LostPackets < 0 || r.LostPackets > r.Packets {
		return IperfResult{}, fmt.Errorf("%w: negative or inconsistent counters (bytes %d, sent %d, retransmits %d, packets %d, lost %d)",
			ErrIperfJSON, r.Bytes, r.SentBytes, r.Retransmits, r.Packets, r.LostPackets)
	}
	return r, nil
}
