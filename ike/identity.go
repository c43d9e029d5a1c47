package ike

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Identities in swanctl.conf's syntax (local.id, remote.id; RFC 7296
// §3.5 for the types):
//
//	192.0.2.1, 2001:db8::1         ID_IPV4_ADDR, ID_IPV6_ADDR
//	moon.strongswan.org, @moon     ID_FQDN (the "@" forces it)
//	carol@strongswan.org, @@carol  ID_RFC822_ADDR ("@@" forces it)
//	@#0123abcd                     ID_KEY_ID, hex
//	C=CH, O=strongSwan, CN=moon    ID_DER_ASN1_DN
//	%null                          ID_NULL (RFC 7619)
//	%any or empty                  the zero Identity: any peer

const maxIdentityLen = 1024

// dnAttrs are the attribute names a DN may use, with their OIDs (RFC 4519,
// RFC 5280 App. A).
var dnAttrs = []struct {
	names []string
	oid   asn1.ObjectIdentifier
}{
	{[]string{"C"}, asn1.ObjectIdentifier{2, 5, 4, 6}},
	{[]string{"ST"}, asn1.ObjectIdentifier{2, 5, 4, 8}},
	{[]string{"L"}, asn1.ObjectIdentifier{2, 5, 4, 7}},
	{[]string{"O"}, asn1.ObjectIdentifier{2, 5, 4, 10}},
	{[]string{"OU"}, asn1.ObjectIdentifier{2, 5, 4, 11}},
	{[]string{"CN"}, asn1.ObjectIdentifier{2, 5, 4, 3}},
	{[]string{"SN", "serialNumber"}, asn1.ObjectIdentifier{2, 5, 4, 5}},
	{[]string{"street"}, asn1.ObjectIdentifier{2, 5, 4, 9}},
	{[]string{"title"}, asn1.ObjectIdentifier{2, 5, 4, 12}},
	{[]string{"S", "surname"}, asn1.ObjectIdentifier{2, 5, 4, 4}},
	{[]string{"G", "givenName"}, asn1.ObjectIdentifier{2, 5, 4, 42}},
	{[]string{"I", "initials"}, asn1.ObjectIdentifier{2, 5, 4, 43}},
	{[]string{"N", "name"}, asn1.ObjectIdentifier{2, 5, 4, 41}},
	{[]string{"pseudonym"}, asn1.ObjectIdentifier{2, 5, 4, 65}},
	{[]string{"E", "emailAddress"}, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}},
	{[]string{"UID"}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}},
	{[]string{"DC"}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}},
}

func dnOID(name string) (asn1.ObjectIdentifier, bool) {
	for _, a := range dnAttrs {
		for _, n := range a.names {
			if strings.EqualFold(n, name) {
				return a.oid, true
			}
		}
	}
	return nil, false
}

func dnName(oid asn1.ObjectIdentifier) string {
	for _, a := range dnAttrs {
		if a.oid.Equal(oid) {
			return a.names[0]
		}
	}
	return oid.String()
}

// ParseIdentity parses an identity in the syntax above.
func ParseIdentity(s string) (Identity, error) {
	bad := func(format string, args ...any) (Identity, error) {
		return Identity{}, fmt.Errorf("ike: identity %q: %s", s, fmt.Sprintf(format, args...))
	}
	if len(s) > maxIdentityLen {
		return Identity{}, fmt.Errorf("ike: identity of %d bytes, more than %d", len(s), maxIdentityLen)
	}
	in := strings.TrimSpace(s)
	for _, r := range in {
		if r < 0x20 || r == 0x7f {
			return bad("control character")
		}
	}
	switch {
	case in == "" || strings.EqualFold(in, "%any"):
		return Identity{}, nil
	case strings.EqualFold(in, "%null"):
		return Identity{Type: ID_NULL}, nil
	case strings.HasPrefix(in, "@#"):
		b, err := hex.DecodeString(strings.ReplaceAll(in[2:], ":", ""))
		if err != nil || len(b) == 0 {
			return bad("key ID is not hex")
		}
		return Identity{Type: ID_KEY_ID, Data: b}, nil
	case strings.HasPrefix(in, "@@"):
		if len(in) == 2 {
			return bad("empty")
		}
		return Identity{Type: ID_RFC822_ADDR, Data: []byte(in[2:])}, nil
	case strings.HasPrefix(in, "@"):
		if len(in) == 1 {
			return bad("empty")
		}
		return Identity{Type: ID_FQDN, Data: []byte(in[1:])}, nil
	case strings.HasPrefix(in, "%"):
		return bad("unknown keyword")
	}
	if a, err := netip.ParseAddr(in); err == nil {
		if a.Zone() != "" {
			return bad("zoned address")
		}
		return IdentityFromAddr(a), nil
	}
	if strings.Contains(in, "=") {
		der, err := parseDN(in)
		if err != nil {
			return bad("%v", err)
		}
		return Identity{Type: ID_DER_ASN1_DN, Data: der}, nil
	}
	if strings.ContainsAny(in, " \t,\\\"") {
		return bad("not an address, a DNS name, an e-mail address or a DN")
	}
	if i := strings.IndexByte(in, '@'); i >= 0 {
		if i == len(in)-1 {
			return bad("no domain after @")
		}
		return Identity{Type: ID_RFC822_ADDR, Data: []byte(in)}, nil
	}
	return Identity{Type: ID_FQDN, Data: []byte(in)}, nil
}

