package ike

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Proposals in strongSwan's swanctl.conf syntax: tokens joined by '-',
// several tokens of one transform type being alternatives the peer may
// choose from (RFC 7296 §3.3). The tokens:
//
//	encryption  aes128 aes192 aes256 (CBC, RFC 3602)
//	            aes128gcm16 aes192gcm16 aes256gcm16, also gcm12 and gcm8
//	            (IKE only; the ICV length in bytes, RFC 5282 / RFC 4106)
//	            chacha20poly1305 (RFC 7634)
//	            aes128gmac aes192gmac aes256gmac (ESP only, RFC 4543)
//	            null (ESP only, RFC 2410; needs allowWeak)
//	integrity   sha256 sha384 sha512 (HMAC-SHA2, RFC 4868), sha1 (ESP
//	            only, needs allowWeak)
//	PRF         prfsha256 prfsha384 prfsha512 (IKE only)
//	key exch.   curve25519 (x25519), ecp256, ecp384, modp2048, modp3072
//	ESN         esn noesn (ESP only)

// ErrNoProposalChosen: no proposal of the peer's is acceptable (RFC 7296
// §2.7); a responder answers NO_PROPOSAL_CHOSEN.
var ErrNoProposalChosen = errors.New("ike: no proposal chosen")

// maxProposalLen bounds a proposal string: the longest sensible one is a
// few hundred bytes.
const maxProposalLen = 1024

type algToken struct {
	typ     TransformType
	id      uint16
	keyBits uint16
	weak    bool   // refused unless allowWeak
	missing string // non-empty: not implemented, why
	ike     bool   // usable in an IKE proposal
	esp     bool   // usable in an ESP proposal
}

var algTokens = map[string]algToken{}

