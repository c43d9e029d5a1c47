package ike

import "strconv"

// Numbers from the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters"
// registry, as RFC 7296 §3 and the extensions named below define them.

// ExchangeType is the IKE header's Exchange Type (RFC 7296 §3.1).
type ExchangeType uint8

const (
	IKE_SA_INIT      ExchangeType = 34
	IKE_AUTH         ExchangeType = 35
	CREATE_CHILD_SA  ExchangeType = 36
	INFORMATIONAL    ExchangeType = 37
	IKE_INTERMEDIATE ExchangeType = 43 // RFC 9242
)

var exchangeNames = map[ExchangeType]string{
	IKE_SA_INIT:      "IKE_SA_INIT",
	IKE_AUTH:         "IKE_AUTH",
	CREATE_CHILD_SA:  "CREATE_CHILD_SA",
	INFORMATIONAL:    "INFORMATIONAL",
	IKE_INTERMEDIATE: "IKE_INTERMEDIATE",
}

func (e ExchangeType) String() string { return name(exchangeNames, e, "EXCHANGE") }

// Flags are the IKE header's flag bits (RFC 7296 §3.1). The other bits are
// reserved: Decode drops them and Append never sets them.
type Flags uint8

const (
	FlagInitiator Flags = 0x08 // I: sent by the original initiator of the IKE SA
	FlagVersion   Flags = 0x10 // V: the sender could speak a higher major version
	FlagResponse  Flags = 0x20 // R: this message is a response

	flagsKnown = FlagInitiator | FlagVersion | FlagResponse
)

// PayloadType is a Next Payload value (RFC 7296 §3.2, RFC 7383 §2.5).
type PayloadType uint8

const (
	PayloadNone    PayloadType = 0
	PayloadSA      PayloadType = 33
	PayloadKE      PayloadType = 34
	PayloadIDi     PayloadType = 35
	PayloadIDr     PayloadType = 36
	PayloadCERT    PayloadType = 37
	PayloadCERTREQ PayloadType = 38
	PayloadAUTH    PayloadType = 39
	PayloadNonce   PayloadType = 40
	PayloadNotify  PayloadType = 41
	PayloadDelete  PayloadType = 42
	PayloadVendor  PayloadType = 43
	PayloadTSi     PayloadType = 44
	PayloadTSr     PayloadType = 45
	PayloadSK      PayloadType = 46
	PayloadCP      PayloadType = 47
	PayloadEAP     PayloadType = 48
	PayloadSKF     PayloadType = 53 // RFC 7383 §2.5
)

var payloadNames = map[PayloadType]string{
	PayloadNone: "NONE", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr",
	PayloadCERT: "CERT", PayloadCERTREQ: "CERTREQ", PayloadAUTH: "AUTH", PayloadNonce: "Nonce",
	PayloadNotify: "Notify", PayloadDelete: "Delete", PayloadVendor: "VendorID", PayloadTSi: "TSi",
	PayloadTSr: "TSr", PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP", PayloadSKF: "SKF",
}

func (p PayloadType) String() string { return name(payloadNames, p, "PAYLOAD") }

// known reports whether Decode has a typed payload for p.
func (p PayloadType) known() bool {
	_, ok := payloadNames[p]
	return ok && p != PayloadNone
}

// ProtocolID names the protocol of a proposal, notify or delete (RFC 7296 §3.3.1).
type ProtocolID uint8

const (
	ProtoIKE ProtocolID = 1
	ProtoAH  ProtocolID = 2
	ProtoESP ProtocolID = 3
)

var protoNames = map[ProtocolID]string{ProtoIKE: "IKE", ProtoAH: "AH", ProtoESP: "ESP"}

func (p ProtocolID) String() string { return name(protoNames, p, "PROTO") }

// TransformType is a transform's kind (RFC 7296 §3.3.2).
type TransformType uint8

const (
	TransformENCR  TransformType = 1 // encryption algorithm
	TransformPRF   TransformType = 2 // pseudorandom function
	TransformINTEG TransformType = 3 // integrity algorithm
	TransformDH    TransformType = 4 // Diffie-Hellman group (key exchange method)
	TransformESN   TransformType = 5 // extended sequence numbers
)

var transformNames = map[TransformType]string{
	TransformENCR: "ENCR", TransformPRF: "PRF", TransformINTEG: "INTEG", TransformDH: "DH", TransformESN: "ESN",
}

