package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mipsec/mipsec/esp"
)

func algorithms(w io.Writer) int {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENC KEY\tAUTH KEY\tIV\tICV\tAEAD\tCONFIDENTIAL\tSAFE WITH STATIC KEYS")
	for _, n := range esp.AlgorithmNames() {
		a, _ := esp.ParseAlgorithm(n)
		safe := "yes"
		if a.CounterMode() {
			safe = "only with persisted sequence numbers (RFC 8221 §3)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%v\t%v\t%s\n", n, a.EncKeyLen(), a.AuthKeyLen(), a.IVLen(), a.ICVLen(), a.AEAD(), a.Encrypts(), safe)
	}
	tw.Flush()
	return 0
}
