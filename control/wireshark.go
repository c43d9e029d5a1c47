package control

// `mipsec sa list --wireshark`: the SAs as lines of Wireshark's ESP SA table
// (the "esp_sa" UAT file, ~/.config/wireshark/esp_sa), so that a capture made
// with `mipsec capture` decrypts in Wireshark (Preferences > Protocols > ESP,
// "Attempt to detect/decode encrypted ESP payloads").
//
// One line per SA, eight quoted, comma-separated fields:
//
//	"IPv4","192.0.2.1","192.0.2.2","0x00001001","AES-GCM with 16 octet ICV [RFC4106]","0x<key||salt>","NULL",""
//
// protocol, source, destination (the outer header's; "*" is Wireshark's
// wildcard), SPI, encryption algorithm, encryption key, authentication
// algorithm, authentication key. The algorithm strings must be spelled
// exactly as Wireshark's value_strings in epan/dissectors/packet-ipsec.c
// (wireshark/wireshark) esp_encryption_type_vals and
// esp_authentication_type_vals:
//
//	"NULL", "AES-CBC [RFC3602]", "AES-GCM with 16 octet ICV [RFC4106]",
//	"ChaCha20 with Poly1305 [RFC7634]";
//	"NULL", "HMAC-SHA-1-96 [RFC2404]", "HMAC-SHA-256-128 [RFC4868]".
//
// For AES-GCM and ChaCha20-Poly1305 Wireshark takes the key with the 4-byte
// salt appended (160/288 bits), which is exactly esp.Params.EncKey.
// Wireshark has no AES-GMAC (RFC 4543) entry; such SAs are left out with a
// note.

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
)

// WiresharkSA is one SA with its keys, as "sa.wireshark" returns it.
type WiresharkSA struct {
	Family  string `json:"family"` // "IPv4" or "IPv6"
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	SPI     uint32 `json:"spi"`
	Alg     string `json:"algorithm"` // mipsec's name
	EncKey  string `json:"enc_key,omitempty"`
	AuthKey string `json:"auth_key,omitempty"`
}

// wiresharkSAOf builds the record of sa; enc and auth are hex-encoded, the
// caller may wipe them afterwards.
func wiresharkSAOf(sa *sad.SA, enc, auth []byte) WiresharkSA {
	p := sa.Params()
	w := WiresharkSA{SPI: sa.SPI(), Alg: p.Algorithm.String(), EncKey: hex.EncodeToString(enc), AuthKey: hex.EncodeToString(auth)}
	var src, dst netip.Addr
	if p.Mode == esp.Tunnel {
		// Both ends' Params name the sender as TunnelSrc.
		src, dst = p.TunnelSrc, p.TunnelDst
	} else {
		// Transport mode: the selectors' single addresses, if all agree.
		local, remote := singleSelectorAddrs(sa.Selectors())
		src, dst = local, remote
		if sa.Dir() == sad.Inbound {
			src, dst = remote, local
		}
	}
	// Wireshark matches the family against the outer header: in tunnel
	// mode that of the tunnel addresses, whatever the selectors (an IPv6
	// site over an IPv4 underlay is "IPv4"); the selectors decide only
	// when no address is known (transport mode, outer = inner header).
	w.Family = "IPv4"
	switch {
	case src.IsValid():
		if src.Is6() {
			w.Family = "IPv6"
		}
	case dst.IsValid():
		if dst.Is6() {
			w.Family = "IPv6"
		}
	case selectorsV6(sa.Selectors()):
		w.Family = "IPv6"
	}
	w.Src, w.Dst = "*", "*"
	if src.IsValid() {
		w.Src = src.String()
	}
	if dst.IsValid() {
		w.Dst = dst.String()
	}
	return w
}

func singleSelectorAddrs(sels []sad.Selector) (local, remote netip.Addr) {
	for i, s := range sels {
		l, r := netip.Addr{}, netip.Addr{}
		if !s.Local.IsAny() && s.Local.From == s.Local.To {
			l = s.Local.From
		}
		if !s.Remote.IsAny() && s.Remote.From == s.Remote.To {
			r = s.Remote.From
		}
		if i == 0 {
			local, remote = l, r
			continue
		}
		if l != local {
			local = netip.Addr{}
		}
		if r != remote {
			remote = netip.Addr{}
		}
	}
	return local, remote
}

func selectorsV6(sels []sad.Selector) bool {
	for _, s := range sels {
		if (s.Local.From.IsValid() && s.Local.From.Is6()) || (s.Remote.From.IsValid() && s.Remote.From.Is6()) {
			return true
		}
	}
	return false
}

// wiresharkAlgs maps an algorithm to Wireshark's encryption and
// authentication names; ok is false where Wireshark has no decoder.
func wiresharkAlgs(a esp.Algorithm) (enc, auth string, ok bool) {
	switch a {
	case esp.AES128GCM16, esp.AES192GCM16, esp.AES256GCM16: // key size from the key
		return "AES-GCM with 16 octet ICV [RFC4106]", "NULL", true
	case esp.ChaCha20Poly1305:
		return "ChaCha20 with Poly1305 [RFC7634]", "NULL", true
	case esp.AES128CBCSHA256, esp.AES256CBCSHA256:
		return "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]", true
	case esp.AES128CBCSHA1, esp.AES256CBCSHA1:
		return "AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]", true
	case esp.NULLSHA256:
		return "NULL", "HMAC-SHA-256-128 [RFC4868]", true
	}
	return "", "", false
}

// wiresharkLine formats one esp_sa line; ok is false for algorithms
// Wireshark cannot decode.
func wiresharkLine(w WiresharkSA) (string, bool) {
	a, err := esp.ParseAlgorithm(w.Alg)
	if err != nil {
		return "", false
	}
	enc, auth, ok := wiresharkAlgs(a)
	if !ok {
		return "", false
	}
	key := func(k string) string {
		if k == "" {
			return ""
		}
		return "0x" + k
	}
	f := []string{w.Family, w.Src, w.Dst, fmt.Sprintf("0x%08x", w.SPI), enc, key(w.EncKey), auth, key(w.AuthKey)}
	for i := range f {
		f[i] = `"` + f[i] + `"`
	}
	return strings.Join(f, ","), true
}

// WriteWireshark prints the esp_sa lines to w and a note per SA it had to
// leave out to notes.
func WriteWireshark(w, notes io.Writer, sas []WiresharkSA) {
	for _, s := range sas {
		line, ok := wiresharkLine(s)
		if !ok {
			fmt.Fprintf(notes, "mipsec: SA 0x%08x (%s) left out: Wireshark has no decoder for it\n", s.SPI, s.Alg)
			continue
		}
		fmt.Fprintln(w, line)
	}
}
