package main

// The mobility client subcommands: `mipsec binding list` (home agent),
// `mipsec mn status` and `mipsec mn move ADDR` (mobile node).

import (
	"encoding/json"
	"fmt"
	"github.com/mipsec/mipsec/control"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"
)

// ctlBinding is `mipsec binding list`.
func ctlBindingList(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("binding list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	var raw json.RawMessage
	if err := sock.client().Call("binding.list", nil, &raw); err != nil {
		return ctlFail(stderr, "binding list", err)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var bs []control.BindingInfo
	if err := json.Unmarshal(raw, &bs); err != nil {
		return ctlFail(stderr, "binding list", err)
	}
	writeBindings(stdout, bs)
	return 0
}

// writeBindings prints one line per care-of address; the binding's own
// columns are on its first line.
func writeBindings(w io.Writer, bs []control.BindingInfo) {
	if len(bs) == 0 {
		fmt.Fprintln(w, "no bindings")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOA\tHOA4\tCOA\tBID\tPRIMARY\tNAT ENDPOINT\tSEQ\tLIFETIME LEFT")
	for _, b := range bs {
		coas := b.CoAs
		if len(coas) == 0 {
			coas = []control.CareOfInfo{{}}
		}
		for i, c := range coas {
			hoa, hoa4, seq, left := "", "", "", ""
			if i == 0 {
				hoa, hoa4, seq, left = b.HoA, orDash(b.HoA4), fmt.Sprint(b.Seq), b.LifetimeLeft+" of "+b.Lifetime
			}
			prim := ""
			if c.Primary {
				prim = "yes"
			}
			nat := orDash(c.Endpoint)
			if c.NAT {
				nat += " (NAT)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", hoa, hoa4, orDash(c.Addr), c.BID, prim, nat, seq, left)
		}
	}
	tw.Flush()
}

// ctlMN is `mipsec mn status|move`.

func ctlMNStatus(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("mn status", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var raw json.RawMessage
	if err := sock.client().Call("mn.status", nil, &raw); err != nil {
		return ctlFail(stderr, "mn status", err)
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var st control.MNStatusInfo
	if err := json.Unmarshal(raw, &st); err != nil {
		return ctlFail(stderr, "mn status", err)
	}
	writeMNStatus(stdout, &st)
	return 0
}

func writeMNStatus(w io.Writer, st *control.MNStatusInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	hoa := st.HoA
	if st.HoA4 != "" {
		hoa += ", " + st.HoA4
	}
	ha := st.HA
	if st.HAV4 != "" {
		ha += ", " + st.HAV4
	}
	where := orDash(st.CoA)
	if st.Home {
		where = "home link"
	}
	fmt.Fprintf(tw, "home address\t%s\n", hoa)
	fmt.Fprintf(tw, "home agent\t%s\n", ha)
	fmt.Fprintf(tw, "binding update list\t%s (seq %d, %d unanswered)\n", st.State, st.Seq, st.Attempts)
	fmt.Fprintf(tw, "care-of address\t%s\n", where)
	fmt.Fprintf(tw, "registered care-of\t%s\n", orDash(st.RegisteredCoA))
	fmt.Fprintf(tw, "data path\t%s\n", st.Data)
	nat := "no"
	if st.NAT {
		nat = "yes (ESP in UDP 4500)"
	}
	fmt.Fprintf(tw, "NAT\t%s\n", nat)
	fmt.Fprintf(tw, "keepalive\t%s\n", orDash(st.Keepalive))
	if !st.Expires.IsZero() {
		fmt.Fprintf(tw, "lifetime left\t%s (expires %s)\n", st.LifetimeLeft, st.Expires.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "last BA\t%s\n", orDash(st.LastBAStatus))
	if st.LastHandover.IsZero() {
		fmt.Fprintf(tw, "last handover\t-\n")
	} else {
		fmt.Fprintf(tw, "last handover\t%s (took %s)\n", st.LastHandover.Format(time.RFC3339Nano), st.HandoverTime)
	}
	c := st.Counters
	fmt.Fprintf(tw, "counters\tBUs sent %d, BAs accepted %d, rejected %d, keepalives %d, handovers %d\n",
		c.BUsSent, c.BAsAccepted, c.BAsRejected, c.Keepalives, c.Handovers)
	tw.Flush()
}

func ctlMNMove(args []string, stdout, stderr io.Writer) int {
	fs, sock := ctlFlags("mn move", stderr)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mipsec mn move ADDR   (the care-of address to use, e.g. 2001:db8:2::100 or 203.0.113.10)")
		return 2
	}
	a, err := netip.ParseAddr(strings.Trim(pos[0], "[]"))
	if err != nil || a.Zone() != "" {
		return ctlFail(stderr, "mn move", fmt.Errorf("%q is not an IP address", pos[0]))
	}
	var out struct {
		CoA string `json:"coa"`
	}
	if err := sock.client().Call("mn.move", control.MNMoveArgs{CoA: a.Unmap().String()}, &out); err != nil {
		return ctlFail(stderr, "mn move", err)
	}
	fmt.Fprintf(stdout, "moving to care-of address %s (a Binding Update is on its way; see mipsec mn status)\n", out.CoA)
	return 0
}