func (t TransformType) String() string { return name(transformNames, t, "TRANSFORM") }

// The transform IDs of types ENCR, PRF, INTEG and DH are the typed
// EncrAlg, PRFAlg, IntegAlg and DHGroup (crypto_keys.go, crypto_prf.go,
// crypto_dh.go); Transform.ID holds them as their uint16 value.

// Transform IDs of type ESN (RFC 7296 §3.3.2).
const (
	ESN_NONE uint16 = 0
	ESN_ON   uint16 = 1
)

// AttrKeyLength is the Key Length transform attribute, always in TV form
// (RFC 7296 §3.3.5); its value is in bits.
const AttrKeyLength uint16 = 14

// IDType is an identification payload's ID Type (RFC 7296 §3.5).
type IDType uint8

const (
	ID_IPV4_ADDR   IDType = 1
	ID_FQDN        IDType = 2
	ID_RFC822_ADDR IDType = 3
	ID_IPV6_ADDR   IDType = 5
	ID_DER_ASN1_DN IDType = 9
	ID_DER_ASN1_GN IDType = 10
	ID_KEY_ID      IDType = 11
	ID_NULL        IDType = 13 // RFC 7619
)

// CertEncoding is a CERT or CERTREQ payload's Cert Encoding (RFC 7296 §3.6).
type CertEncoding uint8

const (
	CertPKCS7         CertEncoding = 1
	CertX509Signature CertEncoding = 4
	CertCRL           CertEncoding = 7
	CertHashURLX509   CertEncoding = 12
	CertHashURLBundle CertEncoding = 13
	CertOCSPContent   CertEncoding = 14 // RFC 4806
	CertRawPublicKey  CertEncoding = 15 // RFC 7670
)

// AuthMethod is an AUTH payload's Auth Method (RFC 7296 §3.8, RFC 4754,
// RFC 7427).
type AuthMethod uint8

const (
	AuthRSASignature     AuthMethod = 1
	AuthSharedKey        AuthMethod = 2
	AuthDSSSignature     AuthMethod = 3
	AuthECDSA256         AuthMethod = 9
	AuthECDSA384         AuthMethod = 10
	AuthECDSA521         AuthMethod = 11
	AuthNull             AuthMethod = 13 // RFC 7619
	AuthDigitalSignature AuthMethod = 14 // RFC 7427
)

// NotifyType is a Notify payload's Notify Message Type (RFC 7296 §3.10.1).
// Types below 16384 report errors; the others carry status.
type NotifyType uint16

// Error types.
const (
	UNSUPPORTED_CRITICAL_PAYLOAD NotifyType = 1
	INVALID_IKE_SPI              NotifyType = 4
	INVALID_MAJOR_VERSION        NotifyType = 5
	INVALID_SYNTAX               NotifyType = 7
	INVALID_MESSAGE_ID           NotifyType = 9
	INVALID_SPI                  NotifyType = 11
	NO_PROPOSAL_CHOSEN           NotifyType = 14
	INVALID_KE_PAYLOAD           NotifyType = 17
	AUTHENTICATION_FAILED        NotifyType = 24
	SINGLE_PAIR_REQUIRED         NotifyType = 34
	NO_ADDITIONAL_SAS            NotifyType = 35
	INTERNAL_ADDRESS_FAILURE     NotifyType = 36
	FAILED_CP_REQUIRED           NotifyType = 37
	TS_UNACCEPTABLE              NotifyType = 38
	INVALID_SELECTORS            NotifyType = 39
	UNACCEPTABLE_ADDRESSES       NotifyType = 40 // RFC 4555
	UNEXPECTED_NAT_DETECTED      NotifyType = 41 // RFC 4555
	USE_ASSIGNED_HoA             NotifyType = 42 // RFC 5026
	TEMPORARY_FAILURE            NotifyType = 43
	CHILD_SA_NOT_FOUND           NotifyType = 44
)

