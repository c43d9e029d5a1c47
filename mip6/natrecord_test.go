package mip6

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/mipsec/mipsec/internal/header"
)

func TestNATRecordsRecordTake(t *testing.T) {
	r := NewNATRecords(0)
	if r.Cap() != DefaultNATRecords {
		t.Fatalf("Cap = %d", r.Cap())
	}
	if got := NewNATRecords(100).Cap(); got != 128 {
		t.Errorf("Cap(100) = %d, want 128", got)
	}
	a := netip.MustParseAddrPort("198.51.100.1:61000")
	b := netip.MustParseAddrPort("198.51.100.2:4500")
	r.Record(7, 1, a)
	r.Record(7, 2, b)
	if _, ok := r.Take(8, 1); ok {
		t.Error("Take of another SPI succeeded")
	}
	if _, ok := r.Take(7, 3); ok {
		t.Error("Take of another seq succeeded")
	}
	if got, ok := r.Take(7, 1); !ok || got != a {
		t.Errorf("Take(7,1) = %v %v, want %v", got, ok, a)
	}
	if _, ok := r.Take(7, 1); ok {
		t.Error("second Take succeeded")
	}
	// A later packet with the same (SPI, seq) (e.g. a forged or replayed
	// copy) replaces the record: the last writer wins (RFC 5555 §5).
	r.Record(7, 2, a)
	if got, ok := r.Take(7, 2); !ok || got != a {
		t.Errorf("Take(7,2) = %v %v, want %v", got, ok, a)
	}
	if r.Len() != 0 {
		t.Errorf("Len = %d after taking all", r.Len())
	}
}

// TestNATRecordsBounded: records for SPIs nobody asks about never grow the
// table past Cap, and a recent record usually survives.
func TestNATRecordsBounded(t *testing.T) {
	r := NewNATRecords(256)
	src := netip.MustParseAddrPort("192.0.2.1:4500")
	for spi := uint32(1); spi <= 100; spi++ {
		for seq := uint32(0); seq < 1000; seq++ {
			r.Record(spi, seq, src)
		}
	}
	if n := r.Len(); n > r.Cap() || n == 0 {
		t.Errorf("Len = %d, Cap = %d", n, r.Cap())
	}
	r.Record(0xdead, 5, src)
	if got, ok := r.Take(0xdead, 5); !ok || got != src {
		t.Errorf("fresh record lost: %v %v", got, ok)
	}
	if testing.AllocsPerRun(100, func() { r.Record(3, 4, src); r.Take(3, 4) }) != 0 && !raceEnabled {
		t.Error("Record/Take allocate")
	}
}

// TestNATRecordsConcurrent: workers record while the control plane takes;
// run with -race.
func TestNATRecordsConcurrent(t *testing.T) {
	r := NewNATRecords(4096)
	const workers, per = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				spi := uint32(w + 1)
				r.Record(spi, uint32(i), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(w), 1}), uint16(i)))
				if i%3 == 0 {
					if got, ok := r.Take(spi, uint32(i)); ok && (got.Port() != uint16(i) || got.Addr().As4()[2] != byte(w)) {
						t.Errorf("worker %d seq %d: got %v", w, i, got)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range per {
			_ = r.Len()
		}
	})
	wg.Wait()
	if r.Len() > r.Cap() {
		t.Errorf("Len %d > Cap %d", r.Len(), r.Cap())
	}
}

func TestNATDetected(t *testing.T) {
	coa := netip.MustParseAddr("192.0.2.7")
	tests := []struct {
		name string
		rec  netip.AddrPort
		coa  netip.Addr
		want bool
	}{
		{"same address", netip.AddrPortFrom(coa, 4191), coa, false},
		{"same address other port", netip.AddrPortFrom(coa, 61000), coa, false},
		{"mapped form", netip.AddrPortFrom(netip.AddrFrom16(coa.As16()), 4191), coa, false},
		{"nat", netip.MustParseAddrPort("198.51.100.1:61000"), coa, true},
		{"no record", netip.AddrPort{}, coa, false},
		{"no ipv4 coa option", netip.AddrPortFrom(coa, 4191), netip.Addr{}, false},
		{"ipv6 record", netip.MustParseAddrPort("[2001:db8::1]:4191"), coa, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NATDetected(tt.rec, tt.coa); got != tt.want {
				t.Errorf("NATDetected(%v, %v) = %v, want %v", tt.rec, tt.coa, got, tt.want)
			}
		})
	}
}

// TestDR4Flow: a BU sent by DR-3 over IPv4/UDP 4191 crosses a NAT; the HA
// strips the UDP, records the outer source under (SPI, seq), and after
// "IPsec" takes it back and detects the NAT against the IPv4 CoA option.
func TestDR4Flow(t *testing.T) {
	recs := NewNATRecords(64)
	for _, tc := range []struct {
		name    string
		natAddr netip.AddrPort // outer source after the NAT; zero: no NAT
		wantNAT bool
	}{
		{"behind nat", tnNAT, true},
		{"no nat", netip.AddrPort{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := sealed(t, tnHoA, tnHA6, fakeESP(48))
			if _, ok := SendFromCoA(b, tnCoA4, tnHA4, PortDSMIPv6); !ok {
				t.Fatal("SendFromCoA")
			}
			want := netip.AddrPortFrom(tnCoA4, PortDSMIPv6)
			if tc.natAddr.IsValid() { // the NAT rewrites source address and port
				p := b.Bytes()
				ip := header.IPv4(p)
				a := tc.natAddr.Addr().As4()
				copy(p[12:16], a[:])
				ip.SetChecksum(0)
				ip.SetChecksum(^header.Checksum(p[:20], 0))
				header.UDP(p[20:]).SetSrcPort(tc.natAddr.Port())
				want = tc.natAddr
			}
			src, d := StripUDPEncap(b)
			if d != DecapIP || src != want {
				t.Fatalf("StripUDPEncap = %v %v", src, d)
			}
			spi, seq, ok := RecordKey(b.Bytes(), d)
			if !ok {
				t.Fatal("RecordKey")
			}
			recs.Record(spi, seq, src)
			// ... IPsec verifies (spi, seq), the BU is accepted ...
			rec, ok := recs.Take(spi, seq)
			if !ok || rec != want {
				t.Fatalf("Take = %v %v", rec, ok)
			}
			if got := NATDetected(rec, tnCoA4); got != tc.wantNAT {
				t.Errorf("NATDetected = %v, want %v", got, tc.wantNAT)
			}
		})
	}
}
