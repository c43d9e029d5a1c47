// Package control is mipsec's control protocol: a unix stream socket on
// which a running node answers the mipsec client subcommands (status,
// stats, peers, sa, policy, binding, mn, ike, capture). Listen serves a Target
// (a *node.Node with the daemon's status, in cmd/mipsec); Client is the Go
// client the CLI uses; the request and answer types are exported, and
// Methods lists the registry every method is one entry of. SAs, policies
// and selectors use package config's grammar.
//
// Protocol, one JSON object per line in each direction:
//
//	-> {"cmd":"sa.list"}
//	<- {"ok":true,"data":[...]}
//	-> {"cmd":"sa.del","args":{"dir":"in","spi":4097}}
//	<- {"ok":false,"error":"sa.del: sad: no such SA ..."}
//
// A connection may carry several requests, one after the other. A request
// line is at most MaxRequestLen bytes and must arrive within RequestTimeout
// of the previous answer (or of the connection): slow, huge or malformed
// requests get an error answer and the connection is closed, so no client
// can hold a server goroutine for long. "capture" is the one command that
// does not answer with a single line: after its {"ok":true,...} line the
// connection carries a pcap stream (pcapgo, LINKTYPE_RAW) until the count or
// duration is reached or either side closes.
//
// Security: the socket is created mode 0600 in a directory of mode 0750 and
// the daemon runs as root, so only root can connect; SO_PEERCRED is checked
// as well. Keys leave the daemon only through "sa.wireshark" and
// "ike.wireshark", which `mipsec sa list --wireshark` and `mipsec ike list
// --wireshark` use, and only when the request names them: "sa.list" and
// "ike.list" never carry them. The socket's permissions are all that
// protects them.
package control