func init() {
	add := func(name string, t algToken) { algTokens[name] = t }
	for _, kb := range []uint16{128, 192, 256} {
		k := fmt.Sprint(kb)
		add("aes"+k, algToken{typ: TransformENCR, id: uint16(EncrAESCBC), keyBits: kb, ike: true, esp: kb != 192})
		add("aes"+k+"gcm16", algToken{typ: TransformENCR, id: uint16(EncrAESGCM16), keyBits: kb, ike: true, esp: true})
		add("aes"+k+"gcm128", algToken{typ: TransformENCR, id: uint16(EncrAESGCM16), keyBits: kb, ike: true, esp: true})
		add("aes"+k+"gcm12", algToken{typ: TransformENCR, id: uint16(EncrAESGCM12), keyBits: kb, ike: true})
		add("aes"+k+"gcm96", algToken{typ: TransformENCR, id: uint16(EncrAESGCM12), keyBits: kb, ike: true})
		add("aes"+k+"gcm8", algToken{typ: TransformENCR, id: uint16(EncrAESGCM8), keyBits: kb, ike: true})
		add("aes"+k+"gcm64", algToken{typ: TransformENCR, id: uint16(EncrAESGCM8), keyBits: kb, ike: true})
		add("aes"+k+"gmac", algToken{typ: TransformENCR, id: uint16(EncrNullAuthAESGMAC), keyBits: kb, esp: kb != 192})
		for _, m := range []string{"ctr", "ccm8", "ccm12", "ccm16", "ccm64", "ccm96", "ccm128"} {
			add("aes"+k+m, algToken{typ: TransformENCR, missing: "not implemented"})
		}
		add("camellia"+k, algToken{typ: TransformENCR, missing: "not implemented"})
	}
	add("aes", algTokens["aes128"])
	add("chacha20poly1305", algToken{typ: TransformENCR, id: uint16(EncrChaCha20Poly1305), ike: true, esp: true})
	add("null", algToken{typ: TransformENCR, id: uint16(EncrNull), weak: true, esp: true})
	add("3des", algToken{typ: TransformENCR, weak: true, missing: "not implemented (weak, RFC 8221 §5)"})
	add("des", algToken{typ: TransformENCR, weak: true, missing: "not implemented (weak, RFC 8221 §5)"})
	add("blowfish", algToken{typ: TransformENCR, weak: true, missing: "not implemented"})
	add("cast128", algToken{typ: TransformENCR, weak: true, missing: "not implemented"})

	add("sha256", algToken{typ: TransformINTEG, id: uint16(IntegHMACSHA2_256_128), ike: true, esp: true})
	add("sha2_256", algTokens["sha256"])
	add("sha384", algToken{typ: TransformINTEG, id: uint16(IntegHMACSHA2_384_192), ike: true})
	add("sha2_384", algTokens["sha384"])
	add("sha512", algToken{typ: TransformINTEG, id: uint16(IntegHMACSHA2_512_256), ike: true})
	add("sha2_512", algTokens["sha512"])
	add("sha1", algToken{typ: TransformINTEG, id: uint16(IntegHMACSHA1_96), weak: true, esp: true})
	add("sha", algTokens["sha1"])
	add("md5", algToken{typ: TransformINTEG, weak: true, missing: "not implemented (weak, RFC 8221 §6)"})
	add("aesxcbc", algToken{typ: TransformINTEG, missing: "not implemented"})
	add("aescmac", algToken{typ: TransformINTEG, missing: "not implemented"})

	add("prfsha256", algToken{typ: TransformPRF, id: uint16(PRFHMACSHA2_256), ike: true})
	add("prfsha384", algToken{typ: TransformPRF, id: uint16(PRFHMACSHA2_384), ike: true})
	add("prfsha512", algToken{typ: TransformPRF, id: uint16(PRFHMACSHA2_512), ike: true})
	add("prfsha1", algToken{typ: TransformPRF, weak: true, missing: "not implemented (weak, RFC 8247 §2.3)"})
	add("prfmd5", algToken{typ: TransformPRF, weak: true, missing: "not implemented (weak, RFC 8247 §2.3)"})
	add("prfaesxcbc", algToken{typ: TransformPRF, missing: "not implemented"})
	add("prfaescmac", algToken{typ: TransformPRF, missing: "not implemented"})

	add("curve25519", algToken{typ: TransformDH, id: uint16(DHCurve25519), ike: true, esp: true})
	add("x25519", algTokens["curve25519"])
	add("ecp256", algToken{typ: TransformDH, id: uint16(DHECP256), ike: true, esp: true})
	add("ecp384", algToken{typ: TransformDH, id: uint16(DHECP384), ike: true, esp: true})
	add("modp2048", algToken{typ: TransformDH, id: uint16(DHMODP2048), ike: true, esp: true})
	add("modp3072", algToken{typ: TransformDH, id: uint16(DHMODP3072), ike: true, esp: true})
	for _, n := range []string{"ecp521", "modp4096", "modp6144", "modp8192", "curve448", "x448", "modp1536"} {
		add(n, algToken{typ: TransformDH, missing: "not implemented"})
	}
	add("modp1024", algToken{typ: TransformDH, weak: true, missing: "not implemented (weak, RFC 8247 §2.4)"})
	add("modp768", algToken{typ: TransformDH, weak: true, missing: "not implemented (weak, RFC 8247 §2.4)"})

	add("esn", algToken{typ: TransformESN, id: ESN_ON, esp: true})
	add("noesn", algToken{typ: TransformESN, id: ESN_NONE, esp: true})
}

// integPRF is the PRF a non-AEAD IKE proposal without prf tokens uses:
// the integrity algorithm's hash (strongSwan's rule).
var integPRF = map[IntegAlg]PRFAlg{
	IntegHMACSHA2_256_128: PRFHMACSHA2_256,
	IntegHMACSHA2_384_192: PRFHMACSHA2_384,
	IntegHMACSHA2_512_256: PRFHMACSHA2_512,
}

