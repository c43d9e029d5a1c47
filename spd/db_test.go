package spd

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mipsec/mipsec/internal/header"
	"github.com/mipsec/mipsec/sad"
)

func sel4(local, remote string) sad.Selector {
	return sad.Selector{Local: prefixOrAny(local), Remote: prefixOrAny(remote)}
}

func prefixOrAny(s string) sad.AddrRange {
	if s == "" {
		return sad.AnyAddr
	}
	return sad.PrefixRange(netip.MustParsePrefix(s))
}

func TestValidate(t *testing.T) {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.9")
	a6 := netip.MustParseAddr("2001:db8::1")
	ok := sel4("10.0.0.0/8", "192.0.2.0/24")
	tests := []struct {
		name string
		p    Policy
		want string // substring of the error; "" = valid
	}{
		{"valid", Policy{Dir: sad.Outbound, Action: Bypass, Selectors: []sad.Selector{ok}}, ""},
		{"valid protect", Policy{Dir: sad.Outbound, Action: Protect, SPI: 7, Selectors: []sad.Selector{ok}}, ""},
		{"inbound protect without SPI", Policy{Dir: sad.Inbound, Action: Protect, Selectors: []sad.Selector{ok}}, ""},
		{"valid v6 and any", Policy{Dir: sad.Inbound, Action: Discard, Selectors: []sad.Selector{
			{Local: sad.SingleAddr(a6)}, {}}}, ""},
		{"no direction", Policy{Action: Bypass, Selectors: []sad.Selector{ok}}, "direction"},
		{"bad direction", Policy{Dir: 9, Action: Bypass, Selectors: []sad.Selector{ok}}, "direction"},
		{"bad action", Policy{Dir: sad.Outbound, Action: 7, Selectors: []sad.Selector{ok}}, "action"},
		{"protect without SPI", Policy{Dir: sad.Outbound, Action: Protect, Selectors: []sad.Selector{ok}}, "SPI"},
		{"SPI on bypass", Policy{Dir: sad.Outbound, Action: Bypass, SPI: 1, Selectors: []sad.Selector{ok}}, "SPI"},
		{"SPI on discard", Policy{Dir: sad.Inbound, Action: Discard, SPI: 1, Selectors: []sad.Selector{ok}}, "SPI"},
		{"no selectors", Policy{Dir: sad.Outbound, Action: Discard}, "no selector set"},
		{"mixed range", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Local: sad.AddrRange{From: a4, To: a6}}}}, "mixed in one range"},
		{"mixed local remote", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Local: sad.SingleAddr(a4), Remote: sad.SingleAddr(a6)}}}, "mixed in one entry"},
		{"mixed across sets", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Local: sad.SingleAddr(a4)}, {Remote: sad.SingleAddr(a6)}}}, "mixed in one entry"},
		{"empty range", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Remote: sad.AddrRange{From: b4, To: a4}}}}, "empty range"},
		{"start only", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Remote: sad.AddrRange{From: a4}}}}, "without an end"},
		{"end only", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Remote: sad.AddrRange{To: a4}}}}, "without a start"},
		{"zone", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Remote: sad.SingleAddr(a6.WithZone("eth0"))}}}, "zoned"},
		{"empty port range", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Proto: header.ProtoTCP, LocalPort: sad.PortsRange(9, 8)}}}, "empty range"},
		{"bad port match", Policy{Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{
			{Proto: header.ProtoTCP, RemotePort: sad.Ports{Match: 9}}}}, "match kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := New(nil)
			for _, err := range []error{db.Replace([]Policy{tt.p}), db.Insert(0, tt.p), db.Append(tt.p)} {
				switch {
				case tt.want == "" && err != nil:
					t.Fatalf("unexpected error %v", err)
				case tt.want == "":
					continue
				case err == nil:
					t.Fatalf("no error, want %q", tt.want)
				case !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tt.want):
					t.Fatalf("error %v, want ErrInvalidPolicy with %q", err, tt.want)
				}
				db.Delete(tt.p.Name)
			}
		})
	}
}

