package netcfg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// MIP6FilterTable is the nftables table SuppressMIP6ParamProblems installs
// (family inet).
const MIP6FilterTable = "mipsec_mip6"

// ErrNoNft: the nft binary (nftables) is not installed, so the kernel's
// ICMPv6 Parameter Problems for Mobile IPv6 headers cannot be suppressed.
var ErrNoNft = errors.New("netcfg: nft (nftables) not found")

// nftTimeout bounds one nft run.
const nftTimeout = 10 * time.Second

// mip6FilterRules is the table body. An ICMPv6 error message is the ICMPv6
// header (type, code, checksum, pointer: 8 bytes, RFC 4443 §3.4) followed
// by as much of the invoking packet as fits; @th offsets are in bits from
// the start of the ICMPv6 header:
//
//   - @th,112,8: byte 8+6, the quoted IPv6 header's Next Header;
//   - @th,400,8: byte 8+42, the Routing Type of a Routing header that
//     directly follows the quoted IPv6 header (Next Header, Hdr Ext Len,
//     Routing Type: RFC 8200 §4.4).
//
// Code 2 (unrecognized IPv6 option) for a packet whose first extension
// header is Destination Options (60) is the answer of a kernel without
// Mobile IPv6 to a Home Address option (type 201, RFC 6275 §6.3: its top
// bits 11 ask for the error); code 0 (erroneous header field) for a
// packet with a type 2 Routing header (RFC 6275 §6.4) is its answer to a
// Binding Acknowledgement sent to a care-of address. mipsec reads both
// packets from raw sockets and handles them.
const mip6FilterRules = `	chain output {
		type filter hook output priority 0; policy accept;
		icmpv6 type parameter-problem icmpv6 code 2 @th,112,8 60 counter drop comment "RFC 6275 6.3 Home Address option: handled by mipsec"
		icmpv6 type parameter-problem icmpv6 code 0 @th,112,8 43 @th,400,8 2 counter drop comment "RFC 6275 6.4 type 2 Routing header: handled by mipsec"
	}
`

// SuppressMIP6ParamProblems installs the nftables table inet mipsec_mip6 in
// the current network namespace: an output-hook filter chain that drops
// the ICMPv6 Parameter Problem messages a kernel without Mobile IPv6
// (CONFIG_IPV6_MIP6 off) sends for packets mipsec itself handles: code 2
// quoting a packet whose first extension header is Destination Options
// (the Home Address option, RFC 6275 §6.3, on the home agent) and code 0
// quoting a type 2 Routing header (RFC 6275 §6.4, on the mobile node). No
// other ICMPv6 message is touched.
//
// It is idempotent: an existing table of that name is replaced in the same
// nft transaction. undo deletes the table (and is itself idempotent).
// Without the nft binary the error wraps ErrNoNft; when nft fails (no
// nf_tables in the kernel, no CAP_NET_ADMIN) the error has its output.
func SuppressMIP6ParamProblems() (undo func() error, err error) {
	script := "table inet " + MIP6FilterTable + "\n" +
		"delete table inet " + MIP6FilterTable + "\n" +
		"table inet " + MIP6FilterTable + " {\n" + mip6FilterRules + "}\n"
	if err := runNft(script); err != nil {
		return nil, err
	}
	return RemoveMIP6ParamProblemFilter, nil
}

// RemoveMIP6ParamProblemFilter deletes the table SuppressMIP6ParamProblems
// installs in the current network namespace; no table is not an error.
func RemoveMIP6ParamProblemFilter() error {
	return runNft("table inet " + MIP6FilterTable + "\n" + "delete table inet " + MIP6FilterTable + "\n")
}

// runNft runs `nft -f -` with script on stdin.
func runNft(script string) error {
	path, err := exec.LookPath("nft")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoNft, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nftTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("netcfg: nft -f - (table inet %s): %w: %s", MIP6FilterTable, err, strings.TrimSpace(out.String()))
	}
	return nil
}