// parseProposal turns the tokens into transforms, grouped by type in the
// order ENCR, INTEG, PRF, DH, ESN and, within a type, in the order given
// (duplicates dropped).
func parseProposal(s string, proto ProtocolID, allowWeak bool) (Proposal, error) {
	bad := func(format string, args ...any) (Proposal, error) {
		return Proposal{}, fmt.Errorf("ike: %v proposal %q: %s", proto, s, fmt.Sprintf(format, args...))
	}
	if len(s) > maxProposalLen {
		return Proposal{}, fmt.Errorf("ike: %v proposal of %d bytes, more than %d", proto, len(s), maxProposalLen)
	}
	in := strings.ToLower(strings.TrimSpace(s))
	if in == "" {
		return bad("empty")
	}
	if in == "default" {
		if proto == ProtoIKE {
			return bad("\"default\" is two proposals (AEAD and not): use ParseIKEProposals or DefaultIKEProposals")
		}
		return bad("\"default\" is two proposals (AEAD and not): use ParseESPProposals or DefaultESPProposals")
	}
	byType := map[TransformType][]Transform{}
	for _, tok := range strings.Split(in, "-") {
		a, ok := algTokens[tok]
		switch {
		case tok == "":
			return bad("empty token")
		case !ok:
			return bad("unknown algorithm %q", tok)
		case a.weak && !allowWeak:
			return bad("%q is weak and refused (allow weak algorithms to use it, where implemented)", tok)
		case a.missing != "":
			return bad("%q: %s", tok, a.missing)
		case proto == ProtoIKE && !a.ike, proto == ProtoESP && !a.esp:
			return bad("%q is not available for %v", tok, proto)
		}
		tr := Transform{Type: a.typ, ID: a.id, KeyLength: a.keyBits}
		if !slices.ContainsFunc(byType[a.typ], func(o Transform) bool { return o.ID == tr.ID && o.KeyLength == tr.KeyLength }) {
			byType[a.typ] = append(byType[a.typ], tr)
		}
	}
	encr := byType[TransformENCR]
	if len(encr) == 0 {
		return bad("no encryption algorithm")
	}
	aead := EncrAlg(encr[0].ID).AEAD() || EncrAlg(encr[0].ID) == EncrNullAuthAESGMAC
	for _, e := range encr[1:] {
		if a := EncrAlg(e.ID).AEAD() || EncrAlg(e.ID) == EncrNullAuthAESGMAC; a != aead {
			return bad("mixes combined-mode and other encryption algorithms; make them two proposals (RFC 7296 §3.3)")
		}
	}
	integ := byType[TransformINTEG]
	switch {
	case aead && len(integ) > 0:
		return bad("a combined-mode algorithm takes no integrity algorithm (RFC 7296 §3.3)")
	case !aead && len(integ) == 0:
		return bad("no integrity algorithm")
	}
	if proto == ProtoIKE {
		if len(byType[TransformPRF]) == 0 {
			if aead {
				return bad("a combined-mode IKE proposal needs a PRF: add prfsha256, prfsha384 or prfsha512 (RFC 7296 §3.3.3)")
			}
			for _, i := range integ {
				tr := Transform{Type: TransformPRF, ID: uint16(integPRF[IntegAlg(i.ID)])}
				if !slices.ContainsFunc(byType[TransformPRF], func(o Transform) bool { return o.ID == tr.ID }) {
					byType[TransformPRF] = append(byType[TransformPRF], tr)
				}
			}
		}
		if len(byType[TransformDH]) == 0 {
			return bad("no key exchange method (add curve25519, ecp256, modp2048, ...)")
		}
	} else {
		// Every combination the peer may choose must be one esp has.
		if aead {
			integ = []Transform{{}}
		}
		for _, e := range encr {
			for _, i := range integ {
				if _, ok := ESPAlgorithmName(EncrAlg(e.ID), int(e.KeyLength), IntegAlg(i.ID)); !ok {
					return bad("esp has no %s", formatTransforms([]Transform{e, i}))
				}
			}
		}
		if len(byType[TransformESN]) == 0 {
			byType[TransformESN] = []Transform{{Type: TransformESN, ID: ESN_NONE}}
		}
	}
	p := Proposal{Number: 1, Protocol: proto}
	for _, t := range formatOrder {
		p.Transforms = append(p.Transforms, byType[t]...)
	}
	if len(p.Transforms) > MaxTransforms {
		return bad("%d transforms, more than %d", len(p.Transforms), MaxTransforms)
	}
	return p, nil
}

var formatOrder = []TransformType{TransformENCR, TransformINTEG, TransformPRF, TransformDH, TransformESN}

