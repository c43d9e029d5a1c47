package benchlab

import (
	"net/netip"
	"strings"
	"testing"
)

// A's `swanctl --list-sas --raw` after a round (strongSwan 5.9.8,
// kernel-libipsec), shortened.
const swanListA = `list-sa event {bench {uniqueid=1 version=2 state=ESTABLISHED local-host=198.51.100.1 local-port=4500 local-id=198.51.100.1 remote-host=198.51.100.2 remote-port=4500 remote-id=198.51.100.2 initiator=yes nat-remote=yes nat-any=yes encr-alg=AES_GCM_16 encr-keysize=128 prf-alg=PRF_HMAC_SHA2_256 dh-group=CURVE_25519 established=7 child-sas {net-1 {name=net uniqueid=1 reqid=1 state=INSTALLED mode=TUNNEL protocol=ESP encap=yes spi-in=6a07c1ef spi-out=848f34cb encr-alg=AES_GCM_16 encr-keysize=128 bytes-in=1274182 packets-in=20844 use-in=0 bytes-out=226064184 packets-out=161542 use-out=0 rekey-time=3249 life-time=3953 install-time=7 local-ts=[192.0.2.1/32] remote-ts=[192.0.2.129/32]}}}}
list-sas reply {}
`

func TestParseSwanSAs(t *testing.T) {
	sas := parseSwanSAs(swanListA)
	want := swanSA{state: "INSTALLED", mode: "TUNNEL", encr: "AES_GCM_16", encap: "yes", keySize: 128, bytesIn: 1274182, bytesOut: 226064184}
	if len(sas) != 1 || sas[0] != want {
		t.Fatalf("parseSwanSAs = %+v, want [%+v]", sas, want)
	}
	n, err := swanCarried(sas, true)
	if err != nil || n != 226064184 {
		t.Errorf("swanCarried(out) = %d, %v", n, err)
	}
	if n, err := swanCarried(sas, false); err != nil || n != 1274182 {
		t.Errorf("swanCarried(in) = %d, %v", n, err)
	}
	// Two children (a rekey's new one beside the old) add up.
	two := strings.Replace(swanListA, "}}}}", "} net-2 {state=INSTALLED mode=TUNNEL encap=yes spi-in=1 encr-alg=AES_GCM_16 encr-keysize=128 bytes-out=10}}}}", 1)
	if n, err := swanCarried(parseSwanSAs(two), true); err != nil || n != 226064194 {
		t.Errorf("two children: %d, %v", n, err)
	}
}

// What is not strongswan-libipsec as labelled, or not a list at all, is
// refused: no figure under a wrong name.
func TestSwanCarriedRefuses(t *testing.T) {
	for name, out := range map[string]string{
		"empty":          "",
		"no child":       "list-sa event {bench {uniqueid=1 state=CONNECTING}}\nlist-sas reply {}\n",
		"garbage":        "child-sas {{{}}}} bytes-out=99 }{ spi-in=",
		"truncated":      swanListA[:strings.Index(swanListA, "spi-in")],
		"no encap":       strings.Replace(swanListA, "encap=yes", "encap=no", 1),
		"cbc":            strings.Replace(swanListA, "protocol=ESP encap=yes spi-in=6a07c1ef spi-out=848f34cb encr-alg=AES_GCM_16", "protocol=ESP encap=yes spi-in=6a07c1ef spi-out=848f34cb encr-alg=AES_CBC", 1),
		"256-bit":        strings.Replace(swanListA, "encr-alg=AES_GCM_16 encr-keysize=128 bytes-in", "encr-alg=AES_GCM_16 encr-keysize=256 bytes-in", 1),
		"transport":      strings.Replace(swanListA, "mode=TUNNEL", "mode=TRANSPORT", 1),
		"rekeyed (gone)": strings.Replace(swanListA, "state=INSTALLED", "state=DELETED", 1),
	} {
		if n, err := swanCarried(parseSwanSAs(out), true); err == nil {
			t.Errorf("%s: swanCarried = %d, nil; want an error", name, n)
		}
	}
	// A counter that does not parse counts nothing (verify then finds
	// fewer bytes than iperf3 moved).
	bad := strings.Replace(swanListA, "bytes-out=226064184", "bytes-out=-x", 1)
	if n, err := swanCarried(parseSwanSAs(bad), true); err != nil || n != 0 {
		t.Errorf("unparsable counter: %d, %v; want 0, nil", n, err)
	}
}

func TestSwanctlConf(t *testing.T) {
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	sa, sb := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.129")
	c := swanctlConf(a, b, sa, sb, "0x0102")
	for _, want := range []string{
		"local_addrs = 198.51.100.1\n", "remote_addrs = 198.51.100.2\n",
		"proposals = aes128gcm16-prfsha256-curve25519\n", "encap = yes\n",
		"local_ts = 192.0.2.1/32\n", "remote_ts = 192.0.2.129/32\n",
		"esp_proposals = aes128gcm16\n", "mode = tunnel\n", "auth = psk\n", "secret = 0x0102\n",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("swanctl.conf lacks %q:\n%s", want, c)
		}
	}
	if strings.Count(c, "{") != strings.Count(c, "}") {
		t.Errorf("unbalanced swanctl.conf:\n%s", c)
	}
	s := swanConf("/tmp/x/vici")
	if !strings.Contains(s, "socket = unix:///tmp/x/vici\n") || strings.Index(s, "kernel-libipsec") > strings.Index(s, "kernel-netlink") ||
		strings.Index(s, "openssl") > strings.Index(s, " gcm ") || strings.Count(s, "{") != strings.Count(s, "}") {
		t.Errorf("strongswan.conf:\n%s", s)
	}
}

// The strongSwan system is in the default set, and Check names what it
// lacks when it is missing.
func TestStrongswanSystem(t *testing.T) {
	s, ok := SystemByID(StrongswanLibipsec)
	if !ok || s.Optional {
		t.Fatalf("SystemByID(%q) = %+v, %v", StrongswanLibipsec, s, ok)
	}
	if err := StrongswanMissing(); err != nil {
		cerr := Check(Config{Systems: []System{s}})
		if cerr == nil || !strings.Contains(cerr.Error(), StrongswanLibipsec) {
			t.Errorf("strongSwan missing (%v) but Check = %v", err, cerr)
		}
	}
}
