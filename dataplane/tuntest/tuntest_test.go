package tuntest

import (
	"errors"
	"os"
	"testing"
)

func TestTUN(t *testing.T) {
	tn := New(4, 16)
	if tn.BatchSize() != 4 {
		t.Fatal("BatchSize")
	}
	for _, s := range []string{"a", "bb", "ccc", "dddd", "eeeee"} {
		tn.Outbound <- []byte(s)
	}
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 32)
	}
	sizes := make([]int, 8)
	n, err := tn.Read(bufs, sizes, 10)
	if n != 4 || err != nil || string(bufs[3][10:10+sizes[3]]) != "dddd" {
		t.Fatalf("Read = %d, %v", n, err)
	}
	n, _ = tn.Read(bufs, sizes, 10)
	if n != 1 || sizes[0] != 5 {
		t.Fatalf("second Read = %d", n)
	}
	if n, err := tn.Write([][]byte{[]byte("xxhi")}, 2); n != 1 || err != nil {
		t.Fatal(err)
	}
	if got := <-tn.Inbound; string(got) != "hi" {
		t.Errorf("Inbound %q", got)
	}
	tn.Close()
	tn.Close()
	if _, err := tn.Read(bufs, sizes, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	for range tn.Events() {
	}
}