// ParseIKEProposal parses one IKE SA proposal (Protocol ProtoIKE, Number
// 1). It needs an encryption algorithm, an integrity algorithm unless the
// encryption is combined-mode, and a key exchange method. A combined-mode
// proposal needs prf tokens (RFC 7296 §3.3.3 leaves no integrity to take
// the PRF from); another one without prf tokens uses its integrity
// algorithms' hashes. Weak algorithms are refused unless allowWeak, and
// then still if not implemented (none of those for IKE is).
func ParseIKEProposal(s string, allowWeak bool) (Proposal, error) {
	return parseProposal(s, ProtoIKE, allowWeak)
}

// ParseESPProposal parses one ESP proposal (Protocol ProtoESP, Number 1).
// Only suites esp implements are accepted (ESPAlgorithmName). Without an
// esn or noesn token the proposal offers no ESN alone; key exchange
// tokens ask for PFS in CREATE_CHILD_SA.
func ParseESPProposal(s string, allowWeak bool) (Proposal, error) {
	return parseProposal(s, ProtoESP, allowWeak)
}

// ParseIKEProposals parses a list of IKE proposals, numbered from 1;
// "default" expands to DefaultIKEProposals. An empty list is the default.
func ParseIKEProposals(list []string, allowWeak bool) ([]Proposal, error) {
	return parseProposals(list, ProtoIKE, allowWeak)
}

// ParseESPProposals is ParseIKEProposals for ESP; "default" expands to
// DefaultESPProposals.
func ParseESPProposals(list []string, allowWeak bool) ([]Proposal, error) {
	return parseProposals(list, ProtoESP, allowWeak)
}

func parseProposals(list []string, proto ProtocolID, allowWeak bool) ([]Proposal, error) {
	if len(list) == 0 {
		list = []string{"default"}
	}
	var out []Proposal
	for _, s := range list {
		if strings.EqualFold(strings.TrimSpace(s), "default") {
			if proto == ProtoIKE {
				out = append(out, DefaultIKEProposals()...)
			} else {
				out = append(out, DefaultESPProposals()...)
			}
			continue
		}
		p, err := parseProposal(s, proto, allowWeak)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) > MaxProposals {
		return nil, fmt.Errorf("ike: %d %v proposals, more than %d", len(out), proto, MaxProposals)
	}
	for i := range out {
		out[i].Number = uint8(i + 1)
	}
	return out, nil
}

// The defaults, in the spirit of strongSwan's "default" keyword, the
// combined-mode proposal first.
const (
	defaultIKEAEAD = "aes128gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-curve25519-ecp256-ecp384-modp3072-modp2048"
	defaultIKE     = "aes128-aes256-sha256-sha384-sha512-curve25519-ecp256-ecp384-modp3072-modp2048"
	defaultESPAEAD = "aes128gcm16-aes256gcm16-chacha20poly1305"
	defaultESP     = "aes128-aes256-sha256"
)

// DefaultIKEProposals returns the default IKE proposals, numbered 1 and 2.
func DefaultIKEProposals() []Proposal { return mustDefault(ProtoIKE, defaultIKEAEAD, defaultIKE) }

// DefaultESPProposals returns the default ESP proposals, numbered 1 and 2,
// without ESN and without PFS.
func DefaultESPProposals() []Proposal { return mustDefault(ProtoESP, defaultESPAEAD, defaultESP) }

func mustDefault(proto ProtocolID, list ...string) []Proposal {
	var out []Proposal
	for i, s := range list {
		p, err := parseProposal(s, proto, false)
		if err != nil {
			panic(err) // the constants above are tested
		}
		p.Number = uint8(i + 1)
		out = append(out, p)
	}
	return out
}

// FormatProposal writes p in the swanctl syntax: "aes128gcm16-prfsha256-
// curve25519", "aes256-sha256-esn". An ESN transform of "no ESN" alone is
// left out, as it is the default; IDs without a name are written as
// encr(N), prf(N) and so on.
func FormatProposal(p Proposal) string {
	var ts []Transform
	for _, t := range formatOrder {
		for _, tr := range p.Transforms {
			if tr.Type == t {
				ts = append(ts, tr)
			}
		}
	}
	for _, tr := range p.Transforms {
		if !slices.Contains(formatOrder, tr.Type) {
			ts = append(ts, tr)
		}
	}
	var esn []Transform
	for _, tr := range ts {
		if tr.Type == TransformESN {
			esn = append(esn, tr)
		}
	}
	if len(esn) == 1 && esn[0].ID == ESN_NONE {
		ts = slices.DeleteFunc(ts, func(tr Transform) bool { return tr.Type == TransformESN })
	}
	return formatTransforms(ts)
}

