package mip6

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mipsec/mipsec/internal/header"
)

// FuzzDecodeMH asserts, for any input (STYLE §8):
//   - DecodeMH and ParseMH never panic, and fail only with one of the
//     package sentinels;
//   - DecodeMH succeeds only where ParseMH does, with the same message;
//   - anything ParseMH accepts re-encodes (unless the added alignment
//     padding pushes it over MHMaxLen) into a header that is a multiple of 8,
//     has a good checksum and spec-aligned options, and decodes to an equal
//     message; encoding that again gives the same bytes.
//
// Seeds are in testdata/fuzz/FuzzDecodeMH plus the messages added below.
func FuzzDecodeMH(f *testing.F) {
	for _, m := range []Message{
		&BindingUpdate{Seq: 1, Flags: BUFlagA | BUFlagH, Lifetime: 150, Options: []Option{AlternateCoA{Addr: mhCoA}}},
		&BindingUpdate{Seq: 3, Flags: BUFlagH | BUFlagF, Lifetime: 10, Options: mhAllOptions()},
		&BindingAck{Status: BAStatusSeqOutOfWindow, Flags: BAFlagK, Seq: 9, Options: mhAllOptions()[:9]},
		&BindingError{Status: BEStatusUnknownHAO, HomeAddress: mhHoA},
		&BindingRefreshRequest{Options: []Option{BindingIdentifier{BID: 4}}},
		&HomeTestInit{Cookie: [8]byte{1}}, &CareOfTestInit{}, &HomeTest{NonceIndex: 1}, &CareOfTest{},
	} {
		b, err := EncodeMH(m, mhHoA, mhHA)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	sentinels := []error{ErrMalformed, ErrMalformedOption, ErrChecksum, ErrUnknownType, ErrPayloadProto}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		dm, derr := DecodeMH(b, mhHoA, mhHA)
		pm, perr := ParseMH(b)
		if !bytes.Equal(in, b) {
			t.Fatal("decoder modified its input")
		}
		for _, err := range []error{derr, perr} {
			if err == nil {
				continue
			}
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("error without a sentinel: %v", err)
			}
		}
		if perr != nil {
			if derr == nil {
				t.Fatalf("DecodeMH accepted what ParseMH rejects: %v", perr)
			}
			return
		}
		if derr == nil {
			if diff := cmp.Diff(pm, dm, mhCmpOpts); diff != "" {
				t.Fatalf("DecodeMH and ParseMH differ (-parse +decode):\n%s", diff)
			}
		} else if !errors.Is(derr, ErrChecksum) {
			t.Fatalf("DecodeMH failed with %v where ParseMH succeeded", derr)
		}
		if pm.MHType() != header.MH(b).Type() {
			t.Fatalf("type %d from MH type %d", pm.MHType(), header.MH(b).Type())
		}
		enc, err := EncodeMH(pm, mhHoA, mhHA)
		if err != nil {
			if errors.Is(err, ErrMalformed) && len(b) > MHMaxLen/2 {
				return // alignment padding made it too long
			}
			t.Fatalf("re-encode of %#v: %v", pm, err)
		}
		mhCheckWire(t, enc, mhHoA, mhHA)
		m2, err := DecodeMH(enc, mhHoA, mhHA)
		if err != nil {
			t.Fatalf("decode(encode(%x)) = %x: %v", b, enc, err)
		}
		if diff := cmp.Diff(pm, m2, mhCmpOpts); diff != "" {
			t.Fatalf("decode→encode→decode differs (-first +second):\n%s", diff)
		}
		enc2, err := EncodeMH(m2, mhHoA, mhHA)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encode not stable: %x vs %x (%v)", enc, enc2, err)
		}
	})
}