func TestWriters(t *testing.T) {
	db := New(nil)
	out := func(name string) Policy {
		return Policy{Name: name, Dir: sad.Outbound, Action: Bypass, Selectors: []sad.Selector{{}}}
	}
	in := func(name string) Policy {
		return Policy{Name: name, Dir: sad.Inbound, Action: Discard, Selectors: []sad.Selector{{}}}
	}
	names := func(dir sad.Direction) string {
		var s []string
		for _, p := range db.List(dir) {
			s = append(s, p.Name)
		}
		return strings.Join(s, ",")
	}
	if err := db.Replace([]Policy{out("a"), in("x"), out("b"), in("y"), out("")}); err != nil {
		t.Fatal(err)
	}
	if got := names(sad.Outbound) + "|" + names(sad.Inbound); got != "a,b,|x,y" {
		t.Fatalf("after Replace: %s", got)
	}
	if db.Len(sad.Outbound) != 3 || db.Len(sad.Inbound) != 2 || db.Len(0) != 0 || db.List(0) != nil {
		t.Fatal("Len / List of an invalid direction")
	}
	// Duplicate names: in one Replace, across directions, on Insert.
	if err := db.Replace([]Policy{out("a"), in("a")}); !errors.Is(err, ErrDuplicateName) {
		t.Fatalf("Replace with duplicates: %v", err)
	}
	if err := db.Insert(0, in("a")); !errors.Is(err, ErrDuplicateName) {
		t.Fatalf("Insert duplicate: %v", err)
	}
	if got := names(sad.Outbound); got != "a,b," {
		t.Fatalf("a failed write changed the list: %s", got)
	}
	if err := db.Insert(1, out("c")); err != nil {
		t.Fatal(err)
	}
	if err := db.Insert(0, in("w")); err != nil {
		t.Fatal(err)
	}
	if err := db.Append(in("z")); err != nil {
		t.Fatal(err)
	}
	if err := db.Insert(5, out("d")); !errors.Is(err, ErrIndex) {
		t.Fatalf("Insert past the end: %v", err)
	}
	if err := db.Insert(-1, out("d")); !errors.Is(err, ErrIndex) {
		t.Fatalf("Insert at -1: %v", err)
	}
	if got := names(sad.Outbound) + "|" + names(sad.Inbound); got != "a,c,b,|w,x,y,z" {
		t.Fatalf("after inserts: %s", got)
	}
	if err := db.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete("x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}
	if err := db.Delete(""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete(\"\"): %v", err)
	}
	if got := names(sad.Outbound) + "|" + names(sad.Inbound); got != "a,c,b,|w,y,z" {
		t.Fatalf("after delete: %s", got)
	}
}

// TestCopies: the DB owns its policies; neither the caller's slices nor
// List's results reach into it.
func TestCopies(t *testing.T) {
	db := New(nil)
	sels := []sad.Selector{sel4("10.0.0.0/8", "")}
	ps := []Policy{{Name: "p", Dir: sad.Outbound, Action: Bypass, Selectors: sels}}
	if err := db.Replace(ps); err != nil {
		t.Fatal(err)
	}
	want := db.List(sad.Outbound)
	sels[0].Proto = 99
	got := db.List(sad.Outbound)
	got[0].Selectors[0].Proto = 98
	got[0].Name = "q"
	if diff := cmp.Diff(want, db.List(sad.Outbound), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("List changed (-want +got):\n%s", diff)
	}
	if err := db.Append(Policy{Name: "r", Dir: sad.Outbound, Action: Bypass, Selectors: sels}); err != nil {
		t.Fatal(err)
	}
	sels[0].Proto = 97
	if p := db.List(sad.Outbound)[1]; p.Selectors[0].Proto != 99 {
		t.Errorf("Append kept the caller's slice: proto %d", p.Selectors[0].Proto)
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[Action]string{Discard: "DISCARD", Bypass: "BYPASS", Protect: "PROTECT", 9: "Action(9)"} {
		if v.String() != want {
			t.Errorf("%d: %q", v, v.String())
		}
	}
	for v, want := range map[Reason]string{ReasonPolicy: "policy", ReasonNoMatch: "no-match", ReasonUnparsable: "unparsable",
		ReasonUnprotected: "unprotected", ReasonNoSA: "no-sa", 99: "invalid"} {
		if v.String() != want {
			t.Errorf("%d: %q", v, v.String())
		}
	}
}

// TestEmptyAndInvalid: an empty SPD and invalid directions discard
// (RFC 4301 §5).
func TestEmptyAndInvalid(t *testing.T) {
	db := New(nil)
	f := header.Flow{Src: hoa, Dst: cn, Proto: header.ProtoTCP}
	want := Decision{Action: Discard, Index: -1, Reason: ReasonNoMatch}
	for _, dir := range []sad.Direction{sad.Outbound, sad.Inbound, 0, 3} {
		if got := db.LookupFlow(dir, &f); got != want {
			t.Errorf("%v: %+v", dir, got)
		}
	}
	if got := db.Lookup(0, []byte{1}); got.Reason != ReasonUnparsable || got.Action != Discard {
		t.Errorf("invalid direction, bad packet: %+v", got)
	}
	if st := db.Stats(0); st.NoMatch != 0 || st.Policies != nil {
		t.Errorf("Stats(0) = %+v", st)
	}
	if st := db.Stats(sad.Outbound); st.NoMatch != 1 {
		t.Errorf("Stats(out) = %+v", st)
	}
}

// TestConcurrent runs lookups while policies are inserted and deleted in
// front of the one that matches: every lookup must see a whole snapshot,
// so it always finds that policy. Run with -race.
func TestConcurrent(t *testing.T) {
	db := New(nil)
	target := Policy{Name: "target", Dir: sad.Outbound, Action: Bypass, Selectors: []sad.Selector{sel4("", "192.0.2.0/24")}}
	if err := db.Replace([]Policy{target}); err != nil {
		t.Fatal(err)
	}
	f := header.Flow{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("192.0.2.7"), Proto: header.ProtoUDP}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad sync.Map
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d := db.LookupFlow(sad.Outbound, &f); d.Action != Bypass || d.Index < 0 {
					bad.Store(d, true)
				}
			}
		})
	}
	for i := range 300 {
		name := "p" + itoa(i)
		p := Policy{Name: name, Dir: sad.Outbound, Action: Discard, Selectors: []sad.Selector{sel4("", "198.51.100.0/24")}}
		if err := db.Insert(0, p); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := db.Delete(name); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	bad.Range(func(k, _ any) bool {
		t.Errorf("lookup saw %+v", k)
		return true
	})
	st := db.Stats(sad.Outbound)
	if last := st.Policies[len(st.Policies)-1]; last.Name != "target" || last.Hits == 0 {
		t.Errorf("target stats %+v", last)
	}
}

// *sad.DB resolves outbound SPIs for the DB.
var _ SALookup = (*sad.DB)(nil)
