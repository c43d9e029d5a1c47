package node

// Which SAs may share a key. A counter-IV suite (AES-GCM, AES-GMAC,
// ChaCha20-Poly1305) builds its nonce from the salt and the sequence number
// alone (RFC 4106 §3.1, RFC 4543 §3.1, RFC 7634 §2), not from the SPI or the
// direction: two SAs under one such key, ours or the peer's, send the same
// nonces. An outbound key of any suite keeps one sequence-number reservation
// (package seqstore), so it serves one outbound SA at a time.

import (
	"fmt"

	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/seqstore"
)

// KeyFingerprint is the identity of an SA's keys in the state directory
// and in the key-sharing checks (a keyed hash: seqstore.KeyFingerprint).
func KeyFingerprint(p esp.Params) seqstore.Fingerprint {
	return seqstore.KeyFingerprint(p.EncKey, p.AuthKey)
}

// LegacyFingerprints name the version 1 state files the key may have
// (they named the algorithm; see seqstore.LegacyFingerprint).
func LegacyFingerprints(p esp.Params) []seqstore.Fingerprint {
	return []seqstore.Fingerprint{seqstore.LegacyFingerprint(p.Algorithm.String(), p.EncKey, p.AuthKey)}
}

// KeyShareProblem says why SAs a and b, which have the same key, may not
// both exist; "" when they may. New, AddSA and UpdateSA apply it; a config
// builder may apply it first to report the file's lines.
func KeyShareProblem(a, b sad.Config) string {
	switch {
	case a.Params.Algorithm.CounterMode() || b.Params.Algorithm.CounterMode():
		return fmt.Sprintf("%s uses the sequence number as its nonce whatever the SPI or direction, so two SAs under one key send the same nonces (RFC 4106 §3.1, RFC 8221 §3); give each SA a key of its own",
			counterSuite(a, b))
	case a.Dir == sad.Outbound && b.Dir == sad.Outbound:
		return "an outbound key serves one SA at a time (its sequence-number reservation belongs to the key); give each SA a key of its own"
	}
	return ""
}

func counterSuite(a, b sad.Config) esp.Algorithm {
	if a.Params.Algorithm.CounterMode() {
		return a.Params.Algorithm
	}
	return b.Params.Algorithm
}

// SAName names an SA in messages: "out SA 0x0000b001".
func SAName(dir sad.Direction, spi uint32) string {
	return fmt.Sprintf("%v SA %s", dir, spiString(spi))
}

// checkKeyShare refuses c when a live SA other than (c.Dir, c's SPI) has
// the same key and KeyShareProblem says they may not coexist. The caller
// holds n.mu.
func (n *Node) checkKeyShare(c sad.Config, fp seqstore.Fingerprint) error {
	self := saKey{c.Dir, c.Params.SPI}
	n.keysMu.Lock()
	holders := n.keyUse[fp]
	n.keysMu.Unlock()
	for _, h := range holders {
		if h == self {
			continue
		}
		other := n.sadb.Lookup(h.dir, h.spi)
		if other == nil {
			continue // hard-expired and reaped
		}
		oc := sad.Config{Dir: h.dir, Params: other.Params()}
		if p := KeyShareProblem(c, oc); p != "" {
			return fmt.Errorf("the key of %s is already the key of %s: %s", SAName(c.Dir, c.Params.SPI), SAName(h.dir, h.spi), p)
		}
	}
	return nil
}
