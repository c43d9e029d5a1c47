package esp

import "testing"

func TestParseModeDF(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
		ok   bool
	}{{"", Tunnel, true}, {"Tunnel", Tunnel, true}, {" transport ", Transport, true}, {"beet", 0, false}} {
		if m, err := ParseMode(tt.in); (err == nil) != tt.ok || m != tt.want {
			t.Errorf("ParseMode(%q) = %v, %v", tt.in, m, err)
		}
	}
	for _, tt := range []struct {
		in   string
		want DF
		ok   bool
	}{{"", DFCopy, true}, {"copy", DFCopy, true}, {"SET", DFSet, true}, {"clear", DFClear, true}, {"maybe", 0, false}} {
		if d, err := ParseDF(tt.in); (err == nil) != tt.ok || d != tt.want {
			t.Errorf("ParseDF(%q) = %v, %v", tt.in, d, err)
		}
	}
}