func formatTransforms(ts []Transform) string {
	var parts []string
	for _, tr := range ts {
		if tr.Type == 0 {
			continue
		}
		parts = append(parts, transformName(tr))
	}
	return strings.Join(parts, "-")
}

func transformName(tr Transform) string {
	kb := fmt.Sprint(tr.KeyLength)
	switch tr.Type {
	case TransformENCR:
		switch e := EncrAlg(tr.ID); e {
		case EncrAESCBC:
			return "aes" + kb
		case EncrAESGCM8:
			return "aes" + kb + "gcm8"
		case EncrAESGCM12:
			return "aes" + kb + "gcm12"
		case EncrAESGCM16:
			return "aes" + kb + "gcm16"
		case EncrNullAuthAESGMAC:
			return "aes" + kb + "gmac"
		case EncrNull:
			return "null"
		case EncrChaCha20Poly1305:
			if tr.KeyLength == 0 || tr.KeyLength == 256 {
				return "chacha20poly1305"
			}
			return "chacha20poly1305_" + kb
		default:
			if tr.KeyLength != 0 {
				return e.String() + "_" + kb
			}
			return e.String()
		}
	case TransformINTEG:
		return IntegAlg(tr.ID).String()
	case TransformPRF:
		return PRFAlg(tr.ID).String()
	case TransformDH:
		return DHGroup(tr.ID).String()
	case TransformESN:
		switch tr.ID {
		case ESN_ON:
			return "esn"
		case ESN_NONE:
			return "noesn"
		}
		return fmt.Sprintf("esn(%d)", tr.ID)
	}
	return fmt.Sprintf("%v(%d)", tr.Type, tr.ID)
}

// optionalType reports whether a transform type may be left out of a
// proposal, its absence meaning the ID 0 (NONE) transform: INTEG with a
// combined-mode cipher, DH (no PFS), ESN (RFC 7296 §3.3.2, §3.3.3).
func optionalType(t TransformType) bool {
	return t == TransformINTEG || t == TransformDH || t == TransformESN
}

// knownType: the transform types of RFC 7296 §3.3.2. A proposal with any
// other type is unacceptable as a whole (§3.3.6).
func knownType(t TransformType) bool { return t >= TransformENCR && t <= TransformESN }

// offered returns the transforms of type t in p; for an optional type
// that p leaves out, the NONE transform.
func offered(p Proposal, t TransformType) []Transform {
	var out []Transform
	for _, tr := range p.Transforms {
		if tr.Type == t {
			out = append(out, tr)
		}
	}
	if len(out) == 0 && optionalType(t) {
		out = []Transform{{Type: t}}
	}
	return out
}

func hasType(p Proposal, t TransformType) bool {
	return slices.ContainsFunc(p.Transforms, func(tr Transform) bool { return tr.Type == t })
}

// sameTransform: same type, ID and Key Length, and no other attributes
// (an attribute we do not understand makes a transform unacceptable,
// RFC 7296 §3.3.6; ours never carry any).
func sameTransform(a, b Transform) bool {
	return a.Type == b.Type && a.ID == b.ID && a.KeyLength == b.KeyLength &&
		len(a.Attributes) == 0 && len(b.Attributes) == 0
}

