package control

import (
	"testing"

	"github.com/mipsec/mipsec/esp"
)

func TestWiresharkAlgorithmsCovered(t *testing.T) {
	// Every algorithm but GMAC has a Wireshark mapping; a new algorithm
	// must be added here deliberately.
	for _, n := range esp.AlgorithmNames() {
		a, _ := esp.ParseAlgorithm(n)
		_, _, ok := wiresharkAlgs(a)
		gmac := a == esp.AES128GMAC || a == esp.AES256GMAC
		if ok == gmac {
			t.Errorf("%s: mapped=%v", n, ok)
		}
	}
}