// Status types.
const (
	INITIAL_CONTACT                 NotifyType = 16384
	SET_WINDOW_SIZE                 NotifyType = 16385
	ADDITIONAL_TS_POSSIBLE          NotifyType = 16386
	IPCOMP_SUPPORTED                NotifyType = 16387
	NAT_DETECTION_SOURCE_IP         NotifyType = 16388
	NAT_DETECTION_DESTINATION_IP    NotifyType = 16389
	COOKIE                          NotifyType = 16390
	USE_TRANSPORT_MODE              NotifyType = 16391
	HTTP_CERT_LOOKUP_SUPPORTED      NotifyType = 16392
	REKEY_SA                        NotifyType = 16393
	ESP_TFC_PADDING_NOT_SUPPORTED   NotifyType = 16394
	NON_FIRST_FRAGMENTS_ALSO        NotifyType = 16395
	MOBIKE_SUPPORTED                NotifyType = 16396 // RFC 4555
	ADDITIONAL_IP4_ADDRESS          NotifyType = 16397 // RFC 4555
	ADDITIONAL_IP6_ADDRESS          NotifyType = 16398 // RFC 4555
	NO_ADDITIONAL_ADDRESSES         NotifyType = 16399 // RFC 4555
	UPDATE_SA_ADDRESSES             NotifyType = 16400 // RFC 4555
	COOKIE2                         NotifyType = 16401 // RFC 4555
	NO_NATS_ALLOWED                 NotifyType = 16402 // RFC 4555
	AUTH_LIFETIME                   NotifyType = 16403 // RFC 4478
	MULTIPLE_AUTH_SUPPORTED         NotifyType = 16404 // RFC 4739
	ANOTHER_AUTH_FOLLOWS            NotifyType = 16405 // RFC 4739
	REDIRECT_SUPPORTED              NotifyType = 16406 // RFC 5685
	REDIRECT                        NotifyType = 16407 // RFC 5685
	REDIRECTED_FROM                 NotifyType = 16408 // RFC 5685
	CHILDLESS_IKEV2_SUPPORTED       NotifyType = 16418 // RFC 6023
	IKEV2_FRAGMENTATION_SUPPORTED   NotifyType = 16430 // RFC 7383
	SIGNATURE_HASH_ALGORITHMS       NotifyType = 16431 // RFC 7427
	INTERMEDIATE_EXCHANGE_SUPPORTED NotifyType = 16438 // RFC 9242
)

var notifyNames = map[NotifyType]string{
	UNSUPPORTED_CRITICAL_PAYLOAD: "UNSUPPORTED_CRITICAL_PAYLOAD", INVALID_IKE_SPI: "INVALID_IKE_SPI",
	INVALID_MAJOR_VERSION: "INVALID_MAJOR_VERSION", INVALID_SYNTAX: "INVALID_SYNTAX",
	INVALID_MESSAGE_ID: "INVALID_MESSAGE_ID", INVALID_SPI: "INVALID_SPI",
	NO_PROPOSAL_CHOSEN: "NO_PROPOSAL_CHOSEN", INVALID_KE_PAYLOAD: "INVALID_KE_PAYLOAD",
	AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED", SINGLE_PAIR_REQUIRED: "SINGLE_PAIR_REQUIRED",
	NO_ADDITIONAL_SAS: "NO_ADDITIONAL_SAS", INTERNAL_ADDRESS_FAILURE: "INTERNAL_ADDRESS_FAILURE",
	FAILED_CP_REQUIRED: "FAILED_CP_REQUIRED", TS_UNACCEPTABLE: "TS_UNACCEPTABLE",
	INVALID_SELECTORS: "INVALID_SELECTORS", UNACCEPTABLE_ADDRESSES: "UNACCEPTABLE_ADDRESSES",
	UNEXPECTED_NAT_DETECTED: "UNEXPECTED_NAT_DETECTED", USE_ASSIGNED_HoA: "USE_ASSIGNED_HoA",
	TEMPORARY_FAILURE: "TEMPORARY_FAILURE", CHILD_SA_NOT_FOUND: "CHILD_SA_NOT_FOUND",

	INITIAL_CONTACT: "INITIAL_CONTACT", SET_WINDOW_SIZE: "SET_WINDOW_SIZE",
	ADDITIONAL_TS_POSSIBLE: "ADDITIONAL_TS_POSSIBLE", IPCOMP_SUPPORTED: "IPCOMP_SUPPORTED",
	NAT_DETECTION_SOURCE_IP: "NAT_DETECTION_SOURCE_IP", NAT_DETECTION_DESTINATION_IP: "NAT_DETECTION_DESTINATION_IP",
	COOKIE: "COOKIE", USE_TRANSPORT_MODE: "USE_TRANSPORT_MODE",
	HTTP_CERT_LOOKUP_SUPPORTED: "HTTP_CERT_LOOKUP_SUPPORTED", REKEY_SA: "REKEY_SA",
	ESP_TFC_PADDING_NOT_SUPPORTED: "ESP_TFC_PADDING_NOT_SUPPORTED", NON_FIRST_FRAGMENTS_ALSO: "NON_FIRST_FRAGMENTS_ALSO",
	MOBIKE_SUPPORTED: "MOBIKE_SUPPORTED", ADDITIONAL_IP4_ADDRESS: "ADDITIONAL_IP4_ADDRESS",
	ADDITIONAL_IP6_ADDRESS: "ADDITIONAL_IP6_ADDRESS", NO_ADDITIONAL_ADDRESSES: "NO_ADDITIONAL_ADDRESSES",
	UPDATE_SA_ADDRESSES: "UPDATE_SA_ADDRESSES", COOKIE2: "COOKIE2", NO_NATS_ALLOWED: "NO_NATS_ALLOWED",
	AUTH_LIFETIME: "AUTH_LIFETIME", MULTIPLE_AUTH_SUPPORTED: "MULTIPLE_AUTH_SUPPORTED",
	ANOTHER_AUTH_FOLLOWS: "ANOTHER_AUTH_FOLLOWS", REDIRECT_SUPPORTED: "REDIRECT_SUPPORTED",
	REDIRECT: "REDIRECT", REDIRECTED_FROM: "REDIRECTED_FROM",
	CHILDLESS_IKEV2_SUPPORTED:       "CHILDLESS_IKEV2_SUPPORTED",
	IKEV2_FRAGMENTATION_SUPPORTED:   "IKEV2_FRAGMENTATION_SUPPORTED",
	SIGNATURE_HASH_ALGORITHMS:       "SIGNATURE_HASH_ALGORITHMS",
	INTERMEDIATE_EXCHANGE_SUPPORTED: "INTERMEDIATE_EXCHANGE_SUPPORTED",
}

