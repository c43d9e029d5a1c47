// Package charontest runs strongSwan's charon as an IKEv2 peer for
// interop tests of package ike: one charon per network namespace,
// configured from Go structs and driven over its vici socket
// (github.com/strongswan/govici).
//
//	p := testns.NewVethPair(t)
//	charontest.Need(t)
//	b, err := charontest.Start(t, charontest.Config{Namespace: p.B.Name, Dir: t.TempDir()})
//	b.LoadShared([]string{"192.0.2.1", "192.0.2.2"}, psk)
//	b.LoadConn(charontest.Conn{Name: "ike", LocalAddrs: ..., Encap: true, Children: ...})
//	b.Initiate("net", "ike", 10*time.Second)
//	sas, err := b.ListSAs()
//	b.RekeyChild("net"); b.Kill(); b.Restart()
//
// How charon runs here (Debian's strongSwan 5.9.8 packages, see `make
// deps`):
//
//   - charon's pid file path (/run/charon.pid) is compiled in, so each
//     charon gets a mount namespace of its own with a tmpfs over /run
//     (nsenter into the network namespace, then unshare -m); STRONGSWAN_CONF
//     points it at the strongswan.conf that Start writes into Config.Dir,
//     which names the vici socket (in Config.Dir too) and an explicit load
//     list (DefaultPlugins), so nothing from /etc/strongswan.d applies;
//   - ESP runs in charon's userspace (kernel-libipsec, loaded before
//     kernel-netlink) on a TUN device named ipsec0; charon routes the
//     remote traffic selectors into it in table 220 with the local
//     selector's address as source, so that address must exist on an
//     interface of the namespace (a /32 on lo will do). libipsec has
//     tunnel mode only, no ESN, no AES-GMAC, and sends and receives ESP in
//     UDP only: connections to a peer that does not force UDP
//     encapsulation need Conn.Encap (charon then fakes a NAT in its
//     NAT_DETECTION payloads, RFC 7296 §2.23, both ends float to port 4500
//     and list-sas reports nat-any; with encap on both ends each sees the
//     other "behind a NAT", nat-remote);
//   - prf+ lives in the kdf plugin since strongSwan 5.9.6: without it key
//     derivation fails ("KDF_PRF ... not supported");
//   - after a CHILD_SA rekey charon keeps the old SA, state DELETED, for
//     delete_rekeyed_delay (5 s): IKESA.Installed leaves it out;
//   - charon's log goes to Config.Dir/charon.log (and Config.Log), at
//     DefaultLogLevels; Config.LogKeys adds the IKE and ESP keys, which
//     LoggedKeys reads back.
//
// govici's CallStreaming may return list-sas' reply before its list-sa
// events (two channels), so ListSAs subscribes to list-sa instead.
//
// The SAs that list-sas and the events report are parsed into IKESA and
// ChildSA (SPIs as numbers, addresses as netip values). CA and Cert make
// RSA, ECDSA or Ed25519 certificates with strongSwan's pki.
//
// Tests need root (internal/testenv: skipped outside CI, failed in CI).
// Only tests import this package.
package charontest