// SelectProposal is the responder's choice (RFC 7296 §2.7, §3.3.6): the
// first of our proposals, in our order of preference, that one of theirs
// of the same protocol matches, taking for each transform type our most
// preferred transform that they offer too (ENCR with the same Key Length).
// A type one side leaves out matches only where the other offers NONE for
// it (INTEG, DH, ESN); a proposal of theirs with a transform type we do
// not know is skipped, and a transform of theirs with an unknown ID or
// attribute never matches. The result has their Number, a copy of their
// SPI and one transform of each type they offered (their transform, so
// its attributes come back unmodified), in type order. No match is an
// error wrapping ErrNoProposalChosen.
func SelectProposal(ours, theirs []Proposal) (Proposal, error) {
	for _, o := range ours {
	next:
		for _, t := range theirs {
			if t.Protocol != o.Protocol {
				continue
			}
			for _, tr := range t.Transforms {
				if !knownType(tr.Type) {
					continue next
				}
			}
			chosen := Proposal{Number: t.Number, Protocol: t.Protocol, SPI: bytes.Clone(t.SPI)}
			for _, typ := range formatOrder {
				if !hasType(o, typ) && !hasType(t, typ) {
					continue
				}
				pick, ok := pickTransform(offered(o, typ), offered(t, typ))
				if !ok {
					continue next
				}
				if hasType(t, typ) {
					chosen.Transforms = append(chosen.Transforms, pick)
				}
			}
			return chosen, nil
		}
	}
	return Proposal{}, fmt.Errorf("%w: none of %d proposals matches our %d", ErrNoProposalChosen, len(theirs), len(ours))
}

// pickTransform returns the first of ours that theirs offers, as they
// wrote it.
func pickTransform(ours, theirs []Transform) (Transform, bool) {
	for _, o := range ours {
		for _, t := range theirs {
			if sameTransform(o, t) {
				return cloneTransform(t), true
			}
		}
	}
	return Transform{}, false
}

func cloneTransform(t Transform) Transform {
	t.Attributes = slices.Clone(t.Attributes)
	for i := range t.Attributes {
		t.Attributes[i].Value = bytes.Clone(t.Attributes[i].Value)
	}
	return t
}

// CheckChosen is the initiator's check of the responder's choice (RFC
// 7296 §3.3.6): chosen must carry the Number of one of the offered
// proposals and its protocol, and exactly one transform of each type that
// proposal has, each one that was offered; a type whose offer included
// NONE may be left out. Anything else, a type not offered included, is an
// error.
func CheckChosen(offeredProps []Proposal, chosen Proposal) error {
	i := slices.IndexFunc(offeredProps, func(p Proposal) bool { return p.Number == chosen.Number })
	if i < 0 {
		return fmt.Errorf("ike: chosen proposal %d was not offered", chosen.Number)
	}
	off := offeredProps[i]
	if chosen.Protocol != off.Protocol {
		return fmt.Errorf("ike: chosen proposal %d is %v, offered %v", chosen.Number, chosen.Protocol, off.Protocol)
	}
	if (chosen.Protocol == ProtoESP || chosen.Protocol == ProtoAH) && len(chosen.SPI) != 4 {
		return fmt.Errorf("ike: chosen %v proposal with a %d-byte SPI", chosen.Protocol, len(chosen.SPI))
	}
	for _, tr := range chosen.Transforms {
		if !hasType(off, tr.Type) {
			return fmt.Errorf("ike: chosen proposal %d has %v, a transform type not offered", chosen.Number, tr.Type)
		}
	}
	for _, typ := range formatOrder {
		if !hasType(off, typ) {
			continue
		}
		var got []Transform
		for _, tr := range chosen.Transforms {
			if tr.Type == typ {
				got = append(got, tr)
			}
		}
		switch {
		case len(got) == 0 && slices.ContainsFunc(offered(off, typ), func(t Transform) bool { return t.ID == 0 }):
		case len(got) != 1:
			return fmt.Errorf("ike: chosen proposal %d has %d %v transforms, want 1", chosen.Number, len(got), typ)
		case !slices.ContainsFunc(offered(off, typ), func(t Transform) bool { return sameTransform(t, got[0]) }):
			return fmt.Errorf("ike: chosen proposal %d has %s, which was not offered", chosen.Number, transformName(got[0]))
		}
	}
	return nil
}

// WithoutDH returns copies of ps without their DH transforms: the Child SA
// proposals of IKE_AUTH, whose keys come from the IKE SA's key exchange
// (RFC 7296 §1.2).
func WithoutDH(ps []Proposal) []Proposal {
	out := make([]Proposal, len(ps))
	for i, p := range ps {
		p.Transforms = slices.DeleteFunc(slices.Clone(p.Transforms), func(t Transform) bool { return t.Type == TransformDH })
		out[i] = p
	}
	return out
}

