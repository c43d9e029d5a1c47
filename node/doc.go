// Package node is one running mipsec gateway, home agent or mobile node:
// the product as a library. It composes the engine (esp, sad, spd), the
// dataplane, the Linux underlay (package underlay) or an injected one, and
// for RoleHA / RoleMN the mobility layer (mip6, in the unmodified-IPsec
// model described in ARCHITECTURE.md), and it owns what makes static keys
// safe: the sequence-number reservations of every outbound key (package
// seqstore), so that no (key, IV) pair is ever used twice across restarts,
// SPI changes and live updates (RFC 4106 §3.1, RFC 8221 §3), and the
// checks that refuse two SAs sharing a counter-mode key.
//
// A Config says what the node is; New builds its SAD and SPD, Start opens
// the TUN and the underlay (or takes Config.Device and Config.Conn, e.g. a
// netstack TUN and an in-process underlay, which need no root) and starts
// the packet path, and Close stops it in order: the mobile node
// de-registers first, the last sequence numbers are recorded last.
// AddSA, UpdateSA, DelSA, AddPolicy and DelPolicy change a running node;
// Status, Stats, Peers, Bindings and MNStatus read it; MNMove moves a
// mobile node; Subscribe delivers the events a key manager needs (SA
// lifetimes, binding changes, registrations, peer endpoint changes).
//
// With Config.IKE connections the node hosts an IKEv2 daemon (package
// ike; Node.IKE): the node is its Kernel (ike_kernel.go: IKE-made SAs,
// policies and peers beside the manual ones, sequence numbers from 0 and
// nothing in the state directory, since their keys are fresh; lifetime
// events go to the daemon) and its Transport (UDP 500 and 4500 through
// the underlay, or Config.IKE.Transport with Node.ReceiveIKE). Close
// closes the daemon first, so that its Deletes still go out.
//
// node reads no files but its state directory, serves no sockets and
// exports no metrics: package config builds a Config from TOML, package
// control serves a node over a unix socket, and cmd/mipsec wires them.
package node
