package endpoint

import (
	"net/netip"
	"testing"
)

func TestEndpoint(t *testing.T) {
	a4 := netip.MustParseAddr("192.0.2.1")
	a6 := netip.MustParseAddr("2001:db8::1")
	for _, tt := range []struct {
		ep    Endpoint
		valid bool
		s     string
	}{
		{Endpoint{Addr: netip.AddrPortFrom(a4, 0), Encap: EncapRaw}, true, "esp:192.0.2.1"},
		{Endpoint{Addr: netip.AddrPortFrom(a4, 9), Encap: EncapRaw}, false, "esp:192.0.2.1"},
		{Endpoint{Addr: netip.AddrPortFrom(a6, UDPEncapPort), Encap: EncapUDP}, true, "udp:[2001:db8::1]:4500"},
		{Endpoint{Addr: netip.AddrPortFrom(a4, 0), Encap: EncapUDP}, false, "udp:192.0.2.1:0"},
		{Endpoint{Addr: netip.AddrPortFrom(a6, 0), Encap: EncapIP}, true, "ip:2001:db8::1"},
		{Endpoint{Addr: netip.AddrPortFrom(a4, DSMIPv6Port), Encap: EncapIP}, true, "ip:192.0.2.1:4191"},
		{Endpoint{Addr: netip.AddrPortFrom(a4, 0), Encap: 7}, false, "esp:192.0.2.1"},
		{Endpoint{}, false, "esp:invalid IP"},
	} {
		if got := tt.ep.IsValid(); got != tt.valid {
			t.Errorf("%#v.IsValid() = %v, want %v", tt.ep, got, tt.valid)
		}
		if got := tt.ep.String(); got != tt.s {
			t.Errorf("%#v.String() = %q, want %q", tt.ep, got, tt.s)
		}
	}
	for e, want := range map[Encap]string{EncapRaw: "raw", EncapUDP: "udp", EncapIP: "ip", 9: "encap?"} {
		if got := e.String(); got != want {
			t.Errorf("Encap(%d).String() = %q, want %q", e, got, want)
		}
	}
}