// one returns the single transform of type t in p: ok false when there
// is none, an error when there are several.
func one(p Proposal, t TransformType) (Transform, bool, error) {
	var got []Transform
	for _, tr := range p.Transforms {
		if tr.Type == t {
			got = append(got, tr)
		}
	}
	switch len(got) {
	case 0:
		return Transform{}, false, nil
	case 1:
		if len(got[0].Attributes) != 0 {
			return Transform{}, false, fmt.Errorf("ike: %s with unknown attributes", transformName(got[0]))
		}
		return got[0], true, nil
	}
	return Transform{}, false, fmt.Errorf("ike: %d %v transforms in a chosen proposal, want 1", len(got), t)
}

// IKESuite is what a chosen IKE proposal fixes: the SK payload protection,
// the PRF and the key exchange method.
type IKESuite struct {
	SK  SKSuite
	PRF PRFAlg
	DH  DHGroup
}

// IKESuiteOf reads a chosen IKE proposal: one ENCR, PRF and DH transform
// each, and one INTEG unless the encryption is combined-mode (where INTEG
// NONE is allowed too), all implemented.
func IKESuiteOf(p Proposal) (IKESuite, error) {
	if p.Protocol != ProtoIKE {
		return IKESuite{}, fmt.Errorf("ike: %v proposal for an IKE SA", p.Protocol)
	}
	var s IKESuite
	var have [TransformESN + 1]bool
	for _, typ := range formatOrder {
		tr, ok, err := one(p, typ)
		if err != nil {
			return IKESuite{}, err
		}
		have[typ] = ok
		switch typ {
		case TransformENCR:
			s.SK.Encr, s.SK.KeyBits = EncrAlg(tr.ID), int(tr.KeyLength)
		case TransformINTEG:
			s.SK.Integ = IntegAlg(tr.ID)
		case TransformPRF:
			s.PRF = PRFAlg(tr.ID)
		case TransformDH:
			s.DH = DHGroup(tr.ID)
		case TransformESN:
			if ok {
				return IKESuite{}, errors.New("ike: an IKE proposal with an ESN transform")
			}
		}
	}
	for _, tr := range p.Transforms {
		if !knownType(tr.Type) {
			return IKESuite{}, fmt.Errorf("ike: IKE proposal with transform type %v", tr.Type)
		}
	}
	switch {
	case !have[TransformENCR]:
		return IKESuite{}, errors.New("ike: IKE proposal without encryption")
	case !have[TransformPRF]:
		return IKESuite{}, errors.New("ike: IKE proposal without a PRF")
	case !have[TransformDH]:
		return IKESuite{}, errors.New("ike: IKE proposal without a key exchange method")
	case !s.PRF.Supported():
		return IKESuite{}, fmt.Errorf("ike: PRF %v not implemented", s.PRF)
	case !s.DH.Supported():
		return IKESuite{}, fmt.Errorf("ike: key exchange method %v not implemented", s.DH)
	}
	if err := s.SK.Validate(); err != nil {
		return IKESuite{}, err
	}
	return s, nil
}

// ESPSuite is what a chosen ESP proposal fixes. KeyBits is the ENCR Key
// Length attribute (0 for ChaCha20-Poly1305 and NULL); Integ is IntegNone
// for a combined mode; DH is DHNone without PFS.
type ESPSuite struct {
	Encr    EncrAlg
	KeyBits int
	Integ   IntegAlg
	ESN     bool
	DH      DHGroup
}