func (n NotifyType) String() string { return name(notifyNames, n, "NOTIFY") }

// IsError reports whether n is an error type (below 16384, RFC 7296 §3.10.1).
func (n NotifyType) IsError() bool { return n < 16384 }

// TSType is a traffic selector's TS Type (RFC 7296 §3.13.1).
type TSType uint8

const (
	TS_IPV4_ADDR_RANGE TSType = 7
	TS_IPV6_ADDR_RANGE TSType = 8
)

// CfgType is a Configuration payload's CFG Type (RFC 7296 §3.15).
type CfgType uint8

const (
	CFG_REQUEST CfgType = 1
	CFG_REPLY   CfgType = 2
	CFG_SET     CfgType = 3
	CFG_ACK     CfgType = 4
)

// Configuration attribute types (RFC 7296 §3.15.1; RFC 5026 §6.1 for
// MIP6_HOME_PREFIX, RFC 5739 for the IPv6 link and prefix attributes).
const (
	INTERNAL_IP4_ADDRESS uint16 = 1
	INTERNAL_IP4_NETMASK uint16 = 2
	INTERNAL_IP4_DNS     uint16 = 3
	INTERNAL_IP4_NBNS    uint16 = 4
	INTERNAL_IP4_DHCP    uint16 = 6
	APPLICATION_VERSION  uint16 = 7
	INTERNAL_IP6_ADDRESS uint16 = 8
	INTERNAL_IP6_DNS     uint16 = 10
	INTERNAL_IP6_DHCP    uint16 = 12
	INTERNAL_IP4_SUBNET  uint16 = 13
	SUPPORTED_ATTRIBUTES uint16 = 14
	INTERNAL_IP6_SUBNET  uint16 = 15
	MIP6_HOME_PREFIX     uint16 = 16
	INTERNAL_IP6_LINK    uint16 = 17
	INTERNAL_IP6_PREFIX  uint16 = 18
)

func name[K ~uint8 | ~uint16](m map[K]string, k K, kind string) string {
	if s, ok := m[k]; ok {
		return s
	}
	return kind + "(" + strconv.Itoa(int(k)) + ")"
}
