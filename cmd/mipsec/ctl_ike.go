package main

// The IKE client subcommands, swanctl's for mipsec's IKEv2 daemon:
// `mipsec ike list` (--list-sas), `mipsec ike initiate`, `terminate` and
// `rekey` (control/ike.go has the protocol).

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mipsec/mipsec/control"
)

// ikeSecretWarning goes to stderr before `ike list --wireshark` prints keys.
const ikeSecretWarning = "mipsec ike list: WARNING: the lines below hold the IKE SAs' secret keys (SK_ei, SK_er, SK_ai, SK_ar): " +
	"whoever has them can decrypt and forge the IKE exchanges; keep them private " +
	"(Wireshark reads them from ~/.config/wireshark/ikev2_decryption_table)"

// ctlIKEList is `mipsec ike list`.
func ctlIKEList(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("ike list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	ws := fs.Bool("wireshark", false, "print the IKE SAs' keys as lines of Wireshark's ikev2_decryption_table file (secret: a warning goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 0 || (*asJSON && *ws) {
		fs.Usage()
		return 2
	}
	c := sock.client()
	if *ws {
		var keys []control.IKEWiresharkKey
		if err := c.Call("ike.wireshark", nil, &keys); err != nil {
			return ctlFail(stderr, "ike list", err)
		}
		fmt.Fprintln(stderr, ikeSecretWarning)
		control.WriteIKEWireshark(stdout, stderr, keys)
		return 0
	}
	var raw json.RawMessage
	if err := c.Call("ike.list", nil, &raw); err != nil {
		return ctlFail(stderr, "ike list", err)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var sas []control.IKESAInfo
	if err := json.Unmarshal(raw, &sas); err != nil {
		return ctlFail(stderr, "ike list", err)
	}
	control.WriteIKESAs(stdout, sas, time.Now())
	return 0
}

// ctlIKEAction is `mipsec ike initiate|terminate|rekey NAME [CHILD]`.
func ctlIKEAction(action string, args []string, stdout, stderr io.Writer) int {
	name := "ike " + action
	fs, sock := ctlFlags(name, stderr)
	timeout := fs.Duration("timeout", control.DefaultIKETimeout, "how long to wait for the daemon (swanctl --timeout); it goes on trying after that")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	most := 2
	if action == "terminate" {
		most = 1
	}
	if len(rest) == 0 || len(rest) > most {
		c := commandNamed(name)
		fmt.Fprintf(stderr, "usage: mipsec %s %s\n", c.name, c.args)
		return 2
	}
	if *timeout <= 0 || *timeout > control.MaxIKETimeout {
		fmt.Fprintf(stderr, "mipsec %s: --timeout %v: want above 0 and at most %v\n", name, *timeout, control.MaxIKETimeout)
		return 2
	}
	a := control.IKEArgs{Name: rest[0], Timeout: timeout.String()}
	if len(rest) == 2 {
		a.Child = rest[1]
	}
	c := sock.client()
	// The daemon answers within the timeout; the margin is for the answer.
	c.Timeout = *timeout + 10*time.Second
	var res control.IKEActionInfo
	if err := c.Call("ike."+action, a, &res); err != nil {
		return ctlFail(stderr, name, err)
	}
	fmt.Fprintln(stdout, ikeActionMessage(res))
	return 0
}

// newestChild is sa's child of that name with the highest ID.
func newestChild(sa *control.IKESAInfo, name string) *control.IKEChildInfo {
	var best *control.IKEChildInfo
	if sa == nil {
		return nil
	}
	for i := range sa.Children {
		if c := &sa.Children[i]; c.Name == name && (best == nil || c.ID > best.ID) {
			best = c
		}
	}
	return best
}

// ikeActionMessage says what an initiate, terminate or rekey did:
// "initiated site-b/net: IKE SA #3, child #4 installed".
func ikeActionMessage(r control.IKEActionInfo) string {
	what := r.Name
	if r.Child != "" {
		what += "/" + r.Child
	}
	var b strings.Builder
	switch r.Action {
	case "initiate":
		fmt.Fprintf(&b, "initiated %s", what)
		if r.After == nil {
			break
		}
		if r.Child != "" {
			fmt.Fprintf(&b, ": IKE SA #%d", r.After.ID)
			if c := newestChild(r.After, r.Child); c != nil {
				fmt.Fprintf(&b, ", child #%d %s", c.ID, c.State)
			} else {
				fmt.Fprintf(&b, " %s", r.After.State)
			}
			break
		}
		fmt.Fprintf(&b, ": IKE SA #%d %s", r.After.ID, r.After.State)
		for _, c := range r.After.Children {
			fmt.Fprintf(&b, ", child %s #%d %s", c.Name, c.ID, c.State)
		}
	case "terminate":
		fmt.Fprintf(&b, "terminated %s", what)
		if r.Before == nil {
			break
		}
		fmt.Fprintf(&b, ": IKE SA #%d deleted", r.Before.ID)
		for i, c := range r.Before.Children {
			sep := ", "
			if i == 0 {
				sep = " with child "
			}
			fmt.Fprintf(&b, "%s%s #%d", sep, c.Name, c.ID)
		}
	case "rekey":
		fmt.Fprintf(&b, "rekeyed %s", what)
		if r.Child != "" {
			old, cur := newestChild(r.Before, r.Child), newestChild(r.After, r.Child)
			switch {
			case cur == nil:
			case old != nil && old.ID != cur.ID:
				fmt.Fprintf(&b, ": child #%d replaced by #%d, %s", old.ID, cur.ID, cur.State)
			default:
				fmt.Fprintf(&b, ": child #%d %s", cur.ID, cur.State)
			}
			break
		}
		switch {
		case r.After == nil:
		case r.Before != nil && r.Before.ID != r.After.ID:
			fmt.Fprintf(&b, ": IKE SA #%d replaced by #%d, %s", r.Before.ID, r.After.ID, r.After.State)
		default:
			fmt.Fprintf(&b, ": IKE SA #%d %s", r.After.ID, r.After.State)
		}
	default:
		fmt.Fprintf(&b, "%s %s", r.Action, what)
	}
	return b.String()
}

// writeIKEStats is the IKE part of `mipsec stats`.
func writeIKEStats(w io.Writer, st *control.IKEStatsInfo) {
	fmt.Fprintf(w, "ike: ike_sas=%d child_sas=%d half_open=%d rekeys=%d retransmits=%d cookies_sent=%d esp_moves=%d mobike_updates=%d relocations=%d renewals=%d\n",
		st.IKESAs, st.ChildSAs, st.HalfOpen, st.Rekeys, st.Retransmits, st.CookiesSent, st.ESPMoves, st.MOBIKEUpdates, st.Relocations, st.Renewals)
	fmt.Fprintf(w, "ike exchanges: %s\n", formatCounts(st.Exchanges))
	fmt.Fprintf(w, "ike failures: %s\n", formatCounts(st.Failures))
}