// parseDN reads "C=CH, O=strongSwan, CN=moon" (one attribute per RDN, in
// the order written; "\," escapes a comma) into its DER.
func parseDN(s string) ([]byte, error) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '\\':
			return nil, errors.New("trailing backslash")
		case c == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	var rdns pkix.RDNSequence
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("DN part %q is not NAME=value", p)
		}
		oid, ok := dnOID(k)
		if !ok {
			return nil, fmt.Errorf("unknown DN attribute %q", k)
		}
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}})
	}
	return asn1.Marshal(rdns)
}

// parseDER reads a DN's DER; ok false unless it is exactly one RDN
// sequence with string values.
func parseDER(der []byte) (pkix.RDNSequence, bool) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &rdns)
	if err != nil || len(rest) != 0 {
		return nil, false
	}
	for _, rdn := range rdns {
		for _, a := range rdn {
			if _, ok := a.Value.(string); !ok {
				return nil, false
			}
		}
	}
	return rdns, true
}

func formatDN(rdns pkix.RDNSequence) string {
	var parts []string
	for _, rdn := range rdns {
		for _, a := range rdn {
			v := strings.ReplaceAll(a.Value.(string), `\`, `\\`)
			parts = append(parts, dnName(a.Type)+"="+strings.ReplaceAll(v, ",", `\,`))
		}
	}
	return strings.Join(parts, ", ")
}

// IdentityFromAddr is the ID_IPV4_ADDR (also for an IPv4-mapped address)
// or ID_IPV6_ADDR identity of a; the zero Identity for an invalid a.
func IdentityFromAddr(a netip.Addr) Identity {
	switch a = a.Unmap(); {
	case a.Is4():
		b := a.As4()
		return Identity{Type: ID_IPV4_ADDR, Data: b[:]}
	case a.Is6():
		b := a.As16()
		return Identity{Type: ID_IPV6_ADDR, Data: b[:]}
	}
	return Identity{}
}

// IsZero reports whether id is the zero Identity, which matches any peer.
func (id Identity) IsZero() bool { return id.Type == 0 && len(id.Data) == 0 }

// String writes id in the syntax ParseIdentity reads, so that parsing it
// gives id back: a DN in its wire order, an FQDN with "@" or an RFC 822
// address with "@@" only where the plain form would read as something
// else. Types without a syntax are "%type(N):#hex".
func (id Identity) String() string {
	switch id.Type {
	case 0:
		if len(id.Data) == 0 {
			return "%any"
		}
	case ID_IPV4_ADDR, ID_IPV6_ADDR:
		if a, ok := netip.AddrFromSlice(id.Data); ok && (len(id.Data) == 4) == (id.Type == ID_IPV4_ADDR) {
			return a.String()
		}
	case ID_FQDN:
		s := string(id.Data)
		if p, err := ParseIdentity(s); err == nil && p.Equal(id) && s == strings.TrimSpace(s) {
			return s
		}
		return "@" + s
	case ID_RFC822_ADDR:
		s := string(id.Data)
		if p, err := ParseIdentity(s); err == nil && p.Equal(id) && s == strings.TrimSpace(s) {
			return s
		}
		return "@@" + s
	case ID_KEY_ID:
		if len(id.Data) > 0 {
			return "@#" + hex.EncodeToString(id.Data)
		}
	case ID_DER_ASN1_DN:
		if rdns, ok := parseDER(id.Data); ok && len(rdns) > 0 {
			return formatDN(rdns)
		}
	case ID_NULL:
		if len(id.Data) == 0 {
			return "%null"
		}
	}
	return fmt.Sprintf("%%type(%d):#%x", id.Type, id.Data)
}

// Equal reports whether id and o are the same identity: a DN compared
// attribute by attribute (whatever string type the DER used), an FQDN or
// RFC 822 address without regard to case, others byte for byte.
func (id Identity) Equal(o Identity) bool {
	if id.Type != o.Type {
		return false
	}
	switch id.Type {
	case ID_FQDN, ID_RFC822_ADDR:
		return strings.EqualFold(string(id.Data), string(o.Data))
	case ID_DER_ASN1_DN:
		a, okA := parseDER(id.Data)
		b, okB := parseDER(o.Data)
		if okA && okB {
			return sameDN(a, b)
		}
	}
	return bytes.Equal(id.Data, o.Data)
}

func sameDN(a, b pkix.RDNSequence) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			x, y := a[i][j], b[i][j]
			if !x.Type.Equal(y.Type) || x.Value.(string) != y.Value.(string) {
				return false
			}
		}
	}
	return true
}

// Matches reports whether a peer that proved identity peer satisfies the
// configured id: the zero Identity matches any peer, others must be Equal.
func (id Identity) Matches(peer Identity) bool { return id.IsZero() || id.Equal(peer) }

// IdentityPayload is the IDi (responder false) or IDr payload carrying
// id, with its own copy of the data.
func IdentityPayload(id Identity, responder bool) *ID {
	return &ID{Initiator: !responder, IDType: id.Type, Data: bytes.Clone(id.Data)}
}

// IdentityOf is the identity an IDi or IDr payload carries, copied out of
// the message's buffer; nil gives the zero Identity.
func IdentityOf(p *ID) Identity {
	if p == nil {
		return Identity{}
	}
	return Identity{Type: p.IDType, Data: bytes.Clone(p.Data)}
}
