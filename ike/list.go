package ike

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
)

// wiresharkNames are the encryption and integrity names of Wireshark's
// ikev2_decryption_table (its IKEv2 decryption, checked by
// crypto_tshark_test.go). ok is false for a suite Wireshark cannot
// decrypt (ChaCha20-Poly1305: Wireshark 4.0 has no IKE decryption of it).
func wiresharkNames(s SKSuite) (encr, integ string, ok bool) {
	switch s.Encr {
	case EncrAESCBC:
		encr = fmt.Sprintf("AES-CBC-%d [RFC3602]", s.KeyBits)
	case EncrAESGCM8, EncrAESGCM12, EncrAESGCM16:
		icv := map[EncrAlg]int{EncrAESGCM8: 8, EncrAESGCM12: 12, EncrAESGCM16: 16}[s.Encr]
		encr = fmt.Sprintf("AES-GCM-%d with %d octet ICV [RFC5282]", s.KeyBits, icv)
	default:
		return "", "", false
	}
	switch s.Integ {
	case IntegNone:
		integ = "NONE [RFC4306]"
	case IntegHMACSHA2_256_128:
		integ = "HMAC_SHA2_256_128 [RFC4868]"
	case IntegHMACSHA2_384_192:
		integ = "HMAC_SHA2_384_192 [RFC4868]"
	case IntegHMACSHA2_512_256:
		integ = "HMAC_SHA2_512_256 [RFC4868]"
	default:
		return "", "", false
	}
	return encr, integ, true
}

// list is List on the loop.
func (d *Daemon) list() []SAStatus {
	var out []SAStatus
	for _, sa := range d.sas {
		if sa.state == stateDead {
			continue
		}
		st := SAStatus{
			Name: sa.conn.cfg.Name, ID: sa.id, State: sa.state.String(), Initiator: sa.initiator,
			SPIi: sa.spii, SPIr: sa.spir, Local: sa.local, Remote: sa.remote,
			NATLocal: sa.natLocal, NATRemote: sa.natRemote, Encap: sa.encap,
			Established: sa.established, RekeyAt: sa.rekeyAt,
			VIPs: sortedVIPs(sa.vips), PeerVIPs: sortedVIPs(sa.conn.leaseOf(sa.remoteID)), HomePrefix: sa.homePrefix,
		}
		if sa.state == stateEstablished && (sa.ikeRekey != nil || sa.peerRekey != nil || sa.successor != nil) {
			st.State = "rekeying"
		}
		if !sa.localID.IsZero() {
			st.LocalID = sa.localID.String()
		}
		if !sa.remoteID.IsZero() {
			st.RemoteID = sa.remoteID.String()
		}
		if sa.proposal.Transforms != nil {
			st.Suite = FormatProposal(sa.proposal)
		}
		chs := sa.children
		if sa.pendingChild != nil {
			chs = append(chs[:len(chs):len(chs)], sa.pendingChild)
		}
		for _, ch := range chs {
			cs := ChildStatus{
				Name: ch.name, ID: ch.id, State: ch.state.String(), Mode: ch.mode,
				InSPI: ch.inSPI, OutSPI: ch.outSPI,
				LocalTS: append([]TrafficSelector(nil), ch.localTS...), RemoteTS: append([]TrafficSelector(nil), ch.remoteTS...),
				Installed: ch.installed,
			}
			if ch.proposal.Transforms != nil {
				cs.Suite = FormatProposal(ch.proposal)
			}
			if !ch.installed.IsZero() {
				cs.RekeyAt = ch.installed.Add(ch.lifetime.SoftTime)
				cs.ExpireAt = ch.installed.Add(ch.lifetime.HardTime)
			}
			st.Children = append(st.Children, cs)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b SAStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// wiresharkKeys is WiresharkKeys on the loop: established IKE SAs whose
// suite Wireshark decrypts.
func (d *Daemon) wiresharkKeys() []WiresharkKey {
	var out []WiresharkKey
	for _, sa := range d.sas {
		if sa.state != stateEstablished || sa.keys == nil {
			continue
		}
		encr, integ, ok := wiresharkNames(sa.suite.SK)
		if !ok {
			continue
		}
		k := sa.keys
		out = append(out, WiresharkKey{SPIi: sa.spii, SPIr: sa.spir,
			SKei: bytes.Clone(k.SKei), SKer: bytes.Clone(k.SKer), EncrName: encr,
			SKai: bytes.Clone(k.SKai), SKar: bytes.Clone(k.SKar), IntegName: integ})
	}
	slices.SortFunc(out, func(a, b WiresharkKey) int { return cmp.Compare(a.SPIi, b.SPIi) })
	return out
}
