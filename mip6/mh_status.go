package mip6

import "strconv"

// BAStatus is the Status of a Binding Acknowledgement (RFC 6275 §6.1.8;
// RFC 5555 §4.4.2; RFC 5648 §6.2) and of a Binding Identifier option.
// Values below 128 mean the BU was accepted.
type BAStatus uint8

// Binding Acknowledgement status codes.
const (
	BAStatusAccepted               BAStatus = 0   // RFC 6275 §6.1.8
	BAStatusAcceptedPrefixDiscover BAStatus = 1   // accepted but prefix discovery necessary, RFC 6275 §6.1.8
	BAStatusMCoANotComplete        BAStatus = 4   // RFC 5648 §6.2
	BAStatusMCoAReturnHomeWoNDP    BAStatus = 5   // RFC 5648 §6.2
	BAStatusUnspecified            BAStatus = 128 // reason unspecified
	BAStatusProhibited             BAStatus = 129 // administratively prohibited
	BAStatusInsufficientResources  BAStatus = 130
	BAStatusHomeRegNotSupported    BAStatus = 131 // home registration not supported
	BAStatusNotHomeSubnet          BAStatus = 132
	BAStatusNotHomeAgent           BAStatus = 133 // not home agent for this mobile node
	BAStatusDADFailed              BAStatus = 134 // duplicate address detection failed
	BAStatusSeqOutOfWindow         BAStatus = 135 // sequence number out of window, RFC 6275 §9.5.1
	BAStatusExpiredHomeNonce       BAStatus = 136 // expired home nonce index
	BAStatusExpiredCareOfNonce     BAStatus = 137 // expired care-of nonce index
	BAStatusExpiredNonces          BAStatus = 138
	BAStatusRegTypeChange          BAStatus = 139 // registration type change disallowed
	// BAStatusForcedUDPRefused is what RFC 5555 §4.4.2/§4.5 send when the
	// HA refuses the F flag. RFC 5555 never registered it and 144 is also
	// MIPV6-ID-MISMATCH (RFC 4285 §8); its String names both.
	BAStatusForcedUDPRefused        BAStatus = 144
	BAStatusMCoAMalformed           BAStatus = 164 // RFC 5648 §6.2
	BAStatusMCoANonMCoABinding      BAStatus = 165 // non-MCoA binding exists
	BAStatusMCoAProhibited          BAStatus = 166
	BAStatusMCoAUnknownCoA          BAStatus = 167
	BAStatusMCoABulkProhibited      BAStatus = 168 // bulk registration prohibited
	BAStatusMCoASimultaneousHomeFor BAStatus = 169 // simultaneous home and foreign prohibited
	BAStatusInvalidCoA              BAStatus = 174 // invalid care-of address, RFC 6275 §6.1.8
)

var baStatusNames = map[BAStatus]string{
	BAStatusAccepted:                "accepted",
	BAStatusAcceptedPrefixDiscover:  "accepted, prefix discovery necessary",
	BAStatusMCoANotComplete:         "MCoA not complete",
	BAStatusMCoAReturnHomeWoNDP:     "MCoA return home without NDP",
	BAStatusUnspecified:             "reason unspecified",
	BAStatusProhibited:              "administratively prohibited",
	BAStatusInsufficientResources:   "insufficient resources",
	BAStatusHomeRegNotSupported:     "home registration not supported",
	BAStatusNotHomeSubnet:           "not home subnet",
	BAStatusNotHomeAgent:            "not home agent for this mobile node",
	BAStatusDADFailed:               "duplicate address detection failed",
	BAStatusSeqOutOfWindow:          "sequence number out of window",
	BAStatusExpiredHomeNonce:        "expired home nonce index",
	BAStatusExpiredCareOfNonce:      "expired care-of nonce index",
	BAStatusExpiredNonces:           "expired nonces",
	BAStatusRegTypeChange:           "registration type change disallowed",
	BAStatusForcedUDPRefused:        "forced UDP encapsulation refused (or RFC 4285 MIPV6-ID-MISMATCH)",
	BAStatusMCoAMalformed:           "MCoA malformed",
	BAStatusMCoANonMCoABinding:      "non-MCoA binding exists",
	BAStatusMCoAProhibited:          "MCoA prohibited",
	BAStatusMCoAUnknownCoA:          "MCoA unknown care-of address",
	BAStatusMCoABulkProhibited:      "MCoA bulk registration prohibited",
	BAStatusMCoASimultaneousHomeFor: "simultaneous home and foreign binding prohibited",
	BAStatusInvalidCoA:              "invalid care-of address",
}

// Accepted reports whether s means the BU was accepted (s < 128, RFC 6275
// §6.1.8).
func (s BAStatus) Accepted() bool { return s < 128 }

func (s BAStatus) String() string {
	if n, ok := baStatusNames[s]; ok {
		return n
	}
	if s.Accepted() {
		return "accepted (" + strconv.Itoa(int(s)) + ")"
	}
	return "rejected (" + strconv.Itoa(int(s)) + ")"
}

// BEStatus is the Status of a Binding Error (RFC 6275 §6.1.9).
type BEStatus uint8

// Binding Error status codes.
const (
	BEStatusUnknownHAO  BEStatus = 1 // unknown binding for Home Address destination option
	BEStatusUnknownType BEStatus = 2 // unrecognized MH Type value
)

func (s BEStatus) String() string {
	switch s {
	case BEStatusUnknownHAO:
		return "unknown binding for home address option"
	case BEStatusUnknownType:
		return "unrecognized MH type"
	}
	return "BE status " + strconv.Itoa(int(s))
}

// IPv4AckStatus is the Status of an IPv4 Address Acknowledgement option
// (RFC 5555 §3.2.1). Values below 128 mean success.
type IPv4AckStatus uint8

// IPv4 Address Acknowledgement status codes (RFC 5555 §3.2.1).
const (
	IPv4AckSuccess            IPv4AckStatus = 0
	IPv4AckUnspecified        IPv4AckStatus = 128 // failure, reason unspecified
	IPv4AckProhibited         IPv4AckStatus = 129 // administratively prohibited
	IPv4AckIncorrectHoA       IPv4AckStatus = 130 // incorrect IPv4 home address
	IPv4AckInvalidAddress     IPv4AckStatus = 131 // invalid IPv4 address
	IPv4AckDynamicUnavailable IPv4AckStatus = 132 // dynamic IPv4 home address assignment not available
	IPv4AckPrefixUnauthorized IPv4AckStatus = 133 // prefix allocation unauthorized
)

var ipv4AckNames = map[IPv4AckStatus]string{
	IPv4AckSuccess:            "success",
	IPv4AckUnspecified:        "failure, reason unspecified",
	IPv4AckProhibited:         "administratively prohibited",
	IPv4AckIncorrectHoA:       "incorrect IPv4 home address",
	IPv4AckInvalidAddress:     "invalid IPv4 address",
	IPv4AckDynamicUnavailable: "dynamic IPv4 home address assignment not available",
	IPv4AckPrefixUnauthorized: "prefix allocation unauthorized",
}

// Success reports whether s is a success code (s < 128, RFC 5555 §3.2.1).
func (s IPv4AckStatus) Success() bool { return s < 128 }

func (s IPv4AckStatus) String() string {
	if n, ok := ipv4AckNames[s]; ok {
		return n
	}
	if s.Success() {
		return "success (" + strconv.Itoa(int(s)) + ")"
	}
	return "failure (" + strconv.Itoa(int(s)) + ")"
}
