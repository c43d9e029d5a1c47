package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
)

func TestWiresharkLines(t *testing.T) {
	s, ft := startServer(t)
	// A transport-mode IPv6 SA with NULL encryption, and a GMAC SA that
	// Wireshark cannot decode.
	if err := ft.AddSA(sad.Config{Dir: sad.Inbound, Params: esp.Params{SPI: 0xe001, Algorithm: esp.NULLSHA256, AuthKey: cbcMac, Mode: esp.Transport},
		Selectors: []sad.Selector{{Local: sad.SingleAddr(netip.MustParseAddr("2001:db8::1")), Remote: sad.SingleAddr(netip.MustParseAddr("2001:db8::2"))}}}); err != nil {
		t.Fatal(err)
	}
	// An IPv6 site over an IPv4 tunnel: the family is the outer header's.
	if err := ft.AddSA(sad.Config{Dir: sad.Outbound, Params: esp.Params{SPI: 0xc006, Algorithm: esp.AES128CBCSHA256, EncKey: cbcEnc, AuthKey: cbcMac, Mode: esp.Tunnel, TunnelSrc: tunA, TunnelDst: tunB},
		Selectors: []sad.Selector{{Local: sad.SingleAddr(netip.MustParseAddr("2001:db8:a::1")), Remote: sad.SingleAddr(netip.MustParseAddr("2001:db8:b::1"))}}}); err != nil {
		t.Fatal(err)
	}
	if err := ft.AddSA(sad.Config{Dir: sad.Outbound, Params: esp.Params{SPI: 0xf001, Algorithm: esp.AES128GMAC, EncKey: gcmEnc, Mode: esp.Tunnel, TunnelSrc: tunA, TunnelDst: tunB},
		Selectors: []sad.Selector{{}}}); err != nil {
		t.Fatal(err)
	}
	out, errs, rc := cli(t, s, "sa", "list", "--wireshark")
	if rc != 0 {
		t.Fatalf("exit %d: %s", rc, errs)
	}
	want := []string{
		`"IPv4","198.51.100.1","203.0.113.1","0x0000a001","AES-GCM with 16 octet ICV [RFC4106]","0x` + strings.Repeat("11", 20) + `","NULL",""`,
		`"IPv4","198.51.100.1","203.0.113.1","0x0000c006","AES-CBC [RFC3602]","0x` + strings.Repeat("22", 16) + `","HMAC-SHA-256-128 [RFC4868]","0x` + strings.Repeat("33", 32) + `"`,
		`"IPv4","203.0.113.1","198.51.100.1","0x0000b001","AES-CBC [RFC3602]","0x` + strings.Repeat("22", 16) + `","HMAC-SHA-256-128 [RFC4868]","0x` + strings.Repeat("33", 32) + `"`,
		`"IPv6","2001:db8::2","2001:db8::1","0x0000e001","NULL","","HMAC-SHA-256-128 [RFC4868]","0x` + strings.Repeat("33", 32) + `"`,
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(out), "\n")); diff != "" {
		t.Errorf("esp_sa lines (-want +got):\n%s", diff)
	}
	if !strings.Contains(errs, "SA 0x0000f001 (aes128gmac) left out") {
		t.Errorf("no note for the GMAC SA: %q", errs)
	}
}