// ESPSuiteOf reads a chosen ESP proposal: one ENCR, at most one INTEG, ESN
// and DH each, making a suite esp implements (ESPAlgorithmName).
func ESPSuiteOf(p Proposal) (ESPSuite, error) {
	if p.Protocol != ProtoESP {
		return ESPSuite{}, fmt.Errorf("ike: %v proposal for an ESP SA", p.Protocol)
	}
	var s ESPSuite
	for _, tr := range p.Transforms {
		if !knownType(tr.Type) || tr.Type == TransformPRF {
			return ESPSuite{}, fmt.Errorf("ike: ESP proposal with a %v transform", tr.Type)
		}
	}
	for _, typ := range formatOrder {
		tr, ok, err := one(p, typ)
		if err != nil {
			return ESPSuite{}, err
		}
		switch typ {
		case TransformENCR:
			if !ok {
				return ESPSuite{}, errors.New("ike: ESP proposal without encryption")
			}
			s.Encr, s.KeyBits = EncrAlg(tr.ID), int(tr.KeyLength)
		case TransformINTEG:
			s.Integ = IntegAlg(tr.ID)
		case TransformDH:
			s.DH = DHGroup(tr.ID)
			if s.DH != DHNone && !s.DH.Supported() {
				return ESPSuite{}, fmt.Errorf("ike: key exchange method %v not implemented", s.DH)
			}
		case TransformESN:
			switch tr.ID {
			case ESN_NONE:
			case ESN_ON:
				s.ESN = true
			default:
				return ESPSuite{}, fmt.Errorf("ike: ESN transform %d", tr.ID)
			}
		}
	}
	if _, ok := ESPAlgorithmName(s.Encr, s.KeyBits, s.Integ); !ok {
		return ESPSuite{}, fmt.Errorf("ike: no ESP implementation of %s", formatTransforms([]Transform{
			{Type: TransformENCR, ID: uint16(s.Encr), KeyLength: uint16(s.KeyBits)},
			{Type: TransformINTEG, ID: uint16(s.Integ)},
		}))
	}
	return s, nil
}

// KeyLens are the lengths of the encryption and integrity keys taken from
// KEYMAT for each direction (RFC 7296 §2.17): the AES key plus a 4-byte
// salt for AES-GCM (RFC 4106 §8.1) and AES-GMAC (RFC 4543 §3.2), 32 + 4
// bytes for ChaCha20-Poly1305 (RFC 7634 §2), the key alone for AES-CBC,
// none for NULL; the HMAC key length for the integrity (RFC 4868 §2.1.2,
// RFC 2404 §3 for SHA-1), none for a combined mode.
func (s ESPSuite) KeyLens() (enc, integ int) {
	switch s.Encr {
	case EncrAESGCM8, EncrAESGCM12, EncrAESGCM16, EncrNullAuthAESGMAC:
		enc = s.KeyBits/8 + 4
	case EncrChaCha20Poly1305:
		enc = 32 + 4
	case EncrAESCBC:
		enc = s.KeyBits / 8
	}
	switch s.Integ {
	case IntegHMACSHA1_96:
		integ = 20
	default:
		integ = s.Integ.KeyLen()
	}
	return enc, integ
}

// ESPAlgorithmName is the name esp.ParseAlgorithm knows for the suite
// (esp/alg.go): "aes128gcm16", "aes256-sha256", "null-sha256", ... ok is
// false for a combination esp does not implement.
func ESPAlgorithmName(encr EncrAlg, keyBits int, integ IntegAlg) (string, bool) {
	aes := keyBits == 128 || keyBits == 192 || keyBits == 256
	kb := fmt.Sprint(keyBits)
	switch encr {
	case EncrAESGCM16:
		if aes && integ == IntegNone {
			return "aes" + kb + "gcm16", true
		}
	case EncrChaCha20Poly1305:
		if (keyBits == 0 || keyBits == 256) && integ == IntegNone {
			return "chacha20poly1305", true
		}
	case EncrNullAuthAESGMAC:
		if (keyBits == 128 || keyBits == 256) && integ == IntegNone {
			return "aes" + kb + "gmac", true
		}
	case EncrAESCBC:
		if keyBits != 128 && keyBits != 256 {
			break
		}
		switch integ {
		case IntegHMACSHA2_256_128:
			return "aes" + kb + "-sha256", true
		case IntegHMACSHA1_96:
			return "aes" + kb + "-sha1", true
		}
	case EncrNull:
		if keyBits == 0 && integ == IntegHMACSHA2_256_128 {
			return "null-sha256", true
		}
	}
	return "", false
}
