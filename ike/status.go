package ike

import (
	"net/netip"
	"time"
)

// SAStatus is one IKE SA as `mipsec ike list` shows it (swanctl
// --list-sas).
type SAStatus struct {
	Name string // connection
	ID   uint32 // unique within the daemon
	// State is "connecting", "established", "rekeying", "deleting".
	State     string
	Initiator bool
	SPIi      uint64
	SPIr      uint64
	Local     netip.AddrPort
	Remote    netip.AddrPort
	LocalID   string
	RemoteID  string
	// NATLocal and NATRemote say which side NAT detection (§2.23) found
	// behind a NAT; Encap that ESP and IKE use port 4500.
	NATLocal, NATRemote, Encap bool
	// VIPs and HomePrefix are what the responder's configuration reply
	// assigned to us; PeerVIPs what our pool assigned to the peer (cp.go,
	// RFC 7296 §2.19, RFC 4877 §9).
	VIPs, PeerVIPs []netip.Addr
	HomePrefix     netip.Prefix
	// Suite is the negotiated IKE proposal, e.g.
	// "aes128gcm16/prfsha256/curve25519".
	Suite       string
	Established time.Time
	RekeyAt     time.Time // zero: no rekey scheduled
	Children    []ChildStatus
}

// ChildStatus is one Child SA of an IKE SA.
type ChildStatus struct {
	Name  string
	ID    uint32
	State string // "installing", "installed", "rekeying", "deleting"
	Mode  Mode
	// Suite is the negotiated ESP proposal, e.g. "aes128gcm16/esn".
	Suite             string
	InSPI, OutSPI     uint32
	LocalTS, RemoteTS []TrafficSelector
	Installed         time.Time
	RekeyAt           time.Time
	ExpireAt          time.Time
}

// Stats are the daemon's counters (metrics: exchanges by type, failures by
// reason, SAs up, rekeys, retransmits). Each map has a fixed key set.
type Stats struct {
	IKESAs, ChildSAs, HalfOpen int
	// Exchanges counts completed exchanges by type ("IKE_SA_INIT",
	// "IKE_AUTH", "CREATE_CHILD_SA", "INFORMATIONAL").
	Exchanges map[string]uint64
	// Failures counts refused or failed messages and exchanges by reason:
	// "malformed", "auth_failed", "no_proposal", "ts_unacceptable",
	// "invalid_spi" (no such IKE SA), "message_id" (outside the window, or
	// a response to no request), "timeout" (retransmissions spent),
	// "queue_full", "cookie" (a COOKIE asked for), "invalid_ke",
	// "integrity" (an SK payload that failed its check), "half_open_full",
	// "rate_limit" (IKE_SA_INIT per source), "unknown_peer" (no connection
	// for the source), "kernel", "fragment", "internal", "peer_auth_failed"
	// (the initiator refused our AUTH: its AUTHENTICATION_FAILED notice,
	// §2.21.2).
	Failures    map[string]uint64
	Rekeys      uint64 // child and IKE SA rekeys completed
	Retransmits uint64
	// CookiesSent counts COOKIE answers (§2.6).
	CookiesSent uint64
	// ESPMoves counts IKE SAs moved to where their peer's ESP came from
	// (Daemon.ESPMoved: a NAT's new mapping, §2.23).
	ESPMoves uint64
	// MOBIKEUpdates counts IKE SAs moved by the initiator's
	// UPDATE_SA_ADDRESSES (RFC 4555 §3.5).
	MOBIKEUpdates uint64
	// Relocations counts IKE SAs moved with a mobile node on an
	// authenticated Binding Update or Acknowledgement with the K flag
	// (Relocate, RFC 4877 §7.4); Renewals IKE SAs negotiated again from a
	// new address without it (Renew).
	Relocations, Renewals uint64
}

// WiresharkKey is one IKE SA's line of Wireshark's
// ikev2_decryption_table: the SPIs, SK_ei/SK_er with the encryption
// algorithm name Wireshark uses, and SK_ai/SK_ar with the integrity one.
// It is secret material, for `mipsec ike list --wireshark` only.
type WiresharkKey struct {
	SPIi, SPIr uint64
	SKei, SKer []byte
	EncrName   string
	SKai, SKar []byte
	IntegName  string
}
